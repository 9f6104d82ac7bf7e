//! Callbacks: code that [`super::fit`] runs at fixed points of training (Keras' and
//! burn-train's design), with early stopping, checkpointing and per-epoch probes built in.

use super::{save_state, EpochRecord, History, InputGradientPenalty, OptimizerState};
use crate::models::Model;
use crate::{Error, Result};
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};
use tch::{nn, Tensor};

/// Whether training goes on after a callback ran.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Control {
    /// Go on.
    Continue,
    /// Stop after this point (a stop from [`Callback::on_batch_end`] ends the epoch early; the
    /// epoch is still evaluated and recorded).
    Stop,
}

/// What callbacks can see and change: the model, its variables, the history so far (whose last
/// record is the epoch that just ended) and the optimiser's state.
pub struct Context<'a> {
    /// The model being trained.
    pub model: &'a dyn Model,
    /// Its variables.
    pub vs: &'a mut nn::VarStore,
    /// The history so far.
    pub history: &'a mut History,
    /// The optimiser's buffers.
    pub optimizer: &'a OptimizerState,
}

impl Context<'_> {
    /// The record of the epoch that just ended (an error before the first epoch has ended).
    pub fn record(&self) -> Result<&EpochRecord> {
        self.history
            .epochs
            .last()
            .ok_or_else(|| Error::invalid("history", "no epoch has finished yet"))
    }
}

/// One finished training batch.
#[derive(Debug, Clone, Copy)]
pub struct BatchInfo {
    /// 1-based epoch number.
    pub epoch: usize,
    /// 0-based batch index within the epoch.
    pub batch: usize,
    /// Number of batches in the epoch.
    pub batches: usize,
    /// Images in this batch.
    pub size: usize,
    /// Mean loss of this batch.
    pub loss: f64,
    /// Images of this batch the model classified correctly (training mode, before the step).
    pub correct: usize,
}

/// Code run at fixed points of training. Every method does nothing by default.
pub trait Callback {
    /// Before the first epoch (after resuming: before the first new epoch).
    fn on_train_begin(&mut self, _ctx: &mut Context<'_>) -> Result<Control> {
        Ok(Control::Continue)
    }
    /// The learning rate of the optimisation step about to run: gets the 1-based epoch, the 0-based
    /// batch and the rate the schedule gives (or the one an earlier callback returned), returns the
    /// rate to use. The default keeps `scheduled`.
    fn learning_rate(&mut self, _epoch: usize, _batch: usize, scheduled: f64) -> f64 {
        scheduled
    }
    /// At the start of each epoch (`epoch` is 1-based), before its first batch: the input-gradient
    /// penalty to train this epoch with, given the one in force (`TrainConfig::penalty` at the
    /// first epoch, then what the callbacks returned; callbacks are asked in order, each seeing the
    /// previous one's answer). The default keeps it. Return `None` or a penalty with
    /// `enabled: false` to train on the cross-entropy alone.
    fn penalty(
        &mut self,
        _epoch: usize,
        current: Option<&InputGradientPenalty>,
    ) -> Option<InputGradientPenalty> {
        current.cloned()
    }
    /// After each optimisation step.
    fn on_batch_end(&mut self, _info: &BatchInfo) -> Result<Control> {
        Ok(Control::Continue)
    }
    /// After each epoch's evaluation, before the history is saved; the record is
    /// `ctx.history.epochs.last()`, and changes to it are saved.
    fn on_epoch_end(&mut self, _ctx: &mut Context<'_>) -> Result<Control> {
        Ok(Control::Continue)
    }
    /// After the last epoch or a stop.
    fn on_train_end(&mut self, _ctx: &mut Context<'_>) -> Result<()> {
        Ok(())
    }
}

/// A metric of an [`EpochRecord`] that callbacks monitor.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Metric {
    /// Training loss (lower is better).
    TrainLoss,
    /// Training accuracy (higher is better).
    TrainAccuracy,
    /// Validation loss (lower is better).
    ValLoss,
    /// Validation accuracy (higher is better).
    ValAccuracy,
}

impl Metric {
    /// The metric's value in `record`, or an error when it was not measured (no validation set).
    pub fn value(self, record: &EpochRecord) -> Result<f64> {
        let v = match self {
            Metric::TrainLoss => Some(record.train_loss),
            Metric::TrainAccuracy => Some(record.train_accuracy),
            Metric::ValLoss => record.val_loss,
            Metric::ValAccuracy => record.val_accuracy,
        };
        v.ok_or_else(|| {
            Error::invalid(
                "monitor",
                format!("{self:?} was not measured: give a validation set (FitData::with_val) or monitor TrainLoss"),
            )
        })
    }

    /// True for accuracies, false for losses.
    pub fn higher_is_better(self) -> bool {
        matches!(self, Metric::TrainAccuracy | Metric::ValAccuracy)
    }

    /// True when `value` beats `best` by more than `min_delta`.
    fn improves(self, value: f64, best: Option<f64>, min_delta: f64) -> bool {
        match best {
            None => true,
            Some(b) if self.higher_is_better() => value > b + min_delta,
            Some(b) => value < b - min_delta,
        }
    }
}

fn snapshot(vs: &nn::VarStore) -> Result<Vec<(String, Tensor)>> {
    let mut vars: Vec<(String, Tensor)> = vs.variables().into_iter().collect();
    vars.sort_by(|a, b| a.0.cmp(&b.0));
    tch::no_grad(|| {
        vars.into_iter()
            .map(|(n, t)| Ok((n, t.detach().copy())))
            .collect()
    })
}

fn restore(vs: &nn::VarStore, saved: &[(String, Tensor)]) -> Result<()> {
    let vars = vs.variables();
    tch::no_grad(|| {
        for (name, src) in saved {
            if let Some(dst) = vars.get(name) {
                dst.shallow_clone().f_copy_(src)?;
            }
        }
        Ok(())
    })
}

/// Stops training when the monitored metric has not improved by more than `min_delta` for
/// `patience` epochs in a row; with `restore_best`, puts back the weights of the best epoch at the
/// end.
///
/// ```
/// use cnn_explain::train::{Control, EarlyStopping, Metric};
/// let mut es = EarlyStopping::new(Metric::ValLoss, 2);
/// let seq = [1.0, 0.8, 0.85, 0.9];
/// let ctl: Vec<Control> = seq.iter().enumerate().map(|(i, &v)| es.observe(i + 1, v)).collect();
/// assert_eq!(ctl, [Control::Continue, Control::Continue, Control::Continue, Control::Stop]);
/// assert_eq!(es.best_epoch(), Some(2));
/// ```
#[derive(Debug)]
pub struct EarlyStopping {
    /// The metric watched.
    pub monitor: Metric,
    /// Epochs without improvement tolerated before stopping.
    pub patience: usize,
    /// Smallest change that counts as an improvement.
    pub min_delta: f64,
    /// Restore the best epoch's weights when training ends.
    pub restore_best: bool,
    best: Option<f64>,
    best_epoch: Option<usize>,
    wait: usize,
    saved: Option<Vec<(String, Tensor)>>,
}

impl EarlyStopping {
    /// Watches `monitor` with `patience`, `min_delta` 0 and `restore_best` on.
    pub fn new(monitor: Metric, patience: usize) -> Self {
        EarlyStopping {
            monitor,
            patience,
            min_delta: 0.0,
            restore_best: true,
            best: None,
            best_epoch: None,
            wait: 0,
            saved: None,
        }
    }

    /// Sets `min_delta`.
    pub fn min_delta(mut self, min_delta: f64) -> Self {
        self.min_delta = min_delta;
        self
    }

    /// Sets `restore_best`.
    pub fn restore_best(mut self, restore: bool) -> Self {
        self.restore_best = restore;
        self
    }

    /// The best value seen so far.
    pub fn best(&self) -> Option<f64> {
        self.best
    }

    /// The epoch of the best value.
    pub fn best_epoch(&self) -> Option<usize> {
        self.best_epoch
    }

    /// Feeds the metric's value at `epoch`; returns [`Control::Stop`] when patience has run out.
    pub fn observe(&mut self, epoch: usize, value: f64) -> Control {
        if self.monitor.improves(value, self.best, self.min_delta) {
            self.best = Some(value);
            self.best_epoch = Some(epoch);
            self.wait = 0;
            Control::Continue
        } else {
            self.wait += 1;
            if self.wait >= self.patience {
                Control::Stop
            } else {
                Control::Continue
            }
        }
    }
}

impl Default for EarlyStopping {
    /// Validation loss, patience 5.
    fn default() -> Self {
        EarlyStopping::new(Metric::ValLoss, 5)
    }
}

impl Callback for EarlyStopping {
    fn on_epoch_end(&mut self, ctx: &mut Context<'_>) -> Result<Control> {
        let rec = ctx.record()?;
        let (epoch, value) = (rec.epoch, self.monitor.value(rec)?);
        let ctl = self.observe(epoch, value);
        if self.restore_best && self.best_epoch == Some(epoch) {
            self.saved = Some(snapshot(ctx.vs)?);
        }
        Ok(ctl)
    }

    fn on_train_end(&mut self, ctx: &mut Context<'_>) -> Result<()> {
        if let (true, Some(saved)) = (self.restore_best, &self.saved) {
            restore(ctx.vs, saved)?;
        }
        Ok(())
    }
}

/// Saves the weights after every epoch (`last.safetensors`, plus `last.state.safetensors` with the
/// optimiser state for [`super::resume`]) and when the monitored metric improves
/// (`best.safetensors`), each written atomically into `dir`.
#[derive(Debug)]
pub struct Checkpoint {
    /// Folder the files go to (created when missing).
    pub dir: PathBuf,
    /// Write `best.safetensors` when `monitor` improves.
    pub save_best: bool,
    /// Write `last.safetensors` and `last.state.safetensors` after every epoch.
    pub save_last: bool,
    /// The metric that decides the best epoch.
    pub monitor: Metric,
    best: Option<f64>,
}

impl Checkpoint {
    /// File name of the last epoch's weights.
    pub const LAST: &'static str = "last.safetensors";
    /// File name of the last epoch's weights, optimiser state and epoch number.
    pub const STATE: &'static str = "last.state.safetensors";
    /// File name of the best epoch's weights.
    pub const BEST: &'static str = "best.safetensors";

    /// Saves best (by validation loss) and last into `dir`.
    pub fn new(dir: impl Into<PathBuf>) -> Self {
        Checkpoint {
            dir: dir.into(),
            save_best: true,
            save_last: true,
            monitor: Metric::ValLoss,
            best: None,
        }
    }

    /// Sets the metric that decides the best epoch.
    pub fn monitor(mut self, monitor: Metric) -> Self {
        self.monitor = monitor;
        self
    }

    /// Path of the state file that [`super::resume`] reads.
    pub fn state_path(&self) -> PathBuf {
        self.dir.join(Self::STATE)
    }

    fn save_weights(vs: &nn::VarStore, path: &Path) -> Result<()> {
        crate::io::with_atomic_path(path, |tmp| Ok(vs.save(tmp)?))
    }
}

impl Callback for Checkpoint {
    fn on_epoch_end(&mut self, ctx: &mut Context<'_>) -> Result<Control> {
        let rec = ctx.record()?;
        let epoch = rec.epoch;
        if self.save_best {
            let v = self.monitor.value(rec)?;
            if self.monitor.improves(v, self.best, 0.0) {
                self.best = Some(v);
                Self::save_weights(ctx.vs, &self.dir.join(Self::BEST))?;
            }
        }
        if self.save_last {
            Self::save_weights(ctx.vs, &self.dir.join(Self::LAST))?;
            save_state(&self.state_path(), ctx.vs, ctx.optimizer, epoch)?;
        }
        Ok(Control::Continue)
    }
}

type ProbeFn<'f> = Box<dyn FnMut(&dyn Model, usize) -> Result<serde_json::Value> + 'f>;

/// Calls a function with the model and the 1-based epoch number after every `every`-th epoch and
/// stores what it returns in the epoch record's `probes` under `name` (for example the saliency of
/// fixed images, or a statistic of some layer).
///
/// ```
/// use cnn_explain::train::Probe;
/// let probe = Probe::new("classes", |model, _epoch| Ok(serde_json::json!(model.num_classes())));
/// assert_eq!(probe.name, "classes");
/// ```
pub struct Probe<'f> {
    /// Key in [`EpochRecord::probes`].
    pub name: String,
    /// Run after epochs `every`, `2 * every`, ... (1 = every epoch).
    pub every: usize,
    f: ProbeFn<'f>,
}

impl<'f> Probe<'f> {
    /// A probe run after every epoch.
    pub fn new(
        name: impl Into<String>,
        f: impl FnMut(&dyn Model, usize) -> Result<serde_json::Value> + 'f,
    ) -> Self {
        Probe {
            name: name.into(),
            every: 1,
            f: Box::new(f),
        }
    }

    /// Runs the probe only after every `every`-th epoch.
    pub fn every(mut self, every: usize) -> Self {
        self.every = every;
        self
    }
}

impl std::fmt::Debug for Probe<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Probe")
            .field("name", &self.name)
            .field("every", &self.every)
            .finish_non_exhaustive()
    }
}

impl Callback for Probe<'_> {
    fn on_epoch_end(&mut self, ctx: &mut Context<'_>) -> Result<Control> {
        if self.every == 0 {
            return Err(Error::invalid("Probe::every", "must be at least 1"));
        }
        let epoch = ctx.record()?.epoch;
        if epoch % self.every == 0 {
            let value = (self.f)(ctx.model, epoch)?;
            if let Some(rec) = ctx.history.epochs.last_mut() {
                rec.probes.insert(self.name.clone(), value);
            }
        }
        Ok(Control::Continue)
    }
}
