//! Drawing: figures that show inline in notebooks and save to files.
//!
//! Drawing functions are generic over plotters' `DrawingBackend`, so the same function renders the
//! inline SVG of a notebook and a PNG file.

use crate::Error;

/// Registers the embedded DejaVu Sans font under the family names plotters asks for
/// (`sans-serif`, `serif`, `monospace`); text needs no system fonts. Idempotent.
pub fn ensure_fonts() {
    use plotters::style::FontStyle;
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        for family in ["sans-serif", "serif", "monospace", ""] {
            // The bytes are a valid font shipped by the `dejavu` crate; registration cannot fail on them.
            let _ = plotters::style::register_font(family, FontStyle::Normal, dejavu::sans::regular());
            let _ = plotters::style::register_font(family, FontStyle::Bold, dejavu::sans::bold());
            let _ = plotters::style::register_font(family, FontStyle::Italic, dejavu::sans::oblique());
            let _ = plotters::style::register_font(family, FontStyle::Oblique, dejavu::sans::oblique());
        }
    });
}

/// Converts any plotters error into the crate's error.
#[allow(dead_code)] // used by the drawing functions
pub(crate) fn plot_err<E: std::fmt::Display>(e: E) -> Error {
    Error::Plot(e.to_string())
}

/// Converts any plotters error into the crate's error (for drawing functions passed to
/// [`Figure::new`]).
pub fn plot_error<E: std::fmt::Display>(e: E) -> Error {
    plot_err(e)
}

mod backend;
pub mod charts;
pub mod colormap;
pub mod display;
pub mod evolution;
mod figure;
pub mod grid;
pub mod heatmap;
pub mod quality;

pub use backend::{AnyBackend, AnyBackendError};
pub use charts::{BarChart, BarColumn, LineChart, MatrixCells, MatrixChart, Series};
pub use colormap::{category_color, Colormap};
pub use display::{
    encode_png, escape_html, html_table, show_html, show_image, show_png, show_tensor, Html, Png,
};
pub use evolution::{draw_evolution, evolution_strip, EvolutionStrip};
pub use figure::{Draw, Figure};
pub use grid::ImageGrid;
pub use heatmap::{blend, overlay, tensor_to_image, ChannelReduce, Normalization, Sign};
