//! Complexity: how concentrated an explanation is.
//!
//! - [`sparseness`]: the Gini index of the absolute map (Chalasani et al., "Concise Explanations of
//!   Neural Networks using Adversarial Training", ICML 2020, after Hurley and Rickard 2009): 0 for a
//!   uniform map, `(n - 1) / n` for a map with one non-zero pixel out of `n`. Higher is sparser.
//! - [`entropy`]: the Shannon entropy (in nats) of the absolute map normalised to sum to 1 (Bhatt,
//!   Weller and Moura, IJCAI 2020): 0 for one non-zero pixel, `ln n` for a uniform map. Lower is
//!   simpler.
//!
//! Maps `[N, C, H, W]` are summed over channels first, then the absolute value is taken.

use super::per_sample;
use crate::Result;
use tch::Tensor;

/// The Gini index of `|map|` for each sample of `map` `[N, C, H, W]` (channels summed): with the
/// `n` absolute values sorted ascending, `a_(1) <= ... <= a_(n)`,
/// `G = sum_k (2k - n - 1) a_(k) / (n sum_k a_(k))`. An all-zero map gives 0.
///
/// ```
/// use cnn_explain::quality::sparseness;
/// use tch::Tensor;
/// let one_hot = Tensor::from_slice(&[0f32, 0., 5., 0.]).view([1, 1, 2, 2]);
/// assert!((sparseness(&one_hot)?[0] - 0.75).abs() < 1e-12);
/// # Ok::<(), cnn_explain::Error>(())
/// ```
pub fn sparseness(map: &Tensor) -> Result<Vec<f64>> {
    let (rows, _, _) = per_sample(map)?;
    Ok(rows
        .into_iter()
        .map(|row| {
            let mut a: Vec<f64> = row.iter().map(|v| v.abs()).collect();
            a.sort_by(f64::total_cmp);
            let n = a.len() as f64;
            let total: f64 = a.iter().sum();
            if total <= 0.0 || !total.is_finite() {
                return 0.0;
            }
            let weighted: f64 = a
                .iter()
                .enumerate()
                .map(|(k, v)| (2.0 * (k as f64 + 1.0) - n - 1.0) * v)
                .sum();
            weighted / (n * total)
        })
        .collect())
}

/// The entropy `-sum_i p_i ln p_i` of `p = |map| / sum |map|` for each sample of `map`
/// `[N, C, H, W]` (channels summed), in nats. An all-zero map gives 0.
///
/// ```
/// use cnn_explain::quality::entropy;
/// use tch::{Kind, Tensor};
/// let uniform = Tensor::ones([1, 1, 2, 2], (Kind::Float, tch::Device::Cpu));
/// assert!((entropy(&uniform)?[0] - 4f64.ln()).abs() < 1e-12);
/// # Ok::<(), cnn_explain::Error>(())
/// ```
pub fn entropy(map: &Tensor) -> Result<Vec<f64>> {
    let (rows, _, _) = per_sample(map)?;
    Ok(rows
        .into_iter()
        .map(|row| {
            let total: f64 = row.iter().map(|v| v.abs()).sum();
            if total <= 0.0 || !total.is_finite() {
                return 0.0;
            }
            -row.iter()
                .map(|v| v.abs() / total)
                .filter(|&p| p > 0.0)
                .map(|p| p * p.ln())
                .sum::<f64>()
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;
    use tch::{Device, Kind};

    #[test]
    fn gini_of_one_hot_uniform_and_hand_case() {
        let n = 16;
        let mut v = vec![0f32; n];
        v[7] = -2.0;
        let one_hot = Tensor::from_slice(&v).view([1, 1, 4, 4]);
        let uniform = Tensor::full([1, 3, 4, 4], 0.3, (Kind::Float, Device::Cpu));
        let g = sparseness(&Tensor::cat(
            &[one_hot, uniform.sum_dim_intlist(1, true, Kind::Float)],
            0,
        ))
        .unwrap();
        assert!((g[0] - 15.0 / 16.0).abs() < 1e-12, "{g:?}");
        assert!(g[1].abs() < 1e-12, "{g:?}");
        // [1, 2, 3, 4]: sum (2k - 5) a_k = -3 - 2 + 3 + 12 = 10; G = 10 / (4 * 10) = 0.25.
        let m = Tensor::from_slice(&[4f32, -1., 3., 2.]).view([1, 1, 2, 2]);
        assert!((sparseness(&m).unwrap()[0] - 0.25).abs() < 1e-12);
        let zero = Tensor::zeros([1, 1, 2, 2], (Kind::Float, Device::Cpu));
        assert_eq!(sparseness(&zero).unwrap(), [0.0]);
    }

    #[test]
    fn entropy_hand_cases() {
        // p = [1/2, 1/4, 1/4, 0]: H = ln 2 / 2 + 2 * ln 4 / 4 = 1.5 ln 2.
        let m = Tensor::from_slice(&[2f32, -1., 1., 0.]).view([1, 1, 2, 2]);
        assert!((entropy(&m).unwrap()[0] - 1.5 * 2f64.ln()).abs() < 1e-12);
        let one_hot = Tensor::from_slice(&[0f32, 0., 3., 0.]).view([1, 1, 2, 2]);
        assert_eq!(entropy(&one_hot).unwrap(), [0.0]);
    }
}
