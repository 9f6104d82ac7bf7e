//! Class activation maps: one pipeline, one variation point.
//!
//! A CAM answers "where in the image is the evidence for this class, as seen by layer `l`?". Every
//! method of the family takes the activation `A` `[N, K, h, w]` of a convolutional layer and combines
//! its channels: `map = ReLU(sum_k w_k * A_k)`, upsampled to the input size and normalised per sample
//! to `[0, 1]`. The methods differ only in the weights `w`, so [`Cam`] is the pipeline and a
//! [`CamWeights`] value says how to weight channels (`[N, K, 1, 1]`) or elements (`[N, K, h, w]`).
//!
//! | alias | weights | paper |
//! |---|---|---|
//! | [`ClassActivationMap`] | fc weights of the class (GAP + linear heads), no ReLU | Zhou et al. 2016, *Learning Deep Features for Discriminative Localization* |
//! | [`GradCam`] | spatial mean of the gradient | Selvaraju et al. 2017, *Grad-CAM* |
//! | [`GradCamPlusPlus`] | `sum_ij alpha_ij relu(g_ij)`, `alpha` from `g^2`, `g^3` | Chattopadhay et al. 2018, *Grad-CAM++* |
//! | [`SmoothGradCamPlusPlus`] | Grad-CAM++ on gradients averaged over noisy inputs | Omeiza et al. 2019, *Smooth Grad-CAM++* |
//! | [`XGradCam`] | `sum_ij g_ij A_ij / sum_ij A_ij` | Fu et al. 2020, *Axiom-based Grad-CAM* |
//! | [`LayerCam`] | element weights `relu(g)` | Jiang et al. 2021, *LayerCAM* |
//! | [`HiResCam`] | element weights `g` | Draelos & Carin 2020, *HiResCAM* |
//! | [`ScoreCam`] | softmax over channels of the score of the input masked by each channel | Wang et al. 2020, *Score-CAM* |
//! | [`SsCam`] | Score-CAM with noisy masks, averaged | Wang et al. 2020, *SS-CAM* |
//! | [`IsCam`] | Score-CAM integrated over mask intensities | Naidu et al. 2020, *IS-CAM* |
//! | [`EigenCam`] | first principal component of the activations (no class) | Muhammad & Yeasin 2020, *Eigen-CAM* |
//!
//! The formulas follow pytorch-grad-cam 1.5.7 and torchcam 0.5.0 and are checked against both
//! (`tests/cam_golden.rs`, made by `scripts/golden/cam_golden.py`). Where they differ, the
//! documentation of the weights says which one is followed and why.
//!
//! **Cost.** The activation is computed without a graph, then made a leaf; the rest of the model
//! runs from it, and the gradient of the target scores is taken with respect to that leaf only. So a
//! gradient CAM costs one forward pass plus a backward pass that stops at the layer: no weight
//! gradients, nothing below the layer, and the variables' `.grad` fields are never touched.
//!
//! **Upsampling** is bilinear with `align_corners = false` (half-pixel centres), as torchcam's
//! `F.interpolate` and OpenCV's `cv2.resize` (pytorch-grad-cam) do.
//!
//! ```
//! use cnn_explain::attribution::cam::GradCam;
//! use cnn_explain::prelude::*;
//! use tch::nn;
//!
//! let vs = nn::VarStore::new(Device::Cpu);
//! let root = vs.root();
//! let model = Staged::new(3, 2, Device::Cpu)
//!     .leaf("conv", nn::conv2d(&root / "conv", 3, 4, 3, Default::default()))
//!     .leaf("relu", nn::func(|xs| xs.relu()))
//!     .leaf("pool", nn::func(|xs| xs.adaptive_avg_pool2d([1, 1]).flatten(1, -1)))
//!     .leaf("fc", nn::linear(&root / "fc", 4, 2, Default::default()));
//! let xs = Tensor::rand([2, 3, 8, 8], (Kind::Float, Device::Cpu));
//! let map = GradCam::new("relu").attribute(&model, &xs, &Target::Predicted)?;
//! assert_eq!(map.size(), [2, 1, 8, 8]);
//! # Ok::<(), cnn_explain::Error>(())
//! ```

use super::{check_positive, prepare_input, select_scores, Attribution, Target};
use crate::models::{fast_layout, Model};
use crate::rng::Rng;
use crate::{Error, Result};
use std::cell::OnceCell;
use tch::{Kind, Tensor};

/// How a [`CamWeights`] combines the activation `A` `[N, K, h, w]` into a map.
#[derive(Debug)]
pub enum CamCombination {
    /// Channel weights `[N, K, 1, 1]`: `map = sum_k w_k * A_k`.
    Channel(Tensor),
    /// Element weights `[N, K, h, w]`: `map = sum_k w_k(i, j) * A_k(i, j)`.
    Element(Tensor),
    /// A finished map `[N, 1, h, w]` before ReLU (Eigen-CAM, which projects rather than weights).
    Map(Tensor),
}

/// The one variation point of the CAM family: how to weight the channels of the activation.
pub trait CamWeights {
    /// The weights (or map) for the batch described by `ctx`.
    ///
    /// ```
    /// use cnn_explain::attribution::cam::{Cam, CamCombination, CamContext, CamWeights};
    /// use cnn_explain::prelude::*;
    /// use tch::nn;
    ///
    /// /// Every channel counts the same: the mean activation.
    /// struct Uniform;
    /// impl CamWeights for Uniform {
    ///     fn weights(&self, ctx: &CamContext) -> cnn_explain::Result<CamCombination> {
    ///         let [n, k, _, _] = ctx.activation_size();
    ///         Ok(CamCombination::Channel(Tensor::ones([n, k, 1, 1], (Kind::Float, Device::Cpu))))
    ///     }
    ///     fn name(&self) -> String { "Uniform".into() }
    /// }
    /// let model = Staged::new(3, 2, Device::Cpu)
    ///     .leaf("id", nn::func(|xs| xs.shallow_clone()))
    ///     .leaf("head", nn::func(|xs| xs.mean_dim([2, 3].as_slice(), false, Kind::Float).narrow(1, 0, 2)));
    /// let xs = Tensor::rand([1, 3, 4, 4], (Kind::Float, Device::Cpu));
    /// let map = Cam::with_weights("id", Uniform).attribute(&model, &xs, &Target::Class(0))?;
    /// assert_eq!(map.size(), [1, 1, 4, 4]);
    /// # Ok::<(), cnn_explain::Error>(())
    /// ```
    fn weights(&self, ctx: &CamContext) -> Result<CamCombination>;
    /// The method's name with its main settings.
    fn name(&self) -> String;
}

/// What a [`CamWeights`] can look at: the activation, the gradient (computed on first use), the
/// model, the input, the target classes, and helpers for extra forward passes.
pub struct CamContext<'a> {
    model: &'a dyn Model,
    input: &'a Tensor,
    layer: &'a str,
    act: Tensor,
    scores: Tensor,
    classes: Tensor,
    grad: OnceCell<Tensor>,
}

impl<'a> CamContext<'a> {
    /// Runs the model on `input` `[N, C, H, W]` up to `layer` (no graph below the layer), makes the
    /// activation a leaf, runs the rest, and resolves `target`.
    ///
    /// ```
    /// use cnn_explain::attribution::cam::CamContext;
    /// use cnn_explain::prelude::*;
    /// use tch::nn;
    ///
    /// let model = Staged::new(1, 1, Device::Cpu)
    ///     .leaf("double", nn::func(|xs| xs * 2.0))
    ///     .leaf("head", nn::func(|xs| xs.sum_dim_intlist([1, 2, 3].as_slice(), false, Kind::Float).unsqueeze(1)));
    /// let xs = Tensor::ones([1, 1, 2, 2], (Kind::Float, Device::Cpu));
    /// let ctx = CamContext::new(&model, &xs, "double", &Target::Class(0))?;
    /// assert_eq!(ctx.scores().double_value(&[0]), 8.0);
    /// assert_eq!(ctx.gradient()?.double_value(&[0, 0, 1, 1]), 1.0);
    /// # Ok::<(), cnn_explain::Error>(())
    /// ```
    pub fn new(model: &'a dyn Model, input: &'a Tensor, layer: &'a str, target: &Target) -> Result<Self> {
        model.check_layer(layer)?;
        model.check_input(input)?;
        let act = leaf_activation(model, input, layer)?;
        let size = act.size();
        if size.len() != 4 {
            return Err(Error::shape(
                format!("activation of layer `{layer}`"),
                "a convolutional feature map [N, K, h, w]; pick a layer before global pooling",
                &size,
            ));
        }
        let logits = model.forward_from(&act, layer)?;
        let classes = target.resolve(model, &logits)?;
        let scores = select_scores(&logits, &classes);
        Ok(CamContext {
            model,
            input,
            layer,
            act,
            scores,
            classes,
            grad: OnceCell::new(),
        })
    }

    /// The model.
    ///
    /// ```
    /// # use cnn_explain::attribution::cam::CamContext;
    /// # use cnn_explain::prelude::*;
    /// # let model = Staged::new(1, 1, Device::Cpu).leaf("a", tch::nn::func(|xs| xs * 1.0))
    /// #     .leaf("b", tch::nn::func(|xs| xs.flatten(1, -1).sum_dim_intlist(1, true, Kind::Float)));
    /// # let xs = Tensor::ones([1, 1, 2, 2], (Kind::Float, Device::Cpu));
    /// let ctx = CamContext::new(&model, &xs, "a", &Target::Class(0))?;
    /// assert_eq!(ctx.model().num_classes(), 1);
    /// # Ok::<(), cnn_explain::Error>(())
    /// ```
    pub fn model(&self) -> &dyn Model {
        self.model
    }

    /// The input `[N, C, H, W]` (float, on the model's device).
    ///
    /// ```
    /// # use cnn_explain::attribution::cam::CamContext;
    /// # use cnn_explain::prelude::*;
    /// # let model = Staged::new(1, 1, Device::Cpu).leaf("a", tch::nn::func(|xs| xs * 1.0))
    /// #     .leaf("b", tch::nn::func(|xs| xs.flatten(1, -1).sum_dim_intlist(1, true, Kind::Float)));
    /// # let xs = Tensor::ones([1, 1, 2, 2], (Kind::Float, Device::Cpu));
    /// let ctx = CamContext::new(&model, &xs, "a", &Target::Class(0))?;
    /// assert_eq!(ctx.input().size(), [1, 1, 2, 2]);
    /// # Ok::<(), cnn_explain::Error>(())
    /// ```
    pub fn input(&self) -> &Tensor {
        self.input
    }

    /// The layer's name.
    ///
    /// ```
    /// # use cnn_explain::attribution::cam::CamContext;
    /// # use cnn_explain::prelude::*;
    /// # let model = Staged::new(1, 1, Device::Cpu).leaf("a", tch::nn::func(|xs| xs * 1.0))
    /// #     .leaf("b", tch::nn::func(|xs| xs.flatten(1, -1).sum_dim_intlist(1, true, Kind::Float)));
    /// # let xs = Tensor::ones([1, 1, 2, 2], (Kind::Float, Device::Cpu));
    /// let ctx = CamContext::new(&model, &xs, "a", &Target::Class(0))?;
    /// assert_eq!(ctx.layer(), "a");
    /// # Ok::<(), cnn_explain::Error>(())
    /// ```
    pub fn layer(&self) -> &str {
        self.layer
    }

    /// The activation `A` `[N, K, h, w]` at the layer, detached.
    ///
    /// ```
    /// # use cnn_explain::attribution::cam::CamContext;
    /// # use cnn_explain::prelude::*;
    /// # let model = Staged::new(1, 1, Device::Cpu).leaf("a", tch::nn::func(|xs| xs * 3.0))
    /// #     .leaf("b", tch::nn::func(|xs| xs.flatten(1, -1).sum_dim_intlist(1, true, Kind::Float)));
    /// # let xs = Tensor::ones([1, 1, 2, 2], (Kind::Float, Device::Cpu));
    /// let ctx = CamContext::new(&model, &xs, "a", &Target::Class(0))?;
    /// assert_eq!(ctx.activation().double_value(&[0, 0, 0, 0]), 3.0);
    /// # Ok::<(), cnn_explain::Error>(())
    /// ```
    pub fn activation(&self) -> Tensor {
        self.act.detach()
    }

    /// The activation's size `[N, K, h, w]`.
    ///
    /// ```
    /// # use cnn_explain::attribution::cam::CamContext;
    /// # use cnn_explain::prelude::*;
    /// # let model = Staged::new(1, 1, Device::Cpu).leaf("a", tch::nn::func(|xs| xs * 3.0))
    /// #     .leaf("b", tch::nn::func(|xs| xs.flatten(1, -1).sum_dim_intlist(1, true, Kind::Float)));
    /// # let xs = Tensor::ones([1, 1, 2, 2], (Kind::Float, Device::Cpu));
    /// let ctx = CamContext::new(&model, &xs, "a", &Target::Class(0))?;
    /// assert_eq!(ctx.activation_size(), [1, 1, 2, 2]);
    /// # Ok::<(), cnn_explain::Error>(())
    /// ```
    pub fn activation_size(&self) -> [i64; 4] {
        let s = self.act.size();
        [s[0], s[1], s[2], s[3]]
    }

    /// The target class of every sample, `[N]` int64.
    ///
    /// ```
    /// # use cnn_explain::attribution::cam::CamContext;
    /// # use cnn_explain::prelude::*;
    /// # let model = Staged::new(1, 1, Device::Cpu).leaf("a", tch::nn::func(|xs| xs * 3.0))
    /// #     .leaf("b", tch::nn::func(|xs| xs.flatten(1, -1).sum_dim_intlist(1, true, Kind::Float)));
    /// # let xs = Tensor::ones([2, 1, 2, 2], (Kind::Float, Device::Cpu));
    /// let ctx = CamContext::new(&model, &xs, "a", &Target::Predicted)?;
    /// assert_eq!(Vec::<i64>::try_from(ctx.classes())?, [0, 0]);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn classes(&self) -> &Tensor {
        &self.classes
    }

    /// The target scores (logits of the target classes) `[N]`, detached.
    ///
    /// ```
    /// # use cnn_explain::attribution::cam::CamContext;
    /// # use cnn_explain::prelude::*;
    /// # let model = Staged::new(1, 1, Device::Cpu).leaf("a", tch::nn::func(|xs| xs * 3.0))
    /// #     .leaf("b", tch::nn::func(|xs| xs.flatten(1, -1).sum_dim_intlist(1, true, Kind::Float)));
    /// # let xs = Tensor::ones([1, 1, 2, 2], (Kind::Float, Device::Cpu));
    /// let ctx = CamContext::new(&model, &xs, "a", &Target::Class(0))?;
    /// assert_eq!(ctx.scores().double_value(&[0]), 12.0);
    /// # Ok::<(), cnn_explain::Error>(())
    /// ```
    pub fn scores(&self) -> Tensor {
        self.scores.detach()
    }

    /// The gradient of the target scores with respect to the activation, `dY_c / dA` `[N, K, h, w]`.
    /// Computed on the first call (a backward pass that stops at the layer), cached afterwards.
    ///
    /// ```
    /// # use cnn_explain::attribution::cam::CamContext;
    /// # use cnn_explain::prelude::*;
    /// # let model = Staged::new(1, 1, Device::Cpu).leaf("a", tch::nn::func(|xs| xs * 3.0))
    /// #     .leaf("b", tch::nn::func(|xs| xs.flatten(1, -1).sum_dim_intlist(1, true, Kind::Float)));
    /// # let xs = Tensor::ones([1, 1, 2, 2], (Kind::Float, Device::Cpu));
    /// let ctx = CamContext::new(&model, &xs, "a", &Target::Class(0))?;
    /// assert_eq!(ctx.gradient()?.double_value(&[0, 0, 0, 1]), 1.0);
    /// # Ok::<(), cnn_explain::Error>(())
    /// ```
    pub fn gradient(&self) -> Result<Tensor> {
        if let Some(g) = self.grad.get() {
            return Ok(g.shallow_clone());
        }
        let g = layer_gradient(&self.scores, &self.act, self.layer)?;
        let _ = self.grad.set(g.shallow_clone());
        Ok(g)
    }

    /// The second- and third-order terms of Grad-CAM++, `(g^2, g^3)` `[N, K, h, w]`.
    ///
    /// With the exponential of the score as the class output (Chattopadhay et al., eq. 17-19), the
    /// second and third derivatives of `exp(Y_c)` are `exp(Y_c) g^2` and `exp(Y_c) g^3` for piecewise
    /// linear networks; the `exp(Y_c)` factors cancel in `alpha`, leaving these closed forms.
    ///
    /// ```
    /// # use cnn_explain::attribution::cam::CamContext;
    /// # use cnn_explain::prelude::*;
    /// # let model = Staged::new(1, 1, Device::Cpu).leaf("a", tch::nn::func(|xs| xs * 3.0))
    /// #     .leaf("b", tch::nn::func(|xs| xs.flatten(1, -1).sum_dim_intlist(1, true, Kind::Float) * 2.0));
    /// # let xs = Tensor::ones([1, 1, 2, 2], (Kind::Float, Device::Cpu));
    /// let ctx = CamContext::new(&model, &xs, "a", &Target::Class(0))?;
    /// let (g2, g3) = ctx.gradient_powers()?;
    /// assert_eq!((g2.double_value(&[0, 0, 0, 0]), g3.double_value(&[0, 0, 0, 0])), (4.0, 8.0));
    /// # Ok::<(), cnn_explain::Error>(())
    /// ```
    pub fn gradient_powers(&self) -> Result<(Tensor, Tensor)> {
        let g = self.gradient()?;
        let g2 = g.square();
        let g3 = &g2 * &g;
        Ok((g2, g3))
    }

    /// Activation `[N, K, h, w]` and gradient of the target scores at the layer `[N, K, h, w]` for
    /// another input `xs` `[N, C, H, W]` with the same targets (Smooth Grad-CAM++'s noisy copies).
    ///
    /// ```
    /// # use cnn_explain::attribution::cam::CamContext;
    /// # use cnn_explain::prelude::*;
    /// # let model = Staged::new(1, 1, Device::Cpu).leaf("a", tch::nn::func(|xs| xs.square()))
    /// #     .leaf("b", tch::nn::func(|xs| xs.flatten(1, -1).sum_dim_intlist(1, true, Kind::Float)));
    /// # let xs = Tensor::ones([1, 1, 2, 2], (Kind::Float, Device::Cpu));
    /// let ctx = CamContext::new(&model, &xs, "a", &Target::Class(0))?;
    /// let (act, grad) = ctx.activation_and_gradient_at(&(ctx.input() * 2.0))?;
    /// assert_eq!((act.double_value(&[0, 0, 0, 0]), grad.double_value(&[0, 0, 0, 0])), (4.0, 1.0));
    /// # Ok::<(), cnn_explain::Error>(())
    /// ```
    pub fn activation_and_gradient_at(&self, xs: &Tensor) -> Result<(Tensor, Tensor)> {
        if xs.size() != self.input.size() {
            return Err(Error::shape(
                "xs",
                format!("the input's shape {:?}", self.input.size()),
                &xs.size(),
            ));
        }
        let act = leaf_activation(self.model, xs, self.layer)?;
        let logits = self.model.forward_from(&act, self.layer)?;
        let scores = select_scores(&logits, &self.classes);
        let grad = layer_gradient(&scores, &act, self.layer)?;
        Ok((act.detach(), grad))
    }

    /// Target scores (logits) of many inputs, without gradients: `xs` `[M, C, H, W]` where row `m`
    /// belongs to sample `owner[m]` (`owner` `[M]` int64), run in batches of at most `batch`.
    /// Returns `[M]`: the logit of `owner[m]`'s target class for row `m`.
    ///
    /// ```
    /// # use cnn_explain::attribution::cam::CamContext;
    /// # use cnn_explain::prelude::*;
    /// # let model = Staged::new(1, 1, Device::Cpu).leaf("a", tch::nn::func(|xs| xs * 1.0))
    /// #     .leaf("b", tch::nn::func(|xs| xs.flatten(1, -1).sum_dim_intlist(1, true, Kind::Float)));
    /// # let xs = Tensor::ones([1, 1, 2, 2], (Kind::Float, Device::Cpu));
    /// let ctx = CamContext::new(&model, &xs, "a", &Target::Class(0))?;
    /// let many = Tensor::ones([3, 1, 2, 2], (Kind::Float, Device::Cpu)) * Tensor::from_slice(&[1f32, 2., 3.]).view([3, 1, 1, 1]);
    /// let s = ctx.scores_of(&many, &Tensor::from_slice(&[0i64, 0, 0]), 2)?;
    /// assert_eq!(Vec::<f32>::try_from(s)?, [4.0, 8.0, 12.0]);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn scores_of(&self, xs: &Tensor, owner: &Tensor, batch: usize) -> Result<Tensor> {
        check_positive("batch", batch)?;
        let m = xs.size().first().copied().unwrap_or(0);
        if owner.size() != [m] {
            return Err(Error::shape(
                "owner",
                format!("[{m}] (one per row)"),
                &owner.size(),
            ));
        }
        let classes = self.classes.f_index_select(0, owner)?;
        let mut out = Vec::new();
        let mut start = 0;
        while start < m {
            let len = (batch as i64).min(m - start);
            let chunk = xs.narrow(0, start, len);
            let chunk = fast_layout(self.model, &chunk);
            let logits = tch::no_grad(|| self.model.logits(&chunk))?;
            out.push(select_scores(&logits, &classes.narrow(0, start, len)));
            start += len;
        }
        Ok(Tensor::f_cat(&out, 0)?)
    }
}

/// The activation of `layer` for `xs` as a float32 leaf of a new graph, so the rest of the network
/// can run from it and the backward pass stops there. A large batch runs to the layer channels-last
/// (faster on the CPU, same values, see [`fast_layout`]); the activation is made contiguous again
/// for the weighting code, which reshapes it.
fn leaf_activation(model: &dyn Model, xs: &Tensor, layer: &str) -> Result<Tensor> {
    Ok(tch::no_grad(|| model.forward_to(&fast_layout(model, xs), layer))?
        .detach()
        .to_kind(Kind::Float)
        .contiguous()
        .set_requires_grad(true))
}

/// `d sum(scores) / d act`, with a clear error when the scores do not depend on the layer.
fn layer_gradient(scores: &Tensor, act: &Tensor, layer: &str) -> Result<Tensor> {
    if !scores.requires_grad() {
        return Err(Error::invalid(
            "layer",
            format!("the model's output does not depend on layer `{layer}`"),
        ));
    }
    let mut g = Tensor::f_run_backward(&[scores.sum(Kind::Float)], &[act], false, false)?;
    g.pop()
        .map(|g| g.detach())
        .ok_or_else(|| Error::invalid("layer", format!("no gradient at layer `{layer}`")))
}

/// The CAM pipeline: activation (and gradient) at `layer`, the weights of `W`,
/// `ReLU(sum_k w_k A_k)`, bilinear upsampling to the input size, per-sample min-max normalisation.
///
/// Output `[N, 1, H, W]` (or `[N, 1, h, w]` with `upsample = false`), each map in `[0, 1]`; a map that
/// is constant (all zero, or all negative before the ReLU) comes out as zeros, never NaN.
#[derive(Debug, Clone)]
pub struct Cam<W: CamWeights> {
    /// The layer whose activation is explained (one of [`Model::layers`]).
    pub layer: String,
    /// How channels are weighted.
    pub weights: W,
    /// ReLU on the weighted sum (keeps evidence *for* the class); `true` except for
    /// [`ClassActivationMap`].
    pub relu: bool,
    /// Upsample to the input size (bilinear, `align_corners = false`); else the map stays at the
    /// layer's resolution.
    pub upsample: bool,
}

impl<W: CamWeights> Cam<W> {
    /// The pipeline with weights `weights` at `layer`, ReLU and upsampling on.
    ///
    /// ```
    /// use cnn_explain::attribution::cam::{Cam, GradCamWeights};
    /// let cam = Cam::with_weights("layer4", GradCamWeights);
    /// assert!(cam.relu && cam.upsample);
    /// ```
    pub fn with_weights(layer: &str, weights: W) -> Self {
        Cam {
            layer: layer.to_string(),
            weights,
            relu: true,
            upsample: true,
        }
    }

    /// The map before upsampling and normalisation, `[N, 1, h, w]` (after the ReLU if `relu`):
    /// what the references call the raw CAM.
    ///
    /// ```
    /// use cnn_explain::attribution::cam::GradCam;
    /// use cnn_explain::prelude::*;
    /// let model = Staged::new(1, 1, Device::Cpu)
    ///     .leaf("a", tch::nn::func(|xs| xs * 1.0))
    ///     .leaf("b", tch::nn::func(|xs| xs.flatten(1, -1).sum_dim_intlist(1, true, Kind::Float)));
    /// let xs = Tensor::ones([1, 1, 2, 2], (Kind::Float, Device::Cpu));
    /// // Grad-CAM weight = mean gradient = 1, so the raw map is the activation.
    /// let raw = GradCam::new("a").raw(&model, &xs, &Target::Class(0))?;
    /// assert_eq!(raw.double_value(&[0, 0, 1, 1]), 1.0);
    /// # Ok::<(), cnn_explain::Error>(())
    /// ```
    pub fn raw(&self, model: &dyn Model, input: &Tensor, target: &Target) -> Result<Tensor> {
        let xs = prepare_input(model, input)?;
        let ctx = CamContext::new(model, &xs, &self.layer, target)?;
        self.raw_from(&ctx)
    }

    fn raw_from(&self, ctx: &CamContext) -> Result<Tensor> {
        let act = ctx.activation();
        let [n, k, h, w] = ctx.activation_size();
        let map = match self.weights.weights(ctx)? {
            CamCombination::Channel(wt) => {
                check_size(&wt, &[n, k, 1, 1], "channel weights")?;
                (wt.detach() * &act).f_sum_dim_intlist(1, true, Kind::Float)?
            }
            CamCombination::Element(wt) => {
                check_size(&wt, &[n, k, h, w], "element weights")?;
                (wt.detach() * &act).f_sum_dim_intlist(1, true, Kind::Float)?
            }
            CamCombination::Map(m) => {
                check_size(&m, &[n, 1, h, w], "map")?;
                m.detach()
            }
        };
        // A NaN from a degenerate weight (0/0) must not poison the map.
        let map = map.nan_to_num(0.0, 0.0, 0.0);
        Ok(if self.relu { map.relu() } else { map })
    }
}

fn check_size(t: &Tensor, expected: &[i64], what: &str) -> Result<()> {
    if t.size() != expected {
        return Err(Error::shape(
            what,
            format!("{expected:?} from the CAM weighting"),
            &t.size(),
        ));
    }
    Ok(())
}

impl<W: CamWeights> Attribution for Cam<W> {
    /// `input` `[N, C, H, W]` -> `[N, 1, H, W]` in `[0, 1]` (`[N, 1, h, w]` without upsampling).
    fn attribute(&self, model: &dyn Model, input: &Tensor, target: &Target) -> Result<Tensor> {
        let xs = prepare_input(model, input)?;
        let ctx = CamContext::new(model, &xs, &self.layer, target)?;
        let map = self.raw_from(&ctx)?;
        let map = if self.upsample {
            let s = xs.size();
            map.f_upsample_bilinear2d([s[2], s[3]], false, None, None)?
        } else {
            map
        };
        normalize(&map)
    }

    fn name(&self) -> String {
        format!("{} ({})", self.weights.name(), self.layer)
    }
}

/// Per-sample min-max normalisation of `maps` `[N, ...]` to `[0, 1]`; a constant map (all zero,
/// or all negative after a ReLU) becomes zeros instead of NaN.
///
/// A *nearly* constant map, whose range `max - min` is at most [`CONSTANT_MAP_TOLERANCE`] times its
/// largest magnitude `max(|min|, |max|)`, also becomes zeros: such a range is rounding noise (a few
/// `f32` units in the last place), and stretching it to `[0, 1]` would draw noise as a full-range
/// map. The tolerance is relative, so a map of tiny but genuinely varying values (`[0, 1e-20]`) is
/// normalised as usual.
///
/// ```
/// use cnn_explain::attribution::cam::normalize;
/// use tch::Tensor;
/// let maps = Tensor::from_slice(&[1f32, 3., 0., 0.]).view([2, 1, 1, 2]);
/// let out = Vec::<f32>::try_from(normalize(&maps)?.flatten(0, -1))?;
/// assert_eq!(out, [0.0, 1.0, 0.0, 0.0]);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub fn normalize(maps: &Tensor) -> Result<Tensor> {
    let size = maps.size();
    if size.is_empty() || size[0] == 0 {
        return Err(Error::shape("maps", "[N, ...] with N >= 1", &size));
    }
    let flat = maps.to_kind(Kind::Float).f_flatten(1, -1)?;
    let lo = flat.f_amin(1, true)?;
    let hi = flat.f_amax(1, true)?;
    let range = &hi - &lo;
    let magnitude = lo.abs().f_maximum(&hi.abs())?;
    // A map is varying when its range exceeds the relative tolerance (and is not zero: the
    // comparison with an all-zero magnitude is `0 > 0`, false). Constant and nearly constant maps
    // become zeros; their denominator is set to 1 so nothing divides by zero.
    let varying = range
        .gt_tensor(&(magnitude * CONSTANT_MAP_TOLERANCE))
        .f_logical_and(&range.gt(0.0))?;
    let safe = range.f_where_scalarother(&varying, 1.0)?;
    let out = ((flat - lo) / safe)
        .f_where_scalarother(&varying, 0.0)?
        .nan_to_num(0.0, 0.0, 0.0);
    Ok(out.f_view(size.as_slice())?)
}

/// The relative range below which [`normalize`] treats a map as constant (and returns zeros):
/// `1e-6`, about eight units in the last place of an `f32` value.
pub const CONSTANT_MAP_TOLERANCE: f64 = 1e-6;

// ---------------------------------------------------------------------------------------------
// Weightings
// ---------------------------------------------------------------------------------------------

/// CAM (Zhou et al. 2016) weights: the fc weights `W[c, k]` of the target class, for models whose
/// layers after `layer` are global average pooling then one linear layer.
///
/// They are read off the gradient: for `Y_c = sum_k W[c,k] mean_ij A_k(i,j) + b_c`,
/// `sum_ij dY_c/dA_k(i,j) = W[c,k]` exactly, with no access to the variables needed. The gradient
/// of such a head is constant over space; if it varies by more than `tolerance` (relative to its
/// largest magnitude), the head is not GAP + linear and the call fails, pointing to Grad-CAM.
/// Like the paper and torchcam, [`ClassActivationMap`] has no ReLU.
#[derive(Debug, Clone, PartialEq)]
pub struct ClassActivationMapWeights {
    /// Largest allowed spatial variation of the gradient, relative to its largest magnitude.
    pub tolerance: f64,
}

impl Default for ClassActivationMapWeights {
    /// `tolerance: 1e-4`.
    fn default() -> Self {
        ClassActivationMapWeights { tolerance: 1e-4 }
    }
}

impl CamWeights for ClassActivationMapWeights {
    fn weights(&self, ctx: &CamContext) -> Result<CamCombination> {
        let g = ctx.gradient()?;
        let flat = g.flatten(2, -1);
        let spread = (flat.amax(2, false) - flat.amin(2, false))
            .max()
            .double_value(&[]);
        let scale = g.abs().max().double_value(&[]);
        if spread > self.tolerance * scale.max(f64::MIN_POSITIVE) {
            return Err(Error::invalid(
                "layer",
                format!(
                    "CAM needs global average pooling followed by one linear layer after `{}`: the \
                     gradient there varies over space (spread {spread:.3e}); use GradCam for other heads",
                    ctx.layer()
                ),
            ));
        }
        Ok(CamCombination::Channel(
            flat.sum_dim_intlist(2, false, Kind::Float)
                .unsqueeze(-1)
                .unsqueeze(-1),
        ))
    }
    fn name(&self) -> String {
        "CAM".into()
    }
}

/// Grad-CAM (Selvaraju et al. 2017) weights: `w_k = mean_ij dY_c/dA_k(i,j)`.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct GradCamWeights;

impl CamWeights for GradCamWeights {
    fn weights(&self, ctx: &CamContext) -> Result<CamCombination> {
        let g = ctx.gradient()?;
        Ok(CamCombination::Channel(g.f_mean_dim(
            [2, 3].as_slice(),
            true,
            Kind::Float,
        )?))
    }
    fn name(&self) -> String {
        "Grad-CAM".into()
    }
}

/// Grad-CAM++ alpha: `g2 / (2 g2 + sum_ab A_ab g3 + eps)`, zero where `g2 == 0`.
fn grad_cam_pp_weights(act: &Tensor, d1: &Tensor, g2: &Tensor, g3: &Tensor, eps: f64) -> Result<Tensor> {
    let sum_a = act.f_sum_dim_intlist([2, 3].as_slice(), true, Kind::Float)?;
    let denom = g2 * 2.0 + sum_a * g3 + eps;
    let alpha = (g2 / denom).f_where_scalarother(&g2.gt(0.0), 0.0)?;
    Ok((alpha * d1.relu()).f_sum_dim_intlist([2, 3].as_slice(), true, Kind::Float)?)
}

/// Grad-CAM++ (Chattopadhay et al. 2018) weights:
/// `w_k = sum_ij alpha_kij relu(g_kij)`, `alpha = g^2 / (2 g^2 + sum_ab A_kab g^3 + eps)`, 0 where
/// `g = 0` (pytorch-grad-cam's formula and `eps`).
///
/// torchcam 0.5.0's `GradCAMpp` differs: its in-place division `alpha[mask].div_(...)` acts on a
/// copy, so its alpha is `g^2` and its weights `sum g^2 relu(g)`; the golden test documents that.
#[derive(Debug, Clone, PartialEq)]
pub struct GradCamPlusPlusWeights {
    /// Added to the denominator of alpha (pytorch-grad-cam: `1e-6`).
    pub eps: f64,
}

impl Default for GradCamPlusPlusWeights {
    /// `eps: 1e-6`.
    fn default() -> Self {
        GradCamPlusPlusWeights { eps: 1e-6 }
    }
}

impl CamWeights for GradCamPlusPlusWeights {
    fn weights(&self, ctx: &CamContext) -> Result<CamCombination> {
        let g = ctx.gradient()?;
        let (g2, g3) = ctx.gradient_powers()?;
        Ok(CamCombination::Channel(grad_cam_pp_weights(
            &ctx.activation(),
            &g,
            &g2,
            &g3,
            self.eps,
        )?))
    }
    fn name(&self) -> String {
        "Grad-CAM++".into()
    }
}

/// Smooth Grad-CAM++ (Omeiza et al. 2019) weights: Grad-CAM++ with the first, second and third
/// order terms averaged over `samples` copies of the input with Gaussian noise of standard deviation
/// `sigma` (absolute, in input units, as torchcam), drawn from `Rng::new(seed)`; alpha uses the
/// clean activation, and the map is built on the clean activation.
///
/// torchcam 0.5.0 instead multiplies alpha by the ReLU of the *last* noisy sample's gradient and
/// builds the map on the last noisy sample's activation (its hooks keep the last pass); this crate
/// follows the paper (averaged gradient, clean activation). With `sigma = 0` both equal Grad-CAM++
/// with `eps` in the denominator, which is what the golden test compares.
#[derive(Debug, Clone, PartialEq)]
pub struct SmoothGradCamPlusPlusWeights {
    /// Number of noisy copies (torchcam: 4).
    pub samples: usize,
    /// Noise standard deviation in input units (torchcam: 0.3).
    pub sigma: f64,
    /// Seed of the noise.
    pub seed: u64,
    /// Added to alpha's denominator (torchcam: `1e-8`).
    pub eps: f64,
}

impl Default for SmoothGradCamPlusPlusWeights {
    /// `samples: 4, sigma: 0.3, seed: 0, eps: 1e-8` (torchcam's defaults).
    fn default() -> Self {
        SmoothGradCamPlusPlusWeights {
            samples: 4,
            sigma: 0.3,
            seed: 0,
            eps: 1e-8,
        }
    }
}

impl CamWeights for SmoothGradCamPlusPlusWeights {
    fn weights(&self, ctx: &CamContext) -> Result<CamCombination> {
        check_positive("samples", self.samples)?;
        check_sigma(self.sigma)?;
        let xs = ctx.input();
        let dev = xs.device();
        let mut rng = Rng::new(self.seed);
        let act = ctx.activation();
        let mut d1 = act.zeros_like();
        let mut d2 = act.zeros_like();
        let mut d3 = act.zeros_like();
        for _ in 0..self.samples {
            let noise = rng.normal_tensor(&xs.size(), dev) * self.sigma;
            let (_, g) = ctx.activation_and_gradient_at(&(xs + noise))?;
            let g2 = g.square();
            d3 += &g2 * &g;
            d1 += &g;
            d2 += g2;
        }
        let s = self.samples as f64;
        Ok(CamCombination::Channel(grad_cam_pp_weights(
            &act,
            &(d1 / s),
            &(d2 / s),
            &(d3 / s),
            self.eps,
        )?))
    }
    fn name(&self) -> String {
        format!("Smooth Grad-CAM++ (n={}, sigma={})", self.samples, self.sigma)
    }
}

fn check_sigma(sigma: f64) -> Result<()> {
    if sigma.is_finite() && sigma >= 0.0 {
        Ok(())
    } else {
        Err(Error::invalid(
            "sigma",
            format!("must be finite and >= 0, got {sigma}"),
        ))
    }
}

/// XGrad-CAM (Fu et al. 2020) weights: `w_k = sum_ij g_kij A_kij / (sum_ij A_kij + eps)`.
#[derive(Debug, Clone, PartialEq)]
pub struct XGradCamWeights {
    /// Added to the denominator (pytorch-grad-cam: `1e-7`, torchcam: `1e-8`).
    pub eps: f64,
}

impl Default for XGradCamWeights {
    /// `eps: 1e-7`.
    fn default() -> Self {
        XGradCamWeights { eps: 1e-7 }
    }
}

impl CamWeights for XGradCamWeights {
    fn weights(&self, ctx: &CamContext) -> Result<CamCombination> {
        let g = ctx.gradient()?;
        let act = ctx.activation();
        let dims = [2i64, 3].as_slice();
        let num = (&g * &act).f_sum_dim_intlist(dims, true, Kind::Float)?;
        let den = act.f_sum_dim_intlist(dims, true, Kind::Float)? + self.eps;
        Ok(CamCombination::Channel(num / den))
    }
    fn name(&self) -> String {
        "XGrad-CAM".into()
    }
}

/// Layer-CAM (Jiang et al. 2021) element weights: `w_kij = relu(g_kij)`.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct LayerCamWeights;

impl CamWeights for LayerCamWeights {
    fn weights(&self, ctx: &CamContext) -> Result<CamCombination> {
        Ok(CamCombination::Element(ctx.gradient()?.relu()))
    }
    fn name(&self) -> String {
        "Layer-CAM".into()
    }
}

/// HiResCAM (Draelos & Carin 2020) element weights: `w_kij = g_kij`, so the map is
/// `sum_k g_k * A_k`, faithful to the model for GAP + linear heads.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct HiResCamWeights;

impl CamWeights for HiResCamWeights {
    fn weights(&self, ctx: &CamContext) -> Result<CamCombination> {
        Ok(CamCombination::Element(ctx.gradient()?))
    }
    fn name(&self) -> String {
        "HiResCAM".into()
    }
}

/// Per-channel min-max normalisation of `x` `[N, K, h, w]`: `(x - min) / (max - min + 1e-8)`.
fn normalize_channels(x: &Tensor) -> Result<Tensor> {
    let s = x.size();
    let flat = x.f_view([s[0], s[1], -1])?;
    let lo = flat.f_amin(2, true)?;
    let hi = flat.f_amax(2, true)?;
    Ok(((flat - &lo) / (hi - lo + 1e-8)).f_view(s.as_slice())?)
}

/// The Score-CAM family's masks, made a chunk of rows at a time so that memory stays bounded by the
/// chunk: all `N * K` masks at the input size would be `N * K * H * W` floats (6.6 GB for 16 images
/// through ResNet-50's last block at 224x224).
///
/// Each channel is min-max normalised at the layer's resolution then upsampled bilinearly (torchcam),
/// or upsampled with aligned corners then normalised (`pytorch_grad_cam_masks`). Both steps act on one
/// channel at a time, so a chunk's masks are the rows of the whole `[N * K, 1, H, W]` stack.
struct ScoreMasks {
    /// `[N * K, 1, h, w]`: the activations, already normalised unless `normalise_after`.
    low: Tensor,
    /// The input's spatial size `[H, W]`.
    size: [i64; 2],
    align_corners: bool,
    normalise_after: bool,
}

impl ScoreMasks {
    fn new(ctx: &CamContext, align_corners: bool, pytorch_grad_cam_masks: bool) -> Result<Self> {
        let act = ctx.activation();
        let [n, k, h, w] = ctx.activation_size();
        let s = ctx.input().size();
        let low = if pytorch_grad_cam_masks {
            act.shallow_clone()
        } else {
            normalize_channels(&act)?
        };
        Ok(ScoreMasks {
            low: low.f_reshape([n * k, 1, h, w])?,
            size: [s[2], s[3]],
            align_corners: align_corners || pytorch_grad_cam_masks,
            normalise_after: pytorch_grad_cam_masks,
        })
    }

    /// Masks `start .. start + len` of the `[N * K, 1, H, W]` stack (sample-major).
    fn rows(&self, start: i64, len: i64) -> Result<Tensor> {
        let up = self.low.narrow(0, start, len).f_upsample_bilinear2d(
            self.size,
            self.align_corners,
            None,
            None,
        )?;
        if self.normalise_after {
            normalize_channels(&up)
        } else {
            Ok(up)
        }
    }
}

/// Scores of the input masked by each of `masks` (times `scale`, plus `sigma` times standard normal
/// noise drawn from `noise` in the masks' row-major order, chunk after chunk, so the draws do not
/// depend on `batch`), minus the clean score: `[N, K]`.
fn masked_score_gains(
    ctx: &CamContext,
    masks: &ScoreMasks,
    scale: f64,
    batch: usize,
    mut noise: Option<(&mut Rng, f64)>,
) -> Result<Tensor> {
    let xs = ctx.input();
    let [n, k, _, _] = ctx.activation_size();
    let owner = Tensor::arange(n, (Kind::Int64, xs.device())).repeat_interleave_self_int(k, 0, None::<i64>);
    // Build the masks and the masked batch in chunks so memory stays bounded by `batch` inputs.
    let mut out = Vec::new();
    let mut start = 0;
    while start < n * k {
        let len = (batch as i64).min(n * k - start);
        let rows = owner.narrow(0, start, len);
        let mut chunk_masks = masks.rows(start, len)?;
        if let Some((rng, sigma)) = noise.as_mut() {
            let noise = rng.normal_tensor(&chunk_masks.size(), chunk_masks.device()) * *sigma;
            chunk_masks += noise;
        }
        let chunk = xs.f_index_select(0, &rows)? * chunk_masks * scale;
        out.push(ctx.scores_of(&chunk, &rows, batch)?);
        start += len;
    }
    let scores = Tensor::f_cat(&out, 0)?.f_view([n, k])?;
    Ok(scores - ctx.scores().unsqueeze(1))
}

/// Score-CAM (Wang et al. 2020) weights: `w = softmax_k(Y_c(X * M_k) - Y_c(X))` where `M_k` is
/// channel `k` min-max normalised and upsampled to the input size; no gradients. One forward pass
/// per channel, `batch` masked inputs at a time.
///
/// The score is the logit, as in both references (the paper uses the softmax probability). Masks are
/// normalised at the layer's resolution, then upsampled with `align_corners` (torchcam's default);
/// with `pytorch_grad_cam_masks` they are upsampled with `align_corners = true` first and normalised
/// at the input resolution, as pytorch-grad-cam does (the two differ slightly because bilinear
/// upsampling does not always pass through a channel's extreme values).
#[derive(Debug, Clone, PartialEq)]
pub struct ScoreCamWeights {
    /// Masked inputs per forward pass (torchcam: 32).
    pub batch: usize,
    /// Mask upsampling corner alignment (torchcam: `false`).
    pub align_corners: bool,
    /// Make the masks as pytorch-grad-cam does (upsample with aligned corners, then normalise).
    pub pytorch_grad_cam_masks: bool,
}

impl Default for ScoreCamWeights {
    /// `batch: 32, align_corners: false, pytorch_grad_cam_masks: false`.
    fn default() -> Self {
        ScoreCamWeights {
            batch: 32,
            align_corners: false,
            pytorch_grad_cam_masks: false,
        }
    }
}

impl CamWeights for ScoreCamWeights {
    fn weights(&self, ctx: &CamContext) -> Result<CamCombination> {
        check_positive("batch", self.batch)?;
        let masks = ScoreMasks::new(ctx, self.align_corners, self.pytorch_grad_cam_masks)?;
        let gains = masked_score_gains(ctx, &masks, 1.0, self.batch, None)?;
        Ok(CamCombination::Channel(
            gains.f_softmax(1, Kind::Float)?.unsqueeze(-1).unsqueeze(-1),
        ))
    }
    fn name(&self) -> String {
        "Score-CAM".into()
    }
}

/// SS-CAM (Wang et al. 2020, *Smoothed Score-CAM*) weights: Score-CAM whose masks get Gaussian noise
/// (standard deviation `sigma`, at the input resolution, drawn `[N, K, H, W]` per sample from
/// `Rng::new(seed)`), gains averaged over `samples`, then softmax. Follows torchcam's `SSCAM`.
#[derive(Debug, Clone, PartialEq)]
pub struct SsCamWeights {
    /// Masked inputs per forward pass (torchcam: 32).
    pub batch: usize,
    /// Noisy repetitions (torchcam: 35).
    pub samples: usize,
    /// Noise standard deviation on the `[0, 1]` masks (torchcam: 2.0).
    pub sigma: f64,
    /// Seed of the noise.
    pub seed: u64,
    /// Mask upsampling corner alignment.
    pub align_corners: bool,
}

impl Default for SsCamWeights {
    /// `batch: 32, samples: 35, sigma: 2.0, seed: 0, align_corners: false` (torchcam's defaults).
    fn default() -> Self {
        SsCamWeights {
            batch: 32,
            samples: 35,
            sigma: 2.0,
            seed: 0,
            align_corners: false,
        }
    }
}

impl CamWeights for SsCamWeights {
    fn weights(&self, ctx: &CamContext) -> Result<CamCombination> {
        check_positive("batch", self.batch)?;
        check_positive("samples", self.samples)?;
        check_sigma(self.sigma)?;
        let masks = ScoreMasks::new(ctx, self.align_corners, false)?;
        let mut rng = Rng::new(self.seed);
        let mut total = Tensor::zeros(&ctx.activation_size()[..2], (Kind::Float, ctx.input().device()));
        for _ in 0..self.samples {
            total += masked_score_gains(ctx, &masks, 1.0, self.batch, Some((&mut rng, self.sigma)))?;
        }
        let mean = total / self.samples as f64;
        Ok(CamCombination::Channel(
            mean.f_softmax(1, Kind::Float)?.unsqueeze(-1).unsqueeze(-1),
        ))
    }
    fn name(&self) -> String {
        format!("SS-CAM (n={}, sigma={})", self.samples, self.sigma)
    }
}

/// IS-CAM (Naidu et al. 2020, *Integrated Score-CAM*) weights: Score-CAM gains of the input masked
/// by `c_i * M_k`, averaged over `i = 1..=samples`, then softmax. As in torchcam's `ISCAM` (and the
/// authors' code), the coefficient accumulates: `c_i = sum_{j=1..=i} j / samples`.
#[derive(Debug, Clone, PartialEq)]
pub struct IsCamWeights {
    /// Masked inputs per forward pass (torchcam: 32).
    pub batch: usize,
    /// Integration steps (torchcam: 10).
    pub samples: usize,
    /// Mask upsampling corner alignment.
    pub align_corners: bool,
}

impl Default for IsCamWeights {
    /// `batch: 32, samples: 10, align_corners: false` (torchcam's defaults).
    fn default() -> Self {
        IsCamWeights {
            batch: 32,
            samples: 10,
            align_corners: false,
        }
    }
}

impl CamWeights for IsCamWeights {
    fn weights(&self, ctx: &CamContext) -> Result<CamCombination> {
        check_positive("batch", self.batch)?;
        check_positive("samples", self.samples)?;
        let masks = ScoreMasks::new(ctx, self.align_corners, false)?;
        let mut total = Tensor::zeros(&ctx.activation_size()[..2], (Kind::Float, ctx.input().device()));
        let mut coeff = 0.0;
        for i in 0..self.samples {
            coeff += (i + 1) as f64 / self.samples as f64;
            total += masked_score_gains(ctx, &masks, coeff, self.batch, None)?;
        }
        let mean = total / self.samples as f64;
        Ok(CamCombination::Channel(
            mean.f_softmax(1, Kind::Float)?.unsqueeze(-1).unsqueeze(-1),
        ))
    }
    fn name(&self) -> String {
        format!("IS-CAM (n={})", self.samples)
    }
}

/// Eigen-CAM (Muhammad & Yeasin 2020): the projection of the centred activations (positions as rows,
/// channels as columns) on their first right singular vector; class-independent, no gradients.
///
/// The sign of a singular vector is arbitrary (pytorch-grad-cam's `EigenCAM` keeps whatever numpy's
/// SVD returns). This crate flips each map so that its largest magnitude is positive
/// (`|max| >= |min|`), the convention of pytorch-grad-cam's
/// `get_2d_projection_with_sign_correction` (Seg-Eigen-CAM, Chung & Ying 2025, eq. 13).
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct EigenCamWeights;

impl CamWeights for EigenCamWeights {
    fn weights(&self, ctx: &CamContext) -> Result<CamCombination> {
        let act = ctx.activation().to_kind(Kind::Double);
        let [n, k, h, w] = ctx.activation_size();
        let m = act.f_view([n, k, h * w])?.transpose(1, 2); // [N, hw, K]
        let m = &m - m.f_mean_dim(1, true, Kind::Double)?;
        let (_, _, v) = m.f_svd(true, true)?; // v [N, K, min(hw, K)], columns = right vectors
        let v = v.narrow(2, 0, 1); // [N, K, 1]
        let proj = m.f_matmul(&v)?.f_view([n, 1, h, w])?;
        let flat = proj.f_view([n, h * w])?;
        let flip = flat.amin(1, false).abs().gt_tensor(&flat.amax(1, false).abs());
        let sign = flip.to_kind(Kind::Double) * -2.0 + 1.0;
        let proj = proj * sign.f_view([n, 1, 1, 1])?;
        Ok(CamCombination::Map(proj.to_kind(Kind::Float)))
    }
    fn name(&self) -> String {
        "Eigen-CAM".into()
    }
}

// ---------------------------------------------------------------------------------------------
// Aliases and constructors
// ---------------------------------------------------------------------------------------------

/// CAM (Zhou et al. 2016), for global-average-pool + linear heads.
pub type ClassActivationMap = Cam<ClassActivationMapWeights>;
/// Grad-CAM (Selvaraju et al. 2017).
pub type GradCam = Cam<GradCamWeights>;
/// Grad-CAM++ (Chattopadhay et al. 2018).
pub type GradCamPlusPlus = Cam<GradCamPlusPlusWeights>;
/// Smooth Grad-CAM++ (Omeiza et al. 2019).
pub type SmoothGradCamPlusPlus = Cam<SmoothGradCamPlusPlusWeights>;
/// XGrad-CAM (Fu et al. 2020).
pub type XGradCam = Cam<XGradCamWeights>;
/// Layer-CAM (Jiang et al. 2021).
pub type LayerCam = Cam<LayerCamWeights>;
/// HiResCAM (Draelos & Carin 2020).
pub type HiResCam = Cam<HiResCamWeights>;
/// Score-CAM (Wang et al. 2020).
pub type ScoreCam = Cam<ScoreCamWeights>;
/// SS-CAM (Wang et al. 2020).
pub type SsCam = Cam<SsCamWeights>;
/// IS-CAM (Naidu et al. 2020).
pub type IsCam = Cam<IsCamWeights>;
/// Eigen-CAM (Muhammad & Yeasin 2020).
pub type EigenCam = Cam<EigenCamWeights>;

macro_rules! constructor {
    ($alias:ident, $weights:ident, $relu:expr, $doc:literal) => {
        impl Cam<$weights> {
            #[doc = $doc]
            #[doc = ""]
            #[doc = "```"]
            #[doc = concat!("use cnn_explain::attribution::cam::", stringify!($alias), ";")]
            #[doc = "use cnn_explain::attribution::Attribution;"]
            #[doc = concat!("let cam = ", stringify!($alias), "::new(\"layer4\");")]
            #[doc = "assert!(cam.name().ends_with(\"(layer4)\"));"]
            #[doc = "```"]
            pub fn new(layer: &str) -> Self {
                Cam {
                    layer: layer.to_string(),
                    weights: $weights::default(),
                    relu: $relu,
                    upsample: true,
                }
            }
        }
    };
}

constructor!(
    ClassActivationMap,
    ClassActivationMapWeights,
    false,
    "CAM at `layer` with default settings; no ReLU, as in the paper."
);
constructor!(GradCam, GradCamWeights, true, "Grad-CAM at `layer`.");
constructor!(
    GradCamPlusPlus,
    GradCamPlusPlusWeights,
    true,
    "Grad-CAM++ at `layer` with default settings."
);
constructor!(
    SmoothGradCamPlusPlus,
    SmoothGradCamPlusPlusWeights,
    true,
    "Smooth Grad-CAM++ at `layer` with default settings."
);
constructor!(
    XGradCam,
    XGradCamWeights,
    true,
    "XGrad-CAM at `layer` with default settings."
);
constructor!(LayerCam, LayerCamWeights, true, "Layer-CAM at `layer`.");
constructor!(HiResCam, HiResCamWeights, true, "HiResCAM at `layer`.");
constructor!(
    ScoreCam,
    ScoreCamWeights,
    true,
    "Score-CAM at `layer` with default settings."
);
constructor!(
    SsCam,
    SsCamWeights,
    true,
    "SS-CAM at `layer` with default settings."
);
constructor!(
    IsCam,
    IsCamWeights,
    true,
    "IS-CAM at `layer` with default settings."
);
constructor!(EigenCam, EigenCamWeights, true, "Eigen-CAM at `layer`.");

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normalize_is_zero_for_constant_maps_and_unit_range_otherwise() {
        let maps = Tensor::from_slice(&[0f32, 0., 0., 0., -1., 2., 5., 1.]).view([2, 1, 2, 2]);
        let out = Vec::<f32>::try_from(normalize(&maps).unwrap().flatten(0, -1)).unwrap();
        assert_eq!(out, [0., 0., 0., 0., 0., 0.5, 1., 1. / 3.]);
        assert!(normalize(&Tensor::zeros([0, 1], (Kind::Float, tch::Device::Cpu))).is_err());
    }

    #[test]
    fn normalize_gives_zeros_for_nearly_constant_maps_not_blown_up_noise() {
        // Sample 0: 3 plus rounding-level noise (range 2.4e-7 relative, two f32 ulps at 3); the old
        // normalisation stretched it to [0, 1]. Sample 1: the same noise on 1e-20 (relative range
        // 1, a real if tiny map) keeps its shape. Sample 2: a map with a range of 1e-5 relative is
        // above the tolerance and is normalised.
        let ulp = f32::EPSILON * 2.0;
        let maps = Tensor::from_slice(&[
            3f32,
            3. + 2. * ulp,
            3.,
            3. + ulp,
            0.,
            2e-20,
            0.,
            1e-20,
            1.,
            1.00001,
            1.,
            1.,
        ])
        .view([3, 1, 2, 2]);
        let out = Vec::<f32>::try_from(normalize(&maps).unwrap().flatten(0, -1)).unwrap();
        assert_eq!(out[..4], [0., 0., 0., 0.], "{out:?}");
        assert_eq!(out[4..8], [0., 1., 0., 0.5], "{out:?}");
        assert_eq!(out[8..], [0., 1., 0., 0.], "{out:?}");
        // In f64 too (the input is converted to f32 first, so the same rule applies).
        let d = Tensor::from_slice(&[7.0f64, 7.0 + 1e-12, 7.0, 7.0]).view([1, 1, 2, 2]);
        let out = Vec::<f32>::try_from(normalize(&d).unwrap().flatten(0, -1)).unwrap();
        assert_eq!(out, [0., 0., 0., 0.]);
    }
}
