//! The gradient family: how much each input pixel moves the target class's score.
//!
//! - [`Saliency`]: the vanilla gradient of the class score with respect to the input (Simonyan,
//!   Vedaldi and Zisserman, "Deep Inside Convolutional Networks: Visualising Image Classification
//!   Models and Saliency Maps", ICLR workshop 2014). The paper shows `|gradient|`, and for colour
//!   images its maximum over the channels ([`SaliencyMode::MaxOverChannels`]).
//! - [`InputXGradient`]: input times gradient (Shrikumar et al., "Not Just a Black Box", 2016), a
//!   first-order estimate of each pixel's contribution to the score.
//! - [`IntegratedGradients`]: the gradient averaged along the straight path from a baseline to the
//!   input, times `input - baseline` (Sundararajan, Taly and Yan, "Axiomatic Attribution for Deep
//!   Networks", ICML 2017). Its attributions add up to `F(input) - F(baseline)` (completeness); the
//!   quadrature error of that sum is returned as the *delta* by
//!   [`IntegratedGradients::attribute_with_delta`].
//!
//! Conventions (Captum's): the score is the **logit** of the target class; the model runs in
//! evaluation mode (`forward_t(xs, false)`); gradients are taken with `torch.autograd.grad`
//! semantics, so the `.grad` of the model's variables is left as it was found.

use super::{check_positive, prepare_input, select_scores, target_classes, Attribution, Target};
use crate::models::Model;
use crate::rng::Rng;
use crate::{Error, Result};
use tch::{Kind, Tensor};

/// Gradient of each sample's class score with respect to `xs` `[N, C, H, W]` (a prepared float batch
/// on the model's device), for `target`. Returns `(gradient [N, C, H, W], scores [N], classes [N])`.
///
/// One forward and one backward pass; the classes of [`Target::Predicted`] come from this same
/// forward pass. The model's variables' `.grad` are not touched.
pub(crate) fn score_gradient(
    model: &dyn Model,
    xs: &Tensor,
    target: &Target,
) -> Result<(Tensor, Tensor, Tensor)> {
    tch::with_grad(|| {
        // Not `fast_layout`: see there why input gradients keep the contiguous layout.
        let x = xs.detach().set_requires_grad(true);
        let logits = model.forward_t(&x, false);
        let classes = target.resolve(model, &logits)?;
        if logits.size().first() != xs.size().first() {
            return Err(Error::shape(
                "logits",
                format!("[{}, num_classes] (one row per input)", xs.size()[0]),
                &logits.size(),
            ));
        }
        let scores = select_scores(&logits, &classes);
        let total = scores.f_sum(scores.kind())?;
        let mut grads = Tensor::f_run_backward(&[total], &[&x], false, false)?;
        let grad = grads
            .pop()
            .ok_or_else(|| Error::invalid("model", "autograd returned no gradient for the input"))?;
        Ok((grad, scores.detach(), classes))
    })
}

/// How [`Saliency`] turns the gradient into a map.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum SaliencyMode {
    /// The gradient itself, `[N, C, H, W]`.
    Signed,
    /// `|gradient|`, `[N, C, H, W]` (Captum's default, `abs=True`).
    #[default]
    Absolute,
    /// `max_c |gradient|`, `[N, 1, H, W]`: the paper's map for colour images.
    MaxOverChannels,
}

/// Vanilla gradient saliency (Simonyan et al. 2014): `d score / d input`.
///
/// Output `[N, C, H, W]`, or `[N, 1, H, W]` for [`SaliencyMode::MaxOverChannels`].
///
/// ```
/// use cnn_explain::attribution::{gradient::{Saliency, SaliencyMode}, Attribution, Target};
/// use cnn_explain::models::Staged;
/// use tch::{nn, Device, Kind, Tensor};
///
/// let vs = nn::VarStore::new(Device::Cpu);
/// let model = Staged::new(3, 2, Device::Cpu)
///     .leaf("pool", nn::func(|xs| xs.mean_dim(&[2i64, 3][..], false, Kind::Float)))
///     .leaf("fc", nn::linear(vs.root() / "fc", 3, 2, Default::default()));
/// let xs = Tensor::rand([2, 3, 4, 4], (Kind::Float, Device::Cpu));
/// let map = Saliency { mode: SaliencyMode::MaxOverChannels }.attribute(&model, &xs, &Target::Class(1))?;
/// assert_eq!(map.size(), [2, 1, 4, 4]);
/// # Ok::<(), cnn_explain::Error>(())
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Saliency {
    /// Signed, absolute, or the maximum of the absolute value over channels.
    pub mode: SaliencyMode,
}

impl Attribution for Saliency {
    fn attribute(&self, model: &dyn Model, input: &Tensor, target: &Target) -> Result<Tensor> {
        let x = prepare_input(model, input)?;
        let (grad, _, _) = score_gradient(model, &x, target)?;
        Ok(match self.mode {
            SaliencyMode::Signed => grad,
            SaliencyMode::Absolute => grad.abs(),
            SaliencyMode::MaxOverChannels => grad.abs().amax([1i64].as_slice(), true),
        })
    }

    fn name(&self) -> String {
        match self.mode {
            SaliencyMode::Signed => "Saliency (signed)".into(),
            SaliencyMode::Absolute => "Saliency (abs)".into(),
            SaliencyMode::MaxOverChannels => "Saliency (max over channels)".into(),
        }
    }
}

/// Input times gradient: `input * d score / d input`, `[N, C, H, W]`.
///
/// ```
/// use cnn_explain::attribution::{gradient::InputXGradient, Attribution, Target};
/// use cnn_explain::models::Staged;
/// use tch::{nn, Device, Kind, Tensor};
///
/// let vs = nn::VarStore::new(Device::Cpu);
/// let model = Staged::new(1, 2, Device::Cpu)
///     .leaf("flat", nn::func(|xs| xs.flatten(1, -1)))
///     .leaf("fc", nn::linear(vs.root() / "fc", 4, 2, Default::default()));
/// let xs = Tensor::zeros([1, 1, 2, 2], (Kind::Float, Device::Cpu));
/// let map = InputXGradient.attribute(&model, &xs, &Target::Class(0))?;
/// assert_eq!(map.abs().sum(Kind::Float).double_value(&[]), 0.0); // zero input, zero map
/// # Ok::<(), cnn_explain::Error>(())
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct InputXGradient;

impl Attribution for InputXGradient {
    fn attribute(&self, model: &dyn Model, input: &Tensor, target: &Target) -> Result<Tensor> {
        let x = prepare_input(model, input)?;
        let (grad, _, _) = score_gradient(model, &x, target)?;
        Ok(grad * x)
    }

    fn name(&self) -> String {
        "Input x Gradient".into()
    }
}

/// The reference point of [`IntegratedGradients`], where "no signal" is.
///
/// ```
/// use cnn_explain::attribution::gradient::Baseline;
/// use tch::{Device, Kind, Tensor};
///
/// let xs = Tensor::rand([2, 3, 8, 8], (Kind::Float, Device::Cpu));
/// let b = Baseline::Blurred { sigma: 2.0 }.build(&xs)?;
/// assert_eq!(b.size(), [2, 3, 8, 8]);
/// # Ok::<(), cnn_explain::Error>(())
/// ```
#[derive(Debug, Default)]
pub enum Baseline {
    /// All zeros (black in unnormalised images, the mean colour in normalised ones).
    #[default]
    Zeros,
    /// The input blurred by a Gaussian of standard deviation `sigma` pixels (kernel radius
    /// `ceil(3 sigma)`, edges replicated), as in Sturmfels et al., "Visualizing the Impact of Feature
    /// Attribution Baselines" (Distill 2020). `sigma` must be positive.
    Blurred {
        /// Standard deviation of the Gaussian, in pixels.
        sigma: f64,
    },
    /// Uniform noise over each sample's value range `[min, max]`, drawn from [`Rng`] with `seed`.
    UniformNoise {
        /// Seed of the noise.
        seed: u64,
    },
    /// A given baseline, `[N, C, H, W]` (one per sample), `[1, C, H, W]` or `[C, H, W]` (shared).
    Tensor(Tensor),
}

impl Clone for Baseline {
    fn clone(&self) -> Self {
        match self {
            Baseline::Zeros => Baseline::Zeros,
            Baseline::Blurred { sigma } => Baseline::Blurred { sigma: *sigma },
            Baseline::UniformNoise { seed } => Baseline::UniformNoise { seed: *seed },
            Baseline::Tensor(t) => Baseline::Tensor(t.shallow_clone()),
        }
    }
}

impl Baseline {
    /// The baseline for `input` `[N, C, H, W]` (a float tensor): `[N, C, H, W]`, same device and kind.
    ///
    /// ```
    /// use cnn_explain::attribution::gradient::Baseline;
    /// use tch::{Device, Kind, Tensor};
    /// let xs = Tensor::ones([2, 3, 4, 4], (Kind::Float, Device::Cpu));
    /// let shared = Tensor::full([3, 4, 4], 0.5, (Kind::Float, Device::Cpu));
    /// let b = Baseline::Tensor(shared).build(&xs)?;
    /// assert_eq!(b.size(), [2, 3, 4, 4]);
    /// assert!(Baseline::Tensor(Tensor::ones([5], (Kind::Float, Device::Cpu))).build(&xs).is_err());
    /// # Ok::<(), cnn_explain::Error>(())
    /// ```
    pub fn build(&self, input: &Tensor) -> Result<Tensor> {
        let size = input.size();
        if size.len() != 4 {
            return Err(Error::shape("input", "[N, C, H, W]", &size));
        }
        let (device, kind) = (input.device(), input.kind());
        match self {
            Baseline::Zeros => Ok(input.zeros_like()),
            Baseline::Blurred { sigma } => blur(input, *sigma),
            Baseline::UniformNoise { seed } => {
                let flat = input.flatten(1, -1);
                let lo = flat.amin([1i64].as_slice(), false).view([-1, 1, 1, 1]);
                let hi = flat.amax([1i64].as_slice(), false).view([-1, 1, 1, 1]);
                let u = Rng::new(*seed).uniform_tensor(&size, device).to_kind(kind);
                Ok(&lo + u * (hi - &lo))
            }
            Baseline::Tensor(t) => {
                let ts = t.size();
                let expected = format!(
                    "a float baseline [{n}, {c}, {h}, {w}], [1, {c}, {h}, {w}] or [{c}, {h}, {w}] for an input of shape {size:?}",
                    n = size[0],
                    c = size[1],
                    h = size[2],
                    w = size[3]
                );
                let t = match ts.len() {
                    3 if ts[..] == size[1..] => t.unsqueeze(0),
                    4 if ts[1..] == size[1..] && (ts[0] == size[0] || ts[0] == 1) => t.shallow_clone(),
                    _ => return Err(Error::shape("baseline", expected, &ts)),
                };
                if !t.is_floating_point() {
                    return Err(Error::invalid(
                        "baseline",
                        format!("expected a float tensor, got {:?}", t.kind()),
                    ));
                }
                Ok(t.to_device(device)
                    .to_kind(kind)
                    .f_expand(&size, false)?
                    .contiguous()
                    .detach())
            }
        }
    }

    fn name(&self) -> String {
        match self {
            Baseline::Zeros => "zeros".into(),
            Baseline::Blurred { sigma } => format!("blurred sigma {sigma}"),
            Baseline::UniformNoise { seed } => format!("uniform noise seed {seed}"),
            Baseline::Tensor(_) => "given baseline".into(),
        }
    }
}

/// Gaussian blur of `xs` `[N, C, H, W]`, separable, depthwise, edges replicated.
fn blur(xs: &Tensor, sigma: f64) -> Result<Tensor> {
    if !(sigma.is_finite() && sigma > 0.0) {
        return Err(Error::invalid(
            "Baseline::Blurred sigma",
            format!("must be a positive number of pixels, got {sigma}"),
        ));
    }
    let c = xs.size()[1];
    let radius = (3.0 * sigma).ceil().min(1e4) as i64;
    let taps: Vec<f64> = (-radius..=radius)
        .map(|i| (-((i * i) as f64) / (2.0 * sigma * sigma)).exp())
        .collect();
    let total: f64 = taps.iter().sum();
    let taps: Vec<f32> = taps.iter().map(|t| (t / total) as f32).collect();
    let k = Tensor::from_slice(&taps)
        .to_device(xs.device())
        .to_kind(xs.kind());
    let len = taps.len() as i64;
    let kh = k.view([1, 1, len, 1]).repeat([c, 1, 1, 1]);
    let kw = k.view([1, 1, 1, len]).repeat([c, 1, 1, 1]);
    let padded = xs.f_pad([radius, radius, radius, radius], "replicate", None)?;
    let none: Option<&Tensor> = None;
    let out = padded.f_conv2d(&kh, none, [1, 1], [0, 0], [1, 1], c)?.f_conv2d(
        &kw,
        none,
        [1, 1],
        [0, 0],
        [1, 1],
        c,
    )?;
    Ok(out.detach())
}

/// The quadrature rule that approximates the path integral of [`IntegratedGradients`].
///
/// With `n` steps the points are `alpha_k` in `[0, 1]` with weights `w_k`:
/// left `k/n`, right `(k+1)/n`, middle `(k+1/2)/n`, all with weight `1/n`; trapezoid `k/(n-1)` with
/// weight `1/(n-1)`, halved at both ends (needs `n >= 2`); Gauss-Legendre nodes and weights mapped to
/// `[0, 1]` (exact for polynomials of degree `2n - 1`).
///
/// Note on Captum: its `riemann_trapezoid` uses the same points but weights `1/n` (ends halved),
/// which add up to `(n-1)/n`, so its maps are `(n-1)/n` times the trapezoid rule's. Here the weights
/// add up to 1, so a linear model's attributions are exact.
///
/// ```
/// use cnn_explain::attribution::gradient::Quadrature;
/// let (alphas, weights) = Quadrature::RiemannTrapezoid.nodes(3)?;
/// assert_eq!(alphas, [0.0, 0.5, 1.0]);
/// assert_eq!(weights, [0.25, 0.5, 0.25]);
/// # Ok::<(), cnn_explain::Error>(())
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Quadrature {
    /// Left Riemann sum.
    RiemannLeft,
    /// Right Riemann sum.
    RiemannRight,
    /// Midpoint rule.
    RiemannMiddle,
    /// Trapezoid rule (the default, as in Captum).
    #[default]
    RiemannTrapezoid,
    /// Gauss-Legendre quadrature.
    GaussLegendre,
}

impl Quadrature {
    /// The points `alpha_k` in `[0, 1]` and weights `w_k` (adding up to 1) for `steps` steps.
    ///
    /// ```
    /// use cnn_explain::attribution::gradient::Quadrature;
    /// let (alphas, weights) = Quadrature::GaussLegendre.nodes(1)?;
    /// assert_eq!((alphas, weights), (vec![0.5], vec![1.0]));
    /// assert!(Quadrature::RiemannLeft.nodes(0).is_err());
    /// # Ok::<(), cnn_explain::Error>(())
    /// ```
    pub fn nodes(&self, steps: usize) -> Result<(Vec<f64>, Vec<f64>)> {
        check_positive("steps", steps)?;
        let n = steps as f64;
        let uniform = vec![1.0 / n; steps];
        Ok(match self {
            Quadrature::RiemannLeft => ((0..steps).map(|k| k as f64 / n).collect(), uniform),
            Quadrature::RiemannRight => ((1..=steps).map(|k| k as f64 / n).collect(), uniform),
            Quadrature::RiemannMiddle => ((0..steps).map(|k| (k as f64 + 0.5) / n).collect(), uniform),
            Quadrature::RiemannTrapezoid => {
                if steps < 2 {
                    return Err(Error::invalid(
                        "steps",
                        "the trapezoid rule needs at least 2 steps (both ends of the path)",
                    ));
                }
                let h = 1.0 / (n - 1.0);
                let alphas = (0..steps).map(|k| k as f64 * h).collect();
                let mut w = vec![h; steps];
                w[0] /= 2.0;
                w[steps - 1] /= 2.0;
                (alphas, w)
            }
            Quadrature::GaussLegendre => gauss_legendre(steps),
        })
    }
}

/// Gauss-Legendre nodes and weights on `[0, 1]`, nodes ascending (Newton iteration on `P_n`).
fn gauss_legendre(n: usize) -> (Vec<f64>, Vec<f64>) {
    let mut alphas = vec![0.0; n];
    let mut weights = vec![0.0; n];
    let nf = n as f64;
    for i in 0..n.div_ceil(2) {
        // Initial guess of the i-th largest root of P_n on [-1, 1].
        let mut z = (std::f64::consts::PI * (i as f64 + 0.75) / (nf + 0.5)).cos();
        let mut dp = 1.0;
        for _ in 0..100 {
            let (mut p0, mut p1) = (1.0, z);
            for j in 2..=n {
                let jf = j as f64;
                let p2 = ((2.0 * jf - 1.0) * z * p1 - (jf - 1.0) * p0) / jf;
                p0 = p1;
                p1 = p2;
            }
            let p = if n == 1 { z } else { p1 };
            let pm1 = if n == 1 { 1.0 } else { p0 };
            dp = nf * (z * p - pm1) / (z * z - 1.0);
            let dz = p / dp;
            z -= dz;
            if dz.abs() < 1e-15 {
                break;
            }
        }
        if n == 1 {
            // P_1 = z: root 0, weight 2.
            z = 0.0;
            dp = 1.0;
        }
        let w = 2.0 / ((1.0 - z * z) * dp * dp);
        // On [0, 1]: alpha = (1 + z) / 2, weight / 2; z and -z are both roots.
        alphas[n - 1 - i] = 0.5 * (1.0 + z);
        alphas[i] = 0.5 * (1.0 - z);
        weights[n - 1 - i] = 0.5 * w;
        weights[i] = 0.5 * w;
    }
    (alphas, weights)
}

/// Integrated Gradients (Sundararajan et al. 2017), `[N, C, H, W]`:
/// `(x - b) * sum_k w_k * grad F(b + alpha_k (x - b))`, with the points and weights of `method`.
///
/// `batch` bounds memory: at most `batch` images (interpolation points times samples) go through the
/// model at once. Defaults: 50 steps, zero baseline, trapezoid rule, batch 50.
///
/// ```
/// use cnn_explain::attribution::gradient::IntegratedGradients;
/// use cnn_explain::attribution::{Attribution, Target};
/// use cnn_explain::models::Staged;
/// use tch::{nn, Device, Kind, Tensor};
///
/// let vs = nn::VarStore::new(Device::Cpu);
/// let model = Staged::new(1, 2, Device::Cpu)
///     .leaf("flat", nn::func(|xs| xs.flatten(1, -1)))
///     .leaf("fc", nn::linear(vs.root() / "fc", 4, 2, Default::default()));
/// let xs = Tensor::rand([3, 1, 2, 2], (Kind::Float, Device::Cpu));
/// let ig = IntegratedGradients { steps: 8, batch: 5, ..Default::default() };
/// let (map, delta) = ig.attribute_with_delta(&model, &xs, &Target::Class(1))?;
/// assert_eq!(map.size(), [3, 1, 2, 2]);
/// assert!(delta.abs().max().double_value(&[]) < 1e-5); // exact on a linear model
/// # Ok::<(), cnn_explain::Error>(())
/// ```
#[derive(Debug, Clone)]
pub struct IntegratedGradients {
    /// Number of interpolation points (at least 1; at least 2 for the trapezoid rule).
    pub steps: usize,
    /// Where the path starts.
    pub baseline: Baseline,
    /// The quadrature rule.
    pub method: Quadrature,
    /// Most images run through the model at once (at least 1).
    pub batch: usize,
}

impl Default for IntegratedGradients {
    fn default() -> Self {
        IntegratedGradients {
            steps: 50,
            baseline: Baseline::Zeros,
            method: Quadrature::RiemannTrapezoid,
            batch: 50,
        }
    }
}

impl IntegratedGradients {
    /// The attributions `[N, C, H, W]` and the completeness delta `[N]`:
    /// `sum(attributions of sample i) - (F(x_i) - F(b_i))`, with `F` the target logit (computed in
    /// double precision). A delta large compared with `F(x) - F(b)` means more steps are needed.
    ///
    /// ```
    /// use cnn_explain::attribution::gradient::{IntegratedGradients, Quadrature};
    /// use cnn_explain::attribution::Target;
    /// use cnn_explain::models::Staged;
    /// use tch::{nn, Device, Kind, Tensor};
    ///
    /// // F(x) = sum(x^2) / 2 (one class): IG from 0 gives x^2 / 2, exactly with Gauss-Legendre.
    /// let model = Staged::new(1, 1, Device::Cpu)
    ///     .leaf("sq", nn::func(|xs| (xs * xs).flatten(1, -1).sum_dim_intlist(1, true, Kind::Float) / 2.0));
    /// let xs = Tensor::from_slice(&[1.0f32, 2.0, 3.0, 4.0]).view([1, 1, 2, 2]);
    /// let ig = IntegratedGradients { steps: 2, method: Quadrature::GaussLegendre, ..Default::default() };
    /// let (map, delta) = ig.attribute_with_delta(&model, &xs, &Target::Class(0))?;
    /// assert!(map.allclose(&(&xs * &xs / 2.0), 1e-6, 1e-6, false));
    /// assert!(delta.double_value(&[0]).abs() < 1e-5);
    /// # Ok::<(), cnn_explain::Error>(())
    /// ```
    pub fn attribute_with_delta(
        &self,
        model: &dyn Model,
        input: &Tensor,
        target: &Target,
    ) -> Result<(Tensor, Tensor)> {
        let x = prepare_input(model, input)?;
        let b = self.baseline.build(&x)?;
        // End-point scores for the delta, without a graph.
        let (classes, fx, fb) = tch::no_grad(|| -> Result<_> {
            let lx = model.forward_t(&x, false);
            let classes = target.resolve(model, &lx)?;
            let lb = model.forward_t(&b, false);
            let fx = select_scores(&lx, &classes);
            let fb = select_scores(&lb, &classes);
            Ok((classes, fx, fb))
        })?;
        let attributions = self.integrate(model, &x, &b, &Vec::<i64>::try_from(&classes)?)?;
        let delta = attributions.to_kind(Kind::Double).flatten(1, -1).sum_dim_intlist(
            [1i64].as_slice(),
            false,
            Kind::Double,
        ) - (fx.to_kind(Kind::Double) - fb.to_kind(Kind::Double));
        Ok((attributions, delta))
    }

    /// `(x - b) * sum_k w_k * grad F(b + alpha_k (x - b))` for the classes `classes` (one per
    /// sample): the interpolation points' forward and backward passes and nothing else.
    fn integrate(&self, model: &dyn Model, x: &Tensor, b: &Tensor, classes: &[i64]) -> Result<Tensor> {
        check_positive("batch", self.batch)?;
        let (alphas, weights) = self.method.nodes(self.steps)?;
        let size = x.size();
        let (n, device) = (size[0], x.device());

        // Rows r = k * N + i: interpolation point k of sample i, run in chunks of `batch` rows.
        let total = self.steps as i64 * n;
        let batch = self.batch as i64;
        let mut acc = x.zeros_like();
        let diff = x - b;
        let mut start = 0i64;
        while start < total {
            let end = (start + batch).min(total);
            let rows: Vec<i64> = (start..end).collect();
            let idx: Vec<i64> = rows.iter().map(|r| r % n).collect();
            let alpha: Vec<f32> = rows.iter().map(|r| alphas[(r / n) as usize] as f32).collect();
            let w: Vec<f32> = rows.iter().map(|r| weights[(r / n) as usize] as f32).collect();
            let chunk_classes: Vec<i64> = idx.iter().map(|&i| classes[i as usize]).collect();
            let idx_t = Tensor::from_slice(&idx).to_device(device);
            let rows_n = end - start;
            let alpha_t = Tensor::from_slice(&alpha)
                .to_device(device)
                .to_kind(x.kind())
                .view([rows_n, 1, 1, 1]);
            let w_t = Tensor::from_slice(&w)
                .to_device(device)
                .to_kind(x.kind())
                .view([rows_n, 1, 1, 1]);
            let points = b.f_index_select(0, &idx_t)? + alpha_t * diff.f_index_select(0, &idx_t)?;
            let (grad, _, _) = score_gradient(model, &points, &Target::PerSample(chunk_classes))?;
            let _ = acc.f_index_add_(0, &idx_t, &(grad * w_t))?;
            start = end;
        }
        Ok(acc * diff)
    }
}

impl Attribution for IntegratedGradients {
    /// The attributions alone: no forward passes at the end points (they are only needed for the
    /// delta), and none at all when the target is given; otherwise one, to find the predicted class.
    fn attribute(&self, model: &dyn Model, input: &Tensor, target: &Target) -> Result<Tensor> {
        let x = prepare_input(model, input)?;
        let b = self.baseline.build(&x)?;
        self.integrate(model, &x, &b, &target_classes(model, &x, target)?)
    }

    fn name(&self) -> String {
        format!(
            "Integrated Gradients ({} steps, {:?}, baseline {})",
            self.steps,
            self.method,
            self.baseline.name()
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gauss_legendre_matches_known_nodes_and_integrates_polynomials() {
        let (a, w) = gauss_legendre(1);
        assert_eq!((a, w), (vec![0.5], vec![1.0]));
        let (a, w) = gauss_legendre(2);
        let r = 0.5 / 3f64.sqrt();
        assert!((a[0] - (0.5 - r)).abs() < 1e-15 && (a[1] - (0.5 + r)).abs() < 1e-15);
        assert!((w[0] - 0.5).abs() < 1e-15 && (w[1] - 0.5).abs() < 1e-15);
        for n in 1..=30usize {
            let (a, w) = gauss_legendre(n);
            assert!(a.windows(2).all(|p| p[0] < p[1]), "nodes ascend, n={n}");
            // Exact for degree 2n-1: integral of t^d over [0, 1] is 1/(d+1).
            for d in 0..(2 * n) {
                let q: f64 = a.iter().zip(&w).map(|(t, w)| w * t.powi(d as i32)).sum();
                assert!((q - 1.0 / (d as f64 + 1.0)).abs() < 1e-12, "n={n} d={d} q={q}");
            }
        }
    }

    #[test]
    fn riemann_rules_weights_sum_to_one() {
        for m in [
            Quadrature::RiemannLeft,
            Quadrature::RiemannRight,
            Quadrature::RiemannMiddle,
            Quadrature::RiemannTrapezoid,
        ] {
            let (a, w) = m.nodes(7).unwrap();
            assert_eq!(a.len(), 7);
            assert!((w.iter().sum::<f64>() - 1.0).abs() < 1e-12, "{m:?}");
        }
        assert_eq!(Quadrature::RiemannMiddle.nodes(2).unwrap().0, [0.25, 0.75]);
        assert_eq!(Quadrature::RiemannRight.nodes(2).unwrap().0, [0.5, 1.0]);
        assert!(Quadrature::RiemannTrapezoid.nodes(1).is_err());
        assert!(Quadrature::GaussLegendre.nodes(0).is_err());
    }

    #[test]
    fn blur_keeps_constants_and_smooths_a_spike() {
        let c = Tensor::full([1, 2, 5, 5], 3.0, (Kind::Float, tch::Device::Cpu));
        let b = blur(&c, 1.0).unwrap();
        assert!(b.allclose(&c, 1e-6, 1e-6, false));
        let s = Tensor::zeros([1, 1, 9, 9], (Kind::Float, tch::Device::Cpu));
        let _ = s.get(0).get(0).get(4).get(4).fill_(1.0);
        let b = blur(&s, 1.0).unwrap();
        // Separable Gaussian, mass kept away from the edges; the peak is g(0)^2.
        assert!((b.sum(Kind::Float).double_value(&[]) - 1.0).abs() < 1e-5);
        let g0 = 1.0 / (-3i32..=3).map(|i| (-(i * i) as f64 / 2.0).exp()).sum::<f64>();
        assert!((b.double_value(&[0, 0, 4, 4]) - g0 * g0).abs() < 1e-6);
        assert!(blur(&s, 0.0).is_err());
        assert!(blur(&s, f64::NAN).is_err());
    }
}
