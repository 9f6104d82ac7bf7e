//! `cnn-explain`: train an image classifier, evaluate it and explain the images that matter, from
//! the command line. Every user error prints one line `error: ...` and exits with status 1 (2 for
//! unparsable arguments, 130 after Ctrl-C).

mod common;
mod evaluate;
mod explain;
#[cfg(feature = "monitor")]
mod monitor;
mod quality;
mod train;

use clap::{Args, Parser, Subcommand};
use std::path::PathBuf;
use std::process::ExitCode;

/// Train image classifiers and explain their decisions (gradient, CAM, occlusion and LIME maps).
#[derive(Parser, Debug)]
#[command(name = "cnn-explain", version)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Train a zoo model on a dataset and write a run folder (run.json, history.json, checkpoints).
    Train(train::TrainArgs),
    /// Accuracy, per-class metrics, confusion matrix and confusion evolution of a trained model.
    Evaluate(evaluate::EvaluateArgs),
    /// Explain selected images with attribution methods: a PNG grid and a JSON per image, index.html.
    Explain(explain::ExplainArgs),
    /// Explanation-quality table of methods: deletion/insertion AUC, pointing games, sparseness, time.
    Quality(quality::QualityArgs),
    /// Combine the outputs of `explain --shard I/N` or `quality --shard I/N` runs into the result of
    /// one unsharded run.
    Merge(explain::MergeArgs),
    /// Serve a live web page of a run folder (curves, confusion, explanations) that can steer its
    /// training: stop, learning rate, penalty, probe images.
    #[cfg(feature = "monitor")]
    Monitor(monitor::MonitorArgs),
}

/// Where a trained model comes from: a run folder, or weights with a dataset and an architecture.
#[derive(Args, Debug, Clone)]
pub struct SourceArgs {
    /// Run folder written by `cnn-explain train`.
    pub run: Option<PathBuf>,
    /// Weights file (.safetensors) to use instead of a run folder (needs --data and --arch).
    #[arg(long)]
    pub weights: Option<PathBuf>,
    /// Dataset when no run folder is given: shapes, cifar10:DIR, cifar100:DIR, cifar100-coarse:DIR, folder:DIR.
    #[arg(long)]
    pub data: Option<String>,
    /// Architecture of --weights (small_cnn, resnet18, resnet34, resnet50, vgg16, alexnet).
    #[arg(long)]
    pub arch: Option<String>,
    #[command(flatten)]
    pub data_opts: common::DataOpts,
    /// Device: cpu, cuda, cuda:N or auto (the first GPU when there is one).
    #[arg(long, default_value = "auto")]
    pub device: String,
}

fn main() -> ExitCode {
    // A bug must still end in one line, not a backtrace.
    std::panic::set_hook(Box::new(|info| {
        let msg = info
            .payload()
            .downcast_ref::<&str>()
            .map(|s| s.to_string())
            .or_else(|| info.payload().downcast_ref::<String>().cloned())
            .unwrap_or_else(|| "unknown panic".into());
        eprintln!("error: internal error (please report): {}", one_line(&msg));
    }));
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            use clap::error::ErrorKind;
            if matches!(e.kind(), ErrorKind::DisplayHelp | ErrorKind::DisplayVersion)
                || matches!(e.kind(), ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand)
            {
                let _ = e.print();
                return ExitCode::from(
                    if e.kind() == ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand {
                        2
                    } else {
                        0
                    },
                );
            }
            let text = e.render().to_string();
            let first = text.lines().next().unwrap_or("error: bad arguments");
            let first = first.strip_prefix("error: ").unwrap_or(first);
            eprintln!("error: {first} (see --help)");
            return ExitCode::from(2);
        }
    };
    // glibc keeps freed memory for the next pass instead of returning it to the kernel (about half
    // of a small CNN's forward time went to page faults without it). A refusal only costs speed.
    if let Err(e) = cnn_explain::runtime::keep_freed_memory() {
        eprintln!("warning: {e}");
    }
    let result = match cli.command {
        Command::Train(a) => train::run(a),
        Command::Evaluate(a) => evaluate::run(a),
        Command::Explain(a) => explain::run(a),
        Command::Quality(a) => quality::run(a),
        Command::Merge(a) if a.dirs.first().is_some_and(|d| quality::is_quality_folder(d)) => {
            quality::merge(&a.dirs, &a.out)
        }
        Command::Merge(a) => explain::merge(a),
        #[cfg(feature = "monitor")]
        Command::Monitor(a) => monitor::run(a),
    };
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {}", one_line(&common::describe(&e)));
            ExitCode::FAILURE
        }
    }
}

/// The first line of a message (libtorch errors carry a C++ backtrace after it).
pub fn one_line(s: &str) -> String {
    s.lines().next().unwrap_or("").trim().to_string()
}
