//! Agreement of two attribution maps of the same inputs, e.g. the crate's and a reference
//! library's: does a fast implementation compute the same answer?
//!
//! Libraries scale their maps differently (Grad-CAM normalised to `[0, 1]` or not, occlusion in
//! logits or probabilities, a superpixel map or a pixel map), so maps are compared per sample after
//! min-max normalisation to `[0, 1]`, where only the *shape* of the map matters:
//! [`normalized_max_abs_diff`] is `0` for maps equal up to a positive scale and an offset, and at most
//! `1`. For methods with random sampling (SmoothGrad, LIME) two correct implementations give different
//! maps; [`correlation`] (Pearson, per sample) says how alike they are.
//!
//! ```
//! use cnn_explain::attribution::compare::{agreement, normalized_max_abs_diff};
//! use tch::Tensor;
//!
//! let a = Tensor::from_slice(&[0f32, 1., 2., 4.]).view([1, 1, 2, 2]);
//! let b = &a * 3.0 + 1.0; // same map, another scale and offset
//! assert_eq!(normalized_max_abs_diff(&a, &b)?, 0.0);
//! let c = Tensor::from_slice(&[0f32, 1., 4., 2.]).view([1, 1, 2, 2]);
//! let ag = agreement(&a, &c)?;
//! assert_eq!(ag.max_abs_diff, 0.5);
//! assert!(ag.correlation < 1.0);
//! # Ok::<(), cnn_explain::Error>(())
//! ```

use crate::{Error, Result};
use tch::{Kind, Tensor};

/// How alike two batches of maps are (the worst sample counts).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Agreement {
    /// Largest `|norm(a) - norm(b)|` over all samples and elements, each map min-max normalised per
    /// sample to `[0, 1]` (a constant map becomes zeros): `0` for the same map, at most `1`.
    pub max_abs_diff: f64,
    /// Smallest per-sample Pearson correlation of the two maps (`1` when both are constant, `0`
    /// when only one is).
    pub correlation: f64,
}

/// Checks that `a` and `b` are batches of maps of the same shape `[N, ...]`, `N >= 1`; returns them
/// flattened to `[N, M]` in double precision.
fn flat_pair(a: &Tensor, b: &Tensor) -> Result<(Tensor, Tensor)> {
    let (sa, sb) = (a.size(), b.size());
    if sa != sb {
        return Err(Error::shape("b", format!("the shape of a, {sa:?}"), &sb));
    }
    if sa.is_empty() || sa[0] == 0 || sa.contains(&0) {
        return Err(Error::shape("a", "[N, ...] with N >= 1 and no empty axis", &sa));
    }
    let prep = |t: &Tensor| -> Result<Tensor> {
        let t = t.to_device(tch::Device::Cpu).to_kind(Kind::Double);
        Ok(if sa.len() == 1 {
            t.f_view([sa[0], 1])?
        } else {
            t.f_flatten(1, -1)?
        })
    };
    Ok((prep(a)?, prep(b)?))
}

/// Largest absolute difference of the two batches of maps `[N, ...]` after per-sample min-max
/// normalisation to `[0, 1]` (see [`Agreement::max_abs_diff`]).
///
/// ```
/// use cnn_explain::attribution::compare::normalized_max_abs_diff;
/// use tch::Tensor;
/// let a = Tensor::from_slice(&[1f32, 2., 3.]).view([1, 3]);
/// let b = Tensor::from_slice(&[10f32, 20., 25.]).view([1, 3]);
/// assert_eq!(normalized_max_abs_diff(&a, &b)?, 0.16666666666666663); // 0.5 vs 2/3 in the middle
/// # Ok::<(), cnn_explain::Error>(())
/// ```
pub fn normalized_max_abs_diff(a: &Tensor, b: &Tensor) -> Result<f64> {
    let (a, b) = flat_pair(a, b)?;
    // The convention of `cam::normalize` (a constant map becomes zeros), in double precision.
    let norm = |t: &Tensor| -> Result<Tensor> {
        let lo = t.f_amin(1, true)?;
        let range = t.f_amax(1, true)? - &lo;
        let safe = range.f_where_scalarother(&range.gt(0.0), 1.0)?;
        Ok((t - lo) / safe)
    };
    let d = (norm(&a)? - norm(&b)?).abs().max();
    Ok(d.f_double_value(&[])?)
}

/// Smallest per-sample Pearson correlation of two batches of maps `[N, ...]` (see
/// [`Agreement::correlation`]).
///
/// ```
/// use cnn_explain::attribution::compare::correlation;
/// use tch::Tensor;
/// let a = Tensor::from_slice(&[1f32, 2., 3., 0., 0., 1.]).view([2, 3]);
/// let b = Tensor::from_slice(&[3f32, 2., 1., 0., 0., 5.]).view([2, 3]);
/// // Sample 0 is reversed (r = -1), sample 1 the same up to scale (r = 1): the worst is -1.
/// assert!((correlation(&a, &b)? + 1.0).abs() < 1e-12);
/// # Ok::<(), cnn_explain::Error>(())
/// ```
pub fn correlation(a: &Tensor, b: &Tensor) -> Result<f64> {
    let (a, b) = flat_pair(a, b)?;
    let ca = &a - a.f_mean_dim(1, true, Kind::Double)?;
    let cb = &b - b.f_mean_dim(1, true, Kind::Double)?;
    let dims = [1i64];
    let va = (&ca * &ca).f_sum_dim_intlist(dims.as_slice(), false, Kind::Double)?;
    let vb = (&cb * &cb).f_sum_dim_intlist(dims.as_slice(), false, Kind::Double)?;
    let cov = (&ca * &cb).f_sum_dim_intlist(dims.as_slice(), false, Kind::Double)?;
    let (va, vb, cov) = (
        Vec::<f64>::try_from(&va)?,
        Vec::<f64>::try_from(&vb)?,
        Vec::<f64>::try_from(&cov)?,
    );
    let mut worst = f64::INFINITY;
    for ((va, vb), cov) in va.iter().zip(&vb).zip(&cov) {
        let r = match (*va > 0.0, *vb > 0.0) {
            (true, true) => (cov / (va.sqrt() * vb.sqrt())).clamp(-1.0, 1.0),
            (false, false) => 1.0,
            _ => 0.0,
        };
        worst = worst.min(r);
    }
    Ok(worst)
}

/// Both measures of agreement of two batches of maps `[N, ...]` of the same shape.
///
/// ```
/// use cnn_explain::attribution::compare::agreement;
/// use tch::Tensor;
/// let a = Tensor::from_slice(&[0f32, 1., 2.]).view([1, 3]);
/// assert!(agreement(&a, &Tensor::zeros([1, 2], (tch::Kind::Float, tch::Device::Cpu))).is_err());
/// let ag = agreement(&a, &a)?;
/// assert_eq!(ag.max_abs_diff, 0.0);
/// assert!((ag.correlation - 1.0).abs() < 1e-12);
/// # Ok::<(), cnn_explain::Error>(())
/// ```
pub fn agreement(a: &Tensor, b: &Tensor) -> Result<Agreement> {
    Ok(Agreement {
        max_abs_diff: normalized_max_abs_diff(a, b)?,
        correlation: correlation(a, b)?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(v: &[f32], shape: &[i64]) -> Tensor {
        Tensor::from_slice(v).view(shape)
    }

    #[test]
    fn scale_and_offset_do_not_count() {
        let a = t(&[1., 5., 3., 2., 0., 0., 9., 1.], &[2, 4]);
        let b = &a * 0.25 - 7.0;
        assert_eq!(normalized_max_abs_diff(&a, &b).unwrap(), 0.0);
        let r = correlation(&a, &b).unwrap();
        assert!((r - 1.0).abs() < 1e-12, "{r}");
    }

    #[test]
    fn difference_is_per_sample_after_min_max() {
        // Sample 0 equal; sample 1: a = [0, 1, 2, 4] -> [0, .25, .5, 1], b = [0, 2, 2, 4] ->
        // [0, .5, .5, 1]: largest difference 0.25 (hand-computed).
        let a = t(&[0., 1., 2., 3., 0., 1., 2., 4.], &[2, 1, 2, 2]);
        let b = t(&[0., 1., 2., 3., 0., 2., 2., 4.], &[2, 1, 2, 2]);
        assert_eq!(normalized_max_abs_diff(&a, &b).unwrap(), 0.25);
        // Each sample is normalised alone: scaling one sample only changes nothing.
        let c = t(&[0., 10., 20., 30., 0., 1., 2., 4.], &[2, 1, 2, 2]);
        assert_eq!(normalized_max_abs_diff(&a, &c).unwrap(), 0.0);
    }

    #[test]
    fn constant_maps_become_zeros() {
        let flat = t(&[3., 3., 3.], &[1, 3]);
        let zeros = t(&[0., 0., 0.], &[1, 3]);
        let ramp = t(&[0., 1., 2.], &[1, 3]);
        assert_eq!(normalized_max_abs_diff(&flat, &zeros).unwrap(), 0.0);
        assert_eq!(normalized_max_abs_diff(&flat, &ramp).unwrap(), 1.0);
        assert_eq!(correlation(&flat, &zeros).unwrap(), 1.0);
        assert_eq!(correlation(&flat, &ramp).unwrap(), 0.0);
    }

    #[test]
    fn correlation_is_the_worst_sample() {
        // Sample 0: r = 1; sample 1: x = [0, 1, 2], y = [0, 2, 1]: r = 0.5 (hand-computed:
        // centred x = [-1, 0, 1], y = [-1, 1, 0], cov 1, variances 2 and 2).
        let a = t(&[1., 2., 3., 0., 1., 2.], &[2, 3]);
        let b = t(&[2., 4., 6., 0., 2., 1.], &[2, 3]);
        let r = correlation(&a, &b).unwrap();
        assert!((r - 0.5).abs() < 1e-12, "{r}");
    }

    #[test]
    fn shapes_must_match() {
        let a = t(&[0., 1., 2., 3.], &[1, 4]);
        let b = t(&[0., 1., 2., 3.], &[2, 2]);
        assert!(
            matches!(agreement(&a, &b), Err(Error::Shape { .. })),
            "{:?}",
            agreement(&a, &b)
        );
        let empty = Tensor::zeros([0, 4], (Kind::Float, tch::Device::Cpu));
        assert!(normalized_max_abs_diff(&empty, &empty).is_err());
    }
}
