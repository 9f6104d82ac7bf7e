//! Speed of the attribution methods, as ratios measured in one run (issues 4 and 5, "Speed").
//!
//! `cargo bench --bench attribution` (`make bench` runs every bench). Set `OMP_WAIT_POLICY=PASSIVE`
//! on shared machines (scripts/env.sh does). Options, as arguments after `--` or environment
//! variables:
//! - `--quick` / `BENCH_QUICK=1`: the small CNN only, 3 timed runs per method, the slow methods at
//!   batch 1 only;
//! - `--full` / `BENCH_FULL=1`: also the slow methods (Integrated Gradients, SmoothGrad, Score-CAM,
//!   occlusion, LIME) on ResNet-18 at batch 16 (several minutes each on 2 cores);
//! - `BENCH_THREADS=n`: libtorch's intra-op threads (default: libtorch's own choice);
//! - `BENCH_MODEL=resnet18|small_cnn`, `BENCH_BATCH=1|16`: one model, one batch size;
//! - `BENCH_GROUPS=ig_sg,score_cam,occlusion_lime`: which groups of slow methods run (default all).
//!
//! It calls `runtime::keep_freed_memory()` first, as the README tells users to; both sides of every
//! ratio run in this process.
//!
//! The targets: saliency at most 1.05x the floor; each gradient CAM at most 1.1x a forward to the
//! layer, the rest of the forward and a backward that stops at the layer, timed alone; Integrated
//! Gradients and SmoothGrad no slower than Captum (36x and 16x the floor, measured on ResNet-18 at
//! batch 1, so only checked on ResNet-18); Score-CAM, occlusion and LIME at most 1.1x their forward
//! passes timed alone at the same batch size.
//!
//! For each model (ResNet-18 at 224x224, the small CNN at 64x64, random weights) and batch size (1,
//! 16), every method is timed interleaved with the quantities it is compared with (the floor: one
//! forward plus a backward to the input; or the method's own forward passes alone), so drifts in the
//! machine's load hit both sides of a ratio alike. Each time is the median of the timed runs after
//! warm-up runs; the table gives seconds per image. It is printed as Markdown and written to
//! `target/bench/attribution.md` and `.json`.

use cnn_explain::attribution::cam::{
    CamContext, GradCam, GradCamPlusPlus, HiResCam, LayerCam, ScoreCam, XGradCam,
};
use cnn_explain::attribution::gradient::{IntegratedGradients, Saliency};
use cnn_explain::attribution::lime::Lime;
use cnn_explain::attribution::noise::NoiseTunnel;
use cnn_explain::attribution::occlusion::Occlusion;
use cnn_explain::io::write_atomic;
use cnn_explain::models::{build, Arch};
use cnn_explain::prelude::*;
use cnn_explain::rng::Rng;
use serde::Serialize;
use std::path::PathBuf;
use std::time::Instant;
use tch::nn;

/// Captum on ResNet-18, 224x224, batch 1, 2 cores, as multiples of the floor
/// (/work/shared/TOOLCHAIN.md, "Timing"): the "no slower than Captum" targets.
const CAPTUM_IG50: f64 = 36.0;
const CAPTUM_SMOOTHGRAD25: f64 = 16.0;

type Job<'a> = Box<dyn FnMut() -> Result<()> + 'a>;

/// One line of the table.
#[derive(Debug, Clone, Serialize)]
struct Row {
    method: String,
    model: String,
    batch: i64,
    /// Median seconds per call divided by the batch size.
    seconds_per_image: f64,
    /// Time divided by the floor's (forward + backward to the input, same model and batch).
    ratio_to_floor: f64,
    /// What the target compares with ("floor", "fwd + layer bwd", "its forwards alone", ...).
    reference: String,
    /// Time divided by the reference's time.
    ratio_to_reference: Option<f64>,
    /// The target, as text.
    target: String,
    /// Whether the ratio meets the target (`None`: no target).
    pass: Option<bool>,
    /// Timed runs behind each median.
    runs: usize,
}

struct Settings {
    quick: bool,
    full: bool,
    /// Which slow groups run (`ig_sg`, `score_cam`, `occlusion_lime`); all by default.
    groups: Option<Vec<String>>,
}

impl Settings {
    fn runs(&self, group: &str) -> bool {
        self.groups.as_ref().is_none_or(|g| g.iter().any(|x| x == group))
    }
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    match v.len() {
        0 => f64::NAN,
        n if n % 2 == 1 => v[n / 2],
        n => (v[n / 2 - 1] + v[n / 2]) / 2.0,
    }
}

/// Runs `jobs` in turn, `warm` untimed rounds then `reps` timed rounds; each job's median seconds.
fn interleaved(warm: usize, reps: usize, jobs: &mut [Job]) -> Result<Vec<f64>> {
    for _ in 0..warm {
        for job in jobs.iter_mut() {
            job()?;
        }
    }
    let mut times = vec![Vec::with_capacity(reps); jobs.len()];
    for _ in 0..reps {
        for (job, t) in jobs.iter_mut().zip(times.iter_mut()) {
            sync();
            let start = Instant::now();
            job()?;
            sync();
            t.push(start.elapsed().as_secs_f64());
        }
    }
    Ok(times.into_iter().map(median).collect())
}

/// Waits for the GPU's queued work (CUDA runs asynchronously); nothing on the CPU.
fn sync() {
    if tch::Cuda::is_available() {
        tch::Cuda::synchronize(0);
    }
}

/// One forward in evaluation mode, no graph.
fn forward(model: &dyn Model, xs: &Tensor) -> Result<()> {
    let _ = tch::no_grad(|| model.logits(xs))?;
    Ok(())
}

/// The floor of gradient methods: one forward plus a backward to the input (predicted class).
fn floor(model: &dyn Model, xs: &Tensor) -> Result<()> {
    tch::with_grad(|| {
        let x = xs.detach().set_requires_grad(true);
        let logits = model.forward_t(&x, false);
        let classes = logits.argmax(1, true);
        let score = logits.gather(1, &classes, false).sum(Kind::Float);
        let _ = Tensor::f_run_backward(&[score], &[&x], false, false)?;
        Ok(())
    })
}

/// Forward passes alone, `sizes` images at a time, of copies of `xs`'s first image.
fn forwards(model: &dyn Model, xs: &Tensor, sizes: &[i64]) -> Result<()> {
    let s = xs.size();
    let max = sizes.iter().copied().max().unwrap_or(1);
    let many = xs
        .narrow(0, 0, 1)
        .expand([max, s[1], s[2], s[3]], false)
        .contiguous();
    for &b in sizes {
        forward(model, &(many.narrow(0, 0, b) * 0.5))?;
    }
    Ok(())
}

/// The floor's passes alone (forward + backward to the input), `sizes` images at a time, of copies of
/// `xs`'s first image: what Integrated Gradients and SmoothGrad run, without the method around them.
fn floors(model: &dyn Model, xs: &Tensor, sizes: &[i64]) -> Result<()> {
    let s = xs.size();
    let max = sizes.iter().copied().max().unwrap_or(1);
    let many = xs
        .narrow(0, 0, 1)
        .expand([max, s[1], s[2], s[3]], false)
        .contiguous();
    for &b in sizes {
        floor(model, &(many.narrow(0, 0, b) * 0.5))?;
    }
    Ok(())
}

/// Batch sizes of `total` rows taken `batch` at a time.
fn chunks(total: i64, batch: i64) -> Vec<i64> {
    let mut out = Vec::new();
    let mut left = total;
    while left > 0 {
        out.push(left.min(batch));
        left -= batch;
    }
    out
}

struct Case<'a> {
    model: &'a dyn Model,
    name: &'static str,
    layer: &'static str,
    xs: Tensor,
    batch: i64,
}

impl Case<'_> {
    #[allow(clippy::too_many_arguments)]
    fn row(
        &self,
        method: &str,
        secs: f64,
        floor: f64,
        reference: &str,
        ref_secs: Option<f64>,
        target: Option<(f64, &str)>,
        runs: usize,
    ) -> Row {
        let ratio_ref = ref_secs.map(|r| secs / r);
        let ratio_floor = secs / floor;
        let (target_text, pass) = match target {
            Some((limit, what)) => {
                let r = if what == "floor" {
                    ratio_floor
                } else {
                    ratio_ref.unwrap_or(f64::NAN)
                };
                (format!("<= {limit:.2}x {what}"), Some(r <= limit))
            }
            None => ("-".to_string(), None),
        };
        Row {
            method: method.to_string(),
            model: self.name.to_string(),
            batch: self.batch,
            seconds_per_image: secs / self.batch as f64,
            ratio_to_floor: ratio_floor,
            reference: reference.to_string(),
            ratio_to_reference: ratio_ref,
            target: target_text,
            pass,
            runs,
        }
    }
}

fn print_row(r: &Row) {
    println!("{}", markdown_row(r));
}

fn markdown_row(r: &Row) -> String {
    format!(
        "| {} | {} | {} | {:.4} | {:.2} | {} | {} | {} | {} |",
        r.method,
        r.model,
        r.batch,
        r.seconds_per_image,
        r.ratio_to_floor,
        r.reference,
        r.ratio_to_reference
            .map_or("-".to_string(), |v| format!("{v:.3}")),
        r.target,
        match r.pass {
            Some(true) => "pass",
            Some(false) => "FAIL",
            None => "-",
        }
    )
}

const HEADER: &str =
    "| method | model | batch | s / image | x floor | reference | x reference | target | pass |\n\
                      |---|---|---|---|---|---|---|---|---|";

fn bench_case(case: &Case, settings: &Settings, rows: &mut Vec<Row>) -> Result<()> {
    let (model, xs) = (case.model, &case.xs);
    let big = case.name == "resnet18";
    let reps = if settings.quick { 3 } else { 7 };
    let target = Target::Predicted;

    // Forward, floor, saliency.
    let saliency = Saliency::default();
    let t = interleaved(
        1,
        reps,
        &mut [
            Box::new(|| forward(model, xs)),
            Box::new(|| floor(model, xs)),
            Box::new(|| saliency.attribute(model, xs, &target).map(drop)),
        ],
    )?;
    let fl = t[1];
    for row in [
        case.row("forward", t[0], fl, "floor", None, None, reps),
        case.row(
            "floor (forward + backward to input)",
            t[1],
            fl,
            "floor",
            None,
            None,
            reps,
        ),
        case.row(
            "Saliency",
            t[2],
            fl,
            "floor",
            Some(fl),
            Some((1.05, "floor")),
            reps,
        ),
    ] {
        print_row(&row);
        rows.push(row);
    }

    // Gradient CAMs against a forward to the layer, the rest of the forward and a backward to the
    // layer (what `CamContext` does, timed alone).
    let layer = case.layer;
    let layer_pass = || -> Result<()> {
        let ctx = CamContext::new(model, xs, layer, &target)?;
        ctx.gradient().map(drop)
    };
    let cams: Vec<(&str, Box<dyn Attribution>)> = vec![
        ("Grad-CAM", Box::new(GradCam::new(layer))),
        ("Grad-CAM++", Box::new(GradCamPlusPlus::new(layer))),
        ("XGrad-CAM", Box::new(XGradCam::new(layer))),
        ("Layer-CAM", Box::new(LayerCam::new(layer))),
        ("HiResCAM", Box::new(HiResCam::new(layer))),
    ];
    let lp_name = format!("fwd + layer bwd ({layer})");
    for (name, cam) in &cams {
        let t = interleaved(
            1,
            reps,
            &mut [
                Box::new(|| cam.attribute(model, xs, &target).map(drop)),
                Box::new(layer_pass),
                Box::new(|| floor(model, xs)),
            ],
        )?;
        let row = case.row(
            name,
            t[0],
            t[2],
            &lp_name,
            Some(t[1]),
            Some((1.1, "reference")),
            reps,
        );
        print_row(&row);
        rows.push(row);
        if *name == "Grad-CAM" {
            let row = case.row(&lp_name, t[1], t[2], "floor", Some(t[2]), None, reps);
            print_row(&row);
            rows.push(row);
        }
    }

    if case.batch > 1 && ((big && !settings.full) || settings.quick) {
        println!(
            "(slow methods on {} at batch {} skipped; {} runs them)",
            case.name,
            case.batch,
            if big { "--full" } else { "the default mode" }
        );
        return Ok(());
    }
    // Slow methods (tens to thousands of forward passes per image): fewer runs, and no warm-up
    // where one run takes long (the model is warm from the fast methods above).
    let (warm, reps) = if big || case.batch > 1 {
        (0, 3)
    } else if settings.quick {
        (1, 3)
    } else {
        (1, 5)
    };

    let ig = IntegratedGradients {
        steps: 50,
        batch: 50,
        ..Default::default()
    };
    let sg = NoiseTunnel::smooth(Saliency::default()); // 25 samples, 25 per batch
                                                       // The Captum targets were measured on ResNet-18 only.
    let captum = |limit: f64| big.then_some((limit, "floor"));
    if settings.runs("ig_sg") {
        // Their forward + backward passes alone at their internal batch sizes, to tell the
        // method's overhead from libtorch's cost of large batches.
        let ig_sizes = chunks(case.batch * ig.steps as i64, ig.batch as i64);
        let sg_sizes = chunks(case.batch * sg.samples as i64, sg.batch as i64);
        let t = interleaved(
            warm,
            reps,
            &mut [
                Box::new(|| ig.attribute(model, xs, &target).map(drop)),
                Box::new(|| floors(model, xs, &ig_sizes)),
                Box::new(|| sg.attribute(model, xs, &target).map(drop)),
                Box::new(|| floors(model, xs, &sg_sizes)),
                Box::new(|| floor(model, xs)),
            ],
        )?;
        let ig_alone = "IG fwd + bwd passes alone (batch 50)";
        let sg_alone = "SmoothGrad fwd + bwd passes alone (batch 25)";
        for row in [
            case.row(
                "Integrated Gradients (50 steps, batch 50)",
                t[0],
                t[4],
                ig_alone,
                Some(t[1]),
                captum(CAPTUM_IG50),
                reps,
            ),
            case.row(ig_alone, t[1], t[4], "floor", Some(t[4]), None, reps),
            case.row(
                "SmoothGrad (25 samples)",
                t[2],
                t[4],
                sg_alone,
                Some(t[3]),
                captum(CAPTUM_SMOOTHGRAD25),
                reps,
            ),
            case.row(sg_alone, t[3], t[4], "floor", Some(t[4]), None, reps),
        ] {
            print_row(&row);
            rows.push(row);
        }
    }

    // Score-CAM: one masked forward per channel of the layer, 32 at a time over all samples.
    let score_cam = ScoreCam::new(layer);
    let channels = tch::no_grad(|| model.forward_to(&xs.narrow(0, 0, 1), layer))?.size()[1];
    let score_sizes = chunks(case.batch * channels, score_cam.weights.batch as i64);
    let score_name = format!("Score-CAM masked forwards alone ({} x {channels})", case.batch);
    if settings.runs("score_cam") {
        let t = interleaved(
            warm,
            reps,
            &mut [
                Box::new(|| score_cam.attribute(model, xs, &target).map(drop)),
                Box::new(|| forwards(model, xs, &score_sizes)),
                Box::new(|| floor(model, xs)),
            ],
        )?;
        for row in [
            case.row(
                "Score-CAM",
                t[0],
                t[2],
                &score_name,
                Some(t[1]),
                Some((1.1, "reference")),
                reps,
            ),
            case.row(&score_name, t[1], t[2], "floor", Some(t[2]), None, reps),
        ] {
            print_row(&row);
            rows.push(row);
        }
    }
    if !settings.runs("occlusion_lime") {
        return Ok(());
    }

    // Occlusion (16x16 window, stride 8, batch 64) and LIME (1,000 samples, batch 64) against their
    // forward passes alone at the same batch sizes: one forward of the batch for the classes, then
    // per image the perturbed copies in batches of 64.
    let h = xs.size()[2];
    let occlusion = Occlusion {
        window: (16, 16),
        stride: (8, 8),
        ..Default::default()
    };
    let windows = occlusion.positions(h, h)? as i64;
    let mut occ_sizes = vec![case.batch];
    let mut lime_sizes = vec![case.batch];
    let lime = Lime {
        samples: 1000,
        batch: 64,
        ..Default::default()
    };
    for _ in 0..case.batch {
        occ_sizes.extend(chunks(windows, occlusion.batch as i64));
        lime_sizes.extend(chunks(lime.samples as i64, lime.batch as i64));
    }
    let occ_name = format!("occlusion forwards alone ({windows} windows)");
    let lime_name = "LIME forwards alone (1,000 samples)".to_string();
    let t = interleaved(
        warm,
        reps,
        &mut [
            Box::new(|| occlusion.attribute(model, xs, &target).map(drop)),
            Box::new(|| forwards(model, xs, &occ_sizes)),
            Box::new(|| lime.attribute(model, xs, &target).map(drop)),
            Box::new(|| forwards(model, xs, &lime_sizes)),
            Box::new(|| floor(model, xs)),
        ],
    )?;
    for row in [
        case.row(
            "Occlusion (16x16, stride 8, batch 64)",
            t[0],
            t[4],
            &occ_name,
            Some(t[1]),
            Some((1.1, "reference")),
            reps,
        ),
        case.row(&occ_name, t[1], t[4], "floor", Some(t[4]), None, reps),
        case.row(
            "LIME (1,000 samples, batch 64)",
            t[2],
            t[4],
            &lime_name,
            Some(t[3]),
            Some((1.1, "reference")),
            reps,
        ),
        case.row(&lime_name, t[3], t[4], "floor", Some(t[4]), None, reps),
    ] {
        print_row(&row);
        rows.push(row);
    }
    Ok(())
}

fn flag(arg: &str, env: &str) -> bool {
    std::env::args().any(|a| a == arg) || std::env::var(env).is_ok_and(|v| !v.is_empty() && v != "0")
}

fn main() -> Result<()> {
    let settings = Settings {
        quick: flag("--quick", "BENCH_QUICK"),
        full: flag("--full", "BENCH_FULL"),
        groups: std::env::var("BENCH_GROUPS")
            .ok()
            .map(|v| v.split(',').map(|g| g.trim().to_string()).collect()),
    };
    let only_model = std::env::var("BENCH_MODEL").ok();
    let only_batch = std::env::var("BENCH_BATCH")
        .ok()
        .and_then(|v| v.parse::<i64>().ok());
    if let Some(n) = std::env::var("BENCH_THREADS")
        .ok()
        .and_then(|v| v.parse::<i32>().ok())
    {
        tch::set_num_threads(n);
    }
    // As the README tells users to (both sides of every ratio run in this process).
    let kept = cnn_explain::runtime::keep_freed_memory()?;
    // The first GPU when there is one (the ratios compare the crate with itself on one device).
    let device = Device::cuda_if_available();
    println!(
        "attribution speed: {device:?}, {} threads, OMP_WAIT_POLICY={}, keep_freed_memory {kept}, {}",
        tch::get_num_threads(),
        std::env::var("OMP_WAIT_POLICY").unwrap_or_else(|_| "(unset: set PASSIVE on shared machines)".into()),
        if settings.quick {
            "quick"
        } else if settings.full {
            "full"
        } else {
            "default"
        }
    );
    let vs = nn::VarStore::new(device);
    let resnet = build(Arch::ResNet18, &(vs.root() / "resnet18"), 1000)?;
    let small = build(Arch::SmallCnn, &(vs.root() / "small"), 6)?;
    let mut cases: Vec<(&dyn Model, &'static str, &'static str, i64)> = Vec::new();
    if !settings.quick {
        cases.push((&resnet, "resnet18", "layer4", 224));
    }
    cases.push((&small, "small_cnn", "block3", 64));

    let mut rows = Vec::new();
    println!("{HEADER}");
    for &(model, name, layer, size) in &cases {
        if only_model.as_deref().is_some_and(|m| m != name) {
            continue;
        }
        for batch in [1i64, 16] {
            if only_batch.is_some_and(|b| b != batch) {
                continue;
            }
            // Smooth random images, so that SLIC finds regions and the classes vary.
            let xs = Rng::new(1)
                .uniform_tensor(&[batch, 3, 16, 16], device)
                .upsample_bilinear2d([size, size], false, None, None);
            let case = Case {
                model,
                name,
                layer,
                xs,
                batch,
            };
            bench_case(&case, &settings, &mut rows)?;
        }
    }

    let mut md = format!(
        "Attribution speed ({} threads; medians; seconds per image; `x floor`: time / (forward + backward to the input) \
         of the same model and batch, measured interleaved in the same run).\n\n{HEADER}\n",
        tch::get_num_threads()
    );
    for r in &rows {
        md.push_str(&markdown_row(r));
        md.push('\n');
    }
    let dir =
        PathBuf::from(std::env::var("CARGO_TARGET_DIR").unwrap_or_else(|_| "target".into())).join("bench");
    std::fs::create_dir_all(&dir).map_err(|e| Error::io(&dir, e))?;
    write_atomic(dir.join("attribution.md"), md.as_bytes())?;
    let json = serde_json::to_string_pretty(&rows).map_err(|e| Error::invalid("json", e.to_string()))?;
    write_atomic(dir.join("attribution.json"), json.as_bytes())?;
    println!(
        "\n{md}\nwritten to {}",
        dir.join("attribution.{md,json}").display()
    );
    Ok(())
}
