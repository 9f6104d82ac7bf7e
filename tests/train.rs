//! Training and evaluation on a tiny linear model over 2x2 one-channel images.

use cnn_explain::eval::{self, evolution, most_unstable, top_k, ConfusionMatrix};
use cnn_explain::prelude::*;
use cnn_explain::rng::Rng;
use cnn_explain::train::{
    fit, resume, Callback, Checkpoint, Context, Control, EarlyStopping, EpochRecord, FitData, History,
    Metric, Optimizer, Probe, Schedule, TrackedEpoch, TrackedSet, TrainConfig,
};
use tch::nn;

const K: i64 = 3;

/// A linear classifier `[N, 1, 2, 2] -> [N, 3]` with weights drawn from `Rng::new(seed)`.
fn model(seed: u64) -> (nn::VarStore, Staged) {
    let vs = nn::VarStore::new(Device::Cpu);
    let fc = nn::linear(&vs.root() / "fc", 4, K, Default::default());
    let mut rng = Rng::new(seed);
    tch::no_grad(|| {
        fc.ws
            .shallow_clone()
            .copy_(&(rng.normal_tensor(&[K, 4], Device::Cpu) * 0.1));
        fc.bs
            .as_ref()
            .unwrap()
            .shallow_clone()
            .copy_(&(rng.normal_tensor(&[K], Device::Cpu) * 0.1));
    });
    let m = Staged::new(1, K, Device::Cpu)
        .leaf("flat", nn::func(|xs| xs.flatten(1, -1)))
        .leaf("fc", fc);
    (vs, m)
}

/// Class c lights pixel c; noise is small, so the classes are linearly separable.
fn data(n: usize, seed: u64) -> Dataset {
    let mut rng = Rng::new(seed);
    let labels: Vec<i64> = (0..n).map(|i| (i as i64) % K).collect();
    let mut px = Vec::with_capacity(n * 4);
    for &y in &labels {
        for p in 0..4 {
            let base = if p == y { 0.9 } else { 0.1 };
            px.push((base + 0.1 * rng.range(-1.0, 1.0)) as f32);
        }
    }
    let images = Tensor::from_slice(&px).reshape([n as i64, 1, 2, 2]);
    Dataset::new(
        images,
        Tensor::from_slice(&labels),
        vec!["a".into(), "b".into(), "c".into()],
        None,
    )
    .unwrap()
}

fn cfg(epochs: usize) -> TrainConfig {
    TrainConfig {
        epochs,
        batch_size: 8,
        lr: 0.5,
        schedule: Schedule::Constant,
        optimizer: Optimizer::Sgd {
            momentum: 0.9,
            weight_decay: 1e-4,
            nesterov: false,
        },
        seed: 3,
        verbose: false,
        ..Default::default()
    }
}

fn weights(vs: &nn::VarStore) -> Vec<(String, Vec<f32>)> {
    let mut v: Vec<_> = vs
        .variables()
        .into_iter()
        .map(|(n, t)| (n, Vec::<f32>::try_from(t.flatten(0, -1)).unwrap()))
        .collect();
    v.sort_by(|a, b| a.0.cmp(&b.0));
    v
}

fn losses(h: &History) -> Vec<f64> {
    h.train_losses()
}

#[test]
fn tiny_model_learns_and_same_seed_gives_same_history() {
    let (train, test) = (data(60, 1), data(30, 2));
    let run = |seed: u64| {
        let (mut vs, m) = model(7);
        let c = TrainConfig { seed, ..cfg(6) };
        let h = fit(&m, &mut vs, &FitData::new(&train).with_test(&test), &c, &mut []).unwrap();
        (h, weights(&vs))
    };
    let (h1, w1) = run(3);
    let (h2, w2) = run(3);
    let (h3, _) = run(4);
    let last = h1.last().unwrap();
    assert_eq!(last.test_accuracy, Some(1.0), "{:?}", losses(&h1));
    assert_eq!(last.train_accuracy, 1.0);
    assert!(
        h1.epochs[0].train_loss > 2.0 * last.train_loss,
        "{:?}",
        losses(&h1)
    );
    assert_eq!(losses(&h1), losses(&h2));
    assert_eq!(w1, w2);
    assert_eq!(h1.last().unwrap().tracked, h2.last().unwrap().tracked);
    assert_ne!(losses(&h1), losses(&h3), "another seed shuffles differently");
    // Tracked set = test set by default: 30 samples, confusion on them, labels recorded.
    let t = last.tracked.as_ref().unwrap();
    assert_eq!(t.predicted.len(), 30);
    assert_eq!(h1.tracked_labels.len(), 30);
    assert_eq!(last.confusion.as_ref().unwrap().total(), 30);
    // The per-sample record agrees with evaluate() on the final weights.
    assert!(t.true_prob.iter().all(|&p| p > 0.5));
    for (l, p) in t.loss.iter().zip(&t.true_prob) {
        assert!((l - (-p.ln())).abs() < 1e-5);
    }
}

#[test]
fn resume_after_epoch_two_matches_uninterrupted_run() {
    let (train, val) = (data(30, 5), data(12, 6));
    for opt in [
        Optimizer::Sgd {
            momentum: 0.9,
            weight_decay: 1e-3,
            nesterov: true,
        },
        Optimizer::Adam { weight_decay: 1e-3 },
    ] {
        let c = TrainConfig {
            optimizer: opt,
            lr: 0.05,
            schedule: Schedule::Cosine { min_lr: 0.001 },
            ..cfg(4)
        };
        let d = FitData::new(&train).with_val(&val).with_test(&val);
        let (mut vs, m) = model(11);
        let full = fit(&m, &mut vs, &d, &c, &mut []).unwrap();
        let want = weights(&vs);

        // Interrupted run: stops after epoch 2 (a crash after the checkpoint was written).
        struct StopAt(usize);
        impl Callback for StopAt {
            fn on_epoch_end(&mut self, ctx: &mut Context<'_>) -> cnn_explain::Result<Control> {
                Ok(if ctx.record()?.epoch == self.0 {
                    Control::Stop
                } else {
                    Control::Continue
                })
            }
        }
        let dir = tempfile::tempdir().unwrap();
        let hist_path = dir.path().join("history.json");
        let c2 = TrainConfig {
            history_path: Some(hist_path.clone()),
            ..c.clone()
        };
        let (mut vs2, m2) = model(11);
        let mut ck = Checkpoint::new(dir.path());
        let part = fit(&m2, &mut vs2, &d, &c2, &mut [&mut ck, &mut StopAt(2)]).unwrap();
        assert_eq!(part.epochs.len(), 2);
        assert!(part.stopped_early);

        // A fresh process: other initial weights, history read from disk.
        let (mut vs3, m3) = model(99);
        let history = History::load(&hist_path).unwrap();
        let resumed = resume(&m3, &mut vs3, &d, &c2, ck.state_path(), history, &mut []).unwrap();
        assert_eq!(weights(&vs3), want, "{opt:?}");
        assert_eq!(resumed.epochs.len(), 4);
        assert_eq!(losses(&resumed), losses(&full));
        assert_eq!(resumed.epochs[3].tracked, full.epochs[3].tracked);
        assert!(!resumed.stopped_early);
    }
}

#[test]
fn checkpoints_are_complete_and_early_stopping_restores_the_best() {
    let (train, val) = (data(30, 8), data(12, 9));
    let dir = tempfile::tempdir().unwrap();
    // A large lr makes the validation loss bounce, so the best epoch is not the last one.
    let c = TrainConfig { lr: 3.0, ..cfg(8) };
    let (mut vs, m) = model(1);
    let mut ck = Checkpoint::new(dir.path());
    let mut es = EarlyStopping::new(Metric::ValLoss, 100);
    let h = fit(
        &m,
        &mut vs,
        &FitData::new(&train).with_val(&val),
        &c,
        &mut [&mut ck, &mut es],
    )
    .unwrap();
    let vals: Vec<f64> = h.val_losses().into_iter().map(|v| v.unwrap()).collect();
    let best = (0..vals.len())
        .min_by(|&a, &b| vals[a].total_cmp(&vals[b]))
        .unwrap();
    assert_eq!(es.best_epoch(), Some(best + 1));
    assert_eq!(es.best(), Some(vals[best]));
    // The restored weights are the best checkpoint's, which evaluate to the recorded best loss.
    let (mut vs_best, m_best) = model(2);
    vs_best.load(dir.path().join(Checkpoint::BEST)).unwrap();
    assert_eq!(weights(&vs), weights(&vs_best));
    let ev = eval::evaluate(&m_best, &val, 5).unwrap();
    assert!(
        (ev.loss - vals[best]).abs() < 1e-6,
        "{} vs {}",
        ev.loss,
        vals[best]
    );
    // last.safetensors holds the final epoch's weights: its val loss is the last one recorded.
    let (mut vs_last, m_last) = model(2);
    vs_last.load(dir.path().join(Checkpoint::LAST)).unwrap();
    let ev = eval::evaluate(&m_last, &val, 64).unwrap();
    assert!((ev.loss - vals[vals.len() - 1]).abs() < 1e-6);
    // Exactly the three files, no temporaries left behind.
    let mut names: Vec<String> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    assert_eq!(names, [Checkpoint::BEST, Checkpoint::LAST, Checkpoint::STATE]);
}

fn record(epoch: usize, val_loss: f64, val_acc: f64) -> EpochRecord {
    EpochRecord {
        epoch,
        lr: 0.1,
        train_loss: 1.0,
        train_accuracy: 0.5,
        val_loss: Some(val_loss),
        val_accuracy: Some(val_acc),
        test_loss: None,
        test_accuracy: None,
        confusion: None,
        tracked: None,
        seconds: 0.0,
        probes: Default::default(),
        penalty: None,
    }
}

#[test]
fn early_stopping_stops_at_the_right_epoch() {
    // Losses: best at epoch 3 (0.5); epochs 4, 5 do not improve by more than min_delta 0.05
    // (0.47 is an improvement of 0.03 only); patience 2 -> stop at epoch 5.
    let seq = [1.0, 0.7, 0.5, 0.47, 0.6, 0.3];
    let mut es = EarlyStopping::new(Metric::ValLoss, 2)
        .min_delta(0.05)
        .restore_best(false);
    let (mut vs, m) = model(0);
    let mut h = History::new(TrainConfig::default(), vec![], vec![]);
    let opt = Default::default();
    let mut stopped = None;
    for (i, &v) in seq.iter().enumerate() {
        h.epochs.push(record(i + 1, v, 0.0));
        let mut ctx = Context {
            model: &m,
            vs: &mut vs,
            history: &mut h,
            optimizer: &opt,
        };
        if es.on_epoch_end(&mut ctx).unwrap() == Control::Stop {
            stopped = Some(i + 1);
            break;
        }
    }
    assert_eq!(stopped, Some(5));
    assert_eq!((es.best_epoch(), es.best()), (Some(3), Some(0.5)));

    // Accuracy goes up: patience 1 stops at the first epoch without a gain.
    let mut es = EarlyStopping::new(Metric::ValAccuracy, 1);
    let ctl: Vec<Control> = [0.5, 0.6, 0.6]
        .iter()
        .enumerate()
        .map(|(i, &a)| es.observe(i + 1, a))
        .collect();
    assert_eq!(ctl, [Control::Continue, Control::Continue, Control::Stop]);

    // Monitoring the validation loss without a validation set is an error that says so.
    let mut h = History::new(TrainConfig::default(), vec![], vec![]);
    h.epochs.push(EpochRecord {
        val_loss: None,
        ..record(1, 0.0, 0.0)
    });
    let mut ctx = Context {
        model: &m,
        vs: &mut vs,
        history: &mut h,
        optimizer: &opt,
    };
    let err = EarlyStopping::default().on_epoch_end(&mut ctx).unwrap_err();
    assert!(err.to_string().contains("validation set"), "{err}");
}

#[test]
fn history_file_round_trips_and_probes_are_recorded() {
    let (train, test) = (data(21, 3), data(9, 4));
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("sub/history.json");
    let c = TrainConfig {
        history_path: Some(path.clone()),
        ..cfg(3)
    };
    let (mut vs, m) = model(5);
    let mut probe = Probe::new("bias0", |model: &dyn Model, epoch| {
        let x = Tensor::zeros([1, 1, 2, 2], (Kind::Float, Device::Cpu));
        let b = model.logits(&x)?.double_value(&[0, 0]);
        Ok(serde_json::json!({ "epoch": epoch, "logit": b }))
    })
    .every(2);
    let h = fit(
        &m,
        &mut vs,
        &FitData::new(&train).with_test(&test),
        &c,
        &mut [&mut probe],
    )
    .unwrap();
    let back = History::load(&path).unwrap();
    assert_eq!(back, h);
    assert_eq!(
        serde_json::to_string(&back).unwrap(),
        serde_json::to_string(&h).unwrap()
    );
    assert!(h.epochs[0].probes.is_empty());
    assert_eq!(h.epochs[1].probes["bias0"]["epoch"], 2);
    assert!(h.epochs[2].probes.is_empty());
    assert_eq!(h.config, c);
    // 21 images, batch 8: batches of 8, 8, 5.
    assert_eq!(h.epochs.len(), 3);
    // Schedule shows in the records.
    assert!(h.epochs.iter().all(|e| e.lr == 0.5));
}

#[test]
fn bad_inputs_are_errors_not_panics() {
    let train = data(12, 1);
    let (mut vs, m) = model(0);
    let d = FitData::new(&train);
    let err = |c: TrainConfig, d: &FitData, vs: &mut nn::VarStore| {
        fit(&m, vs, d, &c, &mut []).unwrap_err().to_string()
    };
    assert!(err(
        TrainConfig {
            batch_size: 0,
            ..cfg(1)
        },
        &d,
        &mut vs
    )
    .contains("batch_size"));
    assert!(err(TrainConfig { epochs: 0, ..cfg(1) }, &d, &mut vs).contains("epochs"));
    assert!(err(
        TrainConfig {
            lr: f64::NAN,
            ..cfg(1)
        },
        &d,
        &mut vs
    )
    .contains("lr"));
    let empty = Dataset::new(
        Tensor::zeros([0, 1, 2, 2], (Kind::Float, Device::Cpu)),
        Tensor::zeros([0], (Kind::Int64, Device::Cpu)),
        vec!["a".into(), "b".into(), "c".into()],
        None,
    )
    .unwrap();
    assert!(err(cfg(1), &FitData::new(&empty), &mut vs).contains("empty"));
    let two = Dataset::new(
        train.images.shallow_clone(),
        train.labels.remainder(2),
        vec!["a".into(), "b".into()],
        None,
    )
    .unwrap();
    let e = err(cfg(1), &FitData::new(&two), &mut vs);
    assert!(e.contains("2 classes") && e.contains("outputs 3"), "{e}");
    let rgb = Dataset::new(
        train.images.repeat([1, 3, 1, 1]),
        train.labels.shallow_clone(),
        train.class_names.clone(),
        None,
    )
    .unwrap();
    assert!(matches!(
        fit(&m, &mut vs, &FitData::new(&rgb), &cfg(1), &mut []),
        Err(Error::Shape { .. })
    ));
    assert!(err(cfg(1), &FitData::new(&train).with_test(&empty), &mut vs).contains("test"));
    assert!(err(
        TrainConfig {
            device: Some(Device::Cuda(0)),
            ..cfg(1)
        },
        &d,
        &mut vs
    )
    .contains("device"));
    // Diverging training is an error, not a history of NaNs.
    let huge = Dataset::new(
        &train.images * 1e30,
        train.labels.shallow_clone(),
        train.class_names.clone(),
        None,
    )
    .unwrap();
    assert!(err(TrainConfig { lr: 1e30, ..cfg(2) }, &FitData::new(&huge), &mut vs).contains("diverged"));
    // Resuming from a missing file or a model that does not match.
    let dir = tempfile::tempdir().unwrap();
    let h = History::new(cfg(1), vec![], vec![]);
    assert!(matches!(
        resume(
            &m,
            &mut vs,
            &d,
            &cfg(2),
            dir.path().join("none"),
            h.clone(),
            &mut []
        ),
        Err(Error::Io { .. })
    ));
    let mut ck = Checkpoint::new(dir.path()).monitor(Metric::TrainLoss);
    let (mut vs0, m0) = model(0);
    let h = fit(&m0, &mut vs0, &d, &cfg(1), &mut [&mut ck]).unwrap();
    let vs_other = nn::VarStore::new(Device::Cpu);
    let other = Staged::new(1, K, Device::Cpu)
        .leaf("flat", nn::func(|xs| xs.flatten(1, -1)))
        .leaf(
            "head",
            nn::linear(&vs_other.root() / "head", 4, K, Default::default()),
        );
    let mut vs_other = vs_other;
    let e = resume(&other, &mut vs_other, &d, &cfg(2), ck.state_path(), h, &mut []).unwrap_err();
    assert!(
        matches!(e, Error::CheckpointMismatch { .. }) && e.to_string().contains("missing head.weight"),
        "{e}"
    );
}

#[test]
fn evaluate_and_top_k_match_hand_computed_softmax() {
    // logits = x . W^T with W picking pixels 0, 1, 2 (scaled by ln 2, ln 4 ...), bias 0.
    let vs = nn::VarStore::new(Device::Cpu);
    let fc = nn::linear(&vs.root() / "fc", 4, K, Default::default());
    tch::no_grad(|| {
        let w = Tensor::from_slice(&[1f32, 0., 0., 0., 0., 1., 0., 0., 0., 0., 1., 0.]).reshape([3, 4]);
        fc.ws.shallow_clone().copy_(&w);
        let _ = fc.bs.as_ref().unwrap().shallow_clone().zero_();
    });
    let m = Staged::new(1, K, Device::Cpu)
        .leaf("flat", nn::func(|xs| xs.flatten(1, -1)))
        .leaf("fc", fc);
    let (l2, l3) = (2f32.ln(), 3f32.ln());
    // Image 0: logits (0, ln2, ln3) -> probs (1/6, 2/6, 3/6); label 2 (right).
    // Image 1: logits (ln3, 0, 0) -> probs (3/5, 1/5, 1/5); label 1 (wrong, predicted 0).
    let xs = Tensor::from_slice(&[0f32, l2, l3, 0., l3, 0., 0., 0.]).reshape([2, 1, 2, 2]);
    let ds = Dataset::new(
        xs.shallow_clone(),
        Tensor::from_slice(&[2i64, 1]),
        vec!["a".into(), "b".into(), "c".into()],
        None,
    )
    .unwrap();
    let ev = eval::evaluate(&m, &ds, 1).unwrap();
    assert_eq!(ev.predicted, [2, 0]);
    assert_eq!(ev.misclassified(), [1]);
    let close = |a: f32, b: f64| (a as f64 - b).abs() < 1e-6;
    assert!(close(ev.true_prob[0], 0.5) && close(ev.true_prob[1], 0.2));
    assert!(close(ev.losses[0], 2f64.ln()) && close(ev.losses[1], 5f64.ln()));
    assert!((ev.loss - (2f64.ln() + 5f64.ln()) / 2.0).abs() < 1e-6);
    assert!(close(ev.margin[0], 1.0 / 6.0) && close(ev.margin[1], 0.4));
    assert!(close(ev.confidence[0], 0.5) && close(ev.confidence[1], 0.6));
    assert_eq!(ev.lowest_confidence(1), [0]);
    assert_eq!(ev.lowest_margin(2), [0, 1]);
    assert_eq!(ev.accuracy, 0.5);
    assert_eq!(ev.confusion.counts, [[0, 0, 0], [1, 0, 0], [0, 0, 1]]);
    let top = top_k(&m, &xs.get(0), 2).unwrap();
    assert_eq!(top.iter().map(|t| t.0).collect::<Vec<_>>(), [2, 1]);
    assert!((top[0].1 - 0.5).abs() < 1e-6 && (top[1].1 - 1.0 / 3.0).abs() < 1e-6);
    assert_eq!(top_k(&m, &xs.narrow(0, 1, 1), 10).unwrap().len(), 3);
    assert!(top_k(&m, &xs, 1).is_err(), "two images are not one");
    assert!(top_k(&m, &xs.get(0), 0).is_err());
    let p = eval::predict_proba(&m, &xs, 5).unwrap();
    assert!((p.double_value(&[1, 0]) - 0.6).abs() < 1e-6);
}

#[test]
fn evolution_statistics_by_hand() {
    let mut h = History::new(
        TrainConfig::default(),
        vec!["a".into(), "b".into(), "c".into()],
        vec![0, 1, 2],
    );
    // Predictions per epoch for samples (0, 1, 2):
    //   e1: 0 0 2   e2: 1 1 2   e3: 0 1 2   e4: 2 1 2
    for (e, p) in [[0, 0, 2], [1, 1, 2], [0, 1, 2], [2, 1, 2]].iter().enumerate() {
        let mut r = record(e + 1, 0.0, 0.0);
        r.tracked = Some(TrackedEpoch {
            predicted: p.to_vec(),
            true_prob: vec![0.5; 3],
            loss: vec![0.7; 3],
        });
        r.confusion = Some(ConfusionMatrix::from_predictions(&[0, 1, 2], p, h.class_names.clone()).unwrap());
        h.epochs.push(r);
    }
    let ev = evolution(&h).unwrap();
    // Sample 0: 0 1 0 2 -> 3 changes / 3, classes {0,1,2}, wrong in 2 of 4.
    assert_eq!(
        (
            ev[0].change_frequency,
            ev[0].visited_classes,
            ev[0].misclassification_rate
        ),
        (1.0, 3, 0.5)
    );
    // Sample 1: 0 1 1 1 -> 1 change / 3, classes {0,1}, wrong 1 of 4.
    assert!((ev[1].change_frequency - 1.0 / 3.0).abs() < 1e-12);
    assert_eq!((ev[1].visited_classes, ev[1].misclassification_rate), (2, 0.25));
    assert_eq!(
        (
            ev[2].change_frequency,
            ev[2].visited_classes,
            ev[2].misclassification_rate
        ),
        (0.0, 1, 0.0)
    );
    assert_eq!(most_unstable(&h, 2).unwrap(), [0, 1]);
    assert_eq!(h.tracked_predictions().unwrap()[0], [0, 1, 0, 2]);
    // No tracked set: an error that says so.
    let mut none = h.clone();
    none.tracked_labels.clear();
    assert!(evolution(&none).unwrap_err().to_string().contains("tracked"));
    let mut c = cfg(1);
    c.tracked = TrackedSet::None;
    let (mut vs, m) = model(0);
    let train = data(9, 1);
    let h = fit(&m, &mut vs, &FitData::new(&train).with_test(&train), &c, &mut []).unwrap();
    assert!(h.epochs[0].tracked.is_none() && h.epochs[0].test_accuracy.is_some());
}
