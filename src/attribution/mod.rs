//! Attribution: which parts of an input made the model output what it did.
//!
//! Every method implements one trait, [`Attribution`], with Captum's convention: an input batch
//! `[N, C, H, W]` and a [`Target`] go in, a map comes out, `[N, C, H, W]` for gradient methods and
//! `[N, 1, H, W]` for CAM, occlusion and LIME. The trait is object-safe, so methods can be compared
//! from a `Vec<Box<dyn Attribution>>`.

pub mod gradient;
pub mod noise;

pub use gradient::{Baseline, InputXGradient, IntegratedGradients, Quadrature, Saliency, SaliencyMode};
pub use noise::{NoiseKind, NoiseTunnel};
pub mod lime;
pub mod occlusion;

use crate::models::Model;
use crate::{Error, Result};
use tch::{Kind, Tensor};

pub mod cam;
pub mod compare;

/// Which class each sample's map explains.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum Target {
    /// The class the model predicts for each sample (arg-max of the logits).
    #[default]
    Predicted,
    /// One class for every sample.
    Class(i64),
    /// One class per sample, in batch order.
    PerSample(Vec<i64>),
}

impl Target {
    /// The class index of every sample, `[N]` int64 on the model's device, checked against the
    /// model's number of classes. `logits` `[N, K]` is used for [`Target::Predicted`].
    pub fn resolve(&self, model: &dyn Model, logits: &Tensor) -> Result<Tensor> {
        let size = logits.size();
        if size.len() != 2 {
            return Err(Error::shape("logits", "[N, num_classes]", &size));
        }
        match self.fixed(model, size[0])? {
            Some(classes) => Ok(Tensor::from_slice(&classes).to_device(logits.device())),
            None => Ok(logits.argmax(1, false)),
        }
    }

    /// The class of each of `n` samples when it does not depend on the model's output, checked
    /// against the model's number of classes; `None` for [`Target::Predicted`], which needs the
    /// logits (see [`Target::resolve`]). Lets a method skip a forward pass it would only need for
    /// the target.
    ///
    /// ```
    /// # use cnn_explain::prelude::*;
    /// # use cnn_explain::models::{build, Arch};
    /// # let vs = tch::nn::VarStore::new(tch::Device::Cpu);
    /// # let model = build(Arch::SmallCnn, &vs.root(), 6)?;
    /// assert_eq!(Target::Class(2).fixed(&model, 3)?, Some(vec![2, 2, 2]));
    /// assert_eq!(Target::Predicted.fixed(&model, 3)?, None);
    /// assert!(Target::Class(6).fixed(&model, 1).is_err()); // six classes: 0..=5
    /// # Ok::<(), cnn_explain::Error>(())
    /// ```
    pub fn fixed(&self, model: &dyn Model, n: i64) -> Result<Option<Vec<i64>>> {
        let k = model.num_classes();
        let check = |c: i64| {
            if (0..k).contains(&c) {
                Ok(c)
            } else {
                Err(Error::ClassOutOfRange {
                    index: c,
                    num_classes: k,
                })
            }
        };
        match self {
            Target::Predicted => Ok(None),
            Target::Class(c) => Ok(Some(vec![check(*c)?; n.max(0) as usize])),
            Target::PerSample(cs) => {
                if cs.len() as i64 != n {
                    return Err(Error::invalid(
                        "target",
                        format!(
                            "Target::PerSample has {} classes for a batch of {n} samples",
                            cs.len()
                        ),
                    ));
                }
                cs.iter().map(|&c| check(c)).collect::<Result<Vec<_>>>().map(Some)
            }
        }
    }
}

/// The class of every sample of `x` `[N, ...]` on the host: from `target` when it names them,
/// otherwise (the prediction) from one forward pass without a graph. Methods that need no forward
/// pass of their own at `x` call this instead of always running one.
pub(crate) fn target_classes(model: &dyn Model, x: &Tensor, target: &Target) -> Result<Vec<i64>> {
    match target.fixed(model, x.size().first().copied().unwrap_or(0))? {
        Some(classes) => Ok(classes),
        None => Ok(Vec::<i64>::try_from(&tch::no_grad(|| {
            target.resolve(model, &model.forward_t(x, false))
        })?)?),
    }
}

/// One explanation method.
pub trait Attribution {
    /// Attribution of `input` `[N, C, H, W]` for `target`: `[N, C, H, W]` (gradient methods) or
    /// `[N, 1, H, W]` (CAM, occlusion, LIME).
    fn attribute(&self, model: &dyn Model, input: &Tensor, target: &Target) -> Result<Tensor>;
    /// A short human-readable name with the main settings, for figure titles and tables.
    fn name(&self) -> String;
}

/// A boxed method is a method, so wrappers such as [`NoiseTunnel`] take `Box<dyn Attribution>`.
impl<T: Attribution + ?Sized> Attribution for Box<T> {
    fn attribute(&self, model: &dyn Model, input: &Tensor, target: &Target) -> Result<Tensor> {
        (**self).attribute(model, input, target)
    }

    fn name(&self) -> String {
        (**self).name()
    }
}

/// The logit of each sample's class: `logits` `[N, K]`, `classes` `[N]` -> `[N]`.
pub fn select_scores(logits: &Tensor, classes: &Tensor) -> Tensor {
    logits.gather(1, &classes.unsqueeze(1), false).squeeze_dim(1)
}

/// Checks a count argument (steps, samples, batch size) is at least 1.
#[allow(dead_code)] // used by the attribution methods
pub(crate) fn check_positive(name: &str, value: usize) -> Result<()> {
    if value == 0 {
        Err(Error::invalid(name, "must be at least 1"))
    } else {
        Ok(())
    }
}

/// A float copy of `input` on the model's device, after the model's input checks.
#[allow(dead_code)] // used by the attribution methods
pub(crate) fn prepare_input(model: &dyn Model, input: &Tensor) -> Result<Tensor> {
    model.check_input(input)?;
    Ok(input.to_device(model.device()).to_kind(Kind::Float).detach())
}

/// Tiny models with known attributions, shared by the methods' unit tests.
#[cfg(test)]
pub(crate) mod test_models {
    use crate::models::Staged;
    use tch::{Device, Kind, Tensor};

    /// A two-class model on `[N, C, H, W]` inputs with `wts` `[C, H, W]`: logit 0 = `sum(wts * x)`,
    /// logit 1 = 0.
    pub(crate) fn linear_model(wts: Tensor) -> Staged {
        let c = wts.size()[0];
        Staged::new(c, 2, Device::Cpu).leaf(
            "linear",
            tch::nn::func(move |xs| {
                let l0 = (xs * &wts).sum_dim_intlist([1, 2, 3].as_slice(), false, Kind::Float);
                Tensor::stack(&[&l0, &l0.zeros_like()], 1)
            }),
        )
    }
}
