//! Right for the Right Reasons (Ross, Hughes and Doshi-Velez, IJCAI 2017): a training penalty on the
//! input gradient inside regions a user declares irrelevant.
//!
//! The loss of a batch becomes
//!
//! ```text
//! cross_entropy + weight * mean_n sum_{c, h, w} A[n, h, w] * (d score_n / d x[n, c, h, w])^2
//! ```
//!
//! with `A` the *irrelevant* mask (1 where the model should not look), and `score` one of
//! [`PenaltyScore`] (Ross et al. use the sum of the log-probabilities of all classes). The gradient
//! of this term with respect to the weights needs the gradient of a gradient: the input gradient is
//! computed with `create_graph = true` (double backpropagation), so the penalty trains any model of
//! the zoo, whatever its layers. The mean over the batch (not Ross's sum) keeps `weight`
//! independent of the batch size, as the cross-entropy's mean does.
//!
//! The irrelevant region is everything outside the dataset's object mask
//! ([`IrrelevantRegion::OutsideObject`]), or per-image masks given with
//! [`super::FitData::with_irrelevant`] ([`IrrelevantRegion::Given`]), such as [`cue_corners`] for
//! the shapes dataset's spurious cue. A [`super::Callback`] can switch the penalty on, off or to
//! another weight between epochs ([`super::Callback::penalty`]); the epoch record keeps the weight
//! in force and the penalty's mean ([`PenaltyRecord`]).
//!
//! ```
//! use cnn_explain::train::{InputGradientPenalty, IrrelevantRegion, PenaltyScore};
//! let p = InputGradientPenalty { weight: 10.0, region: IrrelevantRegion::OutsideObject, ..Default::default() };
//! assert!(p.enabled && p.score == PenaltyScore::SumLogProbabilities);
//! assert!(p.validate().is_ok());
//! ```

use crate::data::shapes::{cue_region, ShapesConfig};
use crate::{Error, Result};
use serde::{Deserialize, Serialize};
use tch::{Kind, Tensor};

/// Where the input gradient is penalised.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum IrrelevantRegion {
    /// Every pixel outside the training set's object mask (`1 - Dataset::masks`); an error when the
    /// training set has no masks.
    OutsideObject,
    /// The per-image masks `[N, 1, H, W]` passed with [`super::FitData::with_irrelevant`] (1 =
    /// irrelevant); an error when none were passed.
    Given,
    /// The object itself (`Dataset::masks`): the model should decide from the context; an error
    /// when the training set has no masks.
    InsideObject,
    /// One rectangle of every image, in pixels: columns `x0..x1`, rows `y0..y1` (end excluded),
    /// for example drawn on a probe image in the live monitor.
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

/// The scalar whose input gradient is penalised.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum PenaltyScore {
    /// `sum_k log p_k`: Ross et al.'s choice; it pushes every class's evidence away from the region.
    #[default]
    SumLogProbabilities,
    /// `log p_y` of the true class `y`.
    TrueClassLogProbability,
    /// `z_y - mean_k z_k`: the true class's logit minus the mean logit, the quantity saliency maps
    /// of the true class show (a gradient free of the softmax's saturation).
    CentredTrueClassLogit,
}

/// The Right-for-the-Right-Reasons penalty (see the module docs) as a training option
/// ([`super::TrainConfig::penalty`]).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct InputGradientPenalty {
    /// Factor of the penalty in the loss (`>= 0`, finite); Ross et al.'s `lambda_1`.
    pub weight: f64,
    /// When false the penalty is not computed (a callback can switch it on later).
    pub enabled: bool,
    /// Where the gradient is penalised.
    pub region: IrrelevantRegion,
    /// Whose gradient is penalised.
    pub score: PenaltyScore,
}

impl Default for InputGradientPenalty {
    /// Weight 10, enabled, outside the object, Ross's sum of log-probabilities.
    fn default() -> Self {
        InputGradientPenalty {
            weight: 10.0,
            enabled: true,
            region: IrrelevantRegion::OutsideObject,
            score: PenaltyScore::SumLogProbabilities,
        }
    }
}

impl InputGradientPenalty {
    /// Checks the weight.
    pub fn validate(&self) -> Result<()> {
        if !(self.weight.is_finite() && self.weight >= 0.0) {
            return Err(Error::invalid(
                "penalty.weight",
                format!("{} must be finite and >= 0", self.weight),
            ));
        }
        Ok(())
    }

    /// True when the penalty changes the loss: enabled with a weight above 0.
    pub fn active(&self) -> bool {
        self.enabled && self.weight > 0.0
    }

    /// The penalty's value for one batch, as a scalar tensor that keeps the graph to the model's
    /// weights (add it to the loss and call `backward`).
    ///
    /// `input` `[B, C, H, W]` must require grad and `logits` `[B, K]` must have been computed from
    /// it; `labels` `[B]` (used by the true-class scores); `irrelevant` `[B, 1, H, W]` or
    /// `[B, C, H, W]` with 1 where the gradient is penalised. The value is
    /// `weight * mean_b sum_{c,h,w} irrelevant * grad^2`.
    ///
    /// ```
    /// use cnn_explain::train::{InputGradientPenalty, PenaltyScore, IrrelevantRegion};
    /// use tch::{Kind, Tensor};
    /// // logits = [x0 + x1, 0] for a 1x1x1x2 input: d(z_0 - mean z)/dx = [0.5, 0.5].
    /// let x = Tensor::from_slice(&[1f32, 2.]).view([1, 1, 1, 2]).set_requires_grad(true);
    /// let z0 = x.sum_dim_intlist([1i64, 2, 3].as_slice(), false, Kind::Float);
    /// let logits = Tensor::stack(&[z0.shallow_clone(), z0.zeros_like()], 1);
    /// let p = InputGradientPenalty { weight: 2.0, score: PenaltyScore::CentredTrueClassLogit,
    ///     region: IrrelevantRegion::Given, enabled: true };
    /// let mask = Tensor::from_slice(&[1f32, 0.]).view([1, 1, 1, 2]);
    /// let v = p.value(&x, &logits, &Tensor::from_slice(&[0i64]), &mask)?;
    /// assert!((v.double_value(&[]) - 2.0 * 0.25).abs() < 1e-6);
    /// # Ok::<(), cnn_explain::Error>(())
    /// ```
    pub fn value(
        &self,
        input: &Tensor,
        logits: &Tensor,
        labels: &Tensor,
        irrelevant: &Tensor,
    ) -> Result<Tensor> {
        let size = input.size();
        if size.len() != 4 {
            return Err(Error::shape("input", "[B, C, H, W]", &size));
        }
        if !input.requires_grad() {
            return Err(Error::invalid(
                "input",
                "must require grad (x.set_requires_grad(true)) and the logits must come from it",
            ));
        }
        let m = irrelevant.size();
        if m.len() != 4 || m[0] != size[0] || (m[1] != 1 && m[1] != size[1]) || m[2..] != size[2..] {
            return Err(Error::shape(
                "irrelevant mask",
                format!(
                    "[{}, 1, {}, {}] (one mask per image of the batch)",
                    size[0], size[2], size[3]
                ),
                &m,
            ));
        }
        let ls = logits.size();
        if ls.len() != 2 || ls[0] != size[0] {
            return Err(Error::shape("logits", format!("[{}, K]", size[0]), &ls));
        }
        let score = self.score_of(logits, labels)?;
        let grads = Tensor::f_run_backward(&[score], &[input], true, true)?;
        let grad = grads
            .into_iter()
            .next()
            .ok_or_else(|| Error::invalid("model", "autograd returned no gradient for the input"))?;
        let mask = irrelevant
            .f_to_kind(grad.kind())?
            .f_to_device(grad.device())?
            .detach();
        let per_image =
            grad.f_square()?
                .f_mul(&mask)?
                .f_sum_dim_intlist([1i64, 2, 3].as_slice(), false, grad.kind())?;
        Ok(per_image.f_mean(grad.kind())?.f_mul_scalar(self.weight)?)
    }

    /// The summed score of the batch (a sum over samples, so each sample's input gradient is the
    /// gradient of its own score when the model treats samples independently).
    fn score_of(&self, logits: &Tensor, labels: &Tensor) -> Result<Tensor> {
        let kind = Kind::Float;
        let logits = logits.f_to_kind(kind)?;
        let labels = || -> Result<Tensor> { Ok(labels.f_to_device(logits.device())?.f_unsqueeze(1)?) };
        Ok(match self.score {
            PenaltyScore::SumLogProbabilities => logits.f_log_softmax(-1, kind)?.f_sum(kind)?,
            PenaltyScore::TrueClassLogProbability => logits
                .f_log_softmax(-1, kind)?
                .f_gather(1, &labels()?, false)?
                .f_sum(kind)?,
            PenaltyScore::CentredTrueClassLogit => {
                let mean = logits.f_mean_dim([1i64].as_slice(), true, kind)?;
                logits.f_sub(&mean)?.f_gather(1, &labels()?, false)?.f_sum(kind)?
            }
        })
    }
}

/// The penalty in force in one epoch, recorded in [`super::EpochRecord::penalty`].
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct PenaltyRecord {
    /// The weight in force.
    pub weight: f64,
    /// Mean over the epoch's batches of the penalty term added to the loss (weight included).
    pub mean: f64,
}

/// A mask `[n, 1, H, W]` that is 1 on the cue patches of every class of the shapes dataset (the
/// union of the four corners [`cue_region`] uses), 0 elsewhere: what a user who knows "the corners
/// carry no information about the shape" declares irrelevant, without knowing which image carries
/// which cue. `margin` pixels are added around each patch (the gradient of a convolution leaks
/// into the neighbourhood). An error when the config has no spurious cue.
///
/// ```
/// use cnn_explain::data::shapes::{ShapesConfig, SpuriousCue};
/// use cnn_explain::train::cue_corners;
/// let cfg = ShapesConfig { image_size: 32, spurious: Some(SpuriousCue { size: 4, ..Default::default() }), ..Default::default() };
/// let m = cue_corners(&cfg, 2, 0)?;
/// assert_eq!(m.size(), [2, 1, 32, 32]);
/// assert_eq!(m.sum(tch::Kind::Float).double_value(&[]), 2.0 * 4.0 * 16.0);
/// assert!(cue_corners(&ShapesConfig::default(), 1, 0).is_err());
/// # Ok::<(), cnn_explain::Error>(())
/// ```
pub fn cue_corners(cfg: &ShapesConfig, n: usize, margin: i64) -> Result<Tensor> {
    let s = cfg.image_size;
    let mut mask = vec![0f32; (s * s) as usize];
    for class in 0..4 {
        let (x, y, w, h) = cue_region(cfg, class)?;
        let (x0, y0) = ((x - margin).max(0), (y - margin).max(0));
        let (x1, y1) = ((x + w + margin).min(s), (y + h + margin).min(s));
        for r in y0..y1 {
            for c in x0..x1 {
                mask[(r * s + c) as usize] = 1.0;
            }
        }
    }
    Ok(Tensor::from_slice(&mask)
        .view([1, 1, s, s])
        .f_expand([n as i64, 1, s, s], false)?
        .contiguous())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn weight_must_be_finite_and_non_negative() {
        for w in [-1.0, f64::NAN, f64::INFINITY] {
            let p = InputGradientPenalty {
                weight: w,
                ..Default::default()
            };
            assert!(p.validate().is_err(), "{w}");
        }
        assert!(!InputGradientPenalty {
            weight: 0.0,
            ..Default::default()
        }
        .active());
    }

    /// The corner masks must cover every cue patch the generator draws (any class, any size),
    /// and with margin 0 nothing else: otherwise the penalty would miss the cue.
    #[test]
    fn cue_corners_cover_exactly_the_drawn_cue_patches() {
        use crate::data::shapes::{generate_with_cues, CueInTest, SpuriousCue};
        for (image_size, size) in [(32, 4), (48, 6), (64, 3)] {
            let cfg = ShapesConfig {
                image_size,
                train: 24,
                val: 6,
                test: 24,
                spurious: Some(SpuriousCue {
                    fraction: 1.0,
                    size,
                    test: CueInTest::Shuffled,
                }),
                ..Default::default()
            };
            let (_, cues) = generate_with_cues(&cfg).unwrap();
            let corners = cue_corners(&cfg, 24, 0).unwrap();
            let outside = corners.ones_like() - &corners;
            for layout in [&cues.train, &cues.test] {
                let drawn = layout.masks.sum(Kind::Float).double_value(&[]);
                assert_eq!(drawn, (24 * size * size) as f64, "every image carries one patch");
                let missed = (&layout.masks * &outside).sum(Kind::Float).double_value(&[]);
                assert_eq!(
                    missed, 0.0,
                    "cue pixels outside the corners ({image_size} px, cue {size})"
                );
            }
            // The union of the patches of the four corners (all six classes use them).
            let all = Tensor::cat(&[&cues.train.masks, &cues.test.masks], 0)
                .amax([0i64].as_slice(), false)
                .sum(Kind::Float)
                .double_value(&[]);
            let per_image = corners.get(0).sum(Kind::Float).double_value(&[]);
            assert_eq!(per_image, (4 * size * size) as f64);
            assert_eq!(all, per_image, "the corners are exactly where cues are drawn");
        }
    }
}
