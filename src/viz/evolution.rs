//! The explanation-evolution strip: one row per fixed image, the image itself then its map after
//! each epoch, with the share of the map's mass in a region (the spurious cue) written under each
//! map. The data come from [`crate::train::ExplanationEvolution`].

use super::charts::{font, pe, truncate_to};
use super::figure::Draw;
use super::{Colormap, Figure};
use crate::train::ExplanationEvolution;
use crate::{Error, Result};
use plotters::coord::Shift;
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};

/// What [`draw_evolution`] draws; build it with [`evolution_strip`] and show it with
/// [`Draw::figure`].
#[derive(Debug, Clone)]
pub struct EvolutionStrip {
    /// Column titles: `image`, then `epoch e` for each recorded epoch.
    pub columns: Vec<String>,
    /// `[row][column]` images (the input, then one map per epoch).
    pub cells: Vec<Vec<image::RgbImage>>,
    /// `[row][column]` text under each cell (empty for none).
    pub captions: Vec<Vec<String>>,
    /// One label per row (left of it).
    pub row_labels: Vec<String>,
    /// Figure title.
    pub title: String,
    /// Side of a cell in pixels.
    pub cell: u32,
}

/// The strip of method `method` of `evo`: `images` are the fixed images (one RGB image per row, as
/// [`super::tensor_to_image`] makes them, the maps' size), `regions` optional per-image masks
/// (`H * W` values, 1 inside) whose [`crate::train::mass_share`] is written under each map as
/// `cue NN%` (`region_name` replaces `cue`), `row_labels` one label per image.
///
/// ```
/// use cnn_explain::train::ExplanationEvolution;
/// use cnn_explain::viz::{evolution_strip, Draw};
/// let evo = ExplanationEvolution { methods: vec!["m".into()], epochs: vec![1, 2], height: 2, width: 2,
///     maps: vec![vec![vec![vec![1.0, 0.0, 0.0, 0.0]]], vec![vec![vec![0.0, 0.0, 0.0, 1.0]]]] };
/// let img = image::RgbImage::new(2, 2);
/// let strip = evolution_strip(&evo, 0, &[img], Some(&[vec![1.0, 0.0, 0.0, 0.0]]), "cue", &["circle".into()])?;
/// assert_eq!(strip.captions[0], ["", "cue 100%", "cue 0%"]);
/// let svg = strip.figure().to_svg()?;
/// assert!(svg.contains("epoch 2") && svg.contains("cue 100%"));
/// # Ok::<(), cnn_explain::Error>(())
/// ```
pub fn evolution_strip(
    evo: &ExplanationEvolution,
    method: usize,
    images: &[image::RgbImage],
    regions: Option<&[Vec<f32>]>,
    region_name: &str,
    row_labels: &[String],
) -> Result<EvolutionStrip> {
    let name = evo.methods.get(method).ok_or_else(|| {
        Error::invalid(
            "method",
            format!("index {method} but {} methods were recorded", evo.methods.len()),
        )
    })?;
    if images.len() != evo.images() {
        return Err(Error::invalid(
            "images",
            format!(
                "{} images for {} recorded maps per epoch",
                images.len(),
                evo.images()
            ),
        ));
    }
    let (h, w) = (evo.height, evo.width);
    if let Some(img) = images
        .iter()
        .find(|i| (i.height() as i64, i.width() as i64) != (h, w))
    {
        return Err(Error::invalid(
            "images",
            format!(
                "an image is {}x{} but the maps are {w}x{h}",
                img.width(),
                img.height()
            ),
        ));
    }
    let shares = regions.map(|r| evo.mass_shares(method, r)).transpose()?;
    let mut cells = Vec::new();
    let mut captions = Vec::new();
    for (i, img) in images.iter().enumerate() {
        let mut row = vec![img.clone()];
        let mut cap = vec![String::new()];
        for e in 0..evo.epochs.len() {
            let map = tch::Tensor::from_slice(evo.map(e, method, i)?).view([h, w]);
            let colours = Colormap::Inferno.apply(&map, 0.0, 1.0)?;
            row.push(super::blend(img, &colours, 0.7));
            cap.push(match &shares {
                Some(s) => format!("{region_name} {:.0}%", 100.0 * s[e][i]),
                None => String::new(),
            });
        }
        cells.push(row);
        captions.push(cap);
    }
    let mut columns = vec!["image".to_string()];
    columns.extend(evo.epochs.iter().map(|e| format!("epoch {e}")));
    Ok(EvolutionStrip {
        columns,
        cells,
        captions,
        row_labels: row_labels.to_vec(),
        title: name.clone(),
        cell: 72,
    })
}

const PAD: u32 = 6;
const HEAD: u32 = 20;
const CAPTION: u32 = 18;

impl EvolutionStrip {
    fn label_width(&self) -> u32 {
        if self.row_labels.is_empty() {
            0
        } else {
            80
        }
    }
    fn title_h(&self) -> u32 {
        if self.title.is_empty() {
            0
        } else {
            28
        }
    }
}

impl Draw for EvolutionStrip {
    fn size(&self) -> (u32, u32) {
        let cols = self.columns.len() as u32;
        let rows = self.cells.len() as u32;
        (
            self.label_width() + cols * (self.cell + PAD) + PAD,
            self.title_h() + HEAD + rows * (self.cell + CAPTION + PAD) + PAD,
        )
    }

    fn draw<DB: DrawingBackend>(&self, area: &DrawingArea<DB, Shift>) -> Result<()> {
        draw_evolution(area, self)
    }
}

/// Draws `strip` on any plotters backend (the whole area is used).
pub fn draw_evolution<DB: DrawingBackend>(
    area: &DrawingArea<DB, Shift>,
    strip: &EvolutionStrip,
) -> Result<()> {
    if strip.cells.is_empty() || strip.cell < 8 {
        return Err(Error::invalid(
            "strip",
            "no rows to draw (or a cell below 8 pixels)",
        ));
    }
    area.fill(&WHITE).map_err(pe)?;
    let (w, _) = area.dim_in_pixel();
    let centre = Pos::new(HPos::Center, VPos::Center);
    if !strip.title.is_empty() {
        let t = truncate_to(&strip.title, 16.0, w.saturating_sub(10));
        area.draw_text(&t, &font(16.0).pos(centre), (w as i32 / 2, 14))
            .map_err(pe)?;
    }
    let lw = strip.label_width();
    let y_top = strip.title_h();
    let row_h = strip.cell + CAPTION + PAD;
    for (c, title) in strip.columns.iter().enumerate() {
        let x = lw + PAD + c as u32 * (strip.cell + PAD) + strip.cell / 2;
        let t = truncate_to(title, 12.0, strip.cell + PAD);
        area.draw_text(&t, &font(12.0).pos(centre), (x as i32, (y_top + HEAD / 2) as i32))
            .map_err(pe)?;
    }
    for (r, row) in strip.cells.iter().enumerate() {
        let y0 = y_top + HEAD + r as u32 * row_h;
        if let Some(label) = strip.row_labels.get(r) {
            let t = truncate_to(label, 12.0, lw.saturating_sub(8));
            let style = font(12.0).pos(Pos::new(HPos::Right, VPos::Center));
            area.draw_text(&t, &style, (lw as i32 - 4, (y0 + strip.cell / 2) as i32))
                .map_err(pe)?;
        }
        for (c, img) in row.iter().enumerate() {
            let x0 = lw + PAD + c as u32 * (strip.cell + PAD);
            let fitted =
                image::imageops::resize(img, strip.cell, strip.cell, image::imageops::FilterType::Nearest);
            let el = BitMapElement::<_, plotters_bitmap::bitmap_pixel::RGBPixel>::with_owned_buffer(
                (x0 as i32, y0 as i32),
                (strip.cell, strip.cell),
                fitted.into_raw(),
            )
            .ok_or_else(|| Error::Plot("bitmap buffer of the wrong size".into()))?;
            area.draw(&el).map_err(pe)?;
            if let Some(cap) = strip
                .captions
                .get(r)
                .and_then(|v| v.get(c))
                .filter(|s| !s.is_empty())
            {
                let t = truncate_to(cap, 11.0, strip.cell + PAD);
                area.draw_text(
                    &t,
                    &font(11.0).pos(centre),
                    (
                        (x0 + strip.cell / 2) as i32,
                        (y0 + strip.cell + CAPTION / 2) as i32,
                    ),
                )
                .map_err(pe)?;
            }
        }
    }
    Ok(())
}

impl EvolutionStrip {
    /// The strip as a [`Figure`] (same as [`Draw::figure`]).
    pub fn to_figure(self) -> Figure {
        self.figure()
    }
}
