//! One backend type for both outputs, so a [`Figure`](super::Figure) stores one drawing function.
//!
//! [`AnyBackend`] is either plotters' SVG backend (writing into a `String`) or its bitmap backend
//! (writing into an RGB buffer) and forwards every drawing call to the one it holds.

use plotters::prelude::{BitMapBackend, DrawingBackend, SVGBackend};
use plotters_backend::{BackendColor, BackendCoord, BackendStyle, BackendTextStyle, DrawingErrorKind};

/// Either plotters' SVG backend or its bitmap backend; implements [`DrawingBackend`] by delegation.
pub enum AnyBackend<'a> {
    /// Vector output into a `String`.
    Svg(SVGBackend<'a>),
    /// Raster output into an RGB8 buffer.
    Bitmap(BitMapBackend<'a>),
}

/// The error of an [`AnyBackend`]: the message of the wrapped backend's error.
#[derive(Debug)]
pub struct AnyBackendError(pub String);

impl std::fmt::Display for AnyBackendError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for AnyBackendError {}

fn conv<E: std::error::Error + Send + Sync>(e: DrawingErrorKind<E>) -> DrawingErrorKind<AnyBackendError> {
    match e {
        DrawingErrorKind::DrawingError(e) => DrawingErrorKind::DrawingError(AnyBackendError(e.to_string())),
        DrawingErrorKind::FontError(e) => DrawingErrorKind::FontError(e),
    }
}

macro_rules! delegate {
    ($self:ident, $b:ident => $call:expr) => {
        match $self {
            AnyBackend::Svg($b) => $call.map_err(conv),
            AnyBackend::Bitmap($b) => $call.map_err(conv),
        }
    };
}

impl DrawingBackend for AnyBackend<'_> {
    type ErrorType = AnyBackendError;

    fn get_size(&self) -> (u32, u32) {
        match self {
            AnyBackend::Svg(b) => b.get_size(),
            AnyBackend::Bitmap(b) => b.get_size(),
        }
    }

    fn ensure_prepared(&mut self) -> Result<(), DrawingErrorKind<AnyBackendError>> {
        delegate!(self, b => b.ensure_prepared())
    }

    fn present(&mut self) -> Result<(), DrawingErrorKind<AnyBackendError>> {
        delegate!(self, b => b.present())
    }

    fn draw_pixel(
        &mut self,
        point: BackendCoord,
        color: BackendColor,
    ) -> Result<(), DrawingErrorKind<AnyBackendError>> {
        delegate!(self, b => b.draw_pixel(point, color))
    }

    fn draw_line<S: BackendStyle>(
        &mut self,
        from: BackendCoord,
        to: BackendCoord,
        style: &S,
    ) -> Result<(), DrawingErrorKind<AnyBackendError>> {
        delegate!(self, b => b.draw_line(from, to, style))
    }

    fn draw_rect<S: BackendStyle>(
        &mut self,
        upper_left: BackendCoord,
        bottom_right: BackendCoord,
        style: &S,
        fill: bool,
    ) -> Result<(), DrawingErrorKind<AnyBackendError>> {
        delegate!(self, b => b.draw_rect(upper_left, bottom_right, style, fill))
    }

    fn draw_path<S: BackendStyle, I: IntoIterator<Item = BackendCoord>>(
        &mut self,
        path: I,
        style: &S,
    ) -> Result<(), DrawingErrorKind<AnyBackendError>> {
        delegate!(self, b => b.draw_path(path, style))
    }

    fn draw_circle<S: BackendStyle>(
        &mut self,
        center: BackendCoord,
        radius: u32,
        style: &S,
        fill: bool,
    ) -> Result<(), DrawingErrorKind<AnyBackendError>> {
        delegate!(self, b => b.draw_circle(center, radius, style, fill))
    }

    fn fill_polygon<S: BackendStyle, I: IntoIterator<Item = BackendCoord>>(
        &mut self,
        vert: I,
        style: &S,
    ) -> Result<(), DrawingErrorKind<AnyBackendError>> {
        delegate!(self, b => b.fill_polygon(vert, style))
    }

    fn draw_text<T: BackendTextStyle>(
        &mut self,
        text: &str,
        style: &T,
        pos: BackendCoord,
    ) -> Result<(), DrawingErrorKind<AnyBackendError>> {
        delegate!(self, b => b.draw_text(text, style, pos))
    }

    fn estimate_text_size<T: BackendTextStyle>(
        &self,
        text: &str,
        style: &T,
    ) -> Result<(u32, u32), DrawingErrorKind<AnyBackendError>> {
        delegate!(self, b => b.estimate_text_size(text, style))
    }

    fn blit_bitmap(
        &mut self,
        pos: BackendCoord,
        size: (u32, u32),
        src: &[u8],
    ) -> Result<(), DrawingErrorKind<AnyBackendError>> {
        delegate!(self, b => b.blit_bitmap(pos, size, src))
    }
}
