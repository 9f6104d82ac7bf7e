//! Charts for notebooks: horizontal bar charts (top-k predictions), line charts of named series
//! over epochs, and matrix heatmaps (continuous values with a colour bar, or categories with a
//! legend) with optional bar columns aligned to the matrix rows (the per-image view of confusion
//! evolution after InstanceFlow, Pühringer et al. 2020). Inputs are plain slices and labels.

use super::colormap::{category_color, Colormap};
use super::figure::Draw;
use crate::{Error, Result};
use plotters::coord::Shift;
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};

pub(crate) fn pe<E: std::fmt::Display>(e: E) -> Error {
    super::plot_err(e)
}

pub(crate) fn font(size: f64) -> TextStyle<'static> {
    ("sans-serif", size).into_font().color(&BLACK)
}

/// Approximate width of `text` in pixels at `size` (DejaVu Sans averages about 0.6 em per glyph).
pub(crate) fn text_width(text: &str, size: f64) -> u32 {
    (text.chars().count() as f64 * size * 0.6).ceil() as u32
}

/// `text` shortened with an ellipsis so that it fits `max` pixels at `size`.
pub(crate) fn truncate_to(text: &str, size: f64, max: u32) -> String {
    if text_width(text, size) <= max {
        return text.to_string();
    }
    let keep = ((max as f64 / (size * 0.6)).floor() as usize).saturating_sub(1);
    let mut s: String = text.chars().take(keep).collect();
    s.push('…');
    s
}

/// `text` broken at spaces into at most `max_lines` lines that each fit `max` pixels at `size`
/// (the last line shortened with an ellipsis if the text does not fit even so; a single word
/// longer than a line is shortened too).
pub(crate) fn wrap_to(text: &str, size: f64, max: u32, max_lines: usize) -> Vec<String> {
    let mut lines: Vec<String> = Vec::new();
    let mut words = text.split(' ').peekable();
    while let Some(word) = words.next() {
        if lines.len() == max_lines.max(1) {
            // No room left: the rest goes on the last line, which is then shortened.
            let last = lines.pop().unwrap_or_default();
            let rest: Vec<&str> = std::iter::once(word).chain(words).collect();
            lines.push(truncate_to(&format!("{last} {}", rest.join(" ")), size, max));
            break;
        }
        let mut line = word.to_string();
        while let Some(next) = words.peek() {
            let longer = format!("{line} {next}");
            if text_width(&longer, size) > max {
                break;
            }
            line = longer;
            words.next();
        }
        lines.push(truncate_to(&line, size, max));
    }
    lines
}

fn rgb(c: [u8; 3]) -> RGBColor {
    RGBColor(c[0], c[1], c[2])
}

fn fmt_value(v: f64, decimals: usize) -> String {
    if v.is_nan() {
        "–".into()
    } else {
        format!("{v:.decimals$}")
    }
}

fn draw_title<DB: DrawingBackend>(area: &DrawingArea<DB, Shift>, title: &str) -> Result<()> {
    if title.is_empty() {
        return Ok(());
    }
    let (w, _) = area.dim_in_pixel();
    let style = font(17.0).pos(Pos::new(HPos::Center, VPos::Center));
    let t = truncate_to(title, 17.0, w.saturating_sub(10));
    area.draw_text(&t, &style, (w as i32 / 2, 15)).map_err(pe)?;
    Ok(())
}

/// A horizontal bar chart: one bar per label, longest first when built by [`BarChart::top_k`].
///
/// ```
/// use cnn_explain::viz::{BarChart, Draw};
/// let names = ["circle", "square", "star"].map(String::from).to_vec();
/// let chart = BarChart::top_k(&names, &[0.1, 0.7, 0.2], 2)?;
/// assert_eq!(chart.labels, ["square", "star"]);
/// let svg = chart.figure().to_svg()?;
/// assert!(svg.contains(">\nsquare\n</text>") && svg.contains(">\n0.70\n</text>"));
/// # Ok::<(), cnn_explain::Error>(())
/// ```
#[derive(Debug, Clone)]
pub struct BarChart {
    /// One label per bar, top to bottom.
    pub labels: Vec<String>,
    /// One value per bar (non-negative; NaN draws no bar).
    pub values: Vec<f64>,
    /// Figure title (empty: none).
    pub title: String,
    /// Index of a bar drawn in the highlight colour (for example the true class).
    pub highlight: Option<usize>,
    /// The value of a full-length bar (default: 1 if every value is at most 1, else the largest).
    pub max: Option<f64>,
    /// Decimals of the value written after each bar.
    pub decimals: usize,
    /// Width of the figure in pixels.
    pub width: u32,
}

impl BarChart {
    /// Bars for `labels` and `values` in the given order.
    pub fn new(labels: Vec<String>, values: Vec<f64>) -> BarChart {
        BarChart {
            labels,
            values,
            title: String::new(),
            highlight: None,
            max: None,
            decimals: 2,
            width: 420,
        }
    }

    /// The `k` largest of `probs` (one per class name), largest first. `k` is capped at the number
    /// of classes; `k = 0`, a length mismatch or a NaN probability is an error.
    pub fn top_k(class_names: &[String], probs: &[f64], k: usize) -> Result<BarChart> {
        if class_names.len() != probs.len() {
            return Err(Error::invalid(
                "probs",
                format!("{} values for {} class names", probs.len(), class_names.len()),
            ));
        }
        if k == 0 || probs.is_empty() {
            return Err(Error::invalid("k", "need at least one class and k >= 1"));
        }
        if probs.iter().any(|p| p.is_nan()) {
            return Err(Error::invalid("probs", "contain NaN"));
        }
        let mut idx: Vec<usize> = (0..probs.len()).collect();
        idx.sort_by(|&a, &b| probs[b].total_cmp(&probs[a]).then(a.cmp(&b)));
        idx.truncate(k);
        let labels = idx.iter().map(|&i| class_names[i].clone()).collect();
        let values = idx.iter().map(|&i| probs[i]).collect();
        Ok(BarChart::new(labels, values))
    }
}

const BAR_ROW: u32 = 26;

impl Draw for BarChart {
    fn size(&self) -> (u32, u32) {
        let title = if self.title.is_empty() { 8 } else { 34 };
        (self.width, title + self.labels.len() as u32 * BAR_ROW + 10)
    }

    fn draw<DB: DrawingBackend>(&self, area: &DrawingArea<DB, Shift>) -> Result<()> {
        if self.labels.len() != self.values.len() || self.labels.is_empty() {
            return Err(Error::invalid(
                "values",
                format!(
                    "{} values for {} labels; need one per label, at least one",
                    self.values.len(),
                    self.labels.len()
                ),
            ));
        }
        if self.values.iter().any(|v| *v < 0.0 || v.is_infinite()) {
            return Err(Error::invalid("values", "bars need finite, non-negative values"));
        }
        let largest = self
            .values
            .iter()
            .copied()
            .filter(|v| !v.is_nan())
            .fold(0.0, f64::max);
        let max = self.max.unwrap_or(if largest <= 1.0 { 1.0 } else { largest });
        if !(max > 0.0 && max.is_finite()) {
            return Err(Error::invalid("max", format!("got {max}; must be positive")));
        }
        area.fill(&WHITE).map_err(pe)?;
        draw_title(area, &self.title)?;
        let (w, _) = area.dim_in_pixel();
        let top = if self.title.is_empty() { 8 } else { 34 };
        let longest = self.labels.iter().map(|l| text_width(l, 13.0)).max().unwrap_or(0);
        let label_w = longest.clamp(40, w / 3) + 10;
        let value_w = text_width(&fmt_value(max, self.decimals), 12.0) + 12;
        let bar_x0 = label_w as i32;
        let bar_len = w.saturating_sub(label_w + value_w + 8).max(10) as f64;
        for (i, (label, v)) in self.labels.iter().zip(&self.values).enumerate() {
            let y = (top + i as u32 * BAR_ROW) as i32;
            let cy = y + BAR_ROW as i32 / 2;
            let style = font(13.0).pos(Pos::new(HPos::Right, VPos::Center));
            area.draw_text(&truncate_to(label, 13.0, label_w - 10), &style, (bar_x0 - 6, cy))
                .map_err(pe)?;
            let len = if v.is_nan() {
                0
            } else {
                ((v / max).min(1.0) * bar_len).round() as i32
            };
            let colour = if self.highlight == Some(i) {
                rgb([214, 39, 40])
            } else {
                rgb([31, 119, 180])
            };
            area.draw(&Rectangle::new(
                [(bar_x0, y + 4), (bar_x0 + len.max(1), y + BAR_ROW as i32 - 4)],
                colour.filled(),
            ))
            .map_err(pe)?;
            let vstyle = font(12.0).pos(Pos::new(HPos::Left, VPos::Center));
            area.draw_text(&fmt_value(*v, self.decimals), &vstyle, (bar_x0 + len + 5, cy))
                .map_err(pe)?;
        }
        Ok(())
    }
}

/// One named line of a [`LineChart`].
#[derive(Debug, Clone, PartialEq)]
pub struct Series {
    /// Legend name.
    pub name: String,
    /// One value per x position (NaN leaves a gap).
    pub values: Vec<f64>,
}

impl Series {
    /// A series named `name`.
    pub fn new(name: impl Into<String>, values: Vec<f64>) -> Series {
        Series {
            name: name.into(),
            values,
        }
    }
}

/// Lines of several named series over epochs (x = 1, 2, ... unless `x` is given), with a legend.
///
/// ```
/// use cnn_explain::viz::{Draw, LineChart, Series};
/// let chart = LineChart::new(vec![
///     Series::new("train loss", vec![1.0, 0.6, 0.4]),
///     Series::new("val loss", vec![1.1, 0.8, 0.7]),
/// ]);
/// let svg = chart.figure().to_svg()?;
/// assert!(svg.contains(">\ntrain loss\n</text>") && svg.contains("<polyline"));
/// # Ok::<(), cnn_explain::Error>(())
/// ```
#[derive(Debug, Clone)]
pub struct LineChart {
    /// The lines.
    pub series: Vec<Series>,
    /// The x positions shared by all series (empty: 1, 2, ..., longest series).
    pub x: Vec<f64>,
    /// Figure title (empty: none).
    pub title: String,
    /// x-axis description.
    pub x_desc: String,
    /// y-axis description.
    pub y_desc: String,
    /// Fixed y range (default: the data's range with a margin).
    pub y_range: Option<(f64, f64)>,
    /// Size in pixels.
    pub width: u32,
    /// Size in pixels.
    pub height: u32,
}

impl LineChart {
    /// A chart of `series` over epochs.
    pub fn new(series: Vec<Series>) -> LineChart {
        LineChart {
            series,
            x: Vec::new(),
            title: String::new(),
            x_desc: "epoch".into(),
            y_desc: String::new(),
            y_range: None,
            width: 560,
            height: 340,
        }
    }
}

impl Draw for LineChart {
    fn size(&self) -> (u32, u32) {
        (self.width, self.height)
    }

    fn draw<DB: DrawingBackend>(&self, area: &DrawingArea<DB, Shift>) -> Result<()> {
        let n = self.series.iter().map(|s| s.values.len()).max().unwrap_or(0);
        if n == 0 {
            return Err(Error::invalid("series", "no values to draw"));
        }
        let xs: Vec<f64> = if self.x.is_empty() {
            (1..=n).map(|i| i as f64).collect()
        } else {
            self.x.clone()
        };
        if xs.len() < n {
            return Err(Error::invalid(
                "x",
                format!("{} x positions for series of length {n}", xs.len()),
            ));
        }
        let finite = |v: &&f64| v.is_finite();
        let (mut lo, mut hi) = match self.y_range {
            Some(r) => r,
            None => {
                let all: Vec<f64> = self
                    .series
                    .iter()
                    .flat_map(|s| s.values.iter().filter(finite).copied())
                    .collect();
                if all.is_empty() {
                    return Err(Error::invalid("series", "no finite values to draw"));
                }
                let lo = all.iter().copied().fold(f64::INFINITY, f64::min);
                let hi = all.iter().copied().fold(f64::NEG_INFINITY, f64::max);
                let m = ((hi - lo) * 0.05).max(1e-6);
                (lo - m, hi + m)
            }
        };
        if !(lo.is_finite() && hi.is_finite()) || hi <= lo {
            if lo.is_finite() && hi == lo {
                lo -= 0.5;
                hi += 0.5;
            } else {
                return Err(Error::invalid(
                    "y_range",
                    format!("[{lo}, {hi}] is not an increasing finite range"),
                ));
            }
        }
        let (x0, x1) = (xs[0], xs[n - 1]);
        let (x0, x1) = if x1 > x0 { (x0, x1) } else { (x0 - 0.5, x0 + 0.5) };
        area.fill(&WHITE).map_err(pe)?;
        let mut b = ChartBuilder::on(area);
        if !self.title.is_empty() {
            b.caption(&self.title, font(17.0));
        }
        let mut chart = b
            .margin(10)
            .x_label_area_size(40)
            .y_label_area_size(56)
            .build_cartesian_2d(x0..x1, lo..hi)
            .map_err(pe)?;
        chart
            .configure_mesh()
            .x_desc(&self.x_desc)
            .y_desc(&self.y_desc)
            .x_labels(n.min(10))
            .x_label_formatter(&|v| {
                if (v.fract()).abs() < 1e-9 {
                    format!("{v:.0}")
                } else {
                    format!("{v:.1}")
                }
            })
            .label_style(font(12.0))
            .axis_desc_style(font(13.0))
            .light_line_style(RGBColor(235, 235, 235))
            .draw()
            .map_err(pe)?;
        for (k, s) in self.series.iter().enumerate() {
            let colour = rgb(category_color(k));
            // Split at NaN so gaps stay gaps.
            let mut segments: Vec<Vec<(f64, f64)>> = vec![Vec::new()];
            for (x, v) in xs.iter().zip(&s.values) {
                if v.is_finite() {
                    if let Some(last) = segments.last_mut() {
                        last.push((*x, *v));
                    }
                } else if segments.last().is_some_and(|l| !l.is_empty()) {
                    segments.push(Vec::new());
                }
            }
            let style = ShapeStyle::from(&colour).stroke_width(2);
            let mut first = true;
            for seg in segments.into_iter().filter(|s| !s.is_empty()) {
                let series = chart
                    .draw_series(LineSeries::new(seg.clone(), style))
                    .map_err(pe)?;
                if first {
                    series
                        .label(s.name.clone())
                        .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 18, y)], style));
                    first = false;
                }
                chart
                    .draw_series(seg.into_iter().map(|p| Circle::new(p, 3, colour.filled())))
                    .map_err(pe)?;
            }
        }
        chart
            .configure_series_labels()
            .position(SeriesLabelPosition::UpperRight)
            .background_style(WHITE.mix(0.85))
            .border_style(RGBColor(180, 180, 180))
            .label_font(font(12.0))
            .draw()
            .map_err(pe)?;
        Ok(())
    }
}

/// What a [`MatrixChart`]'s cells show.
#[derive(Debug, Clone)]
pub enum MatrixCells {
    /// Continuous values coloured by a colormap, with a colour bar.
    Values {
        /// Row-major values, `rows` vectors of `cols` values (NaN: a blank cell).
        values: Vec<Vec<f64>>,
        /// The colormap.
        colormap: Colormap,
        /// Value range mapped to the colormap's ends (default: the data's min and max).
        range: Option<(f64, f64)>,
        /// Write each value in its cell (when the cell is large enough).
        annotate: bool,
        /// Decimals of written values and the colour bar.
        decimals: usize,
    },
    /// Categories (for example the predicted class) coloured by [`category_color`], with a legend.
    Classes {
        /// Row-major class indices, `rows` vectors of `cols` (`None`: a blank cell).
        classes: Vec<Vec<Option<usize>>>,
        /// Name of each class index, for the legend.
        class_names: Vec<String>,
    },
}

/// A bar per matrix row, drawn right of a [`MatrixChart`] and aligned with its rows.
#[derive(Debug, Clone)]
pub struct BarColumn {
    /// Title above the column.
    pub title: String,
    /// One value per matrix row (non-negative; NaN: no bar).
    pub values: Vec<f64>,
    /// The value of a full-width bar (default: the largest value, or 1 if all are at most 1).
    pub max: Option<f64>,
    /// Width of the column in pixels.
    pub width: u32,
    /// Bar colour.
    pub color: [u8; 3],
}

impl BarColumn {
    /// A column titled `title` with one value per row.
    pub fn new(title: impl Into<String>, values: Vec<f64>) -> BarColumn {
        BarColumn {
            title: title.into(),
            values,
            max: None,
            width: 110,
            color: [100, 100, 100],
        }
    }
}

/// A matrix of coloured cells (rows x cols) with row and column labels, a colour bar or a class
/// legend, and optional [`BarColumn`]s aligned with its rows. Confusion matrices (counts written in
/// cells), true-class probability per image per epoch, predicted class per image per epoch.
///
/// ```
/// use cnn_explain::viz::{Draw, MatrixChart};
/// let m = MatrixChart::values(vec![vec![5.0, 1.0], vec![0.0, 6.0]])
///     .labels(vec!["cat".into(), "dog".into()], vec!["cat".into(), "dog".into()]);
/// let svg = m.figure().to_svg()?;
/// assert!(svg.contains(">\n6\n</text>"));
/// # Ok::<(), cnn_explain::Error>(())
/// ```
#[derive(Debug, Clone)]
pub struct MatrixChart {
    /// The cells.
    pub cells: MatrixCells,
    /// One label per row (fewer: the rest unlabelled); drawn every k-th row when rows are dense.
    pub row_labels: Vec<String>,
    /// One label per column; drawn every k-th column when they would overlap.
    pub col_labels: Vec<String>,
    /// Figure title (empty: none).
    pub title: String,
    /// Description under the columns (for example `epoch` or `predicted`).
    pub x_desc: String,
    /// Description of the rows, written above the row labels (for example `true class`).
    pub y_desc: String,
    /// Bars aligned with the rows, drawn right of the matrix.
    pub bars: Vec<BarColumn>,
    /// Cell width in pixels.
    pub cell_width: u32,
    /// Cell height in pixels.
    pub cell_height: u32,
}

impl MatrixChart {
    fn with_cells(cells: MatrixCells, rows: usize, cols: usize) -> MatrixChart {
        let cell_height = if rows > 40 {
            6
        } else if rows > 16 {
            14
        } else {
            36
        };
        let cell_width = if cols > 30 {
            14
        } else if cols > 12 {
            24
        } else {
            44
        };
        MatrixChart {
            cells,
            row_labels: Vec::new(),
            col_labels: Vec::new(),
            title: String::new(),
            x_desc: String::new(),
            y_desc: String::new(),
            bars: Vec::new(),
            cell_width,
            cell_height,
        }
    }

    /// Continuous values (viridis, range from the data, values written in cells).
    pub fn values(values: Vec<Vec<f64>>) -> MatrixChart {
        let (r, c) = (values.len(), values.first().map_or(0, Vec::len));
        let cells = MatrixCells::Values {
            values,
            colormap: Colormap::Viridis,
            range: None,
            annotate: true,
            decimals: 0,
        };
        MatrixChart::with_cells(cells, r, c)
    }

    /// Class indices coloured by class, with a legend of `class_names`.
    pub fn classes(classes: Vec<Vec<Option<usize>>>, class_names: Vec<String>) -> MatrixChart {
        let (r, c) = (classes.len(), classes.first().map_or(0, Vec::len));
        MatrixChart::with_cells(MatrixCells::Classes { classes, class_names }, r, c)
    }

    /// Sets row and column labels.
    /// With at most 12 columns, cells are widened so that every column label fits.
    pub fn labels(mut self, row_labels: Vec<String>, col_labels: Vec<String>) -> MatrixChart {
        if col_labels.len() <= 12 {
            let widest = col_labels.iter().map(|s| text_width(s, 11.0)).max().unwrap_or(0) + 6;
            self.cell_width = self.cell_width.max(widest);
        }
        self.row_labels = row_labels;
        self.col_labels = col_labels;
        self
    }

    fn shape(&self) -> (usize, usize) {
        match &self.cells {
            MatrixCells::Values { values, .. } => (values.len(), values.first().map_or(0, Vec::len)),
            MatrixCells::Classes { classes, .. } => (classes.len(), classes.first().map_or(0, Vec::len)),
        }
    }

    fn validate(&self) -> Result<()> {
        let (rows, cols) = self.shape();
        if rows == 0 || cols == 0 {
            return Err(Error::invalid("cells", "the matrix is empty"));
        }
        let lens: Vec<usize> = match &self.cells {
            MatrixCells::Values { values, .. } => values.iter().map(Vec::len).collect(),
            MatrixCells::Classes { classes, .. } => classes.iter().map(Vec::len).collect(),
        };
        if let Some(r) = lens.iter().position(|&l| l != cols) {
            return Err(Error::invalid(
                "cells",
                format!("row {r} has {} cells, row 0 has {cols}", lens[r]),
            ));
        }
        if let MatrixCells::Classes { classes, class_names } = &self.cells {
            if let Some(k) = classes
                .iter()
                .flatten()
                .flatten()
                .find(|&&k| k >= class_names.len())
            {
                return Err(Error::ClassOutOfRange {
                    index: *k as i64,
                    num_classes: class_names.len() as i64,
                });
            }
        }
        if self.row_labels.len() > rows || self.col_labels.len() > cols {
            return Err(Error::invalid(
                "labels",
                format!(
                    "{} row / {} column labels for a {rows}x{cols} matrix",
                    self.row_labels.len(),
                    self.col_labels.len()
                ),
            ));
        }
        for b in &self.bars {
            if b.values.len() != rows {
                return Err(Error::invalid(
                    "bars",
                    format!(
                        "column `{}` has {} values for {rows} rows",
                        b.title,
                        b.values.len()
                    ),
                ));
            }
            if b.values.iter().any(|v| *v < 0.0 || v.is_infinite()) {
                return Err(Error::invalid(
                    "bars",
                    format!("column `{}` needs finite, non-negative values", b.title),
                ));
            }
        }
        if self.cell_width == 0 || self.cell_height == 0 {
            return Err(Error::invalid(
                "cell_width, cell_height",
                "must be at least 1 pixel",
            ));
        }
        Ok(())
    }

    fn layout(&self) -> Layout {
        let (rows, cols) = self.shape();
        let title_h = if self.title.is_empty() { 6 } else { 32 };
        let header_h = 22;
        let label_w = if self.row_labels.is_empty() {
            8
        } else {
            self.row_labels
                .iter()
                .map(|l| text_width(l, 12.0))
                .max()
                .unwrap_or(0)
                .clamp(20, 150)
                + 12
        }
        .max(if self.y_desc.is_empty() {
            0
        } else {
            text_width(&self.y_desc, 12.0) + 8
        });
        let matrix_w = cols as u32 * self.cell_width;
        let side_w = match &self.cells {
            MatrixCells::Values { .. } => 90,
            MatrixCells::Classes { .. } => 14,
        };
        let bars_w: u32 = self.bars.iter().map(|b| b.width + 14).sum();
        let width = (label_w + matrix_w + side_w + bars_w + 10).max(260);
        let legend_h = match &self.cells {
            MatrixCells::Classes { class_names, .. } => {
                let item = class_names.iter().map(|n| text_width(n, 12.0)).max().unwrap_or(0) + 30;
                let per_row = ((width - 20) / item).max(1) as usize;
                class_names.len().div_ceil(per_row) as u32 * 20 + 8
            }
            MatrixCells::Values { .. } => 0,
        };
        let x_desc_h = if self.x_desc.is_empty() { 8 } else { 26 };
        let top = title_h + header_h;
        let height = top + rows as u32 * self.cell_height + x_desc_h + legend_h + 4;
        Layout {
            top,
            label_w,
            matrix_w,
            width,
            height,
            x_desc_h,
        }
    }
}

struct Layout {
    top: u32,
    label_w: u32,
    matrix_w: u32,
    width: u32,
    height: u32,
    x_desc_h: u32,
}

fn luminance(c: [u8; 3]) -> f64 {
    0.299 * c[0] as f64 + 0.587 * c[1] as f64 + 0.114 * c[2] as f64
}

impl Draw for MatrixChart {
    fn size(&self) -> (u32, u32) {
        let l = self.layout();
        (l.width, l.height)
    }

    fn draw<DB: DrawingBackend>(&self, area: &DrawingArea<DB, Shift>) -> Result<()> {
        self.validate()?;
        let (rows, _) = self.shape();
        let l = self.layout();
        let (cw, ch) = (self.cell_width as i32, self.cell_height as i32);
        let (mx, my) = (l.label_w as i32, l.top as i32);
        area.fill(&WHITE).map_err(pe)?;
        draw_title(area, &self.title)?;
        // Cells.
        match &self.cells {
            MatrixCells::Values {
                values,
                colormap,
                range,
                annotate,
                decimals,
            } => {
                let finite: Vec<f64> = values
                    .iter()
                    .flatten()
                    .copied()
                    .filter(|v| v.is_finite())
                    .collect();
                let (lo, hi) = match range {
                    Some(r) => *r,
                    None => (
                        finite.iter().copied().fold(f64::INFINITY, f64::min),
                        finite.iter().copied().fold(f64::NEG_INFINITY, f64::max),
                    ),
                };
                let (lo, hi) = if !(lo.is_finite() && hi.is_finite()) {
                    (0.0, 1.0)
                } else if hi > lo {
                    (lo, hi)
                } else {
                    (lo, lo + 1.0)
                };
                let vstyle_size = (ch as f64 * 0.45).clamp(8.0, 13.0);
                for (r, row) in values.iter().enumerate() {
                    for (c, v) in row.iter().enumerate() {
                        let (x, y) = (mx + c as i32 * cw, my + r as i32 * ch);
                        if !v.is_finite() {
                            continue;
                        }
                        let col = colormap.map((v - lo) / (hi - lo));
                        area.draw(&Rectangle::new([(x, y), (x + cw, y + ch)], rgb(col).filled()))
                            .map_err(pe)?;
                        if *annotate {
                            let s = fmt_value(*v, *decimals);
                            if ch >= 14 && text_width(&s, vstyle_size) + 4 <= cw as u32 {
                                let fg = if luminance(col) > 140.0 { BLACK } else { WHITE };
                                let st = ("sans-serif", vstyle_size)
                                    .into_font()
                                    .color(&fg)
                                    .pos(Pos::new(HPos::Center, VPos::Center));
                                area.draw_text(&s, &st, (x + cw / 2, y + ch / 2)).map_err(pe)?;
                            }
                        }
                    }
                }
                // Colour bar.
                let bx = mx + l.matrix_w as i32 + 14;
                let bh = (rows as i32 * ch).max(40);
                let steps = bh.max(1);
                for i in 0..steps {
                    let t = 1.0 - i as f64 / (steps - 1).max(1) as f64;
                    let col = rgb(colormap.map(t));
                    area.draw(&Rectangle::new(
                        [(bx, my + i), (bx + 14, my + i + 1)],
                        col.filled(),
                    ))
                    .map_err(pe)?;
                }
                area.draw(&Rectangle::new(
                    [(bx, my), (bx + 14, my + bh)],
                    RGBColor(120, 120, 120),
                ))
                .map_err(pe)?;
                let ts = font(11.0).pos(Pos::new(HPos::Left, VPos::Center));
                let dec = if (hi - lo) < 10.0 {
                    decimals.max(&2).to_owned()
                } else {
                    *decimals
                };
                area.draw_text(&fmt_value(hi, dec), &ts, (bx + 18, my + 5))
                    .map_err(pe)?;
                area.draw_text(&fmt_value((lo + hi) / 2.0, dec), &ts, (bx + 18, my + bh / 2))
                    .map_err(pe)?;
                area.draw_text(&fmt_value(lo, dec), &ts, (bx + 18, my + bh - 5))
                    .map_err(pe)?;
            }
            MatrixCells::Classes { classes, class_names } => {
                for (r, row) in classes.iter().enumerate() {
                    for (c, k) in row.iter().enumerate() {
                        if let Some(k) = k {
                            let (x, y) = (mx + c as i32 * cw, my + r as i32 * ch);
                            area.draw(&Rectangle::new(
                                [(x, y), (x + cw, y + ch)],
                                rgb(category_color(*k)).filled(),
                            ))
                            .map_err(pe)?;
                        }
                    }
                }
                // Legend under the matrix.
                let item = class_names.iter().map(|n| text_width(n, 12.0)).max().unwrap_or(0) + 30;
                let per_row = ((l.width - 20) / item).max(1) as usize;
                let ly0 = my + rows as i32 * ch + l.x_desc_h as i32 + 4;
                for (k, name) in class_names.iter().enumerate() {
                    let (lr, lc) = ((k / per_row) as i32, (k % per_row) as i32);
                    let (x, y) = (10 + lc * item as i32, ly0 + lr * 20);
                    area.draw(&Rectangle::new(
                        [(x, y + 3), (x + 14, y + 17)],
                        rgb(category_color(k)).filled(),
                    ))
                    .map_err(pe)?;
                    let st = font(12.0).pos(Pos::new(HPos::Left, VPos::Center));
                    area.draw_text(name, &st, (x + 19, y + 10)).map_err(pe)?;
                }
            }
        }
        // Frame.
        area.draw(&Rectangle::new(
            [(mx, my), (mx + l.matrix_w as i32, my + rows as i32 * ch)],
            RGBColor(150, 150, 150),
        ))
        .map_err(pe)?;
        // Row labels, every k-th when rows are dense.
        let rstep = (12.0 / ch as f64).ceil().max(1.0) as usize;
        let rsize = (ch as f64 * 0.8).clamp(9.0, 12.0);
        for (r, label) in self.row_labels.iter().enumerate().step_by(rstep) {
            let st = font(rsize).pos(Pos::new(HPos::Right, VPos::Center));
            let t = truncate_to(label, rsize, l.label_w.saturating_sub(10));
            area.draw_text(&t, &st, (mx - 5, my + r as i32 * ch + ch / 2))
                .map_err(pe)?;
        }
        if !self.y_desc.is_empty() {
            let st = font(12.0).pos(Pos::new(HPos::Right, VPos::Bottom));
            area.draw_text(&self.y_desc, &st, (mx - 4, my - 4)).map_err(pe)?;
        }
        // Column labels above the cells, every k-th when they would overlap.
        let widest = self
            .col_labels
            .iter()
            .map(|s| text_width(s, 11.0))
            .max()
            .unwrap_or(0)
            + 4;
        let cstep = (widest as f64 / cw as f64).ceil().max(1.0) as usize;
        for (c, label) in self.col_labels.iter().enumerate().step_by(cstep) {
            let st = font(11.0).pos(Pos::new(HPos::Center, VPos::Bottom));
            let t = truncate_to(label, 11.0, (cw as u32 * cstep as u32).saturating_sub(2));
            area.draw_text(&t, &st, (mx + c as i32 * cw + cw / 2, my - 4))
                .map_err(pe)?;
        }
        if !self.x_desc.is_empty() {
            let st = font(13.0).pos(Pos::new(HPos::Center, VPos::Center));
            area.draw_text(
                &self.x_desc,
                &st,
                (mx + l.matrix_w as i32 / 2, my + rows as i32 * ch + 13),
            )
            .map_err(pe)?;
        }
        // Bar columns aligned with the rows.
        let mut bx = mx
            + l.matrix_w as i32
            + match &self.cells {
                MatrixCells::Values { .. } => 90,
                MatrixCells::Classes { .. } => 14,
            };
        for b in &self.bars {
            let largest = b
                .values
                .iter()
                .copied()
                .filter(|v| !v.is_nan())
                .fold(0.0, f64::max);
            let max = b.max.unwrap_or(if largest <= 1.0 { 1.0 } else { largest });
            let max = if max > 0.0 && max.is_finite() { max } else { 1.0 };
            let st = font(11.0).pos(Pos::new(HPos::Center, VPos::Bottom));
            area.draw_text(
                &truncate_to(&b.title, 11.0, b.width + 10),
                &st,
                (bx + b.width as i32 / 2, my - 4),
            )
            .map_err(pe)?;
            area.draw(&Rectangle::new(
                [(bx, my), (bx + b.width as i32, my + rows as i32 * ch)],
                RGBColor(245, 245, 245).filled(),
            ))
            .map_err(pe)?;
            let gap = if ch >= 6 { 1 } else { 0 };
            for (r, v) in b.values.iter().enumerate() {
                if v.is_nan() {
                    continue;
                }
                let len = ((v / max).min(1.0) * b.width as f64).round() as i32;
                let y = my + r as i32 * ch;
                if len > 0 {
                    area.draw(&Rectangle::new(
                        [(bx, y + gap), (bx + len, y + ch - gap)],
                        rgb(b.color).filled(),
                    ))
                    .map_err(pe)?;
                }
            }
            // Axis: 0 and max under the column.
            let ts = font(10.0).pos(Pos::new(HPos::Left, VPos::Top));
            let y = my + rows as i32 * ch + 2;
            area.draw_text("0", &ts, (bx, y)).map_err(pe)?;
            let te = font(10.0).pos(Pos::new(HPos::Right, VPos::Top));
            area.draw_text(
                &fmt_value(max, if max < 10.0 { 1 } else { 0 }),
                &te,
                (bx + b.width as i32, y),
            )
            .map_err(pe)?;
            bx += b.width as i32 + 14;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn has_text(svg: &str, t: &str) -> bool {
        svg.contains(&format!(">\n{t}\n</text>"))
    }

    #[test]
    fn wrap_to_breaks_at_spaces_and_shortens_only_what_cannot_fit() {
        // 12 px glyphs at 0.6 em: 7.2 px each, so 100 px holds 13 characters.
        assert_eq!(wrap_to("Saliency", 12.0, 100, 2), ["Saliency"]);
        assert_eq!(
            wrap_to("Integrated Gradients (AUC 0.12)", 12.0, 100, 2),
            ["Integrated", "Gradients (AUC 0.12)"].map(|l| truncate_to(l, 12.0, 100))
        );
        assert_eq!(
            wrap_to("Integrated Gradients (AUC 0.12)", 12.0, 160, 2),
            ["Integrated Gradients", "(AUC 0.12)"]
        );
        // Three lines' worth in two: the last line is shortened with an ellipsis.
        let two = wrap_to("aaaa bbbb cccc dddd eeee ffff", 12.0, 75, 2);
        assert_eq!(two.len(), 2);
        assert_eq!(two[0], "aaaa bbbb");
        assert!(two[1].starts_with("cccc") && two[1].ends_with('…'), "{two:?}");
        assert!(two.iter().all(|l| text_width(l, 12.0) <= 75), "{two:?}");
        assert_eq!(wrap_to("", 12.0, 72, 2), [""]);
    }

    fn png_size(fig: &super::super::Figure) -> (u32, u32) {
        let img = image::load_from_memory(&fig.to_png_bytes().unwrap()).unwrap();
        (img.width(), img.height())
    }

    #[test]
    fn top_k_orders_and_checks() {
        let names: Vec<String> = ["a", "b", "c"].map(String::from).to_vec();
        let c = BarChart::top_k(&names, &[0.2, 0.5, 0.3], 5).unwrap();
        assert_eq!(c.labels, ["b", "c", "a"]);
        assert_eq!(c.values, [0.5, 0.3, 0.2]);
        assert!(BarChart::top_k(&names, &[0.2, 0.5], 1).is_err());
        assert!(BarChart::top_k(&names, &[0.2, 0.5, 0.3], 0).is_err());
        assert!(BarChart::top_k(&names, &[0.2, f64::NAN, 0.3], 1).is_err());
        let fig = c.clone().figure();
        let svg = fig.to_svg().unwrap();
        // White background + one rect per bar.
        assert_eq!(svg.matches("<rect").count(), 1 + 3, "{svg}");
        assert!(has_text(&svg, "0.50") && has_text(&svg, "b"));
        assert_eq!(png_size(&fig), c.size());
        let bad = BarChart {
            values: vec![-1.0, 0.0, 0.0],
            ..c
        };
        assert!(bad.figure().to_svg().is_err());
    }

    #[test]
    fn line_chart_draws_legend_and_lines() {
        let mut c = LineChart::new(vec![
            Series::new("train", vec![1.0, 0.5, 0.25]),
            Series::new("val", vec![1.0, f64::NAN, 0.5]),
        ]);
        c.title = "Loss".into();
        let fig = c.clone().figure();
        let svg = fig.to_svg().unwrap();
        assert!(has_text(&svg, "Loss") && has_text(&svg, "train") && has_text(&svg, "val"));
        // train: one polyline; val: two segments split at NaN; plus two legend samples.
        let lines = |colour: &str| {
            svg.lines()
                .filter(|l| l.starts_with("<polyline") && l.contains(colour))
                .count()
        };
        assert_eq!(lines("stroke=\"#1F77B4\""), 1 + 1, "{svg}");
        assert_eq!(lines("stroke=\"#FF7F0E\""), 2 + 1, "{svg}");
        assert_eq!(png_size(&fig), (560, 340));
        assert!(LineChart::new(vec![]).figure().to_svg().is_err());
        assert!(LineChart::new(vec![Series::new("x", vec![f64::NAN])])
            .figure()
            .to_svg()
            .is_err());
    }

    #[test]
    fn matrix_values_cells_annotations_and_bars() {
        let mut m = MatrixChart::values(vec![vec![5.0, 1.0], vec![0.0, 7.0]])
            .labels(vec!["r0".into(), "r1".into()], vec!["c0".into(), "c1".into()]);
        m.bars = vec![BarColumn::new("errors", vec![1.0, 0.0])];
        let fig = m.clone().figure();
        let svg = fig.to_svg().unwrap();
        for t in ["r0", "r1", "c0", "c1", "errors", "5", "7"] {
            assert!(has_text(&svg, t), "{t}");
        }
        assert_eq!(png_size(&fig), m.size());
        // Pixel check: cell (0, 0) holds the largest... no: 5 of [0, 7]; cell (1, 1) is the maximum,
        // viridis' yellow end.
        let img = fig.to_image().unwrap();
        let l = m.layout();
        let (x, y) = (l.label_w + m.cell_width + 3, l.top + m.cell_height + 3);
        assert_eq!(img.get_pixel(x, y).0, Colormap::Viridis.map(1.0));
        let (x, y) = (l.label_w + 3, l.top + m.cell_height + 3);
        assert_eq!(img.get_pixel(x, y).0, Colormap::Viridis.map(0.0));
        let ragged = MatrixChart::values(vec![vec![1.0, 2.0], vec![1.0]]);
        assert!(ragged.figure().to_svg().is_err());
        let mut badbars = m.clone();
        badbars.bars[0].values = vec![1.0];
        assert!(badbars.figure().to_svg().is_err());
    }

    #[test]
    fn matrix_classes_colours_and_legend() {
        let names: Vec<String> = ["cat", "dog", "fox"].map(String::from).to_vec();
        let m = MatrixChart::classes(vec![vec![Some(0), Some(2)], vec![None, Some(1)]], names.clone());
        let fig = m.clone().figure();
        let svg = fig.to_svg().unwrap();
        for n in &names {
            assert!(has_text(&svg, n), "{n}");
        }
        // background + 3 cells + frame + 3 legend swatches
        assert_eq!(svg.matches("<rect").count(), 1 + 3 + 1 + 3, "{svg}");
        let img = fig.to_image().unwrap();
        let l = m.layout();
        assert_eq!(
            img.get_pixel(l.label_w + m.cell_width + 3, l.top + 3).0,
            category_color(2)
        );
        assert_eq!(
            img.get_pixel(l.label_w + 3, l.top + m.cell_height + 3).0,
            [255, 255, 255]
        );
        let bad = MatrixChart::classes(vec![vec![Some(3)]], names);
        assert!(matches!(
            bad.figure().to_svg(),
            Err(Error::ClassOutOfRange { index: 3, .. })
        ));
    }
}
