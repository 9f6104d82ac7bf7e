//! No panics on user input: every attribution method, and the functions around it that take user
//! tensors, given each kind of bad input (wrong rank, grayscale or RGBA where RGB is expected, an
//! empty batch, an image smaller than the model takes, integer pixels, a class out of range, a
//! target list of the wrong length, an unknown or unusable layer, zero counts, windows and strides
//! that cannot work, non-finite settings, baselines and noise of the wrong shape) must return an
//! `Err` whose message names the argument, never panic (libtorch's own checks panic through tch's
//! non-`f_` calls, so a missing check shows up here as a panic). Non-finite pixels are not an
//! error, but must not panic either.

use cnn_explain::attribution::cam::{
    normalize, ClassActivationMap, EigenCam, GradCam, GradCamPlusPlus, HiResCam, IsCam, LayerCam, ScoreCam,
    SmoothGradCamPlusPlus, SsCam, XGradCam,
};
use cnn_explain::attribution::compare::agreement;
use cnn_explain::attribution::gradient::{Baseline, InputXGradient, IntegratedGradients, Saliency};
use cnn_explain::attribution::lime::{Fill, Lime};
use cnn_explain::attribution::noise::NoiseTunnel;
use cnn_explain::attribution::occlusion::Occlusion;
use cnn_explain::features::{feature_maps, ChannelSelection};
use cnn_explain::models::{build, Arch};
use cnn_explain::prelude::*;
use cnn_explain::segmentation::Segments;
use cnn_explain::viz::heatmap::{overlay, tensor_to_image};
use cnn_explain::viz::Colormap;
use std::panic::{catch_unwind, AssertUnwindSafe};

const CLASSES: i64 = 6;

fn image(shape: &[i64]) -> Tensor {
    Tensor::rand(shape, (Kind::Float, Device::Cpu))
}

/// Runs `f`; a panic fails the test with `label`, an `Ok` too unless `ok_allowed`. Returns the
/// error's message (empty if `Ok` was allowed and returned).
fn must_not_panic<T>(label: &str, ok_allowed: bool, f: impl FnOnce() -> Result<T>) -> String {
    match catch_unwind(AssertUnwindSafe(f)) {
        Err(p) => {
            let msg = p
                .downcast_ref::<String>()
                .cloned()
                .or_else(|| p.downcast_ref::<&str>().map(|s| s.to_string()))
                .unwrap_or_default();
            panic!("{label}: panicked instead of returning an error: {msg}")
        }
        Ok(Ok(_)) if !ok_allowed => panic!("{label}: accepted bad input"),
        Ok(Ok(_)) => String::new(),
        Ok(Err(e)) => e.to_string(),
    }
}

/// `f` must fail with a message that contains `word` (the argument it names).
fn must_fail<T>(label: &str, word: &str, f: impl FnOnce() -> Result<T>) {
    let msg = must_not_panic(label, false, f);
    assert!(
        msg.contains(word),
        "{label}: the error should name `{word}`: {msg}"
    );
}

fn methods() -> Vec<(&'static str, Box<dyn Attribution>)> {
    let small_lime = Lime {
        samples: 20,
        ..Default::default()
    };
    vec![
        ("saliency", Box::new(Saliency::default())),
        ("input x gradient", Box::new(InputXGradient)),
        (
            "integrated gradients",
            Box::new(IntegratedGradients {
                steps: 4,
                ..Default::default()
            }),
        ),
        (
            "smoothgrad",
            Box::new(NoiseTunnel {
                samples: 3,
                ..NoiseTunnel::smooth(Saliency::default())
            }),
        ),
        ("grad-cam", Box::new(GradCam::new("block3"))),
        ("grad-cam++", Box::new(GradCamPlusPlus::new("block3"))),
        (
            "smooth grad-cam++",
            Box::new(SmoothGradCamPlusPlus::new("block3")),
        ),
        ("xgrad-cam", Box::new(XGradCam::new("block3"))),
        ("layer-cam", Box::new(LayerCam::new("block3"))),
        ("hires-cam", Box::new(HiResCam::new("block3"))),
        ("score-cam", Box::new(ScoreCam::new("block3"))),
        ("ss-cam", Box::new(SsCam::new("block3"))),
        ("is-cam", Box::new(IsCam::new("block3"))),
        ("eigen-cam", Box::new(EigenCam::new("block3"))),
        ("occlusion", Box::new(Occlusion::default())),
        ("lime", Box::new(small_lime)),
    ]
}

#[test]
fn every_method_rejects_bad_inputs_and_targets_with_an_error() {
    tch::manual_seed(0);
    let vs = tch::nn::VarStore::new(Device::Cpu);
    let model = build(Arch::SmallCnn, &vs.root(), CLASSES).unwrap();
    let good = image(&[2, 3, 32, 32]);
    for (name, m) in methods() {
        // The method works on good input, so the failures below are the input's.
        let map = must_not_panic(name, true, || m.attribute(&model, &good, &Target::Predicted));
        assert!(map.is_empty(), "{name} failed on good input: {map}");

        let bad_inputs: [(&str, Tensor); 6] = [
            ("rank 3", image(&[3, 32, 32])),
            ("grayscale", image(&[1, 1, 32, 32])),
            ("rgba", image(&[1, 4, 32, 32])),
            ("empty batch", image(&[0, 3, 32, 32])),
            ("too small", image(&[1, 3, 2, 2])),
            (
                "integer pixels",
                Tensor::ones([1, 3, 32, 32], (Kind::Int64, Device::Cpu)),
            ),
        ];
        for (what, x) in &bad_inputs {
            must_fail(&format!("{name}, {what} input"), "input", || {
                m.attribute(&model, x, &Target::Class(0))
            });
        }
        let x = image(&[2, 3, 32, 32]);
        for (what, t) in [
            ("class 6 of 6", Target::Class(CLASSES)),
            ("class -1", Target::Class(-1)),
            ("per-sample class out of range", Target::PerSample(vec![0, 99])),
        ] {
            must_fail(&format!("{name}, {what}"), "class", || {
                m.attribute(&model, &x, &t)
            });
        }
        must_fail(&format!("{name}, one target for two images"), "target", || {
            m.attribute(&model, &x, &Target::PerSample(vec![1]))
        });
        // Non-finite pixels are the caller's business, but must not bring the process down.
        for v in [f64::NAN, f64::INFINITY] {
            let x = image(&[1, 3, 32, 32]).fill_(v);
            must_not_panic(&format!("{name}, {v} pixels"), true, || {
                m.attribute(&model, &x, &Target::Class(1))
            });
        }
    }
}

#[test]
fn cams_reject_layers_they_cannot_use() {
    let vs = tch::nn::VarStore::new(Device::Cpu);
    let model = build(Arch::SmallCnn, &vs.root(), CLASSES).unwrap();
    let x = image(&[1, 3, 32, 32]);
    let t = Target::Class(0);
    must_fail("grad-cam, unknown layer", "nope", || {
        GradCam::new("nope").attribute(&model, &x, &t)
    });
    must_fail("score-cam, unknown layer", "block3", || {
        ScoreCam::new("block9").attribute(&model, &x, &t)
    });
    // The classifier's output is [N, K], not a stack of feature maps.
    for layer in ["fc", "pool"] {
        must_not_panic(&format!("grad-cam at `{layer}`"), true, || {
            GradCam::new(layer).attribute(&model, &x, &t)
        });
        must_not_panic(&format!("score-cam at `{layer}`"), true, || {
            ScoreCam::new(layer).attribute(&model, &x, &t)
        });
    }
    must_fail("cam normalize, a scalar", "maps", || {
        normalize(&Tensor::from(1.0f32))
    });
    must_fail("cam normalize, no maps", "maps", || {
        normalize(&image(&[0, 1, 4, 4]))
    });
    // CAM needs global average pooling and one linear layer after its layer; the small CNN pools
    // by maximum, so it is an error that says so (and which method to use instead).
    must_fail("cam after a max-pooling head", "GradCam", || {
        ClassActivationMap::new("block3").attribute(&model, &x, &t)
    });
}

/// `m` changed by `f`: one bad setting on top of the defaults.
fn with<T>(mut m: T, f: impl FnOnce(&mut T)) -> T {
    f(&mut m);
    m
}

#[test]
fn settings_that_cannot_work_are_errors() {
    let vs = tch::nn::VarStore::new(Device::Cpu);
    let model = build(Arch::SmallCnn, &vs.root(), CLASSES).unwrap();
    let x = image(&[2, 3, 32, 32]);
    let t = Target::Class(0);
    let run =
        |label: &str, word: &str, m: &dyn Attribution| must_fail(label, word, || m.attribute(&model, &x, &t));

    let ig = |f: &dyn Fn(&mut IntegratedGradients)| with(IntegratedGradients::default(), f);
    run("ig, 0 steps", "steps", &ig(&|m| m.steps = 0));
    run("ig, batch 0", "batch", &ig(&|m| m.batch = 0));
    run(
        "ig, baseline of another size",
        "baseline",
        &ig(&|m| m.baseline = Baseline::Tensor(image(&[1, 3, 16, 16]))),
    );
    run(
        "ig, baseline for three images",
        "baseline",
        &ig(&|m| m.baseline = Baseline::Tensor(image(&[3, 3, 32, 32]))),
    );
    run(
        "ig, blur sigma 0",
        "sigma",
        &ig(&|m| m.baseline = Baseline::Blurred { sigma: 0.0 }),
    );
    run(
        "ig, blur sigma NaN",
        "sigma",
        &ig(&|m| m.baseline = Baseline::Blurred { sigma: f64::NAN }),
    );

    let nt = |f: &dyn Fn(&mut NoiseTunnel<Saliency>)| with(NoiseTunnel::smooth(Saliency::default()), f);
    run("smoothgrad, 0 samples", "samples", &nt(&|m| m.samples = 0));
    run("smoothgrad, batch 0", "batch", &nt(&|m| m.batch = 0));
    run("smoothgrad, sigma -1", "sigma", &nt(&|m| m.sigma = -1.0));
    run("smoothgrad, sigma NaN", "sigma", &nt(&|m| m.sigma = f64::NAN));
    run(
        "smoothgrad, noise of another shape",
        "noise",
        &nt(&|m| {
            m.samples = 2;
            m.noise = Some(image(&[2, 1, 3, 32, 32]));
        }),
    );

    let occ = |f: &dyn Fn(&mut Occlusion)| with(Occlusion::default(), f);
    run("occlusion, window 0", "window", &occ(&|m| m.window = (0, 4)));
    run(
        "occlusion, window larger than the image",
        "window",
        &occ(&|m| {
            m.window = (64, 64);
            m.stride = (8, 8);
        }),
    );
    run("occlusion, stride 0", "stride", &occ(&|m| m.stride = (0, 8)));
    run(
        "occlusion, stride over the window",
        "stride",
        &occ(&|m| {
            m.window = (4, 4);
            m.stride = (8, 8);
        }),
    );
    run("occlusion, batch 0", "batch", &occ(&|m| m.batch = 0));

    let lime = |f: &dyn Fn(&mut Lime)| {
        let small = Lime {
            samples: 20,
            ..Default::default()
        };
        with(small, f)
    };
    run("lime, 0 samples", "samples", &lime(&|m| m.samples = 0));
    run("lime, batch 0", "batch", &lime(&|m| m.batch = 0));
    run(
        "lime, kernel width 0",
        "kernel_width",
        &lime(&|m| m.kernel_width = 0.0),
    );
    run(
        "lime, kernel width NaN",
        "kernel_width",
        &lime(&|m| m.kernel_width = f64::NAN),
    );
    run("lime, negative ridge", "ridge", &lime(&|m| m.ridge_alpha = -1.0));
    run(
        "lime, blur sigma 0",
        "sigma",
        &lime(&|m| m.fill = Fill::Blur { sigma: 0.0 }),
    );
    run(
        "lime, 0 SLIC segments",
        "segments",
        &lime(&|m| m.segmentation.segments = 0),
    );
    run(
        "lime, segments of another size",
        "segments",
        &lime(&|m| m.segments = Some(Segments::from_labels(vec![0; 16 * 16], 16, 16).unwrap())),
    );

    let mut sc = ScoreCam::new("block3");
    sc.weights.batch = 0;
    run("score-cam, batch 0", "batch", &sc);
    let mut ss = SsCam::new("block3");
    ss.weights.samples = 0;
    run("ss-cam, 0 samples", "samples", &ss);
    let mut is = IsCam::new("block3");
    is.weights.samples = 0;
    run("is-cam, 0 samples", "samples", &is);
    let mut sgpp = SmoothGradCamPlusPlus::new("block3");
    sgpp.weights.samples = 0;
    run("smooth grad-cam++, 0 samples", "samples", &sgpp);
    sgpp.weights.samples = 2;
    sgpp.weights.sigma = f64::NAN;
    run("smooth grad-cam++, sigma NaN", "sigma", &sgpp);
}

#[test]
fn helpers_around_the_maps_reject_bad_shapes() {
    let vs = tch::nn::VarStore::new(Device::Cpu);
    let model = build(Arch::SmallCnn, &vs.root(), CLASSES).unwrap();
    let a = image(&[2, 1, 8, 8]);
    must_fail("agreement, other shapes", "shape", || {
        agreement(&a, &image(&[2, 1, 8, 4]))
    });
    must_fail("agreement, other batch", "shape", || {
        agreement(&a, &image(&[1, 1, 8, 8]))
    });
    must_fail("tensor_to_image, grayscale", "image", || {
        tensor_to_image(&image(&[1, 8, 8]))
    });
    must_fail("tensor_to_image, empty", "image", || {
        tensor_to_image(&image(&[3, 0, 8]))
    });
    let rgb = image(&[3, 8, 8]);
    must_fail("overlay, map of another size", "map", || {
        overlay(&rgb, &image(&[4, 4]), Colormap::default(), 0.5, false)
    });
    must_fail("overlay, two maps", "map", || {
        overlay(&rgb, &image(&[2, 1, 8, 8]), Colormap::default(), 0.5, false)
    });
    must_fail("overlay, alpha 2", "alpha", || {
        overlay(&rgb, &image(&[8, 8]), Colormap::default(), 2.0, false)
    });
    must_fail("feature maps, unknown layer", "nope", || {
        feature_maps(&model, &image(&[3, 32, 32]), "nope", &ChannelSelection::default())
    });
    must_fail("feature maps, grayscale", "input", || {
        feature_maps(
            &model,
            &image(&[1, 32, 32]),
            "block1",
            &ChannelSelection::default(),
        )
    });
    must_fail("feature maps, channel 999 of 64", "999", || {
        feature_maps(
            &model,
            &image(&[3, 32, 32]),
            "block1",
            &ChannelSelection::List(vec![999]),
        )
    });
    must_fail("segments, too few labels", "labels", || {
        Segments::from_labels(vec![0; 10], 4, 4)
    });
}

#[test]
fn quality_metrics_reject_maps_and_masks_that_do_not_fit() {
    use cnn_explain::quality::{
        confidence_change, deletion, energy_pointing_game, entropy, insertion, max_sensitivity,
        pointing_game, relevance_mass_accuracy, relevance_rank_accuracy, sparseness, spearman, ssim,
        FaithfulnessConfig, MaxSensitivityConfig, SsimConfig,
    };
    let vs = tch::nn::VarStore::new(Device::Cpu);
    let model = build(Arch::SmallCnn, &vs.root(), CLASSES).unwrap();
    let x = image(&[2, 3, 32, 32]);
    let t = Target::Class(0);
    let cfg = FaithfulnessConfig {
        step: 64,
        ..Default::default()
    };
    let good = image(&[2, 1, 32, 32]);
    // The metrics work on a map that fits, so the failures below are the maps'.
    let fine = must_not_panic("deletion, good map", true, || {
        deletion(&model, &x, &good, &t, &cfg)
    });
    assert!(fine.is_empty(), "deletion failed on a good map: {fine}");
    for (what, map) in [
        ("map of another size", image(&[2, 1, 16, 16])),
        ("map for one image", image(&[1, 1, 32, 32])),
        ("map of rank 2", image(&[32, 32])),
    ] {
        must_fail(&format!("deletion, {what}"), "map", || {
            deletion(&model, &x, &map, &t, &cfg)
        });
        must_fail(&format!("insertion, {what}"), "map", || {
            insertion(&model, &x, &map, &t, &cfg)
        });
        must_fail(&format!("confidence change, {what}"), "map", || {
            confidence_change(&model, &x, &map, &t)
        });
    }
    must_fail("deletion, step 0", "step", || {
        deletion(
            &model,
            &x,
            &good,
            &t,
            &FaithfulnessConfig {
                step: 0,
                ..cfg.clone()
            },
        )
    });
    must_fail("deletion, grayscale input", "input", || {
        deletion(&model, &image(&[2, 1, 32, 32]), &good, &t, &cfg)
    });
    must_fail("deletion, class 6 of 6", "class", || {
        deletion(&model, &x, &good, &Target::Class(CLASSES), &cfg)
    });

    let mask = image(&[2, 1, 32, 32]).gt(0.5);
    let other = image(&[2, 1, 16, 16]).gt(0.5);
    must_fail("pointing game, mask of another size", "mask", || {
        pointing_game(&good, &other, 0.0)
    });
    must_fail("pointing game, negative tolerance", "tolerance", || {
        pointing_game(&good, &mask, -1.0)
    });
    must_fail("energy pointing game, mask of another size", "mask", || {
        energy_pointing_game(&good, &other)
    });
    must_fail("relevance mass, mask of another size", "mask", || {
        relevance_mass_accuracy(&good, &other)
    });
    must_fail("relevance rank, mask of another size", "mask", || {
        relevance_rank_accuracy(&good, &other)
    });
    must_fail("sparseness, no maps", "map", || sparseness(&image(&[0, 1, 4, 4])));
    must_fail("entropy, a scalar", "map", || entropy(&Tensor::from(1.0f32)));
    must_fail("spearman, other shapes", "shape", || {
        spearman(&good, &image(&[2, 1, 16, 16]))
    });
    must_fail("ssim, other shapes", "shape", || {
        ssim(&good, &image(&[2, 1, 16, 16]), &SsimConfig::default())
    });
    must_fail("max sensitivity, 0 samples", "samples", || {
        max_sensitivity(
            &Saliency::default(),
            &model,
            &x,
            &t,
            &MaxSensitivityConfig {
                samples: 0,
                ..Default::default()
            },
        )
    });
    must_fail("max sensitivity, radius NaN", "radius", || {
        max_sensitivity(
            &Saliency::default(),
            &model,
            &x,
            &t,
            &MaxSensitivityConfig {
                radius: f64::NAN,
                ..Default::default()
            },
        )
    });
}
