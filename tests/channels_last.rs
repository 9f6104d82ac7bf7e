//! Channels-last batches (`models::fast_layout`): every batched method gives the same maps whether
//! or not the model lets it use the faster layout, the faster layout is really used by the
//! perturbation methods where it is allowed, never for input gradients, and a model that did not
//! allow it never sees it.

use cnn_explain::attribution::cam::{GradCam, ScoreCam};
use cnn_explain::attribution::gradient::{IntegratedGradients, Saliency};
use cnn_explain::attribution::lime::Lime;
use cnn_explain::attribution::noise::NoiseTunnel;
use cnn_explain::attribution::occlusion::Occlusion;
use cnn_explain::attribution::{Attribution, Target};
use cnn_explain::models::{Arch, Init, Staged, ZooConfig, CHANNELS_LAST_MIN_BATCH};
use std::sync::{Arc, Mutex};
use tch::{nn, Device, Kind, Tensor};

const CPU: Device = Device::Cpu;

fn small_cnn(vs: &nn::VarStore) -> Staged {
    ZooConfig {
        arch: Arch::SmallCnn,
        num_classes: 6,
        init: Init::Seeded(3),
        normalization: None,
    }
    .build(&vs.root())
    .unwrap()
}

fn images(n: i64) -> Tensor {
    tch::manual_seed(11);
    Tensor::rand([n, 3, 32, 32], (Kind::Float, CPU))
}

/// Largest difference relative to the largest magnitude of `b`.
fn rel_err(a: &Tensor, b: &Tensor) -> f64 {
    let scale = b.abs().max().double_value(&[]).max(1e-12);
    (a - b).abs().max().double_value(&[]) / scale
}

#[test]
fn every_batched_method_gives_the_same_map_in_either_layout() {
    let vs_fast = nn::VarStore::new(CPU);
    let fast = small_cnn(&vs_fast);
    assert!(cnn_explain::models::Model::channels_last_batches(&fast));
    let vs_plain = nn::VarStore::new(CPU);
    let plain = small_cnn(&vs_plain).with_channels_last_batches(false);
    let xs = images(CHANNELS_LAST_MIN_BATCH);
    let target = Target::Class(2);
    let layer = "block3";
    let methods: Vec<(Box<dyn Attribution>, i64)> = vec![
        (Box::new(Saliency::default()), CHANNELS_LAST_MIN_BATCH),
        (Box::new(GradCam::new(layer)), CHANNELS_LAST_MIN_BATCH),
        (Box::new(NoiseTunnel::smooth(Saliency::default())), 1),
        (Box::new(IntegratedGradients::default()), 1),
        (Box::new(ScoreCam::new(layer)), 1),
        (
            Box::new(Occlusion {
                window: (8, 8),
                stride: (4, 4),
                ..Default::default()
            }),
            1,
        ),
        (
            Box::new(Lime {
                samples: 100,
                ..Default::default()
            }),
            1,
        ),
    ];
    for (method, n) in methods {
        let x = xs.narrow(0, 0, n);
        let a = method.attribute(&fast, &x, &target).unwrap();
        let b = method.attribute(&plain, &x, &target).unwrap();
        assert_eq!(a.size(), b.size(), "{}", method.name());
        let err = rel_err(&a, &b);
        assert!(err < 1e-4, "{}: relative difference {err:e}", method.name());
    }
}

/// A model that records the strides of every input it is given.
fn recording_model(allow: bool) -> (Staged, Arc<Mutex<Vec<Vec<i64>>>>) {
    let seen = Arc::new(Mutex::new(Vec::new()));
    let log = seen.clone();
    let model = Staged::new(3, 2, CPU)
        .leaf(
            "record",
            nn::func(move |xs| {
                log.lock().unwrap().push(xs.stride());
                // `view` needs contiguous memory: a model like this must not be given channels-last.
                let n = xs.size()[0];
                xs.view([n, -1]).shallow_clone().view_as(xs)
            }),
        )
        .leaf(
            "head",
            nn::func(|xs| {
                let m = xs.mean_dim([1, 2, 3].as_slice(), false, Kind::Float);
                Tensor::stack(&[&m, &(-&m)], 1)
            }),
        )
        .with_channels_last_batches(allow);
    (model, seen)
}

#[test]
fn channels_last_reaches_only_models_that_allow_it_and_only_large_batches() {
    let xs = images(2) - 0.5;
    let occ = Occlusion {
        window: (8, 8),
        stride: (8, 8),
        ..Default::default()
    };
    let is_channels_last = |s: &Vec<i64>| s[1] == 1;

    let (plain, seen) = recording_model(false);
    assert!(occ.attribute(&plain, &xs, &Target::Class(0)).is_ok());
    assert!(!seen.lock().unwrap().iter().any(is_channels_last));

    let (fast, seen) = recording_model(true);
    let ok = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        occ.attribute(&fast, &xs, &Target::Class(0))
    }));
    // The recording model's `view` cannot take channels-last memory: allowing it was a lie, and the
    // failure shows the fast layout was really used for the 16-window batches.
    assert!(ok.is_err(), "a channels-last batch should have reached the model");
    let strides = seen.lock().unwrap().clone();
    assert!(strides.iter().any(is_channels_last), "{strides:?}");
    // The first pass (the two images themselves) is below the batch threshold and stays contiguous.
    assert!(!is_channels_last(&strides[0]), "{strides:?}");
}

#[test]
fn input_gradients_keep_the_contiguous_layout() {
    // The recording model's `view` would fail on channels-last memory, so passing shows every
    // batch of 8 (saliency) and 50 (Integrated Gradients) stayed contiguous.
    let (model, seen) = recording_model(true);
    let xs = images(CHANNELS_LAST_MIN_BATCH) - 0.5;
    assert!(Saliency::default()
        .attribute(&model, &xs, &Target::Class(0))
        .is_ok());
    assert!(IntegratedGradients::default()
        .attribute(&model, &xs.narrow(0, 0, 1), &Target::Class(0))
        .is_ok());
    let strides = seen.lock().unwrap().clone();
    assert!(
        !strides.is_empty() && !strides.iter().any(|s| s[1] == 1),
        "{strides:?}"
    );
}
