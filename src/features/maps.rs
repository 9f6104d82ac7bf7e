//! Feature maps: the activations of one layer for one image, one map per channel.

use super::{minmax_per_slice, single_image, to_rgb_image};
use crate::models::Model;
use crate::{Error, Result};
use image::RgbImage;
use tch::{Device, Kind, Tensor};

/// Which channels of a layer [`feature_maps`] returns.
///
/// ```
/// use cnn_explain::features::ChannelSelection;
/// assert_eq!(ChannelSelection::default(), ChannelSelection::Strongest(16));
/// let chosen = ChannelSelection::List(vec![0, 5, 7]);
/// assert_ne!(chosen, ChannelSelection::All);
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ChannelSelection {
    /// The `k` channels with the highest mean activation, strongest first (fewer if the layer has
    /// fewer channels; ties keep channel order).
    Strongest(usize),
    /// The `k` channels with the highest maximum activation, strongest first.
    StrongestByMax(usize),
    /// These channels, in this order.
    List(Vec<i64>),
    /// Every channel, in channel order.
    All,
}

impl Default for ChannelSelection {
    fn default() -> Self {
        ChannelSelection::Strongest(16)
    }
}

/// The maps of the selected channels of one layer for one image.
///
/// ```
/// use cnn_explain::features::{feature_maps, ChannelSelection};
/// use cnn_explain::models::Staged;
/// use tch::{nn, Device, Kind, Tensor};
///
/// let model = Staged::new(3, 3, Device::Cpu)
///     .leaf("double", nn::func(|xs| xs * 2.0))
///     .leaf("pool", nn::func(|xs| xs.mean_dim(&[2i64, 3][..], false, Kind::Float)));
/// let image = Tensor::from_slice(&[0.0f32, 1.0, 2.0, 3.0]).reshape([1, 2, 2]).repeat([3, 1, 1]);
/// let fm = feature_maps(&model, &image, "double", &ChannelSelection::List(vec![2]))?;
/// assert_eq!(fm.channels, [2]);
/// assert_eq!(fm.mean_activation, [3.0]);
/// assert_eq!(fm.max_activation, [6.0]);
/// assert!((fm.normalized.double_value(&[0, 1, 0]) - 2.0 / 3.0).abs() < 1e-6);
/// # Ok::<(), cnn_explain::Error>(())
/// ```
#[derive(Debug)]
pub struct FeatureMaps {
    /// The layer the maps were taken at.
    pub layer: String,
    /// The channel index of each map, in the order of `maps`.
    pub channels: Vec<i64>,
    /// Raw activations `[k, h, w]` (float, CPU); a flat layer `[1, K]` gives maps `[k, 1, 1]`.
    pub maps: Tensor,
    /// The same maps each min-max normalised to `[0, 1]` on its own, `[k, h, w]`; a constant map
    /// (a dead ReLU channel, for example) is all zeros.
    pub normalized: Tensor,
    /// Mean activation of each selected channel over its map, in the order of `channels`.
    pub mean_activation: Vec<f64>,
    /// Maximum activation of each selected channel, in the order of `channels`.
    pub max_activation: Vec<f64>,
    /// How many channels the layer has in total.
    pub layer_channels: i64,
}

impl FeatureMaps {
    /// Number of maps.
    ///
    /// ```
    /// # use cnn_explain::features::{feature_maps, ChannelSelection};
    /// # use cnn_explain::models::Staged;
    /// # use tch::{nn, Device, Kind, Tensor};
    /// let model = Staged::new(3, 3, Device::Cpu).leaf("id", nn::func(|xs| xs.shallow_clone()));
    /// let fm = feature_maps(&model, &Tensor::rand([3, 4, 4], (Kind::Float, Device::Cpu)), "id", &ChannelSelection::All)?;
    /// assert_eq!(fm.len(), 3);
    /// assert!(!fm.is_empty());
    /// # Ok::<(), cnn_explain::Error>(())
    /// ```
    pub fn len(&self) -> usize {
        self.channels.len()
    }

    /// True when no map was selected (never the case for a result of [`feature_maps`]).
    ///
    /// ```
    /// # use cnn_explain::features::{feature_maps, ChannelSelection};
    /// # use cnn_explain::models::Staged;
    /// # use tch::{nn, Device, Kind, Tensor};
    /// let model = Staged::new(3, 3, Device::Cpu).leaf("id", nn::func(|xs| xs.shallow_clone()));
    /// let fm = feature_maps(&model, &Tensor::rand([3, 4, 4], (Kind::Float, Device::Cpu)), "id", &ChannelSelection::Strongest(1))?;
    /// assert!(!fm.is_empty());
    /// # Ok::<(), cnn_explain::Error>(())
    /// ```
    pub fn is_empty(&self) -> bool {
        self.channels.is_empty()
    }

    /// The normalised maps as grey RGB images, each pixel repeated `scale` x `scale` times
    /// (nearest neighbour), in the order of `channels`.
    ///
    /// ```
    /// # use cnn_explain::features::{feature_maps, ChannelSelection};
    /// # use cnn_explain::models::Staged;
    /// # use tch::{nn, Device, Kind, Tensor};
    /// let model = Staged::new(3, 3, Device::Cpu).leaf("id", nn::func(|xs| xs.shallow_clone()));
    /// let fm = feature_maps(&model, &Tensor::rand([3, 4, 5], (Kind::Float, Device::Cpu)), "id", &ChannelSelection::All)?;
    /// let images = fm.images(3)?;
    /// assert_eq!(images.len(), 3);
    /// assert_eq!(images[0].dimensions(), (15, 12));
    /// # Ok::<(), cnn_explain::Error>(())
    /// ```
    pub fn images(&self, scale: u32) -> Result<Vec<RgbImage>> {
        (0..self.len() as i64)
            .map(|i| to_rgb_image(&self.normalized.get(i).unsqueeze(0), scale))
            .collect()
    }
}

/// The activations of `layer` for one `image` (`[C, H, W]` or `[1, C, H, W]`), for the channels
/// chosen by `selection`.
///
/// Runs the model in evaluation mode without gradients. Errors: an unknown layer (the message lists
/// the model's layers), an image that is not one image the model accepts, a channel outside
/// `0..K`, an empty list or `Strongest(0)`, or a layer whose output is neither `[1, K, h, w]` nor
/// `[1, K]`.
///
/// ```
/// use cnn_explain::features::{feature_maps, ChannelSelection};
/// use cnn_explain::models::Staged;
/// use tch::{nn, Device, Kind, Tensor};
///
/// // Channel c of layer "scale" is (c + 1) times the input channel c.
/// let w = Tensor::from_slice(&[1.0f32, 2.0, 3.0]).reshape([1, 3, 1, 1]);
/// let model = Staged::new(3, 3, Device::Cpu).leaf("scale", nn::func(move |xs| xs * &w));
/// let image = Tensor::ones([3, 4, 4], (Kind::Float, Device::Cpu));
/// let fm = feature_maps(&model, &image, "scale", &ChannelSelection::Strongest(2))?;
/// assert_eq!(fm.channels, [2, 1]);
/// assert_eq!(fm.maps.size(), [2, 4, 4]);
/// assert!(feature_maps(&model, &image, "nope", &ChannelSelection::All).is_err());
/// assert!(feature_maps(&model, &image, "scale", &ChannelSelection::List(vec![3])).is_err());
/// # Ok::<(), cnn_explain::Error>(())
/// ```
pub fn feature_maps(
    model: &dyn Model,
    image: &Tensor,
    layer: &str,
    selection: &ChannelSelection,
) -> Result<FeatureMaps> {
    model.check_layer(layer)?;
    let xs = single_image(model, image)?;
    let act = tch::no_grad(|| model.forward_to(&xs, layer))?;
    let act = match act.dim() {
        4 => act.get(0),
        2 => act.get(0).f_reshape([-1, 1, 1])?,
        _ => {
            return Err(Error::shape(
                format!("activation at layer `{layer}`"),
                "[1, K, h, w] (a convolutional layer) or [1, K] (a flat layer)",
                &act.size(),
            ))
        }
    };
    let act = act.to_device(Device::Cpu).to_kind(Kind::Float);
    let k = act.size()[0];
    if k == 0 {
        return Err(Error::shape(
            format!("activation at layer `{layer}`"),
            "at least one channel",
            &act.size(),
        ));
    }
    let flat = act.f_reshape([k, -1])?.to_kind(Kind::Double);
    let means: Vec<f64> = Vec::try_from(&flat.f_mean_dim(&[1i64][..], false, Kind::Double)?)?;
    let maxes: Vec<f64> = Vec::try_from(&flat.f_amax(&[1i64][..], false)?)?;
    let strongest = |n: usize, by: &[f64]| -> Result<Vec<i64>> {
        if n == 0 {
            return Err(Error::invalid(
                "selection",
                "ask for at least one channel (Strongest(k) with k >= 1)",
            ));
        }
        let mut order: Vec<i64> = (0..k).collect();
        // Stable sort, descending; NaN (a broken activation) sorts last.
        order.sort_by(|&a, &b| {
            let (va, vb) = (by[a as usize], by[b as usize]);
            match (va.is_nan(), vb.is_nan()) {
                (true, true) => std::cmp::Ordering::Equal,
                (true, false) => std::cmp::Ordering::Greater,
                (false, true) => std::cmp::Ordering::Less,
                _ => vb.total_cmp(&va),
            }
        });
        order.truncate(n);
        Ok(order)
    };
    let channels = match selection {
        ChannelSelection::All => (0..k).collect(),
        ChannelSelection::Strongest(n) => strongest(*n, &means)?,
        ChannelSelection::StrongestByMax(n) => strongest(*n, &maxes)?,
        ChannelSelection::List(list) => {
            if list.is_empty() {
                return Err(Error::invalid(
                    "selection",
                    "ChannelSelection::List is empty; list at least one channel",
                ));
            }
            if let Some(bad) = list.iter().find(|&&c| !(0..k).contains(&c)) {
                return Err(Error::invalid(
                    "selection",
                    format!(
                        "channel {bad} is out of range: layer `{layer}` has {k} channels (valid: 0..={})",
                        k - 1
                    ),
                ));
            }
            list.clone()
        }
    };
    let idx = Tensor::from_slice(&channels);
    let maps = act.f_index_select(0, &idx)?;
    let normalized = minmax_per_slice(&maps, 0.0)?;
    Ok(FeatureMaps {
        layer: layer.to_string(),
        mean_activation: channels.iter().map(|&c| means[c as usize]).collect(),
        max_activation: channels.iter().map(|&c| maxes[c as usize]).collect(),
        channels,
        maps,
        normalized,
        layer_channels: k,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::models::Staged;
    use tch::nn;

    /// A 1x1 convolution with hand-set weights: ch0 = 2 R, ch1 = 0 (dead), ch2 = G + 1, ch3 = -R.
    fn hand_conv() -> (nn::VarStore, Staged) {
        let vs = nn::VarStore::new(Device::Cpu);
        let mut conv = nn::conv2d(vs.root() / "conv", 3, 4, 1, Default::default());
        tch::no_grad(|| {
            let w = Tensor::from_slice(&[2.0f32, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 1.0, 0.0, -1.0, 0.0, 0.0])
                .reshape([4, 3, 1, 1]);
            conv.ws.copy_(&w);
            if let Some(b) = &mut conv.bs {
                b.copy_(&Tensor::from_slice(&[0.0f32, 0.0, 1.0, 0.0]));
            }
        });
        let model = Staged::new(3, 4, Device::Cpu).leaf("conv", conv).leaf(
            "pool",
            nn::func(|xs| xs.mean_dim(&[2i64, 3][..], false, Kind::Float)),
        );
        (vs, model)
    }

    fn image() -> Tensor {
        let r = Tensor::from_slice(&[0.0f32, 1.0, 2.0, 3.0]).reshape([1, 2, 2]);
        let g = Tensor::full([1, 2, 2], 0.5, (Kind::Float, Device::Cpu));
        let b = Tensor::zeros([1, 2, 2], (Kind::Float, Device::Cpu));
        Tensor::cat(&[r, g, b], 0)
    }

    fn values(t: &Tensor) -> Vec<f32> {
        Vec::try_from(&t.reshape([-1])).unwrap()
    }

    #[test]
    fn activations_and_order_match_the_hand_computed_conv() {
        let (_vs, model) = hand_conv();
        let fm = feature_maps(&model, &image(), "conv", &ChannelSelection::All).unwrap();
        assert_eq!(fm.channels, [0, 1, 2, 3]);
        assert_eq!(fm.layer_channels, 4);
        assert_eq!(fm.mean_activation, [3.0, 0.0, 1.5, -1.5]);
        assert_eq!(fm.max_activation, [6.0, 0.0, 1.5, 0.0]);
        assert_eq!(
            values(&fm.maps),
            [0.0, 2.0, 4.0, 6.0, 0.0, 0.0, 0.0, 0.0, 1.5, 1.5, 1.5, 1.5, 0.0, -1.0, -2.0, -3.0]
        );
        let n = values(&fm.normalized);
        let third = 1.0f32 / 3.0;
        let expect = [
            0.0,
            third,
            2.0 * third,
            1.0,
            0.0,
            0.0,
            0.0,
            0.0,
            0.0,
            0.0,
            0.0,
            0.0,
            1.0,
            2.0 * third,
            third,
            0.0,
        ];
        for (a, b) in n.iter().zip(expect) {
            assert!((a - b).abs() < 1e-6, "{n:?}");
        }

        let by_mean = feature_maps(&model, &image(), "conv", &ChannelSelection::Strongest(3)).unwrap();
        assert_eq!(by_mean.channels, [0, 2, 1]);
        assert_eq!(by_mean.mean_activation, [3.0, 1.5, 0.0]);
        // By maximum, channels 1 and 3 tie at 0 and keep channel order.
        let by_max = feature_maps(&model, &image(), "conv", &ChannelSelection::StrongestByMax(4)).unwrap();
        assert_eq!(by_max.channels, [0, 2, 1, 3]);
        // Asking for more channels than the layer has gives them all.
        let many = feature_maps(&model, &image(), "conv", &ChannelSelection::Strongest(99)).unwrap();
        assert_eq!(many.channels, [0, 2, 1, 3]);
        // A chosen list keeps its order and the maps follow it.
        let list = feature_maps(&model, &image(), "conv", &ChannelSelection::List(vec![3, 0])).unwrap();
        assert_eq!(list.channels, [3, 0]);
        assert_eq!(values(&list.maps.get(0)), [0.0, -1.0, -2.0, -3.0]);
        assert_eq!(list.mean_activation, [-1.5, 3.0]);
        let imgs = list.images(2).unwrap();
        assert_eq!(imgs[0].dimensions(), (4, 4));
        assert_eq!(imgs[0].get_pixel(0, 0).0, [255, 255, 255]);
        assert_eq!(imgs[0].get_pixel(3, 3).0, [0, 0, 0]);
    }

    #[test]
    fn batched_image_and_flat_layers_work() {
        let (_vs, model) = hand_conv();
        let fm = feature_maps(&model, &image().unsqueeze(0), "pool", &ChannelSelection::All).unwrap();
        assert_eq!(fm.maps.size(), [4, 1, 1]);
        assert_eq!(fm.mean_activation, [3.0, 0.0, 1.5, -1.5]);
    }

    #[test]
    fn bad_requests_are_errors() {
        let (_vs, model) = hand_conv();
        let img = image();
        let err = feature_maps(&model, &img, "conv9", &ChannelSelection::All)
            .unwrap_err()
            .to_string();
        assert!(err.contains("conv9") && err.contains("conv, pool"), "{err}");
        let err = feature_maps(&model, &img, "conv", &ChannelSelection::List(vec![0, 4]))
            .unwrap_err()
            .to_string();
        assert!(err.contains("channel 4") && err.contains("4 channels"), "{err}");
        assert!(feature_maps(&model, &img, "conv", &ChannelSelection::List(vec![-1])).is_err());
        assert!(feature_maps(&model, &img, "conv", &ChannelSelection::List(vec![])).is_err());
        assert!(feature_maps(&model, &img, "conv", &ChannelSelection::Strongest(0)).is_err());
        let two = Tensor::cat(&[img.unsqueeze(0), img.unsqueeze(0)], 0);
        assert!(matches!(
            feature_maps(&model, &two, "conv", &ChannelSelection::All),
            Err(Error::Shape { .. })
        ));
        let gray = Tensor::zeros([1, 2, 2], (Kind::Float, Device::Cpu));
        assert!(feature_maps(&model, &gray, "conv", &ChannelSelection::All).is_err());
    }
}
