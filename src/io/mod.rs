//! File helpers shared by every writer in the crate: nothing is left half-written.
//!
//! Files are written to a temporary name beside the destination and renamed into place, so a crash
//! or a Ctrl-C leaves either the old file or the new one, never a truncated mix.

use crate::{Error, Result};
use std::io::Write;
use std::path::Path;

/// Writes `bytes` to `path` atomically (temporary file in the same folder, then rename).
///
/// ```
/// let dir = tempfile::tempdir().unwrap();
/// let path = dir.path().join("history.json");
/// cnn_explain::io::write_atomic(&path, b"{}")?;
/// assert_eq!(std::fs::read(&path).unwrap(), b"{}");
/// # Ok::<(), cnn_explain::Error>(())
/// ```
pub fn write_atomic(path: impl AsRef<Path>, bytes: &[u8]) -> Result<()> {
    with_atomic_path(path, |tmp| {
        let mut f = std::fs::File::create(tmp).map_err(|e| Error::io(tmp, e))?;
        f.write_all(bytes).map_err(|e| Error::io(tmp, e))?;
        f.sync_all().map_err(|e| Error::io(tmp, e))
    })
}

/// Calls `write` with a temporary path beside `path`, then renames the result onto `path`.
///
/// Use it for writers that take a path (libtorch's `save`, image encoders). On error the temporary
/// file is removed and `path` is untouched.
pub fn with_atomic_path<T>(path: impl AsRef<Path>, write: impl FnOnce(&Path) -> Result<T>) -> Result<T> {
    let path = path.as_ref();
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
        _ => std::path::PathBuf::from("."),
    };
    std::fs::create_dir_all(&dir).map_err(|e| Error::io(&dir, e))?;
    let name = path
        .file_name()
        .ok_or_else(|| Error::invalid("path", format!("{} has no file name", path.display())))?;
    // Keep the extension last: some writers choose the format from it.
    let tmp = dir.join(format!(
        ".{}.{}.tmp.{}",
        std::process::id(),
        unique(),
        name.to_string_lossy()
    ));
    match write(&tmp) {
        Ok(v) => {
            std::fs::rename(&tmp, path).map_err(|e| Error::io(path, e))?;
            Ok(v)
        }
        Err(e) => {
            let _ = std::fs::remove_file(&tmp);
            Err(e)
        }
    }
}

fn unique() -> u64 {
    use std::sync::atomic::{AtomicU64, Ordering};
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    COUNTER.fetch_add(1, Ordering::Relaxed)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn failed_write_leaves_old_file_and_no_temporary() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("a.json");
        write_atomic(&path, b"old").unwrap();
        let r: Result<()> = with_atomic_path(&path, |tmp| {
            std::fs::write(tmp, b"half").unwrap();
            Err(Error::invalid("x", "simulated crash"))
        });
        assert!(r.is_err());
        assert_eq!(std::fs::read(&path).unwrap(), b"old");
        let names: Vec<_> = std::fs::read_dir(dir.path()).unwrap().collect();
        assert_eq!(names.len(), 1, "temporary file left behind");
    }
}
