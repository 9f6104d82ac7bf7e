//! LIME for images (Ribeiro, Singh and Guestrin, "Why Should I Trust You?": Explaining the
//! Predictions of Any Classifier, KDD 2016).
//!
//! What it answers: *which superpixels, kept or hidden, move the class probability most, according
//! to a linear model that imitates the classifier near this image?* The image is cut into
//! superpixels ([`Slic`] or a segmentation you give); random subsets of them are hidden (filled
//! with their mean colour, a constant, or a blurred copy); the model scores every perturbed image;
//! and a weighted ridge regression from the on/off pattern to the score, with samples close to the
//! original image (cosine distance of the patterns) weighted more, gives one weight per
//! superpixel. The surrogate's weighted R² says how faithful that local linear model is.
//!
//! Unlike the reference Python package, the sampling is seeded here: one seed, one explanation.

mod ridge;
mod views;

pub use ridge::{weighted_ridge, RidgeFit};
pub use views::{mark_boundaries, to_rgb_image, Sign};

use super::occlusion::{eval_logits, Score};
use super::{check_positive, prepare_input, Attribution, Target};
use crate::models::Model;
use crate::rng::Rng;
use crate::segmentation::{Segments, Slic};
use crate::{Error, Result};
use tch::{Kind, Tensor};

/// What hidden superpixels are filled with.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub enum Fill {
    /// Each superpixel's own mean colour (the reference package's default).
    #[default]
    Mean,
    /// One value in every channel (in the model's input units).
    Constant(f64),
    /// A Gaussian-blurred copy of the image with this standard deviation in pixels.
    Blur {
        /// Standard deviation of the Gaussian, in pixels (positive).
        sigma: f64,
    },
}

/// LIME for images: the configuration. [`Lime::explain`] gives the structured result;
/// [`Attribution::attribute`] gives per-pixel maps `[N, 1, H, W]` (each pixel carries its
/// superpixel's weight).
///
/// ```
/// use cnn_explain::attribution::lime::{Fill, Lime};
/// use cnn_explain::prelude::*;
/// use cnn_explain::segmentation::Segments;
///
/// // logit 0 = 3 * mean of the left half - mean of the right half; logit 1 = 0.
/// let model = Staged::new(1, 2, Device::Cpu).leaf("f", tch::nn::func(|xs| {
///     let l = xs.narrow(3, 0, 2).mean_dim([1, 2, 3].as_slice(), false, Kind::Float);
///     let r = xs.narrow(3, 2, 2).mean_dim([1, 2, 3].as_slice(), false, Kind::Float);
///     let z = l * 3.0 - r;
///     Tensor::stack(&[&z, &(&z * 0.0)], 1)
/// }));
/// let halves = Segments::from_labels(vec![0, 0, 1, 1, 0, 0, 1, 1], 2, 4)?;
/// // Hidden halves become 0 (a flat half filled with its own mean colour would not change).
/// let lime = Lime { samples: 200, segments: Some(halves), fill: Fill::Constant(0.0), ..Default::default() };
/// let image = Tensor::full([1, 1, 2, 4], 0.8, (Kind::Float, Device::Cpu));
/// let e = lime.explain(&model, &image, &Target::Class(0))?;
/// assert!(e.weights[0] > 0.0 && e.weights[1] < 0.0);
/// assert_eq!(lime.attribute(&model, &image, &Target::Class(0))?.size(), [1, 1, 2, 4]);
/// # Ok::<(), cnn_explain::Error>(())
/// ```
#[derive(Debug, Clone, PartialEq)]
pub struct Lime {
    /// Number of perturbed images (the first keeps every superpixel, as the reference does).
    pub samples: usize,
    /// How superpixels are found when `segments` is `None`.
    pub segmentation: Slic,
    /// A fixed segmentation of the image (`H x W` labels) used instead of `segmentation`.
    pub segments: Option<Segments>,
    /// What hidden superpixels become.
    pub fill: Fill,
    /// Width of the exponential kernel on cosine distance: `sqrt(exp(-d² / width²))`.
    pub kernel_width: f64,
    /// Ridge penalty of the surrogate (`>= 0`; 0 is plain weighted least squares).
    pub ridge_alpha: f64,
    /// Which score the surrogate imitates (the reference uses the class probability).
    pub score: Score,
    /// How many perturbed images go through the model at once.
    pub batch: usize,
    /// Seed of the on/off sampling.
    pub seed: u64,
}

impl Default for Lime {
    /// 1,000 samples, SLIC with 50 segments, mean-colour fill, kernel width 0.25, ridge penalty 1,
    /// probability score, batches of 64, seed 0 (the reference package's defaults where it has
    /// them).
    fn default() -> Self {
        Lime {
            samples: 1000,
            segmentation: Slic::default(),
            segments: None,
            fill: Fill::Mean,
            kernel_width: 0.25,
            ridge_alpha: 1.0,
            score: Score::Probability,
            batch: 64,
            seed: 0,
        }
    }
}

/// The result of [`Lime::explain`] for one image.
#[derive(Debug, Clone, PartialEq)]
pub struct LimeExplanation {
    /// The superpixels, ids `0..weights.len()`.
    pub segments: Segments,
    /// The surrogate's weight of each superpixel: how much the score rises when it is shown.
    pub weights: Vec<f64>,
    /// The surrogate's intercept (its score with every superpixel hidden).
    pub intercept: f64,
    /// Weighted R² of the surrogate on the samples: near 1, the linear picture is faithful.
    pub r2: f64,
    /// The explained class.
    pub class: i64,
    /// The model's score (probability or logit) of `class` on the unperturbed image.
    pub score: f64,
    /// Number of perturbed samples the surrogate was fitted on.
    pub samples: usize,
}

impl Lime {
    fn check(&self) -> Result<()> {
        if self.samples < 2 {
            return Err(Error::invalid(
                "samples",
                format!("need at least 2 samples to fit a surrogate, got {}", self.samples),
            ));
        }
        check_positive("batch", self.batch)?;
        if !(self.kernel_width.is_finite() && self.kernel_width > 0.0) {
            return Err(Error::invalid(
                "kernel_width",
                format!("must be a positive number, got {}", self.kernel_width),
            ));
        }
        if !(self.ridge_alpha.is_finite() && self.ridge_alpha >= 0.0) {
            return Err(Error::invalid(
                "ridge_alpha",
                format!("must be a finite number >= 0, got {}", self.ridge_alpha),
            ));
        }
        if let Fill::Blur { sigma } = self.fill {
            if !(sigma.is_finite() && sigma > 0.0) {
                return Err(Error::invalid(
                    "fill",
                    format!("Fill::Blur sigma must be a positive number, got {sigma}"),
                ));
            }
        }
        if let Fill::Constant(v) = self.fill {
            if !v.is_finite() {
                return Err(Error::invalid("fill", "Fill::Constant must be finite"));
            }
        }
        Ok(())
    }

    /// Explains `image` (`[C, H, W]` or `[1, C, H, W]`, in the model's input units) for `target`
    /// (`Predicted`, `Class(c)`, or `PerSample` with one class).
    ///
    /// The superpixels come from `segments` if set (it must be `H x W`), else from
    /// `segmentation` run on the image (values outside `[0, 1]` are min-max rescaled for it).
    /// An image with a single superpixel (a flat image, or a tiny one) still gets an explanation;
    /// its one weight is what hiding everything costs.
    ///
    /// ```
    /// use cnn_explain::attribution::lime::Lime;
    /// use cnn_explain::prelude::*;
    /// let vs = tch::nn::VarStore::new(Device::Cpu);
    /// let model = Staged::new(3, 2, Device::Cpu)
    ///     .leaf("pool", tch::nn::func(|xs| xs.adaptive_avg_pool2d([1, 1]).flatten(1, -1)))
    ///     .leaf("fc", tch::nn::linear(vs.root() / "fc", 3, 2, Default::default()));
    /// let image = Tensor::rand([3, 16, 16], (Kind::Float, Device::Cpu));
    /// let lime = Lime { samples: 50, ..Default::default() };
    /// let e = lime.explain(&model, &image, &Target::Predicted)?;
    /// assert_eq!(e.weights.len(), e.segments.count());
    /// assert_eq!(e, lime.explain(&model, &image, &Target::Predicted)?); // same seed, same result
    /// # Ok::<(), cnn_explain::Error>(())
    /// ```
    pub fn explain(&self, model: &dyn Model, image: &Tensor, target: &Target) -> Result<LimeExplanation> {
        self.check()?;
        let size = image.size();
        let image = match size.len() {
            3 => image.unsqueeze(0),
            4 if size[0] == 1 => image.shallow_clone(),
            _ => {
                return Err(Error::shape(
                    "image",
                    "one image [C, H, W] or [1, C, H, W] (use `attribute` for a batch)",
                    &size,
                ))
            }
        };
        let xs = prepare_input(model, &image)?;
        tch::no_grad(|| {
            let logits = eval_logits(model, &xs)?;
            let class = target.resolve(model, &logits)?.int64_value(&[0]);
            self.explain_class(model, &xs, class)
        })
    }

    /// `xs`: a checked `[1, C, H, W]` float input on the model's device; `class` checked.
    fn explain_class(&self, model: &dyn Model, xs: &Tensor, class: i64) -> Result<LimeExplanation> {
        let size = xs.size();
        let (c, h, w) = (size[1], size[2], size[3]);
        let device = xs.device();
        let segments = match &self.segments {
            Some(s) => {
                if (s.height() as i64, s.width() as i64) != (h, w) {
                    return Err(Error::invalid(
                        "segments",
                        format!(
                            "the fixed segmentation is {}x{} but the image is {h}x{w}",
                            s.height(),
                            s.width()
                        ),
                    ));
                }
                s.clone()
            }
            None => self.segmentation.segment(&xs.get(0))?,
        };
        let k = segments.count();
        let labels = segments.to_tensor(device).view([h * w]);
        let x = xs.get(0); // [C, H, W]
        let fill = self.fill_image(&x, &labels, k)?;
        let diff = (&x - &fill).unsqueeze(0);
        let fill = fill.unsqueeze(0);

        // On/off patterns: the first keeps everything, the rest are fair coin flips per superpixel.
        let mut rng = Rng::new(self.seed);
        let mut z = vec![1f32; self.samples * k];
        for v in z.iter_mut().skip(k) {
            *v = (rng.next_u64() >> 63) as f32;
        }
        let cls = Tensor::from_slice(&[class]).to_device(device);
        let mut scores: Vec<f64> = Vec::with_capacity(self.samples);
        for chunk in z.chunks(self.batch * k) {
            let b = (chunk.len() / k) as i64;
            let zb = Tensor::from_slice(chunk).view([b, k as i64]).to_device(device);
            let mask = zb.index_select(1, &labels).view([b, 1, h, w]);
            let mut pert = &diff * mask;
            pert += &fill;
            let out = eval_logits(model, &pert.view([b, c, h, w]))?;
            let s = self.score.select(&out, &cls.expand([b], false));
            scores.extend(Vec::<f64>::try_from(
                s.to_kind(Kind::Double).to_device(tch::Device::Cpu),
            )?);
        }
        let score = scores.first().copied().unwrap_or(f64::NAN);

        // Cosine distance to the all-on pattern: 1 - on / sqrt(on * k) (1 for the all-off pattern),
        // kernel sqrt(exp(-d² / width²)) as lime_image does.
        let kernel: Vec<f64> = z
            .chunks(k)
            .map(|row| {
                let on: f64 = row.iter().map(|&v| v as f64).sum();
                let d = if on > 0.0 {
                    1.0 - on / (on * k as f64).sqrt()
                } else {
                    1.0
                };
                (-(d * d) / (self.kernel_width * self.kernel_width)).exp().sqrt()
            })
            .collect();
        let zx = Tensor::from_slice(&z)
            .view([self.samples as i64, k as i64])
            .to_kind(Kind::Double);
        let fit = weighted_ridge(
            &zx,
            &Tensor::from_slice(&scores),
            &Tensor::from_slice(&kernel),
            self.ridge_alpha,
        )?;
        Ok(LimeExplanation {
            segments,
            weights: fit.coef,
            intercept: fit.intercept,
            r2: fit.r2,
            class,
            score,
            samples: self.samples,
        })
    }

    /// The image hidden superpixels are taken from: `x` `[C, H, W]`, `labels` `[H * W]`.
    fn fill_image(&self, x: &Tensor, labels: &Tensor, k: usize) -> Result<Tensor> {
        let size = x.size();
        let (c, h, w) = (size[0], size[1], size[2]);
        let opts = (Kind::Float, x.device());
        Ok(match self.fill {
            Fill::Constant(v) => Tensor::full([c, h, w], v, opts),
            Fill::Mean => {
                let flat = x.reshape([c, h * w]);
                let sums = Tensor::zeros([c, k as i64], opts).f_index_add(1, labels, &flat)?;
                let counts = Tensor::zeros([k as i64], opts)
                    .f_index_add(0, labels, &Tensor::ones([h * w], opts))?
                    .clamp_min(1.0);
                (sums / counts.unsqueeze(0))
                    .index_select(1, labels)
                    .view([c, h, w])
            }
            Fill::Blur { sigma } => gaussian_blur(x, sigma)?,
        })
    }
}

/// Gaussian blur of `x` `[C, H, W]` with standard deviation `sigma` pixels (kernel radius
/// `ceil(3 sigma)`, borders replicated), channel by channel.
fn gaussian_blur(x: &Tensor, sigma: f64) -> Result<Tensor> {
    let c = x.size()[0];
    let radius = (3.0 * sigma).ceil().max(1.0) as i64;
    let taps: Vec<f32> = (-radius..=radius)
        .map(|i| (-(i * i) as f64 / (2.0 * sigma * sigma)).exp() as f32)
        .collect();
    let total: f32 = taps.iter().sum();
    let taps: Vec<f32> = taps.iter().map(|t| t / total).collect();
    let n = 2 * radius + 1;
    let kernel = Tensor::from_slice(&taps).to_device(x.device());
    let kx = kernel.view([1, 1, 1, n]).repeat([c, 1, 1, 1]);
    let ky = kernel.view([1, 1, n, 1]).repeat([c, 1, 1, 1]);
    let padded = x
        .unsqueeze(0)
        .f_pad([radius, radius, radius, radius], "replicate", None)?;
    let out = padded
        .f_conv2d(&kx, None::<Tensor>, [1, 1], [0, 0], [1, 1], c)?
        .f_conv2d(&ky, None::<Tensor>, [1, 1], [0, 0], [1, 1], c)?;
    Ok(out.squeeze_dim(0))
}

impl Attribution for Lime {
    /// One explanation per image, each with the same seed (so a batch gives what
    /// [`Lime::explain`] gives image by image); `[N, C, H, W]` -> `[N, 1, H, W]`, each pixel holding
    /// its superpixel's weight.
    fn attribute(&self, model: &dyn Model, input: &Tensor, target: &Target) -> Result<Tensor> {
        self.check()?;
        let xs = prepare_input(model, input)?;
        tch::no_grad(|| {
            let logits = eval_logits(model, &xs)?;
            let classes = Vec::<i64>::try_from(target.resolve(model, &logits)?.to_device(tch::Device::Cpu))?;
            let mut maps = Vec::with_capacity(classes.len());
            for (i, &class) in classes.iter().enumerate() {
                let e = self.explain_class(model, &xs.narrow(0, i as i64, 1), class)?;
                maps.push(e.weight_map().to_device(xs.device()));
            }
            Ok(Tensor::stack(&maps, 0))
        })
    }

    fn name(&self) -> String {
        let fill = match self.fill {
            Fill::Mean => "mean fill".to_string(),
            Fill::Constant(v) => format!("fill {v}"),
            Fill::Blur { sigma } => format!("blur fill sigma {sigma}"),
        };
        let seg = match &self.segments {
            Some(s) => format!("{} fixed superpixels", s.count()),
            None => format!("SLIC {}", self.segmentation.segments),
        };
        format!("LIME ({} samples, {seg}, {fill})", self.samples)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::attribution::test_models::linear_model;
    use crate::models::Staged;
    use tch::Device;

    /// Quadrant labels of a `2h x 2w` image: 0 top-left, 1 top-right, 2 bottom-left, 3 bottom-right.
    fn quadrant_segments(h: usize, w: usize) -> Segments {
        let labels = (0..4 * h * w)
            .map(|p| {
                let (y, x) = (p / (2 * w), p % (2 * w));
                ((y / h) * 2 + x / w) as u32
            })
            .collect();
        Segments::from_labels(labels, 2 * h, 2 * w).unwrap()
    }

    /// Weights making logit 0 = sum_r beta_r * mean over quadrant r (all channels).
    fn region_weights(segs: &Segments, c: i64, beta: &[f64]) -> Tensor {
        let sizes = segs.sizes();
        let per_pixel: Vec<f32> = segs
            .labels()
            .iter()
            .map(|&l| (beta[l as usize] / (sizes[l as usize] as f64 * c as f64)) as f32)
            .collect();
        let (h, w) = (segs.height() as i64, segs.width() as i64);
        Tensor::from_slice(&per_pixel).view([1, h, w]).repeat([c, 1, 1])
    }

    fn quadrant_image(c: i64) -> Tensor {
        // Different mean intensity per quadrant so the logit contributions differ.
        let segs = quadrant_segments(4, 4);
        let v: Vec<f32> = segs.labels().iter().map(|&l| 0.2 + 0.2 * l as f32).collect();
        Tensor::from_slice(&v).view([1, 1, 8, 8]).repeat([1, c, 1, 1])
    }

    #[test]
    fn exactly_linear_logit_is_recovered_exactly() {
        let segs = quadrant_segments(4, 4);
        let beta = [2.0, -1.0, 0.5, -3.0];
        let model = linear_model(region_weights(&segs, 3, &beta));
        let image = quadrant_image(3);
        let lime = Lime {
            samples: 300,
            segments: Some(segs),
            fill: Fill::Constant(0.0),
            score: Score::Logit,
            ridge_alpha: 0.0,
            ..Default::default()
        };
        let e = lime.explain(&model, &image, &Target::Class(0)).unwrap();
        // Hiding quadrant r (filling it with 0) removes beta_r * mean_r, mean_r = 0.2 + 0.2 r.
        for (r, b) in beta.iter().enumerate() {
            let expect = b * (0.2 + 0.2 * r as f64);
            assert!(
                (e.weights[r] - expect).abs() < 1e-5,
                "{r}: {} vs {expect}",
                e.weights[r]
            );
        }
        assert!(e.intercept.abs() < 1e-5);
        assert!((e.r2 - 1.0).abs() < 1e-9);
        let full: f64 = beta
            .iter()
            .enumerate()
            .map(|(r, b)| b * (0.2 + 0.2 * r as f64))
            .sum();
        assert!((e.score - full).abs() < 1e-5);
        assert_eq!(e.class, 0);
    }

    #[test]
    fn probability_surrogate_keeps_order_and_signs() {
        let segs = quadrant_segments(4, 4);
        let beta = [4.0, -2.0, 1.0, -6.0];
        let model = linear_model(region_weights(&segs, 3, &beta));
        let image = quadrant_image(3);
        // Effective contributions beta_r * mean_r: 0.8, -0.8, 0.6, -4.8. Use distinct ones.
        // Constant fill: a flat quadrant filled with its own mean would not change at all.
        let lime = Lime {
            samples: 500,
            segments: Some(segs),
            fill: Fill::Constant(0.0),
            seed: 3,
            ..Default::default()
        };
        let e = lime.explain(&model, &image, &Target::Class(0)).unwrap();
        let contrib: Vec<f64> = beta
            .iter()
            .enumerate()
            .map(|(r, b)| b * (0.2 + 0.2 * r as f64))
            .collect();
        for (r, (w, c)) in e.weights.iter().zip(&contrib).enumerate() {
            assert_eq!(*w > 0.0, *c > 0.0, "sign of {r}: {:?}", e.weights);
        }
        let order = |v: &[f64]| {
            let mut idx: Vec<usize> = (0..v.len()).collect();
            idx.sort_by(|&a, &b| v[a].total_cmp(&v[b]));
            idx
        };
        // 0.8 and -0.8 tie in magnitude; order by signed value is unique: 3, 1, 2, 0.
        assert_eq!(order(&e.weights), order(&contrib));
        assert!(e.r2 > 0.5 && e.r2 <= 1.0, "{}", e.r2);
    }

    #[test]
    fn slic_path_finds_the_quadrants() {
        // Flat-coloured quadrants, SLIC asked for 4 segments, model linear in the quadrants' means.
        let colours = [
            [0.9f32, 0.1, 0.1],
            [0.1, 0.8, 0.1],
            [0.1, 0.1, 0.9],
            [0.9, 0.9, 0.1],
        ];
        let segs = quadrant_segments(6, 6);
        let mut v = vec![0f32; 3 * 144];
        for (p, &l) in segs.labels().iter().enumerate() {
            for ch in 0..3 {
                v[ch * 144 + p] = colours[l as usize][ch];
            }
        }
        let image = Tensor::from_slice(&v).view([3, 12, 12]);
        let beta = [1.0, -2.0, 3.0, -4.0];
        let model = linear_model(region_weights(&segs, 3, &beta));
        let lime = Lime {
            samples: 200,
            segmentation: Slic {
                segments: 4,
                ..Default::default()
            },
            fill: Fill::Constant(0.0),
            score: Score::Logit,
            ridge_alpha: 0.0,
            ..Default::default()
        };
        let e = lime.explain(&model, &image, &Target::Class(0)).unwrap();
        assert_eq!(e.segments.count(), 4);
        let map = e.weight_map();
        // Pixel (0, 0) is in quadrant 0, (11, 11) in quadrant 3: their weights are beta_r * mean_r.
        let mean = |r: usize| colours[r].iter().sum::<f32>() as f64 / 3.0;
        assert!((map.double_value(&[0, 0, 0]) - beta[0] * mean(0)).abs() < 1e-5);
        assert!((map.double_value(&[0, 11, 11]) - beta[3] * mean(3)).abs() < 1e-5);
        let attr = lime
            .attribute(&model, &image.unsqueeze(0), &Target::Class(0))
            .unwrap();
        assert!(attr.allclose(&map.unsqueeze(0), 1e-6, 1e-6, false));
    }

    #[test]
    fn same_seed_same_result_other_seed_other_samples() {
        let vs = tch::nn::VarStore::new(Device::Cpu);
        tch::manual_seed(0);
        let model = Staged::new(3, 3, Device::Cpu)
            .leaf(
                "conv",
                tch::nn::conv2d(vs.root() / "conv", 3, 4, 3, Default::default()),
            )
            .leaf("relu", tch::nn::func(|xs| xs.relu()))
            .leaf(
                "pool",
                tch::nn::func(|xs| xs.adaptive_avg_pool2d([1, 1]).flatten(1, -1)),
            )
            .leaf("fc", tch::nn::linear(vs.root() / "fc", 4, 3, Default::default()));
        let image = Rng::new(9).uniform_tensor(&[3, 16, 16], Device::Cpu);
        let lime = Lime {
            samples: 60,
            batch: 7,
            segmentation: Slic {
                segments: 8,
                ..Default::default()
            },
            ..Default::default()
        };
        let a = lime.explain(&model, &image, &Target::Class(1)).unwrap();
        let b = lime.explain(&model, &image, &Target::Class(1)).unwrap();
        assert_eq!(a, b);
        let c = Lime {
            seed: 1,
            ..lime.clone()
        }
        .explain(&model, &image, &Target::Class(1))
        .unwrap();
        assert_eq!(a.segments, c.segments);
        assert_ne!(a.weights, c.weights);
        // Batch size does not change the result (up to float32 rounding of batched convolutions).
        let d = Lime {
            batch: 1000,
            ..lime.clone()
        }
        .explain(&model, &image, &Target::Class(1))
        .unwrap();
        for (x, y) in a.weights.iter().zip(&d.weights) {
            assert!((x - y).abs() < 1e-5, "{x} vs {y}");
        }
    }

    #[test]
    fn flat_image_gives_a_valid_explanation() {
        // A single-colour image under mean fill: every perturbation is the image itself, so the
        // surrogate is flat (zero weights), fits exactly (r2 = 1), and the intercept is the score.
        let model = linear_model(Tensor::ones([3, 8, 8], (Kind::Float, Device::Cpu)));
        let image = Tensor::full([3, 8, 8], 0.5, (Kind::Float, Device::Cpu));
        let lime = Lime {
            samples: 40,
            segmentation: Slic {
                segments: 4,
                ..Default::default()
            },
            ..Default::default()
        };
        let e = lime.explain(&model, &image, &Target::Class(0)).unwrap();
        assert_eq!(e.segments.count(), 4);
        assert!(e.weights.iter().all(|w| w.abs() < 1e-9), "{:?}", e.weights);
        assert!((e.intercept - e.score).abs() < 1e-9 && e.r2 == 1.0);
        // One superpixel for a tiny image asked for 50: still an explanation.
        let tiny = Tensor::full([3, 1, 1], 0.5, (Kind::Float, Device::Cpu));
        let m1 = linear_model(Tensor::ones([3, 1, 1], (Kind::Float, Device::Cpu)));
        // A wide kernel weights on and off samples alike, so the penalty only shrinks a little.
        let e = Lime {
            samples: 20,
            fill: Fill::Constant(0.0),
            score: Score::Logit,
            kernel_width: 100.0,
            ..Default::default()
        }
        .explain(&m1, &tiny, &Target::Class(0))
        .unwrap();
        assert_eq!(e.weights.len(), 1);
        assert!(e.weights[0] > 1.0 && e.weights[0] < 1.5, "{:?}", e.weights); // shrunk from 1.5 by the penalty
    }

    #[test]
    fn fills_are_what_they_say() {
        let x = Tensor::from_slice(&[1.0f32, 3.0, 10.0, 20.0]).view([1, 2, 2]);
        let labels = Tensor::from_slice(&[0i64, 0, 1, 1]);
        let mean = Lime {
            fill: Fill::Mean,
            ..Default::default()
        }
        .fill_image(&x, &labels, 2)
        .unwrap();
        assert_eq!(
            Vec::<f32>::try_from(mean.flatten(0, -1)).unwrap(),
            [2.0, 2.0, 15.0, 15.0]
        );
        let c = Lime {
            fill: Fill::Constant(0.25),
            ..Default::default()
        }
        .fill_image(&x, &labels, 2)
        .unwrap();
        assert_eq!(Vec::<f32>::try_from(c.flatten(0, -1)).unwrap(), [0.25; 4]);
        // Blur keeps a flat image flat and the mean of a symmetric one.
        let flat = Tensor::full([2, 5, 5], 0.7, (Kind::Float, Device::Cpu));
        let b = gaussian_blur(&flat, 1.0).unwrap();
        assert!(b.allclose(&flat, 1e-6, 1e-6, false));
        let mut spike = vec![0f32; 25];
        spike[12] = 1.0;
        let s = gaussian_blur(&Tensor::from_slice(&spike).view([1, 5, 5]), 0.5).unwrap();
        assert!(s.double_value(&[0, 2, 2]) < 1.0 && s.double_value(&[0, 2, 1]) > 0.0);
        assert!((s.sum(Kind::Float).double_value(&[]) - 1.0).abs() < 1e-5);
    }

    #[test]
    fn bad_settings_are_errors() {
        let model = linear_model(Tensor::ones([3, 8, 8], (Kind::Float, Device::Cpu)));
        let image = Tensor::rand([3, 8, 8], (Kind::Float, Device::Cpu));
        let t = Target::Class(0);
        let err = |l: Lime| l.explain(&model, &image, &t).unwrap_err().to_string();
        assert!(err(Lime {
            samples: 1,
            ..Default::default()
        })
        .contains("samples"));
        assert!(err(Lime {
            batch: 0,
            ..Default::default()
        })
        .contains("batch"));
        assert!(err(Lime {
            kernel_width: 0.0,
            ..Default::default()
        })
        .contains("kernel_width"));
        assert!(err(Lime {
            ridge_alpha: -1.0,
            ..Default::default()
        })
        .contains("ridge_alpha"));
        assert!(err(Lime {
            fill: Fill::Blur { sigma: 0.0 },
            ..Default::default()
        })
        .contains("sigma"));
        let seg = Segments::from_labels(vec![0; 16], 4, 4).unwrap();
        assert!(err(Lime {
            segments: Some(seg),
            ..Default::default()
        })
        .contains("4x4"));
        assert!(Lime::default()
            .explain(&model, &image, &Target::Class(5))
            .is_err());
        let batch = Tensor::rand([2, 3, 8, 8], (Kind::Float, Device::Cpu));
        assert!(Lime::default().explain(&model, &batch, &t).is_err());
        assert!(Lime::default()
            .explain(&model, &image, &Target::PerSample(vec![0, 1]))
            .is_err());
    }
}
