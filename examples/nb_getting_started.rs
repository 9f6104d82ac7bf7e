//! The code of `notebooks/00-getting-started.ipynb`, cell by cell: builds a small built-in dataset,
//! shows sample images with their object masks, builds the small CNN from the zoo, lists its layers
//! and runs the (untrained) model on one image. Figures go to `target/nb-getting-started/*.png`.
//!
//! `cargo run --example nb_getting_started` (no training; runs in seconds).
use cnn_explain::data::shapes::{self, ShapesConfig};
use cnn_explain::models::ZooConfig;
use cnn_explain::prelude::*;
use cnn_explain::viz::{html_table, BarChart, Draw, ImageGrid, Png};
use tch::nn;

fn main() -> cnn_explain::Result<()> {
    let out = std::path::Path::new("target/nb-getting-started");
    std::fs::create_dir_all(out).map_err(|e| Error::io(out, e))?;

    // --- cell: the data
    let cfg = ShapesConfig {
        train: 60,
        val: 12,
        test: 12,
        ..Default::default()
    };
    let data = shapes::generate(&cfg)?;
    let names = data.train.class_names.clone();
    println!(
        "train {:?}, val {}, test {} images; classes: {}",
        data.train.images.size(),
        data.val.len(),
        data.test.len(),
        names.join(", ")
    );
    println!("images per class (train): {:?}", data.train.class_counts()?);

    // --- cell figure: one image per class, and its object mask
    let labels = Vec::<i64>::try_from(&data.train.labels)?;
    let mut images = Vec::new();
    let mut titles = Vec::new();
    let mut masks = Vec::new();
    for (k, name) in names.iter().enumerate() {
        if let Some(i) = labels.iter().position(|&y| y == k as i64) {
            images.push(data.train.images.get(i as i64));
            titles.push(name.clone());
            if let Some(m) = &data.train.masks {
                masks.push(m.get(i as i64).expand([3, -1, -1], false));
            }
        }
    }
    let n_shown = images.len();
    images.extend(masks);
    let grid = ImageGrid {
        titles,
        row_labels: vec!["image".into(), "object mask".into()],
        cell: 96,
        title: "One training image per class, and its ground-truth object mask".into(),
        ..ImageGrid::from_tensors(&images, n_shown)?
    };
    let fig = grid.figure();
    fig.save(out.join("samples.png"))?;

    // --- cell: a model from the zoo
    let vs = nn::VarStore::new(default_device());
    let model = ZooConfig::default().build(&vs.root())?;
    let n_params: i64 = vs.trainable_variables().iter().map(|t| t.numel() as i64).sum();
    println!(
        "{} layers, {n_params} trainable parameters, {} classes, on {:?}",
        model.layers().len(),
        model.num_classes(),
        model.device()
    );

    // --- cell table: layers with the shape of their output for one 64x64 image
    let x = data.test.images.narrow(0, 0, 1).to_device(model.device());
    let vars = vs.variables();
    let mut rows = Vec::new();
    let layers = model.layers();
    for layer in layers
        .iter()
        .filter(|l| !layers.iter().any(|m| m.starts_with(&format!("{l}."))))
    {
        let act = model.forward_to(&x, layer)?;
        let prefix = format!("{layer}.");
        let params: i64 = vars
            .iter()
            .filter(|(name, t)| name.starts_with(&prefix) && t.requires_grad())
            .map(|(_, t)| t.numel() as i64)
            .sum();
        rows.push(vec![
            layer.clone(),
            format!("{:?}", act.size()),
            params.to_string(),
        ]);
    }
    let table = html_table(&["layer", "output shape", "parameters"], &rows)?;
    for r in &rows {
        println!("{:<14} {:<18} {}", r[0], r[1], r[2]);
    }
    let _ = table;

    // --- cell figure: the test image
    let truth = data.test.label(0)?;
    println!("test image 0 is a {}", names[truth as usize]);
    // Enlarged 3x (nearest neighbour keeps the pixels sharp).
    let big = data
        .test
        .images
        .narrow(0, 0, 1)
        .upsample_nearest2d([192, 192], None, None);
    let png = Png::from_tensor(&big)?;
    std::fs::write(out.join("image.png"), &png.0).map_err(|e| Error::io(out, e))?;

    // --- cell figure: top-k probabilities of the untrained model
    let probs = cnn_explain::eval::predict_proba(&model, &x, 1)?.get(0);
    let probs = Vec::<f64>::try_from(probs.to_kind(Kind::Double).to_device(Device::Cpu))?;
    let mut chart = BarChart::top_k(&names, &probs, 6)?;
    chart.title = "Untrained small CNN: class probabilities".into();
    chart.highlight = chart.labels.iter().position(|l| *l == names[truth as usize]);
    chart.figure().save(out.join("topk_untrained.png"))?;
    let pmax = probs.iter().copied().fold(0.0, f64::max);
    let pmin = probs.iter().copied().fold(1.0, f64::min);
    println!(
        "untrained probabilities: min {pmin:.3}, max {pmax:.3} (uniform would be {:.3})",
        1.0 / names.len() as f64
    );
    // Over the whole small test set: accuracy of the untrained model.
    let ev = evaluate(&model, &data.test, 64)?;
    println!(
        "untrained accuracy on {} test images: {:.2} (chance: {:.2})",
        data.test.len(),
        ev.accuracy,
        1.0 / names.len() as f64
    );
    println!(
        "predicted classes: {:?}",
        ev.predicted
            .iter()
            .map(|&p| names[p as usize].as_str())
            .collect::<Vec<_>>()
    );
    Ok(())
}
