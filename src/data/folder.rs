//! Image folders with one sub-folder per class (JPEG and PNG).
//!
//! The layout of ImageNet-style training folders, which torchvision reads with `ImageFolder`:
//!
//! ```text
//! root/<class name>/<any name>.jpg
//! ```
//!
//! - Intel Image Classification: pass `seg_train` (or `seg_test`) as the root; classes `buildings`,
//!   `forest`, `glacier`, `mountain`, `sea`, `street`.
//! - CUB-200-2011: pass `CUB_200_2011/images`; the class names are the folder names as they are
//!   (`001.Black_footed_Albatross`, ...).
//! - ImageNet-style: pass `train` or `val` (sub-folders named by WordNet id, files `*.JPEG`).
//!
//! Class names are the sub-folder names sorted by byte order (as torchvision does), labels their
//! positions in that list; files in a class are read in sorted order. Hidden entries (names
//! starting with `.`) are skipped, as are files whose extension is not in
//! [`FolderConfig::extensions`] (compared without regard to case).
//!
//! **Conversion.** Every image becomes 8-bit RGB as PIL's `convert("RGB")` does it: grayscale is
//! copied to the three channels, an alpha channel is dropped (colour values are kept as stored, not
//! blended with a background), 16-bit images are scaled to 8 bits. Then the shorter side is resized
//! to [`FolderConfig::resize`] (bilinear, `image`'s `Triangle` filter) and the centre
//! `size x size` square is cut out, so images of mixed sizes and aspect ratios become one batch.
//! Pixels become floats `byte / 255`.
//!
//! **Errors.** A missing root, a root without class folders, a class folder without images and a
//! file that cannot be decoded (corrupt or truncated) are [`Error::Data`] naming the folder or file.

use super::Dataset;
use crate::{Error, Result};
use image::imageops::FilterType;
use image::RgbImage;
use std::path::{Path, PathBuf};
use tch::{Kind, Tensor};

/// How to read an image folder.
#[derive(Debug, Clone, PartialEq)]
pub struct FolderConfig {
    /// Side of the square output images in pixels (the centre crop).
    pub size: u32,
    /// Length of the shorter side after resizing, before the crop; `None` resizes to `size`
    /// (torchvision's classic evaluation transform is `resize: Some(256)` with `size: 224`).
    pub resize: Option<u32>,
    /// File extensions to read, without the dot, compared without regard to case.
    pub extensions: Vec<String>,
    /// Read at most this many images per class (the first in sorted order); `None` reads all.
    pub max_per_class: Option<usize>,
}

impl Default for FolderConfig {
    fn default() -> Self {
        FolderConfig {
            size: 224,
            resize: None,
            extensions: vec!["jpg".into(), "jpeg".into(), "png".into()],
            max_per_class: None,
        }
    }
}

/// The files of an image folder and their labels, before decoding.
#[derive(Debug, Clone, PartialEq)]
pub struct FolderIndex {
    /// Sorted sub-folder names.
    pub class_names: Vec<String>,
    /// Every image file with its label (index into `class_names`), class by class, sorted.
    pub files: Vec<(PathBuf, i64)>,
}

/// Lists the classes and image files under `root` without decoding them.
///
/// ```
/// # let dir = tempfile::tempdir().unwrap();
/// # for c in ["cat", "dog"] { std::fs::create_dir(dir.path().join(c)).unwrap();
/// #   image::RgbImage::new(4, 4).save(dir.path().join(c).join("a.png")).unwrap(); }
/// use cnn_explain::data::folder::{index_folder, FolderConfig};
/// let index = index_folder(dir.path(), &FolderConfig::default())?;
/// assert_eq!(index.class_names, ["cat", "dog"]);
/// assert_eq!(index.files[1].1, 1);
/// # Ok::<(), cnn_explain::Error>(())
/// ```
pub fn index_folder(root: impl AsRef<Path>, cfg: &FolderConfig) -> Result<FolderIndex> {
    let root = root.as_ref();
    if !root.is_dir() {
        return Err(Error::data(
            root,
            "folder not found; expected a folder with one sub-folder per class",
        ));
    }
    let mut classes: Vec<(String, PathBuf)> = Vec::new();
    for entry in std::fs::read_dir(root).map_err(|e| Error::io(root, e))? {
        let entry = entry.map_err(|e| Error::io(root, e))?;
        let path = entry.path();
        let name = entry.file_name().to_string_lossy().into_owned();
        if path.is_dir() && !name.starts_with('.') {
            classes.push((name, path));
        }
    }
    if classes.is_empty() {
        return Err(Error::data(
            root,
            "no class folders found; expected one sub-folder per class holding the images",
        ));
    }
    classes.sort();
    let exts: Vec<String> = cfg.extensions.iter().map(|e| e.to_lowercase()).collect();
    let mut files = Vec::new();
    for (label, (_, dir)) in classes.iter().enumerate() {
        let mut found: Vec<PathBuf> = Vec::new();
        for entry in std::fs::read_dir(dir).map_err(|e| Error::io(dir, e))? {
            let entry = entry.map_err(|e| Error::io(dir, e))?;
            let path = entry.path();
            let hidden = entry.file_name().to_string_lossy().starts_with('.');
            let ext_ok = path
                .extension()
                .map(|e| exts.contains(&e.to_string_lossy().to_lowercase()))
                .unwrap_or(false);
            if !hidden && ext_ok && path.is_file() {
                found.push(path);
            }
        }
        if found.is_empty() {
            return Err(Error::data(
                dir,
                format!(
                    "class folder has no images with extension {}",
                    cfg.extensions.join(", ")
                ),
            ));
        }
        found.sort();
        if let Some(max) = cfg.max_per_class {
            found.truncate(max);
        }
        files.extend(found.into_iter().map(|p| (p, label as i64)));
    }
    Ok(FolderIndex {
        class_names: classes.into_iter().map(|(n, _)| n).collect(),
        files,
    })
}

/// Reads every image under `root` (see the module docs) into a [`Dataset`] of
/// `[N, 3, size, size]` images.
///
/// ```
/// # let dir = tempfile::tempdir().unwrap();
/// # for c in ["forest", "sea"] { std::fs::create_dir(dir.path().join(c)).unwrap();
/// #   image::RgbImage::new(40, 30).save(dir.path().join(c).join("1.png")).unwrap(); }
/// use cnn_explain::data::folder::{load_folder, FolderConfig};
/// let ds = load_folder(dir.path(), &FolderConfig { size: 16, ..Default::default() })?;
/// assert_eq!(ds.images.size(), [2, 3, 16, 16]);
/// assert_eq!(ds.class_names, ["forest", "sea"]);
/// # Ok::<(), cnn_explain::Error>(())
/// ```
pub fn load_folder(root: impl AsRef<Path>, cfg: &FolderConfig) -> Result<Dataset> {
    let index = index_folder(root, cfg)?;
    load_index(&index, cfg)
}

/// Decodes the files of an index (see [`index_folder`]) into a [`Dataset`].
pub fn load_index(index: &FolderIndex, cfg: &FolderConfig) -> Result<Dataset> {
    validate(cfg)?;
    let s = cfg.size as usize;
    let mut pixels: Vec<u8> = Vec::with_capacity(index.files.len() * 3 * s * s);
    let mut labels = Vec::with_capacity(index.files.len());
    for (path, label) in &index.files {
        let img = load_image(path, cfg)?;
        // HWC -> CHW.
        let raw = img.as_raw();
        for c in 0..3 {
            pixels.extend(raw.iter().skip(c).step_by(3));
        }
        labels.push(*label);
    }
    let n = labels.len() as i64;
    let side = cfg.size as i64;
    let images = Tensor::from_slice(&pixels)
        .reshape([n, 3, side, side])
        .to_kind(Kind::Float)
        / 255.0;
    Dataset::new(
        images,
        Tensor::from_slice(&labels),
        index.class_names.clone(),
        None,
    )
}

/// Reads one image file, converts it to RGB and resizes and centre-crops it as the module docs say.
///
/// ```
/// # let dir = tempfile::tempdir().unwrap();
/// # let path = dir.path().join("gray.png");
/// # image::GrayImage::from_pixel(20, 10, image::Luma([200])).save(&path).unwrap();
/// use cnn_explain::data::folder::{load_image, FolderConfig};
/// let img = load_image(&path, &FolderConfig { size: 8, ..Default::default() })?;
/// assert_eq!(img.dimensions(), (8, 8));
/// assert_eq!(img.get_pixel(3, 3).0, [200, 200, 200]);
/// # Ok::<(), cnn_explain::Error>(())
/// ```
pub fn load_image(path: impl AsRef<Path>, cfg: &FolderConfig) -> Result<RgbImage> {
    validate(cfg)?;
    let path = path.as_ref();
    let reader = image::ImageReader::open(path)
        .map_err(|e| Error::io(path, e))?
        .with_guessed_format()
        .map_err(|e| Error::io(path, e))?;
    let img = reader.decode().map_err(|e| {
        Error::data(
            path,
            format!("cannot decode image (corrupt, truncated or not JPEG/PNG): {e}"),
        )
    })?;
    let (w, h) = (img.width(), img.height());
    if w == 0 || h == 0 {
        return Err(Error::data(path, "image has no pixels"));
    }
    let rgb = img.to_rgb8();
    Ok(resize_crop(&rgb, cfg.resize.unwrap_or(cfg.size), cfg.size))
}

fn validate(cfg: &FolderConfig) -> Result<()> {
    if cfg.size == 0 {
        return Err(Error::invalid("size", "must be at least 1 pixel"));
    }
    if let Some(r) = cfg.resize {
        if r < cfg.size {
            return Err(Error::invalid(
                "resize",
                format!(
                    "shorter side {r} is smaller than the crop size {}; use at least {}",
                    cfg.size, cfg.size
                ),
            ));
        }
    }
    Ok(())
}

/// Resizes the shorter side to `short` (keeping the aspect ratio), then cuts the centre
/// `size x size` square.
fn resize_crop(img: &RgbImage, short: u32, size: u32) -> RgbImage {
    let (w, h) = img.dimensions();
    let (nw, nh) = if w <= h {
        (
            short,
            ((h as f64 * short as f64 / w as f64).round() as u32).max(short),
        )
    } else {
        (
            ((w as f64 * short as f64 / h as f64).round() as u32).max(short),
            short,
        )
    };
    let resized = if (nw, nh) == (w, h) {
        img.clone()
    } else {
        image::imageops::resize(img, nw, nh, FilterType::Triangle)
    };
    let (x, y) = ((nw - size) / 2, (nh - size) / 2);
    image::imageops::crop_imm(&resized, x, y, size, size).to_image()
}

#[cfg(test)]
mod tests {
    use super::*;
    use image::{GrayImage, Luma, Rgb, Rgba, RgbaImage};

    fn cfg(size: u32) -> FolderConfig {
        FolderConfig {
            size,
            ..Default::default()
        }
    }

    #[test]
    fn reads_png_and_jpeg_classes_sorted_with_conversions() {
        let dir = tempfile::tempdir().unwrap();
        // CUB-like names; created out of order.
        for c in ["002.Laysan_Albatross", "001.Black_footed_Albatross", "003.Sooty"] {
            std::fs::create_dir(dir.path().join(c)).unwrap();
        }
        let a = dir.path().join("001.Black_footed_Albatross");
        // Left half red, right half blue, 8x4: the centre crop keeps both halves.
        let img = RgbImage::from_fn(
            8,
            4,
            |x, _| if x < 4 { Rgb([255, 0, 0]) } else { Rgb([0, 0, 255]) },
        );
        img.save(a.join("b.png")).unwrap();
        RgbImage::from_pixel(4, 4, Rgb([10, 20, 30]))
            .save(a.join("a.PNG"))
            .unwrap();
        std::fs::write(a.join("notes.txt"), "ignored").unwrap();
        std::fs::write(a.join(".hidden.png"), "ignored").unwrap();
        let b = dir.path().join("002.Laysan_Albatross");
        GrayImage::from_pixel(6, 9, Luma([100]))
            .save(b.join("g.png"))
            .unwrap();
        let c = dir.path().join("003.Sooty");
        RgbaImage::from_pixel(4, 4, Rgba([50, 60, 70, 0]))
            .save(c.join("t.png"))
            .unwrap();
        RgbImage::from_pixel(16, 12, Rgb([0, 200, 0]))
            .save(c.join("u.jpg"))
            .unwrap();

        let ds = load_folder(dir.path(), &cfg(4)).unwrap();
        assert_eq!(
            ds.class_names,
            ["001.Black_footed_Albatross", "002.Laysan_Albatross", "003.Sooty"]
        );
        assert_eq!(Vec::<i64>::try_from(&ds.labels).unwrap(), vec![0, 0, 1, 2, 2]);
        assert_eq!(ds.images.size(), [5, 3, 4, 4]);
        let px = |i: i64, c: i64, y: i64, x: i64| (ds.images.double_value(&[i, c, y, x]) * 255.0).round();
        // a.PNG (sorted first; case-insensitive extension): exact colour.
        assert_eq!(
            (px(0, 0, 2, 2), px(0, 1, 2, 2), px(0, 2, 2, 2)),
            (10.0, 20.0, 30.0)
        );
        // b.png 8x4 -> shorter side already 4, crop x 2..6: left column red, right column blue.
        assert_eq!((px(1, 0, 0, 0), px(1, 2, 0, 0)), (255.0, 0.0));
        assert_eq!((px(1, 0, 3, 3), px(1, 2, 3, 3)), (0.0, 255.0));
        // Grayscale copied to three channels.
        for ch in 0..3 {
            assert_eq!(px(2, ch, 1, 1), 100.0);
        }
        // RGBA: alpha dropped, colour kept.
        assert_eq!(
            (px(3, 0, 0, 0), px(3, 1, 0, 0), px(3, 2, 0, 0)),
            (50.0, 60.0, 70.0)
        );
        // JPEG, 16x12 resized to 5x4 then cropped: green within JPEG error.
        assert!((px(4, 1, 2, 2) - 200.0).abs() <= 3.0 && px(4, 0, 2, 2) <= 3.0);

        let limited = load_folder(
            dir.path(),
            &FolderConfig {
                max_per_class: Some(1),
                ..cfg(4)
            },
        )
        .unwrap();
        assert_eq!(limited.len(), 3);
    }

    #[test]
    fn resize_shorter_side_then_centre_crop() {
        // 20 x 10, columns coloured by x: resize to shorter side 5 -> 10 x 5, crop x 2..7.
        let img = RgbImage::from_fn(20, 10, |x, _| Rgb([(x * 10) as u8, 0, 0]));
        let out = resize_crop(&img, 5, 5);
        assert_eq!(out.dimensions(), (5, 5));
        // Resized column j averages source columns 2j and 2j+1 -> 10 * (4j + 1) / 2 = 20 j + 5.
        for j in 0..5u32 {
            let want = 20 * (j + 2) + 5;
            let got = out.get_pixel(j, 2).0[0] as i32;
            assert!((got - want as i32).abs() <= 1, "column {j}: {got} vs {want}");
        }
        // Resize 6 then crop 4 from a tall image.
        let tall = RgbImage::from_pixel(6, 12, Rgb([1, 2, 3]));
        assert_eq!(resize_crop(&tall, 6, 4).dimensions(), (4, 4));
        assert!(load_image(
            "x.png",
            &FolderConfig {
                resize: Some(3),
                ..cfg(4)
            }
        )
        .is_err());
    }

    #[test]
    fn bad_folders_and_files_are_errors_naming_them() {
        let dir = tempfile::tempdir().unwrap();
        let msg = |r: Result<Dataset>| r.unwrap_err().to_string();
        let m = msg(load_folder(dir.path().join("missing"), &cfg(4)));
        assert!(m.contains("missing") && m.contains("not found"), "{m}");
        // No class folders.
        std::fs::write(dir.path().join("loose.png"), b"x").unwrap();
        let m = msg(load_folder(dir.path(), &cfg(4)));
        assert!(m.contains("no class folders"), "{m}");
        // Empty class folder.
        std::fs::create_dir(dir.path().join("cats")).unwrap();
        std::fs::create_dir(dir.path().join("dogs")).unwrap();
        RgbImage::new(4, 4).save(dir.path().join("cats/1.png")).unwrap();
        let m = msg(load_folder(dir.path(), &cfg(4)));
        assert!(m.contains("dogs") && m.contains("no images"), "{m}");
        // Corrupt PNG (garbage) and truncated JPEG.
        std::fs::write(dir.path().join("dogs/bad.png"), b"not an image at all").unwrap();
        let m = msg(load_folder(dir.path(), &cfg(4)));
        assert!(m.contains("bad.png") && m.contains("cannot decode"), "{m}");
        std::fs::remove_file(dir.path().join("dogs/bad.png")).unwrap();
        let jpg = dir.path().join("dogs/cut.jpg");
        RgbImage::from_pixel(32, 32, Rgb([9, 9, 9])).save(&jpg).unwrap();
        let bytes = std::fs::read(&jpg).unwrap();
        std::fs::write(&jpg, &bytes[..bytes.len() / 3]).unwrap();
        let m = msg(load_folder(dir.path(), &cfg(4)));
        assert!(m.contains("cut.jpg"), "{m}");
        // Size 0.
        assert!(load_folder(dir.path(), &cfg(0)).is_err());
    }
}
