//! Errors of `data convert`. Each names the file (and the line, row or key) and what was expected.
//! Missing or unreadable *images* are not errors: they are counted and listed in the report.

use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
pub enum ConvertError {
    #[error("{dataset}: missing inputs under {root} (the reference's raw layout): {}", list_missing(.missing))]
    MissingInputs {
        dataset: &'static str,
        root: PathBuf,
        /// (path expected, "file" or "folder").
        missing: Vec<(PathBuf, &'static str)>,
    },
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{path}: not valid JSON for {expected}: {source}")]
    Json {
        path: PathBuf,
        expected: &'static str,
        #[source]
        source: serde_json::Error,
    },
    #[error("{path}:{line}: not valid JSON for {expected}: {source}")]
    JsonLine {
        path: PathBuf,
        line: usize,
        expected: &'static str,
        #[source]
        source: serde_json::Error,
    },
    #[error("{path}:{line}: {what}: {value:?}")]
    BadLine {
        path: PathBuf,
        line: usize,
        what: &'static str,
        value: String,
    },
    #[error("{path}: {key} {value}: {what}")]
    BadRecord {
        path: PathBuf,
        key: &'static str,
        value: String,
        what: String,
    },
    #[error("{path}: {detail}")]
    BadInput { path: PathBuf, detail: String },
    #[error("{path}: an existing output {detail}; pass --force to overwrite it")]
    OutputExists { path: PathBuf, detail: String },
    #[error("{path}: cannot write Arrow: {source}")]
    Arrow {
        path: PathBuf,
        #[source]
        source: arrow_schema::ArrowError,
    },
    #[error("{path}: cannot read back Arrow: {detail}")]
    ReadBack { path: PathBuf, detail: String },
    #[error(transparent)]
    Vocab(#[from] crate::data::vocab::VocabError),
    #[error("a conversion worker thread panicked: {0}")]
    Worker(String),
}

fn list_missing(missing: &[(PathBuf, &'static str)]) -> String {
    missing
        .iter()
        .map(|(p, kind)| format!("{} ({kind})", p.display()))
        .collect::<Vec<_>>()
        .join(", ")
}

impl ConvertError {
    pub(crate) fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Self::Io {
            path: path.into(),
            source,
        }
    }

    pub(crate) fn arrow(path: impl Into<PathBuf>, source: arrow_schema::ArrowError) -> Self {
        Self::Arrow {
            path: path.into(),
            source,
        }
    }
}

pub type ConvertResult<T> = Result<T, ConvertError>;
