//! The CAM family against pytorch-grad-cam 1.5.7 and torchcam 0.5.0 (torch 2.13.0): the fixture
//! `tests/fixtures/cam_golden.safetensors` is made by `scripts/golden/cam_golden.py`.
//!
//! pytorch-grad-cam maps (`pgc.*`) are compared at the input resolution (its `cv2.resize` is
//! bilinear with half-pixel centres, as this crate's upsampling); torchcam maps (`tc.*`) at the
//! layer's resolution (torchcam does not upsample), with `upsample = false`. All after min-max
//! normalisation, tolerance 1e-4 absolute.

use cnn_explain::attribution::cam::*;
use cnn_explain::prelude::*;
use std::collections::HashMap;
use tch::nn;

const FIXTURE: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/tests/fixtures/cam_golden.safetensors"
);

struct Golden {
    _vs: nn::VarStore,
    model: Staged,
    tensors: HashMap<String, Tensor>,
    input: Tensor,
    target: Target,
}

fn golden() -> Golden {
    let tensors: HashMap<String, Tensor> = Tensor::read_safetensors(FIXTURE).unwrap().into_iter().collect();
    let mut vs = nn::VarStore::new(Device::Cpu);
    let root = vs.root();
    let pad = nn::ConvConfig {
        padding: 1,
        ..Default::default()
    };
    let model = Staged::new(3, 3, Device::Cpu)
        .leaf("conv1", nn::conv2d(&root / "conv1", 3, 4, 3, pad))
        .leaf("relu1", nn::func(|xs| xs.relu()))
        .leaf("pool1", nn::func(|xs| xs.max_pool2d_default(2)))
        .leaf("conv2", nn::conv2d(&root / "conv2", 4, 6, 3, pad))
        .leaf("relu2", nn::func(|xs| xs.relu()))
        .leaf(
            "gap",
            nn::func(|xs| xs.adaptive_avg_pool2d([1, 1]).flatten(1, -1)),
        )
        .leaf("fc", nn::linear(&root / "fc", 6, 3, Default::default()));
    tch::no_grad(|| {
        for (name, var) in vs.variables_.lock().unwrap().named_variables.iter_mut() {
            var.copy_(&tensors[name]);
        }
    });
    vs.freeze();
    let logits = model.logits(&tensors["input"]).unwrap();
    assert!(
        logits.allclose(&tensors["logits"], 1e-5, 1e-5, false),
        "the net differs from Python's"
    );
    let target = Target::PerSample(Vec::<i64>::try_from(&tensors["targets"]).unwrap());
    let input = tensors["input"].shallow_clone();
    Golden {
        _vs: vs,
        model,
        tensors,
        input,
        target,
    }
}

/// Max absolute difference between our map `[N, 1, h, w]` and the reference `[N, h, w]`.
fn compare<W: CamWeights>(g: &Golden, mut cam: Cam<W>, key: &str, upsample: bool) -> f64 {
    cam.upsample = upsample;
    let ours = cam
        .attribute(&g.model, &g.input, &g.target)
        .unwrap()
        .squeeze_dim(1);
    let reference = &g.tensors[key];
    assert_eq!(ours.size(), reference.size(), "{key}");
    let err = (ours - reference).abs().max().double_value(&[]);
    println!("{key:32} max abs error {err:.2e}");
    err
}

const TOL: f64 = 1e-4;

#[test]
fn pytorch_grad_cam_maps_match() {
    let g = golden();
    let l = "relu2";
    let mut score = ScoreCam::new(l);
    score.weights.batch = 8;
    score.weights.pytorch_grad_cam_masks = true;
    let errs = [
        compare(&g, GradCam::new(l), "pgc.gradcam", true),
        compare(&g, GradCamPlusPlus::new(l), "pgc.gradcampp", true),
        compare(&g, XGradCam::new(l), "pgc.xgradcam", true),
        compare(&g, LayerCam::new(l), "pgc.layercam", true),
        compare(&g, HiResCam::new(l), "pgc.hirescam", true),
        compare(&g, score, "pgc.scorecam", true),
        compare(&g, EigenCam::new(l), "pgc.eigencam_signed", true),
    ];
    assert!(errs.iter().all(|&e| e < TOL), "{errs:?}");
}

#[test]
fn eigen_cam_equals_plain_pytorch_grad_cam_where_numpy_picked_the_same_sign() {
    let g = golden();
    let ours = EigenCam::new("relu2")
        .attribute(&g.model, &g.input, &g.target)
        .unwrap()
        .squeeze_dim(1);
    let agrees = Vec::<i64>::try_from(&g.tensors["pgc.eigencam_sign_agrees"]).unwrap();
    for (i, a) in agrees.iter().enumerate() {
        let err = (ours.get(i as i64) - g.tensors["pgc.eigencam"].get(i as i64))
            .abs()
            .max()
            .double_value(&[]);
        if *a == 1 {
            assert!(err < TOL, "sample {i}: {err}");
        } else {
            // numpy's SVD gave the opposite sign: pytorch-grad-cam shows the other lobe.
            assert!(
                err > 0.1,
                "sample {i}: sign flag says the maps differ, but they agree"
            );
        }
    }
}

#[test]
fn torchcam_maps_match() {
    let g = golden();
    let l = "relu2";
    let mut xgrad = XGradCam::new(l);
    xgrad.weights.eps = 1e-8; // torchcam's
    let mut score = ScoreCam::new(l);
    score.weights.batch = 8;
    let mut iscam = IsCam::new(l);
    iscam.weights = IsCamWeights {
        batch: 8,
        samples: 4,
        ..Default::default()
    };
    let mut sscam = SsCam::new(l);
    sscam.weights = SsCamWeights {
        batch: 8,
        samples: 3,
        sigma: 0.5,
        seed: 7,
        ..Default::default()
    };
    let mut smooth = SmoothGradCamPlusPlus::new(l);
    smooth.weights.sigma = 0.0;
    smooth.weights.samples = 2;
    let errs = [
        compare(&g, ClassActivationMap::new(l), "tc.cam", false),
        compare(&g, GradCam::new(l), "tc.gradcam", false),
        compare(&g, xgrad, "tc.xgradcam", false),
        compare(&g, LayerCam::new(l), "tc.layercam", false),
        compare(&g, score, "tc.scorecam", false),
        compare(&g, iscam, "tc.iscam", false),
        compare(&g, sscam, "tc.sscam_seed7_std0.5_n3", false),
        compare(&g, smooth, "tc.smoothgradcampp_sigma0", false),
    ];
    assert!(errs.iter().all(|&e| e < TOL), "{errs:?}");
}

/// torchcam 0.5.0's GradCAMpp never divides alpha (`alpha[mask].div_(...)` acts on a copy), so its
/// weights are `sum g^2 relu(g)`. This crate follows pytorch-grad-cam (checked above); here the
/// torchcam map is reproduced with those weights through the same pipeline, to document the cause.
#[test]
fn torchcam_grad_cam_pp_is_the_undivided_alpha() {
    struct TorchcamGradCamPp;
    impl CamWeights for TorchcamGradCamPp {
        fn weights(&self, ctx: &CamContext) -> cnn_explain::Result<CamCombination> {
            let g = ctx.gradient()?;
            let w = (g.square() * g.relu()).sum_dim_intlist([2, 3].as_slice(), true, Kind::Float);
            Ok(CamCombination::Channel(w))
        }
        fn name(&self) -> String {
            "torchcam GradCAMpp".into()
        }
    }
    let g = golden();
    // torchcam normalises with `(x - min) / (max + 1e-8)`; these weights are tiny (g^3), so its eps
    // shows: apply the same normalisation to the raw map.
    let raw = Cam::with_weights("relu2", TorchcamGradCamPp)
        .raw(&g.model, &g.input, &g.target)
        .unwrap()
        .squeeze_dim(1);
    let lo = raw.amin([1, 2].as_slice(), true);
    let shifted = raw - lo;
    let tc = &shifted / (shifted.amax([1, 2].as_slice(), true) + 1e-8);
    let err = (tc - &g.tensors["tc.gradcampp"]).abs().max().double_value(&[]);
    println!("tc.gradcampp (undivided alpha)   max abs error {err:.2e}");
    assert!(err < TOL, "{err}");
    let ours = compare(&g, GradCamPlusPlus::new("relu2"), "tc.gradcampp", false);
    println!("Grad-CAM++ (pytorch-grad-cam formula) vs torchcam GradCAMpp: {ours:.2e}");
}
