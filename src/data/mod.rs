//! Image classification data: the [`Dataset`] every loader returns.
//!
//! Images are float tensors `[N, C, H, W]` with values in `[0, 1]` (normalisation, when a model
//! wants it, is a transform or the model's first stage, so attribution maps stay in pixel space);
//! labels are int64 `[N]`; optional ground-truth object masks are `[N, 1, H, W]` with values 0 or 1.
//!
//! Sources:
//! - [`shapes`]: the built-in generated dataset (six shape classes with object masks and an optional
//!   spurious cue), the default everywhere because it needs no download;
//! - [`cifar`]: CIFAR-10 and CIFAR-100 binary batches as their maintainers distribute them
//!   (Krizhevsky 2009, *Learning Multiple Layers of Features from Tiny Images*);
//! - [`folder`]: image folders with one sub-folder per class (Intel Image Classification, CUB-200-2011,
//!   ImageNet-style layouts).
//!
//! [`transforms`] holds seeded augmentation and normalisation for batches, [`convert`] the conversions
//! between tensors, `image::RgbImage` and `ndarray` arrays.

pub mod cifar;
pub mod convert;
pub mod folder;
pub mod shapes;
pub mod transforms;

use crate::rng::Rng;
use crate::{Error, Result};
use tch::{Device, Kind, Tensor};

/// Training, validation and test parts of one source.
#[derive(Debug)]
pub struct Splits {
    /// The data a model is fitted on.
    pub train: Dataset,
    /// Held out from training, for model selection and early stopping.
    pub val: Dataset,
    /// Held out for the final measurement.
    pub test: Dataset,
}

/// Images, labels, class names and optional object masks.
#[derive(Debug)]
pub struct Dataset {
    /// `[N, C, H, W]` float, values in `[0, 1]`.
    pub images: Tensor,
    /// `[N]` int64 class indices into `class_names`.
    pub labels: Tensor,
    /// One name per class.
    pub class_names: Vec<String>,
    /// `[N, 1, H, W]` float ground-truth object masks (1 on the object), where the data has them.
    pub masks: Option<Tensor>,
}

impl Dataset {
    /// A dataset after checking that the parts agree in size and labels are in range.
    ///
    /// ```
    /// use cnn_explain::data::Dataset;
    /// use tch::{Kind, Tensor};
    /// let images = Tensor::zeros([2, 3, 8, 8], (Kind::Float, tch::Device::Cpu));
    /// let labels = Tensor::from_slice(&[0i64, 1]);
    /// let ds = Dataset::new(images, labels, vec!["cat".into(), "dog".into()], None)?;
    /// assert_eq!(ds.len(), 2);
    /// assert!(Dataset::new(ds.images.shallow_clone(), Tensor::from_slice(&[0i64, 2]), ds.class_names.clone(), None).is_err());
    /// # Ok::<(), cnn_explain::Error>(())
    /// ```
    pub fn new(
        images: Tensor,
        labels: Tensor,
        class_names: Vec<String>,
        masks: Option<Tensor>,
    ) -> Result<Self> {
        let size = images.size();
        if size.len() != 4 {
            return Err(Error::shape("images", "[N, C, H, W]", &size));
        }
        let n = size[0];
        if labels.size() != [n] {
            return Err(Error::shape(
                "labels",
                format!("[{n}] (one label per image)"),
                &labels.size(),
            ));
        }
        if class_names.is_empty() {
            return Err(Error::invalid(
                "class_names",
                "a dataset needs at least one class",
            ));
        }
        if n > 0 {
            let (lo, hi) = (labels.min().int64_value(&[]), labels.max().int64_value(&[]));
            if lo < 0 || hi >= class_names.len() as i64 {
                return Err(Error::invalid(
                    "labels",
                    format!(
                        "labels range over {lo}..={hi} but there are {} class names",
                        class_names.len()
                    ),
                ));
            }
        }
        if let Some(m) = &masks {
            let expect = [n, 1, size[2], size[3]];
            if m.size() != expect {
                return Err(Error::shape("masks", format!("{expect:?}"), &m.size()));
            }
        }
        let images = images.to_kind(Kind::Float);
        let labels = labels.to_kind(Kind::Int64);
        Ok(Dataset {
            images,
            labels,
            class_names,
            masks,
        })
    }

    /// Number of images.
    pub fn len(&self) -> usize {
        self.images.size()[0] as usize
    }

    /// True when there are no images.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Number of classes.
    pub fn num_classes(&self) -> i64 {
        self.class_names.len() as i64
    }

    /// `(channels, height, width)` of the images.
    pub fn image_shape(&self) -> (i64, i64, i64) {
        let s = self.images.size();
        (s[1], s[2], s[3])
    }

    /// The images at `indices`, in that order.
    pub fn subset(&self, indices: &[i64]) -> Result<Dataset> {
        let n = self.len() as i64;
        if let Some(&bad) = indices.iter().find(|&&i| i < 0 || i >= n) {
            return Err(Error::invalid(
                "indices",
                format!("index {bad} is outside 0..{n}"),
            ));
        }
        let idx = Tensor::from_slice(indices).to_device(self.images.device());
        Ok(Dataset {
            images: self.images.index_select(0, &idx),
            labels: self.labels.index_select(0, &idx.to_device(self.labels.device())),
            class_names: self.class_names.clone(),
            masks: self
                .masks
                .as_ref()
                .map(|m| m.index_select(0, &idx.to_device(m.device()))),
        })
    }

    /// The label of image `i`.
    pub fn label(&self, i: usize) -> Result<i64> {
        if i >= self.len() {
            return Err(Error::invalid(
                "index",
                format!("{i} is outside 0..{}", self.len()),
            ));
        }
        Ok(self.labels.int64_value(&[i as i64]))
    }

    /// A copy with every tensor on `device`.
    pub fn to_device(&self, device: Device) -> Dataset {
        Dataset {
            images: self.images.to_device(device),
            labels: self.labels.to_device(device),
            class_names: self.class_names.clone(),
            masks: self.masks.as_ref().map(|m| m.to_device(device)),
        }
    }

    /// How many images each class has: one count per entry of `class_names`.
    ///
    /// ```
    /// use cnn_explain::data::Dataset;
    /// use tch::{Kind, Tensor};
    /// let ds = Dataset::new(Tensor::zeros([3, 1, 2, 2], (Kind::Float, tch::Device::Cpu)),
    ///     Tensor::from_slice(&[2i64, 0, 2]), vec!["a".into(), "b".into(), "c".into()], None)?;
    /// assert_eq!(ds.class_counts()?, vec![1, 0, 2]);
    /// # Ok::<(), cnn_explain::Error>(())
    /// ```
    pub fn class_counts(&self) -> Result<Vec<i64>> {
        let labels = Vec::<i64>::try_from(&self.labels.to_device(Device::Cpu).reshape([-1]))?;
        let mut counts = vec![0i64; self.class_names.len()];
        for l in labels {
            match counts.get_mut(l as usize) {
                Some(c) if l >= 0 => *c += 1,
                _ => {
                    return Err(Error::invalid(
                        "labels",
                        format!("label {l} is outside 0..{}", self.class_names.len()),
                    ))
                }
            }
        }
        Ok(counts)
    }

    /// Mini-batches `(images [B, C, H, W], labels [B])` of at most `batch_size` images; the last batch
    /// holds the remainder. With `shuffle_seed` the order is a permutation drawn from
    /// [`Rng::new`]`(seed)`, else the dataset order.
    ///
    /// ```
    /// use cnn_explain::data::Dataset;
    /// use tch::{Kind, Tensor};
    /// let ds = Dataset::new(Tensor::zeros([5, 1, 2, 2], (Kind::Float, tch::Device::Cpu)),
    ///     Tensor::from_slice(&[0i64, 1, 0, 1, 0]), vec!["a".into(), "b".into()], None)?;
    /// let sizes: Vec<i64> = ds.batches(2, Some(7))?.map(|(xs, _)| xs.size()[0]).collect();
    /// assert_eq!(sizes, [2, 2, 1]);
    /// assert!(ds.batches(0, None).is_err());
    /// # Ok::<(), cnn_explain::Error>(())
    /// ```
    pub fn batches(&self, batch_size: usize, shuffle_seed: Option<u64>) -> Result<Batches<'_>> {
        if batch_size == 0 {
            return Err(Error::invalid("batch_size", "must be at least 1"));
        }
        let order = match shuffle_seed {
            Some(seed) => Rng::new(seed).permutation(self.len()),
            None => (0..self.len() as i64).collect(),
        };
        Ok(Batches {
            data: self,
            order,
            batch_size,
            pos: 0,
        })
    }

    /// Splits off `second` randomly chosen images (chosen by [`Rng::new`]`(seed)`): returns
    /// `(rest, chosen)`, both keeping the original order. Use it to hold out a validation set.
    ///
    /// ```
    /// use cnn_explain::data::Dataset;
    /// use tch::{Kind, Tensor};
    /// let ds = Dataset::new(Tensor::zeros([10, 1, 2, 2], (Kind::Float, tch::Device::Cpu)),
    ///     Tensor::zeros([10], (Kind::Int64, tch::Device::Cpu)), vec!["a".into()], None)?;
    /// let (train, val) = ds.split_random(3, 0)?;
    /// assert_eq!((train.len(), val.len()), (7, 3));
    /// # Ok::<(), cnn_explain::Error>(())
    /// ```
    pub fn split_random(&self, second: usize, seed: u64) -> Result<(Dataset, Dataset)> {
        if second > self.len() {
            return Err(Error::invalid(
                "second",
                format!("cannot hold out {second} of {} images", self.len()),
            ));
        }
        let perm = Rng::new(seed).permutation(self.len());
        let (mut b, mut a) = (perm[..second].to_vec(), perm[second..].to_vec());
        a.sort_unstable();
        b.sort_unstable();
        Ok((self.subset(&a)?, self.subset(&b)?))
    }
}

/// Iterator over mini-batches of a [`Dataset`], made by [`Dataset::batches`].
#[derive(Debug)]
pub struct Batches<'a> {
    data: &'a Dataset,
    order: Vec<i64>,
    batch_size: usize,
    pos: usize,
}

impl Batches<'_> {
    /// Number of batches left.
    pub fn remaining(&self) -> usize {
        (self.order.len() - self.pos).div_ceil(self.batch_size)
    }
}

impl Iterator for Batches<'_> {
    /// `(images [B, C, H, W], labels [B])`.
    type Item = (Tensor, Tensor);

    fn next(&mut self) -> Option<Self::Item> {
        if self.pos >= self.order.len() {
            return None;
        }
        let end = (self.pos + self.batch_size).min(self.order.len());
        let idx = Tensor::from_slice(&self.order[self.pos..end]);
        self.pos = end;
        let xs = self
            .data
            .images
            .index_select(0, &idx.to_device(self.data.images.device()));
        let ys = self
            .data
            .labels
            .index_select(0, &idx.to_device(self.data.labels.device()));
        Some((xs, ys))
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        let n = self.remaining();
        (n, Some(n))
    }
}

impl ExactSizeIterator for Batches<'_> {}

#[cfg(test)]
mod tests {
    use super::*;

    fn toy(n: i64) -> Dataset {
        let images = Tensor::arange(n, (Kind::Float, Device::Cpu)).reshape([n, 1, 1, 1]);
        let labels = Tensor::arange(n, (Kind::Int64, Device::Cpu)).remainder(3);
        Dataset::new(images, labels, vec!["a".into(), "b".into(), "c".into()], None).unwrap()
    }

    #[test]
    fn batches_cover_every_image_once_and_keep_pairs() {
        let ds = toy(10);
        let mut seen = vec![];
        for (xs, ys) in ds.batches(4, Some(3)).unwrap() {
            let xs = Vec::<f32>::try_from(&xs.reshape([-1])).unwrap();
            let ys = Vec::<i64>::try_from(&ys).unwrap();
            for (x, y) in xs.iter().zip(&ys) {
                assert_eq!(*x as i64 % 3, *y, "image and label separated");
            }
            seen.extend(xs.iter().map(|&x| x as i64));
        }
        assert_ne!(seen, (0..10).collect::<Vec<_>>(), "shuffle did nothing");
        seen.sort();
        assert_eq!(seen, (0..10).collect::<Vec<_>>());
        let plain: Vec<i64> = ds
            .batches(3, None)
            .unwrap()
            .flat_map(|(xs, _)| Vec::<f32>::try_from(&xs.reshape([-1])).unwrap())
            .map(|x| x as i64)
            .collect();
        assert_eq!(plain, (0..10).collect::<Vec<_>>());
        assert_eq!(ds.batches(3, None).unwrap().len(), 4);
        let a: Vec<Vec<i64>> = ds
            .batches(4, Some(9))
            .unwrap()
            .map(|(_, y)| Vec::<i64>::try_from(&y).unwrap())
            .collect();
        let b: Vec<Vec<i64>> = ds
            .batches(4, Some(9))
            .unwrap()
            .map(|(_, y)| Vec::<i64>::try_from(&y).unwrap())
            .collect();
        assert_eq!(a, b);
    }

    #[test]
    fn class_counts_and_split() {
        let ds = toy(10);
        assert_eq!(ds.class_counts().unwrap(), vec![4, 3, 3]);
        let (a, b) = ds.split_random(4, 1).unwrap();
        assert_eq!((a.len(), b.len()), (6, 4));
        let mut all: Vec<i64> = [&a, &b]
            .iter()
            .flat_map(|d| Vec::<f32>::try_from(&d.images.reshape([-1])).unwrap())
            .map(|x| x as i64)
            .collect();
        all.sort();
        assert_eq!(all, (0..10).collect::<Vec<_>>());
        assert!(ds.split_random(11, 1).is_err());
    }
}
