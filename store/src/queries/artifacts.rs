//! Queries of `artifacts` (compiled once per backend).

use crate::artifacts::NewArtifact;
use crate::error::{Result, StoreError};
use crate::now_ms;
use crate::rows::Artifact;
use crate::types::{ArtifactKind, RunId};

use super::Backend;

const COLUMNS: &str = "id, run_id, kind, path, step, size_bytes, created_ms";

impl Backend<'_> {
    pub(crate) async fn add_artifact(
        &self,
        run: RunId,
        artifact: &NewArtifact,
    ) -> Result<Artifact> {
        let mut tx = self.write_tx().await?;
        let exists: Option<RunId> = sqlx::query_scalar("SELECT id FROM runs WHERE id = $1")
            .bind(run)
            .fetch_optional(&mut *tx)
            .await?;
        if exists.is_none() {
            return Err(StoreError::UnknownRun(run));
        }
        let row = sqlx::query_as::<_, Artifact>(&format!(
            "INSERT INTO artifacts (run_id, kind, path, step, size_bytes, created_ms) \
             VALUES ($1, $2, $3, $4, $5, $6) \
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
                "UPDATE runs SET checkpoint_path = $2, checkpoint_step = $3 \
                 WHERE id = $1 AND (checkpoint_step IS NULL OR $3 IS NULL OR $3 >= checkpoint_step)",
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

    pub(crate) async fn artifacts(&self, run: RunId) -> Result<Vec<Artifact>> {
        Ok(sqlx::query_as::<_, Artifact>(&format!(
            "SELECT {COLUMNS} FROM artifacts WHERE run_id = $1 ORDER BY created_ms, id"
        ))
        .bind(run)
        .fetch_all(self.pool)
        .await?)
    }
}
