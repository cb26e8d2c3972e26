//! Queries of `experiments` (compiled once per backend).

use tracing::instrument;

use crate::error::Result;
use crate::now_ms;
use crate::rows::ExperimentRow;

use super::Backend;

const COLUMNS: &str = "id, name, path, content_hash, created_ms, updated_ms";

impl Backend<'_> {
    #[instrument(level = "trace", skip_all, err(level = "debug"))]
    pub(crate) async fn upsert_experiment(
        &self,
        name: &str,
        path: &str,
        content_hash: &str,
    ) -> Result<ExperimentRow> {
        let now = now_ms();
        let row = sqlx::query_as::<_, ExperimentRow>(&format!(
            "INSERT INTO experiments (name, path, content_hash, created_ms, updated_ms) \
             VALUES ($1, $2, $3, $4, $4) \
             ON CONFLICT (name) DO UPDATE SET path = excluded.path, \
                 content_hash = excluded.content_hash, updated_ms = excluded.updated_ms \
             RETURNING {COLUMNS}"
        ))
        .bind(name)
        .bind(path)
        .bind(content_hash)
        .bind(now)
        .fetch_one(self.pool)
        .await?;
        Ok(row)
    }

    pub(crate) async fn experiments(&self) -> Result<Vec<ExperimentRow>> {
        Ok(sqlx::query_as::<_, ExperimentRow>(&format!(
            "SELECT {COLUMNS} FROM experiments ORDER BY name"
        ))
        .fetch_all(self.pool)
        .await?)
    }

    pub(crate) async fn experiment_by_name(&self, name: &str) -> Result<Option<ExperimentRow>> {
        Ok(sqlx::query_as::<_, ExperimentRow>(&format!(
            "SELECT {COLUMNS} FROM experiments WHERE name = $1"
        ))
        .bind(name)
        .fetch_optional(self.pool)
        .await?)
    }
}
