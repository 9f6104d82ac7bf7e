//! [`Figure`]: one drawing function, rendered to an inline SVG, an SVG file or a PNG.

use super::backend::AnyBackend;
use super::{ensure_fonts, plot_err};
use crate::{Error, Result};
use plotters::coord::Shift;
use plotters::prelude::*;
use std::path::Path;

/// The drawing function a [`Figure`] holds.
type DrawFn = dyn for<'a> Fn(&DrawingArea<AnyBackend<'a>, Shift>) -> Result<()>;

/// A drawing with a size in pixels, rendered on demand to SVG (inline in notebooks, `.svg` files)
/// or PNG (`.png` files), from the same drawing function.
///
/// In an evcxr notebook, a `Figure` as the last value of a cell shows inline (see
/// [`Figure::evcxr_display`]).
///
/// ```
/// use cnn_explain::viz::Figure;
/// use plotters::prelude::*;
///
/// let fig = Figure::new(120, 80, |area| {
///     area.fill(&WHITE).map_err(cnn_explain::viz::plot_error)?;
///     area.draw(&Rectangle::new([(10, 10), (60, 40)], RED.filled()))
///         .map_err(cnn_explain::viz::plot_error)?;
///     Ok(())
/// });
/// let svg = fig.to_svg()?;
/// assert!(svg.starts_with("<svg") && svg.contains("<rect"));
/// let png = image::load_from_memory(&fig.to_png_bytes()?).unwrap();
/// assert_eq!((png.width(), png.height()), (120, 80));
/// # Ok::<(), cnn_explain::Error>(())
/// ```
pub struct Figure {
    width: u32,
    height: u32,
    draw: Box<DrawFn>,
}

impl std::fmt::Debug for Figure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Figure({}x{})", self.width, self.height)
    }
}

impl Figure {
    /// A figure of `width` x `height` pixels drawn by `draw` (called once per rendering).
    pub fn new<F>(width: u32, height: u32, draw: F) -> Figure
    where
        F: for<'a> Fn(&DrawingArea<AnyBackend<'a>, Shift>) -> Result<()> + 'static,
    {
        Figure {
            width,
            height,
            draw: Box::new(draw),
        }
    }

    /// The size in pixels, `(width, height)`.
    pub fn size(&self) -> (u32, u32) {
        (self.width, self.height)
    }

    fn check_size(&self) -> Result<()> {
        if self.width == 0 || self.height == 0 || self.width > 16_384 || self.height > 16_384 {
            return Err(Error::invalid(
                "figure size",
                format!(
                    "{}x{} pixels; width and height must be in 1..=16384",
                    self.width, self.height
                ),
            ));
        }
        Ok(())
    }

    /// Renders the figure as an SVG document (`<svg ...>...</svg>`). Bitmaps drawn into it (image
    /// grids, heatmaps) are embedded as base64 PNG `<image>` elements.
    pub fn to_svg(&self) -> Result<String> {
        self.check_size()?;
        ensure_fonts();
        let mut out = String::new();
        {
            let area = AnyBackend::Svg(SVGBackend::with_string(&mut out, (self.width, self.height)))
                .into_drawing_area();
            (self.draw)(&area)?;
            area.present().map_err(plot_err)?;
        }
        // plotters labels embedded PNGs `data:png;base64,`, which is not a MIME type; browsers
        // that do not sniff would show nothing.
        Ok(out.replace("href=\"data:png;base64,", "href=\"data:image/png;base64,"))
    }

    /// Renders the figure to an RGB image of [`Figure::size`].
    pub fn to_image(&self) -> Result<image::RgbImage> {
        self.check_size()?;
        ensure_fonts();
        let mut buf = vec![0u8; self.width as usize * self.height as usize * 3];
        {
            let area = AnyBackend::Bitmap(BitMapBackend::with_buffer(&mut buf, (self.width, self.height)))
                .into_drawing_area();
            (self.draw)(&area)?;
            area.present().map_err(plot_err)?;
        }
        image::RgbImage::from_raw(self.width, self.height, buf)
            .ok_or_else(|| Error::Plot("bitmap buffer has the wrong length".into()))
    }

    /// Renders the figure to PNG bytes.
    pub fn to_png_bytes(&self) -> Result<Vec<u8>> {
        super::display::encode_png(&self.to_image()?)
    }

    /// Writes the figure to `path`, as SVG or PNG by its extension (`.svg`, `.png`), atomically.
    pub fn save(&self, path: impl AsRef<Path>) -> Result<()> {
        let path = path.as_ref();
        let ext = path
            .extension()
            .map(|e| e.to_string_lossy().to_ascii_lowercase())
            .unwrap_or_default();
        let bytes = match ext.as_str() {
            "svg" => self.to_svg()?.into_bytes(),
            "png" => self.to_png_bytes()?,
            _ => {
                return Err(Error::invalid(
                    "path",
                    format!(
                        "{}: unknown figure format; use a .svg or .png extension",
                        path.display()
                    ),
                ))
            }
        };
        crate::io::write_atomic(path, &bytes)
    }

    /// The evcxr display message for this figure: the SVG inside an HTML `div`
    /// (`EVCXR_BEGIN_CONTENT text/html ... EVCXR_END_CONTENT`). HTML rather than
    /// `image/svg+xml` so that nbconvert's HTML export keeps an inline `<svg>` (it turns
    /// `image/svg+xml` outputs into `<img>` tags) and so that it matches plotters' own evcxr output.
    pub fn to_evcxr_content(&self) -> Result<String> {
        let svg = self.to_svg()?;
        Ok(format!(
            "EVCXR_BEGIN_CONTENT text/html\n<div style=\"max-width:100%;overflow-x:auto\">{svg}</div>\nEVCXR_END_CONTENT"
        ))
    }

    /// Shows the figure inline in an evcxr notebook (prints its display message on stdout). A
    /// rendering error is printed as text instead of a figure.
    pub fn show(&self) {
        match self.to_evcxr_content() {
            Ok(s) => println!("{s}"),
            Err(e) => println!("figure could not be drawn: {e}"),
        }
    }

    /// Called by evcxr on a cell's final value: shows the figure inline (same as [`Figure::show`]).
    pub fn evcxr_display(&self) {
        self.show()
    }
}

/// Something that draws itself on any plotters backend, with a preferred size; every chart of
/// this module implements it.
pub trait Draw {
    /// Draws on `area` (the whole area is used).
    fn draw<DB: DrawingBackend>(&self, area: &DrawingArea<DB, Shift>) -> Result<()>;

    /// The size in pixels, `(width, height)`, this chart is drawn at by [`Draw::figure`].
    fn size(&self) -> (u32, u32);

    /// Moves the chart into a [`Figure`] of [`Draw::size`].
    fn figure(self) -> Figure
    where
        Self: Sized + 'static,
    {
        let (w, h) = self.size();
        Figure::new(w, h, move |area| self.draw(area))
    }
}
