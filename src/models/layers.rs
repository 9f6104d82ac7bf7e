//! The building blocks of the zoo: convolution, batch norm, linear, seeded dropout, and the
//! initialisers torchvision uses, all drawing from the crate's seeded [`Rng`].
//!
//! Variables are created with torchvision's state-dict names (`weight`, `bias`, `running_mean`,
//! `running_var`, `num_batches_tracked`) so checkpoints converted from PyTorch load by name.

use crate::rng::Rng;
use crate::Result;
use std::sync::Mutex;
use tch::nn::{self, ModuleT};
use tch::{Kind, Tensor};

/// How the zoo fills new weights. Every random draw comes from a seeded [`Rng`], never from
/// libtorch's global generator.
pub(crate) struct Initializer {
    rng: Option<Rng>,
}

impl Initializer {
    /// Seeded draws, or all zeros (`None`) for weights that are loaded right after.
    pub(crate) fn new(seed: Option<u64>) -> Self {
        Initializer {
            rng: seed.map(Rng::new),
        }
    }

    /// A trainable variable drawn from N(0, std²).
    pub(crate) fn normal(&mut self, p: &nn::Path, name: &str, dims: &[i64], std: f64) -> Result<Tensor> {
        match &mut self.rng {
            Some(rng) => {
                let v = normal_f32(rng, numel(dims), std as f32);
                Ok(p.f_var_copy(name, &Tensor::from_slice(&v).view(dims))?)
            }
            None => Ok(p.f_zeros(name, dims)?),
        }
    }

    /// A trainable variable drawn from U(-bound, bound).
    pub(crate) fn uniform(&mut self, p: &nn::Path, name: &str, dims: &[i64], bound: f64) -> Result<Tensor> {
        match &mut self.rng {
            Some(rng) => {
                let v = uniform_f32(rng, numel(dims), bound as f32);
                Ok(p.f_var_copy(name, &Tensor::from_slice(&v).view(dims))?)
            }
            None => Ok(p.f_zeros(name, dims)?),
        }
    }

    /// A seed for a module that draws during training (dropout).
    pub(crate) fn fork_seed(&mut self) -> u64 {
        self.rng.as_mut().map_or(0, |r| r.next_u64())
    }
}

fn numel(dims: &[i64]) -> usize {
    dims.iter().product::<i64>().max(0) as usize
}

/// 24 random bits as a float in `(0, 1)` (never 0, so its logarithm is finite).
fn unit(bits: u64) -> f32 {
    ((bits & 0xFF_FFFF) as f32 + 0.5) * (1.0 / 16_777_216.0)
}

/// `n` draws from U(-bound, bound), two per 64 random bits: weight initialisation fills up to 138M
/// values (VGG-16), so this is the fast path of [`Rng`].
fn uniform_f32(rng: &mut Rng, n: usize, bound: f32) -> Vec<f32> {
    let mut v = Vec::with_capacity(n + 1);
    while v.len() < n {
        let b = rng.next_u64();
        v.push((2.0 * unit(b) - 1.0) * bound);
        v.push((2.0 * unit(b >> 32) - 1.0) * bound);
    }
    v.truncate(n);
    v
}

/// `n` draws from N(0, std²) by Box-Muller on 24-bit uniforms (tails to 5.8 standard deviations),
/// two per 64 random bits.
fn normal_f32(rng: &mut Rng, n: usize, std: f32) -> Vec<f32> {
    let mut v = Vec::with_capacity(n + 1);
    while v.len() < n {
        let b = rng.next_u64();
        let r = (-2.0 * unit(b).ln()).sqrt() * std;
        let (s, c) = (std::f32::consts::TAU * unit(b >> 32)).sin_cos();
        v.push(r * c);
        v.push(r * s);
    }
    v.truncate(n);
    v
}

/// How a layer's weights are initialised, after torchvision.
#[derive(Debug, Clone, Copy)]
pub(crate) enum WeightInit {
    /// `kaiming_normal_(mode="fan_out", nonlinearity="relu")`, bias 0 (ResNet, VGG convolutions).
    KaimingFanOut,
    /// PyTorch's default for `Conv2d` and `Linear`: weight and bias U(-1/sqrt(fan_in), 1/sqrt(fan_in)).
    PytorchDefault,
    /// N(0, 0.01²), bias 0 (VGG's linear layers).
    Normal001,
}

fn init_weight_and_bias(
    init: &mut Initializer,
    p: &nn::Path,
    dims: &[i64],
    fan_in: i64,
    fan_out: i64,
    bias: bool,
    how: WeightInit,
) -> Result<(Tensor, Option<Tensor>)> {
    let out = dims[0];
    let ws = match how {
        WeightInit::KaimingFanOut => init.normal(p, "weight", dims, (2.0 / fan_out as f64).sqrt())?,
        WeightInit::PytorchDefault => init.uniform(p, "weight", dims, 1.0 / (fan_in as f64).sqrt())?,
        WeightInit::Normal001 => init.normal(p, "weight", dims, 0.01)?,
    };
    let bs = if bias {
        Some(match how {
            WeightInit::PytorchDefault => init.uniform(p, "bias", &[out], 1.0 / (fan_in as f64).sqrt())?,
            _ => p.f_zeros("bias", &[out])?,
        })
    } else {
        None
    };
    Ok((ws, bs))
}

/// `torch.nn.Conv2d` with square kernel, stride and padding.
#[derive(Debug)]
pub(crate) struct Conv2d {
    ws: Tensor,
    bs: Option<Tensor>,
    stride: i64,
    padding: i64,
}

/// Shape of a convolution: input and output channels, kernel, stride, padding, bias.
#[derive(Debug, Clone, Copy)]
pub(crate) struct ConvSpec {
    pub c_in: i64,
    pub c_out: i64,
    pub k: i64,
    pub stride: i64,
    pub padding: i64,
    pub bias: bool,
}

impl ConvSpec {
    pub(crate) fn new(c_in: i64, c_out: i64, k: i64, stride: i64, padding: i64, bias: bool) -> Self {
        ConvSpec {
            c_in,
            c_out,
            k,
            stride,
            padding,
            bias,
        }
    }
}

impl Conv2d {
    pub(crate) fn new(init: &mut Initializer, p: &nn::Path, s: ConvSpec, how: WeightInit) -> Result<Self> {
        let dims = [s.c_out, s.c_in, s.k, s.k];
        let (ws, bs) = init_weight_and_bias(
            init,
            p,
            &dims,
            s.c_in * s.k * s.k,
            s.c_out * s.k * s.k,
            s.bias,
            how,
        )?;
        Ok(Conv2d {
            ws,
            bs,
            stride: s.stride,
            padding: s.padding,
        })
    }
}

impl ModuleT for Conv2d {
    fn forward_t(&self, xs: &Tensor, _train: bool) -> Tensor {
        xs.conv2d(
            &self.ws,
            self.bs.as_ref(),
            [self.stride; 2],
            [self.padding; 2],
            [1, 1],
            1,
        )
    }
}

/// `torch.nn.BatchNorm2d` (eps 1e-5, momentum 0.1) with torchvision's buffers, including
/// `num_batches_tracked`, which tch's own batch norm does not have.
#[derive(Debug)]
pub(crate) struct BatchNorm2d {
    ws: Tensor,
    bs: Tensor,
    running_mean: Tensor,
    running_var: Tensor,
    num_batches_tracked: Tensor,
}

impl BatchNorm2d {
    pub(crate) fn new(p: &nn::Path, c: i64) -> Result<Self> {
        Ok(BatchNorm2d {
            ws: p.f_ones("weight", &[c])?,
            bs: p.f_zeros("bias", &[c])?,
            running_mean: p.f_zeros_no_train("running_mean", &[c])?,
            running_var: p.f_ones_no_train("running_var", &[c])?,
            num_batches_tracked: p.add(
                "num_batches_tracked",
                Tensor::f_zeros([], (Kind::Int64, p.device()))?,
                false,
            ),
        })
    }
}

impl ModuleT for BatchNorm2d {
    fn forward_t(&self, xs: &Tensor, train: bool) -> Tensor {
        if train {
            let mut n = self.num_batches_tracked.shallow_clone();
            tch::no_grad(|| {
                let _ = n.f_add_scalar_(1);
            });
        }
        xs.batch_norm(
            Some(&self.ws),
            Some(&self.bs),
            Some(&self.running_mean),
            Some(&self.running_var),
            train,
            0.1,
            1e-5,
            tch::Cuda::cudnn_is_available(),
        )
    }
}

/// `torch.nn.Linear`; flattens a `[N, ...]` input to `[N, F]` first (idempotent on `[N, F]`), which
/// is where torchvision calls `torch.flatten(x, 1)`.
#[derive(Debug)]
pub(crate) struct Linear {
    ws: Tensor,
    bs: Tensor,
}

impl Linear {
    pub(crate) fn new(
        init: &mut Initializer,
        p: &nn::Path,
        f_in: i64,
        f_out: i64,
        how: WeightInit,
    ) -> Result<Self> {
        let (ws, bs) = init_weight_and_bias(init, p, &[f_out, f_in], f_in, f_out, true, how)?;
        let bs = match bs {
            Some(b) => b,
            None => p.f_zeros("bias", &[f_out])?,
        };
        Ok(Linear { ws, bs })
    }
}

impl ModuleT for Linear {
    fn forward_t(&self, xs: &Tensor, _train: bool) -> Tensor {
        let xs = if xs.dim() > 2 {
            xs.flatten(1, -1)
        } else {
            xs.shallow_clone()
        };
        xs.linear(&self.ws, Some(&self.bs))
    }
}

/// Dropout whose masks come from a seeded [`Rng`] (libtorch's `dropout` would use its global
/// generator). Identity in evaluation mode. Flattens like [`Linear`], since torchvision's AlexNet
/// classifier starts with a dropout right after `torch.flatten`.
#[derive(Debug)]
pub(crate) struct Dropout {
    p: f64,
    rng: Mutex<Rng>,
}

impl Dropout {
    pub(crate) fn new(p: f64, seed: u64) -> Self {
        Dropout {
            p,
            rng: Mutex::new(Rng::new(seed)),
        }
    }
}

impl ModuleT for Dropout {
    fn forward_t(&self, xs: &Tensor, train: bool) -> Tensor {
        let xs = if xs.dim() > 2 {
            xs.flatten(1, -1)
        } else {
            xs.shallow_clone()
        };
        if !train || self.p <= 0.0 {
            return xs;
        }
        let mut rng = self.rng.lock().unwrap_or_else(|e| e.into_inner());
        let keep = rng
            .uniform_tensor(&xs.size(), xs.device())
            .ge(self.p)
            .to_kind(xs.kind());
        xs * keep / (1.0 - self.p)
    }
}

/// ReLU.
pub(crate) fn relu() -> impl ModuleT {
    nn::func_t(|xs, _| xs.relu())
}

/// `torch.nn.MaxPool2d(kernel, stride, padding)`, `ceil_mode=False`.
pub(crate) fn max_pool(k: i64, stride: i64, padding: i64) -> impl ModuleT {
    nn::func_t(move |xs, _| xs.max_pool2d([k, k], [stride, stride], [padding, padding], [1, 1], false))
}

/// `torch.nn.AdaptiveAvgPool2d((h, w))`.
pub(crate) fn adaptive_avg_pool(h: i64, w: i64) -> impl ModuleT {
    nn::func_t(move |xs, _| xs.adaptive_avg_pool2d([h, w]))
}

/// Per-channel input normalisation `(x - mean) / std`; `mean`, `std` are `[1, C, 1, 1]`.
#[derive(Debug)]
pub(crate) struct Normalize {
    pub(crate) mean: Tensor,
    pub(crate) std: Tensor,
}

impl ModuleT for Normalize {
    fn forward_t(&self, xs: &Tensor, _train: bool) -> Tensor {
        // In the input's kind: float32 constants would promote a half-precision input back to
        // float32 before the model's first convolution (a no-op for float32 input).
        let kind = xs.kind();
        (xs - self.mean.to_kind(kind)) / self.std.to_kind(kind)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fast_draws_have_the_right_moments() {
        let mut rng = Rng::new(3);
        let n = 200_001;
        let v = normal_f32(&mut rng, n, 2.0);
        assert_eq!(v.len(), n);
        let mean = v.iter().map(|x| *x as f64).sum::<f64>() / n as f64;
        let var = v.iter().map(|x| (*x as f64 - mean).powi(2)).sum::<f64>() / n as f64;
        assert!(
            mean.abs() < 0.02 && (var.sqrt() - 2.0).abs() < 0.02,
            "{mean} {var}"
        );
        let u = uniform_f32(&mut rng, n, 0.5);
        assert!(u.iter().all(|x| x.abs() < 0.5));
        let var = u.iter().map(|x| (*x as f64).powi(2)).sum::<f64>() / n as f64;
        // U(-b, b) has variance b²/3.
        assert!((var - 0.25 / 3.0).abs() < 0.001, "{var}");
    }
}
