//! One experiment of the bias-detection notebook's search for a penalty setting that removes the
//! spurious-cue shortcut: trains the default small CNN on the shapes with a corner cue, with an
//! optional Right-for-the-Right-Reasons penalty, and prints the accuracy on the three test sets
//! (cue as in training, no cue, wrong cue) after every epoch and the cue mass of saliency and
//! Grad-CAM at the end, as one `ROW` line.
//!
//! `cargo run --example bias_penalty_sweep -- KEY=VALUE ...` with keys (defaults in brackets):
//! `n` training images [1200], `size` image size [48], `epochs` [10], `lr` [0.003],
//! `fraction` of training images with the cue [0.9] (the test sets always use 0.9),
//! `lambda` penalty weight [0 = none], `score` sum | true | centred [sum],
//! `region` corners | cue | outside [corners] (`cue`: the true cue patch of each image only),
//! `margin` pixels around the corner patches [1], `warmup` epochs before the penalty is switched
//! on [0], `lambda0` first weight, ten times more each epoch up to `lambda` [0 = no ramp], `seed` [0].
use cnn_explain::attribution::cam::GradCam;
use cnn_explain::attribution::gradient::Saliency;
use cnn_explain::data::shapes::{self, CueInTest, CueLayout, ShapesConfig, SpuriousCue};
use cnn_explain::models::ZooConfig;
use cnn_explain::prelude::*;
use cnn_explain::train::{
    cue_corners, mass_shares, Callback, Context, Control, InputGradientPenalty, IrrelevantRegion, Optimizer,
    PenaltyScore,
};
use std::collections::HashMap;
use tch::nn;

/// Switches the penalty on at epoch `warmup + 1` and prints the three test accuracies every epoch.
struct Watch<'a> {
    warmup: usize,
    lambda0: f64,
    penalty: Option<InputGradientPenalty>,
    tests: &'a [(String, Dataset, CueLayout)],
    accs: Vec<f64>,
}

impl Callback for Watch<'_> {
    fn penalty(
        &mut self,
        epoch: usize,
        _current: Option<&InputGradientPenalty>,
    ) -> Option<InputGradientPenalty> {
        if epoch > self.warmup {
            // From `lambda0`, ten times more every epoch, up to the full weight.
            let j = (epoch - self.warmup - 1) as i32;
            self.penalty.map(|p| InputGradientPenalty {
                weight: if self.lambda0 > 0.0 {
                    (self.lambda0 * 10f64.powi(j)).min(p.weight)
                } else {
                    p.weight
                },
                ..p
            })
        } else {
            None
        }
    }

    fn on_epoch_end(&mut self, ctx: &mut Context<'_>) -> Result<Control> {
        self.accs.clear();
        for (_, d, _) in self.tests {
            self.accs.push(evaluate(ctx.model, d, 256)?.accuracy);
        }
        let r = ctx.record()?;
        println!(
            "  epoch {:>2}: train CE {:.3}, penalty {}, acc cue/no cue/wrong cue {:.1} / {:.1} / {:.1}",
            r.epoch,
            r.train_loss,
            r.penalty.map(|p| format!("{:.4}", p.mean)).unwrap_or("-".into()),
            100.0 * self.accs[0],
            100.0 * self.accs[1],
            100.0 * self.accs[2]
        );
        Ok(Control::Continue)
    }
}

fn main() -> Result<()> {
    let mut args: HashMap<String, String> = HashMap::new();
    for a in std::env::args().skip(1) {
        let (k, v) = a
            .split_once('=')
            .ok_or_else(|| Error::invalid("argument", format!("`{a}` is not KEY=VALUE")))?;
        args.insert(k.to_string(), v.to_string());
    }
    let get = |k: &str, d: &str| args.get(k).cloned().unwrap_or_else(|| d.to_string());
    let num = |k: &str, d: &str| -> Result<f64> {
        get(k, d)
            .parse::<f64>()
            .map_err(|_| Error::invalid(k, format!("`{}` is not a number", get(k, d))))
    };
    let n = num("n", "1200")? as usize;
    let size = num("size", "48")? as i64;
    let epochs = num("epochs", "10")? as usize;
    let lr = num("lr", "0.003")?;
    let fraction = num("fraction", "0.9")?;
    let lambda = num("lambda", "0")?;
    let margin = num("margin", "1")? as i64;
    let warmup = num("warmup", "0")? as usize;
    let lambda0 = num("lambda0", "0")?;
    let seed = num("seed", "0")? as u64;
    let score = match get("score", "sum").as_str() {
        "sum" => PenaltyScore::SumLogProbabilities,
        "true" => PenaltyScore::TrueClassLogProbability,
        "centred" => PenaltyScore::CentredTrueClassLogit,
        s => {
            return Err(Error::invalid(
                "score",
                format!("`{s}`; expected sum, true or centred"),
            ))
        }
    };
    let region_name = get("region", "corners");

    let cue = SpuriousCue {
        fraction: 0.9,
        size: 6,
        test: CueInTest::Same,
    };
    let base = ShapesConfig {
        image_size: size,
        train: n,
        val: 200,
        test: 300,
        seed,
        spurious: Some(cue),
        ..ShapesConfig::default()
    };
    let mut tests: Vec<(String, Dataset, CueLayout)> = Vec::new();
    for (name, mode) in [
        ("same", CueInTest::Same),
        ("none", CueInTest::Absent),
        ("wrong", CueInTest::Shuffled),
    ] {
        let cfg = ShapesConfig {
            spurious: Some(SpuriousCue { test: mode, ..cue }),
            ..base.clone()
        };
        let (splits, cues) = shapes::generate_with_cues(&cfg)?;
        tests.push((name.to_string(), splits.test, cues.test));
    }
    let train_cfg = ShapesConfig {
        spurious: Some(SpuriousCue { fraction, ..cue }),
        ..base.clone()
    };
    let (splits, cues) = shapes::generate_with_cues(&train_cfg)?;
    let (region, masks) = match region_name.as_str() {
        "corners" => (IrrelevantRegion::Given, Some(cue_corners(&base, n, margin)?)),
        "cue" => (IrrelevantRegion::Given, Some(cues.train.masks.shallow_clone())),
        "outside" => (IrrelevantRegion::OutsideObject, None),
        r => {
            return Err(Error::invalid(
                "region",
                format!("`{r}`; expected corners, cue or outside"),
            ))
        }
    };
    let penalty = (lambda > 0.0).then_some(InputGradientPenalty {
        weight: lambda,
        enabled: true,
        region,
        score,
    });

    tch::manual_seed(seed as i64);
    let mut vs = nn::VarStore::new(default_device());
    let model = ZooConfig::default().build(&vs.root())?;
    let cfg = TrainConfig {
        epochs,
        batch_size: 32,
        optimizer: Optimizer::Adam { weight_decay: 0.0 },
        lr,
        seed,
        verbose: false,
        penalty,
        ..TrainConfig::default()
    };
    let mut data = FitData::new(&splits.train).with_val(&splits.val);
    if let Some(m) = &masks {
        data = data.with_irrelevant(m);
    }
    let mut watch = Watch {
        warmup,
        lambda0,
        penalty,
        tests: &tests,
        accs: Vec::new(),
    };
    let history = fit(&model, &mut vs, &data, &cfg, &mut [&mut watch])?;

    let (_, d, c) = &tests[2];
    let with_cue: Vec<i64> = Vec::<i64>::try_from(&c.classes)?
        .iter()
        .enumerate()
        .filter(|&(_, &k)| k >= 0)
        .map(|(i, _)| i as i64)
        .collect();
    let xs = d.subset(&with_cue)?.images.to_device(model.device());
    let cue_masks = c.masks.index_select(0, &Tensor::from_slice(&with_cue));
    let sal = Saliency::default().attribute(&model, &xs, &Target::Predicted)?;
    let cam = GradCam::new("block3").attribute(&model, &xs, &Target::Predicted)?;
    let mean = |v: Vec<f64>| v.iter().sum::<f64>() / v.len().max(1) as f64;
    let (s, g) = (
        mean(mass_shares(&sal, &cue_masks)?),
        mean(mass_shares(&cam, &cue_masks)?),
    );
    let last = history.epochs.last();
    let seconds: f64 = history.epochs.iter().map(|e| e.seconds).sum();
    println!(
        "ROW | n {n} size {size} epochs {epochs} lr {lr} fraction {fraction} | lambda {lambda} {} {region_name} margin {margin} warmup {warmup} lambda0 {lambda0} | CE {:.3} penalty {} | {:.1} / {:.1} / {:.1} | sal {:.1}% cam {:.1}% | {seconds:.0} s",
        get("score", "sum"),
        last.map(|e| e.train_loss).unwrap_or(f64::NAN),
        last.and_then(|e| e.penalty).map(|p| format!("{:.4}", p.mean)).unwrap_or("-".into()),
        100.0 * watch.accs[0],
        100.0 * watch.accs[1],
        100.0 * watch.accs[2],
        100.0 * s,
        100.0 * g
    );
    Ok(())
}
