//! Noise tunnel: average an attribution over noisy copies of the input.
//!
//! Gradients of ReLU networks jump from pixel to pixel; averaging the map of `x + noise` over many
//! draws shows the structure that survives small perturbations.
//!
//! - SmoothGrad: the mean map (Smilkov, Thorat, Kim, Viegas and Wattenberg, "SmoothGrad: removing
//!   noise by adding noise", 2017).
//! - SmoothGrad-squared: the mean of the squared maps (Hooker, Erhan, Kindermans and Kim, "A Benchmark
//!   for Interpretability Methods in Deep Neural Networks", NeurIPS 2019).
//! - VarGrad: the variance of the maps (Adebayo et al., "Local Explanation Methods for Deep Neural
//!   Networks Lack Sensitivity to Parameter Randomization", 2018).
//!
//! The noise is Gaussian with standard deviation `sigma * (max - min)` of each sample (the "noise
//! level" of the SmoothGrad paper, which found 10-20% works well), drawn from a seeded
//! [`crate::rng::Rng`]: the same seed gives the same map, whatever the batch size or thread count.

use super::{check_positive, prepare_input, target_classes, Attribution, Target};
use crate::models::Model;
use crate::rng::Rng;
use crate::{Error, Result};
use tch::{Kind, Tensor};

/// How the noisy maps are combined.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum NoiseKind {
    /// Mean of the maps.
    #[default]
    SmoothGrad,
    /// Mean of the squared maps.
    SmoothGradSquared,
    /// Variance of the maps (population variance, `mean(a^2) - mean(a)^2`, as in Captum).
    VarGrad,
}

/// An attribution method averaged over noisy copies of the input; itself an [`Attribution`].
///
/// The target classes are resolved once on the clean input (so [`Target::Predicted`] explains the
/// class predicted for the input, not for each noisy copy), then every noisy copy is explained for
/// its sample's class. The output has the inner method's shape.
///
/// ```
/// use cnn_explain::attribution::gradient::Saliency;
/// use cnn_explain::attribution::noise::NoiseTunnel;
/// use cnn_explain::attribution::{Attribution, Target};
/// use cnn_explain::models::Staged;
/// use tch::{nn, Device, Kind, Tensor};
///
/// let vs = nn::VarStore::new(Device::Cpu);
/// let model = Staged::new(1, 2, Device::Cpu)
///     .leaf("flat", nn::func(|xs| xs.flatten(1, -1)))
///     .leaf("fc", nn::linear(vs.root() / "fc", 4, 2, Default::default()));
/// let xs = Tensor::rand([2, 1, 2, 2], (Kind::Float, Device::Cpu));
/// let smooth = NoiseTunnel { samples: 4, seed: 7, ..NoiseTunnel::smooth(Saliency::default()) };
/// let a = smooth.attribute(&model, &xs, &Target::Class(0))?;
/// let b = smooth.attribute(&model, &xs, &Target::Class(0))?;
/// assert_eq!(a.size(), [2, 1, 2, 2]);
/// assert!(a.equal(&b)); // same seed, same map
/// # Ok::<(), cnn_explain::Error>(())
/// ```
#[derive(Debug)]
pub struct NoiseTunnel<A: Attribution> {
    /// The method run on every noisy copy.
    pub inner: A,
    /// How the maps are combined.
    pub kind: NoiseKind,
    /// Number of noisy copies per sample (at least 1).
    pub samples: usize,
    /// Noise standard deviation as a fraction of each sample's value range `max - min` (the SmoothGrad
    /// paper's noise level; 0.15 by default). Must be finite and non-negative.
    pub sigma: f64,
    /// Seed of the noise.
    pub seed: u64,
    /// Most noisy images given to the inner method at once (at least 1).
    pub batch: usize,
    /// Fixed noise `[samples, N, C, H, W]`, added as is (absolute, not scaled by `sigma`), instead of
    /// drawing it: for comparisons with other libraries.
    pub noise: Option<Tensor>,
}

impl<A: Attribution + Clone> Clone for NoiseTunnel<A> {
    fn clone(&self) -> Self {
        NoiseTunnel {
            inner: self.inner.clone(),
            kind: self.kind,
            samples: self.samples,
            sigma: self.sigma,
            seed: self.seed,
            batch: self.batch,
            noise: self.noise.as_ref().map(|t| t.shallow_clone()),
        }
    }
}

impl<A: Attribution> NoiseTunnel<A> {
    /// `inner` combined by `kind`, with 25 samples, sigma 0.15, seed 0, batch 25.
    ///
    /// ```
    /// use cnn_explain::attribution::{gradient::InputXGradient, noise::{NoiseKind, NoiseTunnel}};
    /// let nt = NoiseTunnel::new(InputXGradient, NoiseKind::VarGrad);
    /// assert_eq!((nt.samples, nt.sigma), (25, 0.15));
    /// ```
    pub fn new(inner: A, kind: NoiseKind) -> Self {
        NoiseTunnel {
            inner,
            kind,
            samples: 25,
            sigma: 0.15,
            seed: 0,
            batch: 25,
            noise: None,
        }
    }

    /// SmoothGrad over `inner`.
    ///
    /// ```
    /// use cnn_explain::attribution::{gradient::Saliency, noise::{NoiseKind, NoiseTunnel}};
    /// assert_eq!(NoiseTunnel::smooth(Saliency::default()).kind, NoiseKind::SmoothGrad);
    /// ```
    pub fn smooth(inner: A) -> Self {
        Self::new(inner, NoiseKind::SmoothGrad)
    }

    /// SmoothGrad-squared over `inner`.
    ///
    /// ```
    /// use cnn_explain::attribution::{gradient::Saliency, noise::{NoiseKind, NoiseTunnel}};
    /// assert_eq!(NoiseTunnel::smooth_squared(Saliency::default()).kind, NoiseKind::SmoothGradSquared);
    /// ```
    pub fn smooth_squared(inner: A) -> Self {
        Self::new(inner, NoiseKind::SmoothGradSquared)
    }

    /// VarGrad over `inner`.
    ///
    /// ```
    /// use cnn_explain::attribution::{gradient::Saliency, noise::{NoiseKind, NoiseTunnel}};
    /// assert_eq!(NoiseTunnel::var_grad(Saliency::default()).kind, NoiseKind::VarGrad);
    /// ```
    pub fn var_grad(inner: A) -> Self {
        Self::new(inner, NoiseKind::VarGrad)
    }

    /// Checks `noise` against `samples` and the shape of `x`, and returns it on `x`'s device as rows
    /// `[samples * N, C, H, W]`.
    fn given_noise(&self, x: &Tensor) -> Result<Option<Tensor>> {
        let Some(noise) = &self.noise else {
            return Ok(None);
        };
        let mut expected = vec![self.samples as i64];
        expected.extend(x.size());
        if noise.size() != expected {
            return Err(Error::shape(
                "noise",
                format!("[samples, N, C, H, W] = {expected:?}"),
                &noise.size(),
            ));
        }
        if !noise.is_floating_point() {
            return Err(Error::invalid(
                "noise",
                format!("expected a float tensor, got {:?}", noise.kind()),
            ));
        }
        // Rows s * N + i, the order the loop below walks.
        let mut rows = vec![-1];
        rows.extend(&expected[2..]);
        Ok(Some(
            noise
                .to_device(x.device())
                .to_kind(x.kind())
                .f_reshape(rows.as_slice())?
                .detach(),
        ))
    }
}

impl<A: Attribution> Attribution for NoiseTunnel<A> {
    fn attribute(&self, model: &dyn Model, input: &Tensor, target: &Target) -> Result<Tensor> {
        check_positive("samples", self.samples)?;
        check_positive("batch", self.batch)?;
        if !(self.sigma.is_finite() && self.sigma >= 0.0) {
            return Err(Error::invalid(
                "sigma",
                format!(
                    "must be a non-negative fraction of the input range (0.1-0.2 is typical), got {}",
                    self.sigma
                ),
            ));
        }
        let x = prepare_input(model, input)?;
        let given = self.given_noise(&x)?;
        let size = x.size();
        let (n, device) = (size[0], x.device());
        // A forward pass only when the target is the prediction.
        let classes = target_classes(model, &x, target)?;
        // Per-sample noise scale: sigma * (max - min).
        let flat = x.flatten(1, -1);
        let std = (flat.amax([1i64].as_slice(), false) - flat.amin([1i64].as_slice(), false)) * self.sigma;
        let mut rng = Rng::new(self.seed);

        // Rows r = s * N + i: noisy copy s of sample i, `batch` rows per call of the inner method.
        let total = self.samples as i64 * n;
        let batch = self.batch as i64;
        let mut sums: Option<(Option<Tensor>, Option<Tensor>)> = None;
        let mut start = 0i64;
        while start < total {
            let end = (start + batch).min(total);
            let rows = end - start;
            let idx: Vec<i64> = (start..end).map(|r| r % n).collect();
            let idx_t = Tensor::from_slice(&idx).to_device(device);
            let noise = match &given {
                Some(g) => g.narrow(0, start, rows),
                None => {
                    let mut shape = vec![rows];
                    shape.extend(&size[1..]);
                    rng.normal_tensor(&shape, device).to_kind(x.kind())
                        * std.f_index_select(0, &idx_t)?.view([rows, 1, 1, 1])
                }
            };
            let noisy = x.f_index_select(0, &idx_t)? + noise;
            let chunk_target = Target::PerSample(idx.iter().map(|&i| classes[i as usize]).collect());
            let maps = self
                .inner
                .attribute(model, &noisy, &chunk_target)?
                .detach()
                .to_kind(Kind::Double);
            if maps.size().first() != Some(&rows) {
                return Err(Error::shape(
                    "inner attribution",
                    format!("one map per input ({rows} maps)"),
                    &maps.size(),
                ));
            }
            let (sum, sq) = sums.get_or_insert_with(|| {
                let mut shape = maps.size();
                shape[0] = n;
                let z = || Tensor::zeros(&shape, (Kind::Double, device));
                // Only the sums this kind reads: SmoothGrad needs no squares.
                (
                    (self.kind != NoiseKind::SmoothGradSquared).then(z),
                    (self.kind != NoiseKind::SmoothGrad).then(z),
                )
            });
            if let Some(sum) = sum {
                let _ = sum.f_index_add_(0, &idx_t, &maps)?;
            }
            if let Some(sq) = sq {
                let _ = sq.f_index_add_(0, &idx_t, &(&maps * &maps))?;
            }
            start = end;
        }
        let (sum, sq) = sums.ok_or_else(|| Error::invalid("samples", "must be at least 1"))?;
        let s = self.samples as f64;
        let missing = || Error::invalid("kind", "internal: a sum this kind reads was not kept");
        let out = match self.kind {
            NoiseKind::SmoothGrad => sum.ok_or_else(missing)? / s,
            NoiseKind::SmoothGradSquared => sq.ok_or_else(missing)? / s,
            NoiseKind::VarGrad => {
                let mean = sum.ok_or_else(missing)? / s;
                (sq.ok_or_else(missing)? / s - &mean * &mean).clamp_min(0.0)
            }
        };
        Ok(out.to_kind(x.kind()))
    }

    fn name(&self) -> String {
        let kind = match self.kind {
            NoiseKind::SmoothGrad => "SmoothGrad",
            NoiseKind::SmoothGradSquared => "SmoothGrad-squared",
            NoiseKind::VarGrad => "VarGrad",
        };
        format!(
            "{kind} of {} ({} samples, sigma {})",
            self.inner.name(),
            self.samples,
            self.sigma
        )
    }
}
