//! Errors of the data pipeline. Every variant that comes from a file names the file.

use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
pub enum DataError {
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{path}: not a readable Arrow IPC file: {detail}")]
    Arrow { path: PathBuf, detail: String },
    #[error("{path}: truncated or damaged Arrow IPC file: {detail}")]
    Truncated { path: PathBuf, detail: String },
    #[error("{path}: missing column `{column}` (expected {expected})")]
    MissingColumn {
        path: PathBuf,
        column: String,
        expected: String,
    },
    #[error("{path}: column `{column}` has type {found}, expected {expected}")]
    ColumnType {
        path: PathBuf,
        column: String,
        expected: String,
        found: String,
    },
    #[error("{path}: row {row}, column `{column}`: {detail}")]
    BadValue {
        path: PathBuf,
        row: usize,
        column: String,
        detail: String,
    },
    #[error("cannot decode image: {0}")]
    Image(String),
    #[error("tokenizer {path}: {detail}")]
    Tokenizer { path: PathBuf, detail: String },
    #[error(transparent)]
    Vocab(#[from] super::vocab::VocabError),
    #[error("{0}")]
    Invalid(String),
}

impl DataError {
    pub(crate) fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Self::Io {
            path: path.into(),
            source,
        }
    }
}

pub type DataResult<T> = std::result::Result<T, DataError>;
