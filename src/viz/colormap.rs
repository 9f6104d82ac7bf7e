//! Colormaps for heatmaps: perceptually uniform (viridis, inferno), jet for comparison with older
//! papers, a diverging blue-white-red for signed maps, gray, and categorical class colours.
//!
//! Viridis and inferno (van der Walt and Smith, matplotlib 2015) are interpolated between 33 anchors
//! of matplotlib's 256-entry tables; jet follows matplotlib's piecewise-linear definition; the
//! diverging map is ColorBrewer's RdBu, reversed so that negative is blue and positive red.
//! `scripts/golden/colormaps.py` made the tables and the test fixture.

use crate::{Error, Result};
use tch::{Kind, Tensor};

/// A continuous colormap from `t` in `[0, 1]` to an RGB colour.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Colormap {
    /// matplotlib's viridis: dark purple -> blue -> green -> yellow (perceptually uniform).
    #[default]
    Viridis,
    /// matplotlib's inferno: black -> purple -> orange -> pale yellow (perceptually uniform).
    Inferno,
    /// matplotlib's jet: dark blue -> cyan -> yellow -> dark red (not uniform; common in CAM papers).
    Jet,
    /// Diverging blue -> white -> red (ColorBrewer RdBu reversed) for signed maps: 0.5 is white.
    RdBu,
    /// Black -> white.
    Gray,
}

const VIRIDIS: [[f64; 3]; 33] = [
    [0.267004, 0.004874, 0.329415],
    [0.277018, 0.050344, 0.375715],
    [0.282327, 0.094955, 0.417331],
    [0.282884, 0.135920, 0.453427],
    [0.278826, 0.175490, 0.483397],
    [0.270595, 0.214069, 0.507052],
    [0.258965, 0.251537, 0.524736],
    [0.244972, 0.287675, 0.537260],
    [0.229739, 0.322361, 0.545706],
    [0.214298, 0.355619, 0.551184],
    [0.199430, 0.387607, 0.554642],
    [0.185556, 0.418570, 0.556753],
    [0.172719, 0.448791, 0.557885],
    [0.160665, 0.478540, 0.558115],
    [0.149039, 0.508051, 0.557250],
    [0.137770, 0.537492, 0.554906],
    [0.127568, 0.566949, 0.550556],
    [0.120565, 0.596422, 0.543611],
    [0.120638, 0.625828, 0.533488],
    [0.132268, 0.655014, 0.519661],
    [0.157851, 0.683765, 0.501686],
    [0.196571, 0.711827, 0.479221],
    [0.246070, 0.738910, 0.452024],
    [0.304148, 0.764704, 0.419943],
    [0.369214, 0.788888, 0.382914],
    [0.440137, 0.811138, 0.340967],
    [0.515992, 0.831158, 0.294279],
    [0.595839, 0.848717, 0.243329],
    [0.678489, 0.863742, 0.189503],
    [0.762373, 0.876424, 0.137064],
    [0.845561, 0.887322, 0.099702],
    [0.926106, 0.897330, 0.104071],
    [0.993248, 0.906157, 0.143936],
];

const INFERNO: [[f64; 3]; 33] = [
    [0.001462, 0.000466, 0.013866],
    [0.013995, 0.011225, 0.071862],
    [0.042253, 0.028139, 0.141141],
    [0.081962, 0.043328, 0.215289],
    [0.129285, 0.047293, 0.290788],
    [0.183429, 0.040329, 0.354971],
    [0.238273, 0.036621, 0.396353],
    [0.290763, 0.045644, 0.418637],
    [0.341500, 0.062325, 0.429425],
    [0.391453, 0.080927, 0.433109],
    [0.441207, 0.099338, 0.431594],
    [0.491022, 0.117179, 0.425552],
    [0.540920, 0.134729, 0.415123],
    [0.590734, 0.152563, 0.400290],
    [0.640135, 0.171438, 0.381065],
    [0.688653, 0.192239, 0.357603],
    [0.735683, 0.215906, 0.330245],
    [0.780517, 0.243327, 0.299523],
    [0.822386, 0.275197, 0.266085],
    [0.860533, 0.311892, 0.230606],
    [0.894305, 0.353399, 0.193584],
    [0.923215, 0.399359, 0.155193],
    [0.946965, 0.449191, 0.115272],
    [0.965397, 0.502249, 0.073859],
    [0.978422, 0.557937, 0.034931],
    [0.985952, 0.615750, 0.025592],
    [0.987874, 0.675267, 0.065257],
    [0.984075, 0.736087, 0.129527],
    [0.974638, 0.797692, 0.206332],
    [0.960626, 0.859069, 0.298010],
    [0.947594, 0.917399, 0.410665],
    [0.954529, 0.965896, 0.540361],
    [0.988362, 0.998364, 0.644924],
];

const RDBU: [[f64; 3]; 11] = [
    [0.019608, 0.188235, 0.380392],
    [0.129412, 0.400000, 0.674510],
    [0.262745, 0.576471, 0.764706],
    [0.572549, 0.772549, 0.870588],
    [0.819608, 0.898039, 0.941176],
    [0.968627, 0.968627, 0.968627],
    [0.992157, 0.858824, 0.780392],
    [0.956863, 0.647059, 0.509804],
    [0.839216, 0.376471, 0.301961],
    [0.698039, 0.094118, 0.168627],
    [0.403922, 0.000000, 0.121569],
];

/// matplotlib's jet, per channel `(x, value)` breakpoints.
const JET_R: [(f64, f64); 5] = [(0.0, 0.0), (0.35, 0.0), (0.66, 1.0), (0.89, 1.0), (1.0, 0.5)];
const JET_G: [(f64, f64); 6] = [
    (0.0, 0.0),
    (0.125, 0.0),
    (0.375, 1.0),
    (0.64, 1.0),
    (0.91, 0.0),
    (1.0, 0.0),
];
const JET_B: [(f64, f64); 5] = [(0.0, 0.5), (0.11, 1.0), (0.34, 1.0), (0.65, 0.0), (1.0, 0.0)];

fn piecewise(points: &[(f64, f64)], t: f64) -> f64 {
    let mut prev = points[0];
    for &p in &points[1..] {
        if t <= p.0 {
            let span = p.0 - prev.0;
            let f = if span > 0.0 { (t - prev.0) / span } else { 1.0 };
            return prev.1 + f * (p.1 - prev.1);
        }
        prev = p;
    }
    prev.1
}

fn evenly(table: &[[f64; 3]], t: f64) -> [f64; 3] {
    let n = table.len() - 1;
    // Anchors of the 256-entry tables sit at entries 0, 8, ..., 248, 255.
    let pos = |k: usize| -> f64 {
        if table.len() == 33 {
            (k * 8).min(255) as f64 / 255.0
        } else {
            k as f64 / n as f64
        }
    };
    let mut k = 0;
    while k + 1 < n && pos(k + 1) < t {
        k += 1;
    }
    let (x0, x1) = (pos(k), pos(k + 1));
    let f = ((t - x0) / (x1 - x0)).clamp(0.0, 1.0);
    let (a, b) = (table[k], table[k + 1]);
    [
        a[0] + f * (b[0] - a[0]),
        a[1] + f * (b[1] - a[1]),
        a[2] + f * (b[2] - a[2]),
    ]
}

fn to_u8(v: f64) -> u8 {
    (v * 255.0).round().clamp(0.0, 255.0) as u8
}

impl Colormap {
    /// The colour at `t` (clamped to `[0, 1]`; NaN maps like 0).
    ///
    /// ```
    /// use cnn_explain::viz::Colormap;
    /// assert_eq!(Colormap::Gray.map(1.0), [255, 255, 255]);
    /// assert_eq!(Colormap::Viridis.map(0.0), [68, 1, 84]);
    /// assert_eq!(Colormap::RdBu.map(0.5), [247, 247, 247]);
    /// ```
    pub fn map(&self, t: f64) -> [u8; 3] {
        let t = if t.is_nan() { 0.0 } else { t.clamp(0.0, 1.0) };
        let c = match self {
            Colormap::Viridis => evenly(&VIRIDIS, t),
            Colormap::Inferno => evenly(&INFERNO, t),
            Colormap::RdBu => evenly(&RDBU, t),
            Colormap::Gray => [t, t, t],
            Colormap::Jet => [piecewise(&JET_R, t), piecewise(&JET_G, t), piecewise(&JET_B, t)],
        };
        [to_u8(c[0]), to_u8(c[1]), to_u8(c[2])]
    }

    /// Colours a map: `map` is `[H, W]` or `[1, H, W]` (any device, any float kind); values are
    /// scaled linearly from `[lo, hi]` to `[0, 1]` and clamped. For a map normalised with
    /// [`Sign::All`](super::Sign::All) use `lo = -1, hi = 1` and [`Colormap::RdBu`].
    ///
    /// ```
    /// use cnn_explain::viz::Colormap;
    /// use tch::Tensor;
    /// let img = Colormap::Gray.apply(&Tensor::from_slice(&[0.0f32, 0.5, 1.0]).view([1, 3]), 0.0, 1.0)?;
    /// assert_eq!((img.width(), img.height()), (3, 1));
    /// assert_eq!(img.get_pixel(2, 0).0, [255, 255, 255]);
    /// # Ok::<(), cnn_explain::Error>(())
    /// ```
    pub fn apply(&self, map: &Tensor, lo: f64, hi: f64) -> Result<image::RgbImage> {
        let size = map.size();
        let (h, w) = match size.as_slice() {
            [h, w] | [1, h, w] => (*h, *w),
            _ => return Err(Error::shape("map", "[H, W] or [1, H, W]", &size)),
        };
        if h <= 0 || w <= 0 {
            return Err(Error::shape("map", "a non-empty [H, W] map", &size));
        }
        if !(lo.is_finite() && hi.is_finite() && hi > lo) {
            return Err(Error::invalid(
                "lo, hi",
                format!("got [{lo}, {hi}]; need finite bounds with lo < hi"),
            ));
        }
        let flat = map
            .f_to_kind(Kind::Double)?
            .f_to_device(tch::Device::Cpu)?
            .f_reshape([-1])?;
        let values = Vec::<f64>::try_from(&flat)?;
        let mut img = image::RgbImage::new(w as u32, h as u32);
        for (i, p) in img.pixels_mut().enumerate() {
            let v = values.get(i).copied().unwrap_or(0.0);
            p.0 = self.map((v - lo) / (hi - lo));
        }
        Ok(img)
    }
}

/// Distinct colours for categories (matplotlib's tab10, then tab20's light shades, then a golden-
/// angle hue sequence), so class `k` always has the same colour in every chart.
///
/// ```
/// use cnn_explain::viz::category_color;
/// assert_eq!(category_color(0), [31, 119, 180]);
/// assert_ne!(category_color(3), category_color(13));
/// ```
pub fn category_color(k: usize) -> [u8; 3] {
    const TAB: [[u8; 3]; 20] = [
        [31, 119, 180],
        [255, 127, 14],
        [44, 160, 44],
        [214, 39, 40],
        [148, 103, 189],
        [140, 86, 75],
        [227, 119, 194],
        [127, 127, 127],
        [188, 189, 34],
        [23, 190, 207],
        [174, 199, 232],
        [255, 187, 120],
        [152, 223, 138],
        [255, 152, 150],
        [197, 176, 213],
        [196, 156, 148],
        [247, 182, 210],
        [199, 199, 199],
        [219, 219, 141],
        [158, 218, 229],
    ];
    if let Some(c) = TAB.get(k) {
        return *c;
    }
    // Golden-angle hues at medium saturation and value.
    let h = ((k as f64) * 137.507_764) % 360.0;
    let (s, v) = (0.65, 0.85);
    let c = v * s;
    let x = c * (1.0 - ((h / 60.0) % 2.0 - 1.0).abs());
    let m = v - c;
    let (r, g, b) = match (h / 60.0) as u32 {
        0 => (c, x, 0.0),
        1 => (x, c, 0.0),
        2 => (0.0, c, x),
        3 => (0.0, x, c),
        4 => (x, 0.0, c),
        _ => (c, 0.0, x),
    };
    [to_u8(r + m), to_u8(g + m), to_u8(b + m)]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn endpoints_are_exact() {
        assert_eq!(Colormap::Viridis.map(0.0), [68, 1, 84]);
        assert_eq!(Colormap::Viridis.map(1.0), [253, 231, 37]);
        assert_eq!(Colormap::Inferno.map(0.0), [0, 0, 4]);
        assert_eq!(Colormap::Inferno.map(1.0), [252, 255, 164]);
        assert_eq!(Colormap::Jet.map(0.0), [0, 0, 128]);
        assert_eq!(Colormap::Jet.map(1.0), [128, 0, 0]);
        assert_eq!(Colormap::RdBu.map(0.0), [5, 48, 97]);
        assert_eq!(Colormap::RdBu.map(0.5), [247, 247, 247]);
        assert_eq!(Colormap::RdBu.map(1.0), [103, 0, 31]);
        assert_eq!(Colormap::Gray.map(0.0), [0, 0, 0]);
        // Out of range and NaN clamp instead of panicking.
        assert_eq!(Colormap::Jet.map(-3.0), Colormap::Jet.map(0.0));
        assert_eq!(Colormap::Jet.map(7.0), Colormap::Jet.map(1.0));
        assert_eq!(Colormap::Jet.map(f64::NAN), Colormap::Jet.map(0.0));
    }

    #[test]
    fn matches_matplotlib() {
        let text = std::fs::read_to_string(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/tests/fixtures/colormaps.json"
        ))
        .unwrap();
        let v: serde_json::Value = serde_json::from_str(&text).unwrap();
        let ts: Vec<f64> = serde_json::from_value(v["t"].clone()).unwrap();
        for (name, cm, tol) in [
            ("jet", Colormap::Jet, 5),
            ("viridis", Colormap::Viridis, 3),
            ("inferno", Colormap::Inferno, 3),
            ("RdBu_r", Colormap::RdBu, 3),
        ] {
            let want: Vec<[i32; 3]> = serde_json::from_value(v[name].clone()).unwrap();
            for (t, w) in ts.iter().zip(&want) {
                let got = cm.map(*t);
                for c in 0..3 {
                    assert!(
                        (got[c] as i32 - w[c]).abs() <= tol,
                        "{name} at {t}: got {got:?}, matplotlib {w:?}"
                    );
                }
            }
        }
    }

    #[test]
    fn apply_checks_shape_and_scales() {
        let m = Tensor::from_slice(&[-1.0f32, 0.0, 1.0]).view([1, 1, 3]);
        let img = Colormap::RdBu.apply(&m, -1.0, 1.0).unwrap();
        assert_eq!(img.get_pixel(0, 0).0, [5, 48, 97]);
        assert_eq!(img.get_pixel(1, 0).0, [247, 247, 247]);
        assert_eq!(img.get_pixel(2, 0).0, [103, 0, 31]);
        assert!(Colormap::Jet
            .apply(
                &Tensor::zeros([2, 2, 2], (Kind::Float, tch::Device::Cpu)),
                0.0,
                1.0
            )
            .is_err());
        assert!(Colormap::Jet.apply(&m, 1.0, 1.0).is_err());
    }

    #[test]
    fn category_colors_are_distinct() {
        let cs: Vec<_> = (0..40).map(category_color).collect();
        for i in 0..cs.len() {
            for j in 0..i {
                assert_ne!(cs[i], cs[j], "{i} and {j}");
            }
        }
    }
}
