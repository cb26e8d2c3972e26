//! Row mappings of the row types, for this backend's rows.

use std::str::FromStr;

use ::experiments::run::ManagerWeight;
use sqlx::{FromRow, Row};

use crate::rows::{
    nan_if_null, Artifact, ExperimentRow, LogLine, ManagerWeightRow, MetricPoint, MetricSummary,
    Param, RunRow, SeriesPoint, WorkerRow,
};
use crate::types::UnknownValue;

use super::DbRow;

fn parse_text<T: FromStr<Err = UnknownValue>>(row: &DbRow, col: &str) -> sqlx::Result<T> {
    let text: String = row.try_get(col)?;
    text.parse()
        .map_err(|e: UnknownValue| sqlx::Error::ColumnDecode {
            index: col.to_owned(),
            source: Box::new(e),
        })
}

fn parse_opt_text<T: FromStr<Err = UnknownValue>>(
    row: &DbRow,
    col: &str,
) -> sqlx::Result<Option<T>> {
    let text: Option<String> = row.try_get(col)?;
    text.map(|t| {
        t.parse()
            .map_err(|e: UnknownValue| sqlx::Error::ColumnDecode {
                index: col.to_owned(),
                source: Box::new(e),
            })
    })
    .transpose()
}

fn parse_json<T: serde::de::DeserializeOwned>(row: &DbRow, col: &str) -> sqlx::Result<T> {
    let text: String = row.try_get(col)?;
    serde_json::from_str(&text).map_err(|e| sqlx::Error::ColumnDecode {
        index: col.to_owned(),
        source: Box::new(e),
    })
}

impl FromRow<'_, DbRow> for RunRow {
    fn from_row(row: &DbRow) -> sqlx::Result<Self> {
        Ok(RunRow {
            id: row.try_get("id")?,
            experiment_id: row.try_get("experiment_id")?,
            experiment: row.try_get("experiment")?,
            hash: row.try_get("hash")?,
            cell_key: row.try_get("cell_key")?,
            axes: parse_json(row, "axes")?,
            task: row.try_get("task")?,
            status: parse_text(row, "status")?,
            failure_class: parse_opt_text(row, "failure_class")?,
            failure_message: row.try_get("failure_message")?,
            worker: row.try_get("worker")?,
            host: row.try_get("host")?,
            pid: row.try_get("pid")?,
            device: row.try_get("device")?,
            engine_version: row.try_get("engine_version")?,
            created_ms: row.try_get("created_ms")?,
            started_ms: row.try_get("started_ms")?,
            ended_ms: row.try_get("ended_ms")?,
            heartbeat_ms: row.try_get("heartbeat_ms")?,
            attempts: row.try_get("attempts")?,
            cancel_requested: row.try_get("cancel_requested")?,
            depends_on: row.try_get("depends_on")?,
            checkpoint_path: row.try_get("checkpoint_path")?,
            checkpoint_step: row.try_get("checkpoint_step")?,
            progress_step: row.try_get("progress_step")?,
            progress_total: row.try_get("progress_total")?,
        })
    }
}

impl FromRow<'_, DbRow> for ExperimentRow {
    fn from_row(row: &DbRow) -> sqlx::Result<Self> {
        Ok(ExperimentRow {
            id: row.try_get("id")?,
            name: row.try_get("name")?,
            path: row.try_get("path")?,
            content_hash: row.try_get("content_hash")?,
            created_ms: row.try_get("created_ms")?,
            updated_ms: row.try_get("updated_ms")?,
        })
    }
}

impl FromRow<'_, DbRow> for Param {
    fn from_row(row: &DbRow) -> sqlx::Result<Self> {
        Ok(Param {
            key: row.try_get("key")?,
            value: parse_json(row, "value")?,
        })
    }
}

impl FromRow<'_, DbRow> for MetricSummary {
    fn from_row(row: &DbRow) -> sqlx::Result<Self> {
        let last_step: Option<i64> = row.try_get("last_step")?;
        let last: Option<f64> = row.try_get("last")?;
        Ok(MetricSummary {
            key: row.try_get("key")?,
            goal: parse_opt_text(row, "goal")?,
            count: row.try_get("count")?,
            nan_count: row.try_get("nan_count")?,
            // With a last step, a NULL last value was a NaN point.
            last: last_step.map(|_| nan_if_null(last)),
            last_step,
            min: row.try_get("min")?,
            max: row.try_get("max")?,
            best: row.try_get("best")?,
            best_step: row.try_get("best_step")?,
        })
    }
}

impl FromRow<'_, DbRow> for MetricPoint {
    fn from_row(row: &DbRow) -> sqlx::Result<Self> {
        Ok(MetricPoint {
            key: row.try_get("key")?,
            step: row.try_get("step")?,
            value: nan_if_null(row.try_get("value")?),
            wall_ms: row.try_get("wall_ms")?,
        })
    }
}

impl FromRow<'_, DbRow> for SeriesPoint {
    fn from_row(row: &DbRow) -> sqlx::Result<Self> {
        Ok(SeriesPoint {
            step: row.try_get("step")?,
            value: nan_if_null(row.try_get("value")?),
            wall_ms: row.try_get("wall_ms")?,
        })
    }
}

impl FromRow<'_, DbRow> for ManagerWeightRow {
    fn from_row(row: &DbRow) -> sqlx::Result<Self> {
        Ok(ManagerWeightRow {
            step: row.try_get("step")?,
            value: ManagerWeight {
                modality: parse_text(row, "modality")?,
                layer: {
                    let layer: i64 = row.try_get("layer")?;
                    u32::try_from(layer).map_err(|e| sqlx::Error::ColumnDecode {
                        index: "layer".to_owned(),
                        source: Box::new(e),
                    })?
                },
                expert: row.try_get("expert")?,
                weight: nan_if_null(row.try_get("weight")?),
            },
        })
    }
}

impl FromRow<'_, DbRow> for Artifact {
    fn from_row(row: &DbRow) -> sqlx::Result<Self> {
        Ok(Artifact {
            id: row.try_get("id")?,
            run_id: row.try_get("run_id")?,
            kind: parse_text(row, "kind")?,
            path: row.try_get("path")?,
            step: row.try_get("step")?,
            size_bytes: row.try_get("size_bytes")?,
            created_ms: row.try_get("created_ms")?,
        })
    }
}

impl FromRow<'_, DbRow> for LogLine {
    fn from_row(row: &DbRow) -> sqlx::Result<Self> {
        Ok(LogLine {
            run_id: row.try_get("run_id")?,
            seq: row.try_get("seq")?,
            attempt: row.try_get("attempt")?,
            time_ms: row.try_get("time_ms")?,
            level: row.try_get("level")?,
            text: row.try_get("text")?,
        })
    }
}

impl FromRow<'_, DbRow> for WorkerRow {
    fn from_row(row: &DbRow) -> sqlx::Result<Self> {
        Ok(WorkerRow {
            id: row.try_get("id")?,
            host: row.try_get("host")?,
            pid: row.try_get("pid")?,
            device: row.try_get("device")?,
            engine_version: row.try_get("engine_version")?,
            started_ms: row.try_get("started_ms")?,
            seen_ms: row.try_get("seen_ms")?,
            run_id: row.try_get("run_id")?,
        })
    }
}
