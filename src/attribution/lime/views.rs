//! Views of a LIME explanation as image tensors: chosen superpixels, the rest hidden, boundaries,
//! and a weight heatmap.

use super::LimeExplanation;
use crate::segmentation::Segments;
use crate::{Error, Result};
use tch::{Device, Kind, Tensor};

/// Which superpixels a view picks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Sign {
    /// Superpixels with positive weight (evidence for the class), strongest first.
    Positive,
    /// Superpixels with negative weight (evidence against), strongest first.
    Negative,
    /// Either sign, by absolute weight.
    Absolute,
}

/// Checks `image` is `[C, H, W]` (or `[1, C, H, W]`) matching `segments`; returns it as `[C, H, W]`
/// float on the CPU.
fn image_for(image: &Tensor, segments: &Segments) -> Result<Tensor> {
    let size = image.size();
    let (h, w) = (segments.height() as i64, segments.width() as i64);
    let img = match size.as_slice() {
        [_, ih, iw] if (*ih, *iw) == (h, w) => image.shallow_clone(),
        [1, _, ih, iw] if (*ih, *iw) == (h, w) => image.squeeze_dim(0),
        _ => {
            return Err(Error::shape(
                "image",
                format!("[C, {h}, {w}] (the explained image's size)"),
                &size,
            ))
        }
    };
    if !img.is_floating_point() {
        return Err(Error::invalid(
            "image",
            format!("expected a float tensor, got {:?}", img.kind()),
        ));
    }
    Ok(img.detach().to_device(Device::Cpu).to_kind(Kind::Float))
}

impl LimeExplanation {
    /// Up to `k` superpixel ids, strongest first: positive weights, negative weights, or any by
    /// absolute weight (zero weights are never picked for `Positive`/`Negative`).
    ///
    /// ```
    /// use cnn_explain::attribution::lime::{LimeExplanation, Sign};
    /// use cnn_explain::segmentation::Segments;
    /// let e = LimeExplanation {
    ///     segments: Segments::from_labels(vec![0, 1, 2], 1, 3)?,
    ///     weights: vec![0.5, -2.0, 1.0], intercept: 0.0, r2: 1.0, class: 0, score: 1.0, samples: 10,
    /// };
    /// assert_eq!(e.top(5, Sign::Positive), [2, 0]);
    /// assert_eq!(e.top(1, Sign::Negative), [1]);
    /// assert_eq!(e.top(2, Sign::Absolute), [1, 2]);
    /// # Ok::<(), cnn_explain::Error>(())
    /// ```
    pub fn top(&self, k: usize, sign: Sign) -> Vec<usize> {
        let mut ids: Vec<usize> = (0..self.weights.len())
            .filter(|&i| match sign {
                Sign::Positive => self.weights[i] > 0.0,
                Sign::Negative => self.weights[i] < 0.0,
                Sign::Absolute => true,
            })
            .collect();
        ids.sort_by(|&a, &b| self.weights[b].abs().total_cmp(&self.weights[a].abs()));
        ids.truncate(k);
        ids
    }

    /// Per-pixel weights `[1, H, W]` (float, CPU): each pixel holds its superpixel's weight.
    ///
    /// ```
    /// use cnn_explain::attribution::lime::LimeExplanation;
    /// use cnn_explain::segmentation::Segments;
    /// let e = LimeExplanation {
    ///     segments: Segments::from_labels(vec![0, 1, 1], 1, 3)?,
    ///     weights: vec![0.5, -2.0], intercept: 0.0, r2: 1.0, class: 0, score: 1.0, samples: 10,
    /// };
    /// assert_eq!(Vec::<f32>::try_from(e.weight_map().flatten(0, -1))?, [0.5, -2.0, -2.0]);
    /// # Ok::<(), cnn_explain::Error>(())
    /// ```
    pub fn weight_map(&self) -> Tensor {
        let v: Vec<f32> = self
            .segments
            .labels()
            .iter()
            .map(|&l| self.weights.get(l as usize).copied().unwrap_or(0.0) as f32)
            .collect();
        Tensor::from_slice(&v).view([1, self.segments.height() as i64, self.segments.width() as i64])
    }

    /// A mask `[1, H, W]` (float 0/1, CPU) of the superpixels `ids`; unknown ids are an error.
    ///
    /// ```
    /// use cnn_explain::attribution::lime::LimeExplanation;
    /// use cnn_explain::segmentation::Segments;
    /// let e = LimeExplanation {
    ///     segments: Segments::from_labels(vec![0, 1, 1], 1, 3)?,
    ///     weights: vec![0.5, -2.0], intercept: 0.0, r2: 1.0, class: 0, score: 1.0, samples: 10,
    /// };
    /// assert_eq!(Vec::<f32>::try_from(e.mask(&[1])?.flatten(0, -1))?, [0.0, 1.0, 1.0]);
    /// assert!(e.mask(&[7]).is_err());
    /// # Ok::<(), cnn_explain::Error>(())
    /// ```
    pub fn mask(&self, ids: &[usize]) -> Result<Tensor> {
        let k = self.segments.count();
        if let Some(bad) = ids.iter().find(|&&i| i >= k) {
            return Err(Error::invalid(
                "ids",
                format!("superpixel {bad} does not exist; ids are 0..{k}"),
            ));
        }
        let mut on = vec![false; k];
        for &i in ids {
            on[i] = true;
        }
        let v: Vec<f32> = self
            .segments
            .labels()
            .iter()
            .map(|&l| if on[l as usize] { 1.0 } else { 0.0 })
            .collect();
        Ok(Tensor::from_slice(&v).view([1, self.segments.height() as i64, self.segments.width() as i64]))
    }

    /// `image` `[C, H, W]` with only the top `k` superpixels of `sign` kept and every other pixel
    /// set to `hidden` (LIME's "hide the rest" view); `[C, H, W]` float on the CPU.
    ///
    /// ```
    /// use cnn_explain::attribution::lime::{LimeExplanation, Sign};
    /// use cnn_explain::segmentation::Segments;
    /// use tch::{Device, Kind, Tensor};
    /// let e = LimeExplanation {
    ///     segments: Segments::from_labels(vec![0, 1, 1], 1, 3)?,
    ///     weights: vec![0.5, -2.0], intercept: 0.0, r2: 1.0, class: 0, score: 1.0, samples: 10,
    /// };
    /// let image = Tensor::ones([3, 1, 3], (Kind::Float, Device::Cpu));
    /// let view = e.keep_top(&image, 1, Sign::Negative, 0.0)?;
    /// assert_eq!(Vec::<f32>::try_from(view.get(0).flatten(0, -1))?, [0.0, 1.0, 1.0]);
    /// # Ok::<(), cnn_explain::Error>(())
    /// ```
    pub fn keep_top(&self, image: &Tensor, k: usize, sign: Sign, hidden: f64) -> Result<Tensor> {
        let img = image_for(image, &self.segments)?;
        let m = self.mask(&self.top(k, sign))?;
        Ok(&img * &m + (1.0 - &m) * hidden)
    }

    /// A diverging heatmap `[3, H, W]` in `[0, 1]` (CPU) of the weights per superpixel: red for
    /// positive, blue for negative, white for zero, scaled by the largest absolute weight.
    ///
    /// ```
    /// use cnn_explain::attribution::lime::LimeExplanation;
    /// use cnn_explain::segmentation::Segments;
    /// let e = LimeExplanation {
    ///     segments: Segments::from_labels(vec![0, 1], 1, 2)?,
    ///     weights: vec![1.0, -1.0], intercept: 0.0, r2: 1.0, class: 0, score: 1.0, samples: 10,
    /// };
    /// let h = e.heatmap();
    /// assert_eq!(Vec::<f32>::try_from(h.flatten(0, -1))?, [1.0, 0.0, 0.0, 0.0, 0.0, 1.0]);
    /// # Ok::<(), cnn_explain::Error>(())
    /// ```
    pub fn heatmap(&self) -> Tensor {
        let map = self.weight_map();
        let scale = map.abs().max().double_value(&[]);
        let t = if scale > 0.0 { map / scale } else { map };
        let pos = t.clamp_min(0.0);
        let neg = (-&t).clamp_min(0.0);
        // Positive: (1, 1 - t, 1 - t); negative: (1 - |t|, 1 - |t|, 1).
        let r = 1.0 - &neg;
        let g = 1.0 - &pos - &neg;
        let b = 1.0 - &pos;
        Tensor::cat(&[r, g, b], 0)
    }

    /// The image `[C, H, W]` with the boundaries of all superpixels drawn in `colour` (RGB, one
    /// value per channel for 3 channels, the first value otherwise); `[C, H, W]` float on the CPU.
    ///
    /// ```
    /// use cnn_explain::attribution::lime::LimeExplanation;
    /// use cnn_explain::segmentation::Segments;
    /// use tch::{Device, Kind, Tensor};
    /// let e = LimeExplanation {
    ///     segments: Segments::from_labels(vec![0, 0, 1, 1], 1, 4)?,
    ///     weights: vec![1.0, -1.0], intercept: 0.0, r2: 1.0, class: 0, score: 1.0, samples: 10,
    /// };
    /// let image = Tensor::zeros([3, 1, 4], (Kind::Float, Device::Cpu));
    /// let b = e.boundaries(&image, [1.0, 1.0, 0.0])?;
    /// assert_eq!(Vec::<f32>::try_from(b.get(0).flatten(0, -1))?, [0.0, 1.0, 1.0, 0.0]);
    /// # Ok::<(), cnn_explain::Error>(())
    /// ```
    pub fn boundaries(&self, image: &Tensor, colour: [f64; 3]) -> Result<Tensor> {
        mark_boundaries(image, &self.segments, colour)
    }
}

/// `image` `[C, H, W]` (or `[1, C, H, W]`) with the boundary pixels of `segments` (see
/// [`Segments::boundaries`]) painted `colour`; `[C, H, W]` float on the CPU. Like scikit-image's
/// `mark_boundaries` with `mode="thick"`.
///
/// ```
/// use cnn_explain::attribution::lime::mark_boundaries;
/// use cnn_explain::segmentation::Segments;
/// use tch::{Device, Kind, Tensor};
/// let seg = Segments::from_labels(vec![0, 1], 1, 2)?;
/// let out = mark_boundaries(&Tensor::zeros([3, 1, 2], (Kind::Float, Device::Cpu)), &seg, [1.0, 0.0, 0.0])?;
/// assert_eq!(out.double_value(&[0, 0, 0]), 1.0);
/// # Ok::<(), cnn_explain::Error>(())
/// ```
pub fn mark_boundaries(image: &Tensor, segments: &Segments, colour: [f64; 3]) -> Result<Tensor> {
    let img = image_for(image, segments)?;
    let c = img.size()[0];
    let b: Vec<f32> = segments
        .boundaries()
        .iter()
        .map(|&on| if on { 1.0 } else { 0.0 })
        .collect();
    let m = Tensor::from_slice(&b).view([1, segments.height() as i64, segments.width() as i64]);
    let col: Vec<f32> = (0..c as usize)
        .map(|i| {
            if c == 3 {
                colour[i] as f32
            } else {
                colour[0] as f32
            }
        })
        .collect();
    let col = Tensor::from_slice(&col).view([c, 1, 1]);
    Ok(&img * (1.0 - &m) + col * &m)
}

/// An RGB image from a tensor `[3, H, W]` (or `[1, 3, H, W]`, or grey `[1, H, W]`) with values in
/// `[0, 1]` (clamped), for saving or showing.
///
/// ```
/// use cnn_explain::attribution::lime::to_rgb_image;
/// use tch::{Device, Kind, Tensor};
/// let img = to_rgb_image(&Tensor::ones([3, 2, 5], (Kind::Float, Device::Cpu)))?;
/// assert_eq!(img.dimensions(), (5, 2));
/// assert_eq!(img.get_pixel(0, 0).0, [255, 255, 255]);
/// # Ok::<(), cnn_explain::Error>(())
/// ```
pub fn to_rgb_image(image: &Tensor) -> Result<image::RgbImage> {
    let size = image.size();
    let img = match size.as_slice() {
        [3, _, _] | [1, _, _] => image.shallow_clone(),
        [1, 3, _, _] | [1, 1, _, _] => image.squeeze_dim(0),
        _ => return Err(Error::shape("image", "[3, H, W] or [1, H, W] in [0, 1]", &size)),
    };
    if !img.is_floating_point() {
        return Err(Error::invalid(
            "image",
            format!("expected a float tensor in [0, 1], got {:?}", img.kind()),
        ));
    }
    let s = img.size();
    let (h, w) = (s[1], s[2]);
    let img = if s[0] == 1 { img.repeat([3, 1, 1]) } else { img };
    let bytes: Vec<u8> = Vec::<u8>::try_from(
        (img.detach()
            .to_device(Device::Cpu)
            .to_kind(Kind::Float)
            .nan_to_num(0.0, None, None)
            .clamp(0.0, 1.0)
            * 255.0)
            .round()
            .to_kind(Kind::Uint8)
            .permute([1, 2, 0])
            .contiguous()
            .flatten(0, -1),
    )?;
    image::RgbImage::from_raw(w as u32, h as u32, bytes)
        .ok_or_else(|| Error::invalid("image", "image size does not match its data"))
}
