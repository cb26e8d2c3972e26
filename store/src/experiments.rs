//! Experiments: one row per experiment name, pointing at the file it was declared in.

use tracing::instrument;

use crate::error::Result;
use crate::rows::ExperimentRow;
use crate::{now_ms, Store};

const COLUMNS: &str = "id, name, path, content_hash, created_ms, updated_ms";

impl Store {
    /// Creates the experiment `name`, or updates its file path and content hash.
    #[instrument(level = "trace", skip_all, err(level = "debug"))]
    pub async fn upsert_experiment(
        &self,
        name: &str,
        path: &str,
        content_hash: &str,
    ) -> Result<ExperimentRow> {
        let now = now_ms();
        let row = sqlx::query_as::<_, ExperimentRow>(&format!(
            "INSERT INTO experiments (name, path, content_hash, created_ms, updated_ms) \
             VALUES (?1, ?2, ?3, ?4, ?4) \
             ON CONFLICT (name) DO UPDATE SET path = excluded.path, \
                 content_hash = excluded.content_hash, updated_ms = excluded.updated_ms \
             RETURNING {COLUMNS}"
        ))
        .bind(name)
        .bind(path)
        .bind(content_hash)
        .bind(now)
        .fetch_one(&self.pool)
        .await?;
        Ok(row)
    }

    /// All experiments, by name.
    pub async fn experiments(&self) -> Result<Vec<ExperimentRow>> {
        Ok(sqlx::query_as::<_, ExperimentRow>(&format!(
            "SELECT {COLUMNS} FROM experiments ORDER BY name"
        ))
        .fetch_all(&self.pool)
        .await?)
    }

    pub async fn experiment_by_name(&self, name: &str) -> Result<Option<ExperimentRow>> {
        Ok(sqlx::query_as::<_, ExperimentRow>(&format!(
            "SELECT {COLUMNS} FROM experiments WHERE name = ?1"
        ))
        .bind(name)
        .fetch_optional(&self.pool)
        .await?)
    }
}

#[cfg(test)]
mod tests {
    use crate::Store;

    #[tokio::test]
    async fn upsert_creates_then_updates() {
        let store = Store::open_in_memory().await.unwrap();
        let a = store
            .upsert_experiment("ablation", "exp/ablation.toml", "h1")
            .await
            .unwrap();
        let b = store
            .upsert_experiment("ablation", "exp/moved.toml", "h2")
            .await
            .unwrap();
        assert_eq!(a.id, b.id);
        assert_eq!(b.path, "exp/moved.toml");
        assert_eq!(b.content_hash, "h2");
        assert_eq!(b.created_ms, a.created_ms);
        let all = store.experiments().await.unwrap();
        assert_eq!(all, vec![b.clone()]);
        assert_eq!(store.experiment_by_name("ablation").await.unwrap(), Some(b));
        assert_eq!(store.experiment_by_name("other").await.unwrap(), None);
    }
}
