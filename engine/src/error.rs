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
    /// An expert or checkpoint could not be found or downloaded.
    #[error(transparent)]
    Hub(#[from] crate::hub::HubError),
    /// A weights file could not be read or does not fit the model.
    #[error(transparent)]
    Weights(#[from] crate::weights::WeightsError),
    /// A local expert folder whose files are not the ones the run's identity pinned.
    #[error(
        "`{key}`: {path} changed since the run was queued (sha256 {then} then, {now} now); \
         plan again to make it another run"
    )]
    ExpertChanged {
        key: &'static str,
        path: String,
        then: String,
        now: String,
    },
}

pub type Result<T, E = EngineError> = std::result::Result<T, E>;
