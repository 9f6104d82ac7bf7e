//! Generated from `notebooks/src/explanation-quality.txt` by `notebooks/src/spec2example.py`: the code of
//! `notebooks/explanation-quality.ipynb`, cell by cell, with each figure saved to `target/nb-explanation-quality/NN.png`.
//!
//! `CNN_EXPLAIN_CACHE=/work/main/.cache/models-full cargo run --example nb_explanation_quality`
//! (`CNN_EXPLAIN_QUICK=1` for the quick mode).
#![allow(clippy::needless_range_loop)]
use cnn_explain::attribution::cam::*;
use cnn_explain::attribution::gradient::{InputXGradient, IntegratedGradients, Saliency};
use cnn_explain::attribution::lime::Lime;
use cnn_explain::attribution::noise::{NoiseKind, NoiseTunnel};
use cnn_explain::attribution::occlusion::Occlusion;
use cnn_explain::notebook::{pick, quick_mode, trained_default};
use cnn_explain::prelude::*;
use cnn_explain::quality::*;
use cnn_explain::rng::Rng;
use cnn_explain::viz::quality::{quality_table_rows, BandChart, QUALITY_TABLE_HEADER};
use cnn_explain::viz::{html_table, Draw, Figure};
use std::time::Instant;

fn main() -> cnn_explain::Result<()> {
    let out = std::path::Path::new("target/nb-explanation-quality");
    // Every method (the same list and settings as the sanity-checks notebook), plus a random baseline.
    struct Named {
        name: String,
        inner: Box<dyn Attribution>,
    }

    impl Attribution for Named {
        fn attribute(&self, model: &dyn Model, input: &Tensor, target: &Target) -> Result<Tensor> {
            self.inner.attribute(model, input, target)
        }
        fn name(&self) -> String {
            self.name.clone()
        }
    }

    fn named(name: &str, inner: impl Attribution + 'static) -> Named {
        Named {
            name: name.to_string(),
            inner: Box::new(inner),
        }
    }

    /// Uniform noise `[N, 1, H, W]`, the same for a given seed and batch: the chance level.
    struct RandomMap {
        seed: u64,
    }

    impl Attribution for RandomMap {
        fn attribute(&self, model: &dyn Model, input: &Tensor, _target: &Target) -> Result<Tensor> {
            let s = input.size();
            Ok(Rng::new(self.seed).uniform_tensor(&[s[0], 1, s[2], s[3]], model.device()))
        }
        fn name(&self) -> String {
            "random map".into()
        }
    }

    fn all_methods() -> Vec<(&'static str, Named)> {
        let layer = "block3";
        let noise = |kind| NoiseTunnel {
            samples: pick(10, 4),
            seed: 7,
            ..NoiseTunnel::new(Saliency::default(), kind)
        };
        let mut m: Vec<(&'static str, Named)> = vec![
            ("gradient", named("Saliency", Saliency::default())),
            ("gradient", named("Input x Gradient", InputXGradient)),
            (
                "gradient",
                named(
                    "Integrated Gradients",
                    IntegratedGradients {
                        steps: pick(20, 8),
                        batch: 32,
                        ..Default::default()
                    },
                ),
            ),
            ("gradient", named("SmoothGrad", noise(NoiseKind::SmoothGrad))),
            (
                "gradient",
                named("SmoothGrad²", noise(NoiseKind::SmoothGradSquared)),
            ),
            ("gradient", named("VarGrad", noise(NoiseKind::VarGrad))),
            ("CAM", named("Grad-CAM", GradCam::new(layer))),
            ("CAM", named("Grad-CAM++", GradCamPlusPlus::new(layer))),
            (
                "CAM",
                named("Smooth Grad-CAM++", SmoothGradCamPlusPlus::new(layer)),
            ),
            ("CAM", named("XGrad-CAM", XGradCam::new(layer))),
            ("CAM", named("Layer-CAM", LayerCam::new(layer))),
            ("CAM", named("HiResCAM", HiResCam::new(layer))),
            (
                "CAM",
                named(
                    "Score-CAM",
                    Cam {
                        weights: ScoreCamWeights {
                            batch: 128,
                            ..Default::default()
                        },
                        ..ScoreCam::new(layer)
                    },
                ),
            ),
            (
                "CAM",
                named(
                    "SS-CAM",
                    Cam {
                        weights: SsCamWeights {
                            samples: pick(2, 1),
                            batch: 128,
                            ..Default::default()
                        },
                        ..SsCam::new(layer)
                    },
                ),
            ),
            (
                "CAM",
                named(
                    "IS-CAM",
                    Cam {
                        weights: IsCamWeights {
                            samples: pick(2, 1),
                            batch: 128,
                            ..Default::default()
                        },
                        ..IsCam::new(layer)
                    },
                ),
            ),
            ("CAM", named("Eigen-CAM", EigenCam::new(layer))),
            ("perturbation", named("Occlusion", Occlusion::default())),
        ];
        if !quick_mode() {
            m.push((
                "perturbation",
                named(
                    "LIME",
                    Lime {
                        samples: 100,
                        ..Default::default()
                    },
                ),
            ));
        }
        m.push(("baseline", named("random map", RandomMap { seed: 3 })));
        m
    }

    let methods = all_methods();
    println!("{} methods", methods.len());

    // The model and the evaluation images: the first test images, with their object masks.
    let trained = trained_default()?;
    let dev = trained.model.device();
    let acc = cnn_explain::eval::evaluate(&trained.model, &trained.data.test, 256)?.accuracy;
    let n_images = pick(30, 6);
    let ev = trained
        .data
        .test
        .subset(&(0..n_images as i64).collect::<Vec<_>>())?;
    let xs = ev.images.to_device(dev);
    let masks = ev
        .masks
        .as_ref()
        .ok_or_else(|| Error::invalid("data", "no object masks"))?
        .to_device(dev);
    let object_area = masks.mean(Kind::Float).double_value(&[]);
    let correct = {
        let pred = trained.model.logits(&xs)?.argmax(1, false).to_device(Device::Cpu);
        pred.eq_tensor(&ev.labels).sum(Kind::Int64).int64_value(&[])
    };
    println!(
    "model: test accuracy {:.1}%; {} evaluation images ({} correctly classified), objects cover {:.1}% of the image on average",
    100.0 * acc,
    n_images,
    correct,
    100.0 * object_area
);

    // Cascading randomisation, reduced to pass / fail.
    // A block: evcxr keeps top-level variables alive across cells, so references into them may not
    // outlive the cell; `sanity` is owned.
    let sanity: Vec<(f64, bool)> = {
        let sanity_xs = xs.narrow(0, 0, pick(3, 1));
        let layers = cascade_layers(&trained.model, &trained.vs, "");
        let layer_refs: Vec<&str> = layers.iter().map(|s| s.as_str()).collect();
        let method_refs: Vec<&dyn Attribution> = methods.iter().map(|(_, m)| m as &dyn Attribution).collect();
        let t = Instant::now();
        let cascade = cascading_randomisation(
            &trained.model,
            &trained.vs,
            &layer_refs,
            &method_refs,
            &sanity_xs,
            &Target::Predicted,
            &RandomisationConfig {
                ssim: None,
                ..Default::default()
            },
        )?;
        let sanity: Vec<(f64, bool)> = cascade
            .iter()
            .map(|r| {
                let rho = mean(&r.steps[r.steps.len() - 1].spearman);
                (rho, rho < 0.5)
            })
            .collect();
        for (r, (rho, pass)) in cascade.iter().zip(&sanity) {
            println!(
                "sanity {:22} Spearman after all layers {rho:.3} {}",
                r.method,
                if *pass { "passes" } else { "FAILS" }
            );
        }
        println!("{:.1} s", t.elapsed().as_secs_f64());
        sanity
    };

    // Every method on the same images: maps (timed), then every metric.
    // 128 pixels (1/32 of the image) per step: 33 points per curve.
    let mut config = QualityConfig::default();
    config.deletion.step = 128;
    config.insertion.step = 128;
    println!(
    "deletion: fill {:?}, {} px per step; insertion: fill {:?}, {} px per step; score: {:?}; pointing-game tolerance {} px",
    config.deletion.fill, config.deletion.step, config.insertion.fill, config.insertion.step, config.deletion.score, config.pointing_tolerance
);
    // A warm-up call, so the first method timed does not pay for first-use allocations.
    let _ = Saliency::default().attribute(&trained.model, &xs, &Target::Predicted)?;
    let t = Instant::now();
    let mut results: Vec<QualityEvaluation> = Vec::new();
    for (_, m) in &methods {
        let e = evaluate_with_curves(m, &trained.model, &xs, Some(&masks), &Target::Predicted, &config)?;
        println!(
            "quality {:22} deletion {}  insertion {}  pointing {}  energy {}  sparseness {}  {:.1} ms/img",
            e.row.method,
            e.row.deletion_auc,
            e.row.insertion_auc,
            e.row.pointing_game.map(|s| s.to_string()).unwrap_or_default(),
            e.row
                .energy_pointing_game
                .map(|s| s.to_string())
                .unwrap_or_default(),
            e.row.sparseness,
            1e3 * e.row.seconds_per_image
        );
        results.push(e);
    }
    println!("all methods: {:.1} s", t.elapsed().as_secs_f64());

    // The table: every metric as mean ± standard deviation over the images, and the sanity check.
    let rows: Vec<QualityRow> = results.iter().map(|e| e.row.clone()).collect();
    let mut cells = quality_table_rows(&rows);
    for (row, (rho, pass)) in cells.iter_mut().zip(&sanity) {
        row.insert(
            6,
            format!("{} ({rho:.2})", if *pass { "passes" } else { "FAILS" }),
        );
    }
    let mut header: Vec<String> = QUALITY_TABLE_HEADER.iter().map(|s| s.to_string()).collect();
    header.insert(6, "sanity check (Spearman after randomisation)".into());
    let _shown = html_table(&header, &cells)?;

    // One figure per family, deletion above insertion.
    fn curves_of(results: &[QualityEvaluation], methods: &[(&str, Named)], which: &str) -> Result<Figure> {
        let pick_family = |deletion: bool| -> Vec<(String, Curve)> {
            results
                .iter()
                .zip(methods)
                .filter(|(_, (f, _))| *f == which || *f == "baseline")
                .map(|(e, _)| {
                    (
                        e.row.method.clone(),
                        if deletion {
                            e.deletion.clone()
                        } else {
                            e.insertion.clone()
                        },
                    )
                })
                .collect()
        };
        let mut top = BandChart::faithfulness(&pick_family(true), "deletion")?;
        top.title = format!("{which} methods: deletion (lower AUC is better)");
        top.y_range = Some((0.0, 1.0));
        let mut bottom = BandChart::faithfulness(&pick_family(false), "insertion")?;
        bottom.title = format!("{which} methods: insertion (higher AUC is better)");
        bottom.y_range = Some((0.0, 1.0));
        let (w, h) = (top.width, top.height);
        Ok(Figure::new(w, 2 * h, move |area| {
            let (a, b) = area.split_vertically(h);
            top.draw(&a)?;
            bottom.draw(&b)
        }))
    }
    println!("ready");

    let fig = curves_of(&results, &methods, "gradient")?;
    fig.save(out.join("01.png"))?;

    let fig = curves_of(&results, &methods, "CAM")?;
    fig.save(out.join("02.png"))?;

    let fig = curves_of(&results, &methods, "perturbation")?;
    fig.save(out.join("03.png"))?;

    // The best methods by each metric (the random map excluded), and where the random map lands.
    {
        let real: Vec<&QualityRow> = rows.iter().filter(|r| r.method != "random map").collect();
        let random_row = rows.iter().find(|r| r.method == "random map");
        let by = |what: &str, key: &dyn Fn(&QualityRow) -> f64, higher: bool| {
            let mut v: Vec<(String, f64)> = real.iter().map(|r| (r.method.clone(), key(r))).collect();
            v.sort_by(|a, b| {
                if higher {
                    b.1.total_cmp(&a.1)
                } else {
                    a.1.total_cmp(&b.1)
                }
            });
            let top: Vec<String> = v.iter().take(4).map(|(n, x)| format!("{n} {x:.3}")).collect();
            let chance = random_row.map(key).unwrap_or(f64::NAN);
            println!("best {what:22}: {}  (random map {chance:.3})", top.join(", "));
        };
        by("deletion AUC", &|r| r.deletion_auc.mean, false);
        by("insertion AUC", &|r| r.insertion_auc.mean, true);
        by(
            "pointing game",
            &|r| r.pointing_game.map_or(f64::NAN, |s| s.mean),
            true,
        );
        by(
            "energy pointing game",
            &|r| r.energy_pointing_game.map_or(f64::NAN, |s| s.mean),
            true,
        );
        by("sparseness", &|r| r.sparseness.mean, true);
        by("ms per image", &|r| 1e3 * r.seconds_per_image, false);
    }
    println!("wrote {}", out.display());
    Ok(())
}
