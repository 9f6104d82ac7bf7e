//! Saving, loading, mismatches, partial loading, head replacement and freezing.

use cnn_explain::models::{weights, Arch, Model, Staged};
use cnn_explain::Error;
use tch::nn::{self, ModuleT, OptimizerConfig};
use tch::{Device, Kind, Tensor};

fn small(num_classes: i64, seed: u64) -> (nn::VarStore, Staged) {
    let vs = nn::VarStore::new(Device::Cpu);
    let config = cnn_explain::models::ZooConfig {
        arch: Arch::SmallCnn,
        num_classes,
        init: cnn_explain::models::Init::Seeded(seed),
        normalization: None,
    };
    let model = config.build(&vs.root()).unwrap();
    (vs, model)
}

fn input() -> Tensor {
    let mut rng = cnn_explain::rng::Rng::new(9);
    rng.uniform_tensor(&[2, 3, 32, 32], Device::Cpu)
}

/// Runs a few training steps so batch-norm buffers (running stats, counters) are not defaults.
fn train_a_little(vs: &nn::VarStore, model: &Staged) {
    let mut opt = nn::Sgd::default().build(vs, 0.1).unwrap();
    for _ in 0..2 {
        let loss = model.forward_t(&input(), true).sum(Kind::Float);
        opt.backward_step(&loss);
    }
}

#[test]
fn saved_weights_give_identical_logits_in_a_fresh_model() {
    for ext in ["safetensors", "ot"] {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(format!("m.{ext}"));
        let (vs, model) = small(6, 1);
        train_a_little(&vs, &model);
        weights::save(&vs, &path).unwrap();
        let (vs2, model2) = small(6, 2);
        let before = model2.logits(&input()).unwrap();
        assert!(!before.equal(&model.logits(&input()).unwrap()));
        weights::load(&vs2, &path).unwrap();
        assert!(
            model2
                .logits(&input())
                .unwrap()
                .equal(&model.logits(&input()).unwrap()),
            "{ext}"
        );
        assert_eq!(vs2.variables()["bn1.num_batches_tracked"].int64_value(&[]), 2);
        assert_eq!(vs2.variables()["bn1.num_batches_tracked"].kind(), Kind::Int64);
        // Only the checkpoint is left in the folder: the temporary file was renamed.
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);
    }
}

#[test]
fn mismatched_checkpoint_lists_names_and_loads_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("ten.safetensors");
    let (vs10, _m) = small(10, 1);
    weights::save(&vs10, &path).unwrap();

    let (vs6, model6) = small(6, 2);
    let before = model6.logits(&input()).unwrap();
    let err = weights::load(&vs6, &path).unwrap_err();
    assert!(matches!(err, Error::CheckpointMismatch { .. }), "{err}");
    let msg = err.to_string();
    assert!(
        msg.contains("fc.weight (model [6, 128], checkpoint [10, 128])"),
        "{msg}"
    );
    assert!(msg.contains("fc.bias (model [6], checkpoint [10])"), "{msg}");
    // Nothing was copied, not even the matching backbone.
    assert!(model6.logits(&input()).unwrap().equal(&before));

    // Missing and unexpected names: a ResNet checkpoint for the small CNN.
    let rpath = dir.path().join("resnet.safetensors");
    let vsr = nn::VarStore::new(Device::Cpu);
    let cfg = cnn_explain::models::ZooConfig {
        arch: Arch::ResNet18,
        init: cnn_explain::models::Init::Zeros,
        ..Default::default()
    };
    cfg.build(&vsr.root()).unwrap();
    weights::save(&vsr, &rpath).unwrap();
    let msg = weights::load(&vs6, &rpath).unwrap_err().to_string();
    assert!(msg.contains("missing in the checkpoint: block1.bn.bias"), "{msg}");
    assert!(msg.contains("not in the model: layer1.0.bn1.bias"), "{msg}");
}

#[test]
fn load_except_skips_the_head_and_says_so() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("ten.safetensors");
    let (vs10, model10) = small(10, 1);
    weights::save(&vs10, &path).unwrap();
    let (vs6, model6) = small(6, 2);
    let head_before = vs6.variables()["fc.weight"].copy();
    let report = weights::load_except(&vs6, &path, &["fc"]).unwrap();
    assert_eq!(report.skipped, ["fc.bias", "fc.weight"]);
    assert_eq!(report.ignored, ["fc.bias", "fc.weight"]);
    assert_eq!(report.loaded.len(), vs6.variables().len() - 2);
    assert!(vs6.variables()["fc.weight"].equal(&head_before));
    let a = model6.forward_to(&input(), "pool").unwrap();
    let b = model10.forward_to(&input(), "pool").unwrap();
    assert!(a.equal(&b));
    // A skip prefix matches whole name components only: `f` does not skip `fc`.
    assert!(weights::load_except(&vs6, &path, &["f"]).is_err());
}

#[test]
fn replaced_head_keeps_names_and_frozen_backbone_does_not_move() {
    let (vs, mut model) = small(10, 1);
    weights::replace_head(&mut model, &vs, 3, 7).unwrap();
    assert_eq!(model.num_classes(), 3);
    let vars = vs.variables();
    assert_eq!(vars["fc.weight"].size(), [3, 128]);
    assert!(
        !vars.keys().any(|k| k.contains("__")),
        "renamed variables: {:?}",
        vars.keys()
    );
    assert_eq!(vs.trainable_variables().len(), 14);

    let frozen = weights::freeze_backbone(&model, &vs).unwrap();
    assert_eq!(frozen.len(), 12);
    assert!(frozen.contains(&"conv1.weight".to_string()) && !frozen.iter().any(|n| n.starts_with("fc")));
    let conv_before = vars["block3.conv.weight"].copy();
    let fc_before = vars["fc.weight"].copy();
    let mut opt = nn::Sgd {
        momentum: 0.9,
        wd: 1e-4,
        ..Default::default()
    }
    .build(&vs, 0.1)
    .unwrap();
    let loss = model.forward_t(&input(), true).sum(Kind::Float);
    opt.backward_step(&loss);
    assert!(
        vars["block3.conv.weight"].equal(&conv_before),
        "frozen weights moved"
    );
    assert!(!vars["fc.weight"].equal(&fc_before), "head did not train");

    weights::unfreeze(&vs);
    assert!(vars["conv1.weight"].requires_grad());
    assert!(!vars["bn1.running_mean"].requires_grad());

    // The replaced model saves and reloads under torchvision-style names.
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("ft.safetensors");
    weights::save(&vs, &path).unwrap();
    let (vs3, model3) = small(3, 5);
    weights::load(&vs3, &path).unwrap();
    assert!(model3
        .logits(&input())
        .unwrap()
        .equal(&model.logits(&input()).unwrap()));
}

#[test]
fn vgg_head_is_replaced_inside_the_classifier() {
    let vs = nn::VarStore::new(Device::Cpu);
    let cfg = cnn_explain::models::ZooConfig {
        arch: Arch::AlexNet,
        num_classes: 1000,
        init: cnn_explain::models::Init::Zeros,
        normalization: None,
    };
    let mut model = cfg.build(&vs.root()).unwrap();
    weights::replace_head(&mut model, &vs, 6, 0).unwrap();
    assert_eq!(vs.variables()["classifier.6.weight"].size(), [6, 4096]);
    let xs = Tensor::zeros([1, 3, 63, 63], (Kind::Float, Device::Cpu));
    assert_eq!(model.logits(&xs).unwrap().size(), [1, 6]);
    assert!(model.layers().contains(&"classifier.6".to_string()));
}

#[test]
fn bad_files_are_errors() {
    let dir = tempfile::tempdir().unwrap();
    let (vs, _m) = small(6, 1);
    let missing = dir.path().join("nope.safetensors");
    assert!(matches!(weights::load(&vs, &missing), Err(Error::Io { .. })));
    let corrupt = dir.path().join("bad.safetensors");
    std::fs::write(&corrupt, b"not a safetensors file").unwrap();
    let err = weights::load(&vs, &corrupt).unwrap_err();
    assert!(matches!(err, Error::Data { .. }), "{err}");
    let corrupt = dir.path().join("bad.ot");
    std::fs::write(&corrupt, b"garbage").unwrap();
    assert!(matches!(weights::load(&vs, &corrupt), Err(Error::Data { .. })));
    let err = weights::save(&vs, dir.path().join("m.pth"))
        .unwrap_err()
        .to_string();
    assert!(err.contains(".safetensors") && err.contains(".ot"), "{err}");
    // A model without a recorded head cannot have its head replaced.
    let mut bare = Staged::new(3, 2, Device::Cpu).leaf("id", nn::func_t(|xs, _| xs.shallow_clone()));
    assert!(weights::replace_head(&mut bare, &vs, 2, 0).is_err());
    let (_, mut other) = small(6, 1);
    let empty = nn::VarStore::new(Device::Cpu);
    assert!(weights::replace_head(&mut other, &empty, 2, 0).is_err());
    assert!(weights::freeze_backbone(&other, &empty).is_err());
}
