//! Queries of `runs` (compiled once per backend).

use serde_json::Value;
use sqlx::{QueryBuilder, Row};
use tracing::instrument;

use crate::error::{Result, StoreError};
use crate::now_ms;
use crate::rows::{Param, QueueState, RunDetail, RunRow, RunWithSummaries, RUN_COLUMNS};
use crate::runs::{AxisFilter, CreatedRun, NewRun, RunFilter, IN_CHUNK};
use crate::types::{ExperimentId, RunId, RunStatus};
use crate::Dialect;

use super::list_json;
use super::{Backend, Db, DIALECT};

fn json_path(axis: &str) -> String {
    format!("$.\"{}\"", axis.replace('\\', "\\\\").replace('"', "\\\""))
}

/// ` AND` the axis `axis.axis` of run `r` equals `axis.value` (a number equals a number only,
/// a string a string only), with SQLite's JSON functions.
fn push_axis_sqlite(qb: &mut QueryBuilder<'_, Db>, axis: &AxisFilter) {
    let path = json_path(&axis.axis);
    match &axis.value {
        Value::Number(n) => {
            qb.push(" AND (r.axes ->> ")
                .push_bind(path)
                .push(") = ")
                .push_bind(n.as_f64().unwrap_or(f64::NAN));
        }
        Value::String(s) => {
            qb.push(" AND json_type(r.axes, ")
                .push_bind(path.clone())
                .push(") = 'text' AND (r.axes ->> ")
                .push_bind(path)
                .push(") = ")
                .push_bind(s.clone());
        }
        other => {
            qb.push(" AND (r.axes -> ")
                .push_bind(path)
                .push(") = ")
                .push_bind(other.to_string());
        }
    }
}

/// The same with PostgreSQL's `jsonb` (whose equality compares numbers as numbers).
fn push_axis_postgres(qb: &mut QueryBuilder<'_, Db>, axis: &AxisFilter) {
    qb.push(" AND (r.axes::JSONB -> ")
        .push_bind(axis.axis.clone())
        .push(") = ");
    match &axis.value {
        Value::Number(n) => {
            qb.push("to_jsonb(")
                .push_bind(n.as_f64().unwrap_or(f64::NAN))
                .push("::DOUBLE PRECISION)");
        }
        Value::String(s) => {
            qb.push("to_jsonb(").push_bind(s.clone()).push("::TEXT)");
        }
        other => {
            qb.push("(").push_bind(other.to_string()).push("::JSONB)");
        }
    }
}

/// Appends ` WHERE ...` for `filter` on alias `r` (the runs table), ordered by id, limited.
pub(crate) fn push_filter(qb: &mut QueryBuilder<'_, Db>, filter: &RunFilter) {
    qb.push(" WHERE 1 = 1");
    if let Some(experiment) = filter.experiment {
        qb.push(" AND r.experiment_id = ").push_bind(experiment);
    }
    if !filter.statuses.is_empty() {
        qb.push(" AND r.status IN (");
        let mut list = qb.separated(", ");
        for status in &filter.statuses {
            list.push_bind(status.as_str());
        }
        qb.push(")");
    }
    if let Some(task) = &filter.task {
        qb.push(" AND r.task = ").push_bind(task.clone());
    }
    for axis in &filter.axes {
        match DIALECT {
            Dialect::Sqlite => push_axis_sqlite(qb, axis),
            Dialect::Postgres => push_axis_postgres(qb, axis),
        }
    }
    qb.push(" ORDER BY r.id");
    if let Some(limit) = filter.limit {
        qb.push(" LIMIT ").push_bind(limit);
    }
}

pub(crate) async fn fetch_run<'e, E>(executor: E, id: RunId) -> Result<Option<RunRow>>
where
    E: sqlx::Executor<'e, Database = Db>,
{
    Ok(sqlx::query_as::<_, RunRow>(&format!(
        "SELECT {RUN_COLUMNS} FROM runs r JOIN experiments e ON e.id = r.experiment_id \
         WHERE r.id = $1"
    ))
    .bind(id)
    .fetch_optional(executor)
    .await?)
}

impl Backend<'_> {
    #[instrument(level = "trace", skip_all, err(level = "debug"))]
    pub(crate) async fn create_runs(
        &self,
        experiment: ExperimentId,
        runs: &[NewRun],
    ) -> Result<Vec<CreatedRun>> {
        let now = now_ms();
        let mut tx = self.write_tx().await?;
        let mut created = Vec::with_capacity(runs.len());
        for run in runs {
            let depends_on: Option<RunId> = match &run.depends_on {
                None => None,
                Some(hash) => Some(
                    sqlx::query_scalar(
                        "SELECT id FROM runs WHERE hash = $1 \
                         ORDER BY experiment_id = $2 DESC, id LIMIT 1",
                    )
                    .bind(hash)
                    .bind(experiment)
                    .fetch_optional(&mut *tx)
                    .await?
                    .ok_or_else(|| StoreError::UnknownDependency {
                        run: run.cell_key.clone(),
                        hash: hash.clone(),
                    })?,
                ),
            };
            let axes = Value::Object(run.axes.clone()).to_string();
            let inserted: Option<RunId> = sqlx::query_scalar(
                "INSERT INTO runs (experiment_id, hash, cell_key, axes, task, created_ms, depends_on) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7) \
                 ON CONFLICT (experiment_id, hash) DO NOTHING RETURNING id",
            )
            .bind(experiment)
            .bind(&run.hash)
            .bind(&run.cell_key)
            .bind(axes)
            .bind(&run.task)
            .bind(now)
            .bind(depends_on)
            .fetch_optional(&mut *tx)
            .await?;
            let (id, was_inserted) = match inserted {
                Some(id) => {
                    for (key, value) in &run.params {
                        sqlx::query(
                            "INSERT INTO params (run_id, key, value) VALUES ($1, $2, $3) \
                             ON CONFLICT (run_id, key) DO UPDATE SET value = excluded.value",
                        )
                        .bind(id)
                        .bind(key)
                        .bind(value.to_string())
                        .execute(&mut *tx)
                        .await?;
                    }
                    (id, true)
                }
                None => {
                    let id = sqlx::query_scalar(
                        "SELECT id FROM runs WHERE experiment_id = $1 AND hash = $2",
                    )
                    .bind(experiment)
                    .bind(&run.hash)
                    .fetch_one(&mut *tx)
                    .await?;
                    (id, false)
                }
            };
            created.push(CreatedRun {
                id,
                hash: run.hash.clone(),
                inserted: was_inserted,
            });
        }
        tx.commit().await?;
        Ok(created)
    }

    pub(crate) async fn run(&self, id: RunId) -> Result<Option<RunRow>> {
        fetch_run(self.pool, id).await
    }

    pub(crate) async fn run_detail(&self, id: RunId) -> Result<Option<RunDetail>> {
        let Some(run) = self.run(id).await? else {
            return Ok(None);
        };
        Ok(Some(RunDetail {
            params: self.params(id).await?,
            summaries: self.summaries(id).await?,
            artifacts: self.artifacts(id).await?,
            run,
        }))
    }

    pub(crate) async fn params(&self, run: RunId) -> Result<Vec<Param>> {
        Ok(sqlx::query_as::<_, Param>(
            "SELECT key, value FROM params WHERE run_id = $1 ORDER BY key",
        )
        .bind(run)
        .fetch_all(self.pool)
        .await?)
    }

    pub(crate) async fn list_runs(&self, filter: &RunFilter) -> Result<Vec<RunRow>> {
        let runs = list_json::list(self.pool, filter, false).await?;
        Ok(runs.into_iter().map(|r| r.run).collect())
    }

    #[instrument(level = "trace", skip_all, err(level = "debug"))]
    pub(crate) async fn list_runs_with_summaries(
        &self,
        filter: &RunFilter,
    ) -> Result<Vec<RunWithSummaries>> {
        list_json::list(self.pool, filter, true).await
    }

    pub(crate) async fn runs_by_hash(&self, hashes: &[String]) -> Result<Vec<RunRow>> {
        let mut out = Vec::new();
        for chunk in hashes.chunks(IN_CHUNK) {
            let mut qb = QueryBuilder::<Db>::new(format!(
                "SELECT {RUN_COLUMNS} FROM runs r JOIN experiments e ON e.id = r.experiment_id \
                 WHERE r.hash IN ("
            ));
            let mut list = qb.separated(", ");
            for hash in chunk {
                list.push_bind(hash.clone());
            }
            qb.push(")");
            out.extend(qb.build_query_as::<RunRow>().fetch_all(self.pool).await?);
        }
        out.sort_by_key(|r| r.id);
        Ok(out)
    }

    pub(crate) async fn queue_state(&self, experiment: Option<ExperimentId>) -> Result<QueueState> {
        let rows = sqlx::query(
            "SELECT r.status AS status, COUNT(*) AS n, \
                 COUNT(*) FILTER (WHERE r.status = 'queued' \
                     AND (d.id IS NULL OR d.status = 'finished')) AS runnable, \
                 COUNT(*) FILTER (WHERE r.status = 'queued' \
                     AND d.status IN ('failed', 'crashed', 'cancelled')) AS blocked \
             FROM runs r LEFT JOIN runs d ON d.id = r.depends_on \
             WHERE $1 IS NULL OR r.experiment_id = $1 \
             GROUP BY r.status",
        )
        .bind(experiment)
        .fetch_all(self.pool)
        .await?;
        let mut state = QueueState::default();
        for row in rows {
            let status: String = row.try_get("status")?;
            let n: i64 = row.try_get("n")?;
            match status.parse::<RunStatus>() {
                Ok(RunStatus::Queued) => {
                    state.queued = n;
                    state.runnable = row.try_get("runnable")?;
                    state.blocked = row.try_get("blocked")?;
                }
                Ok(RunStatus::Running) => state.running = n,
                Ok(RunStatus::Finished) => state.finished = n,
                Ok(RunStatus::Failed) => state.failed = n,
                Ok(RunStatus::Crashed) => state.crashed = n,
                Ok(RunStatus::Cancelled) => state.cancelled = n,
                Err(e) => {
                    return Err(sqlx::Error::ColumnDecode {
                        index: "status".into(),
                        source: Box::new(e),
                    }
                    .into())
                }
            }
        }
        Ok(state)
    }

    pub(crate) async fn delete_runs(&self, runs: &[RunId]) -> Result<u64> {
        let mut tx = self.write_tx().await?;
        let mut deleted = 0;
        for &run in runs {
            // The two high-volume tables have no foreign key (see the telemetry migration).
            for table in ["metric_points", "manager_weights"] {
                sqlx::query(&format!("DELETE FROM {table} WHERE run_id = $1"))
                    .bind(run)
                    .execute(&mut *tx)
                    .await?;
            }
            deleted += sqlx::query("DELETE FROM runs WHERE id = $1")
                .bind(run)
                .execute(&mut *tx)
                .await?
                .rows_affected();
        }
        tx.commit().await?;
        Ok(deleted)
    }
}
