//! Inline output in evcxr notebooks: PNG images and HTML tables.
//!
//! evcxr shows anything printed between `EVCXR_BEGIN_CONTENT <mime>` and `EVCXR_END_CONTENT`, and
//! calls `evcxr_display` on a cell's final value. Images are sent as `image/png` (base64), which
//! nbconvert's HTML export keeps as `<img src="data:image/png;base64,...">`.

use super::heatmap::tensor_to_image;
use crate::{Error, Result};
use base64::Engine;
use tch::Tensor;

/// Encodes an image as PNG bytes.
pub fn encode_png(img: &image::RgbImage) -> Result<Vec<u8>> {
    let mut out = std::io::Cursor::new(Vec::new());
    img.write_to(&mut out, image::ImageFormat::Png)
        .map_err(|e| Error::Plot(format!("PNG encoding failed: {e}")))?;
    Ok(out.into_inner())
}

/// PNG bytes that show inline when they are a cell's final value (or through [`Png::show`]).
///
/// ```
/// let img = image::RgbImage::new(4, 3);
/// let png = cnn_explain::viz::Png::from_image(&img)?;
/// assert!(png.evcxr_content().starts_with("EVCXR_BEGIN_CONTENT image/png\niVBORw0KGgo"));
/// # Ok::<(), cnn_explain::Error>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Png(pub Vec<u8>);

impl Png {
    /// Encodes an image.
    pub fn from_image(img: &image::RgbImage) -> Result<Png> {
        Ok(Png(encode_png(img)?))
    }

    /// Encodes an image tensor `[3, H, W]` or `[1, 3, H, W]` with values in `[0, 1]`.
    pub fn from_tensor(image: &Tensor) -> Result<Png> {
        Png::from_image(&tensor_to_image(image)?)
    }

    /// The evcxr display message (`EVCXR_BEGIN_CONTENT image/png`, base64, `EVCXR_END_CONTENT`).
    pub fn evcxr_content(&self) -> String {
        format!(
            "EVCXR_BEGIN_CONTENT image/png\n{}\nEVCXR_END_CONTENT",
            base64::engine::general_purpose::STANDARD.encode(&self.0)
        )
    }

    /// Shows the image inline (prints the display message).
    pub fn show(&self) {
        println!("{}", self.evcxr_content());
    }

    /// Called by evcxr on a cell's final value.
    pub fn evcxr_display(&self) {
        self.show()
    }
}

/// Shows PNG bytes inline.
pub fn show_png(bytes: &[u8]) {
    Png(bytes.to_vec()).show()
}

/// Shows an image inline (PNG).
pub fn show_image(img: &image::RgbImage) -> Result<()> {
    Png::from_image(img)?.show();
    Ok(())
}

/// Shows an image tensor `[3, H, W]` or `[1, 3, H, W]` with values in `[0, 1]` inline; any other
/// shape is an error.
pub fn show_tensor(image: &Tensor) -> Result<()> {
    Png::from_tensor(image)?.show();
    Ok(())
}

/// HTML that shows inline when it is a cell's final value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Html(pub String);

impl Html {
    /// The evcxr display message (`EVCXR_BEGIN_CONTENT text/html ... EVCXR_END_CONTENT`).
    pub fn evcxr_content(&self) -> String {
        format!("EVCXR_BEGIN_CONTENT text/html\n{}\nEVCXR_END_CONTENT", self.0)
    }

    /// Shows the HTML inline.
    pub fn show(&self) {
        println!("{}", self.evcxr_content());
    }

    /// Called by evcxr on a cell's final value.
    pub fn evcxr_display(&self) {
        self.show()
    }
}

/// Shows an HTML fragment inline (for tables, see [`html_table`]).
pub fn show_html(html: &str) {
    Html(html.to_string()).show()
}

/// Escapes `&`, `<`, `>`, `"` and `'` for HTML text and attribute values.
///
/// ```
/// assert_eq!(cnn_explain::viz::escape_html("a<b & \"c\""), "a&lt;b &amp; &quot;c&quot;");
/// ```
pub fn escape_html(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for ch in text.chars() {
        match ch {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// An HTML table with a header row; every cell's text is escaped. Rows shorter than the header
/// are padded with empty cells; longer rows are an error.
///
/// ```
/// use cnn_explain::viz::html_table;
/// let t = html_table(&["class", "recall"], &[vec!["<star>".into(), "0.93".into()]])?;
/// assert!(t.0.contains("<th>class</th>") && t.0.contains("<td>&lt;star&gt;</td>"));
/// # Ok::<(), cnn_explain::Error>(())
/// ```
pub fn html_table<S: AsRef<str>>(headers: &[S], rows: &[Vec<String>]) -> Result<Html> {
    let mut s = String::from("<table>\n<thead><tr>");
    for h in headers {
        s.push_str(&format!("<th>{}</th>", escape_html(h.as_ref())));
    }
    s.push_str("</tr></thead>\n<tbody>\n");
    for (i, row) in rows.iter().enumerate() {
        if row.len() > headers.len() {
            return Err(Error::invalid(
                "rows",
                format!(
                    "row {i} has {} cells but there are {} headers",
                    row.len(),
                    headers.len()
                ),
            ));
        }
        s.push_str("<tr>");
        for k in 0..headers.len() {
            let cell = row.get(k).map(String::as_str).unwrap_or("");
            s.push_str(&format!("<td>{}</td>", escape_html(cell)));
        }
        s.push_str("</tr>\n");
    }
    s.push_str("</tbody>\n</table>");
    Ok(Html(s))
}

#[cfg(test)]
mod tests {
    use super::*;
    use tch::{Device, Kind};

    #[test]
    fn png_message_decodes_to_the_image() {
        let mut img = image::RgbImage::new(5, 3);
        img.put_pixel(4, 2, image::Rgb([1, 2, 3]));
        let msg = Png::from_image(&img).unwrap().evcxr_content();
        let lines: Vec<&str> = msg.lines().collect();
        assert_eq!(lines.len(), 3);
        assert_eq!(lines[0], "EVCXR_BEGIN_CONTENT image/png");
        assert_eq!(lines[2], "EVCXR_END_CONTENT");
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(lines[1])
            .unwrap();
        let back = image::load_from_memory(&bytes).unwrap().to_rgb8();
        assert_eq!(back, img);
    }

    #[test]
    fn tensor_shapes_are_checked() {
        let ok = Tensor::zeros([1, 3, 4, 6], (Kind::Float, Device::Cpu));
        let png = Png::from_tensor(&ok).unwrap();
        let back = image::load_from_memory(&png.0).unwrap();
        assert_eq!((back.width(), back.height()), (6, 4));
        for bad in [vec![4, 4], vec![1, 4, 4], vec![2, 3, 4, 4], vec![3, 0, 4]] {
            let t = Tensor::zeros(bad.as_slice(), (Kind::Float, Device::Cpu));
            assert!(Png::from_tensor(&t).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn table_escapes_and_checks_rows() {
        let t = html_table(&["a&b"], &[vec!["<script>".into()], vec![]]).unwrap();
        assert!(t.0.contains("<th>a&amp;b</th>"));
        assert!(t.0.contains("<td>&lt;script&gt;</td>"));
        assert!(!t.0.contains("<script>"));
        assert_eq!(t.0.matches("<tr>").count(), 3);
        assert!(html_table(&["a"], &[vec!["1".into(), "2".into()]]).is_err());
        assert!(t
            .evcxr_content()
            .starts_with("EVCXR_BEGIN_CONTENT text/html\n<table>"));
    }
}
