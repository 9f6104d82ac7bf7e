//! Optimisers with state the crate owns, so a checkpoint can hold it and resuming is exact.
//!
//! The update rules follow PyTorch's `torch.optim.SGD` (momentum, dampening 0, Nesterov; Sutskever
//! et al. 2013), `torch.optim.Adam` (Kingma & Ba 2015, L2 weight decay added to the gradient) and
//! `torch.optim.AdamW` (Loshchilov & Hutter 2019, decoupled weight decay). libtorch's own optimisers
//! behind `tch::nn::Optimizer` keep their buffers out of reach, which would make a resumed run
//! differ from an uninterrupted one.

use crate::{Error, Result};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use tch::{nn, Tensor};

/// Which optimiser [`crate::train::fit`] uses.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Optimizer {
    /// Stochastic gradient descent with optional momentum and L2 weight decay (PyTorch's `SGD`).
    Sgd {
        /// Momentum factor (0 = plain SGD).
        momentum: f64,
        /// L2 penalty added to the gradient.
        weight_decay: f64,
        /// Nesterov momentum.
        nesterov: bool,
    },
    /// Adam with L2 weight decay added to the gradient (PyTorch's `Adam`); betas (0.9, 0.999), eps 1e-8.
    Adam {
        /// L2 penalty added to the gradient.
        weight_decay: f64,
    },
    /// Adam with decoupled weight decay (PyTorch's `AdamW`); betas (0.9, 0.999), eps 1e-8.
    AdamW {
        /// Decoupled weight decay (PyTorch's default is 0.01).
        weight_decay: f64,
    },
}

impl Default for Optimizer {
    /// SGD with momentum 0.9, weight decay 5e-4, no Nesterov.
    fn default() -> Self {
        Optimizer::Sgd {
            momentum: 0.9,
            weight_decay: 5e-4,
            nesterov: false,
        }
    }
}

impl Optimizer {
    /// Checks the hyper-parameters.
    pub fn validate(&self) -> Result<()> {
        let (m, wd) = match *self {
            Optimizer::Sgd {
                momentum,
                weight_decay,
                nesterov,
            } => {
                if nesterov && momentum <= 0.0 {
                    return Err(Error::invalid(
                        "optimizer",
                        "Nesterov momentum needs momentum > 0",
                    ));
                }
                (momentum, weight_decay)
            }
            Optimizer::Adam { weight_decay } | Optimizer::AdamW { weight_decay } => (0.0, weight_decay),
        };
        if !(0.0..1.0).contains(&m) {
            return Err(Error::invalid(
                "optimizer.momentum",
                format!("{m} is outside [0, 1)"),
            ));
        }
        if !(wd >= 0.0 && wd.is_finite()) {
            return Err(Error::invalid(
                "optimizer.weight_decay",
                format!("{wd} must be finite and >= 0"),
            ));
        }
        Ok(())
    }
}

const BETA1: f64 = 0.9;
const BETA2: f64 = 0.999;
const EPS: f64 = 1e-8;

/// The optimiser's per-parameter buffers (momentum, Adam moments, step counts), by variable name.
#[derive(Debug, Default)]
pub struct OptimizerState {
    /// Buffers keyed `"<variable>/<buffer>"` (`momentum`, `exp_avg`, `exp_avg_sq`, `step`).
    pub buffers: BTreeMap<String, Tensor>,
}

impl OptimizerState {
    /// One update of every variable of `vs` that requires a gradient and has one, with learning
    /// rate `lr`; then the gradients are zeroed.
    pub(crate) fn step(&mut self, opt: &Optimizer, vs: &nn::VarStore, lr: f64) -> Result<()> {
        let mut vars: Vec<(String, Tensor)> = vs.variables().into_iter().collect();
        vars.sort_by(|a, b| a.0.cmp(&b.0));
        tch::no_grad(|| -> Result<()> {
            for (name, p) in &vars {
                if !p.requires_grad() {
                    continue;
                }
                let g = p.grad();
                if !g.defined() {
                    continue;
                }
                match *opt {
                    Optimizer::Sgd {
                        momentum,
                        weight_decay,
                        nesterov,
                    } => {
                        let mut d = if weight_decay != 0.0 {
                            g.f_add(&p.f_mul_scalar(weight_decay)?)?
                        } else {
                            g.shallow_clone()
                        };
                        if momentum != 0.0 {
                            let key = format!("{name}/momentum");
                            let buf = match self.buffers.get_mut(&key) {
                                Some(buf) => {
                                    let _ = buf.f_mul_scalar_(momentum)?.f_add_(&d)?;
                                    buf.shallow_clone()
                                }
                                None => {
                                    let buf = d.detach().copy();
                                    self.buffers.insert(key, buf.shallow_clone());
                                    buf
                                }
                            };
                            d = if nesterov {
                                d.f_add(&buf.f_mul_scalar(momentum)?)?
                            } else {
                                buf
                            };
                        }
                        let mut p = p.shallow_clone();
                        let _ = p.f_sub_(&d.f_mul_scalar(lr)?)?;
                    }
                    Optimizer::Adam { weight_decay } | Optimizer::AdamW { weight_decay } => {
                        let decoupled = matches!(opt, Optimizer::AdamW { .. });
                        let mut p = p.shallow_clone();
                        let d = if decoupled {
                            if weight_decay != 0.0 {
                                let _ = p.f_mul_scalar_(1.0 - lr * weight_decay)?;
                            }
                            g.shallow_clone()
                        } else if weight_decay != 0.0 {
                            g.f_add(&p.f_mul_scalar(weight_decay)?)?
                        } else {
                            g.shallow_clone()
                        };
                        let step_key = format!("{name}/step");
                        let step = self
                            .buffers
                            .get(&step_key)
                            .map(|t| t.double_value(&[]))
                            .unwrap_or(0.0)
                            + 1.0;
                        self.buffers
                            .insert(step_key, Tensor::from_slice(&[step]).reshape([]));
                        let m = self
                            .buffers
                            .entry(format!("{name}/exp_avg"))
                            .or_insert_with(|| p.zeros_like())
                            .shallow_clone();
                        let v = self
                            .buffers
                            .entry(format!("{name}/exp_avg_sq"))
                            .or_insert_with(|| p.zeros_like())
                            .shallow_clone();
                        let (mut m, mut v) = (m, v);
                        let _ = m.f_mul_scalar_(BETA1)?.f_add_(&d.f_mul_scalar(1.0 - BETA1)?)?;
                        let _ = v
                            .f_mul_scalar_(BETA2)?
                            .f_add_(&d.f_mul(&d)?.f_mul_scalar(1.0 - BETA2)?)?;
                        let bc1 = 1.0 - BETA1.powf(step);
                        let bc2 = 1.0 - BETA2.powf(step);
                        let denom = v.f_sqrt()?.f_div_scalar(bc2.sqrt())?.f_add_scalar(EPS)?;
                        let _ = p.f_sub_(&m.f_div(&denom)?.f_mul_scalar(lr / bc1)?)?;
                    }
                }
            }
            Ok(())
        })?;
        for (_, p) in &vars {
            if p.requires_grad() {
                let mut g = p.grad();
                if g.defined() {
                    let _ = g.f_zero_()?;
                }
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tch::{Device, Kind};

    fn one_param(v: &[f32]) -> (nn::VarStore, Tensor) {
        let vs = nn::VarStore::new(Device::Cpu);
        let p = vs
            .root()
            .var_copy("w", &Tensor::from_slice(v).to_kind(Kind::Float));
        (vs, p)
    }

    fn set_grad(p: &Tensor, g: &[f32]) {
        // loss = sum(p * g) has gradient g.
        let loss = (p * Tensor::from_slice(g)).sum(Kind::Float);
        loss.backward();
    }

    fn values(p: &Tensor) -> Vec<f64> {
        Vec::<f64>::try_from(p.to_kind(Kind::Double)).unwrap()
    }

    #[test]
    fn sgd_momentum_matches_hand_computation() {
        // p0 = 1, g = 0.5 each step, lr 0.1, momentum 0.9, wd 0.1.
        // step 1: d = 0.5 + 0.1*1 = 0.6; buf = 0.6; p = 1 - 0.06 = 0.94
        // step 2: d = 0.5 + 0.094 = 0.594; buf = 0.54 + 0.594 = 1.134; p = 0.94 - 0.1134 = 0.8266
        let (vs, p) = one_param(&[1.0]);
        let opt = Optimizer::Sgd {
            momentum: 0.9,
            weight_decay: 0.1,
            nesterov: false,
        };
        let mut st = OptimizerState::default();
        set_grad(&p, &[0.5]);
        st.step(&opt, &vs, 0.1).unwrap();
        assert!((values(&p)[0] - 0.94).abs() < 1e-6);
        set_grad(&p, &[0.5]);
        st.step(&opt, &vs, 0.1).unwrap();
        assert!((values(&p)[0] - 0.8266).abs() < 1e-6, "{:?}", values(&p));
    }

    #[test]
    fn nesterov_matches_hand_computation() {
        // step 1: d = 1, buf = 1, d' = 1 + 0.5*1 = 1.5; p = 0 - 0.15 = -0.15
        let (vs, p) = one_param(&[0.0]);
        let opt = Optimizer::Sgd {
            momentum: 0.5,
            weight_decay: 0.0,
            nesterov: true,
        };
        let mut st = OptimizerState::default();
        set_grad(&p, &[1.0]);
        st.step(&opt, &vs, 0.1).unwrap();
        assert!((values(&p)[0] + 0.15).abs() < 1e-6);
    }

    #[test]
    fn adam_first_steps_move_by_lr() {
        // Adam's first step is lr * sign(g) (up to eps); second step with the same g as well.
        let (vs, p) = one_param(&[1.0, -2.0]);
        let mut st = OptimizerState::default();
        for k in 1..=2 {
            set_grad(&p, &[3.0, -0.01]);
            st.step(&Optimizer::Adam { weight_decay: 0.0 }, &vs, 0.01)
                .unwrap();
            let v = values(&p);
            assert!((v[0] - (1.0 - 0.01 * k as f64)).abs() < 1e-5, "{v:?}");
            assert!((v[1] - (-2.0 + 0.01 * k as f64)).abs() < 1e-4, "{v:?}");
        }
        // AdamW shrinks by (1 - lr * wd) first: 1 * (1 - 0.1) - 0.1 = 0.8 with g > 0.
        let (vs, p) = one_param(&[1.0]);
        let mut st = OptimizerState::default();
        set_grad(&p, &[1.0]);
        st.step(&Optimizer::AdamW { weight_decay: 1.0 }, &vs, 0.1)
            .unwrap();
        assert!((values(&p)[0] - 0.8).abs() < 1e-5);
        assert_eq!(values(&p.grad()), [0.0]);
    }

    #[test]
    fn bad_hyper_parameters_are_errors() {
        let bad = Optimizer::Sgd {
            momentum: 1.5,
            weight_decay: 0.0,
            nesterov: false,
        };
        assert!(bad.validate().is_err());
        assert!(Optimizer::Adam { weight_decay: -1.0 }.validate().is_err());
        assert!(Optimizer::default().validate().is_ok());
    }
}
