//! Image classification data: the [`Dataset`] every loader returns.
//!
//! Images are float tensors `[N, C, H, W]` with values in `[0, 1]` (normalisation, when a model
//! wants it, is a transform or the model's first stage, so attribution maps stay in pixel space);
//! labels are int64 `[N]`; optional ground-truth object masks are `[N, 1, H, W]` with values 0 or 1.

use crate::{Error, Result};
use tch::{Device, Kind, Tensor};

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
}
