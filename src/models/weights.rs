//! Checkpoints: save and load a `VarStore` as `.safetensors` or libtorch's `.ot`, load everything
//! but a new head for fine-tuning, replace the classification head, freeze the backbone.
//!
//! Loading checks the whole file against the model BEFORE copying anything: a checkpoint that does
//! not match is an [`Error::CheckpointMismatch`] listing the missing names, the unexpected names and
//! the names whose shapes differ, and the model is left untouched.
//!
//! Torchvision weights: convert a state dict once in Python with
//! `safetensors.torch.save_file(model.state_dict(), "resnet18.safetensors")`; the zoo's names are
//! torchvision's, so the file loads with [`load`] (or [`load_except`] with the head's stage for a new
//! number of classes).

use super::layers::{Initializer, Linear, WeightInit};
use super::staged::Staged;
use crate::{Error, Result};
use std::collections::{BTreeMap, HashMap};
use std::path::Path;
use tch::nn::VarStore;
use tch::Tensor;

/// The file formats a checkpoint can have, chosen by extension.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// `.safetensors` (what PyTorch's `safetensors.torch.save_file` writes).
    SafeTensors,
    /// `.ot`, libtorch's C++ archive of named tensors (tch's native format).
    Ot,
}

impl Format {
    /// The format of `path` from its extension (`.safetensors` or `.ot`).
    pub fn from_path(path: &Path) -> Result<Format> {
        match path.extension().and_then(|e| e.to_str()) {
            Some("safetensors") => Ok(Format::SafeTensors),
            Some("ot") => Ok(Format::Ot),
            _ => Err(Error::invalid(
                "path",
                format!(
                    "{}: unknown checkpoint format; use a `.safetensors` or `.ot` file (PyTorch `.pth` files: \
                     convert with `safetensors.torch.save_file(state_dict, \"model.safetensors\")`)",
                    path.display()
                ),
            )),
        }
    }
}

/// Saves every variable of `vs` (parameters and buffers) to `path`, atomically; the format follows
/// the extension (`.safetensors` or `.ot`).
///
/// ```
/// use cnn_explain::models::{build, weights, Arch};
/// use tch::{nn, Device};
///
/// let dir = tempfile::tempdir().unwrap();
/// let vs = nn::VarStore::new(Device::Cpu);
/// let _model = build(Arch::SmallCnn, &vs.root(), 6)?;
/// let path = dir.path().join("small.safetensors");
/// weights::save(&vs, &path)?;
/// let vs2 = nn::VarStore::new(Device::Cpu);
/// let _model2 = build(Arch::SmallCnn, &vs2.root(), 6)?;
/// weights::load(&vs2, &path)?;
/// assert!(vs2.variables()["fc.weight"].equal(&vs.variables()["fc.weight"]));
/// # Ok::<(), cnn_explain::Error>(())
/// ```
pub fn save(vs: &VarStore, path: impl AsRef<Path>) -> Result<()> {
    let path = path.as_ref();
    let format = Format::from_path(path)?;
    let vars = vs.variables();
    let mut named: Vec<(&String, Tensor)> = vars
        .iter()
        .map(|(n, t)| (n, t.to_device(tch::Device::Cpu).contiguous()))
        .collect();
    named.sort_by(|a, b| a.0.cmp(b.0));
    crate::io::with_atomic_path(path, |tmp| {
        match format {
            Format::SafeTensors => Tensor::write_safetensors(&named, tmp)?,
            Format::Ot => Tensor::save_multi(&named, tmp)?,
        }
        Ok(())
    })
}

/// Reads every named tensor of a checkpoint (on the CPU).
pub fn read(path: impl AsRef<Path>) -> Result<Vec<(String, Tensor)>> {
    let path = path.as_ref();
    let format = Format::from_path(path)?;
    if !path.is_file() {
        return Err(Error::io(
            path,
            std::io::Error::new(std::io::ErrorKind::NotFound, "checkpoint file not found"),
        ));
    }
    let read = match format {
        Format::SafeTensors => Tensor::read_safetensors(path),
        Format::Ot => Tensor::load_multi_with_device(path, tch::Device::Cpu),
    };
    read.map_err(|e| Error::data(path, format!("cannot read the checkpoint: {e}")))
}

/// How a checkpoint differs from a model's variables.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Mismatch {
    /// Names the model has and the checkpoint lacks.
    pub missing: Vec<String>,
    /// Names the checkpoint has and the model lacks.
    pub unexpected: Vec<String>,
    /// `(name, shape in the model, shape in the checkpoint)` for names in both with other shapes.
    pub shapes: Vec<(String, Vec<i64>, Vec<i64>)>,
}

impl Mismatch {
    /// True when the checkpoint matches the model exactly.
    pub fn is_empty(&self) -> bool {
        self.missing.is_empty() && self.unexpected.is_empty() && self.shapes.is_empty()
    }

    /// Compares the model's `(name, shape)` pairs with the checkpoint's.
    pub fn between(model: &BTreeMap<String, Vec<i64>>, file: &BTreeMap<String, Vec<i64>>) -> Mismatch {
        let mut m = Mismatch::default();
        for (name, shape) in model {
            match file.get(name) {
                None => m.missing.push(name.clone()),
                Some(s) if s != shape => m.shapes.push((name.clone(), shape.clone(), s.clone())),
                Some(_) => {}
            }
        }
        m.unexpected = file.keys().filter(|n| !model.contains_key(*n)).cloned().collect();
        m
    }
}

impl std::fmt::Display for Mismatch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut parts = Vec::new();
        if !self.missing.is_empty() {
            parts.push(format!("missing in the checkpoint: {}", self.missing.join(", ")));
        }
        if !self.unexpected.is_empty() {
            parts.push(format!("not in the model: {}", self.unexpected.join(", ")));
        }
        if !self.shapes.is_empty() {
            let s: Vec<String> = self
                .shapes
                .iter()
                .map(|(n, m, c)| format!("{n} (model {m:?}, checkpoint {c:?})"))
                .collect();
            parts.push(format!("other shapes: {}", s.join(", ")));
        }
        if parts.is_empty() {
            f.write_str("no differences")
        } else {
            f.write_str(&parts.join("; "))
        }
    }
}

/// What [`load_except`] did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PartialLoad {
    /// Model variables copied from the checkpoint, sorted.
    pub loaded: Vec<String>,
    /// Model variables under a skipped prefix, which kept their values, sorted.
    pub skipped: Vec<String>,
    /// Checkpoint entries under a skipped prefix, which were ignored, sorted.
    pub ignored: Vec<String>,
}

fn under(name: &str, prefixes: &[&str]) -> bool {
    prefixes.iter().any(|p| {
        name == *p || (name.len() > p.len() && name.starts_with(p) && name.as_bytes()[p.len()] == b'.')
    })
}

fn shapes<'a>(
    it: impl Iterator<Item = (&'a String, &'a Tensor)>,
    skip: &[&str],
) -> BTreeMap<String, Vec<i64>> {
    it.filter(|(n, _)| !under(n, skip))
        .map(|(n, t)| (n.clone(), t.size()))
        .collect()
}

/// Loads every variable of `vs` from `path` (`.safetensors` or `.ot`). The checkpoint must hold
/// exactly the model's names with the model's shapes; otherwise nothing is loaded and the error
/// lists the differences ([`Error::CheckpointMismatch`]). Values are converted to each variable's
/// kind and device.
pub fn load(vs: &VarStore, path: impl AsRef<Path>) -> Result<()> {
    load_except(vs, path, &[]).map(|_| ())
}

/// Loads every variable of `vs` except those under the prefixes in `skip` (a name is under `fc` if
/// it is `fc` or starts with `fc.`), for fine-tuning with a new head: the skipped variables keep
/// their values and checkpoint entries under `skip` are ignored. Everything else must match exactly
/// (else [`Error::CheckpointMismatch`], and nothing is loaded).
///
/// ```
/// use cnn_explain::models::{build, weights, Arch};
/// use tch::{nn, Device};
///
/// let dir = tempfile::tempdir().unwrap();
/// let path = dir.path().join("ten.safetensors");
/// let vs10 = nn::VarStore::new(Device::Cpu);
/// build(Arch::SmallCnn, &vs10.root(), 10)?;
/// weights::save(&vs10, &path)?;
///
/// // The same backbone with a 6-class head: load everything but `fc`.
/// let vs6 = nn::VarStore::new(Device::Cpu);
/// build(Arch::SmallCnn, &vs6.root(), 6)?;
/// assert!(weights::load(&vs6, &path).is_err());
/// let report = weights::load_except(&vs6, &path, &["fc"])?;
/// assert_eq!(report.skipped, ["fc.bias", "fc.weight"]);
/// # Ok::<(), cnn_explain::Error>(())
/// ```
pub fn load_except(vs: &VarStore, path: impl AsRef<Path>, skip: &[&str]) -> Result<PartialLoad> {
    let path = path.as_ref();
    let file: HashMap<String, Tensor> = read(path)?.into_iter().collect();
    let vars = vs.variables();
    let mismatch = Mismatch::between(&shapes(vars.iter(), skip), &shapes(file.iter(), skip));
    if !mismatch.is_empty() {
        return Err(Error::CheckpointMismatch {
            path: path.to_path_buf(),
            details: mismatch.to_string(),
        });
    }
    let mut report = PartialLoad::default();
    tch::no_grad(|| -> Result<()> {
        for (name, var) in &vars {
            if under(name, skip) {
                report.skipped.push(name.clone());
                continue;
            }
            if let Some(src) = file.get(name) {
                let mut dst = var.shallow_clone();
                dst.f_copy_(src)
                    .map_err(|e| Error::data(path, format!("cannot copy `{name}`: {e}")))?;
                report.loaded.push(name.clone());
            }
        }
        Ok(())
    })?;
    report.ignored = file.keys().filter(|n| under(n, skip)).cloned().collect();
    report.loaded.sort();
    report.skipped.sort();
    report.ignored.sort();
    Ok(report)
}

/// Replaces `model`'s classification head (see [`Staged::head`]) with a new linear layer of
/// `num_classes` outputs, initialised like PyTorch's `nn.Linear` from `seed`. The old head's
/// variables are removed from `vs` and the new ones take their names (`fc.weight`, ...), so
/// checkpoints of the fine-tuned model keep torchvision's names. Build optimisers after this call.
///
/// ```
/// use cnn_explain::models::{build, weights, Arch, Model};
/// use tch::{nn, Device, Kind, Tensor};
///
/// let vs = nn::VarStore::new(Device::Cpu);
/// let mut model = build(Arch::SmallCnn, &vs.root(), 1000)?;
/// weights::replace_head(&mut model, &vs, 6, 0)?;
/// assert_eq!(model.num_classes(), 6);
/// assert_eq!(vs.variables()["fc.weight"].size(), [6, 128]);
/// let xs = Tensor::rand([1, 3, 64, 64], (Kind::Float, Device::Cpu));
/// assert_eq!(model.logits(&xs)?.size(), [1, 6]);
/// # Ok::<(), cnn_explain::Error>(())
/// ```
pub fn replace_head(model: &mut Staged, vs: &VarStore, num_classes: i64, seed: u64) -> Result<()> {
    if num_classes < 1 {
        return Err(Error::invalid(
            "num_classes",
            format!("a classifier needs at least 1 class, got {num_classes}"),
        ));
    }
    let head = model.head().cloned().ok_or_else(|| {
        Error::invalid(
            "model",
            "the model does not record its head (build it with the zoo or `Staged::with_head`)",
        )
    })?;
    let weight_name = format!("{}.weight", head.var_prefix);
    let f_in = match vs.variables().get(&weight_name) {
        Some(w) if w.dim() == 2 => w.size()[1],
        _ => {
            return Err(Error::invalid(
                "vs",
                format!(
                "no 2-D variable `{weight_name}` in this VarStore: pass the VarStore the model was built in"
            ),
            ))
        }
    };
    {
        let mut vars = vs.variables_.lock().unwrap_or_else(|e| e.into_inner());
        let names: Vec<String> = vars
            .named_variables
            .keys()
            .filter(|n| under(n, &[head.var_prefix.as_str()]))
            .cloned()
            .collect();
        let mut removed = Vec::new();
        for n in &names {
            if let Some(t) = vars.named_variables.remove(n) {
                removed.push(t.data_ptr() as usize);
            }
        }
        vars.trainable_variables
            .retain(|v| !removed.contains(&(v.tensor.data_ptr() as usize)));
    }
    let mut p = vs.root();
    for c in head.var_prefix.split('.') {
        p = p.sub(c);
    }
    let mut init = Initializer::new(Some(seed));
    let linear = Linear::new(&mut init, &p, f_in, num_classes, WeightInit::PytorchDefault)?;
    model.replace(&head.stage, linear, num_classes)
}

/// Freezes everything but `model`'s head: parameters outside the head stop tracking gradients, so an
/// optimiser over all variables only updates the head. Returns the names frozen, sorted.
///
/// Batch-norm layers of the backbone still update their running statistics when the model runs in
/// training mode; undo with [`unfreeze`].
pub fn freeze_backbone(model: &Staged, vs: &VarStore) -> Result<Vec<String>> {
    let head = model.head().ok_or_else(|| {
        Error::invalid(
            "model",
            "the model does not record its head (build it with the zoo or `Staged::with_head`)",
        )
    })?;
    let vars = vs.variables();
    if !vars.keys().any(|n| under(n, &[head.var_prefix.as_str()])) {
        return Err(Error::invalid(
            "vs",
            format!(
                "no variable under `{}` in this VarStore: pass the VarStore the model was built in",
                head.var_prefix
            ),
        ));
    }
    let mut frozen = Vec::new();
    for (name, t) in &vars {
        if !under(name, &[head.var_prefix.as_str()]) && t.requires_grad() {
            let _ = t.set_requires_grad(false);
            frozen.push(name.clone());
        }
    }
    frozen.sort();
    Ok(frozen)
}

/// Makes every trainable variable of `vs` track gradients again (undoes [`freeze_backbone`]).
pub fn unfreeze(vs: &VarStore) {
    let vars = vs.variables_.lock().unwrap_or_else(|e| e.into_inner());
    for v in &vars.trainable_variables {
        let _ = v.tensor.set_requires_grad(true);
    }
}
