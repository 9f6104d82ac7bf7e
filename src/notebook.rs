//! Helpers for notebooks: quick mode and the cache folder.
//!
//! The README's test command runs every notebook in *quick mode* (`CNN_EXPLAIN_QUICK=1`): fewer
//! epochs and samples, the same code paths. Notebooks read [`quick_mode`] and pick their sizes with
//! [`pick`].

use std::path::PathBuf;

/// True when `CNN_EXPLAIN_QUICK` is set to anything but `0` or an empty string.
pub fn quick_mode() -> bool {
    std::env::var("CNN_EXPLAIN_QUICK").map(|v| !v.is_empty() && v != "0").unwrap_or(false)
}

/// `quick` in quick mode, `full` otherwise.
///
/// ```
/// let epochs = cnn_explain::notebook::pick(12, 2);
/// assert!(epochs == 12 || epochs == 2);
/// ```
pub fn pick<T>(full: T, quick: T) -> T {
    if quick_mode() {
        quick
    } else {
        full
    }
}

/// The folder where trained models and histories are cached between notebooks: `CNN_EXPLAIN_CACHE`
/// when set (the notebook runner sets it inside the checkout), else `.cache/cnn-explain` under the
/// current folder.
pub fn cache_dir() -> PathBuf {
    match std::env::var_os("CNN_EXPLAIN_CACHE") {
        Some(dir) if !dir.is_empty() => PathBuf::from(dir),
        _ => PathBuf::from(".cache").join("cnn-explain"),
    }
}
