//! Generated from `notebooks/src/bias-detection.txt` by `notebooks/src/spec2example.py`: the code of
//! `notebooks/bias-detection.ipynb`, cell by cell, with each figure saved to `target/nb-bias-detection/NN.png`.
//!
//! `CNN_EXPLAIN_CACHE=/work/main/.cache/models-full cargo run --example nb_bias_detection`
//! (`CNN_EXPLAIN_QUICK=1` for the quick mode).
#![allow(clippy::needless_range_loop)]
use cnn_explain::attribution::cam::GradCam;
use cnn_explain::attribution::gradient::Saliency;
use cnn_explain::data::shapes::{self, CueInTest, CueLayout, ShapesConfig, SpuriousCue};
use cnn_explain::notebook::{pick, train_or_load_with, DefaultRun, Trained};
use cnn_explain::prelude::*;
use cnn_explain::train::{
    cue_corners, evolution_probe, mass_shares, Callback, ExplanationEvolution, InputGradientPenalty,
    IrrelevantRegion, PenaltyScore,
};
use cnn_explain::viz::{
    evolution_strip, html_table, overlay, tensor_to_image, Colormap, Draw, ImageGrid, Normalization,
};

fn main() -> cnn_explain::Result<()> {
    let out = std::path::Path::new("target/nb-bias-detection");
    let cue = SpuriousCue {
        fraction: 0.9,
        size: 6,
        test: CueInTest::Same,
    };
    let base = ShapesConfig {
        image_size: 48,
        train: pick(1200, 400),
        val: pick(200, 100),
        test: pick(300, 150),
        // The cue on half of the training images.
        spurious: Some(SpuriousCue { fraction: 0.5, ..cue }),
        ..ShapesConfig::default()
    };
    // The same images without any cue, for the reference model.
    let clean = ShapesConfig {
        spurious: Some(SpuriousCue { fraction: 0.0, ..cue }),
        ..base.clone()
    };
    let epochs: usize = pick(10, 2);
    let mut tests: Vec<(String, Dataset, CueLayout)> = Vec::new();
    for (name, mode) in [
        ("cue of the true class", CueInTest::Same),
        ("no cue", CueInTest::Absent),
        ("cue of a wrong class", CueInTest::Shuffled),
    ] {
        let cfg = ShapesConfig {
            spurious: Some(SpuriousCue { test: mode, ..cue }),
            ..base.clone()
        };
        let (splits, cues) = shapes::generate_with_cues(&cfg)?;
        tests.push((name.to_string(), splits.test, cues.test));
    }
    let names = tests[0].1.class_names.clone();
    // Four fixed test images with a cue, of four classes: the probe watches them every epoch.
    let same_cues = Vec::<i64>::try_from(&tests[0].2.classes)?;
    let mut probe_idx: Vec<i64> = Vec::new();
    let mut seen = Vec::new();
    for (i, &c) in same_cues.iter().enumerate() {
        let y = tests[0].1.label(i)?;
        if c >= 0 && !seen.contains(&y) && probe_idx.len() < 4 {
            seen.push(y);
            probe_idx.push(i as i64);
        }
    }
    let probe_set = tests[0].1.subset(&probe_idx)?;
    let probe_labels = Vec::<i64>::try_from(&probe_set.labels)?;
    let probe_regions: Vec<Vec<f32>> = probe_idx
        .iter()
        .map(|&i| Vec::<f32>::try_from(tests[0].2.masks.get(i).view([-1])))
        .collect::<std::result::Result<_, _>>()?;
    let cue_area = tests[2].2.masks.sum(Kind::Float).double_value(&[])
        / (tests[2].2.classes.ge(0).sum(Kind::Float).double_value(&[]) * 48.0 * 48.0);
    println!(
        "{} training images of 48x48, {} epochs; the cue covers {:.1}% of an image",
        base.train,
        epochs,
        100.0 * cue_area
    );
    {
        let imgs: Vec<_> = (0..probe_set.len() as i64)
            .map(|i| tensor_to_image(&probe_set.images.get(i)))
            .collect::<Result<_>>()?;
        let mut g = ImageGrid::new(imgs, 4);
        g.titles = probe_labels.iter().map(|&y| names[y as usize].clone()).collect();
        g.title = "The four probe images (cue of the true class)".into();
        g.figure().save(out.join("01.png"))?;
    }

    /// The penalty's weight in epoch `e` (1-based): `min(full, first * 10^(e - 1))`.
    struct Ramp {
        first: f64,
        full: f64,
    }

    impl Callback for Ramp {
        fn penalty(
            &mut self,
            epoch: usize,
            current: Option<&InputGradientPenalty>,
        ) -> Option<InputGradientPenalty> {
            let weight = (self.first * 10f64.powi(epoch as i32 - 1)).min(self.full);
            current.map(|p| InputGradientPenalty { weight, ..*p })
        }
    }

    /// Trains (or loads) the small CNN on `base`; a `penalty` is ramped from `ramp_from` (when given)
    /// to its weight.
    fn train_run(
        base: &ShapesConfig,
        epochs: usize,
        penalty: Option<InputGradientPenalty>,
        ramp_from: Option<f64>,
        probe: &Dataset,
    ) -> Result<Trained> {
        let d = DefaultRun::default();
        let mut tag = "bias-detection: cue_corners(margin 1) + evolution probe".to_string();
        if let (Some(p), Some(first)) = (&penalty, ramp_from) {
            tag += &format!(" + ramp x10 per epoch from {first} to {}", p.weight);
        }
        let run = DefaultRun {
            shapes: base.clone(),
            train: TrainConfig {
                epochs,
                verbose: true,
                penalty,
                ..d.train.clone()
            },
            tag,
            ..d
        };
        let corners = cue_corners(base, base.train, 1)?;
        let labels = Vec::<i64>::try_from(&probe.labels)?;
        let mut probe = evolution_probe(
            "evolution",
            &probe.images,
            &labels,
            vec![Box::new(Saliency::default()), Box::new(GradCam::new("block3"))],
        )?;
        match (penalty, ramp_from) {
            (Some(p), Some(first)) => {
                let mut ramp = Ramp {
                    first,
                    full: p.weight,
                };
                train_or_load_with(&run, Some(&corners), &mut [&mut ramp, &mut probe])
            }
            _ => train_or_load_with(&run, Some(&corners), &mut [&mut probe]),
        }
    }

    /// Accuracy on each test set; mean cue mass of saliency and Grad-CAM (predicted class) on the
    /// wrong-cue test images that carry a cue.
    fn measure(t: &Trained, tests: &[(String, Dataset, CueLayout)]) -> Result<(Vec<f64>, f64, f64)> {
        let dev = t.model.device();
        let mut acc = Vec::new();
        for (_, d, _) in tests {
            acc.push(evaluate(&t.model, d, 256)?.accuracy);
        }
        let (_, d, c) = &tests[2];
        let with_cue: Vec<i64> = Vec::<i64>::try_from(&c.classes)?
            .iter()
            .enumerate()
            .filter(|&(_, &k)| k >= 0)
            .map(|(i, _)| i as i64)
            .collect();
        let xs = d.subset(&with_cue)?.images.to_device(dev);
        let masks = c.masks.index_select(0, &Tensor::from_slice(&with_cue));
        let sal = Saliency::default().attribute(&t.model, &xs, &Target::Predicted)?;
        let cam = GradCam::new("block3").attribute(&t.model, &xs, &Target::Predicted)?;
        let m = |v: Vec<f64>| v.iter().sum::<f64>() / v.len().max(1) as f64;
        Ok((acc, m(mass_shares(&sal, &masks)?), m(mass_shares(&cam, &masks)?)))
    }

    let reference = train_run(&clean, epochs, None, None, &probe_set)?;
    let biased = train_run(&base, epochs, None, None, &probe_set)?;
    let (r_acc, r_sal, r_cam) = measure(&reference, &tests)?;
    let (b_acc, b_sal, b_cam) = measure(&biased, &tests)?;
    let mut rows: Vec<Vec<String>> = Vec::new();
    for (((name, _, _), a), r) in tests.iter().zip(&b_acc).zip(&r_acc) {
        rows.push(vec![
            format!("accuracy, {name}"),
            format!("{:.1}%", 100.0 * a),
            format!("{:.1}%", 100.0 * r),
        ]);
    }
    rows.push(vec![
        "saliency mass on the cue (wrong-cue images)".into(),
        format!("{:.1}%", 100.0 * b_sal),
        format!("{:.1}%", 100.0 * r_sal),
    ]);
    rows.push(vec![
        "Grad-CAM mass on the cue (wrong-cue images)".into(),
        format!("{:.1}%", 100.0 * b_cam),
        format!("{:.1}%", 100.0 * r_cam),
    ]);
    rows.push(vec![
        "cue area (a uniform map's share)".into(),
        format!("{:.1}%", 100.0 * cue_area),
        format!("{:.1}%", 100.0 * cue_area),
    ]);
    for r in &rows {
        println!("{}: {} | {}", r[0], r[1], r[2]);
    }
    let _shown = html_table(
        &[
            "",
            "biased model (cue on half the training images)",
            "reference (no cue in training)",
        ],
        &rows,
    )?;

    let fig = {
        let dev = biased.model.device();
        let (_, d, c) = &tests[2];
        let cls = Vec::<i64>::try_from(&c.classes)?;
        let idx: Vec<i64> = (0..cls.len())
            .filter(|&i| cls[i] >= 0)
            .take(4)
            .map(|i| i as i64)
            .collect();
        let xs = d.subset(&idx)?.images.to_device(dev);
        let pred = Vec::<i64>::try_from(biased.model.logits(&xs)?.argmax(1, false))?;
        let sal = Normalization::default().normalize(&Saliency::default().attribute(
            &biased.model,
            &xs,
            &Target::Predicted,
        )?)?;
        let cam = GradCam::new("block3").attribute(&biased.model, &xs, &Target::Predicted)?;
        let mut imgs = Vec::new();
        let mut titles = Vec::new();
        for (k, &i) in idx.iter().enumerate() {
            let x = xs.get(k as i64);
            let y = d.label(i as usize)?;
            imgs.push(tensor_to_image(&x)?);
            titles.push(format!(
                "{} -> {}\ncue: {}",
                names[y as usize], names[pred[k] as usize], names[cls[i as usize] as usize]
            ));
            imgs.push(overlay(&x, &sal.get(k as i64), Colormap::Inferno, 0.7, false)?);
            titles.push("saliency".into());
            imgs.push(overlay(&x, &cam.get(k as i64), Colormap::Jet, 0.5, false)?);
            titles.push("Grad-CAM".into());
        }
        let mut g = ImageGrid::new(imgs, 6);
        g.titles = titles;
        g.cell = 120;
        g.title = "Biased model, test images with a wrong cue".into();
        g.figure()
    };
    fig.save(out.join("02.png"))?;

    // A block: evcxr cannot keep closures between cells.
    let runs: Vec<(String, Trained)> = {
        let given = |weight: f64, score: PenaltyScore| InputGradientPenalty {
            weight,
            enabled: true,
            region: IrrelevantRegion::Given,
            score,
        };
        // One variant (a penalised epoch costs three to five plain ones); more are one line each.
        let variants: Vec<(String, InputGradientPenalty, Option<f64>)> = vec![(
            "corners, centred logit, lambda 1 -> 10 -> 100".into(),
            given(100.0, PenaltyScore::CentredTrueClassLogit),
            Some(1.0),
        )];
        let mut runs: Vec<(String, Trained)> = Vec::new();
        for (name, p, ramp) in &variants {
            println!("== {name}");
            runs.push((
                name.clone(),
                train_run(&base, epochs, Some(*p), *ramp, &probe_set)?,
            ));
        }
        runs
    };

    // A block: evcxr cannot keep closures between cells; `measured` is owned.
    let measured: Vec<(String, Vec<f64>, f64, f64)> = {
        let pct = |v: f64| format!("{:.1}%", 100.0 * v);
        let secs = |t: &Trained| format!("{:.0}", t.history.epochs.iter().map(|e| e.seconds).sum::<f64>());
        let mut table = vec![
            vec![
                "reference: no cue in training".to_string(),
                "-".into(),
                pct(r_acc[0]),
                pct(r_acc[1]),
                pct(r_acc[2]),
                pct(r_sal),
                pct(r_cam),
                secs(&reference),
            ],
            vec![
                "no penalty (biased)".to_string(),
                "-".into(),
                pct(b_acc[0]),
                pct(b_acc[1]),
                pct(b_acc[2]),
                pct(b_sal),
                pct(b_cam),
                secs(&biased),
            ],
        ];
        let mut measured = Vec::new();
        for (name, t) in &runs {
            let (acc, sal, cam) = measure(t, &tests)?;
            let pen = t
                .history
                .last()
                .and_then(|e| e.penalty)
                .map(|p| format!("{:.3}", p.mean))
                .unwrap_or("-".into());
            table.push(vec![
                name.clone(),
                pen,
                pct(acc[0]),
                pct(acc[1]),
                pct(acc[2]),
                pct(sal),
                pct(cam),
                format!("{:.0}", t.history.epochs.iter().map(|e| e.seconds).sum::<f64>()),
            ]);
            measured.push((name.clone(), acc, sal, cam));
        }
        for r in &table {
            println!("{}", r.join(" | "));
        }
        let headers = [
            "run",
            "penalty (last epoch)",
            "acc. true-class cue",
            "acc. no cue",
            "acc. wrong cue",
            "saliency on cue",
            "Grad-CAM on cue",
            "training s",
        ];
        html_table(&headers, &table)?.show();
        measured
    };

    let fig = {
        let best = measured
            .iter()
            .enumerate()
            .max_by(|a, b| a.1 .1[1].total_cmp(&b.1 .1[1]))
            .map(|(i, _)| i)
            .unwrap_or(0);
        let fixed = &runs[best].1;
        let (_, d, c) = &tests[2];
        let cls = Vec::<i64>::try_from(&c.classes)?;
        let idx: Vec<i64> = (0..cls.len())
            .filter(|&i| cls[i] >= 0)
            .take(4)
            .map(|i| i as i64)
            .collect();
        let mut imgs = Vec::new();
        let mut titles = Vec::new();
        for (k, &i) in idx.iter().enumerate() {
            for (who, t) in [("biased", &biased), ("RRR", fixed)] {
                let xs = d.subset(&idx)?.images.to_device(t.model.device());
                let pred = Vec::<i64>::try_from(t.model.logits(&xs)?.argmax(1, false))?;
                let sal = Normalization::default().normalize(&Saliency::default().attribute(
                    &t.model,
                    &xs,
                    &Target::Predicted,
                )?)?;
                let cam = GradCam::new("block3").attribute(&t.model, &xs, &Target::Predicted)?;
                let x = xs.get(k as i64);
                imgs.push(overlay(&x, &sal.get(k as i64), Colormap::Inferno, 0.7, false)?);
                titles.push(format!(
                    "{who} saliency\n{} -> {}",
                    names[d.label(i as usize)? as usize],
                    names[pred[k] as usize]
                ));
                imgs.push(overlay(&x, &cam.get(k as i64), Colormap::Jet, 0.5, false)?);
                titles.push(format!("{who} Grad-CAM\n"));
            }
        }
        let mut g = ImageGrid::new(imgs, 4);
        g.titles = titles;
        g.cell = 120;
        g.title = "Biased vs penalised (RRR)".into();
        println!("penalised run shown: {}", runs[best].0);
        g.figure()
    };
    fig.save(out.join("03.png"))?;

    let fig = {
        let evo = ExplanationEvolution::from_history(&biased.history, "evolution")?;
        let imgs: Vec<_> = (0..probe_set.len() as i64)
            .map(|i| tensor_to_image(&probe_set.images.get(i)))
            .collect::<Result<_>>()?;
        let labels: Vec<String> = probe_labels.iter().map(|&y| names[y as usize].clone()).collect();
        let mut s = evolution_strip(&evo, 0, &imgs, Some(&probe_regions), "cue", &labels)?;
        s.title = format!("Biased run: {} of the true class", evo.methods[0]);
        s.figure()
    };
    fig.save(out.join("04.png"))?;

    let fig = {
        let evo = ExplanationEvolution::from_history(&biased.history, "evolution")?;
        let imgs: Vec<_> = (0..probe_set.len() as i64)
            .map(|i| tensor_to_image(&probe_set.images.get(i)))
            .collect::<Result<_>>()?;
        let labels: Vec<String> = probe_labels.iter().map(|&y| names[y as usize].clone()).collect();
        let mut s = evolution_strip(&evo, 1, &imgs, Some(&probe_regions), "cue", &labels)?;
        s.title = format!("Biased run: {} of the true class", evo.methods[1]);
        s.figure()
    };
    fig.save(out.join("05.png"))?;

    let fig = {
        let best = measured
            .iter()
            .enumerate()
            .max_by(|a, b| a.1 .1[1].total_cmp(&b.1 .1[1]))
            .map(|(i, _)| i)
            .unwrap_or(0);
        let evo = ExplanationEvolution::from_history(&runs[best].1.history, "evolution")?;
        let imgs: Vec<_> = (0..probe_set.len() as i64)
            .map(|i| tensor_to_image(&probe_set.images.get(i)))
            .collect::<Result<_>>()?;
        let labels: Vec<String> = probe_labels.iter().map(|&y| names[y as usize].clone()).collect();
        let mut s = evolution_strip(&evo, 0, &imgs, Some(&probe_regions), "cue", &labels)?;
        s.title = format!("Penalised run ({}): {}", runs[best].0, evo.methods[0]);
        s.figure()
    };
    fig.save(out.join("06.png"))?;

    let fig = {
        let best = measured
            .iter()
            .enumerate()
            .max_by(|a, b| a.1 .1[1].total_cmp(&b.1 .1[1]))
            .map(|(i, _)| i)
            .unwrap_or(0);
        let evo = ExplanationEvolution::from_history(&runs[best].1.history, "evolution")?;
        let imgs: Vec<_> = (0..probe_set.len() as i64)
            .map(|i| tensor_to_image(&probe_set.images.get(i)))
            .collect::<Result<_>>()?;
        let labels: Vec<String> = probe_labels.iter().map(|&y| names[y as usize].clone()).collect();
        let mut s = evolution_strip(&evo, 1, &imgs, Some(&probe_regions), "cue", &labels)?;
        s.title = format!("Penalised run ({}): {}", runs[best].0, evo.methods[1]);
        s.figure()
    };
    fig.save(out.join("07.png"))?;
    println!("wrote {}", out.display());
    Ok(())
}
