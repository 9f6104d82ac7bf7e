//! Writes every chart of `cnn_explain::viz` to `target/viz-gallery/*.png` (and one `.svg`), to look at.
//! Run: `cargo run --example viz_gallery`.
use cnn_explain::viz::*;
use tch::{Device, Kind, Tensor};

fn main() -> cnn_explain::Result<()> {
    let dir = std::path::Path::new("target/viz-gallery");
    // A synthetic image and a blob-shaped map.
    let (h, w) = (64i64, 64i64);
    let ys = Tensor::arange(h, (Kind::Float, Device::Cpu))
        .view([h, 1])
        .expand([h, w], false);
    let xs = Tensor::arange(w, (Kind::Float, Device::Cpu))
        .view([1, w])
        .expand([h, w], false);
    let img = Tensor::stack(&[&xs / 64.0, &ys / 64.0, (&xs + &ys) / 128.0], 0);
    let blob = (-((&xs - 40.0).square() + (&ys - 24.0).square()) / 120.0).exp()
        - (-((&xs - 16.0).square() + (&ys - 44.0).square()) / 80.0).exp() * 0.6;
    let maps = blob.view([1, 1, h, w]);
    let abs = Normalization::default().normalize(&maps)?;
    let all = Normalization {
        sign: Sign::All,
        ..Default::default()
    }
    .normalize(&maps)?;
    let mut images = vec![tensor_to_image(&img)?];
    let mut titles = vec!["image".to_string()];
    for (cm, name) in [
        (Colormap::Jet, "jet"),
        (Colormap::Viridis, "viridis"),
        (Colormap::Inferno, "inferno"),
    ] {
        images.push(overlay(&img, &abs, cm, 0.5, false)?);
        titles.push(format!("|map| {name} overlay"));
    }
    images.push(Colormap::RdBu.apply(&all.view([h, w]), -1.0, 1.0)?);
    titles.push("signed map, RdBu".into());
    images.push(overlay(&img, &all, Colormap::RdBu, 0.6, true)?);
    titles.push("a very long title that must be shortened".into());
    let grid = ImageGrid {
        titles,
        row_labels: vec!["correct".into(), "misclassified".into()],
        title: "Image grid with overlays".into(),
        ..ImageGrid::new(images, 3)
    };
    let fig = grid.figure();
    fig.save(dir.join("grid.png"))?;
    fig.save(dir.join("grid.svg"))?;

    let names: Vec<String> = ["circle", "square", "triangle", "star", "cross", "ring"]
        .map(String::from)
        .to_vec();
    let mut top = BarChart::top_k(&names, &[0.05, 0.62, 0.2, 0.08, 0.03, 0.02], 4)?;
    top.title = "Top-4 predictions".into();
    top.highlight = top.labels.iter().position(|l| l == "square");
    top.figure().save(dir.join("topk.png"))?;

    let mut lc = LineChart::new(vec![
        Series::new("train loss", vec![1.7, 1.2, 0.8, 0.55, 0.4, 0.33, 0.29, 0.25]),
        Series::new("val loss", vec![1.6, 1.25, 0.9, 0.7, 0.62, f64::NAN, 0.6, 0.61]),
        Series::new("val accuracy", vec![0.3, 0.5, 0.66, 0.75, 0.8, 0.83, 0.85, 0.86]),
    ]);
    lc.title = "Training curves".into();
    lc.figure().save(dir.join("lines.png"))?;

    let conf: Vec<Vec<f64>> = (0..6)
        .map(|r| {
            (0..6)
                .map(|c| {
                    if r == c {
                        90.0 + r as f64
                    } else {
                        ((r * 7 + c * 3) % 9) as f64
                    }
                })
                .collect()
        })
        .collect();
    let mut cm = MatrixChart::values(conf).labels(names.clone(), names.clone());
    cm.title = "Confusion matrix".into();
    cm.x_desc = "predicted".into();
    cm.y_desc = "true".into();
    if let MatrixCells::Values { colormap, .. } = &mut cm.cells {
        *colormap = Colormap::Inferno;
    }
    cm.figure().save(dir.join("confusion.png"))?;

    // Confusion evolution: 60 images x 20 epochs.
    let (n, e) = (60usize, 20usize);
    let preds: Vec<Vec<Option<usize>>> = (0..n)
        .map(|i| {
            (0..e)
                .map(|t| Some(if t * 3 > i % 40 { i % 6 } else { (i + t) % 6 }))
                .collect()
        })
        .collect();
    let change: Vec<f64> = preds
        .iter()
        .map(|r| r.windows(2).filter(|w| w[0] != w[1]).count() as f64 / (e - 1) as f64)
        .collect();
    let visited: Vec<f64> = preds
        .iter()
        .map(|r| r.iter().collect::<std::collections::BTreeSet<_>>().len() as f64)
        .collect();
    let mut ev = MatrixChart::classes(preds, names.clone()).labels(
        (0..n).map(|i| format!("img {i}")).collect(),
        (1..=e).map(|t| t.to_string()).collect(),
    );
    ev.title = "Predicted class per image and epoch".into();
    ev.x_desc = "epoch".into();
    ev.bars = vec![
        BarColumn::new("change freq.", change),
        BarColumn {
            max: Some(6.0),
            ..BarColumn::new("visited classes", visited)
        },
    ];
    ev.figure().save(dir.join("evolution.png"))?;

    let probs: Vec<Vec<f64>> = (0..n)
        .map(|i| {
            (0..e)
                .map(|t| ((t as f64 + 1.0) / e as f64).powf(1.0 + (i % 5) as f64 * 0.5))
                .collect()
        })
        .collect();
    let mut pm = MatrixChart::values(probs).labels(
        (0..n).map(|i| format!("img {i}")).collect(),
        (1..=e).map(|t| t.to_string()).collect(),
    );
    pm.title = "True-class probability".into();
    pm.x_desc = "epoch".into();
    if let MatrixCells::Values { range, decimals, .. } = &mut pm.cells {
        *range = Some((0.0, 1.0));
        *decimals = 2;
    }
    pm.figure().save(dir.join("probability.png"))?;
    println!("wrote {}", dir.display());
    Ok(())
}
