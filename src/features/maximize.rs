//! Activation maximisation: an input optimised to excite one channel or one class.
//!
//! Erhan, Bengio, Courville and Vincent (2009), "Visualizing Higher-Layer Features of a Deep
//! Network": gradient ascent on the input. The regularisers follow Yosinski et al. (2015) and Olah,
//! Mordvintsev and Schubert (2017), "Feature Visualization" (Distill): random translations (jitter)
//! each step so the pattern must work anywhere, a periodic Gaussian blur against high-frequency
//! noise, and a small L2 decay.

use super::{gaussian_blur, to_rgb_image};
use crate::models::Model;
use crate::rng::Rng;
use crate::{Error, Result};
use image::RgbImage;
use tch::{Kind, Tensor};

/// What [`ActivationMaximization`] maximises.
///
/// ```
/// use cnn_explain::features::Objective;
/// let o = Objective::Channel { layer: "layer1".into(), channel: 3 };
/// assert_ne!(o, Objective::Class(3));
/// assert_eq!(Objective::default(), Objective::Class(0));
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Objective {
    /// The mean over its map of channel `channel` at `layer` (for a flat layer `[1, K]`, the
    /// unit's value): Olah et al.'s "channel" objective.
    Channel {
        /// Layer name, one of [`Model::layers`].
        layer: String,
        /// Channel index in `0..K`.
        channel: i64,
    },
    /// The logit (pre-softmax score) of this class, as Simonyan et al. (2014) recommend: the
    /// softmax probability can rise by lowering the other classes instead.
    Class(i64),
}

impl Default for Objective {
    fn default() -> Self {
        Objective::Class(0)
    }
}

/// How the optimised image is kept in `[0, 1]`.
///
/// ```
/// use cnn_explain::features::Parametrization;
/// assert_eq!(Parametrization::default(), Parametrization::Clamp);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Parametrization {
    /// Optimise the pixels directly and clamp them to `[0, 1]` after every step (Erhan et al.'s
    /// bounded input; projected gradient ascent). Pixels can reach the bounds exactly, so the
    /// optimum of a linear objective is found exactly.
    #[default]
    Clamp,
    /// Optimise unconstrained values `z` with image `sigmoid(z)` (as Olah et al.'s Lucid does):
    /// smooth, never exactly 0 or 1; blur then acts on `z`.
    Sigmoid,
}

/// Activation maximisation with Adam on the input only.
///
/// Each step: draw a translation `(dy, dx)` uniformly in `[-jitter, jitter]` from the seeded
/// [`Rng`], roll the image by it (wrapping around), evaluate the objective, subtract
/// `l2_decay * ||x - 0.5||^2`, take the gradient with respect to the image parameter alone
/// (`Tensor::run_backward`, so the model's parameters and their `.grad` are untouched), take an
/// Adam ascent step (beta1 0.9, beta2 0.999, eps 1e-8) of size `lr`, clamp (with
/// [`Parametrization::Clamp`]), and every `blur_every` steps blur the parameter with a Gaussian of
/// `blur_sigma` pixels. The start is mid grey plus `init_std` times seeded normal noise. Same seed,
/// same image.
///
/// ```
/// use cnn_explain::features::{ActivationMaximization, Objective};
/// use cnn_explain::models::Staged;
/// use tch::{nn, Device, Kind, Tensor};
///
/// // A linear classifier on 1x2x2 images: class 0 likes the left column, dislikes the right.
/// let w = Tensor::from_slice(&[1.0f32, -1.0, 1.0, -1.0]).reshape([1, 1, 2, 2]);
/// let model = Staged::new(1, 1, Device::Cpu)
///     .leaf("fc", nn::func(move |xs| (xs * &w).sum_dim_intlist(&[1i64, 2, 3][..], false, Kind::Float).unsqueeze(1)));
/// let am = ActivationMaximization {
///     objective: Objective::Class(0),
///     steps: 30,
///     jitter: 0,
///     blur_every: 0,
///     image_size: Some((2, 2)),
///     ..Default::default()
/// };
/// let out = am.run(&model)?;
/// assert_eq!(Vec::<f32>::try_from(&out.image.reshape([-1])).unwrap(), [1.0, 0.0, 1.0, 0.0]);
/// assert_eq!(out.final_objective, 2.0);
/// assert!(out.trajectory.last().unwrap() > &out.trajectory[0]);
/// # Ok::<(), cnn_explain::Error>(())
/// ```
#[derive(Debug, Clone)]
pub struct ActivationMaximization {
    /// What to maximise.
    pub objective: Objective,
    /// Number of gradient steps (at least 1).
    pub steps: usize,
    /// Adam step size (in pixel units for [`Parametrization::Clamp`], logits for `Sigmoid`).
    pub lr: f64,
    /// Largest random translation in pixels per step and axis (0: none).
    pub jitter: i64,
    /// Blur every this many steps (0: never).
    pub blur_every: usize,
    /// Standard deviation of the Gaussian blur in pixels (must be > 0 when `blur_every > 0`).
    pub blur_sigma: f64,
    /// Weight of the L2 penalty `||x - 0.5||^2` that pulls pixels towards mid grey.
    pub l2_decay: f64,
    /// Seed of the initial noise and of the jitter.
    pub seed: u64,
    /// `(height, width)` of the image; `None`: 64 x 64, or the model's minimum input size when
    /// that is larger. Models with a fixed input size (a CIFAR network: 32 x 32) need it set.
    pub image_size: Option<(i64, i64)>,
    /// Standard deviation of the initial noise around mid grey (in logits for `Sigmoid`).
    pub init_std: f64,
    /// How the image is kept in `[0, 1]`.
    pub parametrization: Parametrization,
}

impl Default for ActivationMaximization {
    fn default() -> Self {
        ActivationMaximization {
            objective: Objective::default(),
            steps: 200,
            lr: 0.05,
            jitter: 4,
            blur_every: 4,
            blur_sigma: 0.5,
            l2_decay: 1e-4,
            seed: 0,
            image_size: None,
            init_std: 0.01,
            parametrization: Parametrization::default(),
        }
    }
}

/// The result of [`ActivationMaximization::run`].
///
/// ```
/// use cnn_explain::features::{ActivationMaximization, Objective};
/// use cnn_explain::models::Staged;
/// use tch::{nn, Device, Kind};
/// let model = Staged::new(3, 1, Device::Cpu)
///     .leaf("fc", nn::func(|xs| xs.mean_dim(&[1i64, 2, 3][..], false, Kind::Float).unsqueeze(1)));
/// let out = ActivationMaximization { steps: 3, image_size: Some((4, 4)), ..Default::default() }.run(&model)?;
/// assert_eq!(out.image.size(), [1, 3, 4, 4]);
/// assert_eq!(out.trajectory.len(), 3);
/// assert_eq!(out.to_image(2)?.dimensions(), (8, 8));
/// # Ok::<(), cnn_explain::Error>(())
/// ```
#[derive(Debug)]
pub struct Maximized {
    /// The optimised image `[1, C, H, W]` in `[0, 1]`, on the model's device.
    pub image: Tensor,
    /// The objective (without the L2 penalty) at every step, on that step's jittered image,
    /// before the update.
    pub trajectory: Vec<f64>,
    /// The objective of the final image, without jitter.
    pub final_objective: f64,
}

impl Maximized {
    /// The image as RGB (a single-channel image as grey), each pixel repeated `scale` x `scale`
    /// times. Errors for images with other than 1 or 3 channels.
    ///
    /// ```
    /// # use cnn_explain::features::{ActivationMaximization, Objective};
    /// # use cnn_explain::models::Staged;
    /// # use tch::{nn, Device, Kind};
    /// let model = Staged::new(1, 1, Device::Cpu)
    ///     .leaf("fc", nn::func(|xs| xs.mean_dim(&[1i64, 2, 3][..], false, Kind::Float).unsqueeze(1)));
    /// let out = ActivationMaximization { steps: 1, image_size: Some((3, 5)), ..Default::default() }.run(&model)?;
    /// assert_eq!(out.to_image(1)?.dimensions(), (5, 3));
    /// # Ok::<(), cnn_explain::Error>(())
    /// ```
    pub fn to_image(&self, scale: u32) -> Result<RgbImage> {
        to_rgb_image(&self.image.get(0), scale)
    }
}

impl ActivationMaximization {
    /// Optimises an image for `model`'s objective. The model is run in evaluation mode; its
    /// parameters are neither changed nor given gradients.
    ///
    /// Errors: zero steps; a non-positive or non-finite `lr`; a negative `jitter`, `l2_decay` or
    /// `init_std`; `blur_every > 0` with `blur_sigma <= 0`; an image size below the model's minimum;
    /// an unknown layer, a channel outside the layer's `0..K` or a class outside `0..num_classes`.
    ///
    /// ```
    /// use cnn_explain::features::{ActivationMaximization, Objective};
    /// use cnn_explain::models::Staged;
    /// use tch::{nn, Device, Kind};
    /// let model = Staged::new(3, 2, Device::Cpu)
    ///     .leaf("id", nn::func(|xs| xs.shallow_clone()))
    ///     .leaf("fc", nn::func(|xs| xs.mean_dim(&[2i64, 3][..], false, Kind::Float).narrow(1, 0, 2)));
    /// // Maximise the green channel of layer "id": the green plane goes up.
    /// let am = ActivationMaximization {
    ///     objective: Objective::Channel { layer: "id".into(), channel: 1 },
    ///     steps: 20, image_size: Some((4, 4)), ..Default::default()
    /// };
    /// let out = am.run(&model)?;
    /// assert!(out.final_objective > 0.9);
    /// let bad = ActivationMaximization { objective: Objective::Class(2), ..am.clone() };
    /// assert!(bad.run(&model).is_err());
    /// # Ok::<(), cnn_explain::Error>(())
    /// ```
    pub fn run(&self, model: &dyn Model) -> Result<Maximized> {
        self.validate(model)?;
        let device = model.device();
        let c = model.input_channels();
        let (h, w) = self.size(model);
        let mut rng = Rng::new(self.seed);
        let noise = rng.normal_tensor(&[1, c, h, w], device) * self.init_std;
        let mut param = match self.parametrization {
            Parametrization::Clamp => (noise + 0.5).clamp(0.0, 1.0),
            Parametrization::Sigmoid => noise,
        };
        // Checks the objective once (layer, channel range, output shape) before any work.
        let _probe = tch::no_grad(|| self.objective_value(model, &self.image_of(&param)))?;

        let mut m = param.zeros_like();
        let mut v = param.zeros_like();
        let (b1, b2, eps) = (0.9f64, 0.999f64, 1e-8f64);
        let mut trajectory = Vec::with_capacity(self.steps);
        for step in 0..self.steps {
            let (dy, dx) = if self.jitter > 0 {
                let span = 2 * self.jitter as u64 + 1;
                (
                    rng.below(span) as i64 - self.jitter,
                    rng.below(span) as i64 - self.jitter,
                )
            } else {
                (0, 0)
            };
            let p = param.detach().set_requires_grad(true);
            let x = self.image_of(&p);
            let shifted = if dy != 0 || dx != 0 {
                x.f_roll([dy, dx], [2, 3])?
            } else {
                x.shallow_clone()
            };
            let obj = self.objective_value(model, &shifted)?;
            trajectory.push(obj.double_value(&[]));
            let loss = if self.l2_decay > 0.0 {
                &obj - (&x - 0.5).square().sum(Kind::Float) * self.l2_decay
            } else {
                obj
            };
            let grads = Tensor::f_run_backward(&[&loss], &[&p], false, false)?;
            let g = match grads.into_iter().next() {
                Some(g) if g.defined() => g,
                _ => p.zeros_like(),
            };
            param = tch::no_grad(|| -> Result<Tensor> {
                let t = (step + 1) as i32;
                m = &m * b1 + &g * (1.0 - b1);
                v = &v * b2 + g.square() * (1.0 - b2);
                let m_hat = &m / (1.0 - b1.powi(t));
                let v_hat = &v / (1.0 - b2.powi(t));
                let mut next = &param + m_hat / (v_hat.sqrt() + eps) * self.lr;
                if self.parametrization == Parametrization::Clamp {
                    next = next.clamp(0.0, 1.0);
                }
                if self.blur_every > 0 && (step + 1) % self.blur_every == 0 {
                    next = gaussian_blur(&next, self.blur_sigma)?;
                }
                Ok(next)
            })?;
        }
        let image = tch::no_grad(|| self.image_of(&param));
        let final_objective = tch::no_grad(|| self.objective_value(model, &image))?.double_value(&[]);
        Ok(Maximized {
            image,
            trajectory,
            final_objective,
        })
    }

    fn size(&self, model: &dyn Model) -> (i64, i64) {
        self.image_size.unwrap_or_else(|| {
            let s = model.min_input_size().max(64);
            (s, s)
        })
    }

    fn image_of(&self, param: &Tensor) -> Tensor {
        match self.parametrization {
            Parametrization::Clamp => param.shallow_clone(),
            Parametrization::Sigmoid => param.sigmoid(),
        }
    }

    /// The scalar objective for `x` `[1, C, H, W]`, checked.
    fn objective_value(&self, model: &dyn Model, x: &Tensor) -> Result<Tensor> {
        match &self.objective {
            Objective::Class(class) => {
                let k = model.num_classes();
                if !(0..k).contains(class) {
                    return Err(Error::ClassOutOfRange {
                        index: *class,
                        num_classes: k,
                    });
                }
                let logits = model.logits(x)?;
                let size = logits.size();
                if size.len() != 2 || size[0] != 1 || size[1] <= *class {
                    return Err(Error::shape("logits", format!("[1, {k}]"), &size));
                }
                Ok(logits.get(0).get(*class))
            }
            Objective::Channel { layer, channel } => {
                let act = model.forward_to(x, layer)?;
                let size = act.size();
                if !(size.len() == 4 || size.len() == 2) || size[0] != 1 {
                    return Err(Error::shape(
                        format!("activation at layer `{layer}`"),
                        "[1, K, h, w] or [1, K]",
                        &size,
                    ));
                }
                if !(0..size[1]).contains(channel) {
                    return Err(Error::invalid(
                        "objective",
                        format!(
                            "channel {channel} is out of range: layer `{layer}` has {} channels (valid: 0..={})",
                            size[1],
                            size[1] - 1
                        ),
                    ));
                }
                let unit = act.get(0).get(*channel);
                Ok(if size.len() == 4 {
                    unit.mean(Kind::Float)
                } else {
                    unit.to_kind(Kind::Float)
                })
            }
        }
    }

    fn validate(&self, model: &dyn Model) -> Result<()> {
        if self.steps == 0 {
            return Err(Error::invalid("steps", "at least 1 step is needed"));
        }
        if !(self.lr.is_finite() && self.lr > 0.0) {
            return Err(Error::invalid(
                "lr",
                format!("{} is not a positive step size (try 0.05)", self.lr),
            ));
        }
        if self.jitter < 0 {
            return Err(Error::invalid(
                "jitter",
                format!("{} pixels: the jitter must be 0 or more", self.jitter),
            ));
        }
        if !(self.l2_decay.is_finite() && self.l2_decay >= 0.0) {
            return Err(Error::invalid("l2_decay", "must be 0 or a positive number"));
        }
        if !(self.init_std.is_finite() && self.init_std >= 0.0) {
            return Err(Error::invalid("init_std", "must be 0 or a positive number"));
        }
        if self.blur_every > 0 && !(self.blur_sigma.is_finite() && self.blur_sigma > 0.0) {
            return Err(Error::invalid(
                "blur_sigma",
                format!(
                    "{} with blur_every = {}: use a positive sigma (0.5) or blur_every = 0",
                    self.blur_sigma, self.blur_every
                ),
            ));
        }
        let (h, w) = self.size(model);
        let min = model.min_input_size().max(1);
        if h < min || w < min {
            return Err(Error::invalid(
                "image_size",
                format!("({h}, {w}) is below the model's minimum input size {min}"),
            ));
        }
        if h.checked_mul(w)
            .and_then(|p| p.checked_mul(model.input_channels()))
            .is_none()
        {
            return Err(Error::invalid("image_size", format!("({h}, {w}) is too large")));
        }
        if let Objective::Channel { layer, .. } = &self.objective {
            model.check_layer(layer)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::models::Staged;
    use tch::{nn, Device};

    /// A linear classifier on 3x4x4 images with seeded weights of both signs: logit k = <W_k, x>.
    fn linear_model() -> (Staged, Tensor) {
        let mut rng = Rng::new(11);
        let w = rng.normal_tensor(&[2, 48], Device::Cpu);
        let wt = w.shallow_clone();
        let model = Staged::new(3, 2, Device::Cpu)
            .leaf("flat", nn::func(|xs| xs.flatten(1, -1)))
            .leaf("fc", nn::func(move |xs| xs.matmul(&wt.tr())));
        (model, w)
    }

    fn values(t: &Tensor) -> Vec<f32> {
        Vec::try_from(&t.reshape([-1])).unwrap()
    }

    #[test]
    fn linear_class_optimum_is_found_exactly_with_clamping() {
        let (model, w) = linear_model();
        let am = ActivationMaximization {
            objective: Objective::Class(1),
            steps: 60,
            jitter: 0,
            blur_every: 0,
            image_size: Some((4, 4)),
            seed: 3,
            ..Default::default()
        };
        let out = am.run(&model).unwrap();
        let expect: Vec<f32> = values(&w.get(1).gt(0.0).to_kind(Kind::Float));
        assert_eq!(values(&out.image), expect);
        let best = w.get(1).clamp_min(0.0).sum(Kind::Double).double_value(&[]);
        assert!(
            (out.final_objective - best).abs() < 1e-4,
            "{} vs {best}",
            out.final_objective
        );
        assert_eq!(out.trajectory.len(), 60);
        assert!(out.trajectory.windows(2).all(|p| p[1] >= p[0] - 1e-6));
    }

    #[test]
    fn linear_class_optimum_is_approached_with_sigmoid() {
        let (model, w) = linear_model();
        let am = ActivationMaximization {
            objective: Objective::Class(0),
            steps: 200,
            jitter: 0,
            blur_every: 0,
            image_size: Some((4, 4)),
            parametrization: Parametrization::Sigmoid,
            ..Default::default()
        };
        let out = am.run(&model).unwrap();
        let img = values(&out.image);
        let sign = values(&w.get(0));
        for (x, s) in img.iter().zip(&sign) {
            if *s > 0.0 {
                assert!(*x > 0.95, "{x} for weight {s}");
            } else {
                assert!(*x < 0.05, "{x} for weight {s}");
            }
            assert!((0.0..=1.0).contains(x));
        }
    }

    /// A small conv model with seeded weights (never tch's global generator).
    fn conv_model() -> (nn::VarStore, Staged) {
        let vs = nn::VarStore::new(Device::Cpu);
        let root = vs.root();
        let conv = nn::conv2d(
            &root / "conv",
            3,
            4,
            3,
            nn::ConvConfig {
                padding: 1,
                ..Default::default()
            },
        );
        let fc = nn::linear(&root / "fc", 4, 3, Default::default());
        let mut rng = Rng::new(5);
        tch::no_grad(|| {
            let mut names: Vec<(String, Tensor)> = vs.variables().into_iter().collect();
            names.sort_by(|a, b| a.0.cmp(&b.0));
            for (_, mut t) in names {
                let r = rng.normal_tensor(&t.size(), Device::Cpu) * 0.5;
                t.copy_(&r);
            }
        });
        let model = Staged::new(3, 3, Device::Cpu)
            .leaf("conv", conv)
            .leaf("relu", nn::func(|xs| xs.relu()))
            .leaf(
                "pool",
                nn::func(|xs| xs.adaptive_avg_pool2d([1, 1]).flatten(1, -1)),
            )
            .leaf("fc", fc);
        (vs, model)
    }

    #[test]
    fn channel_objective_rises_and_the_model_is_untouched() {
        let (vs, model) = conv_model();
        let before: Vec<(String, Tensor)> = {
            let mut v: Vec<(String, Tensor)> =
                vs.variables().into_iter().map(|(n, t)| (n, t.copy())).collect();
            v.sort_by(|a, b| a.0.cmp(&b.0));
            v
        };
        let am = ActivationMaximization {
            objective: Objective::Channel {
                layer: "relu".into(),
                channel: 2,
            },
            steps: 40,
            image_size: Some((8, 8)),
            seed: 9,
            ..Default::default()
        };
        let out = am.run(&model).unwrap();
        let first = out.trajectory[0];
        assert!(
            out.final_objective > first + 0.5,
            "{first} -> {} ({:?})",
            out.final_objective,
            out.trajectory
        );
        let min = out.image.min().double_value(&[]);
        let max = out.image.max().double_value(&[]);
        assert!((0.0..=1.0).contains(&min) && (0.0..=1.0).contains(&max));
        for (name, t) in vs.variables() {
            let old = &before.iter().find(|(n, _)| *n == name).unwrap().1;
            assert!(t.equal(old), "{name} changed");
            assert!(!t.grad().defined(), "{name} got a gradient");
        }
        // Class objective on the same model also rises.
        let cls = ActivationMaximization {
            objective: Objective::Class(1),
            steps: 40,
            image_size: Some((8, 8)),
            ..Default::default()
        }
        .run(&model)
        .unwrap();
        assert!(cls.final_objective > cls.trajectory[0], "{:?}", cls.trajectory);
    }

    #[test]
    fn a_horizontal_edge_channel_grows_horizontal_stripes() {
        // One channel: relu(top row - bottom row) of a 3x3 window on the grey level. Its mean is
        // largest for horizontal stripes, so the optimised image must vary down the rows and
        // hardly along them, even with the default jitter and blur.
        let k = Tensor::from_slice(&[1.0f32, 1.0, 1.0, 0.0, 0.0, 0.0, -1.0, -1.0, -1.0])
            .reshape([1, 1, 3, 3])
            .repeat([1, 3, 1, 1]);
        let model = Staged::new(3, 1, Device::Cpu)
            .leaf(
                "edge",
                nn::func(move |xs| xs.conv2d::<Tensor>(&k, None, [1, 1], [0, 0], [1, 1], 1).relu()),
            )
            .leaf(
                "pool",
                nn::func(|xs| xs.adaptive_avg_pool2d([1, 1]).flatten(1, -1)),
            )
            .with_min_input_size(3);
        let out = ActivationMaximization {
            objective: Objective::Channel {
                layer: "edge".into(),
                channel: 0,
            },
            steps: 100,
            image_size: Some((16, 16)),
            seed: 1,
            ..Default::default()
        }
        .run(&model)
        .unwrap();
        let x = out.image.get(0).mean_dim(&[0i64][..], false, Kind::Float);
        let down = (x.narrow(0, 1, 15) - x.narrow(0, 0, 15)).abs().mean(Kind::Double);
        let along = (x.narrow(1, 1, 15) - x.narrow(1, 0, 15)).abs().mean(Kind::Double);
        let (down, along) = (down.double_value(&[]), along.double_value(&[]));
        assert!(down > 0.2 && down > 5.0 * along, "down {down} along {along}");
        assert!(out.final_objective > 10.0 * out.trajectory[0].max(0.01));
    }

    #[test]
    fn same_seed_same_image_other_seed_other_image() {
        let (_vs, model) = conv_model();
        let am = ActivationMaximization {
            objective: Objective::Channel {
                layer: "conv".into(),
                channel: 0,
            },
            steps: 10,
            image_size: Some((6, 6)),
            seed: 42,
            ..Default::default()
        };
        let a = am.run(&model).unwrap();
        let b = am.run(&model).unwrap();
        assert!(a.image.equal(&b.image));
        assert_eq!(a.trajectory, b.trajectory);
        let c = ActivationMaximization {
            seed: 43,
            ..am.clone()
        }
        .run(&model)
        .unwrap();
        assert!(!a.image.equal(&c.image));
    }

    #[test]
    fn bad_settings_are_errors() {
        let (_vs, model) = conv_model();
        let base = ActivationMaximization {
            steps: 2,
            image_size: Some((6, 6)),
            ..Default::default()
        };
        let with = |f: &dyn Fn(&mut ActivationMaximization)| {
            let mut am = base.clone();
            f(&mut am);
            am.run(&model)
        };
        assert!(with(&|a| a.steps = 0).is_err());
        assert!(with(&|a| a.lr = 0.0).is_err());
        assert!(with(&|a| a.lr = f64::NAN).is_err());
        assert!(with(&|a| a.jitter = -1).is_err());
        assert!(with(&|a| a.blur_sigma = 0.0).is_err());
        assert!(with(&|a| a.l2_decay = -1.0).is_err());
        assert!(with(&|a| a.init_std = -1.0).is_err());
        assert!(with(&|a| a.image_size = Some((0, 6))).is_err());
        assert!(matches!(
            with(&|a| a.objective = Objective::Class(3)),
            Err(Error::ClassOutOfRange {
                index: 3,
                num_classes: 3
            })
        ));
        assert!(matches!(
            with(&|a| a.objective = Objective::Channel {
                layer: "conv9".into(),
                channel: 0
            }),
            Err(Error::UnknownLayer { .. })
        ));
        let err = with(&|a| {
            a.objective = Objective::Channel {
                layer: "conv".into(),
                channel: 4,
            }
        })
        .unwrap_err()
        .to_string();
        assert!(err.contains("channel 4") && err.contains("4 channels"), "{err}");
        // Blur off with sigma 0 is fine.
        assert!(with(&|a| {
            a.blur_every = 0;
            a.blur_sigma = 0.0;
        })
        .is_ok());
    }
}
