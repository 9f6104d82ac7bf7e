//! Faithfulness: does removing what the map calls important change the model's output?
//!
//! - [`deletion`] and [`insertion`] (Petsiuk, Das and Saenko, "RISE", BMVC 2018): pixels are
//!   ranked by the map, most important first, and removed from the image (deletion: replaced by the
//!   fill) or revealed on the fill (insertion), `step` pixels at a time; the class score after each
//!   step draws a curve over the fraction of pixels changed, whose area under the curve (AUC,
//!   trapezoid rule over `[0, 1]`) summarises it. A faithful map gives a low deletion AUC (the score
//!   falls fast) and a high insertion AUC. The paper deletes to black (a constant 0) and inserts onto
//!   a blurred copy.
//! - [`confidence_change`] (Chattopadhyay et al., "Grad-CAM++", WACV 2018): the image is multiplied
//!   by the map (normalised to `[0, 1]`); the average drop is the mean of
//!   `max(0, Y - O) / Y` and the increase in confidence the share of images with `O > Y`, both in
//!   percent, with `Y` the class probability on the image and `O` on the masked image.
//!
//! Maps `[N, C, H, W]` are summed over channels to rank pixels; all channels of a pixel are removed
//! together.

use super::{descending_order, per_sample};
use crate::attribution::gradient::Baseline;
use crate::attribution::{check_positive, select_scores, Target};
use crate::models::Model;
use crate::{Error, Result};
use tch::{Kind, Tensor};

/// What replaces a removed pixel (deletion) or what pixels are revealed on (insertion).
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Fill {
    /// A constant value in every channel (0 is black for images in `[0, 1]`).
    Constant(f64),
    /// The image blurred by a Gaussian of standard deviation `sigma` pixels (kernel radius
    /// `ceil(3 sigma)`, edges replicated), as Petsiuk et al.'s insertion.
    Blur {
        /// Standard deviation of the Gaussian, in pixels (positive).
        sigma: f64,
    },
}

/// Which number of the model's output is the curve.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Score {
    /// The softmax probability of the target class (Petsiuk et al.).
    #[default]
    Probability,
    /// The logit of the target class.
    Logit,
}

/// Settings of [`deletion`] and [`insertion`].
#[derive(Debug, Clone, PartialEq)]
pub struct FaithfulnessConfig {
    /// Pixels removed or inserted per step (at least 1); the last step may be smaller.
    pub step: usize,
    /// The value of removed pixels (deletion) or the image pixels are revealed on (insertion).
    pub fill: Fill,
    /// Probability or logit of the target class.
    pub score: Score,
    /// At most this many images go through the model at once (at least 1).
    pub batch: usize,
}

impl Default for FaithfulnessConfig {
    /// 64 pixels per step (65 points for a 64x64 image), fill 0, probability, batch 64.
    fn default() -> Self {
        FaithfulnessConfig {
            step: 64,
            fill: Fill::Constant(0.0),
            score: Score::Probability,
            batch: 64,
        }
    }
}

/// Deletion or insertion curves of a batch.
#[derive(Debug, Clone, PartialEq)]
pub struct Curve {
    /// The fraction of pixels removed or inserted at each point, from 0 to 1.
    pub fractions: Vec<f64>,
    /// The score at each point, one row per sample.
    pub scores: Vec<Vec<f64>>,
    /// The area under each sample's curve (trapezoid rule over `fractions`).
    pub auc: Vec<f64>,
    /// The class each curve follows, per sample.
    pub classes: Vec<i64>,
}

impl Curve {
    /// The mean score at each point over the samples.
    ///
    /// ```
    /// use cnn_explain::quality::Curve;
    /// let c = Curve { fractions: vec![0.0, 1.0], scores: vec![vec![1.0, 0.0], vec![3.0, 2.0]], auc: vec![0.5, 2.5], classes: vec![0, 0] };
    /// assert_eq!(c.mean_scores(), [2.0, 1.0]);
    /// ```
    pub fn mean_scores(&self) -> Vec<f64> {
        (0..self.fractions.len())
            .map(|k| {
                super::mean(
                    &self
                        .scores
                        .iter()
                        .filter_map(|r| r.get(k).copied())
                        .collect::<Vec<_>>(),
                )
            })
            .collect()
    }
}

/// The trapezoid rule: the area under `ys` over `xs` (same length).
pub(crate) fn trapezoid(xs: &[f64], ys: &[f64]) -> f64 {
    xs.windows(2)
        .zip(ys.windows(2))
        .map(|(x, y)| (x[1] - x[0]) * (y[0] + y[1]) / 2.0)
        .sum()
}

/// The deletion curve (Petsiuk et al. 2018): the class score as the most important pixels of
/// `map` are replaced by `config.fill`, `config.step` pixels at a time.
///
/// `input` `[N, C, H, W]`, `map` `[N, 1, H, W]` or `[N, C, H, W]`. Pixels are ranked by the map
/// (channels summed) in descending order, ties broken by row-major index. `target` is resolved on
/// `input` (the predicted class of the intact image for [`Target::Predicted`]) and kept fixed along
/// the curve.
///
/// ```
/// use cnn_explain::prelude::*;
/// use cnn_explain::quality::{deletion, FaithfulnessConfig, Score};
/// // A linear model: the logit is the sum of the four pixels.
/// let model = Staged::new(1, 1, Device::Cpu)
///     .leaf("sum", tch::nn::func(|xs| xs.flatten(1, -1).sum_dim_intlist(1, true, Kind::Float)));
/// let xs = Tensor::from_slice(&[1f32, 2., 3., 4.]).view([1, 1, 2, 2]);
/// let config = FaithfulnessConfig { step: 1, score: Score::Logit, ..Default::default() };
/// let curve = deletion(&model, &xs, &xs, &Target::Class(0), &config)?;
/// assert_eq!(curve.scores[0], [10.0, 6.0, 3.0, 1.0, 0.0]);
/// assert_eq!(curve.auc[0], 0.25 * (8.0 + 4.5 + 2.0 + 0.5));
/// # Ok::<(), cnn_explain::Error>(())
/// ```
pub fn deletion(
    model: &dyn Model,
    input: &Tensor,
    map: &Tensor,
    target: &Target,
    config: &FaithfulnessConfig,
) -> Result<Curve> {
    curve(model, input, map, target, config, false)
}

/// The insertion curve (Petsiuk et al. 2018): the class score as the most important pixels of
/// `map` are revealed on `config.fill`, `config.step` pixels at a time (Petsiuk et al. insert onto
/// [`Fill::Blur`]).
///
/// Shapes and ranking as in [`deletion`].
///
/// ```
/// use cnn_explain::prelude::*;
/// use cnn_explain::quality::{insertion, FaithfulnessConfig, Score};
/// let model = Staged::new(1, 1, Device::Cpu)
///     .leaf("sum", tch::nn::func(|xs| xs.flatten(1, -1).sum_dim_intlist(1, true, Kind::Float)));
/// let xs = Tensor::from_slice(&[1f32, 2., 3., 4.]).view([1, 1, 2, 2]);
/// let config = FaithfulnessConfig { step: 1, score: Score::Logit, ..Default::default() };
/// let curve = insertion(&model, &xs, &xs, &Target::Class(0), &config)?;
/// assert_eq!(curve.scores[0], [0.0, 4.0, 7.0, 9.0, 10.0]);
/// # Ok::<(), cnn_explain::Error>(())
/// ```
pub fn insertion(
    model: &dyn Model,
    input: &Tensor,
    map: &Tensor,
    target: &Target,
    config: &FaithfulnessConfig,
) -> Result<Curve> {
    curve(model, input, map, target, config, true)
}

/// Checks `map` against `input` `[N, C, H, W]` and returns the pooled rows.
fn check_map(input: &Tensor, map: &Tensor) -> Result<Vec<Vec<f64>>> {
    let s = input.size();
    let ms = map.size();
    let ok = ms.len() == 4 && ms[0] == s[0] && (ms[1] == 1 || ms[1] == s[1]) && ms[2..] == s[2..];
    if !ok {
        return Err(Error::shape(
            "map",
            format!(
                "[{n}, 1, {h}, {w}] or [{n}, {c}, {h}, {w}] for an input of shape {s:?}",
                n = s[0],
                c = s[1],
                h = s[2],
                w = s[3]
            ),
            &ms,
        ));
    }
    Ok(per_sample(map)?.0)
}

fn scores_of(logits: &Tensor, classes: &Tensor, score: Score) -> Result<Tensor> {
    let out = match score {
        Score::Probability => logits.f_softmax(1, Kind::Float)?,
        Score::Logit => logits.to_kind(Kind::Float),
    };
    Ok(select_scores(&out, classes))
}

fn fill_of(xs: &Tensor, fill: Fill) -> Result<Tensor> {
    match fill {
        Fill::Constant(v) if v.is_finite() => Ok(xs.full_like(v)),
        Fill::Constant(v) => Err(Error::invalid(
            "fill",
            format!("the constant must be finite, got {v}"),
        )),
        Fill::Blur { sigma } => Baseline::Blurred { sigma }.build(xs),
    }
}

fn curve(
    model: &dyn Model,
    input: &Tensor,
    map: &Tensor,
    target: &Target,
    config: &FaithfulnessConfig,
    insert: bool,
) -> Result<Curve> {
    check_positive("step", config.step)?;
    check_positive("batch", config.batch)?;
    model.check_input(input)?;
    let rows = check_map(input, map)?;
    let device = model.device();
    let xs = input.to_device(device).to_kind(Kind::Float).detach();
    let s = xs.size();
    let (n, c, h, w) = (s[0], s[1], s[2], s[3]);
    let p = (h * w) as usize;
    let fill = fill_of(&xs, config.fill)?;
    let classes = tch::no_grad(|| target.resolve(model, &model.forward_t(&xs, false)))?;

    // rank[i][pixel] = position of the pixel in the ranking (0 = most important).
    let mut ranks = vec![0i64; n as usize * p];
    for (i, row) in rows.iter().enumerate() {
        for (r, px) in descending_order(row).into_iter().enumerate() {
            ranks[i * p + px] = r as i64;
        }
    }
    let ranks = Tensor::from_slice(&ranks).view([n, h * w]).to_device(device);
    let counts: Vec<i64> = (0..p.div_ceil(config.step) + 1)
        .map(|k| (k * config.step).min(p) as i64)
        .collect();
    let fractions: Vec<f64> = counts.iter().map(|&k| k as f64 / p as f64).collect();
    let thresholds = Tensor::from_slice(&counts).to_device(device);
    let steps = counts.len() as i64;

    let total = n * steps;
    let mut out = Vec::with_capacity(total as usize);
    let mut start = 0i64;
    while start < total {
        let len = (config.batch as i64).min(total - start);
        let idx = Tensor::arange_start(start, start + len, (Kind::Int64, device));
        let ni = idx.divide_scalar_mode(steps, "floor");
        let ki = idx.remainder(steps);
        // changed[b, px] = the pixel is among the first k of the ranking.
        let changed = ranks
            .f_index_select(0, &ni)?
            .f_lt_tensor(&thresholds.f_index_select(0, &ki)?.unsqueeze(1))?
            .view([len, 1, h, w])
            .expand([len, c, h, w], false);
        let x = xs.f_index_select(0, &ni)?;
        let f = fill.f_index_select(0, &ni)?;
        let images = if insert {
            x.f_where_self(&changed, &f)?
        } else {
            f.f_where_self(&changed, &x)?
        };
        let logits = tch::no_grad(|| model.forward_t(&images, false));
        let sc = scores_of(&logits, &classes.f_index_select(0, &ni)?, config.score)?;
        out.extend(Vec::<f64>::try_from(
            sc.to_kind(Kind::Double).to_device(tch::Device::Cpu),
        )?);
        start += len;
    }
    let scores: Vec<Vec<f64>> = out.chunks(steps as usize).map(|r| r.to_vec()).collect();
    let auc = scores.iter().map(|r| trapezoid(&fractions, r)).collect();
    let classes = Vec::<i64>::try_from(classes.to_device(tch::Device::Cpu))?;
    Ok(Curve {
        fractions,
        scores,
        auc,
        classes,
    })
}

/// Average drop and increase in confidence of a batch (Chattopadhyay et al. 2018).
#[derive(Debug, Clone, PartialEq)]
pub struct ConfidenceChange {
    /// `Y`: the class probability on each image.
    pub original: Vec<f64>,
    /// `O`: the class probability on each image multiplied by its map.
    pub masked: Vec<f64>,
    /// Average drop in percent: `100 / N * sum max(0, Y - O) / Y` (a lower value is better).
    pub average_drop: f64,
    /// Increase in confidence in percent: `100 / N * #{O > Y}` (a higher value is better).
    pub increase_in_confidence: f64,
}

/// Average drop and increase in confidence: the image is multiplied by its map, pooled over
/// channels and min-max normalised to `[0, 1]` per sample (a constant map becomes 0), and the class
/// probability compared with the one on the image.
///
/// `input` `[N, C, H, W]`, `map` `[N, 1, H, W]` or `[N, C, H, W]`; `target` is resolved on `input`.
/// A sample whose probability `Y` is 0 contributes no drop.
///
/// ```
/// use cnn_explain::prelude::*;
/// use cnn_explain::quality::confidence_change;
/// let model = Staged::new(1, 2, Device::Cpu)
///     .leaf("fc", tch::nn::func(|xs| Tensor::cat(&[xs.sum_dim_intlist(&[1i64, 2, 3][..], false, Kind::Float).unsqueeze(1), xs.zeros_like().narrow(3, 0, 1).flatten(1, -1)], 1)));
/// let xs = Tensor::ones([1, 1, 1, 2], (Kind::Float, Device::Cpu));
/// let map = Tensor::from_slice(&[1f32, 0.]).view([1, 1, 1, 2]);
/// let out = confidence_change(&model, &xs, &map, &Target::Class(0))?;
/// assert!(out.masked[0] < out.original[0]);
/// assert_eq!(out.increase_in_confidence, 0.0);
/// # Ok::<(), cnn_explain::Error>(())
/// ```
pub fn confidence_change(
    model: &dyn Model,
    input: &Tensor,
    map: &Tensor,
    target: &Target,
) -> Result<ConfidenceChange> {
    model.check_input(input)?;
    check_map(input, map)?;
    let device = model.device();
    let xs = input.to_device(device).to_kind(Kind::Float).detach();
    let pooled = super::pool_channels(map, super::Pooling::Sum)?.to_device(device);
    // In f32 like the input, also for an f64 map (the model's weights are f32).
    let mask = crate::attribution::cam::normalize(&pooled)?.to_kind(Kind::Float);
    let (y, o) = tch::no_grad(|| -> Result<(Tensor, Tensor)> {
        let logits = model.forward_t(&xs, false);
        let classes = target.resolve(model, &logits)?;
        let y = scores_of(&logits, &classes, Score::Probability)?;
        let o = scores_of(
            &model.forward_t(&(&xs * &mask), false),
            &classes,
            Score::Probability,
        )?;
        Ok((y, o))
    })?;
    let to_vec = |t: Tensor| Vec::<f64>::try_from(t.to_kind(Kind::Double).to_device(tch::Device::Cpu));
    let (original, masked) = (to_vec(y)?, to_vec(o)?);
    let n = original.len() as f64;
    let drop: f64 = original
        .iter()
        .zip(&masked)
        .map(|(y, o)| if *y > 0.0 { (y - o).max(0.0) / y } else { 0.0 })
        .sum();
    let up = original.iter().zip(&masked).filter(|(y, o)| o > y).count() as f64;
    Ok(ConfidenceChange {
        original,
        masked,
        average_drop: 100.0 * drop / n,
        increase_in_confidence: 100.0 * up / n,
    })
}
