//! First-layer filters as RGB tiles.

use super::{minmax_per_slice, to_rgb_image};
use crate::{Error, Result};
use image::RgbImage;
use tch::{nn, Device, Kind, Tensor};

/// Names tried, in this order, when [`first_layer_filters`] is not told which parameter to use:
/// torchvision's ResNet (`conv1`), VGG and AlexNet (`features.0`), and common small-model names.
const FIRST_CONV_NAMES: [&str; 6] = [
    "conv1.weight",
    "features.0.weight",
    "conv.weight",
    "conv0.weight",
    "stem.0.weight",
    "features.conv0.weight",
];

/// How filter weights are mapped to `[0, 1]` colours.
///
/// ```
/// use cnn_explain::features::FilterScale;
/// assert_eq!(FilterScale::default(), FilterScale::PerFilter);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum FilterScale {
    /// Each filter min-max normalised on its own over its three channels: every tile uses the full
    /// colour range, and magnitudes cannot be compared between tiles. A constant filter is mid grey.
    #[default]
    PerFilter,
    /// One min-max range shared by all filters: tiles are comparable; weak filters look flat.
    Shared,
    /// `0.5 + w / (2 max |w|)` over all filters: zero is mid grey, the sign of a weight is its
    /// brightness relative to grey.
    SharedSymmetric,
}

/// First-layer filters and their colour-normalised versions.
///
/// ```
/// use cnn_explain::features::{filter_tiles, FilterScale};
/// use tch::Tensor;
/// let w = Tensor::from_slice(&[-1.0f32, 0.0, 1.0]).reshape([1, 3, 1, 1]);
/// let tiles = filter_tiles(&w, FilterScale::PerFilter)?;
/// assert_eq!(tiles.len(), 1);
/// assert_eq!(tiles.normalized.double_value(&[0, 1, 0, 0]), 0.5);
/// # Ok::<(), cnn_explain::Error>(())
/// ```
#[derive(Debug)]
pub struct FilterTiles {
    /// The parameter the weights came from (`conv1.weight`), or empty for a tensor passed directly.
    pub name: String,
    /// The weights `[out, 3, kh, kw]` (float, CPU).
    pub weights: Tensor,
    /// The weights mapped to `[0, 1]` by `scale`, `[out, 3, kh, kw]`; channel order R, G, B.
    pub normalized: Tensor,
    /// The normalisation used.
    pub scale: FilterScale,
}

impl FilterTiles {
    /// Number of filters.
    ///
    /// ```
    /// # use cnn_explain::features::{filter_tiles, FilterScale};
    /// let w = tch::Tensor::zeros([8, 3, 5, 5], (tch::Kind::Float, tch::Device::Cpu));
    /// assert_eq!(filter_tiles(&w, FilterScale::Shared)?.len(), 8);
    /// # Ok::<(), cnn_explain::Error>(())
    /// ```
    pub fn len(&self) -> usize {
        self.weights.size()[0] as usize
    }

    /// True when the layer has no filters.
    ///
    /// ```
    /// # use cnn_explain::features::{filter_tiles, FilterScale};
    /// let w = tch::Tensor::zeros([2, 3, 3, 3], (tch::Kind::Float, tch::Device::Cpu));
    /// assert!(!filter_tiles(&w, FilterScale::PerFilter)?.is_empty());
    /// # Ok::<(), cnn_explain::Error>(())
    /// ```
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Each filter as an RGB image `kw * scale` wide and `kh * scale` high, each weight repeated
    /// `scale` x `scale` times (nearest neighbour), ready for a grid.
    ///
    /// ```
    /// # use cnn_explain::features::{filter_tiles, FilterScale};
    /// let w = tch::Tensor::rand([4, 3, 3, 5], (tch::Kind::Float, tch::Device::Cpu));
    /// let images = filter_tiles(&w, FilterScale::PerFilter)?.images(8)?;
    /// assert_eq!(images.len(), 4);
    /// assert_eq!(images[0].dimensions(), (40, 24));
    /// # Ok::<(), cnn_explain::Error>(())
    /// ```
    pub fn images(&self, scale: u32) -> Result<Vec<RgbImage>> {
        (0..self.len() as i64)
            .map(|i| to_rgb_image(&self.normalized.get(i), scale))
            .collect()
    }
}

/// Maps first-layer convolution weights `weights` `[out, 3, kh, kw]` to RGB tiles in `[0, 1]`.
///
/// Errors when `weights` is not 4-D, does not have 3 input channels (an RGB filter), or is empty.
///
/// ```
/// use cnn_explain::features::{filter_tiles, FilterScale};
/// use tch::Tensor;
/// let w = Tensor::from_slice(&[0.0f32, 1.0, 2.0, 0.0, 0.0, 4.0]).reshape([2, 3, 1, 1]);
/// let per = filter_tiles(&w, FilterScale::PerFilter)?;
/// assert_eq!(per.normalized.double_value(&[0, 1, 0, 0]), 0.5);
/// let shared = filter_tiles(&w, FilterScale::Shared)?;
/// assert_eq!(shared.normalized.double_value(&[0, 1, 0, 0]), 0.25);
/// assert!(filter_tiles(&Tensor::zeros([2, 1, 3, 3], (tch::Kind::Float, tch::Device::Cpu)), FilterScale::Shared).is_err());
/// # Ok::<(), cnn_explain::Error>(())
/// ```
pub fn filter_tiles(weights: &Tensor, scale: FilterScale) -> Result<FilterTiles> {
    tiles(String::new(), weights, scale)
}

fn tiles(name: String, weights: &Tensor, scale: FilterScale) -> Result<FilterTiles> {
    let size = weights.size();
    let what = if name.is_empty() {
        "filter weights".to_string()
    } else {
        format!("parameter `{name}`")
    };
    if size.len() != 4 {
        return Err(Error::shape(
            what,
            "first-layer convolution weights [out, 3, kh, kw]",
            &size,
        ));
    }
    if size[1] != 3 {
        return Err(Error::shape(
            what,
            "[out, 3, kh, kw]: RGB filters with 3 input channels (only a first layer on RGB images can be shown as colour tiles)",
            &size,
        ));
    }
    if size.contains(&0) {
        return Err(Error::shape(what, "a non-empty [out, 3, kh, kw]", &size));
    }
    let w = tch::no_grad(|| weights.detach().to_device(Device::Cpu).to_kind(Kind::Float));
    let normalized = match scale {
        FilterScale::PerFilter => minmax_per_slice(&w, 0.5)?,
        FilterScale::Shared => minmax_per_slice(&w.f_reshape([1, -1])?, 0.5)?.f_reshape(size.as_slice())?,
        FilterScale::SharedSymmetric => {
            let m = w.abs().max().double_value(&[]);
            if m > 0.0 {
                (&w / (2.0 * m) + 0.5).clamp(0.0, 1.0)
            } else {
                w.full_like(0.5)
            }
        }
    };
    Ok(FilterTiles {
        name,
        weights: w,
        normalized,
        scale,
    })
}

/// The name of the first convolution's weight in `vs`: the first of `conv1.weight`,
/// `features.0.weight`, `conv.weight`, `conv0.weight`, `stem.0.weight`, `features.conv0.weight`
/// that exists, else the only 4-D parameter with 3 input channels. Errors (listing the candidates)
/// when there is none or several.
///
/// ```
/// use cnn_explain::features::first_conv_weight_name;
/// use tch::{nn, Device};
/// let vs = nn::VarStore::new(Device::Cpu);
/// let _c = nn::conv2d(vs.root() / "features" / "0", 3, 8, 3, Default::default());
/// assert_eq!(first_conv_weight_name(&vs)?, "features.0.weight");
/// # Ok::<(), cnn_explain::Error>(())
/// ```
pub fn first_conv_weight_name(vs: &nn::VarStore) -> Result<String> {
    let vars = vs.variables();
    if let Some(name) = FIRST_CONV_NAMES.iter().find(|n| vars.contains_key(**n)) {
        return Ok(name.to_string());
    }
    let mut rgb: Vec<String> = vars
        .iter()
        .filter(|(_, t)| {
            let s = t.size();
            s.len() == 4 && s[1] == 3
        })
        .map(|(n, _)| n.clone())
        .collect();
    rgb.sort();
    match rgb.len() {
        1 => Ok(rgb.remove(0)),
        0 => Err(Error::invalid(
            "vs",
            "no convolution weight [out, 3, kh, kw] in this VarStore; pass the parameter name of the first convolution",
        )),
        _ => Err(Error::invalid(
            "vs",
            format!(
                "several parameters could be the first convolution ({}); pass the name of the one to show",
                rgb.join(", ")
            ),
        )),
    }
}

/// The first convolution's filters of a model from its parameters `vs`: the parameter `name`
/// (`conv1.weight`, `features.0.weight`, ...) or, with `None`, the one [`first_conv_weight_name`]
/// finds. Errors when the name is unknown (listing the 4-D parameters) or the weight is not
/// `[out, 3, kh, kw]`.
///
/// ```
/// use cnn_explain::features::{first_layer_filters, FilterScale};
/// use tch::{nn, Device};
/// let vs = nn::VarStore::new(Device::Cpu);
/// let _c = nn::conv2d(vs.root() / "conv1", 3, 8, 7, Default::default());
/// let filters = first_layer_filters(&vs, None, FilterScale::PerFilter)?;
/// assert_eq!(filters.name, "conv1.weight");
/// assert_eq!(filters.normalized.size(), [8, 3, 7, 7]);
/// assert!(first_layer_filters(&vs, Some("conv9.weight"), FilterScale::Shared).is_err());
/// # Ok::<(), cnn_explain::Error>(())
/// ```
pub fn first_layer_filters(vs: &nn::VarStore, name: Option<&str>, scale: FilterScale) -> Result<FilterTiles> {
    let name = match name {
        Some(n) => n.to_string(),
        None => first_conv_weight_name(vs)?,
    };
    let vars = vs.variables();
    match vars.get(&name) {
        Some(w) => tiles(name, w, scale),
        None => {
            let mut convs: Vec<&String> = vars
                .iter()
                .filter(|(_, t)| t.dim() == 4)
                .map(|(n, _)| n)
                .collect();
            convs.sort();
            let list: Vec<&str> = convs.iter().map(|s| s.as_str()).collect();
            Err(Error::invalid(
                "name",
                format!(
                    "no parameter `{name}`; the 4-D (convolution) parameters are: {}",
                    list.join(", ")
                ),
            ))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn values(t: &Tensor) -> Vec<f32> {
        Vec::try_from(&t.reshape([-1])).unwrap()
    }

    /// Two filters [2, 3, 1, 2]: filter 0 holds -1..=4, filter 1 is constant 2.
    fn weights() -> Tensor {
        Tensor::from_slice(&[-1.0f32, 0.0, 1.0, 2.0, 3.0, 4.0, 2.0, 2.0, 2.0, 2.0, 2.0, 2.0])
            .reshape([2, 3, 1, 2])
    }

    #[test]
    fn normalisations_are_exact() {
        let per = filter_tiles(&weights(), FilterScale::PerFilter).unwrap();
        assert_eq!(
            values(&per.normalized),
            [0.0, 0.2, 0.4, 0.6, 0.8, 1.0, 0.5, 0.5, 0.5, 0.5, 0.5, 0.5]
        );
        let shared = filter_tiles(&weights(), FilterScale::Shared).unwrap();
        assert_eq!(
            values(&shared.normalized),
            [0.0, 0.2, 0.4, 0.6, 0.8, 1.0, 0.6, 0.6, 0.6, 0.6, 0.6, 0.6]
        );
        let sym = filter_tiles(&weights(), FilterScale::SharedSymmetric).unwrap();
        assert_eq!(
            values(&sym.normalized),
            [0.375, 0.5, 0.625, 0.75, 0.875, 1.0, 0.75, 0.75, 0.75, 0.75, 0.75, 0.75]
        );
        let zero = Tensor::zeros([1, 3, 2, 2], (Kind::Float, Device::Cpu));
        let z = filter_tiles(&zero, FilterScale::SharedSymmetric).unwrap();
        assert_eq!(values(&z.normalized), [0.5; 12]);
    }

    #[test]
    fn tiles_are_rgb_in_channel_order_and_upscaled() {
        let per = filter_tiles(&weights(), FilterScale::PerFilter).unwrap();
        let imgs = per.images(3).unwrap();
        assert_eq!(imgs.len(), 2);
        assert_eq!(imgs[0].dimensions(), (6, 3));
        // Pixel (x=0) of filter 0: R = 0.0, G = 0.4, B = 0.8; pixel (x=1): 0.2, 0.6, 1.0.
        for y in 0..3 {
            for x in 0..3 {
                assert_eq!(imgs[0].get_pixel(x, y).0, [0, 102, 204]);
                assert_eq!(imgs[0].get_pixel(x + 3, y).0, [51, 153, 255]);
            }
        }
        assert_eq!(imgs[1].get_pixel(5, 2).0, [128, 128, 128]);
        assert!(per.images(0).is_err());
    }

    #[test]
    fn first_conv_is_found_by_name_or_shape() {
        let vs = nn::VarStore::new(Device::Cpu);
        let root = vs.root();
        let _a = nn::conv2d(&root / "block" / "conv", 3, 4, 3, Default::default());
        let _b = nn::conv2d(&root / "block" / "conv2", 4, 4, 3, Default::default());
        let _fc = nn::linear(&root / "fc", 3, 2, Default::default());
        assert_eq!(first_conv_weight_name(&vs).unwrap(), "block.conv.weight");
        let f = first_layer_filters(&vs, None, FilterScale::PerFilter).unwrap();
        assert_eq!(f.name, "block.conv.weight");
        assert_eq!(f.weights.size(), [4, 3, 3, 3]);
        let vars = vs.variables();
        assert!(f.weights.equal(&vars["block.conv.weight"]));
        // A named parameter that is not an RGB convolution.
        let err = first_layer_filters(&vs, Some("block.conv2.weight"), FilterScale::Shared)
            .unwrap_err()
            .to_string();
        assert!(err.contains("3 input channels"), "{err}");
        let err = first_layer_filters(&vs, Some("fc.weight"), FilterScale::Shared)
            .unwrap_err()
            .to_string();
        assert!(err.contains("[out, 3, kh, kw]"), "{err}");
        let err = first_layer_filters(&vs, Some("conv1.weight"), FilterScale::Shared)
            .unwrap_err()
            .to_string();
        assert!(err.contains("block.conv.weight, block.conv2.weight"), "{err}");
        // Two RGB candidates and no conventional name: ambiguous.
        let _c = nn::conv2d(&root / "other", 3, 2, 1, Default::default());
        let err = first_conv_weight_name(&vs).unwrap_err().to_string();
        assert!(err.contains("block.conv.weight, other.weight"), "{err}");
        // A conventional name wins.
        let _d = nn::conv2d(&root / "conv1", 3, 2, 1, Default::default());
        assert_eq!(first_conv_weight_name(&vs).unwrap(), "conv1.weight");
        let empty = nn::VarStore::new(Device::Cpu);
        assert!(first_conv_weight_name(&empty).is_err());
    }
}
