//! Log lines of runs (engine messages and captured output), tailed by the TUI and synced to W&B.

/// A line to append.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewLogLine {
    pub time_ms: i64,
    /// e.g. `info`, `warn`, `error`, `stdout`, `stderr`.
    pub level: String,
    pub text: String,
}
