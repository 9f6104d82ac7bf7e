//! Seeded augmentation and normalisation of image batches `[N, C, H, W]`.
//!
//! Each transform is a small config struct implementing [`Transform`]; [`Compose`] chains them.
//! Random choices are drawn from the caller's [`Rng`] (one draw sequence per call, per image), never
//! from libtorch's global generator, so the same seed gives the same batch on any device. The random
//! numbers are drawn on the CPU and moved to the batch's device; the pixel work runs there.
//!
//! The augmentations follow torchvision's: `RandomCrop(size, padding)` with zero padding,
//! `RandomHorizontalFlip(p)` and `ColorJitter(brightness, contrast, saturation)` (applied in that
//! fixed order here, with the same formulas: brightness scales, contrast blends with the image's
//! mean gray level, saturation blends with the grayscale image; results are clamped to `[0, 1]`).
//! Geometric transforms move only the images; object masks are not transformed with them.

use crate::rng::Rng;
use crate::{Error, Result};
use tch::{Kind, Tensor};

/// One step of a pipeline on a batch.
pub trait Transform {
    /// Transforms `xs` `[N, C, H, W]` (float) and returns a batch of the same shape, drawing any
    /// random choice from `rng`.
    fn apply(&self, xs: &Tensor, rng: &mut Rng) -> Result<Tensor>;
}

fn check_batch(xs: &Tensor) -> Result<(i64, i64, i64, i64)> {
    match xs.size()[..] {
        [n, c, h, w] => Ok((n, c, h, w)),
        _ => Err(Error::shape("xs", "[N, C, H, W]", &xs.size())),
    }
}

/// `(x - mean[c]) / std[c]` per channel.
#[derive(Debug, Clone, PartialEq)]
pub struct Normalize {
    /// One mean per channel.
    pub mean: Vec<f64>,
    /// One standard deviation per channel, each positive.
    pub std: Vec<f64>,
}

impl Normalize {
    /// A normalisation after checking that `mean` and `std` have the same, non-zero length and every
    /// `std` is positive and finite.
    ///
    /// ```
    /// use cnn_explain::data::transforms::Normalize;
    /// assert!(Normalize::new(vec![0.5], vec![0.0]).is_err());
    /// ```
    pub fn new(mean: Vec<f64>, std: Vec<f64>) -> Result<Self> {
        let n = Normalize { mean, std };
        n.validate()?;
        Ok(n)
    }

    /// ImageNet's channel statistics, as torchvision's pretrained models expect:
    /// mean `[0.485, 0.456, 0.406]`, std `[0.229, 0.224, 0.225]`.
    ///
    /// ```
    /// use cnn_explain::data::transforms::{Normalize, Transform};
    /// use cnn_explain::rng::Rng;
    /// let xs = tch::Tensor::full([1, 3, 2, 2], 0.485, (tch::Kind::Float, tch::Device::Cpu));
    /// let ys = Normalize::imagenet().apply(&xs, &mut Rng::new(0))?;
    /// assert!(ys.double_value(&[0, 0, 0, 0]).abs() < 1e-6);
    /// # Ok::<(), cnn_explain::Error>(())
    /// ```
    pub fn imagenet() -> Self {
        Normalize {
            mean: vec![0.485, 0.456, 0.406],
            std: vec![0.229, 0.224, 0.225],
        }
    }

    fn validate(&self) -> Result<()> {
        if self.mean.is_empty() || self.mean.len() != self.std.len() {
            return Err(Error::invalid(
                "mean/std",
                format!(
                    "need one mean and one std per channel, got {} and {}",
                    self.mean.len(),
                    self.std.len()
                ),
            ));
        }
        if let Some(s) = self.std.iter().find(|s| !(s.is_finite() && **s > 0.0)) {
            return Err(Error::invalid("std", format!("{s} is not a positive number")));
        }
        Ok(())
    }

    fn stats(&self, xs: &Tensor) -> Result<(Tensor, Tensor)> {
        self.validate()?;
        let (_, c, _, _) = check_batch(xs)?;
        if c != self.mean.len() as i64 {
            return Err(Error::shape(
                "xs",
                format!("[N, {}, H, W] (one channel per mean)", self.mean.len()),
                &xs.size(),
            ));
        }
        let opts = (Kind::Float, xs.device());
        let m = Tensor::from_slice(&self.mean)
            .to_kind(Kind::Float)
            .to_device(opts.1);
        let s = Tensor::from_slice(&self.std)
            .to_kind(Kind::Float)
            .to_device(opts.1);
        Ok((m.reshape([1, c, 1, 1]), s.reshape([1, c, 1, 1])))
    }

    /// The inverse, `x * std[c] + mean[c]`: back to pixel values for display.
    ///
    /// ```
    /// use cnn_explain::data::transforms::{Normalize, Transform};
    /// use cnn_explain::rng::Rng;
    /// let xs = tch::Tensor::rand([2, 3, 4, 4], (tch::Kind::Float, tch::Device::Cpu));
    /// let n = Normalize::imagenet();
    /// let back = n.invert(&n.apply(&xs, &mut Rng::new(0))?)?;
    /// assert!(back.allclose(&xs, 1e-5, 1e-6, false));
    /// # Ok::<(), cnn_explain::Error>(())
    /// ```
    pub fn invert(&self, xs: &Tensor) -> Result<Tensor> {
        let (m, s) = self.stats(xs)?;
        Ok(xs.to_kind(Kind::Float).f_mul(&s)?.f_add(&m)?)
    }
}

impl Transform for Normalize {
    fn apply(&self, xs: &Tensor, _rng: &mut Rng) -> Result<Tensor> {
        let (m, s) = self.stats(xs)?;
        Ok(xs.to_kind(Kind::Float).f_sub(&m)?.f_div(&s)?)
    }
}

/// Pads every side by `padding` zeros, then cuts an `H x W` window at a random offset per image
/// (torchvision's `RandomCrop(size=(H, W), padding)`, the usual CIFAR augmentation with 4).
#[derive(Debug, Clone, PartialEq)]
pub struct RandomCrop {
    /// Zero pixels added on each side before cropping.
    pub padding: i64,
}

impl Default for RandomCrop {
    fn default() -> Self {
        RandomCrop { padding: 4 }
    }
}

impl Transform for RandomCrop {
    /// ```
    /// use cnn_explain::data::transforms::{RandomCrop, Transform};
    /// use cnn_explain::rng::Rng;
    /// let xs = tch::Tensor::ones([4, 3, 8, 8], (tch::Kind::Float, tch::Device::Cpu));
    /// let ys = RandomCrop { padding: 2 }.apply(&xs, &mut Rng::new(1))?;
    /// assert_eq!(ys.size(), [4, 3, 8, 8]);
    /// # Ok::<(), cnn_explain::Error>(())
    /// ```
    fn apply(&self, xs: &Tensor, rng: &mut Rng) -> Result<Tensor> {
        let (n, _, h, w) = check_batch(xs)?;
        if self.padding < 0 {
            return Err(Error::invalid("padding", "must be 0 or more"));
        }
        let p = self.padding;
        if p == 0 || n == 0 {
            return Ok(xs.shallow_clone());
        }
        let padded = xs.f_constant_pad_nd([p, p, p, p])?;
        let span = 2 * p as u64 + 1;
        let crops: Vec<Tensor> = (0..n)
            .map(|i| {
                let (dy, dx) = (rng.below(span) as i64, rng.below(span) as i64);
                padded.get(i).narrow(1, dy, h).narrow(2, dx, w)
            })
            .collect();
        Ok(Tensor::f_stack(&crops, 0)?)
    }
}

/// Mirrors each image left-right with probability `p`.
#[derive(Debug, Clone, PartialEq)]
pub struct RandomHorizontalFlip {
    /// Probability of flipping an image, in `[0, 1]`.
    pub p: f64,
}

impl Default for RandomHorizontalFlip {
    fn default() -> Self {
        RandomHorizontalFlip { p: 0.5 }
    }
}

impl Transform for RandomHorizontalFlip {
    /// ```
    /// use cnn_explain::data::transforms::{RandomHorizontalFlip, Transform};
    /// use cnn_explain::rng::Rng;
    /// let xs = tch::Tensor::arange(4, (tch::Kind::Float, tch::Device::Cpu)).reshape([1, 1, 1, 4]);
    /// let ys = RandomHorizontalFlip { p: 1.0 }.apply(&xs, &mut Rng::new(0))?;
    /// assert_eq!(ys.double_value(&[0, 0, 0, 0]), 3.0);
    /// # Ok::<(), cnn_explain::Error>(())
    /// ```
    fn apply(&self, xs: &Tensor, rng: &mut Rng) -> Result<Tensor> {
        let (n, _, _, _) = check_batch(xs)?;
        if !(0.0..=1.0).contains(&self.p) {
            return Err(Error::invalid("p", format!("{} is outside [0, 1]", self.p)));
        }
        let flip: Vec<bool> = (0..n).map(|_| rng.bernoulli(self.p)).collect();
        let cond = Tensor::from_slice(&flip)
            .to_device(xs.device())
            .reshape([n, 1, 1, 1]);
        Ok(xs.f_flip([3])?.f_where_self(&cond, xs)?)
    }
}

/// Random brightness, contrast and saturation changes per image, each factor drawn uniformly from
/// `[1 - amount, 1 + amount]` (torchvision's `ColorJitter` formulas, fixed order, see the module
/// docs). Needs RGB batches (`C = 3`) unless `saturation` and `contrast` are 0.
#[derive(Debug, Clone, PartialEq)]
pub struct ColorJitter {
    /// Brightness amount in `[0, 1]`: the image is multiplied by the factor.
    pub brightness: f64,
    /// Contrast amount in `[0, 1]`: blends the image with its mean gray level.
    pub contrast: f64,
    /// Saturation amount in `[0, 1]`: blends the image with its grayscale version.
    pub saturation: f64,
}

impl Default for ColorJitter {
    fn default() -> Self {
        ColorJitter {
            brightness: 0.1,
            contrast: 0.1,
            saturation: 0.1,
        }
    }
}

/// ITU-R 601 luma of `[N, 3, H, W]` as `[N, 1, H, W]` (torchvision's `rgb_to_grayscale`).
fn gray(xs: &Tensor) -> Result<Tensor> {
    let w = Tensor::from_slice(&[0.2989f32, 0.587, 0.114])
        .to_device(xs.device())
        .reshape([1, 3, 1, 1]);
    Ok(xs
        .f_mul(&w)?
        .f_sum_dim_intlist([1].as_slice(), true, Kind::Float)?)
}

impl Transform for ColorJitter {
    /// ```
    /// use cnn_explain::data::transforms::{ColorJitter, Transform};
    /// use cnn_explain::rng::Rng;
    /// let xs = tch::Tensor::full([2, 3, 4, 4], 0.5, (tch::Kind::Float, tch::Device::Cpu));
    /// let jitter = ColorJitter { brightness: 0.2, contrast: 0.0, saturation: 0.0 };
    /// let ys = jitter.apply(&xs, &mut Rng::new(3))?;
    /// let v = ys.double_value(&[0, 0, 0, 0]);
    /// assert!((0.4..=0.6).contains(&v));
    /// # Ok::<(), cnn_explain::Error>(())
    /// ```
    fn apply(&self, xs: &Tensor, rng: &mut Rng) -> Result<Tensor> {
        let (n, c, _, _) = check_batch(xs)?;
        for (name, v) in [
            ("brightness", self.brightness),
            ("contrast", self.contrast),
            ("saturation", self.saturation),
        ] {
            if !(0.0..=1.0).contains(&v) {
                return Err(Error::invalid(name, format!("{v} is outside [0, 1]")));
            }
        }
        if c != 3 && (self.contrast > 0.0 || self.saturation > 0.0) {
            return Err(Error::shape(
                "xs",
                "[N, 3, H, W] (contrast and saturation jitter need RGB)",
                &xs.size(),
            ));
        }
        let mut factors = |amount: f64| -> Tensor {
            let f: Vec<f32> = (0..n)
                .map(|_| rng.range(1.0 - amount, 1.0 + amount) as f32)
                .collect();
            Tensor::from_slice(&f)
                .to_device(xs.device())
                .reshape([n, 1, 1, 1])
        };
        let (fb, fc, fs) = (
            factors(self.brightness),
            factors(self.contrast),
            factors(self.saturation),
        );
        let mut out = xs.to_kind(Kind::Float);
        if self.brightness > 0.0 {
            out = out.f_mul(&fb)?.f_clamp(0.0, 1.0)?;
        }
        if self.contrast > 0.0 {
            let mean = gray(&out)?.f_mean_dim([1, 2, 3].as_slice(), true, Kind::Float)?;
            out = blend(&out, &mean, &fc)?;
        }
        if self.saturation > 0.0 {
            let g = gray(&out)?;
            out = blend(&out, &g, &fs)?;
        }
        Ok(out)
    }
}

/// `clamp(f * a + (1 - f) * b, 0, 1)`, torchvision's `_blend`.
fn blend(a: &Tensor, b: &Tensor, f: &Tensor) -> Result<Tensor> {
    let one_minus = f.f_neg()?.f_add_scalar(1.0)?;
    Ok(a.f_mul(f)?.f_add(&b.f_mul(&one_minus)?)?.f_clamp(0.0, 1.0)?)
}

/// Applies transforms in order, all drawing from the same generator.
///
/// ```
/// use cnn_explain::data::transforms::*;
/// use cnn_explain::rng::Rng;
/// let augment = Compose(vec![
///     Box::new(RandomCrop { padding: 4 }),
///     Box::new(RandomHorizontalFlip::default()),
///     Box::new(ColorJitter::default()),
///     Box::new(Normalize::imagenet()),
/// ]);
/// let xs = tch::Tensor::rand([8, 3, 32, 32], (tch::Kind::Float, tch::Device::Cpu));
/// let a = augment.apply(&xs, &mut Rng::new(5))?;
/// let b = augment.apply(&xs, &mut Rng::new(5))?;
/// assert!(a.equal(&b));
/// # Ok::<(), cnn_explain::Error>(())
/// ```
pub struct Compose(pub Vec<Box<dyn Transform + Send + Sync>>);

impl std::fmt::Debug for Compose {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Compose({} transforms)", self.0.len())
    }
}

impl Transform for Compose {
    fn apply(&self, xs: &Tensor, rng: &mut Rng) -> Result<Tensor> {
        let mut out = xs.shallow_clone();
        for t in &self.0 {
            out = t.apply(&out, rng)?;
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tch::Device;

    fn ramp(n: i64, c: i64, h: i64, w: i64) -> Tensor {
        Tensor::arange(n * c * h * w, (Kind::Float, Device::Cpu)).reshape([n, c, h, w])
    }

    #[test]
    fn normalize_by_hand() {
        let xs = Tensor::from_slice(&[0.5f32, 1.0, 0.25, 0.0]).reshape([1, 2, 1, 2]);
        let n = Normalize::new(vec![0.5, 0.25], vec![0.5, 0.25]).unwrap();
        let ys = n.apply(&xs, &mut Rng::new(0)).unwrap();
        assert_eq!(
            Vec::<f32>::try_from(&ys.reshape([-1])).unwrap(),
            [0.0, 1.0, 0.0, -1.0]
        );
        assert!(n
            .apply(
                &Tensor::zeros([1, 3, 1, 1], (Kind::Float, Device::Cpu)),
                &mut Rng::new(0)
            )
            .is_err());
        assert!(n
            .apply(
                &Tensor::zeros([2, 1, 1], (Kind::Float, Device::Cpu)),
                &mut Rng::new(0)
            )
            .is_err());
        assert!(Normalize::new(vec![0.1, 0.2], vec![1.0]).is_err());
        assert!(Normalize {
            mean: vec![0.0],
            std: vec![-1.0]
        }
        .apply(
            &Tensor::zeros([1, 1, 1, 1], (Kind::Float, Device::Cpu)),
            &mut Rng::new(0)
        )
        .is_err());
    }

    #[test]
    fn random_crop_is_a_shifted_window_of_the_padded_image() {
        let xs = ramp(6, 2, 5, 5) + 1.0; // no zeros inside the image
        let p = 2;
        let ys = RandomCrop { padding: p }.apply(&xs, &mut Rng::new(11)).unwrap();
        assert_eq!(ys.size(), [6, 2, 5, 5]);
        // Replay the generator: each output equals the padded image at the drawn offset.
        let mut r = Rng::new(11);
        let padded = xs.constant_pad_nd([p, p, p, p]);
        let mut offsets = vec![];
        for i in 0..6 {
            let (dy, dx) = (r.below(5) as i64, r.below(5) as i64);
            offsets.push((dy, dx));
            let want = padded.get(i).narrow(1, dy, 5).narrow(2, dx, 5);
            assert!(ys.get(i).equal(&want));
            // A pixel that stays inside: x[i, 1, 2, 2] moves to (2 + p - dy, 2 + p - dx).
            assert_eq!(
                ys.double_value(&[i, 1, 2 + p - dy, 2 + p - dx]),
                xs.double_value(&[i, 1, 2, 2])
            );
        }
        assert!(offsets.iter().any(|o| *o != offsets[0]), "offsets never vary");
        assert!(RandomCrop { padding: -1 }.apply(&xs, &mut Rng::new(0)).is_err());
    }

    #[test]
    fn flip_mirrors_the_chosen_images_only() {
        let xs = ramp(40, 1, 2, 3);
        let ys = RandomHorizontalFlip { p: 0.5 }
            .apply(&xs, &mut Rng::new(4))
            .unwrap();
        let mut r = Rng::new(4);
        let mut flipped = 0;
        for i in 0..40 {
            if r.bernoulli(0.5) {
                flipped += 1;
                assert_eq!(ys.double_value(&[i, 0, 1, 0]), xs.double_value(&[i, 0, 1, 2]));
            } else {
                assert!(ys.get(i).equal(&xs.get(i)));
            }
        }
        assert!((10..30).contains(&flipped));
        let none = RandomHorizontalFlip { p: 0.0 }
            .apply(&xs, &mut Rng::new(4))
            .unwrap();
        assert!(none.equal(&xs));
        assert!(RandomHorizontalFlip { p: 2.0 }
            .apply(&xs, &mut Rng::new(4))
            .is_err());
    }

    #[test]
    fn color_jitter_formulas() {
        // One pixel (0.2, 0.4, 0.6): gray = 0.2989*0.2 + 0.587*0.4 + 0.114*0.6.
        let xs = Tensor::from_slice(&[0.2f32, 0.4, 0.6]).reshape([1, 3, 1, 1]);
        let cj = ColorJitter {
            brightness: 0.3,
            contrast: 0.0,
            saturation: 0.5,
        };
        let ys = cj.apply(&xs, &mut Rng::new(2)).unwrap();
        let mut r = Rng::new(2);
        let fb = r.range(0.7, 1.3) as f32;
        let _fc = r.range(1.0, 1.0);
        let fs = r.range(0.5, 1.5) as f32;
        let b = [0.2 * fb, 0.4 * fb, 0.6 * fb].map(|v| v.clamp(0.0, 1.0));
        let g = 0.2989 * b[0] + 0.587 * b[1] + 0.114 * b[2];
        for (c, bc) in b.iter().enumerate() {
            let want = (fs * bc + (1.0 - fs) * g).clamp(0.0, 1.0);
            let got = ys.double_value(&[0, c as i64, 0, 0]) as f32;
            assert!((got - want).abs() < 1e-6, "channel {c}: {got} vs {want}");
        }
        // Contrast around the mean gray level keeps that mean (up to the luma weights summing to
        // 0.9999 rather than 1).
        let xs = Tensor::from_slice(&[0.3f32, 0.5, 0.3, 0.5, 0.3, 0.5]).reshape([1, 3, 1, 2]);
        let cj = ColorJitter {
            brightness: 0.0,
            contrast: 0.5,
            saturation: 0.0,
        };
        let ys = cj.apply(&xs, &mut Rng::new(8)).unwrap();
        let m = |t: &Tensor| gray(t).unwrap().mean(Kind::Float).double_value(&[]);
        assert!((m(&ys) - m(&xs)).abs() < 1e-4);
        assert!(!ys.equal(&xs));
        let gray1 = Tensor::zeros([1, 1, 2, 2], (Kind::Float, Device::Cpu));
        assert!(ColorJitter::default().apply(&gray1, &mut Rng::new(0)).is_err());
        assert!(ColorJitter {
            brightness: 0.2,
            contrast: 0.0,
            saturation: 0.0
        }
        .apply(&gray1, &mut Rng::new(0))
        .is_ok());
        assert!(ColorJitter {
            brightness: 1.5,
            ..Default::default()
        }
        .apply(&xs, &mut Rng::new(0))
        .is_err());
    }

    #[test]
    fn compose_is_seeded() {
        let xs = Tensor::rand([4, 3, 8, 8], (Kind::Float, Device::Cpu));
        let c = Compose(vec![
            Box::new(RandomCrop { padding: 2 }),
            Box::new(RandomHorizontalFlip::default()),
            Box::new(ColorJitter::default()),
        ]);
        let a = c.apply(&xs, &mut Rng::new(1)).unwrap();
        assert!(a.equal(&c.apply(&xs, &mut Rng::new(1)).unwrap()));
        assert!(!a.equal(&c.apply(&xs, &mut Rng::new(2)).unwrap()));
        assert!(c
            .apply(
                &Tensor::zeros([3, 8, 8], (Kind::Float, Device::Cpu)),
                &mut Rng::new(1)
            )
            .is_err());
    }
}
