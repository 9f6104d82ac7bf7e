//! One row of the explanation-quality table: every per-image metric of one method on one set of
//! images, as mean and standard deviation, with the time the method took per image.

use super::complexity::{entropy, sparseness};
use super::faithfulness::{deletion, insertion, Curve, FaithfulnessConfig, Fill};
use super::localisation::{energy_pointing_game, pointing_game};
use super::{mean, std_dev};
use crate::attribution::{check_positive, Attribution, Target};
use crate::models::Model;
use crate::{Error, Result};
use serde::{Deserialize, Serialize};
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

/// One method's metrics per image, in the images' order, before they are summarised: see
/// [`evaluate_values`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct QualityValues {
    /// The method's name.
    pub method: String,
    /// Deletion AUC per image.
    pub deletion_auc: Vec<f64>,
    /// Insertion AUC per image.
    pub insertion_auc: Vec<f64>,
    /// Pointing-game hits (1) and misses (0) per image, when masks were given.
    pub pointing_game: Option<Vec<f64>>,
    /// Energy-based pointing game per image, when masks were given.
    pub energy_pointing_game: Option<Vec<f64>>,
    /// Sparseness (Gini index) per image.
    pub sparseness: Vec<f64>,
    /// Entropy in nats per image.
    pub entropy: Vec<f64>,
    /// Wall-clock seconds the method took for all these images (attribution only).
    pub seconds: f64,
}

impl QualityValues {
    /// How many images the values cover.
    pub fn len(&self) -> usize {
        self.deletion_auc.len()
    }

    /// Whether the values cover no image.
    pub fn is_empty(&self) -> bool {
        self.deletion_auc.is_empty()
    }

    /// The row of the quality table: every metric as mean and standard deviation over the images.
    pub fn summary(&self) -> QualityRow {
        QualityRow {
            method: self.method.clone(),
            deletion_auc: Summary::of(&self.deletion_auc),
            insertion_auc: Summary::of(&self.insertion_auc),
            pointing_game: self.pointing_game.as_deref().map(Summary::of),
            energy_pointing_game: self.energy_pointing_game.as_deref().map(Summary::of),
            sparseness: Summary::of(&self.sparseness),
            entropy: Summary::of(&self.entropy),
            seconds_per_image: if self.is_empty() {
                0.0
            } else {
                self.seconds / self.len() as f64
            },
        }
    }

    /// Joins the values of consecutive parts of one image set, in order; the times add up. The parts
    /// must be of one method and all have masks or none.
    pub fn concat(parts: &[QualityValues]) -> Result<QualityValues> {
        let Some(first) = parts.first() else {
            return Err(Error::invalid("parts", "nothing to join: give at least one part"));
        };
        let mut out = QualityValues {
            deletion_auc: Vec::new(),
            insertion_auc: Vec::new(),
            pointing_game: first.pointing_game.as_ref().map(|_| Vec::new()),
            energy_pointing_game: first.energy_pointing_game.as_ref().map(|_| Vec::new()),
            sparseness: Vec::new(),
            entropy: Vec::new(),
            seconds: 0.0,
            method: first.method.clone(),
        };
        for p in parts {
            if p.method != first.method {
                return Err(Error::invalid(
                    "parts",
                    format!(
                        "values of `{}` and `{}` cannot be joined: one method at a time",
                        first.method, p.method
                    ),
                ));
            }
            let extend = |to: &mut Option<Vec<f64>>, from: &Option<Vec<f64>>| match (to, from) {
                (Some(t), Some(f)) => {
                    t.extend(f);
                    Ok(())
                }
                (None, None) => Ok(()),
                _ => Err(Error::invalid(
                    "parts",
                    "some parts have ground-truth masks and some have not",
                )),
            };
            extend(&mut out.pointing_game, &p.pointing_game)?;
            extend(&mut out.energy_pointing_game, &p.energy_pointing_game)?;
            out.deletion_auc.extend(&p.deletion_auc);
            out.insertion_auc.extend(&p.insertion_auc);
            out.sparseness.extend(&p.sparseness);
            out.entropy.extend(&p.entropy);
            out.seconds += p.seconds;
        }
        Ok(out)
    }
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
    /// The per-image values the row summarises.
    pub values: QualityValues,
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
    let values = QualityValues {
        method: method.name(),
        pointing_game: masks.map(|_| std::mem::take(&mut values[2])),
        energy_pointing_game: masks.map(|_| std::mem::take(&mut values[3])),
        deletion_auc: std::mem::take(&mut values[0]),
        insertion_auc: std::mem::take(&mut values[1]),
        sparseness: std::mem::take(&mut values[4]),
        entropy: std::mem::take(&mut values[5]),
        seconds,
    };
    let [del, ins] = curves;
    let empty = || Curve {
        fractions: Vec::new(),
        scores: Vec::new(),
        auc: Vec::new(),
        classes: Vec::new(),
    };
    Ok(QualityEvaluation {
        row: values.summary(),
        values,
        deletion: del.unwrap_or_else(empty),
        insertion: ins.unwrap_or_else(empty),
    })
}

/// The per-image values behind [`evaluate`]'s row: `method` on `images` `[N, C, H, W]` with optional
/// ground-truth `masks` `[N, 1, H, W]`, one value per image and metric, in the images' order.
///
/// A large evaluation split into parts (for example `cnn-explain quality --shard I/N`) keeps these,
/// joins them with [`QualityValues::concat`] and summarises them with [`QualityValues::summary`]:
/// the same row as one unsharded [`evaluate`] (the time aside).
///
/// The maps are computed `config.batch` images at a time; `target` is resolved per batch
/// ([`Target::PerSample`] has one class per image of the whole set).
///
/// ```
/// use cnn_explain::attribution::{gradient::Saliency, Target};
/// use cnn_explain::prelude::*;
/// use cnn_explain::quality::{evaluate_values, QualityConfig, QualityValues};
/// let vs = tch::nn::VarStore::new(Device::Cpu);
/// let model = Staged::new(1, 2, Device::Cpu)
///     .leaf("flat", tch::nn::func(|xs| xs.flatten(1, -1)))
///     .leaf("fc", tch::nn::linear(vs.root() / "fc", 16, 2, Default::default()));
/// let xs = Tensor::rand([3, 1, 4, 4], (Kind::Float, Device::Cpu));
/// let mut config = QualityConfig::default();
/// config.deletion.step = 4;
/// config.insertion.step = 4;
/// let m = Saliency::default();
/// let whole = evaluate_values(&m, &model, &xs, None, &Target::Class(0), &config)?;
/// assert_eq!(whole.deletion_auc.len(), 3);
/// let first = evaluate_values(&m, &model, &xs.narrow(0, 0, 2), None, &Target::Class(0), &config)?;
/// let last = evaluate_values(&m, &model, &xs.narrow(0, 2, 1), None, &Target::Class(0), &config)?;
/// let joined = QualityValues::concat(&[first, last])?;
/// assert_eq!(joined.deletion_auc, whole.deletion_auc);
/// assert_eq!(joined.summary().sparseness, whole.summary().sparseness);
/// # Ok::<(), cnn_explain::Error>(())
/// ```
pub fn evaluate_values(
    method: &dyn Attribution,
    model: &dyn Model,
    images: &Tensor,
    masks: Option<&Tensor>,
    target: &Target,
    config: &QualityConfig,
) -> Result<QualityValues> {
    Ok(evaluate_with_curves(method, model, images, masks, target, config)?.values)
}

/// The quality table as Markdown: one row per method, every metric as `mean ± std` over the
/// images ("n/a" for the localisation columns without masks), and the time per image.
///
/// ```
/// use cnn_explain::quality::{markdown_table, QualityRow, Summary};
/// let s = Summary::of(&[0.25, 0.75]);
/// let row = QualityRow {
///     method: "Saliency".into(),
///     deletion_auc: s,
///     insertion_auc: s,
///     pointing_game: None,
///     energy_pointing_game: Some(s),
///     sparseness: s,
///     entropy: s,
///     seconds_per_image: 0.0125,
/// };
/// let table = markdown_table(&[row]);
/// assert!(table.lines().nth(2).unwrap().starts_with("| Saliency | 0.500 ± 0.354 |"));
/// assert!(table.contains("| n/a | 0.500 ± 0.354 |"));
/// assert!(table.contains("| 12.50 |"));
/// ```
pub fn markdown_table(rows: &[QualityRow]) -> String {
    let mut out = String::from(
        "| method | deletion AUC (lower is better) | insertion AUC (higher) | pointing game | energy pointing game | sparseness (Gini) | entropy (nats) | ms per image |\n\
         |---|---|---|---|---|---|---|---|\n",
    );
    let opt = |s: &Option<Summary>| s.map_or_else(|| "n/a".to_string(), |s| s.to_string());
    for r in rows {
        out += &format!(
            "| {} | {} | {} | {} | {} | {} | {} | {:.2} |\n",
            r.method,
            r.deletion_auc,
            r.insertion_auc,
            opt(&r.pointing_game),
            opt(&r.energy_pointing_game),
            r.sparseness,
            r.entropy,
            r.seconds_per_image * 1000.0
        );
    }
    out
}
