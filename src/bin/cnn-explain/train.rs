//! `cnn-explain train`: fit a zoo model and keep a resumable run folder.

use crate::common::{self, DataConfig, DataOpts, DataSpec, EarlyStopConfig, ModelConfig, RunFile};
use clap::Args;
use cnn_explain::data::transforms::{ColorJitter, Compose, RandomCrop, RandomHorizontalFlip, Transform};
use cnn_explain::models::{weights, Init};
use cnn_explain::rng::Rng;
use cnn_explain::train::steering::{Steering, SteeringLimits};
use cnn_explain::train::{
    self, BatchInfo, Callback, Checkpoint, Context, Control, EarlyStopping, FitData, History,
    InputGradientPenalty, IrrelevantRegion, Metric, Optimizer, PenaltyScore, Schedule, TrackedSet,
    TrainConfig,
};
use cnn_explain::{Error, Result};
use std::io::{IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;
use tch::Tensor;

static INTERRUPTED: AtomicBool = AtomicBool::new(false);

#[derive(Args, Debug)]
pub struct TrainArgs {
    /// Dataset: shapes (built in), cifar10:DIR, cifar100:DIR, cifar100-coarse:DIR or folder:DIR
    /// (one sub-folder per class, or train/ and test/ [and val/] folders of such sub-folders).
    #[arg(long, default_value = "shapes")]
    pub data: String,
    #[command(flatten)]
    pub data_opts: DataOpts,
    /// Architecture from the zoo: small_cnn, resnet18, resnet34, resnet50, vgg16, alexnet.
    #[arg(long, default_value = "small_cnn")]
    pub arch: String,
    /// Weights (.safetensors) to start from; a head of another class count is replaced.
    #[arg(long)]
    pub weights: Option<PathBuf>,
    /// Run folder to write (must not hold a run yet).
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// Continue the run in this folder from its last checkpoint (other options come from its run.json;
    /// --epochs may raise the number of epochs).
    #[arg(long, conflicts_with = "out")]
    pub resume: Option<PathBuf>,
    /// Passes over the training data.
    #[arg(long)]
    pub epochs: Option<usize>,
    /// Images per optimisation step.
    #[arg(long, default_value_t = 64)]
    pub batch: usize,
    /// Optimiser: sgd, adam or adamw.
    #[arg(long, default_value = "sgd")]
    pub optimizer: String,
    /// Learning rate.
    #[arg(long, default_value_t = 0.05)]
    pub lr: f64,
    /// SGD momentum.
    #[arg(long, default_value_t = 0.9)]
    pub momentum: f64,
    /// Weight decay (default: 5e-4 for SGD, 0 for Adam, 0.01 for AdamW).
    #[arg(long)]
    pub weight_decay: Option<f64>,
    /// Learning-rate schedule: cosine, cosine:MIN_LR, constant or step:EVERY:GAMMA.
    #[arg(long, default_value = "cosine")]
    pub schedule: String,
    /// Epochs of linear warm-up.
    #[arg(long, default_value_t = 0)]
    pub warmup: usize,
    /// Augmentations, comma separated: flip, crop, jitter (none by default).
    #[arg(long, value_delimiter = ',')]
    pub augment: Vec<String>,
    /// Seed of the weights, shuffling and augmentation.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Device: cpu, cuda, cuda:N or auto (the first GPU when there is one).
    #[arg(long, default_value = "auto")]
    pub device: String,
    /// Stop when the validation loss has not improved for this many epochs (and keep the best weights).
    #[arg(long)]
    pub early_stopping: Option<usize>,
    /// Smallest improvement early stopping counts.
    #[arg(long, default_value_t = 0.0)]
    pub min_delta: f64,
    /// Serve the live monitor (a web page on 127.0.0.1 that shows the run and steers it) while
    /// training; its address is printed at start. `cnn-explain monitor DIR` serves it from another
    /// process.
    #[arg(long)]
    pub monitor: bool,
    /// Port of the monitor (0: a free port).
    #[arg(long, default_value_t = 0, requires = "monitor")]
    pub port: u16,
    /// Test images whose saliency map is recorded after every epoch (comma separated indices;
    /// default: the first test image of each of the first four classes; `none` for no probe).
    #[arg(long, value_delimiter = ',')]
    pub probes: Vec<String>,
    /// Right-for-the-right-reasons: add WEIGHT x the squared input gradient inside the irrelevant
    /// region to the loss (Ross et al. 2017). Not with --augment.
    #[arg(long, value_name = "WEIGHT")]
    pub penalty: Option<f64>,
    /// Where the gradient is penalised: outside-object (the dataset's object masks; shapes has them)
    /// or cue (the four corner patches of the shapes cue, see --cue).
    #[arg(long, default_value = "outside-object")]
    pub penalty_region: String,
    /// Whose gradient is penalised: sum-log-prob (Ross et al.), true-log-prob or centred-logit (the
    /// true class's logit minus the mean logit).
    #[arg(long, default_value = "sum-log-prob")]
    pub penalty_score: String,
}

/// The penalty the options ask for (`None` without --penalty).
pub fn parse_penalty(a: &TrainArgs) -> Result<Option<InputGradientPenalty>> {
    let region = match a.penalty_region.as_str() {
        "outside-object" => IrrelevantRegion::OutsideObject,
        "cue" => IrrelevantRegion::Given,
        other => {
            return Err(Error::invalid(
                "penalty-region",
                format!("unknown region `{other}`; expected outside-object or cue"),
            ))
        }
    };
    let score = match a.penalty_score.as_str() {
        "sum-log-prob" => PenaltyScore::SumLogProbabilities,
        "true-log-prob" => PenaltyScore::TrueClassLogProbability,
        "centred-logit" => PenaltyScore::CentredTrueClassLogit,
        other => {
            return Err(Error::invalid(
                "penalty-score",
                format!("unknown score `{other}`; expected sum-log-prob, true-log-prob or centred-logit"),
            ))
        }
    };
    let Some(weight) = a.penalty else { return Ok(None) };
    let p = InputGradientPenalty {
        weight,
        enabled: true,
        region,
        score,
    };
    p.validate()?;
    if !a.augment.is_empty() {
        return Err(Error::invalid(
            "penalty",
            "--penalty cannot be combined with --augment: the irrelevant masks would not follow the crops and flips",
        ));
    }
    Ok(Some(p))
}

fn parse_schedule(s: &str) -> Result<Schedule> {
    let bad = || {
        Error::invalid(
            "schedule",
            format!("cannot read `{s}`; expected cosine, cosine:MIN_LR, constant or step:EVERY:GAMMA"),
        )
    };
    let parts: Vec<&str> = s.split(':').collect();
    match parts.as_slice() {
        ["constant"] => Ok(Schedule::Constant),
        ["cosine"] => Ok(Schedule::Cosine { min_lr: 0.0 }),
        ["cosine", m] => Ok(Schedule::Cosine {
            min_lr: m.parse().map_err(|_| bad())?,
        }),
        ["step", e, g] => Ok(Schedule::Step {
            every: e.parse().map_err(|_| bad())?,
            gamma: g.parse().map_err(|_| bad())?,
        }),
        _ => Err(bad()),
    }
}

fn parse_optimizer(a: &TrainArgs) -> Result<Optimizer> {
    match a.optimizer.as_str() {
        "sgd" => Ok(Optimizer::Sgd {
            momentum: a.momentum,
            weight_decay: a.weight_decay.unwrap_or(5e-4),
            nesterov: false,
        }),
        "adam" => Ok(Optimizer::Adam {
            weight_decay: a.weight_decay.unwrap_or(0.0),
        }),
        "adamw" => Ok(Optimizer::AdamW {
            weight_decay: a.weight_decay.unwrap_or(0.01),
        }),
        other => Err(Error::invalid(
            "optimizer",
            format!("unknown optimiser `{other}`; expected sgd, adam or adamw"),
        )),
    }
}

fn augmentation(names: &[String]) -> Result<Option<Compose>> {
    let mut steps: Vec<Box<dyn Transform + Send + Sync>> = Vec::new();
    for n in names {
        match n.trim() {
            "flip" => steps.push(Box::new(RandomHorizontalFlip::default())),
            "crop" => steps.push(Box::new(RandomCrop::default())),
            "jitter" => steps.push(Box::new(ColorJitter::default())),
            "" | "none" => {}
            other => {
                return Err(Error::invalid(
                    "augment",
                    format!("unknown augmentation `{other}`; expected flip, crop or jitter"),
                ))
            }
        }
    }
    Ok(if steps.is_empty() {
        None
    } else {
        Some(Compose(steps))
    })
}

/// Draws the progress line on stderr, prints a line per epoch and turns Ctrl-C into a stop.
struct Progress {
    epochs: usize,
    start: Instant,
    batches_done: usize,
    epoch: usize,
    loss_sum: f64,
    correct: usize,
    seen: usize,
    terminal: bool,
    last_draw: Option<Instant>,
}

impl Progress {
    fn new(epochs: usize) -> Self {
        Progress {
            epochs,
            start: Instant::now(),
            batches_done: 0,
            epoch: 0,
            loss_sum: 0.0,
            correct: 0,
            seen: 0,
            terminal: std::io::stderr().is_terminal(),
            last_draw: None,
        }
    }
}

fn clock(secs: f64) -> String {
    let s = secs.max(0.0).round() as u64;
    if s >= 3600 {
        format!("{}:{:02}:{:02}", s / 3600, s / 60 % 60, s % 60)
    } else {
        format!("{}:{:02}", s / 60, s % 60)
    }
}

impl Callback for Progress {
    fn on_batch_end(&mut self, info: &BatchInfo) -> Result<Control> {
        if info.epoch != self.epoch {
            self.epoch = info.epoch;
            self.loss_sum = 0.0;
            self.correct = 0;
            self.seen = 0;
        }
        self.batches_done += 1;
        self.loss_sum += info.loss * info.size as f64;
        self.correct += info.correct;
        self.seen += info.size;
        if self.terminal && self.last_draw.is_none_or(|t| t.elapsed().as_millis() >= 100) {
            let per_batch = self.start.elapsed().as_secs_f64() / self.batches_done as f64;
            let left = self.epochs.saturating_sub(info.epoch) * info.batches
                + info.batches.saturating_sub(info.batch + 1);
            eprint!(
                "\r\x1b[2Kepoch {}/{} batch {}/{} loss {:.4} acc {:.1}% left {}",
                info.epoch,
                self.epochs,
                info.batch + 1,
                info.batches,
                self.loss_sum / self.seen.max(1) as f64,
                100.0 * self.correct as f64 / self.seen.max(1) as f64,
                clock(per_batch * left as f64)
            );
            let _ = std::io::stderr().flush();
            self.last_draw = Some(Instant::now());
        }
        if INTERRUPTED.load(Ordering::SeqCst) {
            if self.terminal {
                eprint!("\r\x1b[2K");
            }
            eprintln!(
                "interrupted: stopping after batch {}/{} of epoch {}",
                info.batch + 1,
                info.batches,
                info.epoch
            );
            return Ok(Control::Stop);
        }
        Ok(Control::Continue)
    }

    fn on_epoch_end(&mut self, ctx: &mut Context<'_>) -> Result<Control> {
        let r = ctx.record()?;
        if self.terminal {
            eprint!("\r\x1b[2K");
        }
        let mut line = format!(
            "epoch {}/{}  lr {:.2e}  train loss {:.4} acc {:.1}%",
            r.epoch,
            self.epochs,
            r.lr,
            r.train_loss,
            100.0 * r.train_accuracy
        );
        if let (Some(l), Some(a)) = (r.val_loss, r.val_accuracy) {
            line += &format!("  val loss {l:.4} acc {:.1}%", 100.0 * a);
        }
        if let Some(a) = r.test_accuracy {
            line += &format!("  test acc {:.1}%", 100.0 * a);
        }
        eprintln!("{line}  ({})", clock(self.start.elapsed().as_secs_f64()));
        Ok(Control::Continue)
    }
}

fn install_ctrlc() {
    let _ = ctrlc::set_handler(|| {
        if INTERRUPTED.swap(true, Ordering::SeqCst) {
            // Second Ctrl-C: leave now; every file is written atomically.
            eprintln!("\ninterrupted twice: exiting without a final checkpoint");
            std::process::exit(130);
        }
    });
}

pub fn run(a: TrainArgs) -> Result<ExitCode> {
    let device = common::parse_device(&a.device)?;
    let (dir, mut runfile, history) = match &a.resume {
        Some(dir) => {
            let mut rf = RunFile::load(dir)?;
            let history = History::load(dir.join(common::HISTORY_FILE))?;
            if let Some(e) = a.epochs {
                rf.train.epochs = e;
            }
            (dir.clone(), rf, Some(history))
        }
        None => {
            let dir = a.out.clone().ok_or_else(|| {
                Error::invalid(
                    "out",
                    "give the run folder to write with --out DIR (or --resume DIR)",
                )
            })?;
            if dir.join(common::RUN_FILE).exists() {
                return Err(Error::data(
                    &dir,
                    "already holds a run; continue it with --resume, or choose another --out",
                ));
            }
            let arch = common::parse_arch(&a.arch)?;
            let spec = DataSpec::parse(&a.data)?;
            let early = a.early_stopping.map(|patience| EarlyStopConfig {
                monitor: Metric::ValLoss,
                patience,
                min_delta: a.min_delta,
            });
            augmentation(&a.augment)?;
            let train = TrainConfig {
                epochs: a.epochs.unwrap_or(10),
                batch_size: a.batch,
                optimizer: parse_optimizer(&a)?,
                lr: a.lr,
                schedule: parse_schedule(&a.schedule)?,
                warmup_epochs: a.warmup,
                seed: a.seed,
                device: None,
                tracked: TrackedSet::Test,
                history_path: None,
                verbose: false,
                penalty: parse_penalty(&a)?,
            };
            train.validate()?;
            if let Some(p) = &train.penalty {
                if p.region == IrrelevantRegion::Given
                    && (spec != DataSpec::Shapes || a.data_opts.cue.is_none())
                {
                    return Err(Error::invalid(
                        "penalty-region",
                        "cue needs the shapes data with its spurious cue: --data shapes --cue FRACTION",
                    ));
                }
            }
            let rf = RunFile {
                format: common::RUN_FORMAT.into(),
                version: common::RUN_VERSION,
                data: DataConfig {
                    spec: spec.absolute(&a.data),
                    opts: a.data_opts.clone(),
                },
                model: ModelConfig {
                    arch,
                    num_classes: 0,
                    image_size: spec.image_size(&a.data_opts),
                    initial_weights: a
                        .weights
                        .as_ref()
                        .map(|w| w.canonicalize().unwrap_or_else(|_| w.clone())),
                },
                train,
                early_stopping: early,
                augment: a.augment.iter().map(|s| s.trim().to_string()).collect(),
                class_names: Vec::new(),
                status: "running".into(),
            };
            (dir, rf, None)
        }
    };
    runfile.train.validate()?;
    let spec = DataSpec::parse(&runfile.data.spec)?;
    let splits = common::load_data(&spec, &runfile.data.opts)?;
    let k = splits.train.num_classes();
    if history.is_none() {
        runfile.model.num_classes = k;
        runfile.class_names = splits.train.class_names.clone();
    } else if runfile.class_names != splits.train.class_names {
        return Err(Error::data(
            &dir,
            "the dataset's classes are no longer those the run was trained on",
        ));
    }
    let arch = runfile.model.arch;
    let (mut vs, model) = common::build_model(arch, k, Init::Seeded(runfile.train.seed), device)?;
    if history.is_none() {
        if let Some(w) = &runfile.model.initial_weights {
            start_from(&vs, w, arch, k)?;
        }
    }
    let augment = augmentation(&runfile.augment)?;
    let aug_fn = augment
        .as_ref()
        .map(|c| move |xs: &Tensor, rng: &mut Rng| c.apply(xs, rng));
    let mut data = FitData::new(&splits.train).with_test(&splits.test);
    if !splits.val.is_empty() {
        data = data.with_val(&splits.val);
    }
    if let Some(f) = &aug_fn {
        data = data.with_augment(f);
    }
    let cue_masks = match &runfile.train.penalty {
        Some(p) if p.region == IrrelevantRegion::Given => Some(train::cue_corners(
            &cnn_explain::data::shapes::ShapesConfig {
                image_size: runfile.data.opts.image_size,
                spurious: Some(Default::default()),
                ..Default::default()
            },
            splits.train.len(),
            1,
        )?),
        _ => None,
    };
    if let Some(m) = &cue_masks {
        data = data.with_irrelevant(m);
    }
    let monitor = if splits.val.is_empty() {
        Metric::TrainLoss
    } else {
        Metric::ValLoss
    };
    if let Some(es) = &mut runfile.early_stopping {
        es.monitor = monitor;
    }
    let previous_status = runfile.status.clone();
    let mut cfg = runfile.train.clone();
    cfg.history_path = Some(dir.join(common::HISTORY_FILE));
    cfg.verbose = false;
    runfile.status = "running".into();
    std::fs::create_dir_all(&dir).map_err(|e| Error::io(&dir, e))?;
    runfile.save(&dir)?;

    let test_set = &splits.test;
    let probes = choose_probes(&a.probes, test_set)?;
    let (_, h, w) = splits.train.image_shape();
    let limits = SteeringLimits {
        probe_pool: test_set.len(),
        masks: splits.train.masks.is_some(),
        // The penalty's masks would not follow crops and flips.
        penalty: runfile.augment.iter().all(|a| a.is_empty() || a == "none"),
        image_size: (h, w),
        ..Default::default()
    };
    let probe_dir = dir.clone();
    let mut steering = Steering::new(&dir, limits).with_probes(probes, move |model, indices, _epoch| {
        probe_maps(model, test_set, indices, &probe_dir)
    });
    if a.monitor {
        start_monitor(&dir, a.port)?;
    }

    install_ctrlc();
    let mut progress = Progress::new(cfg.epochs);
    let mut checkpoint = Checkpoint::new(dir.join(common::CHECKPOINT_DIR)).monitor(monitor);
    let mut early = runfile
        .early_stopping
        .as_ref()
        .map(|e| EarlyStopping::new(e.monitor, e.patience).min_delta(e.min_delta));
    // Steering first: a stop it applies at an epoch's end reaches the checkpoint in the same epoch.
    let mut callbacks: Vec<&mut dyn Callback> = vec![&mut steering, &mut progress];
    if let Some(es) = early.as_mut() {
        callbacks.push(es);
    }
    callbacks.push(&mut checkpoint);
    let done = match history {
        Some(h) => {
            let state = dir.join(common::CHECKPOINT_DIR).join(Checkpoint::STATE);
            let unfinished = previous_status == "interrupted" || previous_status == "running";
            if h.epochs.len() >= cfg.epochs && !h.stopped_early && !unfinished {
                eprintln!(
                    "the run already has {} of {} epochs; pass --epochs N to train longer",
                    h.epochs.len(),
                    cfg.epochs
                );
                return Ok(ExitCode::SUCCESS);
            }
            train::resume(&model, &mut vs, &data, &cfg, &state, h, &mut callbacks)?
        }
        None => train::fit(&model, &mut vs, &data, &cfg, &mut callbacks)?,
    };
    drop(callbacks);
    let interrupted = INTERRUPTED.load(Ordering::SeqCst);
    if let Some(iv) = steering
        .applied()
        .iter()
        .find(|i| i.request == cnn_explain::train::steering::Request::Stop)
    {
        eprintln!(
            "stopped from the monitor after batch {} of epoch {}; the checkpoints are kept; continue with: cnn-explain train --resume {}",
            iv.batch,
            iv.epoch,
            dir.display()
        );
    }
    runfile.status = if interrupted {
        "interrupted"
    } else if done.stopped_early {
        "stopped_early"
    } else {
        "finished"
    }
    .into();
    if !interrupted {
        weights::save(&vs, dir.join(common::MODEL_FILE))?;
    }
    runfile.save(&dir)?;
    if interrupted {
        eprintln!(
            "checkpoint after epoch {} saved; continue with: cnn-explain train --resume {}",
            done.epochs.len(),
            dir.display()
        );
        return Ok(ExitCode::from(130));
    }
    if let Some(r) = done.last() {
        println!(
            "trained {} epochs of {} on {} ({} classes): test accuracy {}; run folder {}",
            done.epochs.len(),
            arch,
            runfile.data.spec,
            k,
            r.test_accuracy
                .map(|a| format!("{:.1}%", 100.0 * a))
                .unwrap_or_else(|| "-".into()),
            dir.display()
        );
    }
    Ok(ExitCode::SUCCESS)
}

/// Loads starting weights; when only the classification head differs, keeps a new head.
fn start_from(vs: &tch::nn::VarStore, w: &Path, arch: cnn_explain::models::Arch, k: i64) -> Result<()> {
    match common::load_weights(vs, w, arch, k) {
        Ok(()) => Ok(()),
        Err(first) => match weights::load_except(vs, w, &[arch.head()]) {
            Ok(report) => {
                eprintln!(
                    "note: {} has another head; kept new weights for {}",
                    w.display(),
                    report.skipped.join(", ")
                );
                Ok(())
            }
            Err(_) => Err(first),
        },
    }
}

#[cfg(feature = "monitor")]
fn start_monitor(dir: &Path, port: u16) -> Result<()> {
    std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
    let server = crate::monitor::spawn(dir, std::net::IpAddr::from([127, 0, 0, 1]), port)?;
    eprintln!("monitor: {}", server.url);
    Ok(())
}

#[cfg(not(feature = "monitor"))]
fn start_monitor(_dir: &Path, _port: u16) -> Result<()> {
    Err(Error::invalid(
        "monitor",
        "this cnn-explain was built without the `monitor` feature; rebuild with default features",
    ))
}

/// Probe indices from `--probes`: given ones (checked), none, or the first test image of each of the
/// first four classes.
fn choose_probes(given: &[String], test: &cnn_explain::data::Dataset) -> Result<Vec<usize>> {
    let n = test.len();
    if given.iter().any(|g| g.trim() == "none") {
        return Ok(Vec::new());
    }
    if !given.is_empty() {
        let mut out = Vec::new();
        for g in given {
            let i: usize = g.trim().parse().map_err(|_| {
                Error::invalid(
                    "probes",
                    format!("`{g}` is not a test-image index; expected numbers like 0,5,9"),
                )
            })?;
            if i >= n {
                return Err(Error::invalid(
                    "probes",
                    format!(
                        "test image {i} does not exist; the test set has images 0..={}",
                        n.saturating_sub(1)
                    ),
                ));
            }
            if !out.contains(&i) {
                out.push(i);
            }
        }
        return Ok(out);
    }
    let labels = Vec::<i64>::try_from(test.labels.to_device(tch::Device::Cpu))?;
    let mut out = Vec::new();
    for class in 0..4i64 {
        if let Some(i) = labels.iter().position(|&l| l == class) {
            out.push(i);
        }
    }
    Ok(out)
}

/// Saliency maps (max over channels of |d score(true class) / d input|, scaled to 0..=255 by the
/// map's 99th-percentile mass) of test images `indices`, as stored in the history for the monitor's
/// explanation strip; writes each image once to `RUN/probes/INDEX.png`.
fn probe_maps(
    model: &dyn cnn_explain::models::Model,
    test: &cnn_explain::data::Dataset,
    indices: &[usize],
    dir: &Path,
) -> Result<serde_json::Value> {
    use base64::Engine;
    use cnn_explain::attribution::{Attribution, Saliency, SaliencyMode, Target};
    use cnn_explain::viz::{encode_png, tensor_to_image, Normalization};
    let idx = Tensor::from_slice(&indices.iter().map(|&i| i as i64).collect::<Vec<_>>());
    let xs = test
        .images
        .f_index_select(0, &idx.to_device(test.images.device()))?;
    let ys = Vec::<i64>::try_from(
        test.labels
            .f_index_select(0, &idx.to_device(test.labels.device()))?
            .to_device(tch::Device::Cpu),
    )?;
    let maps = Saliency {
        mode: SaliencyMode::MaxOverChannels,
    }
    .attribute(model, &xs, &Target::PerSample(ys.clone()))?;
    let norm = Normalization {
        outlier_percentile: 99.0,
        ..Default::default()
    }
    .normalize(&maps)?;
    let probs =
        cnn_explain::eval::predict_proba(model, &xs, indices.len().max(1))?.to_device(tch::Device::Cpu);
    let (h, w) = (norm.size()[2], norm.size()[3]);
    let mut out = Vec::new();
    for (k, &i) in indices.iter().enumerate() {
        let path = common::probe_path(dir, i);
        if !path.exists() {
            let img = xs.f_get(k as i64)?;
            let img = if img.size()[0] == 1 {
                img.f_repeat([3, 1, 1])?
            } else {
                img
            };
            cnn_explain::io::write_atomic(&path, &encode_png(&tensor_to_image(&img)?)?)?;
        }
        let bytes = Vec::<u8>::try_from(
            norm.f_get(k as i64)?
                .f_mul_scalar(255.0)?
                .f_round()?
                .f_clamp(0.0, 255.0)?
                .f_to_kind(tch::Kind::Uint8)?
                .f_to_device(tch::Device::Cpu)?
                .f_reshape([-1])?,
        )?;
        let p = probs.f_get(k as i64)?;
        let predicted = p.f_argmax(0, false)?.f_int64_value(&[])?;
        let true_prob = p.f_double_value(&[ys[k]])?;
        out.push(serde_json::json!({
            "index": i,
            "label": ys[k],
            "predicted": predicted,
            "true_prob": true_prob,
            "height": h,
            "width": w,
            "map": base64::engine::general_purpose::STANDARD.encode(&bytes),
        }));
    }
    Ok(serde_json::Value::Array(out))
}
