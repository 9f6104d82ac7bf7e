//! The code of `notebooks/confusion-evolution.ipynb`, cell by cell: trains (or loads) the default
//! small CNN and draws how the prediction of every test image evolved over the epochs (after
//! InstanceFlow, Pühringer et al. 2020), the training curves, the final confusion matrix and
//! per-class metrics, the true-class probability per image and epoch, and the hardest images.
//! Figures go to `target/nb-confusion-evolution/*.png`; the numbers the notebook's text interprets
//! are printed.
//!
//! `CNN_EXPLAIN_CACHE=/work/main/.cache/models-full cargo run --example nb_confusion_evolution`
//! (set `CNN_EXPLAIN_QUICK=1` for the quick-mode run).
use cnn_explain::eval::{evolution, most_unstable, SampleEvolution};
use cnn_explain::notebook::{pick, trained_default};
use cnn_explain::prelude::*;
use cnn_explain::viz::{
    html_table, BarColumn, Colormap, Draw, ImageGrid, LineChart, MatrixCells, MatrixChart, Png, Series,
};

/// Tracked-set indices ordered hardest first: most often misclassified, then most often changed,
/// then most classes visited, then lowest final true-class probability.
fn difficulty_order(ev: &[SampleEvolution], probs: &[Vec<f32>]) -> Vec<usize> {
    let last = |i: usize| probs.get(i).and_then(|p| p.last()).copied().unwrap_or(0.0);
    let mut order: Vec<usize> = (0..ev.len()).collect();
    order.sort_by(|&a, &b| {
        ev[b]
            .misclassification_rate
            .total_cmp(&ev[a].misclassification_rate)
            .then(ev[b].change_frequency.total_cmp(&ev[a].change_frequency))
            .then(ev[b].visited_classes.cmp(&ev[a].visited_classes))
            .then(last(a).total_cmp(&last(b)))
            .then(a.cmp(&b))
    });
    order
}

/// The predicted-class matrix of the images `rows`: a first column with the true class, then one
/// column per epoch.
fn class_rows(rows: &[usize], preds: &[Vec<i64>], labels: &[i64]) -> Vec<Vec<Option<usize>>> {
    rows.iter()
        .map(|&i| {
            let mut r = vec![labels.get(i).map(|&y| y as usize)];
            r.extend(preds[i].iter().map(|&p| Some(p as usize)));
            r
        })
        .collect()
}

/// The prediction history of one image as runs, e.g. `square→star→square`, wrapped into lines of
/// at most `width` characters.
fn history_text(preds: &[i64], names: &[String], width: usize) -> String {
    let mut runs: Vec<&str> = Vec::new();
    let mut prev = None;
    for &p in preds {
        if prev != Some(p) {
            runs.push(names.get(p as usize).map_or("?", |s| s.as_str()));
            prev = Some(p);
        }
    }
    let mut lines = vec![String::new()];
    for (k, r) in runs.iter().enumerate() {
        let piece = if k == 0 { r.to_string() } else { format!("→{r}") };
        let cur = lines.last_mut().map_or(0, |l| l.chars().count());
        if cur > 0 && cur + piece.chars().count() > width {
            lines.push(piece);
        } else if let Some(l) = lines.last_mut() {
            l.push_str(&piece);
        }
    }
    lines.join("\n")
}

fn main() -> cnn_explain::Result<()> {
    let out = std::path::Path::new("target/nb-confusion-evolution");
    std::fs::create_dir_all(out).map_err(|e| Error::io(out, e))?;

    // --- cell: train or load
    let t = trained_default()?;
    let h = t.history.clone();
    let names = h.class_names.clone();
    let epochs = h.epochs.len();
    let train_secs: f64 = h.epochs.iter().map(|e| e.seconds).sum();
    let test_eval = evaluate(&t.model, &t.data.test, 256)?;
    println!(
        "{} epochs, training {:.0} s ({:.1} s per epoch); {} train / {} val / {} test images",
        epochs,
        train_secs,
        train_secs / epochs.max(1) as f64,
        t.data.train.len(),
        t.data.val.len(),
        t.data.test.len()
    );
    println!(
        "final test accuracy {:.1}% (loss {:.3})",
        100.0 * test_eval.accuracy,
        test_eval.loss
    );

    // --- cell: per-image evolution statistics
    let preds = h.tracked_predictions()?;
    let probs = h.tracked_true_probs()?;
    let labels = h.tracked_labels.clone();
    let ev = evolution(&h)?;
    let order = difficulty_order(&ev, &probs);
    let n = ev.len();
    let never_wrong = ev.iter().filter(|e| e.misclassification_rate == 0.0).count();
    let wrong_at_end = (0..n).filter(|&i| preds[i].last() != labels.get(i)).count();
    let flippers = ev.iter().filter(|e| e.visited_classes >= 3).count();
    // The epoch from which each image's prediction no longer changes (1 = never changed).
    let settle: Vec<usize> = preds
        .iter()
        .map(|p| p.windows(2).rposition(|w| w[0] != w[1]).map_or(1, |k| k + 2))
        .collect();
    let changed_per_epoch: Vec<f64> = (0..epochs)
        .map(|e| {
            if e == 0 {
                f64::NAN
            } else {
                preds.iter().filter(|p| p[e] != p[e - 1]).count() as f64 / n as f64
            }
        })
        .collect();
    let settled_by: Vec<f64> = (1..=epochs)
        .map(|e| settle.iter().filter(|&&s| s <= e).count() as f64 / n as f64)
        .collect();
    println!(
        "{n} tracked test images: {never_wrong} never misclassified, {wrong_at_end} wrong at the last epoch, {flippers} visited 3+ classes"
    );
    println!(
        "share of predictions changed from the previous epoch: {}",
        changed_per_epoch
            .iter()
            .skip(1)
            .map(|v| format!("{v:.2}"))
            .collect::<Vec<_>>()
            .join(" ")
    );
    println!(
        "share of images whose prediction is final from epoch e on: {}",
        settled_by
            .iter()
            .map(|v| format!("{v:.2}"))
            .collect::<Vec<_>>()
            .join(" ")
    );
    let unstable = most_unstable(&h, 5)?;
    println!(
        "most unstable: {}",
        unstable
            .iter()
            .map(|&i| format!(
                "#{i} ({}; change freq {:.2}, {} classes)",
                names[labels[i] as usize], ev[i].change_frequency, ev[i].visited_classes
            ))
            .collect::<Vec<_>>()
            .join(", ")
    );

    // --- cell figure: the hardest images' predictions per epoch, with bars
    let k = pick(60, 40).min(n);
    let hardest: Vec<usize> = order.iter().copied().take(k).collect();
    let mut cols = vec!["true".to_string()];
    cols.extend((1..=epochs).map(|e| e.to_string()));
    let row_names: Vec<String> = hardest
        .iter()
        .map(|&i| format!("#{i} {}", names[labels[i] as usize]))
        .collect();
    let mut flow = MatrixChart::classes(class_rows(&hardest, &preds, &labels), names.clone())
        .labels(row_names.clone(), cols.clone());
    flow.title = format!("Predictions of the {k} hardest of {n} test images");
    flow.x_desc = "epoch".into();
    flow.y_desc = "image".into();
    flow.cell_width = 30;
    flow.cell_height = 12;
    flow.bars = vec![
        BarColumn {
            color: [90, 90, 90],
            ..BarColumn::new(
                "change freq.",
                hardest.iter().map(|&i| ev[i].change_frequency).collect(),
            )
        },
        BarColumn {
            max: Some(names.len() as f64),
            color: [70, 110, 170],
            ..BarColumn::new(
                "visited classes",
                hardest.iter().map(|&i| ev[i].visited_classes as f64).collect(),
            )
        },
        BarColumn {
            color: [200, 70, 60],
            ..BarColumn::new(
                "misclass. rate",
                hardest.iter().map(|&i| ev[i].misclassification_rate).collect(),
            )
        },
    ];
    let fig = flow.figure();
    fig.save(out.join("flow_hardest.png"))?;

    // --- cell figure: overview of every test image (one pixel row each), as a PNG
    let mut overview = MatrixChart::classes(class_rows(&order, &preds, &labels), names.clone())
        .labels(Vec::new(), cols.clone());
    overview.title = format!("All {n} test images");
    overview.x_desc = "epoch".into();
    overview.cell_width = 30;
    overview.cell_height = if n > 400 { 1 } else { 2 };
    overview.bars = vec![
        BarColumn::new(
            "change freq.",
            order.iter().map(|&i| ev[i].change_frequency).collect(),
        ),
        BarColumn {
            color: [200, 70, 60],
            ..BarColumn::new(
                "misclass. rate",
                order.iter().map(|&i| ev[i].misclassification_rate).collect(),
            )
        },
    ];
    let png = Png(overview.figure().to_png_bytes()?);
    std::fs::write(out.join("flow_all.png"), &png.0).map_err(|e| Error::io(out, e))?;

    // --- cell figure: loss curves
    let mut loss = LineChart::new(vec![
        Series::new("train loss", h.train_losses()),
        Series::new(
            "val loss",
            h.val_losses().iter().map(|v| v.unwrap_or(f64::NAN)).collect(),
        ),
        Series::new(
            "test loss",
            h.epochs.iter().map(|e| e.test_loss.unwrap_or(f64::NAN)).collect(),
        ),
    ]);
    loss.title = "Loss per epoch".into();
    loss.y_desc = "cross-entropy".into();
    loss.figure().save(out.join("loss.png"))?;

    // --- cell figure: accuracy curves and how many predictions changed
    let mut acc = LineChart::new(vec![
        Series::new(
            "train accuracy",
            h.epochs.iter().map(|e| e.train_accuracy).collect(),
        ),
        Series::new(
            "val accuracy",
            h.epochs
                .iter()
                .map(|e| e.val_accuracy.unwrap_or(f64::NAN))
                .collect(),
        ),
        Series::new(
            "test accuracy",
            h.epochs
                .iter()
                .map(|e| e.test_accuracy.unwrap_or(f64::NAN))
                .collect(),
        ),
        Series::new("test predictions changed", changed_per_epoch.clone()),
    ]);
    acc.title = "Accuracy, and share of test predictions that changed".into();
    acc.y_range = Some((0.0, 1.0));
    acc.figure().save(out.join("accuracy.png"))?;
    for e in &h.epochs {
        println!(
            "epoch {:>2}: lr {:.4} train loss {:.3} acc {:.3} | val loss {:.3} acc {:.3} | test acc {:.3} | {:.1} s",
            e.epoch,
            e.lr,
            e.train_loss,
            e.train_accuracy,
            e.val_loss.unwrap_or(f64::NAN),
            e.val_accuracy.unwrap_or(f64::NAN),
            e.test_accuracy.unwrap_or(f64::NAN),
            e.seconds
        );
    }

    // --- cell figure: final confusion matrix
    let cm = test_eval.confusion.clone();
    let counts: Vec<Vec<f64>> = cm
        .counts
        .iter()
        .map(|r| r.iter().map(|&c| c as f64).collect())
        .collect();
    let mut cmc = MatrixChart::values(counts).labels(names.clone(), names.clone());
    cmc.title = "Confusion matrix on the test set (final model)".into();
    cmc.x_desc = "predicted class".into();
    cmc.y_desc = "true class".into();
    if let MatrixCells::Values { colormap, .. } = &mut cmc.cells {
        *colormap = Colormap::Viridis;
    }
    cmc.figure().save(out.join("confusion.png"))?;
    let mut pairs: Vec<(u64, usize, usize)> = Vec::new();
    for (a, row) in cm.counts.iter().enumerate() {
        for (b, &c) in row.iter().enumerate() {
            if a != b && c > 0 {
                pairs.push((c, a, b));
            }
        }
    }
    pairs.sort_by_key(|p| std::cmp::Reverse(p.0));
    println!(
        "most frequent confusions (true → predicted): {}",
        pairs
            .iter()
            .take(6)
            .map(|(c, a, b)| format!("{}→{} {c}", names[*a], names[*b]))
            .collect::<Vec<_>>()
            .join(", ")
    );

    // --- cell table: per-class metrics
    let mut rows: Vec<Vec<String>> = cm
        .per_class()
        .iter()
        .zip(&names)
        .map(|(m, name)| {
            vec![
                name.clone(),
                format!("{:.3}", m.precision),
                format!("{:.3}", m.recall),
                format!("{:.3}", m.f1),
                m.support.to_string(),
            ]
        })
        .collect();
    let avg = cm.macro_average();
    rows.push(vec![
        "macro average".into(),
        format!("{:.3}", avg.precision),
        format!("{:.3}", avg.recall),
        format!("{:.3}", avg.f1),
        avg.support.to_string(),
    ]);
    let table = html_table(&["class", "precision", "recall", "F1", "support"], &rows)?;
    let _ = table;
    for r in &rows {
        println!("{}", r.join("\t"));
    }

    // --- cell figure: true-class probability per image and epoch (same rows)
    let pv: Vec<Vec<f64>> = hardest
        .iter()
        .map(|&i| probs[i].iter().map(|&p| p as f64).collect())
        .collect();
    let mut pchart =
        MatrixChart::values(pv).labels(row_names.clone(), (1..=epochs).map(|e| e.to_string()).collect());
    pchart.title = "True-class probability".into();
    pchart.x_desc = "epoch".into();
    pchart.y_desc = "image".into();
    pchart.cell_width = 30;
    pchart.cell_height = 12;
    if let MatrixCells::Values {
        colormap,
        range,
        annotate,
        ..
    } = &mut pchart.cells
    {
        *colormap = Colormap::Viridis;
        *range = Some((0.0, 1.0));
        *annotate = false;
    }
    pchart.figure().save(out.join("true_prob.png"))?;
    let mean_first = probs.iter().map(|p| p[0] as f64).sum::<f64>() / n as f64;
    let mean_last = probs.iter().map(|p| p[epochs - 1] as f64).sum::<f64>() / n as f64;
    let low_last = probs.iter().filter(|p| p[epochs - 1] < 0.5).count();
    println!(
        "mean true-class probability: epoch 1 {mean_first:.2}, last epoch {mean_last:.2}; {low_last} images below 0.5 at the end"
    );

    // --- cell figure: thumbnails of the hardest images with their history
    let m = 12.min(n);
    let thumbs: Vec<Tensor> = order
        .iter()
        .take(m)
        .map(|&i| t.data.test.images.get(i as i64))
        .collect();
    let titles: Vec<String> = order
        .iter()
        .take(m)
        .map(|&i| {
            format!(
                "#{i} true: {}\n{}",
                names[labels[i] as usize],
                history_text(&preds[i], &names, 20)
            )
        })
        .collect();
    let grid = ImageGrid {
        titles: titles.clone(),
        cell: 150,
        title: "The hardest test images and their predictions over the epochs".into(),
        ..ImageGrid::from_tensors(&thumbs, 6)?
    };
    grid.figure().save(out.join("hardest.png"))?;
    for tt in &titles {
        println!("{}", tt.replace('\n', " | "));
    }
    Ok(())
}
