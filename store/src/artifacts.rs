//! Artifacts: files a run produced (checkpoints, logs, figures).

use crate::types::ArtifactKind;

/// A file to record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewArtifact {
    pub kind: ArtifactKind,
    pub path: String,
    pub step: Option<i64>,
    pub size_bytes: Option<i64>,
}
