//! Generated from `notebooks/src/occlusion.txt` by `notebooks/src/spec2example.py`: the code of
//! `notebooks/occlusion.ipynb`, cell by cell, with each figure saved to `target/nb-occlusion/NN.png`.
//!
//! `CNN_EXPLAIN_CACHE=/work/main/.cache/models-full cargo run --example nb_occlusion`
//! (`CNN_EXPLAIN_QUICK=1` for the quick mode).
#![allow(clippy::needless_range_loop)]
use cnn_explain::attribution::occlusion::{Occlusion, OcclusionBaseline, Score};
use cnn_explain::attribution::{Saliency, SaliencyMode};
use cnn_explain::notebook::{pick, trained_default};
use cnn_explain::prelude::*;
use cnn_explain::viz::{
    html_table, overlay, tensor_to_image, Colormap, Draw, ImageGrid, Normalization, Sign,
};
use std::time::Instant;

fn main() -> cnn_explain::Result<()> {
    let out = std::path::Path::new("target/nb-occlusion");
    let trained = trained_default()?;
    let ev = evaluate(&trained.model, &trained.data.test, 256)?;
    let masks = trained
        .data
        .test
        .masks
        .as_ref()
        .ok_or_else(|| Error::invalid("masks", "the shapes test set should carry object masks"))?
        .shallow_clone();
    println!(
        "test accuracy {:.1}%, {} misclassified",
        100.0 * ev.accuracy,
        ev.misclassified().len()
    );

    fn caption(ev: &cnn_explain::eval::Evaluation, names: &[String], i: usize) -> String {
        let name = |c: i64| names.get(c as usize).map_or("?", |s| s.as_str());
        let (t, p) = (name(ev.labels[i]), name(ev.predicted[i]));
        if t == p {
            format!("{t} {:.2}", ev.confidence[i])
        } else {
            format!("{t}→{p} {:.2}", ev.confidence[i])
        }
    }

    /// Grey images [N, 3, H, W] with the outline of the masks [N, 1, H, W] in green.
    fn backdrop(images: &Tensor, masks: &Tensor) -> Tensor {
        let grey = images
            .mean_dim([1i64].as_slice(), true, Kind::Float)
            .expand([-1, 3, -1, -1], false);
        let inside = masks.gt(0.5).to_kind(Kind::Float);
        let outside_near = (1.0f64 - &inside).max_pool2d([3, 3], [1, 1], [1, 1], [1, 1], false);
        let edge = (&inside * outside_near).clamp(0.0, 1.0);
        let green = Tensor::from_slice(&[0.0f32, 1.0, 0.0]).view([1, 3, 1, 1]);
        grey * (1.0f64 - &edge) + &edge * green
    }

    /// Share of each map's positive mass (1 per image) inside the mask: maps, masks [N, 1, H, W].
    fn positive_mass_inside(maps: &Tensor, masks: &Tensor) -> Result<Vec<f64>> {
        let a = maps
            .sum_dim_intlist([1i64].as_slice(), true, Kind::Double)
            .clamp_min(0.0)
            .to_device(Device::Cpu);
        let total = a
            .sum_dim_intlist([1i64, 2, 3].as_slice(), false, Kind::Double)
            .clamp_min(1e-30);
        let inside =
            (&a * masks.to_kind(Kind::Double)).sum_dim_intlist([1i64, 2, 3].as_slice(), false, Kind::Double);
        Ok(Vec::<f64>::try_from(inside / total)?)
    }

    fn mean(v: &[f64]) -> f64 {
        v.iter().sum::<f64>() / v.len().max(1) as f64
    }

    let k = pick(3, 1);
    let mut by_conf: Vec<usize> = (0..ev.labels.len())
        .filter(|&i| ev.labels[i] == ev.predicted[i])
        .collect();
    by_conf.sort_by(|&a, &b| ev.confidence[b].total_cmp(&ev.confidence[a]));
    let mut chosen: Vec<usize> = Vec::new();
    for &i in &by_conf {
        if chosen.len() < k && chosen.iter().all(|&j| ev.labels[j] != ev.labels[i]) {
            chosen.push(i);
        }
    }
    chosen.extend(ev.misclassified().into_iter().take(k));
    let ix = Tensor::from_slice(&chosen.iter().map(|&i| i as i64).collect::<Vec<_>>());
    let xs = trained.data.test.images.index_select(0, &ix);
    let ms = masks.index_select(0, &ix);
    let captions: Vec<String> = chosen
        .iter()
        .map(|&i| caption(&ev, &trained.data.test.class_names, i))
        .collect();
    let n = chosen.len() as i64;
    println!("images {chosen:?}: {captions:?}");

    // Quick mode skips the 4 px window (hundreds of passes per image).
    let windows: Vec<i64> = pick(vec![4, 8, 16], vec![8, 16]);
    let (h, w) = (xs.size()[2], xs.size()[3]);
    let mut occ_maps = Vec::new();
    let mut rows = Vec::new();
    for &win in &windows {
        let occ = Occlusion {
            window: (win, win),
            stride: (win / 2, win / 2),
            ..Default::default()
        };
        let positions = occ.positions(h, w)?;
        let t = Instant::now();
        occ_maps.push(occ.attribute(&trained.model, &xs, &Target::Predicted)?);
        let secs = t.elapsed().as_secs_f64();
        let passes = n as usize * (positions + 1);
        rows.push(vec![
            format!("occlusion {win}×{win}, stride {}", win / 2),
            positions.to_string(),
            passes.to_string(),
            format!("{:.2}", secs),
            format!("{:.2}", 1000.0 * secs / passes as f64),
        ]);
    }
    let saliency = Saliency {
        mode: SaliencyMode::MaxOverChannels,
    };
    let t = Instant::now();
    let sal = saliency.attribute(&trained.model, &xs, &Target::Predicted)?;
    let secs = t.elapsed().as_secs_f64();
    rows.push(vec![
        "vanilla saliency".into(),
        "-".into(),
        format!("{n} forward + backward"),
        format!("{secs:.3}"),
        "-".into(),
    ]);
    let _shown = html_table(
        &[
            "method",
            "windows per image",
            "forward passes",
            "seconds",
            "ms per pass",
        ],
        &rows,
    )?;

    // One block, so the images it builds stay local to the cell.
    {
        let signed = Normalization {
            sign: Sign::All,
            shared: true,
            outlier_percentile: 100.0,
            ..Default::default()
        };
        let sal_norm = Normalization {
            outlier_percentile: 99.0,
            ..Default::default()
        }
        .normalize(&sal)?;
        let lined = backdrop(&xs, &ms);
        let mut cells = Vec::new();
        let mut drops = Vec::new();
        for i in 0..n {
            let per_image: Vec<Tensor> = occ_maps.iter().map(|m| m.get(i).unsqueeze(0)).collect();
            let stacked = Tensor::f_cat(&per_image, 0)?;
            drops.push(stacked.abs().max().double_value(&[]));
            let normed = signed.normalize(&stacked)?;
            cells.push(tensor_to_image(&xs.get(i))?);
            for j in 0..windows.len() as i64 {
                cells.push(overlay(&lined.get(i), &normed.get(j), Colormap::RdBu, 0.7, true)?);
            }
            cells.push(overlay(
                &lined.get(i),
                &sal_norm.get(i),
                Colormap::Inferno,
                0.7,
                false,
            )?);
        }
        let mut titles = vec!["image".to_string()];
        titles.extend(windows.iter().map(|w| format!("occlusion {w}px")));
        titles.push("|gradient|".into());
        for (c, d) in captions.iter().zip(&drops) {
            println!("{c}: largest probability change {d:.3}");
        }
        ImageGrid {
            titles,
            row_labels: captions.clone(),
            title: "Occlusion: window size vs detail (red: hiding lowers the score)".into(),
            cell: 128,
            ..ImageGrid::new(cells, windows.len() + 2)
        }
        .figure()
        .save(out.join("01.png"))?;
    }

    let area = mean(&Vec::<f64>::try_from(ms.to_kind(Kind::Double).mean_dim(
        [1i64, 2, 3].as_slice(),
        false,
        Kind::Double,
    ))?);
    let mut rows = Vec::new();
    for (win, maps) in windows.iter().zip(&occ_maps) {
        let share = positive_mass_inside(maps, &ms)?;
        rows.push(vec![
            format!("occlusion {win}px"),
            format!("{:.1}%", 100.0 * mean(&share)),
        ]);
    }
    let share = positive_mass_inside(&sal, &ms)?;
    rows.push(vec![
        "vanilla saliency".into(),
        format!("{:.1}%", 100.0 * mean(&share)),
    ]);
    rows.push(vec![
        "uniform map (object area)".into(),
        format!("{:.1}%", 100.0 * area),
    ]);
    let _shown = html_table(&["method", "positive mass inside object"], &rows)?;

    let mut rows = Vec::new();
    for (label, baseline, score) in [
        (
            "image mean colour, probability",
            OcclusionBaseline::ChannelMean,
            Score::Probability,
        ),
        (
            "black (0), probability",
            OcclusionBaseline::Value(0.0),
            Score::Probability,
        ),
        (
            "image mean colour, logit",
            OcclusionBaseline::ChannelMean,
            Score::Logit,
        ),
    ] {
        let occ = Occlusion {
            window: (8, 8),
            stride: (4, 4),
            baseline,
            score,
            ..Default::default()
        };
        let maps = occ.attribute(&trained.model, &xs, &Target::Predicted)?;
        let share = positive_mass_inside(&maps, &ms)?;
        let largest: Vec<f64> = (0..n).map(|i| maps.get(i).max().double_value(&[])).collect();
        rows.push(vec![
            label.to_string(),
            format!("{:.1}%", 100.0 * mean(&share)),
            largest
                .iter()
                .map(|v| format!("{v:.2}"))
                .collect::<Vec<_>>()
                .join(", "),
        ]);
    }
    let _shown = html_table(
        &[
            "8 px window: fill, score",
            "positive mass inside object",
            "largest drop per image",
        ],
        &rows,
    )?;
    println!("wrote {}", out.display());
    Ok(())
}
