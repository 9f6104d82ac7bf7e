//! Robustness: max-sensitivity (Yeh et al., "On the (In)fidelity and Sensitivity of Explanations",
//! NeurIPS 2019).
//!
//! `SENS_max(x) = max_{|delta|_inf <= r} |Phi(x + delta) - Phi(x)| / |Phi(x)|`, estimated, as in
//! Quantus, by the largest relative change over `samples` random perturbations drawn uniformly from
//! the cube of radius `r`, with Frobenius norms of the maps. A low value means the explanation does
//! not jump under noise the model hardly notices.

use crate::attribution::{check_positive, Attribution, Target};
use crate::models::Model;
use crate::rng::Rng;
use crate::{Error, Result};
use tch::{Kind, Tensor};

/// Settings of [`max_sensitivity`].
#[derive(Debug, Clone, PartialEq)]
pub struct MaxSensitivityConfig {
    /// Number of perturbations (at least 1).
    pub samples: usize,
    /// Radius `r` of the uniform noise in input units (each value moves by at most `r`).
    pub radius: f64,
    /// Seed of the noise.
    pub seed: u64,
}

impl Default for MaxSensitivityConfig {
    /// 10 perturbations of radius 0.02, seed 0.
    fn default() -> Self {
        MaxSensitivityConfig {
            samples: 10,
            radius: 0.02,
            seed: 0,
        }
    }
}

/// Max-sensitivity of `method` on `input` `[N, C, H, W]`, per sample.
///
/// Perturbation `s` is `delta_s = r (2 U_s - 1)` with `U_s` drawn for the whole batch as
/// `Rng::new(seed)`'s `uniform_tensor([N, C, H, W])`, `s = 0, 1, ...` in order from one generator.
/// The target is resolved once on the unperturbed input and kept for every perturbation. The change
/// is `|Phi(x + delta) - Phi(x)|_F / |Phi(x)|_F`; for an all-zero map `Phi(x)`, the absolute change
/// `|Phi(x + delta)|_F`.
///
/// ```
/// use cnn_explain::attribution::{gradient::Saliency, Target};
/// use cnn_explain::prelude::*;
/// use cnn_explain::quality::{max_sensitivity, MaxSensitivityConfig};
/// let vs = tch::nn::VarStore::new(Device::Cpu);
/// let model = Staged::new(1, 2, Device::Cpu)
///     .leaf("flat", tch::nn::func(|xs| xs.flatten(1, -1)))
///     .leaf("fc", tch::nn::linear(vs.root() / "fc", 4, 2, Default::default()));
/// let xs = Tensor::rand([2, 1, 2, 2], (Kind::Float, Device::Cpu));
/// // The gradient of a linear model does not depend on the input.
/// let s = max_sensitivity(&Saliency::default(), &model, &xs, &Target::Class(1), &MaxSensitivityConfig::default())?;
/// assert_eq!(s, [0.0, 0.0]);
/// # Ok::<(), cnn_explain::Error>(())
/// ```
pub fn max_sensitivity(
    method: &dyn Attribution,
    model: &dyn Model,
    input: &Tensor,
    target: &Target,
    config: &MaxSensitivityConfig,
) -> Result<Vec<f64>> {
    check_positive("samples", config.samples)?;
    if !(config.radius.is_finite() && config.radius >= 0.0) {
        return Err(Error::invalid(
            "radius",
            format!("must be a finite number >= 0, got {}", config.radius),
        ));
    }
    model.check_input(input)?;
    let device = model.device();
    let xs = input.to_device(device).to_kind(Kind::Float).detach();
    let size = xs.size();
    let classes = tch::no_grad(|| target.resolve(model, &model.forward_t(&xs, false)))?;
    let target = Target::PerSample(Vec::<i64>::try_from(classes.to_device(tch::Device::Cpu))?);
    let base = method
        .attribute(model, &xs, &target)?
        .detach()
        .to_kind(Kind::Double);
    let n = size[0];
    let norm = |t: &Tensor| -> Result<Tensor> {
        Ok(t.f_reshape([n, -1])?
            .square()
            .f_sum_dim_intlist(1, false, Kind::Double)?
            .sqrt())
    };
    let base_norm = norm(&base)?;
    let denom = base_norm.f_where_scalarother(&base_norm.gt(0.0), 1.0)?;
    let mut best = Tensor::zeros([n], (Kind::Double, base.device()));
    let mut rng = Rng::new(config.seed);
    for _ in 0..config.samples {
        let u = rng.uniform_tensor(&size, device);
        let noisy = &xs + (u * 2.0 - 1.0) * config.radius;
        let map = method
            .attribute(model, &noisy, &target)?
            .detach()
            .to_kind(Kind::Double);
        if map.size() != base.size() {
            return Err(Error::shape(
                "map of the perturbed input",
                format!("the shape of the unperturbed map, {:?}", base.size()),
                &map.size(),
            ));
        }
        let change = norm(&(map - &base))? / &denom;
        best = best.f_maximum(&change)?;
    }
    Ok(Vec::<f64>::try_from(best.to_device(tch::Device::Cpu))?)
}
