//! Trains the default small CNN on the built-in shapes data (or loads it from the cache) and prints
//! its test accuracy and the time per epoch.
//!
//! `cargo run --example train_default` (set `CNN_EXPLAIN_QUICK=1` for the quick-mode run).
use cnn_explain::notebook::trained_default;
use cnn_explain::prelude::*;

fn main() -> cnn_explain::Result<()> {
    let start = std::time::Instant::now();
    let trained = trained_default()?;
    let eval = evaluate(&trained.model, &trained.data.test, 256)?;
    let secs: f64 = trained.history.epochs.iter().map(|e| e.seconds).sum();
    println!(
        "{}: test accuracy {:.2}% after {} epochs; training {:.1} s ({:.1} s/epoch); this run {:.1} s",
        trained.dir.display(),
        100.0 * eval.accuracy,
        trained.history.epochs.len(),
        secs,
        secs / trained.history.epochs.len().max(1) as f64,
        start.elapsed().as_secs_f64()
    );
    Ok(())
}
