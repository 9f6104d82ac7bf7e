//! Weighted ridge regression with an intercept, in closed form.

use crate::{Error, Result};
use tch::{Device, Kind, Tensor};

/// A fitted weighted ridge regression: `y ≈ x · coef + intercept`.
#[derive(Debug, Clone, PartialEq)]
pub struct RidgeFit {
    /// One coefficient per feature.
    pub coef: Vec<f64>,
    /// The intercept (not penalised).
    pub intercept: f64,
    /// Weighted coefficient of determination of the fit on its own samples (scikit-learn's
    /// `r2_score` with `sample_weight`; 1 when the targets are constant and fitted exactly, 0 when
    /// they are constant and not).
    pub r2: f64,
}

/// Weighted ridge regression with an intercept, like scikit-learn's
/// `Ridge(alpha).fit(x, y, sample_weight=w)`: features and targets are centred by their weighted
/// means, then `(Xcᵀ W Xc + alpha I) coef = Xcᵀ W yc` is solved in double precision and
/// `intercept = ȳ - x̄ · coef`.
///
/// `x` `[S, K]`, `y` `[S]`, `w` `[S]` (non-negative, not all zero), `alpha >= 0` (0 is ordinary
/// weighted least squares and fails on a singular system).
///
/// ```
/// use cnn_explain::attribution::lime::weighted_ridge;
/// use tch::Tensor;
/// let x = Tensor::from_slice(&[0.0, 1.0, 1.0]).view([3, 1]);
/// let y = Tensor::from_slice(&[1.0, 3.0, 4.0]);
/// let w = Tensor::from_slice(&[1.0, 1.0, 2.0]);
/// let fit = weighted_ridge(&x, &y, &w, 1.0)?;
/// assert!((fit.coef[0] - 8.0 / 7.0).abs() < 1e-12);
/// assert!((fit.intercept - 15.0 / 7.0).abs() < 1e-12);
/// # Ok::<(), cnn_explain::Error>(())
/// ```
pub fn weighted_ridge(x: &Tensor, y: &Tensor, w: &Tensor, alpha: f64) -> Result<RidgeFit> {
    let xs = x.size();
    if xs.len() != 2 || xs[0] < 1 || xs[1] < 1 {
        return Err(Error::shape("x", "[S, K] with S, K >= 1", &xs));
    }
    let (s, k) = (xs[0], xs[1]);
    if y.size() != [s] {
        return Err(Error::shape("y", format!("[{s}]"), &y.size()));
    }
    if w.size() != [s] {
        return Err(Error::shape("w", format!("[{s}]"), &w.size()));
    }
    if !(alpha.is_finite() && alpha >= 0.0) {
        return Err(Error::invalid(
            "ridge_alpha",
            format!("must be a finite number >= 0, got {alpha}"),
        ));
    }
    let dev = Device::Cpu;
    let x = x.to_device(dev).to_kind(Kind::Double);
    let y = y.to_device(dev).to_kind(Kind::Double);
    let w = w.to_device(dev).to_kind(Kind::Double);
    let wsum = w.sum(Kind::Double).double_value(&[]);
    let wmin = w.min().double_value(&[]);
    if !(wsum.is_finite() && wsum > 0.0 && wmin >= 0.0) {
        return Err(Error::invalid(
            "w",
            "sample weights must be finite, non-negative and not all zero",
        ));
    }
    let x_mean = x
        .f_mul(&w.unsqueeze(1))?
        .sum_dim_intlist([0].as_slice(), false, Kind::Double)
        / wsum; // [K]
    let y_mean = (&y * &w).sum(Kind::Double).double_value(&[]) / wsum;
    let sw = w.sqrt();
    let xc = (&x - x_mean.unsqueeze(0)) * sw.unsqueeze(1);
    let yc = (&y - y_mean) * &sw;
    let a = xc.tr().matmul(&xc) + Tensor::eye(k, (Kind::Double, dev)) * alpha;
    let b = xc.tr().matmul(&yc.unsqueeze(1));
    let coef = Tensor::f_linalg_solve(&a, &b, true)
        .map_err(|e| {
            Error::invalid(
                "ridge_alpha",
                format!("the regression system could not be solved ({e}); use ridge_alpha > 0"),
            )
        })?
        .squeeze_dim(1);
    let intercept = y_mean - x_mean.dot(&coef).double_value(&[]);
    let pred = x.matmul(&coef) + intercept;
    let ss_res = (&w * (&y - &pred).square()).sum(Kind::Double).double_value(&[]);
    let ss_tot = (&w * (&y - y_mean).square()).sum(Kind::Double).double_value(&[]);
    let r2 = if ss_tot > 0.0 {
        1.0 - ss_res / ss_tot
    } else if ss_res <= f64::EPSILON * wsum {
        1.0
    } else {
        0.0
    };
    let coef = Vec::<f64>::try_from(&coef)?;
    if coef.iter().any(|c| !c.is_finite()) || !intercept.is_finite() {
        return Err(Error::invalid(
            "ridge_alpha",
            "the regression gave non-finite coefficients (a singular system); use ridge_alpha > 0",
        ));
    }
    Ok(RidgeFit { coef, intercept, r2 })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_feature_matches_the_hand_solution() {
        // x̄ = 3/4, ȳ = 3; Sxx = 3/4, Sxy = 2 -> coef = 2 / (3/4 + 1) = 8/7, intercept = 15/7;
        // residuals -8/7, -2/7, 5/7 -> ss_res = 118/49, ss_tot = 6 -> r2 = 176/294.
        let x = Tensor::from_slice(&[0.0, 1.0, 1.0]).view([3, 1]);
        let y = Tensor::from_slice(&[1.0, 3.0, 4.0]);
        let w = Tensor::from_slice(&[1.0, 1.0, 2.0]);
        let fit = weighted_ridge(&x, &y, &w, 1.0).unwrap();
        assert!((fit.coef[0] - 8.0 / 7.0).abs() < 1e-12);
        assert!((fit.intercept - 15.0 / 7.0).abs() < 1e-12);
        assert!((fit.r2 - 176.0 / 294.0).abs() < 1e-12);
    }

    #[test]
    fn two_features_match_scikit_learn() {
        // sklearn 1.x: Ridge(alpha=0.5).fit(X, y, sample_weight=w); .score(X, y, sample_weight=w)
        let x = Tensor::from_slice(&[1.0, 0.0, 0.0, 1.0, 1.0, 1.0, 0.0, 0.0, 1.0, 0.0]).view([5, 2]);
        let y = Tensor::from_slice(&[0.9, 0.2, 1.3, 0.1, 0.7]);
        let w = Tensor::from_slice(&[1.0, 0.5, 2.0, 0.25, 1.5]);
        let fit = weighted_ridge(&x, &y, &w, 0.5).unwrap();
        assert!((fit.coef[0] - 0.5127907).abs() < 1e-7);
        assert!((fit.coef[1] - 0.30232558).abs() < 1e-7);
        assert!((fit.intercept - 0.3069767441860465).abs() < 1e-12);
        assert!((fit.r2 - 0.7632583662907646).abs() < 1e-12);
    }

    #[test]
    fn exact_linear_data_is_recovered_without_penalty() {
        let x = Tensor::from_slice(&[0.0, 0.0, 1.0, 0.0, 0.0, 1.0, 1.0, 1.0]).view([4, 2]);
        let y = Tensor::from_slice(&[0.5, 2.5, -0.5, 1.5]); // 0.5 + 2 x0 - x1
        let w = Tensor::from_slice(&[1.0, 0.3, 0.7, 2.0]);
        let fit = weighted_ridge(&x, &y, &w, 0.0).unwrap();
        assert!((fit.coef[0] - 2.0).abs() < 1e-12 && (fit.coef[1] + 1.0).abs() < 1e-12);
        assert!((fit.intercept - 0.5).abs() < 1e-12 && (fit.r2 - 1.0).abs() < 1e-12);
    }

    #[test]
    fn constant_targets_and_bad_input() {
        let x = Tensor::from_slice(&[0.0, 1.0]).view([2, 1]);
        let fit = weighted_ridge(
            &x,
            &Tensor::from_slice(&[2.0, 2.0]),
            &Tensor::from_slice(&[1.0, 1.0]),
            1.0,
        )
        .unwrap();
        assert_eq!((fit.coef[0], fit.intercept, fit.r2), (0.0, 2.0, 1.0));
        let y = Tensor::from_slice(&[2.0, 2.0]);
        assert!(weighted_ridge(&x, &y, &Tensor::from_slice(&[0.0, 0.0]), 1.0).is_err());
        assert!(weighted_ridge(&x, &y, &Tensor::from_slice(&[1.0]), 1.0).is_err());
        assert!(weighted_ridge(&x, &y, &Tensor::from_slice(&[1.0, 1.0]), -1.0).is_err());
        // A feature that never varies makes the unpenalised system singular: an error.
        let x = Tensor::from_slice(&[1.0, 1.0]).view([2, 1]);
        assert!(weighted_ridge(&x, &y, &Tensor::from_slice(&[1.0, 1.0]), 0.0).is_err());
    }
}
