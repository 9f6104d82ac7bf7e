//! The input-invariance check (Kindermans et al., "The (Un)reliability of Saliency Methods", 2017).
//!
//! Take a model `f` whose first stage is a convolution `W x + b`, and a constant shift `s` (one value
//! per input channel). The model `g` with the same weights, the bias `b - sum W s` and padding with
//! the value `s` (the image of the zero padding under the shift) computes `g(x + s) = f(x)` exactly:
//! it sees every input shifted and compensates in its first layer. Both models make the same
//! predictions from the same information, so a method whose map of `x + s` on `g` differs from its
//! map of `x` on `f` is not input-invariant: the map depends on something the model does not.
//! The gradient and Grad-CAM pass; Input x Gradient and Integrated Gradients with a zero baseline
//! fail; Integrated Gradients passes again when its baseline is shifted with the input.
//!
//! [`shift_first_conv`] builds `g` from a [`Staged`] model, [`shifted_zoo_model`] from a zoo model,
//! and [`check_input_invariance`] reports per method whether its maps agree.

use crate::attribution::{Attribution, Target};
use crate::models::{Arch, Init, Model, Staged, ZooConfig};
use crate::rng::Rng;
use crate::{Error, Result};
use tch::nn::{ModuleT, VarStore};
use tch::{Kind, Tensor};

/// Where a model's first convolution is and how it is laid out (square kernel, groups 1,
/// dilation 1).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FirstConv {
    /// The stage name (the model's first layer).
    pub layer: String,
    /// The variable path of its parameters: `{var}.weight` `[O, C, k, k]`, optional `{var}.bias`.
    pub var: String,
    /// Stride.
    pub stride: i64,
    /// Zero padding on every side.
    pub padding: i64,
}

impl FirstConv {
    /// The first convolution of a zoo architecture built at `vs.root()` without a normalisation
    /// stage: `conv1` (3x3, stride 1, padding 1) for the small CNN, `conv1` (7x7, stride 2, padding 3)
    /// for ResNets, `features.0` for VGG-16 (padding 1) and AlexNet (stride 4, padding 2).
    ///
    /// ```
    /// use cnn_explain::models::Arch;
    /// use cnn_explain::quality::FirstConv;
    /// assert_eq!(FirstConv::of(Arch::SmallCnn).layer, "conv1");
    /// ```
    pub fn of(arch: Arch) -> Self {
        let (layer, stride, padding) = match arch {
            Arch::SmallCnn => ("conv1", 1, 1),
            Arch::ResNet18 | Arch::ResNet34 | Arch::ResNet50 => ("conv1", 2, 3),
            Arch::Vgg16 => ("features.0", 1, 1),
            Arch::AlexNet => ("features.0", 4, 2),
        };
        FirstConv {
            layer: layer.into(),
            var: layer.into(),
            stride,
            padding,
        }
    }
}

/// The first convolution of the shifted model: the original weight (shared), the compensating bias,
/// padding with the shift value.
#[derive(Debug)]
struct ShiftedConv {
    ws: Tensor,
    bs: Tensor,
    shift: Tensor,
    stride: i64,
    padding: i64,
}

impl ModuleT for ShiftedConv {
    fn forward_t(&self, xs: &Tensor, _train: bool) -> Tensor {
        let p = self.padding;
        let padded = if p > 0 {
            let pad = [p, p, p, p];
            let inside = xs.ones_like().constant_pad_nd(pad);
            xs.constant_pad_nd(pad) + (1.0 - inside) * &self.shift
        } else {
            xs.shallow_clone()
        };
        padded.conv2d(&self.ws, Some(&self.bs), [self.stride], [0], [1], 1)
    }
}

/// Turns `model` into the shifted model `g` of Kindermans et al.: replaces its first stage,
/// the convolution described by `conv` with parameters in `vs`, by one with the same weight, bias
/// `b - sum_{c,i,j} W[o, c, i, j] shift[c]` and padding with `shift[c]`, so that
/// `g(x + shift) = f(x)`.
///
/// `shift` has one value per input channel. Before replacing, the new stage is checked against the
/// old one on a seeded random probe: a wrong stride or padding is an error, not a silently different
/// model. Build a second copy of the model for this (the first stays as it was), see
/// [`shifted_zoo_model`].
///
/// ```
/// use cnn_explain::prelude::*;
/// use cnn_explain::quality::{shift_first_conv, FirstConv};
/// use tch::nn::VarStore;
/// let conv = tch::nn::ConvConfig { padding: 1, ..Default::default() };
/// let build = |vs: &VarStore| Staged::new(3, 2, Device::Cpu)
///     .leaf("conv", tch::nn::conv2d(vs.root() / "conv", 3, 2, 3, conv))
///     .leaf("pool", tch::nn::func(|xs| xs.mean_dim(&[2i64, 3][..], false, Kind::Float)));
/// let vs = VarStore::new(Device::Cpu);
/// let original = build(&vs);
/// // A second copy with the same weights, then shifted.
/// let mut vs2 = VarStore::new(Device::Cpu);
/// let mut shifted = build(&vs2);
/// vs2.copy(&vs)?;
/// let first = FirstConv { layer: "conv".into(), var: "conv".into(), stride: 1, padding: 1 };
/// shift_first_conv(&mut shifted, &vs2, &first, &[0.5, -1.0, 2.0])?;
/// let xs = Tensor::rand([1, 3, 5, 5], (Kind::Float, Device::Cpu));
/// let s = Tensor::from_slice(&[0.5f32, -1.0, 2.0]).view([1, 3, 1, 1]);
/// let diff = (original.logits(&xs)? - shifted.logits(&(&xs + s))?).abs().max().double_value(&[]);
/// assert!(diff < 1e-5);
/// # Ok::<(), cnn_explain::Error>(())
/// ```
pub fn shift_first_conv(model: &mut Staged, vs: &VarStore, conv: &FirstConv, shift: &[f64]) -> Result<()> {
    let layers = model.layers();
    if layers.first() != Some(&conv.layer) {
        return Err(Error::invalid(
            "conv.layer",
            format!(
                "`{}` must be the model's first stage, which is `{}` (a model with a normalisation stage in front \
                 cannot be shifted here)",
                conv.layer,
                layers.first().map_or("none", |s| s.as_str())
            ),
        ));
    }
    let c = model.input_channels();
    if shift.len() as i64 != c || shift.iter().any(|v| !v.is_finite()) {
        return Err(Error::invalid(
            "shift",
            format!("expected {c} finite values (one per input channel), got {shift:?}"),
        ));
    }
    if conv.stride < 1 || conv.padding < 0 {
        return Err(Error::invalid(
            "conv",
            format!(
                "stride must be >= 1 and padding >= 0, got {} and {}",
                conv.stride, conv.padding
            ),
        ));
    }
    let vars = vs.variables();
    let ws = vars.get(&format!("{}.weight", conv.var)).ok_or_else(|| {
        Error::invalid(
            "conv.var",
            format!("the VarStore has no variable `{}.weight`", conv.var),
        )
    })?;
    let wsize = ws.size();
    if wsize.len() != 4 || wsize[1] != c || wsize[2] != wsize[3] {
        return Err(Error::shape(
            format!("{}.weight", conv.var),
            format!("[O, {c}, k, k] (a square convolution of the {c} input channels)"),
            &wsize,
        ));
    }
    let device = ws.device();
    let s = Tensor::from_slice(&shift.iter().map(|v| *v as f32).collect::<Vec<_>>())
        .to_device(device)
        .to_kind(ws.kind())
        .view([1, c, 1, 1]);
    let bias = match vars.get(&format!("{}.bias", conv.var)) {
        Some(b) if b.size() == [wsize[0]] => b.detach().copy(),
        Some(b) => {
            return Err(Error::shape(
                format!("{}.bias", conv.var),
                format!("[{}]", wsize[0]),
                &b.size(),
            ))
        }
        None => Tensor::zeros([wsize[0]], (ws.kind(), device)),
    };
    let compensation = (ws.detach() * &s).f_sum_dim_intlist([1i64, 2, 3].as_slice(), false, ws.kind())?;
    let module = ShiftedConv {
        ws: ws.shallow_clone(),
        bs: bias - compensation,
        shift: s.shallow_clone(),
        stride: conv.stride,
        padding: conv.padding,
    };

    // The probe: the new stage on x + s must give the old stage's output on x.
    let side = (wsize[2] + 2 * conv.stride).max(model.min_input_size());
    let probe = Rng::new(0)
        .uniform_tensor(&[1, c, side, side], device)
        .to_kind(ws.kind());
    let (old, new) = tch::no_grad(|| -> Result<(Tensor, Tensor)> {
        let old = model.forward_to(&probe, &conv.layer)?;
        let new = module.forward_t(&(&probe + &s), false);
        Ok((old, new))
    })?;
    let ok = old.size() == new.size() && {
        let scale = old.abs().max().double_value(&[]).max(1.0);
        (&old - &new).abs().max().double_value(&[]) <= 1e-4 * scale
    };
    if !ok {
        return Err(Error::invalid(
            "conv",
            format!(
                "stage `{}` is not a convolution with weight `{}.weight`, stride {} and padding {} \
                 (its output differs from one on a probe); check the layout",
                conv.layer, conv.var, conv.stride, conv.padding
            ),
        ));
    }
    let k = model.num_classes();
    model.replace(&conv.layer, module, k)
}

/// A second copy of the zoo model `config` with the weights of `vs` (built at `vs.root()`), shifted
/// by `shift` with [`shift_first_conv`]: returns the shifted model and its own `VarStore`.
///
/// `config` must have no normalisation stage (its first stage must be the convolution).
///
/// ```
/// use cnn_explain::prelude::*;
/// use cnn_explain::models::ZooConfig;
/// use cnn_explain::quality::shifted_zoo_model;
/// let vs = tch::nn::VarStore::new(Device::Cpu);
/// let config = ZooConfig::default(); // the small CNN
/// let model = config.build(&vs.root())?;
/// let (shifted, _vs2) = shifted_zoo_model(&config, &vs, &[0.1, 0.2, 0.3])?;
/// let xs = Tensor::rand([1, 3, 8, 8], (Kind::Float, Device::Cpu));
/// let s = Tensor::from_slice(&[0.1f32, 0.2, 0.3]).view([1, 3, 1, 1]);
/// let diff = (model.logits(&xs)? - shifted.logits(&(&xs + s))?).abs().max().double_value(&[]);
/// assert!(diff < 1e-5);
/// # Ok::<(), cnn_explain::Error>(())
/// ```
pub fn shifted_zoo_model(config: &ZooConfig, vs: &VarStore, shift: &[f64]) -> Result<(Staged, VarStore)> {
    if config.normalization.is_some() {
        return Err(Error::invalid(
            "config.normalization",
            "the model's first stage is `normalize`, not a convolution; shift a model without it",
        ));
    }
    let mut vs2 = VarStore::new(vs.device());
    let mut model = ZooConfig {
        init: Init::Zeros,
        ..config.clone()
    }
    .build(&vs2.root())?;
    vs2.copy(vs)?;
    shift_first_conv(&mut model, &vs2, &FirstConv::of(config.arch), shift)?;
    Ok((model, vs2))
}

/// One method of [`check_input_invariance`]: the configuration used on the original model and the
/// one used on the shifted model (the same, except for methods with a reference point such as
/// Integrated Gradients' baseline, which may be shifted too).
pub struct InvarianceCase {
    /// The name in the report.
    pub name: String,
    /// The method run on the original model with `x`.
    pub original: Box<dyn Attribution>,
    /// The method run on the shifted model with `x + shift`.
    pub shifted: Box<dyn Attribution>,
}

impl std::fmt::Debug for InvarianceCase {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("InvarianceCase")
            .field("name", &self.name)
            .finish()
    }
}

impl InvarianceCase {
    /// The same method on both models, named after it.
    ///
    /// ```
    /// use cnn_explain::attribution::gradient::Saliency;
    /// use cnn_explain::quality::InvarianceCase;
    /// assert_eq!(InvarianceCase::same(Saliency::default()).name, "Saliency (abs)");
    /// ```
    pub fn same(method: impl Attribution + Clone + 'static) -> Self {
        InvarianceCase {
            name: method.name(),
            original: Box::new(method.clone()),
            shifted: Box::new(method),
        }
    }

    /// Two configurations of one method (for example IG with a zero baseline on the original and
    /// a baseline equal to the shift on the shifted model).
    pub fn pair(
        name: &str,
        original: impl Attribution + 'static,
        shifted: impl Attribution + 'static,
    ) -> Self {
        InvarianceCase {
            name: name.to_string(),
            original: Box::new(original),
            shifted: Box::new(shifted),
        }
    }
}

/// Whether one method's maps agree on the original and the shifted model.
#[derive(Debug, Clone, PartialEq)]
pub struct InvarianceReport {
    /// The case's name.
    pub method: String,
    /// The largest absolute difference between the two maps.
    pub max_abs_diff: f64,
    /// `max_abs_diff` divided by the largest absolute value of the original map (the difference
    /// itself when that map is all zero).
    pub relative_diff: f64,
    /// `relative_diff <= tolerance`.
    pub invariant: bool,
}

/// The input-invariance check: runs each case's `original` method on `original` with `input`
/// `[N, C, H, W]`, its `shifted` method on `shifted` with `input + shift`, and compares the maps.
///
/// The target is resolved on the original model and used for both. The two models must compute the
/// same logits (relative difference at most `tolerance`), else the call fails: the check is only
/// meaningful for equivalent models. A `tolerance` of `1e-4` suits `f32` models.
///
/// ```
/// use cnn_explain::attribution::gradient::{InputXGradient, Saliency};
/// use cnn_explain::prelude::*;
/// use cnn_explain::models::ZooConfig;
/// use cnn_explain::quality::{check_input_invariance, shifted_zoo_model, InvarianceCase};
/// let vs = tch::nn::VarStore::new(Device::Cpu);
/// let config = ZooConfig::default();
/// let model = config.build(&vs.root())?;
/// let shift = [0.5, 0.5, 0.5];
/// let (shifted, _vs2) = shifted_zoo_model(&config, &vs, &shift)?;
/// let xs = Tensor::rand([1, 3, 8, 8], (Kind::Float, Device::Cpu));
/// let cases = [InvarianceCase::same(Saliency::default()), InvarianceCase::same(InputXGradient)];
/// let report = check_input_invariance(&model, &shifted, &shift, &xs, &Target::Predicted, &cases, 1e-4)?;
/// assert!(report[0].invariant && !report[1].invariant);
/// # Ok::<(), cnn_explain::Error>(())
/// ```
pub fn check_input_invariance(
    original: &dyn Model,
    shifted: &dyn Model,
    shift: &[f64],
    input: &Tensor,
    target: &Target,
    cases: &[InvarianceCase],
    tolerance: f64,
) -> Result<Vec<InvarianceReport>> {
    if !(tolerance.is_finite() && tolerance >= 0.0) {
        return Err(Error::invalid(
            "tolerance",
            format!("must be finite and >= 0, got {tolerance}"),
        ));
    }
    original.check_input(input)?;
    let c = original.input_channels();
    if shift.len() as i64 != c || shift.iter().any(|v| !v.is_finite()) {
        return Err(Error::invalid(
            "shift",
            format!("expected {c} finite values (one per input channel), got {shift:?}"),
        ));
    }
    let xs = input.to_device(original.device()).to_kind(Kind::Float).detach();
    let s = Tensor::from_slice(&shift.iter().map(|v| *v as f32).collect::<Vec<_>>())
        .to_device(xs.device())
        .view([1, c, 1, 1]);
    let xs_shifted = (&xs + &s).to_device(shifted.device());
    shifted.check_input(&xs_shifted)?;
    let max_abs = |t: &Tensor| t.abs().max().double_value(&[]);
    let (l1, l2) = tch::no_grad(|| {
        (
            original.forward_t(&xs, false),
            shifted.forward_t(&xs_shifted, false).to_device(xs.device()),
        )
    });
    if l1.size() != l2.size() || max_abs(&(&l1 - &l2)) > tolerance * max_abs(&l1).max(1.0) {
        return Err(Error::invalid(
            "shifted",
            "the shifted model's logits on input + shift differ from the original's on input: the models are not equivalent",
        ));
    }
    let classes = target.resolve(original, &l1)?;
    let target = Target::PerSample(Vec::<i64>::try_from(classes.to_device(tch::Device::Cpu))?);
    cases
        .iter()
        .map(|case| {
            let a = case.original.attribute(original, &xs, &target)?.detach();
            let b = case
                .shifted
                .attribute(shifted, &xs_shifted, &target)?
                .detach()
                .to_device(a.device());
            if a.size() != b.size() {
                return Err(Error::shape(
                    "map on the shifted model",
                    format!("the shape of the map on the original, {:?}", a.size()),
                    &b.size(),
                ));
            }
            let diff = max_abs(&(&a - &b));
            let scale = max_abs(&a);
            let relative = if scale > 0.0 { diff / scale } else { diff };
            Ok(InvarianceReport {
                method: case.name.clone(),
                max_abs_diff: diff,
                relative_diff: relative,
                invariant: relative <= tolerance,
            })
        })
        .collect()
}
