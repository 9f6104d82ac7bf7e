//! CIFAR-10 and CIFAR-100 from the binary batches their maintainers distribute.
//!
//! Krizhevsky 2009, *Learning Multiple Layers of Features from Tiny Images*;
//! <https://www.cs.toronto.edu/~kriz/cifar.html> ("binary version").
//!
//! - CIFAR-10 (`cifar-10-binary.tar.gz` extracts to `cifar-10-batches-bin/`): `data_batch_1.bin` ..
//!   `data_batch_5.bin` (training) and `test_batch.bin`, each a sequence of 3073-byte records: one
//!   label byte (0..=9), then 3072 pixel bytes, the 1024 red values of the 32x32 image row by row,
//!   then green, then blue. Class names are the non-empty lines of `batches.meta.txt`.
//! - CIFAR-100 (`cifar-100-binary.tar.gz` extracts to `cifar-100-binary/`): `train.bin` and
//!   `test.bin`, 3074-byte records: coarse label (0..=19), fine label (0..=99), then 3072 pixel
//!   bytes as above. Class names come from `coarse_label_names.txt` / `fine_label_names.txt`.
//!
//! Pass either the extracted folder or the folder that contains it. Without the names file the
//! class names are the numbers `"0"`, `"1"`, ... Pixels become floats `byte / 255`. A truncated file
//! (size not a multiple of the record size), a missing file or folder, a label out of range or a
//! names file with the wrong number of lines is an [`Error::Data`] or [`Error::Io`] naming the file.

use super::{Dataset, Splits};
use crate::{Error, Result};
use std::path::{Path, PathBuf};
use tch::{Kind, Tensor};

/// Bytes of one image: 3 channels of 32 x 32.
pub const PIXELS: usize = 3 * 32 * 32;

/// Which part of the data to load.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CifarSplit {
    /// The 50,000 training images (CIFAR-10: five batch files).
    Train,
    /// The 10,000 test images.
    Test,
}

/// Which CIFAR-100 label to use.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Cifar100Label {
    /// The 100 fine classes (`fine_label_names.txt`).
    Fine,
    /// The 20 superclasses (`coarse_label_names.txt`).
    Coarse,
}

/// Loads one split of CIFAR-10 from `dir` (the `cifar-10-batches-bin` folder or its parent).
///
/// ```
/// # let dir = tempfile::tempdir().unwrap();
/// # let mut rec = vec![3u8]; rec.extend(vec![255u8; 3072]);
/// # std::fs::write(dir.path().join("test_batch.bin"), &rec).unwrap();
/// use cnn_explain::data::cifar::{load_cifar10, CifarSplit};
/// let test = load_cifar10(dir.path(), CifarSplit::Test)?;
/// assert_eq!(test.images.size(), [1, 3, 32, 32]);
/// assert_eq!(test.class_names[3], "3"); // no batches.meta.txt beside the batch
/// # Ok::<(), cnn_explain::Error>(())
/// ```
pub fn load_cifar10(dir: impl AsRef<Path>, split: CifarSplit) -> Result<Dataset> {
    let dir = resolve(dir.as_ref(), "cifar-10-batches-bin")?;
    let files: Vec<PathBuf> = match split {
        CifarSplit::Train => (1..=5).map(|i| dir.join(format!("data_batch_{i}.bin"))).collect(),
        CifarSplit::Test => vec![dir.join("test_batch.bin")],
    };
    let names = class_names(&dir.join("batches.meta.txt"), 10)?;
    load_files(&files, 1, 0, names)
}

/// Loads one split of CIFAR-100 from `dir` (the `cifar-100-binary` folder or its parent), labelled
/// by fine or coarse class.
///
/// ```
/// # let dir = tempfile::tempdir().unwrap();
/// # let mut rec = vec![19u8, 99u8]; rec.extend(vec![0u8; 3072]);
/// # std::fs::write(dir.path().join("test.bin"), &rec).unwrap();
/// use cnn_explain::data::cifar::{load_cifar100, Cifar100Label, CifarSplit};
/// let test = load_cifar100(dir.path(), CifarSplit::Test, Cifar100Label::Fine)?;
/// assert_eq!(test.labels.int64_value(&[0]), 99);
/// assert_eq!(test.num_classes(), 100);
/// # Ok::<(), cnn_explain::Error>(())
/// ```
pub fn load_cifar100(dir: impl AsRef<Path>, split: CifarSplit, label: Cifar100Label) -> Result<Dataset> {
    let dir = resolve(dir.as_ref(), "cifar-100-binary")?;
    let file = dir.join(match split {
        CifarSplit::Train => "train.bin",
        CifarSplit::Test => "test.bin",
    });
    let (names_file, k, index) = match label {
        Cifar100Label::Coarse => ("coarse_label_names.txt", 20, 0),
        Cifar100Label::Fine => ("fine_label_names.txt", 100, 1),
    };
    let names = class_names(&dir.join(names_file), k)?;
    load_files(&[file], 2, index, names)
}

/// CIFAR-10 as [`Splits`]: `val` images drawn at random (by `seed`) from the training batches form
/// the validation set; the test batch is the test set.
///
/// ```no_run
/// use cnn_explain::data::cifar::cifar10_splits;
/// let splits = cifar10_splits("data/cifar-10-batches-bin", 5000, 0)?;
/// assert_eq!(splits.train.len(), 45_000);
/// # Ok::<(), cnn_explain::Error>(())
/// ```
pub fn cifar10_splits(dir: impl AsRef<Path>, val: usize, seed: u64) -> Result<Splits> {
    let train = load_cifar10(dir.as_ref(), CifarSplit::Train)?;
    let test = load_cifar10(dir.as_ref(), CifarSplit::Test)?;
    let (train, val) = train.split_random(val, seed)?;
    Ok(Splits { train, val, test })
}

/// CIFAR-100 as [`Splits`], like [`cifar10_splits`].
///
/// ```no_run
/// use cnn_explain::data::cifar::{cifar100_splits, Cifar100Label};
/// let splits = cifar100_splits("data", Cifar100Label::Coarse, 5000, 0)?;
/// assert_eq!(splits.test.num_classes(), 20);
/// # Ok::<(), cnn_explain::Error>(())
/// ```
pub fn cifar100_splits(dir: impl AsRef<Path>, label: Cifar100Label, val: usize, seed: u64) -> Result<Splits> {
    let train = load_cifar100(dir.as_ref(), CifarSplit::Train, label)?;
    let test = load_cifar100(dir.as_ref(), CifarSplit::Test, label)?;
    let (train, val) = train.split_random(val, seed)?;
    Ok(Splits { train, val, test })
}

/// Reads one CIFAR-10 batch file (any of `data_batch_*.bin`, `test_batch.bin`); class names from
/// `batches.meta.txt` in the same folder when it is there.
///
/// ```
/// # let dir = tempfile::tempdir().unwrap();
/// # let path = dir.path().join("data_batch_1.bin");
/// # let mut rec = vec![1u8]; rec.extend(vec![51u8; 3072]);
/// # std::fs::write(&path, &rec).unwrap();
/// let ds = cnn_explain::data::cifar::read_cifar10_batch(&path)?;
/// assert!((ds.images.double_value(&[0, 2, 31, 31]) - 0.2).abs() < 1e-6);
/// # Ok::<(), cnn_explain::Error>(())
/// ```
pub fn read_cifar10_batch(path: impl AsRef<Path>) -> Result<Dataset> {
    let path = path.as_ref();
    let meta = path
        .parent()
        .map(|p| p.join("batches.meta.txt"))
        .unwrap_or_else(|| PathBuf::from("batches.meta.txt"));
    let names = class_names(&meta, 10)?;
    load_files(&[path.to_path_buf()], 1, 0, names)
}

fn resolve(dir: &Path, sub: &str) -> Result<PathBuf> {
    if !dir.is_dir() {
        return Err(Error::data(
            dir,
            format!("folder not found; expected the extracted `{sub}` folder or its parent"),
        ));
    }
    let inner = dir.join(sub);
    Ok(if inner.is_dir() { inner } else { dir.to_path_buf() })
}

/// Names from a text file (non-empty lines, trimmed), or the numbers when the file is absent.
fn class_names(path: &Path, k: usize) -> Result<Vec<String>> {
    if !path.exists() {
        return Ok((0..k).map(|i| i.to_string()).collect());
    }
    let text = std::fs::read_to_string(path).map_err(|e| Error::io(path, e))?;
    let names: Vec<String> = text
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .map(String::from)
        .collect();
    if names.len() != k {
        return Err(Error::data(
            path,
            format!("expected {k} class names (one per line), found {}", names.len()),
        ));
    }
    Ok(names)
}

/// Reads the records of `files` (`label_bytes` label bytes each, the label at `label_index`).
fn load_files(
    files: &[PathBuf],
    label_bytes: usize,
    label_index: usize,
    names: Vec<String>,
) -> Result<Dataset> {
    let record = label_bytes + PIXELS;
    let k = names.len();
    let mut pixels: Vec<u8> = Vec::new();
    let mut labels: Vec<i64> = Vec::new();
    for file in files {
        if !file.is_file() {
            return Err(Error::data(
                file,
                "file not found (part of the distributed binary batches)",
            ));
        }
        let bytes = std::fs::read(file).map_err(|e| Error::io(file, e))?;
        if bytes.is_empty() || bytes.len() % record != 0 {
            return Err(Error::data(
                file,
                format!(
                    "size {} bytes is not a positive multiple of the {record}-byte record \
                     ({label_bytes} label byte(s) + {PIXELS} pixels): truncated or not a CIFAR batch",
                    bytes.len()
                ),
            ));
        }
        pixels.reserve(bytes.len() / record * PIXELS);
        for (i, rec) in bytes.chunks_exact(record).enumerate() {
            let label = rec[label_index] as usize;
            if label >= k {
                return Err(Error::data(
                    file,
                    format!("record {i} has label {label}, outside 0..{k}"),
                ));
            }
            labels.push(label as i64);
            pixels.extend_from_slice(&rec[label_bytes..]);
        }
    }
    let n = labels.len() as i64;
    let images = Tensor::from_slice(&pixels)
        .reshape([n, 3, 32, 32])
        .to_kind(Kind::Float)
        / 255.0;
    Dataset::new(images, Tensor::from_slice(&labels), names, None)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A record whose pixel (c, y, x) has the byte (31 c + 7 y + x + seed) mod 256.
    fn record(labels: &[u8], seed: usize) -> Vec<u8> {
        let mut r = labels.to_vec();
        for c in 0..3 {
            for y in 0..32 {
                for x in 0..32 {
                    r.push(((31 * c + 7 * y + x + seed) % 256) as u8);
                }
            }
        }
        r
    }

    #[test]
    fn cifar10_pixels_labels_and_names() {
        let dir = tempfile::tempdir().unwrap();
        let bin = dir.path().join("cifar-10-batches-bin");
        std::fs::create_dir(&bin).unwrap();
        for b in 1..=5u8 {
            let mut bytes = record(&[b], b as usize);
            bytes.extend(record(&[9], 100 + b as usize));
            std::fs::write(bin.join(format!("data_batch_{b}.bin")), bytes).unwrap();
        }
        std::fs::write(bin.join("test_batch.bin"), record(&[0], 7)).unwrap();
        let names = "airplane\nautomobile\nbird\ncat\ndeer\ndog\nfrog\nhorse\nship\ntruck\n\n";
        std::fs::write(bin.join("batches.meta.txt"), names).unwrap();

        // The parent folder works too.
        let train = load_cifar10(dir.path(), CifarSplit::Train).unwrap();
        assert_eq!(train.images.size(), [10, 3, 32, 32]);
        assert_eq!(
            Vec::<i64>::try_from(&train.labels).unwrap(),
            vec![1, 9, 2, 9, 3, 9, 4, 9, 5, 9]
        );
        assert_eq!(train.class_names[9], "truck");
        // Record 3 is batch 2's second record: seed 102. Red (0,0): 102; green row 1 col 2:
        // 31 + 7 + 2 + 102 = 142; blue (31, 31): 62 + 217 + 31 + 102 = 412 mod 256 = 156.
        for (c, y, x, byte) in [(0, 0, 0, 102.0), (1, 1, 2, 142.0), (2, 31, 31, 156.0)] {
            let v = train.images.double_value(&[3, c, y, x]);
            assert!((v - byte / 255.0).abs() < 1e-7, "({c},{y},{x}) = {v}");
        }
        let test = load_cifar10(&bin, CifarSplit::Test).unwrap();
        assert_eq!(test.len(), 1);
        assert!((test.images.double_value(&[0, 0, 0, 5]) - 12.0 / 255.0).abs() < 1e-7);

        let splits = cifar10_splits(dir.path(), 3, 0).unwrap();
        assert_eq!(
            (splits.train.len(), splits.val.len(), splits.test.len()),
            (7, 3, 1)
        );
    }

    #[test]
    fn cifar100_fine_and_coarse_labels() {
        let dir = tempfile::tempdir().unwrap();
        let mut bytes = record(&[3, 42], 0);
        bytes.extend(record(&[19, 99], 1));
        std::fs::write(dir.path().join("train.bin"), &bytes).unwrap();
        std::fs::write(dir.path().join("test.bin"), record(&[0, 5], 2)).unwrap();
        let coarse: String = (0..20).map(|i| format!("super{i}\n")).collect();
        std::fs::write(dir.path().join("coarse_label_names.txt"), coarse).unwrap();
        let fine = load_cifar100(dir.path(), CifarSplit::Train, Cifar100Label::Fine).unwrap();
        assert_eq!(Vec::<i64>::try_from(&fine.labels).unwrap(), vec![42, 99]);
        assert_eq!(fine.class_names[42], "42");
        let coarse = load_cifar100(dir.path(), CifarSplit::Train, Cifar100Label::Coarse).unwrap();
        assert_eq!(Vec::<i64>::try_from(&coarse.labels).unwrap(), vec![3, 19]);
        assert_eq!(coarse.class_names[19], "super19");
        assert!((coarse.images.double_value(&[1, 2, 0, 1]) - 64.0 / 255.0).abs() < 1e-7);
        let s = cifar100_splits(dir.path(), Cifar100Label::Fine, 1, 3).unwrap();
        assert_eq!((s.train.len(), s.val.len(), s.test.len()), (1, 1, 1));
    }

    #[test]
    fn bad_files_are_errors_naming_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let msg = |r: Result<Dataset>| r.unwrap_err().to_string();

        // Missing folder.
        let m = msg(load_cifar10(dir.path().join("nope"), CifarSplit::Test));
        assert!(m.contains("nope") && m.contains("not found"), "{m}");
        // Missing file.
        let m = msg(load_cifar10(dir.path(), CifarSplit::Test));
        assert!(m.contains("test_batch.bin"), "{m}");
        // Truncated file.
        let mut bytes = record(&[1], 0);
        bytes.extend(&record(&[2], 0)[..100]);
        std::fs::write(dir.path().join("test_batch.bin"), &bytes).unwrap();
        let m = msg(load_cifar10(dir.path(), CifarSplit::Test));
        assert!(m.contains("test_batch.bin") && m.contains("3073"), "{m}");
        // Empty file.
        std::fs::write(dir.path().join("test_batch.bin"), b"").unwrap();
        assert!(msg(load_cifar10(dir.path(), CifarSplit::Test)).contains("test_batch.bin"));
        // Label out of range.
        std::fs::write(dir.path().join("test_batch.bin"), record(&[10], 0)).unwrap();
        let m = msg(load_cifar10(dir.path(), CifarSplit::Test));
        assert!(m.contains("test_batch.bin") && m.contains("label 10"), "{m}");
        // Train needs all five batches.
        std::fs::write(dir.path().join("data_batch_1.bin"), record(&[1], 0)).unwrap();
        let m = msg(load_cifar10(dir.path(), CifarSplit::Train));
        assert!(m.contains("data_batch_2.bin"), "{m}");
        // A names file with the wrong number of names.
        std::fs::write(dir.path().join("test_batch.bin"), record(&[1], 0)).unwrap();
        std::fs::write(dir.path().join("batches.meta.txt"), "a\nb\n").unwrap();
        let m = msg(load_cifar10(dir.path(), CifarSplit::Test));
        assert!(m.contains("batches.meta.txt") && m.contains("expected 10"), "{m}");
        // CIFAR-100: a CIFAR-10 sized record is not a multiple of 3074; fine label out of range.
        std::fs::write(dir.path().join("test.bin"), record(&[1], 0)).unwrap();
        let m = msg(load_cifar100(dir.path(), CifarSplit::Test, Cifar100Label::Fine));
        assert!(m.contains("test.bin") && m.contains("3074"), "{m}");
        std::fs::write(dir.path().join("test.bin"), record(&[1, 100], 0)).unwrap();
        let m = msg(load_cifar100(dir.path(), CifarSplit::Test, Cifar100Label::Fine));
        assert!(m.contains("label 100"), "{m}");
        // Only the chosen label is checked: the coarse label 1 is valid.
        assert!(load_cifar100(dir.path(), CifarSplit::Test, Cifar100Label::Coarse).is_ok());
    }
}
