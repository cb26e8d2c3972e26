use std::path::PathBuf;

/// Errors the engine reports to its callers. User-facing variants name the file or key involved.
#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    #[error(transparent)]
    Torch(#[from] tch::TchError),
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{0}")]
    Invalid(String),
    /// The VQA head's size disagrees with the data's answer vocabulary.
    #[error(
        "vqav2_label_size = {label_size}, but {vocabulary} lists {answers} answers: the VQA head \
         needs one output per answer of the data"
    )]
    AnswerCount {
        label_size: i64,
        answers: usize,
        vocabulary: PathBuf,
    },
    /// The data's answer vocabulary file cannot be read.
    #[error("cannot read the answer vocabulary: {0}")]
    AnswerVocabulary(String),
}

pub type Result<T, E = EngineError> = std::result::Result<T, E>;
