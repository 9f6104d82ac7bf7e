//! Gradient family and noise tunnel: hand-computed values on tiny models, Captum golden values,
//! batching, gradients left untouched, evaluation mode, and bad input.

mod gradient_common;

use cnn_explain::attribution::gradient::{
    Baseline, InputXGradient, IntegratedGradients, Quadrature, Saliency, SaliencyMode,
};
use cnn_explain::attribution::noise::{NoiseKind, NoiseTunnel};
use cnn_explain::attribution::{Attribution, Target};
use cnn_explain::models::Staged;
use cnn_explain::Error;
use gradient_common::{batch, max_err, randomize, set, small_cnn};
use std::collections::HashMap;
use tch::{nn, Device, Kind, Tensor};

const CPU: Device = Device::Cpu;

// ---------------------------------------------------------------- linear model

/// logits = W flatten(x) + b, input [N, 2, 2, 2], 3 classes. W[k][j] = (k + 1) * (j - 3.5) / 4.
fn linear_model(vs: &nn::VarStore) -> (Staged, Tensor) {
    let model = Staged::new(2, 3, CPU)
        .leaf("flat", nn::func(|xs| xs.flatten(1, -1)))
        .leaf("fc", nn::linear(vs.root() / "fc", 8, 3, Default::default()));
    let w: Vec<f32> = (0..3)
        .flat_map(|k| (0..8).map(move |j| (k + 1) as f32 * (j as f32 - 3.5) / 4.0))
        .collect();
    set(vs, "fc.weight", &w);
    set(vs, "fc.bias", &[0.3, -0.2, 0.1]);
    (model, Tensor::from_slice(&w).view([3, 2, 2, 2]))
}

#[test]
fn linear_model_saliency_is_the_weights_ixg_is_x_times_w() {
    let vs = nn::VarStore::new(CPU);
    let (model, w) = linear_model(&vs);
    let xs = batch(&[2, 2, 2, 2], 1) - 0.5;
    let target = Target::PerSample(vec![2, 0]);
    let wt = Tensor::stack(&[w.get(2), w.get(0)], 0);
    let signed = Saliency {
        mode: SaliencyMode::Signed,
    }
    .attribute(&model, &xs, &target)
    .unwrap();
    assert_eq!(max_err(&signed, &wt), 0.0);
    let abs = Saliency::default().attribute(&model, &xs, &target).unwrap();
    assert_eq!(max_err(&abs, &wt.abs()), 0.0);
    let max = Saliency {
        mode: SaliencyMode::MaxOverChannels,
    }
    .attribute(&model, &xs, &target)
    .unwrap();
    assert_eq!(max.size(), [2, 1, 2, 2]);
    // Channel 1 holds the larger |w| (j = 4..8 vs 0..4 mirrored): max over channels by hand.
    let expect = wt.abs().amax([1i64].as_slice(), true);
    assert_eq!(max_err(&max, &expect), 0.0);
    // Sample 0, class 2: w = 3 * (j - 3.5) / 4 for j = 0..8; channel 0 = j 0..4, channel 1 = j 4..8.
    // At pixel (0, 0): |w(j=0)| = 2.625, |w(j=4)| = 0.375 -> 2.625.
    assert!((max.double_value(&[0, 0, 0, 0]) - 2.625).abs() < 1e-6);

    let ixg = InputXGradient.attribute(&model, &xs, &target).unwrap();
    assert!(max_err(&ixg, &(&xs * &wt)) < 1e-7);
}

#[test]
fn linear_model_integrated_gradients_are_exact_with_zero_delta() {
    let vs = nn::VarStore::new(CPU);
    let (model, w) = linear_model(&vs);
    let xs = batch(&[3, 2, 2, 2], 2);
    let classes = [1i64, 2, 0];
    let wt = Tensor::stack(&classes.map(|c| w.get(c)), 0);
    for method in [
        Quadrature::RiemannTrapezoid,
        Quadrature::GaussLegendre,
        Quadrature::RiemannLeft,
        Quadrature::RiemannMiddle,
        Quadrature::RiemannRight,
    ] {
        let ig = IntegratedGradients {
            steps: 5,
            method,
            batch: 4,
            ..Default::default()
        };
        let (a, delta) = ig
            .attribute_with_delta(&model, &xs, &Target::PerSample(classes.to_vec()))
            .unwrap();
        assert!(max_err(&a, &(&xs * &wt)) < 1e-6, "{method:?}");
        assert_eq!(delta.size(), [3]);
        assert!(delta.abs().max().double_value(&[]) < 1e-5, "{method:?} {delta}");
    }
    // Other baselines: attributions are (x - b) * w, still with zero delta.
    let shared = batch(&[1, 2, 2, 2], 9);
    for baseline in [
        Baseline::Blurred { sigma: 0.8 },
        Baseline::UniformNoise { seed: 4 },
        Baseline::Tensor(shared.shallow_clone()),
    ] {
        let b = baseline.build(&xs).unwrap();
        let ig = IntegratedGradients {
            steps: 3,
            baseline,
            ..Default::default()
        };
        let (a, delta) = ig
            .attribute_with_delta(&model, &xs, &Target::PerSample(classes.to_vec()))
            .unwrap();
        assert!(max_err(&a, &((&xs - &b) * &wt)) < 1e-6, "{}", ig.name());
        assert!(delta.abs().max().double_value(&[]) < 1e-5);
    }
}

#[test]
fn baselines_are_what_they_say() {
    let xs = batch(&[2, 3, 6, 6], 3) * 2.0 - 0.5;
    let u = Baseline::UniformNoise { seed: 11 }.build(&xs).unwrap();
    assert!(u.equal(&Baseline::UniformNoise { seed: 11 }.build(&xs).unwrap()));
    assert!(!u.equal(&Baseline::UniformNoise { seed: 12 }.build(&xs).unwrap()));
    for i in 0..2 {
        let (lo, hi) = (
            xs.get(i).min().double_value(&[]),
            xs.get(i).max().double_value(&[]),
        );
        let ui = u.get(i);
        assert!(ui.min().double_value(&[]) >= lo && ui.max().double_value(&[]) <= hi);
    }
    let shared = batch(&[3, 6, 6], 5);
    let t = Baseline::Tensor(shared.shallow_clone()).build(&xs).unwrap();
    assert_eq!(t.size(), [2, 3, 6, 6]);
    assert!(t.get(1).equal(&shared));
    // A blurred constant image is the constant; blurring reduces the variance of noise.
    let blurred = Baseline::Blurred { sigma: 1.5 }.build(&xs).unwrap();
    assert!(blurred.var(false).double_value(&[]) < 0.5 * xs.var(false).double_value(&[]));
}

// ---------------------------------------------------------------- two-layer conv net by hand

/// conv 2x2 (1 -> 2, bias) - ReLU - conv 2x2 (2 -> 2, bias) on a 3x3 input: logits [N, 2].
const W1: [f32; 8] = [1.0, -1.0, 2.0, 0.0, 0.5, 1.0, -1.0, 1.0];
const B1: [f32; 2] = [0.5, -1.0];
const W2: [f32; 16] = [
    1.0, 2.0, 3.0, 4.0, -1.0, 1.0, 0.5, 2.0, // class 0: channel 0, channel 1
    0.0, 1.0, -1.0, 0.0, 1.0, 0.0, 0.0, -1.0, // class 1
];
const B2: [f32; 2] = [0.1, -0.2];
const X: [f32; 9] = [1.0, 2.0, 0.0, 0.0, 1.0, 3.0, 2.0, 1.0, 1.0];

fn two_layer(vs: &nn::VarStore) -> Staged {
    let root = vs.root();
    let model = Staged::new(1, 2, CPU)
        .leaf("conv1", nn::conv2d(&root / "conv1", 1, 2, 2, Default::default()))
        .leaf("relu", nn::func(|xs| xs.relu()))
        .leaf("conv2", nn::conv2d(&root / "conv2", 2, 2, 2, Default::default()))
        .leaf("flat", nn::func(|xs| xs.flatten(1, -1)));
    set(vs, "conv1.weight", &W1);
    set(vs, "conv1.bias", &B1);
    set(vs, "conv2.weight", &W2);
    set(vs, "conv2.bias", &B2);
    model
}

/// The same net in plain f64, for finite differences.
fn two_layer_f64(x: &[f64; 9], class: usize) -> f64 {
    let mut out = B2[class] as f64;
    for c in 0..2 {
        for p in 0..2 {
            for q in 0..2 {
                let mut h = B1[c] as f64;
                for u in 0..2 {
                    for v in 0..2 {
                        h += W1[c * 4 + u * 2 + v] as f64 * x[(p + u) * 3 + q + v];
                    }
                }
                out += W2[class * 8 + c * 4 + p * 2 + q] as f64 * h.max(0.0);
            }
        }
    }
    out
}

fn finite_difference_grad(x: &[f64; 9], class: usize) -> Vec<f64> {
    let eps = 1e-6;
    (0..9)
        .map(|j| {
            let (mut a, mut b) = (*x, *x);
            a[j] += eps;
            b[j] -= eps;
            (two_layer_f64(&a, class) - two_layer_f64(&b, class)) / (2.0 * eps)
        })
        .collect()
}

#[test]
fn two_layer_conv_gradient_matches_the_hand_computation() {
    let vs = nn::VarStore::new(CPU);
    let model = two_layer(&vs);
    let xs = Tensor::from_slice(&X).view([1, 1, 3, 3]);
    // Class 0 by hand: the active hidden units are channel 0 at (0,1), (1,0), (1,1) (pre-activations
    // 4.5, 3.5, 0.5; (0,0) is -0.5) and channel 1 at (0,0), (0,1), (1,1) (2.5, 2, 2.5; (1,0) is -1).
    // d out / d x = sum over active units of w2 * (w1 placed at the unit's offset).
    let hand = [-0.5, 1.5, -1.0, 4.0, 4.0, -1.0, 6.0, 6.0, 2.0];
    let g = Saliency {
        mode: SaliencyMode::Signed,
    }
    .attribute(&model, &xs, &Target::Class(0))
    .unwrap();
    let got = Vec::<f32>::try_from(&g.flatten(0, -1)).unwrap();
    for (a, b) in got.iter().zip(hand) {
        assert!((*a as f64 - b).abs() < 1e-6, "{got:?} vs {hand:?}");
    }
    let x64 = X.map(|v| v as f64);
    // The hand values agree with finite differences of the f64 net; class 1 is checked that way.
    for (class, got) in [(0usize, got)].into_iter().chain([(
        1usize,
        Vec::<f32>::try_from(
            &Saliency {
                mode: SaliencyMode::Signed,
            }
            .attribute(&model, &xs, &Target::Class(1))
            .unwrap()
            .flatten(0, -1),
        )
        .unwrap(),
    )]) {
        let fd = finite_difference_grad(&x64, class);
        for (a, b) in got.iter().zip(&fd) {
            assert!((*a as f64 - b).abs() < 1e-5, "class {class}: {got:?} vs {fd:?}");
        }
    }
    // Input x gradient.
    let ixg = InputXGradient.attribute(&model, &xs, &Target::Class(0)).unwrap();
    let expect: Vec<f32> = X.iter().zip(hand).map(|(x, g)| x * g as f32).collect();
    assert!(max_err(&ixg, &Tensor::from_slice(&expect).view([1, 1, 3, 3])) < 1e-6);
}

#[test]
fn two_layer_conv_integrated_gradients_match_a_plain_reference() {
    let vs = nn::VarStore::new(CPU);
    let model = two_layer(&vs);
    let xs = Tensor::from_slice(&X).view([1, 1, 3, 3]);
    let x64 = X.map(|v| v as f64);
    for method in [Quadrature::RiemannTrapezoid, Quadrature::GaussLegendre] {
        let steps = 16;
        let (alphas, weights) = method.nodes(steps).unwrap();
        let mut expect = [0.0f64; 9];
        for (a, w) in alphas.iter().zip(&weights) {
            let point = x64.map(|v| a * v);
            for (e, g) in expect.iter_mut().zip(finite_difference_grad(&point, 1)) {
                *e += w * g;
            }
        }
        let expect: Vec<f64> = expect.iter().zip(&x64).map(|(g, x)| g * x).collect();
        let ig = IntegratedGradients {
            steps,
            method,
            batch: 3,
            ..Default::default()
        };
        let (a, delta) = ig.attribute_with_delta(&model, &xs, &Target::Class(1)).unwrap();
        let got = Vec::<f32>::try_from(&a.flatten(0, -1)).unwrap();
        for (g, e) in got.iter().zip(&expect) {
            assert!((*g as f64 - e).abs() < 1e-4, "{method:?}: {got:?} vs {expect:?}");
        }
        let f_x = two_layer_f64(&x64, 1);
        let f_0 = two_layer_f64(&[0.0; 9], 1);
        let expect_delta = expect.iter().sum::<f64>() - (f_x - f_0);
        assert!((delta.double_value(&[0]) - expect_delta).abs() < 1e-4);
    }
}

// ---------------------------------------------------------------- convergence on a smooth model

fn smooth_model(vs: &nn::VarStore) -> Staged {
    let root = vs.root();
    let model = Staged::new(3, 3, CPU)
        .leaf("conv", nn::conv2d(&root / "conv", 3, 4, 3, Default::default()))
        .leaf("tanh", nn::func(|xs| xs.tanh()))
        .leaf(
            "pool",
            nn::func(|xs| xs.adaptive_avg_pool2d([1, 1]).flatten(1, -1)),
        )
        .leaf("fc", nn::linear(&root / "fc", 4, 3, Default::default()));
    randomize(vs, 21, 1.5);
    model
}

#[test]
fn ig_delta_shrinks_with_steps_and_gauss_legendre_beats_trapezoid() {
    let vs = nn::VarStore::new(CPU);
    let model = smooth_model(&vs);
    let xs = batch(&[2, 3, 6, 6], 6) * 2.0;
    let delta = |steps, method| {
        let ig = IntegratedGradients {
            steps,
            method,
            ..Default::default()
        };
        ig.attribute_with_delta(&model, &xs, &Target::Class(2))
            .unwrap()
            .1
            .abs()
            .max()
            .double_value(&[])
    };
    let trap: Vec<f64> = [2, 4, 8, 16]
        .iter()
        .map(|&s| delta(s, Quadrature::RiemannTrapezoid))
        .collect();
    println!("trapezoid |delta| at 2, 4, 8, 16 steps: {trap:?}");
    assert!(trap[0] > 1e-3, "the model must be nonlinear enough: {trap:?}");
    assert!(trap.windows(2).all(|w| w[1] < w[0]), "trapezoid deltas {trap:?}");
    // Trapezoid error is O(1/n^2): doubling the steps divides it by about 4.
    assert!(trap[3] < trap[2] / 3.0, "{trap:?}");
    // Gauss-Legendre converges much faster at equal steps (exact for degree 2n - 1).
    for (steps, factor) in [(2, 3.0), (4, 5.0), (8, 20.0)] {
        let gl = delta(steps, Quadrature::GaussLegendre);
        let tr = delta(steps, Quadrature::RiemannTrapezoid);
        println!("steps {steps}: |delta| Gauss-Legendre {gl:.3e}, trapezoid {tr:.3e}");
        assert!(
            gl * factor < tr,
            "steps {steps}: Gauss-Legendre {gl} vs trapezoid {tr}"
        );
    }
}

// ---------------------------------------------------------------- Captum golden values

fn golden() -> HashMap<String, Tensor> {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/fixtures/captum_gradient.safetensors"
    );
    Tensor::read_safetensors(path).unwrap().into_iter().collect()
}

fn golden_model(vs: &nn::VarStore, g: &HashMap<String, Tensor>) -> Staged {
    let model = small_cnn(vs);
    let vars = vs.variables();
    assert_eq!(vars.len(), 6);
    for (name, v) in vars {
        let mut v = v.shallow_clone();
        tch::no_grad(|| v.copy_(&g[&name]));
    }
    model
}

/// Max |a - b| relative to max |b|, printed and checked against 1e-4.
fn check_golden(what: &str, got: &Tensor, want: &Tensor) -> f64 {
    let err = max_err(got, want);
    let scale = want.abs().max().double_value(&[]).max(1e-12);
    println!(
        "{what:<28} max abs err {err:.3e}  (max |captum| {scale:.3e}, relative {:.3e})",
        err / scale
    );
    assert!(err / scale < 1e-4 && err < 1e-4, "{what}: {err} (scale {scale})");
    err
}

#[test]
fn matches_captum_golden_values() {
    let g = golden();
    let vs = nn::VarStore::new(CPU);
    let model = golden_model(&vs, &g);
    let xs = &g["input"];
    let target = Target::PerSample(Vec::<i64>::try_from(&g["target"]).unwrap());
    check_golden("logits", &tch::no_grad(|| model.forward_t_eval(xs)), &g["logits"]);

    let sal = |mode| Saliency { mode }.attribute(&model, xs, &target).unwrap();
    check_golden("Saliency abs", &sal(SaliencyMode::Absolute), &g["saliency_abs"]);
    check_golden(
        "Saliency signed",
        &sal(SaliencyMode::Signed),
        &g["saliency_signed"],
    );
    check_golden(
        "InputXGradient",
        &InputXGradient.attribute(&model, xs, &target).unwrap(),
        &g["input_x_gradient"],
    );
    let steps = 20;
    for (method, key) in [
        (Quadrature::GaussLegendre, "gausslegendre"),
        (Quadrature::RiemannLeft, "riemann_left"),
        (Quadrature::RiemannMiddle, "riemann_middle"),
        (Quadrature::RiemannRight, "riemann_right"),
        (Quadrature::RiemannTrapezoid, "riemann_trapezoid"),
    ] {
        let ig = IntegratedGradients {
            steps,
            method,
            batch: 7,
            ..Default::default()
        };
        let (a, delta) = ig.attribute_with_delta(&model, xs, &target).unwrap();
        if method == Quadrature::RiemannTrapezoid {
            // Captum's trapezoid weights add up to (n-1)/n (see `Quadrature`); ours add up to 1.
            let scale = (steps as f64 - 1.0) / steps as f64;
            check_golden(
                "IG riemann_trapezoid*(n-1)/n",
                &(a * scale),
                &g["ig_riemann_trapezoid"],
            );
        } else {
            check_golden(&format!("IG {key}"), &a, &g[&format!("ig_{key}")]);
            check_golden(&format!("IG {key} delta"), &delta, &g[&format!("ig_{key}_delta")]);
        }
    }
    for (kind, key) in [
        (NoiseKind::SmoothGrad, "smoothgrad"),
        (NoiseKind::SmoothGradSquared, "smoothgrad_sq"),
        (NoiseKind::VarGrad, "vargrad"),
    ] {
        let nt = NoiseTunnel {
            samples: 6,
            batch: 5,
            noise: Some(g["noise"].shallow_clone()),
            ..NoiseTunnel::new(Saliency::default(), kind)
        };
        check_golden(
            &format!("NoiseTunnel {key}"),
            &nt.attribute(&model, xs, &target).unwrap(),
            &g[&format!("nt_{key}")],
        );
    }
}

trait EvalForward {
    fn forward_t_eval(&self, xs: &Tensor) -> Tensor;
}
impl EvalForward for Staged {
    fn forward_t_eval(&self, xs: &Tensor) -> Tensor {
        tch::nn::ModuleT::forward_t(self, xs, false)
    }
}

// ---------------------------------------------------------------- batching, targets, state

fn methods() -> Vec<Box<dyn Attribution>> {
    vec![
        Box::new(Saliency {
            mode: SaliencyMode::Signed,
        }),
        Box::new(Saliency {
            mode: SaliencyMode::MaxOverChannels,
        }),
        Box::new(InputXGradient),
        Box::new(IntegratedGradients {
            steps: 6,
            batch: 4,
            ..Default::default()
        }),
        Box::new(IntegratedGradients {
            steps: 5,
            method: Quadrature::GaussLegendre,
            baseline: Baseline::Blurred { sigma: 1.0 },
            batch: 100,
        }),
    ]
}

#[test]
fn batched_equals_one_by_one_for_every_target_kind() {
    let vs = nn::VarStore::new(CPU);
    let model = small_cnn(&vs);
    randomize(&vs, 3, 0.5);
    let xs = batch(&[3, 3, 8, 8], 7);
    let predicted = model.forward_t_eval(&xs).argmax(1, false);
    let predicted = Vec::<i64>::try_from(&predicted).unwrap();
    for m in methods() {
        for target in [
            Target::Predicted,
            Target::Class(1),
            Target::PerSample(vec![2, 0, 1]),
        ] {
            let all = m.attribute(&model, &xs, &target).unwrap();
            for i in 0..3 {
                let one_target = match &target {
                    Target::Predicted => Target::Class(predicted[i as usize]),
                    Target::Class(c) => Target::Class(*c),
                    Target::PerSample(cs) => Target::Class(cs[i as usize]),
                };
                let one = m.attribute(&model, &xs.narrow(0, i, 1), &one_target).unwrap();
                let err = max_err(&all.narrow(0, i, 1), &one);
                assert!(err < 1e-6, "{} {target:?} sample {i}: {err}", m.name());
            }
        }
    }
    // Noise tunnel: with the same given noise, batched equals one by one; with drawn noise the map
    // does not depend on the internal batch size.
    let noise = gradient_common::batch(&[4, 3, 3, 8, 8], 8) - 0.5;
    let nt = |noise: Option<Tensor>, batch| NoiseTunnel {
        samples: 4,
        batch,
        noise,
        ..NoiseTunnel::var_grad(IntegratedGradients {
            steps: 3,
            ..Default::default()
        })
    };
    let all = nt(Some(noise.shallow_clone()), 5)
        .attribute(&model, &xs, &Target::Predicted)
        .unwrap();
    for i in 0..3 {
        let one = nt(Some(noise.narrow(1, i, 1)), 1)
            .attribute(&model, &xs.narrow(0, i, 1), &Target::Class(predicted[i as usize]))
            .unwrap();
        assert!(max_err(&all.narrow(0, i, 1), &one) < 1e-6);
    }
    let a = nt(None, 1).attribute(&model, &xs, &Target::Class(0)).unwrap();
    let b = nt(None, 12).attribute(&model, &xs, &Target::Class(0)).unwrap();
    assert!(max_err(&a, &b) < 1e-6);
}

#[test]
fn noise_tunnel_is_seeded_and_scaled_by_the_input_range() {
    let vs = nn::VarStore::new(CPU);
    let model = small_cnn(&vs);
    randomize(&vs, 3, 0.5);
    let xs = batch(&[2, 3, 8, 8], 9);
    let sg = |seed, sigma| NoiseTunnel {
        seed,
        sigma,
        samples: 5,
        ..NoiseTunnel::smooth(Saliency {
            mode: SaliencyMode::Signed,
        })
    };
    let a = sg(1, 0.2).attribute(&model, &xs, &Target::Class(0)).unwrap();
    assert!(a.equal(&sg(1, 0.2).attribute(&model, &xs, &Target::Class(0)).unwrap()));
    assert!(!a.equal(&sg(2, 0.2).attribute(&model, &xs, &Target::Class(0)).unwrap()));
    // sigma 0: every copy is the input, so SmoothGrad is the gradient and VarGrad is 0.
    let plain = Saliency {
        mode: SaliencyMode::Signed,
    }
    .attribute(&model, &xs, &Target::Class(0))
    .unwrap();
    assert!(
        max_err(
            &sg(1, 0.0).attribute(&model, &xs, &Target::Class(0)).unwrap(),
            &plain
        ) < 1e-6
    );
    let vg = NoiseTunnel {
        sigma: 0.0,
        samples: 3,
        ..NoiseTunnel::var_grad(InputXGradient)
    };
    assert!(
        vg.attribute(&model, &xs, &Target::Class(0))
            .unwrap()
            .abs()
            .max()
            .double_value(&[])
            < 1e-10
    );
    // On a linear model the gradient ignores the noise: SmoothGrad-squared = w^2 exactly.
    let vs2 = nn::VarStore::new(CPU);
    let (lin, w) = linear_model(&vs2);
    let x2 = batch(&[1, 2, 2, 2], 3);
    let sq = NoiseTunnel::smooth_squared(Saliency::default())
        .attribute(&lin, &x2, &Target::Class(1))
        .unwrap();
    assert!(max_err(&sq, &(w.get(1) * w.get(1)).unsqueeze(0)) < 1e-6);
    // Noise scale: InputXGradient on the linear model is (x + e) * w, whose VarGrad is
    // w^2 * sigma^2 * (max - min)^2 in expectation.
    let x3 = Tensor::from_slice(&[0.0f32, 4.0, 1.0, 2.0, 3.0, 1.0, 0.5, 2.5]).view([1, 2, 2, 2]);
    let vg = NoiseTunnel {
        samples: 4000,
        batch: 1000,
        sigma: 0.1,
        ..NoiseTunnel::var_grad(InputXGradient)
    };
    let v = vg.attribute(&lin, &x3, &Target::Class(0)).unwrap();
    let ratio = (v / (w.get(0) * w.get(0)).unsqueeze(0))
        .mean(Kind::Double)
        .double_value(&[]);
    let expect = (0.1f64 * 4.0).powi(2);
    assert!(
        (ratio / expect - 1.0).abs() < 0.05,
        "noise variance {ratio} vs {expect}"
    );
}

#[test]
fn variables_gradients_are_left_as_found_and_eval_mode_is_used() {
    let vs = nn::VarStore::new(CPU);
    let root = vs.root();
    // Dropout in the chain: in training mode the map would be random.
    let model = Staged::new(3, 3, CPU)
        .leaf("conv1", nn::conv2d(&root / "conv1", 3, 4, 3, Default::default()))
        .leaf("relu", nn::func(|xs| xs.relu()))
        .leaf("drop", nn::func_t(|xs, train| xs.dropout(0.9, train)))
        .leaf(
            "pool",
            nn::func(|xs| xs.adaptive_avg_pool2d([1, 1]).flatten(1, -1)),
        )
        .leaf("fc", nn::linear(&root / "fc", 4, 3, Default::default()));
    randomize(&vs, 5, 0.5);
    let vars = vs.variables();
    let w = vars["conv1.weight"].shallow_clone();
    (&w * 3.0).sum(Kind::Float).backward(); // conv1.weight.grad = 3 everywhere
    let before = w.grad().copy();
    assert!(!vars["fc.weight"].grad().defined());

    let xs = batch(&[2, 3, 6, 6], 10);
    for m in methods().into_iter().chain([Box::new(NoiseTunnel {
        samples: 3,
        ..NoiseTunnel::smooth(Saliency::default())
    }) as Box<dyn Attribution>])
    {
        let a = m.attribute(&model, &xs, &Target::Predicted).unwrap();
        let b = m.attribute(&model, &xs, &Target::Predicted).unwrap();
        assert!(a.equal(&b), "{} is not deterministic: dropout was on", m.name());
        assert!(
            !a.requires_grad(),
            "{} returned a tensor attached to a graph",
            m.name()
        );
        assert!(w.grad().equal(&before), "{} changed conv1.weight.grad", m.name());
        assert!(
            !vars["fc.weight"].grad().defined(),
            "{} created fc.weight.grad",
            m.name()
        );
    }
    // Also under a caller's no_grad (a notebook cell inside tch::no_grad).
    let a = tch::no_grad(|| Saliency::default().attribute(&model, &xs, &Target::Class(0))).unwrap();
    assert!(a.abs().sum(Kind::Float).double_value(&[]) > 0.0);
}

// ---------------------------------------------------------------- bad input

#[test]
fn bad_input_gives_clear_errors() {
    let vs = nn::VarStore::new(CPU);
    let model = small_cnn(&vs);
    let xs = batch(&[2, 3, 8, 8], 11);
    let t = Target::Class(0);
    for m in methods() {
        let e = m.attribute(&model, &batch(&[3, 8, 8], 1), &t).unwrap_err();
        assert!(matches!(e, Error::Shape { .. }), "rank: {e}");
        let e = m.attribute(&model, &batch(&[2, 1, 8, 8], 1), &t).unwrap_err();
        assert!(e.to_string().contains("grayscale"), "channels: {e}");
        let e = m.attribute(&model, &xs, &Target::Class(3)).unwrap_err();
        assert!(
            matches!(
                e,
                Error::ClassOutOfRange {
                    index: 3,
                    num_classes: 3
                }
            ),
            "{e}"
        );
        let e = m.attribute(&model, &xs, &Target::PerSample(vec![0])).unwrap_err();
        assert!(e.to_string().contains("PerSample"), "{e}");
        let e = m.attribute(&model, &xs, &Target::Class(-1)).unwrap_err();
        assert!(matches!(e, Error::ClassOutOfRange { .. }), "{e}");
    }
    let ig = |steps, batch, method| IntegratedGradients {
        steps,
        batch,
        method,
        ..Default::default()
    };
    let msg = |r: cnn_explain::Result<Tensor>| r.unwrap_err().to_string();
    let e = msg(ig(0, 5, Quadrature::GaussLegendre).attribute(&model, &xs, &t));
    assert!(e.contains("steps") && e.contains("at least 1"), "{e}");
    let e = msg(ig(1, 5, Quadrature::RiemannTrapezoid).attribute(&model, &xs, &t));
    assert!(e.contains("at least 2"), "{e}");
    let e = msg(ig(5, 0, Quadrature::GaussLegendre).attribute(&model, &xs, &t));
    assert!(e.contains("batch"), "{e}");
    for bad in [
        batch(&[2, 3, 4, 4], 1),
        batch(&[3, 3, 8, 8], 1),
        batch(&[2, 3, 8], 1),
    ] {
        let ig = IntegratedGradients {
            baseline: Baseline::Tensor(bad),
            ..Default::default()
        };
        let e = ig.attribute(&model, &xs, &t).unwrap_err();
        assert!(
            matches!(e, Error::Shape { .. }) && e.to_string().contains("baseline"),
            "{e}"
        );
    }
    let ig = IntegratedGradients {
        baseline: Baseline::Blurred { sigma: -1.0 },
        ..Default::default()
    };
    assert!(msg(ig.attribute(&model, &xs, &t)).contains("sigma"));

    let nt = |samples, batch, sigma| NoiseTunnel {
        samples,
        batch,
        sigma,
        ..NoiseTunnel::smooth(Saliency::default())
    };
    assert!(msg(nt(0, 5, 0.1).attribute(&model, &xs, &t)).contains("samples"));
    assert!(msg(nt(5, 0, 0.1).attribute(&model, &xs, &t)).contains("batch"));
    assert!(msg(nt(5, 5, -0.1).attribute(&model, &xs, &t)).contains("sigma"));
    assert!(msg(nt(5, 5, f64::NAN).attribute(&model, &xs, &t)).contains("sigma"));
    let with_noise = NoiseTunnel {
        noise: Some(batch(&[4, 2, 3, 8, 8], 1)),
        ..nt(5, 5, 0.1)
    };
    let e = with_noise.attribute(&model, &xs, &t).unwrap_err();
    assert!(
        matches!(e, Error::Shape { .. }) && e.to_string().contains("noise"),
        "{e}"
    );
    // Errors of the inner method come through the tunnel.
    let inner = NoiseTunnel::smooth(IntegratedGradients {
        steps: 0,
        ..Default::default()
    });
    assert!(msg(inner.attribute(&model, &xs, &t)).contains("steps"));
    let e = nt(2, 2, 0.1)
        .attribute(&model, &xs, &Target::Class(7))
        .unwrap_err();
    assert!(matches!(e, Error::ClassOutOfRange { .. }));
}

// ---------------------------------------------------------------- IG without the delta

#[test]
fn ig_attribute_equals_the_map_of_attribute_with_delta_for_every_kind_of_target() {
    // `attribute` skips the end-point forward passes the delta needs; the map must not change.
    let vs = nn::VarStore::new(CPU);
    let model = small_cnn(&vs);
    randomize(&vs, 3, 0.5);
    let xs = batch(&[3, 3, 8, 8], 5);
    let ig = IntegratedGradients {
        steps: 6,
        batch: 4,
        ..Default::default()
    };
    for target in [
        Target::Predicted,
        Target::Class(1),
        Target::PerSample(vec![0, 2, 1]),
    ] {
        let plain = ig.attribute(&model, &xs, &target).unwrap();
        let (with_delta, _) = ig.attribute_with_delta(&model, &xs, &target).unwrap();
        assert_eq!(plain.size(), xs.size());
        assert!(max_err(&plain, &with_delta) == 0.0, "{target:?}");
    }
    // A target out of range is still an error without the end-point passes.
    let bad = ig.attribute(&model, &xs, &Target::Class(99));
    assert!(
        matches!(bad, Err(Error::ClassOutOfRange { index: 99, .. })),
        "{bad:?}"
    );
}
