//! Models shared by the gradient-family integration tests.
#![allow(dead_code)]

use cnn_explain::models::Staged;
use tch::{nn, Device, Kind, Tensor};

/// Copies `values` into variable `name` of `vs`.
pub fn set(vs: &nn::VarStore, name: &str, values: &[f32]) {
    let vars = vs.variables();
    let mut v = vars
        .get(name)
        .unwrap_or_else(|| panic!("no variable {name}"))
        .shallow_clone();
    let t = Tensor::from_slice(values).view(v.size().as_slice());
    tch::no_grad(|| v.copy_(&t));
}

/// The golden-value network: conv3x3(3->4, pad 1)-ReLU-conv3x3(4->4, pad 1)-ReLU-avgpool-fc(4->3),
/// parameter names as in scripts/golden/captum_gradient.py. Weights are left random (seeded).
pub fn small_cnn(vs: &nn::VarStore) -> Staged {
    let root = vs.root();
    let pad = nn::ConvConfig {
        padding: 1,
        ..Default::default()
    };
    Staged::new(3, 3, vs.device())
        .leaf("conv1", nn::conv2d(&root / "conv1", 3, 4, 3, pad))
        .leaf("relu1", nn::func(|xs| xs.relu()))
        .leaf("conv2", nn::conv2d(&root / "conv2", 4, 4, 3, pad))
        .leaf("relu2", nn::func(|xs| xs.relu()))
        .leaf(
            "pool",
            nn::func(|xs| xs.adaptive_avg_pool2d([1, 1]).flatten(1, -1)),
        )
        .leaf("fc", nn::linear(&root / "fc", 4, 3, Default::default()))
}

/// A seeded [N, C, H, W] batch in [0, 1).
pub fn batch(shape: &[i64], seed: u64) -> Tensor {
    cnn_explain::rng::Rng::new(seed).uniform_tensor(shape, Device::Cpu)
}

/// Largest absolute difference.
pub fn max_err(a: &Tensor, b: &Tensor) -> f64 {
    assert_eq!(a.size(), b.size());
    (a.to_kind(Kind::Double) - b.to_kind(Kind::Double))
        .abs()
        .max()
        .double_value(&[])
}

/// Overwrites every variable of `vs` with seeded normal values times `scale` (names sorted, so the
/// values depend on the seed alone).
pub fn randomize(vs: &nn::VarStore, seed: u64, scale: f64) {
    let mut rng = cnn_explain::rng::Rng::new(seed);
    let vars = vs.variables();
    let mut names: Vec<_> = vars.keys().cloned().collect();
    names.sort();
    for name in names {
        let mut v = vars[&name].shallow_clone();
        let r = rng.normal_tensor(&v.size(), Device::Cpu) * scale;
        tch::no_grad(|| v.copy_(&r));
    }
}
