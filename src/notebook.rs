//! Helpers for notebooks: quick mode and the cache folder.
//!
//! The README's test command runs every notebook in *quick mode* (`CNN_EXPLAIN_QUICK=1`): fewer
//! epochs and samples, the same code paths. Notebooks read [`quick_mode`] and pick their sizes with
//! [`pick`].

use std::path::PathBuf;

/// True when `CNN_EXPLAIN_QUICK` is set to anything but `0` or an empty string.
pub fn quick_mode() -> bool {
    std::env::var("CNN_EXPLAIN_QUICK")
        .map(|v| !v.is_empty() && v != "0")
        .unwrap_or(false)
}

/// `quick` in quick mode, `full` otherwise.
///
/// ```
/// let epochs = cnn_explain::notebook::pick(12, 2);
/// assert!(epochs == 12 || epochs == 2);
/// ```
pub fn pick<T>(full: T, quick: T) -> T {
    if quick_mode() {
        quick
    } else {
        full
    }
}

/// The folder where trained models and histories are cached between notebooks: `CNN_EXPLAIN_CACHE`
/// when set (the notebook runner sets it inside the checkout), else `.cache/cnn-explain` under the
/// current folder.
pub fn cache_dir() -> PathBuf {
    match std::env::var_os("CNN_EXPLAIN_CACHE") {
        Some(dir) if !dir.is_empty() => PathBuf::from(dir),
        _ => PathBuf::from(".cache").join("cnn-explain"),
    }
}

use crate::data::shapes::{self, ShapesConfig};
use crate::data::Splits;
use crate::models::{weights, Staged, ZooConfig};
use crate::train::{fit, FitData, History, TrainConfig};
use crate::Result;
use tch::nn;

/// What [`train_or_load`] trains: the data, the model and the training settings.
#[derive(Debug, Clone)]
pub struct DefaultRun {
    /// The built-in shapes dataset.
    pub shapes: ShapesConfig,
    /// The model from the zoo.
    pub model: ZooConfig,
    /// Optimiser, schedule, epochs, seed (and the input-gradient penalty, if any).
    pub train: TrainConfig,
    /// Names what [`train_or_load_with`]'s extras (irrelevant masks, probes) add to the run, so
    /// runs with other extras get another cache folder; empty for none.
    pub tag: String,
    /// Train on the training labels permuted at random with this seed
    /// ([`crate::quality::permute_labels`]), for the data randomisation test of Adebayo et al. 2018;
    /// `None` (the default) trains on the true labels. Validation and test sets keep theirs.
    pub permute_labels: Option<u64>,
}

impl Default for DefaultRun {
    /// The default small CNN on the default shapes data; in quick mode, a smaller dataset and two
    /// epochs (the same code paths).
    fn default() -> Self {
        let shapes = if quick_mode() {
            ShapesConfig {
                train: 600,
                val: 100,
                test: 200,
                ..ShapesConfig::default()
            }
        } else {
            ShapesConfig::default()
        };
        // Adam at 3e-3, batch 32: measured to reach >= 90% test accuracy on the default shapes in
        // under ten epochs (SGD at 0.05 was still near 35% after five).
        let train = TrainConfig {
            epochs: pick(10, 2),
            batch_size: 32,
            optimizer: crate::train::Optimizer::Adam { weight_decay: 0.0 },
            lr: 3e-3,
            ..TrainConfig::default()
        };
        DefaultRun {
            shapes,
            model: ZooConfig::default(),
            train,
            tag: String::new(),
            permute_labels: None,
        }
    }
}

impl DefaultRun {
    /// A stable fingerprint of the settings, used to name the cache folder: the same settings
    /// always map to the same folder, other settings to another.
    pub fn fingerprint(&self) -> String {
        // The parameter names and shapes go in too, so a change of architecture in a new version of
        // the crate never loads old weights.
        let vs = nn::VarStore::new(tch::Device::Cpu);
        let params = match self.model.build(&vs.root()) {
            Ok(_) => {
                let mut v: Vec<_> = vs
                    .variables()
                    .into_iter()
                    .map(|(k, t)| format!("{k}{:?}", t.size()))
                    .collect();
                v.sort();
                v.join(",")
            }
            Err(e) => e.to_string(),
        };
        let mut train = self.train.clone();
        train.history_path = None;
        train.verbose = false;
        let mut text = format!(
            "{:?}|{:?}|{}|{}",
            self.shapes,
            self.model,
            params,
            serde_json::to_string(&train).unwrap_or_default()
        );
        // Empty tags leave the fingerprints of runs made before tags existed unchanged.
        if !self.tag.is_empty() {
            text += &format!("|tag={}", self.tag);
        }
        // Only when set, so the fingerprints (and caches) of true-label runs stay as they were.
        if let Some(seed) = self.permute_labels {
            text.push_str(&format!("|permuted labels {seed}"));
        }
        // FNV-1a: stable across Rust versions, unlike std's DefaultHasher.
        let hash = text.bytes().fold(0xcbf2_9ce4_8422_2325u64, |h, b| {
            (h ^ b as u64).wrapping_mul(0x100_0000_01b3)
        });
        let tag = if self.permute_labels.is_some() {
            "-permuted"
        } else {
            ""
        };
        format!("{}{tag}-{hash:016x}", self.model.arch.name())
    }
}

/// A trained model with the data it was trained on and its training history.
#[derive(Debug)]
pub struct Trained {
    /// The model's parameters.
    pub vs: nn::VarStore,
    /// The model, layers reachable by name.
    pub model: Staged,
    /// Train, validation and test splits (regenerated from the seed, identical to training's), with
    /// their true labels (also for a run with [`DefaultRun::permute_labels`]).
    pub data: Splits,
    /// One record per epoch, with the tracked test set's predictions.
    pub history: History,
    /// The folder holding `model.safetensors` and `history.json`.
    pub dir: PathBuf,
}

/// Trains `run`, or loads it from [`cache_dir`] when it was trained before with the same settings,
/// so notebooks can run in any order and fast. The weights and history are written atomically, so
/// an interrupted run is retrained, never half-loaded.
pub fn train_or_load(run: &DefaultRun) -> Result<Trained> {
    train_or_load_with(run, None, &mut [])
}

/// [`train_or_load`] with extras for a first training: `irrelevant` masks `[N, 1, H, W]` of the
/// training images for an input-gradient penalty with [`crate::train::IrrelevantRegion::Given`]
/// (see [`crate::train::FitData::with_irrelevant`]) and callbacks (such as
/// [`crate::train::evolution_probe`], whose records are cached with the history). Set
/// [`DefaultRun::tag`] to name the extras: the cache cannot see them.
pub fn train_or_load_with(
    run: &DefaultRun,
    irrelevant: Option<&tch::Tensor>,
    callbacks: &mut [&mut dyn crate::train::Callback],
) -> Result<Trained> {
    let data = shapes::generate(&run.shapes)?;
    let dir = cache_dir().join(run.fingerprint());
    let weights_path = dir.join("model.safetensors");
    let history_path = dir.join("history.json");
    let vs = nn::VarStore::new(crate::default_device());
    let model = run.model.build(&vs.root())?;
    std::fs::create_dir_all(&dir).map_err(|e| crate::Error::io(&dir, e))?;
    // Another process (a second notebook) training the same run: wait for it instead of training twice.
    let _lock = TrainingLock::acquire(&dir, &weights_path)?;
    if weights_path.exists() && history_path.exists() {
        weights::load(&vs, &weights_path)?;
        let history = History::load(&history_path)?;
        println!(
            "loaded the trained {} from {} ({} epochs)",
            run.model.arch.name(),
            dir.display(),
            history.epochs.len()
        );
        return Ok(Trained {
            vs,
            model,
            data,
            history,
            dir,
        });
    }
    let mut vs = vs;
    let cfg = TrainConfig {
        history_path: Some(history_path),
        ..run.train.clone()
    };
    let permuted = match run.permute_labels {
        Some(seed) => Some(crate::quality::permute_labels(&data.train, seed)?),
        None => None,
    };
    let mut fit_data = FitData::new(permuted.as_ref().unwrap_or(&data.train))
        .with_val(&data.val)
        .with_test(&data.test);
    if let Some(m) = irrelevant {
        fit_data = fit_data.with_irrelevant(m);
    }
    let history = fit(&model, &mut vs, &fit_data, &cfg, callbacks)?;
    weights::save(&vs, &weights_path)?;
    Ok(Trained {
        vs,
        model,
        data,
        history,
        dir,
    })
}

/// [`train_or_load`] with [`DefaultRun::default`]: the small CNN on the built-in shapes data.
pub fn trained_default() -> Result<Trained> {
    train_or_load(&DefaultRun::default())
}

/// A lock file `training.lock` holding the trainer's process id; removed on drop. A lock whose
/// process no longer exists is stale and taken over.
struct TrainingLock {
    path: PathBuf,
}

impl TrainingLock {
    fn acquire(dir: &std::path::Path, done: &std::path::Path) -> Result<Option<TrainingLock>> {
        let path = dir.join("training.lock");
        let mut announced = false;
        loop {
            match std::fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .open(&path)
            {
                Ok(mut f) => {
                    use std::io::Write;
                    let _ = write!(f, "{}", std::process::id());
                    return Ok(Some(TrainingLock { path }));
                }
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                    let owner = std::fs::read_to_string(&path).unwrap_or_default();
                    let alive = owner
                        .trim()
                        .parse::<u32>()
                        .map(|pid| std::path::Path::new(&format!("/proc/{pid}")).exists())
                        .unwrap_or(false);
                    if !alive {
                        let _ = std::fs::remove_file(&path);
                        continue;
                    }
                    if done.exists() {
                        return Ok(None);
                    }
                    if !announced {
                        println!(
                            "waiting for process {} which is training this model ...",
                            owner.trim()
                        );
                        announced = true;
                    }
                    std::thread::sleep(std::time::Duration::from_secs(3));
                }
                Err(e) => return Err(crate::Error::io(&path, e)),
            }
        }
    }
}

impl Drop for TrainingLock {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_permuted_label_run_has_its_own_cache_folder_and_the_default_keeps_its_own() {
        let run = DefaultRun::default();
        let permuted = DefaultRun {
            permute_labels: Some(1),
            ..run.clone()
        };
        let (a, b) = (run.fingerprint(), permuted.fingerprint());
        assert!(
            !a.contains("permuted") && b.starts_with("small_cnn-permuted-"),
            "{a} {b}"
        );
        assert_ne!(a[a.len() - 16..], b[b.len() - 16..]);
        let other_seed = DefaultRun {
            permute_labels: Some(2),
            ..run
        };
        assert_ne!(other_seed.fingerprint(), b);
    }
}
