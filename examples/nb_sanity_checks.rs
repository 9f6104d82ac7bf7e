//! Generated from `notebooks/src/sanity-checks.txt` by `notebooks/src/spec2example.py`: the code of
//! `notebooks/sanity-checks.ipynb`, cell by cell, with each figure saved to `target/nb-sanity-checks/NN.png`.
//!
//! `CNN_EXPLAIN_CACHE=/work/main/.cache/models-full cargo run --example nb_sanity_checks`
//! (`CNN_EXPLAIN_QUICK=1` for the quick mode).
#![allow(clippy::needless_range_loop)]
use cnn_explain::attribution::cam::*;
use cnn_explain::attribution::gradient::{
    Baseline, InputXGradient, IntegratedGradients, Quadrature, Saliency,
};
use cnn_explain::attribution::lime::Lime;
use cnn_explain::attribution::noise::{NoiseKind, NoiseTunnel};
use cnn_explain::attribution::occlusion::Occlusion;
use cnn_explain::data::shapes::ShapesConfig;
use cnn_explain::notebook::{pick, quick_mode, train_or_load, trained_default, DefaultRun};
use cnn_explain::prelude::*;
use cnn_explain::quality::*;
use cnn_explain::tch;
use cnn_explain::viz::quality::{BandChart, Similarity};
use cnn_explain::viz::{html_table, tensor_to_image, Colormap, Draw, Figure, ImageGrid, Normalization};
use std::time::Instant;

fn main() -> cnn_explain::Result<()> {
    let out = std::path::Path::new("target/nb-sanity-checks");
    // Every method, with a short name for legends and tables. `Named` renames a method.
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

    /// The methods in three families: gradient, CAM, perturbation.
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
        m
    }

    let methods = all_methods();
    println!(
        "{} methods: {}",
        methods.len(),
        methods
            .iter()
            .map(|(_, m)| m.name())
            .collect::<Vec<_>>()
            .join(", ")
    );

    // The trained model and the images: the first correctly classified test images.
    let trained = trained_default()?;
    let dev = trained.model.device();
    let names = trained.data.test.class_names.clone();
    let eval = cnn_explain::eval::evaluate(&trained.model, &trained.data.test, 256)?;
    println!(
        "test accuracy {:.1}% on {} images",
        100.0 * eval.accuracy,
        trained.data.test.len()
    );
    let n_images = pick(4, 2);
    let chosen: Vec<i64> = (0..eval.labels.len())
        .filter(|&i| eval.predicted[i] == eval.labels[i])
        .take(n_images)
        .map(|i| i as i64)
        .collect();
    let sample = trained.data.test.subset(&chosen)?;
    let xs = sample.images.to_device(dev);
    let labels: Vec<i64> = Vec::<i64>::try_from(&sample.labels)?;
    println!(
        "{} images: {:?}",
        chosen.len(),
        chosen
            .iter()
            .zip(&labels)
            .map(|(i, &c)| format!("#{i} {}", names[c as usize]))
            .collect::<Vec<_>>()
    );

    // Run the cascade for every method on the same images.
    // A block: evcxr keeps top-level variables alive across cells, so references into them may not
    // outlive the cell; `cascade` is owned.
    let cascade = {
        let layers = cascade_layers(&trained.model, &trained.vs, "");
        let layer_refs: Vec<&str> = layers.iter().map(|s| s.as_str()).collect();
        let method_refs: Vec<&dyn Attribution> = methods.iter().map(|(_, m)| m as &dyn Attribution).collect();
        let t = Instant::now();
        let cascade = cascading_randomisation(
            &trained.model,
            &trained.vs,
            &layer_refs,
            &method_refs,
            &xs,
            &Target::Predicted,
            &RandomisationConfig::default(),
        )?;
        println!(
            "cascade over {} layers, {} methods, {} images: {:.1} s",
            layers.len(),
            methods.len(),
            chosen.len(),
            t.elapsed().as_secs_f64()
        );
        cascade
    };

    // The map of one image after each step, one grid per family: rows = methods, columns = steps.
    fn heat(map: &Tensor, i: i64) -> Result<cnn_explain::image::RgbImage> {
        let one = Normalization::default().normalize(&map.narrow(0, i, 1))?;
        let s = one.size();
        Colormap::Inferno.apply(&one.view([s[2], s[3]]), 0.0, 1.0)
    }

    fn cascade_grid(
        cascade: &[MethodRandomisation],
        methods: &[(&str, Named)],
        which: &str,
        xs: &Tensor,
        i: i64,
    ) -> Result<Figure> {
        let steps = cascade[0].steps.len();
        let mut titles = vec!["image".to_string(), "original".to_string()];
        titles.extend(cascade[0].steps.iter().map(|s| format!("+ {}", s.layer)));
        let mut images = Vec::new();
        let mut row_labels = Vec::new();
        for (r, (fam, _)) in cascade.iter().zip(methods) {
            if *fam != which {
                continue;
            }
            row_labels.push(r.method.clone());
            images.push(tensor_to_image(&xs.get(i))?);
            images.push(heat(&r.original, i)?);
            for st in &r.steps {
                images.push(heat(&st.map, i)?);
            }
        }
        Ok(ImageGrid {
            titles,
            row_labels,
            cell: 74,
            title: format!("{which} methods: |map| after randomising the layers from the top"),
            ..ImageGrid::new(images, steps + 2)
        }
        .figure())
    }
    println!("grids ready");

    // Gradient family.
    let fig = cascade_grid(&cascade, &methods, "gradient", &xs, 0)?;
    fig.save(out.join("01.png"))?;

    // CAM family.
    let fig = cascade_grid(&cascade, &methods, "CAM", &xs, 0)?;
    fig.save(out.join("02.png"))?;

    // Perturbation methods.
    let fig = cascade_grid(&cascade, &methods, "perturbation", &xs, 0)?;
    fig.save(out.join("03.png"))?;

    // One chart per family with Spearman above and SSIM below.
    fn family_curves(
        cascade: &[MethodRandomisation],
        methods: &[(&str, Named)],
        which: &str,
    ) -> Result<Figure> {
        let picked: Vec<&MethodRandomisation> = cascade
            .iter()
            .zip(methods)
            .filter(|(_, (f, _))| *f == which)
            .map(|(r, _)| r)
            .collect();
        let mut top = BandChart::randomisation(&picked, Similarity::Spearman)?;
        top.title = format!("{which} methods: Spearman rank correlation with the original map");
        let mut bottom = BandChart::randomisation(&picked, Similarity::Ssim)?;
        bottom.title = format!("{which} methods: SSIM with the original map");
        let (w, h) = (top.width, top.height);
        Ok(Figure::new(w, 2 * h, move |area| {
            let (a, b) = area.split_vertically(h);
            top.draw(&a)?;
            bottom.draw(&b)
        }))
    }
    println!("curves ready");

    let fig = family_curves(&cascade, &methods, "gradient")?;
    fig.save(out.join("04.png"))?;

    let fig = family_curves(&cascade, &methods, "CAM")?;
    fig.save(out.join("05.png"))?;

    let fig = family_curves(&cascade, &methods, "perturbation")?;
    fig.save(out.join("06.png"))?;

    // The pass/fail table of the cascade.
    let pass_threshold = 0.5;
    let mut cascade_rows = Vec::new();
    let mut cascade_pass: Vec<(String, bool)> = Vec::new();
    for r in &cascade {
        let first = &r.steps[0];
        let last = &r.steps[r.steps.len() - 1];
        let pass = mean(&last.spearman) < pass_threshold;
        cascade_pass.push((r.method.clone(), pass));
        cascade_rows.push(vec![
            r.method.clone(),
            Summary::of(&first.spearman).to_string(),
            Summary::of(&last.spearman).to_string(),
            Summary::of(&last.ssim).to_string(),
            if pass { "passes".into() } else { "FAILS".into() },
        ]);
        println!(
            "cascade {:22} after fc {}  after all {}  ssim {}  {}",
            r.method,
            Summary::of(&first.spearman),
            Summary::of(&last.spearman),
            Summary::of(&last.ssim),
            if pass { "passes" } else { "FAILS" }
        );
    }
    let table = html_table(
        &[
            "method",
            "Spearman after fc",
            "Spearman after all layers",
            "SSIM after all layers",
            "cascading test",
        ],
        &cascade_rows,
    )?;
    let _shown = table;

    // Train (or load) the model on permuted labels.
    let base = DefaultRun::default();
    let random_run = DefaultRun {
        shapes: ShapesConfig {
            train: pick(1000, 300),
            ..base.shapes.clone()
        },
        train: TrainConfig {
            epochs: pick(5, 2),
            ..base.train.clone()
        },
        permute_labels: Some(1),
        ..base.clone()
    };
    let t = Instant::now();
    let random = train_or_load(&random_run)?;
    {
        let last = random
            .history
            .epochs
            .last()
            .ok_or_else(|| Error::invalid("history", "no epoch"))?;
        println!(
        "permuted-label model: {} epochs, train accuracy (on permuted labels) {:.1}%, test accuracy (true labels) {:.1}%; {:.1} s",
        random.history.epochs.len(),
        100.0 * last.train_accuracy,
        100.0 * last.test_accuracy.unwrap_or(f64::NAN),
        t.elapsed().as_secs_f64()
    );
    }

    // Maps of the true class for both models, compared.
    let truth = Target::PerSample(labels.clone());
    let mut label_rows = Vec::new();
    let mut label_pass: Vec<(String, bool)> = Vec::new();
    let mut label_maps: Vec<(String, Tensor, Tensor)> = Vec::new();
    for (_, m) in &methods {
        let a = m.attribute(&trained.model, &xs, &truth)?;
        let b = m.attribute(&random.model, &xs, &truth)?;
        let s = map_similarity(&a, &b, Some(&SsimConfig::default()))?;
        let pass = mean(&s.spearman) < pass_threshold;
        label_pass.push((m.name(), pass));
        label_rows.push(vec![
            m.name(),
            Summary::of(&s.spearman).to_string(),
            Summary::of(&s.ssim).to_string(),
            if pass { "passes".into() } else { "FAILS".into() },
        ]);
        println!(
            "labels {:22} spearman {}  ssim {}  {}",
            m.name(),
            Summary::of(&s.spearman),
            Summary::of(&s.ssim),
            if pass { "passes" } else { "FAILS" }
        );
        label_maps.push((m.name(), a, b));
    }
    let _shown = html_table(
        &[
            "method",
            "Spearman, true vs permuted labels",
            "SSIM",
            "label test",
        ],
        &label_rows,
    )?;

    // The first image: the map of the true-label model above, of the permuted-label model below.
    let fig = {
        let mut images = Vec::new();
        let mut titles = Vec::new();
        for (name, a, _) in &label_maps {
            images.push(heat(a, 0)?);
            titles.push(name.replace(" x ", "×").replace("Integrated Gradients", "IG"));
        }
        for (_, _, b) in &label_maps {
            images.push(heat(b, 0)?);
        }
        ImageGrid {
            titles,
            row_labels: vec!["true labels".into(), "permuted labels".into()],
            cell: 74,
            title: format!(
                "|map| of the true class, image #{}: model trained on true vs permuted labels",
                chosen[0]
            ),
            ..ImageGrid::new(images, label_maps.len())
        }
        .figure()
    };
    fig.save(out.join("07.png"))?;

    // Build the shifted model and check the logits.
    let shift = [-0.5, -0.5, -0.5];
    let (shifted, _shifted_vs) = shifted_zoo_model(&base.model, &trained.vs, &shift)?;
    let s_t = Tensor::from_slice(&[-0.5f32, -0.5, -0.5])
        .view([1, 3, 1, 1])
        .to_device(dev);
    let mut logit_diff = 0f64;
    for chunk in trained.data.test.images.split(200, 0) {
        let x = chunk.to_device(dev);
        let d = tch::no_grad(|| -> Result<f64> {
            let a = trained.model.logits(&x)?;
            let b = shifted.logits(&(&x + &s_t))?;
            Ok((a - b).abs().max().double_value(&[]))
        })?;
        logit_diff = logit_diff.max(d);
    }
    println!(
        "largest logit difference over all {} test images: {logit_diff:.2e} (must be below 1e-5)",
        trained.data.test.len()
    );
    if logit_diff > 1e-5 {
        Err(Error::invalid(
            "shifted model",
            format!("logits differ by {logit_diff}"),
        ))?;
    }

    // The invariance check for every method.
    // A block: evcxr cannot keep closures between cells; `cases` and `report` are owned.
    let (cases, report) = {
        let ig = IntegratedGradients {
            steps: pick(20, 8),
            batch: 32,
            method: Quadrature::GaussLegendre,
            ..Default::default()
        };
        let ig_shifted = IntegratedGradients {
            baseline: Baseline::Tensor(s_t.expand([1, 3, 64, 64], false).copy()),
            ..ig.clone()
        };
        let layer = "block3";
        let nt = |kind| NoiseTunnel {
            samples: pick(10, 4),
            seed: 7,
            ..NoiseTunnel::new(Saliency::default(), kind)
        };
        let ss_cam = Cam {
            weights: SsCamWeights {
                samples: pick(2, 1),
                batch: 128,
                ..Default::default()
            },
            ..SsCam::new(layer)
        };
        let is_cam = Cam {
            weights: IsCamWeights {
                samples: pick(2, 1),
                batch: 128,
                ..Default::default()
            },
            ..IsCam::new(layer)
        };
        let mut cases = vec![
            InvarianceCase::pair("Saliency", Saliency::default(), Saliency::default()),
            InvarianceCase::pair("Input x Gradient", InputXGradient, InputXGradient),
            InvarianceCase::pair("Integrated Gradients, zero baseline", ig.clone(), ig.clone()),
            InvarianceCase::pair(
                "Integrated Gradients, baseline shifted too",
                ig.clone(),
                ig_shifted,
            ),
            InvarianceCase::pair("SmoothGrad", nt(NoiseKind::SmoothGrad), nt(NoiseKind::SmoothGrad)),
            InvarianceCase::pair(
                "SmoothGrad²",
                nt(NoiseKind::SmoothGradSquared),
                nt(NoiseKind::SmoothGradSquared),
            ),
            InvarianceCase::pair("VarGrad", nt(NoiseKind::VarGrad), nt(NoiseKind::VarGrad)),
            InvarianceCase::pair("Grad-CAM", GradCam::new(layer), GradCam::new(layer)),
            InvarianceCase::pair(
                "Grad-CAM++",
                GradCamPlusPlus::new(layer),
                GradCamPlusPlus::new(layer),
            ),
            InvarianceCase::pair(
                "Smooth Grad-CAM++",
                SmoothGradCamPlusPlus::new(layer),
                SmoothGradCamPlusPlus::new(layer),
            ),
            InvarianceCase::pair("XGrad-CAM", XGradCam::new(layer), XGradCam::new(layer)),
            InvarianceCase::pair("Layer-CAM", LayerCam::new(layer), LayerCam::new(layer)),
            InvarianceCase::pair("HiResCAM", HiResCam::new(layer), HiResCam::new(layer)),
            InvarianceCase::pair("Score-CAM", ScoreCam::new(layer), ScoreCam::new(layer)),
            InvarianceCase::pair("SS-CAM", ss_cam.clone(), ss_cam),
            InvarianceCase::pair("IS-CAM", is_cam.clone(), is_cam),
            InvarianceCase::pair("Eigen-CAM", EigenCam::new(layer), EigenCam::new(layer)),
            InvarianceCase::pair(
                "Occlusion, image-mean fill",
                Occlusion::default(),
                Occlusion::default(),
            ),
            InvarianceCase::pair(
                "Occlusion, fill 0",
                Occlusion {
                    baseline: cnn_explain::attribution::occlusion::OcclusionBaseline::Value(0.0),
                    ..Default::default()
                },
                Occlusion {
                    baseline: cnn_explain::attribution::occlusion::OcclusionBaseline::Value(0.0),
                    ..Default::default()
                },
            ),
        ];
        if !quick_mode() {
            cases.push(InvarianceCase::pair(
                "LIME",
                Lime {
                    samples: 100,
                    ..Default::default()
                },
                Lime {
                    samples: 100,
                    ..Default::default()
                },
            ));
        }
        let t = Instant::now();
        let report = check_input_invariance(
            &trained.model,
            &shifted,
            &shift,
            &xs,
            &Target::Predicted,
            &cases,
            1e-2,
        )?;
        println!(
            "invariance check of {} cases on {} images: {:.1} s",
            cases.len(),
            chosen.len(),
            t.elapsed().as_secs_f64()
        );
        (cases, report)
    };
    let inv_rows: Vec<Vec<String>> = report
        .iter()
        .map(|r| {
            println!(
                "invariance {:44} max |diff| {:.2e}  relative {:.2e}  {}",
                r.method,
                r.max_abs_diff,
                r.relative_diff,
                if r.invariant { "invariant" } else { "NOT invariant" }
            );
            vec![
                r.method.clone(),
                format!("{:.2e}", r.max_abs_diff),
                format!("{:.2e}", r.relative_diff),
                if r.invariant {
                    "invariant".into()
                } else {
                    "NOT invariant".into()
                },
            ]
        })
        .collect();
    let _shown = html_table(
        &[
            "method",
            "largest |difference|",
            "relative to the map's largest value",
            "input-invariant (1e-2)",
        ],
        &inv_rows,
    )?;

    // The maps on both models for the first image: gradient, Input x Gradient, IG with both baselines, Grad-CAM.
    let fig = {
        let x0 = xs.narrow(0, 0, 1);
        let x0s = &x0 + &s_t;
        let shown: Vec<usize> = vec![0, 1, 2, 3, 7];
        let mut images = Vec::new();
        let mut titles = Vec::new();
        for &k in &shown {
            let a = cases[k]
                .original
                .attribute(&trained.model, &x0, &Target::Predicted)?;
            images.push(heat(&a, 0)?);
            titles.push(
                cases[k]
                    .name
                    .replace("Integrated Gradients", "IG")
                    .replace(", baseline shifted too", ", shifted baseline"),
            );
        }
        for &k in &shown {
            let b = cases[k].shifted.attribute(&shifted, &x0s, &Target::Predicted)?;
            images.push(heat(&b, 0)?);
        }
        ImageGrid {
            titles,
            row_labels: vec!["f on x".into(), "g on x - 0.5".into()],
            cell: 120,
            title: format!(
                "|map| on the original and on the shifted model, image #{}",
                chosen[0]
            ),
            ..ImageGrid::new(images, shown.len())
        }
        .figure()
    };
    fig.save(out.join("08.png"))?;

    // Which methods pass which test.
    let summary_rows: Vec<Vec<String>> = cascade_pass
        .iter()
        .zip(&label_pass)
        .map(|((name, c), (_, l))| {
            // The first case named after the method (IG: zero baseline; occlusion: image-mean fill).
            let inv = report
                .iter()
                .find(|r| r.method.starts_with(name.as_str()))
                .map(|r| if r.invariant { "invariant" } else { "NOT invariant" })
                .unwrap_or("-");
            vec![
                name.clone(),
                if *c { "passes".into() } else { "FAILS".into() },
                if *l { "passes".into() } else { "FAILS".into() },
                inv.to_string(),
            ]
        })
        .collect();
    for r in &summary_rows {
        println!(
            "summary {:22} cascade {:7} labels {:7} shift {}",
            r[0], r[1], r[2], r[3]
        );
    }
    let _shown = html_table(
        &[
            "method",
            "cascading randomisation",
            "label randomisation",
            "input shift",
        ],
        &summary_rows,
    )?;
    println!("wrote {}", out.display());
    Ok(())
}
