//! The code of `notebooks/grad-cam.ipynb`, cell by cell (`// %%` marks a cell): Grad-CAM on several
//! layers, for the top-3 classes of one image, for misclassified images, the whole CAM family side
//! by side with timings, and how much of each method's map falls on the object (the object masks
//! of the shapes data).
//!
//! `CNN_EXPLAIN_CACHE=/work/main/.cache/models-full cargo run --example nb_grad_cam` (full mode), or
//! with `CNN_EXPLAIN_QUICK=1` for the quick run. Figures go to `target/nb-grad-cam/*.png`.
use cnn_explain::attribution::cam::*;
use cnn_explain::eval::{predict_proba, top_k};
use cnn_explain::notebook::{pick, trained_default};
use cnn_explain::prelude::*;
use cnn_explain::viz::{html_table, overlay, tensor_to_image, BarChart, Colormap, Draw, ImageGrid};
use std::time::Instant;

// %% code: helpers: how much of a map lies on the object.
/// Per sample, the share of the map's mass on the object and whether the map's maximum lies on
/// it (pointing game): `maps` `[N, 1, H, W]` in `[0, 1]`, `masks` `[N, 1, H, W]`, 1 on the object.
fn mask_scores(maps: &Tensor, masks: &Tensor) -> Result<(Vec<f64>, Vec<bool>)> {
    let flat = maps.f_flatten(1, -1)?.to_kind(Kind::Double);
    let m = masks
        .f_flatten(1, -1)?
        .to_kind(Kind::Double)
        .to_device(flat.device());
    let total = flat.sum_dim_intlist(1, false, Kind::Double);
    let inside = (&flat * &m).sum_dim_intlist(1, false, Kind::Double);
    let share = Vec::<f64>::try_from(inside / total.clamp_min(1e-12))?;
    let hit = Vec::<f64>::try_from(m.gather(1, &flat.argmax(1, true), false).squeeze_dim(1))?;
    Ok((share, hit.into_iter().map(|h| h > 0.5).collect()))
}

fn mean(v: &[f64]) -> f64 {
    v.iter().sum::<f64>() / v.len().max(1) as f64
}

fn main() -> Result<()> {
    let out = std::path::Path::new("target/nb-grad-cam");

    // %% code: the trained model and the test set.
    let trained = trained_default()?;
    let dev = trained.model.device();
    let names = trained.data.test.class_names.clone();
    let eval = evaluate(&trained.model, &trained.data.test, 256)?;
    println!("layers: {}", trained.model.layers().join(", "));
    println!(
        "test accuracy {:.1}% on {} images, {} misclassified",
        100.0 * eval.accuracy,
        trained.data.test.len(),
        eval.misclassified().len()
    );

    // %% code: one correctly classified test image of each of the first few classes.
    let n_show = pick(4, 2);
    let mut shown: Vec<i64> = Vec::new();
    for c in 0..names.len() as i64 {
        let first = (0..eval.labels.len()).find(|&i| eval.labels[i] == c && eval.predicted[i] == c);
        if let Some(i) = first {
            if shown.len() < n_show {
                shown.push(i as i64);
            }
        }
    }
    // (A weak model may get whole classes wrong: then fill up with the first test images.)
    for i in 0..eval.labels.len() as i64 {
        if shown.len() < n_show && !shown.contains(&i) {
            shown.push(i);
        }
    }
    let xs = trained.data.test.subset(&shown)?.images.to_device(dev);
    let row_labels: Vec<String> = shown
        .iter()
        .map(|&i| format!("#{i} {}", names[eval.labels[i as usize] as usize]))
        .collect();

    // %% code figure: Grad-CAM at four depths.
    let layers: [&'static str; 4] = ["relu", "block1", "block2", "block3"];
    let fig = {
        let mut cols = Vec::new();
        let mut sizes = Vec::new();
        for l in layers {
            cols.push(GradCam::new(l).attribute(&trained.model, &xs, &Target::Predicted)?);
            let s = trained.model.forward_to(&xs, l)?.size();
            sizes.push(format!("{l} ({}x{})", s[2], s[3]));
        }
        let mut images = Vec::new();
        let mut titles = Vec::new();
        for r in 0..shown.len() as i64 {
            let img = xs.get(r);
            images.push(tensor_to_image(&img)?);
            titles.push(if r == 0 {
                "image".to_string()
            } else {
                String::new()
            });
            for (maps, size) in cols.iter().zip(&sizes) {
                images.push(overlay(&img, &maps.get(r), Colormap::Jet, 0.5, false)?);
                titles.push(if r == 0 { size.clone() } else { String::new() });
            }
        }
        ImageGrid {
            titles,
            row_labels: row_labels.clone(),
            title: "Grad-CAM of the predicted class at four depths".into(),
            ..ImageGrid::new(images, layers.len() + 1)
        }
        .figure()
    };
    fig.save(out.join("layers.png"))?;

    // %% code: how much of each layer's Grad-CAM falls on the object, over many test images.
    let n_eval = pick(50, 6);
    let ev = trained
        .data
        .test
        .subset(&(0..n_eval as i64).collect::<Vec<_>>())?;
    let ev_xs = ev.images.to_device(dev);
    let ev_masks = ev
        .masks
        .as_ref()
        .ok_or_else(|| Error::invalid("data", "no object masks"))?
        .shallow_clone();
    let area = ev_masks.mean(Kind::Float).double_value(&[]);
    let mut layer_rows = Vec::new();
    for l in layers {
        let maps = GradCam::new(l).attribute(&trained.model, &ev_xs, &Target::Predicted)?;
        let (share, hit) = mask_scores(&maps, &ev_masks)?;
        let hits = hit.iter().filter(|&&h| h).count() as f64 / n_eval as f64;
        layer_rows.push(vec![
            l.to_string(),
            format!("{:.2}", mean(&share)),
            format!("{hits:.2}"),
        ]);
    }
    layer_rows.push(vec![
        "(uniform map)".into(),
        format!("{area:.2}"),
        format!("{area:.2}"),
    ]);
    for r in &layer_rows {
        println!("layer {:14} mass-on-object {}  pointing {}", r[0], r[1], r[2]);
    }
    let _ = html_table(&["layer", "map mass on the object", "pointing game"], &layer_rows)?;

    // %% code figure: the top-3 classes of the least certain correctly classified test image.
    let pos = eval
        .lowest_margin(eval.labels.len())
        .into_iter()
        .find(|&i| eval.predicted[i] == eval.labels[i])
        .unwrap_or(0);
    let one = trained.data.test.images.narrow(0, pos as i64, 1).to_device(dev);
    let top = top_k(&trained.model, &one, 3)?;
    println!(
        "#{pos} (true {}): {}",
        names[eval.labels[pos] as usize],
        top.iter()
            .map(|&(c, p)| format!("{} {p:.3}", names[c as usize]))
            .collect::<Vec<_>>()
            .join(", ")
    );
    let fig = {
        let img = one.get(0);
        let mut images = vec![tensor_to_image(&img)?];
        let mut titles = vec![format!("#{pos}, true: {}", names[eval.labels[pos] as usize])];
        for &(c, p) in &top {
            let map = GradCam::new("block3").attribute(&trained.model, &one, &Target::Class(c))?;
            images.push(overlay(&img, &map, Colormap::Jet, 0.5, false)?);
            titles.push(format!("{} (p = {p:.2})", names[c as usize]));
        }
        ImageGrid {
            titles,
            cell: 160,
            title: "Grad-CAM (block3) for each of the top-3 classes".into(),
            ..ImageGrid::new(images, 4)
        }
        .figure()
    };
    fig.save(out.join("top3.png"))?;

    // %% code figure: the top-3 probabilities (true class in the highlight colour).
    let fig = {
        let probs = predict_proba(&trained.model, &one, 1)?
            .get(0)
            .to_kind(Kind::Double);
        let probs = Vec::<f64>::try_from(probs.to_device(Device::Cpu))?;
        let mut bars = BarChart::top_k(&names, &probs, 3)?;
        bars.title = format!("Top-3 probabilities of #{pos}");
        bars.highlight = bars
            .labels
            .iter()
            .position(|l| *l == names[eval.labels[pos] as usize]);
        bars.figure()
    };
    fig.save(out.join("top3-bars.png"))?;

    // %% code figure: misclassified test images, Grad-CAM for the predicted and for the true class.
    let wrong: Vec<i64> = eval
        .misclassified()
        .into_iter()
        .take(pick(5, 3))
        .map(|i| i as i64)
        .collect();
    println!(
        "{} misclassified test images, showing {}",
        eval.misclassified().len(),
        wrong.len()
    );
    let fig = {
        let ws = trained.data.test.subset(&wrong)?;
        let wx = ws.images.to_device(dev);
        let wmasks = ws
            .masks
            .as_ref()
            .ok_or_else(|| Error::invalid("data", "no object masks"))?;
        let pred: Vec<i64> = wrong.iter().map(|&i| eval.predicted[i as usize]).collect();
        let truth: Vec<i64> = wrong.iter().map(|&i| eval.labels[i as usize]).collect();
        let cam = GradCam::new("block3");
        let for_pred = cam.attribute(&trained.model, &wx, &Target::PerSample(pred.clone()))?;
        let for_true = cam.attribute(&trained.model, &wx, &Target::PerSample(truth.clone()))?;
        let (sp, _) = mask_scores(&for_pred, wmasks)?;
        let (st, _) = mask_scores(&for_true, wmasks)?;
        let mut images = Vec::new();
        let mut titles = Vec::new();
        let mut labels = Vec::new();
        for (k, &i) in wrong.iter().enumerate() {
            let (p, t) = (pred[k] as usize, truth[k] as usize);
            let img = wx.get(k as i64);
            images.push(tensor_to_image(&img)?);
            titles.push(format!("p({}) = {:.2}", names[p], eval.confidence[i as usize]));
            images.push(overlay(&img, &for_pred.get(k as i64), Colormap::Jet, 0.5, false)?);
            titles.push(format!("pred: {}, {:.0}%", names[p], 100.0 * sp[k]));
            images.push(overlay(&img, &for_true.get(k as i64), Colormap::Jet, 0.5, false)?);
            titles.push(format!("true: {}, {:.0}%", names[t], 100.0 * st[k]));
            labels.push(format!("#{i}"));
            println!(
                "#{i}: true {} predicted {} (p {:.2}); mass on object: predicted {:.2}, true {:.2}",
                names[t], names[p], eval.confidence[i as usize], sp[k], st[k]
            );
        }
        ImageGrid {
            titles,
            row_labels: labels,
            cell: 160,
            title: "Grad-CAM (block3): predicted vs true class".into(),
            ..ImageGrid::new(images, 3)
        }
        .figure()
    };
    fig.save(out.join("misclassified.png"))?;

    // %% code: the CAM family at block3, each timed on the same images.
    let layer: &'static str = "block3";
    let mut methods: Vec<(&'static str, Box<dyn Attribution>)> = vec![
        ("Grad-CAM", Box::new(GradCam::new(layer))),
        ("Grad-CAM++", Box::new(GradCamPlusPlus::new(layer))),
        ("SmoothGC++", Box::new(SmoothGradCamPlusPlus::new(layer))),
        ("XGrad-CAM", Box::new(XGradCam::new(layer))),
        ("Layer-CAM", Box::new(LayerCam::new(layer))),
        ("HiResCAM", Box::new(HiResCam::new(layer))),
        (
            "Score-CAM",
            Box::new(Cam {
                weights: ScoreCamWeights {
                    batch: 128,
                    ..Default::default()
                },
                ..ScoreCam::new(layer)
            }),
        ),
        (
            "SS-CAM",
            Box::new(Cam {
                weights: SsCamWeights {
                    samples: pick(4, 1),
                    batch: 128,
                    ..Default::default()
                },
                ..SsCam::new(layer)
            }),
        ),
        (
            "IS-CAM",
            Box::new(Cam {
                weights: IsCamWeights {
                    samples: pick(4, 1),
                    batch: 128,
                    ..Default::default()
                },
                ..IsCam::new(layer)
            }),
        ),
        ("Eigen-CAM", Box::new(EigenCam::new(layer))),
    ];
    // CAM (Zhou et al.) needs global *average* pooling + one linear layer after the layer; it says
    // so when the model has another head, and is then left out.
    match ClassActivationMap::new(layer).attribute(&trained.model, &xs, &Target::Predicted) {
        Ok(_) => methods.insert(0, ("CAM", Box::new(ClassActivationMap::new(layer)))),
        Err(e) => println!("CAM left out: {e}"),
    }
    // A warm-up call, so the first method timed does not pay for first-use allocations.
    let _ = GradCam::new(layer).attribute(&trained.model, &xs, &Target::Predicted)?;
    let mut family: Vec<(String, Tensor, f64)> = Vec::new();
    for (name, m) in &methods {
        let t = Instant::now();
        let maps = m.attribute(&trained.model, &xs, &Target::Predicted)?;
        family.push((name.to_string(), maps, t.elapsed().as_secs_f64() * 1e3));
    }

    // %% code figure: rows = images, columns = methods.
    let fig = {
        let mut images = Vec::new();
        let mut titles = Vec::new();
        for r in 0..shown.len() as i64 {
            let img = xs.get(r);
            images.push(tensor_to_image(&img)?);
            titles.push(if r == 0 {
                "image".to_string()
            } else {
                String::new()
            });
            for (name, maps, ms) in &family {
                images.push(overlay(&img, &maps.get(r), Colormap::Jet, 0.5, false)?);
                titles.push(if r == 0 {
                    format!("{name} {ms:.0}ms")
                } else {
                    String::new()
                });
            }
        }
        ImageGrid {
            titles,
            row_labels: row_labels.clone(),
            cell: 130,
            title: format!(
                "The CAM family at {layer}, predicted class (ms for all {} images)",
                shown.len()
            ),
            ..ImageGrid::new(images, family.len() + 1)
        }
        .figure()
    };
    fig.save(out.join("family.png"))?;

    // %% code: the times as a table.
    let grad_ms = family
        .iter()
        .find(|f| f.0 == "Grad-CAM")
        .map(|f| f.2)
        .unwrap_or(f64::NAN);
    let time_rows: Vec<Vec<String>> = family
        .iter()
        .map(|(name, _, ms)| {
            vec![
                name.clone(),
                format!("{ms:.1}"),
                format!("{:.1}", ms / shown.len() as f64),
                format!("{:.1}x", ms / grad_ms),
            ]
        })
        .collect();
    for r in &time_rows {
        println!("time {:12} {:>8} ms  {:>7} ms/img  {:>7}", r[0], r[1], r[2], r[3]);
    }
    let _ = html_table(
        &["method", "ms (all images)", "ms per image", "vs Grad-CAM"],
        &time_rows,
    )?;

    // %% code: every method on the evaluation images: map mass on the object, pointing game.
    let mut mask_rows = Vec::new();
    let mut shares = Vec::new();
    for (name, m) in &methods {
        let t = Instant::now();
        let maps = m.attribute(&trained.model, &ev_xs, &Target::Predicted)?;
        let ms = t.elapsed().as_secs_f64() * 1e3 / n_eval as f64;
        let (share, hit) = mask_scores(&maps, &ev_masks)?;
        let hits = hit.iter().filter(|&&h| h).count() as f64 / n_eval as f64;
        shares.push(mean(&share));
        mask_rows.push(vec![
            name.to_string(),
            format!("{:.2}", mean(&share)),
            format!("{hits:.2}"),
            format!("{ms:.1}"),
        ]);
    }
    mask_rows.push(vec![
        "(uniform map)".into(),
        format!("{area:.2}"),
        format!("{area:.2}"),
        "-".into(),
    ]);
    for r in &mask_rows {
        println!(
            "mask {:14} mass {}  pointing {}  {} ms/img",
            r[0], r[1], r[2], r[3]
        );
    }
    let _ = html_table(
        &[
            "method",
            "map mass on the object",
            "pointing game",
            "ms per image",
        ],
        &mask_rows,
    )?;

    // %% code figure: the map mass on the object as bars.
    let fig = {
        let mut labels: Vec<String> = methods.iter().map(|(n, _)| n.to_string()).collect();
        labels.push("uniform map".into());
        let mut values = shares.clone();
        values.push(area);
        let mut bars = BarChart::new(labels, values);
        bars.title = format!("Map mass on the object, {n_eval} images");
        bars.highlight = Some(methods.len());
        bars.max = Some(1.0);
        bars.width = 480;
        bars.figure()
    };
    fig.save(out.join("mask-share.png"))?;
    println!("wrote {}", out.display());
    Ok(())
}
