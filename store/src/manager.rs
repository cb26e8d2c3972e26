//! ManagerTower manager weights: how much each cross-modal layer's manager takes from each
//! unimodal layer, over training.

use crate::error::{Result, StoreError};
use crate::rows::ManagerWeightRow;
use crate::types::RunId;
use crate::Store;

/// Rows per multi-row INSERT (6 bound values each).
const INSERT_CHUNK: usize = 500;

/// Multi-row insert with anonymous `?` parameters (named ones are looked up by a linear scan).
fn insert_sql(rows: usize) -> String {
    let mut sql = String::from(
        "INSERT OR IGNORE INTO manager_weights (run_id, step, modality, layer, expert, weight) \
         VALUES ",
    );
    for i in 0..rows {
        sql.push_str(if i == 0 {
            "(?, ?, ?, ?, ?, ?)"
        } else {
            ", (?, ?, ?, ?, ?, ?)"
        });
    }
    sql
}

impl Store {
    /// Stores manager weights of `run` in one transaction; a `(step, modality, layer, expert)`
    /// already stored is ignored. Returns how many were new.
    pub async fn ingest_manager_weights(
        &self,
        run: RunId,
        weights: &[ManagerWeightRow],
    ) -> Result<u64> {
        if weights.is_empty() {
            return Ok(0);
        }
        let mut tx = self.write_tx().await?;
        let exists: Option<i64> = sqlx::query_scalar("SELECT 1 FROM runs WHERE id = ?1")
            .bind(run)
            .fetch_optional(&mut *tx)
            .await?;
        if exists.is_none() {
            return Err(StoreError::UnknownRun(run));
        }
        let mut inserted = 0;
        for chunk in weights.chunks(INSERT_CHUNK) {
            let sql = insert_sql(chunk.len());
            let mut query = sqlx::query(&sql);
            for w in chunk {
                query = query
                    .bind(run)
                    .bind(w.step)
                    .bind(w.value.modality.as_str())
                    .bind(w.value.layer)
                    .bind(w.value.expert)
                    .bind(w.value.weight);
            }
            inserted += query.execute(&mut *tx).await?.rows_affected();
        }
        tx.commit().await?;
        Ok(inserted)
    }

    /// The steps at which `run` recorded manager weights, ascending.
    pub async fn manager_weight_steps(&self, run: RunId) -> Result<Vec<i64>> {
        Ok(sqlx::query_scalar(
            "SELECT DISTINCT step FROM manager_weights WHERE run_id = ?1 ORDER BY step",
        )
        .bind(run)
        .fetch_all(&self.pool)
        .await?)
    }

    /// The manager weights of `run` at `step`, or at its last recorded step with `None`, ordered
    /// by modality, layer, expert. Empty when there are none.
    pub async fn manager_weights(
        &self,
        run: RunId,
        step: Option<i64>,
    ) -> Result<Vec<ManagerWeightRow>> {
        Ok(sqlx::query_as::<_, ManagerWeightRow>(
            "SELECT step, modality, layer, expert, weight FROM manager_weights \
             WHERE run_id = ?1 \
               AND step = COALESCE(?2, (SELECT MAX(step) FROM manager_weights WHERE run_id = ?1)) \
             ORDER BY modality, layer, expert",
        )
        .bind(run)
        .bind(step)
        .fetch_all(&self.pool)
        .await?)
    }
}
