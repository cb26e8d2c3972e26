//! Fast run lists: the database builds one JSON document for the whole list, which serde parses.
//!
//! sqlx copies every column of every row into its own value and hands rows from SQLite's thread
//! one by one; for 10k runs with 26 columns that alone took hundreds of milliseconds. One JSON
//! text per list, with each run's summaries precomputed as JSON at write time (triggers, on both
//! backends), keeps the refresh of 10k runs with their summaries under 100 ms.

use serde::de::{self, Deserializer};
use serde::Deserialize;
use sqlx::QueryBuilder;

use crate::error::Result;
use crate::rows::{Axes, MetricSummary, RunRow, RunWithSummaries};
use crate::runs::RunFilter;
use crate::types::{ExperimentId, FailureClass, Goal, RunId, RunStatus};

use super::runs::push_filter;
use super::{Db, DIALECT};
use crate::Dialect;

/// A summary value: a number, `null`, or `"inf"`/`"-inf"`. A hand-written visitor: serde's
/// untagged enums buffer every value first, which made parsing the list several times slower.
fn de_real<'de, D: Deserializer<'de>>(d: D) -> std::result::Result<Option<f64>, D::Error> {
    struct Real;
    impl<'de> de::Visitor<'de> for Real {
        type Value = Option<f64>;

        fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str("a number, null, \"inf\" or \"-inf\"")
        }

        fn visit_f64<E: de::Error>(self, v: f64) -> std::result::Result<Self::Value, E> {
            Ok(Some(v))
        }

        fn visit_i64<E: de::Error>(self, v: i64) -> std::result::Result<Self::Value, E> {
            Ok(Some(v as f64))
        }

        fn visit_u64<E: de::Error>(self, v: u64) -> std::result::Result<Self::Value, E> {
            Ok(Some(v as f64))
        }

        fn visit_str<E: de::Error>(self, v: &str) -> std::result::Result<Self::Value, E> {
            match v {
                // SQLite's summaries say "inf", PostgreSQL's JSON "Infinity".
                "inf" | "Infinity" => Ok(Some(f64::INFINITY)),
                "-inf" | "-Infinity" => Ok(Some(f64::NEG_INFINITY)),
                other => Err(E::custom(format!("expected a number, got {other:?}"))),
            }
        }

        fn visit_unit<E: de::Error>(self) -> std::result::Result<Self::Value, E> {
            Ok(None)
        }

        fn visit_none<E: de::Error>(self) -> std::result::Result<Self::Value, E> {
            Ok(None)
        }
    }
    d.deserialize_any(Real)
}

const RUN_FIELDS: &str = "r.id, r.experiment_id, e.name, r.hash, r.cell_key, AXES, \
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

/// One summary as stored in `runs.summaries_json`: `[key, goal, count, nan_count, last,
/// last_step, min, max, best, best_step]`.
#[derive(Deserialize)]
struct SummaryJson(
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
            key: s.0,
            goal: s.1,
            count: s.2,
            nan_count: s.3,
            // With a last step, a NULL last value was a NaN point.
            last: s.5.map(|_| s.4.unwrap_or(f64::NAN)),
            last_step: s.5,
            min: s.6,
            max: s.7,
            best: s.8,
            best_step: s.9,
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

/// The runs matching `filter` (by id), with their summaries when `with_summaries` (only
/// `filter.summary_keys` when given), in one statement, so from one snapshot.
pub(crate) async fn list(
    pool: &sqlx::Pool<Db>,
    filter: &RunFilter,
    with_summaries: bool,
) -> Result<Vec<RunWithSummaries>> {
    // One line `[[run fields], [summaries]]` per run: the summaries are already JSON (see the
    // `run_summaries_json` migration), so nothing is formatted here. JSON escapes newlines in
    // strings, so lines split the text into runs, which are parsed on all cores.
    let mut qb = match DIALECT {
        Dialect::Sqlite => {
            let mut qb = QueryBuilder::<Db>::new("SELECT coalesce(group_concat('[' || json_array(");
            qb.push(RUN_FIELDS.replace("AXES", "json(r.axes)"));
            qb.push(") || ',' || ");
            qb.push(if with_summaries {
                "r.summaries_json"
            } else {
                "'[]'"
            });
            qb.push(" || ']', char(10)), '')");
            qb.push(" FROM (SELECT r.id AS id FROM runs r");
            push_filter(&mut qb, filter);
            qb.push(
                ") sel JOIN runs r ON r.id = sel.id JOIN experiments e ON e.id = r.experiment_id",
            );
            qb
        }
        // The summaries are precomputed as on SQLite (the `run_summaries_json` migration of
        // PostgreSQL); PostgreSQL orders the lines itself.
        Dialect::Postgres => {
            let mut qb = QueryBuilder::<Db>::new("WITH sel AS (SELECT r.id AS id FROM runs r");
            push_filter(&mut qb, filter);
            qb.push(") SELECT coalesce(string_agg('[' || json_build_array(");
            qb.push(
                RUN_FIELDS
                    .replace("AXES", "r.axes::JSON")
                    .replace("r.cancel_requested", "r.cancel_requested::INT"),
            );
            qb.push(")::TEXT || ',' || ");
            qb.push(if with_summaries {
                "r.summaries_json"
            } else {
                "'[]'"
            });
            qb.push(" || ']', E'\\n' ORDER BY r.id), '')");
            qb.push(" FROM sel JOIN runs r ON r.id = sel.id JOIN experiments e ON e.id = r.experiment_id");
            qb
        }
    };
    let text: String = qb.build_query_scalar().fetch_one(pool).await?;
    let mut runs = parse_lines(&text, &filter.summary_keys)?;
    // SQLite's group_concat order is the scan's in practice, not a guarantee of SQL.
    if !runs.is_sorted_by_key(|r| r.run.id) {
        runs.sort_by_key(|r| r.run.id);
    }
    Ok(runs)
}

/// Parses one run per line, in parallel chunks for long lists.
fn parse_lines(text: &str, keys: &[String]) -> Result<Vec<RunWithSummaries>> {
    let lines: Vec<&str> = text.lines().filter(|l| !l.is_empty()).collect();
    let threads = std::thread::available_parallelism()
        .map_or(1, |n| n.get())
        .min(lines.len() / 2_000)
        .max(1);
    let one = |line: &str| -> Result<RunWithSummaries> {
        let (run, summaries) = parse::<(RunJson, Vec<SummaryJson>)>(line, "run list")?;
        Ok(RunWithSummaries {
            run: run.into_row(),
            summaries: summaries
                .into_iter()
                .filter(|s| keys.is_empty() || keys.contains(&s.0))
                .map(MetricSummary::from)
                .collect(),
        })
    };
    if threads == 1 {
        return lines.into_iter().map(one).collect();
    }
    let chunk = lines.len().div_ceil(threads);
    std::thread::scope(|scope| {
        let handles: Vec<_> = lines
            .chunks(chunk)
            .map(|part| {
                scope.spawn(move || part.iter().map(|l| one(l)).collect::<Result<Vec<_>>>())
            })
            .collect();
        let mut out = Vec::with_capacity(lines.len());
        for h in handles {
            match h.join() {
                Ok(part) => out.extend(part?),
                Err(panic) => std::panic::resume_unwind(panic),
            }
        }
        Ok(out)
    })
}
