//! SLIC superpixels (Achanta et al., TPAMI 2012).

use super::{flood_fill, Segments};
use crate::{Error, Result};
use tch::{Kind, Tensor};

/// SLIC: k-means on (CIELAB colour, position) restricted to a window of twice the grid step around
/// each centre, then connectivity enforcement.
///
/// The distance of a pixel to a centre is `sqrt(d_lab^2 + (d_xy / S)^2 * compactness^2)` with `S`
/// the grid step `sqrt(H * W / segments)`: a higher `compactness` gives squarer segments, a lower
/// one follows colour edges more closely (10 is the paper's choice for CIELAB).
///
/// ```
/// use cnn_explain::segmentation::Slic;
/// use tch::{Device, Kind, Tensor};
/// let image = Tensor::rand([3, 32, 32], (Kind::Float, Device::Cpu)); // RGB in [0, 1]
/// let seg = Slic { segments: 16, ..Default::default() }.segment(&image)?;
/// assert_eq!((seg.height(), seg.width()), (32, 32));
/// assert!(seg.is_connected() && seg.count() >= 1);
/// # Ok::<(), cnn_explain::Error>(())
/// ```
#[derive(Debug, Clone, PartialEq)]
pub struct Slic {
    /// Approximate number of segments asked for (the grid has about this many cells; connectivity
    /// enforcement can change the final count). At most the number of pixels is used.
    pub segments: usize,
    /// Weight of position against colour (CIELAB units per grid step); must be positive.
    pub compactness: f64,
    /// Number of k-means iterations (the paper finds 10 enough).
    pub iterations: usize,
    /// Relabel so that every segment is connected, merging pieces smaller than
    /// `min_size_factor * H * W / segments` pixels into a neighbour.
    pub enforce_connectivity: bool,
    /// Relative size below which a piece is merged (scikit-image's default, 0.5).
    pub min_size_factor: f64,
}

impl Default for Slic {
    /// 50 segments, compactness 10, 10 iterations, connectivity enforced (factor 0.5).
    fn default() -> Self {
        Slic {
            segments: 50,
            compactness: 10.0,
            iterations: 10,
            enforce_connectivity: true,
            min_size_factor: 0.5,
        }
    }
}

/// sRGB in `[0, 1]` to CIELAB (D65 white), like scikit-image's `rgb2lab`.
///
/// ```
/// use cnn_explain::segmentation::rgb_to_lab;
/// let [l, a, b] = rgb_to_lab([1.0, 0.0, 0.0]);
/// assert!((l - 53.24).abs() < 0.01 && (a - 80.09).abs() < 0.01 && (b - 67.20).abs() < 0.01);
/// ```
pub fn rgb_to_lab(rgb: [f32; 3]) -> [f32; 3] {
    let lin = |c: f32| {
        if c <= 0.04045 {
            c / 12.92
        } else {
            ((c + 0.055) / 1.055).powf(2.4)
        }
    };
    let (r, g, b) = (lin(rgb[0]), lin(rgb[1]), lin(rgb[2]));
    let x = (0.412453 * r + 0.357580 * g + 0.180423 * b) / 0.95047;
    let y = 0.212671 * r + 0.715160 * g + 0.072169 * b;
    let z = (0.019334 * r + 0.119193 * g + 0.950227 * b) / 1.08883;
    let f = |t: f32| {
        if t > 0.008856 {
            t.cbrt()
        } else {
            7.787 * t + 16.0 / 116.0
        }
    };
    let (fx, fy, fz) = (f(x), f(y), f(z));
    [116.0 * fy - 16.0, 500.0 * (fx - fy), 200.0 * (fy - fz)]
}

impl Slic {
    fn check(&self) -> Result<()> {
        if self.segments == 0 {
            return Err(Error::invalid("segments", "must be at least 1"));
        }
        if !(self.compactness.is_finite() && self.compactness > 0.0) {
            return Err(Error::invalid(
                "compactness",
                format!("must be a positive number, got {}", self.compactness),
            ));
        }
        if self.iterations == 0 {
            return Err(Error::invalid("iterations", "must be at least 1"));
        }
        if !(self.min_size_factor.is_finite() && (0.0..=1.0).contains(&self.min_size_factor)) {
            return Err(Error::invalid(
                "min_size_factor",
                format!("must be in [0, 1], got {}", self.min_size_factor),
            ));
        }
        Ok(())
    }

    /// Segments `image`: `[C, H, W]` or `[1, C, H, W]`, `C` = 3 (RGB) or 1 (grey), values in
    /// `[0, 1]`. An image with values outside `[0, 1]` (a normalised input) is min-max rescaled to
    /// `[0, 1]` first. An image with fewer pixels than `segments` gets at most one segment per
    /// pixel; a single-colour image gets a grid of compact segments.
    ///
    /// ```
    /// use cnn_explain::segmentation::Slic;
    /// use tch::{Device, Kind, Tensor};
    /// // Two flat halves: no segment crosses the middle.
    /// let left = Tensor::zeros([3, 8, 8], (Kind::Float, Device::Cpu));
    /// let image = Tensor::cat(&[&left, &(left.ones_like())], 2); // 8 x 16
    /// let seg = Slic { segments: 2, ..Default::default() }.segment(&image)?;
    /// assert_eq!(seg.count(), 2);
    /// assert_eq!(seg.sizes(), [64, 64]);
    /// assert_ne!(seg.labels()[7], seg.labels()[8]);
    /// # Ok::<(), cnn_explain::Error>(())
    /// ```
    pub fn segment(&self, image: &Tensor) -> Result<Segments> {
        let size = image.size();
        let (c, h, w) = match size.as_slice() {
            [c, h, w] | [1, c, h, w] => (*c, *h, *w),
            _ => {
                return Err(Error::shape(
                    "image",
                    "[C, H, W] or [1, C, H, W] with C = 1 or 3",
                    &size,
                ))
            }
        };
        if !(c == 1 || c == 3) || h < 1 || w < 1 {
            return Err(Error::shape(
                "image",
                "[C, H, W] or [1, C, H, W] with C = 1 or 3 and H, W >= 1",
                &size,
            ));
        }
        if !image.is_floating_point() {
            return Err(Error::invalid(
                "image",
                format!("expected a float tensor in [0, 1], got {:?}", image.kind()),
            ));
        }
        let data: Vec<f32> = Vec::<f32>::try_from(
            image
                .detach()
                .to_device(tch::Device::Cpu)
                .to_kind(Kind::Float)
                .contiguous()
                .flatten(0, -1),
        )?;
        self.segment_planar(&data, c as usize, h as usize, w as usize)
    }

    /// Segments an image given as channel planes (`[C, H, W]` row-major, `C` = 1 or 3, values in
    /// `[0, 1]`, rescaled as in [`Slic::segment`] otherwise).
    ///
    /// ```
    /// use cnn_explain::segmentation::Slic;
    /// let grey = vec![0.0f32; 16];
    /// let seg = Slic { segments: 4, ..Default::default() }.segment_planar(&grey, 1, 4, 4)?;
    /// assert_eq!(seg.count(), 4); // a flat image gives the grid
    /// # Ok::<(), cnn_explain::Error>(())
    /// ```
    pub fn segment_planar(
        &self,
        data: &[f32],
        channels: usize,
        height: usize,
        width: usize,
    ) -> Result<Segments> {
        self.check()?;
        let n = height * width;
        if !(channels == 1 || channels == 3) || n == 0 || data.len() != channels * n {
            return Err(Error::invalid(
                "data",
                format!(
                    "expected channels (1 or 3) * height * width = {channels} * {height} * {width} \
                     values with height, width >= 1, got {}",
                    data.len()
                ),
            ));
        }
        if data.iter().any(|v| !v.is_finite()) {
            return Err(Error::invalid("image", "contains NaN or infinite values"));
        }
        let (lo, hi) = data
            .iter()
            .fold((f32::INFINITY, f32::NEG_INFINITY), |(a, b), &v| {
                (a.min(v), b.max(v))
            });
        let (shift, scale) = if lo < 0.0 || hi > 1.0 {
            (lo, if hi > lo { 1.0 / (hi - lo) } else { 0.0 })
        } else {
            (0.0, 1.0)
        };
        let px = |ch: usize, p: usize| (data[ch * n + p] - shift) * scale;
        let lab: Vec<[f32; 3]> = (0..n)
            .map(|p| {
                if channels == 3 {
                    rgb_to_lab([px(0, p), px(1, p), px(2, p)])
                } else {
                    [100.0 * px(0, p), 0.0, 0.0]
                }
            })
            .collect();
        Ok(self.run(&lab, height, width))
    }

    fn run(&self, lab: &[[f32; 3]], h: usize, w: usize) -> Segments {
        let n = h * w;
        let k_req = self.segments.min(n);
        let step = ((n as f64) / (k_req as f64)).sqrt();
        let ny = ((h as f64 / step).round() as usize).clamp(1, h);
        let nx = ((w as f64 / step).round() as usize).clamp(1, w);
        let (sy, sx) = (h as f64 / ny as f64, w as f64 / nx as f64);
        // Centre: [L, a, b, y, x].
        let mut centres: Vec<[f64; 5]> = Vec::with_capacity(ny * nx);
        for i in 0..ny {
            for j in 0..nx {
                let y = (i as f64 + 0.5) * sy;
                let x = (j as f64 + 0.5) * sx;
                let p = (y as usize).min(h - 1) * w + (x as usize).min(w - 1);
                let c = lab[p];
                centres.push([c[0] as f64, c[1] as f64, c[2] as f64, y - 0.5, x - 0.5]);
            }
        }
        let s = sy.max(sx);
        let spatial = ((self.compactness / s).powi(2)) as f32;
        let radius = s.ceil() as isize;
        let mut labels = vec![0u32; n];
        let mut dist = vec![f32::INFINITY; n];
        let mut sums = vec![[0f64; 6]; centres.len()];
        for _ in 0..self.iterations {
            dist.fill(f32::INFINITY);
            for (k, c) in centres.iter().enumerate() {
                let (cy, cx) = (c[3].round() as isize, c[4].round() as isize);
                let y0 = (cy - radius).max(0) as usize;
                let y1 = ((cy + radius + 1).max(0) as usize).min(h);
                let x0 = (cx - radius).max(0) as usize;
                let x1 = ((cx + radius + 1).max(0) as usize).min(w);
                let (c0, c1, c2) = (c[0] as f32, c[1] as f32, c[2] as f32);
                let (fy, fx) = (c[3] as f32, c[4] as f32);
                for y in y0..y1 {
                    let dy = y as f32 - fy;
                    let dy2 = dy * dy * spatial;
                    let row = y * w;
                    let pixels = &lab[row + x0..row + x1];
                    let dists = &mut dist[row + x0..row + x1];
                    let labs = &mut labels[row + x0..row + x1];
                    for (i, ((q, d), l)) in pixels.iter().zip(dists).zip(labs).enumerate() {
                        let dl = q[0] - c0;
                        let da = q[1] - c1;
                        let db = q[2] - c2;
                        let dx = (x0 + i) as f32 - fx;
                        let e = dl * dl + da * da + db * db + dx * dx * spatial + dy2;
                        if e < *d {
                            *d = e;
                            *l = k as u32;
                        }
                    }
                }
            }
            for s in sums.iter_mut() {
                *s = [0.0; 6];
            }
            for y in 0..h {
                for x in 0..w {
                    let p = y * w + x;
                    let q = lab[p];
                    let s = &mut sums[labels[p] as usize];
                    s[0] += q[0] as f64;
                    s[1] += q[1] as f64;
                    s[2] += q[2] as f64;
                    s[3] += y as f64;
                    s[4] += x as f64;
                    s[5] += 1.0;
                }
            }
            for (c, s) in centres.iter_mut().zip(&sums) {
                if s[5] > 0.0 {
                    for d in 0..5 {
                        c[d] = s[d] / s[5];
                    }
                }
            }
        }
        let labels = if self.enforce_connectivity {
            let min_size = (self.min_size_factor * n as f64 / centres.len() as f64) as usize;
            enforce_connectivity(&labels, h, w, min_size)
        } else {
            labels
        };
        // Renumbers to consecutive ids (k-means can leave a centre without pixels).
        Segments::from_labels(labels, h, w).unwrap_or_else(|_| Segments {
            labels: vec![0; n],
            height: h,
            width: w,
            count: 1,
        })
    }
}

/// Relabels the 4-connected pieces of `labels` in raster order; a piece smaller than `min_size`
/// takes the label of the already-visited neighbour of its first pixel (as scikit-image does), so
/// every output segment is connected.
fn enforce_connectivity(labels: &[u32], h: usize, w: usize, min_size: usize) -> Vec<u32> {
    let mut out = vec![u32::MAX; labels.len()];
    let mut next = 0u32;
    let mut piece = Vec::new();
    for start in 0..labels.len() {
        if out[start] != u32::MAX {
            continue;
        }
        let (sy, sx) = (start / w, start % w);
        // In raster order the left and upper neighbours are already labelled.
        let adjacent = if sx > 0 {
            Some(out[start - 1])
        } else if sy > 0 {
            Some(out[start - w])
        } else {
            None
        };
        flood_fill(labels, (h, w), start, next, &mut out, &mut piece);
        match adjacent {
            Some(a) if piece.len() < min_size => {
                for &p in &piece {
                    out[p] = a;
                }
            }
            _ => next += 1,
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rng::Rng;
    use tch::Device;

    /// Four flat quadrants of distinct colours, `[3, 2h, 2w]`.
    fn quadrants(h: i64, w: i64) -> Tensor {
        let colours = [[1.0, 0.0, 0.0], [0.0, 1.0, 0.0], [0.0, 0.0, 1.0], [1.0, 1.0, 0.0]];
        let q: Vec<Tensor> = colours
            .iter()
            .map(|c| {
                Tensor::from_slice(c)
                    .to_kind(Kind::Float)
                    .view([3, 1, 1])
                    .expand([3, h, w], true)
            })
            .collect();
        let top = Tensor::cat(&[&q[0], &q[1]], 2);
        let bottom = Tensor::cat(&[&q[2], &q[3]], 2);
        Tensor::cat(&[top, bottom], 1).contiguous()
    }

    fn quadrant_of(p: usize, w2: usize, h: usize, w: usize) -> usize {
        let (y, x) = (p / w2, p % w2);
        (y / h) * 2 + x / w
    }

    #[test]
    fn lab_of_white_black_and_grey() {
        let [l, a, b] = rgb_to_lab([1.0, 1.0, 1.0]);
        assert!((l - 100.0).abs() < 1e-3 && a.abs() < 1e-2 && b.abs() < 1e-2);
        assert_eq!(rgb_to_lab([0.0, 0.0, 0.0]), [0.0, 0.0, 0.0]);
        // skimage.color.rgb2lab([[[0.5, 0.5, 0.5]]]) = 53.3890, 0, 0; blue = 32.30, 79.19, -107.86.
        assert!((rgb_to_lab([0.5, 0.5, 0.5])[0] - 53.389).abs() < 1e-2);
        let [l, a, b] = rgb_to_lab([0.0, 0.0, 1.0]);
        assert!((l - 32.30).abs() < 0.01 && (a - 79.19).abs() < 0.01 && (b + 107.86).abs() < 0.01);
    }

    #[test]
    fn quadrants_are_never_crossed() {
        let image = quadrants(20, 24);
        for segments in [4, 10, 30, 100] {
            let seg = Slic {
                segments,
                ..Default::default()
            }
            .segment(&image)
            .unwrap();
            assert!(seg.is_connected(), "{segments}");
            // Every segment lies within one quadrant.
            let mut quad = vec![usize::MAX; seg.count()];
            for (p, &l) in seg.labels().iter().enumerate() {
                let q = quadrant_of(p, 48, 20, 24);
                let slot = &mut quad[l as usize];
                assert!(
                    *slot == usize::MAX || *slot == q,
                    "segment {l} crosses quadrants ({segments} asked)"
                );
                *slot = q;
            }
            assert!(seg.count() >= 4, "{segments}: {}", seg.count());
            let ratio = seg.count() as f64 / segments.max(4) as f64;
            assert!(
                (0.5..=1.6).contains(&ratio),
                "{segments} asked, {} found",
                seg.count()
            );
        }
        // Asking for 4 gives exactly the quadrants.
        let seg = Slic {
            segments: 4,
            ..Default::default()
        }
        .segment(&image)
        .unwrap();
        assert_eq!(seg.count(), 4);
        assert_eq!(seg.sizes(), [480, 480, 480, 480]);
    }

    #[test]
    fn count_is_close_to_requested_on_a_smooth_image() {
        // A smooth random colour field (pixel noise is a bad test: scikit-image's SLIC, like this
        // one, turns uniform noise into a single segment after connectivity enforcement).
        let coarse = Rng::new(4).uniform_tensor(&[1, 3, 4, 4], Device::Cpu);
        let image = coarse
            .upsample_bilinear2d([64, 64], false, None, None)
            .squeeze_dim(0);
        for segments in [16, 50, 100] {
            let seg = Slic {
                segments,
                ..Default::default()
            }
            .segment(&image)
            .unwrap();
            assert!(seg.is_connected());
            let ratio = seg.count() as f64 / segments as f64;
            assert!(
                (0.6..=1.5).contains(&ratio),
                "{segments} asked, {} found",
                seg.count()
            );
            assert!(seg.labels().iter().all(|&l| (l as usize) < seg.count()));
            assert!(seg.sizes().iter().all(|&s| s > 0));
        }
    }

    #[test]
    fn pixel_noise_still_gives_valid_connected_labels() {
        let image = Rng::new(5).uniform_tensor(&[3, 40, 40], Device::Cpu);
        let seg = Slic {
            segments: 20,
            ..Default::default()
        }
        .segment(&image)
        .unwrap();
        assert!(seg.is_connected() && seg.count() >= 1);
        assert!(seg.sizes().iter().all(|&s| s > 0));
    }

    #[test]
    fn single_colour_image_gives_a_valid_grid() {
        let image = Tensor::full([3, 30, 30], 0.3, (Kind::Float, Device::Cpu));
        let seg = Slic {
            segments: 9,
            ..Default::default()
        }
        .segment(&image)
        .unwrap();
        assert_eq!(seg.count(), 9);
        assert_eq!(seg.sizes(), [100; 9]);
        assert!(seg.is_connected());
    }

    #[test]
    fn tiny_image_gets_at_most_one_segment_per_pixel() {
        let image = Tensor::rand([3, 2, 3], (Kind::Float, Device::Cpu));
        let seg = Slic {
            segments: 50,
            ..Default::default()
        }
        .segment(&image)
        .unwrap();
        assert!(seg.count() >= 1 && seg.count() <= 6, "{}", seg.count());
        assert!(seg.is_connected());
        let one = Tensor::rand([1, 1, 1], (Kind::Float, Device::Cpu));
        assert_eq!(Slic::default().segment(&one).unwrap().count(), 1);
    }

    #[test]
    fn normalised_input_is_rescaled_and_grey_works() {
        let image = quadrants(8, 8) * 4.0 - 2.0;
        let seg = Slic {
            segments: 4,
            ..Default::default()
        }
        .segment(&image.unsqueeze(0))
        .unwrap();
        assert_eq!(seg.count(), 4);
        let grey = quadrants(8, 8).mean_dim([0].as_slice(), true, Kind::Float);
        let seg = Slic {
            segments: 4,
            ..Default::default()
        }
        .segment(&grey)
        .unwrap();
        assert!(seg.is_connected());
    }

    #[test]
    fn connectivity_merges_small_pieces() {
        // Label 0 has a stray pixel inside label 1's area.
        let labels = [0, 0, 1, 1, 0, 0, 1, 1, 1, 1, 0, 1, 1, 1, 1, 1];
        let out = enforce_connectivity(&labels, 4, 4, 2);
        let seg = Segments::from_labels(out, 4, 4).unwrap();
        assert_eq!(seg.count(), 2);
        assert!(seg.is_connected());
        assert_eq!(seg.labels()[10], seg.labels()[9]);
        // With no merging the stray pixel is its own segment.
        let seg = Segments::from_labels(enforce_connectivity(&labels, 4, 4, 0), 4, 4).unwrap();
        assert_eq!(seg.count(), 3);
    }

    #[test]
    fn bad_arguments_are_errors() {
        let image = Tensor::rand([3, 4, 4], (Kind::Float, Device::Cpu));
        assert!(Slic {
            segments: 0,
            ..Default::default()
        }
        .segment(&image)
        .is_err());
        assert!(Slic {
            compactness: 0.0,
            ..Default::default()
        }
        .segment(&image)
        .is_err());
        assert!(Slic {
            iterations: 0,
            ..Default::default()
        }
        .segment(&image)
        .is_err());
        assert!(Slic::default()
            .segment(&Tensor::rand([2, 4, 4], (Kind::Float, Device::Cpu)))
            .is_err());
        assert!(Slic::default()
            .segment(&Tensor::ones([3, 4, 4], (Kind::Int64, Device::Cpu)))
            .is_err());
        let nan = Tensor::full([3, 4, 4], f64::NAN, (Kind::Float, Device::Cpu));
        assert!(Slic::default().segment(&nan).is_err());
    }

    #[test]
    fn segmentation_of_224_is_fast() {
        let coarse = Rng::new(6).uniform_tensor(&[1, 3, 8, 8], Device::Cpu);
        let image = coarse
            .upsample_bilinear2d([224, 224], false, None, None)
            .squeeze_dim(0);
        let t = std::time::Instant::now();
        let seg = Slic::default().segment(&image).unwrap();
        let ms = t.elapsed().as_secs_f64() * 1e3;
        eprintln!("SLIC 224x224, 50 segments: {ms:.1} ms ({} segments)", seg.count());
        // Generous bound for the test profile (opt-level 1) on a shared machine.
        assert!(ms < 1000.0, "{ms} ms");
    }
}
