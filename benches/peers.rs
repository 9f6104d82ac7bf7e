//! The crate against the Python tools people use today (Captum, pytorch-grad-cam, torchcam, lime,
//! plain PyTorch), on the same machine, the same weights, inputs, targets and thread count (issue 9).
//!
//! Run everything with `make bench-peers` (or `scripts/bench-peers.sh`): it makes the reference
//! environment if missing, runs this bench, then `scripts/bench/peers.py`, then this bench again with
//! `--report`, and writes `target/bench-peers/peers.md` and `peers.json`.
//!
//! Phases (arguments after `--`):
//! - `--crate` (or `PEERS_WORK` set, as the script does): times the crate's methods and exports the weights, inputs, targets and maps into the
//!   work folder (`target/bench-peers/work/`, see `peers/export.rs` for the files);
//! - `--report`: reads the crate's and the peers' results, checks every pair of maps with
//!   `cnn_explain::attribution::compare` and writes the table.
//!
//! Environment: `BENCH_THREADS` (default 2), `PEERS_REPS` (timed runs, default 5), `PEERS_QUICK=1`
//! (the small CNN only, 2 timed runs: to check the pipeline), `PEERS_FULL=1` (Score-CAM, occlusion
//! and LIME on the ResNets too), `PEERS_RESNET50=1` (adds ResNet-50), `PEERS_WORK` (the work folder).
//!
//! Cases: the small CNN at 64x64 (layer `block3`) and ResNet-18 at 224x224 (`layer4`), batch 1 and
//! 16, random weights (seed 0), smooth random images (seed 1); every method runs on the crate's
//! predicted classes, passed to both sides explicitly. The slow methods (SmoothGrad, Integrated
//! Gradients, Score-CAM, occlusion, LIME) run at batch 1 only, and Score-CAM, occlusion and LIME on
//! the small CNN only unless `PEERS_FULL=1`, to keep the whole run under 25 minutes on 2 shared
//! cores.

#[path = "peers/export.rs"]
mod export;

use cnn_explain::attribution::cam::{GradCam, GradCamPlusPlus, LayerCam, ScoreCam};
use cnn_explain::attribution::gradient::{IntegratedGradients, Saliency};
use cnn_explain::attribution::lime::Lime;
use cnn_explain::attribution::noise::NoiseTunnel;
use cnn_explain::attribution::occlusion::{Occlusion, OcclusionBaseline, Score};
use cnn_explain::data::shapes::{generate, ShapesConfig};
use cnn_explain::models::{build, weights, Arch, Staged};
use cnn_explain::prelude::*;
use cnn_explain::rng::Rng;
use cnn_explain::train::{Optimizer, Schedule, TrackedSet};
use export::*;
use std::path::Path;
use std::time::Instant;
use tch::nn;

const SETTINGS: &[&str] = &[
    "saliency: |d score / d input| (Captum Saliency, abs=True)",
    "smoothgrad: 25 samples, sigma 0.15 x (max - min) of the input, 25 images per pass",
    "ig: 50 steps, zero baseline, trapezoid rule, 50 images per pass",
    "gradcam, gradcampp, layercam: the CAM layer (block3 / layer4), upsampled bilinearly, min-max normalised",
    "scorecam: 32 masked images per pass",
    "occlusion: window 16x16, stride 8, baseline 0, softmax probability, 64 images per pass",
    "lime: 1,000 samples, SLIC 50 segments compactness 10, mean-colour fill, kernel width 0.25, ridge 1, probability, 64 per pass",
    "train_epoch: small CNN, built-in shapes (1,024 images, 64x64), batch 64, SGD lr 0.05 momentum 0.9 wd 5e-4",
];

const TRAIN_IMAGES: usize = 1024;

/// Runs `f` `warm` times untimed then `reps` times timed; the times and the last output.
fn timed(warm: usize, reps: usize, mut f: impl FnMut() -> Result<Tensor>) -> Result<(Vec<f64>, Tensor)> {
    for _ in 0..warm {
        let _ = f()?;
    }
    let mut times = Vec::with_capacity(reps);
    let mut last = None;
    for _ in 0..reps {
        let start = Instant::now();
        let out = f()?;
        times.push(start.elapsed().as_secs_f64());
        last = Some(out);
    }
    last.map(|l| (times, l))
        .ok_or_else(|| Error::invalid("reps", "must be at least 1"))
}

/// Forward + backward to the input of the target scores: the floor of gradient methods.
fn floor(model: &dyn Model, xs: &Tensor, classes: &Tensor) -> Result<Tensor> {
    tch::with_grad(|| {
        let x = xs.detach().set_requires_grad(true);
        let logits = model.forward_t(&x, false);
        let score = logits.gather(1, &classes.unsqueeze(1), false).sum(Kind::Float);
        let mut g = Tensor::f_run_backward(&[score], &[&x], false, false)?;
        g.pop().ok_or_else(|| Error::invalid("model", "no gradient"))
    })
}

struct Case<'a> {
    model: &'a Staged,
    name: &'a str,
    layer: &'a str,
    batch: i64,
    xs: Tensor,
    classes: Tensor,
}

struct Runner {
    warm: usize,
    reps: usize,
    rows: Vec<TimedRow>,
}

impl Runner {
    /// Times one method on a case; keeps its map under `method` in `maps`.
    fn run(
        &mut self,
        case: &Case,
        method: &str,
        maps: &mut Vec<(String, Tensor)>,
        f: impl FnMut() -> Result<Tensor>,
    ) -> Result<()> {
        let (warm, reps) = (self.warm, self.reps);
        let (times, map) = timed(warm, reps, f)?;
        let row = TimedRow {
            model: case.name.to_string(),
            batch: case.batch,
            method: method.to_string(),
            who: "crate".into(),
            times,
            images: case.batch,
            note: String::new(),
        };
        let (m, lo, hi) = row.per_image();
        println!(
            "{:10} b{:<2} {:11} {:>10.5} s/img [{:.5}-{:.5}]  load {}",
            case.name,
            case.batch,
            method,
            m,
            lo,
            hi,
            load_average()
        );
        self.rows.push(row);
        maps.push((method.to_string(), map.detach().to_kind(Kind::Float)));
        Ok(())
    }
}

fn bench_case(case: &Case, slow: &[&str], runner: &mut Runner, dir: &Path) -> Result<CaseInfo> {
    let (model, xs) = (case.model as &dyn Model, &case.xs);
    let target = Target::PerSample(Vec::<i64>::try_from(&case.classes)?);
    let mut maps: Vec<(String, Tensor)> = Vec::new();

    runner.run(case, "forward", &mut maps, || tch::no_grad(|| model.logits(xs)))?;
    runner.run(case, "floor", &mut maps, || floor(model, xs, &case.classes))?;
    let saliency = Saliency::default();
    runner.run(case, "saliency", &mut maps, || {
        saliency.attribute(model, xs, &target)
    })?;
    if slow.contains(&"smoothgrad") {
        let sg = NoiseTunnel::smooth(Saliency::default());
        runner.run(case, "smoothgrad", &mut maps, || sg.attribute(model, xs, &target))?;
    }
    if slow.contains(&"ig") {
        let ig = IntegratedGradients::default();
        runner.run(case, "ig", &mut maps, || ig.attribute(model, xs, &target))?;
    }
    let layer = case.layer;
    let gc = GradCam::new(layer);
    runner.run(case, "gradcam", &mut maps, || gc.attribute(model, xs, &target))?;
    let gcpp = GradCamPlusPlus::new(layer);
    runner.run(case, "gradcampp", &mut maps, || {
        gcpp.attribute(model, xs, &target)
    })?;
    let lc = LayerCam::new(layer);
    runner.run(case, "layercam", &mut maps, || lc.attribute(model, xs, &target))?;
    if slow.contains(&"scorecam") {
        let sc = ScoreCam::new(layer);
        runner.run(case, "scorecam", &mut maps, || sc.attribute(model, xs, &target))?;
        // pytorch-grad-cam makes its masks the other way round: the crate's option for it, untimed.
        let mut sc_pgc = ScoreCam::new(layer);
        sc_pgc.weights.pytorch_grad_cam_masks = true;
        maps.push((
            "scorecam@pytorch-grad-cam".into(),
            sc_pgc.attribute(model, xs, &target)?,
        ));
    }
    if slow.contains(&"occlusion") {
        let occ = Occlusion {
            window: (16, 16),
            stride: (8, 8),
            baseline: OcclusionBaseline::Value(0.0),
            score: Score::Probability,
            batch: 64,
        };
        runner.run(case, "occlusion", &mut maps, || occ.attribute(model, xs, &target))?;
    }
    if slow.contains(&"lime") {
        let lime = Lime::default();
        runner.run(case, "lime", &mut maps, || lime.attribute(model, xs, &target))?;
    }
    let input = input_file(case.name, case.batch);
    write_tensors(
        &dir.join(&input),
        &[
            ("input".into(), xs.shallow_clone()),
            ("targets".into(), case.classes.shallow_clone()),
        ],
    )?;
    let maps_file = crate_maps_file(case.name, case.batch);
    write_tensors(&dir.join(&maps_file), &maps)?;
    Ok(CaseInfo {
        model: case.name.to_string(),
        batch: case.batch,
        input,
        maps: maps_file,
    })
}

/// One epoch of `fit` on the built-in shapes, from the same initial weights each run.
fn bench_train(runner: &mut Runner, dir: &Path) -> Result<TrainInfo> {
    let splits = generate(&ShapesConfig {
        train: TRAIN_IMAGES,
        val: 16,
        test: 16,
        ..Default::default()
    })?;
    let train = splits.train;
    let info = TrainInfo {
        data: "train_data.safetensors".into(),
        init: "small_cnn_train_init.safetensors".into(),
        batch_size: 64,
        lr: 0.05,
        momentum: 0.9,
        weight_decay: 5e-4,
    };
    write_tensors(
        &dir.join(&info.data),
        &[
            ("images".into(), train.images.shallow_clone()),
            ("labels".into(), train.labels.shallow_clone()),
        ],
    )?;
    {
        let vs = nn::VarStore::new(Device::Cpu);
        build(Arch::SmallCnn, &vs.root(), 6)?;
        weights::save(&vs, dir.join(&info.init))?;
    }
    let cfg = TrainConfig {
        epochs: 1,
        batch_size: info.batch_size as usize,
        optimizer: Optimizer::Sgd {
            momentum: info.momentum,
            weight_decay: info.weight_decay,
            nesterov: false,
        },
        lr: info.lr,
        schedule: Schedule::Constant,
        tracked: TrackedSet::None,
        verbose: false,
        ..Default::default()
    };
    let data = FitData::new(&train);
    let mut times = Vec::new();
    for i in 0..runner.warm + runner.reps {
        let mut vs = nn::VarStore::new(Device::Cpu);
        let model = build(Arch::SmallCnn, &vs.root(), 6)?;
        weights::load(&vs, dir.join(&info.init))?;
        let start = Instant::now();
        fit(&model, &mut vs, &data, &cfg, &mut [])?;
        if i >= runner.warm {
            times.push(start.elapsed().as_secs_f64());
        }
    }
    let row = TimedRow {
        model: "small_cnn".into(),
        batch: info.batch_size,
        method: "train_epoch".into(),
        who: "crate".into(),
        times,
        images: TRAIN_IMAGES as i64,
        note: format!("{TRAIN_IMAGES} images"),
    };
    println!("small_cnn  train epoch {:.5} s/img", row.per_image().0);
    runner.rows.push(row);
    Ok(info)
}

fn env_flag(name: &str) -> bool {
    std::env::var(name).is_ok_and(|v| !v.is_empty() && v != "0")
}

fn run() -> Result<()> {
    let threads = std::env::var("BENCH_THREADS")
        .ok()
        .and_then(|v| v.parse::<i32>().ok())
        .unwrap_or(2);
    tch::set_num_threads(threads);
    let quick = env_flag("PEERS_QUICK");
    let full = env_flag("PEERS_FULL");
    let reps = std::env::var("PEERS_REPS")
        .ok()
        .and_then(|v| v.parse::<usize>().ok())
        .filter(|&r| r > 0)
        .unwrap_or(if quick { 2 } else { 5 });
    let dir = work_dir();
    std::fs::create_dir_all(&dir).map_err(|e| Error::io(&dir, e))?;
    let load_before = load_average();
    println!(
        "peers, crate side: {} threads, 1 warm-up + {reps} timed runs, work folder {}, load {load_before}",
        tch::get_num_threads(),
        dir.display()
    );
    let mut runner = Runner {
        warm: 1,
        reps,
        rows: Vec::new(),
    };
    let mut specs: Vec<(&str, Arch, i64, i64, &str)> = vec![("small_cnn", Arch::SmallCnn, 6, 64, "block3")];
    if !quick {
        specs.push(("resnet18", Arch::ResNet18, 1000, 224, "layer4"));
        if env_flag("PEERS_RESNET50") {
            specs.push(("resnet50", Arch::ResNet50, 1000, 224, "layer4"));
        }
    }
    let (mut models, mut cases) = (Vec::new(), Vec::new());
    for (name, arch, classes, size, layer) in specs {
        let vs = nn::VarStore::new(Device::Cpu);
        let model = build(arch, &vs.root(), classes)?;
        let weights_file = format!("{name}.safetensors");
        weights::save(&vs, dir.join(&weights_file))?;
        models.push(ModelInfo {
            name: name.into(),
            classes,
            size,
            layer: layer.into(),
            weights: weights_file,
        });
        for batch in [1i64, 16] {
            // Smooth random images, so that SLIC finds regions and the classes vary.
            let xs = Rng::new(1)
                .uniform_tensor(&[batch, 3, 16, 16], Device::Cpu)
                .upsample_bilinear2d([size, size], false, None, None);
            let classes = tch::no_grad(|| model.logits(&xs))?.argmax(1, false);
            let case = Case {
                model: &model,
                name,
                layer,
                batch,
                xs,
                classes,
            };
            // The slow methods (25 to 1,000 passes per image) at batch 1 only (their cost per image
            // hardly depends on the batch), and Score-CAM, occlusion and LIME on ResNet only with
            // PEERS_FULL=1: with three libraries each, they alone would take over an hour on 2 shared cores.
            let all = ["smoothgrad", "ig", "scorecam", "occlusion", "lime"];
            let slow: &[&str] = match (name, batch, full) {
                (_, 1, true) | ("small_cnn", 1, _) => &all,
                ("resnet18", 1, false) => &all[..2],
                _ => &[],
            };
            cases.push(bench_case(&case, slow, &mut runner, &dir)?);
        }
    }
    let train = Some(bench_train(&mut runner, &dir)?);
    let run = CrateRun {
        threads: tch::get_num_threads(),
        warmup: runner.warm,
        reps,
        load: vec![load_before, load_average()],
        settings: SETTINGS.iter().map(|s| s.to_string()).collect(),
        models,
        cases,
        rows: runner.rows,
        train,
    };
    write_json(&dir.join("crate.json"), &run)?;
    println!("wrote {}", dir.join("crate.json").display());
    Ok(())
}

fn report() -> Result<()> {
    let dir = work_dir();
    let crate_run: CrateRun = read_json(&dir.join("crate.json"))?;
    let peers: PeerRun = read_json(&dir.join("peers.json"))?;
    let rows = report_rows(&dir, &crate_run, &peers)?;
    let md = markdown(&rows, &crate_run, &peers);
    let out = dir.parent().map_or_else(|| dir.clone(), Path::to_path_buf);
    write_atomic_text(&out.join("peers.md"), &md)?;
    write_json(
        &out.join("peers.json"),
        &serde_json::json!({
            "threads": crate_run.threads,
            "reps": crate_run.reps,
            "warmup": crate_run.warmup,
            "load_crate": crate_run.load,
            "load_python": peers.load,
            "versions": peers.versions,
            "settings": crate_run.settings,
            "rows": rows,
        }),
    )?;
    println!("{md}\nwritten to {}", out.join("peers.{md,json}").display());
    let wrong: Vec<String> = rows
        .iter()
        .filter(|r| {
            r.agrees == Some(false) && known_difference(&r.method, r.peer.as_deref().unwrap_or("")).is_none()
        })
        .map(|r| {
            format!(
                "{} b{} {} vs {}",
                r.model,
                r.batch,
                r.method,
                r.peer.as_deref().unwrap_or("?")
            )
        })
        .collect();
    if !wrong.is_empty() {
        println!("maps that differ from the peer's beyond {TOLERANCE:e}: {wrong:?}");
    }
    Ok(())
}

fn write_atomic_text(path: &Path, text: &str) -> Result<()> {
    cnn_explain::io::write_atomic(path, text.as_bytes())
}

fn main() -> Result<()> {
    let args: Vec<String> = std::env::args().collect();
    if args.iter().any(|a| a == "--report") {
        report()
    } else if args.iter().any(|a| a == "--crate") || std::env::var_os("PEERS_WORK").is_some() {
        run()
    } else {
        // `cargo bench` (all benches) lands here: the comparison needs the Python side too.
        println!("peers: run `make bench-peers` (scripts/bench-peers.sh), or `cargo bench --bench peers -- --crate` for the crate side alone");
        Ok(())
    }
}
