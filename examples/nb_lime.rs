//! Generated from `notebooks/src/lime.txt` by `notebooks/src/spec2example.py`: the code of
//! `notebooks/lime.ipynb`, cell by cell, with each figure saved to `target/nb-lime/NN.png`.
//!
//! `CNN_EXPLAIN_CACHE=/work/main/.cache/models-full cargo run --example nb_lime`
//! (`CNN_EXPLAIN_QUICK=1` for the quick mode).
#![allow(clippy::needless_range_loop)]
use cnn_explain::attribution::cam::GradCam;
use cnn_explain::attribution::lime::{mark_boundaries, to_rgb_image, Fill, Lime, LimeExplanation, Sign};
use cnn_explain::notebook::{pick, trained_default, Trained};
use cnn_explain::prelude::*;
use cnn_explain::segmentation::Slic;
use cnn_explain::viz::{html_table, overlay, Colormap, Draw, ImageGrid, LineChart, Series};

fn main() -> cnn_explain::Result<()> {
    let out = std::path::Path::new("target/nb-lime");
    let trained = trained_default()?;
    let names: Vec<String> = trained.data.test.class_names.clone();
    let eval = evaluate(&trained.model, &trained.data.test, 256)?;
    println!(
        "test accuracy {:.3}, {} misclassified of {}",
        eval.accuracy,
        eval.misclassified().len(),
        eval.labels.len()
    );
    println!("layers: {:?}", trained.model.layers());
    let correct: Vec<usize> = (0..names.len() as i64)
        .filter_map(|c| (0..eval.labels.len()).find(|&i| eval.labels[i] == c && eval.predicted[i] == c))
        .collect();
    // The first misclassified images; a model without errors gets its least confident ones instead.
    let wrong: Vec<usize> = match eval.misclassified() {
        w if w.is_empty() => eval.lowest_margin(pick(3, 2)),
        w => w.into_iter().take(pick(3, 2)).collect(),
    };
    fn test_image(t: &Trained, i: usize) -> Tensor {
        t.data.test.images.get(i as i64)
    }

    let fig = {
        let settings = [(25usize, 10.0), (40, 10.0), (25, 30.0), (40, 30.0)];
        let mut imgs = Vec::new();
        let mut titles = Vec::new();
        for &i in correct.iter().take(4) {
            for &(n, compactness) in &settings {
                let seg = Slic {
                    segments: n,
                    compactness,
                    ..Default::default()
                }
                .segment(&test_image(&trained, i))?;
                imgs.push(to_rgb_image(&mark_boundaries(
                    &test_image(&trained, i),
                    &seg,
                    [1.0, 1.0, 0.0],
                )?)?);
                titles.push(format!("{n} asked, c={compactness}: {}", seg.count()));
            }
        }
        ImageGrid {
            titles,
            row_labels: correct
                .iter()
                .take(4)
                .map(|&i| names[eval.labels[i] as usize].clone())
                .collect(),
            title: "SLIC superpixels: segments asked, compactness c, segments found".into(),
            cell: 150,
            ..ImageGrid::new(imgs, settings.len())
        }
        .figure()
    };
    fig.save(out.join("01.png"))?;

    let lime = Lime {
        samples: pick(1000, 200),
        segmentation: Slic {
            segments: 40,
            compactness: 30.0,
            ..Default::default()
        },
        fill: Fill::Mean,
        seed: 0,
        ..Default::default()
    };
    for fill in [Fill::Mean, Fill::Constant(0.5), Fill::Blur { sigma: 4.0 }] {
        let l = Lime {
            fill,
            samples: pick(500, 100),
            ..lime.clone()
        };
        let (mut r2, mut drop, mut n) = (0.0, 0.0, 0.0);
        for &i in correct.iter().take(3) {
            let e = l.explain(&trained.model, &test_image(&trained, i), &Target::Predicted)?;
            r2 += e.r2;
            drop += e.score - e.intercept;
            n += 1.0;
        }
        println!(
            "fill {fill:?}: mean R² {:.2}, mean score - intercept {:.2}",
            r2 / n,
            drop / n
        );
    }

    let lime = Lime {
        fill: Fill::Constant(0.5),
        ..lime
    };
    let mut rows: Vec<Vec<String>> = Vec::new();
    /// Appends the four views of `e` for `x` (and their titles) to `grid`.
    fn add_views(grid: &mut ImageGrid, x: &Tensor, e: &LimeExplanation, names: &[String]) -> Result<()> {
        grid.images.extend([
            to_rgb_image(&e.boundaries(x, [1.0, 1.0, 0.0])?)?,
            to_rgb_image(&e.keep_top(x, 5, Sign::Positive, 0.5)?)?,
            to_rgb_image(&e.keep_top(x, 5, Sign::Negative, 0.5)?)?,
            to_rgb_image(&mark_boundaries(&e.heatmap(), &e.segments, [0.6, 0.6, 0.6])?)?,
        ]);
        let best = |sign| e.top(1, sign).first().map_or(0.0, |&j| e.weights[j]);
        grid.titles.extend([
            format!("p({})={:.2}", names[e.class as usize], e.score),
            format!(
                "{} for, max {:+.3}",
                e.top(5, Sign::Positive).len(),
                best(Sign::Positive)
            ),
            format!(
                "{} against, {:+.3}",
                e.top(5, Sign::Negative).len(),
                best(Sign::Negative)
            ),
            format!("R²={:.2} b={:.2}", e.r2, e.intercept),
        ]);
        Ok(())
    }
    fn table_row(i: usize, truth: &str, e: &LimeExplanation, names: &[String]) -> Vec<String> {
        vec![
            format!("#{i}"),
            truth.to_string(),
            names[e.class as usize].clone(),
            format!("{:.3}", e.score),
            format!("{:.3}", e.intercept),
            format!("{:.2}", e.r2),
            e.segments.count().to_string(),
        ]
    }
    let fig = {
        let mut grid = ImageGrid {
            title: format!("LIME, correctly classified ({} samples, grey fill)", lime.samples),
            cell: 150,
            ..ImageGrid::new(Vec::new(), 4)
        };
        for &i in correct.iter().take(4) {
            let x = test_image(&trained, i);
            let e = lime.explain(&trained.model, &x, &Target::Predicted)?;
            add_views(&mut grid, &x, &e, &names)?;
            grid.row_labels
                .push(format!("{} (#{i})", names[eval.labels[i] as usize]));
            rows.push(table_row(i, &names[eval.labels[i] as usize], &e, &names));
        }
        grid.figure()
    };
    fig.save(out.join("02.png"))?;

    let fig = {
        let mut grid = ImageGrid {
            title: "LIME, misclassified: the predicted and the true class".into(),
            cell: 150,
            ..ImageGrid::new(Vec::new(), 4)
        };
        for &i in &wrong {
            let (t, p) = (eval.labels[i], eval.predicted[i]);
            let x = test_image(&trained, i);
            for (what, class) in [("pred", p), ("true", t)] {
                let e = lime.explain(&trained.model, &x, &Target::Class(class))?;
                add_views(&mut grid, &x, &e, &names)?;
                grid.row_labels
                    .push(format!("#{i} {what}: {}", names[class as usize]));
                rows.push(table_row(i, &names[t as usize], &e, &names));
            }
        }
        grid.figure()
    };
    fig.save(out.join("03.png"))?;

    for r in &rows {
        println!("{}", r.join(" | "));
    }
    let _shown = html_table(
        &[
            "image",
            "true",
            "explained",
            "score",
            "intercept",
            "R²",
            "superpixels",
        ],
        &rows,
    )?;

    let sample_counts: Vec<usize> = pick(vec![100, 300, 1000], vec![50, 200]);
    let fig = {
        let i0 = correct.first().copied().unwrap_or(0);
        let x = test_image(&trained, i0);
        let mut imgs = Vec::new();
        let mut titles = Vec::new();
        for seed in [0u64, 1] {
            for &n in &sample_counts {
                let e = Lime {
                    samples: n,
                    seed,
                    ..lime.clone()
                }
                .explain(&trained.model, &x, &Target::Predicted)?;
                imgs.push(to_rgb_image(&mark_boundaries(
                    &e.heatmap(),
                    &e.segments,
                    [0.6, 0.6, 0.6],
                )?)?);
                titles.push(format!("n={n} R²={:.2}", e.r2));
            }
        }
        ImageGrid {
            titles,
            row_labels: vec!["seed 0".into(), "seed 1".into()],
            title: format!("Weights of image #{i0} by number of samples and seed"),
            cell: 150,
            ..ImageGrid::new(imgs, sample_counts.len())
        }
        .figure()
    };
    fig.save(out.join("04.png"))?;

    fn pearson(a: &[f64], b: &[f64]) -> f64 {
        let n = a.len().min(b.len()) as f64;
        let (ma, mb) = (a.iter().sum::<f64>() / n, b.iter().sum::<f64>() / n);
        let (mut sab, mut saa, mut sbb) = (0.0, 0.0, 0.0);
        for (x, y) in a.iter().zip(b) {
            sab += (x - ma) * (y - mb);
            saa += (x - ma) * (x - ma);
            sbb += (y - mb) * (y - mb);
        }
        if saa > 0.0 && sbb > 0.0 {
            sab / (saa * sbb).sqrt()
        } else {
            0.0
        }
    }
    let fig = {
        let probe: Vec<usize> = correct.iter().copied().take(pick(4, 2)).collect();
        let (mut r2s, mut corrs, mut overlaps) = (Vec::new(), Vec::new(), Vec::new());
        for &n in &sample_counts {
            let (mut r2, mut corr, mut ov) = (0.0, 0.0, 0.0);
            for &i in &probe {
                let x = test_image(&trained, i);
                let a = Lime {
                    samples: n,
                    seed: 0,
                    ..lime.clone()
                }
                .explain(&trained.model, &x, &Target::Predicted)?;
                let b = Lime {
                    samples: n,
                    seed: 1,
                    ..lime.clone()
                }
                .explain(&trained.model, &x, &Target::Predicted)?;
                r2 += (a.r2 + b.r2) / 2.0;
                corr += pearson(&a.weights, &b.weights);
                let (ta, tb) = (a.top(5, Sign::Positive), b.top(5, Sign::Positive));
                ov += ta.iter().filter(|x| tb.contains(x)).count() as f64 / ta.len().max(1) as f64;
            }
            let m = probe.len() as f64;
            println!(
                "samples {n}: mean R² {:.2}, seed-to-seed weight correlation {:.2}, top-5 overlap {:.2}",
                r2 / m,
                corr / m,
                ov / m
            );
            r2s.push(r2 / m);
            corrs.push(corr / m);
            overlaps.push(ov / m);
        }
        let mut chart = LineChart::new(vec![
            Series::new("R² (weighted, mean)", r2s),
            Series::new("weights corr., seed 0 vs 1", corrs),
            Series::new("top-5 overlap, seed 0 vs 1", overlaps),
        ]);
        chart.x = sample_counts.iter().map(|&n| n as f64).collect();
        chart.title = format!("LIME vs number of samples ({} images)", probe.len());
        chart.x_desc = "samples".into();
        chart.y_range = Some((0.0, 1.0));
        chart.figure()
    };
    fig.save(out.join("05.png"))?;

    fn per_segment_mean(map: &Tensor, e: &LimeExplanation) -> Result<Vec<f64>> {
        let values = Vec::<f32>::try_from(map.flatten(0, -1).to_kind(Kind::Float))?;
        let k = e.segments.count();
        let (mut sum, mut n) = (vec![0.0f64; k], vec![0usize; k]);
        for (&l, &v) in e.segments.labels().iter().zip(&values) {
            sum[l as usize] += v as f64;
            n[l as usize] += 1;
        }
        Ok(sum.iter().zip(&n).map(|(s, &c)| s / c.max(1) as f64).collect())
    }
    let fig = {
        let cam = GradCam::new("block3");
        let chosen: Vec<usize> = correct
            .iter()
            .copied()
            .take(3)
            .chain(wrong.iter().copied())
            .collect();
        let mut imgs = Vec::new();
        let mut titles = Vec::new();
        let mut labels = Vec::new();
        for &i in &chosen {
            let x = test_image(&trained, i);
            let e = lime.explain(&trained.model, &x, &Target::Predicted)?;
            let cmap = cam
                .attribute(&trained.model, &x.unsqueeze(0), &Target::Predicted)?
                .view([64, 64]);
            let wmap = e.weight_map().clamp_min(0.0);
            let mx = wmap.max().double_value(&[]);
            let wmap = if mx > 0.0 { wmap / mx } else { wmap };
            let corr = pearson(&e.weights, &per_segment_mean(&cmap, &e)?);
            println!(
                "image #{i} ({} -> {}): LIME vs Grad-CAM per-superpixel correlation {corr:.2}",
                names[eval.labels[i] as usize], names[e.class as usize]
            );
            imgs.push(to_rgb_image(&x)?);
            imgs.push(overlay(&x, &wmap, Colormap::Jet, 0.5, false)?);
            imgs.push(overlay(&x, &cmap, Colormap::Jet, 0.5, false)?);
            titles.extend([
                format!("pred {}", names[e.class as usize]),
                format!("LIME + R²={:.2}", e.r2),
                format!("Grad-CAM r={corr:.2}"),
            ]);
            labels.push(format!("#{i} {}", names[eval.labels[i] as usize]));
        }
        ImageGrid {
            titles,
            row_labels: labels,
            title: "LIME (+ weights) and Grad-CAM (block3)".into(),
            cell: 150,
            ..ImageGrid::new(imgs, 3)
        }
        .figure()
    };
    fig.save(out.join("06.png"))?;
    println!("wrote {}", out.display());
    Ok(())
}
