//! Explanation evolution during training: the attribution maps of a few fixed images, recorded
//! after every epoch, so a user watches the model move to (or away from) a shortcut while it
//! trains. Drawn by [`crate::viz::evolution_strip`] (epochs across, images down).
//!
//! [`evolution_probe`] builds a [`Probe`] that stores, per epoch, each method's map of each image
//! (pooled to one channel, absolute values, scaled to a maximum of 1 and rounded to 3 decimals to
//! keep the history small) under the probe's name in [`super::EpochRecord::probes`];
//! [`ExplanationEvolution::from_history`] reads them back.
//!
//! ```
//! use cnn_explain::prelude::*;
//! use cnn_explain::attribution::gradient::Saliency;
//! use cnn_explain::train::{evolution_probe, ExplanationEvolution, fit, FitData, TrainConfig};
//! use tch::nn;
//!
//! let vs = nn::VarStore::new(Device::Cpu);
//! let model = Staged::new(1, 2, Device::Cpu)
//!     .leaf("flat", nn::func(|xs| xs.flatten(1, -1)))
//!     .leaf("fc", nn::linear(&vs.root() / "fc", 4, 2, Default::default()));
//! let xs = Tensor::cat(&[Tensor::zeros([4, 1, 2, 2], (Kind::Float, Device::Cpu)),
//!                        Tensor::ones([4, 1, 2, 2], (Kind::Float, Device::Cpu))], 0);
//! let ys = Tensor::from_slice(&[0i64, 0, 0, 0, 1, 1, 1, 1]);
//! let data = Dataset::new(xs.shallow_clone(), ys, vec!["dark".into(), "bright".into()], None)?;
//! let fixed = xs.narrow(0, 3, 2);
//! let mut probe = evolution_probe("evolution", &fixed, &[0, 1], vec![Box::new(Saliency::default())])?;
//! let cfg = TrainConfig { epochs: 3, batch_size: 4, verbose: false, ..Default::default() };
//! let mut vs = vs;
//! let history = fit(&model, &mut vs, &FitData::new(&data), &cfg, &mut [&mut probe])?;
//! let evo = ExplanationEvolution::from_history(&history, "evolution")?;
//! assert_eq!((evo.epochs.len(), evo.methods.len(), evo.images()), (3, 1, 2));
//! assert_eq!(evo.map(2, 0, 1)?.len(), 4);
//! # Ok::<(), cnn_explain::Error>(())
//! ```

use super::{History, Probe};
use crate::attribution::{Attribution, Target};
use crate::models::Model;
use crate::quality::{pool_channels, Pooling};
use crate::{Error, Result};
use serde::{Deserialize, Serialize};
use tch::{Device, Kind, Tensor};

/// The maps of one epoch as the probe stores them.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Frame {
    methods: Vec<String>,
    height: i64,
    width: i64,
    /// `[method][image][pixel]`.
    maps: Vec<Vec<Vec<f32>>>,
}

/// A probe that records, after each epoch, the maps of `images` `[M, C, H, W]` (true classes
/// `labels`, the maps' target) for each of `methods`. Add it to [`super::fit`]'s callbacks and
/// read the result with [`ExplanationEvolution::from_history`]`(history, name)`.
///
/// Errors when `labels` does not have one class per image.
pub fn evolution_probe<'f>(
    name: &str,
    images: &Tensor,
    labels: &[i64],
    methods: Vec<Box<dyn Attribution + 'f>>,
) -> Result<Probe<'f>> {
    let size = images.size();
    if size.len() != 4 || size[0] == 0 {
        return Err(Error::shape("images", "[M, C, H, W] with M >= 1", &size));
    }
    if labels.len() as i64 != size[0] {
        return Err(Error::invalid(
            "labels",
            format!(
                "{} labels for {} images; give one class per image",
                labels.len(),
                size[0]
            ),
        ));
    }
    if methods.is_empty() {
        return Err(Error::invalid("methods", "give at least one attribution method"));
    }
    let images = images.detach().copy();
    let labels = labels.to_vec();
    Ok(Probe::new(name, move |model: &dyn Model, _epoch| {
        let xs = images.f_to_device(model.device())?;
        let target = Target::PerSample(labels.clone());
        let mut frame = Frame {
            methods: methods.iter().map(|m| m.name()).collect(),
            height: size[2],
            width: size[3],
            maps: Vec::with_capacity(methods.len()),
        };
        for m in &methods {
            let map = m.attribute(model, &xs, &target)?;
            frame.maps.push(rows(&map)?);
        }
        Ok(serde_json::to_value(&frame)?)
    }))
}

/// One row per sample of `map` `[N, C, H, W]`: channels pooled by absolute sum, scaled to a
/// maximum of 1 (an all-zero map stays 0), rounded to 3 decimals.
fn rows(map: &Tensor) -> Result<Vec<Vec<f32>>> {
    let pooled = pool_channels(&map.f_to_kind(Kind::Float)?, Pooling::AbsSum)?;
    let n = pooled.size()[0];
    let flat = pooled.f_to_device(Device::Cpu)?.f_reshape([n, -1])?;
    let mut out = Vec::with_capacity(n as usize);
    for i in 0..n {
        let row = Vec::<f32>::try_from(flat.f_get(i)?)?;
        let max = row.iter().cloned().fold(0f32, f32::max);
        let scale = if max > 0.0 { 1.0 / max } else { 0.0 };
        out.push(
            row.iter()
                .map(|v| (v * scale * 1000.0).round() / 1000.0)
                .collect(),
        );
    }
    Ok(out)
}

/// The maps a probe recorded, epoch by epoch (serde: save it with the history or on its own).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ExplanationEvolution {
    /// Method names, in the probe's order.
    pub methods: Vec<String>,
    /// The 1-based epochs that have maps.
    pub epochs: Vec<usize>,
    /// Map height in pixels.
    pub height: i64,
    /// Map width in pixels.
    pub width: i64,
    /// `[epoch index][method][image][pixel]` (row-major, scaled to a maximum of 1 per map).
    pub maps: Vec<Vec<Vec<Vec<f32>>>>,
}

impl ExplanationEvolution {
    /// Collects the maps the probe `name` stored in `history` (epochs without them are skipped).
    /// Errors when no epoch has them or their methods or sizes change between epochs.
    pub fn from_history(history: &History, name: &str) -> Result<Self> {
        let mut evo: Option<ExplanationEvolution> = None;
        for rec in &history.epochs {
            let Some(v) = rec.probes.get(name) else { continue };
            let f: Frame = serde_json::from_value(v.clone())?;
            match &mut evo {
                None => {
                    evo = Some(ExplanationEvolution {
                        methods: f.methods,
                        epochs: vec![rec.epoch],
                        height: f.height,
                        width: f.width,
                        maps: vec![f.maps],
                    })
                }
                Some(e) => {
                    if e.methods != f.methods || (e.height, e.width) != (f.height, f.width) {
                        return Err(Error::invalid(
                            "history",
                            format!(
                                "the probe `{name}` changed its methods or map size at epoch {}",
                                rec.epoch
                            ),
                        ));
                    }
                    e.epochs.push(rec.epoch);
                    e.maps.push(f.maps);
                }
            }
        }
        evo.ok_or_else(|| {
            Error::invalid(
                "name",
                format!("no epoch of the history has probe `{name}`; add evolution_probe(\"{name}\", ..) to fit's callbacks"),
            )
        })
    }

    /// Number of images per epoch and method.
    pub fn images(&self) -> usize {
        self.maps.first().and_then(|m| m.first()).map_or(0, |m| m.len())
    }

    /// The map of image `image` for method `method` at epoch index `epoch` (not the epoch number).
    pub fn map(&self, epoch: usize, method: usize, image: usize) -> Result<&[f32]> {
        self.maps
            .get(epoch)
            .and_then(|e| e.get(method))
            .and_then(|m| m.get(image))
            .map(|v| v.as_slice())
            .ok_or_else(|| {
                Error::invalid(
                    "index",
                    format!(
                        "(epoch {epoch}, method {method}, image {image}) is outside {} epochs x {} methods x {} images",
                        self.maps.len(),
                        self.methods.len(),
                        self.images()
                    ),
                )
            })
    }

    /// The index of the method called `name`.
    pub fn method_index(&self, name: &str) -> Result<usize> {
        self.methods.iter().position(|m| m == name).ok_or_else(|| {
            Error::invalid(
                "method",
                format!(
                    "`{name}` was not recorded; the methods are {}",
                    self.methods.join(", ")
                ),
            )
        })
    }

    /// [`mass_share`] of every map in `region` (one region per image, `H * W` values, 1 inside):
    /// `[epoch index][image]` for method `method`.
    pub fn mass_shares(&self, method: usize, regions: &[Vec<f32>]) -> Result<Vec<Vec<f64>>> {
        if regions.len() != self.images() {
            return Err(Error::invalid(
                "regions",
                format!("{} regions for {} images", regions.len(), self.images()),
            ));
        }
        (0..self.maps.len())
            .map(|e| {
                (0..self.images())
                    .map(|i| mass_share(self.map(e, method, i)?, &regions[i]))
                    .collect()
            })
            .collect()
    }
}

/// The share of a map's absolute mass inside a region: `sum_{region} |m| / sum |m|`, in `[0, 1]`;
/// 0 for an all-zero map or an empty region. `map` and `region` are the same number of pixels
/// (row-major); the region is 1 (or above 0.5) inside.
///
/// ```
/// use cnn_explain::train::mass_share;
/// assert_eq!(mass_share(&[3.0, 1.0, 0.0, -4.0], &[1.0, 0.0, 0.0, 1.0])?, 0.875);
/// assert_eq!(mass_share(&[0.0; 4], &[1.0; 4])?, 0.0);
/// # Ok::<(), cnn_explain::Error>(())
/// ```
pub fn mass_share(map: &[f32], region: &[f32]) -> Result<f64> {
    if map.len() != region.len() {
        return Err(Error::invalid(
            "region",
            format!(
                "{} pixels for a map of {}; give a region of the map's size",
                region.len(),
                map.len()
            ),
        ));
    }
    let total: f64 = map.iter().map(|v| v.abs() as f64).sum();
    if total <= 0.0 {
        return Ok(0.0);
    }
    let inside: f64 = map
        .iter()
        .zip(region)
        .filter(|(_, &r)| r > 0.5)
        .map(|(v, _)| v.abs() as f64)
        .sum();
    Ok(inside / total)
}

/// [`mass_share`] per sample of maps `[N, C, H, W]` (channels pooled by absolute sum) in regions
/// `[N, 1, H, W]`.
///
/// ```
/// use cnn_explain::train::mass_shares;
/// use tch::Tensor;
/// let maps = Tensor::from_slice(&[3f32, 1., 0., -4.]).view([1, 1, 2, 2]);
/// let region = Tensor::from_slice(&[1f32, 0., 0., 1.]).view([1, 1, 2, 2]);
/// assert_eq!(mass_shares(&maps, &region)?, [0.875]);
/// # Ok::<(), cnn_explain::Error>(())
/// ```
pub fn mass_shares(maps: &Tensor, regions: &Tensor) -> Result<Vec<f64>> {
    let pooled = pool_channels(&maps.f_to_kind(Kind::Float)?, Pooling::AbsSum)?;
    let s = pooled.size();
    let r = regions.size();
    if r.len() != 4 || r[0] != s[0] || r[1] != 1 || r[2..] != s[2..] {
        return Err(Error::shape(
            "regions",
            format!("[{}, 1, {}, {}] (one region per map)", s[0], s[2], s[3]),
            &r,
        ));
    }
    let m = pooled.f_to_device(Device::Cpu)?.f_reshape([s[0], -1])?;
    let g = regions
        .f_to_kind(Kind::Float)?
        .f_to_device(Device::Cpu)?
        .f_reshape([s[0], -1])?;
    (0..s[0])
        .map(|i| {
            let a = Vec::<f32>::try_from(m.f_get(i)?)?;
            let b = Vec::<f32>::try_from(g.f_get(i)?)?;
            mass_share(&a, &b)
        })
        .collect()
}
