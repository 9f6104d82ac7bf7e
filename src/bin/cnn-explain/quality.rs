//! `cnn-explain quality`: the explanation-quality table of chosen methods on a split, sharded, and
//! the merge of its shards.

use crate::common::{self, check_format, write_json};
use crate::explain::{method, parse_methods};
use crate::SourceArgs;
use clap::Args;
use cnn_explain::attribution::Target;
use cnn_explain::eval::Shard;
use cnn_explain::models::Model;
use cnn_explain::quality::{evaluate_values, markdown_table, QualityConfig, QualityValues};
use cnn_explain::rng::Rng;
use cnn_explain::{Error, Result};
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use tch::Tensor;

/// `format` of a quality folder's `quality.json`.
pub const QUALITY_FORMAT: &str = "cnn-explain-quality";
/// Version of `quality.json` this program writes and reads.
pub const VERSION: u32 = 1;
/// The file a quality folder is recognised by.
pub const QUALITY_FILE: &str = "quality.json";

#[derive(Args, Debug)]
pub struct QualityArgs {
    #[command(flatten)]
    pub source: SourceArgs,
    /// Methods, comma separated (`all` for every one); `--methods list` prints the known ones.
    #[arg(
        long,
        default_value = "saliency,integrated-gradients,smoothgrad,grad-cam,grad-cam++,score-cam",
        value_delimiter = ','
    )]
    pub methods: Vec<String>,
    /// Images: the first COUNT of the split in a random order drawn with --seed (0: the whole split).
    #[arg(long, default_value_t = 100)]
    pub count: usize,
    /// Seed of the image order and of the sampling methods.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Split the images come from: test, val or train.
    #[arg(long, default_value = "test")]
    pub split: String,
    /// Class each map explains: predicted or true.
    #[arg(long, default_value = "predicted")]
    pub target: String,
    /// Layer of the CAM methods (default: the last stage before global pooling).
    #[arg(long)]
    pub layer: Option<String>,
    /// Pixels deleted or inserted per step of the deletion and insertion curves.
    #[arg(long, default_value_t = 64)]
    pub step: usize,
    /// Images explained at once.
    #[arg(long, default_value_t = 16)]
    pub batch: usize,
    /// Process the I-th of N disjoint parts of the images (0-based), e.g. for a job array.
    #[arg(long)]
    pub shard: Option<String>,
    /// Output folder (default: RUN/quality).
    #[arg(long)]
    pub out: Option<PathBuf>,
}

/// `quality.json`: the settings, the images (dataset indices in the split) and every method's
/// per-image values, so shards merge into exactly the unsharded table.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct QualityFile {
    pub format: String,
    pub version: u32,
    /// Run folder or weights file.
    pub source: String,
    pub split: String,
    pub seed: u64,
    /// `--count` as given (0: the whole split).
    pub count: usize,
    /// Images in the whole selection (all shards).
    pub selected: usize,
    pub target: String,
    pub layer: String,
    pub step: usize,
    /// `I/N` for a shard's part, absent for a whole run.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub shard: Option<String>,
    /// Dataset indices (in the split) of this file's images, in selection order.
    pub images: Vec<usize>,
    /// Per method, one value per image of `images`.
    pub methods: Vec<QualityValues>,
}

fn config(step: usize, batch: usize) -> Result<QualityConfig> {
    if step == 0 {
        return Err(Error::invalid("step", "must be at least 1 pixel"));
    }
    if batch == 0 {
        return Err(Error::invalid("batch", "must be at least 1"));
    }
    let mut c = QualityConfig {
        batch,
        ..Default::default()
    };
    c.deletion.step = step;
    c.insertion.step = step;
    Ok(c)
}

pub fn run(a: QualityArgs) -> Result<ExitCode> {
    let shard = match &a.shard {
        Some(s) => s.parse::<Shard>()?,
        None => Shard::whole(),
    };
    let Some(methods) = parse_methods(&a.methods)? else {
        return Ok(ExitCode::SUCCESS);
    };
    if !matches!(a.target.as_str(), "predicted" | "true") {
        return Err(Error::invalid(
            "target",
            format!("unknown target `{}`; expected predicted or true", a.target),
        ));
    }
    let cfg = config(a.step, a.batch)?;
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
        (None, Some(r)) => r.join("quality"),
        (None, None) => return Err(Error::invalid("out", "give the output folder with --out DIR")),
    };
    let data = common::split(&loaded.splits, &a.split)?;
    let n = data.len();
    let mut order: Vec<usize> = Rng::new(a.seed)
        .permutation(n)
        .into_iter()
        .map(|i| i as usize)
        .collect();
    if a.count > 0 {
        order.truncate(a.count);
    }
    let selected = order.len();
    let images = shard.select(&order);
    let image_size = data.image_shape().1;
    let device = model.device();
    let idx = Tensor::from_slice(&images.iter().map(|&i| i as i64).collect::<Vec<_>>());
    let xs = data.images.f_index_select(0, &idx)?.f_to_device(device)?;
    let masks = match &data.masks {
        Some(m) => Some(m.f_index_select(0, &idx)?.f_to_device(device)?),
        None => None,
    };
    let target = if a.target == "true" {
        Target::PerSample(Vec::<i64>::try_from(data.labels.f_index_select(0, &idx)?)?)
    } else {
        Target::Predicted
    };
    std::fs::create_dir_all(&out).map_err(|e| Error::io(&out, e))?;
    let mut values = Vec::new();
    for m in &methods {
        eprintln!("quality: {m} on {} images ...", images.len());
        let attribution = method(m, &layer, a.seed, image_size)?;
        let mut v = if images.is_empty() {
            // A shard can be empty when there are more shards than images.
            QualityValues {
                method: m.clone(),
                deletion_auc: Vec::new(),
                insertion_auc: Vec::new(),
                pointing_game: masks.as_ref().map(|_| Vec::new()),
                energy_pointing_game: masks.as_ref().map(|_| Vec::new()),
                sparseness: Vec::new(),
                entropy: Vec::new(),
                seconds: 0.0,
            }
        } else {
            evaluate_values(attribution.as_ref(), model, &xs, masks.as_ref(), &target, &cfg)?
        };
        // Rows carry the command-line name, which is what `--methods` takes back.
        v.method = m.clone();
        values.push(v);
    }
    let source = match &loaded.run_dir {
        Some(d) => d.display().to_string(),
        None => loaded.weights.display().to_string(),
    };
    let file = QualityFile {
        format: QUALITY_FORMAT.into(),
        version: VERSION,
        source,
        split: a.split.clone(),
        seed: a.seed,
        count: a.count,
        selected,
        target: a.target.clone(),
        layer,
        step: a.step,
        shard: (shard.count > 1).then(|| shard.to_string()),
        images,
        methods: values,
    };
    write_outputs(&out, &file)
}

/// Writes `quality.json` and `quality.md` and prints the table.
fn write_outputs(out: &Path, file: &QualityFile) -> Result<ExitCode> {
    write_json(&out.join(QUALITY_FILE), file)?;
    let rows: Vec<_> = file.methods.iter().map(QualityValues::summary).collect();
    let table = markdown_table(&rows);
    let md = format!(
        "# Explanation quality\n\n{} images of the {} split of {} (seed {}{}), target class: {}, CAM layer {}, \
         {} pixels per deletion/insertion step; mean ± standard deviation over the images.\n\n{table}",
        file.images.len(),
        file.split,
        file.source,
        file.seed,
        file.shard.as_ref().map(|s| format!(", shard {s}")).unwrap_or_default(),
        file.target,
        file.layer,
        file.step,
    );
    cnn_explain::io::write_atomic(out.join("quality.md"), md.as_bytes())?;
    print!("{table}");
    println!("wrote {}", out.join(QUALITY_FILE).display());
    Ok(ExitCode::SUCCESS)
}

fn read(dir: &Path) -> Result<QualityFile> {
    let path = dir.join(QUALITY_FILE);
    let bytes = std::fs::read(&path)
        .map_err(|_| Error::data(dir, "not a quality output folder: it has no quality.json"))?;
    check_format(&path, &bytes, QUALITY_FORMAT, VERSION)?;
    serde_json::from_slice(&bytes).map_err(|e| Error::data(&path, format!("damaged quality.json: {e}")))
}

/// Whether `dir` holds the output of `cnn-explain quality`.
pub fn is_quality_folder(dir: &Path) -> bool {
    dir.join(QUALITY_FILE).is_file()
}

/// Joins the folders of `quality --shard I/N` runs into the result of one unsharded run.
pub fn merge(dirs: &[PathBuf], out: &Path) -> Result<ExitCode> {
    let mut parts = Vec::new();
    for d in dirs {
        if d.canonicalize()
            .ok()
            .is_some_and(|c| out.canonicalize().ok() == Some(c))
        {
            return Err(Error::invalid(
                "out",
                "the merged folder must not be one of the shard folders",
            ));
        }
        let f = read(d)?;
        let shard: Shard = match &f.shard {
            Some(s) => s.parse()?,
            None => Shard::whole(),
        };
        parts.push((d.clone(), shard, f));
    }
    let Some((_, first_shard, first)) = parts.first() else {
        return Err(Error::invalid("dirs", "give the shard folders to merge"));
    };
    let settings = |f: &QualityFile| {
        (
            f.source.clone(),
            f.split.clone(),
            f.seed,
            f.count,
            f.selected,
            f.target.clone(),
            f.layer.clone(),
            f.step,
            f.methods.iter().map(|m| m.method.clone()).collect::<Vec<_>>(),
        )
    };
    let reference = settings(first);
    let count = first_shard.count;
    let mut by_index: Vec<Option<usize>> = vec![None; count];
    for (k, (d, shard, f)) in parts.iter().enumerate() {
        if settings(f) != reference {
            return Err(Error::data(
                d,
                "was made with other settings than the first folder (source, split, seed, count, target, layer, step or methods differ)",
            ));
        }
        if shard.count != count {
            return Err(Error::data(
                d,
                format!("is shard {shard}, but the first folder has {count} shards"),
            ));
        }
        if let Some(other) = by_index[shard.index] {
            return Err(Error::data(
                d,
                format!("holds shard {shard} again (also in {})", parts[other].0.display()),
            ));
        }
        by_index[shard.index] = Some(k);
    }
    let missing: Vec<String> = by_index
        .iter()
        .enumerate()
        .filter(|(_, k)| k.is_none())
        .map(|(i, _)| format!("{i}/{count}"))
        .collect();
    if !missing.is_empty() {
        return Err(Error::invalid(
            "dirs",
            format!("shard(s) {} missing", missing.join(", ")),
        ));
    }
    // Shard I holds positions I, I+N, I+2N, ... of the selection: interleave them back.
    let ordered: Vec<&QualityFile> = by_index.iter().flatten().map(|&k| &parts[k].2).collect();
    let mut images = Vec::with_capacity(first.selected);
    let mut pick: Vec<(usize, usize)> = Vec::with_capacity(first.selected);
    for pos in 0..first.selected {
        let (s, j) = (pos % count, pos / count);
        let Some(&img) = ordered[s].images.get(j) else {
            return Err(Error::invalid(
                "dirs",
                format!(
                    "shard {s}/{count} holds {} images, fewer than its part of the {} selected; was it run incompletely?",
                    ordered[s].images.len(),
                    first.selected
                ),
            ));
        };
        images.push(img);
        pick.push((s, j));
    }
    if ordered.iter().map(|f| f.images.len()).sum::<usize>() != first.selected {
        return Err(Error::invalid(
            "dirs",
            "the shards hold more images than the selection; were they made from other data?",
        ));
    }
    let mut methods = Vec::new();
    for (mi, name) in reference.8.iter().enumerate() {
        let single = |s: usize, j: usize| -> QualityValues {
            let v = &ordered[s].methods[mi];
            let one = |x: &Vec<f64>| vec![x[j]];
            QualityValues {
                method: name.clone(),
                deletion_auc: one(&v.deletion_auc),
                insertion_auc: one(&v.insertion_auc),
                pointing_game: v.pointing_game.as_ref().map(one),
                energy_pointing_game: v.energy_pointing_game.as_ref().map(one),
                sparseness: one(&v.sparseness),
                entropy: one(&v.entropy),
                seconds: 0.0,
            }
        };
        for f in &ordered {
            if f.methods[mi].len() != f.images.len() {
                return Err(Error::invalid(
                    "dirs",
                    format!("a shard's values of `{name}` do not match its images: damaged quality.json"),
                ));
            }
        }
        let singles: Vec<QualityValues> = pick.iter().map(|&(s, j)| single(s, j)).collect();
        let mut joined = if singles.is_empty() {
            ordered[0].methods[mi].clone()
        } else {
            QualityValues::concat(&singles)?
        };
        joined.seconds = ordered.iter().map(|f| f.methods[mi].seconds).sum();
        methods.push(joined);
    }
    std::fs::create_dir_all(out).map_err(|e| Error::io(out, e))?;
    let merged = QualityFile {
        shard: None,
        images,
        methods,
        ..first.clone()
    };
    eprintln!("merged {} quality shards into {}", parts.len(), out.display());
    write_outputs(out, &merged)
}
