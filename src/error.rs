//! The crate's one error type.
//!
//! Every public function that can fail on user input returns [`Result`]. Each variant carries what
//! was wrong and, where it helps, what would have been right, so the message alone tells a user how
//! to fix the call.

use std::path::PathBuf;

/// Everything that can go wrong in `cnn_explain`.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A tensor had the wrong rank, size or element type.
    #[error("{what}: expected {expected}, got shape {got:?}")]
    Shape {
        /// Which argument or value was checked (for example `input`).
        what: String,
        /// What would have been right, in words (for example `[N, 3, H, W]`).
        expected: String,
        /// The shape that was passed.
        got: Vec<i64>,
    },
    /// A layer name that the model does not have.
    #[error("unknown layer `{name}`; this model's layers are: {}", valid.join(", "))]
    UnknownLayer {
        /// The name asked for.
        name: String,
        /// The model's layer names, input to output.
        valid: Vec<String>,
    },
    /// A class index outside `0..num_classes`.
    #[error("class index {index} is out of range: the model has {num_classes} classes (valid: 0..={})", num_classes - 1)]
    ClassOutOfRange {
        /// The index asked for.
        index: i64,
        /// How many classes the model has.
        num_classes: i64,
    },
    /// An argument whose value cannot work (zero steps, a negative sigma, a batch size of 0, ...).
    #[error("invalid value for `{name}`: {reason}")]
    InvalidArgument {
        /// The argument or field name.
        name: String,
        /// What was wrong and what would be right.
        reason: String,
    },
    /// A file or folder could not be read or written.
    #[error("{path}: {source}")]
    Io {
        /// The file or folder.
        path: PathBuf,
        /// The operating system's error.
        #[source]
        source: std::io::Error,
    },
    /// A file exists but its content is not what was expected (corrupt image, truncated batch file,
    /// empty class folder, ...).
    #[error("{path}: {reason}")]
    Data {
        /// The file or folder.
        path: PathBuf,
        /// What was wrong and what would be right.
        reason: String,
    },
    /// A checkpoint whose parameters do not match the model.
    #[error("checkpoint {path} does not match the model: {details}")]
    CheckpointMismatch {
        /// The checkpoint file.
        path: PathBuf,
        /// The mismatched names: missing, unexpected, and those with another shape.
        details: String,
    },
    /// A libtorch operation failed.
    #[error("libtorch: {0}")]
    Torch(#[from] tch::TchError),
    /// Drawing a figure failed.
    #[error("drawing failed: {0}")]
    Plot(String),
    /// JSON could not be read or written.
    #[error("JSON: {0}")]
    Json(#[from] serde_json::Error),
}

/// `Result` with the crate's [`Error`] as the default error type.
pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    /// Shorthand for [`Error::InvalidArgument`].
    pub fn invalid(name: impl Into<String>, reason: impl Into<String>) -> Self {
        Error::InvalidArgument {
            name: name.into(),
            reason: reason.into(),
        }
    }

    /// Shorthand for [`Error::Shape`].
    pub fn shape(what: impl Into<String>, expected: impl Into<String>, got: &[i64]) -> Self {
        Error::Shape {
            what: what.into(),
            expected: expected.into(),
            got: got.to_vec(),
        }
    }

    /// Shorthand for [`Error::Io`].
    pub fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Error::Io {
            path: path.into(),
            source,
        }
    }

    /// Shorthand for [`Error::Data`].
    pub fn data(path: impl Into<PathBuf>, reason: impl Into<String>) -> Self {
        Error::Data {
            path: path.into(),
            reason: reason.into(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_say_what_would_be_right() {
        let e = Error::UnknownLayer {
            name: "layer9".into(),
            valid: vec!["conv1".into(), "fc".into()],
        };
        assert_eq!(
            e.to_string(),
            "unknown layer `layer9`; this model's layers are: conv1, fc"
        );
        let e = Error::ClassOutOfRange {
            index: 7,
            num_classes: 6,
        };
        assert!(e.to_string().contains("valid: 0..=5"), "{e}");
        let e = Error::shape("input", "[N, 3, H, W]", &[3, 64, 64]);
        assert_eq!(
            e.to_string(),
            "input: expected [N, 3, H, W], got shape [3, 64, 64]"
        );
    }
}
