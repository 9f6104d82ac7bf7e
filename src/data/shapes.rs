//! The built-in dataset: six classes of shapes on textured, noisy backgrounds, generated from a seed.
//!
//! Nothing has to be downloaded, so every notebook and test can run at once. Each image shows one
//! shape of class `circle`, `square`, `triangle`, `star`, `cross` or `ring` ([`CLASS_NAMES`]) with a
//! random position, size, rotation and colour, drawn antialiased (by supersampling) over
//!
//! - a background of a random base colour, a random linear gradient and a few random sinusoidal
//!   waves (the *texture*), and
//! - up to [`ShapesConfig::distractors`] distractors: small blobs and thin line segments in random
//!   colours that belong to no class (they are drawn below the shape),
//!
//! then per-pixel noise is added. The shape's colour differs from the background's base colour by
//! at least [`ShapesConfig::min_contrast`]; small, low-contrast shapes over busy textures are the
//! hard images. Difficulty is set by the config's fields; the defaults are tuned so that a small CNN
//! needs a few epochs and reaches more than 90% test accuracy (measured in
//! `tests/shapes_learnable.rs`: three conv-BN-ReLU-maxpool blocks of 32/64/128 channels with global
//! max pooling, Adam 3e-3, batch 32: 35% after one epoch, 96% after seven).
//!
//! **Ground truth.** Every image has its object mask (`Dataset::masks`, `[N, 1, H, W]`): 1 where the
//! shape covers at least half of the pixel, 0 elsewhere (also 0 under a spurious cue patch, which is
//! drawn over everything).
//!
//! **Spurious cue.** With [`ShapesConfig::spurious`] set, a small square patch whose corner and colour
//! depend on the class ([`cue_region`], [`cue_colour`]) is drawn on a chosen fraction of the training
//! and validation images; in the test set it is absent, drawn for a wrong class, or drawn as in
//! training ([`CueInTest`]). A model that learns the shortcut instead of the shape then fails on the
//! test set (the "Clever Hans" setting of Lapuschkin et al. 2019, *Unmasking Clever Hans predictors
//! and assessing what machines really learn*). Where the cue sits in each image is returned by
//! [`generate_with_cues`] as [`CueLayout`] (masks and cue classes), so explanation metrics can
//! measure how much attribution falls on the cue. Everything except the cue patches is identical
//! with and without the cue for the same seed.
//!
//! **Determinism.** One seed fixes everything: the splits draw from generators forked from
//! [`Rng::new`]`(seed)` in the order train, validation, test, so changing the training size does
//! not change the test set, and each image has its own forked generator, so the result does not
//! depend on the number of threads used to draw.

use super::{Dataset, Splits};
use crate::rng::Rng;
use crate::{Error, Result};
use std::f64::consts::PI;
use tch::Tensor;

/// Names of the classes, in label order.
pub const CLASS_NAMES: [&str; 6] = ["circle", "square", "triangle", "star", "cross", "ring"];

/// Colours of the spurious cue patches, one per class (red, green, blue, yellow, magenta, cyan).
const CUE_COLOURS: [[f32; 3]; 6] = [
    [1.0, 0.0, 0.0],
    [0.0, 1.0, 0.0],
    [0.0, 0.0, 1.0],
    [1.0, 1.0, 0.0],
    [1.0, 0.0, 1.0],
    [0.0, 1.0, 1.0],
];

/// What the test set shows of the spurious cue.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CueInTest {
    /// No test image has a cue: accuracy measures the shape alone.
    Absent,
    /// The same fraction of test images as in training carries the cue of a wrong class (chosen at
    /// random among the others): a model that relies on the cue is misled.
    Shuffled,
    /// The test set has the cue as training has (same class, same fraction).
    Same,
}

/// A class-specific mark drawn on part of the data (see the module docs).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SpuriousCue {
    /// Share of training (and validation) images that carry the mark of their class, in `[0, 1]`;
    /// exactly `round(fraction * n)` images of each split get one.
    pub fraction: f64,
    /// Side of the square patch in pixels, at least 1 and at most a quarter of the image size.
    pub size: i64,
    /// What the test set shows.
    pub test: CueInTest,
}

impl Default for SpuriousCue {
    fn default() -> Self {
        SpuriousCue {
            fraction: 0.9,
            size: 6,
            test: CueInTest::Shuffled,
        }
    }
}

/// Sizes, seed and difficulty of the generated shapes dataset.
#[derive(Debug, Clone, PartialEq)]
pub struct ShapesConfig {
    /// Height and width of the square images in pixels (16 to 1024).
    pub image_size: i64,
    /// Number of training images.
    pub train: usize,
    /// Number of validation images.
    pub val: usize,
    /// Number of test images.
    pub test: usize,
    /// Fixes every random choice.
    pub seed: u64,
    /// Range of the shape's outer radius as a fraction of `image_size`; `0 < lo <= hi <= 0.45`.
    pub scale: (f64, f64),
    /// Least Euclidean distance in RGB (values in `[0, 1]`) between the shape's colour and the
    /// background's base colour, in `[0, 1]`. Lower makes more images hard.
    pub min_contrast: f64,
    /// Amplitude of the background's waves and gradient (0 gives a flat background).
    pub texture: f64,
    /// Standard deviation of the per-pixel, per-channel noise added at the end.
    pub noise: f64,
    /// Largest number of distractors (blobs and lines) per image; each image draws `0..=distractors`.
    pub distractors: usize,
    /// Samples per pixel along each axis for antialiasing (1 to 8; 1 draws aliased edges).
    pub supersample: usize,
    /// An optional class-specific mark (see the module docs).
    pub spurious: Option<SpuriousCue>,
}

impl Default for ShapesConfig {
    fn default() -> Self {
        ShapesConfig {
            image_size: 64,
            train: 3000,
            val: 500,
            test: 1000,
            seed: 0,
            scale: (0.2, 0.38),
            min_contrast: 0.5,
            texture: 0.08,
            noise: 0.04,
            distractors: 3,
            supersample: 3,
            spurious: None,
        }
    }
}

impl ShapesConfig {
    /// Checks every field; [`generate`] calls it first.
    ///
    /// ```
    /// use cnn_explain::data::shapes::ShapesConfig;
    /// assert!(ShapesConfig::default().validate().is_ok());
    /// assert!(ShapesConfig { image_size: 8, ..Default::default() }.validate().is_err());
    /// ```
    pub fn validate(&self) -> Result<()> {
        if !(16..=1024).contains(&self.image_size) {
            return Err(Error::invalid(
                "image_size",
                format!("{} is outside 16..=1024 pixels", self.image_size),
            ));
        }
        let (lo, hi) = self.scale;
        if !(lo > 0.0 && lo <= hi && hi <= 0.45) {
            return Err(Error::invalid(
                "scale",
                format!("({lo}, {hi}) must satisfy 0 < lo <= hi <= 0.45 (radius / image size)"),
            ));
        }
        if !(0.0..=1.0).contains(&self.min_contrast) {
            return Err(Error::invalid(
                "min_contrast",
                format!("{} is outside [0, 1]", self.min_contrast),
            ));
        }
        for (name, v) in [("texture", self.texture), ("noise", self.noise)] {
            if !(v.is_finite() && (0.0..=1.0).contains(&v)) {
                return Err(Error::invalid(name, format!("{v} is outside [0, 1]")));
            }
        }
        if !(1..=8).contains(&self.supersample) {
            return Err(Error::invalid(
                "supersample",
                format!("{} is outside 1..=8", self.supersample),
            ));
        }
        if let Some(cue) = &self.spurious {
            if !(0.0..=1.0).contains(&cue.fraction) {
                return Err(Error::invalid(
                    "spurious.fraction",
                    format!("{} is outside [0, 1]", cue.fraction),
                ));
            }
            if cue.size < 1 || cue.size > self.image_size / 4 {
                return Err(Error::invalid(
                    "spurious.size",
                    format!(
                        "{} is outside 1..={} (a quarter of image_size)",
                        cue.size,
                        self.image_size / 4
                    ),
                ));
            }
        }
        Ok(())
    }
}

/// Where the spurious cue sits in each image of one split.
#[derive(Debug)]
pub struct CueLayout {
    /// `[N, 1, H, W]` float: 1 on the cue patch, 0 elsewhere (all 0 for images without a cue).
    pub masks: Tensor,
    /// `[N]` int64: the class whose cue an image carries, `-1` for none. In a
    /// [`CueInTest::Shuffled`] test set it differs from the label.
    pub classes: Tensor,
}

/// Cue layouts of the three splits, returned by [`generate_with_cues`].
#[derive(Debug)]
pub struct ShapesCues {
    /// Training split.
    pub train: CueLayout,
    /// Validation split.
    pub val: CueLayout,
    /// Test split.
    pub test: CueLayout,
}

/// Generates the training, validation and test sets (with object masks).
///
/// ```
/// use cnn_explain::data::shapes::{generate, ShapesConfig};
/// let cfg = ShapesConfig { image_size: 32, train: 12, val: 6, test: 6, ..Default::default() };
/// let splits = generate(&cfg)?;
/// assert_eq!(splits.train.images.size(), [12, 3, 32, 32]);
/// assert_eq!(splits.test.masks.as_ref().unwrap().size(), [6, 1, 32, 32]);
/// assert_eq!(splits.train.class_counts()?, vec![2; 6]);
/// # Ok::<(), cnn_explain::Error>(())
/// ```
pub fn generate(cfg: &ShapesConfig) -> Result<Splits> {
    generate_with_cues(cfg).map(|(splits, _)| splits)
}

/// Like [`generate`], and also where the spurious cue was drawn in every image (all-zero masks and
/// classes `-1` when [`ShapesConfig::spurious`] is `None`).
///
/// ```
/// use cnn_explain::data::shapes::{generate_with_cues, CueInTest, ShapesConfig, SpuriousCue};
/// let cfg = ShapesConfig { image_size: 32, train: 10, val: 2, test: 4,
///     spurious: Some(SpuriousCue { fraction: 0.5, size: 4, test: CueInTest::Absent }),
///     ..Default::default() };
/// let (_splits, cues) = generate_with_cues(&cfg)?;
/// let with_cue = cues.train.classes.ge(0).sum(tch::Kind::Int64).int64_value(&[]);
/// assert_eq!(with_cue, 5);
/// assert_eq!(cues.test.masks.sum(tch::Kind::Float).double_value(&[]), 0.0);
/// # Ok::<(), cnn_explain::Error>(())
/// ```
pub fn generate_with_cues(cfg: &ShapesConfig) -> Result<(Splits, ShapesCues)> {
    cfg.validate()?;
    let mut master = Rng::new(cfg.seed);
    let mut rngs = [master.fork(), master.fork(), master.fork()];
    let [r_train, r_val, r_test] = &mut rngs;
    let (train, c_train) = generate_split(cfg, cfg.train, r_train, Some(CueInTest::Same))?;
    let (val, c_val) = generate_split(cfg, cfg.val, r_val, Some(CueInTest::Same))?;
    let test_mode = cfg.spurious.map(|c| c.test);
    let (test, c_test) = generate_split(cfg, cfg.test, r_test, test_mode)?;
    Ok((
        Splits { train, val, test },
        ShapesCues {
            train: c_train,
            val: c_val,
            test: c_test,
        },
    ))
}

/// The pixel rectangle `(x, y, width, height)` of the cue patch of `class` (x to the right, y down,
/// from the top-left corner). Classes 0..6 use the corners top-left, top-right, bottom-left,
/// bottom-right, top-left, top-right with one pixel of margin; [`cue_colour`] tells apart classes
/// that share a corner.
///
/// ```
/// use cnn_explain::data::shapes::{cue_region, ShapesConfig, SpuriousCue};
/// let cfg = ShapesConfig { spurious: Some(SpuriousCue { size: 6, ..Default::default() }), ..Default::default() };
/// assert_eq!(cue_region(&cfg, 0)?, (1, 1, 6, 6));
/// assert_eq!(cue_region(&cfg, 3)?, (57, 57, 6, 6));
/// assert!(cue_region(&cfg, 6).is_err());
/// # Ok::<(), cnn_explain::Error>(())
/// ```
pub fn cue_region(cfg: &ShapesConfig, class: i64) -> Result<(i64, i64, i64, i64)> {
    let cue = cfg.spurious.ok_or_else(|| {
        Error::invalid(
            "cfg.spurious",
            "the config has no spurious cue; set `spurious: Some(SpuriousCue { .. })`",
        )
    })?;
    check_class(class)?;
    Ok(cue_rect(cfg.image_size, cue.size, class))
}

/// The RGB colour (values in `[0, 1]`) of the cue patch of `class`.
///
/// ```
/// assert_eq!(cnn_explain::data::shapes::cue_colour(2)?, [0.0, 0.0, 1.0]);
/// # Ok::<(), cnn_explain::Error>(())
/// ```
pub fn cue_colour(class: i64) -> Result<[f32; 3]> {
    check_class(class)?;
    Ok(CUE_COLOURS[class as usize])
}

fn check_class(class: i64) -> Result<()> {
    if !(0..CLASS_NAMES.len() as i64).contains(&class) {
        return Err(Error::ClassOutOfRange {
            index: class,
            num_classes: CLASS_NAMES.len() as i64,
        });
    }
    Ok(())
}

fn cue_rect(image_size: i64, size: i64, class: i64) -> (i64, i64, i64, i64) {
    let far = image_size - 1 - size;
    let (x, y) = match class % 4 {
        0 => (1, 1),
        1 => (far, 1),
        2 => (1, far),
        _ => (far, far),
    };
    (x, y, size, size)
}

/// One split: balanced labels in random order, one forked generator per image.
fn generate_split(
    cfg: &ShapesConfig,
    n: usize,
    rng: &mut Rng,
    cue_mode: Option<CueInTest>,
) -> Result<(Dataset, CueLayout)> {
    let k = CLASS_NAMES.len();
    let mut labels: Vec<i64> = (0..n).map(|i| (i % k) as i64).collect();
    rng.fork().shuffle(&mut labels);
    // Cue decisions come from their own generator so that images are the same with and without it.
    let mut cue_rng = rng.fork();
    let seeds: Vec<u64> = (0..n).map(|_| rng.next_u64()).collect();
    let mut cue_classes = vec![-1i64; n];
    if let (Some(cue), Some(mode)) = (cfg.spurious, cue_mode) {
        if mode != CueInTest::Absent {
            let count = ((cue.fraction * n as f64).round() as usize).min(n);
            let chosen = cue_rng.permutation(n);
            for &i in &chosen[..count] {
                let i = i as usize;
                let label = labels[i];
                cue_classes[i] = match mode {
                    CueInTest::Shuffled => (label + 1 + cue_rng.below(k as u64 - 1) as i64) % k as i64,
                    _ => label,
                };
            }
        }
    }

    let s = cfg.image_size as usize;
    let plane = s * s;
    let mut images = vec![0f32; n * 3 * plane];
    let mut masks = vec![0f32; n * plane];
    let mut cue_masks = vec![0f32; if cfg.spurious.is_some() { n * plane } else { 0 }];

    let threads = std::thread::available_parallelism()
        .map(|t| t.get())
        .unwrap_or(1)
        .clamp(1, 4);
    let per = n.div_ceil(threads).max(1);
    std::thread::scope(|scope| {
        let mut img_rest = images.as_mut_slice();
        let mut mask_rest = masks.as_mut_slice();
        let mut start = 0;
        while start < n {
            let count = per.min(n - start);
            let (img_chunk, ir) = img_rest.split_at_mut(count * 3 * plane);
            let (mask_chunk, mr) = mask_rest.split_at_mut(count * plane);
            img_rest = ir;
            mask_rest = mr;
            let labels = &labels[start..start + count];
            let seeds = &seeds[start..start + count];
            let cues = &cue_classes[start..start + count];
            scope.spawn(move || {
                for j in 0..count {
                    let img = &mut img_chunk[j * 3 * plane..(j + 1) * 3 * plane];
                    let mask = &mut mask_chunk[j * plane..(j + 1) * plane];
                    let mut r = Rng::new(seeds[j]);
                    render(cfg, labels[j], cues[j], &mut r, img, mask);
                }
            });
            start += count;
        }
    });

    if let Some(cue) = cfg.spurious {
        for (i, &c) in cue_classes.iter().enumerate() {
            if c >= 0 {
                let (x0, y0, w, h) = cue_rect(cfg.image_size, cue.size, c);
                for y in y0..y0 + h {
                    for x in x0..x0 + w {
                        cue_masks[i * plane + y as usize * s + x as usize] = 1.0;
                    }
                }
            }
        }
    }

    let si = cfg.image_size;
    let n64 = n as i64;
    let images = Tensor::from_slice(&images).reshape([n64, 3, si, si]);
    let masks = Tensor::from_slice(&masks).reshape([n64, 1, si, si]);
    let labels_t = Tensor::from_slice(&labels);
    let names = CLASS_NAMES.iter().map(|c| c.to_string()).collect();
    let ds = Dataset::new(images, labels_t, names, Some(masks))?;
    let cue_masks = if cfg.spurious.is_some() {
        Tensor::from_slice(&cue_masks).reshape([n64, 1, si, si])
    } else {
        Tensor::zeros([n64, 1, si, si], (tch::Kind::Float, tch::Device::Cpu))
    };
    Ok((
        ds,
        CueLayout {
            masks: cue_masks,
            classes: Tensor::from_slice(&cue_classes),
        },
    ))
}

/// A point inside test for one shape kind in its unit frame (outer radius 1).
#[derive(Clone, Copy)]
enum Kind {
    Circle,
    Square,
    Triangle,
    Star,
    Cross,
    Ring,
}

const STAR_INNER: f64 = 0.42;
const RING_INNER: f64 = 0.55;
const SQUARE_HALF: f64 = 0.72;
const CROSS_HALF_WIDTH: f64 = 0.28;

impl Kind {
    fn from_label(label: i64) -> Kind {
        match label {
            0 => Kind::Circle,
            1 => Kind::Square,
            2 => Kind::Triangle,
            3 => Kind::Star,
            4 => Kind::Cross,
            _ => Kind::Ring,
        }
    }

    #[inline]
    fn inside(self, u: f64, v: f64) -> bool {
        let r2 = u * u + v * v;
        match self {
            Kind::Circle => r2 <= 1.0,
            Kind::Ring => (RING_INNER * RING_INNER..=1.0).contains(&r2),
            Kind::Square => u.abs() <= SQUARE_HALF && v.abs() <= SQUARE_HALF,
            Kind::Cross => {
                (u.abs() <= 1.0 && v.abs() <= CROSS_HALF_WIDTH)
                    || (u.abs() <= CROSS_HALF_WIDTH && v.abs() <= 1.0)
            }
            Kind::Triangle => {
                // Equilateral, circumradius 1, inradius 1/2: three half-planes n_k . p <= 1/2 with
                // normals at 90, 210 and 330 degrees (a vertex points along -v).
                let s3 = 3f64.sqrt() / 2.0;
                v <= 0.5 && (-s3 * u - 0.5 * v) <= 0.5 && (s3 * u - 0.5 * v) <= 0.5
            }
            Kind::Star => r2 <= 1.0 && inside_polygon(&star_vertices(), u, v),
        }
    }
}

/// The ten vertices of the star (outer radius 1, inner [`STAR_INNER`]), an outer vertex at angle 0.
fn star_vertices() -> [(f64, f64); 10] {
    use std::sync::OnceLock;
    static V: OnceLock<[(f64, f64); 10]> = OnceLock::new();
    *V.get_or_init(|| {
        let mut v = [(0.0, 0.0); 10];
        for (i, p) in v.iter_mut().enumerate() {
            let r = if i % 2 == 0 { 1.0 } else { STAR_INNER };
            let a = i as f64 * PI / 5.0;
            *p = (r * a.cos(), r * a.sin());
        }
        v
    })
}

/// Crossing-number test of a point against a closed polygon.
#[inline]
fn inside_polygon(poly: &[(f64, f64)], x: f64, y: f64) -> bool {
    let mut inside = false;
    let mut j = poly.len() - 1;
    for i in 0..poly.len() {
        let (xi, yi) = poly[i];
        let (xj, yj) = poly[j];
        if (yi > y) != (yj > y) && x < (xj - xi) * (y - yi) / (yj - yi) + xi {
            inside = !inside;
        }
        j = i;
    }
    inside
}

/// Draws one image (`img`: `[3, S, S]` planes, `mask`: `[S, S]`).
fn render(cfg: &ShapesConfig, label: i64, cue_class: i64, rng: &mut Rng, img: &mut [f32], mask: &mut [f32]) {
    let s = cfg.image_size as usize;
    let sf = s as f64;
    let plane = s * s;

    // Background: base colour + gradient + waves, tinted per channel.
    let base = [rng.range(0.1, 0.9), rng.range(0.1, 0.9), rng.range(0.1, 0.9)];
    let tint = [rng.range(0.5, 1.0), rng.range(0.5, 1.0), rng.range(0.5, 1.0)];
    let mut field = vec![0f64; plane];
    let (gx, gy) = (
        rng.range(-cfg.texture, cfg.texture),
        rng.range(-cfg.texture, cfg.texture),
    );
    for y in 0..s {
        for x in 0..s {
            field[y * s + x] = gx * (x as f64 / sf - 0.5) + gy * (y as f64 / sf - 0.5);
        }
    }
    let waves = 3;
    let mut cx_tab = vec![(0f64, 0f64); s];
    let mut cy_tab = vec![(0f64, 0f64); s];
    for _ in 0..waves {
        let amp = cfg.texture * rng.range(0.3, 1.0) / waves as f64 * 2.0;
        let wavelength = rng.range(3.0, 0.4 * sf);
        let theta = rng.range(0.0, PI);
        let phase = rng.range(0.0, 2.0 * PI);
        let k = 2.0 * PI / wavelength;
        let (a, b) = (k * theta.cos(), k * theta.sin());
        // sin(a x + b y + p) = sin(a x) cos(b y + p) + cos(a x) sin(b y + p): O(S) trigonometry.
        for (i, (cx, cy)) in cx_tab.iter_mut().zip(cy_tab.iter_mut()).enumerate() {
            let t = i as f64;
            *cx = (a * t).sin_cos();
            *cy = (b * t + phase).sin_cos();
        }
        for y in 0..s {
            let (sy, cyv) = cy_tab[y];
            for x in 0..s {
                let (sx, cxv) = cx_tab[x];
                field[y * s + x] += amp * (sx * cyv + cxv * sy);
            }
        }
    }
    for c in 0..3 {
        let p = &mut img[c * plane..(c + 1) * plane];
        for (o, f) in p.iter_mut().zip(&field) {
            *o = (base[c] + tint[c] * f) as f32;
        }
    }

    let ss = cfg.supersample;
    let mut cov = vec![0f32; plane];
    let mut b: PixBox = (0, 0, 0, 0);

    // Distractors, below the shape.
    let count = rng.below(cfg.distractors as u64 + 1);
    for _ in 0..count {
        let colour = [rng.uniform(), rng.uniform(), rng.uniform()];
        if rng.bernoulli(0.5) {
            let r = rng.range(0.025, 0.06) * sf;
            let (cx, cy) = (rng.range(0.0, sf), rng.range(0.0, sf));
            b = coverage(&mut cov, s, ss, b, (cx - r, cy - r, cx + r, cy + r), |x, y| {
                (x - cx) * (x - cx) + (y - cy) * (y - cy) <= r * r
            });
        } else {
            let len = rng.range(0.15, 0.4) * sf;
            let ang = rng.range(0.0, 2.0 * PI);
            let (x0, y0) = (rng.range(0.0, sf), rng.range(0.0, sf));
            let (dx, dy) = (len * ang.cos(), len * ang.sin());
            let half = rng.range(0.5, 1.0);
            let bbox = (
                x0.min(x0 + dx) - half,
                y0.min(y0 + dy) - half,
                x0.max(x0 + dx) + half,
                y0.max(y0 + dy) + half,
            );
            b = coverage(&mut cov, s, ss, b, bbox, |x, y| {
                let t = (((x - x0) * dx + (y - y0) * dy) / (len * len)).clamp(0.0, 1.0);
                let (ex, ey) = (x - x0 - t * dx, y - y0 - t * dy);
                ex * ex + ey * ey <= half * half
            });
        }
        blend(img, &cov, colour, s, b);
    }

    // The shape.
    let kind = Kind::from_label(label);
    let r = rng.range(cfg.scale.0, cfg.scale.1) * sf;
    let margin = 1.05 * r + 1.0;
    let (cx, cy) = if sf > 2.0 * margin {
        (rng.range(margin, sf - margin), rng.range(margin, sf - margin))
    } else {
        (sf / 2.0, sf / 2.0)
    };
    let angle = rng.range(0.0, 2.0 * PI);
    let colour = shape_colour(rng, base, cfg.min_contrast);
    let (sn, cs) = angle.sin_cos();
    let bbox = (cx - margin, cy - margin, cx + margin, cy + margin);
    b = coverage(&mut cov, s, ss, b, bbox, |x, y| {
        let (dx, dy) = ((x - cx) / r, (y - cy) / r);
        kind.inside(cs * dx + sn * dy, -sn * dx + cs * dy)
    });
    blend(img, &cov, colour, s, b);
    for (m, c) in mask.iter_mut().zip(&cov) {
        *m = if *c >= 0.5 { 1.0 } else { 0.0 };
    }

    // Noise: triangular on [-a, a] with a = sqrt(6) * std, from two 32-bit halves of one draw.
    if cfg.noise > 0.0 {
        let a = (6f64.sqrt() * cfg.noise) as f32;
        let scale = 1.0 / 4_294_967_296.0f32;
        for p in img.iter_mut() {
            let bits = rng.next_u64();
            let u1 = (bits >> 32) as f32 * scale;
            let u2 = (bits & 0xFFFF_FFFF) as f32 * scale;
            *p += a * (u1 + u2 - 1.0);
        }
    }
    for p in img.iter_mut() {
        *p = p.clamp(0.0, 1.0);
    }

    // The cue patch, crisp and on top of everything.
    if let (Some(cue), true) = (cfg.spurious, cue_class >= 0) {
        let (x0, y0, w, h) = cue_rect(cfg.image_size, cue.size, cue_class);
        let colour = CUE_COLOURS[cue_class as usize % CUE_COLOURS.len()];
        for y in y0 as usize..(y0 + h) as usize {
            for x in x0 as usize..(x0 + w) as usize {
                for (c, &v) in colour.iter().enumerate() {
                    img[c * plane + y * s + x] = v;
                }
                mask[y * s + x] = 0.0;
            }
        }
    }
}

/// A colour at least `min_contrast` away from `base` (rejection sampling; the farthest of 64
/// candidates if none is far enough).
fn shape_colour(rng: &mut Rng, base: [f64; 3], min_contrast: f64) -> [f64; 3] {
    let mut best = [0.0; 3];
    let mut best_d = -1.0;
    for _ in 0..64 {
        let c = [rng.uniform(), rng.uniform(), rng.uniform()];
        let d = ((c[0] - base[0]).powi(2) + (c[1] - base[1]).powi(2) + (c[2] - base[2]).powi(2)).sqrt();
        if d >= min_contrast {
            return c;
        }
        if d > best_d {
            best_d = d;
            best = c;
        }
    }
    best
}

/// Pixel box `x0..x1, y0..y1`.
type PixBox = (usize, usize, usize, usize);

/// Fills `cov` with the covered fraction of every pixel (`ss x ss` samples) for `inside`, tested at
/// pixel coordinates (pixel `(i, j)` spans `[i, i+1) x [j, j+1)`), within `bbox` (x0, y0, x1, y1);
/// pixels outside the box are 0 (`cov` must be 0 outside the box `prev` of the previous call).
/// Returns the pixel box it filled.
fn coverage(
    cov: &mut [f32],
    s: usize,
    ss: usize,
    prev: PixBox,
    bbox: (f64, f64, f64, f64),
    inside: impl Fn(f64, f64) -> bool,
) -> PixBox {
    for y in prev.2..prev.3 {
        cov[y * s + prev.0..y * s + prev.1]
            .iter_mut()
            .for_each(|c| *c = 0.0);
    }
    let clampi = |v: f64| (v.max(0.0) as usize).min(s);
    let (x0, y0) = (clampi(bbox.0.floor()), clampi(bbox.1.floor()));
    let (x1, y1) = (clampi(bbox.2.ceil() + 1.0), clampi(bbox.3.ceil() + 1.0));
    let step = 1.0 / ss as f64;
    let weight = 1.0 / (ss * ss) as f32;
    for py in y0..y1 {
        for px in x0..x1 {
            let mut hits = 0u32;
            for sy in 0..ss {
                let y = py as f64 + (sy as f64 + 0.5) * step;
                for sx in 0..ss {
                    let x = px as f64 + (sx as f64 + 0.5) * step;
                    if inside(x, y) {
                        hits += 1;
                    }
                }
            }
            cov[py * s + px] = hits as f32 * weight;
        }
    }
    (x0, x1, y0, y1)
}

/// Paints `colour` over `img` (`[3, S, S]`) with opacity `cov` inside `b`.
fn blend(img: &mut [f32], cov: &[f32], colour: [f64; 3], s: usize, b: PixBox) {
    let plane = s * s;
    for (c, &col) in colour.iter().enumerate() {
        let col = col as f32;
        for y in b.2..b.3 {
            let row = c * plane + y * s;
            let p = &mut img[row + b.0..row + b.1];
            for (o, &a) in p.iter_mut().zip(&cov[y * s + b.0..y * s + b.1]) {
                if a > 0.0 {
                    *o = *o * (1.0 - a) + col * a;
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tch::Kind as TKind;

    fn small() -> ShapesConfig {
        ShapesConfig {
            image_size: 32,
            train: 60,
            val: 12,
            test: 24,
            ..Default::default()
        }
    }

    fn same(a: &Tensor, b: &Tensor) -> bool {
        a.size() == b.size() && a.equal(b)
    }

    #[test]
    fn same_seed_gives_bit_identical_tensors_other_seed_differs() {
        let a = generate(&small()).unwrap();
        let b = generate(&small()).unwrap();
        for (x, y) in [(&a.train, &b.train), (&a.val, &b.val), (&a.test, &b.test)] {
            assert!(same(&x.images, &y.images));
            assert!(same(&x.labels, &y.labels));
            assert!(same(x.masks.as_ref().unwrap(), y.masks.as_ref().unwrap()));
        }
        let c = generate(&ShapesConfig { seed: 1, ..small() }).unwrap();
        assert!(!same(&a.train.images, &c.train.images));
        // Splits are independent streams: the test set does not depend on the training size.
        let d = generate(&ShapesConfig { train: 30, ..small() }).unwrap();
        assert!(same(&a.test.images, &d.test.images));
    }

    #[test]
    fn shapes_values_labels_and_names() {
        let s = generate(&small()).unwrap();
        assert_eq!(s.train.class_names, CLASS_NAMES.to_vec());
        assert_eq!(s.train.images.size(), [60, 3, 32, 32]);
        assert_eq!(s.train.class_counts().unwrap(), vec![10; 6]);
        assert_eq!(s.test.class_counts().unwrap(), vec![4; 6]);
        assert!(s.train.images.min().double_value(&[]) >= 0.0);
        assert!(s.train.images.max().double_value(&[]) <= 1.0);
        let m = s.train.masks.as_ref().unwrap();
        let uniq = m.ne(0.0).logical_and(&m.ne(1.0)).any().int64_value(&[]);
        assert_eq!(uniq, 0, "masks are 0/1");
        // Every image has a visible object of a sensible size.
        let area = m.sum_dim_intlist([1, 2, 3].as_slice(), false, TKind::Float);
        let (lo, hi) = (area.min().double_value(&[]), area.max().double_value(&[]));
        assert!(lo >= 15.0 && hi <= 0.5 * 32.0 * 32.0, "areas {lo}..{hi}");
    }

    /// With no texture, noise or distractors, the image is the background colour off the mask and
    /// the shape colour on it, and the mask's area matches the shape's analytic area.
    #[test]
    fn mask_covers_the_drawn_shape() {
        let cfg = ShapesConfig {
            image_size: 64,
            train: 12,
            val: 0,
            test: 0,
            texture: 0.0,
            noise: 0.0,
            distractors: 0,
            supersample: 4,
            min_contrast: 0.5,
            scale: (0.3, 0.3),
            ..Default::default()
        };
        let s = generate(&cfg).unwrap();
        let r = 0.3 * 64.0;
        let areas = [
            PI,                                                                       // circle
            4.0 * SQUARE_HALF * SQUARE_HALF,                                          // square
            3.0 * 3f64.sqrt() / 4.0,                                                  // triangle
            5.0 * STAR_INNER * (2.0 * PI / 5.0 / 2.0).sin(), // star: 10 triangles 1 x inner
            4.0 * CROSS_HALF_WIDTH * 2.0 - 4.0 * CROSS_HALF_WIDTH * CROSS_HALF_WIDTH, // cross
            PI * (1.0 - RING_INNER * RING_INNER),            // ring
        ];
        for i in 0..12 {
            let img = s.train.images.get(i);
            let m = s.train.masks.as_ref().unwrap().get(i);
            let label = s.train.labels.int64_value(&[i]);
            let area = m.sum(TKind::Float).double_value(&[]);
            let want = areas[label as usize] * r * r;
            assert!(
                (area - want).abs() / want < 0.04,
                "class {label}: mask area {area}, analytic {want}"
            );
            // Interior pixels (mask eroded by one pixel) all share one colour; so do pixels well
            // outside (mask dilated by one pixel), and the two colours differ.
            let eroded = m.neg().max_pool2d([3, 3], [1, 1], [1, 1], [1, 1], false).neg();
            let dilated = m.max_pool2d([3, 3], [1, 1], [1, 1], [1, 1], false);
            let inner = img
                .masked_select(&eroded.gt(0.5).expand([3, 64, 64], false))
                .reshape([3, -1]);
            let outer = img
                .masked_select(&dilated.lt(0.5).expand([3, 64, 64], false))
                .reshape([3, -1]);
            let spread = |t: &Tensor| {
                (t.amax([1].as_slice(), false) - t.amin([1].as_slice(), false))
                    .max()
                    .double_value(&[])
            };
            assert!(spread(&inner) < 1e-6, "shape not uniform, class {label}");
            assert!(spread(&outer) < 1e-6, "background not uniform");
            let d = (inner.mean_dim([1].as_slice(), false, TKind::Float)
                - outer.mean_dim([1].as_slice(), false, TKind::Float))
            .square()
            .sum(TKind::Float)
            .sqrt()
            .double_value(&[]);
            assert!(d >= 0.5 - 1e-6, "contrast {d}");
        }
    }

    #[test]
    fn inside_tests_match_geometry() {
        assert!(Kind::Star.inside(0.95, 0.0)); // outer vertex
        assert!(!Kind::Star.inside(0.6 * (PI / 5.0).cos(), 0.6 * (PI / 5.0).sin())); // notch
        assert!(Kind::Star.inside(0.4 * (PI / 5.0).cos(), 0.4 * (PI / 5.0).sin()));
        assert!(Kind::Triangle.inside(0.0, -0.95)); // vertex at -v
        assert!(!Kind::Triangle.inside(0.0, 0.6)); // beyond the base
        assert!(!Kind::Ring.inside(0.0, 0.0));
        assert!(Kind::Ring.inside(0.8, 0.0));
        assert!(!Kind::Cross.inside(0.5, 0.5));
        assert!(Kind::Cross.inside(0.9, 0.1));
        assert!(Kind::Square.inside(0.7, -0.7) && !Kind::Square.inside(0.75, 0.0));
    }

    #[test]
    fn spurious_cue_is_drawn_where_recorded_and_nothing_else_changes() {
        let cue = SpuriousCue {
            fraction: 0.5,
            size: 4,
            test: CueInTest::Shuffled,
        };
        let cfg = ShapesConfig {
            spurious: Some(cue),
            ..small()
        };
        let (with, cues) = generate_with_cues(&cfg).unwrap();
        let without = generate(&small()).unwrap();
        assert!(same(&with.train.labels, &without.train.labels));
        for (ds, plain, layout, n, shuffled) in [
            (&with.train, &without.train, &cues.train, 60, false),
            (&with.test, &without.test, &cues.test, 24, true),
        ] {
            let classes = Vec::<i64>::try_from(&layout.classes).unwrap();
            assert_eq!(classes.iter().filter(|&&c| c >= 0).count(), n / 2);
            let cm = &layout.masks;
            // Outside the cue, images are identical to the cue-free generation.
            let off = cm.lt(0.5).expand([n as i64, 3, 32, 32], false);
            assert!(ds
                .images
                .masked_select(&off)
                .equal(&plain.images.masked_select(&off)));
            for (i, &c) in classes.iter().enumerate() {
                let label = ds.labels.int64_value(&[i as i64]);
                let area = cm.get(i as i64).sum(TKind::Float).double_value(&[]);
                if c < 0 {
                    assert_eq!(area, 0.0);
                    continue;
                }
                if shuffled {
                    assert_ne!(c, label);
                } else {
                    assert_eq!(c, label);
                }
                assert_eq!(area, 16.0);
                let (x, y, _, _) = cue_region(&cfg, c).unwrap();
                let col = cue_colour(c).unwrap();
                for ch in 0..3 {
                    let v = ds.images.double_value(&[i as i64, ch, y + 1, x + 2]);
                    assert_eq!(v as f32, col[ch as usize]);
                }
                assert_eq!(cm.double_value(&[i as i64, 0, y + 3, x + 3]), 1.0);
                // The object mask excludes the cue.
                let om = ds.masks.as_ref().unwrap().get(i as i64);
                assert_eq!((om * cm.get(i as i64)).sum(TKind::Float).double_value(&[]), 0.0);
            }
        }
        let absent = ShapesConfig {
            spurious: Some(SpuriousCue {
                test: CueInTest::Absent,
                ..cue
            }),
            ..small()
        };
        let (a, ac) = generate_with_cues(&absent).unwrap();
        assert!(same(&a.test.images, &without.test.images));
        assert_eq!(ac.test.classes.max().int64_value(&[]), -1);
        assert!(
            ac.val.classes.max().int64_value(&[]) >= 0,
            "validation has the cue as training"
        );
    }

    #[test]
    fn bad_configs_are_errors() {
        let bad = [
            ShapesConfig {
                image_size: 4,
                ..small()
            },
            ShapesConfig {
                scale: (0.3, 0.2),
                ..small()
            },
            ShapesConfig {
                scale: (0.0, 0.2),
                ..small()
            },
            ShapesConfig {
                noise: f64::NAN,
                ..small()
            },
            ShapesConfig {
                supersample: 0,
                ..small()
            },
            ShapesConfig {
                min_contrast: 2.0,
                ..small()
            },
            ShapesConfig {
                spurious: Some(SpuriousCue {
                    fraction: 1.5,
                    ..Default::default()
                }),
                ..small()
            },
            ShapesConfig {
                spurious: Some(SpuriousCue {
                    size: 9,
                    ..Default::default()
                }),
                ..small()
            },
        ];
        for cfg in bad {
            assert!(generate(&cfg).is_err(), "{cfg:?}");
        }
        assert!(cue_region(&small(), 0).is_err(), "no cue configured");
        assert!(cue_colour(-1).is_err());
        // Empty splits are allowed.
        let e = generate(&ShapesConfig {
            train: 0,
            val: 0,
            test: 0,
            ..small()
        })
        .unwrap();
        assert!(e.train.is_empty());
    }

    /// Run by hand (`cargo test --release --lib shapes -- --ignored`): prints the time for the
    /// default 4,500 images.
    #[test]
    #[ignore]
    fn default_generation_is_fast() {
        let t = std::time::Instant::now();
        let s = generate(&ShapesConfig::default()).unwrap();
        let secs = t.elapsed().as_secs_f64();
        eprintln!("default shapes dataset (4,500 images): {secs:.2} s");
        assert_eq!(s.train.len() + s.val.len() + s.test.len(), 4500);
        assert!(secs < 6.0, "took {secs} s");
    }
}
