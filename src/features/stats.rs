//! Which channels fire for which class: per-class channel statistics over a dataset.

use super::pool_channels;
use crate::data::Dataset;
use crate::models::Model;
use crate::{Error, Result};
use tch::{Device, Kind, Tensor};

/// What [`ChannelStats::top_channels_per_class`] ranks channels by.
///
/// ```
/// use cnn_explain::features::ChannelScore;
/// assert_eq!(ChannelScore::default(), ChannelScore::Selectivity);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ChannelScore {
    /// The class's mean activation of the channel: channels that fire strongly for the class,
    /// whether or not they fire for the others too.
    Mean,
    /// [`ChannelStats::selectivity`]: channels that fire more for this class than for the others.
    #[default]
    Selectivity,
}

/// Per-class statistics of the spatially pooled activations of one layer.
///
/// For channel `j`, let `a_j(x)` be the mean of its map for image `x` (the value itself for a flat
/// layer). Then `mean[c, j]` is the average of `a_j` over the images of class `c`, and
/// `selectivity[c, j] = (mean[c, j] - mean_rest[c, j]) / std[j]` where `mean_rest` averages over
/// the images of all other classes and `std[j]` is the (population) standard deviation of `a_j`
/// over all images: a standardised difference, how many standard deviations the class's
/// activation stands above the rest. It is 0 when `std[j]` is 0 or when the class or the rest has
/// no images; a class with no images has `mean` 0 and `count` 0.
///
/// ```
/// use cnn_explain::features::{channel_class_statistics, ChannelScore};
/// use cnn_explain::models::Staged;
/// use tch::{nn, Device, Kind, Tensor};
///
/// // Layer "id" passes the 2-channel input through; logits are its pooled channels.
/// let model = Staged::new(2, 2, Device::Cpu)
///     .leaf("id", nn::func(|xs| xs.shallow_clone()))
///     .leaf("pool", nn::func(|xs| xs.mean_dim(&[2i64, 3][..], false, Kind::Float)));
/// // Class 0 lights channel 0, class 1 lights channel 1.
/// let images = Tensor::from_slice(&[1.0f32, 0.0, 0.0, 1.0]).reshape([2, 2, 1, 1]);
/// let labels = Tensor::from_slice(&[0i64, 1]);
/// let stats = channel_class_statistics(&model, &images, &labels, "id", 8)?;
/// assert_eq!(stats.mean.double_value(&[0, 0]), 1.0);
/// assert_eq!(stats.mean.double_value(&[0, 1]), 0.0);
/// assert_eq!(stats.top_channels_per_class(1, ChannelScore::Selectivity)?[1][0].0, 1);
/// # Ok::<(), cnn_explain::Error>(())
/// ```
#[derive(Debug)]
pub struct ChannelStats {
    /// The layer.
    pub layer: String,
    /// `[num_classes, K]` float64: mean pooled activation per class and channel.
    pub mean: Tensor,
    /// `[K]` float64: mean pooled activation per channel over all images.
    pub overall_mean: Tensor,
    /// `[K]` float64: population standard deviation of the pooled activation over all images.
    pub std: Tensor,
    /// `[num_classes, K]` float64: `(class mean - mean of the other classes' images) / std`.
    pub selectivity: Tensor,
    /// Number of images of each class.
    pub counts: Vec<i64>,
}

impl ChannelStats {
    /// Number of classes (rows of `mean`).
    ///
    /// ```
    /// # use cnn_explain::features::channel_class_statistics;
    /// # use cnn_explain::models::Staged;
    /// # use tch::{nn, Device, Kind, Tensor};
    /// let model = Staged::new(3, 3, Device::Cpu).leaf("id", nn::func(|xs| xs.mean_dim(&[2i64, 3][..], false, Kind::Float)));
    /// let stats = channel_class_statistics(&model, &Tensor::rand([4, 3, 2, 2], (Kind::Float, Device::Cpu)), &Tensor::from_slice(&[0i64, 1, 2, 0]), "id", 2)?;
    /// assert_eq!((stats.num_classes(), stats.num_channels()), (3, 3));
    /// # Ok::<(), cnn_explain::Error>(())
    /// ```
    pub fn num_classes(&self) -> i64 {
        self.mean.size()[0]
    }

    /// Number of channels `K` of the layer.
    ///
    /// ```
    /// # use cnn_explain::features::channel_class_statistics;
    /// # use cnn_explain::models::Staged;
    /// # use tch::{nn, Device, Kind, Tensor};
    /// let model = Staged::new(3, 2, Device::Cpu)
    ///     .leaf("id", nn::func(|xs| xs.shallow_clone()))
    ///     .leaf("head", nn::func(|xs| xs.mean_dim(&[2i64, 3][..], false, Kind::Float).narrow(1, 0, 2)));
    /// let stats = channel_class_statistics(&model, &Tensor::rand([2, 3, 2, 2], (Kind::Float, Device::Cpu)), &Tensor::from_slice(&[0i64, 1]), "id", 2)?;
    /// assert_eq!(stats.num_channels(), 3);
    /// # Ok::<(), cnn_explain::Error>(())
    /// ```
    pub fn num_channels(&self) -> i64 {
        self.mean.size()[1]
    }

    /// For every class, its `k` highest-scoring channels as `(channel, score)`, best first (fewer
    /// when the layer has fewer channels; none for a class without images). `k = 0` is an error.
    ///
    /// ```
    /// # use cnn_explain::features::{channel_class_statistics, ChannelScore};
    /// # use cnn_explain::models::Staged;
    /// # use tch::{nn, Device, Kind, Tensor};
    /// let model = Staged::new(2, 2, Device::Cpu).leaf("id", nn::func(|xs| xs.mean_dim(&[2i64, 3][..], false, Kind::Float)));
    /// let images = Tensor::from_slice(&[3.0f32, 1.0, 0.0, 2.0]).reshape([2, 2, 1, 1]);
    /// let stats = channel_class_statistics(&model, &images, &Tensor::from_slice(&[0i64, 1]), "id", 2)?;
    /// let top = stats.top_channels_per_class(2, ChannelScore::Mean)?;
    /// assert_eq!(top[0], [(0, 3.0), (1, 1.0)]);
    /// assert_eq!(top[1], [(1, 2.0), (0, 0.0)]);
    /// # Ok::<(), cnn_explain::Error>(())
    /// ```
    pub fn top_channels_per_class(&self, k: usize, by: ChannelScore) -> Result<Vec<Vec<(i64, f64)>>> {
        if k == 0 {
            return Err(Error::invalid("k", "ask for at least one channel per class"));
        }
        let scores: Vec<Vec<f64>> = Vec::try_from(match by {
            ChannelScore::Mean => &self.mean,
            ChannelScore::Selectivity => &self.selectivity,
        })?;
        Ok(scores
            .into_iter()
            .zip(&self.counts)
            .map(|(row, &count)| {
                if count == 0 {
                    return Vec::new();
                }
                let mut order: Vec<(i64, f64)> =
                    row.into_iter().enumerate().map(|(j, s)| (j as i64, s)).collect();
                order.sort_by(|a, b| b.1.total_cmp(&a.1));
                order.truncate(k);
                order
            })
            .collect())
    }
}

/// Per-class statistics of the channels of `layer` over `images` `[N, C, H, W]` with `labels` `[N]`
/// (int64 in `0..model.num_classes()`), run in batches of `batch` images without gradients in
/// evaluation mode. See [`ChannelStats`] for the definitions.
///
/// Errors: unknown layer, empty data, `batch = 0`, labels not `[N]` or out of range, images the
/// model does not accept, a layer whose output is neither `[N, K, h, w]` nor `[N, K]`.
///
/// ```
/// use cnn_explain::features::channel_class_statistics;
/// use cnn_explain::models::Staged;
/// use tch::{nn, Device, Kind, Tensor};
/// let model = Staged::new(1, 2, Device::Cpu)
///     .leaf("id", nn::func(|xs| xs.mean_dim(&[2i64, 3][..], false, Kind::Float).repeat([1, 2])));
/// let images = Tensor::from_slice(&[1.0f32, 3.0, 5.0]).reshape([3, 1, 1, 1]);
/// let stats = channel_class_statistics(&model, &images, &Tensor::from_slice(&[0i64, 0, 1]), "id", 2)?;
/// assert_eq!(stats.mean.double_value(&[0, 0]), 2.0);
/// assert_eq!(stats.counts, [2, 1]);
/// assert!(channel_class_statistics(&model, &images, &Tensor::from_slice(&[0i64, 0, 2]), "id", 2).is_err());
/// # Ok::<(), cnn_explain::Error>(())
/// ```
pub fn channel_class_statistics(
    model: &dyn Model,
    images: &Tensor,
    labels: &Tensor,
    layer: &str,
    batch: usize,
) -> Result<ChannelStats> {
    model.check_layer(layer)?;
    if batch == 0 {
        return Err(Error::invalid("batch", "the batch size must be at least 1"));
    }
    let size = images.size();
    if size.len() != 4 || size[0] == 0 {
        return Err(Error::shape("images", "a non-empty batch [N, C, H, W]", &size));
    }
    let n = size[0];
    if labels.size() != [n] {
        return Err(Error::shape(
            "labels",
            format!("[{n}] (one class index per image)"),
            &labels.size(),
        ));
    }
    if !matches!(
        labels.kind(),
        Kind::Int64 | Kind::Int | Kind::Int16 | Kind::Int8 | Kind::Uint8
    ) {
        return Err(Error::invalid(
            "labels",
            format!("expected integer class indices, got {:?}", labels.kind()),
        ));
    }
    let num_classes = model.num_classes();
    if num_classes < 1 {
        return Err(Error::invalid("model", "the model reports no classes"));
    }
    let labels = labels.to_device(Device::Cpu).to_kind(Kind::Int64);
    let (lo, hi) = (labels.min().int64_value(&[]), labels.max().int64_value(&[]));
    for bad in [lo, hi] {
        if !(0..num_classes).contains(&bad) {
            return Err(Error::ClassOutOfRange {
                index: bad,
                num_classes,
            });
        }
    }
    let device = model.device();
    let labels = labels.to_device(device);
    // Per-class sums [classes, K], and the running mean and centred sum of squares [K] over all
    // images (Chan et al.'s pairwise update: exact zero variance for a constant channel).
    let mut acc: Option<(Tensor, Tensor, Tensor)> = None;
    let mut seen = 0i64;
    let batch = batch as i64;
    tch::no_grad(|| -> Result<()> {
        while seen < n {
            let len = batch.min(n - seen);
            let xs = images.f_narrow(0, seen, len)?.to_device(device);
            let act = model.forward_to(&xs, layer)?;
            let pooled = pool_channels(&act, layer)?; // [B, K] double
            if pooled.size()[0] != len {
                return Err(Error::shape(
                    format!("activation at layer `{layer}`"),
                    format!("one row per image ({len})"),
                    &act.size(),
                ));
            }
            let ys = labels.f_narrow(0, seen, len)?;
            let onehot = ys.f_one_hot(num_classes)?.to_kind(Kind::Double); // [B, classes]
            let per_class = onehot.f_transpose(0, 1)?.f_matmul(&pooled)?;
            let mean_b = pooled.f_mean_dim(&[0i64][..], false, Kind::Double)?;
            let m2_b = (&pooled - &mean_b)
                .f_square()?
                .f_sum_dim_intlist(&[0i64][..], false, Kind::Double)?;
            acc = Some(match acc.take() {
                None => (per_class, mean_b, m2_b),
                Some((pc, mean_a, m2_a)) => {
                    let (na, nb) = (seen as f64, len as f64);
                    let total = na + nb;
                    let delta = &mean_b - &mean_a;
                    let mean = &mean_a + &delta * (nb / total);
                    let m2 = m2_a + m2_b + delta.square() * (na * nb / total);
                    (pc.f_add(&per_class)?, mean, m2)
                }
            });
            seen += len;
        }
        Ok(())
    })?;
    let (per_class, overall_mean, m2) = match acc {
        Some(s) => s,
        None => return Err(Error::shape("images", "a non-empty batch [N, C, H, W]", &size)),
    };
    let per_class = per_class.to_device(Device::Cpu);
    let overall_mean = overall_mean.to_device(Device::Cpu);
    let nf = n as f64;
    let std = (m2.to_device(Device::Cpu) / nf).clamp_min(0.0).sqrt();
    let counts_t = labels
        .to_device(Device::Cpu)
        .f_bincount::<Tensor>(None, num_classes)?
        .to_kind(Kind::Double);
    let counts: Vec<i64> = Vec::try_from(&counts_t.to_kind(Kind::Int64))?;
    let cnt = counts_t.unsqueeze(1); // [classes, 1]
    let has = cnt.gt(0.0);
    let mean = (&per_class / cnt.clamp_min(1.0)).where_self(&has, &per_class.zeros_like());
    let total = per_class.sum_dim_intlist(&[0i64][..], true, Kind::Double); // [1, K]
    let rest_cnt = cnt.neg() + nf;
    let has_rest = rest_cnt.gt(0.0);
    let rest_mean =
        ((total - &per_class) / rest_cnt.clamp_min(1.0)).where_self(&has_rest, &per_class.zeros_like());
    let std_row = std.unsqueeze(0);
    let valid = has.logical_and(&has_rest).logical_and(&std_row.gt(0.0));
    let selectivity =
        ((&mean - &rest_mean) / std_row.clamp_min(f64::MIN_POSITIVE)).where_self(&valid, &mean.zeros_like());
    Ok(ChannelStats {
        layer: layer.to_string(),
        mean,
        overall_mean,
        std,
        selectivity,
        counts,
    })
}

/// [`channel_class_statistics`] over a whole [`Dataset`] (its images and labels).
///
/// ```
/// use cnn_explain::data::Dataset;
/// use cnn_explain::features::{dataset_channel_statistics, ChannelScore};
/// use cnn_explain::models::Staged;
/// use tch::{nn, Device, Kind, Tensor};
/// let model = Staged::new(2, 2, Device::Cpu).leaf("id", nn::func(|xs| xs.mean_dim(&[2i64, 3][..], false, Kind::Float)));
/// let images = Tensor::from_slice(&[1.0f32, 0.0, 0.0, 1.0]).reshape([2, 2, 1, 1]);
/// let ds = Dataset::new(images, Tensor::from_slice(&[0i64, 1]), vec!["a".into(), "b".into()], None)?;
/// let stats = dataset_channel_statistics(&model, &ds, "id", 1)?;
/// assert_eq!(stats.selectivity.double_value(&[0, 0]), 2.0);
/// # Ok::<(), cnn_explain::Error>(())
/// ```
pub fn dataset_channel_statistics(
    model: &dyn Model,
    data: &Dataset,
    layer: &str,
    batch: usize,
) -> Result<ChannelStats> {
    channel_class_statistics(model, &data.images, &data.labels, layer, batch)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::models::Staged;
    use tch::nn;

    /// Layer "conv" keeps the first two input channels (a fixed 1x1 convolution); logits are their
    /// spatial means.
    fn model() -> Staged {
        let w = Tensor::from_slice(&[1.0f32, 0.0, 0.0, 0.0, 1.0, 0.0]).reshape([2, 3, 1, 1]);
        Staged::new(3, 2, Device::Cpu)
            .leaf(
                "conv",
                nn::func(move |xs| xs.conv2d::<Tensor>(&w, None, [1, 1], [0, 0], [1, 1], 1)),
            )
            .leaf(
                "pool",
                nn::func(|xs| xs.mean_dim(&[2i64, 3][..], false, Kind::Float)),
            )
    }

    /// Four images 2x2: class 0 has R = 1 (channel 0 fires), class 1 has R = 0; G = 0.5 everywhere
    /// (channel 1 is the same for all classes). Labels 0, 1, 0, 1.
    fn data() -> (Tensor, Tensor) {
        let mut imgs = Vec::new();
        for i in 0..4 {
            let r = if i % 2 == 0 { 1.0 } else { 0.0 };
            let img = Tensor::cat(
                &[
                    Tensor::full([1, 2, 2], r, (Kind::Float, Device::Cpu)),
                    Tensor::full([1, 2, 2], 0.5, (Kind::Float, Device::Cpu)),
                    Tensor::zeros([1, 2, 2], (Kind::Float, Device::Cpu)),
                ],
                0,
            );
            imgs.push(img);
        }
        (Tensor::stack(&imgs, 0), Tensor::from_slice(&[0i64, 1, 0, 1]))
    }

    #[test]
    fn channel_zero_fires_only_for_class_zero() {
        let (xs, ys) = data();
        let s = channel_class_statistics(&model(), &xs, &ys, "conv", 3).unwrap();
        let mean: Vec<Vec<f64>> = Vec::try_from(&s.mean).unwrap();
        assert_eq!(mean, [[1.0, 0.5], [0.0, 0.5]]);
        let close = |t: &Tensor, v: &[f64]| {
            let got: Vec<f64> = Vec::try_from(&t.reshape([-1])).unwrap();
            assert_eq!(got.len(), v.len());
            assert!(
                got.iter().zip(v).all(|(a, b)| (a - b).abs() < 1e-12),
                "{got:?} vs {v:?}"
            );
        };
        // Channel 0: values 1, 0, 1, 0 -> std 0.5; (1 - 0) / 0.5 = 2 and (0 - 1) / 0.5 = -2.
        // Channel 1 is constant: std exactly 0, selectivity 0.
        close(&s.selectivity, &[2.0, 0.0, -2.0, 0.0]);
        assert_eq!(s.selectivity.double_value(&[0, 1]), 0.0);
        assert_eq!(s.counts, [2, 2]);
        close(&s.std, &[0.5, 0.0]);
        assert_eq!(s.std.double_value(&[1]), 0.0);
        close(&s.overall_mean, &[0.5, 0.5]);
        let top = s.top_channels_per_class(1, ChannelScore::Selectivity).unwrap();
        assert_eq!(top[0][0].0, 0);
        assert!((top[0][0].1 - 2.0).abs() < 1e-12);
        // For class 1, channel 1 (selectivity 0) beats channel 0 (-2).
        assert_eq!(top[1], [(1, 0.0)]);
        // Batch size does not change the result.
        for b in [1, 2, 4, 10] {
            let t = channel_class_statistics(&model(), &xs, &ys, "conv", b).unwrap();
            assert!(t.mean.allclose(&s.mean, 1e-12, 1e-12, false), "batch {b}");
            assert!(t.selectivity.allclose(&s.selectivity, 1e-12, 1e-12, false));
        }
    }

    #[test]
    fn unequal_classes_and_an_empty_class() {
        // Three classes via a wider head; class 2 has no images. Channel 0 values: 1, 1, 0 for labels 0, 0, 1.
        let w = Tensor::from_slice(&[1.0f32, 0.0, 0.0]).reshape([1, 3, 1, 1]);
        let m = Staged::new(3, 3, Device::Cpu)
            .leaf(
                "conv",
                nn::func(move |xs| xs.conv2d::<Tensor>(&w, None, [1, 1], [0, 0], [1, 1], 1)),
            )
            .leaf(
                "pool",
                nn::func(|xs| xs.mean_dim(&[2i64, 3][..], false, Kind::Float).repeat([1, 3])),
            );
        let (xs, _) = data();
        let xs = xs.narrow(0, 0, 3);
        let ys = Tensor::from_slice(&[0i64, 1, 0]);
        let s = channel_class_statistics(&m, &xs, &ys, "conv", 2).unwrap();
        assert_eq!(s.counts, [2, 1, 0]);
        let mean: Vec<Vec<f64>> = Vec::try_from(&s.mean).unwrap();
        assert_eq!(mean, [[1.0], [0.0], [0.0]]);
        // mean 2/3, std sqrt(2/9); class 0: (1 - 0) / std; class 1: (0 - 1) / std; class 2: 0.
        let std = (2.0f64 / 9.0).sqrt();
        let sel: Vec<Vec<f64>> = Vec::try_from(&s.selectivity).unwrap();
        assert!((sel[0][0] - 1.0 / std).abs() < 1e-12);
        assert!((sel[1][0] + 1.0 / std).abs() < 1e-12);
        assert_eq!(sel[2][0], 0.0);
        let top = s.top_channels_per_class(5, ChannelScore::Mean).unwrap();
        assert_eq!(top[0], [(0, 1.0)]);
        assert!(top[2].is_empty());
    }

    #[test]
    fn errors() {
        let (xs, ys) = data();
        let m = model();
        assert!(matches!(
            channel_class_statistics(&m, &xs, &ys, "nope", 2),
            Err(Error::UnknownLayer { .. })
        ));
        assert!(channel_class_statistics(&m, &xs, &ys, "conv", 0).is_err());
        assert!(matches!(
            channel_class_statistics(&m, &xs, &Tensor::from_slice(&[0i64, 1, 0, 2]), "conv", 2),
            Err(Error::ClassOutOfRange {
                index: 2,
                num_classes: 2
            })
        ));
        assert!(matches!(
            channel_class_statistics(&m, &xs, &Tensor::from_slice(&[0i64, -1, 0, 1]), "conv", 2),
            Err(Error::ClassOutOfRange { index: -1, .. })
        ));
        assert!(channel_class_statistics(&m, &xs, &Tensor::from_slice(&[0i64, 1]), "conv", 2).is_err());
        assert!(channel_class_statistics(&m, &xs, &ys.to_kind(Kind::Float), "conv", 2).is_err());
        let empty = Tensor::zeros([0, 3, 2, 2], (Kind::Float, Device::Cpu));
        assert!(channel_class_statistics(
            &m,
            &empty,
            &Tensor::zeros([0], (Kind::Int64, Device::Cpu)),
            "conv",
            2
        )
        .is_err());
        let gray = Tensor::zeros([4, 1, 2, 2], (Kind::Float, Device::Cpu));
        assert!(matches!(
            channel_class_statistics(&m, &gray, &ys, "conv", 2),
            Err(Error::Shape { .. })
        ));
        let s = channel_class_statistics(&m, &xs, &ys, "conv", 2).unwrap();
        assert!(s.top_channels_per_class(0, ChannelScore::Mean).is_err());
    }
}
