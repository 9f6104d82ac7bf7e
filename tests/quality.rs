//! The quality module on constructed cases whose results are worked out by hand, and golden values
//! of SSIM and Spearman from scikit-image and scipy (`scripts/golden/quality.py`).

use cnn_explain::attribution::cam::GradCam;
use cnn_explain::attribution::gradient::{
    Baseline, InputXGradient, IntegratedGradients, Quadrature, Saliency, SaliencyMode,
};
use cnn_explain::attribution::{Attribution, Target};
use cnn_explain::models::zoo::Normalization;
use cnn_explain::models::{Model, Staged, ZooConfig};
use cnn_explain::quality::*;
use cnn_explain::rng::Rng;
use cnn_explain::{Error, Result};
use std::cell::Cell;
use tch::nn::{self, VarStore};
use tch::{Device, Kind, Tensor};

const CPU: Device = Device::Cpu;

fn t(v: &[f32], shape: &[i64]) -> Tensor {
    Tensor::from_slice(v).view(shape)
}

fn close(a: f64, b: f64, tol: f64) -> bool {
    (a - b).abs() <= tol
}

fn assert_all_close(got: &[f64], want: &[f64], tol: f64, what: &str) {
    assert_eq!(got.len(), want.len(), "{what}: {got:?} vs {want:?}");
    for (g, w) in got.iter().zip(want) {
        assert!(close(*g, *w, tol), "{what}: got {got:?}, want {want:?}");
    }
}

/// One class whose logit is the sum of all input values.
fn sum_model(channels: i64) -> Staged {
    Staged::new(channels, 1, CPU).leaf(
        "sum",
        nn::func(|xs| xs.flatten(1, -1).sum_dim_intlist(1, true, Kind::Float)),
    )
}

/// Two classes with logits `[sum(x), 0]`.
fn two_class_sum_model() -> Staged {
    Staged::new(1, 2, CPU).leaf(
        "head",
        nn::func(|xs| {
            let s = xs.flatten(1, -1).sum_dim_intlist(1, true, Kind::Float);
            Tensor::cat(&[&s, &s.zeros_like()], 1)
        }),
    )
}

// ------------------------------------------------------------------------------------------------
// Faithfulness
// ------------------------------------------------------------------------------------------------

#[test]
fn deletion_and_insertion_of_a_perfect_and_a_reversed_ordering() {
    // Logit = x0 + x1 + x2 + x3 with x = [1, 2, 3, 4]. Sample 0's map is x itself (the perfect
    // ordering: pixel 3 first), sample 1's is -x (the worst).
    // Deletion to 0, one pixel per step, fractions 0, 1/4, ..., 1:
    //   perfect: 10, 6, 3, 1, 0  -> AUC = 1/4 * (16 + 9 + 4 + 1) / 2 = 3.75
    //   reversed: 10, 9, 7, 4, 0 -> AUC = 1/4 * (19 + 16 + 11 + 4) / 2 = 6.25
    // Insertion onto 0: perfect 0, 4, 7, 9, 10 -> 6.25; reversed 0, 1, 3, 6, 10 -> 3.75.
    let model = sum_model(1);
    let x = t(&[1., 2., 3., 4.], &[1, 1, 2, 2]);
    let xs = Tensor::cat(&[&x, &x], 0);
    let maps = Tensor::cat(&[&x, &(-&x)], 0);
    for batch in [1, 3, 64] {
        let config = FaithfulnessConfig {
            step: 1,
            score: Score::Logit,
            batch,
            ..Default::default()
        };
        let del = deletion(&model, &xs, &maps, &Target::Class(0), &config).unwrap();
        assert_eq!(del.fractions, [0.0, 0.25, 0.5, 0.75, 1.0]);
        assert_all_close(&del.scores[0], &[10., 6., 3., 1., 0.], 1e-6, "deletion perfect");
        assert_all_close(&del.scores[1], &[10., 9., 7., 4., 0.], 1e-6, "deletion reversed");
        assert_all_close(&del.auc, &[3.75, 6.25], 1e-6, "deletion AUC");
        assert_eq!(del.classes, [0, 0]);
        let ins = insertion(&model, &xs, &maps, &Target::Class(0), &config).unwrap();
        assert_all_close(&ins.scores[0], &[0., 4., 7., 9., 10.], 1e-6, "insertion perfect");
        assert_all_close(&ins.scores[1], &[0., 1., 3., 6., 10.], 1e-6, "insertion reversed");
        assert_all_close(&ins.auc, &[6.25, 3.75], 1e-6, "insertion AUC");
        assert_all_close(&ins.mean_scores(), &[0., 2.5, 5., 7.5, 10.], 1e-6, "mean curve");
    }
}

#[test]
fn a_last_step_smaller_than_the_others_is_weighted_by_its_width() {
    // Three pixels per step on four pixels: counts 0, 3, 4, fractions 0, 0.75, 1.
    // Perfect deletion: 10, 1, 0 -> AUC = 0.75 * 11 / 2 + 0.25 * 1 / 2 = 4.25.
    let model = sum_model(1);
    let x = t(&[1., 2., 3., 4.], &[1, 1, 2, 2]);
    let config = FaithfulnessConfig {
        step: 3,
        score: Score::Logit,
        ..Default::default()
    };
    let del = deletion(&model, &x, &x, &Target::Class(0), &config).unwrap();
    assert_eq!(del.fractions, [0.0, 0.75, 1.0]);
    assert_all_close(&del.scores[0], &[10., 1., 0.], 1e-6, "scores");
    assert_all_close(&del.auc, &[4.25], 1e-6, "AUC");
}

#[test]
fn ties_are_broken_by_pixel_index_and_channels_are_summed() {
    // A constant map: pixels go in row-major order 0, 1, 2, 3. x = [1, 2, 3, 4] in each of 3
    // channels (logit 30); deletion to the constant 1 replaces x_i by 1 in all channels, so removing
    // pixel i lowers the logit by 3 (x_i - 1): 30, 30, 27, 21, 12.
    let model = sum_model(3);
    let xs = t(&[1., 2., 3., 4.], &[1, 1, 2, 2]).repeat([1, 3, 1, 1]);
    let map = Tensor::ones([1, 3, 2, 2], (Kind::Float, CPU));
    let config = FaithfulnessConfig {
        step: 1,
        fill: Fill::Constant(1.0),
        score: Score::Logit,
        ..Default::default()
    };
    let del = deletion(&model, &xs, &map, &Target::Class(0), &config).unwrap();
    assert_all_close(&del.scores[0], &[30., 30., 27., 21., 12.], 1e-5, "ties row-major");
    // Channels summed: channel 0 says pixel 3 first, channels 1 and 2 say pixel 0 first (2 > 1).
    let mut m = vec![0f32; 12];
    m[3] = 1.0; // channel 0, pixel 3
    m[4] = 1.0; // channel 1, pixel 0
    m[8] = 1.0; // channel 2, pixel 0
    let del = deletion(&model, &xs, &t(&m, &[1, 3, 2, 2]), &Target::Class(0), &config).unwrap();
    assert_all_close(
        &del.scores[0][..3],
        &[30., 30., 21.],
        1e-5,
        "pixel 0 then pixel 3",
    );
}

#[test]
fn blurred_fill_of_a_constant_image_changes_nothing_and_probability_is_softmax() {
    let model = two_class_sum_model();
    let xs = Tensor::full([1, 1, 4, 4], 0.5, (Kind::Float, CPU));
    let map = Tensor::rand([1, 1, 4, 4], (Kind::Float, CPU));
    let config = FaithfulnessConfig {
        step: 4,
        fill: Fill::Blur { sigma: 1.0 },
        ..Default::default()
    };
    let del = deletion(&model, &xs, &map, &Target::Class(0), &config).unwrap();
    // Logits [8, 0]: p = 1 / (1 + e^-8) at every point, AUC the same.
    let p = 1.0 / (1.0 + (-8f64).exp());
    assert_all_close(&del.scores[0], &[p; 5], 1e-6, "flat curve");
    assert!(close(del.auc[0], p, 1e-6));
}

#[test]
fn predicted_target_is_the_intact_images_class() {
    let model = two_class_sum_model();
    let xs = t(&[-1., -1., 1., -1.], &[2, 1, 1, 2]); // sums -2 (class 1) and 0 (tie: class 0)
    let map = xs.ones_like();
    let del = deletion(
        &model,
        &xs,
        &map,
        &Target::Predicted,
        &FaithfulnessConfig::default(),
    )
    .unwrap();
    assert_eq!(del.classes, [1, 0]);
}

#[test]
fn faithfulness_bad_input_is_an_error() {
    let model = sum_model(1);
    let xs = Tensor::ones([2, 1, 4, 4], (Kind::Float, CPU));
    let ok = Tensor::ones([2, 1, 4, 4], (Kind::Float, CPU));
    let c = FaithfulnessConfig::default();
    let err = deletion(
        &model,
        &xs,
        &Tensor::ones([2, 1, 4, 3], (Kind::Float, CPU)),
        &Target::Class(0),
        &c,
    )
    .unwrap_err()
    .to_string();
    assert!(err.contains("[2, 1, 4, 4]"), "{err}");
    assert!(deletion(
        &model,
        &xs,
        &Tensor::ones([1, 1, 4, 4], (Kind::Float, CPU)),
        &Target::Class(0),
        &c
    )
    .is_err());
    assert!(insertion(
        &model,
        &xs,
        &Tensor::ones([2, 2, 4, 4], (Kind::Float, CPU)),
        &Target::Class(0),
        &c
    )
    .is_err());
    let zero_step = FaithfulnessConfig {
        step: 0,
        ..Default::default()
    };
    let err = deletion(&model, &xs, &ok, &Target::Class(0), &zero_step)
        .unwrap_err()
        .to_string();
    assert!(err.contains("step"), "{err}");
    let zero_batch = FaithfulnessConfig {
        batch: 0,
        ..Default::default()
    };
    assert!(deletion(&model, &xs, &ok, &Target::Class(0), &zero_batch).is_err());
    let nan = FaithfulnessConfig {
        fill: Fill::Constant(f64::NAN),
        ..Default::default()
    };
    assert!(deletion(&model, &xs, &ok, &Target::Class(0), &nan).is_err());
    let bad_blur = FaithfulnessConfig {
        fill: Fill::Blur { sigma: 0.0 },
        ..Default::default()
    };
    assert!(insertion(&model, &xs, &ok, &Target::Class(0), &bad_blur).is_err());
    assert!(matches!(
        deletion(&model, &xs, &ok, &Target::Class(3), &c),
        Err(Error::ClassOutOfRange { .. })
    ));
    assert!(confidence_change(
        &model,
        &xs,
        &Tensor::ones([2, 1, 3, 4], (Kind::Float, CPU)),
        &Target::Class(0)
    )
    .is_err());
}

#[test]
fn average_drop_and_increase_in_confidence_by_hand() {
    // Logits [sum(x), 0], so the class-0 probability is sigmoid(sum).
    // Sample 0: x = [1, 1], map [1, 0] -> masked [1, 0]: Y = s(2), O = s(1): a drop.
    // Sample 1: x = [-1, -1], map [2, 0] (normalised to [1, 0]) -> masked [-1, 0]: Y = s(-2) <
    //   O = s(-1): an increase, no drop.
    // Sample 2: a constant map normalises to 0 -> masked 0: Y = s(2), O = 1/2.
    let s = |v: f64| 1.0 / (1.0 + (-v).exp());
    let model = two_class_sum_model();
    let xs = t(&[1., 1., -1., -1., 1., 1.], &[3, 1, 1, 2]);
    let map = t(&[1., 0., 2., 0., 3., 3.], &[3, 1, 1, 2]);
    let out = confidence_change(&model, &xs, &map, &Target::Class(0)).unwrap();
    assert_all_close(&out.original, &[s(2.), s(-2.), s(2.)], 1e-6, "Y");
    assert_all_close(&out.masked, &[s(1.), s(-1.), 0.5], 1e-6, "O");
    let drop = 100.0 / 3.0 * ((s(2.) - s(1.)) / s(2.) + (s(2.) - 0.5) / s(2.));
    assert!(
        close(out.average_drop, drop, 1e-4),
        "{} vs {drop}",
        out.average_drop
    );
    assert!(close(out.increase_in_confidence, 100.0 / 3.0, 1e-9));
    // An f64 map gives the same (the masked image stays f32 for the f32 model).
    let out64 = confidence_change(&model, &xs, &map.to_kind(Kind::Double), &Target::Class(0)).unwrap();
    assert_eq!(out64, out);
    // So do deletion and insertion.
    let c = FaithfulnessConfig {
        step: 1,
        ..Default::default()
    };
    let d32 = deletion(&model, &xs, &map, &Target::Class(0), &c).unwrap();
    let d64 = deletion(
        &model,
        &xs.to_kind(Kind::Double),
        &map.to_kind(Kind::Double),
        &Target::Class(0),
        &c,
    )
    .unwrap();
    assert_eq!(d32, d64);
    // On a model with f32 weights, an f64 map and input must not reach the convolution as f64.
    let vs = VarStore::new(CPU);
    let conv = conv_model(&vs, 1);
    let x3 = Rng::new(2)
        .uniform_tensor(&[1, 3, 4, 4], CPU)
        .to_kind(Kind::Double);
    assert!(confidence_change(&conv, &x3, &x3, &Target::Predicted).is_ok());
    assert!(insertion(&conv, &x3, &x3, &Target::Predicted, &c).is_ok());
}

#[test]
fn evaluate_in_batches_equals_the_metrics_on_the_whole_set() {
    // The "method" returns |input|; five 2x2 images in batches of 2 (2 + 2 + 1).
    let model = sum_model(1);
    let xs = Rng::new(1).uniform_tensor(&[5, 1, 2, 2], CPU);
    let masks = t(
        &[
            1., 0., 0., 0., 0., 1., 1., 0., 1., 1., 1., 1., 0., 0., 0., 1., 0., 1., 0., 0.,
        ],
        &[5, 1, 2, 2],
    );
    let target = Target::PerSample(vec![0; 5]);
    let mut config = QualityConfig {
        batch: 2,
        pointing_tolerance: 0.0,
        ..Default::default()
    };
    config.deletion.step = 1;
    config.insertion = FaithfulnessConfig {
        step: 2,
        fill: Fill::Constant(0.25),
        score: Score::Logit,
        batch: 3,
    };
    let row = evaluate(&EdgeDetector, &model, &xs, Some(&masks), &target, &config).unwrap();
    let map = xs.abs();
    let want = |v: &[f64]| Summary::of(v);
    let close_summary = |a: Summary, b: Summary, what: &str| {
        assert!(
            a.n == b.n && close(a.mean, b.mean, 1e-9) && close(a.std, b.std, 1e-9),
            "{what}: {a:?} vs {b:?}"
        );
    };
    close_summary(
        row.deletion_auc,
        want(
            &deletion(&model, &xs, &map, &target, &config.deletion)
                .unwrap()
                .auc,
        ),
        "deletion",
    );
    close_summary(
        row.insertion_auc,
        want(
            &insertion(&model, &xs, &map, &target, &config.insertion)
                .unwrap()
                .auc,
        ),
        "insertion",
    );
    let hits: Vec<f64> = pointing_game(&map, &masks, 0.0)
        .unwrap()
        .iter()
        .map(|h| *h as i32 as f64)
        .collect();
    close_summary(row.pointing_game.unwrap(), want(&hits), "pointing");
    close_summary(
        row.energy_pointing_game.unwrap(),
        want(&energy_pointing_game(&map, &masks).unwrap()),
        "energy",
    );
    close_summary(row.sparseness, want(&sparseness(&map).unwrap()), "sparseness");
    close_summary(row.entropy, want(&entropy(&map).unwrap()), "entropy");
    assert_eq!(row.method, "input");
    assert!(row.seconds_per_image >= 0.0);
    assert_eq!(format!("{}", Summary::of(&[1.0, 3.0])), "2.000 ± 1.414");
    // Bad input.
    assert!(evaluate(
        &EdgeDetector,
        &model,
        &xs,
        Some(&masks.narrow(0, 0, 4)),
        &target,
        &config
    )
    .is_err());
    assert!(evaluate(
        &EdgeDetector,
        &model,
        &xs,
        None,
        &Target::PerSample(vec![0; 4]),
        &config
    )
    .is_err());
    let zero = QualityConfig {
        batch: 0,
        ..Default::default()
    };
    assert!(evaluate(&EdgeDetector, &model, &xs, None, &target, &zero).is_err());
}

// ------------------------------------------------------------------------------------------------
// Similarity: golden values
// ------------------------------------------------------------------------------------------------

#[derive(serde::Deserialize)]
struct GoldenCase {
    h: i64,
    w: i64,
    a: Vec<f64>,
    b: Vec<f64>,
    ssim_gaussian: f64,
    ssim_uniform: f64,
    qa: Vec<f64>,
    qb: Vec<f64>,
    spearman_quantised: f64,
}

#[derive(serde::Deserialize)]
struct Golden {
    cases: Vec<GoldenCase>,
}

#[test]
fn ssim_and_spearman_match_scikit_image_and_scipy() {
    let text = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/fixtures/quality_golden.json"
    ))
    .unwrap();
    let golden: Golden = serde_json::from_str(&text).unwrap();
    assert_eq!(golden.cases.len(), 3);
    for (i, c) in golden.cases.iter().enumerate() {
        let shape = [1, 1, c.h, c.w];
        let (a, b) = (
            Tensor::from_slice(&c.a).view(shape),
            Tensor::from_slice(&c.b).view(shape),
        );
        let g = ssim(&a, &b, &SsimConfig::default()).unwrap()[0];
        assert!(
            close(g, c.ssim_gaussian, 1e-9),
            "case {i} gaussian: {g} vs {}",
            c.ssim_gaussian
        );
        let u = ssim(&a, &b, &SsimConfig::uniform()).unwrap()[0];
        assert!(
            close(u, c.ssim_uniform, 1e-9),
            "case {i} uniform: {u} vs {}",
            c.ssim_uniform
        );
        let (qa, qb) = (
            Tensor::from_slice(&c.qa).view(shape),
            Tensor::from_slice(&c.qb).view(shape),
        );
        let r = spearman(&qa, &qb).unwrap()[0];
        assert!(
            close(r, c.spearman_quantised, 1e-9),
            "case {i} spearman: {r} vs {}",
            c.spearman_quantised
        );
    }
}

#[test]
fn ssim_of_identical_maps_is_one_and_of_different_maps_less() {
    let a = Rng::new(1).uniform_tensor(&[2, 1, 12, 12], CPU);
    let b = Rng::new(2).uniform_tensor(&[2, 1, 12, 12], CPU);
    for config in [SsimConfig::default(), SsimConfig::uniform()] {
        assert_all_close(&ssim(&a, &a, &config).unwrap(), &[1.0, 1.0], 1e-12, "identical");
        assert!(ssim(&a, &b, &config).unwrap().iter().all(|v| *v < 0.5));
    }
    assert!(ssim(&a, &b.narrow(3, 0, 11), &SsimConfig::default()).is_err());
}

// ------------------------------------------------------------------------------------------------
// Randomisation
// ------------------------------------------------------------------------------------------------

/// x [N, 1, 2, 2] -> flatten -> fc (4 -> 2), weights chosen.
fn linear_model(vs: &VarStore) -> Staged {
    let fc = nn::linear(vs.root() / "fc", 4, 2, Default::default());
    tch::no_grad(|| {
        fc.ws
            .shallow_clone()
            .copy_(&t(&[1., 2., 3., 4., -1., 0., 1., 0.], &[2, 4]));
        fc.bs
            .as_ref()
            .unwrap()
            .shallow_clone()
            .copy_(&t(&[0.5, -0.5], &[2]));
    });
    Staged::new(1, 2, CPU)
        .leaf("flat", nn::func(|xs| xs.flatten(1, -1)))
        .leaf("fc", fc)
}

/// A "method" that ignores the model: the absolute input.
#[derive(Debug, Clone)]
struct EdgeDetector;

impl Attribution for EdgeDetector {
    fn attribute(&self, _model: &dyn Model, input: &Tensor, _target: &Target) -> Result<Tensor> {
        Ok(input.abs())
    }
    fn name(&self) -> String {
        "input".into()
    }
}

/// Saliency that fails on its `fail_at`-th call.
struct Flaky {
    calls: Cell<usize>,
    fail_at: usize,
}

impl Attribution for Flaky {
    fn attribute(&self, model: &dyn Model, input: &Tensor, target: &Target) -> Result<Tensor> {
        self.calls.set(self.calls.get() + 1);
        if self.calls.get() == self.fail_at {
            return Err(Error::invalid("flaky", "fails on purpose"));
        }
        Saliency::default().attribute(model, input, target)
    }
    fn name(&self) -> String {
        "flaky".into()
    }
}

#[test]
fn randomising_the_head_gives_the_redrawn_weights_as_the_new_gradient() {
    // Signed saliency of a linear model is the target's weight row: [1, 2, 3, 4] for class 0.
    // The fc layer is redrawn from Rng::new(seed) in variable-name order: `fc.bias` [2] then
    // `fc.weight` [2, 4], each as (2u - 1) / sqrt(fan_in = 4). The new map is the new row 0.
    let vs = VarStore::new(CPU);
    let model = linear_model(&vs);
    let before: Vec<(String, Tensor)> = {
        let mut v: Vec<_> = vs.variables().into_iter().map(|(n, t)| (n, t.copy())).collect();
        v.sort_by(|a, b| a.0.cmp(&b.0));
        v
    };
    let xs = t(&[0.3, -0.2, 0.9, 0.1], &[1, 1, 2, 2]);
    let signed = Saliency {
        mode: SaliencyMode::Signed,
    };
    let config = RandomisationConfig {
        seed: 11,
        ssim: None,
        ..Default::default()
    };
    let out = cascading_randomisation(
        &model,
        &vs,
        &["fc"],
        &[&signed, &EdgeDetector],
        &xs,
        &Target::Class(0),
        &config,
    )
    .unwrap();
    let mut rng = Rng::new(11);
    let _bias = rng.uniform_tensor(&[2], CPU);
    let w = (rng.uniform_tensor(&[2, 4], CPU) * 2.0 - 1.0) * 0.5;
    let want = w.get(0).view([1, 1, 2, 2]);
    assert!(out[0]
        .original
        .allclose(&t(&[1., 2., 3., 4.], &[1, 1, 2, 2]), 1e-6, 1e-6, false));
    assert_eq!(out[0].steps.len(), 1);
    assert_eq!(out[0].steps[0].layer, "fc");
    assert!(
        out[0].steps[0].map.allclose(&want, 1e-6, 1e-6, false),
        "{}",
        out[0].steps[0].map
    );
    // Spearman of |new row| with |[1, 2, 3, 4]| = the rank correlation worked out on the values.
    let abs_new = Vec::<f64>::try_from(want.abs().flatten(0, -1).to_kind(Kind::Double)).unwrap();
    let ranks_new: Vec<f64> = abs_new
        .iter()
        .map(|v| abs_new.iter().filter(|u| *u < v).count() as f64 + 1.0)
        .collect();
    let d2: f64 = ranks_new
        .iter()
        .zip([1.0, 2.0, 3.0, 4.0])
        .map(|(a, b)| (a - b).powi(2))
        .sum();
    let rho = 1.0 - 6.0 * d2 / (4.0 * 15.0);
    assert!(
        close(out[0].steps[0].spearman[0], rho, 1e-12),
        "{:?} vs {rho}",
        out[0].steps[0].spearman
    );
    assert!(out[0].steps[0].ssim.is_empty());
    // The model-independent method does not change: it fails the sanity check.
    assert_eq!(out[1].steps[0].spearman, [1.0]);
    // The model is as it was.
    for (name, value) in &before {
        assert!(vs.variables()[name].equal(value), "{name} not restored");
    }
}

/// conv (3 -> 2, 3x3, padding 1, bias) -> relu -> global average pool -> fc (2 -> 2), seeded.
fn conv_model(vs: &VarStore, seed: u64) -> Staged {
    let cfg = nn::ConvConfig {
        padding: 1,
        ..Default::default()
    };
    let conv = nn::conv2d(vs.root() / "conv", 3, 2, 3, cfg);
    let fc = nn::linear(vs.root() / "fc", 2, 2, Default::default());
    let mut rng = Rng::new(seed);
    tch::no_grad(|| {
        for mut v in [
            conv.ws.shallow_clone(),
            conv.bs.as_ref().unwrap().shallow_clone(),
            fc.ws.shallow_clone(),
            fc.bs.as_ref().unwrap().shallow_clone(),
        ] {
            let r = rng.normal_tensor(&v.size(), CPU);
            v.copy_(&r);
        }
    });
    Staged::new(3, 2, CPU)
        .leaf("conv", conv)
        .leaf("relu", nn::func(|xs| xs.relu()))
        .leaf(
            "pool",
            nn::func(|xs| xs.mean_dim([2i64, 3].as_slice(), false, Kind::Float)),
        )
        .leaf("fc", fc)
}

#[test]
fn cascade_over_a_conv_model_with_ssim_and_restores_on_error() {
    let vs = VarStore::new(CPU);
    let model = conv_model(&vs, 3);
    assert_eq!(cascade_layers(&model, &vs, ""), ["fc", "conv"]);
    let snapshot: Vec<(String, Tensor)> = vs.variables().into_iter().map(|(n, t)| (n, t.copy())).collect();
    let xs = Rng::new(4).uniform_tensor(&[2, 3, 12, 12], CPU);
    let sal = Saliency::default();
    let out = cascading_randomisation(
        &model,
        &vs,
        &["fc", "conv"],
        &[&sal, &EdgeDetector],
        &xs,
        &Target::Predicted,
        &RandomisationConfig::default(),
    )
    .unwrap();
    assert_eq!(
        out[0].steps.iter().map(|s| s.layer.as_str()).collect::<Vec<_>>(),
        ["fc", "conv"]
    );
    for step in &out[1].steps {
        assert_all_close(&step.spearman, &[1.0, 1.0], 1e-12, "edge detector spearman");
        assert_all_close(&step.ssim, &[1.0, 1.0], 1e-12, "edge detector ssim");
    }
    // The gradient depends on the weights: after randomising everything it is another map.
    let last = out[0].steps.last().unwrap();
    assert!(last.spearman.iter().all(|r| *r < 0.9), "{:?}", last.spearman);
    assert!(last.ssim.iter().all(|r| *r < 0.9), "{:?}", last.ssim);
    for (name, value) in &snapshot {
        assert!(vs.variables()[name].equal(value), "{name} not restored");
    }
    // Same seed, same result.
    let again = cascading_randomisation(
        &model,
        &vs,
        &["fc", "conv"],
        &[&sal],
        &xs,
        &Target::Predicted,
        &RandomisationConfig::default(),
    )
    .unwrap();
    assert!(again[0].steps[1].map.equal(&last.map));

    // A method failing after the first layer was randomised: an error, and the weights restored.
    let flaky = Flaky {
        calls: Cell::new(0),
        fail_at: 3,
    };
    let err = cascading_randomisation(
        &model,
        &vs,
        &["fc", "conv"],
        &[&flaky],
        &xs,
        &Target::Predicted,
        &RandomisationConfig::default(),
    );
    assert!(err.is_err());
    for (name, value) in &snapshot {
        assert!(
            vs.variables()[name].equal(value),
            "{name} not restored after an error"
        );
    }
}

#[test]
fn randomisation_bad_input_is_an_error() {
    let vs = VarStore::new(CPU);
    let model = conv_model(&vs, 3);
    let xs = Rng::new(4).uniform_tensor(&[1, 3, 12, 12], CPU);
    let sal = Saliency::default();
    let c = RandomisationConfig::default();
    let run = |layers: &[&str], methods: &[&dyn Attribution], xs: &Tensor, c: &RandomisationConfig| {
        cascading_randomisation(&model, &vs, layers, methods, xs, &Target::Class(0), c)
    };
    let err = run(&[], &[&sal], &xs, &c).unwrap_err().to_string();
    assert!(err.contains("cascade_layers"), "{err}");
    assert!(run(&["fc"], &[], &xs, &c).is_err());
    assert!(matches!(
        run(&["fc9"], &[&sal], &xs, &c),
        Err(Error::UnknownLayer { .. })
    ));
    let err = run(&["relu"], &[&sal], &xs, &c).unwrap_err().to_string();
    assert!(err.contains("no parameters") && err.contains("fc, conv"), "{err}");
    let small = Rng::new(4).uniform_tensor(&[1, 3, 8, 8], CPU);
    assert!(run(&["fc"], &[&sal], &small, &c).is_err()); // 8x8 maps cannot have an 11x11 SSIM
    let no_ssim = RandomisationConfig {
        ssim: None,
        ..Default::default()
    };
    assert!(run(&["fc"], &[&sal], &small, &no_ssim).is_ok());
    let wrong_prefix = RandomisationConfig {
        var_prefix: "net.".into(),
        ..Default::default()
    };
    assert!(run(&["fc"], &[&sal], &xs, &wrong_prefix).is_err());
}

#[test]
fn permuted_labels_keep_the_histogram_and_the_images() {
    let n = 40i64;
    let labels: Vec<i64> = (0..n).map(|i| i % 3).collect();
    let images = Tensor::arange(n, (Kind::Float, CPU))
        .view([n, 1, 1, 1])
        .expand([n, 1, 2, 2], false)
        .contiguous();
    let masks = images.ones_like();
    let names = vec!["a".to_string(), "b".into(), "c".into()];
    let data =
        cnn_explain::data::Dataset::new(images, Tensor::from_slice(&labels), names, Some(masks)).unwrap();
    let p1 = permute_labels(&data, 5).unwrap();
    let p2 = permute_labels(&data, 5).unwrap();
    let p3 = permute_labels(&data, 6).unwrap();
    assert_eq!(p1.class_counts().unwrap(), data.class_counts().unwrap());
    assert!(p1.labels.equal(&p2.labels));
    assert!(!p1.labels.equal(&p3.labels));
    assert!(!p1.labels.equal(&data.labels));
    assert!(p1.images.equal(&data.images) && p1.masks.is_some());
    // The permutation is Rng::permutation's.
    let perm = Rng::new(5).permutation(n as usize);
    let want: Vec<i64> = perm.iter().map(|&i| labels[i as usize]).collect();
    assert_eq!(Vec::<i64>::try_from(&p1.labels).unwrap(), want);
}

#[test]
fn map_similarity_ignores_signs_and_checks_shapes() {
    let a = Rng::new(3).uniform_tensor(&[2, 3, 12, 12], CPU) - 0.5;
    let s = map_similarity(&a, &(-&a), Some(&SsimConfig::default())).unwrap();
    assert_all_close(&s.spearman, &[1.0, 1.0], 1e-12, "spearman");
    assert_all_close(&s.ssim, &[1.0, 1.0], 1e-12, "ssim");
    let b = Rng::new(4).uniform_tensor(&[2, 3, 12, 12], CPU);
    let s = map_similarity(&a, &b, None).unwrap();
    assert!(
        s.ssim.is_empty() && s.spearman.iter().all(|r| r.abs() < 0.3),
        "{s:?}"
    );
    assert!(map_similarity(&a, &b.narrow(1, 0, 1), None).is_err());
}

// ------------------------------------------------------------------------------------------------
// Robustness
// ------------------------------------------------------------------------------------------------

#[test]
fn max_sensitivity_of_input_times_gradient_on_a_sum_is_the_largest_relative_noise() {
    // Logit = sum(x): the gradient is 1, Input x Gradient is x, so the change under delta is
    // |delta| / |x|. The perturbations are r (2 U_s - 1) with U_s drawn as documented.
    let model = sum_model(1);
    let xs = t(&[1., 2., 3., 4., -1., 0.5, 0.5, 2.], &[2, 1, 2, 2]);
    let config = MaxSensitivityConfig {
        samples: 5,
        radius: 0.1,
        seed: 9,
    };
    let got = max_sensitivity(&InputXGradient, &model, &xs, &Target::Class(0), &config).unwrap();
    let norms = [30f64.sqrt(), (1.0f64 + 0.25 + 0.25 + 4.0).sqrt()];
    let mut rng = Rng::new(9);
    let mut want = [0.0f64; 2];
    for _ in 0..5 {
        let d = (rng.uniform_tensor(&[2, 1, 2, 2], CPU) * 2.0 - 1.0) * 0.1;
        for (i, w) in want.iter_mut().enumerate() {
            let n = d
                .get(i as i64)
                .to_kind(Kind::Double)
                .square()
                .sum(Kind::Double)
                .sqrt()
                .double_value(&[]);
            *w = w.max(n / norms[i]);
        }
    }
    assert_all_close(&got, &want, 1e-6, "max-sensitivity");
    // |delta|_F <= r sqrt(4) = 0.2, and some noise was drawn.
    for (g, n) in got.iter().zip(norms) {
        assert!(*g > 0.0 && *g <= 0.2 / n + 1e-9, "{got:?}");
    }
    // Bad settings.
    let zero = MaxSensitivityConfig {
        samples: 0,
        ..Default::default()
    };
    assert!(max_sensitivity(&InputXGradient, &model, &xs, &Target::Class(0), &zero).is_err());
    let neg = MaxSensitivityConfig {
        radius: -1.0,
        ..Default::default()
    };
    assert!(max_sensitivity(&InputXGradient, &model, &xs, &Target::Class(0), &neg).is_err());
}

// ------------------------------------------------------------------------------------------------
// Input invariance
// ------------------------------------------------------------------------------------------------

const SHIFT: [f64; 3] = [0.5, -1.0, 2.0];

fn shift_tensor() -> Tensor {
    t(&[0.5, -1.0, 2.0], &[1, 3, 1, 1])
}

fn first_conv() -> FirstConv {
    FirstConv {
        layer: "conv".into(),
        var: "conv".into(),
        stride: 1,
        padding: 1,
    }
}

#[test]
fn shifted_tiny_model_gives_identical_logits() {
    let (vs, vs2) = (VarStore::new(CPU), VarStore::new(CPU));
    let original = conv_model(&vs, 5);
    let mut shifted = conv_model(&vs2, 5); // a copy: same seed, same weights
    shift_first_conv(&mut shifted, &vs2, &first_conv(), &SHIFT).unwrap();
    let xs = Rng::new(6).uniform_tensor(&[3, 3, 6, 6], CPU);
    let a = original.logits(&xs).unwrap();
    let b = shifted.logits(&(&xs + shift_tensor())).unwrap();
    let diff = (&a - &b).abs().max().double_value(&[]);
    assert!(diff < 1e-5, "logits differ by {diff}");
    // Without the compensation the logits would differ: the shift matters.
    let c = original.logits(&(&xs + shift_tensor())).unwrap();
    assert!((&a - &c).abs().max().double_value(&[]) > 1e-2);
}

#[test]
fn shifted_small_cnn_gives_identical_logits() {
    let vs = VarStore::new(CPU);
    let config = ZooConfig {
        num_classes: 3,
        ..Default::default()
    };
    let model = config.build(&vs.root()).unwrap();
    let (shifted, vs2) = shifted_zoo_model(&config, &vs, &SHIFT).unwrap();
    assert!(vs2.variables()["conv1.weight"].equal(&vs.variables()["conv1.weight"]));
    let xs = Rng::new(7).uniform_tensor(&[2, 3, 16, 16], CPU);
    let diff = (model.logits(&xs).unwrap() - shifted.logits(&(&xs + shift_tensor())).unwrap())
        .abs()
        .max()
        .double_value(&[]);
    assert!(diff < 1e-5, "logits differ by {diff}");
    // The check on the small CNN: gradient and Grad-CAM invariant, Input x Gradient and IG from
    // zero not, IG from a shifted baseline again. Gauss-Legendre nodes avoid alpha = 0: the
    // all-zero image gives this bias-free network exact ties in max pooling, which the shifted model
    // breaks by rounding, so a gradient taken exactly there is not comparable.
    let xs = Rng::new(8).uniform_tensor(&[2, 3, 16, 16], CPU);
    let ig = IntegratedGradients {
        steps: 8,
        batch: 16,
        method: Quadrature::GaussLegendre,
        ..Default::default()
    };
    let ig_shifted = IntegratedGradients {
        baseline: Baseline::Tensor(shift_tensor().expand([1, 3, 16, 16], false)),
        ..ig.clone()
    };
    let cases = [
        InvarianceCase::same(Saliency {
            mode: SaliencyMode::Signed,
        }),
        InvarianceCase::same(GradCam::new("block3")),
        InvarianceCase::same(InputXGradient),
        InvarianceCase::same(ig.clone()),
        InvarianceCase::pair("IG, baseline shifted too", ig, ig_shifted),
    ];
    let report =
        check_input_invariance(&model, &shifted, &SHIFT, &xs, &Target::Predicted, &cases, 1e-4).unwrap();
    let outcome: Vec<bool> = report.iter().map(|r| r.invariant).collect();
    assert_eq!(outcome, [true, true, false, false, true], "{report:?}");
    let with_norm = ZooConfig {
        normalization: Some(Normalization::imagenet()),
        ..Default::default()
    };
    let err = shifted_zoo_model(&with_norm, &vs, &SHIFT)
        .unwrap_err()
        .to_string();
    assert!(err.contains("normalize"), "{err}");
}

#[test]
fn input_invariance_outcomes_per_method() {
    let (vs, vs2) = (VarStore::new(CPU), VarStore::new(CPU));
    let original = conv_model(&vs, 8);
    let mut shifted = conv_model(&vs2, 8);
    shift_first_conv(&mut shifted, &vs2, &first_conv(), &SHIFT).unwrap();
    let xs = Rng::new(9).uniform_tensor(&[2, 3, 6, 6], CPU);
    let ig = IntegratedGradients {
        steps: 16,
        batch: 32,
        ..Default::default()
    };
    let ig_shifted = IntegratedGradients {
        baseline: Baseline::Tensor(shift_tensor().expand([1, 3, 6, 6], false)),
        ..ig.clone()
    };
    let cases = [
        InvarianceCase::same(Saliency {
            mode: SaliencyMode::Signed,
        }),
        InvarianceCase::same(GradCam::new("relu")),
        InvarianceCase::same(InputXGradient),
        InvarianceCase::same(ig.clone()),
        InvarianceCase::pair("IG, baseline shifted too", ig, ig_shifted),
    ];
    let report =
        check_input_invariance(&original, &shifted, &SHIFT, &xs, &Target::Predicted, &cases, 1e-4).unwrap();
    let outcome: Vec<(String, bool)> = report.iter().map(|r| (r.method.clone(), r.invariant)).collect();
    assert_eq!(
        outcome.iter().map(|o| o.1).collect::<Vec<_>>(),
        [true, true, false, false, true],
        "{report:?}"
    );
    assert!(
        report[2].relative_diff > 0.1 && report[3].relative_diff > 0.1,
        "{report:?}"
    );
    assert!(
        report[0].max_abs_diff < 1e-5 && report[4].relative_diff < 1e-4,
        "{report:?}"
    );
}

#[test]
fn input_invariance_bad_input_is_an_error() {
    let (vs, vs2) = (VarStore::new(CPU), VarStore::new(CPU));
    let original = conv_model(&vs, 8);
    // A wrong layout is caught by the probe.
    let mut m = conv_model(&vs2, 8);
    let wrong = FirstConv {
        padding: 0,
        ..first_conv()
    };
    let err = shift_first_conv(&mut m, &vs2, &wrong, &SHIFT)
        .unwrap_err()
        .to_string();
    assert!(err.contains("padding 0"), "{err}");
    let wrong = FirstConv {
        stride: 2,
        ..first_conv()
    };
    assert!(shift_first_conv(&mut m, &vs2, &wrong, &SHIFT).is_err());
    assert!(shift_first_conv(&mut m, &vs2, &first_conv(), &[0.5]).is_err());
    let not_first = FirstConv {
        layer: "fc".into(),
        var: "fc".into(),
        stride: 1,
        padding: 0,
    };
    assert!(shift_first_conv(&mut m, &vs2, &not_first, &SHIFT).is_err());
    let no_var = FirstConv {
        var: "conv9".into(),
        ..first_conv()
    };
    assert!(shift_first_conv(&mut m, &vs2, &no_var, &SHIFT).is_err());
    // Models that are not equivalent: the check refuses to compare them.
    let xs = Rng::new(9).uniform_tensor(&[1, 3, 6, 6], CPU);
    let cases = [InvarianceCase::same(InputXGradient)];
    let err = check_input_invariance(&original, &m, &SHIFT, &xs, &Target::Predicted, &cases, 1e-4)
        .unwrap_err()
        .to_string();
    assert!(err.contains("not equivalent"), "{err}");
    assert!(check_input_invariance(
        &original,
        &original,
        &[1.0],
        &xs,
        &Target::Predicted,
        &cases,
        1e-4
    )
    .is_err());
}
