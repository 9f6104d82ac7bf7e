//! Looking inside the network: feature maps, first-layer filters, per-class channel statistics and
//! activation maximisation.
//!
//! Attribution asks *where* in an input the evidence lies; this module asks *what* the layers have
//! learnt to detect.
//!
//! - [`feature_maps`]: the activations of any named layer for one image, one map per channel, the
//!   strongest channels first or a chosen list (Zeiler and Fergus 2014, "Visualizing and
//!   Understanding Convolutional Networks", show such maps next to the image).
//! - [`first_layer_filters`] / [`filter_tiles`]: the first convolution's weights `[out, 3, kh, kw]`
//!   as small RGB tiles (Krizhevsky et al. 2012 show AlexNet's 96 filters this way).
//! - [`channel_class_statistics`]: the mean spatially pooled activation of every channel for every
//!   class over a dataset, and how selective each channel is for a class.
//! - [`ActivationMaximization`]: an input optimised by gradient ascent to excite one channel or one
//!   class logit, with jitter and blur as regularisers (Erhan et al. 2009, "Visualizing Higher-Layer
//!   Features of a Deep Network"; Simonyan et al. 2014; Yosinski et al. 2015, "Understanding Neural
//!   Networks Through Deep Visualization"; Olah et al. 2017, "Feature Visualization", Distill).
//!
//! Everything here returns data (tensors, [`image::RgbImage`]s, small structs); grids and figures
//! are drawn by [`crate::viz`].

mod filters;
mod maps;
mod maximize;
mod stats;

pub use filters::{filter_tiles, first_conv_weight_name, first_layer_filters, FilterScale, FilterTiles};
pub use maps::{feature_maps, ChannelSelection, FeatureMaps};
pub use maximize::{ActivationMaximization, Maximized, Objective, Parametrization};
pub use stats::{channel_class_statistics, dataset_channel_statistics, ChannelScore, ChannelStats};

use crate::models::Model;
use crate::{Error, Result};
use image::RgbImage;
use tch::{Device, Kind, Tensor};

/// `image` `[C, H, W]` or `[1, C, H, W]` as a checked float batch `[1, C, H, W]` on the model's
/// device.
fn single_image(model: &dyn Model, image: &Tensor) -> Result<Tensor> {
    let size = image.size();
    let xs = match size.len() {
        3 => image.unsqueeze(0),
        4 if size[0] == 1 => image.shallow_clone(),
        _ => {
            return Err(Error::shape(
                "image",
                format!(
                    "one image [{c}, H, W] or [1, {c}, H, W]",
                    c = model.input_channels()
                ),
                &size,
            ))
        }
    };
    model.check_input(&xs)?;
    Ok(xs.to_device(model.device()).to_kind(Kind::Float))
}

/// An activation `[N, K, h, w]` or `[N, K]` pooled to `[N, K]` (spatial mean).
fn pool_channels(act: &Tensor, layer: &str) -> Result<Tensor> {
    match act.dim() {
        4 => Ok(act.f_mean_dim(&[2i64, 3][..], false, Kind::Double)?),
        2 => Ok(act.to_kind(Kind::Double)),
        _ => Err(Error::shape(
            format!("activation at layer `{layer}`"),
            "[N, K, h, w] (a convolutional layer) or [N, K] (a flat layer)",
            &act.size(),
        )),
    }
}

/// Min-max normalisation of each slice along dimension 0 of `t` `[K, ...]` to `[0, 1]`; a constant
/// slice becomes `constant`.
fn minmax_per_slice(t: &Tensor, constant: f64) -> Result<Tensor> {
    let size = t.size();
    let k = size.first().copied().unwrap_or(0);
    if k == 0 {
        return Ok(t.to_kind(Kind::Float));
    }
    let flat = t.f_reshape([k, -1])?.to_kind(Kind::Double);
    let lo = flat.f_amin(&[1i64][..], true)?;
    let hi = flat.f_amax(&[1i64][..], true)?;
    let range = &hi - &lo;
    let flat_range = range.le(0.0);
    let safe = range.where_self(&range.gt(0.0), &range.ones_like());
    let out = ((&flat - &lo) / safe).where_self(&flat_range.logical_not(), &flat.full_like(constant));
    Ok(out.f_reshape(size.as_slice())?.to_kind(Kind::Float))
}

/// `t` `[C, h, w]` with `C` 1 or 3 and values in `[0, 1]` as an RGB image, each pixel repeated
/// `scale` x `scale` times (nearest neighbour).
fn to_rgb_image(t: &Tensor, scale: u32) -> Result<RgbImage> {
    if scale == 0 {
        return Err(Error::invalid("scale", "the upscaling factor must be at least 1"));
    }
    let size = t.size();
    if size.len() != 3 || !(size[0] == 1 || size[0] == 3) {
        return Err(Error::shape("image tensor", "[1 or 3, h, w]", &size));
    }
    let (c, h, w) = (size[0], size[1], size[2]);
    let rgb = if c == 1 {
        t.f_expand([3, h, w], false)?
    } else {
        t.shallow_clone()
    };
    let bytes: Vec<u8> = Vec::<f32>::try_from(
        &rgb.to_device(Device::Cpu)
            .to_kind(Kind::Float)
            .f_permute([1, 2, 0])?
            .contiguous()
            .f_reshape([-1])?,
    )?
    .into_iter()
    .map(|v| (v.clamp(0.0, 1.0) * 255.0).round() as u8)
    .collect();
    let (h, w) = (h as u32, w as u32);
    let (sh, sw) = (
        h.checked_mul(scale)
            .ok_or_else(|| Error::invalid("scale", "the upscaled image is too large"))?,
        w.checked_mul(scale)
            .ok_or_else(|| Error::invalid("scale", "the upscaled image is too large"))?,
    );
    Ok(RgbImage::from_fn(sw, sh, |x, y| {
        let i = (((y / scale) * w + x / scale) * 3) as usize;
        image::Rgb([bytes[i], bytes[i + 1], bytes[i + 2]])
    }))
}

/// Separable Gaussian blur of `xs` `[N, C, H, W]` (replicated borders, radius `ceil(3 sigma)`).
fn gaussian_blur(xs: &Tensor, sigma: f64) -> Result<Tensor> {
    if sigma.is_nan() || sigma <= 0.0 {
        return Ok(xs.shallow_clone());
    }
    let size = xs.size();
    if size.len() != 4 {
        return Err(Error::shape("blur input", "[N, C, H, W]", &size));
    }
    let c = size[1];
    let r = (3.0 * sigma).ceil().max(1.0) as i64;
    let taps: Vec<f32> = (-r..=r)
        .map(|i| (-(i * i) as f64 / (2.0 * sigma * sigma)).exp() as f32)
        .collect();
    let total: f32 = taps.iter().sum();
    let taps: Vec<f32> = taps.iter().map(|v| v / total).collect();
    let k = Tensor::from_slice(&taps)
        .to_device(xs.device())
        .to_kind(xs.kind());
    let kh = k.f_reshape([1, 1, 1, 2 * r + 1])?.f_repeat([c, 1, 1, 1])?;
    let kv = k.f_reshape([1, 1, 2 * r + 1, 1])?.f_repeat([c, 1, 1, 1])?;
    let padded = xs.f_replication_pad2d([r, r, r, r])?;
    let out = padded
        .f_conv2d::<Tensor>(&kh, None, [1, 1], [0, 0], [1, 1], c)?
        .f_conv2d::<Tensor>(&kv, None, [1, 1], [0, 0], [1, 1], c)?;
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn minmax_is_per_slice_and_constant_slices_are_safe() {
        let t = Tensor::from_slice(&[1.0f32, 3.0, 2.0, 5.0, 5.0, 5.0]).reshape([2, 3]);
        let n = minmax_per_slice(&t, 0.25).unwrap();
        let v: Vec<f32> = Vec::try_from(&n.reshape([-1])).unwrap();
        assert_eq!(v, [0.0, 1.0, 0.5, 0.25, 0.25, 0.25]);
    }

    #[test]
    fn blur_keeps_constants_and_matches_the_kernel() {
        let ones = Tensor::ones([1, 2, 5, 5], (Kind::Float, Device::Cpu));
        let b = gaussian_blur(&ones, 0.5).unwrap();
        assert!(b.allclose(&ones, 1e-6, 1e-6, false));
        // An impulse spreads as the outer product of the normalised 1-D kernel (radius 2 for 0.5).
        let imp = Tensor::zeros([1, 1, 5, 5], (Kind::Float, Device::Cpu));
        let _ = imp.get(0).get(0).get(2).get(2).fill_(1.0);
        let b = gaussian_blur(&imp, 0.5).unwrap();
        let e1 = (-2.0f64).exp();
        let e4 = (-8.0f64).exp();
        let s = 1.0 + 2.0 * e1 + 2.0 * e4;
        let centre = b.double_value(&[0, 0, 2, 2]);
        let side = b.double_value(&[0, 0, 2, 3]);
        let corner = b.double_value(&[0, 0, 1, 1]);
        assert!((centre - 1.0 / (s * s)).abs() < 1e-6, "{centre}");
        assert!((side - e1 / (s * s)).abs() < 1e-6, "{side}");
        assert!((corner - e1 * e1 / (s * s)).abs() < 1e-6, "{corner}");
        assert!((b.sum(Kind::Double).double_value(&[]) - 1.0).abs() < 1e-6);
    }

    #[test]
    fn rgb_image_upscales_by_repetition() {
        let t = Tensor::from_slice(&[0.0f32, 1.0, 0.5, 0.2]).reshape([1, 2, 2]);
        let img = to_rgb_image(&t, 2).unwrap();
        assert_eq!(img.dimensions(), (4, 4));
        assert_eq!(img.get_pixel(0, 0).0, [0, 0, 0]);
        assert_eq!(img.get_pixel(3, 1).0, [255, 255, 255]);
        assert_eq!(img.get_pixel(1, 2).0, [128, 128, 128]);
        assert_eq!(img.get_pixel(2, 3).0, [51, 51, 51]);
        assert!(to_rgb_image(&t, 0).is_err());
        assert!(to_rgb_image(&t.reshape([2, 2]), 1).is_err());
    }
}
