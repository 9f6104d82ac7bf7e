//! What the subcommands share: dataset specs, the run folder's `run.json`, devices, models.

use clap::Args;
use cnn_explain::data::{cifar, folder, shapes, Dataset, Splits};
use cnn_explain::models::{weights, Arch, Init, Model, Staged, ZooConfig};
use cnn_explain::train::TrainConfig;
use cnn_explain::{Error, Result};
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};
use tch::{nn, Device};

/// `format` of `run.json`.
pub const RUN_FORMAT: &str = "cnn-explain-run";
/// Version of `run.json` (and of `history.json` beside it) this program writes and reads.
pub const RUN_VERSION: u32 = 1;
/// File names inside a run folder.
pub const RUN_FILE: &str = "run.json";
pub const HISTORY_FILE: &str = "history.json";
pub const MODEL_FILE: &str = "model.safetensors";
pub const CHECKPOINT_DIR: &str = "checkpoints";

/// Where training stores the image of probe `index` (for the monitor's explanation strip).
pub fn probe_path(dir: &Path, index: usize) -> PathBuf {
    dir.join("probes").join(format!("{index}.png"))
}

/// Options of the dataset spec.
#[derive(Args, Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct DataOpts {
    /// Side of the square images for shapes and folder data (CIFAR is always 32).
    #[arg(long, default_value_t = 64)]
    pub image_size: i64,
    /// Training images of the built-in shapes data.
    #[arg(long, default_value_t = 3000)]
    pub images: usize,
    /// Validation images of the built-in shapes data.
    #[arg(long, default_value_t = 500)]
    pub val_images: usize,
    /// Test images of the built-in shapes data.
    #[arg(long, default_value_t = 1000)]
    pub test_images: usize,
    /// Share of the training images held out for validation (CIFAR, folders).
    #[arg(long, default_value_t = 0.1)]
    pub val_fraction: f64,
    /// Share of the images held out for testing (folders without train/ and test/ sub-folders).
    #[arg(long, default_value_t = 0.2)]
    pub test_fraction: f64,
    /// Seed of the shapes generator and of the random splits.
    #[arg(long, default_value_t = 0)]
    pub data_seed: u64,
    /// Shapes only: draw the spurious class cue (a coloured corner patch) on this share of the
    /// training and validation images; test images carry the cue of a wrong class.
    #[arg(long)]
    #[serde(default)]
    pub cue: Option<f64>,
}

/// A parsed dataset spec.
#[derive(Debug, Clone, PartialEq)]
pub enum DataSpec {
    Shapes,
    Cifar10(PathBuf),
    Cifar100(PathBuf, cifar::Cifar100Label),
    Folder(PathBuf),
}

impl DataSpec {
    pub fn parse(s: &str) -> Result<DataSpec> {
        let bad = |why: &str| {
            Error::invalid(
                "data",
                format!("cannot read dataset spec `{s}`: {why}; expected shapes, cifar10:DIR, cifar100:DIR, cifar100-coarse:DIR or folder:DIR"),
            )
        };
        if s == "shapes" {
            return Ok(DataSpec::Shapes);
        }
        let (kind, dir) = s.split_once(':').ok_or_else(|| bad("no `kind:` prefix"))?;
        if dir.is_empty() {
            return Err(bad("the folder is missing after the colon"));
        }
        let dir = PathBuf::from(dir);
        match kind {
            "cifar10" => Ok(DataSpec::Cifar10(dir)),
            "cifar100" => Ok(DataSpec::Cifar100(dir, cifar::Cifar100Label::Fine)),
            "cifar100-coarse" => Ok(DataSpec::Cifar100(dir, cifar::Cifar100Label::Coarse)),
            "folder" => Ok(DataSpec::Folder(dir)),
            _ => Err(bad(&format!("unknown kind `{kind}`"))),
        }
    }

    /// The spec with its folder made absolute (when it exists), so a run folder can be used from
    /// anywhere.
    pub fn absolute(&self, given: &str) -> String {
        let abs = |d: &Path| {
            d.canonicalize()
                .unwrap_or_else(|_| d.to_path_buf())
                .display()
                .to_string()
        };
        match self {
            DataSpec::Shapes => given.to_string(),
            DataSpec::Cifar10(d) => format!("cifar10:{}", abs(d)),
            DataSpec::Cifar100(d, cifar::Cifar100Label::Fine) => format!("cifar100:{}", abs(d)),
            DataSpec::Cifar100(d, cifar::Cifar100Label::Coarse) => format!("cifar100-coarse:{}", abs(d)),
            DataSpec::Folder(d) => format!("folder:{}", abs(d)),
        }
    }

    /// Side of the images this spec gives.
    pub fn image_size(&self, opts: &DataOpts) -> i64 {
        match self {
            DataSpec::Cifar10(_) | DataSpec::Cifar100(..) => 32,
            _ => opts.image_size,
        }
    }
}

fn check_fraction(name: &str, f: f64) -> Result<()> {
    if !(0.0..1.0).contains(&f) {
        return Err(Error::invalid(name, format!("{f} must lie in [0, 1)")));
    }
    Ok(())
}

fn split_off(ds: Dataset, name: &str, fraction: f64, seed: u64) -> Result<(Dataset, Dataset)> {
    let n = ds.len();
    let k = ((n as f64) * fraction).round() as usize;
    if k == 0 {
        return Err(Error::invalid(
            name,
            format!("{fraction} of {n} images is no image; raise the fraction or add images"),
        ));
    }
    if k >= n {
        return Err(Error::invalid(
            name,
            format!("{fraction} of {n} images leaves no training image"),
        ));
    }
    ds.split_random(k, seed)
}

/// Loads (or generates) the training, validation and test sets of a spec.
pub fn load_data(spec: &DataSpec, opts: &DataOpts) -> Result<Splits> {
    check_fraction("val_fraction", opts.val_fraction)?;
    check_fraction("test_fraction", opts.test_fraction)?;
    let seed = opts.data_seed;
    match spec {
        DataSpec::Shapes => shapes::generate(&shapes::ShapesConfig {
            image_size: opts.image_size,
            train: opts.images,
            val: opts.val_images,
            test: opts.test_images,
            seed,
            spurious: opts.cue.map(|fraction| shapes::SpuriousCue {
                fraction,
                ..Default::default()
            }),
            ..Default::default()
        }),
        DataSpec::Cifar10(dir) => {
            let train = cifar::load_cifar10(dir, cifar::CifarSplit::Train)?;
            let test = cifar::load_cifar10(dir, cifar::CifarSplit::Test)?;
            let (train, val) = split_off(train, "val_fraction", opts.val_fraction, seed)?;
            Ok(Splits { train, val, test })
        }
        DataSpec::Cifar100(dir, label) => {
            let train = cifar::load_cifar100(dir, cifar::CifarSplit::Train, *label)?;
            let test = cifar::load_cifar100(dir, cifar::CifarSplit::Test, *label)?;
            let (train, val) = split_off(train, "val_fraction", opts.val_fraction, seed)?;
            Ok(Splits { train, val, test })
        }
        DataSpec::Folder(dir) => {
            if opts.image_size < 1 || opts.image_size > 4096 {
                return Err(Error::invalid(
                    "image_size",
                    format!("{} is outside 1..=4096", opts.image_size),
                ));
            }
            let cfg = folder::FolderConfig {
                size: opts.image_size as u32,
                ..Default::default()
            };
            let (tr, te, va) = (dir.join("train"), dir.join("test"), dir.join("val"));
            if tr.is_dir() && te.is_dir() {
                let train = folder::load_folder(&tr, &cfg)?;
                let test = folder::load_folder(&te, &cfg)?;
                if test.class_names != train.class_names {
                    return Err(Error::data(
                        &te,
                        format!(
                            "its classes {:?} differ from train/'s {:?}",
                            test.class_names, train.class_names
                        ),
                    ));
                }
                let (train, val) = if va.is_dir() {
                    (train, folder::load_folder(&va, &cfg)?)
                } else {
                    split_off(train, "val_fraction", opts.val_fraction, seed)?
                };
                Ok(Splits { train, val, test })
            } else {
                let all = folder::load_folder(dir, &cfg)?;
                let (rest, test) = split_off(all, "test_fraction", opts.test_fraction, seed)?;
                let (train, val) = split_off(rest, "val_fraction", opts.val_fraction, seed.wrapping_add(1))?;
                Ok(Splits { train, val, test })
            }
        }
    }
}

/// The dataset part of `run.json`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct DataConfig {
    /// The spec as given (`shapes`, `folder:DIR`, ...).
    pub spec: String,
    #[serde(flatten)]
    pub opts: DataOpts,
}

/// The model part of `run.json`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct ModelConfig {
    pub arch: Arch,
    pub num_classes: i64,
    /// Side of the square input images.
    pub image_size: i64,
    /// Weights training started from, if any.
    pub initial_weights: Option<PathBuf>,
}

/// Early stopping in `run.json`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct EarlyStopConfig {
    pub monitor: cnn_explain::train::Metric,
    pub patience: usize,
    pub min_delta: f64,
}

/// `run.json`: everything needed to rebuild the data and model of a run and continue it.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct RunFile {
    pub format: String,
    pub version: u32,
    pub data: DataConfig,
    pub model: ModelConfig,
    pub train: TrainConfig,
    pub early_stopping: Option<EarlyStopConfig>,
    pub augment: Vec<String>,
    pub class_names: Vec<String>,
    /// `running`, `finished`, `stopped_early` or `interrupted`.
    pub status: String,
}

impl RunFile {
    pub fn save(&self, dir: &Path) -> Result<()> {
        let json = serde_json::to_vec_pretty(self)?;
        cnn_explain::io::write_atomic(dir.join(RUN_FILE), &json)
    }

    /// Reads `dir/run.json`, checking format and version first.
    pub fn load(dir: &Path) -> Result<RunFile> {
        if !dir.is_dir() {
            return Err(Error::data(dir, "run folder not found"));
        }
        let path = dir.join(RUN_FILE);
        let bytes = std::fs::read(&path).map_err(|_| {
            Error::data(
                dir,
                "not a run folder: it has no run.json (written by `cnn-explain train`)",
            )
        })?;
        check_format(&path, &bytes, RUN_FORMAT, RUN_VERSION)?;
        serde_json::from_slice(&bytes).map_err(|e| Error::data(&path, format!("damaged run.json: {e}")))
    }
}

/// Checks the `format` and `version` fields of a JSON file before reading the rest.
pub fn check_format(path: &Path, bytes: &[u8], format: &str, version: u32) -> Result<()> {
    let v: serde_json::Value =
        serde_json::from_slice(bytes).map_err(|e| Error::data(path, format!("not JSON: {e}")))?;
    let f = v.get("format").and_then(|f| f.as_str());
    if f != Some(format) {
        return Err(Error::data(
            path,
            format!("format is {:?}, expected \"{format}\"", f.unwrap_or("missing")),
        ));
    }
    match v.get("version").and_then(|v| v.as_u64()) {
        Some(n) if n == version as u64 => Ok(()),
        Some(n) => Err(Error::data(
            path,
            format!("written in {format} version {n}; this cnn-explain reads version {version} only"),
        )),
        None => Err(Error::data(path, "no `version` field")),
    }
}

pub fn parse_device(s: &str) -> Result<Device> {
    match s {
        "auto" => Ok(Device::cuda_if_available()),
        "cpu" => Ok(Device::Cpu),
        "cuda" => cuda(0),
        other => match other.strip_prefix("cuda:").and_then(|i| i.parse::<usize>().ok()) {
            Some(i) => cuda(i),
            None => Err(Error::invalid(
                "device",
                format!("unknown device `{other}`; expected cpu, cuda, cuda:N or auto"),
            )),
        },
    }
}

fn cuda(i: usize) -> Result<Device> {
    let n = tch::Cuda::device_count() as usize;
    if i >= n {
        return Err(Error::invalid(
            "device",
            format!("cuda:{i} asked for, but libtorch sees {n} CUDA device(s); use --device cpu or auto"),
        ));
    }
    Ok(Device::Cuda(i))
}

pub fn parse_arch(s: &str) -> Result<Arch> {
    s.parse()
}

/// Builds a zoo model on `device`.
pub fn build_model(
    arch: Arch,
    num_classes: i64,
    init: Init,
    device: Device,
) -> Result<(nn::VarStore, Staged)> {
    let vs = nn::VarStore::new(device);
    let model = ZooConfig {
        arch,
        num_classes,
        init,
        normalization: None,
    }
    .build(&vs.root())?;
    Ok((vs, model))
}

/// Loads weights that must fit the model exactly, with a short message when they do not.
pub fn load_weights(vs: &nn::VarStore, path: &Path, arch: Arch, num_classes: i64) -> Result<()> {
    if !path.is_file() {
        return Err(Error::data(path, "weights file not found"));
    }
    weights::load(vs, path).map_err(|e| match e {
        Error::CheckpointMismatch { path, details } => {
            let parts: Vec<&str> = details.split("; ").collect();
            let shown = parts.iter().take(3).cloned().collect::<Vec<_>>().join("; ");
            let more = if parts.len() > 3 {
                format!(" (and {} more differences)", parts.len() - 3)
            } else {
                String::new()
            };
            Error::data(
                path,
                format!("these weights are for another model, not {arch} with {num_classes} classes: {shown}{more}"),
            )
        }
        other => other,
    })
}

/// The model's default layer for CAM methods: the top-level stage before the global pooling stage
/// (`block3` of the small CNN, `layer4` of a ResNet, `features` of VGG and AlexNet).
pub fn default_layer(model: &dyn Model) -> Result<String> {
    let top: Vec<String> = model.layers().into_iter().filter(|l| !l.contains('.')).collect();
    let pool = top
        .iter()
        .position(|l| l == "pool" || l == "avgpool")
        .ok_or_else(|| Error::invalid("layer", "the model has no pooling stage; pass --layer"))?;
    match pool.checked_sub(1).and_then(|i| top.get(i)) {
        Some(l) => Ok(l.clone()),
        None => Err(Error::invalid(
            "layer",
            "no stage before the pooling stage; pass --layer",
        )),
    }
}

/// A trained model with its data, from a run folder or from --weights, --data and --arch.
pub struct Loaded {
    pub run_dir: Option<PathBuf>,
    pub splits: Splits,
    /// Keeps the model's variables alive.
    pub _vs: nn::VarStore,
    pub model: Staged,
    pub weights: PathBuf,
}

pub fn load_source(src: &crate::SourceArgs) -> Result<Loaded> {
    let device = parse_device(&src.device)?;
    if let Some(dir) = &src.run {
        if src.data.is_some() || src.arch.is_some() {
            return Err(Error::invalid(
                "data",
                "--data and --arch come from the run folder; give either a run folder or --weights with --data and --arch",
            ));
        }
        let run = RunFile::load(dir)?;
        let spec = DataSpec::parse(&run.data.spec)?;
        let splits = load_data(&spec, &run.data.opts)?;
        let (vs, model) = build_model(run.model.arch, run.model.num_classes, Init::Zeros, device)?;
        let weights = match &src.weights {
            Some(w) => w.clone(),
            None => {
                let final_weights = dir.join(MODEL_FILE);
                if final_weights.is_file() {
                    final_weights
                } else {
                    let last = dir
                        .join(CHECKPOINT_DIR)
                        .join(cnn_explain::train::Checkpoint::LAST);
                    if !last.is_file() {
                        return Err(Error::data(
                            dir,
                            "the run has no weights yet (no model.safetensors, no checkpoint)",
                        ));
                    }
                    eprintln!("note: the run did not finish; using {}", last.display());
                    last
                }
            }
        };
        load_weights(&vs, &weights, run.model.arch, run.model.num_classes)?;
        Ok(Loaded {
            run_dir: Some(dir.clone()),
            splits,
            _vs: vs,
            model,
            weights,
        })
    } else {
        let (Some(w), Some(data), Some(arch)) = (&src.weights, &src.data, &src.arch) else {
            return Err(Error::invalid(
                "run",
                "give a run folder, or --weights FILE with --data SPEC and --arch NAME",
            ));
        };
        let arch = parse_arch(arch)?;
        let spec = DataSpec::parse(data)?;
        let splits = load_data(&spec, &src.data_opts)?;
        let k = splits.train.num_classes();
        let (vs, model) = build_model(arch, k, Init::Zeros, device)?;
        load_weights(&vs, w, arch, k)?;
        Ok(Loaded {
            run_dir: None,
            splits,
            _vs: vs,
            model,
            weights: w.clone(),
        })
    }
}

/// The split named `name` of `splits`.
pub fn split<'a>(splits: &'a Splits, name: &str) -> Result<&'a Dataset> {
    match name {
        "train" => Ok(&splits.train),
        "val" => Ok(&splits.val),
        "test" => Ok(&splits.test),
        other => Err(Error::invalid(
            "split",
            format!("unknown split `{other}`; expected train, val or test"),
        )),
    }
}

/// An error as one user-facing message.
pub fn describe(e: &Error) -> String {
    e.to_string()
}

/// Pretty JSON with a trailing newline, written atomically.
pub fn write_json<T: Serialize>(path: &Path, value: &T) -> Result<()> {
    let mut bytes = serde_json::to_vec_pretty(value)?;
    bytes.push(b'\n');
    cnn_explain::io::write_atomic(path, &bytes)
}
