//! Runs: creating queued runs with their params, and the readers (lists, details, queue state).

use serde_json::Value;
use sqlx::{QueryBuilder, Row, Sqlite};
use tracing::instrument;

use crate::error::{Result, StoreError};
use crate::list_json;
use crate::rows::{Axes, Param, QueueState, RunDetail, RunRow, RunWithSummaries, RUN_COLUMNS};
use crate::types::{ExperimentId, RunId, RunStatus};
use crate::{now_ms, Store};

/// A run to queue.
#[derive(Debug, Clone, PartialEq)]
pub struct NewRun {
    /// Content hash: the run's identity within its experiment.
    pub hash: String,
    pub cell_key: String,
    pub axes: Axes,
    pub task: String,
    /// Flattened resolved config: `("model.num_layers", 6)`, ...
    pub params: Vec<(String, Value)>,
    /// Hash of the run that must finish first (e.g. the VLP pre-training of a fine-tuning run).
    /// Looked up in the same experiment first (runs earlier in the same call included), then in
    /// any experiment.
    pub depends_on: Option<String>,
}

/// What `create_runs` did for one `NewRun`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CreatedRun {
    pub id: RunId,
    pub hash: String,
    /// False when the experiment already had a run with this hash (left untouched).
    pub inserted: bool,
}

/// `axis = value` on a run's axes. Numbers compare numerically (`6` matches `6.0`).
#[derive(Debug, Clone, PartialEq)]
pub struct AxisFilter {
    pub axis: String,
    pub value: Value,
}

impl AxisFilter {
    pub fn new(axis: impl Into<String>, value: impl Into<Value>) -> Self {
        AxisFilter {
            axis: axis.into(),
            value: value.into(),
        }
    }

    /// Parses `axis=value` as typed on a command line: the value is read as JSON when it is a
    /// JSON scalar (`6`, `0.5`, `true`, `"6"`), otherwise taken as a string (`manager=adaptive`).
    /// Returns `None` when there is no `=` or the axis name is empty.
    pub fn parse(text: &str) -> Option<AxisFilter> {
        let (axis, raw) = text.split_once('=')?;
        let axis = axis.trim();
        if axis.is_empty() {
            return None;
        }
        let raw = raw.trim();
        let value = match serde_json::from_str::<Value>(raw) {
            Ok(v @ (Value::Number(_) | Value::Bool(_) | Value::String(_) | Value::Null)) => v,
            _ => Value::String(raw.to_owned()),
        };
        Some(AxisFilter::new(axis, value))
    }
}

/// Which runs a list shows. The default shows every run.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct RunFilter {
    pub experiment: Option<ExperimentId>,
    /// Any of these statuses (empty: all).
    pub statuses: Vec<RunStatus>,
    pub task: Option<String>,
    /// All of these must hold.
    pub axes: Vec<AxisFilter>,
    /// Only these metric summaries are loaded (empty: all).
    pub summary_keys: Vec<String>,
    /// At most this many runs (lowest ids first).
    pub limit: Option<i64>,
}

/// Largest number of values bound in one `IN (...)` list.
const IN_CHUNK: usize = 500;

fn json_path(axis: &str) -> String {
    format!("$.\"{}\"", axis.replace('\\', "\\\\").replace('"', "\\\""))
}

/// Appends ` WHERE ...` for `filter` on alias `r` (the runs table), ordered by id, limited.
pub(crate) fn push_filter(qb: &mut QueryBuilder<'_, Sqlite>, filter: &RunFilter) {
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
    qb.push(" ORDER BY r.id");
    if let Some(limit) = filter.limit {
        qb.push(" LIMIT ").push_bind(limit);
    }
}

pub(crate) async fn fetch_run<'e, E>(executor: E, id: RunId) -> Result<Option<RunRow>>
where
    E: sqlx::Executor<'e, Database = Sqlite>,
{
    Ok(sqlx::query_as::<_, RunRow>(&format!(
        "SELECT {RUN_COLUMNS} FROM runs r JOIN experiments e ON e.id = r.experiment_id \
         WHERE r.id = ?1"
    ))
    .bind(id)
    .fetch_optional(executor)
    .await?)
}

impl Store {
    /// Queues runs (status `queued`) in `experiment` with their params, in one transaction.
    /// A hash the experiment already has is left as it is (`inserted: false`).
    #[instrument(level = "trace", skip_all, err(level = "debug"))]
    pub async fn create_runs(
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
                        "SELECT id FROM runs WHERE hash = ?1 \
                         ORDER BY experiment_id = ?2 DESC, id LIMIT 1",
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
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7) \
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
                            "INSERT INTO params (run_id, key, value) VALUES (?1, ?2, ?3) \
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
                        "SELECT id FROM runs WHERE experiment_id = ?1 AND hash = ?2",
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

    /// One run, or `None`.
    pub async fn run(&self, id: RunId) -> Result<Option<RunRow>> {
        fetch_run(&self.pool, id).await
    }

    /// A run with its params, summaries and artifacts, or `None`.
    pub async fn run_detail(&self, id: RunId) -> Result<Option<RunDetail>> {
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

    /// The flattened config of a run, by key.
    pub async fn params(&self, run: RunId) -> Result<Vec<Param>> {
        Ok(sqlx::query_as::<_, Param>(
            "SELECT key, value FROM params WHERE run_id = ?1 ORDER BY key",
        )
        .bind(run)
        .fetch_all(&self.pool)
        .await?)
    }

    /// Runs matching `filter`, by id.
    pub async fn list_runs(&self, filter: &RunFilter) -> Result<Vec<RunRow>> {
        let runs = list_json::list(&self.pool, filter, false).await?;
        Ok(runs.into_iter().map(|r| r.run).collect())
    }

    /// Runs matching `filter` with their metric summaries (by key), by id, from one snapshot.
    #[instrument(level = "trace", skip_all, err(level = "debug"))]
    pub async fn list_runs_with_summaries(
        &self,
        filter: &RunFilter,
    ) -> Result<Vec<RunWithSummaries>> {
        list_json::list(&self.pool, filter, true).await
    }

    /// Runs (in any experiment) whose identity hash is one of `hashes`, by id. This is what a
    /// plan compares a grid against: a missing hash is new, and the status of a found one tells
    /// done / failed / running.
    pub async fn runs_by_hash(&self, hashes: &[String]) -> Result<Vec<RunRow>> {
        let mut out = Vec::new();
        for chunk in hashes.chunks(IN_CHUNK) {
            let mut qb = QueryBuilder::<Sqlite>::new(format!(
                "SELECT {RUN_COLUMNS} FROM runs r JOIN experiments e ON e.id = r.experiment_id \
                 WHERE r.hash IN ("
            ));
            let mut list = qb.separated(", ");
            for hash in chunk {
                list.push_bind(hash.clone());
            }
            qb.push(")");
            out.extend(qb.build_query_as::<RunRow>().fetch_all(&self.pool).await?);
        }
        out.sort_by_key(|r| r.id);
        Ok(out)
    }

    /// How many runs are in each state, for one experiment or (`None`) the whole store.
    pub async fn queue_state(&self, experiment: Option<ExperimentId>) -> Result<QueueState> {
        let rows = sqlx::query(
            "SELECT r.status AS status, COUNT(*) AS n, \
                 SUM(r.status = 'queued' AND (d.id IS NULL OR d.status = 'finished')) AS runnable, \
                 SUM(r.status = 'queued' AND d.status IN ('failed', 'crashed', 'cancelled')) \
                     AS blocked \
             FROM runs r LEFT JOIN runs d ON d.id = r.depends_on \
             WHERE ?1 IS NULL OR r.experiment_id = ?1 \
             GROUP BY r.status",
        )
        .bind(experiment)
        .fetch_all(&self.pool)
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
}
