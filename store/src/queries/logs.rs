//! Queries of `logs` (compiled once per backend).

use crate::error::{Result, StoreError};
use crate::logs::NewLogLine;
use crate::rows::LogLine;
use crate::types::RunId;

use super::Backend;

impl Backend<'_> {
    pub(crate) async fn append_logs(
        &self,
        run: RunId,
        lines: &[NewLogLine],
    ) -> Result<std::ops::RangeInclusive<i64>> {
        let mut tx = self.write_tx().await?;
        let state: Option<(i64, i64)> = sqlx::query_as(
            "SELECT attempts, \
                 COALESCE((SELECT MAX(seq) FROM log_lines WHERE run_id = $1), 0) \
             FROM runs WHERE id = $1",
        )
        .bind(run)
        .fetch_optional(&mut *tx)
        .await?;
        let Some((attempt, last)) = state else {
            return Err(StoreError::UnknownRun(run));
        };
        let mut seq = last;
        for line in lines {
            seq += 1;
            sqlx::query(
                "INSERT INTO log_lines (run_id, seq, attempt, time_ms, level, text) \
                 VALUES ($1, $2, $3, $4, $5, $6)",
            )
            .bind(run)
            .bind(seq)
            .bind(attempt)
            .bind(line.time_ms)
            .bind(&line.level)
            .bind(&line.text)
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        Ok(last + 1..=seq)
    }

    pub(crate) async fn log_lines(
        &self,
        run: RunId,
        after_seq: Option<i64>,
        limit: Option<i64>,
    ) -> Result<Vec<LogLine>> {
        Ok(sqlx::query_as::<_, LogLine>(
            "SELECT run_id, seq, attempt, time_ms, level, text FROM log_lines \
             WHERE run_id = $1 AND seq > COALESCE($2, 0) ORDER BY seq \
             LIMIT COALESCE($3, 9223372036854775807)",
        )
        .bind(run)
        .bind(after_seq)
        .bind(limit)
        .fetch_all(self.pool)
        .await?)
    }

    pub(crate) async fn log_tail(&self, run: RunId, n: i64) -> Result<Vec<LogLine>> {
        let mut lines = sqlx::query_as::<_, LogLine>(
            "SELECT run_id, seq, attempt, time_ms, level, text FROM log_lines \
             WHERE run_id = $1 ORDER BY seq DESC LIMIT $2",
        )
        .bind(run)
        .bind(n)
        .fetch_all(self.pool)
        .await?;
        lines.reverse();
        Ok(lines)
    }
}
