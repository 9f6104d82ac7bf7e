//! The zoo's parameter and buffer names and shapes are exactly torchvision's `state_dict()` keys
//! (fixture written by `scripts/golden/torchvision_params.py`, torchvision 0.28.0, torch 2.13.0).

use cnn_explain::models::{Arch, Init, Model, ZooConfig};
use std::collections::BTreeMap;
use tch::{nn, Device};

fn torchvision() -> BTreeMap<String, BTreeMap<String, Vec<i64>>> {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/fixtures/torchvision_params.json"
    );
    let mut all: BTreeMap<String, serde_json::Value> =
        serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    all.remove("_versions");
    all.into_iter()
        .map(|(arch, v)| (arch, serde_json::from_value(v).unwrap()))
        .collect()
}

#[test]
fn names_and_shapes_equal_torchvision() {
    let expected = torchvision();
    assert_eq!(expected.len(), 5);
    for (arch_name, want) in &expected {
        let arch: Arch = arch_name.parse().unwrap();
        let vs = nn::VarStore::new(Device::Cpu);
        // Zeros: no random draws, so even VGG-16's 138M parameters build in well under a second.
        let config = ZooConfig {
            arch,
            num_classes: 1000,
            init: Init::Zeros,
            normalization: None,
        };
        let model = config.build(&vs.root()).unwrap();
        let got: BTreeMap<String, Vec<i64>> =
            vs.variables().into_iter().map(|(n, t)| (n, t.size())).collect();
        let missing: Vec<_> = want.keys().filter(|k| !got.contains_key(*k)).collect();
        let extra: Vec<_> = got.keys().filter(|k| !want.contains_key(*k)).collect();
        assert!(
            missing.is_empty() && extra.is_empty(),
            "{arch_name}: missing {missing:?}, extra {extra:?}"
        );
        for (k, shape) in want {
            assert_eq!(&got[k], shape, "{arch_name}: shape of {k}");
        }
        // Every parameter belongs to a stage reachable by name: its module path, or (inside a
        // residual block) the block `layerN.i`.
        let layers = model.layers();
        for k in want.keys() {
            let module = &k[..k.rfind('.').unwrap()];
            let reachable = layers
                .iter()
                .any(|l| module == l || module.starts_with(&format!("{l}.")));
            assert!(reachable, "{arch_name}: no stage holds {k}");
        }
        // The frozen/trainable split matches PyTorch: buffers are not trainable.
        let n_trainable = vs.trainable_variables().len();
        let n_buffers = want
            .keys()
            .filter(|k| k.contains("running_") || k.ends_with("num_batches_tracked"))
            .count();
        assert_eq!(n_trainable + n_buffers, want.len(), "{arch_name}");
        drop(model);
    }
}

#[test]
fn stage_names_are_torchvision_module_names() {
    let vs = nn::VarStore::new(Device::Cpu);
    let config = ZooConfig {
        arch: Arch::ResNet18,
        num_classes: 6,
        init: Init::Zeros,
        normalization: None,
    };
    let model = config.build(&vs.root()).unwrap();
    let top: Vec<String> = model.stage_names();
    assert_eq!(
        top,
        ["conv1", "bn1", "relu", "maxpool", "layer1", "layer2", "layer3", "layer4", "avgpool", "fc"]
    );
    let layers = model.layers();
    for l in ["layer1.0", "layer1.1", "layer4.0", "layer4.1"] {
        assert!(layers.contains(&l.to_string()), "{l}");
    }
    assert!(!layers.contains(&"layer4.2".to_string()));
    assert_eq!(model.min_input_size(), 1);

    let vs = nn::VarStore::new(Device::Cpu);
    let config = ZooConfig {
        arch: Arch::AlexNet,
        num_classes: 6,
        init: Init::Zeros,
        normalization: None,
    };
    let model = config.build(&vs.root()).unwrap();
    let want: Vec<String> = (0..13)
        .map(|i| format!("features.{i}"))
        .chain(["features".into(), "avgpool".into()])
        .chain((0..7).map(|i| format!("classifier.{i}")))
        .chain(["classifier".into()])
        .collect();
    assert_eq!(model.layers(), want);
    assert_eq!(model.min_input_size(), 63);
    assert_eq!(model.head().unwrap().stage, "classifier.6");
}
