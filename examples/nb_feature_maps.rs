//! The code of `notebooks/feature-maps.ipynb`, cell by cell: first-layer filters, feature maps of
//! early, middle and late layers, per-class channel statistics and activation maximisation on the
//! default trained small CNN. Saves each figure to `target/nb-feature-maps/*.png` and prints the
//! numbers the notebook's text reads.
//!
//! `CNN_EXPLAIN_CACHE=/work/main/.cache/models-full cargo run --example nb_feature_maps`
//! (`CNN_EXPLAIN_QUICK=1` for the quick mode).
use cnn_explain::features::{
    dataset_channel_statistics, feature_maps, first_layer_filters, ActivationMaximization, ChannelScore,
    ChannelSelection, FilterScale, Objective,
};
use cnn_explain::notebook::{pick, trained_default};
use cnn_explain::prelude::*;
use cnn_explain::viz::{html_table, tensor_to_image, Colormap, Draw, ImageGrid, MatrixCells, MatrixChart};

fn main() -> Result<()> {
    let out = std::path::Path::new("target/nb-feature-maps");

    // --- setup
    let trained = trained_default()?;
    let model = &trained.model;
    let test = &trained.data.test;
    let names = test.class_names.clone();
    let eval = evaluate(model, test, 256)?;
    println!("test accuracy {:.3}; layers {:?}", eval.accuracy, model.layers());

    // --- first-layer filters, two colour scalings
    let per = first_layer_filters(&trained.vs, None, FilterScale::PerFilter)?;
    let sym = first_layer_filters(&trained.vs, None, FilterScale::SharedSymmetric)?;
    println!("{}: {:?}", per.name, per.weights.size());
    // Filter norms: which filters carry weight.
    let norms = Vec::<f32>::try_from(
        per.weights.square().sum_dim_intlist(&[1i64, 2, 3][..], false, Kind::Float).sqrt(),
    )?;
    println!("filter L2 norms: {:?}", norms.iter().map(|v| (v * 100.0).round() / 100.0).collect::<Vec<_>>());
    let mut imgs = per.images(1)?;
    imgs.extend(sym.images(1)?);
    let grid = ImageGrid {
        titles: (0..2 * per.len()).map(|j| format!("{}", j % per.len())).collect(),
        row_labels: vec!["per filter".into(), "shared, 0 = grey".into()],
        title: format!("First-layer filters ({}, 3x3 RGB)", per.name),
        cell: 56,
        ..ImageGrid::new(imgs, per.len())
    };
    grid.figure().save(out.join("filters.png"))?;

    // --- feature maps of early, middle and late layers for one image
    let i0 = (0..test.len()).find(|&i| eval.labels[i] == 3 && eval.predicted[i] == 3).unwrap_or(0);
    let image = test.images.get(i0 as i64);
    println!("image #{i0}: {}", names[eval.labels[i0] as usize]);
    let layers = ["relu", "block1", "block2", "block3"];
    let k = 8;
    let mut imgs = Vec::new();
    let mut titles = Vec::new();
    for layer in layers {
        let fm = feature_maps(model, &image, layer, &ChannelSelection::Strongest(k))?;
        let s = fm.maps.size();
        println!(
            "{layer}: {} channels, {}x{} maps; strongest {:?} (mean {:?})",
            fm.layer_channels,
            s[1],
            s[2],
            fm.channels,
            fm.mean_activation.iter().map(|v| (v * 100.0).round() / 100.0).collect::<Vec<_>>()
        );
        imgs.push(tensor_to_image(&image)?);
        titles.push(format!("{} ch, {}x{}", fm.layer_channels, s[1], s[2]));
        imgs.extend(fm.images(1)?);
        titles.extend(fm.channels.iter().zip(&fm.mean_activation).map(|(c, m)| format!("{c}: {m:.2}")));
    }
    let grid = ImageGrid {
        titles,
        row_labels: layers.iter().map(|l| l.to_string()).collect(),
        title: format!("The {k} strongest channels (by mean activation) of four layers"),
        cell: 96,
        ..ImageGrid::new(imgs, k + 1)
    };
    grid.figure().save(out.join("maps.png"))?;

    // --- channels most associated with each class
    for layer in layers {
        let st = dataset_channel_statistics(model, test, layer, 256)?;
        let best = st.selectivity.amax(&[1i64][..], false);
        println!(
            "{layer}: mean over classes of the best channel's selectivity {:.2}",
            best.mean(Kind::Double).double_value(&[])
        );
    }
    let stats = dataset_channel_statistics(model, test, "block3", 256)?;
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
    for r in &rows {
        println!("{}", r.join(" | "));
    }
    html_table(&["class", "images", "1st", "2nd", "3rd", "4th", "5th"], &rows)?;

    // Heatmap: classes x the union of each class's top-3 channels.
    let mut cols: Vec<i64> = Vec::new();
    for list in &top {
        for &(j, _) in list.iter().take(3) {
            if !cols.contains(&j) {
                cols.push(j);
            }
        }
    }
    let sel = Vec::<Vec<f64>>::try_from(&stats.selectivity)?;
    let values: Vec<Vec<f64>> = sel.iter().map(|row| cols.iter().map(|&j| row[j as usize]).collect()).collect();
    let lim = values.iter().flatten().fold(0.0f64, |m, v| m.max(v.abs()));
    let mut chart = MatrixChart::values(values)
        .labels(names.clone(), cols.iter().map(|j| j.to_string()).collect());
    if let MatrixCells::Values { colormap, range, decimals, .. } = &mut chart.cells {
        *colormap = Colormap::RdBu;
        *range = Some((-lim, lim));
        *decimals = 1;
    }
    chart.title = "Selectivity of block3 channels per class (std units)".into();
    chart.x_desc = "channel (each class's top 3)".into();
    chart.y_desc = "class".into();
    chart.figure().save(out.join("class-channels.png"))?;

    // --- activation maximisation: class logits, each class's top block3 channel, block1 channels
    let steps = pick(256, 24);
    let base = ActivationMaximization { steps, seed: 0, ..Default::default() };
    let mut objectives: Vec<(Objective, String)> = Vec::new();
    for (c, name) in names.iter().enumerate() {
        objectives.push((Objective::Class(c as i64), format!("{name} logit")));
    }
    for (c, list) in top.iter().enumerate() {
        if let Some(&(j, _)) = list.first() {
            objectives.push((
                Objective::Channel { layer: "block3".into(), channel: j },
                format!("b3 ch {j} ({})", names[c]),
            ));
        }
    }
    let fm1 = feature_maps(model, &image, "block1", &ChannelSelection::Strongest(names.len()))?;
    for &j in &fm1.channels {
        objectives.push((Objective::Channel { layer: "block1".into(), channel: j }, format!("b1 ch {j}")));
    }
    let mut imgs = Vec::new();
    let mut titles = Vec::new();
    for (objective, label) in objectives {
        let r = ActivationMaximization { objective, ..base.clone() }.run(model)?;
        let start = r.trajectory.first().copied().unwrap_or(f64::NAN);
        println!("{label}: objective {start:.2} -> {:.2}", r.final_objective);
        imgs.push(r.to_image(1)?);
        titles.push(format!("{label}: {:.1}", r.final_objective));
    }
    let grid = ImageGrid {
        titles,
        row_labels: vec!["class logit".into(), "block3 channel".into(), "block1 channel".into()],
        title: format!("Activation maximisation ({steps} Adam steps, jitter 4, blur)"),
        cell: 128,
        ..ImageGrid::new(imgs, names.len())
    };
    grid.figure().save(out.join("maximization.png"))?;
    println!("wrote {}", out.display());
    Ok(())
}
