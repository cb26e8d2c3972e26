use std::fmt;
use std::path::PathBuf;

/// A tensor whose shape in the checkpoint differs from the model's.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ShapeMismatch {
    pub key: String,
    pub expected: Vec<i64>,
    pub found: Vec<i64>,
}

impl fmt::Display for ShapeMismatch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}: expected {:?}, found {:?}",
            self.key, self.expected, self.found
        )
    }
}

/// Everything that went wrong when matching a checkpoint against a model, all at once.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Mismatches {
    /// Model variables the checkpoint does not provide.
    pub missing: Vec<String>,
    /// Checkpoint tensors no model variable takes.
    pub unused: Vec<String>,
    pub shapes: Vec<ShapeMismatch>,
}

impl Mismatches {
    pub fn is_empty(&self) -> bool {
        self.missing.is_empty() && self.unused.is_empty() && self.shapes.is_empty()
    }
}

impl fmt::Display for Mismatches {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut parts = Vec::new();
        if !self.missing.is_empty() {
            parts.push(format!(
                "{} missing key(s): {}",
                self.missing.len(),
                self.missing.join(", ")
            ));
        }
        if !self.unused.is_empty() {
            parts.push(format!(
                "{} unused key(s): {}",
                self.unused.len(),
                self.unused.join(", ")
            ));
        }
        if !self.shapes.is_empty() {
            let shapes: Vec<String> = self.shapes.iter().map(ToString::to_string).collect();
            parts.push(format!(
                "{} shape mismatch(es): {}",
                self.shapes.len(),
                shapes.join("; ")
            ));
        }
        f.write_str(&parts.join("; "))
    }
}

/// Errors reading checkpoints and loading them into a model. Each names the file, and the key
/// where one is involved.
#[derive(Debug, thiserror::Error)]
pub enum WeightsError {
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// The file is not in any format TowerLab reads.
    #[error("{path}: unrecognised weights format ({detail})")]
    UnknownFormat { path: PathBuf, detail: String },
    /// The file has the right kind but its content is damaged or truncated.
    #[error("{path}: corrupt or truncated file: {detail}")]
    Corrupt { path: PathBuf, detail: String },
    /// A readable file whose content is not what was expected (e.g. no `state_dict`).
    #[error("{path}: {detail}")]
    Unsupported { path: PathBuf, detail: String },
    /// A Hugging Face checkpoint lacks a tensor its layout requires.
    #[error("{path}: key `{key}`: {detail}")]
    Key {
        path: PathBuf,
        key: String,
        detail: String,
    },
    /// The checkpoint does not match the model.
    #[error("{path}: checkpoint does not match the model: {mismatches}")]
    Mismatch {
        path: PathBuf,
        mismatches: Mismatches,
    },
    /// The model could not be built or run (invalid config, inputs of the wrong shape...).
    #[error("{0}")]
    Model(String),
    #[error(transparent)]
    Device(#[from] crate::error::DeviceError),
    #[error("{path}: key `{key}`: {source}")]
    Torch {
        path: PathBuf,
        key: String,
        #[source]
        source: tch::TchError,
    },
}

impl WeightsError {
    /// Whether the file itself is at fault (damaged, of no known format, or not the
    /// checkpoint the model needs), as opposed to a missing file or a bad setting.
    pub fn is_invalid_file(&self) -> bool {
        matches!(
            self,
            Self::UnknownFormat { .. }
                | Self::Corrupt { .. }
                | Self::Unsupported { .. }
                | Self::Key { .. }
                | Self::Mismatch { .. }
        )
    }

    pub(crate) fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Self::Io {
            path: path.into(),
            source,
        }
    }

    pub(crate) fn corrupt(path: impl Into<PathBuf>, detail: impl Into<String>) -> Self {
        Self::Corrupt {
            path: path.into(),
            detail: detail.into(),
        }
    }

    pub(crate) fn key(
        path: impl Into<PathBuf>,
        key: impl Into<String>,
        detail: impl Into<String>,
    ) -> Self {
        Self::Key {
            path: path.into(),
            key: key.into(),
            detail: detail.into(),
        }
    }

    pub(crate) fn torch(
        path: impl Into<PathBuf>,
        key: impl Into<String>,
        source: tch::TchError,
    ) -> Self {
        Self::Torch {
            path: path.into(),
            key: key.into(),
            source,
        }
    }
}
