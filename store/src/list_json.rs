//! Fast run lists: SQLite builds one JSON document for the whole list, which serde parses.
//!
//! sqlx copies every column of every row into its own value and hands rows from SQLite's thread
//! one by one; for 10k runs with 26 columns that alone took hundreds of milliseconds. One JSON
//! text per list keeps the TUI's refresh of 10k runs (with summaries) far below 100 ms.

use serde::de::{self, Deserializer};
use serde::Deserialize;
use sqlx::{QueryBuilder, Sqlite};

use crate::error::Result;
use crate::rows::{Axes, MetricSummary, RunRow, RunWithSummaries};
use crate::runs::{push_filter, RunFilter};
use crate::types::{ExperimentId, FailureClass, Goal, RunId, RunStatus};

/// JSON has no infinities (SQLite writes them as 9e999, which serde refuses): pass them as text.
fn real(col: &str) -> String {
    format!(
        "CASE WHEN abs({col}) > 1.7976931348623157e308 \
              THEN CASE WHEN {col} > 0 THEN 'inf' ELSE '-inf' END ELSE {col} END"
    )
}

fn de_real<'de, D: Deserializer<'de>>(d: D) -> std::result::Result<Option<f64>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Real {
        Number(f64),
        Text(String),
    }
    match Option::<Real>::deserialize(d)? {
        None => Ok(None),
        Some(Real::Number(v)) => Ok(Some(v)),
        Some(Real::Text(t)) => match t.as_str() {
            "inf" => Ok(Some(f64::INFINITY)),
            "-inf" => Ok(Some(f64::NEG_INFINITY)),
            other => Err(de::Error::custom(format!(
                "expected a number, got {other:?}"
            ))),
        },
    }
}

const RUN_FIELDS: &str = "r.id, r.experiment_id, e.name, r.hash, r.cell_key, json(r.axes), \
    r.task, r.status, r.failure_class, r.failure_message, r.worker, r.host, r.pid, r.device, \
    r.engine_version, r.created_ms, r.started_ms, r.ended_ms, r.heartbeat_ms, r.attempts, \
    r.cancel_requested, r.depends_on, r.checkpoint_path, r.checkpoint_step, r.progress_step, \
    r.progress_total";

/// One run as `json_array(RUN_FIELDS, summaries?)`.
#[derive(Deserialize)]
struct RunJson(
    RunId,
    ExperimentId,
    String,
    String,
    String,
    Axes,
    String,
    RunStatus,
    Option<FailureClass>,
    Option<String>,
    Option<String>,
    Option<String>,
    Option<i64>,
    Option<String>,
    Option<String>,
    i64,
    Option<i64>,
    Option<i64>,
    Option<i64>,
    i64,
    i64,
    Option<RunId>,
    Option<String>,
    Option<i64>,
    Option<i64>,
    Option<i64>,
);

/// One summary as `json_array(run_id, key, goal, ...)`.
#[derive(Deserialize)]
struct SummaryJson(
    RunId,
    String,
    Option<Goal>,
    i64,
    i64,
    #[serde(deserialize_with = "de_real")] Option<f64>,
    Option<i64>,
    #[serde(deserialize_with = "de_real")] Option<f64>,
    #[serde(deserialize_with = "de_real")] Option<f64>,
    #[serde(deserialize_with = "de_real")] Option<f64>,
    Option<i64>,
);

impl From<SummaryJson> for MetricSummary {
    fn from(s: SummaryJson) -> Self {
        MetricSummary {
            key: s.1,
            goal: s.2,
            count: s.3,
            nan_count: s.4,
            // With a last step, a NULL last value was a NaN point.
            last: s.6.map(|_| s.5.unwrap_or(f64::NAN)),
            last_step: s.6,
            min: s.7,
            max: s.8,
            best: s.9,
            best_step: s.10,
        }
    }
}

impl RunJson {
    fn into_row(self) -> RunRow {
        RunRow {
            id: self.0,
            experiment_id: self.1,
            experiment: self.2,
            hash: self.3,
            cell_key: self.4,
            axes: self.5,
            task: self.6,
            status: self.7,
            failure_class: self.8,
            failure_message: self.9,
            worker: self.10,
            host: self.11,
            pid: self.12,
            device: self.13,
            engine_version: self.14,
            created_ms: self.15,
            started_ms: self.16,
            ended_ms: self.17,
            heartbeat_ms: self.18,
            attempts: self.19,
            cancel_requested: self.20 != 0,
            depends_on: self.21,
            checkpoint_path: self.22,
            checkpoint_step: self.23,
            progress_step: self.24,
            progress_total: self.25,
        }
    }
}

fn parse<T: serde::de::DeserializeOwned>(text: &str, what: &str) -> Result<T> {
    serde_json::from_str(text).map_err(|e| {
        sqlx::Error::ColumnDecode {
            index: what.to_owned(),
            source: Box::new(e),
        }
        .into()
    })
}

/// The runs matching `filter` (by id), with their summaries when `with_summaries`, read from
/// one snapshot.
pub(crate) async fn list(
    pool: &sqlx::SqlitePool,
    filter: &RunFilter,
    with_summaries: bool,
) -> Result<Vec<RunWithSummaries>> {
    let mut tx = pool.begin().await?;
    let mut qb = QueryBuilder::<Sqlite>::new("SELECT json_group_array(json_array(");
    qb.push(RUN_FIELDS);
    qb.push(")) FROM (SELECT r.id AS id FROM runs r");
    push_filter(&mut qb, filter);
    qb.push(") sel JOIN runs r ON r.id = sel.id JOIN experiments e ON e.id = r.experiment_id");
    let text: String = qb.build_query_scalar().fetch_one(&mut *tx).await?;
    let mut runs: Vec<RunWithSummaries> = parse::<Vec<RunJson>>(&text, "run list")?
        .into_iter()
        .map(|r| RunWithSummaries {
            run: r.into_row(),
            summaries: Vec::new(),
        })
        .collect();
    // Aggregation order is not guaranteed by SQL.
    runs.sort_by_key(|r| r.run.id);

    if with_summaries && !runs.is_empty() {
        let mut qb = QueryBuilder::<Sqlite>::new(format!(
            "SELECT json_group_array(json_array(s.run_id, s.key, s.goal, s.count, s.nan_count, \
                 {}, s.last_step, {}, {}, {}, s.best_step)) \
             FROM metric_summaries s WHERE s.run_id IN (SELECT r.id FROM runs r",
            real("s.last"),
            real("s.min"),
            real("s.max"),
            real("s.best"),
        ));
        push_filter(&mut qb, filter);
        qb.push(")");
        if !filter.summary_keys.is_empty() {
            qb.push(" AND s.key IN (");
            let mut list = qb.separated(", ");
            for key in &filter.summary_keys {
                list.push_bind(key.clone());
            }
            qb.push(")");
        }
        let text: String = qb.build_query_scalar().fetch_one(&mut *tx).await?;
        let mut summaries = parse::<Vec<SummaryJson>>(&text, "summary list")?;
        summaries.sort_by(|a, b| (a.0, &a.1).cmp(&(b.0, &b.1)));
        // Both lists are sorted by run id: walk them together.
        let mut at = 0;
        for s in summaries {
            while at < runs.len() && runs[at].run.id < s.0 {
                at += 1;
            }
            if let Some(item) = runs.get_mut(at).filter(|r| r.run.id == s.0) {
                item.summaries.push(MetricSummary::from(s));
            }
        }
    }
    tx.commit().await?;
    Ok(runs)
}
