//! CAM family on tiny models with chosen weights: every number below is worked out by hand.

use cnn_explain::attribution::cam::*;
use cnn_explain::prelude::*;
use tch::nn;

const CPU: Device = Device::Cpu;

fn t(v: &[f32], shape: &[i64]) -> Tensor {
    Tensor::from_slice(v).view(shape)
}

fn values(x: &Tensor) -> Vec<f32> {
    Vec::<f32>::try_from(x.flatten(0, -1)).unwrap()
}

fn assert_close(got: &Tensor, want: &[f32], tol: f32, what: &str) {
    let g = values(got);
    assert_eq!(g.len(), want.len(), "{what}: {g:?}");
    for (a, b) in g.iter().zip(want) {
        assert!((a - b).abs() <= tol, "{what}: got {g:?}, want {want:?}");
    }
}

/// x [1, 1, 2, 2] -> feat: A0 = relu(x), A1 = relu(-x) -> head -> 2 logits with fc W = [[2, -4], [1, 1]].
/// `position` None: global average pooling head (dY_c/dA_k = W[c,k] / 4).
/// `position` Some(P): Y_c = sum_k W[c,k] sum_ij P_ij A_k(ij) (dY_c/dA_k = W[c,k] P).
fn model(position: Option<[f32; 4]>) -> Staged {
    let w = t(&[2., -4., 1., 1.], &[2, 2]);
    let head = move |a: &Tensor| -> Tensor {
        let pooled = match position {
            None => a.mean_dim([2, 3].as_slice(), false, Kind::Float),
            Some(p) => (a * t(&p, &[1, 1, 2, 2])).sum_dim_intlist([2, 3].as_slice(), false, Kind::Float),
        };
        pooled.matmul(&w.tr())
    };
    Staged::new(1, 2, CPU)
        .leaf("feat", nn::func(|xs| Tensor::cat(&[xs.relu(), (-xs).relu()], 1)))
        .leaf("head", nn::func(move |a| head(a)))
}

fn x() -> Tensor {
    t(&[1., 2., -1., 3.], &[1, 1, 2, 2])
}

const P: [f32; 4] = [1., 0., 1., 2.];

#[test]
fn cam_weights_are_the_fc_weights_and_grad_cam_weights_are_fc_over_hw() {
    let m = model(None);
    let xs = x();
    let ctx = CamContext::new(&m, &xs, "feat", &Target::Class(0)).unwrap();
    match ClassActivationMapWeights::default().weights(&ctx).unwrap() {
        CamCombination::Channel(w) => assert_close(&w, &[2., -4.], 1e-6, "CAM weights"),
        other => panic!("{other:?}"),
    }
    match GradCamWeights.weights(&ctx).unwrap() {
        CamCombination::Channel(w) => assert_close(&w, &[0.5, -1.], 1e-6, "Grad-CAM weights"),
        other => panic!("{other:?}"),
    }
    // A0 = [[1,2],[0,3]], A1 = [[0,0],[1,0]]: CAM = 2 A0 - 4 A1, no ReLU.
    let raw = ClassActivationMap::new("feat")
        .raw(&m, &x(), &Target::Class(0))
        .unwrap();
    assert_close(&raw, &[2., 4., -4., 6.], 1e-6, "CAM raw");
    let raw = GradCam::new("feat").raw(&m, &x(), &Target::Class(0)).unwrap();
    assert_close(&raw, &[0.5, 1., 0., 1.5], 1e-6, "Grad-CAM raw");
    // Normalised CAM (no ReLU): (v + 4) / 10.
    let cam = ClassActivationMap::new("feat")
        .attribute(&m, &x(), &Target::Class(0))
        .unwrap();
    assert_eq!(cam.size(), [1, 1, 2, 2]);
    assert_close(&cam, &[0.6, 0.8, 0., 1.], 1e-6, "CAM");
    // Class 1: W = [1, 1], CAM = A0 + A1.
    let raw = ClassActivationMap::new("feat")
        .raw(&m, &x(), &Target::Class(1))
        .unwrap();
    assert_close(&raw, &[1., 2., 1., 3.], 1e-6, "CAM class 1");
}

#[test]
fn cam_refuses_heads_that_are_not_gap_linear() {
    let m = model(Some(P));
    let err = ClassActivationMap::new("feat")
        .attribute(&m, &x(), &Target::Class(0))
        .unwrap_err();
    assert!(err.to_string().contains("GradCam"), "{err}");
}

#[test]
fn gradient_cams_on_a_position_weighted_head() {
    // dY_0/dA_0 = 2 P, dY_0/dA_1 = -4 P with P = [[1,0],[1,2]] (mean 1).
    let m = model(Some(P));
    let c0 = Target::Class(0);
    let raw = |mut cam: Cam<_>| {
        cam.relu = false;
        cam.raw(&m, &x(), &c0).unwrap()
    };
    // Grad-CAM: w = W * mean(P) = [2, -4].
    assert_close(&raw(GradCam::new("feat")), &[2., 4., -4., 6.], 1e-6, "Grad-CAM");
    // XGrad-CAM: w0 = 2 sum(P A0)/sum(A0) = 2 * 7/6, w1 = -4 sum(P A1)/sum(A1) = -4.
    let xg = {
        let mut c = XGradCam::new("feat");
        c.relu = false;
        c.raw(&m, &x(), &c0).unwrap()
    };
    assert_close(&xg, &[7. / 3., 14. / 3., -4., 7.], 1e-5, "XGrad-CAM");
    // HiResCAM: P * (2 A0 - 4 A1).
    let hr = {
        let mut c = HiResCam::new("feat");
        c.relu = false;
        c.raw(&m, &x(), &c0).unwrap()
    };
    assert_close(&hr, &[2., 0., -4., 12.], 1e-6, "HiResCAM");
    // Layer-CAM: relu(2P) A0 + relu(-4P) A1 = 2 P A0.
    let lc = {
        let mut c = LayerCam::new("feat");
        c.relu = false;
        c.raw(&m, &x(), &c0).unwrap()
    };
    assert_close(&lc, &[2., 0., 0., 12.], 1e-6, "Layer-CAM");
    // Grad-CAM++: for channel 0, g = 2P, sum A0 = 6: alpha = 4P^2 / (8P^2 + 48 P^3) = 1/(2 + 12 P)
    // where P > 0; w0 = sum alpha relu(g) = 2 * (2/14) + 4/26 = 40/91; w1 = 0 (g1 <= 0).
    let pp = {
        let mut c = GradCamPlusPlus::new("feat");
        c.weights.eps = 0.0;
        c.raw(&m, &x(), &c0).unwrap()
    };
    let w0 = 40. / 91.;
    assert_close(&pp, &[w0, 2. * w0, 0., 3. * w0], 1e-6, "Grad-CAM++");
    // Smooth Grad-CAM++ with sigma 0 is Grad-CAM++.
    let mut s = SmoothGradCamPlusPlus::new("feat");
    s.weights.sigma = 0.0;
    s.weights.eps = 0.0;
    assert_close(
        &s.raw(&m, &x(), &c0).unwrap(),
        &[w0, 2. * w0, 0., 3. * w0],
        1e-6,
        "Smooth Grad-CAM++",
    );
}

#[test]
fn smooth_grad_cam_pp_averages_the_noisy_gradient_terms() {
    // Head Y = sum_ij x_ij^2 / 2 at layer "feat" = x^2 / 2 ... built so the gradient at the layer
    // depends on the input: layer = identity copy, head = sum(A^2) / 2 -> g = A.
    let m = Staged::new(1, 1, CPU).leaf("feat", nn::func(|xs| xs * 1.0)).leaf(
        "head",
        nn::func(|a| {
            (a.square() * 0.5)
                .sum_dim_intlist([1, 2, 3].as_slice(), false, Kind::Float)
                .unsqueeze(1)
        }),
    );
    let xs = t(&[1., 2., 3., 4.], &[1, 1, 2, 2]);
    let mut cam = SmoothGradCamPlusPlus::new("feat");
    cam.weights = SmoothGradCamPlusPlusWeights {
        samples: 3,
        sigma: 0.5,
        seed: 11,
        eps: 0.0,
    };
    let got = cam.raw(&m, &xs, &Target::Class(0)).unwrap();
    // By hand: the same noise, g = x + noise, averaged powers, alpha with the clean activation.
    let mut rng = cnn_explain::rng::Rng::new(11);
    let (mut d1, mut d2, mut d3) = (vec![0f64; 4], vec![0f64; 4], vec![0f64; 4]);
    let a = [1f64, 2., 3., 4.];
    for _ in 0..3 {
        let noise = values(&(rng.normal_tensor(&[1, 1, 2, 2], CPU) * 0.5));
        for i in 0..4 {
            let g = a[i] + noise[i] as f64;
            d1[i] += g / 3.;
            d2[i] += g * g / 3.;
            d3[i] += g * g * g / 3.;
        }
    }
    let sum_a: f64 = a.iter().sum();
    let w: f64 = (0..4)
        .map(|i| {
            if d2[i] > 0. {
                d2[i] / (2. * d2[i] + sum_a * d3[i]) * d1[i].max(0.)
            } else {
                0.
            }
        })
        .sum();
    let want: Vec<f32> = a.iter().map(|v| (w * v) as f32).collect();
    assert_close(&got, &want, 1e-5, "Smooth Grad-CAM++");
    // Another seed gives another map; the same seed the same one.
    assert!(values(&got) == values(&cam.raw(&m, &xs, &Target::Class(0)).unwrap()));
    cam.weights.seed = 12;
    assert!(values(&got) != values(&cam.raw(&m, &xs, &Target::Class(0)).unwrap()));
}

#[test]
fn score_cam_by_hand() {
    // M0 = A0 / 3 = [[1/3, 2/3], [0, 1]], M1 = A1; the layer has the input's size, so the masks are
    // not resampled. Y_0(X M0) = 2 * mean([[1/3, 4/3], [0, 3]]) = 7/3, Y_0(X M1) = -4 * 1/4 = -1.
    let m = model(None);
    let (e0, e1) = ((7f64 / 3.).exp(), (-1f64).exp());
    let (w0, w1) = ((e0 / (e0 + e1)) as f32, (e1 / (e0 + e1)) as f32);
    let want = [w0, 2. * w0, w1, 3. * w0];
    for batch in [1, 2, 5] {
        let mut cam = ScoreCam::new("feat");
        cam.weights.batch = batch;
        let raw = cam.raw(&m, &x(), &Target::Class(0)).unwrap();
        assert_close(&raw, &want, 1e-5, "Score-CAM");
    }
    // SS-CAM with sigma 0 and IS-CAM with one step (coefficient 1) are Score-CAM.
    let mut ss = SsCam::new("feat");
    ss.weights.sigma = 0.0;
    ss.weights.samples = 2;
    assert_close(
        &ss.raw(&m, &x(), &Target::Class(0)).unwrap(),
        &want,
        1e-5,
        "SS-CAM",
    );
    let mut is = IsCam::new("feat");
    is.weights.samples = 1;
    assert_close(
        &is.raw(&m, &x(), &Target::Class(0)).unwrap(),
        &want,
        1e-5,
        "IS-CAM",
    );
    // IS-CAM with 2 steps: coefficients 1/2 and 1/2 + 1 = 3/2; the head is linear in the masked
    // input on these masks (all masked values keep their sign), so gains scale: Y(c X M) - Y(X).
    let mut is = IsCam::new("feat");
    is.weights.samples = 2;
    let g0 = ((0.5 + 1.5) * 7. / 3. / 2.) - 2.;
    let g1 = -(0.5 + 1.5) / 2. - 2.;
    let (e0, e1) = (f64::exp(g0), f64::exp(g1));
    let (v0, v1) = ((e0 / (e0 + e1)) as f32, (e1 / (e0 + e1)) as f32);
    assert_close(
        &is.raw(&m, &x(), &Target::Class(0)).unwrap(),
        &[v0, 2. * v0, v1, 3. * v0],
        1e-5,
        "IS-CAM 2 steps",
    );
}

#[test]
fn ss_cam_by_hand_whatever_the_batch() {
    // Two samples with 3x3 maps: each mask has 9 noise values, an odd count, so chunks of masks
    // split the generator's normal pairs. The crate makes masks and noise a chunk at a time; the
    // noise must still be the sequence of one [N, K, 3, 3] draw per repetition.
    let m = model(None);
    let v: [f32; 18] = [
        1., 2., -1., 3., 0.5, -2., 1.5, -0.5, 2.5, -1., 1., 2., -3., 0.5, 1., 2., -2., 1.,
    ];
    let xs = t(&v, &[2, 1, 3, 3]);
    let (samples, sigma, seed) = (3usize, 0.7, 5u64);
    // A_0 = relu(x), A_1 = relu(-x); the layer has the input's size, so M_k = A_k min-max normalised.
    let acts: Vec<[[f64; 9]; 2]> = (0..2)
        .map(|n| {
            let x = &v[9 * n..9 * n + 9];
            [
                std::array::from_fn(|i| x[i].max(0.) as f64),
                std::array::from_fn(|i| (-x[i]).max(0.) as f64),
            ]
        })
        .collect();
    let norm = |a: &[f64; 9]| -> [f64; 9] {
        let (lo, hi) = a
            .iter()
            .fold((f64::MAX, f64::MIN), |(l, h), &v| (l.min(v), h.max(v)));
        std::array::from_fn(|i| (a[i] - lo) / (hi - lo + 1e-8))
    };
    // Y_0(z) = 2 mean(relu z) - 4 mean(relu -z), the feature layer followed by the pooled head.
    let y0 = |z: &[f64]| -> f64 {
        let pos: f64 = z.iter().map(|v| v.max(0.)).sum::<f64>() / 9.;
        let neg: f64 = z.iter().map(|v| (-v).max(0.)).sum::<f64>() / 9.;
        2. * pos - 4. * neg
    };
    let mut rng = cnn_explain::rng::Rng::new(seed);
    let mut gains = [[0f64; 2]; 2];
    for _ in 0..samples {
        let noise = values(&rng.normal_tensor(&[2, 2, 3, 3], CPU));
        for n in 0..2 {
            let x: Vec<f64> = v[9 * n..9 * n + 9].iter().map(|&a| a as f64).collect();
            for k in 0..2 {
                let mask = norm(&acts[n][k]);
                let z: Vec<f64> = (0..9)
                    .map(|i| x[i] * (mask[i] + noise[(n * 2 + k) * 9 + i] as f64 * sigma))
                    .collect();
                gains[n][k] += (y0(&z) - y0(&x)) / samples as f64;
            }
        }
    }
    let mut want = Vec::new();
    for n in 0..2 {
        let (e0, e1) = (gains[n][0].exp(), gains[n][1].exp());
        let (w0, w1) = (e0 / (e0 + e1), e1 / (e0 + e1));
        want.extend((0..9).map(|i| (w0 * acts[n][0][i] + w1 * acts[n][1][i]) as f32));
    }
    for batch in [1, 2, 3, 4, 64] {
        let mut ss = SsCam::new("feat");
        ss.weights = SsCamWeights {
            batch,
            samples,
            sigma,
            seed,
            ..Default::default()
        };
        let raw = ss.raw(&m, &xs, &Target::Class(0)).unwrap();
        assert_close(&raw, &want, 2e-5, &format!("SS-CAM, batch {batch}"));
    }
}

#[test]
fn eigen_cam_of_rank_one_activations_is_the_centred_pattern_with_positive_peak() {
    // A_k(ij) = u_k s(ij) with u = [1, 2, 2] (|u| = 3): projection = 3 (s - mean s), sign such
    // that the largest magnitude is positive.
    let w = t(&[1., 2., 2.], &[3, 1, 1, 1]);
    let m = Staged::new(1, 1, CPU)
        .leaf(
            "feat",
            nn::func(move |xs| xs.conv2d(&w, None::<Tensor>, [1, 1], [0, 0], [1, 1], 1)),
        )
        .leaf(
            "head",
            nn::func(|a| {
                a.sum_dim_intlist([1, 2, 3].as_slice(), false, Kind::Float)
                    .unsqueeze(1)
            }),
        );
    for s in [[1f32, 2., 0., 5.], [-1., -2., 0., -5.]] {
        let mut cam = EigenCam::new("feat");
        cam.relu = false;
        let raw = cam.raw(&m, &t(&s, &[1, 1, 2, 2]), &Target::Class(0)).unwrap();
        assert_close(&raw, &[-3., 0., -6., 9.], 1e-4, "Eigen-CAM");
    }
    let map = EigenCam::new("feat")
        .attribute(&m, &t(&[1., 2., 0., 5.], &[1, 1, 2, 2]), &Target::Predicted)
        .unwrap();
    assert_close(&map, &[0., 0., 0., 1.], 1e-6, "Eigen-CAM normalised");
}

#[test]
fn all_negative_or_zero_maps_normalise_to_zeros_not_nan() {
    let m = model(None);
    // Class 0 on x = -1 everywhere: A0 = 0, A1 = 1, Grad-CAM = relu(-A1) = 0.
    let xs = Tensor::full([1, 1, 2, 2], -1.0, (Kind::Float, CPU));
    for cam in [
        GradCam::new("feat")
            .attribute(&m, &xs, &Target::Class(0))
            .unwrap(),
        LayerCam::new("feat")
            .attribute(&m, &xs, &Target::Class(0))
            .unwrap(),
    ] {
        assert_eq!(values(&cam), [0.; 4]);
    }
    // All-zero input: zero activations, zero map.
    let zeros = Tensor::zeros([1, 1, 2, 2], (Kind::Float, CPU));
    for cam in [
        XGradCam::new("feat")
            .attribute(&m, &zeros, &Target::Class(0))
            .unwrap(),
        GradCamPlusPlus::new("feat")
            .attribute(&m, &zeros, &Target::Class(0))
            .unwrap(),
        EigenCam::new("feat")
            .attribute(&m, &zeros, &Target::Class(0))
            .unwrap(),
        ScoreCam::new("feat")
            .attribute(&m, &zeros, &Target::Class(0))
            .unwrap(),
    ] {
        assert_eq!(values(&cam), [0.; 4]);
    }
}

#[test]
fn upsampling_is_bilinear_half_pixel_to_the_input_size() {
    // Layer at half resolution: 2x2 average pooling of a 4x4 input.
    let m = Staged::new(1, 1, CPU)
        .leaf("pool", nn::func(|xs| xs.avg_pool2d_default(2)))
        .leaf(
            "head",
            nn::func(|a| a.mean_dim([1, 2, 3].as_slice(), false, Kind::Float).unsqueeze(1)),
        );
    let xs = Tensor::arange(16, (Kind::Float, CPU)).view([1, 1, 4, 4]);
    let mut cam = GradCam::new("pool");
    let map = cam.attribute(&m, &xs, &Target::Class(0)).unwrap();
    assert_eq!(map.size(), [1, 1, 4, 4]);
    let raw = cam.raw(&m, &xs, &Target::Class(0)).unwrap();
    let want = normalize(&raw.upsample_bilinear2d([4, 4], false, None, None)).unwrap();
    assert!(map.allclose(&want, 1e-6, 1e-6, false));
    // First row of a half-pixel upsampling of [[a, b], [c, d]]: a, a + (b-a)/4, a + 3(b-a)/4, b.
    cam.upsample = false;
    assert_eq!(
        cam.attribute(&m, &xs, &Target::Class(0)).unwrap().size(),
        [1, 1, 2, 2]
    );
    let row = values(&map.narrow(2, 0, 1));
    assert!(
        (row[1] - (row[0] + (row[3] - row[0]) / 4.)).abs() < 1e-6,
        "{row:?}"
    );
}

#[test]
fn bad_input_is_a_clear_error() {
    let m = model(None);
    let err = GradCam::new("layer9")
        .attribute(&m, &x(), &Target::Predicted)
        .unwrap_err();
    assert!(matches!(err, Error::UnknownLayer { .. }));
    assert!(err.to_string().contains("feat, head"), "{err}");
    let err = GradCam::new("feat")
        .attribute(&m, &x(), &Target::Class(2))
        .unwrap_err();
    assert!(
        matches!(
            err,
            Error::ClassOutOfRange {
                index: 2,
                num_classes: 2
            }
        ),
        "{err}"
    );
    let err = GradCam::new("feat")
        .attribute(&m, &x(), &Target::PerSample(vec![0, 1]))
        .unwrap_err();
    assert!(err.to_string().contains("PerSample"), "{err}");
    let err = GradCam::new("feat")
        .attribute(&m, &Tensor::ones([2, 2], (Kind::Float, CPU)), &Target::Predicted)
        .unwrap_err();
    assert!(matches!(err, Error::Shape { .. }), "{err}");
    let err = GradCam::new("feat")
        .attribute(
            &m,
            &Tensor::ones([0, 1, 2, 2], (Kind::Float, CPU)),
            &Target::Predicted,
        )
        .unwrap_err();
    assert!(matches!(err, Error::Shape { .. }), "{err}");
    // A layer after pooling has no spatial map.
    let err = GradCam::new("head")
        .attribute(&m, &x(), &Target::Predicted)
        .unwrap_err();
    assert!(err.to_string().contains("before global pooling"), "{err}");
    // Zero counts.
    let mut s = ScoreCam::new("feat");
    s.weights.batch = 0;
    assert!(s
        .attribute(&m, &x(), &Target::Predicted)
        .unwrap_err()
        .to_string()
        .contains("batch"));
    let mut s = SsCam::new("feat");
    s.weights.samples = 0;
    assert!(s
        .attribute(&m, &x(), &Target::Predicted)
        .unwrap_err()
        .to_string()
        .contains("samples"));
    let mut s = IsCam::new("feat");
    s.weights.samples = 0;
    assert!(s.attribute(&m, &x(), &Target::Predicted).is_err());
    let mut s = SmoothGradCamPlusPlus::new("feat");
    s.weights.samples = 0;
    assert!(s.attribute(&m, &x(), &Target::Predicted).is_err());
    s.weights.samples = 1;
    s.weights.sigma = -1.0;
    assert!(s
        .attribute(&m, &x(), &Target::Predicted)
        .unwrap_err()
        .to_string()
        .contains("sigma"));
}

/// A model with variables, batch norm and dropout after the layer.
fn trained_like(vs: &nn::VarStore) -> Staged {
    let root = vs.root();
    Staged::new(3, 3, CPU)
        .leaf(
            "conv1",
            nn::conv2d(
                &root / "conv1",
                3,
                4,
                3,
                nn::ConvConfig {
                    padding: 1,
                    ..Default::default()
                },
            ),
        )
        .leaf("relu1", nn::func(|xs| xs.relu()))
        .leaf("bn", nn::batch_norm2d(&root / "bn", 4, Default::default()))
        .leaf("drop", nn::func_t(|xs, train| xs.dropout(0.5, train)))
        .leaf(
            "gap",
            nn::func(|xs| xs.adaptive_avg_pool2d([1, 1]).flatten(1, -1)),
        )
        .leaf("fc", nn::linear(&root / "fc", 4, 3, Default::default()))
}

#[test]
fn runs_in_eval_mode_and_leaves_variable_gradients_as_they_were() {
    tch::manual_seed(0);
    let vs = nn::VarStore::new(CPU);
    let m = trained_like(&vs);
    let xs = Tensor::rand([2, 3, 6, 6], (Kind::Float, CPU));
    // Give the variables a gradient, as a training step in progress would.
    m.forward_t(&xs, false).sum(Kind::Float).backward();
    let before: Vec<Tensor> = vs.trainable_variables().iter().map(|v| v.grad().copy()).collect();
    let methods: Vec<Box<dyn Attribution>> = vec![
        Box::new(GradCam::new("relu1")),
        Box::new(GradCamPlusPlus::new("relu1")),
        Box::new(SmoothGradCamPlusPlus::new("relu1")),
        Box::new(ScoreCam::new("relu1")),
        Box::new(EigenCam::new("relu1")),
    ];
    for method in &methods {
        let a = method.attribute(&m, &xs, &Target::Predicted).unwrap();
        let b = method.attribute(&m, &xs, &Target::Predicted).unwrap();
        // Dropout and batch norm in training mode would make two calls differ.
        assert!(a.equal(&b), "{}", method.name());
        assert!(a.isfinite().all().int64_value(&[]) == 1);
    }
    for (v, g) in vs.trainable_variables().iter().zip(&before) {
        assert!(v.grad().equal(g), "a variable's gradient changed");
    }
    // Variables without a gradient keep none.
    let vs2 = nn::VarStore::new(CPU);
    let m2 = trained_like(&vs2);
    let _ = GradCam::new("relu1")
        .attribute(&m2, &xs, &Target::Class(1))
        .unwrap();
    assert!(vs2.trainable_variables().iter().all(|v| !v.grad().defined()));
}

#[test]
fn batched_equals_one_by_one() {
    tch::manual_seed(1);
    let vs = nn::VarStore::new(CPU);
    let m = trained_like(&vs);
    let xs = Tensor::randn([3, 3, 6, 6], (Kind::Float, CPU));
    let targets = [2i64, 0, 1];
    let mut score = ScoreCam::new("relu1");
    score.weights.batch = 3;
    let methods: Vec<Box<dyn Attribution>> = vec![
        Box::new(GradCam::new("relu1")),
        Box::new(GradCamPlusPlus::new("relu1")),
        Box::new(XGradCam::new("relu1")),
        Box::new(LayerCam::new("relu1")),
        Box::new(HiResCam::new("relu1")),
        Box::new(ClassActivationMap::new("relu1")),
        Box::new(score),
        Box::new(IsCam::new("relu1")),
        Box::new(EigenCam::new("relu1")),
    ];
    for method in &methods {
        let all = method
            .attribute(&m, &xs, &Target::PerSample(targets.to_vec()))
            .unwrap();
        assert_eq!(all.size(), [3, 1, 6, 6]);
        for (i, &c) in targets.iter().enumerate() {
            let one = method
                .attribute(&m, &xs.narrow(0, i as i64, 1), &Target::Class(c))
                .unwrap();
            let diff = (all.narrow(0, i as i64, 1) - one).abs().max().double_value(&[]);
            assert!(diff < 1e-5, "{}: sample {i} differs by {diff}", method.name());
        }
    }
}

#[test]
fn repeated_calls_do_not_grow_memory() {
    fn rss_kb() -> Option<u64> {
        let s = std::fs::read_to_string("/proc/self/status").ok()?;
        s.lines()
            .find(|l| l.starts_with("VmRSS:"))?
            .split_whitespace()
            .nth(1)?
            .parse()
            .ok()
    }
    tch::manual_seed(2);
    let vs = nn::VarStore::new(CPU);
    let m = trained_like(&vs);
    let xs = Tensor::randn([2, 3, 8, 8], (Kind::Float, CPU));
    let cam = GradCamPlusPlus::new("relu1");
    for _ in 0..100 {
        let _ = cam.attribute(&m, &xs, &Target::Predicted).unwrap();
    }
    let Some(start) = rss_kb() else { return };
    for _ in 0..1000 {
        let _ = cam.attribute(&m, &xs, &Target::Predicted).unwrap();
    }
    let end = rss_kb().unwrap();
    assert!(
        end < start + 4096,
        "RSS grew from {start} kB to {end} kB over 1000 calls"
    );
}
