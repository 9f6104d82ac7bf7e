//! Generated from `notebooks/src/vanilla-saliency.txt` by `notebooks/src/spec2example.py`: the code of
//! `notebooks/vanilla-saliency.ipynb`, cell by cell, with each figure saved to `target/nb-vanilla-saliency/NN.png`.
//!
//! `CNN_EXPLAIN_CACHE=/work/main/.cache/models-full cargo run --example nb_vanilla_saliency`
//! (`CNN_EXPLAIN_QUICK=1` for the quick mode).
#![allow(clippy::needless_range_loop)]
use cnn_explain::attribution::{
    Baseline, InputXGradient, IntegratedGradients, NoiseTunnel, Saliency, SaliencyMode,
};
use cnn_explain::notebook::{pick, trained_default};
use cnn_explain::prelude::*;
use cnn_explain::viz::{html_table, overlay, tensor_to_image, Colormap, Draw, ImageGrid, Normalization};
use std::time::Instant;

fn main() -> cnn_explain::Result<()> {
    let out = std::path::Path::new("target/nb-vanilla-saliency");
    let trained = trained_default()?;
    let ev = evaluate(&trained.model, &trained.data.test, 256)?;
    let masks_all = trained
        .data
        .test
        .masks
        .as_ref()
        .ok_or_else(|| Error::invalid("masks", "the shapes test set should carry object masks"))?
        .shallow_clone();
    println!(
        "test accuracy {:.1}% on {} images; {} misclassified",
        100.0 * ev.accuracy,
        ev.labels.len(),
        ev.misclassified().len()
    );

    let k = pick(5, 3);
    let misclassified: Vec<usize> = ev.misclassified().into_iter().take(k).collect();
    let low_conf: Vec<usize> = ev
        .lowest_confidence(200)
        .into_iter()
        .filter(|i| !misclassified.contains(i))
        .take(k)
        .collect();
    // Correct, most confident first, one per class while classes are left.
    let mut by_conf: Vec<usize> = (0..ev.labels.len())
        .filter(|&i| ev.labels[i] == ev.predicted[i])
        .collect();
    by_conf.sort_by(|&a, &b| ev.confidence[b].total_cmp(&ev.confidence[a]));
    let mut correct: Vec<usize> = Vec::new();
    for &i in &by_conf {
        if correct.iter().all(|&j| ev.labels[j] != ev.labels[i]) {
            correct.push(i);
        }
    }
    correct.extend(
        by_conf
            .iter()
            .filter(|i| !correct.contains(i))
            .copied()
            .collect::<Vec<_>>(),
    );
    correct.truncate(k);
    println!("correct {correct:?}\nmisclassified {misclassified:?}\nlow confidence {low_conf:?}");

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

    /// One column per image: the image, the map alone, the map over the image, and `extra` maps as overlays.
    fn saliency_grid(
        images: &Tensor,
        masks: &Tensor,
        maps: &Tensor,
        titles: Vec<String>,
        extra: &[(&str, &Tensor)],
        title: &str,
    ) -> Result<ImageGrid> {
        let n = images.size()[0];
        let norm = Normalization {
            outlier_percentile: 99.0,
            ..Default::default()
        };
        let mut rows = vec![("image", None), ("|gradient|", Some(maps))];
        rows.push(("overlay", Some(maps)));
        for (label, m) in extra {
            rows.push((*label, Some(*m)));
        }
        let lined = backdrop(images, masks);
        let mut cells = Vec::new();
        for (r, (_, m)) in rows.iter().enumerate() {
            let normed = match m {
                Some(m) => Some(norm.normalize(m)?),
                None => None,
            };
            for i in 0..n {
                cells.push(match &normed {
                    None => tensor_to_image(&images.get(i))?,
                    Some(v) if r == 1 => Colormap::Inferno.apply(&v.get(i).squeeze(), 0.0, 1.0)?,
                    Some(v) => overlay(&lined.get(i), &v.get(i), Colormap::Inferno, 0.6, false)?,
                });
            }
        }
        Ok(ImageGrid {
            titles,
            row_labels: rows.iter().map(|(l, _)| l.to_string()).collect(),
            title: title.into(),
            cell: 144,
            ..ImageGrid::new(cells, n as usize)
        })
    }

    /// Share of each map's absolute mass (summed over channels, 1 per image) inside the mask, per image.
    fn mass_inside(maps: &Tensor, masks: &Tensor) -> Result<Vec<f64>> {
        let a = maps
            .abs()
            .sum_dim_intlist([1i64].as_slice(), true, Kind::Double)
            .to_device(Device::Cpu);
        let total = a
            .sum_dim_intlist([1i64, 2, 3].as_slice(), false, Kind::Double)
            .clamp_min(1e-30);
        let inside =
            (&a * masks.to_kind(Kind::Double)).sum_dim_intlist([1i64, 2, 3].as_slice(), false, Kind::Double);
        Ok(Vec::<f64>::try_from(inside / total)?)
    }

    /// Images [k, 3, H, W], masks [k, 1, H, W] and captions of the test images `idx`.
    fn select(
        data: &Dataset,
        ev: &cnn_explain::eval::Evaluation,
        idx: &[usize],
    ) -> Result<(Tensor, Tensor, Vec<String>)> {
        let ix: Vec<i64> = idx.iter().map(|&i| i as i64).collect();
        let ix = Tensor::from_slice(&ix);
        let masks = data
            .masks
            .as_ref()
            .ok_or_else(|| Error::invalid("masks", "the shapes test set should carry object masks"))?;
        Ok((
            data.images.f_index_select(0, &ix)?,
            masks.f_index_select(0, &ix)?,
            idx.iter().map(|&i| caption(ev, &data.class_names, i)).collect(),
        ))
    }

    /// Rows of images, columns of methods: `normed` [M * N, 1, H, W] holds method 0's maps of the N
    /// images, then method 1's, ...
    fn methods_grid(
        images: &Tensor,
        masks: &Tensor,
        normed: &Tensor,
        names: &[String],
        captions: &[String],
        title: &str,
    ) -> Result<ImageGrid> {
        let n = images.size()[0];
        let lined = backdrop(images, masks);
        let mut cells = Vec::new();
        for i in 0..n {
            cells.push(tensor_to_image(&images.get(i))?);
            for j in 0..names.len() as i64 {
                cells.push(overlay(
                    &lined.get(i),
                    &normed.get(j * n + i),
                    Colormap::Inferno,
                    0.75,
                    false,
                )?);
            }
        }
        let mut titles = vec!["image".to_string()];
        titles.extend(names.iter().cloned());
        Ok(ImageGrid {
            titles,
            row_labels: captions.to_vec(),
            title: title.into(),
            cell: 128,
            ..ImageGrid::new(cells, names.len() + 1)
        })
    }

    fn mean(v: &[f64]) -> f64 {
        v.iter().sum::<f64>() / v.len().max(1) as f64
    }

    let saliency = Saliency {
        mode: SaliencyMode::MaxOverChannels,
    };
    let (xs, ms, titles) = select(&trained.data.test, &ev, &correct)?;
    let maps = saliency.attribute(&trained.model, &xs, &Target::Predicted)?;
    saliency_grid(&xs, &ms, &maps, titles, &[], "Correctly classified")?
        .figure()
        .save(out.join("01.png"))?;

    let (xs, ms, titles) = select(&trained.data.test, &ev, &misclassified)?;
    let maps = saliency.attribute(&trained.model, &xs, &Target::Predicted)?;
    let truth: Vec<i64> = misclassified.iter().map(|&i| ev.labels[i]).collect();
    let maps_true = saliency.attribute(&trained.model, &xs, &Target::PerSample(truth))?;
    saliency_grid(
        &xs,
        &ms,
        &maps,
        titles,
        &[("true class", &maps_true)],
        "Misclassified (true→predicted)",
    )?
    .figure()
    .save(out.join("02.png"))?;

    let (xs, ms, titles) = select(&trained.data.test, &ev, &low_conf)?;
    let maps = saliency.attribute(&trained.model, &xs, &Target::Predicted)?;
    saliency_grid(&xs, &ms, &maps, titles, &[], "Least confident")?
        .figure()
        .save(out.join("03.png"))?;

    let steps = pick(50, 16);
    let samples = pick(25, 8);
    let methods: Vec<(String, Box<dyn Attribution>)> = vec![
        ("Saliency".into(), Box::new(Saliency::default())),
        (
            format!("SmoothGrad ({samples})"),
            Box::new(NoiseTunnel {
                samples,
                seed: 7,
                ..NoiseTunnel::smooth(Saliency::default())
            }),
        ),
        ("Input×Gradient".into(), Box::new(InputXGradient)),
        (
            format!("IG zeros ({steps})"),
            Box::new(IntegratedGradients {
                steps,
                ..Default::default()
            }),
        ),
        (
            format!("IG blurred ({steps})"),
            Box::new(IntegratedGradients {
                steps,
                baseline: Baseline::Blurred { sigma: 4.0 },
                ..Default::default()
            }),
        ),
    ];
    let mut shown: Vec<usize> = Vec::new();
    shown.extend(correct.iter().take(2));
    shown.extend(misclassified.iter().take(2));
    shown.extend(low_conf.iter().take(2));
    let (xs, ms, captions) = select(&trained.data.test, &ev, &shown)?;
    let mut all_maps = Vec::new();
    for (name, m) in &methods {
        let t = Instant::now();
        all_maps.push(m.attribute(&trained.model, &xs, &Target::Predicted)?);
        println!(
            "{name}: {:.3} s for {} images",
            t.elapsed().as_secs_f64(),
            shown.len()
        );
    }

    let shared = Normalization {
        shared: true,
        outlier_percentile: 99.0,
        ..Default::default()
    };
    let normed = shared.normalize(&Tensor::f_cat(&all_maps, 0)?)?;
    let names: Vec<String> = methods.iter().map(|(name, _)| name.clone()).collect();
    methods_grid(
        &xs,
        &ms,
        &normed,
        &names,
        &captions,
        "Five gradient methods, |attribution| on one shared scale",
    )?
    .figure()
    .save(out.join("04.png"))?;

    let per_method = all_maps
        .iter()
        .map(|m| shared.normalize(m))
        .collect::<Result<Vec<_>>>()?;
    let normed = Tensor::f_cat(&per_method, 0)?;
    methods_grid(
        &xs,
        &ms,
        &normed,
        &names,
        &captions,
        "The same maps, one scale per method",
    )?
    .figure()
    .save(out.join("05.png"))?;

    let ig_steps = [(steps / 4).max(2), steps, steps * 4];
    let mut gaps: Vec<f64> = Vec::new();
    let mut deltas: Vec<Vec<f64>> = Vec::new();
    for s in ig_steps {
        let ig = IntegratedGradients {
            steps: s,
            ..Default::default()
        };
        let (map, delta) = ig.attribute_with_delta(&trained.model, &xs, &Target::Predicted)?;
        let sums = Vec::<f64>::try_from(map.sum_dim_intlist([1i64, 2, 3].as_slice(), false, Kind::Double))?;
        let delta = Vec::<f64>::try_from(delta.to_kind(Kind::Double))?;
        // sum of attributions = F(x) - F(0) + delta
        gaps = sums.iter().zip(&delta).map(|(s, d)| s - d).collect();
        deltas.push(delta);
    }
    let mut rows = Vec::new();
    for (i, cap) in captions.iter().enumerate() {
        let mut row = vec![cap.clone(), format!("{:.3}", gaps[i])];
        for d in &deltas {
            row.push(format!(
                "{:+.4} ({:.1}%)",
                d[i],
                100.0 * d[i].abs() / gaps[i].abs().max(1e-12)
            ));
        }
        rows.push(row);
    }
    let mut headers = vec!["image".to_string(), "F(x) - F(0)".to_string()];
    headers.extend(ig_steps.iter().map(|s| format!("delta, {s} steps")));
    let _shown = html_table(&headers, &rows)?;

    let m = pick(64, 12) as i64;
    let xs_m = trained.data.test.images.narrow(0, 0, m);
    let ms_m = masks_all.narrow(0, 0, m);
    // Share of each image covered by its object: what a uniform map would put inside.
    let areas = Vec::<f64>::try_from(ms_m.to_kind(Kind::Double).mean_dim(
        [1i64, 2, 3].as_slice(),
        false,
        Kind::Double,
    ))?;
    let mut rows = Vec::new();
    for (name, method) in &methods {
        let t = Instant::now();
        let maps = method.attribute(&trained.model, &xs_m, &Target::Predicted)?;
        let secs = t.elapsed().as_secs_f64();
        let share = mass_inside(&maps, &ms_m)?;
        let above = share.iter().zip(&areas).filter(|(s, a)| s > a).count();
        rows.push(vec![
            name.clone(),
            format!("{:.1}", 1000.0 * secs / m as f64),
            format!("{:.1}%", 100.0 * mean(&share)),
            format!("{above} / {m}"),
        ]);
    }
    rows.push(vec![
        "uniform map (object area)".into(),
        "-".into(),
        format!("{:.1}%", 100.0 * mean(&areas)),
        "-".into(),
    ]);
    let _shown = html_table(
        &[
            "method",
            "ms per image",
            "mass inside object",
            "images above object area",
        ],
        &rows,
    )?;
    println!("wrote {}", out.display());
    Ok(())
}
