//! Models in another precision than float32 (`vs.double()`, `vs.half()`, `vs.bfloat16()` after
//! building a zoo model): the crate's methods, which work in float32, run on them instead of
//! failing in the first convolution with a kind mismatch, and a float64 model gives the float32
//! model's maps up to float32 rounding.

use cnn_explain::attribution::cam::{GradCam, GradCamPlusPlus, LayerCam, ScoreCam};
use cnn_explain::attribution::compare::normalized_max_abs_diff;
use cnn_explain::attribution::gradient::{IntegratedGradients, Saliency};
use cnn_explain::attribution::lime::Lime;
use cnn_explain::attribution::noise::NoiseTunnel;
use cnn_explain::attribution::occlusion::Occlusion;
use cnn_explain::attribution::{Attribution, Target};
use cnn_explain::models::zoo::Normalization;
use cnn_explain::models::{Arch, Init, Model, Staged, ZooConfig};
use cnn_explain::rng::Rng;
use tch::{nn, Device, Kind, Tensor};

const CPU: Device = Device::Cpu;

fn small_cnn(vs: &nn::VarStore) -> Staged {
    ZooConfig {
        arch: Arch::SmallCnn,
        num_classes: 6,
        init: Init::Seeded(5),
        normalization: None,
    }
    .build(&vs.root())
    .unwrap()
}

/// The small CNN behind ImageNet's input normalisation (a `normalize` stage with float32 constants).
fn normalized_small_cnn(vs: &nn::VarStore) -> Staged {
    ZooConfig {
        arch: Arch::SmallCnn,
        num_classes: 6,
        init: Init::Seeded(5),
        normalization: Some(Normalization::imagenet()),
    }
    .build(&vs.root())
    .unwrap()
}

fn images(n: i64) -> Tensor {
    Rng::new(2).uniform_tensor(&[n, 3, 32, 32], CPU)
}

fn methods() -> Vec<Box<dyn Attribution>> {
    let layer = "block3";
    vec![
        Box::new(Saliency::default()),
        Box::new(IntegratedGradients {
            steps: 16,
            ..Default::default()
        }),
        Box::new(NoiseTunnel::smooth(Saliency::default())),
        Box::new(GradCam::new(layer)),
        Box::new(GradCamPlusPlus::new(layer)),
        Box::new(LayerCam::new(layer)),
        Box::new(ScoreCam::new(layer)),
        Box::new(Occlusion {
            window: (8, 8),
            stride: (4, 4),
            ..Default::default()
        }),
        Box::new(Lime {
            samples: 200,
            ..Default::default()
        }),
    ]
}

#[test]
fn a_float64_model_runs_in_float64_and_gives_the_float32_maps() {
    let vs32 = nn::VarStore::new(CPU);
    let m32 = small_cnn(&vs32);
    let mut vs64 = nn::VarStore::new(CPU);
    let m64 = small_cnn(&vs64);
    vs64.double();
    assert_eq!(vs64.variables()["conv1.weight"].kind(), Kind::Double);

    let xs = images(2);
    let l32 = m32.logits(&xs).unwrap();
    let l64 = m64.logits(&xs).unwrap();
    // Float32 in, float32 out, as the crate's methods expect ...
    assert_eq!(l64.kind(), Kind::Float);
    // ... but computed in float64: the same as the float32 model up to its rounding, not equal.
    let rel = (&l64 - &l32).abs().max().double_value(&[]) / l32.abs().max().double_value(&[]);
    assert!(
        rel < 1e-5,
        "float64 and float32 logits differ by {rel:e} of their scale"
    );
    assert!(
        rel > 0.0,
        "the float64 model computed exactly the float32 logits: not run in float64"
    );
    // A float64 input is left in float64 all the way.
    assert_eq!(
        m64.logits(&xs.to_kind(Kind::Double)).unwrap().kind(),
        Kind::Double
    );
    assert_eq!(m64.forward_to(&xs, "block2").unwrap().kind(), Kind::Float);

    let target = Target::Class(1);
    for method in methods() {
        let a = method.attribute(&m32, &xs.narrow(0, 0, 1), &target).unwrap();
        let b = method
            .attribute(&m64, &xs.narrow(0, 0, 1), &target)
            .unwrap_or_else(|e| panic!("{} on a float64 model: {e}", method.name()));
        assert_eq!(a.size(), b.size(), "{}", method.name());
        let d = normalized_max_abs_diff(&a, &b).unwrap();
        assert!(
            d < 1e-4,
            "{}: float64 model's map differs by {d:e}",
            method.name()
        );
    }
}

#[test]
fn half_and_bfloat16_models_give_maps_close_to_float32() {
    let vs32 = nn::VarStore::new(CPU);
    let m32 = small_cnn(&vs32);
    let xs = images(1);
    let target = Target::Class(1);
    for kind in [Kind::Half, Kind::BFloat16] {
        let mut vs = nn::VarStore::new(CPU);
        let m = small_cnn(&vs);
        vs.set_kind(kind);
        let logits = m.logits(&xs).unwrap();
        assert_eq!(logits.kind(), Kind::Float, "{kind:?}");
        for method in [
            Box::new(GradCam::new("block3")) as Box<dyn Attribution>,
            Box::new(Saliency::default()),
        ] {
            let a = method.attribute(&m32, &xs, &target).unwrap();
            let b = method
                .attribute(&m, &xs, &target)
                .unwrap_or_else(|e| panic!("{} on a {kind:?} model: {e}", method.name()));
            // Maps of a low-precision model are the float32 maps up to its rounding: correlated,
            // not equal.
            let r = cnn_explain::attribution::compare::agreement(&a, &b)
                .unwrap()
                .correlation;
            assert!(r > 0.9, "{} on a {kind:?} model: correlation {r}", method.name());
        }
    }
}

#[test]
fn a_normalized_model_runs_in_every_precision() {
    // The `normalize` stage's float32 constants must not promote a half-precision input back to
    // float32 before the first convolution (half - float is float).
    let vs32 = nn::VarStore::new(CPU);
    let m32 = normalized_small_cnn(&vs32);
    let xs = images(1);
    let target = Target::Class(1);
    let a = GradCam::new("block3").attribute(&m32, &xs, &target).unwrap();
    for kind in [Kind::Double, Kind::Half, Kind::BFloat16] {
        let mut vs = nn::VarStore::new(CPU);
        let m = normalized_small_cnn(&vs);
        vs.set_kind(kind);
        let logits = m.logits(&xs).unwrap();
        assert_eq!(logits.kind(), Kind::Float, "{kind:?}");
        let b = GradCam::new("block3")
            .attribute(&m, &xs, &target)
            .unwrap_or_else(|e| panic!("Grad-CAM on a normalised {kind:?} model: {e}"));
        let r = cnn_explain::attribution::compare::agreement(&a, &b)
            .unwrap()
            .correlation;
        assert!(r > 0.9, "normalised {kind:?} model: correlation {r}");
    }
}

#[test]
fn a_staged_model_follows_the_kind_it_was_told_to_follow() {
    let mut vs = nn::VarStore::new(CPU);
    let conv = nn::conv2d(&vs.root() / "conv", 3, 2, 3, Default::default());
    let told = Staged::new(3, 2, CPU)
        .with_kind_of(&conv.ws)
        .leaf("conv", conv)
        .leaf(
            "pool",
            nn::func(|xs| xs.adaptive_avg_pool2d([1, 1]).flatten(1, -1)),
        );
    let xs = images(1);
    assert!(told.logits(&xs).is_ok());
    vs.double();
    let logits = told.logits(&xs).unwrap();
    assert_eq!(logits.kind(), Kind::Float);
    let map = Saliency::default()
        .attribute(&told, &xs, &Target::Class(0))
        .unwrap();
    assert_eq!(map.kind(), Kind::Float);
    assert_eq!(map.size(), [1, 3, 32, 32]);
}
