//! Queries of `sync_cursors` (compiled once per backend).

use crate::error::Result;
use crate::types::RunId;

use super::Backend;

impl Backend<'_> {
    pub(crate) async fn sync_cursor(
        &self,
        run: RunId,
        target: &str,
        name: &str,
    ) -> Result<Option<String>> {
        Ok(sqlx::query_scalar(
            "SELECT value FROM sync_cursors WHERE run_id = $1 AND target = $2 AND name = $3",
        )
        .bind(run)
        .bind(target)
        .bind(name)
        .fetch_optional(self.pool)
        .await?)
    }

    pub(crate) async fn set_sync_cursor(
        &self,
        run: RunId,
        target: &str,
        name: &str,
        value: &str,
    ) -> Result<()> {
        sqlx::query(
            "INSERT INTO sync_cursors (run_id, target, name, value) VALUES ($1, $2, $3, $4) \
             ON CONFLICT (run_id, target, name) DO UPDATE SET value = excluded.value",
        )
        .bind(run)
        .bind(target)
        .bind(name)
        .bind(value)
        .execute(self.pool)
        .await?;
        Ok(())
    }
}
