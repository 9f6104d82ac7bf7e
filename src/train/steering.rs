//! Steering a running [`super::fit`] from outside the process: stop it, change its learning rate,
//! switch the input-gradient penalty on or off, add or remove probe images.
//!
//! The protocol is files in the run folder, so any program (the `cnn-explain monitor` web page, a
//! shell script, a notebook) can steer a run it did not start:
//!
//! - a [`Request`] is a JSON file `RUN/control/<id>.json`, written atomically by [`submit`];
//! - the [`Steering`] callback reads pending requests at every batch and epoch boundary, checks
//!   them against its [`SteeringLimits`] and state, applies them, deletes the file and records each
//!   applied request as an [`Intervention`] in the [`super::History`] (so `--resume` replays them);
//! - it writes `RUN/progress.json` ([`Progress`]: epoch, batch, loss so far, what is applied,
//!   what was refused) atomically, at most every [`Steering::progress_every`] and at each epoch's end.
//!
//! ```
//! use cnn_explain::train::steering::{self, Request, SteeringLimits};
//! let limits = SteeringLimits::default();
//! assert!(limits.check(&Request::SetLearningRate { lr: 0.01 }).is_ok());
//! let err = limits.check(&Request::SetLearningRate { lr: -1.0 }).unwrap_err();
//! assert!(err.to_string().contains("must be a finite number in (0, 10]"));
//! let dir = tempfile::tempdir().unwrap();
//! let id = steering::submit(dir.path(), &Request::Stop)?;
//! assert!(dir.path().join("control").join(format!("{id}.json")).is_file());
//! # Ok::<(), cnn_explain::Error>(())
//! ```

use super::{Callback, Context, Control, History, InputGradientPenalty, IrrelevantRegion};
use crate::models::Model;
use crate::{Error, Result};
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// Folder of pending requests inside a run folder.
pub const CONTROL_DIR: &str = "control";
/// File name of the progress file inside a run folder.
pub const PROGRESS_FILE: &str = "progress.json";
/// Key of the probe maps in [`super::EpochRecord::probes`].
pub const PROBE_KEY: &str = "explanations";

/// The part of the image the input-gradient penalty acts on (the region that should not matter).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum PenaltyRegion {
    /// The ground-truth object mask of each image (the model should not use the object).
    Object,
    /// The complement of the object mask (the model should not use the background).
    Background,
    /// A rectangle in pixels, the same for every image: columns `x0..x1`, rows `y0..y1` (end
    /// excluded).
    Rect {
        /// First column.
        x0: i64,
        /// First row.
        y0: i64,
        /// Column after the last.
        x1: i64,
        /// Row after the last.
        y1: i64,
    },
}

impl PenaltyRegion {
    /// The penalty's region for this choice.
    pub fn irrelevant(self) -> IrrelevantRegion {
        match self {
            PenaltyRegion::Object => IrrelevantRegion::InsideObject,
            PenaltyRegion::Background => IrrelevantRegion::OutsideObject,
            PenaltyRegion::Rect { x0, y0, x1, y1 } => IrrelevantRegion::Rect { x0, y0, x1, y1 },
        }
    }

    /// The choice naming `region` (`None` for per-image masks given by code).
    pub fn from_irrelevant(region: IrrelevantRegion) -> Option<PenaltyRegion> {
        match region {
            IrrelevantRegion::InsideObject => Some(PenaltyRegion::Object),
            IrrelevantRegion::OutsideObject => Some(PenaltyRegion::Background),
            IrrelevantRegion::Rect { x0, y0, x1, y1 } => Some(PenaltyRegion::Rect { x0, y0, x1, y1 }),
            IrrelevantRegion::Given => None,
        }
    }
}

/// One thing a user asks a running training to do.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
pub enum Request {
    /// Stop after the current batch (the epoch is evaluated, recorded and checkpointed).
    Stop,
    /// Use `lr` for every later optimisation step instead of the schedule's value.
    SetLearningRate {
        /// The new learning rate (finite, > 0, at most [`SteeringLimits::max_lr`]).
        lr: f64,
    },
    /// Switch the input-gradient penalty ([`InputGradientPenalty`]) on or off; `weight` and
    /// `region` replace the current ones when given. Applied from the next epoch on (the penalty
    /// is chosen at each epoch's start).
    Penalty {
        /// On or off.
        enabled: bool,
        /// Weight of the penalty term (finite, >= 0).
        #[serde(default)]
        weight: Option<f64>,
        /// Where gradients are penalised.
        #[serde(default)]
        region: Option<PenaltyRegion>,
    },
    /// Start computing the explanation of probe image `index` after every epoch.
    AddProbe {
        /// Index into the probe pool (the tracked test set).
        index: usize,
    },
    /// Stop computing the explanation of probe image `index`.
    RemoveProbe {
        /// Index into the probe pool.
        index: usize,
    },
}

/// What a run can be steered with; requests outside it are refused.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SteeringLimits {
    /// Largest learning rate accepted.
    pub max_lr: f64,
    /// Probe indices must lie in `0..probe_pool` (0: probes cannot be changed).
    pub probe_pool: usize,
    /// Most probes shown at once.
    pub max_probes: usize,
    /// Whether this run can apply the input-gradient penalty.
    pub penalty: bool,
    /// Largest penalty weight accepted.
    pub max_penalty_weight: f64,
    /// Whether the training images have object masks (needed by the object and background regions).
    pub masks: bool,
    /// Image height and width in pixels, the bounds of a rectangle region.
    pub image_size: (i64, i64),
}

impl Default for SteeringLimits {
    /// Learning rates up to 10, no probes, no penalty, 64 x 64 images.
    fn default() -> Self {
        SteeringLimits {
            max_lr: 10.0,
            probe_pool: 0,
            max_probes: 8,
            penalty: false,
            max_penalty_weight: 1e6,
            masks: false,
            image_size: (64, 64),
        }
    }
}

impl SteeringLimits {
    /// Checks a request's values (not the run's state): a learning rate that is not a finite number
    /// in `(0, max_lr]`, a probe index outside the pool, a penalty this run cannot apply, a negative
    /// weight, a region outside the image are refused.
    pub fn check(&self, req: &Request) -> Result<()> {
        match req {
            Request::Stop => Ok(()),
            Request::SetLearningRate { lr } => {
                if lr.is_finite() && *lr > 0.0 && *lr <= self.max_lr {
                    Ok(())
                } else {
                    Err(Error::invalid(
                        "lr",
                        format!("{lr} must be a finite number in (0, {}]", self.max_lr),
                    ))
                }
            }
            Request::AddProbe { index } | Request::RemoveProbe { index } => {
                if *index < self.probe_pool {
                    Ok(())
                } else if self.probe_pool == 0 {
                    Err(Error::invalid(
                        "index",
                        "this run has no probe images to choose from",
                    ))
                } else {
                    Err(Error::invalid(
                        "index",
                        format!(
                            "unknown probe image {index}; probe images are test images 0..={}",
                            self.probe_pool - 1
                        ),
                    ))
                }
            }
            Request::Penalty { weight, region, .. } => {
                if !self.penalty {
                    return Err(Error::invalid(
                        "penalty",
                        "the input-gradient penalty is not available in this run",
                    ));
                }
                if let Some(w) = weight {
                    if !(w.is_finite() && *w >= 0.0 && *w <= self.max_penalty_weight) {
                        return Err(Error::invalid(
                            "weight",
                            format!("{w} must be a finite number in [0, {}]", self.max_penalty_weight),
                        ));
                    }
                }
                match region {
                    Some(PenaltyRegion::Object | PenaltyRegion::Background) if !self.masks => Err(
                        Error::invalid("region", "this dataset has no object masks; choose a rectangle"),
                    ),
                    Some(PenaltyRegion::Rect { x0, y0, x1, y1 }) => {
                        let (h, w) = self.image_size;
                        if 0 <= *x0 && x0 < x1 && *x1 <= w && 0 <= *y0 && y0 < y1 && *y1 <= h {
                            Ok(())
                        } else {
                            Err(Error::invalid(
                                "region",
                                format!(
                                    "rectangle x {x0}..{x1}, y {y0}..{y1} is empty or leaves the {w} x {h} image; need 0 <= x0 < x1 <= {w} and 0 <= y0 < y1 <= {h}"
                                ),
                            ))
                        }
                    }
                    _ => Ok(()),
                }
            }
        }
    }
}

/// The penalty settings a run is using.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct PenaltySettings {
    /// On or off.
    pub enabled: bool,
    /// Weight of the penalty term.
    pub weight: f64,
    /// Where gradients are penalised.
    pub region: PenaltyRegion,
}

/// The state a request acts on: what is applied now.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct SteeringState {
    /// Learning rate set by a request (`None`: the schedule's).
    pub lr: Option<f64>,
    /// Active probe images, in the order they were added.
    pub probes: Vec<usize>,
    /// Penalty settings (`None`: never set).
    pub penalty: Option<PenaltySettings>,
}

impl SteeringState {
    /// Checks a request against the state (a probe added twice, a probe removed that is not shown,
    /// more probes than `limits.max_probes`, a penalty switched on with no weight or region yet).
    pub fn check(&self, req: &Request, limits: &SteeringLimits) -> Result<()> {
        match req {
            Request::AddProbe { index } if self.probes.contains(index) => Err(Error::invalid(
                "index",
                format!("probe image {index} is already shown"),
            )),
            Request::AddProbe { .. } if self.probes.len() >= limits.max_probes => Err(Error::invalid(
                "index",
                format!(
                    "already {} probe images (the most); remove one first",
                    limits.max_probes
                ),
            )),
            Request::RemoveProbe { index } if !self.probes.contains(index) => Err(Error::invalid(
                "index",
                format!("probe image {index} is not shown; shown are {:?}", self.probes),
            )),
            Request::Penalty {
                enabled: true,
                weight,
                region,
            } if self.penalty.is_none() && (weight.is_none() || region.is_none()) => Err(Error::invalid(
                "penalty",
                "the first time the penalty is switched on, give its weight and region",
            )),
            _ => Ok(()),
        }
    }

    /// Applies a request (after [`SteeringState::check`]); `Stop` changes nothing here.
    pub fn apply(&mut self, req: &Request) {
        match req {
            Request::Stop => {}
            Request::SetLearningRate { lr } => self.lr = Some(*lr),
            Request::AddProbe { index } => self.probes.push(*index),
            Request::RemoveProbe { index } => self.probes.retain(|p| p != index),
            Request::Penalty {
                enabled,
                weight,
                region,
            } => {
                let old = self.penalty;
                let (w, r) = match (weight.or(old.map(|p| p.weight)), region.or(old.map(|p| p.region))) {
                    (Some(w), Some(r)) => (w, r),
                    // Switching off a penalty that was never set: nothing to remember.
                    _ => return,
                };
                self.penalty = Some(PenaltySettings {
                    enabled: *enabled,
                    weight: w,
                    region: r,
                });
            }
        }
    }
}

/// An applied request, as recorded in [`History::interventions`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Intervention {
    /// The request's id (its file name without `.json`).
    pub id: String,
    /// When it was applied, in seconds since the Unix epoch.
    pub time: f64,
    /// 1-based epoch during (or at the end of) which it was applied.
    pub epoch: usize,
    /// Batches of that epoch done when it was applied.
    pub batch: usize,
    /// What was asked.
    pub request: Request,
}

/// A request that was read but not applied.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Refusal {
    /// The request's id.
    pub id: String,
    /// Why.
    pub message: String,
}

/// The content of `RUN/progress.json`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Progress {
    /// Process id of the training.
    pub pid: u32,
    /// When this file was written, seconds since the Unix epoch.
    pub time: f64,
    /// False once training has ended (finished, stopped or failed).
    pub running: bool,
    /// 1-based epoch under way (the last one when not running).
    pub epoch: usize,
    /// Epochs the run is configured for.
    pub epochs: usize,
    /// Batches of the epoch done.
    pub batch: usize,
    /// Batches per epoch (0 before the first batch).
    pub batches: usize,
    /// Mean training loss of the epoch so far.
    pub loss: f64,
    /// Training accuracy of the epoch so far.
    pub accuracy: f64,
    /// Learning rate of the last step.
    pub lr: f64,
    /// What the run accepts.
    pub limits: SteeringLimits,
    /// What is applied now.
    pub state: SteeringState,
    /// Requests applied during this process's training, in order.
    pub interventions: Vec<Intervention>,
    /// Requests refused during this process's training.
    pub refused: Vec<Refusal>,
}

impl Progress {
    /// Reads `RUN/progress.json`.
    pub fn load(run_dir: impl AsRef<Path>) -> Result<Progress> {
        let path = run_dir.as_ref().join(PROGRESS_FILE);
        let bytes = std::fs::read(&path).map_err(|e| Error::io(&path, e))?;
        serde_json::from_slice(&bytes).map_err(|e| Error::data(&path, format!("not a progress file: {e}")))
    }

    /// True when the training process that wrote this file is still alive and training (on
    /// platforms without `/proc`, the `running` flag alone).
    pub fn alive(&self) -> bool {
        if !self.running {
            return false;
        }
        let proc = Path::new("/proc");
        if proc.is_dir() {
            proc.join(self.pid.to_string()).exists()
        } else {
            true
        }
    }
}

fn now() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs_f64())
        .unwrap_or(0.0)
}

/// Writes `request` into `run_dir/control/` for the [`Steering`] callback of the run's training to
/// apply; returns its id. The file appears whole (temporary name, then rename).
pub fn submit(run_dir: impl AsRef<Path>, request: &Request) -> Result<String> {
    use std::sync::atomic::{AtomicU64, Ordering};
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0);
    let id = format!(
        "{nanos:020}-{}-{}",
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::Relaxed)
    );
    let path = run_dir.as_ref().join(CONTROL_DIR).join(format!("{id}.json"));
    crate::io::write_atomic(&path, &serde_json::to_vec(request)?)?;
    Ok(id)
}

/// Pending request files of `run_dir`, oldest first: `(id, path)`.
fn pending(run_dir: &Path) -> Vec<(String, PathBuf)> {
    let Ok(entries) = std::fs::read_dir(run_dir.join(CONTROL_DIR)) else {
        return Vec::new();
    };
    let mut out: Vec<(String, PathBuf)> = entries
        .filter_map(|e| e.ok())
        .filter_map(|e| {
            let name = e.file_name().to_string_lossy().into_owned();
            let id = name.strip_suffix(".json")?;
            (!name.starts_with('.')).then(|| (id.to_string(), e.path()))
        })
        .collect();
    out.sort();
    out
}

/// Computes the explanations of the active probe images: gets the model, the probe indices and the
/// 1-based epoch, returns the JSON stored under [`PROBE_KEY`] in the epoch's record.
pub type ProbeMapsFn<'f> = Box<dyn FnMut(&dyn Model, &[usize], usize) -> Result<serde_json::Value> + 'f>;

/// The callback that applies [`Request`]s from `RUN/control/`, overrides the learning rate, records
/// interventions in the history, computes probe explanations after each epoch and writes
/// `RUN/progress.json`. Put it first among the callbacks, so a stop it applies at an epoch's end is
/// seen by the checkpoint after it.
pub struct Steering<'f> {
    /// The run folder.
    pub run_dir: PathBuf,
    /// What requests may ask.
    pub limits: SteeringLimits,
    /// Shortest time between two writes of the progress file during an epoch.
    pub progress_every: Duration,
    state: SteeringState,
    probe_maps: Option<ProbeMapsFn<'f>>,
    stop: bool,
    applied: Vec<Intervention>,
    unrecorded: Vec<Intervention>,
    refused: Vec<Refusal>,
    progress: Progress,
    last_write: Option<Instant>,
    epoch_loss: (f64, usize, usize),
}

impl std::fmt::Debug for Steering<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Steering")
            .field("run_dir", &self.run_dir)
            .field("limits", &self.limits)
            .field("state", &self.state)
            .finish_non_exhaustive()
    }
}

impl<'f> Steering<'f> {
    /// Steers the run in `run_dir` within `limits`.
    pub fn new(run_dir: impl Into<PathBuf>, limits: SteeringLimits) -> Self {
        let progress = Progress {
            pid: std::process::id(),
            time: now(),
            running: true,
            epoch: 1,
            epochs: 0,
            batch: 0,
            batches: 0,
            loss: f64::NAN,
            accuracy: f64::NAN,
            lr: f64::NAN,
            limits: limits.clone(),
            state: SteeringState::default(),
            interventions: Vec::new(),
            refused: Vec::new(),
        };
        Steering {
            run_dir: run_dir.into(),
            limits,
            progress_every: Duration::from_millis(250),
            state: SteeringState::default(),
            probe_maps: None,
            stop: false,
            applied: Vec::new(),
            unrecorded: Vec::new(),
            refused: Vec::new(),
            progress,
            last_write: None,
            epoch_loss: (0.0, 0, 0),
        }
    }

    /// Shows probe images `initial` (indices into the probe pool) from the start and computes their
    /// explanations with `f` after every epoch.
    pub fn with_probes(
        mut self,
        initial: Vec<usize>,
        f: impl FnMut(&dyn Model, &[usize], usize) -> Result<serde_json::Value> + 'f,
    ) -> Self {
        self.state.probes = initial;
        self.probe_maps = Some(Box::new(f));
        self
    }

    /// What is applied now.
    pub fn state(&self) -> &SteeringState {
        &self.state
    }

    /// Requests applied so far by this callback, in order.
    pub fn applied(&self) -> &[Intervention] {
        &self.applied
    }

    /// Requests refused so far.
    pub fn refused(&self) -> &[Refusal] {
        &self.refused
    }

    /// Reads, checks and applies the pending requests; `batch` is the number of batches done in
    /// 1-based `epoch`.
    fn poll(&mut self, epoch: usize, batch: usize) {
        for (id, path) in pending(&self.run_dir) {
            let parsed = std::fs::read(&path)
                .map_err(|e| Error::io(&path, e))
                .and_then(|b| {
                    serde_json::from_slice::<Request>(&b)
                        .map_err(|e| Error::data(&path, format!("not a steering request: {e}")))
                });
            // Removed whatever happens, so a bad file is not read again and again.
            let _ = std::fs::remove_file(&path);
            let checked = parsed.and_then(|req| {
                self.limits.check(&req)?;
                self.state.check(&req, &self.limits)?;
                Ok(req)
            });
            match checked {
                Ok(request) => {
                    self.state.apply(&request);
                    if request == Request::Stop {
                        self.stop = true;
                    }
                    let iv = Intervention {
                        id,
                        time: now(),
                        epoch,
                        batch,
                        request,
                    };
                    self.applied.push(iv.clone());
                    self.unrecorded.push(iv);
                }
                Err(e) => self.refused.push(Refusal {
                    id,
                    message: e.to_string(),
                }),
            }
        }
    }

    fn write_progress(&mut self, running: bool) -> Result<()> {
        self.progress.time = now();
        self.progress.running = running;
        self.progress.state = self.state.clone();
        self.progress.limits = self.limits.clone();
        self.progress.interventions = self.applied.clone();
        self.progress.refused = self.refused.clone();
        self.last_write = Some(Instant::now());
        let json = serde_json::to_vec_pretty(&self.progress)?;
        crate::io::write_atomic(self.run_dir.join(PROGRESS_FILE), &json)
    }

    fn record(&mut self, history: &mut History) {
        history.interventions.append(&mut self.unrecorded);
    }
}

impl Callback for Steering<'_> {
    fn on_train_begin(&mut self, ctx: &mut Context<'_>) -> Result<Control> {
        // Requests left from a time no training ran would act on the wrong run: drop them.
        for (_, path) in pending(&self.run_dir) {
            let _ = std::fs::remove_file(path);
        }
        if let Some(p) = &ctx.history.config.penalty {
            if let Some(region) = PenaltyRegion::from_irrelevant(p.region) {
                self.state.penalty = Some(PenaltySettings {
                    enabled: p.enabled,
                    weight: p.weight,
                    region,
                });
            }
        }
        // Replay what the history recorded (a resumed run continues as steered).
        let replay: Vec<Request> = ctx
            .history
            .interventions
            .iter()
            .map(|i| i.request.clone())
            .collect();
        for req in &replay {
            if self.state.check(req, &self.limits).is_ok() {
                self.state.apply(req);
            }
        }
        let cfg = &ctx.history.config;
        self.progress.epochs = cfg.epochs;
        self.progress.epoch = ctx.history.epochs.len() + 1;
        self.progress.lr = self
            .state
            .lr
            .unwrap_or_else(|| cfg.lr_at(ctx.history.epochs.len()));
        self.write_progress(true)?;
        Ok(Control::Continue)
    }

    fn penalty(
        &mut self,
        _epoch: usize,
        current: Option<&InputGradientPenalty>,
    ) -> Option<InputGradientPenalty> {
        match self.state.penalty {
            None => current.cloned(),
            Some(s) => Some(InputGradientPenalty {
                weight: s.weight,
                enabled: s.enabled,
                region: s.region.irrelevant(),
                score: current.map(|c| c.score).unwrap_or_default(),
            }),
        }
    }

    fn learning_rate(&mut self, _epoch: usize, _batch: usize, scheduled: f64) -> f64 {
        let lr = self.state.lr.unwrap_or(scheduled);
        self.progress.lr = lr;
        lr
    }

    fn on_batch_end(&mut self, info: &super::BatchInfo) -> Result<Control> {
        if self.progress.epoch != info.epoch || info.batch == 0 {
            self.epoch_loss = (0.0, 0, 0);
        }
        self.epoch_loss.0 += info.loss * info.size as f64;
        self.epoch_loss.1 += info.correct;
        self.epoch_loss.2 += info.size;
        let seen = self.epoch_loss.2.max(1) as f64;
        self.progress.epoch = info.epoch;
        self.progress.batch = info.batch + 1;
        self.progress.batches = info.batches;
        self.progress.loss = self.epoch_loss.0 / seen;
        self.progress.accuracy = self.epoch_loss.1 as f64 / seen;
        self.poll(info.epoch, info.batch + 1);
        if self.stop || self.last_write.is_none_or(|t| t.elapsed() >= self.progress_every) {
            self.write_progress(true)?;
        }
        Ok(if self.stop {
            Control::Stop
        } else {
            Control::Continue
        })
    }

    fn on_epoch_end(&mut self, ctx: &mut Context<'_>) -> Result<Control> {
        let rec = ctx.record()?;
        let epoch = rec.epoch;
        self.poll(epoch, self.progress.batch);
        if let Some(f) = self.probe_maps.as_mut() {
            if !self.state.probes.is_empty() {
                let value = f(ctx.model, &self.state.probes, epoch)?;
                if let Some(rec) = ctx.history.epochs.last_mut() {
                    rec.probes.insert(PROBE_KEY.to_string(), value);
                }
            }
        }
        self.record(ctx.history);
        self.progress.epoch = epoch;
        self.write_progress(true)?;
        Ok(if self.stop {
            Control::Stop
        } else {
            Control::Continue
        })
    }

    fn on_train_end(&mut self, ctx: &mut Context<'_>) -> Result<()> {
        self.record(ctx.history);
        self.write_progress(false)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limits() -> SteeringLimits {
        SteeringLimits {
            probe_pool: 10,
            max_probes: 2,
            penalty: true,
            masks: false,
            image_size: (32, 48),
            ..Default::default()
        }
    }

    #[test]
    fn absurd_values_are_refused_with_what_would_be_right() {
        let l = limits();
        for lr in [-0.1, 0.0, f64::NAN, f64::INFINITY, 10.5] {
            let e = l.check(&Request::SetLearningRate { lr }).unwrap_err().to_string();
            assert!(e.contains("(0, 10]"), "{lr}: {e}");
        }
        assert!(l.check(&Request::SetLearningRate { lr: 10.0 }).is_ok());
        let e = l.check(&Request::AddProbe { index: 10 }).unwrap_err().to_string();
        assert!(e.contains("unknown probe image 10") && e.contains("0..=9"), "{e}");
        assert!(l.check(&Request::RemoveProbe { index: 9 }).is_ok());
        let pen = |weight: f64, region| Request::Penalty {
            enabled: true,
            weight: Some(weight),
            region: Some(region),
        };
        let rect = |x0, y0, x1, y1| PenaltyRegion::Rect { x0, y0, x1, y1 };
        assert!(l.check(&pen(1.0, rect(0, 0, 48, 32))).is_ok());
        // x runs over the width (48), y over the height (32).
        assert!(l.check(&pen(1.0, rect(0, 0, 48, 33))).is_err());
        assert!(l.check(&pen(1.0, rect(5, 0, 5, 10))).is_err());
        assert!(l.check(&pen(1.0, rect(-1, 0, 5, 10))).is_err());
        assert!(l.check(&pen(-1.0, rect(0, 0, 4, 4))).is_err());
        let e = l.check(&pen(1.0, PenaltyRegion::Object)).unwrap_err().to_string();
        assert!(e.contains("no object masks"), "{e}");
        let no_pen = SteeringLimits {
            penalty: false,
            ..limits()
        };
        let e = no_pen.check(&pen(1.0, rect(0, 0, 4, 4))).unwrap_err().to_string();
        assert!(e.contains("not available in this run"), "{e}");
    }

    #[test]
    fn state_checks_and_applies() {
        let l = limits();
        let mut s = SteeringState::default();
        assert!(s.check(&Request::RemoveProbe { index: 3 }, &l).is_err());
        for r in [Request::AddProbe { index: 3 }, Request::AddProbe { index: 1 }] {
            s.check(&r, &l).unwrap();
            s.apply(&r);
        }
        assert_eq!(s.probes, [3, 1]);
        assert!(s.check(&Request::AddProbe { index: 3 }, &l).is_err());
        // max_probes is 2
        assert!(s.check(&Request::AddProbe { index: 4 }, &l).is_err());
        s.apply(&Request::RemoveProbe { index: 3 });
        assert_eq!(s.probes, [1]);
        let off = Request::Penalty {
            enabled: true,
            weight: None,
            region: None,
        };
        assert!(s.check(&off, &l).is_err());
        s.apply(&Request::Penalty {
            enabled: true,
            weight: Some(2.0),
            region: Some(PenaltyRegion::Background),
        });
        s.apply(&Request::Penalty {
            enabled: false,
            weight: None,
            region: None,
        });
        assert_eq!(
            s.penalty,
            Some(PenaltySettings {
                enabled: false,
                weight: 2.0,
                region: PenaltyRegion::Background
            })
        );
        s.apply(&Request::SetLearningRate { lr: 0.25 });
        assert_eq!(s.lr, Some(0.25));
    }

    #[test]
    fn requests_parse_from_the_page_json_and_refuse_unknown_fields() {
        let r: Request = serde_json::from_str(r#"{"type":"set_learning_rate","lr":0.01}"#).unwrap();
        assert_eq!(r, Request::SetLearningRate { lr: 0.01 });
        let r: Request = serde_json::from_str(
            r#"{"type":"penalty","enabled":true,"weight":10,"region":{"kind":"rect","x0":1,"y0":2,"x1":3,"y1":4}}"#,
        )
        .unwrap();
        assert!(matches!(
            r,
            Request::Penalty {
                region: Some(PenaltyRegion::Rect { x1: 3, .. }),
                ..
            }
        ));
        // A misspelt field is an error, not silently a default.
        assert!(serde_json::from_str::<Request>(r#"{"type":"set_learning_rate","lr":0.1,"lr2":1}"#).is_err());
        assert!(serde_json::from_str::<Request>(r#"{"type":"penalty","enabled":true,"wieght":3}"#).is_err());
        assert!(serde_json::from_str::<Request>(r#"{"type":"explode"}"#).is_err());
    }

    #[test]
    fn submitted_requests_are_applied_in_order_and_bad_ones_refused() {
        let dir = tempfile::tempdir().unwrap();
        let mut st = Steering::new(dir.path(), limits());
        submit(dir.path(), &Request::AddProbe { index: 2 }).unwrap();
        submit(dir.path(), &Request::SetLearningRate { lr: -3.0 }).unwrap();
        submit(dir.path(), &Request::SetLearningRate { lr: 0.5 }).unwrap();
        std::fs::write(dir.path().join(CONTROL_DIR).join("zzz.json"), b"{not json").unwrap();
        // A half-written file (temporary name) is not read.
        std::fs::write(dir.path().join(CONTROL_DIR).join(".1.tmp.x.json"), b"{").unwrap();
        st.poll(1, 3);
        assert_eq!(st.state().probes, [2]);
        assert_eq!(st.state().lr, Some(0.5));
        assert_eq!(st.applied().len(), 2);
        assert_eq!((st.applied()[1].epoch, st.applied()[1].batch), (1, 3));
        assert_eq!(st.refused().len(), 2);
        assert!(st.refused()[0].message.contains("-3"), "{:?}", st.refused());
        assert!(st.refused()[1].message.contains("not a steering request"));
        assert_eq!(pending(dir.path()).len(), 0);
        assert_eq!(st.learning_rate(1, 3, 0.1), 0.5);
    }

    /// A linear model on 2x2 one-channel images, 8 images, batches of 2 (4 batches per epoch).
    fn tiny() -> (crate::models::Staged, tch::nn::VarStore, crate::data::Dataset) {
        use tch::{nn, Device, Kind, Tensor};
        let vs = nn::VarStore::new(Device::Cpu);
        let model = crate::models::Staged::new(1, 2, Device::Cpu)
            .leaf("flat", nn::func(|xs| xs.flatten(1, -1)))
            .leaf("fc", nn::linear(&vs.root() / "fc", 4, 2, Default::default()));
        let xs = Tensor::cat(
            &[
                Tensor::zeros([4, 1, 2, 2], (Kind::Float, Device::Cpu)),
                Tensor::ones([4, 1, 2, 2], (Kind::Float, Device::Cpu)),
            ],
            0,
        );
        let ys = Tensor::from_slice(&[0i64, 0, 0, 0, 1, 1, 1, 1]);
        let data = crate::data::Dataset::new(xs, ys, vec!["dark".into(), "bright".into()], None).unwrap();
        (model, vs, data)
    }

    /// Submits `req` after batch `batch` (1-based count) of epoch `epoch`.
    struct SubmitAt(PathBuf, usize, usize, Request);

    impl Callback for SubmitAt {
        fn on_batch_end(&mut self, info: &super::super::BatchInfo) -> Result<Control> {
            if (info.epoch, info.batch + 1) == (self.1, self.2) {
                submit(&self.0, &self.3)?;
            }
            Ok(Control::Continue)
        }
    }

    #[test]
    fn fit_applies_requests_at_the_next_batch_and_records_them() {
        use super::super::{fit, FitData, Schedule, TrainConfig};
        let (model, mut vs, data) = tiny();
        let dir = tempfile::tempdir().unwrap();
        // A request left from before training is dropped, not applied to this run.
        submit(dir.path(), &Request::Stop).unwrap();
        let cfg = TrainConfig {
            epochs: 5,
            batch_size: 2,
            lr: 0.1,
            schedule: Schedule::Constant,
            verbose: false,
            tracked: super::super::TrackedSet::None,
            ..Default::default()
        };
        let mut lr_req = SubmitAt(dir.path().into(), 1, 2, Request::SetLearningRate { lr: 0.025 });
        let mut stop_req = SubmitAt(dir.path().into(), 3, 1, Request::Stop);
        let mut st = Steering::new(dir.path(), limits());
        let h = fit(
            &model,
            &mut vs,
            &FitData::new(&data),
            &cfg,
            &mut [&mut lr_req, &mut stop_req, &mut st],
        )
        .unwrap();
        // Stopped after batch 1 of epoch 3; epoch 3 is recorded.
        assert_eq!(h.epochs.len(), 3);
        assert!(h.stopped_early);
        let got: Vec<(usize, usize, Request)> = h
            .interventions
            .iter()
            .map(|i| (i.epoch, i.batch, i.request.clone()))
            .collect();
        assert_eq!(
            got,
            [
                (1, 2, Request::SetLearningRate { lr: 0.025 }),
                (3, 1, Request::Stop)
            ]
        );
        // Epoch 1's last step already used the new rate.
        assert_eq!(h.epochs.iter().map(|e| e.lr).collect::<Vec<_>>(), [0.025; 3]);
        let p = Progress::load(dir.path()).unwrap();
        assert!(!p.running && !p.alive());
        assert_eq!((p.epoch, p.batch, p.batches), (3, 1, 4));
        assert_eq!(p.interventions.len(), 2);
    }

    #[test]
    fn a_callback_learning_rate_of_zero_freezes_the_weights() {
        use super::super::{fit, FitData, TrainConfig};
        struct Freeze;
        impl Callback for Freeze {
            fn learning_rate(&mut self, _e: usize, _b: usize, _s: f64) -> f64 {
                0.0
            }
        }
        let (model, mut vs, data) = tiny();
        let before: Vec<f32> = Vec::try_from(vs.variables()["fc.weight"].flatten(0, -1)).unwrap();
        let cfg = TrainConfig {
            epochs: 2,
            batch_size: 4,
            verbose: false,
            ..Default::default()
        };
        let h = fit(&model, &mut vs, &FitData::new(&data), &cfg, &mut [&mut Freeze]).unwrap();
        let after: Vec<f32> = Vec::try_from(vs.variables()["fc.weight"].flatten(0, -1)).unwrap();
        assert_eq!(before, after);
        assert_eq!(h.epochs[1].lr, 0.0);
    }

    #[test]
    fn penalty_requests_override_the_configured_penalty() {
        let mut st = Steering::new("unused", limits());
        let configured = InputGradientPenalty::default();
        assert_eq!(st.penalty(1, Some(&configured)), Some(configured));
        st.state.apply(&Request::Penalty {
            enabled: true,
            weight: Some(3.0),
            region: Some(PenaltyRegion::Rect {
                x0: 1,
                y0: 2,
                x1: 5,
                y1: 6,
            }),
        });
        let p = st.penalty(2, Some(&configured)).unwrap();
        assert_eq!((p.enabled, p.weight, p.score), (true, 3.0, configured.score));
        assert_eq!(
            p.region,
            IrrelevantRegion::Rect {
                x0: 1,
                y0: 2,
                x1: 5,
                y1: 6
            }
        );
        st.state.apply(&Request::Penalty {
            enabled: false,
            weight: None,
            region: None,
        });
        assert!(!st.penalty(3, None).unwrap().active());
        for r in [PenaltyRegion::Object, PenaltyRegion::Background] {
            assert_eq!(PenaltyRegion::from_irrelevant(r.irrelevant()), Some(r));
        }
    }
}
