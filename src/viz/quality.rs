//! Charts of explanation quality: the similarity curves of the cascading randomisation test
//! (Adebayo et al. 2018, their Fig. 2) and the deletion and insertion curves (Petsiuk et al. 2018),
//! one line per method with a band of one standard deviation over the images, and the rows of the
//! quality table.
//!
//! The data side ([`randomisation_bands`], [`faithfulness_bands`], [`quality_table_rows`]) is plain
//! numbers, tested on its own; [`BandChart`] draws any [`Band`]s on any plotters backend.

use super::charts::{font, pe, text_width, wrap_to};
use super::colormap::category_color;
use super::figure::Draw;
use crate::quality::{Curve, MethodRandomisation, QualityRow, Summary};
use crate::{Error, Result};
use plotters::coord::Shift;
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};
use std::borrow::Borrow;

/// One line of a [`BandChart`]: the mean over samples at each x position and the standard
/// deviation around it.
#[derive(Debug, Clone, PartialEq)]
pub struct Band {
    /// Legend name.
    pub name: String,
    /// Mean at each x position.
    pub mean: Vec<f64>,
    /// Sample standard deviation at each x position (0 for one sample), same length as `mean`.
    pub std: Vec<f64>,
}

impl Band {
    /// The band of per-sample rows: `rows[s][k]` is sample `s`'s value at x position `k`; the mean
    /// and the sample standard deviation (divisor `n - 1`) are taken over the samples at each `k`.
    ///
    /// ```
    /// use cnn_explain::viz::quality::Band;
    /// let b = Band::of_samples("m", &[vec![1.0, 0.0], vec![1.0, 2.0]])?;
    /// assert_eq!((b.mean, b.std), (vec![1.0, 1.0], vec![0.0, 2f64.sqrt()]));
    /// # Ok::<(), cnn_explain::Error>(())
    /// ```
    pub fn of_samples(name: impl Into<String>, rows: &[Vec<f64>]) -> Result<Band> {
        let len = rows.first().map_or(0, Vec::len);
        if len == 0 || rows.iter().any(|r| r.len() != len) {
            return Err(Error::invalid(
                "rows",
                format!(
                    "need at least one sample and the same number of values (at least one) per sample; got lengths {:?}",
                    rows.iter().map(Vec::len).collect::<Vec<_>>()
                ),
            ));
        }
        let (mut mean, mut std) = (Vec::with_capacity(len), Vec::with_capacity(len));
        for k in 0..len {
            let col: Vec<f64> = rows.iter().map(|r| r[k]).collect();
            let s = Summary::of(&col);
            mean.push(s.mean);
            std.push(s.std);
        }
        Ok(Band {
            name: name.into(),
            mean,
            std,
        })
    }
}

/// Which similarity of the randomisation test to draw.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Similarity {
    /// Spearman rank correlation of the absolute maps.
    #[default]
    Spearman,
    /// SSIM of the absolute maps normalised to `[0, 1]`.
    Ssim,
}

impl Similarity {
    /// `"Spearman rank correlation"` or `"SSIM"`.
    pub fn label(&self) -> &'static str {
        match self {
            Similarity::Spearman => "Spearman rank correlation",
            Similarity::Ssim => "SSIM",
        }
    }
}

/// The similarity curves of a cascading randomisation: the x labels (`"none"`, then the layer
/// randomised at each step, top first) and one band per method, whose first point is 1 (each map
/// against itself on the intact model) and whose later points are the per-image similarities of
/// each step, averaged over the images.
///
/// An error if a method has no steps, the methods have different cascades, or SSIM was not
/// computed ([`crate::quality::RandomisationConfig::ssim`] off).
///
/// ```
/// use cnn_explain::quality::{MethodRandomisation, RandomisationStep};
/// use cnn_explain::viz::quality::{randomisation_bands, Similarity};
/// use tch::Tensor;
/// let step = |layer: &str, rho: Vec<f64>| RandomisationStep {
///     layer: layer.into(), map: Tensor::zeros([1], tch::kind::FLOAT_CPU), spearman: rho, ssim: vec![] };
/// let r = MethodRandomisation { method: "m".into(), original: Tensor::zeros([1], tch::kind::FLOAT_CPU),
///     steps: vec![step("fc", vec![0.5, 0.7]), step("conv", vec![0.1, -0.1])] };
/// let (labels, bands) = randomisation_bands(&[&r], Similarity::Spearman)?;
/// assert_eq!(labels, ["none", "fc", "conv"]);
/// assert_eq!(bands[0].mean[0], 1.0);
/// assert!((bands[0].mean[1] - 0.6).abs() < 1e-12 && bands[0].mean[2].abs() < 1e-12);
/// # Ok::<(), cnn_explain::Error>(())
/// ```
pub fn randomisation_bands<R: Borrow<MethodRandomisation>>(
    results: &[R],
    similarity: Similarity,
) -> Result<(Vec<String>, Vec<Band>)> {
    let first = results
        .first()
        .ok_or_else(|| Error::invalid("results", "no method's randomisation to draw"))?
        .borrow();
    let layers: Vec<String> = first.steps.iter().map(|s| s.layer.clone()).collect();
    let mut bands = Vec::with_capacity(results.len());
    for r in results {
        let r = r.borrow();
        let these: Vec<&str> = r.steps.iter().map(|s| s.layer.as_str()).collect();
        if these.is_empty() || these != layers {
            return Err(Error::invalid(
                "results",
                format!(
                    "`{}` has the cascade {these:?}, the first method {layers:?}; draw results of one run with at least one step",
                    r.method
                ),
            ));
        }
        let per_step: Vec<&Vec<f64>> = r
            .steps
            .iter()
            .map(|s| match similarity {
                Similarity::Spearman => &s.spearman,
                Similarity::Ssim => &s.ssim,
            })
            .collect();
        let n = per_step[0].len();
        if n == 0 || per_step.iter().any(|v| v.len() != n) {
            return Err(Error::invalid(
                "results",
                format!(
                    "`{}` has no {} values for every step (was SSIM switched off?)",
                    r.method,
                    similarity.label()
                ),
            ));
        }
        let rows: Vec<Vec<f64>> = (0..n)
            .map(|i| {
                std::iter::once(1.0)
                    .chain(per_step.iter().map(|v| v[i]))
                    .collect()
            })
            .collect();
        bands.push(Band::of_samples(r.method.clone(), &rows)?);
    }
    let mut labels = vec!["none".to_string()];
    labels.extend(layers);
    Ok((labels, bands))
}

/// Deletion or insertion curves of several methods: the shared fractions and one band per method
/// (the mean score over the images at each fraction, with its standard deviation), named
/// `"{name} (AUC {mean AUC:.3})"`.
///
/// Every curve must have the same fractions (the same images and step).
///
/// ```
/// use cnn_explain::quality::Curve;
/// use cnn_explain::viz::quality::faithfulness_bands;
/// let c = Curve { fractions: vec![0.0, 1.0], scores: vec![vec![1.0, 0.0], vec![0.8, 0.2]], auc: vec![0.5, 0.5], classes: vec![0, 1] };
/// let (x, bands) = faithfulness_bands(&[("Saliency".to_string(), c)])?;
/// assert_eq!(x, [0.0, 1.0]);
/// assert_eq!(bands[0].name, "Saliency (AUC 0.500)");
/// assert!((bands[0].mean[0] - 0.9).abs() < 1e-12);
/// # Ok::<(), cnn_explain::Error>(())
/// ```
pub fn faithfulness_bands(curves: &[(String, Curve)]) -> Result<(Vec<f64>, Vec<Band>)> {
    let (_, first) = curves
        .first()
        .ok_or_else(|| Error::invalid("curves", "no curve to draw"))?;
    let x = first.fractions.clone();
    let mut bands = Vec::with_capacity(curves.len());
    for (name, c) in curves {
        if c.fractions != x {
            return Err(Error::invalid(
                "curves",
                format!(
                    "`{name}` has {} fractions, the first curve {}: compare curves of the same images and step",
                    c.fractions.len(),
                    x.len()
                ),
            ));
        }
        let auc = Summary::of(&c.auc).mean;
        bands.push(Band::of_samples(format!("{name} (AUC {auc:.3})"), &c.scores)?);
    }
    Ok((x, bands))
}

/// The header of [`quality_table_rows`].
pub const QUALITY_TABLE_HEADER: [&str; 8] = [
    "method",
    "deletion AUC (lower is better)",
    "insertion AUC (higher is better)",
    "pointing game",
    "energy pointing game",
    "sparseness (Gini)",
    "entropy (nats)",
    "ms per image",
];

/// The cells of a quality table, one row per method: each metric as `mean ± std` over the images
/// (three decimals), `–` where a metric was not computed (no masks), then the milliseconds per
/// image. Use with [`super::html_table`] and [`QUALITY_TABLE_HEADER`].
///
/// ```
/// use cnn_explain::quality::{QualityRow, Summary};
/// use cnn_explain::viz::quality::quality_table_rows;
/// let s = Summary { mean: 0.25, std: 0.1, n: 4 };
/// let row = QualityRow { method: "m".into(), deletion_auc: s, insertion_auc: s, pointing_game: None,
///     energy_pointing_game: Some(s), sparseness: s, entropy: s, seconds_per_image: 0.0125 };
/// let cells = &quality_table_rows(&[row])[0];
/// assert_eq!(cells[0], "m");
/// assert_eq!(cells[1], "0.250 ± 0.100");
/// assert_eq!(cells[3], "–");
/// assert_eq!(cells[7], "12.5");
/// ```
pub fn quality_table_rows(rows: &[QualityRow]) -> Vec<Vec<String>> {
    let opt = |s: &Option<Summary>| s.map_or_else(|| "–".to_string(), |s| s.to_string());
    rows.iter()
        .map(|r| {
            vec![
                r.method.clone(),
                r.deletion_auc.to_string(),
                r.insertion_auc.to_string(),
                opt(&r.pointing_game),
                opt(&r.energy_pointing_game),
                r.sparseness.to_string(),
                r.entropy.to_string(),
                format!("{:.1}", r.seconds_per_image * 1e3),
            ]
        })
        .collect()
}

/// Lines with shaded bands (mean ± one standard deviation) over shared x positions, with a legend
/// right of the plot; x ticks can be labelled by name (the layers of a randomisation cascade).
///
/// ```
/// use cnn_explain::viz::{quality::{Band, BandChart}, Draw};
/// let b = Band::of_samples("Grad-CAM", &[vec![1.0, 0.4, 0.1], vec![1.0, 0.6, 0.3]])?;
/// let mut chart = BandChart::new(vec![0.0, 1.0, 2.0], vec![b]);
/// chart.x_labels = vec!["none".into(), "fc".into(), "block3".into()];
/// let svg = chart.figure().to_svg()?;
/// assert!(svg.contains(">\nGrad-CAM\n</text>") && svg.contains(">\nblock3\n</text>"));
/// assert!(svg.contains("<polyline") && svg.contains("<polygon"));
/// # Ok::<(), cnn_explain::Error>(())
/// ```
#[derive(Debug, Clone)]
pub struct BandChart {
    /// The lines.
    pub bands: Vec<Band>,
    /// The x position of each point (increasing), shared by all bands.
    pub x: Vec<f64>,
    /// A label per x position, drawn as the tick labels (empty: numbers).
    pub x_labels: Vec<String>,
    /// Shade mean ± std (off: lines only).
    pub show_bands: bool,
    /// Figure title (empty: none).
    pub title: String,
    /// x-axis description.
    pub x_desc: String,
    /// y-axis description.
    pub y_desc: String,
    /// Fixed y range (default: the data's range, bands included, with a margin).
    pub y_range: Option<(f64, f64)>,
    /// Size in pixels (the legend takes up to a third of the width).
    pub width: u32,
    /// Size in pixels.
    pub height: u32,
}

impl BandChart {
    /// A chart of `bands` over `x`, bands shown, 760x380 pixels.
    pub fn new(x: Vec<f64>, bands: Vec<Band>) -> BandChart {
        BandChart {
            bands,
            x,
            x_labels: Vec::new(),
            show_bands: true,
            title: String::new(),
            x_desc: String::new(),
            y_desc: String::new(),
            y_range: None,
            width: 760,
            height: 380,
        }
    }

    /// The similarity curves of a cascading randomisation ([`randomisation_bands`]): x = the layers
    /// randomised so far, from the top; y = the similarity to the intact model's maps, in
    /// `[-1, 1]` for Spearman and SSIM alike.
    /// `results` may be owned or borrowed (`&[MethodRandomisation]` or `&[&MethodRandomisation]`, to
    /// draw a selection of methods).
    pub fn randomisation<R: Borrow<MethodRandomisation>>(
        results: &[R],
        similarity: Similarity,
    ) -> Result<BandChart> {
        let (labels, bands) = randomisation_bands(results, similarity)?;
        let x = (0..labels.len()).map(|i| i as f64).collect();
        // From -0.25 (or lower, to show every band, but not below -1) to just above 1.
        let lowest = bands
            .iter()
            .flat_map(|b| b.mean.iter().zip(&b.std).map(|(m, s)| m - s))
            .filter(|v| v.is_finite())
            .fold(-0.2, f64::min);
        Ok(BandChart {
            x_labels: labels,
            x_desc: "layers randomised, from the top (cumulative)".into(),
            y_desc: similarity.label().into(),
            y_range: Some(((lowest - 0.05).max(-1.05), 1.05)),
            title: format!(
                "Cascading randomisation: {} to the original map",
                similarity.label()
            ),
            ..BandChart::new(x, bands)
        })
    }

    /// Deletion or insertion curves ([`faithfulness_bands`]): x = the fraction of pixels removed
    /// (`what = "deletion"`) or inserted, y = the class score.
    pub fn faithfulness(curves: &[(String, Curve)], what: &str) -> Result<BandChart> {
        let (x, bands) = faithfulness_bands(curves)?;
        let verb = if what == "deletion" { "removed" } else { "inserted" };
        Ok(BandChart {
            x_desc: format!("fraction of pixels {verb}, most important first"),
            y_desc: "class probability".into(),
            title: format!("{what} curves (mean over images)"),
            ..BandChart::new(x, bands)
        })
    }

    fn check(&self) -> Result<usize> {
        let n = self.x.len();
        if self.bands.is_empty() || n == 0 {
            return Err(Error::invalid("bands", "no bands or no x positions to draw"));
        }
        if self.x.iter().any(|v| !v.is_finite()) || self.x.windows(2).any(|w| w[1] <= w[0]) {
            return Err(Error::invalid("x", "x positions must be finite and increasing"));
        }
        if let Some(b) = self.bands.iter().find(|b| b.mean.len() != n || b.std.len() != n) {
            return Err(Error::invalid(
                "bands",
                format!(
                    "`{}` has {} means and {} deviations for {n} x positions",
                    b.name,
                    b.mean.len(),
                    b.std.len()
                ),
            ));
        }
        if !self.x_labels.is_empty() && self.x_labels.len() != n {
            return Err(Error::invalid(
                "x_labels",
                format!("{} labels for {n} x positions", self.x_labels.len()),
            ));
        }
        Ok(n)
    }
}

const LEGEND_ROW: i32 = 17;
/// Distance between the lines of one wrapped legend entry.
const LEGEND_LINE: i32 = 14;

impl Draw for BandChart {
    fn size(&self) -> (u32, u32) {
        (self.width, self.height)
    }

    fn draw<DB: DrawingBackend>(&self, area: &DrawingArea<DB, Shift>) -> Result<()> {
        let n = self.check()?;
        let (lo, hi) = match self.y_range {
            Some(r) => r,
            None => {
                let vals: Vec<f64> = self
                    .bands
                    .iter()
                    .flat_map(|b| {
                        b.mean.iter().zip(&b.std).flat_map(|(m, s)| {
                            let s = if self.show_bands { *s } else { 0.0 };
                            [m - s, m + s]
                        })
                    })
                    .filter(|v| v.is_finite())
                    .collect();
                if vals.is_empty() {
                    return Err(Error::invalid("bands", "no finite values to draw"));
                }
                let lo = vals.iter().copied().fold(f64::INFINITY, f64::min);
                let hi = vals.iter().copied().fold(f64::NEG_INFINITY, f64::max);
                let m = ((hi - lo) * 0.05).max(1e-6);
                (lo - m, hi + m)
            }
        };
        if !(lo.is_finite() && hi.is_finite() && hi > lo) {
            return Err(Error::invalid(
                "y_range",
                format!("[{lo}, {hi}] is not an increasing finite range"),
            ));
        }
        area.fill(&WHITE).map_err(pe)?;
        let (w, h) = area.dim_in_pixel();
        let longest = self
            .bands
            .iter()
            .map(|b| text_width(&b.name, 12.0))
            .max()
            .unwrap_or(0);
        let legend_w = (longest + 40).min(w / 3);
        let (plot, legend) = area.split_horizontally(w - legend_w);
        let (x0, x1) = (self.x[0], self.x[n - 1]);
        let (x0, x1) = if x1 > x0 { (x0, x1) } else { (x0 - 0.5, x0 + 0.5) };
        let pad = if self.x_labels.is_empty() {
            0.0
        } else {
            (x1 - x0) * 0.03
        };
        let mut b = ChartBuilder::on(&plot);
        if !self.title.is_empty() {
            b.caption(&self.title, font(16.0));
        }
        let mut chart = b
            .margin(10)
            .x_label_area_size(42)
            .y_label_area_size(56)
            .build_cartesian_2d((x0 - pad)..(x1 + pad), lo..hi)
            .map_err(pe)?;
        let labels = self.x_labels.clone();
        let xs = self.x.clone();
        let label_of = move |v: &f64| -> String {
            if labels.is_empty() {
                if (v.fract()).abs() < 1e-9 {
                    format!("{v:.0}")
                } else {
                    format!("{v:.2}")
                }
            } else {
                xs.iter()
                    .position(|x| (x - v).abs() < 1e-9)
                    .map(|i| labels[i].clone())
                    .unwrap_or_default()
            }
        };
        let mut mesh = chart.configure_mesh();
        mesh.x_desc(&self.x_desc)
            .y_desc(&self.y_desc)
            .x_label_formatter(&label_of)
            .label_style(font(12.0))
            .axis_desc_style(font(13.0))
            .light_line_style(RGBColor(235, 235, 235));
        if self.x_labels.is_empty() {
            mesh.x_labels(n.min(11));
        } else {
            // One tick per named position: ask for more ticks than positions, the formatter leaves
            // those between positions blank.
            mesh.x_labels(n.min(40)).disable_x_mesh();
        }
        mesh.draw().map_err(pe)?;
        if !self.x_labels.is_empty() {
            // Light vertical lines at the named positions.
            for &x in &self.x {
                chart
                    .draw_series(LineSeries::new([(x, lo), (x, hi)], RGBColor(235, 235, 235)))
                    .map_err(pe)?;
            }
        }
        for (k, band) in self.bands.iter().enumerate() {
            let c = category_color(k);
            let colour = RGBColor(c[0], c[1], c[2]);
            if self.show_bands && band.std.iter().any(|s| *s > 0.0) {
                let mut pts: Vec<(f64, f64)> = Vec::with_capacity(2 * n);
                for i in 0..n {
                    pts.push((self.x[i], band.mean[i] + band.std[i]));
                }
                for i in (0..n).rev() {
                    pts.push((self.x[i], band.mean[i] - band.std[i]));
                }
                if pts.iter().all(|p| p.1.is_finite()) {
                    chart
                        .draw_series(std::iter::once(Polygon::new(pts, colour.mix(0.09).filled())))
                        .map_err(pe)?;
                }
            }
            let line: Vec<(f64, f64)> = self
                .x
                .iter()
                .zip(&band.mean)
                .filter(|(_, m)| m.is_finite())
                .map(|(x, m)| (*x, *m))
                .collect();
            let style = ShapeStyle::from(&colour).stroke_width(2);
            chart
                .draw_series(LineSeries::new(line.clone(), style))
                .map_err(pe)?;
            if n <= 20 {
                chart
                    .draw_series(line.into_iter().map(|p| Circle::new(p, 3, colour.filled())))
                    .map_err(pe)?;
            }
        }
        // The legend, right of the plot, one row per band.
        let top = if self.title.is_empty() { 12 } else { 36 };
        // A long name wraps onto a second line rather than being cut.
        let mut row_top = top;
        for (k, band) in self.bands.iter().enumerate() {
            let lines = wrap_to(&band.name, 12.0, legend_w.saturating_sub(34), 2);
            let row_h = LEGEND_ROW + (lines.len() as i32 - 1) * LEGEND_LINE;
            if row_top + row_h > h as i32 {
                break;
            }
            let c = category_color(k);
            let colour = RGBColor(c[0], c[1], c[2]);
            let y = row_top + LEGEND_ROW / 2;
            legend
                .draw(&PathElement::new(
                    vec![(4, y), (24, y)],
                    ShapeStyle::from(&colour).stroke_width(3),
                ))
                .map_err(pe)?;
            let style = font(12.0).pos(Pos::new(HPos::Left, VPos::Center));
            for (i, line) in lines.iter().enumerate() {
                legend
                    .draw_text(line, &style, (30, y + i as i32 * LEGEND_LINE))
                    .map_err(pe)?;
            }
            row_top += row_h;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::quality::RandomisationStep;
    use tch::Tensor;

    fn step(layer: &str, rho: Vec<f64>, ssim: Vec<f64>) -> RandomisationStep {
        RandomisationStep {
            layer: layer.into(),
            map: Tensor::zeros([1], tch::kind::FLOAT_CPU),
            spearman: rho,
            ssim,
        }
    }

    fn method(name: &str, steps: Vec<RandomisationStep>) -> MethodRandomisation {
        MethodRandomisation {
            method: name.into(),
            original: Tensor::zeros([1], tch::kind::FLOAT_CPU),
            steps,
        }
    }

    #[test]
    fn randomisation_bands_start_at_one_and_average_over_images() {
        let a = method(
            "a",
            vec![
                step("fc", vec![0.9, 0.5], vec![0.8, 0.6]),
                step("conv", vec![0.2, 0.0], vec![0.1, 0.3]),
            ],
        );
        let b = method(
            "b",
            vec![
                step("fc", vec![1.0, 1.0], vec![1.0, 1.0]),
                step("conv", vec![1.0, 0.8], vec![0.9, 0.9]),
            ],
        );
        let (labels, bands) = randomisation_bands(&[a, b], Similarity::Spearman).unwrap();
        assert_eq!(labels, ["none", "fc", "conv"]);
        assert_eq!(bands.len(), 2);
        assert_eq!(bands[0].name, "a");
        let want = [1.0, 0.7, 0.1];
        for (g, w) in bands[0].mean.iter().zip(want) {
            assert!((g - w).abs() < 1e-12, "{:?}", bands[0].mean);
        }
        // std of (0.9, 0.5) = 0.2 * sqrt(2) ... sample std of two values d apart is d / sqrt(2).
        assert_eq!(bands[0].std[0], 0.0);
        assert!((bands[0].std[1] - 0.4 / 2f64.sqrt()).abs() < 1e-12);
        assert!((bands[1].mean[2] - 0.9).abs() < 1e-12);
        let (_, ssim) = randomisation_bands(
            &[method("a", vec![step("fc", vec![0.0], vec![0.25])])],
            Similarity::Ssim,
        )
        .unwrap();
        assert_eq!(ssim[0].mean, [1.0, 0.25]);
    }

    #[test]
    fn randomisation_bands_reject_mixed_cascades_and_missing_ssim() {
        let a = method("a", vec![step("fc", vec![0.5], vec![])]);
        let b = method("b", vec![step("conv", vec![0.5], vec![])]);
        assert!(randomisation_bands(&[a, b], Similarity::Spearman).is_err());
        let a = method("a", vec![step("fc", vec![0.5], vec![])]);
        let err = randomisation_bands(&[a], Similarity::Ssim)
            .unwrap_err()
            .to_string();
        assert!(err.contains("SSIM"), "{err}");
        assert!(randomisation_bands::<MethodRandomisation>(&[], Similarity::Spearman).is_err());
        assert!(randomisation_bands(&[method("e", vec![])], Similarity::Spearman).is_err());
    }

    #[test]
    fn faithfulness_bands_average_scores_and_name_the_auc() {
        let c1 = Curve {
            fractions: vec![0.0, 0.5, 1.0],
            scores: vec![vec![1.0, 0.5, 0.0], vec![0.8, 0.1, 0.0]],
            auc: vec![0.5, 0.25],
            classes: vec![0, 0],
        };
        let c2 = Curve {
            fractions: vec![0.0, 0.5, 1.0],
            scores: vec![vec![1.0, 1.0, 1.0]],
            auc: vec![1.0],
            classes: vec![0],
        };
        let (x, bands) = faithfulness_bands(&[("A".into(), c1.clone()), ("B".into(), c2)]).unwrap();
        assert_eq!(x, [0.0, 0.5, 1.0]);
        assert_eq!(bands[0].name, "A (AUC 0.375)");
        assert_eq!(bands[1].name, "B (AUC 1.000)");
        for (g, w) in bands[0].mean.iter().zip([0.9, 0.3, 0.0]) {
            assert!((g - w).abs() < 1e-12);
        }
        assert_eq!(bands[1].std, [0.0, 0.0, 0.0]);
        let other = Curve {
            fractions: vec![0.0, 1.0],
            ..c1.clone()
        };
        assert!(faithfulness_bands(&[("A".into(), c1), ("C".into(), other)]).is_err());
    }

    #[test]
    fn band_chart_draws_every_series_and_checks_lengths() {
        let a = Band::of_samples("first method", &[vec![1.0, 0.2], vec![1.0, 0.4]]).unwrap();
        let b = Band::of_samples("second method", &[vec![1.0, 0.9]]).unwrap();
        let mut chart = BandChart::new(vec![0.0, 1.0], vec![a, b]);
        chart.x_labels = vec!["none".into(), "fc".into()];
        let svg = chart.clone().figure().to_svg().unwrap();
        assert!(svg.contains(">\nfirst method\n</text>"));
        assert!(svg.contains(">\nsecond method\n</text>"));
        assert!(svg.contains(">\nfc\n</text>"));
        // One band polygon (the second method has one sample: no spread) and two lines.
        assert_eq!(svg.matches("<polygon").count(), 1, "{svg}");
        assert!(svg.matches("<polyline").count() >= 2);
        chart.x = vec![0.0];
        assert!(chart.clone().figure().to_svg().is_err());
        chart.x = vec![1.0, 0.0];
        assert!(chart.figure().to_svg().is_err());
        assert!(Band::of_samples("x", &[vec![1.0], vec![1.0, 2.0]]).is_err());
        assert!(Band::of_samples("x", &[]).is_err());
    }

    #[test]
    fn randomisation_and_faithfulness_charts_render() {
        let a = method("Saliency", vec![step("fc", vec![0.3, 0.5], vec![0.2, 0.4])]);
        let svg = BandChart::randomisation(&[a], Similarity::Ssim)
            .unwrap()
            .figure()
            .to_svg()
            .unwrap();
        assert!(svg.contains(">\nSaliency\n</text>") && svg.contains(">\nnone\n</text>"));
        assert!(svg.contains("SSIM"));
        let c = Curve {
            fractions: vec![0.0, 0.5, 1.0],
            scores: vec![vec![1.0, 0.5, 0.0], vec![0.8, 0.1, 0.0]],
            auc: vec![0.5, 0.25],
            classes: vec![0, 0],
        };
        let svg = BandChart::faithfulness(&[("Grad-CAM".into(), c)], "deletion")
            .unwrap()
            .figure()
            .to_svg()
            .unwrap();
        assert!(svg.contains("Grad-CAM (AUC 0.375)"), "{svg}");
        assert!(svg.contains("removed"));
    }
}
