//! Training throughput of the small CNN: the crate's `train::fit` against the same network, batch
//! and optimiser in PyTorch, measured in the same run (issue 3, "Done when").
//!
//! `cargo bench --bench train_throughput` (`make bench` runs every bench). Set
//! `OMP_WAIT_POLICY=PASSIVE` on shared machines (scripts/env.sh does).
//!
//! Both sides train `Arch::SmallCnn` (6 classes) on random 64x64 images, batch 64, SGD with
//! momentum 0.9 and weight decay 5e-4, with the same number of intra-op threads, and count images
//! per second over `BENCH_BATCHES` batches (default 30) after 5 warm-up batches. The rounds
//! (`BENCH_ROUNDS`, default 3) alternate crate and PyTorch so that changes in the machine's load hit
//! both, and even rounds run the four in reverse order so that none always goes first; the
//! medians and the median of the per-round ratios are printed and written to
//! `target/bench/train_throughput.md` and `.json`. A third column trains the same model with tch's
//! own `nn::Sgd` in a bare loop, which separates the cost of `fit` and its optimiser from libtorch's.
//! `fit` trains the small CNN on channels-last batches (`models::training_layout`: 1.3x on the CPU),
//! and so does the tch loop; PyTorch runs twice per round, as its users run it (contiguous) and
//! with the model and batches in `torch.channels_last`, so the layout's share of the ratio shows.
//!
//! The crate's side calls `runtime::keep_freed_memory()` first, as the README tells users to;
//! `BENCH_PY_KEEP_FREED=1` starts PyTorch with the same glibc settings in its environment.
//!
//! The PyTorch side is `scripts/bench/pytorch_train.py`, run with `BENCH_PYTHON` or else
//! `.venv-ref/bin/python` (made by `scripts/reference-env.sh`; torch 2.13.0). Without it the PyTorch
//! column is skipped. `--quick` / `BENCH_QUICK=1`: one round of 10 batches.

use cnn_explain::io::write_atomic;
use cnn_explain::models::{training_layout, Arch, ZooConfig};
use cnn_explain::prelude::*;
use cnn_explain::rng::Rng;
use cnn_explain::train::{BatchInfo, Callback, Control, Optimizer, Schedule, TrackedSet};
use serde::Serialize;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;
use tch::nn::{self, OptimizerConfig};

const BATCH: usize = 64;
const WARMUP: usize = 5;
const SIZE: i64 = 64;
const CLASSES: i64 = 6;

/// Records when each optimisation step ends.
struct Stamps(Vec<Instant>);

impl Callback for Stamps {
    fn on_batch_end(&mut self, _info: &BatchInfo) -> Result<Control> {
        self.0.push(Instant::now());
        Ok(Control::Continue)
    }
}

fn data(batches: usize) -> Result<Dataset> {
    let n = batches * BATCH;
    let mut rng = Rng::new(0);
    let images = rng.uniform_tensor(&[n as i64, 3, SIZE, SIZE], device());
    let labels: Vec<i64> = (0..n).map(|_| rng.below(CLASSES as u64) as i64).collect();
    let names = (0..CLASSES).map(|c| format!("class{c}")).collect();
    Dataset::new(
        images,
        Tensor::from_slice(&labels).to_device(device()),
        names,
        None,
    )
}

/// The first GPU when there is one, else the CPU (both sides of the comparison use it).
fn device() -> Device {
    Device::cuda_if_available()
}

/// Images per second of `fit` (one epoch over `WARMUP + batches` batches), timed between the end
/// of the last warm-up step and the end of the last step.
fn crate_fit(train: &Dataset, batches: usize) -> Result<f64> {
    let mut vs = nn::VarStore::new(device());
    let model = ZooConfig {
        arch: Arch::SmallCnn,
        num_classes: CLASSES,
        ..Default::default()
    }
    .build(&vs.root())?;
    let cfg = TrainConfig {
        epochs: 1,
        batch_size: BATCH,
        optimizer: Optimizer::Sgd {
            momentum: 0.9,
            weight_decay: 5e-4,
            nesterov: false,
        },
        lr: 0.05,
        schedule: Schedule::Constant,
        tracked: TrackedSet::None,
        verbose: false,
        ..Default::default()
    };
    let mut stamps = Stamps(Vec::new());
    fit(&model, &mut vs, &FitData::new(train), &cfg, &mut [&mut stamps])?;
    rate(&stamps.0, batches)
}

/// The same model trained with tch's `nn::Sgd` in a bare loop (no `fit`, libtorch's optimiser).
fn tch_loop(train: &Dataset, batches: usize) -> Result<f64> {
    let vs = nn::VarStore::new(device());
    let model = ZooConfig {
        arch: Arch::SmallCnn,
        num_classes: CLASSES,
        ..Default::default()
    }
    .build(&vs.root())?;
    let mut opt = nn::Sgd {
        momentum: 0.9,
        dampening: 0.0,
        wd: 5e-4,
        nesterov: false,
    }
    .build(&vs, 0.05)?;
    let perm = Rng::new(0).permutation(train.len());
    let mut stamps = Vec::new();
    for idx in perm.chunks(BATCH) {
        let idx = Tensor::from_slice(idx).to_device(device());
        // The layout `fit` trains in (channels-last for the small CNN), so that this loop differs
        // from `fit` only in the optimiser and the bookkeeping.
        let xs = training_layout(&model, &train.images.f_index_select(0, &idx)?);
        let ys = train.labels.f_index_select(0, &idx)?;
        let logits = model.forward_t(&xs, true);
        let loss = logits.f_cross_entropy_loss::<Tensor>(&ys, None, tch::Reduction::Mean, -100, 0.0)?;
        opt.zero_grad();
        loss.f_backward()?;
        opt.step();
        let _ = loss.f_double_value(&[])?;
        let _ = logits
            .f_argmax(-1, false)?
            .f_eq_tensor(&ys)?
            .f_sum(Kind::Int64)?
            .f_int64_value(&[])?;
        stamps.push(Instant::now());
    }
    rate(&stamps, batches)
}

fn rate(stamps: &[Instant], batches: usize) -> Result<f64> {
    match (stamps.get(WARMUP - 1), stamps.last()) {
        (Some(a), Some(b)) if stamps.len() == WARMUP + batches => {
            Ok((batches * BATCH) as f64 / b.duration_since(*a).as_secs_f64())
        }
        _ => Err(Error::invalid(
            "stamps",
            format!("expected {} steps, saw {}", WARMUP + batches, stamps.len()),
        )),
    }
}

#[derive(Serialize)]
struct PyResult {
    images_per_second: f64,
    torch: String,
    /// Sorted trainable parameter names and their total number of elements.
    parameters: (Vec<String>, i64),
}

/// Runs the PyTorch script; images per second and torch's version.
fn pytorch(
    python: &Path,
    script: &Path,
    threads: i32,
    batches: usize,
    keep_freed: bool,
    channels_last: bool,
) -> Result<PyResult> {
    let env: &[(&str, &str)] = if keep_freed {
        &cnn_explain::runtime::KEEP_FREED_ENV
    } else {
        &[]
    };
    let out = Command::new(python)
        .envs(env.iter().copied())
        .arg(script)
        .args(["--threads", &threads.to_string()])
        .args(["--batches", &batches.to_string()])
        .args(["--warmup", &WARMUP.to_string()])
        .args(["--batch-size", &BATCH.to_string()])
        .args(["--size", &SIZE.to_string()])
        .args(["--classes", &CLASSES.to_string()])
        .args(["--device", if device().is_cuda() { "cuda" } else { "cpu" }])
        .args(channels_last.then_some("--channels-last"))
        .output()
        .map_err(|e| Error::io(python, e))?;
    if !out.status.success() {
        return Err(Error::invalid(
            "pytorch_train.py",
            format!("failed: {}", String::from_utf8_lossy(&out.stderr)),
        ));
    }
    let text = String::from_utf8_lossy(&out.stdout);
    let v: serde_json::Value = serde_json::from_str(text.trim())
        .map_err(|e| Error::invalid("pytorch_train.py output", format!("{e}: {text}")))?;
    Ok(PyResult {
        images_per_second: v["images_per_second"].as_f64().unwrap_or(f64::NAN),
        torch: v["torch"].as_str().unwrap_or("?").to_string(),
        parameters: (
            v["parameters"]
                .as_array()
                .map(|a| a.iter().filter_map(|s| s.as_str().map(String::from)).collect())
                .unwrap_or_default(),
            v["numel"].as_i64().unwrap_or(-1),
        ),
    })
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    match v.len() {
        0 => f64::NAN,
        n if n % 2 == 1 => v[n / 2],
        n => (v[n / 2 - 1] + v[n / 2]) / 2.0,
    }
}

#[derive(Serialize)]
struct Report {
    threads: i32,
    batch: usize,
    image_size: i64,
    batches: usize,
    rounds: usize,
    crate_fit_images_per_second: Vec<f64>,
    tch_sgd_loop_images_per_second: Vec<f64>,
    pytorch_images_per_second: Vec<f64>,
    /// PyTorch with the model and batches in channels-last memory, the layout `fit` trains in.
    pytorch_channels_last_images_per_second: Vec<f64>,
    torch_version: Option<String>,
    crate_over_pytorch: Option<f64>,
    crate_over_pytorch_channels_last: Option<f64>,
}

fn main() -> Result<()> {
    let quick = std::env::args().any(|a| a == "--quick")
        || std::env::var("BENCH_QUICK").is_ok_and(|v| !v.is_empty() && v != "0");
    let env_num = |name: &str, default: usize| {
        std::env::var(name)
            .ok()
            .and_then(|v| v.parse::<usize>().ok())
            .filter(|&v| v > 0)
            .unwrap_or(default)
    };
    let batches = env_num("BENCH_BATCHES", if quick { 10 } else { 30 });
    let rounds = env_num("BENCH_ROUNDS", if quick { 1 } else { 3 });
    if let Some(n) = std::env::var("BENCH_THREADS")
        .ok()
        .and_then(|v| v.parse::<i32>().ok())
    {
        tch::set_num_threads(n);
    }
    let threads = tch::get_num_threads();
    // As the README tells users to; PyTorch keeps glibc's defaults unless `BENCH_PY_KEEP_FREED=1`
    // gives it the same settings through its environment.
    let kept = cnn_explain::runtime::keep_freed_memory()?;
    let py_kept = std::env::var("BENCH_PY_KEEP_FREED").is_ok_and(|v| !v.is_empty() && v != "0");
    let allocator = format!(
        "crate and tch loop {}, PyTorch {}",
        if kept {
            "with runtime::keep_freed_memory()"
        } else {
            "with glibc's defaults"
        },
        if py_kept {
            "with the same settings"
        } else {
            "with glibc's defaults"
        }
    );
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let python = std::env::var_os("BENCH_PYTHON")
        .map(PathBuf::from)
        .unwrap_or_else(|| root.join(".venv-ref/bin/python"));
    let script = root.join("scripts/bench/pytorch_train.py");
    let have_python = python.exists();
    println!(
        "train throughput: small CNN, {SIZE}x{SIZE}, batch {BATCH}, SGD (momentum 0.9, wd 5e-4), {threads} threads, \
         {batches} batches after {WARMUP} warm-up, {rounds} rounds, OMP_WAIT_POLICY={}; allocator: {allocator}",
        std::env::var("OMP_WAIT_POLICY").unwrap_or_else(|_| "(unset)".into())
    );
    if !have_python {
        println!(
            "PyTorch column skipped: no {} (run scripts/reference-env.sh to create .venv-ref, or set BENCH_PYTHON)",
            python.display()
        );
    }

    // The two networks must be the same: same trainable parameter names and sizes.
    let expected = {
        let vs = nn::VarStore::new(device());
        ZooConfig {
            arch: Arch::SmallCnn,
            num_classes: CLASSES,
            ..Default::default()
        }
        .build(&vs.root())?;
        let vars = vs.trainable_variables();
        let mut names: Vec<String> = vs
            .variables()
            .into_iter()
            .filter(|(_, t)| t.requires_grad())
            .map(|(n, _)| n)
            .collect();
        names.sort();
        (names, vars.iter().map(|t| t.numel() as i64).sum::<i64>())
    };
    let train = data(WARMUP + batches)?;
    let (mut fit_r, mut tch_r, mut py_r, mut pycl_r) = (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    let mut torch_version = None;
    let run_python = |channels_last: bool| -> Result<Option<PyResult>> {
        if !have_python {
            return Ok(None);
        }
        let r = pytorch(&python, &script, threads, batches, py_kept, channels_last)?;
        if r.parameters != expected {
            return Err(Error::invalid(
                "scripts/bench/pytorch_train.py",
                format!(
                    "its network differs from Arch::SmallCnn: parameters {:?} vs the crate's {:?}; \
                     update the script after changing the architecture",
                    r.parameters, expected
                ),
            ));
        }
        Ok(Some(r))
    };
    for round in 1..=rounds {
        // Odd rounds run crate, tch, PyTorch, PyTorch channels-last; even rounds the reverse, so
        // that no side always runs first (after the previous round's process) or last.
        let (f, t, r, rcl) = if round % 2 == 1 {
            let f = crate_fit(&train, batches)?;
            let t = tch_loop(&train, batches)?;
            let r = run_python(false)?;
            (f, t, r, run_python(true)?)
        } else {
            let rcl = run_python(true)?;
            let r = run_python(false)?;
            let t = tch_loop(&train, batches)?;
            (crate_fit(&train, batches)?, t, r, rcl)
        };
        if let Some(r) = &r {
            torch_version = Some(r.torch.clone());
        }
        let p = r.map(|r| r.images_per_second);
        let pcl = rcl.map(|r| r.images_per_second);
        let show = |v: Option<f64>| v.map_or("-".into(), |p| format!("{p:.1} img/s"));
        println!(
            "round {round}: crate fit {f:.1} img/s, tch nn::Sgd loop {t:.1} img/s, PyTorch {}, PyTorch channels-last {}",
            show(p),
            show(pcl)
        );
        fit_r.push(f);
        tch_r.push(t);
        py_r.extend(p);
        pycl_r.extend(pcl);
    }
    let (fit_m, tch_m) = (median(fit_r.clone()), median(tch_r.clone()));
    let py_m = (!py_r.is_empty()).then(|| median(py_r.clone()));
    let pycl_m = (!pycl_r.is_empty()).then(|| median(pycl_r.clone()));
    // Each round's crate and PyTorch runs are next to each other in time: the median of the
    // per-round ratios is less exposed to the machine's load than the ratio of the medians.
    let per_round =
        |py: &[f64]| (!py.is_empty()).then(|| median(fit_r.iter().zip(py).map(|(f, p)| f / p).collect()));
    let ratio = per_round(&py_r);
    let ratio_cl = per_round(&pycl_r);
    let md = format!(
        "Training throughput, small CNN {SIZE}x{SIZE}, batch {BATCH}, SGD momentum 0.9 wd 5e-4, {threads} threads, \
         median of {rounds} rounds of {batches} batches (after {WARMUP} warm-up), same run; allocator: {allocator}.\n\n\
         | crate `fit` (img/s) | tch `nn::Sgd` loop (img/s) | PyTorch {} (img/s) | crate / PyTorch (median of per-round ratios) | target | pass | PyTorch channels-last (img/s) | crate / PyTorch channels-last |\n\
         |---|---|---|---|---|---|---|---|\n\
         | {fit_m:.1} | {tch_m:.1} | {} | {} | >= 0.95 | {} | {} | {} |\n\n\
         The crate's `fit` trains the small CNN on channels-last batches (`models::training_layout`), \
         and so does the tch loop; PyTorch as its users run it (contiguous), and with the model and \
         batches in `torch.channels_last`.\n",
        torch_version.as_deref().unwrap_or(""),
        py_m.map_or("-".into(), |p| format!("{p:.1}")),
        ratio.map_or("-".into(), |r| format!("{r:.3}")),
        ratio.map_or("-", |r| if r >= 0.95 { "pass" } else { "FAIL" }),
        pycl_m.map_or("-".into(), |p| format!("{p:.1}")),
        ratio_cl.map_or("-".into(), |r| format!("{r:.3}")),
    );
    let report = Report {
        threads,
        batch: BATCH,
        image_size: SIZE,
        batches,
        rounds,
        crate_fit_images_per_second: fit_r,
        tch_sgd_loop_images_per_second: tch_r,
        pytorch_images_per_second: py_r,
        pytorch_channels_last_images_per_second: pycl_r,
        torch_version,
        crate_over_pytorch: ratio,
        crate_over_pytorch_channels_last: ratio_cl,
    };
    let dir =
        PathBuf::from(std::env::var("CARGO_TARGET_DIR").unwrap_or_else(|_| "target".into())).join("bench");
    std::fs::create_dir_all(&dir).map_err(|e| Error::io(&dir, e))?;
    write_atomic(dir.join("train_throughput.md"), md.as_bytes())?;
    let json = serde_json::to_string_pretty(&report).map_err(|e| Error::invalid("json", e.to_string()))?;
    write_atomic(dir.join("train_throughput.json"), json.as_bytes())?;
    println!(
        "\n{md}\nwritten to {}",
        dir.join("train_throughput.{md,json}").display()
    );
    Ok(())
}
