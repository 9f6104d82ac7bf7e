//! Superpixels: an image cut into connected regions of similar colour.
//!
//! LIME explains an image in terms of superpixels, so their quality decides what an explanation can
//! say. [`Slic`] (Achanta et al., "SLIC Superpixels Compared to State-of-the-Art Superpixel
//! Methods", TPAMI 2012) clusters pixels by colour (CIELAB) and position, then makes every segment
//! connected. The result is a [`Segments`]: one label per pixel, ids `0..count`.

mod slic;

pub use slic::{rgb_to_lab, Slic};

use crate::{Error, Result};
use tch::{Device, Kind, Tensor};

/// A labelling of an image's pixels into `count` segments with ids `0..count`, row-major.
///
/// ```
/// use cnn_explain::segmentation::Segments;
/// // Ids are made consecutive in increasing order: 5 -> 0, 9 -> 1.
/// let s = Segments::from_labels(vec![5, 5, 9, 9], 2, 2)?;
/// assert_eq!(s.labels(), [0, 0, 1, 1]);
/// assert_eq!((s.count(), s.height(), s.width()), (2, 2, 2));
/// # Ok::<(), cnn_explain::Error>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Segments {
    labels: Vec<u32>,
    height: usize,
    width: usize,
    count: usize,
}

impl Segments {
    /// Segments from one label per pixel (row-major, `height * width` of them). Any ids are
    /// accepted; they are renumbered to `0..count` keeping their order, so labels that already are
    /// `0..count` stay as they are.
    ///
    /// ```
    /// use cnn_explain::segmentation::Segments;
    /// assert!(Segments::from_labels(vec![0, 1, 2], 2, 2).is_err()); // 3 labels for 4 pixels
    /// assert_eq!(Segments::from_labels(vec![0, 1, 1, 0], 2, 2)?.count(), 2);
    /// # Ok::<(), cnn_explain::Error>(())
    /// ```
    pub fn from_labels(labels: Vec<u32>, height: usize, width: usize) -> Result<Segments> {
        if height == 0 || width == 0 || labels.len() != height * width {
            return Err(Error::invalid(
                "labels",
                format!(
                    "expected height * width = {height} * {width} labels (both at least 1), got {}",
                    labels.len()
                ),
            ));
        }
        let mut ids: Vec<u32> = labels.clone();
        ids.sort_unstable();
        ids.dedup();
        let labels = if ids.last().is_some_and(|&m| m as usize == ids.len() - 1) {
            labels
        } else {
            labels
                .iter()
                .map(|l| ids.binary_search(l).unwrap_or(0) as u32)
                .collect()
        };
        Ok(Segments {
            labels,
            height,
            width,
            count: ids.len(),
        })
    }

    /// Segments from an integer tensor `[H, W]` (or `[1, H, W]`) of labels (non-negative).
    ///
    /// ```
    /// use cnn_explain::segmentation::Segments;
    /// use tch::Tensor;
    /// let s = Segments::from_tensor(&Tensor::from_slice(&[0i64, 0, 1, 2]).view([2, 2]))?;
    /// assert_eq!(s.count(), 3);
    /// # Ok::<(), cnn_explain::Error>(())
    /// ```
    pub fn from_tensor(labels: &Tensor) -> Result<Segments> {
        let size = labels.size();
        let (h, w) = match size.as_slice() {
            [h, w] | [1, h, w] => (*h, *w),
            _ => return Err(Error::shape("labels", "an integer tensor [H, W]", &size)),
        };
        if labels.is_floating_point() || labels.kind() == Kind::Bool {
            return Err(Error::invalid(
                "labels",
                format!("expected an integer tensor, got {:?}", labels.kind()),
            ));
        }
        let v: Vec<i64> = Vec::<i64>::try_from(labels.to_kind(Kind::Int64).flatten(0, -1))?;
        if let Some(bad) = v.iter().find(|&&l| l < 0 || l > u32::MAX as i64) {
            return Err(Error::invalid(
                "labels",
                format!("labels must be in 0..2^32, found {bad}"),
            ));
        }
        Segments::from_labels(v.into_iter().map(|l| l as u32).collect(), h as usize, w as usize)
    }

    /// One label per pixel, row-major, each in `0..count()`.
    pub fn labels(&self) -> &[u32] {
        &self.labels
    }

    /// Image height in pixels.
    pub fn height(&self) -> usize {
        self.height
    }

    /// Image width in pixels.
    pub fn width(&self) -> usize {
        self.width
    }

    /// Number of segments.
    pub fn count(&self) -> usize {
        self.count
    }

    /// Labels as an int64 tensor `[H, W]` on `device`.
    ///
    /// ```
    /// use cnn_explain::segmentation::Segments;
    /// let t = Segments::from_labels(vec![0, 1], 1, 2)?.to_tensor(tch::Device::Cpu);
    /// assert_eq!(t.size(), [1, 2]);
    /// # Ok::<(), cnn_explain::Error>(())
    /// ```
    pub fn to_tensor(&self, device: Device) -> Tensor {
        let v: Vec<i64> = self.labels.iter().map(|&l| l as i64).collect();
        Tensor::from_slice(&v)
            .view([self.height as i64, self.width as i64])
            .to_device(device)
    }

    /// Pixels per segment, indexed by id.
    ///
    /// ```
    /// use cnn_explain::segmentation::Segments;
    /// assert_eq!(Segments::from_labels(vec![0, 1, 1], 1, 3)?.sizes(), [1, 2]);
    /// # Ok::<(), cnn_explain::Error>(())
    /// ```
    pub fn sizes(&self) -> Vec<usize> {
        let mut s = vec![0; self.count];
        for &l in &self.labels {
            s[l as usize] += 1;
        }
        s
    }

    /// Boundary pixels, row-major: a pixel whose right or lower neighbour has another label, or
    /// whose left or upper neighbour does (so both sides of an edge are marked, like
    /// scikit-image's `find_boundaries(mode="thick")`).
    ///
    /// ```
    /// use cnn_explain::segmentation::Segments;
    /// let s = Segments::from_labels(vec![0, 0, 1, 1], 1, 4)?;
    /// assert_eq!(s.boundaries(), [false, true, true, false]);
    /// # Ok::<(), cnn_explain::Error>(())
    /// ```
    pub fn boundaries(&self) -> Vec<bool> {
        let (h, w) = (self.height, self.width);
        let mut b = vec![false; h * w];
        for y in 0..h {
            for x in 0..w {
                let p = y * w + x;
                let l = self.labels[p];
                if x + 1 < w && self.labels[p + 1] != l {
                    b[p] = true;
                    b[p + 1] = true;
                }
                if y + 1 < h && self.labels[p + w] != l {
                    b[p] = true;
                    b[p + w] = true;
                }
            }
        }
        b
    }

    /// Whether every segment is one 4-connected region.
    ///
    /// ```
    /// use cnn_explain::segmentation::Segments;
    /// assert!(Segments::from_labels(vec![0, 0, 1, 1], 2, 2)?.is_connected());
    /// assert!(!Segments::from_labels(vec![0, 1, 1, 0], 2, 2)?.is_connected());
    /// # Ok::<(), cnn_explain::Error>(())
    /// ```
    pub fn is_connected(&self) -> bool {
        let comps = connected_components(&self.labels, self.height, self.width);
        comps.iter().max().map_or(0, |&m| m as usize + 1) == self.count
    }
}

/// 4-connected components of equal labels, numbered in raster order.
fn connected_components(labels: &[u32], h: usize, w: usize) -> Vec<u32> {
    let mut out = vec![u32::MAX; labels.len()];
    let mut next = 0;
    let mut piece = Vec::new();
    for start in 0..labels.len() {
        if out[start] == u32::MAX {
            flood_fill(labels, (h, w), start, next, &mut out, &mut piece);
            next += 1;
        }
    }
    out
}

/// Gives `id` to every pixel 4-connected to `start` through pixels with `start`'s label that `out`
/// has not labelled yet (`u32::MAX`), and leaves those pixels in `piece` (cleared first).
pub(crate) fn flood_fill(
    labels: &[u32],
    (h, w): (usize, usize),
    start: usize,
    id: u32,
    out: &mut [u32],
    piece: &mut Vec<usize>,
) {
    let l = labels[start];
    piece.clear();
    out[start] = id;
    piece.push(start);
    // `piece` doubles as the queue of a breadth-first search.
    let mut head = 0;
    while head < piece.len() {
        let p = piece[head];
        head += 1;
        let (y, x) = (p / w, p % w);
        let neighbours = [
            (x > 0).then(|| p - 1),
            (x + 1 < w).then(|| p + 1),
            (y > 0).then(|| p - w),
            (y + 1 < h).then(|| p + w),
        ];
        for q in neighbours.into_iter().flatten() {
            if out[q] == u32::MAX && labels[q] == l {
                out[q] = id;
                piece.push(q);
            }
        }
    }
}
