//! The Right-for-the-Right-Reasons penalty and explanation evolution: exact values on a linear model
//! whose input gradient is known in closed form, switching through the callback hook, the shortcut
//! it removes, serde and the error cases.

use cnn_explain::attribution::gradient::Saliency;
use cnn_explain::attribution::{Attribution, Target};
use cnn_explain::data::shapes::{self, ShapesConfig};
use cnn_explain::models::{Arch, ZooConfig};
use cnn_explain::prelude::*;
use cnn_explain::rng::Rng;
use cnn_explain::train::{
    evolution_probe, mass_shares, Callback, EpochRecord, ExplanationEvolution, InputGradientPenalty,
    IrrelevantRegion, PenaltyScore, Schedule,
};
use cnn_explain::viz::{evolution_strip, Draw};
use tch::nn;

const K: i64 = 3;

/// A linear classifier `[N, 1, 2, 2] -> [N, 3]` with weights drawn from `Rng::new(seed)`; returns
/// the weights `[3][4]` and biases as f64 too.
fn linear(seed: u64) -> (nn::VarStore, Staged) {
    let vs = nn::VarStore::new(Device::Cpu);
    let fc = nn::linear(&vs.root() / "fc", 4, K, Default::default());
    let mut rng = Rng::new(seed);
    tch::no_grad(|| {
        fc.ws
            .shallow_clone()
            .copy_(&rng.normal_tensor(&[K, 4], Device::Cpu));
        fc.bs
            .as_ref()
            .unwrap()
            .shallow_clone()
            .copy_(&(rng.normal_tensor(&[K], Device::Cpu) * 0.5));
    });
    let m = Staged::new(1, K, Device::Cpu)
        .leaf("flat", nn::func(|xs| xs.flatten(1, -1)))
        .leaf("fc", fc);
    (vs, m)
}

fn weights(vs: &nn::VarStore) -> (Vec<Vec<f64>>, Vec<f64>) {
    let v = vs.variables();
    let w = Vec::<f64>::try_from(v["fc.weight"].to_kind(Kind::Double).view([-1])).unwrap();
    let b = Vec::<f64>::try_from(v["fc.bias"].to_kind(Kind::Double)).unwrap();
    (w.chunks(4).map(|c| c.to_vec()).collect(), b)
}

fn small_data(seed: u64) -> Dataset {
    let mut rng = Rng::new(seed);
    let n = 6;
    let px: Vec<f32> = (0..n * 4).map(|_| rng.range(-1.0, 1.0) as f32).collect();
    let labels: Vec<i64> = (0..n as i64).map(|i| i % K).collect();
    Dataset::new(
        Tensor::from_slice(&px).view([n as i64, 1, 2, 2]),
        Tensor::from_slice(&labels),
        vec!["a".into(), "b".into(), "c".into()],
        None,
    )
    .unwrap()
}

/// Irrelevant pixels 0 and 3 of every image.
fn corners(n: i64) -> Tensor {
    Tensor::from_slice(&[1f32, 0., 0., 1.])
        .view([1, 1, 2, 2])
        .expand([n, 1, 2, 2], false)
        .contiguous()
}

fn one_step(score: PenaltyScore, weight: f64) -> TrainConfig {
    TrainConfig {
        epochs: 1,
        batch_size: 6,
        lr: 1e-3,
        schedule: Schedule::Constant,
        verbose: false,
        tracked: cnn_explain::train::TrackedSet::None,
        optimizer: cnn_explain::train::Optimizer::Sgd {
            momentum: 0.0,
            weight_decay: 0.0,
            nesterov: false,
        },
        penalty: Some(InputGradientPenalty {
            weight,
            enabled: true,
            region: IrrelevantRegion::Given,
            score,
        }),
        ..Default::default()
    }
}

/// The input gradient of each score of a linear model `z = W x + b`, by hand:
/// sum_k log p_k -> sum_k W_k - K p.W; log p_y -> W_y - p.W; z_y - mean z -> W_y - mean_k W_k.
fn hand_penalty(score: PenaltyScore, w: &[Vec<f64>], b: &[f64], data: &Dataset, weight: f64) -> f64 {
    let xs = Vec::<f64>::try_from(data.images.to_kind(Kind::Double).view([-1])).unwrap();
    let ys = Vec::<i64>::try_from(&data.labels).unwrap();
    let mask = [1.0, 0.0, 0.0, 1.0];
    let mut total = 0.0;
    for (i, &y) in ys.iter().enumerate() {
        let x = &xs[i * 4..i * 4 + 4];
        let z: Vec<f64> = (0..3)
            .map(|k| b[k] + (0..4).map(|j| w[k][j] * x[j]).sum::<f64>())
            .collect();
        let zmax = z.iter().cloned().fold(f64::MIN, f64::max);
        let e: Vec<f64> = z.iter().map(|v| (v - zmax).exp()).collect();
        let s: f64 = e.iter().sum();
        let p: Vec<f64> = e.iter().map(|v| v / s).collect();
        let pw = |j: usize| (0..3).map(|k| p[k] * w[k][j]).sum::<f64>();
        let mean_w = |j: usize| (0..3).map(|k| w[k][j]).sum::<f64>() / 3.0;
        for j in 0..4 {
            let g = match score {
                PenaltyScore::SumLogProbabilities => (0..3).map(|k| w[k][j]).sum::<f64>() - 3.0 * pw(j),
                PenaltyScore::TrueClassLogProbability => w[y as usize][j] - pw(j),
                PenaltyScore::CentredTrueClassLogit => w[y as usize][j] - mean_w(j),
            };
            total += mask[j] * g * g;
        }
    }
    weight * total / ys.len() as f64
}

#[test]
fn penalty_equals_the_hand_computed_value_for_every_score() {
    let data = small_data(3);
    let masks = corners(6);
    for score in [
        PenaltyScore::SumLogProbabilities,
        PenaltyScore::TrueClassLogProbability,
        PenaltyScore::CentredTrueClassLogit,
    ] {
        let (mut vs, m) = linear(11);
        let (w, b) = weights(&vs);
        let want = hand_penalty(score, &w, &b, &data, 2.5);
        assert!(want > 0.01, "{score:?}: {want}");
        // One batch: the recorded mean is the penalty at the initial weights.
        let h = fit(
            &m,
            &mut vs,
            &FitData::new(&data).with_irrelevant(&masks),
            &one_step(score, 2.5),
            &mut [],
        )
        .unwrap();
        let rec = h.epochs[0].penalty.expect("penalty recorded");
        assert_eq!(rec.weight, 2.5);
        assert!(
            (rec.mean - want).abs() < 1e-5 * want.max(1.0),
            "{score:?}: recorded {} vs hand {want}",
            rec.mean
        );
    }
}

#[test]
fn empty_region_gives_zero_penalty_and_the_same_weights() {
    let data = small_data(4);
    let zeros = Tensor::zeros([6, 1, 2, 2], (Kind::Float, Device::Cpu));
    let (mut vs_a, m_a) = linear(5);
    let cfg = TrainConfig {
        epochs: 3,
        batch_size: 3,
        ..one_step(PenaltyScore::SumLogProbabilities, 100.0)
    };
    let h = fit(
        &m_a,
        &mut vs_a,
        &FitData::new(&data).with_irrelevant(&zeros),
        &cfg,
        &mut [],
    )
    .unwrap();
    assert!(h.epochs.iter().all(|e| e.penalty.unwrap().mean == 0.0));
    let (mut vs_b, m_b) = linear(5);
    let plain = TrainConfig {
        penalty: None,
        ..cfg.clone()
    };
    let h_b = fit(&m_b, &mut vs_b, &FitData::new(&data), &plain, &mut []).unwrap();
    assert!(h_b.epochs.iter().all(|e| e.penalty.is_none()));
    let (wa, ba) = weights(&vs_a);
    let (wb, bb) = weights(&vs_b);
    for (x, y) in wa.iter().flatten().chain(&ba).zip(wb.iter().flatten().chain(&bb)) {
        assert!((x - y).abs() < 1e-6, "{x} vs {y}");
    }
    // Weight 0 or `enabled: false` does not compute the penalty at all.
    let off = TrainConfig {
        penalty: Some(InputGradientPenalty {
            enabled: false,
            ..cfg.penalty.unwrap()
        }),
        ..cfg
    };
    let (mut vs_c, m_c) = linear(5);
    let h_c = fit(&m_c, &mut vs_c, &FitData::new(&data), &off, &mut []).unwrap();
    assert!(h_c.epochs.iter().all(|e| e.penalty.is_none()));
}

/// Switches the penalty on from epoch `from` with weight `w`, and records what it was given.
struct SwitchOn {
    from: usize,
    w: f64,
    seen: Vec<(usize, Option<f64>)>,
}

impl Callback for SwitchOn {
    fn penalty(
        &mut self,
        epoch: usize,
        current: Option<&InputGradientPenalty>,
    ) -> Option<InputGradientPenalty> {
        self.seen.push((epoch, current.map(|p| p.weight)));
        if epoch >= self.from {
            Some(InputGradientPenalty {
                weight: self.w,
                region: IrrelevantRegion::Given,
                ..Default::default()
            })
        } else {
            None
        }
    }
}

#[test]
fn a_callback_switches_the_penalty_between_epochs() {
    let data = small_data(6);
    let masks = corners(6);
    let (mut vs, m) = linear(7);
    let cfg = TrainConfig {
        epochs: 4,
        batch_size: 6,
        ..one_step(PenaltyScore::SumLogProbabilities, 1.0)
    };
    let mut cb = SwitchOn {
        from: 3,
        w: 4.0,
        seen: vec![],
    };
    let h = fit(
        &m,
        &mut vs,
        &FitData::new(&data).with_irrelevant(&masks),
        &cfg,
        &mut [&mut cb],
    )
    .unwrap();
    // The config's penalty (weight 1) is what the callback sees first; then its own answers.
    assert_eq!(cb.seen, [(1, Some(1.0)), (2, None), (3, None), (4, Some(4.0))]);
    let weights: Vec<Option<f64>> = h.epochs.iter().map(|e| e.penalty.map(|p| p.weight)).collect();
    assert_eq!(weights, [None, None, Some(4.0), Some(4.0)]);
    assert!(h.epochs[2].penalty.unwrap().mean > 0.0);
    // Switched on without masks: the error names the missing masks.
    let (mut vs, m) = linear(7);
    let mut cb = SwitchOn {
        from: 2,
        w: 4.0,
        seen: vec![],
    };
    let plain = TrainConfig { penalty: None, ..cfg };
    let err = fit(&m, &mut vs, &FitData::new(&data), &plain, &mut [&mut cb]).unwrap_err();
    assert!(err.to_string().contains("with_irrelevant"), "{err}");
}

/// Two classes; pixel 0 carries the class with noise (the shape), pixel 3 carries it exactly (the
/// cue), pixels 1 and 2 are noise.
fn shortcut_data(n: usize, seed: u64) -> Dataset {
    let mut rng = Rng::new(seed);
    let mut px = Vec::new();
    let mut labels = Vec::new();
    for i in 0..n {
        let y = (i % 2) as i64;
        let s = if y == 1 { 1.0 } else { -1.0 };
        px.extend([
            (0.5 * s + 0.6 * rng.range(-1.0, 1.0)) as f32,
            rng.range(-1.0, 1.0) as f32,
            rng.range(-1.0, 1.0) as f32,
            s as f32,
        ]);
        labels.push(y);
    }
    Dataset::new(
        Tensor::from_slice(&px).view([n as i64, 1, 2, 2]),
        Tensor::from_slice(&labels),
        vec!["neg".into(), "pos".into()],
        None,
    )
    .unwrap()
}

#[test]
fn the_penalty_moves_saliency_off_the_cue() {
    let data = shortcut_data(64, 1);
    let cue = Tensor::from_slice(&[0f32, 0., 0., 1.])
        .view([1, 1, 2, 2])
        .expand([64, 1, 2, 2], false)
        .contiguous();
    // Zero initial weights: the cross-entropy and the penalty change W_0 and W_1 by opposite
    // amounts, so W_0 = -W_1 throughout and |saliency| = |W_1| for both classes.
    let cue_mass = |penalty: Option<InputGradientPenalty>| -> (f64, f64) {
        let vs = nn::VarStore::new(Device::Cpu);
        let fc = nn::linear(&vs.root() / "fc", 4, 2, Default::default());
        tch::no_grad(|| {
            let _ = fc.ws.shallow_clone().zero_();
            let _ = fc.bs.as_ref().unwrap().shallow_clone().zero_();
        });
        let m = Staged::new(1, 2, Device::Cpu)
            .leaf("flat", nn::func(|xs| xs.flatten(1, -1)))
            .leaf("fc", fc);
        let mut vs = vs;
        let cfg = TrainConfig {
            epochs: 30,
            batch_size: 16,
            lr: 0.3,
            verbose: false,
            penalty,
            ..Default::default()
        };
        let h = fit(
            &m,
            &mut vs,
            &FitData::new(&data).with_irrelevant(&cue),
            &cfg,
            &mut [],
        )
        .unwrap();
        let sal = Saliency::default()
            .attribute(
                &m,
                &data.images,
                &Target::PerSample(Vec::<i64>::try_from(&data.labels).unwrap()),
            )
            .unwrap();
        let shares = mass_shares(&sal, &cue).unwrap();
        (
            shares.iter().sum::<f64>() / shares.len() as f64,
            h.last().unwrap().train_accuracy,
        )
    };
    let (biased, _) = cue_mass(None);
    let (fixed, acc) = cue_mass(Some(InputGradientPenalty {
        weight: 10.0,
        region: IrrelevantRegion::Given,
        score: PenaltyScore::CentredTrueClassLogit,
        enabled: true,
    }));
    assert!(
        biased > 0.4,
        "without the penalty the cue should dominate: {biased}"
    );
    assert!(fixed < 0.5 * biased, "penalised {fixed} vs biased {biased}");
    // The shape pixel alone still separates most of the data.
    assert!(acc > 0.7, "accuracy with the penalty {acc}");
}

#[test]
fn the_penalty_trains_a_zoo_cnn_outside_the_object() {
    let cfg = ShapesConfig {
        image_size: 16,
        train: 12,
        val: 0,
        test: 6,
        ..Default::default()
    };
    let splits = shapes::generate(&cfg).unwrap();
    let vs = nn::VarStore::new(Device::Cpu);
    let model = ZooConfig {
        arch: Arch::SmallCnn,
        ..Default::default()
    }
    .build(&vs.root())
    .unwrap();
    let mut vs = vs;
    let train = TrainConfig {
        epochs: 1,
        batch_size: 6,
        verbose: false,
        penalty: Some(InputGradientPenalty::default()),
        ..Default::default()
    };
    let h = fit(&model, &mut vs, &FitData::new(&splits.train), &train, &mut []).unwrap();
    let p = h.epochs[0].penalty.unwrap();
    assert!(p.mean.is_finite() && p.mean > 0.0, "{p:?}");
}

#[test]
fn errors_name_what_is_missing() {
    let data = small_data(8);
    let (mut vs, m) = linear(1);
    let mut cfg = one_step(PenaltyScore::SumLogProbabilities, 1.0);
    // Given without masks.
    let err = fit(&m, &mut vs, &FitData::new(&data), &cfg, &mut []).unwrap_err();
    assert!(err.to_string().contains("with_irrelevant"), "{err}");
    // Outside the object on a dataset without object masks.
    cfg.penalty.as_mut().unwrap().region = IrrelevantRegion::OutsideObject;
    let err = fit(&m, &mut vs, &FitData::new(&data), &cfg, &mut []).unwrap_err();
    assert!(err.to_string().contains("object masks"), "{err}");
    // Augmentation: the masks would not follow the crops.
    cfg.penalty.as_mut().unwrap().region = IrrelevantRegion::Given;
    let masks = corners(6);
    let flip = |xs: &Tensor, _: &mut Rng| -> cnn_explain::Result<Tensor> { Ok(xs.flip([3])) };
    let err = fit(
        &m,
        &mut vs,
        &FitData::new(&data).with_irrelevant(&masks).with_augment(&flip),
        &cfg,
        &mut [],
    )
    .unwrap_err();
    assert!(err.to_string().contains("augmentation"), "{err}");
    // Masks of the wrong shape.
    let wrong = corners(5);
    let err = fit(
        &m,
        &mut vs,
        &FitData::new(&data).with_irrelevant(&wrong),
        &cfg,
        &mut [],
    )
    .unwrap_err();
    assert!(err.to_string().contains("[6, 1, 2, 2]"), "{err}");
    // A negative weight.
    cfg.penalty.as_mut().unwrap().weight = -1.0;
    let err = fit(
        &m,
        &mut vs,
        &FitData::new(&data).with_irrelevant(&masks),
        &cfg,
        &mut [],
    )
    .unwrap_err();
    assert!(err.to_string().contains("penalty.weight"), "{err}");
}

#[test]
fn config_and_records_round_trip_and_old_json_loads() {
    let cfg = TrainConfig {
        penalty: Some(InputGradientPenalty {
            weight: 3.0,
            enabled: false,
            region: IrrelevantRegion::Given,
            score: PenaltyScore::TrueClassLogProbability,
        }),
        ..Default::default()
    };
    let json = serde_json::to_string(&cfg).unwrap();
    assert!(json.contains("\"true_class_log_probability\""), "{json}");
    assert_eq!(serde_json::from_str::<TrainConfig>(&json).unwrap(), cfg);
    // A config and a record written before the penalty existed still load, without one.
    let old = serde_json::to_string(&TrainConfig::default()).unwrap();
    assert!(!old.contains("penalty"));
    assert_eq!(serde_json::from_str::<TrainConfig>(&old).unwrap().penalty, None);
    let rec = r#"{"epoch":1,"lr":0.1,"train_loss":1.0,"train_accuracy":0.5,"val_loss":null,
        "val_accuracy":null,"test_loss":null,"test_accuracy":null,"confusion":null,"tracked":null,
        "seconds":0.0}"#;
    let rec: EpochRecord = serde_json::from_str(rec).unwrap();
    assert_eq!(rec.penalty, None);
}

#[test]
fn evolution_probe_records_maps_and_mass_shares() {
    let data = shortcut_data(16, 2);
    let vs = nn::VarStore::new(Device::Cpu);
    let m = Staged::new(1, 2, Device::Cpu)
        .leaf("flat", nn::func(|xs| xs.flatten(1, -1)))
        .leaf("fc", nn::linear(&vs.root() / "fc", 4, 2, Default::default()));
    let mut vs = vs;
    let fixed = data.images.narrow(0, 0, 2);
    let mut probe = evolution_probe("evo", &fixed, &[0, 1], vec![Box::new(Saliency::default())]).unwrap();
    let cfg = TrainConfig {
        epochs: 3,
        batch_size: 8,
        verbose: false,
        ..Default::default()
    };
    let h = fit(&m, &mut vs, &FitData::new(&data), &cfg, &mut [&mut probe]).unwrap();
    let evo = ExplanationEvolution::from_history(&h, "evo").unwrap();
    assert_eq!(evo.epochs, [1, 2, 3]);
    assert_eq!((evo.height, evo.width, evo.images()), (2, 2, 2));
    // A linear model's |saliency| of class y is |W_y| (the same for every image): the last
    // frame is the final weights scaled to a maximum of 1.
    let (w, _) = weights(&vs);
    for (i, y) in [0usize, 1].iter().enumerate() {
        let max = w[*y].iter().fold(0f64, |a, v| a.max(v.abs()));
        let want: Vec<f64> = w[*y].iter().map(|v| v.abs() / max).collect();
        let got = evo.map(2, 0, i).unwrap();
        for (g, t) in got.iter().zip(&want) {
            assert!((*g as f64 - t).abs() < 1e-3, "{got:?} vs {want:?}");
        }
    }
    let region = vec![0f32, 0., 0., 1.];
    let shares = evo.mass_shares(0, &[region.clone(), region.clone()]).unwrap();
    let last = evo.map(2, 0, 0).unwrap();
    let want = last[3] as f64 / last.iter().map(|v| *v as f64).sum::<f64>();
    assert!((shares[2][0] - want).abs() < 1e-9);
    // serde round trip, a missing probe, the strip.
    let json = serde_json::to_string(&evo).unwrap();
    assert_eq!(serde_json::from_str::<ExplanationEvolution>(&json).unwrap(), evo);
    assert!(ExplanationEvolution::from_history(&h, "nope")
        .unwrap_err()
        .to_string()
        .contains("evolution_probe"));
    let imgs = vec![cnn_explain::image::RgbImage::new(2, 2); 2];
    let strip = evolution_strip(&evo, 0, &imgs, Some(&[region.clone(), region]), "cue", &[]).unwrap();
    assert_eq!(strip.cells.len(), 2);
    assert_eq!(strip.cells[0].len(), 4);
    let svg = strip.figure().to_svg().unwrap();
    assert!(
        svg.contains("epoch 3") && svg.contains("cue "),
        "strip text missing"
    );
    assert!(evolution_strip(&evo, 1, &[], None, "cue", &[]).is_err());
}
