//! Artifacts: files a run produced (checkpoints, logs, figures).

use crate::error::{Result, StoreError};
use crate::rows::Artifact;
use crate::types::{ArtifactKind, RunId};
use crate::{now_ms, Store};

const COLUMNS: &str = "id, run_id, kind, path, step, size_bytes, created_ms";

/// A file to record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewArtifact {
    pub kind: ArtifactKind,
    pub path: String,
    pub step: Option<i64>,
    pub size_bytes: Option<i64>,
}

impl Store {
    /// Records an artifact of `run` (the same path again updates it). A checkpoint at a step at
    /// least as late as the run's current one becomes the run's resume point.
    pub async fn add_artifact(&self, run: RunId, artifact: &NewArtifact) -> Result<Artifact> {
        let mut tx = self.write_tx().await?;
        let exists: Option<i64> = sqlx::query_scalar("SELECT 1 FROM runs WHERE id = ?1")
            .bind(run)
            .fetch_optional(&mut *tx)
            .await?;
        if exists.is_none() {
            return Err(StoreError::UnknownRun(run));
        }
        let row = sqlx::query_as::<_, Artifact>(&format!(
            "INSERT INTO artifacts (run_id, kind, path, step, size_bytes, created_ms) \
             VALUES (?1, ?2, ?3, ?4, ?5, ?6) \
             ON CONFLICT (run_id, path) DO UPDATE SET kind = excluded.kind, step = excluded.step, \
                 size_bytes = excluded.size_bytes, created_ms = excluded.created_ms \
             RETURNING {COLUMNS}"
        ))
        .bind(run)
        .bind(artifact.kind.as_str())
        .bind(&artifact.path)
        .bind(artifact.step)
        .bind(artifact.size_bytes)
        .bind(now_ms())
        .fetch_one(&mut *tx)
        .await?;
        if artifact.kind == ArtifactKind::Checkpoint {
            sqlx::query(
                "UPDATE runs SET checkpoint_path = ?2, checkpoint_step = ?3 \
                 WHERE id = ?1 AND (checkpoint_step IS NULL OR ?3 IS NULL OR ?3 >= checkpoint_step)",
            )
            .bind(run)
            .bind(&artifact.path)
            .bind(artifact.step)
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        Ok(row)
    }

    /// The artifacts of `run`, oldest first.
    pub async fn artifacts(&self, run: RunId) -> Result<Vec<Artifact>> {
        Ok(sqlx::query_as::<_, Artifact>(&format!(
            "SELECT {COLUMNS} FROM artifacts WHERE run_id = ?1 ORDER BY created_ms, id"
        ))
        .bind(run)
        .fetch_all(&self.pool)
        .await?)
    }
}
