//! Localisation: does the explanation point at the object, given a ground-truth mask?
//!
//! - [`pointing_game`] (Zhang et al., "Top-down Neural Attention by Excitation Backprop", ECCV
//!   2016): a hit when the map's maximum lies inside the mask, or within `tolerance` pixels of it
//!   (the paper used 15 pixels at 224x224).
//! - [`energy_pointing_game`] (Wang et al., "Score-CAM", CVPR workshops 2020): the share of the
//!   map's positive mass inside the mask.
//! - [`relevance_mass_accuracy`] and [`relevance_rank_accuracy`] (Arras, Osman and Samek,
//!   "CLEVR-XAI", Information Fusion 2022): the share of the total relevance inside the mask, and the
//!   share of the `K` most relevant pixels inside a mask of `K` pixels.
//!
//! Maps are `[N, 1, H, W]` or `[N, C, H, W]` (summed over channels; pool them with
//! [`super::pool_channels`] first for another pooling, such as Arras et al.'s
//! [`super::Pooling::L2NormSquared`]). Masks are `[N, 1, H, W]`, float (inside where above 0.5) or
//! boolean, at the map's height and width. An empty mask is an error: the metrics are undefined.

use super::{descending_order, mask_rows, per_sample, Rows};
use crate::{Error, Result};
use tch::Tensor;

type Masks = Vec<Vec<bool>>;

fn rows_and_masks(map: &Tensor, mask: &Tensor) -> Result<(Rows, Masks, i64, i64)> {
    let (rows, h, w) = per_sample(map)?;
    let masks = mask_rows(mask, rows.len() as i64, h, w)?;
    if let Some(i) = masks.iter().position(|m| !m.iter().any(|&b| b)) {
        return Err(Error::invalid(
            "mask",
            format!("the mask of sample {i} is empty; localisation needs at least one pixel inside"),
        ));
    }
    Ok((rows, masks, h, w))
}

/// The pointing game: for each sample, whether the first maximum of the map (in row-major order)
/// lies inside the mask, or within Euclidean distance `tolerance` pixels of a mask pixel.
///
/// `map` `[N, C, H, W]`, `mask` `[N, 1, H, W]`; `tolerance` must be finite and non-negative.
///
/// ```
/// use cnn_explain::quality::pointing_game;
/// use tch::Tensor;
/// let map = Tensor::from_slice(&[0f32, 1., 0., 0.]).view([1, 1, 2, 2]);
/// let mask = Tensor::from_slice(&[0f32, 1., 0., 0.]).view([1, 1, 2, 2]);
/// assert_eq!(pointing_game(&map, &mask, 0.0)?, [true]);
/// let elsewhere = Tensor::from_slice(&[0f32, 0., 1., 0.]).view([1, 1, 2, 2]);
/// assert_eq!(pointing_game(&map, &elsewhere, 0.0)?, [false]);
/// assert_eq!(pointing_game(&map, &elsewhere, 1.5)?, [true]); // (0, 1) is sqrt(2) from (1, 0)
/// # Ok::<(), cnn_explain::Error>(())
/// ```
pub fn pointing_game(map: &Tensor, mask: &Tensor, tolerance: f64) -> Result<Vec<bool>> {
    if !(tolerance.is_finite() && tolerance >= 0.0) {
        return Err(Error::invalid(
            "tolerance",
            format!("must be a finite number of pixels >= 0, got {tolerance}"),
        ));
    }
    let (rows, masks, _, w) = rows_and_masks(map, mask)?;
    let w = w as usize;
    Ok(rows
        .iter()
        .zip(&masks)
        .map(|(row, m)| {
            let top = descending_order(row).first().copied().unwrap_or(0);
            let (r, c) = ((top / w) as f64, (top % w) as f64);
            m.iter().enumerate().any(|(i, &inside)| {
                let (y, x) = ((i / w) as f64, (i % w) as f64);
                inside && ((y - r).powi(2) + (x - c).powi(2)).sqrt() <= tolerance
            })
        })
        .collect())
}

/// The energy-based pointing game: `sum_{i in mask} max(m_i, 0) / sum_i max(m_i, 0)` per sample, in
/// `[0, 1]`; 0 for a map without positive values.
///
/// `map` `[N, C, H, W]` (channels summed), `mask` `[N, 1, H, W]`.
///
/// ```
/// use cnn_explain::quality::energy_pointing_game;
/// use tch::Tensor;
/// let map = Tensor::from_slice(&[3f32, 1., -5., 0.]).view([1, 1, 2, 2]);
/// let mask = Tensor::from_slice(&[1f32, 0., 1., 0.]).view([1, 1, 2, 2]);
/// assert_eq!(energy_pointing_game(&map, &mask)?, [0.75]);
/// # Ok::<(), cnn_explain::Error>(())
/// ```
pub fn energy_pointing_game(map: &Tensor, mask: &Tensor) -> Result<Vec<f64>> {
    let (rows, masks, _, _) = rows_and_masks(map, mask)?;
    Ok(rows
        .iter()
        .zip(&masks)
        .map(|(row, m)| {
            let total: f64 = row.iter().map(|v| v.max(0.0)).sum();
            let inside: f64 = row
                .iter()
                .zip(m)
                .filter(|(_, &b)| b)
                .map(|(v, _)| v.max(0.0))
                .sum();
            if total > 0.0 {
                inside / total
            } else {
                0.0
            }
        })
        .collect())
}

/// Relevance mass accuracy: `sum_{i in mask} R_i / sum_i R_i` per sample, with `R` the map summed
/// over channels, as Arras et al.'s reference code computes it; 0 when the total is 0.
///
/// The ratio lies in `[0, 1]` for non-negative maps: for signed maps (Input x Gradient, IG) pool
/// them first with a non-negative pooling ([`super::Pooling::PositiveSum`],
/// [`super::Pooling::L2NormSquared`]), as the paper does.
///
/// ```
/// use cnn_explain::quality::relevance_mass_accuracy;
/// use tch::Tensor;
/// let map = Tensor::from_slice(&[3f32, 1., 0., 4.]).view([1, 1, 2, 2]);
/// let mask = Tensor::from_slice(&[1f32, 0., 0., 1.]).view([1, 1, 2, 2]);
/// assert_eq!(relevance_mass_accuracy(&map, &mask)?, [0.875]);
/// # Ok::<(), cnn_explain::Error>(())
/// ```
pub fn relevance_mass_accuracy(map: &Tensor, mask: &Tensor) -> Result<Vec<f64>> {
    let (rows, masks, _, _) = rows_and_masks(map, mask)?;
    Ok(rows
        .iter()
        .zip(&masks)
        .map(|(row, m)| {
            let total: f64 = row.iter().sum();
            let inside: f64 = row.iter().zip(m).filter(|(_, &b)| b).map(|(v, _)| *v).sum();
            if total != 0.0 {
                inside / total
            } else {
                0.0
            }
        })
        .collect())
}

/// Relevance rank accuracy: with `K` the number of pixels in the mask, the share of the `K` pixels
/// of highest relevance (ties broken by row-major index) that lie inside the mask, per sample.
///
/// `map` `[N, C, H, W]` (channels summed), `mask` `[N, 1, H, W]`.
///
/// ```
/// use cnn_explain::quality::relevance_rank_accuracy;
/// use tch::Tensor;
/// let map = Tensor::from_slice(&[3f32, 1., 0., 4.]).view([1, 1, 2, 2]);
/// let mask = Tensor::from_slice(&[1f32, 1., 0., 0.]).view([1, 1, 2, 2]);
/// assert_eq!(relevance_rank_accuracy(&map, &mask)?, [0.5]); // top 2: pixels 3 and 0
/// # Ok::<(), cnn_explain::Error>(())
/// ```
pub fn relevance_rank_accuracy(map: &Tensor, mask: &Tensor) -> Result<Vec<f64>> {
    let (rows, masks, _, _) = rows_and_masks(map, mask)?;
    Ok(rows
        .iter()
        .zip(&masks)
        .map(|(row, m)| {
            let k = m.iter().filter(|&&b| b).count();
            let hits = descending_order(row)
                .into_iter()
                .take(k)
                .filter(|&i| m.get(i).copied().unwrap_or(false))
                .count();
            hits as f64 / k as f64
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;
    use tch::{Device, Kind};

    fn t(v: &[f32], shape: [i64; 4]) -> Tensor {
        Tensor::from_slice(v).view(shape)
    }

    #[test]
    fn map_inside_mask_scores_one_everywhere() {
        // Two samples of 3x3, RGB maps whose mass is all inside the mask.
        let mut m = vec![0f32; 2 * 9];
        let mut mask = vec![0f32; 2 * 9];
        for (s, px) in [(0usize, [0usize, 1, 4]), (1, [8, 5, 7])] {
            for (j, p) in px.iter().enumerate() {
                m[s * 9 + p] = 1.0 + j as f32;
                mask[s * 9 + p] = 1.0;
            }
        }
        let map = t(&m, [2, 1, 3, 3]).repeat([1, 3, 1, 1]);
        let mask = t(&mask, [2, 1, 3, 3]);
        assert_eq!(pointing_game(&map, &mask, 0.0).unwrap(), [true, true]);
        assert_eq!(energy_pointing_game(&map, &mask).unwrap(), [1.0, 1.0]);
        assert_eq!(relevance_mass_accuracy(&map, &mask).unwrap(), [1.0, 1.0]);
        assert_eq!(relevance_rank_accuracy(&map, &mask).unwrap(), [1.0, 1.0]);
    }

    #[test]
    fn map_outside_mask_and_mixed_cases() {
        let mask = t(&[1., 1., 0., 0.], [1, 1, 2, 2]).to_kind(Kind::Bool);
        let outside = t(&[0., 0., 2., 1.], [1, 1, 2, 2]);
        assert_eq!(pointing_game(&outside, &mask, 0.0).unwrap(), [false]);
        assert_eq!(pointing_game(&outside, &mask, 1.0).unwrap(), [true]);
        assert_eq!(energy_pointing_game(&outside, &mask).unwrap(), [0.0]);
        assert_eq!(relevance_rank_accuracy(&outside, &mask).unwrap(), [0.0]);
        // Ties: the first maximum in row-major order decides the pointing game.
        let tie = t(&[1., 0., 1., 0.], [1, 1, 2, 2]);
        assert_eq!(pointing_game(&tie, &mask, 0.0).unwrap(), [true]);
        let tie2 = t(&[0., 0., 1., 1.], [1, 1, 2, 2]);
        assert_eq!(pointing_game(&tie2, &mask, 0.0).unwrap(), [false]);
        // Energy ignores negatives: (2 + 0) / (2 + 0 + 6) = 0.25.
        let signed = t(&[2., -9., 6., 0.], [1, 1, 2, 2]);
        assert_eq!(energy_pointing_game(&signed, &mask).unwrap(), [0.25]);
        // Mass with signs, as Arras's code: (2 - 9) / (2 - 9 + 6) = 7.
        assert_eq!(relevance_mass_accuracy(&signed, &mask).unwrap(), [7.0]);
        let zero = Tensor::zeros([1, 1, 2, 2], (Kind::Float, Device::Cpu));
        assert_eq!(energy_pointing_game(&zero, &mask).unwrap(), [0.0]);
        assert_eq!(relevance_mass_accuracy(&zero, &mask).unwrap(), [0.0]);
    }

    #[test]
    fn bad_masks_are_errors() {
        let map = Tensor::ones([2, 1, 4, 4], (Kind::Float, Device::Cpu));
        let wrong = Tensor::ones([2, 1, 4, 5], (Kind::Float, Device::Cpu));
        let err = pointing_game(&map, &wrong, 0.0).unwrap_err().to_string();
        assert!(err.contains("[2, 1, 4, 4]"), "{err}");
        let wrong_n = Tensor::ones([1, 1, 4, 4], (Kind::Float, Device::Cpu));
        assert!(energy_pointing_game(&map, &wrong_n).is_err());
        let empty = Tensor::zeros([2, 1, 4, 4], (Kind::Float, Device::Cpu));
        let err = relevance_rank_accuracy(&map, &empty).unwrap_err().to_string();
        assert!(err.contains("empty"), "{err}");
        let ok = Tensor::ones([2, 1, 4, 4], (Kind::Float, Device::Cpu));
        assert!(pointing_game(&map, &ok, -1.0).is_err());
        assert!(pointing_game(&map, &ok, f64::NAN).is_err());
    }
}
