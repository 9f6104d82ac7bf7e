//! The files `benches/peers.rs` hands to the Python side (`scripts/bench/peers.py`) and the report
//! that joins both, on a tiny case: the format round-trips, the weights carry torchvision's names,
//! and the report computes the ratios and flags maps that disagree.

#[path = "../benches/peers/export.rs"]
mod export;

use cnn_explain::models::{build, weights, Arch};
use cnn_explain::prelude::*;
use export::*;

fn timed(model: &str, batch: i64, method: &str, who: &str, times: &[f64]) -> TimedRow {
    TimedRow {
        model: model.into(),
        batch,
        method: method.into(),
        who: who.into(),
        times: times.to_vec(),
        images: batch,
        note: String::new(),
    }
}

#[test]
fn weights_and_inputs_round_trip_with_torchvision_names() {
    let dir = tempfile::tempdir().unwrap();
    let vs = tch::nn::VarStore::new(Device::Cpu);
    let model = build(Arch::SmallCnn, &vs.root(), 6).unwrap();
    weights::save(&vs, dir.path().join("small_cnn.safetensors")).unwrap();
    let saved = read_tensors(&dir.path().join("small_cnn.safetensors")).unwrap();
    // The names peers.py's SmallCnn (scripts/bench/pytorch_train.py) has, buffers included.
    for name in [
        "conv1.weight",
        "bn1.weight",
        "bn1.running_mean",
        "bn1.num_batches_tracked",
        "block1.conv.weight",
        "block3.bn.running_var",
        "fc.weight",
        "fc.bias",
    ] {
        assert!(saved.contains_key(name), "{name} missing from {:?}", saved.keys());
    }
    assert_eq!(saved.len(), vs.variables().len());
    assert!(saved["fc.weight"].equal(&vs.variables()["fc.weight"]));

    let xs = Tensor::rand([2, 3, 32, 32], (Kind::Float, Device::Cpu));
    let classes = model.logits(&xs).unwrap().argmax(1, false);
    let path = dir.path().join(input_file("small_cnn", 2));
    write_tensors(
        &path,
        &[
            ("input".into(), xs.shallow_clone()),
            ("targets".into(), classes.shallow_clone()),
        ],
    )
    .unwrap();
    let back = read_tensors(&path).unwrap();
    assert!(back["input"].equal(&xs));
    assert_eq!(back["targets"].kind(), Kind::Int64);
    assert!(back["targets"].equal(&classes));
    assert_eq!(input_file("small_cnn", 2), "small_cnn_b2_input.safetensors");
    assert_eq!(peer_maps_file("resnet18", 16), "resnet18_b16_peers.safetensors");
}

#[test]
fn report_joins_rows_ratios_and_agreement() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let map = Tensor::from_slice(&[0f32, 1., 2., 3., 4., 5., 6., 7.]).view([2, 1, 2, 2]);
    let other = Tensor::from_slice(&[0f32, 1., 2., 3., 7., 6., 5., 4.]).view([2, 1, 2, 2]);
    write_tensors(
        &d.join(crate_maps_file("m", 2)),
        &[
            ("gradcam".into(), map.shallow_clone()),
            ("layercam".into(), map.shallow_clone()),
        ],
    )
    .unwrap();
    write_tensors(
        &d.join(peer_maps_file("m", 2)),
        &[
            // The same map at another scale and offset: agrees.
            ("gradcam/pgc".into(), &map * 10.0 + 3.0),
            // Sample 1 reversed: normalised difference 1.
            ("layercam/pgc".into(), other),
        ],
    )
    .unwrap();
    let run = CrateRun {
        threads: 2,
        warmup: 1,
        reps: 3,
        load: vec!["1.0 1.0 1.0".into(), "2.0 1.0 1.0".into()],
        settings: vec![],
        models: vec![],
        cases: vec![CaseInfo {
            model: "m".into(),
            batch: 2,
            input: input_file("m", 2),
            maps: crate_maps_file("m", 2),
        }],
        rows: vec![
            timed("m", 2, "floor", "crate", &[0.4, 0.2, 0.3]),
            timed("m", 2, "gradcam", "crate", &[0.2, 0.3, 0.9]),
            timed("m", 2, "layercam", "crate", &[0.3]),
        ],
        train: None,
    };
    let peers = PeerRun {
        threads: 2,
        versions: [("torch".to_string(), "2.13.0".to_string())]
            .into_iter()
            .collect(),
        load: vec![],
        rows: vec![
            timed("m", 2, "gradcam", "pgc", &[0.6, 0.6, 0.6]),
            timed("m", 2, "layercam", "pgc", &[0.15]),
        ],
    };
    // Both files round-trip through JSON.
    write_json(&d.join("crate.json"), &run).unwrap();
    write_json(&d.join("peers.json"), &peers).unwrap();
    let run: CrateRun = read_json(&d.join("crate.json")).unwrap();
    let peers: PeerRun = read_json(&d.join("peers.json")).unwrap();

    let rows = report_rows(d, &run, &peers).unwrap();
    assert_eq!(rows.len(), 3);
    let floor = &rows[0];
    assert_eq!((floor.method.as_str(), floor.peer.as_deref()), ("floor", None));
    assert_eq!(floor.crate_s_per_image, 0.15); // median 0.3 s for 2 images
    assert_eq!(floor.crate_spread, (0.1, 0.2));
    let gc = &rows[1];
    assert_eq!(gc.crate_s_per_image, 0.15);
    assert_eq!(gc.crate_over_floor, Some(1.0));
    assert_eq!(gc.peer.as_deref(), Some("pgc"));
    assert!((gc.peer_over_crate.unwrap() - 2.0).abs() < 1e-12);
    assert_eq!(gc.agreement_metric.as_deref(), Some("max_abs_diff"));
    assert!(gc.agreement.unwrap() < 1e-12);
    assert_eq!(gc.agrees, Some(true));
    let lc = &rows[2];
    assert!((lc.peer_over_crate.unwrap() - 0.5).abs() < 1e-12);
    assert_eq!(lc.agreement, Some(1.0));
    assert_eq!(lc.agrees, Some(false));

    let md = markdown(&rows, &run, &peers);
    assert!(md.contains("| m | 2 | gradcam | 0.1500 [0.1000, 0.4500] | 1.00 | pgc | 0.3000 [0.3000, 0.3000] | 2.00 | 0.0e0 ok |"), "{md}");
    assert!(md.contains("| **0.50** |"), "a slower crate is marked: {md}");
    assert!(md.contains("DIFFERS"), "{md}");
}

#[test]
fn random_methods_are_compared_by_correlation() {
    assert!(is_random("lime") && is_random("smoothgrad"));
    assert!(!is_random("gradcam") && !is_random("occlusion"));
    assert!(known_difference("gradcampp", "torchcam").is_some());
    assert!(known_difference("gradcam", "torchcam").is_none());
}
