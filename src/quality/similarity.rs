//! Similarity of two explanations, as the sanity checks measure it.
//!
//! - [`spearman`]: Spearman's rank correlation (Pearson correlation of the ranks, ties given their
//!   average rank, as `scipy.stats.spearmanr`).
//! - [`ssim`]: the structural similarity index (Wang, Bovik, Sheikh and Simoncelli, "Image Quality
//!   Assessment: From Error Visibility to Structural Similarity", IEEE TIP 2004), computed as
//!   scikit-image's `structural_similarity`: local means, variances and covariance under a window
//!   (filtered with edges reflected, `d c b a | a b c d`), the SSIM map averaged over the pixels at
//!   least half a window from the border. [`SsimConfig::default`] is the paper's setting (Gaussian
//!   window of standard deviation 1.5, 11x11, population covariances, data range 1);
//!   [`SsimConfig::uniform`] is scikit-image's default (uniform 7x7 window, sample covariances).
//!
//! Both take two maps of the same shape `[N, C, H, W]`, sum them over channels and return one value
//! per sample; the sanity checks pass absolute maps, normalised to `[0, 1]` for SSIM.

use super::{per_sample, Rows};
use crate::{Error, Result};
use tch::Tensor;

fn paired(a: &Tensor, b: &Tensor) -> Result<(Rows, Rows, i64, i64)> {
    if a.size() != b.size() {
        return Err(Error::shape(
            "second map",
            format!("the shape of the first map, {:?}", a.size()),
            &b.size(),
        ));
    }
    let (ra, h, w) = per_sample(a)?;
    let (rb, _, _) = per_sample(b)?;
    Ok((ra, rb, h, w))
}

/// Ranks `1..=n` of `values`, ties given their average rank.
pub(crate) fn ranks(values: &[f64]) -> Vec<f64> {
    let mut idx: Vec<usize> = (0..values.len()).collect();
    idx.sort_by(|&a, &b| values[a].total_cmp(&values[b]));
    let mut out = vec![0.0; values.len()];
    let mut i = 0;
    while i < idx.len() {
        let mut j = i;
        while j + 1 < idx.len() && values[idx[j + 1]] == values[idx[i]] {
            j += 1;
        }
        let avg = (i + j) as f64 / 2.0 + 1.0;
        for &k in &idx[i..=j] {
            out[k] = avg;
        }
        i = j + 1;
    }
    out
}

/// Pearson correlation; 1 when both sides are constant (the same, all-tied ranking), 0 when only one
/// is.
fn pearson(a: &[f64], b: &[f64]) -> f64 {
    let (ma, mb) = (super::mean(a), super::mean(b));
    let (mut sab, mut saa, mut sbb) = (0.0, 0.0, 0.0);
    for (x, y) in a.iter().zip(b) {
        sab += (x - ma) * (y - mb);
        saa += (x - ma).powi(2);
        sbb += (y - mb).powi(2);
    }
    if saa <= 0.0 && sbb <= 0.0 {
        1.0
    } else if saa <= 0.0 || sbb <= 0.0 {
        0.0
    } else {
        (sab / (saa * sbb).sqrt()).clamp(-1.0, 1.0)
    }
}

/// Spearman's rank correlation between `a` and `b` (same shape `[N, C, H, W]`, channels summed),
/// per sample. A constant map has no ranking, and scipy returns NaN; here two constant maps give 1
/// (both rank every pixel equal: a method that returns all zeros before and after randomisation has
/// not changed) and one constant map against a varying one gives 0.
///
/// ```
/// use cnn_explain::quality::spearman;
/// use tch::Tensor;
/// let a = Tensor::from_slice(&[1f32, 2., 3., 4.]).view([1, 1, 2, 2]);
/// let b = Tensor::from_slice(&[10f32, 20., 30., 400.]).view([1, 1, 2, 2]);
/// assert_eq!(spearman(&a, &b)?, [1.0]);
/// assert_eq!(spearman(&a, &(-&a))?, [-1.0]);
/// # Ok::<(), cnn_explain::Error>(())
/// ```
pub fn spearman(a: &Tensor, b: &Tensor) -> Result<Vec<f64>> {
    let (ra, rb, _, _) = paired(a, b)?;
    Ok(ra
        .iter()
        .zip(&rb)
        .map(|(x, y)| pearson(&ranks(x), &ranks(y)))
        .collect())
}

/// The window of [`ssim`].
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum SsimWindow {
    /// A Gaussian of standard deviation `sigma`, truncated at radius `floor(3.5 sigma + 0.5)`
    /// (11x11 for 1.5), as scikit-image with `gaussian_weights=True`.
    Gaussian {
        /// Standard deviation in pixels (positive).
        sigma: f64,
    },
    /// A uniform `size x size` window (odd `size`), scikit-image's default with 7.
    Uniform {
        /// Side of the window in pixels (odd, at least 3).
        size: usize,
    },
}

/// Settings of [`ssim`].
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SsimConfig {
    /// The local window.
    pub window: SsimWindow,
    /// The range of the values (1 for maps normalised to `[0, 1]`).
    pub data_range: f64,
    /// Scale local covariances by `n / (n - 1)`, `n` the window's pixel count (scikit-image's
    /// default; the paper uses population covariances, `false`).
    pub sample_covariance: bool,
    /// `K1` of the paper (0.01).
    pub k1: f64,
    /// `K2` of the paper (0.03).
    pub k2: f64,
}

impl Default for SsimConfig {
    /// Wang et al.'s setting: Gaussian window, sigma 1.5 (11x11), population covariances, data
    /// range 1, `K1 = 0.01`, `K2 = 0.03`.
    fn default() -> Self {
        SsimConfig {
            window: SsimWindow::Gaussian { sigma: 1.5 },
            data_range: 1.0,
            sample_covariance: false,
            k1: 0.01,
            k2: 0.03,
        }
    }
}

impl SsimConfig {
    /// scikit-image's default: a uniform 7x7 window with sample covariances, data range 1.
    ///
    /// ```
    /// use cnn_explain::quality::similarity::{SsimConfig, SsimWindow};
    /// assert_eq!(SsimConfig::uniform().window, SsimWindow::Uniform { size: 7 });
    /// ```
    pub fn uniform() -> Self {
        SsimConfig {
            window: SsimWindow::Uniform { size: 7 },
            sample_covariance: true,
            ..Default::default()
        }
    }

    /// The window's 1-D taps (adding up to 1).
    fn taps(&self) -> Result<Vec<f64>> {
        match self.window {
            SsimWindow::Gaussian { sigma } => {
                if !(sigma.is_finite() && sigma > 0.0 && sigma < 1e3) {
                    return Err(Error::invalid("sigma", format!("must be positive, got {sigma}")));
                }
                let r = (3.5 * sigma + 0.5).floor() as i64;
                let t: Vec<f64> = (-r..=r)
                    .map(|x| (-0.5 * (x * x) as f64 / (sigma * sigma)).exp())
                    .collect();
                let s: f64 = t.iter().sum();
                Ok(t.iter().map(|v| v / s).collect())
            }
            SsimWindow::Uniform { size } => {
                if size < 3 || size % 2 == 0 {
                    return Err(Error::invalid(
                        "size",
                        format!("the window must be odd and at least 3, got {size}"),
                    ));
                }
                Ok(vec![1.0 / size as f64; size])
            }
        }
    }
}

/// Index `i` of a signal of length `n` with edges reflected (`d c b a | a b c d | d c b a`).
fn reflect(i: i64, n: i64) -> usize {
    let period = 2 * n;
    let m = i.rem_euclid(period);
    (if m < n { m } else { period - 1 - m }) as usize
}

/// Separable filter of an `h x w` image with `taps` (odd length) along both axes.
fn filter(img: &[f64], h: usize, w: usize, taps: &[f64]) -> Vec<f64> {
    let r = (taps.len() / 2) as i64;
    let mut tmp = vec![0.0; h * w];
    for y in 0..h {
        for x in 0..w {
            tmp[y * w + x] = taps
                .iter()
                .enumerate()
                .map(|(k, t)| t * img[reflect(y as i64 + k as i64 - r, h as i64) * w + x])
                .sum();
        }
    }
    let mut out = vec![0.0; h * w];
    for y in 0..h {
        for x in 0..w {
            out[y * w + x] = taps
                .iter()
                .enumerate()
                .map(|(k, t)| t * tmp[y * w + reflect(x as i64 + k as i64 - r, w as i64)])
                .sum();
        }
    }
    out
}

/// The mean structural similarity between `a` and `b` (same shape `[N, C, H, W]`, channels summed),
/// per sample. `H` and `W` must be at least the window's side (11 for the default). Identical maps
/// give 1.
///
/// ```
/// use cnn_explain::quality::{ssim, SsimConfig};
/// use tch::{Kind, Tensor};
/// let a = Tensor::rand([2, 1, 12, 12], (Kind::Float, tch::Device::Cpu));
/// let s = ssim(&a, &a, &SsimConfig::default())?;
/// assert!(s.iter().all(|v| (v - 1.0).abs() < 1e-12));
/// # Ok::<(), cnn_explain::Error>(())
/// ```
pub fn ssim(a: &Tensor, b: &Tensor, config: &SsimConfig) -> Result<Vec<f64>> {
    let taps = config.taps()?;
    if !(config.data_range.is_finite() && config.data_range > 0.0) {
        return Err(Error::invalid(
            "data_range",
            format!("must be positive, got {}", config.data_range),
        ));
    }
    let (ra, rb, h, w) = paired(a, b)?;
    let win = taps.len();
    if (h as usize) < win || (w as usize) < win {
        return Err(Error::shape(
            "map",
            format!("height and width of at least the SSIM window's side, {win}"),
            &a.size(),
        ));
    }
    let (h, w) = (h as usize, w as usize);
    let np = (win * win) as f64;
    let cov_norm = if config.sample_covariance {
        np / (np - 1.0)
    } else {
        1.0
    };
    let c1 = (config.k1 * config.data_range).powi(2);
    let c2 = (config.k2 * config.data_range).powi(2);
    let pad = (win - 1) / 2;
    Ok(ra
        .iter()
        .zip(&rb)
        .map(|(x, y)| {
            let prod = |p: &[f64], q: &[f64]| p.iter().zip(q).map(|(u, v)| u * v).collect::<Vec<_>>();
            let ux = filter(x, h, w, &taps);
            let uy = filter(y, h, w, &taps);
            let uxx = filter(&prod(x, x), h, w, &taps);
            let uyy = filter(&prod(y, y), h, w, &taps);
            let uxy = filter(&prod(x, y), h, w, &taps);
            let mut total = 0.0;
            let mut count = 0usize;
            for r in pad..h - pad {
                for c in pad..w - pad {
                    let i = r * w + c;
                    let vx = cov_norm * (uxx[i] - ux[i] * ux[i]);
                    let vy = cov_norm * (uyy[i] - uy[i] * uy[i]);
                    let vxy = cov_norm * (uxy[i] - ux[i] * uy[i]);
                    let num = (2.0 * ux[i] * uy[i] + c1) * (2.0 * vxy + c2);
                    let den = (ux[i] * ux[i] + uy[i] * uy[i] + c1) * (vx + vy + c2);
                    total += num / den;
                    count += 1;
                }
            }
            total / count as f64
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranks_average_ties() {
        assert_eq!(ranks(&[3.0, 1.0, 3.0, 2.0]), [3.5, 1.0, 3.5, 2.0]);
    }

    #[test]
    fn reflect_is_symmetric() {
        let idx: Vec<usize> = (-3..7).map(|i| reflect(i, 4)).collect();
        assert_eq!(idx, [2, 1, 0, 0, 1, 2, 3, 3, 2, 1]);
    }

    #[test]
    fn gaussian_window_is_eleven_wide() {
        assert_eq!(SsimConfig::default().taps().unwrap().len(), 11);
        assert!(SsimConfig {
            window: SsimWindow::Uniform { size: 4 },
            ..Default::default()
        }
        .taps()
        .is_err());
    }

    #[test]
    fn spearman_self_reverse_and_constant() {
        let a = Tensor::from_slice(&[0.3f32, -1.0, 2.0, 0.5, 0.1, 7.0]).view([1, 1, 2, 3]);
        let rev = Tensor::from_slice(&[-0.3f32, 1.0, -2.0, -0.5, -0.1, -7.0]).view([1, 1, 2, 3]);
        assert!((spearman(&a, &a).unwrap()[0] - 1.0).abs() < 1e-12);
        assert!((spearman(&a, &rev).unwrap()[0] + 1.0).abs() < 1e-12);
        assert_eq!(spearman(&a, &a.zeros_like()).unwrap(), [0.0]);
        assert_eq!(spearman(&a.zeros_like(), &a.ones_like()).unwrap(), [1.0]);
        assert!(spearman(&a, &a.view([1, 1, 3, 2])).is_err());
    }

    #[test]
    fn ssim_errors_on_small_maps() {
        let a = Tensor::ones([1, 1, 8, 8], (tch::Kind::Float, tch::Device::Cpu));
        assert!(ssim(&a, &a, &SsimConfig::default()).is_err());
        assert!(ssim(&a, &a, &SsimConfig::uniform()).is_ok());
    }
}
