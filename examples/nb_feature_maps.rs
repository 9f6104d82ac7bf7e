//! Generated from `notebooks/src/feature-maps.txt` by `notebooks/src/spec2example.py`: the code of
//! `notebooks/feature-maps.ipynb`, cell by cell, with each figure saved to `target/nb-feature-maps/NN.png`.
//!
//! `CNN_EXPLAIN_CACHE=/work/main/.cache/models-full cargo run --example nb_feature_maps`
//! (`CNN_EXPLAIN_QUICK=1` for the quick mode).
#![allow(clippy::needless_range_loop)]
use cnn_explain::features::{
    dataset_channel_statistics, feature_maps, first_layer_filters, ActivationMaximization, ChannelScore,
    ChannelSelection, FilterScale, Objective,
};
use cnn_explain::notebook::{pick, trained_default};
use cnn_explain::prelude::*;
use cnn_explain::viz::{html_table, tensor_to_image, Colormap, Draw, ImageGrid, MatrixCells, MatrixChart};

fn main() -> cnn_explain::Result<()> {
    let out = std::path::Path::new("target/nb-feature-maps");
    let trained = trained_default()?;
    let names: Vec<String> = trained.data.test.class_names.clone();
    let eval = evaluate(&trained.model, &trained.data.test, 256)?;
    println!(
        "test accuracy {:.3}; layers {:?}",
        eval.accuracy,
        trained.model.layers()
    );

    let fig = {
        let per = first_layer_filters(&trained.vs, None, FilterScale::PerFilter)?;
        let sym = first_layer_filters(&trained.vs, None, FilterScale::SharedSymmetric)?;
        let norms = Vec::<f32>::try_from(
            per.weights
                .square()
                .sum_dim_intlist(&[1i64, 2, 3][..], false, Kind::Float)
                .sqrt(),
        )?;
        println!(
            "{} {:?}; filter L2 norms from {:.2} to {:.2}",
            per.name,
            per.weights.size(),
            norms.iter().cloned().fold(f32::INFINITY, f32::min),
            norms.iter().cloned().fold(0.0, f32::max)
        );
        // Rows of at most 16 tiles: the per-filter scaling first, then the shared one.
        let cols = per.len().min(16);
        let mut imgs = per.images(1)?;
        imgs.extend(sym.images(1)?);
        let row_labels: Vec<String> = (0..imgs.len().div_ceil(cols))
            .map(|r| {
                let first = (r * cols) % per.len();
                let kind = if r * cols < per.len() {
                    "per filter"
                } else {
                    "shared, 0=grey"
                };
                format!("{kind} {first}-{}", first + cols - 1)
            })
            .collect();
        ImageGrid {
            row_labels,
            title: format!("First-layer filters ({}, 3x3 RGB)", per.name),
            cell: 48,
            ..ImageGrid::new(imgs, cols)
        }
        .figure()
    };
    fig.save(out.join("01.png"))?;

    let layers: [&'static str; 4] = ["relu", "block1", "block2", "block3"];
    let i0: usize = (0..eval.labels.len())
        .find(|&i| eval.labels[i] == 3 && eval.predicted[i] == 3)
        .unwrap_or(0);
    let img0: Tensor = trained.data.test.images.get(i0 as i64);
    let fig = {
        let k = 8;
        let mut imgs = Vec::new();
        let mut titles = Vec::new();
        for layer in layers {
            let fm = feature_maps(&trained.model, &img0, layer, &ChannelSelection::Strongest(k))?;
            let s = fm.maps.size();
            println!(
                "{layer}: {} channels, {}x{} maps; strongest {:?}",
                fm.layer_channels, s[1], s[2], fm.channels
            );
            imgs.push(tensor_to_image(&img0)?);
            titles.push(format!("{} ch, {}x{}", fm.layer_channels, s[1], s[2]));
            imgs.extend(fm.images(1)?);
            titles.extend(
                fm.channels
                    .iter()
                    .zip(&fm.mean_activation)
                    .map(|(c, m)| format!("{c}: {m:.2}")),
            );
        }
        ImageGrid {
            titles,
            row_labels: layers.iter().map(|l| l.to_string()).collect(),
            title: format!(
                "Image #{i0} ({}): the {k} strongest channels of four layers",
                names[eval.labels[i0] as usize]
            ),
            cell: 96,
            ..ImageGrid::new(imgs, k + 1)
        }
        .figure()
    };
    fig.save(out.join("02.png"))?;

    for layer in layers {
        let st = dataset_channel_statistics(&trained.model, &trained.data.test, layer, 256)?;
        let best = st
            .selectivity
            .amax(&[1i64][..], false)
            .mean(Kind::Double)
            .double_value(&[]);
        println!(
            "{layer}: {} channels, mean best selectivity {best:.2}",
            st.num_channels()
        );
    }

    let stats = dataset_channel_statistics(&trained.model, &trained.data.test, "block3", 256)?;
    let top = stats.top_channels_per_class(5, ChannelScore::Selectivity)?;
    let rows: Vec<Vec<String>> = top
        .iter()
        .enumerate()
        .map(|(c, list)| {
            let mut r = vec![names[c].clone(), stats.counts[c].to_string()];
            r.extend(list.iter().map(|(j, s)| format!("{j} ({s:.1})")));
            r
        })
        .collect();
    let _shown = html_table(&["class", "images", "1st", "2nd", "3rd", "4th", "5th"], &rows)?;

    let fig = {
        let mut cols: Vec<i64> = Vec::new();
        for list in &top {
            for &(j, _) in list.iter().take(3) {
                if !cols.contains(&j) {
                    cols.push(j);
                }
            }
        }
        let sel = Vec::<Vec<f64>>::try_from(&stats.selectivity)?;
        let values: Vec<Vec<f64>> = sel
            .iter()
            .map(|row| cols.iter().map(|&j| row[j as usize]).collect())
            .collect();
        let lim = values.iter().flatten().fold(0.0f64, |m, v| m.max(v.abs()));
        let mut chart =
            MatrixChart::values(values).labels(names.clone(), cols.iter().map(|j| j.to_string()).collect());
        if let MatrixCells::Values {
            colormap,
            range,
            decimals,
            ..
        } = &mut chart.cells
        {
            *colormap = Colormap::RdBu;
            *range = Some((-lim, lim));
            *decimals = 1;
        }
        chart.title = "Selectivity of block3 channels per class (std units)".into();
        chart.x_desc = "channel (each class's top 3)".into();
        chart.y_desc = "class".into();
        chart.figure()
    };
    fig.save(out.join("03.png"))?;

    let steps: usize = pick(256, 24);
    let fig = {
        let base = ActivationMaximization {
            steps,
            seed: 0,
            init_std: 0.1,
            ..Default::default()
        };
        let mut objectives: Vec<(Objective, String)> = Vec::new();
        for (c, name) in names.iter().enumerate() {
            objectives.push((Objective::Class(c as i64), name.clone()));
        }
        for (c, list) in top.iter().enumerate() {
            if let Some(&(j, _)) = list.first() {
                objectives.push((
                    Objective::Channel {
                        layer: "block3".into(),
                        channel: j,
                    },
                    format!("ch{j} {}", names[c]),
                ));
            }
        }
        let fm1 = feature_maps(
            &trained.model,
            &img0,
            "block1",
            &ChannelSelection::Strongest(names.len()),
        )?;
        for &j in &fm1.channels {
            objectives.push((
                Objective::Channel {
                    layer: "block1".into(),
                    channel: j,
                },
                format!("ch {j}"),
            ));
        }
        let mut imgs = Vec::new();
        let mut titles = Vec::new();
        for (objective, label) in objectives {
            let r = ActivationMaximization {
                objective,
                ..base.clone()
            }
            .run(&trained.model)?;
            let start = r.trajectory.first().copied().unwrap_or(f64::NAN);
            println!("{label}: objective {start:.2} -> {:.2}", r.final_objective);
            imgs.push(r.to_image(1)?);
            titles.push(format!("{label}: {:.1}", r.final_objective));
        }
        ImageGrid {
            titles,
            row_labels: vec![
                "class logit".into(),
                "block3 channel".into(),
                "block1 channel".into(),
            ],
            title: format!("Activation maximisation ({steps} Adam steps, jitter 4, blur)"),
            cell: 140,
            ..ImageGrid::new(imgs, names.len())
        }
        .figure()
    };
    fig.save(out.join("04.png"))?;
    println!("wrote {}", out.display());
    Ok(())
}
