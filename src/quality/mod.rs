//! How good is an explanation: quality metrics, sanity checks and the input-invariance check.
//!
//! Every function takes maps as any [`crate::attribution::Attribution`] returns them, `[N, 1, H, W]`
//! or `[N, C, H, W]`; a map with several channels is pooled to one value per pixel by summing over
//! the channels ([`pool_channels`] offers the other poolings). Results are per sample, so a notebook
//! can report means and standard deviations over the same images for every method.
//!
//! - [`faithfulness`]: deletion and insertion curves and their area under the curve (Petsiuk, Das
//!   and Saenko, "RISE: Randomized Input Sampling for Explanation of Black-box Models", BMVC 2018);
//!   average drop and increase in confidence (Chattopadhyay et al., "Grad-CAM++", WACV 2018).
//! - [`localisation`]: the pointing game (Zhang et al., "Top-down Neural Attention by Excitation
//!   Backprop", ECCV 2016), the energy-based pointing game (Wang et al., "Score-CAM", CVPR workshops
//!   2020), relevance mass and relevance rank accuracy (Arras, Osman and Samek, "CLEVR-XAI: A
//!   benchmark dataset for the ground truth evaluation of neural network explanations", Information
//!   Fusion 2022).
//! - [`complexity`]: sparseness as the Gini index (Chalasani et al., "Concise Explanations of Neural
//!   Networks using Adversarial Training", ICML 2020) and the entropy of the normalised map (Bhatt,
//!   Weller and Moura, "Evaluating and Aggregating Feature-based Model Explanations", IJCAI 2020).
//! - [`similarity`]: Spearman rank correlation and SSIM (Wang, Bovik, Sheikh and Simoncelli, "Image
//!   Quality Assessment: From Error Visibility to Structural Similarity", IEEE TIP 2004), the two
//!   similarities of the sanity checks.
//! - [`randomisation`]: the cascading model-parameter randomisation test (Adebayo et al., "Sanity
//!   Checks for Saliency Maps", NeurIPS 2018): a method whose maps do not change when the model's
//!   weights are destroyed does not explain the model; [`permute_labels`] and [`map_similarity`]
//!   are the parts of the paper's data randomisation test that are not training.
//! - [`robustness`]: max-sensitivity (Yeh et al., "On the (In)fidelity and Sensitivity of
//!   Explanations", NeurIPS 2019).
//! - [`invariance`]: the input-invariance check (Kindermans et al., "The (Un)reliability of Saliency
//!   Methods", 2017): a model that sees every input shifted by a constant and compensates in its first
//!   layer's bias computes the same function, so a reliable method should give the same maps.
//! - [`summary`]: one method's row of a quality table ([`evaluate`]): the per-image metrics above as
//!   means and standard deviations over the same images, and the method's time per image.

pub mod complexity;
pub mod faithfulness;
pub mod invariance;
pub mod localisation;
pub mod randomisation;
pub mod robustness;
pub mod similarity;
pub mod summary;

pub use complexity::{entropy, sparseness};
pub use faithfulness::{
    confidence_change, deletion, insertion, ConfidenceChange, Curve, FaithfulnessConfig, Fill, Score,
};
pub use invariance::{
    check_input_invariance, shift_first_conv, shifted_zoo_model, FirstConv, InvarianceCase, InvarianceReport,
};
pub use localisation::{
    energy_pointing_game, pointing_game, relevance_mass_accuracy, relevance_rank_accuracy,
};
pub use randomisation::{
    cascade_layers, cascading_randomisation, map_similarity, permute_labels, MapSimilarity,
    MethodRandomisation, RandomisationConfig, RandomisationStep,
};
pub use robustness::{max_sensitivity, MaxSensitivityConfig};
pub use similarity::{spearman, ssim, SsimConfig, SsimWindow};
pub use summary::{
    evaluate, evaluate_values, evaluate_with_curves, markdown_table, QualityConfig, QualityEvaluation,
    QualityRow, QualityValues, Summary,
};

use crate::{Error, Result};
use tch::{Kind, Tensor};

/// How a map with several channels becomes one value per pixel.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Pooling {
    /// The signed sum over channels (the default everywhere in this module).
    #[default]
    Sum,
    /// The sum of absolute values.
    AbsSum,
    /// The sum of the positive parts.
    PositiveSum,
    /// The sum of squares (the squared L2 norm over channels, the pooling Arras et al. 2022 found
    /// to localise best).
    L2NormSquared,
    /// The largest absolute value over channels (Simonyan et al.'s saliency map).
    MaxAbs,
}

/// Pools `map` `[N, C, H, W]` to `[N, 1, H, W]` with `pooling` (`f64` for an `f64` map, else `f32`).
///
/// ```
/// use cnn_explain::quality::{pool_channels, Pooling};
/// use tch::Tensor;
/// let map = Tensor::from_slice(&[1f32, -3.]).view([1, 2, 1, 1]);
/// assert_eq!(pool_channels(&map, Pooling::Sum)?.double_value(&[0, 0, 0, 0]), -2.0);
/// assert_eq!(pool_channels(&map, Pooling::L2NormSquared)?.double_value(&[0, 0, 0, 0]), 10.0);
/// assert_eq!(pool_channels(&map, Pooling::MaxAbs)?.double_value(&[0, 0, 0, 0]), 3.0);
/// # Ok::<(), cnn_explain::Error>(())
/// ```
pub fn pool_channels(map: &Tensor, pooling: Pooling) -> Result<Tensor> {
    let size = map.size();
    if size.len() != 4 || size.contains(&0) {
        return Err(Error::shape("map", "[N, C, H, W] with no empty dimension", &size));
    }
    if !map.is_floating_point() {
        return Err(Error::invalid(
            "map",
            format!("expected a float tensor, got {:?}", map.kind()),
        ));
    }
    // Double maps stay double (golden comparisons); every other float kind becomes f32.
    let kind = if map.kind() == Kind::Double {
        Kind::Double
    } else {
        Kind::Float
    };
    let m = map.to_kind(kind).detach();
    let dim = [1i64];
    Ok(match pooling {
        Pooling::Sum => m.f_sum_dim_intlist(dim.as_slice(), true, kind)?,
        Pooling::AbsSum => m.abs().f_sum_dim_intlist(dim.as_slice(), true, kind)?,
        Pooling::PositiveSum => m.relu().f_sum_dim_intlist(dim.as_slice(), true, kind)?,
        Pooling::L2NormSquared => m.square().f_sum_dim_intlist(dim.as_slice(), true, kind)?,
        Pooling::MaxAbs => m.abs().f_amax(dim.as_slice(), true)?,
    })
}

/// One row of values per sample.
pub(crate) type Rows = Vec<Vec<f64>>;

/// The pixel values of each sample of `map` `[N, C, H, W]` (channels summed), on the CPU in `f64`,
/// with `(H, W)`.
pub(crate) fn per_sample(map: &Tensor) -> Result<(Rows, i64, i64)> {
    let pooled = pool_channels(map, Pooling::Sum)?;
    let size = pooled.size();
    let (n, h, w) = (size[0], size[2], size[3]);
    let flat = pooled
        .to_device(tch::Device::Cpu)
        .to_kind(Kind::Double)
        .f_reshape([n, h * w])?;
    let all = Vec::<f64>::try_from(flat.f_flatten(0, -1)?)?;
    let rows = all.chunks((h * w) as usize).map(|c| c.to_vec()).collect();
    Ok((rows, h, w))
}

/// Checks that `mask` is `[N, 1, H, W]` for a map whose pooled shape is `[N, 1, H, W]`, and returns
/// each sample's mask as booleans (a value counts as inside when it is above 0.5; boolean masks as
/// they are).
pub(crate) fn mask_rows(mask: &Tensor, n: i64, h: i64, w: i64) -> Result<Vec<Vec<bool>>> {
    let size = mask.size();
    if size != [n, 1, h, w] {
        return Err(Error::shape(
            "mask",
            format!("[{n}, 1, {h}, {w}] (one mask per map, the map's height and width)"),
            &size,
        ));
    }
    let m = mask
        .to_device(tch::Device::Cpu)
        .to_kind(Kind::Double)
        .f_reshape([n * h * w])?;
    let vals = Vec::<f64>::try_from(m)?;
    Ok(vals
        .chunks((h * w) as usize)
        .map(|c| c.iter().map(|&v| v > 0.5).collect())
        .collect())
}

/// Indices of `values` in descending order, ties broken by ascending index (a stable sort), NaN
/// last.
pub(crate) fn descending_order(values: &[f64]) -> Vec<usize> {
    let mut idx: Vec<usize> = (0..values.len()).collect();
    let key = |v: f64| if v.is_nan() { f64::NEG_INFINITY } else { v };
    idx.sort_by(|&a, &b| key(values[b]).total_cmp(&key(values[a])));
    idx
}

/// The mean of `values` (0 for none).
///
/// ```
/// assert_eq!(cnn_explain::quality::mean(&[1.0, 2.0, 6.0]), 3.0);
/// ```
pub fn mean(values: &[f64]) -> f64 {
    if values.is_empty() {
        0.0
    } else {
        values.iter().sum::<f64>() / values.len() as f64
    }
}

/// The sample standard deviation of `values` (divisor `n - 1`; 0 for fewer than two values).
///
/// ```
/// assert_eq!(cnn_explain::quality::std_dev(&[1.0, 3.0]), 2f64.sqrt());
/// ```
pub fn std_dev(values: &[f64]) -> f64 {
    if values.len() < 2 {
        return 0.0;
    }
    let m = mean(values);
    (values.iter().map(|v| (v - m).powi(2)).sum::<f64>() / (values.len() - 1) as f64).sqrt()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn descending_order_breaks_ties_by_index() {
        assert_eq!(
            descending_order(&[1.0, 3.0, 1.0, 3.0, f64::NAN, 2.0]),
            [1, 3, 5, 0, 2, 4]
        );
    }

    #[test]
    fn pooling_rejects_bad_maps() {
        let m = Tensor::ones([2, 3], (Kind::Float, tch::Device::Cpu));
        assert!(matches!(
            pool_channels(&m, Pooling::Sum),
            Err(Error::Shape { .. })
        ));
        let m = Tensor::ones([1, 1, 2, 2], (Kind::Int64, tch::Device::Cpu));
        assert!(pool_channels(&m, Pooling::Sum).is_err());
    }
}
