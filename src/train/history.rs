//! What a training run recorded, epoch by epoch, as JSON.

use super::steering::Intervention;
use super::TrainConfig;
use crate::eval::ConfusionMatrix;
use crate::{Error, Result};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::Path;

/// Per-sample results on the tracked set in one epoch (all vectors in tracked-set order).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TrackedEpoch {
    /// Predicted class of each sample.
    pub predicted: Vec<i64>,
    /// Probability of each sample's true class.
    pub true_prob: Vec<f32>,
    /// Cross-entropy loss of each sample.
    pub loss: Vec<f32>,
}

/// Everything measured in one epoch.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EpochRecord {
    /// 1-based epoch number.
    pub epoch: usize,
    /// Learning rate used in this epoch.
    pub lr: f64,
    /// Mean training loss over the epoch (training mode, as the batches went by).
    pub train_loss: f64,
    /// Training accuracy over the epoch (training mode, as the batches went by).
    pub train_accuracy: f64,
    /// Validation loss (evaluation mode) at the end of the epoch, when a validation set was given.
    pub val_loss: Option<f64>,
    /// Validation accuracy at the end of the epoch.
    pub val_accuracy: Option<f64>,
    /// Test loss at the end of the epoch, when a test set was given.
    pub test_loss: Option<f64>,
    /// Test accuracy at the end of the epoch.
    pub test_accuracy: Option<f64>,
    /// Confusion matrix on the tracked set (the test set by default).
    pub confusion: Option<ConfusionMatrix>,
    /// Per-sample predictions on the tracked set.
    pub tracked: Option<TrackedEpoch>,
    /// Wall-clock seconds of the epoch, evaluation included.
    pub seconds: f64,
    /// Outputs of [`super::Probe`] callbacks, by probe name.
    #[serde(default)]
    pub probes: BTreeMap<String, serde_json::Value>,
    /// The input-gradient penalty in force in this epoch (weight and mean value), `None` when
    /// training used the cross-entropy alone.
    #[serde(default)]
    pub penalty: Option<super::PenaltyRecord>,
}

/// A training run: its configuration and one [`EpochRecord`] per finished epoch.
///
/// ```
/// use cnn_explain::train::{History, TrainConfig};
/// let h = History::new(TrainConfig::default(), vec!["a".into()], vec![]);
/// let dir = tempfile::tempdir().unwrap();
/// h.save(dir.path().join("h.json"))?;
/// assert_eq!(History::load(dir.path().join("h.json"))?, h);
/// # Ok::<(), cnn_explain::Error>(())
/// ```
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct History {
    /// The configuration of the run.
    pub config: TrainConfig,
    /// Class names of the training data.
    pub class_names: Vec<String>,
    /// True labels of the tracked set (empty when nothing is tracked).
    pub tracked_labels: Vec<i64>,
    /// One record per finished epoch, in order.
    pub epochs: Vec<EpochRecord>,
    /// True when a callback stopped training before `config.epochs`.
    #[serde(default)]
    pub stopped_early: bool,
    /// Requests applied while training ran (see [`super::steering`]), in order.
    #[serde(default)]
    pub interventions: Vec<Intervention>,
}

impl History {
    /// An empty history.
    pub fn new(config: TrainConfig, class_names: Vec<String>, tracked_labels: Vec<i64>) -> Self {
        History {
            config,
            class_names,
            tracked_labels,
            epochs: Vec::new(),
            stopped_early: false,
            interventions: Vec::new(),
        }
    }

    /// Writes the history as pretty JSON, atomically.
    pub fn save(&self, path: impl AsRef<Path>) -> Result<()> {
        let json = serde_json::to_vec_pretty(self)?;
        crate::io::write_atomic(path, &json)
    }

    /// Reads a history written by [`History::save`].
    pub fn load(path: impl AsRef<Path>) -> Result<Self> {
        let path = path.as_ref();
        let bytes = std::fs::read(path).map_err(|e| Error::io(path, e))?;
        serde_json::from_slice(&bytes).map_err(|e| Error::data(path, format!("not a training history: {e}")))
    }

    /// The last finished epoch's record.
    pub fn last(&self) -> Option<&EpochRecord> {
        self.epochs.last()
    }

    /// Training loss per epoch.
    pub fn train_losses(&self) -> Vec<f64> {
        self.epochs.iter().map(|e| e.train_loss).collect()
    }

    /// Validation loss per epoch (`None` where there was no validation set).
    pub fn val_losses(&self) -> Vec<Option<f64>> {
        self.epochs.iter().map(|e| e.val_loss).collect()
    }

    /// Predicted class of every tracked sample at every epoch: `[sample][epoch]`.
    ///
    /// Errors when some epoch has no tracked predictions or their count disagrees with
    /// `tracked_labels`.
    pub fn tracked_predictions(&self) -> Result<Vec<Vec<i64>>> {
        self.tracked_matrix(|t, i| t.predicted[i])
    }

    /// Probability of the true class of every tracked sample at every epoch: `[sample][epoch]`.
    pub fn tracked_true_probs(&self) -> Result<Vec<Vec<f32>>> {
        self.tracked_matrix(|t, i| t.true_prob[i])
    }

    fn tracked_matrix<T>(&self, get: impl Fn(&TrackedEpoch, usize) -> T) -> Result<Vec<Vec<T>>> {
        let n = self.tracked_labels.len();
        if n == 0 {
            return Err(Error::invalid(
                "history",
                "no tracked set was recorded (TrainConfig::tracked was None or the set was not given)",
            ));
        }
        let mut tracked = Vec::with_capacity(self.epochs.len());
        for e in &self.epochs {
            match &e.tracked {
                Some(t) if t.predicted.len() == n && t.true_prob.len() == n && t.loss.len() == n => {
                    tracked.push(t)
                }
                _ => {
                    return Err(Error::invalid(
                        "history",
                        format!(
                            "epoch {} has no per-sample record for the {n} tracked samples",
                            e.epoch
                        ),
                    ))
                }
            }
        }
        Ok((0..n)
            .map(|i| tracked.iter().map(|t| get(t, i)).collect())
            .collect())
    }
}
