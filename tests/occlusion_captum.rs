//! Occlusion against Captum 0.9.0's `Occlusion` on a tiny fixed network.
//! Fixture: `scripts/golden/captum_occlusion.py` -> `tests/fixtures/captum_occlusion.safetensors`.

use cnn_explain::attribution::occlusion::{Occlusion, OcclusionBaseline, Score};
use cnn_explain::prelude::*;
use std::collections::HashMap;

fn fixture() -> HashMap<String, Tensor> {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/fixtures/captum_occlusion.safetensors"
    );
    Tensor::read_safetensors(path).unwrap().into_iter().collect()
}

/// conv 3x3 (padding 1) -> relu -> global mean -> linear, with the fixture's weights.
fn tiny_net(f: &HashMap<String, Tensor>) -> Staged {
    let (cw, cb, fw, fb) = (
        f["conv_w"].shallow_clone(),
        f["conv_b"].shallow_clone(),
        f["fc_w"].shallow_clone(),
        f["fc_b"].shallow_clone(),
    );
    Staged::new(3, 3, Device::Cpu)
        .leaf(
            "conv",
            tch::nn::func(move |xs| xs.conv2d(&cw, Some(&cb), [1, 1], [1, 1], [1, 1], 1)),
        )
        .leaf("relu", tch::nn::func(|xs| xs.relu()))
        .leaf(
            "pool",
            tch::nn::func(|xs| xs.mean_dim([2, 3].as_slice(), false, Kind::Float)),
        )
        .leaf("fc", tch::nn::func(move |xs| xs.linear(&fw, Some(&fb))))
}

#[test]
fn matches_captum_occlusion() {
    let f = fixture();
    let model = tiny_net(&f);
    let input = &f["input"];
    let target = Target::PerSample(vec![0, 2]);
    let cases = [
        ("logit_w3_s2_b0", Score::Logit, (3, 3), (2, 2), 0.0),
        ("logit_w4_s4_b05", Score::Logit, (4, 4), (4, 4), 0.5),
        ("prob_w3_s1_b0", Score::Probability, (3, 3), (1, 1), 0.0),
        ("prob_w2x5_s1x3_b02", Score::Probability, (2, 5), (1, 3), 0.2),
    ];
    for (name, score, window, stride, base) in cases {
        let occ = Occlusion {
            window,
            stride,
            baseline: OcclusionBaseline::Value(base),
            score,
            batch: 5,
        };
        let got = occ.attribute(&model, input, &target).unwrap();
        let want = &f[name];
        assert_eq!(got.size(), want.size(), "{name}");
        let err = (&got - want).abs().max().double_value(&[]);
        let scale = want.abs().max().double_value(&[]);
        assert!(err < 1e-4, "{name}: max abs error {err} (values up to {scale})");
        assert!(scale > 1e-3, "{name}: the golden map is not trivial");
    }
}
