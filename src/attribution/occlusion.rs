//! Occlusion (Zeiler and Fergus, "Visualizing and Understanding Convolutional Networks", ECCV 2014).
//!
//! What it answers: *how much does the class score fall when this part of the image is hidden?*
//! A window slides over the image (all channels at once); at every position the covered pixels are
//! replaced by a baseline and the drop of the target class's logit or probability is recorded. A
//! pixel's attribution is the average drop over the windows that cover it, exactly as Captum's
//! `Occlusion` computes it: windows start at `0, stride, 2 * stride, ...` until one reaches the
//! border, and a last window that would cross the border is cut at it, so every pixel is covered.
//!
//! Only forward passes are needed (no gradients), so it works with any model; the cost is one
//! forward pass per window position, batched `batch` at a time.

use super::{check_positive, prepare_input, Attribution, Target};
use crate::models::{fast_layout, Model};
use crate::{Error, Result};
use tch::{Kind, Tensor};

/// What replaces the occluded pixels.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub enum OcclusionBaseline {
    /// One value for every channel (Captum's scalar baseline); `Value(0.0)` is the default.
    Value(f64),
    /// Each image's own per-channel mean (a grey of the image's average colour).
    #[default]
    ChannelMean,
}

/// Which class score's drop is measured.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Score {
    /// The softmax probability of the target class.
    #[default]
    Probability,
    /// The logit of the target class.
    Logit,
}

impl Score {
    /// The score of `classes` `[N]` from `logits` `[N, K]`, as `[N]`.
    pub(crate) fn select(self, logits: &Tensor, classes: &Tensor) -> Tensor {
        let s = match self {
            Score::Probability => logits.softmax(1, Kind::Float),
            Score::Logit => logits.to_kind(Kind::Float),
        };
        super::select_scores(&s, classes)
    }
}

/// Occlusion sensitivity: the average drop of the target score when a sliding window hides a pixel.
///
/// `attribute` takes `[N, C, H, W]` and returns `[N, 1, H, W]`: positive where hiding the region
/// lowers the score (evidence for the class), negative where it raises it.
///
/// ```
/// use cnn_explain::attribution::occlusion::{Occlusion, OcclusionBaseline, Score};
/// use cnn_explain::prelude::*;
///
/// // A linear "model": logit 0 is the sum of all pixels, logit 1 is 0.
/// let model = Staged::new(1, 2, Device::Cpu).leaf(
///     "sum",
///     tch::nn::func(|xs| {
///         let s = xs.sum_dim_intlist([1, 2, 3].as_slice(), false, Kind::Float);
///         Tensor::stack(&[&s, &(&s * 0.0)], 1)
///     }),
/// );
/// let occ = Occlusion { window: (2, 2), stride: (2, 2), baseline: OcclusionBaseline::Value(0.0), score: Score::Logit, batch: 4 };
/// let xs = Tensor::ones([1, 1, 4, 4], (Kind::Float, Device::Cpu));
/// let map = occ.attribute(&model, &xs, &Target::Class(0))?;
/// assert_eq!(map.size(), [1, 1, 4, 4]);
/// // Hiding a 2x2 block of ones lowers the sum by 4; each pixel is covered by one window.
/// assert!(map.allclose(&Tensor::full([1, 1, 4, 4], 4.0, (Kind::Float, Device::Cpu)), 1e-6, 1e-6, false));
/// # Ok::<(), cnn_explain::Error>(())
/// ```
#[derive(Debug, Clone, PartialEq)]
pub struct Occlusion {
    /// Window height and width in pixels (the window always spans every channel).
    pub window: (i64, i64),
    /// Step between window positions, per axis; at least 1 and at most the window's size.
    pub stride: (i64, i64),
    /// What the hidden pixels become.
    pub baseline: OcclusionBaseline,
    /// Which score's drop is measured.
    pub score: Score,
    /// How many occluded images go through the model at once.
    pub batch: usize,
}

impl Default for Occlusion {
    /// A 16x16 window moved by 8 pixels, the image's mean colour as baseline, probability drop,
    /// batches of 64.
    fn default() -> Self {
        Occlusion {
            window: (16, 16),
            stride: (8, 8),
            baseline: OcclusionBaseline::ChannelMean,
            score: Score::Probability,
            batch: 64,
        }
    }
}

/// Window start positions along one axis of length `len`, Captum's way: `0, s, 2s, ...`,
/// `ceil((len - w) / s) + 1` of them; the last may be cut at the border.
fn starts(len: i64, w: i64, s: i64) -> Vec<i64> {
    let n = (len - w + s - 1) / s + 1;
    (0..n).map(|i| i * s).collect()
}

impl Occlusion {
    fn check(&self, h: i64, w: i64) -> Result<()> {
        check_positive("batch", self.batch)?;
        for (axis, win, stride, len) in [
            ("height", self.window.0, self.stride.0, h),
            ("width", self.window.1, self.stride.1, w),
        ] {
            if win < 1 || win > len {
                return Err(Error::invalid(
                    "window",
                    format!("window {axis} {win} must be between 1 and the image {axis} {len}"),
                ));
            }
            if stride < 1 || (stride > win && win < len) {
                return Err(Error::invalid(
                    "stride",
                    format!(
                        "stride {axis} {stride} must be between 1 and the window {axis} {win}, \
                         otherwise some pixels are never occluded"
                    ),
                ));
            }
        }
        Ok(())
    }

    /// The number of window positions for an image of `height` x `width`: the number of forward
    /// passes per image (plus one for the unoccluded image).
    ///
    /// ```
    /// use cnn_explain::attribution::occlusion::Occlusion;
    /// let occ = Occlusion { window: (3, 3), stride: (2, 2), ..Default::default() };
    /// // Starts 0, 2, 4, 6 on each axis of 8 (the last window is cut at the border).
    /// assert_eq!(occ.positions(8, 8)?, 16);
    /// # Ok::<(), cnn_explain::Error>(())
    /// ```
    pub fn positions(&self, height: i64, width: i64) -> Result<usize> {
        self.check(height, width)?;
        Ok(starts(height, self.window.0, self.stride.0).len()
            * starts(width, self.window.1, self.stride.1).len())
    }
}

impl Attribution for Occlusion {
    fn attribute(&self, model: &dyn Model, input: &Tensor, target: &Target) -> Result<Tensor> {
        let xs = prepare_input(model, input)?;
        let size = xs.size();
        let (n, c, h, w) = (size[0], size[1], size[2], size[3]);
        self.check(h, w)?;
        let device = xs.device();
        let ys = starts(h, self.window.0, self.stride.0);
        let xs_pos = starts(w, self.window.1, self.stride.1);
        let windows: Vec<(i64, i64, i64, i64)> = ys
            .iter()
            .flat_map(|&y| {
                xs_pos
                    .iter()
                    .map(move |&x| (y, (y + self.window.0).min(h), x, (x + self.window.1).min(w)))
            })
            .collect();
        // Per pixel: how many windows cover it, and the sum of their drops (on the CPU; the
        // windows are few and small next to the forward passes).
        let mut counts = vec![0f64; (h * w) as usize];
        for &(y0, y1, x0, x1) in &windows {
            for y in y0..y1 {
                for v in &mut counts[(y * w + x0) as usize..(y * w + x1) as usize] {
                    *v += 1.0;
                }
            }
        }

        tch::no_grad(|| {
            let logits = eval_logits(model, &xs)?;
            let classes = target.resolve(model, &logits)?;
            let orig = Vec::<f64>::try_from(
                self.score
                    .select(&logits, &classes)
                    .to_kind(Kind::Double)
                    .to_device(tch::Device::Cpu),
            )?;
            let mut maps = Vec::with_capacity(n as usize);
            for (i, &orig_i) in orig.iter().enumerate() {
                let x = xs.get(i as i64); // [C, H, W]
                let base = match self.baseline {
                    OcclusionBaseline::Value(v) => Tensor::full([c, 1, 1], v, (Kind::Float, device)),
                    OcclusionBaseline::ChannelMean => x.mean_dim([1, 2].as_slice(), true, Kind::Float),
                };
                let cls = classes.get(i as i64).view([1]);
                let mut sum = vec![0f64; (h * w) as usize];
                for chunk in windows.chunks(self.batch) {
                    let b = chunk.len() as i64;
                    let pert = x.unsqueeze(0).repeat([b, 1, 1, 1]);
                    for (j, &(y0, y1, x0, x1)) in chunk.iter().enumerate() {
                        pert.get(j as i64)
                            .narrow(1, y0, y1 - y0)
                            .narrow(2, x0, x1 - x0)
                            .copy_(&base);
                    }
                    let out = eval_logits(model, &pert)?;
                    let scores = Vec::<f64>::try_from(
                        self.score
                            .select(&out, &cls.expand([b], false))
                            .to_kind(Kind::Double)
                            .to_device(tch::Device::Cpu),
                    )?;
                    for (&(y0, y1, x0, x1), s) in chunk.iter().zip(scores) {
                        let drop = orig_i - s;
                        for y in y0..y1 {
                            for v in &mut sum[(y * w + x0) as usize..(y * w + x1) as usize] {
                                *v += drop;
                            }
                        }
                    }
                }
                let avg: Vec<f32> = sum.iter().zip(&counts).map(|(s, n)| (s / n) as f32).collect();
                maps.push(Tensor::from_slice(&avg).view([1, h, w]).to_device(device));
            }
            Ok(Tensor::stack(&maps, 0))
        })
    }

    fn name(&self) -> String {
        let base = match self.baseline {
            OcclusionBaseline::Value(v) => format!("baseline {v}"),
            OcclusionBaseline::ChannelMean => "channel-mean baseline".to_string(),
        };
        let score = match self.score {
            Score::Probability => "probability",
            Score::Logit => "logit",
        };
        format!(
            "Occlusion ({}x{} window, stride {}x{}, {base}, {score} drop)",
            self.window.0, self.window.1, self.stride.0, self.stride.1
        )
    }
}

/// Forward pass in evaluation mode whose output is checked to be `[N, K]` logits.
pub(crate) fn eval_logits(model: &dyn Model, xs: &Tensor) -> Result<Tensor> {
    let out = model.forward_t(&fast_layout(model, xs), false);
    let size = out.size();
    let n = xs.size().first().copied().unwrap_or(0);
    if size.len() != 2 || size[0] != n || size[1] != model.num_classes() {
        return Err(Error::shape(
            "model output",
            format!("logits [{n}, {}]", model.num_classes()),
            &size,
        ));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::attribution::test_models::linear_model;
    use tch::Device;

    #[test]
    fn starts_follow_captum() {
        assert_eq!(starts(8, 3, 2), [0, 2, 4, 6]);
        assert_eq!(starts(8, 4, 4), [0, 4]);
        assert_eq!(starts(8, 5, 3), [0, 3]);
        assert_eq!(starts(5, 5, 1), [0]);
        assert_eq!(starts(5, 1, 1), [0, 1, 2, 3, 4]);
    }

    #[test]
    fn linear_model_drop_is_sum_of_w_times_x_over_the_window() {
        let wts = Tensor::arange(2 * 4 * 4, (Kind::Float, Device::Cpu)).view([2, 4, 4]) / 10.0 - 1.0;
        let model = linear_model(wts.shallow_clone());
        let xs = Tensor::arange(2 * 4 * 4, (Kind::Float, Device::Cpu))
            .view([1, 2, 4, 4])
            .cos();
        // Non-overlapping 2x2 windows: each pixel's attribution is its window's sum of w * x.
        let occ = Occlusion {
            window: (2, 2),
            stride: (2, 2),
            baseline: OcclusionBaseline::Value(0.0),
            score: Score::Logit,
            batch: 3,
        };
        let map = occ.attribute(&model, &xs, &Target::Class(0)).unwrap();
        let wx = (&wts * xs.get(0)).sum_dim_intlist([0].as_slice(), false, Kind::Float); // [4, 4]
        for y in 0..4 {
            for x in 0..4 {
                let (by, bx) = (y / 2 * 2, x / 2 * 2);
                let expect = wx
                    .narrow(0, by, 2)
                    .narrow(1, bx, 2)
                    .sum(Kind::Float)
                    .double_value(&[]);
                let got = map.double_value(&[0, 0, y, x]);
                assert!((got - expect).abs() < 1e-5, "({y},{x}): {got} vs {expect}");
            }
        }
        // Overlapping 1-pixel-stride 2x2 windows with a baseline b: a window's drop is
        // sum over it of w * (x - b); pixel (0, 0) is covered only by the window at (0, 0).
        let occ = Occlusion {
            window: (2, 2),
            stride: (1, 1),
            baseline: OcclusionBaseline::Value(0.5),
            ..occ
        };
        let map = occ.attribute(&model, &xs, &Target::Class(0)).unwrap();
        let wxb = (&wts * (xs.get(0) - 0.5)).sum_dim_intlist([0].as_slice(), false, Kind::Float);
        let drop = |y: i64, x: i64| {
            wxb.narrow(0, y, 2)
                .narrow(1, x, 2)
                .sum(Kind::Float)
                .double_value(&[])
        };
        assert!((map.double_value(&[0, 0, 0, 0]) - drop(0, 0)).abs() < 1e-5);
        // Pixel (1, 1) is covered by the 4 windows starting at (0..=1, 0..=1).
        let avg = (drop(0, 0) + drop(0, 1) + drop(1, 0) + drop(1, 1)) / 4.0;
        assert!((map.double_value(&[0, 0, 1, 1]) - avg).abs() < 1e-5);
        // The class-1 logit is constant: no drop anywhere.
        let map1 = occ.attribute(&model, &xs, &Target::Class(1)).unwrap();
        assert_eq!(map1.abs().max().double_value(&[]), 0.0);
    }

    #[test]
    fn channel_mean_baseline_uses_each_images_means() {
        let wts = Tensor::ones([2, 3, 3], (Kind::Float, Device::Cpu));
        let model = linear_model(wts);
        let xs = Tensor::arange(2 * 2 * 9, (Kind::Float, Device::Cpu)).view([2, 2, 3, 3]);
        let occ = Occlusion {
            window: (3, 3),
            stride: (3, 3),
            baseline: OcclusionBaseline::ChannelMean,
            score: Score::Logit,
            batch: 64,
        };
        // Replacing the whole image by its channel means keeps the sum: zero drop.
        let map = occ.attribute(&model, &xs, &Target::Class(0)).unwrap();
        assert!(map.abs().max().double_value(&[]) < 1e-4);
        // A 1x1 window at pixel p drops sum_c (x_c(p) - mean_c).
        let occ = Occlusion {
            window: (1, 1),
            stride: (1, 1),
            ..occ
        };
        let map = occ.attribute(&model, &xs, &Target::Class(0)).unwrap();
        let means = xs.mean_dim([2, 3].as_slice(), true, Kind::Float);
        let expect = (&xs - means).sum_dim_intlist([1].as_slice(), true, Kind::Float);
        assert!(map.allclose(&expect, 1e-5, 1e-5, false));
    }

    #[test]
    fn batched_equals_one_at_a_time() {
        let wts = Tensor::ones([1, 5, 5], (Kind::Float, Device::Cpu));
        let model = linear_model(wts);
        let xs = Tensor::arange(25, (Kind::Float, Device::Cpu))
            .view([1, 1, 5, 5])
            .sin();
        let mut occ = Occlusion {
            window: (2, 3),
            stride: (1, 2),
            score: Score::Probability,
            ..Default::default()
        };
        occ.batch = 1;
        let a = occ.attribute(&model, &xs, &Target::Predicted).unwrap();
        occ.batch = 100;
        let b = occ.attribute(&model, &xs, &Target::Predicted).unwrap();
        assert!(a.allclose(&b, 1e-6, 1e-6, false));
        assert!(a.abs().max().double_value(&[]) > 1e-3);
    }

    #[test]
    fn bad_settings_are_errors() {
        let model = linear_model(Tensor::ones([1, 4, 4], (Kind::Float, Device::Cpu)));
        let xs = Tensor::ones([1, 1, 4, 4], (Kind::Float, Device::Cpu));
        let t = Target::Class(0);
        let e = |occ: Occlusion| occ.attribute(&model, &xs, &t).unwrap_err().to_string();
        let ok = Occlusion {
            window: (2, 2),
            stride: (1, 1),
            ..Default::default()
        };
        assert!(e(Occlusion {
            window: (5, 2),
            ..ok.clone()
        })
        .contains("window height 5"));
        assert!(e(Occlusion {
            window: (2, 0),
            ..ok.clone()
        })
        .contains("window width 0"));
        assert!(e(Occlusion {
            stride: (3, 1),
            ..ok.clone()
        })
        .contains("stride height 3"));
        assert!(e(Occlusion {
            stride: (1, 0),
            ..ok.clone()
        })
        .contains("stride width 0"));
        assert!(e(Occlusion {
            batch: 0,
            ..ok.clone()
        })
        .contains("batch"));
        assert!(ok.attribute(&model, &xs, &Target::Class(2)).is_err());
        let bad = Tensor::ones([1, 3, 4, 4], (Kind::Float, Device::Cpu));
        assert!(ok.attribute(&model, &bad, &t).is_err());
    }
}
