//! The cascading model-parameter randomisation test (Adebayo et al., "Sanity Checks for Saliency
//! Maps", NeurIPS 2018).
//!
//! The parameters of the model are re-initialised layer by layer from the top (the logits) down,
//! cumulatively, and each method's map is recomputed after every step. A method that explains the
//! model must change its maps as the weights that produced the prediction are destroyed; one whose
//! maps stay similar (high Spearman rank correlation and SSIM with the original) shows something
//! about the input or the architecture, not about what the model learned.
//!
//! The paper's second test, data randomisation, trains a second model on labels permuted at random
//! and compares the two models' maps: [`permute_labels`] makes the training set and
//! [`map_similarity`] compares the maps; the training itself is [`crate::train::fit`]'s.
//!
//! The randomised parameters are restored when the function returns, also on error: the caller's
//! model is unchanged afterwards.

use super::similarity::{spearman, ssim, SsimConfig};
use super::{pool_channels, Pooling};
use crate::attribution::{cam::normalize, Attribution, Target};
use crate::data::Dataset;
use crate::models::Model;
use crate::rng::Rng;
use crate::{Error, Result};
use tch::nn::VarStore;
use tch::{Kind, Tensor};

/// Settings of [`cascading_randomisation`].
#[derive(Debug, Clone, PartialEq)]
pub struct RandomisationConfig {
    /// Seed of the re-initialisation.
    pub seed: u64,
    /// The prefix of the model's variables in the `VarStore` (empty for a model built at
    /// `vs.root()`, `"net."` for one built under `vs.root() / "net"`).
    pub var_prefix: String,
    /// The SSIM settings, or `None` to skip SSIM (maps smaller than the window cannot have it).
    pub ssim: Option<SsimConfig>,
}

impl Default for RandomisationConfig {
    /// Seed 0, no prefix, SSIM with Wang et al.'s Gaussian window.
    fn default() -> Self {
        RandomisationConfig {
            seed: 0,
            var_prefix: String::new(),
            ssim: Some(SsimConfig::default()),
        }
    }
}

/// A method's maps after one step of the cascade.
#[derive(Debug)]
pub struct RandomisationStep {
    /// The layer randomised at this step (all layers of the earlier steps are randomised too).
    pub layer: String,
    /// The method's map on the randomised model, as the method returned it.
    pub map: Tensor,
    /// Spearman rank correlation of the absolute map with the original's, per sample.
    pub spearman: Vec<f64>,
    /// SSIM of the absolute map normalised to `[0, 1]` with the original's, per sample (empty when
    /// SSIM is off).
    pub ssim: Vec<f64>,
}

/// One method's results of [`cascading_randomisation`].
#[derive(Debug)]
pub struct MethodRandomisation {
    /// The method's name.
    pub method: String,
    /// The map on the intact model.
    pub original: Tensor,
    /// One entry per randomised layer, in the order of the cascade.
    pub steps: Vec<RandomisationStep>,
}

fn is_buffer(name: &str) -> bool {
    let last = name.rsplit('.').next().unwrap_or(name);
    last.starts_with("running_") || last == "num_batches_tracked"
}

/// The parameters (not batch-norm statistics) of `layer`: variables named `{prefix}{layer}.*`,
/// sorted by name.
fn layer_parameters(vs: &VarStore, prefix: &str, layer: &str) -> Vec<(String, Tensor)> {
    let head = format!("{prefix}{layer}.");
    let mut vars: Vec<(String, Tensor)> = vs
        .variables()
        .into_iter()
        .filter(|(n, _)| n.starts_with(&head) && !is_buffer(n))
        .collect();
    vars.sort_by(|a, b| a.0.cmp(&b.0));
    vars
}

/// The layers to randomise for a full cascade, top (output) first: the outermost stages of `model`
/// that own parameters in `vs` (`fc, block3, block2, block1, bn1, conv1` for the small CNN).
///
/// ```
/// use cnn_explain::models::{build, Arch};
/// use cnn_explain::quality::cascade_layers;
/// let vs = tch::nn::VarStore::new(tch::Device::Cpu);
/// let model = build(Arch::SmallCnn, &vs.root(), 6)?;
/// assert_eq!(cascade_layers(&model, &vs, ""), ["fc", "block3", "block2", "block1", "bn1", "conv1"]);
/// # Ok::<(), cnn_explain::Error>(())
/// ```
pub fn cascade_layers(model: &dyn Model, vs: &VarStore, var_prefix: &str) -> Vec<String> {
    let with_params: Vec<String> = model
        .layers()
        .into_iter()
        .filter(|l| !layer_parameters(vs, var_prefix, l).is_empty())
        .collect();
    let mut out: Vec<String> = with_params
        .iter()
        .filter(|l| {
            !with_params
                .iter()
                .any(|p| p != *l && l.starts_with(&format!("{p}.")))
        })
        .cloned()
        .collect();
    out.reverse();
    out
}

/// Restores saved variables when dropped.
struct Restore {
    saved: Vec<(Tensor, Tensor)>,
}

impl Drop for Restore {
    fn drop(&mut self) {
        tch::no_grad(|| {
            // Newest first, so a variable saved twice ends at its first (original) value.
            for (var, copy) in self.saved.iter().rev() {
                // Same shape, kind and device as when saved: cannot fail.
                let mut v = var.shallow_clone();
                let _ = v.f_copy_(copy);
            }
        });
    }
}

/// Redraws `vars` (one layer's parameters) from PyTorch's default initialisation: a tensor of rank
/// two or more from `U(-1/sqrt(fan_in), 1/sqrt(fan_in))` with `fan_in = numel / size[0]`; a bias
/// from the same bound as its layer's weight; other rank-1 tensors (batch-norm scale and shift) from
/// `U(-1, 1)`.
fn redraw(vars: &[(String, Tensor)], rng: &mut Rng) -> Result<()> {
    let fan_in_of = |t: &Tensor| {
        let s = t.size();
        let numel: i64 = s.iter().product();
        (numel / s.first().copied().unwrap_or(1).max(1)).max(1)
    };
    for (name, var) in vars {
        let size = var.size();
        let bound = if size.len() >= 2 {
            1.0 / (fan_in_of(var) as f64).sqrt()
        } else {
            let sibling = name.strip_suffix(".bias").map(|b| format!("{b}.weight"));
            match vars
                .iter()
                .find(|(n, t)| Some(n) == sibling.as_ref() && t.dim() >= 2)
            {
                Some((_, w)) => 1.0 / (fan_in_of(w) as f64).sqrt(),
                None => 1.0,
            }
        };
        let u = rng.uniform_tensor(&size, var.device()).to_kind(var.kind());
        let new = (u * 2.0 - 1.0) * bound;
        tch::no_grad(|| var.shallow_clone().f_copy_(&new))?;
    }
    Ok(())
}

/// The absolute map pooled over channels, `[N, 1, H, W]`.
fn absolute(map: &Tensor) -> Result<Tensor> {
    pool_channels(map, Pooling::AbsSum)
}

/// How similar two batches of maps are, as the sanity checks measure it.
#[derive(Debug, Clone, PartialEq)]
pub struct MapSimilarity {
    /// Spearman rank correlation of the absolute maps (summed over channels), per sample.
    pub spearman: Vec<f64>,
    /// SSIM of the absolute maps normalised to `[0, 1]` per sample (empty when SSIM is off).
    pub ssim: Vec<f64>,
}

/// Compares maps `a` and `b` (same shape `[N, C, H, W]`) as Adebayo et al. do: Spearman rank
/// correlation of `|a|` and `|b|` (summed over channels) and, with `ssim` set, the SSIM of the
/// absolute maps min-max normalised to `[0, 1]` per sample.
///
/// ```
/// use cnn_explain::quality::{map_similarity, SsimConfig};
/// use tch::{Kind, Tensor};
/// let a = Tensor::rand([2, 3, 12, 12], (Kind::Float, tch::Device::Cpu));
/// let s = map_similarity(&a, &(-&a), Some(&SsimConfig::default()))?; // signs do not count
/// assert!(s.spearman.iter().chain(&s.ssim).all(|v| (v - 1.0).abs() < 1e-9));
/// # Ok::<(), cnn_explain::Error>(())
/// ```
pub fn map_similarity(a: &Tensor, b: &Tensor, ssim_config: Option<&SsimConfig>) -> Result<MapSimilarity> {
    if a.size() != b.size() {
        return Err(Error::shape(
            "second map",
            format!("the shape of the first map, {:?}", a.size()),
            &b.size(),
        ));
    }
    let (a, b) = (absolute(a)?, absolute(b)?);
    let rho = spearman(&a, &b)?;
    let s = match ssim_config {
        Some(c) => ssim(&normalize(&a)?, &normalize(&b)?, c)?,
        None => Vec::new(),
    };
    Ok(MapSimilarity {
        spearman: rho,
        ssim: s,
    })
}

/// The training set of the data randomisation test: `data` with its labels permuted at random
/// (seeded), images and masks unchanged. A model trained on it can only memorise; a method whose
/// maps for that model resemble those for the model trained on the true labels fails the test.
///
/// ```
/// use cnn_explain::data::Dataset;
/// use cnn_explain::quality::permute_labels;
/// use tch::{Kind, Tensor};
/// let images = Tensor::zeros([4, 3, 8, 8], (Kind::Float, tch::Device::Cpu));
/// let data = Dataset::new(images, Tensor::from_slice(&[0i64, 0, 1, 2]), vec!["a".into(), "b".into(), "c".into()], None)?;
/// let permuted = permute_labels(&data, 1)?;
/// assert_eq!(permuted.class_counts()?, data.class_counts()?);
/// # Ok::<(), cnn_explain::Error>(())
/// ```
pub fn permute_labels(data: &Dataset, seed: u64) -> Result<Dataset> {
    let n = data.len();
    let perm = Tensor::from_slice(&Rng::new(seed).permutation(n)).to_device(data.labels.device());
    let labels = data.labels.f_index_select(0, &perm)?;
    Dataset::new(
        data.images.shallow_clone(),
        labels,
        data.class_names.clone(),
        data.masks.as_ref().map(|m| m.shallow_clone()),
    )
}

/// Runs the cascading randomisation: for each of `layers` in order (top first, see
/// [`cascade_layers`]), re-initialises its parameters (seeded, cumulatively) and computes every
/// method's map of `input` `[N, C, H, W]`, comparing it with the map on the intact model.
///
/// The target is resolved once on the intact model (for [`Target::Predicted`], the class it
/// predicts), so every map explains the same class. `vs` must hold the model's variables (names
/// `{config.var_prefix}{layer}.*`). The parameters are restored before returning, also on error.
///
/// ```
/// use cnn_explain::attribution::{gradient::Saliency, Attribution, Target};
/// use cnn_explain::prelude::*;
/// use cnn_explain::quality::{cascading_randomisation, RandomisationConfig};
/// let vs = tch::nn::VarStore::new(Device::Cpu);
/// let model = Staged::new(1, 2, Device::Cpu)
///     .leaf("flat", tch::nn::func(|xs| xs.flatten(1, -1)))
///     .leaf("fc", tch::nn::linear(vs.root() / "fc", 4, 2, Default::default()));
/// let before = vs.variables()["fc.weight"].copy();
/// let xs = Tensor::ones([1, 1, 2, 2], (Kind::Float, Device::Cpu));
/// let config = RandomisationConfig { ssim: None, ..Default::default() };
/// let out = cascading_randomisation(&model, &vs, &["fc"], &[&Saliency::default()], &xs, &Target::Class(0), &config)?;
/// assert_eq!(out[0].steps.len(), 1);
/// assert!(vs.variables()["fc.weight"].equal(&before)); // restored
/// # Ok::<(), cnn_explain::Error>(())
/// ```
pub fn cascading_randomisation(
    model: &dyn Model,
    vs: &VarStore,
    layers: &[&str],
    methods: &[&dyn Attribution],
    input: &Tensor,
    target: &Target,
    config: &RandomisationConfig,
) -> Result<Vec<MethodRandomisation>> {
    if layers.is_empty() {
        return Err(Error::invalid(
            "layers",
            "no layer to randomise; pass the layers top first, for example `cascade_layers(&model, &vs, \"\")`",
        ));
    }
    if methods.is_empty() {
        return Err(Error::invalid("methods", "no method to check; pass at least one"));
    }
    let mut params = Vec::with_capacity(layers.len());
    for layer in layers {
        model.check_layer(layer)?;
        let vars = layer_parameters(vs, &config.var_prefix, layer);
        if vars.is_empty() {
            return Err(Error::invalid(
                "layers",
                format!(
                    "layer `{layer}` has no parameters in the VarStore (no variable named `{}{layer}.*`); \
                     layers with parameters, top first: {}",
                    config.var_prefix,
                    cascade_layers(model, vs, &config.var_prefix).join(", ")
                ),
            ));
        }
        params.push(vars);
    }
    model.check_input(input)?;
    let xs = input.to_device(model.device()).to_kind(Kind::Float).detach();
    let classes = tch::no_grad(|| target.resolve(model, &model.forward_t(&xs, false)))?;
    let target = Target::PerSample(Vec::<i64>::try_from(classes.to_device(tch::Device::Cpu))?);

    let compare = |a: &Tensor, b: &Tensor| -> Result<(Vec<f64>, Vec<f64>)> {
        let s = map_similarity(a, b, config.ssim.as_ref())?;
        Ok((s.spearman, s.ssim))
    };

    let mut results = Vec::with_capacity(methods.len());
    for m in methods {
        let original = m.attribute(model, &xs, &target)?.detach();
        // Checked here so a map SSIM cannot take fails before any weight is touched.
        compare(&original, &original)?;
        results.push(MethodRandomisation {
            method: m.name(),
            original,
            steps: Vec::new(),
        });
    }

    let mut guard = Restore { saved: Vec::new() };
    let mut rng = Rng::new(config.seed);
    for (layer, vars) in layers.iter().zip(&params) {
        for (_, v) in vars {
            guard.saved.push((v.shallow_clone(), v.detach().copy()));
        }
        redraw(vars, &mut rng)?;
        for (m, r) in methods.iter().zip(results.iter_mut()) {
            let map = m.attribute(model, &xs, &target)?.detach();
            let (rho, s) = compare(&r.original, &map)?;
            r.steps.push(RandomisationStep {
                layer: layer.to_string(),
                map,
                spearman: rho,
                ssim: s,
            });
        }
    }
    drop(guard);
    Ok(results)
}
