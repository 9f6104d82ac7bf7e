//! Attribution-map normalisation (the one place it happens) and overlays on images.
//!
//! The semantics are Captum's `visualization._normalize_attr` (Kokhlikyan et al. 2020): channels
//! are summed, the sign is selected, and the map is divided by the value at which the cumulative
//! sum of sorted absolute values reaches `outlier_percentile` percent of the total, then clipped.
//! Unlike Captum, an all-zero map gives zeros instead of an assertion failure, and one scale can be
//! shared by several maps so they can be compared.

use super::Colormap;
use crate::{Error, Result};
use tch::{Device, Kind, Tensor};

/// Which part of a signed map to show.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Sign {
    /// Positive values only (negatives become 0); result in `[0, 1]`.
    Positive,
    /// Negative values only, shown by magnitude; result in `[0, 1]`.
    Negative,
    /// Absolute values; result in `[0, 1]`.
    #[default]
    Absolute,
    /// Signed values; result in `[-1, 1]`, for a diverging colormap.
    All,
}

/// How channels of a `[N, C, H, W]` map are reduced to one.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ChannelReduce {
    /// Sum over channels (Captum's visualisation).
    #[default]
    Sum,
    /// The channel value of largest magnitude, with its sign (Simonyan et al. 2014 take the
    /// maximum of absolute values; with [`Sign::Absolute`] this is the same).
    MaxAbs,
}

/// Normalisation of attribution maps for display.
#[derive(Debug, Clone, PartialEq)]
pub struct Normalization {
    /// Which part of the sign to keep.
    pub sign: Sign,
    /// The scale is the smallest absolute value at which the cumulative sum of sorted absolute
    /// values reaches this percentage of their total (Captum's `100 - outlier_perc`; Captum's
    /// default is 98). 100 scales by the maximum (no clipping); must be in `(0, 100]`.
    pub outlier_percentile: f64,
    /// One scale for all maps (computed over all of them) instead of one per map.
    pub shared: bool,
    /// How channels are reduced.
    pub channels: ChannelReduce,
}

impl Default for Normalization {
    fn default() -> Self {
        Normalization {
            sign: Sign::Absolute,
            outlier_percentile: 98.0,
            shared: false,
            channels: ChannelReduce::Sum,
        }
    }
}

/// Captum's `_cumulative_sum_threshold` on non-negative values; 0 for an empty or all-zero set.
fn cumulative_threshold(values: &mut [f64], percentile: f64) -> f64 {
    values.sort_by(|a, b| a.total_cmp(b));
    let total: f64 = values.iter().sum();
    if total <= 0.0 {
        return 0.0;
    }
    let goal = total * 0.01 * percentile;
    let mut cum = 0.0;
    for &v in values.iter() {
        cum += v;
        if cum >= goal {
            return v;
        }
    }
    values.last().copied().unwrap_or(0.0)
}

impl Normalization {
    /// Normalises maps `[N, C, H, W]` (channels reduced by [`Normalization::channels`]) to
    /// `[N, 1, H, W]` float on the input's device: in `[0, 1]`, or `[-1, 1]` for [`Sign::All`].
    /// Never NaN: a map with nothing to show (all zero, or no value of the chosen sign) gives
    /// zeros. Non-finite input values are an error.
    ///
    /// ```
    /// use cnn_explain::viz::{Normalization, Sign};
    /// use tch::Tensor;
    /// let maps = Tensor::from_slice(&[1.0f32, -2.0, 4.0, 0.0]).view([1, 1, 2, 2]);
    /// let norm = Normalization { sign: Sign::All, outlier_percentile: 100.0, ..Default::default() };
    /// let out = norm.normalize(&maps)?;
    /// assert_eq!(Vec::<f32>::try_from(out.view([-1])).unwrap(), [0.25, -0.5, 1.0, 0.0]);
    /// # Ok::<(), cnn_explain::Error>(())
    /// ```
    pub fn normalize(&self, maps: &Tensor) -> Result<Tensor> {
        let size = maps.size();
        let [n, c, h, w] = size.as_slice() else {
            return Err(Error::shape(
                "maps",
                "[N, C, H, W] (use unsqueeze for a single map)",
                &size,
            ));
        };
        if *n <= 0 || *c <= 0 || *h <= 0 || *w <= 0 {
            return Err(Error::shape(
                "maps",
                "[N, C, H, W] with every size at least 1",
                &size,
            ));
        }
        if !(self.outlier_percentile > 0.0 && self.outlier_percentile <= 100.0) {
            return Err(Error::invalid(
                "outlier_percentile",
                format!(
                    "got {}; must be in (0, 100], e.g. 98 as in Captum",
                    self.outlier_percentile
                ),
            ));
        }
        let device = maps.device();
        let x = maps.f_to_kind(Kind::Double)?;
        let reduced = match self.channels {
            ChannelReduce::Sum => x.f_sum_dim_intlist([1i64].as_slice(), true, Kind::Double)?,
            ChannelReduce::MaxAbs => {
                let idx = x.f_abs()?.f_argmax(1, true)?;
                x.f_gather(1, &idx, false)?
            }
        };
        let signed = match self.sign {
            Sign::All => reduced,
            Sign::Positive => reduced.f_clamp_min(0.0)?,
            // Shown by magnitude, as Captum's division by a negative threshold does.
            Sign::Negative => reduced.f_clamp_max(0.0)?.f_neg()?,
            Sign::Absolute => reduced.f_abs()?,
        };
        let cpu = signed.f_to_device(Device::Cpu)?;
        let values = Vec::<f64>::try_from(&cpu.f_reshape([-1])?)?;
        if values.iter().any(|v| !v.is_finite()) {
            return Err(Error::invalid("maps", "contain NaN or infinite values"));
        }
        let per = (*h * *w) as usize;
        let scales: Vec<f64> = if self.shared {
            let mut all: Vec<f64> = values.iter().map(|v| v.abs()).collect();
            vec![cumulative_threshold(&mut all, self.outlier_percentile); *n as usize]
        } else {
            values
                .chunks(per)
                .map(|chunk| {
                    let mut a: Vec<f64> = chunk.iter().map(|v| v.abs()).collect();
                    cumulative_threshold(&mut a, self.outlier_percentile)
                })
                .collect()
        };
        // A zero scale means every value is zero: divide by 1 to keep zeros.
        let inv: Vec<f64> = scales
            .iter()
            .map(|&s| if s > 0.0 { 1.0 / s } else { 1.0 })
            .collect();
        let inv = Tensor::from_slice(&inv).f_view([*n, 1, 1, 1])?;
        let lo = if self.sign == Sign::All { -1.0 } else { 0.0 };
        let out = cpu.f_mul(&inv)?.f_clamp(lo, 1.0)?;
        Ok(out.f_to_kind(Kind::Float)?.f_to_device(device)?)
    }
}

/// Converts an image tensor `[3, H, W]` or `[1, 3, H, W]` with values in `[0, 1]` (clamped) to an
/// `RgbImage`.
///
/// ```
/// let t = tch::Tensor::ones([3, 2, 4], (tch::Kind::Float, tch::Device::Cpu));
/// let img = cnn_explain::viz::tensor_to_image(&t)?;
/// assert_eq!((img.width(), img.height()), (4, 2));
/// assert_eq!(img.get_pixel(0, 0).0, [255, 255, 255]);
/// # Ok::<(), cnn_explain::Error>(())
/// ```
pub fn tensor_to_image(image: &Tensor) -> Result<image::RgbImage> {
    let size = image.size();
    let (h, w) = match size.as_slice() {
        [3, h, w] | [1, 3, h, w] if *h > 0 && *w > 0 => (*h, *w),
        _ => {
            return Err(Error::shape(
                "image",
                "[3, H, W] or [1, 3, H, W] RGB with values in [0, 1]",
                &size,
            ))
        }
    };
    crate::data::convert::tensor_to_rgb_image(&image.f_reshape([3, h, w])?)
}

/// Blends a colour-mapped attribution map over an image: `(1 - alpha) * image + alpha * colour`.
///
/// `image` is `[3, H, W]` or `[1, 3, H, W]` in `[0, 1]`; `map` is `[H, W]`, `[1, H, W]` or
/// `[1, 1, H, W]` of the same `H, W`, already normalised (see [`Normalization`]) to `[0, 1]`, or to
/// `[-1, 1]` when `signed` (then use a diverging colormap such as [`Colormap::RdBu`]).
/// `alpha` must be in `[0, 1]`.
///
/// ```
/// use cnn_explain::viz::{overlay, Colormap};
/// use tch::{Device, Kind, Tensor};
/// let img = Tensor::zeros([3, 2, 2], (Kind::Float, Device::Cpu));
/// let map = Tensor::ones([2, 2], (Kind::Float, Device::Cpu));
/// let out = overlay(&img, &map, Colormap::Gray, 0.5, false)?;
/// assert_eq!(out.get_pixel(0, 0).0, [128, 128, 128]);
/// # Ok::<(), cnn_explain::Error>(())
/// ```
pub fn overlay(
    image: &Tensor,
    map: &Tensor,
    colormap: Colormap,
    alpha: f64,
    signed: bool,
) -> Result<image::RgbImage> {
    if !(0.0..=1.0).contains(&alpha) {
        return Err(Error::invalid("alpha", format!("got {alpha}; must be in [0, 1]")));
    }
    let base = tensor_to_image(image)?;
    let msize = map.size();
    let (mh, mw) = match msize.as_slice() {
        [h, w] | [1, h, w] | [1, 1, h, w] => (*h, *w),
        _ => return Err(Error::shape("map", "[H, W], [1, H, W] or [1, 1, H, W]", &msize)),
    };
    if mh != base.height() as i64 || mw != base.width() as i64 {
        return Err(Error::shape(
            "map",
            format!("the image's size [{}, {}]", base.height(), base.width()),
            &msize,
        ));
    }
    let (lo, hi) = if signed { (-1.0, 1.0) } else { (0.0, 1.0) };
    let colours = colormap.apply(&map.f_reshape([mh, mw])?, lo, hi)?;
    Ok(blend(&base, &colours, alpha))
}

/// Pixel-wise `(1 - alpha) * a + alpha * b` of two images of the same size (`b` is resized to `a`'s
/// size when they differ).
pub fn blend(a: &image::RgbImage, b: &image::RgbImage, alpha: f64) -> image::RgbImage {
    let alpha = if alpha.is_nan() {
        0.0
    } else {
        alpha.clamp(0.0, 1.0)
    };
    let b = if b.dimensions() == a.dimensions() {
        std::borrow::Cow::Borrowed(b)
    } else {
        std::borrow::Cow::Owned(image::imageops::resize(
            b,
            a.width(),
            a.height(),
            image::imageops::FilterType::Triangle,
        ))
    };
    let mut out = a.clone();
    for (o, q) in out.pixels_mut().zip(b.pixels()) {
        for c in 0..3 {
            let v = (1.0 - alpha) * o.0[c] as f64 + alpha * q.0[c] as f64;
            o.0[c] = v.round().clamp(0.0, 255.0) as u8;
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(v: &[f64], shape: &[i64]) -> Tensor {
        Tensor::from_slice(v).view(shape).to_kind(Kind::Float)
    }

    fn vals(x: &Tensor) -> Vec<f64> {
        Vec::<f64>::try_from(x.to_kind(Kind::Double).view([-1])).unwrap()
    }

    #[test]
    fn threshold_follows_captum() {
        // sorted 1,2,3,4 (total 10); 98% of 10 = 9.8 is reached at 4; 50% = 5 is reached at 3 (1+2+3=6).
        assert_eq!(cumulative_threshold(&mut [4.0, 1.0, 3.0, 2.0], 98.0), 4.0);
        assert_eq!(cumulative_threshold(&mut [4.0, 1.0, 3.0, 2.0], 50.0), 3.0);
        assert_eq!(cumulative_threshold(&mut [0.0, 0.0], 98.0), 0.0);
    }

    #[test]
    fn signs_and_clipping() {
        // One map: values 1, -2, 3, -4 in one channel.
        let m = t(&[1.0, -2.0, 3.0, -4.0], &[1, 1, 2, 2]);
        let n = |sign, p| Normalization {
            sign,
            outlier_percentile: p,
            ..Default::default()
        };
        // Absolute, 100%: divide by 4.
        assert_eq!(
            vals(&n(Sign::Absolute, 100.0).normalize(&m).unwrap()),
            [0.25, 0.5, 0.75, 1.0]
        );
        // Absolute, 50%: sorted 1,2,3,4, 60% reached at 3 -> divide by 3, clip 4/3 to 1.
        let got = vals(&n(Sign::Absolute, 50.0).normalize(&m).unwrap());
        let want = [1.0 / 3.0, 2.0 / 3.0, 1.0, 1.0];
        for (g, w) in got.iter().zip(want) {
            assert!((g - w).abs() < 1e-6, "{got:?}");
        }
        // Positive: 1, 0, 3, 0 -> total 4, 98% reached at 3.
        let got = vals(&n(Sign::Positive, 98.0).normalize(&m).unwrap());
        assert!(
            (got[0] - 1.0 / 3.0).abs() < 1e-6 && got[1] == 0.0 && got[2] == 1.0 && got[3] == 0.0,
            "{got:?}"
        );
        // Negative: magnitudes 0, 2, 0, 4 -> scale 4.
        assert_eq!(
            vals(&n(Sign::Negative, 98.0).normalize(&m).unwrap()),
            [0.0, 0.5, 0.0, 1.0]
        );
        // All: scale from |values| (98% of 10 reached at 4), sign kept.
        assert_eq!(
            vals(&n(Sign::All, 98.0).normalize(&m).unwrap()),
            [0.25, -0.5, 0.75, -1.0]
        );
    }

    #[test]
    fn channels_are_reduced() {
        // Two channels: sum = 1+3=4, -2+2=0; max-abs = 3, -2.
        let m = t(&[1.0, -2.0, 3.0, 2.0], &[1, 2, 1, 2]);
        let sum = Normalization {
            sign: Sign::All,
            outlier_percentile: 100.0,
            ..Default::default()
        };
        assert_eq!(vals(&sum.normalize(&m).unwrap()), [1.0, 0.0]);
        let max = Normalization {
            channels: ChannelReduce::MaxAbs,
            ..sum
        };
        let got = vals(&max.normalize(&m).unwrap());
        assert!(
            (got[0] - 1.0).abs() < 1e-6 && (got[1] + 2.0 / 3.0).abs() < 1e-6,
            "{got:?}"
        );
        assert_eq!(max.normalize(&m).unwrap().size(), [1, 1, 1, 2]);
    }

    #[test]
    fn shared_scale_keeps_maps_comparable() {
        // Map 0 is half of map 1.
        let m = t(&[1.0, 2.0, 2.0, 4.0], &[2, 1, 1, 2]);
        let own = Normalization {
            outlier_percentile: 100.0,
            ..Default::default()
        };
        assert_eq!(vals(&own.normalize(&m).unwrap()), [0.5, 1.0, 0.5, 1.0]);
        let shared = Normalization { shared: true, ..own };
        assert_eq!(vals(&shared.normalize(&m).unwrap()), [0.25, 0.5, 0.5, 1.0]);
    }

    #[test]
    fn zero_and_wrong_sign_maps_give_zeros_not_nan() {
        let m = t(&[0.0, 0.0, -1.0, -3.0], &[2, 1, 1, 2]);
        let pos = Normalization {
            sign: Sign::Positive,
            ..Default::default()
        };
        assert_eq!(vals(&pos.normalize(&m).unwrap()), [0.0, 0.0, 0.0, 0.0]);
        let bad = t(&[f64::NAN, 1.0], &[1, 1, 1, 2]);
        assert!(pos.normalize(&bad).is_err());
        assert!(pos.normalize(&t(&[1.0, 2.0], &[1, 2])).is_err());
        let p0 = Normalization {
            outlier_percentile: 0.0,
            ..Default::default()
        };
        assert!(p0.normalize(&m).is_err());
    }

    #[test]
    fn overlay_blends_exactly() {
        // Image: red pixel and black pixel; map 0 and 1 in gray; alpha 0.25.
        let img = t(&[1.0, 0.0, 0.0, 0.0, 0.0, 0.0], &[3, 1, 2]);
        let map = t(&[0.0, 1.0], &[1, 1, 1, 2]);
        let out = overlay(&img, &map, Colormap::Gray, 0.25, false).unwrap();
        assert_eq!(out.get_pixel(0, 0).0, [191, 0, 0]); // 0.75*255 = 191.25
        assert_eq!(out.get_pixel(1, 0).0, [64, 64, 64]); // 0.25*255 = 63.75
                                                         // Signed: -1 -> the diverging map's blue end, alpha 1.
        let s = t(&[-1.0, 1.0], &[1, 2]);
        let out = overlay(&img, &s, Colormap::RdBu, 1.0, true).unwrap();
        assert_eq!(out.get_pixel(0, 0).0, [5, 48, 97]);
        assert!(overlay(&img, &t(&[0.0; 3], &[1, 3]), Colormap::Gray, 0.5, false).is_err());
        assert!(overlay(&img, &map, Colormap::Gray, 1.5, false).is_err());
    }

    #[test]
    fn tensor_to_image_checks_shape() {
        assert!(tensor_to_image(&Tensor::zeros([1, 2, 2], (Kind::Float, Device::Cpu))).is_err());
        assert!(tensor_to_image(&Tensor::zeros([2, 3, 2, 2], (Kind::Float, Device::Cpu))).is_err());
        let img = tensor_to_image(&t(&[0.5, 0.0, 2.0], &[1, 3, 1, 1])).unwrap();
        assert_eq!(img.get_pixel(0, 0).0, [128, 0, 255]);
    }
}
