//! `cnn-explain explain` and `cnn-explain merge`: attribution maps of selected images, sharded.

use crate::common::{self, check_format, write_json};
use crate::SourceArgs;
use clap::Args;
use cnn_explain::attribution::cam::{
    ClassActivationMap, EigenCam, GradCam, GradCamPlusPlus, HiResCam, IsCam, LayerCam, ScoreCam,
    SmoothGradCamPlusPlus, SsCam, XGradCam,
};
use cnn_explain::attribution::lime::Lime;
use cnn_explain::attribution::occlusion::Occlusion;
use cnn_explain::attribution::{
    Attribution, InputXGradient, IntegratedGradients, NoiseTunnel, Saliency, Target,
};
use cnn_explain::data::convert::rgb_image_to_tensor;
use cnn_explain::data::folder::{load_image, FolderConfig};
use cnn_explain::eval::{evaluate, most_unstable, predict_proba, Shard};
use cnn_explain::models::Model;
use cnn_explain::rng::Rng;
use cnn_explain::train::History;
use cnn_explain::viz::{
    escape_html, overlay, tensor_to_image, BarChart, Colormap, Draw, Figure, ImageGrid, Normalization,
};
use cnn_explain::{Error, Result};
use plotters::prelude::*;
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use tch::{Kind, Tensor};

/// `format` of an explanation folder's `index.json`.
pub const INDEX_FORMAT: &str = "cnn-explain-explanations";
/// `format` of the per-image JSON files.
pub const IMAGE_FORMAT: &str = "cnn-explain-explanation";
pub const VERSION: u32 = 1;

/// Method names on the command line, with what they are.
pub const METHODS: [(&str, &str); 19] = [
    (
        "saliency",
        "vanilla gradient, absolute value (Simonyan et al. 2014)",
    ),
    ("input-x-gradient", "input times gradient"),
    (
        "integrated-gradients",
        "Integrated Gradients, 50 steps, black baseline (Sundararajan et al. 2017)",
    ),
    (
        "smoothgrad",
        "SmoothGrad of the saliency, 25 samples (Smilkov et al. 2017)",
    ),
    ("smoothgrad-sq", "SmoothGrad squared"),
    ("vargrad", "VarGrad"),
    ("cam", "CAM (Zhou et al. 2016)"),
    ("grad-cam", "Grad-CAM (Selvaraju et al. 2017)"),
    ("grad-cam++", "Grad-CAM++ (Chattopadhay et al. 2018)"),
    ("smooth-grad-cam++", "Smooth Grad-CAM++ (Omeiza et al. 2019)"),
    ("xgrad-cam", "XGrad-CAM (Fu et al. 2020)"),
    ("layer-cam", "Layer-CAM (Jiang et al. 2021)"),
    ("hires-cam", "HiResCAM (Draelos & Carin 2020)"),
    ("score-cam", "Score-CAM (Wang et al. 2020)"),
    ("ss-cam", "SS-CAM (Wang et al. 2020)"),
    ("is-cam", "IS-CAM (Naidu et al. 2020)"),
    ("eigen-cam", "Eigen-CAM (Muhammad & Yeasin 2020)"),
    (
        "occlusion",
        "occlusion, window a quarter of the image, stride half the window (Zeiler & Fergus 2014)",
    ),
    (
        "lime",
        "LIME on SLIC superpixels, 1000 samples (Ribeiro et al. 2016)",
    ),
];

fn known_methods() -> String {
    METHODS.iter().map(|(n, _)| *n).collect::<Vec<_>>().join(", ")
}

pub fn method(name: &str, layer: &str, seed: u64, image_size: i64) -> Result<Box<dyn Attribution>> {
    let noise = |n: NoiseTunnel<Saliency>| NoiseTunnel { seed, ..n };
    Ok(match name {
        "saliency" => Box::new(Saliency::default()),
        "input-x-gradient" => Box::new(InputXGradient),
        "integrated-gradients" => Box::new(IntegratedGradients::default()),
        "smoothgrad" => Box::new(noise(NoiseTunnel::smooth(Saliency::default()))),
        "smoothgrad-sq" => Box::new(noise(NoiseTunnel::smooth_squared(Saliency::default()))),
        "vargrad" => Box::new(noise(NoiseTunnel::var_grad(Saliency::default()))),
        "cam" => Box::new(ClassActivationMap::new(layer)),
        "grad-cam" => Box::new(GradCam::new(layer)),
        "grad-cam++" => Box::new(GradCamPlusPlus::new(layer)),
        "smooth-grad-cam++" => {
            let mut m = SmoothGradCamPlusPlus::new(layer);
            m.weights.seed = seed;
            Box::new(m)
        }
        "xgrad-cam" => Box::new(XGradCam::new(layer)),
        "layer-cam" => Box::new(LayerCam::new(layer)),
        "hires-cam" => Box::new(HiResCam::new(layer)),
        "score-cam" => Box::new(ScoreCam::new(layer)),
        "ss-cam" => {
            let mut m = SsCam::new(layer);
            m.weights.seed = seed;
            Box::new(m)
        }
        "is-cam" => Box::new(IsCam::new(layer)),
        "eigen-cam" => Box::new(EigenCam::new(layer)),
        "occlusion" => {
            let w = (image_size / 4).max(1);
            Box::new(Occlusion {
                window: (w, w),
                stride: ((w / 2).max(1), (w / 2).max(1)),
                ..Default::default()
            })
        }
        "lime" => Box::new(Lime {
            seed,
            ..Default::default()
        }),
        other => {
            return Err(Error::invalid(
                "methods",
                format!("unknown method `{other}`; known methods: {}", known_methods()),
            ))
        }
    })
}

#[derive(Args, Debug)]
pub struct ExplainArgs {
    #[command(flatten)]
    pub source: SourceArgs,
    /// Which images: misclassified, low-confidence, unstable (changed prediction most across epochs),
    /// random or all.
    #[arg(long, default_value = "misclassified")]
    pub select: String,
    /// At most this many images (all: every image of the split).
    #[arg(long, default_value_t = 16)]
    pub count: usize,
    /// Seed of the random selection and of the sampling methods.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Explain these image files instead of a selection (repeatable).
    #[arg(long)]
    pub image: Vec<PathBuf>,
    /// Split the selection is drawn from: test, val or train.
    #[arg(long, default_value = "test")]
    pub split: String,
    /// Methods, comma separated (`all` for every one); `--methods list` prints the known ones.
    #[arg(long, default_value = "saliency,grad-cam", value_delimiter = ',')]
    pub methods: Vec<String>,
    /// Classes to explain: predicted, true or top-k:K.
    #[arg(long, default_value = "predicted")]
    pub target: String,
    /// Layer of the CAM methods (default: the last stage before global pooling).
    #[arg(long)]
    pub layer: Option<String>,
    /// Process the I-th of N disjoint parts of the selection (0-based), e.g. for a job array.
    #[arg(long)]
    pub shard: Option<String>,
    /// Output folder (default: RUN/explain).
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// Images per forward pass when evaluating the split.
    #[arg(long, default_value_t = 64)]
    pub batch: usize,
}

#[derive(Args, Debug)]
pub struct MergeArgs {
    /// Output folders of `explain --shard I/N` or `quality --shard I/N` runs (all N of them).
    #[arg(required = true)]
    pub dirs: Vec<PathBuf>,
    /// Folder for the merged result.
    #[arg(long)]
    pub out: PathBuf,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
struct ItemSummary {
    rank: usize,
    stem: String,
    source: String,
    true_class: Option<String>,
    predicted: String,
    probability: f64,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
struct IndexFile {
    format: String,
    version: u32,
    source: String,
    split: Option<String>,
    select: String,
    count: Option<usize>,
    seed: u64,
    methods: Vec<String>,
    target: String,
    layer: String,
    /// Size of the whole selection (all shards).
    selected: usize,
    /// `I/N` for one shard's output, null for a whole (or merged) result.
    shard: Option<String>,
    items: Vec<ItemSummary>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
struct ClassRef {
    index: i64,
    name: String,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
struct ClassProb {
    index: i64,
    name: String,
    probability: f64,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
struct MapStats {
    method: String,
    /// The method's own name with its settings.
    description: String,
    /// Shape of the raw map (`[1, C, H, W]`).
    shape: Vec<i64>,
    min: f64,
    max: f64,
    mean: f64,
    mean_abs: f64,
    /// Share of the map's values that are > 0.
    positive_fraction: f64,
    /// `[y, x]` of the largest value of the displayed (normalised) map.
    peak: [i64; 2],
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
struct TargetMaps {
    index: i64,
    name: String,
    probability: f64,
    maps: Vec<MapStats>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
struct ImageFile {
    format: String,
    version: u32,
    rank: usize,
    source: String,
    split: Option<String>,
    dataset_index: Option<usize>,
    path: Option<String>,
    grid: String,
    true_class: Option<ClassRef>,
    predicted: ClassRef,
    /// Every class, most probable first.
    probabilities: Vec<ClassProb>,
    layer: String,
    targets: Vec<TargetMaps>,
}

enum TargetSpec {
    Predicted,
    True,
    TopK(usize),
}

fn parse_target(s: &str) -> Result<TargetSpec> {
    match s {
        "predicted" => Ok(TargetSpec::Predicted),
        "true" => Ok(TargetSpec::True),
        _ => match s.strip_prefix("top-k:").and_then(|k| k.parse::<usize>().ok()) {
            Some(k) if k >= 1 => Ok(TargetSpec::TopK(k)),
            _ => Err(Error::invalid(
                "target",
                format!("cannot read `{s}`; expected predicted, true or top-k:K with K >= 1"),
            )),
        },
    }
}

/// One image to explain.
struct Item {
    rank: usize,
    /// `[1, 3, H, W]` in `[0, 1]`.
    image: Tensor,
    label: Option<i64>,
    dataset_index: Option<usize>,
    path: Option<PathBuf>,
    source: String,
    stem: String,
}

fn sanitize(s: &str) -> String {
    s.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
                c
            } else {
                '_'
            }
        })
        .collect()
}

/// The method names of `--methods`, checked, without repeats; `None` after printing the known
/// methods for `--methods list`; `all` stands for every method.
pub fn parse_methods(given: &[String]) -> Result<Option<Vec<String>>> {
    if given.len() == 1 && given[0] == "list" {
        for (name, what) in METHODS {
            println!("{name:<22} {what}");
        }
        return Ok(None);
    }
    if given.len() == 1 && given[0] == "all" {
        return Ok(Some(METHODS.iter().map(|(n, _)| n.to_string()).collect()));
    }
    let mut methods: Vec<String> = Vec::new();
    for m in given.iter().map(|m| m.trim()).filter(|m| !m.is_empty()) {
        if !METHODS.iter().any(|(n, _)| *n == m) {
            return Err(Error::invalid(
                "methods",
                format!("unknown method `{m}`; known methods: {}", known_methods()),
            ));
        }
        if !methods.iter().any(|x| x == m) {
            methods.push(m.to_string());
        }
    }
    if methods.is_empty() {
        return Err(Error::invalid(
            "methods",
            format!("no method given; known methods: {}", known_methods()),
        ));
    }
    Ok(Some(methods))
}

pub fn run(a: ExplainArgs) -> Result<ExitCode> {
    // Cheap checks first, before data and model are loaded.
    let target = parse_target(&a.target)?;
    let shard = match &a.shard {
        Some(s) => s.parse::<Shard>()?,
        None => Shard::whole(),
    };
    let Some(methods) = parse_methods(&a.methods)? else {
        return Ok(ExitCode::SUCCESS);
    };
    let select = if a.image.is_empty() {
        a.select.clone()
    } else {
        "images".to_string()
    };
    if !matches!(
        select.as_str(),
        "misclassified" | "low-confidence" | "unstable" | "random" | "all" | "images"
    ) {
        return Err(Error::invalid(
            "select",
            format!(
                "unknown selection `{}`; expected misclassified, low-confidence, unstable, random or all",
                a.select
            ),
        ));
    }
    if a.count == 0 {
        return Err(Error::invalid("count", "must be at least 1"));
    }
    for p in &a.image {
        if !p.is_file() {
            return Err(Error::data(p, "image file not found"));
        }
    }

    let loaded = common::load_source(&a.source)?;
    let model = &loaded.model;
    let layer = match &a.layer {
        Some(l) => {
            model.check_layer(l)?;
            l.clone()
        }
        None => common::default_layer(model)?,
    };
    let out = match (&a.out, &loaded.run_dir) {
        (Some(o), _) => o.clone(),
        (None, Some(r)) => r.join("explain"),
        (None, None) => return Err(Error::invalid("out", "give the output folder with --out DIR")),
    };
    let class_names = loaded.splits.train.class_names.clone();
    let image_size = loaded.splits.train.image_shape().1;

    // The whole selection, in a fixed order; this shard's part of it.
    let (selection, split_name): (Vec<Item>, Option<String>) = if !a.image.is_empty() {
        let cfg = FolderConfig {
            size: image_size as u32,
            ..Default::default()
        };
        let mut items = Vec::new();
        for (rank, p) in a.image.iter().enumerate() {
            let label = p
                .parent()
                .and_then(|d| d.file_name())
                .and_then(|n| class_names.iter().position(|c| c.as_str() == n.to_string_lossy()))
                .map(|i| i as i64);
            let stem = p
                .file_stem()
                .map(|s| s.to_string_lossy().into_owned())
                .unwrap_or_default();
            items.push((rank, p.clone(), label, stem));
        }
        let items = shard
            .select(&items)
            .into_iter()
            .map(|(rank, p, label, stem)| -> Result<Item> {
                let img = load_image(&p, &cfg)?;
                Ok(Item {
                    rank,
                    image: rgb_image_to_tensor(&img).unsqueeze(0),
                    label,
                    dataset_index: None,
                    source: p.display().to_string(),
                    path: Some(p),
                    stem: format!("{rank:04}-{}", sanitize(&stem)),
                })
            })
            .collect::<Result<Vec<_>>>()?;
        (items, None)
    } else {
        let data = common::split(&loaded.splits, &a.split)?;
        let ev = evaluate(model, data, a.batch)?;
        let n = data.len();
        let mut idx: Vec<usize> = match select.as_str() {
            "misclassified" => ev.misclassified(),
            "low-confidence" => ev.lowest_confidence(a.count),
            "random" => Rng::new(a.seed)
                .permutation(n)
                .into_iter()
                .map(|i| i as usize)
                .collect(),
            "all" => (0..n).collect(),
            "unstable" => {
                let Some(dir) = &loaded.run_dir else {
                    return Err(Error::invalid(
                        "select",
                        "unstable needs a run folder's history (the predictions of every epoch)",
                    ));
                };
                if a.split != "test" {
                    return Err(Error::invalid(
                        "select",
                        "unstable works on the test split only (the set the history tracks)",
                    ));
                }
                let h = History::load(dir.join(common::HISTORY_FILE))?;
                if h.tracked_labels.len() != n {
                    return Err(Error::data(
                        dir,
                        "the history tracked another test set than the one loaded now",
                    ));
                }
                most_unstable(&h, a.count)?
            }
            other => return Err(Error::invalid("select", format!("unknown selection `{other}`"))),
        };
        if select != "all" {
            idx.truncate(a.count);
        }
        let whole: Vec<(usize, usize)> = idx.into_iter().enumerate().collect();
        let part = shard.select(&whole);
        let items = part
            .into_iter()
            .map(|(rank, i)| -> Result<Item> {
                Ok(Item {
                    rank,
                    image: data.images.f_narrow(0, i as i64, 1)?,
                    label: Some(data.label(i)?),
                    dataset_index: Some(i),
                    path: None,
                    source: format!("{} #{i}", a.split),
                    stem: format!("{rank:04}-{}-{i:05}", a.split),
                })
            })
            .collect::<Result<Vec<_>>>()?;
        let total = whole.len();
        // Keep the size of the whole selection with the items.
        return finish(
            &a,
            &loaded,
            &methods,
            &target,
            &layer,
            &out,
            shard,
            &select,
            Some(a.split.clone()),
            items,
            total,
            &class_names,
            image_size,
        );
    };
    let total = a.image.len();
    finish(
        &a,
        &loaded,
        &methods,
        &target,
        &layer,
        &out,
        shard,
        &select,
        split_name,
        selection,
        total,
        &class_names,
        image_size,
    )
}

#[allow(clippy::too_many_arguments)]
fn finish(
    a: &ExplainArgs,
    loaded: &common::Loaded,
    methods: &[String],
    target: &TargetSpec,
    layer: &str,
    out: &Path,
    shard: Shard,
    select: &str,
    split: Option<String>,
    items: Vec<Item>,
    total: usize,
    class_names: &[String],
    image_size: i64,
) -> Result<ExitCode> {
    let model = &loaded.model;
    if matches!(target, TargetSpec::True) {
        if let Some(it) = items.iter().find(|it| it.label.is_none()) {
            return Err(Error::invalid(
                "target",
                format!(
                    "`true` needs a known class, but {} is not in a folder named after a class",
                    it.source
                ),
            ));
        }
    }
    let attributions: Vec<Box<dyn Attribution>> = methods
        .iter()
        .map(|m| method(m, layer, a.seed, image_size))
        .collect::<Result<_>>()?;
    std::fs::create_dir_all(out).map_err(|e| Error::io(out, e))?;
    let mut summaries = Vec::new();
    let terminal = std::io::IsTerminal::is_terminal(&std::io::stderr());
    for (done, it) in items.iter().enumerate() {
        if terminal {
            eprint!("\r\x1b[2Kexplaining {}/{}: {}", done + 1, items.len(), it.source);
        }
        let file = explain_one(
            it,
            model,
            methods,
            &attributions,
            target,
            layer,
            class_names,
            &split,
            out,
        )?;
        summaries.push(ItemSummary {
            rank: it.rank,
            stem: it.stem.clone(),
            source: it.source.clone(),
            true_class: file.true_class.as_ref().map(|c| c.name.clone()),
            predicted: file.predicted.name.clone(),
            probability: file.probabilities.first().map_or(0.0, |p| p.probability),
        });
    }
    if terminal && !items.is_empty() {
        eprint!("\r\x1b[2K");
    }
    let source = match &loaded.run_dir {
        Some(d) => d.display().to_string(),
        None => loaded.weights.display().to_string(),
    };
    let index = IndexFile {
        format: INDEX_FORMAT.into(),
        version: VERSION,
        source,
        split,
        select: select.to_string(),
        count: if select == "all" || select == "images" {
            None
        } else {
            Some(a.count)
        },
        seed: a.seed,
        methods: methods.to_vec(),
        target: a.target.clone(),
        layer: layer.to_string(),
        selected: total,
        shard: if shard.count > 1 {
            Some(shard.to_string())
        } else {
            None
        },
        items: summaries,
    };
    write_index(out, &index)?;
    println!(
        "explained {} of {} selected images ({}) with {}; open {}",
        index.items.len(),
        total,
        select,
        methods.join(", "),
        out.join("index.html").display()
    );
    Ok(ExitCode::SUCCESS)
}

fn class_ref(names: &[String], c: i64) -> ClassRef {
    ClassRef {
        index: c,
        name: names.get(c as usize).cloned().unwrap_or_else(|| c.to_string()),
    }
}

#[allow(clippy::too_many_arguments)]
fn explain_one(
    it: &Item,
    model: &dyn Model,
    methods: &[String],
    attributions: &[Box<dyn Attribution>],
    target: &TargetSpec,
    layer: &str,
    names: &[String],
    split: &Option<String>,
    out: &Path,
) -> Result<ImageFile> {
    let probs = predict_proba(model, &it.image, 1)?;
    let probs = Vec::<f64>::try_from(
        probs
            .f_to_device(tch::Device::Cpu)?
            .f_to_kind(Kind::Double)?
            .f_view([-1])?,
    )?;
    let mut order: Vec<usize> = (0..probs.len()).collect();
    order.sort_by(|&x, &y| probs[y].total_cmp(&probs[x]).then(x.cmp(&y)));
    let pred = order.first().copied().unwrap_or(0) as i64;
    let classes: Vec<i64> = match target {
        TargetSpec::Predicted => vec![pred],
        TargetSpec::True => vec![it.label.unwrap_or(pred)],
        TargetSpec::TopK(k) => order.iter().take(*k).map(|&c| c as i64).collect(),
    };
    let prob = |c: i64| probs.get(c as usize).copied().unwrap_or(0.0);
    let norm = Normalization::default();
    let mut targets = Vec::new();
    let mut cells: Vec<image::RgbImage> = Vec::new();
    let mut titles: Vec<String> = Vec::new();
    let original = tensor_to_image(&it.image)?;
    let truth = it.label.map(|l| class_ref(names, l));
    for &c in &classes {
        cells.push(original.clone());
        titles.push(match &truth {
            Some(t) => format!("true {}\npred {}", t.name, class_ref(names, pred).name),
            None => format!("pred {}", class_ref(names, pred).name),
        });
        let mut maps = Vec::new();
        for (m, attr) in methods.iter().zip(attributions) {
            let raw = attr.attribute(model, &it.image, &Target::Class(c))?;
            let raw_cpu = raw.f_to_device(tch::Device::Cpu)?.f_to_kind(Kind::Double)?;
            let flat = Vec::<f64>::try_from(raw_cpu.f_view([-1])?)?;
            let n = flat.len().max(1) as f64;
            let shown = norm.normalize(&raw)?;
            let shown_cpu = shown.f_to_device(tch::Device::Cpu)?;
            let w = shown_cpu.size().last().copied().unwrap_or(1).max(1);
            let peak = shown_cpu.f_view([-1])?.f_argmax(0, false)?.f_int64_value(&[])?;
            maps.push(MapStats {
                method: m.clone(),
                description: attr.name(),
                shape: raw.size(),
                min: flat.iter().copied().fold(f64::INFINITY, f64::min),
                max: flat.iter().copied().fold(f64::NEG_INFINITY, f64::max),
                mean: flat.iter().sum::<f64>() / n,
                mean_abs: flat.iter().map(|v| v.abs()).sum::<f64>() / n,
                positive_fraction: flat.iter().filter(|&&v| v > 0.0).count() as f64 / n,
                peak: [peak / w, peak % w],
            });
            cells.push(overlay(&it.image, &shown_cpu, Colormap::Jet, 0.5, false)?);
            titles.push(format!("{m}\n{} {:.2}", class_ref(names, c).name, prob(c)));
        }
        let r = class_ref(names, c);
        targets.push(TargetMaps {
            index: r.index,
            name: r.name,
            probability: prob(c),
            maps,
        });
    }
    let probabilities: Vec<ClassProb> = order
        .iter()
        .map(|&c| ClassProb {
            index: c as i64,
            name: class_ref(names, c as i64).name,
            probability: probs[c],
        })
        .collect();

    // The figure: one row per target class (image, then each method's map), the top-k bar chart below.
    let mut grid = ImageGrid::new(cells, methods.len() + 1);
    grid.titles = titles;
    grid.title = format!("{} ({})", it.source, layer);
    let k = 5.min(names.len());
    let top: Vec<f64> = probs.clone();
    let mut bars = BarChart::top_k(names, &top, k)?;
    bars.title = "top-k probabilities".into();
    bars.highlight = it
        .label
        .and_then(|l| order.iter().take(k).position(|&c| c as i64 == l));
    let (gw, gh) = grid.size();
    let (bw, bh) = bars.size();
    let fig = Figure::new(gw.max(bw), gh + bh, move |area| {
        area.fill(&WHITE).map_err(cnn_explain::viz::plot_error)?;
        let (top, bottom) = area.split_vertically(gh);
        grid.draw(&top)?;
        bars.draw(&bottom)
    });
    let png = format!("{}.png", it.stem);
    fig.save(out.join(&png))?;
    let file = ImageFile {
        format: IMAGE_FORMAT.into(),
        version: VERSION,
        rank: it.rank,
        source: it.source.clone(),
        split: if it.dataset_index.is_some() {
            split.clone()
        } else {
            None
        },
        dataset_index: it.dataset_index,
        path: it.path.as_ref().map(|p| p.display().to_string()),
        grid: png,
        true_class: truth,
        predicted: class_ref(names, pred),
        probabilities,
        layer: layer.to_string(),
        targets,
    };
    write_json(&out.join(format!("{}.json", it.stem)), &file)?;
    Ok(file)
}

fn write_index(out: &Path, index: &IndexFile) -> Result<()> {
    write_json(&out.join("index.json"), index)?;
    let mut html = String::new();
    html += "<!DOCTYPE html>\n<html><head><meta charset=\"utf-8\"><title>cnn-explain explanations</title>\n";
    html += "<style>body{font-family:sans-serif;margin:2em}figure{display:inline-block;margin:1em;vertical-align:top}img{max-width:600px;border:1px solid #ccc}figcaption{font-size:90%}.wrong{color:#b00}</style>\n</head><body>\n";
    html += &format!(
        "<h1>Explanations</h1>\n<p>{} &middot; selection: {} ({} images{}) &middot; methods: {} &middot; target: {} &middot; layer: {}</p>\n",
        escape_html(&index.source),
        escape_html(&index.select),
        index.selected,
        index.shard.as_ref().map(|s| format!(", shard {s}")).unwrap_or_default(),
        escape_html(&index.methods.join(", ")),
        escape_html(&index.target),
        escape_html(&index.layer)
    );
    for it in &index.items {
        let wrong = it.true_class.as_ref().is_some_and(|t| *t != it.predicted);
        html += &format!(
            "<figure><a href=\"{s}.png\"><img src=\"{s}.png\" alt=\"{src}\"></a><figcaption{cls}>#{r} {src}: {truth}predicted <b>{p}</b> ({prob:.2}) &middot; <a href=\"{s}.json\">numbers</a></figcaption></figure>\n",
            s = escape_html(&it.stem),
            src = escape_html(&it.source),
            cls = if wrong { " class=\"wrong\"" } else { "" },
            r = it.rank,
            truth = it.true_class.as_ref().map(|t| format!("true {}, ", escape_html(t))).unwrap_or_default(),
            p = escape_html(&it.predicted),
            prob = it.probability,
        );
    }
    html += "</body></html>\n";
    cnn_explain::io::write_atomic(out.join("index.html"), html.as_bytes())
}

fn read_index(dir: &Path) -> Result<IndexFile> {
    let path = dir.join("index.json");
    let bytes = std::fs::read(&path)
        .map_err(|_| Error::data(dir, "not an explain output folder: it has no index.json"))?;
    check_format(&path, &bytes, INDEX_FORMAT, VERSION)?;
    serde_json::from_slice(&bytes).map_err(|e| Error::data(&path, format!("damaged index.json: {e}")))
}

pub fn merge(a: MergeArgs) -> Result<ExitCode> {
    let mut parts = Vec::new();
    for d in &a.dirs {
        if d.canonicalize()
            .ok()
            .is_some_and(|c| a.out.canonicalize().ok() == Some(c))
        {
            return Err(Error::invalid(
                "out",
                "the merged folder must not be one of the shard folders",
            ));
        }
        parts.push((d.clone(), read_index(d)?));
    }
    let Some((_, first)) = parts.first() else {
        return Err(Error::invalid("dirs", "give the shard folders to merge"));
    };
    let strip = |i: &IndexFile| IndexFile {
        shard: None,
        items: Vec::new(),
        ..i.clone()
    };
    let reference = strip(first);
    let mut seen: Vec<Option<PathBuf>> = Vec::new();
    let mut items: Vec<(PathBuf, ItemSummary)> = Vec::new();
    for (d, idx) in &parts {
        if strip(idx) != reference {
            return Err(Error::data(
                d,
                "was made with other settings than the first folder (source, selection, methods, target, layer or seed differ)",
            ));
        }
        let shard: Shard = match &idx.shard {
            Some(s) => s.parse()?,
            None => Shard::whole(),
        };
        if seen.is_empty() {
            seen = vec![None; shard.count];
        }
        if seen.len() != shard.count {
            return Err(Error::data(
                d,
                format!("is shard {shard}, but the first folder has {} shards", seen.len()),
            ));
        }
        if let Some(Some(other)) = seen.get(shard.index) {
            return Err(Error::data(
                d,
                format!("holds shard {shard} again (also in {})", other.display()),
            ));
        }
        seen[shard.index] = Some(d.clone());
        items.extend(idx.items.iter().map(|it| (d.clone(), it.clone())));
    }
    let missing: Vec<String> = seen
        .iter()
        .enumerate()
        .filter(|(_, s)| s.is_none())
        .map(|(i, _)| format!("{i}/{}", seen.len()))
        .collect();
    if !missing.is_empty() {
        return Err(Error::invalid(
            "dirs",
            format!("shard(s) {} missing", missing.join(", ")),
        ));
    }
    items.sort_by_key(|(_, it)| it.rank);
    if items.len() != reference.selected || items.iter().enumerate().any(|(i, (_, it))| it.rank != i) {
        return Err(Error::invalid(
            "dirs",
            format!(
                "the shards hold {} images, the selection has {}; was some shard run incompletely?",
                items.len(),
                reference.selected
            ),
        ));
    }
    std::fs::create_dir_all(&a.out).map_err(|e| Error::io(&a.out, e))?;
    for (d, it) in &items {
        for ext in ["png", "json"] {
            let name = format!("{}.{ext}", it.stem);
            let bytes = std::fs::read(d.join(&name)).map_err(|e| Error::io(d.join(&name), e))?;
            cnn_explain::io::write_atomic(a.out.join(&name), &bytes)?;
        }
    }
    let merged = IndexFile {
        items: items.into_iter().map(|(_, it)| it).collect(),
        ..reference
    };
    write_index(&a.out, &merged)?;
    println!(
        "merged {} shards: {} images into {}",
        parts.len(),
        merged.items.len(),
        a.out.display()
    );
    Ok(ExitCode::SUCCESS)
}
