//! The crate against the Python tools people use today (Captum, pytorch-grad-cam, torchcam, lime,
//! plain PyTorch), on the same machine, the same weights, inputs, targets and thread count, timed
//! in the same run, interleaved run by run (issue 9).
//!
//! Run everything with `make bench-peers` (or `scripts/bench-peers.sh`): it makes the reference
//! environment if missing and runs this bench, which writes `target/bench-peers/peers.md` and
//! `peers.json`.
//!
//! How it measures: the bench starts the Python side once, as a server (`scripts/bench/peers.py
//! --serve`, driven by JSON lines over a pipe, see `peers/server.rs`). For each case (model, batch)
//! it first exports the weights, inputs and targets into the work folder
//! (`target/bench-peers/work/`, see `peers/export.rs` for the files) and has the server load them.
//! Then, for each method (a row), both sides make their objects (untimed), run one warm-up each,
//! and alternate: crate run i, the crate's floor (forward + backward to the input) run i, each
//! peer's run i, crate run i + 1, ... (the crate first in even rounds, last in odd ones). Calls
//! under 2 s (`PEERS_PRE_RUN_BELOW`) are each timed right after an untimed call of the same side,
//! so that no timed call starts cold right after the other process, and calls under 0.25 s get
//! three times the timed rounds (see [`PRE_RUN_BELOW`]). Only one side runs at a time (the other
//! waits on the pipe; `OMP_WAIT_POLICY=PASSIVE`, set by the script, keeps its idle threads asleep),
//! so every pair of runs sees the same load, and the report's ratios (`peer / crate`, `x floor`)
//! are medians of the per-run ratios. The training epoch row alternates the same way. At the end
//! each side's last map of every row is compared with `cnn_explain::attribution::compare` and the
//! table is written. After every row the bench saves the run so far (`crate.json`, `peers.json` and
//! both sides' maps of the case so far), so a run stopped midway keeps the rows it finished:
//! `--report` makes their table, headed as partial. Rows of calls of 2 s or more also save their
//! timed calls after every call, and `PEERS_RESUME=1` goes on with a stopped run in its work
//! folder: the finished rows are skipped (their maps kept on both sides), the row that stopped
//! warms up on the case's first image (the same passes in 1/batch of the time) and then runs only
//! the rounds it had left, with the same weights, inputs and round numbers. A ResNet-50 row at
//! batch 16 (one to eight hours here) can so be measured over several sittings; the settings,
//! thread count, peer versions and the crate's sources must be the same, or it refuses.
//!
//! Phases (arguments after `--`):
//! - `--run` (or `PEERS_WORK` set, as the script does): the interleaved run, then the report;
//! - `--report`: the report alone, from the work folder of an earlier run (`crate.json`,
//!   `peers.json` and the maps of both sides).
//!
//! Environment: `BENCH_THREADS` (default 2, both sides), `PEERS_REPS` (timed runs, default 5),
//! `PEERS_QUICK=1` (the small CNN only, 2 timed runs: to check the pipeline), `PEERS_PRE_RUN_BELOW`
//! (seconds, default 2; 0: no pre-runs), `PEERS_BATCHES` (`1` or `16`: only that batch size),
//! `PEERS_B16_SLOW` (slow methods, comma-separated, or `all`, to run at batch 16 on the ResNets
//! too: `smoothgrad,ig` takes about 40 minutes with ResNet-50), `PEERS_FULL=1`
//! (the slow methods on the small CNN at batch 16 too, Score-CAM, occlusion and LIME on ResNet-18,
//! SmoothGrad and Integrated Gradients on ResNet-50), `PEERS_RESNET50=1` (adds ResNet-50),
//! `PEERS_SLOW=1` (implies `PEERS_FULL=1`; with `PEERS_RESNET50=1` adds Score-CAM, occlusion and
//! LIME on ResNet-50: about an hour more), `PEERS_WORK` (the work folder), `PEERS_PYTHON` (the
//! reference environment's Python, default `.venv-ref/bin/python`), `PEERS_MODELS` (only these
//! models, comma-separated: `small_cnn`, `resnet18`, `resnet50`), `PEERS_TIMEOUT` (seconds to
//! wait for one answer of the Python side before giving up, default 1800; a timed call gets 3
//! times its warm-up if that is longer), `PEERS_RESUME=1` (go on
//! with the stopped run in the work folder, see above; `auto`: go on if the work folder or
//! `PEERS_CARRY` has a run, start one if not), `PEERS_METHODS` (only these rows,
//! comma-separated method keys such as `scorecam`; see [`METHODS`]), `PEERS_CARRY` (a folder that
//! gets the run's `crate.json` and `peers.json` after every save, `{cpu}` in it standing for the
//! machine's kind of CPU, see [`carry_folder`], and from which `PEERS_RESUME=1`
//! takes them when the work folder has none: a run measured over sittings on machines that do not
//! keep their files; the weights are made again from their seed and checked against their
//! digest, and finished rows' maps are not carried, so use it with `PEERS_METHODS` on one row),
//! `PEERS_DEFAULT_MALLOC=1`
//! (the crate's side without `runtime::keep_freed_memory()`, which it calls by default as the
//! README tells users to), `PEERS_PY_KEEP_FREED=1` (the Python side with the same glibc settings,
//! from its environment: the libraries compared at equal allocators).
//!
//! Cases: the small CNN at 64x64 (layer `block3`), ResNet-18 and ResNet-50 at 224x224 (`layer4`),
//! batch 1 and 16, random weights (seed 0), smooth random images (seed 1); every method runs on the
//! crate's predicted classes, passed to both sides explicitly. The slow methods (SmoothGrad,
//! Integrated Gradients, Score-CAM, occlusion, LIME) batch their own passes, so their cost per
//! image hardly depends on the batch: on the ResNets they run at batch 1 only, and Score-CAM,
//! occlusion and LIME on the small CNN only unless `PEERS_FULL=1`, to keep the default run near 10
//! minutes on 2 shared cores. On ResNet-50 they need `PEERS_SLOW=1` (2,048 Score-CAM masks: about
//! 40 minutes for that row alone).

#[path = "peers/export.rs"]
mod export;
#[path = "peers/server.rs"]
mod server;

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
use serde_json::json;
use server::PeerServer;
use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};
use tch::nn;

const SETTINGS: &[&str] = &[
    "saliency: |d score / d input| (Captum Saliency, abs=True)",
    "smoothgrad: 25 samples, sigma 0.15 x (max - min) of the input, 25 images per pass (Captum: 25 // batch samples of every image per pass)",
    "ig: 50 steps, zero baseline, trapezoid rule, 50 images per pass; Captum is given the correctly rounded points k / 49 (its own, from torch.linspace in float32, are one ulp off at 9 of 50, which moves ResNet maps by 1e-4 to 5e-4: scripts/bench/float64_check.py)",
    "gradcam, gradcampp, layercam: the CAM layer (block3 / layer4), upsampled bilinearly, min-max normalised",
    "scorecam: 32 masked images per pass",
    "occlusion: window 16x16, stride 8, baseline 0, softmax probability, 64 images per pass (Captum: 64 // batch windows of every image per pass)",
    "lime: 1,000 samples, SLIC 50 segments compactness 10, mean-colour fill, kernel width 0.25, ridge 1, probability, 64 per pass",
    "train_epoch: small CNN, built-in shapes (1,024 images, 64x64), batch 64, SGD lr 0.05 momentum 0.9 wd 5e-4",
];

const TRAIN_IMAGES: usize = 1024;

/// The methods that batch their own passes (25 to 2,048 per image), in the order they run.
const SLOW_METHODS: [&str; 5] = ["smoothgrad", "ig", "scorecam", "occlusion", "lime"];

/// Calls shorter than this (seconds, the crate's warm-up call) are timed right after an untimed
/// call of the same side (`PEERS_PRE_RUN_BELOW` to change it, 0 for never). A call that follows
/// the other process starts with cold caches: measured in the run of 2026-11-30, the crate's
/// Grad-CAM on the small CNN at batch 1 took 3.5 ms right after its own floor and 5.3 to 6.3 ms
/// right after a Python call, ResNet-18's 44 ms and 56 to 73 ms. With the old order only the first
/// peer of a row ever followed the other process, so the later peers (torchcam, Captum) were
/// always timed warm and the crate mostly cold. Longer calls keep the alternating order alone:
/// there the cold start is a few percent at most, and a pre-run would double hours of runs.
const PRE_RUN_BELOW: f64 = 2.0;

/// Calls shorter than this (seconds) get [`SHORT_ROUNDS`] times the timed rounds: they are the
/// noisiest and the cheapest.
const SHORT_BELOW: f64 = 0.25;
const SHORT_ROUNDS: usize = 3;

/// How the runs were ordered, for the log and the report's header.
fn order_text(reps: usize, pre_run_below: f64) -> String {
    let short_reps = reps * SHORT_ROUNDS;
    format!(
        "1 warm-up, then {reps} timed rounds ({short_reps} for calls under {SHORT_BELOW} s); in each \
         round crate run i with its floor run i, and each peer's run i, the crate first when i is even \
         and last when i is odd; calls under {pre_run_below} s (the crate's warm-up) are each timed \
         right after an untimed call of the same side, so no timed call starts cold after the other \
         process (rows without: `*`)"
    )
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

/// Seconds `f` takes, and its output.
fn time_it<T>(f: impl FnOnce() -> Result<T>) -> Result<(f64, T)> {
    let start = Instant::now();
    let out = f()?;
    Ok((start.elapsed().as_secs_f64(), out))
}

struct Case<'a> {
    model: &'a Staged,
    info: &'a ModelInfo,
    batch: i64,
    xs: Tensor,
    classes: Tensor,
    /// `classes`, as the methods take them.
    target: Target,
}

impl<'a> Case<'a> {
    fn new(model: &'a Staged, info: &'a ModelInfo, xs: Tensor, classes: Tensor) -> Result<Self> {
        let target = Target::PerSample(Vec::<i64>::try_from(&classes)?);
        Ok(Case {
            model,
            info,
            batch: xs.size()[0],
            xs,
            classes,
            target,
        })
    }

    /// The case's first image alone (the warm-up of a resumed row, or of a slow method with
    /// `PEERS_WARM_FIRST_IMAGE=1`).
    fn first_image(&self) -> Result<Case<'a>> {
        Case::new(
            self.model,
            self.info,
            self.xs.f_narrow(0, 0, 1)?,
            self.classes.f_narrow(0, 0, 1)?,
        )
    }
}

/// One call of the crate's side of a row (`Runner::interleave`).
#[derive(Clone, Copy)]
enum Call {
    /// On the whole case, timed (right after an untimed call when `pre_run`).
    Timed { pre_run: bool },
    /// On the case's first image, as a warm-up (of a row a stopped run had begun, or of a slow
    /// method with `PEERS_WARM_FIRST_IMAGE=1`); its seconds are kept only to estimate the
    /// whole call's length.
    FirstImage,
}

/// The timed runs of one row: the crate's, its floor's (if paired) and each peer's.
struct Rounds {
    mine: Vec<f64>,
    floor: Vec<f64>,
    peers: Vec<Vec<f64>>,
    /// Every timed call followed an untimed call of the same side.
    pre_run: bool,
}

struct Runner {
    warm: usize,
    reps: usize,
    /// Rows whose crate warm-up call is shorter (seconds) time every call right after an untimed
    /// call of the same side.
    pre_run_below: f64,
    server: PeerServer,
    /// The peers of each method, as the server lists them.
    peers: HashMap<String, Vec<String>>,
    /// The run so far, saved after every row.
    progress: Progress,
    /// `PEERS_RESUME=1`: going on with a stopped run (its finished rows are skipped, its maps kept).
    resume: bool,
    /// `PEERS_WARM_FIRST_IMAGE=1`: the slow methods at batch > 1 warm up on the case's first image
    /// (as a resumed row does), taking `batch` times its seconds for the warm-up call's length.
    warm_first_image: bool,
    /// `PEERS_METHODS`: only these rows (`None`: every row the other options select).
    methods: Option<Vec<String>>,
}

/// The run so far: `crate.json` and `peers.json` as they will be at the end, but for the rows
/// still to come. Saved after every row with both sides' maps of the case so far, so that a run
/// stopped after hours (a slow row on ResNet-50 takes one to eight) keeps the rows it finished:
/// `--report` makes their table, marked partial.
struct Progress {
    dir: PathBuf,
    /// `PEERS_CARRY`: a folder that outlives the machine, which gets the run's JSON files after
    /// every save (see [`RUN_FILES`]).
    carry: Option<PathBuf>,
    load_before: String,
    run: CrateRun,
    peers: PeerRun,
}

impl Runner {
    /// Saves the run so far (see [`Progress`]); with `case`, first the maps of that case so far on
    /// both sides.
    fn save(&mut self, case: Option<(&CaseInfo, &[(String, Tensor)])>, partial: bool) -> Result<()> {
        let p = &mut self.progress;
        if let Some((info, maps)) = case {
            write_tensors(&p.dir.join(&info.maps), maps)?;
            self.server
                .call(json!({"cmd": "save", "model": info.model, "batch": info.batch}))?;
            if !p.run.cases.contains(info) {
                p.run.cases.push(info.clone());
            }
        }
        let load = vec![p.load_before.clone(), load_average()];
        p.run.load = load.clone();
        p.run.partial = partial;
        p.peers.load = load;
        write_json(&p.dir.join("crate.json"), &p.run)?;
        write_json(&p.dir.join("peers.json"), &p.peers)?;
        match &p.carry {
            Some(carry) => copy_run_files(&p.dir, carry),
            None => Ok(()),
        }
    }

    /// Whether `PEERS_METHODS` lets row `method` run.
    fn wanted(&self, method: &str) -> bool {
        self.methods
            .as_ref()
            .is_none_or(|m| m.iter().any(|w| w == method))
    }

    /// Whether the row was finished by the stopped run this one resumes (said on the log).
    fn finished_before(&self, model: &str, batch: i64, method: &str) -> bool {
        let done = self.progress.run.finished(model, batch, method);
        if done {
            println!("{model} b{batch} {method}: finished in the stopped run");
        }
        done
    }

    fn peers_of(&self, method: &str) -> Vec<String> {
        self.peers.get(method).cloned().unwrap_or_default()
    }

    /// `warm` untimed rounds, then the timed rounds of `mine(Call::Timed { pre_run })` (the
    /// crate's seconds and, if paired, its floor's) and one run of each peer (prepared already),
    /// the crate first in even rounds and last in odd ones. Rows whose crate warm-up call took
    /// under `pre_run_below` seconds run every timed call right after an untimed call of the same
    /// side (`mine` does its own), and rows under [`SHORT_BELOW`] get [`SHORT_ROUNDS`] times the
    /// rounds (see [`order_text`]).
    ///
    /// Rows timed without pre-runs (calls of seconds to hours) save their calls so far after every
    /// call (`CrateRun::unfinished`). Resuming such a row (`PEERS_RESUME=1`) warms both sides up
    /// on the case's first image (`Call::FirstImage`: the same passes as the whole case, in
    /// 1/batch of the time; on ResNet-50 at batch 16 the whole-case warm-up of Score-CAM takes
    /// over an hour), then makes the calls it had left, with the round numbers (and so the order
    /// and the peers' seeds) it would have had. `PEERS_WARM_FIRST_IMAGE=1` warms the slow methods
    /// at batch > 1 up the same way from their start, taking `batch` times the first image's
    /// seconds for the call's length.
    fn interleave(
        &mut self,
        (model, batch): (&str, i64),
        method: &str,
        peers: &[String],
        mut mine: impl FnMut(Call) -> Result<(f64, Option<f64>)>,
    ) -> Result<Rounds> {
        let stopped = self
            .progress
            .run
            .unfinished_row(model, batch, method, peers)
            .cloned();
        // The slow methods make the same passes for one image as for many (they do their images
        // one at a time, or in passes of a fixed size), so their first image warms up every kernel.
        let first_image =
            stopped.is_some() || (self.warm_first_image && batch > 1 && SLOW_METHODS.contains(&method));
        // Seconds a call takes, from the warm-up: the crate's, and each peer's (the server's
        // timeout for a timed call grows with it; a peer's warm-up may take 3 times the crate's).
        let mut warm_t = 0f64;
        let mut expected = vec![0f64; peers.len()];
        for round in 0..self.warm {
            if first_image {
                let (t, _) = mine(Call::FirstImage)?;
                warm_t = warm_t.max(t * batch as f64);
                for (p, e) in peers.iter().zip(expected.iter_mut()) {
                    *e = self.server.warm_first_image(method, p, round)? * batch as f64;
                }
                continue;
            }
            warm_t = warm_t.max(mine(Call::Timed { pre_run: false })?.0);
            for (p, e) in peers.iter().zip(expected.iter_mut()) {
                *e = self.server.run_expecting(method, p, round, 3.0 * warm_t)?;
            }
        }
        if first_image {
            let theirs: Vec<String> = peers
                .iter()
                .zip(&expected)
                .map(|(p, e)| format!("{p} {e:.1} s"))
                .collect();
            println!(
                "{model} b{batch} {method}: warmed up on the first image: about {warm_t:.1} s a call (peers: {})",
                theirs.join(", ")
            );
        }
        let (mut r, reps) = match stopped {
            Some(u) => {
                println!(
                    "{model} b{batch} {method}: going on after {} of {} timed rounds of the stopped run (warmed up on the first image)",
                    u.rounds_done(),
                    u.reps
                );
                let r = Rounds {
                    mine: u.mine,
                    floor: u.floor,
                    peers: u.peers.into_iter().map(|p| p.1).collect(),
                    pre_run: u.pre_run,
                };
                (r, u.reps)
            }
            None => {
                let reps = if warm_t < SHORT_BELOW {
                    self.reps * SHORT_ROUNDS
                } else {
                    self.reps
                };
                let r = Rounds {
                    mine: Vec::with_capacity(reps),
                    floor: Vec::with_capacity(reps),
                    peers: vec![Vec::with_capacity(reps); peers.len()],
                    pre_run: warm_t < self.pre_run_below,
                };
                (r, reps)
            }
        };
        let pre_run = r.pre_run;
        // The rounds every side has finished (a stopped run may have stopped inside a round).
        let done = r.peers.iter().map(Vec::len).fold(r.mine.len(), usize::min);
        for round in self.warm + done..self.warm + reps {
            let i = round - self.warm;
            // Even rounds run the crate first, odd rounds the peers first, so that neither side
            // always runs right after the other's process (a measured order effect of up to 10%
            // on the training row, benches/train_throughput.rs). A side whose call of this round
            // the stopped run had made already is not called again.
            for crate_turn in [round % 2 == 0, round % 2 == 1] {
                if crate_turn {
                    if r.mine.len() == i {
                        let (t, floor_t) = mine(Call::Timed { pre_run })?;
                        r.mine.push(t);
                        r.floor.extend(floor_t);
                        self.save_unfinished((model, batch, method), peers, reps, &r)?;
                    }
                    continue;
                }
                for (k, p) in peers.iter().enumerate() {
                    if r.peers[k].len() != i {
                        continue;
                    }
                    if pre_run {
                        self.server.run(method, p, round)?;
                    }
                    let t = self.server.run_expecting(method, p, round, expected[k])?;
                    r.peers[k].push(t);
                    self.save_unfinished((model, batch, method), peers, reps, &r)?;
                }
            }
        }
        Ok(r)
    }

    /// Rows timed without pre-runs (calls of seconds to hours) save their calls so far after each
    /// call, so that a stopped run loses at most the call it was in.
    fn save_unfinished(
        &mut self,
        (model, batch, method): (&str, i64, &str),
        peers: &[String],
        reps: usize,
        r: &Rounds,
    ) -> Result<()> {
        if r.pre_run {
            return Ok(());
        }
        self.progress.run.unfinished = Some(UnfinishedRow {
            model: model.to_string(),
            batch,
            method: method.to_string(),
            reps,
            pre_run: r.pre_run,
            mine: r.mine.clone(),
            floor: r.floor.clone(),
            peers: peers.iter().cloned().zip(r.peers.iter().cloned()).collect(),
        });
        self.save(None, true)
    }

    /// Keeps the rows of a finished row (each peer's with how it was called, `as_run`, where that
    /// differs from the other rows), prints them.
    fn record(
        &mut self,
        (model, batch, method): (&str, i64, &str),
        images: i64,
        note: &str,
        (peers, as_run): (&[String], Vec<String>),
        rounds: Rounds,
    ) {
        let row = TimedRow {
            model: model.to_string(),
            batch,
            method: method.to_string(),
            who: "crate".into(),
            times: rounds.mine,
            images,
            note: note.to_string(),
            floor_times: rounds.floor,
            pre_run: rounds.pre_run,
        };
        let (m, lo, hi) = row.per_image();
        let mut line = format!("{model:10} b{batch:<2} {method:11} crate {m:.3e} s/img [{lo:.3e}, {hi:.3e}]");
        if !row.floor_times.is_empty() {
            line += &format!(" x floor {:.2}", paired_ratio(&row.times, &row.floor_times));
        }
        for ((p, times), as_run) in peers.iter().zip(rounds.peers).zip(as_run) {
            if !as_run.is_empty() {
                println!("{model} b{batch} {method}: {p}, {as_run}");
            }
            let peer = TimedRow {
                who: p.clone(),
                times,
                floor_times: Vec::new(),
                note: as_run,
                ..row.clone()
            };
            line += &format!(
                " | {p} {:.3e} ({:.2}x)",
                peer.per_image().0,
                paired_ratio(&peer.times, &row.times)
            );
            self.progress.peers.rows.push(peer);
        }
        println!("{line}  load {}", load_average());
        self.progress.run.rows.push(row);
        self.progress.run.unfinished = None;
    }

    /// Times one method, `f` on the case, against its peers, interleaved; keeps the crate's map
    /// under `method` in `maps` (the peers keep theirs in the server).
    fn run(
        &mut self,
        case: &Case,
        method: &str,
        maps: &mut Vec<(String, Tensor)>,
        mut f: impl FnMut(&Case) -> Result<Tensor>,
    ) -> Result<()> {
        let name = case.info.name.as_str();
        // Its map is among the case's maps read back from the stopped run.
        if !self.wanted(method) || self.finished_before(name, case.batch, method) {
            return Ok(());
        }
        let peers = self.peers_of(method);
        for p in &peers {
            self.server
                .call(json!({"cmd": "prepare", "method": method, "peer": p}))?;
        }
        let model = case.model as &dyn Model;
        let pair_floor = method != "floor";
        let mut last = None;
        let rounds = self.interleave((name, case.batch), method, &peers, |call| {
            let pre_run = match call {
                Call::Timed { pre_run } => pre_run,
                Call::FirstImage => {
                    let (t, out) = time_it(|| f(&case.first_image()?))?;
                    drop(out);
                    if pair_floor {
                        drop(floor(model, &case.xs, &case.classes)?);
                    }
                    return Ok((t, None));
                }
            };
            if pre_run {
                drop(f(case)?);
            }
            let (t, out) = time_it(|| f(case))?;
            last = Some(out);
            let floor_t = if pair_floor {
                if pre_run {
                    drop(floor(model, &case.xs, &case.classes)?);
                }
                Some(time_it(|| floor(model, &case.xs, &case.classes))?.0)
            } else {
                None
            };
            Ok((t, floor_t))
        })?;
        let as_run = peers
            .iter()
            .map(|p| self.server.finish(method, p))
            .collect::<Result<Vec<_>>>()?;
        let map = last.ok_or_else(|| Error::invalid("reps", "must be at least 1"))?;
        maps.push((method.to_string(), map.detach().to_kind(Kind::Float)));
        self.record(
            (case.info.name.as_str(), case.batch, method),
            case.batch,
            "",
            (&peers, as_run),
            rounds,
        );
        let info = case_info(&case.info.name, case.batch);
        self.save(Some((&info, maps.as_slice())), true)
    }
}

fn bench_case(case: &Case, slow: &[&str], runner: &mut Runner, dir: &Path) -> Result<()> {
    let (model, xs) = (case.model as &dyn Model, &case.xs);
    let (name, layer) = (case.info.name.as_str(), case.info.layer.as_str());
    // Export the case first, so that both sides run on the same input from the first row.
    let info = case_info(name, case.batch);
    write_tensors(
        &dir.join(&info.input),
        &[
            ("input".into(), xs.shallow_clone()),
            ("targets".into(), case.classes.shallow_clone()),
        ],
    )?;
    // Resuming, both sides start from the case's maps of the stopped run.
    runner.server.call(json!({
        "cmd": "case", "model": case.info, "batch": case.batch, "input": info.input,
        "resume": runner.resume,
    }))?;
    let saved = dir.join(&info.maps);
    let mut maps: Vec<(String, Tensor)> = if runner.resume && saved.exists() {
        let mut m: Vec<_> = read_tensors(&saved)?.into_iter().collect();
        m.sort_by(|a, b| a.0.cmp(&b.0));
        m
    } else {
        Vec::new()
    };

    runner.run(case, "forward", &mut maps, |c| {
        tch::no_grad(|| model.logits(&c.xs))
    })?;
    runner.run(case, "floor", &mut maps, |c| floor(model, &c.xs, &c.classes))?;
    let saliency = Saliency::default();
    runner.run(case, "saliency", &mut maps, |c| {
        saliency.attribute(model, &c.xs, &c.target)
    })?;
    if slow.contains(&"smoothgrad") {
        let sg = NoiseTunnel::smooth(Saliency::default());
        runner.run(case, "smoothgrad", &mut maps, |c| {
            sg.attribute(model, &c.xs, &c.target)
        })?;
    }
    if slow.contains(&"ig") {
        let ig = IntegratedGradients::default();
        runner.run(case, "ig", &mut maps, |c| ig.attribute(model, &c.xs, &c.target))?;
    }
    let gc = GradCam::new(layer);
    runner.run(case, "gradcam", &mut maps, |c| {
        gc.attribute(model, &c.xs, &c.target)
    })?;
    let gcpp = GradCamPlusPlus::new(layer);
    runner.run(case, "gradcampp", &mut maps, |c| {
        gcpp.attribute(model, &c.xs, &c.target)
    })?;
    let lc = LayerCam::new(layer);
    runner.run(case, "layercam", &mut maps, |c| {
        lc.attribute(model, &c.xs, &c.target)
    })?;
    // `runner.run` skips a row that PEERS_METHODS leaves out by itself; Score-CAM alone also makes
    // an untimed map below, which needs the same test.
    if slow.contains(&"scorecam") && runner.wanted("scorecam") {
        let sc = ScoreCam::new(layer);
        runner.run(case, "scorecam", &mut maps, |c| {
            sc.attribute(model, &c.xs, &c.target)
        })?;
        // pytorch-grad-cam makes its masks the other way round: the crate's option for it, untimed
        // (unless a stopped run saved it already).
        let key = "scorecam@pytorch-grad-cam";
        if !maps.iter().any(|(k, _)| k == key) {
            let mut sc_pgc = ScoreCam::new(layer);
            sc_pgc.weights.pytorch_grad_cam_masks = true;
            maps.push((key.into(), sc_pgc.attribute(model, xs, &case.target)?));
        }
    }
    if slow.contains(&"occlusion") {
        let occ = Occlusion {
            window: (16, 16),
            stride: (8, 8),
            baseline: OcclusionBaseline::Value(0.0),
            score: Score::Probability,
            batch: 64,
        };
        runner.run(case, "occlusion", &mut maps, |c| {
            occ.attribute(model, &c.xs, &c.target)
        })?;
    }
    if slow.contains(&"lime") {
        let lime = Lime::default();
        runner.run(case, "lime", &mut maps, |c| {
            lime.attribute(model, &c.xs, &c.target)
        })?;
    }
    // Every row saved its maps; this adds the untimed ones.
    runner.save(Some((&info, maps.as_slice())), true)
}

/// One epoch of `fit` on the built-in shapes, from the same initial weights each run, alternating
/// with PyTorch's epoch on the same data from the same weights.
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
    let method = "train_epoch";
    if runner.finished_before("small_cnn", info.batch_size, method) {
        return Ok(info);
    }
    let peers = runner.peers_of(method);
    for p in &peers {
        runner
            .server
            .call(json!({"cmd": "prepare", "method": method, "peer": p, "train": info}))?;
    }
    let init = dir.join(&info.init);
    let epoch = || -> Result<f64> {
        let mut vs = nn::VarStore::new(Device::Cpu);
        let model = build(Arch::SmallCnn, &vs.root(), 6)?;
        weights::load(&vs, &init)?;
        Ok(time_it(|| fit(&model, &mut vs, &data, &cfg, &mut []))?.0)
    };
    // An epoch has no first image: a resumed training row (it never is: an epoch takes under the
    // 2 s of PRE_RUN_BELOW, so it is never saved unfinished) would warm up on a whole epoch.
    let rounds = runner.interleave(("small_cnn", info.batch_size), method, &peers, |call| {
        if matches!(call, Call::Timed { pre_run: true }) {
            epoch()?;
        }
        Ok((epoch()?, None))
    })?;
    let as_run = peers
        .iter()
        .map(|p| runner.server.finish(method, p))
        .collect::<Result<Vec<_>>>()?;
    runner.record(
        ("small_cnn", info.batch_size, method),
        TRAIN_IMAGES as i64,
        &format!("{TRAIN_IMAGES} images"),
        (&peers, as_run),
        rounds,
    );
    Ok(info)
}

fn env_flag(name: &str) -> bool {
    std::env::var(name).is_ok_and(|v| !v.is_empty() && v != "0")
}

/// Starts the Python side (`scripts/bench/peers.py --serve`) with the reference environment.
fn start_server(dir: &Path, threads: i32, keep_freed: bool) -> Result<PeerServer> {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let python = std::env::var("PEERS_PYTHON")
        .unwrap_or_else(|_| root.join(".venv-ref/bin/python").to_string_lossy().into_owned());
    let timeout = std::env::var("PEERS_TIMEOUT")
        .ok()
        .and_then(|v| v.parse::<u64>().ok())
        .filter(|&s| s > 0)
        .unwrap_or(1800);
    let script = root.join("scripts/bench/peers.py");
    let args = [
        script.to_string_lossy().into_owned(),
        "--serve".into(),
        "--work".into(),
        dir.to_string_lossy().into_owned(),
        "--threads".into(),
        threads.to_string(),
    ];
    let env: &[(&str, &str)] = if keep_freed {
        &cnn_explain::runtime::KEEP_FREED_ENV
    } else {
        &[]
    };
    PeerServer::spawn(&python, &args, env, Duration::from_secs(timeout)).map_err(|e| match e {
        Error::Io { path, source } => Error::data(
            path,
            format!(
                "cannot start the Python peer server ({source}): make the reference environment with \
                 scripts/reference-env.sh (scripts/bench-peers.sh does), or point PEERS_PYTHON at its python"
            ),
        ),
        e => e,
    })
}

fn run() -> Result<()> {
    let threads = std::env::var("BENCH_THREADS")
        .ok()
        .and_then(|v| v.parse::<i32>().ok())
        .unwrap_or(2);
    tch::set_num_threads(threads);
    // The crate's side runs as the README tells its users to; `PEERS_DEFAULT_MALLOC=1` leaves
    // glibc's defaults, `PEERS_PY_KEEP_FREED=1` gives the Python side the same settings.
    let kept = !env_flag("PEERS_DEFAULT_MALLOC") && cnn_explain::runtime::keep_freed_memory()?;
    let py_kept = env_flag("PEERS_PY_KEEP_FREED");
    let allocator = format!(
        "crate {}; Python {}",
        if kept {
            "with runtime::keep_freed_memory() (glibc keeps freed memory: no mmap per large tensor)"
        } else {
            "with glibc's defaults"
        },
        if py_kept {
            let vars: Vec<String> = cnn_explain::runtime::KEEP_FREED_ENV
                .iter()
                .map(|(k, v)| format!("{k}={v}"))
                .collect();
            format!("with the same settings from its environment ({})", vars.join(" "))
        } else {
            "with glibc's defaults, as its users run it".to_string()
        }
    );
    println!("peers: allocator: {allocator}");
    let quick = env_flag("PEERS_QUICK");
    let slowest = env_flag("PEERS_SLOW");
    let full = slowest || env_flag("PEERS_FULL");
    let reps = std::env::var("PEERS_REPS")
        .ok()
        .and_then(|v| v.parse::<usize>().ok())
        .filter(|&r| r > 0)
        .unwrap_or(if quick { 2 } else { 5 });
    let pre_run_below = std::env::var("PEERS_PRE_RUN_BELOW")
        .ok()
        .and_then(|v| v.parse::<f64>().ok())
        .unwrap_or(PRE_RUN_BELOW);
    let order = order_text(reps, pre_run_below);
    let dir = work_dir();
    std::fs::create_dir_all(&dir).map_err(|e| Error::io(&dir, e))?;
    let load_before = load_average();
    println!(
        "peers: {} threads; {order}; work folder {}, load {load_before}",
        tch::get_num_threads(),
        dir.display()
    );
    let mut specs: Vec<(&str, Arch, i64, i64, &str)> = vec![("small_cnn", Arch::SmallCnn, 6, 64, "block3")];
    if !quick {
        specs.push(("resnet18", Arch::ResNet18, 1000, 224, "layer4"));
        if env_flag("PEERS_RESNET50") {
            specs.push(("resnet50", Arch::ResNet50, 1000, 224, "layer4"));
        }
    }
    // A comma-separated list from the environment (empty when unset).
    let list = |name: &str| comma_list(&std::env::var(name).unwrap_or_default());
    // `PEERS_MODELS=resnet50` (names, comma-separated): only these models, e.g. to repeat one
    // model's slow rows without the hour the others take. Checked before the Python side starts.
    if std::env::var_os("PEERS_MODELS").is_some() {
        let only = list("PEERS_MODELS");
        if let Some(unknown) = only.iter().find(|m| !specs.iter().any(|s| s.0 == m.as_str())) {
            return Err(Error::invalid(
                "PEERS_MODELS",
                format!(
                    "{unknown:?} is not among this run's models {:?} (resnet50 needs PEERS_RESNET50=1, the ResNets no PEERS_QUICK)",
                    specs.iter().map(|s| s.0).collect::<Vec<_>>()
                ),
            ));
        }
        specs.retain(|s| only.iter().any(|m| m == s.0));
    }
    // PEERS_BATCHES=16 (or 1): only these batch sizes. PEERS_B16_SLOW=smoothgrad,ig (or `all`): these
    // slow methods at batch 16 on the ResNets too (Score-CAM, occlusion and LIME there take hours).
    let batches: Vec<i64> = match list("PEERS_BATCHES") {
        b if b.is_empty() => vec![1, 16],
        b => b
            .iter()
            .map(|v| match v.as_str() {
                "1" => Ok(1),
                "16" => Ok(16),
                _ => Err(Error::invalid("PEERS_BATCHES", format!("{v:?} is not 1 or 16"))),
            })
            .collect::<Result<_>>()?,
    };
    let b16_slow: Vec<&str> = match list("PEERS_B16_SLOW") {
        m if m == ["all"] => SLOW_METHODS.to_vec(),
        m => m
            .iter()
            .map(|v| {
                SLOW_METHODS.iter().copied().find(|n| n == v).ok_or_else(|| {
                    Error::invalid(
                        "PEERS_B16_SLOW",
                        format!("{v:?} is not one of {SLOW_METHODS:?} (or `all`)"),
                    )
                })
            })
            .collect::<Result<_>>()?,
    };
    // PEERS_CARRY=folder: the run's progress is also kept there (a folder in a checkout, say, for
    // a run measured over sittings on machines that do not keep the work folder); `{cpu}` in it
    // stands for the machine's kind of CPU (`carry_folder`). Resuming into a work folder without
    // a run, the run is taken from there; the weights and inputs are made again from their seeds
    // (checked against the weights' digest), the finished rows' maps are not carried.
    // Read once: it names both the carry folder and the machine the run's `cpu` check compares.
    let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let carry = match std::env::var("PEERS_CARRY") {
        Ok(c) if !c.is_empty() => Some(carry_folder(&c, &cpuinfo)?),
        _ => None,
    };
    // PEERS_RESUME=1: go on with the stopped run in the work folder (checked before the Python side
    // starts: a run with nothing to resume fails at once); `auto`: go on with one if the work
    // folder or PEERS_CARRY has one, and start one otherwise.
    let has_run = |d: &Path| d.join("crate.json").exists();
    let resume = match std::env::var("PEERS_RESUME").as_deref() {
        Ok("auto") => has_run(&dir) || carry.as_deref().is_some_and(has_run),
        _ => env_flag("PEERS_RESUME"),
    };
    if let Some(c) = &carry {
        println!("peers: the run is carried in {} (PEERS_CARRY)", c.display());
        if resume && !has_run(&dir) && has_run(c) {
            copy_run_files(c, &dir)?;
            println!("peers: took the stopped run from {} (PEERS_CARRY)", c.display());
        }
    }
    let methods = methods_from(&std::env::var("PEERS_METHODS").unwrap_or_default())?;
    if resume && !has_run(&dir) {
        return Err(Error::invalid(
            "PEERS_RESUME",
            format!(
                "there is no stopped run to go on with in {} (no crate.json): run without PEERS_RESUME, \
                 or set PEERS_WORK to the stopped run's work folder (or PEERS_CARRY to a folder \
                 holding its crate.json and peers.json)",
                dir.display()
            ),
        ));
    }
    let server = start_server(&dir, tch::get_num_threads(), py_kept)?;
    let hello = server.hello.clone();
    let field = |k: &str| {
        hello
            .get(k)
            .cloned()
            .ok_or_else(|| Error::invalid("peer server hello", format!("has no `{k}`: {hello}")))
    };
    let versions: BTreeMap<String, String> = serde_json::from_value(field("versions")?)?;
    let peers: HashMap<String, Vec<String>> = serde_json::from_value(field("peers")?)?;
    let py_threads = field("threads")?.as_i64().unwrap_or(-1) as i32;
    let listed: Vec<_> = versions.iter().map(|(k, v)| format!("{k} {v}")).collect();
    println!("peers, Python side: {} | {py_threads} threads", listed.join(", "));
    if py_threads != tch::get_num_threads() {
        println!(
            "warning: the Python side runs {py_threads} threads, the crate {}",
            tch::get_num_threads()
        );
    }
    let mut progress = Progress {
        dir: dir.clone(),
        carry,
        load_before: load_before.clone(),
        run: CrateRun {
            threads: tch::get_num_threads(),
            warmup: 1,
            reps,
            load: vec![load_before],
            settings: SETTINGS.iter().map(|s| s.to_string()).collect(),
            allocator,
            order,
            models: Vec::new(),
            cases: Vec::new(),
            rows: Vec::new(),
            train: None,
            partial: true,
            unfinished: None,
            resumed: 0,
            source: source_digest(Path::new(env!("CARGO_MANIFEST_DIR")))?,
            cpu: cpu_from_cpuinfo(&cpuinfo),
        },
        peers: PeerRun {
            threads: py_threads,
            versions,
            load: Vec::new(),
            rows: Vec::new(),
        },
    };
    if resume {
        resume_progress(&mut progress)?;
    }
    let mut runner = Runner {
        warm: 1,
        reps,
        pre_run_below,
        server,
        peers,
        progress,
        resume,
        warm_first_image: env_flag("PEERS_WARM_FIRST_IMAGE"),
        methods,
    };
    for (name, arch, classes, size, layer) in specs {
        let vs = nn::VarStore::new(Device::Cpu);
        let model = build(arch, &vs.root(), classes)?;
        let weights_file = format!("{name}.safetensors");
        // Resuming, the model goes on with the stopped run's weights (its maps were made with them).
        let stopped = dir.join(&weights_file);
        if resume && stopped.exists() {
            weights::load(&vs, &stopped)?;
        } else {
            weights::save(&vs, &stopped)?;
        }
        let info = ModelInfo {
            name: name.into(),
            classes,
            size,
            layer: layer.into(),
            weights: weights_file,
            digest: weights_digest(&vs)?,
        };
        // A resumed run must go on with the weights it started with (made again from their seed
        // when the work folder was not kept, PEERS_CARRY).
        match runner
            .progress
            .run
            .models
            .iter_mut()
            .find(|m| m.name == info.name)
        {
            Some(old) if !old.digest.is_empty() && old.digest != info.digest => {
                return Err(Error::invalid(
                    "PEERS_RESUME",
                    format!(
                        "the weights of {name} differ from the stopped run's (digest {}, now {}): \
                         start a new run without PEERS_RESUME",
                        old.digest, info.digest
                    ),
                ));
            }
            Some(old) => *old = info.clone(),
            None => runner.progress.run.models.push(info.clone()),
        }
        for batch in [1i64, 16].into_iter().filter(|b| batches.contains(b)) {
            // Smooth random images, so that SLIC finds regions and the classes vary.
            let xs = Rng::new(1)
                .uniform_tensor(&[batch, 3, 16, 16], Device::Cpu)
                .upsample_bilinear2d([size, size], false, None, None);
            let classes = tch::no_grad(|| model.logits(&xs))?.argmax(1, false);
            let case = Case::new(&model, &info, xs, classes)?;
            // The slow methods (25 to 2,048 passes per image) batch their own passes, so their cost
            // per image hardly depends on the batch: on the ResNets they run at batch 1 only.
            // Score-CAM, occlusion and LIME run on ResNet-18 with PEERS_FULL=1 (about 15 minutes
            // more on 2 cores), on ResNet-50 only with PEERS_SLOW=1: its 2,048 Score-CAM masks
            // alone, times three libraries and six runs, take about 40 minutes.
            let all = SLOW_METHODS;
            let mut slow: Vec<&str> = match (name, batch, full, slowest) {
                ("small_cnn", 1, _, _)
                | ("small_cnn", 16, true, _)
                | ("resnet18", 1, true, _)
                | ("resnet50", 1, true, true) => all.to_vec(),
                ("resnet18", 1, false, _) | ("resnet50", 1, true, false) => all[..2].to_vec(),
                _ => Vec::new(),
            };
            // PEERS_B16_SLOW: these slow methods at batch 16 on the ResNets too.
            if batch == 16 && name != "small_cnn" {
                for m in &b16_slow {
                    if !slow.contains(m) {
                        slow.push(m);
                    }
                }
            }
            bench_case(&case, &slow, &mut runner, &dir)?;
        }
    }
    if runner.wanted("train_epoch") {
        runner.progress.run.train = Some(bench_train(&mut runner, &dir)?);
    }
    runner.save(None, false)?;
    runner.server.quit()?;
    println!("wrote {}", dir.join("{crate,peers}.json").display());
    report()
}

/// Takes the finished rows, models, cases and the row stopped midway from the run in the work
/// folder (`PEERS_RESUME=1`), if it ran with the same settings and peer versions as this one.
fn resume_progress(progress: &mut Progress) -> Result<()> {
    let dir = progress.dir.clone();
    let old: CrateRun = read_json(&dir.join("crate.json"))?;
    let old_peers: PeerRun = read_json(&dir.join("peers.json"))?;
    old.check_resumable(&progress.run)?;
    if old_peers.versions != progress.peers.versions {
        return Err(Error::invalid(
            "PEERS_RESUME",
            format!(
                "the stopped run's Python side had other versions ({:?}, now {:?}): start a new run",
                old_peers.versions, progress.peers.versions
            ),
        ));
    }
    println!(
        "peers: going on with the run in {} ({} crate rows finished{})",
        dir.display(),
        old.rows.len(),
        old.unfinished.as_ref().map_or(String::new(), |u| format!(
            ", {} b{} {} stopped after {} of {} rounds{}",
            u.model,
            u.batch,
            u.method,
            u.rounds_done(),
            u.reps,
            match u.calls_ahead() {
                a if a.is_empty() => String::new(),
                a => format!(" and the next round's call of {}", a.join(", ")),
            }
        ))
    );
    if let Some(first) = old.load.first() {
        progress.load_before = first.clone();
    }
    let run = &mut progress.run;
    run.load = old.load;
    run.models = old.models;
    run.cases = old.cases;
    run.rows = old.rows;
    run.train = old.train;
    run.unfinished = old.unfinished;
    run.resumed = old.resumed + 1;
    progress.peers.rows = old_peers.rows;
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
            "load": crate_run.load,
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

fn main() -> std::process::ExitCode {
    let args: Vec<String> = std::env::args().collect();
    let done = if args.iter().any(|a| a == "--report") {
        report()
    } else if args.iter().any(|a| a == "--run") || std::env::var_os("PEERS_WORK").is_some() {
        run()
    } else {
        // `cargo bench` (all benches) lands here: the comparison needs the Python side too.
        println!("peers: run `make bench-peers` (scripts/bench-peers.sh), or `cargo bench --bench peers -- --run` with .venv-ref made");
        Ok(())
    };
    match done {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            // The message, not the Debug form: it says what failed and what to do.
            eprintln!("peers: error: {e}");
            std::process::ExitCode::FAILURE
        }
    }
}
