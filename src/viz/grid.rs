//! Image grids with titles and row labels, drawn with plotters (inline SVG and PNG alike).

use super::charts::{font, pe, text_width, truncate_to, wrap_to};
use super::figure::Draw;
use super::heatmap::tensor_to_image;
use crate::{Error, Result};
use plotters::coord::Shift;
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};
use tch::Tensor;

/// Images in rows of `cols`, each with an optional title above it, an optional label left of each
/// row and an optional figure title. Images are scaled to fit `cell` x `cell` pixels (nearest
/// neighbour when enlarged, so pixels stay sharp).
///
/// ```
/// use cnn_explain::viz::{Draw, ImageGrid};
/// let imgs = vec![image::RgbImage::new(8, 8); 3];
/// let grid = ImageGrid { titles: vec!["a".into(), "b".into(), "c".into()], ..ImageGrid::new(imgs, 2) };
/// let svg = grid.figure().to_svg()?;
/// assert_eq!(svg.matches("<image").count(), 3);
/// # Ok::<(), cnn_explain::Error>(())
/// ```
#[derive(Debug, Clone)]
pub struct ImageGrid {
    /// The images, row by row.
    pub images: Vec<image::RgbImage>,
    /// One title per image (fewer is fine: the rest have none). A title may span several lines,
    /// separated by `\n`; every cell then gets the height of the longest title.
    pub titles: Vec<String>,
    /// Images per row (at least 1).
    pub cols: usize,
    /// One label per row, drawn left of it (empty: no label column).
    pub row_labels: Vec<String>,
    /// Side of the square cell an image is fitted into, in pixels.
    pub cell: u32,
    /// Figure title (empty: none).
    pub title: String,
}

impl ImageGrid {
    /// A grid of `images` with `cols` per row, 128-pixel cells, no titles.
    pub fn new(images: Vec<image::RgbImage>, cols: usize) -> ImageGrid {
        ImageGrid {
            images,
            titles: Vec::new(),
            cols,
            row_labels: Vec::new(),
            cell: 128,
            title: String::new(),
        }
    }

    /// A grid of image tensors, each `[3, H, W]` or `[1, 3, H, W]` in `[0, 1]`, or one batch
    /// `[N, 3, H, W]` given as a single tensor.
    pub fn from_tensors(images: &[Tensor], cols: usize) -> Result<ImageGrid> {
        let mut out = Vec::new();
        for t in images {
            let s = t.size();
            if s.len() == 4 && s[0] > 1 {
                for i in 0..s[0] {
                    out.push(tensor_to_image(&t.f_get(i)?)?);
                }
            } else {
                out.push(tensor_to_image(t)?);
            }
        }
        Ok(ImageGrid::new(out, cols))
    }

    fn rows(&self) -> usize {
        self.images.len().div_ceil(self.cols.max(1))
    }

    fn label_width(&self) -> u32 {
        if self.row_labels.is_empty() {
            0
        } else {
            let longest = self
                .row_labels
                .iter()
                .map(|l| text_width(l, 13.0))
                .max()
                .unwrap_or(0);
            longest.min(160) + 12
        }
    }

    fn title_h(&self) -> u32 {
        if self.title.is_empty() {
            0
        } else {
            30
        }
    }

    /// Each cell title's lines: its own lines, each wrapped at spaces onto up to two lines of the
    /// cell's width (shortened with an ellipsis only if even that is too narrow).
    fn title_lines(&self, title: &str) -> Vec<String> {
        title
            .lines()
            .flat_map(|line| wrap_to(line, 12.0, self.cell, 2))
            .collect()
    }

    fn cell_title_h(&self) -> u32 {
        let lines = self
            .titles
            .iter()
            .filter(|t| !t.is_empty())
            .map(|t| self.title_lines(t).len().max(1))
            .max()
            .unwrap_or(0);
        lines as u32 * TITLE_LINE
    }

    fn validate(&self) -> Result<()> {
        if self.cols == 0 {
            return Err(Error::invalid("cols", "must be at least 1"));
        }
        if self.images.is_empty() {
            return Err(Error::invalid("images", "the grid has no images"));
        }
        if !(8..=2048).contains(&self.cell) {
            return Err(Error::invalid(
                "cell",
                format!("{} pixels; must be in 8..=2048", self.cell),
            ));
        }
        if self.titles.len() > self.images.len() {
            return Err(Error::invalid(
                "titles",
                format!("{} titles for {} images", self.titles.len(), self.images.len()),
            ));
        }
        if self.row_labels.len() > self.rows() {
            return Err(Error::invalid(
                "row_labels",
                format!("{} labels for {} rows", self.row_labels.len(), self.rows()),
            ));
        }
        if self.images.iter().any(|i| i.width() == 0 || i.height() == 0) {
            return Err(Error::invalid("images", "an image has zero width or height"));
        }
        Ok(())
    }
}

const PAD: u32 = 6;
/// Height of one line of an image title, in pixels.
const TITLE_LINE: u32 = 18;

impl Draw for ImageGrid {
    fn size(&self) -> (u32, u32) {
        let cols = self.cols.max(1).min(self.images.len().max(1)) as u32;
        let w = self.label_width() + cols * (self.cell + PAD) + PAD;
        let h = self.title_h() + self.rows() as u32 * (self.cell + self.cell_title_h() + PAD) + PAD;
        (w, h)
    }

    fn draw<DB: DrawingBackend>(&self, area: &DrawingArea<DB, Shift>) -> Result<()> {
        self.validate()?;
        area.fill(&WHITE).map_err(pe)?;
        let (w, _) = area.dim_in_pixel();
        if !self.title.is_empty() {
            let style = font(17.0).pos(Pos::new(HPos::Center, VPos::Center));
            let t = truncate_to(&self.title, 17.0, w.saturating_sub(10));
            area.draw_text(&t, &style, (w as i32 / 2, 15)).map_err(pe)?;
        }
        let lw = self.label_width();
        let th = self.cell_title_h();
        let row_h = self.cell + th + PAD;
        for (r, label) in self.row_labels.iter().enumerate() {
            let y = (self.title_h() + PAD + r as u32 * row_h + th + self.cell / 2) as i32;
            let style = font(13.0).pos(Pos::new(HPos::Right, VPos::Center));
            let t = truncate_to(label, 13.0, lw.saturating_sub(12));
            area.draw_text(&t, &style, (lw as i32 - 6, y)).map_err(pe)?;
        }
        for (i, img) in self.images.iter().enumerate() {
            let (r, c) = ((i / self.cols) as u32, (i % self.cols) as u32);
            let x0 = lw + PAD + c * (self.cell + PAD);
            let y0 = self.title_h() + PAD + r * row_h;
            if let Some(t) = self.titles.get(i).filter(|t| !t.is_empty()) {
                let style = font(12.0).pos(Pos::new(HPos::Center, VPos::Center));
                let lines = self.title_lines(t);
                // The last line sits just above the image, so shorter titles sit lower in the band.
                let y_first = y0 + th - lines.len() as u32 * TITLE_LINE + TITLE_LINE / 2;
                for (k, line) in lines.iter().enumerate() {
                    let y = y_first + k as u32 * TITLE_LINE;
                    area.draw_text(line, &style, ((x0 + self.cell / 2) as i32, y as i32))
                        .map_err(pe)?;
                }
            }
            let scale = (self.cell as f64 / img.width() as f64).min(self.cell as f64 / img.height() as f64);
            let nw = ((img.width() as f64 * scale).round() as u32).clamp(1, self.cell);
            let nh = ((img.height() as f64 * scale).round() as u32).clamp(1, self.cell);
            let filter = if scale >= 1.0 {
                image::imageops::FilterType::Nearest
            } else {
                image::imageops::FilterType::Triangle
            };
            let fitted = image::imageops::resize(img, nw, nh, filter);
            let x = x0 + (self.cell - nw) / 2;
            let y = y0 + th + (self.cell - nh) / 2;
            let el = BitMapElement::<_, plotters_bitmap::bitmap_pixel::RGBPixel>::with_owned_buffer(
                (x as i32, y as i32),
                (nw, nh),
                fitted.into_raw(),
            )
            .ok_or_else(|| Error::Plot("image buffer of the wrong size".into()))?;
            area.draw(&el).map_err(pe)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grid_renders_titles_labels_and_images() {
        let imgs: Vec<_> = (0..5)
            .map(|i| image::RgbImage::from_pixel(16, 8, image::Rgb([i * 40, 0, 0])))
            .collect();
        let grid = ImageGrid {
            titles: (0..5).map(|i| format!("img {i}")).collect(),
            row_labels: vec!["first".into(), "second".into()],
            title: "A grid".into(),
            cell: 64,
            ..ImageGrid::new(imgs, 3)
        };
        let fig = grid.clone().figure();
        let svg = fig.to_svg().unwrap();
        assert!(svg.starts_with("<svg"));
        assert_eq!(svg.matches("<image").count(), 5);
        assert_eq!(svg.matches("data:image/png;base64,").count(), 5);
        for t in ["img 0", "img 4", "first", "second", "A grid"] {
            assert!(svg.contains(&format!(">{t}\n</text>")) || svg.contains(t), "{t}");
        }
        let png = image::load_from_memory(&fig.to_png_bytes().unwrap()).unwrap();
        assert_eq!((png.width(), png.height()), grid.size());
        let bad = ImageGrid {
            cols: 0,
            ..grid.clone()
        };
        assert!(bad.figure().to_svg().is_err());
        let bad = ImageGrid {
            row_labels: vec!["a".into(); 3],
            ..grid
        };
        assert!(bad.figure().to_png_bytes().is_err());
    }

    #[test]
    fn multi_line_titles_get_one_band_per_line() {
        let imgs = vec![image::RgbImage::new(16, 16); 2];
        let one = ImageGrid {
            titles: vec!["a".into(), "b".into()],
            cell: 64,
            ..ImageGrid::new(imgs.clone(), 2)
        };
        let three = ImageGrid {
            titles: vec!["top\nmiddle\nbottom".into(), "b".into()],
            ..one.clone()
        };
        // Two more lines: two more line heights, the width unchanged.
        assert_eq!(three.size().0, one.size().0);
        assert_eq!(three.size().1, one.size().1 + 2 * TITLE_LINE);
        let svg = three.figure().to_svg().unwrap();
        let y_of = |t: &str| -> f64 {
            let at = svg.find(&format!(">\n{t}\n</text>")).unwrap();
            let tag = &svg[svg[..at].rfind("<text").unwrap()..at];
            let y = &tag[tag.find(" y=\"").unwrap() + 4..];
            y[..y.find('"').unwrap()].parse().unwrap()
        };
        // Lines stack downwards one line height apart; the one-line title shares the last line.
        assert_eq!(y_of("middle") - y_of("top"), TITLE_LINE as f64);
        assert_eq!(y_of("bottom") - y_of("middle"), TITLE_LINE as f64);
        assert_eq!(y_of("b"), y_of("bottom"));
    }

    #[test]
    fn long_titles_wrap_within_their_cell_instead_of_being_cut() {
        let imgs = vec![image::RgbImage::new(16, 16); 2];
        // 90 px cells hold 12 characters of 12 px text.
        let grid = ImageGrid {
            titles: vec!["IG, shifted baseline".into(), "Saliency".into()],
            cell: 90,
            ..ImageGrid::new(imgs, 2)
        };
        let one_line = ImageGrid {
            titles: vec!["IG".into(), "Saliency".into()],
            ..grid.clone()
        };
        assert_eq!(grid.size().1, one_line.size().1 + TITLE_LINE);
        let svg = grid.figure().to_svg().unwrap();
        for t in ["IG, shifted", "baseline", "Saliency"] {
            assert!(svg.contains(&format!(">\n{t}\n</text>")), "{t} in {svg}");
        }
        assert!(!svg.contains('…'));
    }
}
