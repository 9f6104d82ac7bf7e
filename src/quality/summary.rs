//! One row of the explanation-quality table: every per-image metric of one method on one set of
//! images, as mean and standard deviation, with the time the method took per image.

use super::complexity::{entropy, sparseness};
use super::faithfulness::{deletion, insertion, Curve, FaithfulnessConfig, Fill};
use super::localisation::{energy_pointing_game, pointing_game};
use super::{mean, std_dev};
use crate::attribution::{check_positive, Attribution, Target};
use crate::models::Model;
use crate::{Error, Result};
use std::time::Instant;
use tch::Tensor;

/// Mean and sample standard deviation of per-image values.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Summary {
    /// The mean.
    pub mean: f64,
    /// The sample standard deviation (divisor `n - 1`; 0 for one value).
    pub std: f64,
    /// How many values.
    pub n: usize,
}

impl Summary {
    /// The summary of `values`.
    ///
    /// ```
    /// use cnn_explain::quality::Summary;
    /// let s = Summary::of(&[1.0, 3.0]);
    /// assert_eq!((s.mean, s.std, s.n), (2.0, 2f64.sqrt(), 2));
    /// ```
    pub fn of(values: &[f64]) -> Summary {
        Summary {
            mean: mean(values),
            std: std_dev(values),
            n: values.len(),
        }
    }
}

impl std::fmt::Display for Summary {
    /// `mean ± std` with three decimals.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{:.3} ± {:.3}", self.mean, self.std)
    }
}

/// Settings of [`evaluate`].
#[derive(Debug, Clone, PartialEq)]
pub struct QualityConfig {
    /// The deletion curve's settings (Petsiuk et al. delete to black: fill 0).
    pub deletion: FaithfulnessConfig,
    /// The insertion curve's settings (Petsiuk et al. insert onto a blurred copy).
    pub insertion: FaithfulnessConfig,
    /// The pointing game's tolerance in pixels.
    pub pointing_tolerance: f64,
    /// Images explained at once (at least 1).
    pub batch: usize,
}

impl Default for QualityConfig {
    /// Deletion to 0 and insertion onto a blur of sigma 5 pixels, 64 pixels per step, probability
    /// scores; pointing-game tolerance 0; batches of 16 images.
    fn default() -> Self {
        QualityConfig {
            deletion: FaithfulnessConfig::default(),
            insertion: FaithfulnessConfig {
                fill: Fill::Blur { sigma: 5.0 },
                ..Default::default()
            },
            pointing_tolerance: 0.0,
            batch: 16,
        }
    }
}

/// One method's row of the quality table.
#[derive(Debug, Clone, PartialEq)]
pub struct QualityRow {
    /// The method's name.
    pub method: String,
    /// Deletion AUC (lower is better).
    pub deletion_auc: Summary,
    /// Insertion AUC (higher is better).
    pub insertion_auc: Summary,
    /// Pointing-game hit rate (hits as 1, misses as 0), when masks were given.
    pub pointing_game: Option<Summary>,
    /// Energy-based pointing game, when masks were given.
    pub energy_pointing_game: Option<Summary>,
    /// Sparseness (Gini index; higher is sparser).
    pub sparseness: Summary,
    /// Entropy in nats (lower is simpler).
    pub entropy: Summary,
    /// Wall-clock seconds the method took per image (attribution only).
    pub seconds_per_image: f64,
}

/// Evaluates `method` on `images` `[N, C, H, W]` with optional ground-truth `masks` `[N, 1, H, W]`:
/// deletion and insertion AUC, pointing game and energy pointing game (with masks), sparseness and
/// entropy, each as mean and standard deviation over the images, and the method's time per image.
///
/// The maps are computed `config.batch` images at a time; `target` is resolved per batch
/// ([`Target::PerSample`] has one class per image of the whole set).
///
/// ```
/// use cnn_explain::attribution::{gradient::Saliency, Target};
/// use cnn_explain::prelude::*;
/// use cnn_explain::quality::{evaluate, QualityConfig};
/// let vs = tch::nn::VarStore::new(Device::Cpu);
/// let model = Staged::new(1, 2, Device::Cpu)
///     .leaf("flat", tch::nn::func(|xs| xs.flatten(1, -1)))
///     .leaf("fc", tch::nn::linear(vs.root() / "fc", 16, 2, Default::default()));
/// let xs = Tensor::rand([3, 1, 4, 4], (Kind::Float, Device::Cpu));
/// let mut config = QualityConfig::default();
/// config.deletion.step = 4;
/// config.insertion.step = 4;
/// let row = evaluate(&Saliency::default(), &model, &xs, None, &Target::Class(0), &config)?;
/// assert_eq!(row.deletion_auc.n, 3);
/// assert!(row.pointing_game.is_none());
/// # Ok::<(), cnn_explain::Error>(())
/// ```
pub fn evaluate(
    method: &dyn Attribution,
    model: &dyn Model,
    images: &Tensor,
    masks: Option<&Tensor>,
    target: &Target,
    config: &QualityConfig,
) -> Result<QualityRow> {
    Ok(evaluate_with_curves(method, model, images, masks, target, config)?.row)
}

/// A quality-table row with the deletion and insertion curves it was computed from.
#[derive(Debug, Clone, PartialEq)]
pub struct QualityEvaluation {
    /// The row of the table.
    pub row: QualityRow,
    /// Every image's deletion curve, in image order.
    pub deletion: Curve,
    /// Every image's insertion curve, in image order.
    pub insertion: Curve,
}

/// [`evaluate`], also returning every image's deletion and insertion curve (to draw them without
/// computing the maps twice).
///
/// ```
/// use cnn_explain::attribution::{gradient::Saliency, Target};
/// use cnn_explain::prelude::*;
/// use cnn_explain::quality::{evaluate_with_curves, QualityConfig};
/// let vs = tch::nn::VarStore::new(Device::Cpu);
/// let model = Staged::new(1, 2, Device::Cpu)
///     .leaf("flat", tch::nn::func(|xs| xs.flatten(1, -1)))
///     .leaf("fc", tch::nn::linear(vs.root() / "fc", 16, 2, Default::default()));
/// let xs = Tensor::rand([3, 1, 4, 4], (Kind::Float, Device::Cpu));
/// let mut config = QualityConfig { batch: 2, ..Default::default() };
/// config.deletion.step = 4;
/// config.insertion.step = 4;
/// let e = evaluate_with_curves(&Saliency::default(), &model, &xs, None, &Target::Class(0), &config)?;
/// assert_eq!(e.deletion.fractions, [0.0, 0.25, 0.5, 0.75, 1.0]);
/// assert_eq!((e.deletion.scores.len(), e.insertion.auc.len()), (3, 3));
/// assert!((e.row.deletion_auc.mean - cnn_explain::quality::mean(&e.deletion.auc)).abs() < 1e-12);
/// # Ok::<(), cnn_explain::Error>(())
/// ```
pub fn evaluate_with_curves(
    method: &dyn Attribution,
    model: &dyn Model,
    images: &Tensor,
    masks: Option<&Tensor>,
    target: &Target,
    config: &QualityConfig,
) -> Result<QualityEvaluation> {
    check_positive("batch", config.batch)?;
    model.check_input(images)?;
    let n = images.size()[0];
    if let Target::PerSample(v) = target {
        if v.len() as i64 != n {
            return Err(Error::invalid(
                "target",
                format!("Target::PerSample has {} classes for {n} images", v.len()),
            ));
        }
    }
    if let Some(m) = masks {
        let (s, ms) = (images.size(), m.size());
        if ms != [s[0], 1, s[2], s[3]] {
            return Err(Error::shape(
                "masks",
                format!("[{}, 1, {}, {}] (one mask per image)", s[0], s[2], s[3]),
                &ms,
            ));
        }
    }
    let mut values: [Vec<f64>; 6] = Default::default();
    let mut curves: [Option<Curve>; 2] = [None, None];
    let mut seconds = 0.0;
    let mut start = 0i64;
    while start < n {
        let len = (config.batch as i64).min(n - start);
        let xs = images.f_narrow(0, start, len)?;
        let t = match target {
            Target::PerSample(v) => Target::PerSample(v[start as usize..(start + len) as usize].to_vec()),
            other => other.clone(),
        };
        let clock = Instant::now();
        let map = method.attribute(model, &xs, &t)?.detach();
        seconds += clock.elapsed().as_secs_f64();
        let del = deletion(model, &xs, &map, &t, &config.deletion)?;
        let ins = insertion(model, &xs, &map, &t, &config.insertion)?;
        values[0].extend(del.auc.iter().copied());
        values[1].extend(ins.auc.iter().copied());
        for (slot, c) in curves.iter_mut().zip([del, ins]) {
            match slot {
                Some(all) => {
                    all.scores.extend(c.scores);
                    all.auc.extend(c.auc);
                    all.classes.extend(c.classes);
                }
                None => *slot = Some(c),
            }
        }
        if let Some(m) = masks {
            let m = m.f_narrow(0, start, len)?;
            let hits = pointing_game(&map, &m, config.pointing_tolerance)?;
            values[2].extend(hits.iter().map(|&h| if h { 1.0 } else { 0.0 }));
            values[3].extend(energy_pointing_game(&map, &m)?);
        }
        values[4].extend(sparseness(&map)?);
        values[5].extend(entropy(&map)?);
        start += len;
    }
    let row = QualityRow {
        method: method.name(),
        deletion_auc: Summary::of(&values[0]),
        insertion_auc: Summary::of(&values[1]),
        pointing_game: masks.map(|_| Summary::of(&values[2])),
        energy_pointing_game: masks.map(|_| Summary::of(&values[3])),
        sparseness: Summary::of(&values[4]),
        entropy: Summary::of(&values[5]),
        seconds_per_image: seconds / n as f64,
    };
    let [del, ins] = curves;
    let empty = || Curve {
        fractions: Vec::new(),
        scores: Vec::new(),
        auc: Vec::new(),
        classes: Vec::new(),
    };
    Ok(QualityEvaluation {
        row,
        deletion: del.unwrap_or_else(empty),
        insertion: ins.unwrap_or_else(empty),
    })
}
