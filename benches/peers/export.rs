//! The files the crate side of `benches/peers.rs` shares with the Python side
//! (`scripts/bench/peers.py`), and the report that joins both. Included by the bench and by
//! `tests/peers_export.rs` (`#[path]`), so the format is tested without running the benchmark.
//!
//! The work folder (`target/bench-peers/work/`) holds:
//! - `crate.json` ([`CrateRun`]): settings, models, cases and the crate's timed rows;
//! - `<model>.safetensors`: the model's weights under torchvision's names (`weights::save`);
//! - `<model>_b<batch>_input.safetensors`: `input` `[N, 3, H, W]` float and `targets` `[N]` int64;
//! - `<model>_b<batch>_crate.safetensors`: the crate's maps, one per method key (and
//!   `<method>@<peer>` where the crate is run with a peer's convention for the comparison);
//! - `train_data.safetensors` (`images`, `labels`) and `small_cnn_train_init.safetensors`;
//! - `peers.json` ([`PeerRun`]): the peers' timed rows, as the peer server reported them to the
//!   crate side (both sides are timed in the same run, interleaved);
//! - written by the Python peer server: `<model>_b<batch>_peers.safetensors`, maps under
//!   `<method>/<peer>`.

// Each includer uses a different part.
#![allow(dead_code)]

use cnn_explain::attribution::compare;
use cnn_explain::io::{with_atomic_path, write_atomic};
use cnn_explain::prelude::*;
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use tch::nn;

/// Largest normalised difference for a deterministic method to count as the same answer.
pub const TOLERANCE: f64 = 1e-4;

/// Median, smallest and largest of `times`.
pub fn summary(times: &[f64]) -> (f64, f64, f64) {
    let mut v = times.to_vec();
    v.sort_by(f64::total_cmp);
    let n = v.len();
    if n == 0 {
        return (f64::NAN, f64::NAN, f64::NAN);
    }
    let med = if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    };
    (med, v[0], v[n - 1])
}

/// One model of the run.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct ModelInfo {
    /// `small_cnn`, `resnet18`, `resnet50` (the Python side builds it by this name).
    pub name: String,
    /// Number of classes.
    pub classes: i64,
    /// Input height and width.
    pub size: i64,
    /// The layer CAM methods explain (a stage name, also the Python module's name).
    pub layer: String,
    /// Weights file, relative to the work folder.
    pub weights: String,
    /// [`weights_digest`] of the weights: a run resumed on another machine (`PEERS_CARRY`) makes
    /// them again from their seed, and must get the same ones (empty in runs before it was kept).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub digest: String,
}

/// The rows the bench can run, by method key (`PEERS_METHODS` picks some of them).
pub const METHODS: [&str; 12] = [
    "forward",
    "floor",
    "saliency",
    "smoothgrad",
    "ig",
    "gradcam",
    "gradcampp",
    "layercam",
    "scorecam",
    "occlusion",
    "lime",
    "train_epoch",
];

/// The items of a comma-separated list (an environment variable's value), trimmed, empty ones
/// left out.
pub fn comma_list(text: &str) -> Vec<String> {
    text.split(',')
        .map(str::trim)
        .filter(|m| !m.is_empty())
        .map(String::from)
        .collect()
}

/// The methods named in `list` (`PEERS_METHODS`, comma-separated), checked against [`METHODS`];
/// `None` (every row) when the list is empty.
pub fn methods_from(list: &str) -> Result<Option<Vec<String>>> {
    let names = comma_list(list);
    if let Some(unknown) = names.iter().find(|m| !METHODS.contains(&m.as_str())) {
        return Err(Error::invalid(
            "PEERS_METHODS",
            format!("{unknown:?} is not a row of the bench; the rows are {METHODS:?}"),
        ));
    }
    Ok((!names.is_empty()).then_some(names))
}

/// A fingerprint of a model's weights: FNV-1a (64 bits) over every variable's name, shape and
/// float32 values, in the order of their names. Two variable stores have the same digest exactly
/// when they hold the same names with bit-identical values.
pub fn weights_digest(vs: &nn::VarStore) -> Result<String> {
    let mut vars: Vec<(String, Tensor)> = vs.variables().into_iter().collect();
    vars.sort_by(|a, b| a.0.cmp(&b.0));
    let mut h = Fnv::default();
    for (name, t) in vars {
        h.eat(name.as_bytes());
        for d in t.size() {
            h.eat(&d.to_le_bytes());
        }
        let values: Vec<f32> = t
            .detach()
            .to_device(Device::Cpu)
            .to_kind(Kind::Float)
            .flatten(0, -1)
            .try_into()?;
        for v in values {
            h.eat(&v.to_bits().to_le_bytes());
        }
    }
    Ok(h.text())
}

/// A fingerprint of the crate's code under `root` (the package folder): FNV-1a (64 bits) over the
/// path and bytes of every file under `src/`, and of `Cargo.toml` and `Cargo.lock`, in path order.
pub fn source_digest(root: &Path) -> Result<String> {
    fn walk(dir: &Path, files: &mut Vec<PathBuf>) -> Result<()> {
        for entry in std::fs::read_dir(dir).map_err(|e| Error::io(dir, e))? {
            let path = entry.map_err(|e| Error::io(dir, e))?.path();
            if path.is_dir() {
                walk(&path, files)?;
            } else {
                files.push(path);
            }
        }
        Ok(())
    }
    let mut files = vec![root.join("Cargo.toml"), root.join("Cargo.lock")];
    walk(&root.join("src"), &mut files)?;
    files.sort();
    let mut h = Fnv::default();
    for f in files {
        let rel = f.strip_prefix(root).unwrap_or(&f);
        h.eat(rel.to_string_lossy().as_bytes());
        h.eat(&std::fs::read(&f).map_err(|e| Error::io(&f, e))?);
    }
    Ok(h.text())
}

/// The first value of `key` in the text of a `/proc/cpuinfo` (empty where there is none).
fn cpuinfo_field(info: &str, key: &str) -> String {
    info.lines()
        .filter_map(|l| l.split_once(':'))
        .find(|(k, _)| k.trim() == key)
        .map(|(_, v)| v.trim().to_string())
        .unwrap_or_default()
}

/// The kind of CPU and how many of it this process sees, from the text of a `/proc/cpuinfo`: its
/// model name, family and model, e.g. `AMD EPYC (family 25, model 17), 2 cores` (empty where
/// there is none).
pub fn cpu_from_cpuinfo(info: &str) -> String {
    let cores = info
        .lines()
        .filter(|l| l.split(':').next().is_some_and(|k| k.trim() == "processor"))
        .count();
    if cores == 0 {
        return String::new();
    }
    format!(
        "{} (family {}, model {}), {cores} cores",
        cpuinfo_field(info, "model name"),
        cpuinfo_field(info, "cpu family"),
        cpuinfo_field(info, "model")
    )
}

/// The kind of CPU of the text of a `/proc/cpuinfo` as a folder name: the model name in lower
/// case with every run of other characters than letters and digits made one `-`, then its family
/// and model, e.g. `amd-epyc-family25-model17`. The same fields as [`cpu_from_cpuinfo`] but the
/// core count: a carried run keeps one folder per kind (see [`carry_folder`]), and the bench's
/// check of the CPU still refuses a run whose cores differ. `None` where the text names no CPU.
pub fn cpu_kind(info: &str) -> Option<String> {
    let name = cpuinfo_field(info, "model name");
    let family = cpuinfo_field(info, "cpu family");
    if name.is_empty() && family.is_empty() {
        return None;
    }
    let mut slug = String::new();
    for c in name.chars() {
        if c.is_ascii_alphanumeric() {
            slug.push(c.to_ascii_lowercase());
        } else if !slug.is_empty() && !slug.ends_with('-') {
            slug.push('-');
        }
    }
    let slug = match slug.trim_end_matches('-') {
        "" => "cpu",
        named => named,
    };
    let model = cpuinfo_field(info, "model");
    Some(format!("{slug}-family{family}-model{model}"))
}

/// `PEERS_CARRY` with every `{cpu}` replaced by the [`cpu_kind`] of `cpuinfo`, so that one
/// command carries a run over sittings in one folder per kind of CPU: rounds timed on two kinds
/// do not belong in one median. Errors if the text needs the kind and `cpuinfo` names none.
pub fn carry_folder(template: &str, cpuinfo: &str) -> Result<PathBuf> {
    if !template.contains("{cpu}") {
        return Ok(PathBuf::from(template));
    }
    let kind = cpu_kind(cpuinfo).ok_or_else(|| {
        Error::invalid(
            "PEERS_CARRY",
            format!(
                "{template:?} asks for the kind of CPU ({{cpu}}), and /proc/cpuinfo names none: \
                 give the folder without {{cpu}}"
            ),
        )
    })?;
    Ok(PathBuf::from(template.replace("{cpu}", &kind)))
}

/// FNV-1a, 64 bits: a fingerprint (not a cryptographic hash) that needs no dependency.
struct Fnv(u64);

impl Default for Fnv {
    fn default() -> Self {
        Fnv(0xcbf2_9ce4_8422_2325)
    }
}

impl Fnv {
    fn eat(&mut self, bytes: &[u8]) {
        for b in bytes {
            self.0 ^= u64::from(*b);
            self.0 = self.0.wrapping_mul(0x0100_0000_01b3);
        }
    }

    fn text(&self) -> String {
        format!("fnv1a64:{:016x}", self.0)
    }
}

/// The files that hold a run's progress (`crate.json`, `peers.json`): what `PEERS_CARRY` copies
/// between the work folder and a folder that outlives the machine.
pub const RUN_FILES: [&str; 2] = ["crate.json", "peers.json"];

/// Copies [`RUN_FILES`] from `from` to `to` (made if missing), each atomically. Errors if `from`
/// lacks one of them.
pub fn copy_run_files(from: &Path, to: &Path) -> Result<()> {
    std::fs::create_dir_all(to).map_err(|e| Error::io(to, e))?;
    for f in RUN_FILES {
        let src = from.join(f);
        let bytes = std::fs::read(&src).map_err(|e| Error::io(&src, e))?;
        write_atomic(to.join(f), &bytes)?;
    }
    Ok(())
}

/// One model at one batch size.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct CaseInfo {
    /// The model's name.
    pub model: String,
    /// Images per call.
    pub batch: i64,
    /// `input` and `targets`, relative to the work folder.
    pub input: String,
    /// The crate's maps.
    pub maps: String,
}

/// One timed method on one case.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct TimedRow {
    /// The model's name.
    pub model: String,
    /// Images per call.
    pub batch: i64,
    /// Method key (`forward`, `floor`, `saliency`, `smoothgrad`, `ig`, `gradcam`, `gradcampp`,
    /// `scorecam`, `layercam`, `occlusion`, `lime`, `train_epoch`).
    pub method: String,
    /// Who ran it: `crate`, or the peer library (`torch`, `captum`, `pytorch-grad-cam`, `torchcam`,
    /// `lime`).
    pub who: String,
    /// Seconds of each timed run (after the warm-up), for the whole call.
    pub times: Vec<f64>,
    /// Images per call (the batch, or the number of training images for `train_epoch`).
    pub images: i64,
    /// A remark (settings that differ, why a map is not compared; for a peer, how it was called
    /// where that differs from the other rows, e.g. one image per call when its batch call would
    /// not fit in memory).
    #[serde(default)]
    pub note: String,
    /// Crate rows: seconds of the crate's floor (forward + backward to the input, same case, same
    /// images) timed right after each of `times`, so `x floor` pairs runs under the same load.
    /// Empty for the floor itself, the training row and the peers' rows.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub floor_times: Vec<f64>,
    /// Crate rows: every timed call (the crate's, its floor's and each peer's) was made right after
    /// an untimed call of the same side, so none started cold after the other process.
    #[serde(default)]
    pub pre_run: bool,
}

impl TimedRow {
    /// Median, min and max seconds per image.
    pub fn per_image(&self) -> (f64, f64, f64) {
        let (m, lo, hi) = summary(&self.times);
        let n = self.images.max(1) as f64;
        (m / n, lo / n, hi / n)
    }
}

/// `num` over `den` where run `i` of one was taken next to run `i` of the other: the median of the
/// per-run ratios (each pair saw the same load). Runs that do not pair up (lengths differ) fall
/// back to the ratio of the medians. Both in seconds per call of the same number of images.
pub fn paired_ratio(num: &[f64], den: &[f64]) -> f64 {
    if !num.is_empty() && num.len() == den.len() {
        let ratios: Vec<f64> = num.iter().zip(den).map(|(a, b)| a / b).collect();
        summary(&ratios).0
    } else {
        summary(num).0 / summary(den).0
    }
}

/// The training row's settings and files.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct TrainInfo {
    /// `images` `[N, 3, 64, 64]` and `labels` `[N]`, relative to the work folder.
    pub data: String,
    /// The small CNN's initial weights, relative to the work folder.
    pub init: String,
    /// Mini-batch size.
    pub batch_size: i64,
    /// Learning rate (constant).
    pub lr: f64,
    /// SGD momentum.
    pub momentum: f64,
    /// SGD weight decay.
    pub weight_decay: f64,
}

/// What the crate side ran (`crate.json`).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct CrateRun {
    /// libtorch intra-op threads.
    pub threads: i32,
    /// Untimed runs before the timed ones.
    pub warmup: usize,
    /// Timed runs.
    pub reps: usize,
    /// `/proc/loadavg` at the start and the end of the run (both sides: they are interleaved).
    pub load: Vec<String>,
    /// The method settings, as text (the Python side uses the same ones).
    pub settings: Vec<String>,
    /// How each side's C allocator was set up (`runtime::keep_freed_memory` on the crate's side,
    /// the same glibc settings on the Python side with `PEERS_PY_KEEP_FREED=1`).
    #[serde(default)]
    pub allocator: String,
    /// How the runs were ordered (empty in runs before the pre-runs: alternating order only).
    #[serde(default)]
    pub order: String,
    /// The models.
    pub models: Vec<ModelInfo>,
    /// The cases.
    pub cases: Vec<CaseInfo>,
    /// The crate's timed rows.
    pub rows: Vec<TimedRow>,
    /// The training row, if run.
    pub train: Option<TrainInfo>,
    /// Written after a row of a run that has not finished (the bench saves its progress after
    /// every row, so that a run stopped after hours keeps the rows it finished).
    #[serde(default)]
    pub partial: bool,
    /// The row that was running when the progress was last saved, with its timed rounds so far
    /// (saved after every round of the rows timed without pre-runs, whose calls take 2 s or more,
    /// so that `PEERS_RESUME=1` goes on from the next round instead of starting a row of hours
    /// over).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub unfinished: Option<UnfinishedRow>,
    /// How many times the run was stopped and resumed (`PEERS_RESUME=1`): its rows, and the
    /// rounds of a row stopped midway, were then timed in different sittings.
    #[serde(default)]
    pub resumed: usize,
    /// [`source_digest`] of the crate the bench was built from: a resumed run must time the same
    /// code in all its sittings (empty in runs before it was kept).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub source: String,
    /// [`cpu_from_cpuinfo`] of the machine: the rounds of a row resumed elsewhere must be timed on
    /// the same kind of CPU (empty in runs before it was kept).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub cpu: String,
}

/// A row stopped midway: its timed calls so far, both sides, in the order they ran (saved after
/// every call, so one side may be a round ahead of the other).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct UnfinishedRow {
    /// The model's name.
    pub model: String,
    /// Images per call.
    pub batch: i64,
    /// Method key.
    pub method: String,
    /// Timed rounds the row has in all (it keeps the count it started with).
    pub reps: usize,
    /// Whether every timed call follows an untimed one of the same side (kept on resuming).
    pub pre_run: bool,
    /// The crate's seconds per timed call so far.
    pub mine: Vec<f64>,
    /// The crate's floor, timed next to each of `mine` (empty if the row has none).
    pub floor: Vec<f64>,
    /// The peers, in the order they run, and each one's seconds per timed call so far.
    pub peers: Vec<(String, Vec<f64>)>,
}

impl UnfinishedRow {
    /// The rounds every side has finished.
    pub fn rounds_done(&self) -> usize {
        self.peers
            .iter()
            .map(|p| p.1.len())
            .fold(self.mine.len(), usize::min)
    }

    /// Timed calls made in the round after [`UnfinishedRow::rounds_done`] (`crate`, or the peer).
    pub fn calls_ahead(&self) -> Vec<&str> {
        let done = self.rounds_done();
        std::iter::once(("crate", self.mine.len()))
            .chain(self.peers.iter().map(|(p, t)| (p.as_str(), t.len())))
            .filter(|&(_, n)| n > done)
            .map(|(who, _)| who)
            .collect()
    }
}

impl CrateRun {
    /// Whether the crate's row `method` on `model` at `batch` is among the finished rows.
    pub fn finished(&self, model: &str, batch: i64, method: &str) -> bool {
        self.rows
            .iter()
            .any(|r| r.who == "crate" && r.model == model && r.batch == batch && r.method == method)
    }

    /// The stopped row to go on with, if it is `method` on `model` at `batch` with these peers.
    pub fn unfinished_row(
        &self,
        model: &str,
        batch: i64,
        method: &str,
        peers: &[String],
    ) -> Option<&UnfinishedRow> {
        self.unfinished.as_ref().filter(|u| {
            u.model == model
                && u.batch == batch
                && u.method == method
                && u.peers.iter().map(|p| &p.0).eq(peers.iter())
        })
    }

    /// Checks that a run stopped with these settings can be resumed by one with `now`'s: the
    /// threads, timed rounds, warm-up, method settings and allocator must match, or the resumed
    /// rows would not be comparable with the finished ones.
    pub fn check_resumable(&self, now: &CrateRun) -> Result<()> {
        let mut differ = Vec::new();
        if self.threads != now.threads {
            differ.push(format!("threads {} (now {})", self.threads, now.threads));
        }
        if self.reps != now.reps {
            differ.push(format!("timed runs {} (now {}, PEERS_REPS)", self.reps, now.reps));
        }
        if self.warmup != now.warmup {
            differ.push(format!("warm-up runs {} (now {})", self.warmup, now.warmup));
        }
        if self.settings != now.settings {
            differ.push("the method settings".to_string());
        }
        if self.allocator != now.allocator {
            differ.push(format!(
                "the allocator: {:?} (now {:?}, PEERS_DEFAULT_MALLOC / PEERS_PY_KEEP_FREED)",
                self.allocator, now.allocator
            ));
        }
        if !self.source.is_empty() && !now.source.is_empty() && self.source != now.source {
            differ.push(format!(
                "the crate's sources (src/, Cargo.toml, Cargo.lock): {} (now {}), so its timed calls \
                 so far were made by other code",
                self.source, now.source
            ));
        }
        if !self.cpu.is_empty() && !now.cpu.is_empty() && self.cpu != now.cpu {
            differ.push(format!(
                "the machine: {:?} (now {:?}), so its timed calls so far would not belong in one median \
                 with this one's",
                self.cpu, now.cpu
            ));
        }
        if self.order != now.order {
            differ.push(format!(
                "the order of the runs (PEERS_PRE_RUN_BELOW): {:?}",
                self.order
            ));
        }
        if differ.is_empty() {
            Ok(())
        } else {
            Err(Error::invalid(
                "PEERS_RESUME",
                format!(
                    "the stopped run in the work folder ran with other settings: {}; resume with the \
                     same ones, or start a new run without PEERS_RESUME",
                    differ.join("; ")
                ),
            ))
        }
    }
}

/// What the Python side ran (`peers.json`), as the crate side collected it from the peer server.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct PeerRun {
    /// torch's intra-op threads.
    pub threads: i32,
    /// Library versions (`torch`, `captum`, ...).
    pub versions: BTreeMap<String, String>,
    /// `/proc/loadavg` at the start and the end of the run (the same as the crate's).
    pub load: Vec<String>,
    /// The peers' timed rows.
    pub rows: Vec<TimedRow>,
}

/// Methods whose maps depend on random draws: compared by correlation, not to [`TOLERANCE`].
pub fn is_random(method: &str) -> bool {
    matches!(method, "smoothgrad" | "lime" | "train_epoch")
}

/// The work folder: `$CARGO_TARGET_DIR` (or `target`) `/bench-peers/work`, or `PEERS_WORK`.
pub fn work_dir() -> PathBuf {
    if let Some(d) = std::env::var_os("PEERS_WORK") {
        return PathBuf::from(d);
    }
    PathBuf::from(std::env::var("CARGO_TARGET_DIR").unwrap_or_else(|_| "target".into()))
        .join("bench-peers")
        .join("work")
}

/// Input file name of a case.
pub fn input_file(model: &str, batch: i64) -> String {
    format!("{model}_b{batch}_input.safetensors")
}

/// The files of a case (model, batch) in the work folder.
pub fn case_info(model: &str, batch: i64) -> CaseInfo {
    CaseInfo {
        model: model.to_string(),
        batch,
        input: input_file(model, batch),
        maps: crate_maps_file(model, batch),
    }
}

/// The crate's map file of a case.
pub fn crate_maps_file(model: &str, batch: i64) -> String {
    format!("{model}_b{batch}_crate.safetensors")
}

/// The peers' map file of a case.
pub fn peer_maps_file(model: &str, batch: i64) -> String {
    format!("{model}_b{batch}_peers.safetensors")
}

/// Writes named tensors as safetensors (contiguous, on the CPU), atomically.
pub fn write_tensors(path: &Path, named: &[(String, Tensor)]) -> Result<()> {
    let named: Vec<(&str, Tensor)> = named
        .iter()
        .map(|(n, t)| (n.as_str(), t.to_device(Device::Cpu).contiguous()))
        .collect();
    with_atomic_path(path, |tmp| Ok(Tensor::write_safetensors(&named, tmp)?))
}

/// Reads a safetensors file into a map by name.
pub fn read_tensors(path: &Path) -> Result<HashMap<String, Tensor>> {
    let v = Tensor::read_safetensors(path)
        .map_err(|e| Error::data(path, format!("cannot read safetensors: {e}")))?;
    Ok(v.into_iter().collect())
}

/// Writes a value as pretty JSON, atomically.
pub fn write_json<T: Serialize>(path: &Path, value: &T) -> Result<()> {
    let json = serde_json::to_string_pretty(value).map_err(|e| Error::invalid("json", e.to_string()))?;
    write_atomic(path, json.as_bytes())
}

/// Reads JSON written by [`write_json`] (or by the Python side).
pub fn read_json<T: for<'de> Deserialize<'de>>(path: &Path) -> Result<T> {
    let text = std::fs::read_to_string(path).map_err(|e| Error::io(path, e))?;
    serde_json::from_str(&text).map_err(|e| Error::data(path, format!("bad JSON: {e}")))
}

/// The first line of `/proc/loadavg` (empty where there is none), with the time.
pub fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|s| s.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_default()
}

/// One line of the report: a crate row next to one peer (or none).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct ReportRow {
    /// The model's name.
    pub model: String,
    /// Images per call.
    pub batch: i64,
    /// Method key.
    pub method: String,
    /// Crate: median seconds per image.
    pub crate_s_per_image: f64,
    /// Crate: fastest and slowest run, seconds per image.
    pub crate_spread: (f64, f64),
    /// Crate time over the crate's floor (forward + backward to the input) on the same case: the
    /// median of the per-run ratios to the floor timed right after each run ([`TimedRow::floor_times`]),
    /// or, without those, over the median of the case's `floor` row.
    pub crate_over_floor: Option<f64>,
    /// The peer library (`None`: no peer has the method).
    pub peer: Option<String>,
    /// Peer: median seconds per image.
    pub peer_s_per_image: Option<f64>,
    /// Peer: fastest and slowest run, seconds per image.
    pub peer_spread: Option<(f64, f64)>,
    /// Peer time over crate time (> 1: the crate is faster): the median of the per-run ratios
    /// ([`paired_ratio`]; peer run i ran right after crate run i).
    pub peer_over_crate: Option<f64>,
    /// `max_abs_diff` (deterministic methods) or `correlation` (random ones).
    pub agreement_metric: Option<String>,
    /// The agreement value.
    pub agreement: Option<f64>,
    /// Whether the maps agree (`max_abs_diff <= TOLERANCE`); `None` for random methods.
    pub agrees: Option<bool>,
    /// Remarks.
    pub note: String,
    /// Every timed call followed an untimed call of the same side ([`TimedRow::pre_run`]).
    #[serde(default)]
    pub pre_run: bool,
    /// How the peer was called, where that differs from the other rows (the peer's
    /// [`TimedRow::note`]); the table marks the peer with `†` and says it under the table.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub peer_as_run: String,
}

/// Known, explained disagreements, keyed `method/peer`.
pub fn known_difference(method: &str, peer: &str) -> Option<&'static str> {
    match (method, peer) {
        ("gradcampp", "torchcam") => Some(
            "torchcam 0.5.0's GradCAMpp never divides alpha (`alpha[mask].div_(...)` acts on a copy), so its \
             weights are sum g^2 relu(g), not the paper's: a different map, see README",
        ),
        ("lime", "lime") => Some("random sampling and scikit-image's SLIC vs the crate's SLIC: correlation only"),
        ("smoothgrad", _) => Some("random noise on both sides: correlation only"),
        ("scorecam", "pytorch-grad-cam") => {
            Some("compared with the crate's `pytorch_grad_cam_masks: true` map (masks upsampled then normalised)")
        }
        _ => None,
    }
}

/// The crate's and the peers' maps of each case `(model, batch)`, by name.
type CaseMaps = HashMap<(String, i64), (HashMap<String, Tensor>, HashMap<String, Tensor>)>;

/// Joins the crate's and the peers' rows and maps of the work folder `dir` into report rows.
pub fn report_rows(dir: &Path, crate_run: &CrateRun, peers: &PeerRun) -> Result<Vec<ReportRow>> {
    let mut maps: CaseMaps = HashMap::new();
    for c in &crate_run.cases {
        let mine = read_tensors(&dir.join(&c.maps))?;
        let peer_path = dir.join(peer_maps_file(&c.model, c.batch));
        let theirs = if peer_path.exists() {
            read_tensors(&peer_path)?
        } else {
            HashMap::new()
        };
        maps.insert((c.model.clone(), c.batch), (mine, theirs));
    }
    let floor = |model: &str, batch: i64| {
        crate_run
            .rows
            .iter()
            .find(|r| r.model == model && r.batch == batch && r.method == "floor")
            .map(|r| r.per_image().0)
    };
    let mut out = Vec::new();
    for row in &crate_run.rows {
        let (med, lo, hi) = row.per_image();
        let over_floor = match row.method.as_str() {
            "train_epoch" | "floor" => None,
            _ if !row.floor_times.is_empty() => Some(paired_ratio(&row.times, &row.floor_times)),
            _ => floor(&row.model, row.batch).map(|f| med / f),
        };
        let base = ReportRow {
            model: row.model.clone(),
            batch: row.batch,
            method: row.method.clone(),
            crate_s_per_image: med,
            crate_spread: (lo, hi),
            crate_over_floor: over_floor,
            peer: None,
            peer_s_per_image: None,
            peer_spread: None,
            peer_over_crate: None,
            agreement_metric: None,
            agreement: None,
            agrees: None,
            note: row.note.clone(),
            pre_run: row.pre_run,
            peer_as_run: String::new(),
        };
        let theirs: Vec<&TimedRow> = peers
            .rows
            .iter()
            .filter(|p| p.model == row.model && p.batch == row.batch && p.method == row.method)
            .collect();
        if theirs.is_empty() {
            out.push(base);
            continue;
        }
        for p in theirs {
            let (pm, plo, phi) = p.per_image();
            let mut r = base.clone();
            r.peer = Some(p.who.clone());
            r.peer_as_run = p.note.clone();
            r.peer_s_per_image = Some(pm);
            r.peer_spread = Some((plo, phi));
            r.peer_over_crate = Some(if p.images == row.images {
                paired_ratio(&p.times, &row.times)
            } else {
                pm / med
            });
            let mut notes: Vec<String> = [row.note.as_str(), p.note.as_str()]
                .iter()
                .filter(|s| !s.is_empty())
                .map(|s| s.to_string())
                .collect();
            if let Some(k) = known_difference(&row.method, &p.who) {
                notes.push(k.to_string());
            }
            if let Some((mine, theirs)) = maps.get(&(row.model.clone(), row.batch)) {
                let special = format!("{}@{}", row.method, p.who);
                let a = mine.get(&special).or_else(|| mine.get(&row.method));
                let b = theirs.get(&format!("{}/{}", row.method, p.who));
                if let (Some(a), Some(b)) = (a, b) {
                    let ag = compare::agreement(a, b)?;
                    if is_random(&row.method) {
                        r.agreement_metric = Some("correlation".into());
                        r.agreement = Some(ag.correlation);
                    } else {
                        r.agreement_metric = Some("max_abs_diff".into());
                        r.agreement = Some(ag.max_abs_diff);
                        r.agrees = Some(ag.max_abs_diff <= TOLERANCE);
                    }
                }
            }
            r.note = notes.join("; ");
            out.push(r);
        }
    }
    Ok(out)
}

fn secs(v: f64) -> String {
    if v >= 1.0 {
        format!("{v:.2}")
    } else if v >= 0.01 {
        format!("{v:.4}")
    } else {
        format!("{v:.2e}")
    }
}

/// The report as a Markdown table, with a header saying how it was measured.
pub fn markdown(rows: &[ReportRow], crate_run: &CrateRun, peers: &PeerRun) -> String {
    let versions = peers
        .versions
        .iter()
        .map(|(k, v)| format!("{k} {v}"))
        .collect::<Vec<_>>()
        .join(", ");
    let load = |l: &[String]| {
        format!(
            "{} -> {}",
            l.first().map_or("?", String::as_str),
            l.last().map_or("?", String::as_str)
        )
    };
    let load = if crate_run.load == peers.load {
        format!("at the start -> end of the run: {}", load(&crate_run.load))
    } else {
        format!(
            "crate side {}; Python side {}",
            load(&crate_run.load),
            load(&peers.load)
        )
    };
    let mut md = if crate_run.partial {
        let stopped = crate_run.unfinished.as_ref().map_or(String::new(), |u| {
            let ahead = u.calls_ahead();
            format!(
                " The row after them ({} b{} {}) had finished {} of its {} timed rounds{}; \
                 `PEERS_RESUME=1` goes on from there.",
                u.model,
                u.batch,
                u.method,
                u.rounds_done(),
                u.reps,
                if ahead.is_empty() {
                    String::new()
                } else {
                    format!(" (and the next round's call of {})", ahead.join(", "))
                }
            )
        });
        format!(
            "**Partial run**: it stopped after the {} rows below (the bench saves its progress after every row); \
             the rows after them were not run.{stopped}\n",
            crate_run.rows.len()
        )
    } else {
        String::new()
    };
    if crate_run.resumed > 0 {
        md += &format!(
            "The run was stopped and resumed {} time(s) (`PEERS_RESUME=1`): its rows, and the rounds of a row \
             that stopped midway, were timed in different sittings (each round still pairs the two sides).\n",
            crate_run.resumed
        );
    }
    md += &format!(
        "Seconds per image, median of the timed runs [fastest, slowest]; {} threads on both sides \
         (crate: libtorch from torch 2.13.0; Python: {versions}). The two sides are interleaved run by run, \
         one side running at a time: {}.\n\
         Allocator: {}.\n\
         Load average (1, 5, 15 min) {load}.\n\
         `x floor`: crate time / crate forward+backward to the input on the same case (median of the per-run ratios). \
         `peer / crate`: median of the per-run ratios; > 1: the crate is faster. \
         Agreement: max |difference| of the per-sample min-max normalised maps (deterministic methods, must be <= {TOLERANCE:e}), \
         or the smallest per-sample Pearson correlation (random methods, `r=`).\n\n\
         | model | batch | method | crate s/img [spread] | x floor | peer | peer s/img [spread] | peer / crate | agreement |\n\
         |---|---|---|---|---|---|---|---|---|\n",
        crate_run.threads,
        if crate_run.order.is_empty() {
            format!(
                "{} warm-up, then {} timed rounds, crate run i with its floor run i, and each peer's run i, \
                 the crate first when i is even and last when i is odd",
                crate_run.warmup, crate_run.reps
            )
        } else {
            crate_run.order.clone()
        },
        if crate_run.allocator.is_empty() {
            "glibc defaults on both sides"
        } else {
            &crate_run.allocator
        },
    );
    for r in rows {
        let agreement = match (r.agreement_metric.as_deref(), r.agreement, r.agrees) {
            (Some("correlation"), Some(v), _) => format!("r={v:.3}"),
            (Some(_), Some(v), Some(true)) => format!("{v:.1e} ok"),
            (Some(_), Some(v), _) => {
                if r.note.contains("see README") {
                    format!("{v:.2} (known)")
                } else {
                    format!("**{v:.2e} DIFFERS**")
                }
            }
            _ => "-".into(),
        };
        let ratio = r.peer_over_crate.map_or("-".into(), |v| {
            if v < 1.0 {
                format!("**{v:.2}**")
            } else {
                format!("{v:.2}")
            }
        });
        md.push_str(&format!(
            "| {} | {} | {}{} | {} [{}, {}] | {} | {} | {} | {} | {} |\n",
            r.model,
            r.batch,
            r.method,
            if r.pre_run || crate_run.order.is_empty() {
                ""
            } else {
                " *"
            },
            secs(r.crate_s_per_image),
            secs(r.crate_spread.0),
            secs(r.crate_spread.1),
            r.crate_over_floor.map_or("-".into(), |v| format!("{v:.2}")),
            match (&r.peer, r.peer_as_run.is_empty()) {
                (Some(p), false) => format!("{p} †"),
                (p, _) => p.as_deref().unwrap_or("-").to_string(),
            },
            match (r.peer_s_per_image, r.peer_spread) {
                (Some(m), Some((lo, hi))) => format!("{} [{}, {}]", secs(m), secs(lo), secs(hi)),
                _ => "-".into(),
            },
            ratio,
            agreement,
        ));
    }
    for r in rows.iter().filter(|r| !r.peer_as_run.is_empty()) {
        md.push_str(&format!(
            "\n† {} on {} at batch {}: {}.\n",
            r.peer.as_deref().unwrap_or("-"),
            r.model,
            r.batch,
            r.peer_as_run
        ));
    }
    md
}
