//! `cnn-explain evaluate`: accuracy, per-class metrics, confusion matrix and confusion evolution.

use crate::common::{self, write_json};
use crate::SourceArgs;
use clap::Args;
use cnn_explain::eval::{evaluate, evolution, most_unstable, ClassMetrics};
use cnn_explain::train::History;
use cnn_explain::viz::{BarColumn, Draw, LineChart, MatrixChart, Series};
use cnn_explain::{Error, Result};
use serde::Serialize;
use std::path::PathBuf;
use std::process::ExitCode;

/// `format` of `metrics.json`.
pub const METRICS_FORMAT: &str = "cnn-explain-evaluation";
/// `format` of `confusion.json`.
pub const CONFUSION_FORMAT: &str = "cnn-explain-confusion";
pub const VERSION: u32 = 1;

#[derive(Args, Debug)]
pub struct EvaluateArgs {
    #[command(flatten)]
    pub source: SourceArgs,
    /// Split to evaluate: test, val or train.
    #[arg(long, default_value = "test")]
    pub split: String,
    /// Output folder (default: RUN/eval).
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// Images per forward pass.
    #[arg(long, default_value_t = 64)]
    pub batch: usize,
    /// Rows (most unstable tracked images) of the confusion-evolution figure.
    #[arg(long, default_value_t = 40)]
    pub evolution_rows: usize,
}

#[derive(Serialize)]
struct ClassRow {
    class: usize,
    name: String,
    #[serde(flatten)]
    metrics: ClassMetrics,
}

#[derive(Serialize)]
struct Metrics {
    format: &'static str,
    version: u32,
    weights: String,
    split: String,
    images: usize,
    accuracy: f64,
    loss: f64,
    per_class: Vec<ClassRow>,
    macro_average: ClassMetrics,
    confusion: Confusion,
}

#[derive(Serialize)]
struct Confusion {
    format: &'static str,
    version: u32,
    class_names: Vec<String>,
    /// `counts[true][predicted]`.
    counts: Vec<Vec<u64>>,
}

pub fn run(a: EvaluateArgs) -> Result<ExitCode> {
    let loaded = common::load_source(&a.source)?;
    let out = match (&a.out, &loaded.run_dir) {
        (Some(o), _) => o.clone(),
        (None, Some(r)) => r.join("eval"),
        (None, None) => return Err(Error::invalid("out", "give the output folder with --out DIR")),
    };
    let data = common::split(&loaded.splits, &a.split)?;
    let ev = evaluate(&loaded.model, data, a.batch)?;
    let cm = &ev.confusion;
    let per_class: Vec<ClassRow> = cm
        .per_class()
        .into_iter()
        .enumerate()
        .map(|(i, m)| ClassRow {
            class: i,
            name: cm.class_names[i].clone(),
            metrics: m,
        })
        .collect();
    let confusion = Confusion {
        format: CONFUSION_FORMAT,
        version: VERSION,
        class_names: cm.class_names.clone(),
        counts: cm.counts.clone(),
    };
    std::fs::create_dir_all(&out).map_err(|e| Error::io(&out, e))?;
    write_json(&out.join("confusion.json"), &confusion)?;
    let metrics = Metrics {
        format: METRICS_FORMAT,
        version: VERSION,
        weights: loaded.weights.display().to_string(),
        split: a.split.clone(),
        images: data.len(),
        accuracy: ev.accuracy,
        loss: ev.loss,
        macro_average: cm.macro_average(),
        per_class,
        confusion,
    };
    write_json(&out.join("metrics.json"), &metrics)?;

    let counts: Vec<Vec<f64>> = cm
        .counts
        .iter()
        .map(|r| r.iter().map(|&c| c as f64).collect())
        .collect();
    let mut chart = MatrixChart::values(counts).labels(cm.class_names.clone(), cm.class_names.clone());
    chart.title = format!(
        "confusion matrix ({} split, accuracy {:.1}%)",
        a.split,
        100.0 * ev.accuracy
    );
    chart.x_desc = "predicted".into();
    chart.y_desc = "true class".into();
    chart.figure().save(out.join("confusion.png"))?;

    let mut written = vec!["metrics.json", "confusion.json", "confusion.png"];
    if let Some(dir) = &loaded.run_dir {
        let history = History::load(dir.join(common::HISTORY_FILE))?;
        if !history.epochs.is_empty() {
            curves(&history).figure().save(out.join("curves.png"))?;
            written.push("curves.png");
        }
        if a.split == "test" && !history.tracked_labels.is_empty() && !history.epochs.is_empty() {
            evolution_chart(&history, a.evolution_rows)?
                .figure()
                .save(out.join("evolution.png"))?;
            written.push("evolution.png");
        }
    }

    println!(
        "{} split: {} images, accuracy {:.2}%, loss {:.4}",
        a.split,
        data.len(),
        100.0 * ev.accuracy,
        ev.loss
    );
    println!(
        "{:<16} {:>9} {:>9} {:>9} {:>8}",
        "class", "precision", "recall", "f1", "support"
    );
    for r in &metrics.per_class {
        println!(
            "{:<16} {:>9.3} {:>9.3} {:>9.3} {:>8}",
            r.name, r.metrics.precision, r.metrics.recall, r.metrics.f1, r.metrics.support
        );
    }
    let m = metrics.macro_average;
    println!(
        "{:<16} {:>9.3} {:>9.3} {:>9.3} {:>8}",
        "macro average", m.precision, m.recall, m.f1, m.support
    );
    println!("wrote {} to {}", written.join(", "), out.display());
    Ok(ExitCode::SUCCESS)
}

fn curves(h: &History) -> LineChart {
    let mut series = vec![
        Series::new("train loss", h.train_losses()),
        Series::new(
            "train accuracy",
            h.epochs.iter().map(|e| e.train_accuracy).collect(),
        ),
    ];
    if h.epochs.iter().all(|e| e.val_loss.is_some()) {
        series.push(Series::new(
            "val loss",
            h.epochs.iter().map(|e| e.val_loss.unwrap_or(f64::NAN)).collect(),
        ));
        series.push(Series::new(
            "val accuracy",
            h.epochs
                .iter()
                .map(|e| e.val_accuracy.unwrap_or(f64::NAN))
                .collect(),
        ));
    }
    if h.epochs.iter().all(|e| e.test_accuracy.is_some()) {
        series.push(Series::new(
            "test accuracy",
            h.epochs
                .iter()
                .map(|e| e.test_accuracy.unwrap_or(f64::NAN))
                .collect(),
        ));
    }
    let mut chart = LineChart::new(series);
    chart.x = h.epochs.iter().map(|e| e.epoch as f64).collect();
    chart.title = "training curves".into();
    chart
}

/// Predicted class per epoch of the most unstable tracked images (InstanceFlow's per-image view),
/// with their change frequency and misclassification rate as bars.
fn evolution_chart(h: &History, rows: usize) -> Result<MatrixChart> {
    let preds = h.tracked_predictions()?;
    let stats = evolution(h)?;
    let pick = most_unstable(h, rows.max(1))?;
    let classes: Vec<Vec<Option<usize>>> = pick
        .iter()
        .map(|&i| preds[i].iter().map(|&c| usize::try_from(c).ok()).collect())
        .collect();
    let row_labels: Vec<String> = pick
        .iter()
        .map(|&i| {
            let y = h.tracked_labels[i];
            let name = h.class_names.get(y as usize).cloned().unwrap_or_default();
            format!("#{i} {name}")
        })
        .collect();
    let col_labels: Vec<String> = h.epochs.iter().map(|e| e.epoch.to_string()).collect();
    let mut chart = MatrixChart::classes(classes, h.class_names.clone()).labels(row_labels, col_labels);
    chart.title = "confusion evolution (most unstable test images)".into();
    chart.x_desc = "epoch".into();
    chart.y_desc = "image, true class".into();
    chart.bars = vec![
        BarColumn::new(
            "changes",
            pick.iter().map(|&i| stats[i].change_frequency).collect(),
        ),
        BarColumn::new(
            "wrong",
            pick.iter().map(|&i| stats[i].misclassification_rate).collect(),
        ),
    ];
    Ok(chart)
}
