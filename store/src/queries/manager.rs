//! Queries of `manager` (compiled once per backend).

use crate::error::{Result, StoreError};
use crate::rows::ManagerWeightRow;
use crate::types::RunId;

use super::{values_list, Backend};

/// Rows per multi-row INSERT (6 bound values each).
const INSERT_CHUNK: usize = 500;

fn insert_sql(rows: usize) -> String {
    format!(
        "INSERT INTO manager_weights (run_id, step, modality, layer, expert, weight) VALUES {} \
         ON CONFLICT DO NOTHING",
        values_list(rows, 6)
    )
}

impl Backend<'_> {
    pub(crate) async fn ingest_manager_weights(
        &self,
        run: RunId,
        weights: &[ManagerWeightRow],
    ) -> Result<u64> {
        if weights.is_empty() {
            return Ok(0);
        }
        let mut tx = self.write_tx().await?;
        let exists: Option<RunId> = sqlx::query_scalar("SELECT id FROM runs WHERE id = $1")
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
                    .bind(i64::from(w.value.layer))
                    .bind(w.value.expert)
                    .bind(Some(w.value.weight).filter(|v| !v.is_nan()));
            }
            inserted += query.execute(&mut *tx).await?.rows_affected();
        }
        tx.commit().await?;
        Ok(inserted)
    }

    pub(crate) async fn manager_weight_steps(&self, run: RunId) -> Result<Vec<i64>> {
        Ok(sqlx::query_scalar(
            "SELECT DISTINCT step FROM manager_weights WHERE run_id = $1 ORDER BY step",
        )
        .bind(run)
        .fetch_all(self.pool)
        .await?)
    }

    pub(crate) async fn manager_weights(
        &self,
        run: RunId,
        step: Option<i64>,
    ) -> Result<Vec<ManagerWeightRow>> {
        Ok(sqlx::query_as::<_, ManagerWeightRow>(
            "SELECT step, modality, layer, expert, weight FROM manager_weights \
             WHERE run_id = $1 \
               AND step = COALESCE($2, (SELECT MAX(step) FROM manager_weights WHERE run_id = $1)) \
             ORDER BY modality, layer, expert",
        )
        .bind(run)
        .bind(step)
        .fetch_all(self.pool)
        .await?)
    }

    pub(crate) async fn manager_weights_between(
        &self,
        run: RunId,
        after: Option<i64>,
        upto: i64,
    ) -> Result<Vec<ManagerWeightRow>> {
        Ok(sqlx::query_as::<_, ManagerWeightRow>(
            "SELECT step, modality, layer, expert, weight FROM manager_weights \
             WHERE run_id = $1 AND ($2 IS NULL OR step > $2) AND step <= $3 \
             ORDER BY step, modality, layer, expert",
        )
        .bind(run)
        .bind(after)
        .bind(upto)
        .fetch_all(self.pool)
        .await?)
    }

    pub(crate) async fn newest_step(&self, run: RunId) -> Result<Option<i64>> {
        Ok(sqlx::query_scalar(
            "SELECT max(step) FROM ( \
                 SELECT max(step) AS step FROM metric_points \
                 WHERE run_id = $1 AND key NOT LIKE 'system/%' \
                 UNION ALL SELECT max(step) FROM manager_weights WHERE run_id = $1) AS steps",
        )
        .bind(run)
        .fetch_one(self.pool)
        .await?)
    }

    pub(crate) async fn step_and_log_counts(&self, run: RunId) -> Result<(i64, i64, i64)> {
        Ok(sqlx::query_as(
            "SELECT \
               (SELECT COUNT(*) FROM ( \
                  SELECT step FROM metric_points WHERE run_id = $1 AND key NOT LIKE 'system/%' \
                  UNION SELECT step FROM manager_weights WHERE run_id = $1) AS steps), \
               (SELECT COUNT(*) FROM log_lines WHERE run_id = $1), \
               (SELECT COUNT(DISTINCT step) FROM metric_points \
                  WHERE run_id = $1 AND key LIKE 'system/%')",
        )
        .bind(run)
        .fetch_one(self.pool)
        .await?)
    }
}
