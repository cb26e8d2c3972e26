use std::path::PathBuf;

/// Everything that can go wrong while building a report.
#[derive(Debug, thiserror::Error)]
pub enum ReportError {
    /// The input contradicts itself (unknown baseline, missing axis value, ...).
    #[error("invalid report input: {0}")]
    Input(String),
    /// A figure option names something the input does not have.
    #[error("invalid figure option: {0}")]
    Option(String),
    /// A figure has nothing to show (e.g. no finished run logged its metric).
    #[error("no data: {0}")]
    NoData(String),
    /// plotters failed while drawing.
    #[error("drawing {figure} failed: {message}")]
    Draw { figure: String, message: String },
    /// PNG encoding failed.
    #[error("encoding PNG failed: {0}")]
    Png(String),
    #[error("writing {path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

pub type Result<T, E = ReportError> = std::result::Result<T, E>;
