//! Evaluation: accuracy, loss, confusion matrix, per-class precision/recall/F1, top-k predictions,
//! and the sample selections the explanation notebooks start from (misclassified, least confident,
//! smallest margin, most unstable across training epochs).
//!
//! The per-sample evolution statistics (change frequency, visited classes, misclassification rate)
//! follow InstanceFlow (Pühringer et al. 2020, "InstanceFlow: Visualizing the Evolution of
//! Classifier Confusion on the Instance Level").

mod shard;
pub use shard::Shard;

use crate::models::Model;
use crate::train::History;
use crate::{data::Dataset, Error, Result};
use serde::{Deserialize, Serialize};
use tch::{Kind, Reduction, Tensor};

/// Counts of (true class, predicted class) pairs: `counts[true][predicted]`.
///
/// ```
/// use cnn_explain::eval::ConfusionMatrix;
/// let cm = ConfusionMatrix::from_predictions(&[0, 0, 1, 1], &[0, 1, 1, 1], vec!["a".into(), "b".into()])?;
/// assert_eq!(cm.counts, [[1, 1], [0, 2]]);
/// assert_eq!(cm.accuracy(), 0.75);
/// let b = &cm.per_class()[1];
/// assert_eq!((b.precision, b.recall, b.support), (2.0 / 3.0, 1.0, 2));
/// # Ok::<(), cnn_explain::Error>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConfusionMatrix {
    /// One name per class (row and column order).
    pub class_names: Vec<String>,
    /// `counts[t][p]`: how many samples of true class `t` were predicted as `p`.
    pub counts: Vec<Vec<u64>>,
}

/// Precision, recall, F1 and support of one class (or their macro average).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct ClassMetrics {
    /// Correct predictions of the class / all predictions of the class (0 when never predicted).
    pub precision: f64,
    /// Correct predictions of the class / samples of the class (0 when the class has no samples).
    pub recall: f64,
    /// Harmonic mean of precision and recall (0 when both are 0).
    pub f1: f64,
    /// Number of samples whose true class this is (for a macro average: all samples).
    pub support: u64,
}

impl ConfusionMatrix {
    /// An all-zero matrix over `class_names`.
    pub fn new(class_names: Vec<String>) -> Self {
        let k = class_names.len();
        ConfusionMatrix {
            class_names,
            counts: vec![vec![0; k]; k],
        }
    }

    /// A matrix from true and predicted class indices (same length, each in `0..class_names.len()`).
    pub fn from_predictions(truth: &[i64], predicted: &[i64], class_names: Vec<String>) -> Result<Self> {
        if truth.len() != predicted.len() {
            return Err(Error::invalid(
                "predicted",
                format!(
                    "{} predictions for {} true labels; they must be as many",
                    predicted.len(),
                    truth.len()
                ),
            ));
        }
        let mut cm = ConfusionMatrix::new(class_names);
        for (&t, &p) in truth.iter().zip(predicted) {
            cm.add(t, p)?;
        }
        Ok(cm)
    }

    /// Number of classes.
    pub fn num_classes(&self) -> usize {
        self.counts.len()
    }

    /// Counts one sample of true class `truth` predicted as `predicted`.
    pub fn add(&mut self, truth: i64, predicted: i64) -> Result<()> {
        let k = self.num_classes() as i64;
        for idx in [truth, predicted] {
            if idx < 0 || idx >= k {
                return Err(Error::ClassOutOfRange {
                    index: idx,
                    num_classes: k,
                });
            }
        }
        self.counts[truth as usize][predicted as usize] += 1;
        Ok(())
    }

    /// Number of samples counted.
    pub fn total(&self) -> u64 {
        self.counts.iter().flatten().sum()
    }

    /// Share of samples on the diagonal (0 for an empty matrix).
    pub fn accuracy(&self) -> f64 {
        let total = self.total();
        if total == 0 {
            return 0.0;
        }
        let diag: u64 = (0..self.num_classes()).map(|i| self.counts[i][i]).sum();
        diag as f64 / total as f64
    }

    /// Precision, recall, F1 and support of every class, in class order.
    pub fn per_class(&self) -> Vec<ClassMetrics> {
        let k = self.num_classes();
        (0..k)
            .map(|c| {
                let tp = self.counts[c][c] as f64;
                let support: u64 = self.counts[c].iter().sum();
                let predicted: u64 = (0..k).map(|t| self.counts[t][c]).sum();
                let precision = if predicted == 0 {
                    0.0
                } else {
                    tp / predicted as f64
                };
                let recall = if support == 0 { 0.0 } else { tp / support as f64 };
                let f1 = if precision + recall == 0.0 {
                    0.0
                } else {
                    2.0 * precision * recall / (precision + recall)
                };
                ClassMetrics {
                    precision,
                    recall,
                    f1,
                    support,
                }
            })
            .collect()
    }

    /// Unweighted mean of the per-class precision, recall and F1 (scikit-learn's `average="macro"`,
    /// `zero_division=0`); `support` is the total.
    pub fn macro_average(&self) -> ClassMetrics {
        let per = self.per_class();
        let n = per.len().max(1) as f64;
        ClassMetrics {
            precision: per.iter().map(|m| m.precision).sum::<f64>() / n,
            recall: per.iter().map(|m| m.recall).sum::<f64>() / n,
            f1: per.iter().map(|m| m.f1).sum::<f64>() / n,
            support: self.total(),
        }
    }
}

/// Everything [`evaluate`] measures on a dataset, overall and per sample.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Evaluation {
    /// Share of correctly classified samples.
    pub accuracy: f64,
    /// Mean cross-entropy loss.
    pub loss: f64,
    /// Confusion matrix (rows true, columns predicted).
    pub confusion: ConfusionMatrix,
    /// True class of each sample.
    pub labels: Vec<i64>,
    /// Predicted class (arg-max) of each sample.
    pub predicted: Vec<i64>,
    /// Probability the model gives each sample's true class.
    pub true_prob: Vec<f32>,
    /// Cross-entropy loss of each sample.
    pub losses: Vec<f32>,
    /// Highest class probability of each sample.
    pub confidence: Vec<f32>,
    /// Highest minus second-highest class probability of each sample (1 for a one-class model).
    pub margin: Vec<f32>,
}

impl Evaluation {
    /// Indices of the misclassified samples, in dataset order.
    pub fn misclassified(&self) -> Vec<usize> {
        (0..self.predicted.len())
            .filter(|&i| self.predicted[i] != self.labels[i])
            .collect()
    }

    /// The `k` samples with the lowest top-class probability, least confident first.
    pub fn lowest_confidence(&self, k: usize) -> Vec<usize> {
        lowest(&self.confidence, k)
    }

    /// The `k` samples with the smallest gap between the two most probable classes, smallest first.
    pub fn lowest_margin(&self, k: usize) -> Vec<usize> {
        lowest(&self.margin, k)
    }
}

fn lowest(v: &[f32], k: usize) -> Vec<usize> {
    let mut idx: Vec<usize> = (0..v.len()).collect();
    idx.sort_by(|&a, &b| v[a].total_cmp(&v[b]).then(a.cmp(&b)));
    idx.truncate(k);
    idx
}

fn check_batch(batch_size: usize) -> Result<()> {
    if batch_size == 0 {
        return Err(Error::invalid("batch_size", "must be at least 1"));
    }
    Ok(())
}

/// Checks that `data` is non-empty and fits `model` (classes, channels, size).
pub(crate) fn check_data(model: &dyn Model, data: &Dataset, what: &str) -> Result<()> {
    if data.is_empty() {
        return Err(Error::invalid(
            what,
            "the dataset is empty; it needs at least one image",
        ));
    }
    if data.num_classes() != model.num_classes() {
        return Err(Error::invalid(
            what,
            format!(
                "the dataset has {} classes but the model outputs {}; build the model with num_classes = {}",
                data.num_classes(),
                model.num_classes(),
                data.num_classes()
            ),
        ));
    }
    model.check_input(&data.images.narrow(0, 0, 1))
}

/// Class probabilities `[N, num_classes]` of images `xs` `[N, C, H, W]`, in evaluation mode, computed
/// `batch_size` images at a time on the model's device. The result is on the model's device.
///
/// ```
/// # use cnn_explain::prelude::*; use tch::nn;
/// let vs = nn::VarStore::new(Device::Cpu);
/// let model = Staged::new(1, 2, Device::Cpu)
///     .leaf("flat", nn::func(|xs| xs.flatten(1, -1)))
///     .leaf("fc", nn::linear(&vs.root() / "fc", 4, 2, Default::default()));
/// let p = cnn_explain::eval::predict_proba(&model, &Tensor::rand([3, 1, 2, 2], (Kind::Float, Device::Cpu)), 2)?;
/// assert_eq!(p.size(), [3, 2]);
/// assert!((p.sum(Kind::Float).double_value(&[]) - 3.0).abs() < 1e-5);
/// # Ok::<(), cnn_explain::Error>(())
/// ```
pub fn predict_proba(model: &dyn Model, xs: &Tensor, batch_size: usize) -> Result<Tensor> {
    check_batch(batch_size)?;
    model.check_input(xs)?;
    let n = xs.size()[0];
    let device = model.device();
    tch::no_grad(|| {
        let mut parts = Vec::new();
        let mut start = 0;
        while start < n {
            let len = (batch_size as i64).min(n - start);
            let batch = xs.f_narrow(0, start, len)?.f_to_device(device)?;
            let logits = model.forward_t(&batch, false);
            parts.push(logits.f_softmax(-1, Kind::Float)?);
            start += len;
        }
        Ok(Tensor::f_cat(&parts, 0)?)
    })
}

/// Runs `model` in evaluation mode over `data`, `batch_size` images at a time.
///
/// ```
/// # use cnn_explain::prelude::*; use tch::nn;
/// let vs = nn::VarStore::new(Device::Cpu);
/// let model = Staged::new(1, 2, Device::Cpu)
///     .leaf("flat", nn::func(|xs| xs.flatten(1, -1)))
///     .leaf("fc", nn::linear(&vs.root() / "fc", 4, 2, Default::default()));
/// let data = Dataset::new(Tensor::rand([5, 1, 2, 2], (Kind::Float, Device::Cpu)),
///     Tensor::from_slice(&[0i64, 1, 0, 1, 1]), vec!["a".into(), "b".into()], None)?;
/// let ev = cnn_explain::eval::evaluate(&model, &data, 2)?;
/// assert_eq!(ev.confusion.total(), 5);
/// assert_eq!(ev.predicted.len(), 5);
/// assert!(cnn_explain::eval::evaluate(&model, &data, 0).is_err());
/// # Ok::<(), cnn_explain::Error>(())
/// ```
pub fn evaluate(model: &dyn Model, data: &Dataset, batch_size: usize) -> Result<Evaluation> {
    check_batch(batch_size)?;
    check_data(model, data, "data")?;
    let n = data.len() as i64;
    let device = model.device();
    let k = model.num_classes();
    let (mut labels, mut predicted, mut true_prob, mut losses, mut confidence, mut margin) = (
        Vec::new(),
        Vec::new(),
        Vec::new(),
        Vec::new(),
        Vec::new(),
        Vec::new(),
    );
    tch::no_grad(|| -> Result<()> {
        let mut start = 0;
        while start < n {
            let len = (batch_size as i64).min(n - start);
            let xs = data.images.f_narrow(0, start, len)?.f_to_device(device)?;
            let ys = data.labels.f_narrow(0, start, len)?.f_to_device(device)?;
            let logits = model.forward_t(&xs, false);
            if logits.size() != [len, k] {
                return Err(Error::shape(
                    "model output",
                    format!("logits [{len}, {k}]"),
                    &logits.size(),
                ));
            }
            let logp = logits.f_log_softmax(-1, Kind::Float)?;
            let loss = logp
                .f_gather(1, &ys.f_unsqueeze(1)?, false)?
                .f_squeeze_dim(1)?
                .f_neg()?;
            let probs = logp.f_exp()?;
            let top = probs.f_topk(k.min(2), 1, true, true)?;
            let to_f32 = |t: Tensor| Vec::<f32>::try_from(t.to_device(tch::Device::Cpu).to_kind(Kind::Float));
            let to_i64 = |t: Tensor| Vec::<i64>::try_from(t.to_device(tch::Device::Cpu).to_kind(Kind::Int64));
            labels.extend(to_i64(ys.shallow_clone())?);
            predicted.extend(to_i64(top.1.f_select(1, 0)?)?);
            losses.extend(to_f32(loss.shallow_clone())?);
            true_prob.extend(to_f32(loss.f_neg()?.f_exp()?)?);
            let first = top.0.f_select(1, 0)?;
            confidence.extend(to_f32(first.shallow_clone())?);
            let gap = if k >= 2 {
                first.f_sub(&top.0.f_select(1, 1)?)?
            } else {
                first.f_ones_like()?
            };
            margin.extend(to_f32(gap)?);
            start += len;
        }
        Ok(())
    })?;
    let confusion = ConfusionMatrix::from_predictions(&labels, &predicted, data.class_names.clone())?;
    let loss = losses.iter().map(|&l| l as f64).sum::<f64>() / n as f64;
    Ok(Evaluation {
        accuracy: confusion.accuracy(),
        loss,
        confusion,
        labels,
        predicted,
        true_prob,
        losses,
        confidence,
        margin,
    })
}

/// The `k` most probable classes of one image (`[1, C, H, W]` or `[C, H, W]`), most probable first,
/// as `(class index, probability)`; `k` larger than the number of classes gives all classes.
pub fn top_k(model: &dyn Model, image: &Tensor, k: usize) -> Result<Vec<(i64, f64)>> {
    if k == 0 {
        return Err(Error::invalid("k", "must be at least 1"));
    }
    let xs = match image.dim() {
        3 => image.f_unsqueeze(0)?,
        4 if image.size()[0] == 1 => image.shallow_clone(),
        _ => {
            return Err(Error::shape(
                "image",
                "one image [C, H, W] or [1, C, H, W]",
                &image.size(),
            ))
        }
    };
    let probs = predict_proba(model, &xs, 1)?.f_select(0, 0)?;
    let kk = (k as i64).min(model.num_classes());
    let (vals, idx) = probs.f_topk(kk, 0, true, true)?;
    let vals = Vec::<f64>::try_from(vals.to_device(tch::Device::Cpu).to_kind(Kind::Double))?;
    let idx = Vec::<i64>::try_from(idx.to_device(tch::Device::Cpu))?;
    Ok(idx.into_iter().zip(vals).collect())
}

/// Mean cross-entropy of logits `[N, K]` against labels `[N]` (used by training).
pub(crate) fn cross_entropy(logits: &Tensor, ys: &Tensor) -> Result<Tensor> {
    Ok(logits.f_cross_entropy_loss::<Tensor>(ys, None, Reduction::Mean, -100, 0.0)?)
}

/// How the prediction of one tracked sample evolved over the epochs of a [`History`].
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct SampleEvolution {
    /// Share of epochs (after the first) whose prediction differs from the previous epoch's:
    /// changes / (epochs - 1); 0 with a single epoch.
    pub change_frequency: f64,
    /// Number of distinct classes predicted over all epochs.
    pub visited_classes: usize,
    /// Share of epochs in which the prediction was wrong.
    pub misclassification_rate: f64,
}

/// Evolution statistics of every tracked sample of `history`, in tracked-set order.
///
/// Errors when the history has no tracked predictions.
pub fn evolution(history: &History) -> Result<Vec<SampleEvolution>> {
    let preds = history.tracked_predictions()?;
    let labels = &history.tracked_labels;
    Ok(preds
        .iter()
        .zip(labels)
        .map(|(p, &y)| {
            let e = p.len();
            let changes = p.windows(2).filter(|w| w[0] != w[1]).count();
            let mut distinct = p.clone();
            distinct.sort_unstable();
            distinct.dedup();
            let wrong = p.iter().filter(|&&c| c != y).count();
            SampleEvolution {
                change_frequency: if e > 1 {
                    changes as f64 / (e - 1) as f64
                } else {
                    0.0
                },
                visited_classes: distinct.len(),
                misclassification_rate: if e > 0 { wrong as f64 / e as f64 } else { 0.0 },
            }
        })
        .collect())
}

/// The `k` tracked samples whose prediction changed most often across epochs, most unstable first
/// (ties: higher misclassification rate first, then lower index).
pub fn most_unstable(history: &History, k: usize) -> Result<Vec<usize>> {
    let ev = evolution(history)?;
    let mut idx: Vec<usize> = (0..ev.len()).collect();
    idx.sort_by(|&a, &b| {
        ev[b]
            .change_frequency
            .total_cmp(&ev[a].change_frequency)
            .then(
                ev[b]
                    .misclassification_rate
                    .total_cmp(&ev[a].misclassification_rate),
            )
            .then(a.cmp(&b))
    });
    idx.truncate(k);
    Ok(idx)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(k: usize) -> Vec<String> {
        (0..k).map(|i| format!("c{i}")).collect()
    }

    #[test]
    fn confusion_metrics_by_hand() {
        // truth:     0 0 0 1 1 2 2 2 2
        // predicted: 0 0 1 1 2 2 2 0 2
        let t = [0, 0, 0, 1, 1, 2, 2, 2, 2];
        let p = [0, 0, 1, 1, 2, 2, 2, 0, 2];
        let cm = ConfusionMatrix::from_predictions(&t, &p, names(3)).unwrap();
        assert_eq!(cm.counts, vec![vec![2, 1, 0], vec![0, 1, 1], vec![1, 0, 3]]);
        assert_eq!(cm.total(), 9);
        assert!((cm.accuracy() - 6.0 / 9.0).abs() < 1e-12);
        let m = cm.per_class();
        // class 0: tp 2, predicted 3, support 3 -> P 2/3, R 2/3, F1 2/3
        // class 1: tp 1, predicted 2, support 2 -> P 1/2, R 1/2, F1 1/2
        // class 2: tp 3, predicted 4, support 4 -> P 3/4, R 3/4, F1 3/4
        let want = [(2.0 / 3.0, 2.0 / 3.0, 3), (0.5, 0.5, 2), (0.75, 0.75, 4)];
        for (m, (pr, re, s)) in m.iter().zip(want) {
            assert!((m.precision - pr).abs() < 1e-12);
            assert!((m.recall - re).abs() < 1e-12);
            assert!((m.f1 - pr).abs() < 1e-12);
            assert_eq!(m.support, s);
        }
        let avg = cm.macro_average();
        assert!((avg.f1 - (2.0 / 3.0 + 0.5 + 0.75) / 3.0).abs() < 1e-12);
        assert_eq!(avg.support, 9);
    }

    #[test]
    fn unequal_precision_recall_and_never_predicted_class() {
        // truth 0 0 1 1, predicted 0 0 0 0: class 0 P 1/2 R 1 F1 2/3; class 1 never predicted -> 0.
        let cm = ConfusionMatrix::from_predictions(&[0, 0, 1, 1], &[0, 0, 0, 0], names(2)).unwrap();
        let m = cm.per_class();
        assert_eq!((m[0].precision, m[0].recall), (0.5, 1.0));
        assert!((m[0].f1 - 2.0 / 3.0).abs() < 1e-12);
        assert_eq!((m[1].precision, m[1].recall, m[1].f1), (0.0, 0.0, 0.0));
        let json = serde_json::to_string(&cm).unwrap();
        assert_eq!(serde_json::from_str::<ConfusionMatrix>(&json).unwrap(), cm);
    }

    #[test]
    fn confusion_errors() {
        assert!(ConfusionMatrix::from_predictions(&[0, 1], &[0], names(2)).is_err());
        assert!(matches!(
            ConfusionMatrix::from_predictions(&[0, 2], &[0, 1], names(2)),
            Err(Error::ClassOutOfRange {
                index: 2,
                num_classes: 2
            })
        ));
        assert_eq!(ConfusionMatrix::new(names(2)).accuracy(), 0.0);
    }

    #[test]
    fn lowest_orders_and_breaks_ties_by_index() {
        assert_eq!(lowest(&[0.5, 0.2, 0.2, 0.9], 3), [1, 2, 0]);
        assert_eq!(lowest(&[0.5], 4), [0]);
    }
}
