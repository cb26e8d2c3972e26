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
    #[error("{count} corrupt images in a row: is the image column readable at all?")]
    CorruptImages { count: usize },
    #[error("an empty batch")]
    EmptyBatch,
    #[error("the dataset has no samples")]
    NoSamples,
    #[error("no dataset files given")]
    NoFiles,
    #[error("{}: no .arrow files in this directory", dir.display())]
    NoArrowFiles { dir: PathBuf },
    #[error("{rows} rows exceed the 2^32 rows a dataset can index")]
    TooManyRows { rows: usize },
    #[error("{kind} datasets have no `{column}` column")]
    NoImageColumn { kind: String, column: &'static str },
    #[error("`{key}`: {detail}")]
    Setting { key: &'static str, detail: String },
    #[error("loader worker {worker} stopped before batch {batch} (did it panic?)")]
    WorkerStopped { worker: usize, batch: usize },
    #[error("{}: column `{column}` has {rows} rows, expected {expected}", path.display())]
    RaggedColumns {
        path: PathBuf,
        column: String,
        rows: usize,
        expected: usize,
    },
    #[error(transparent)]
    Vocab(#[from] super::vocab::VocabError),
}

impl DataError {
    /// Whether the file itself cannot be read as a dataset table (its schema or bytes), as
    /// opposed to a bad value in a row or a setting.
    pub fn is_invalid_file(&self) -> bool {
        matches!(
            self,
            Self::Arrow { .. }
                | Self::Truncated { .. }
                | Self::MissingColumn { .. }
                | Self::ColumnType { .. }
                | Self::BadValue { .. }
                | Self::Tokenizer { .. }
        )
    }

    pub(crate) fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Self::Io {
            path: path.into(),
            source,
        }
    }
}

pub type DataResult<T> = std::result::Result<T, DataError>;
