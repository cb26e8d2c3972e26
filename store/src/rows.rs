//! Row types returned by the readers, and their hand-written `FromRow` mappings.

use serde::Serialize;

use ::experiments::run::ManagerWeight;

use crate::types::{ArtifactKind, ExperimentId, FailureClass, Goal, RunId, RunStatus};

/// JSON object of a run's grid axes, e.g. `{"manager": "adaptive", "layers": 6, "seed": 1}`.
pub type Axes = serde_json::Map<String, serde_json::Value>;

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ExperimentRow {
    pub id: ExperimentId,
    pub name: String,
    /// The experiment file it was last declared from.
    pub path: String,
    /// Content hash of that file when it was last declared.
    pub content_hash: String,
    pub created_ms: i64,
    pub updated_ms: i64,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RunRow {
    pub id: RunId,
    pub experiment_id: ExperimentId,
    /// Name of the experiment (joined from `experiments`).
    pub experiment: String,
    /// Content hash: the run's identity within its experiment.
    pub hash: String,
    /// Human-readable key of the grid cell, e.g. `manager=adaptive,layers=6,seed=1`.
    pub cell_key: String,
    pub axes: Axes,
    pub task: String,
    pub status: RunStatus,
    /// The latest failure (kept while a failed attempt is re-queued; cleared when the run finishes).
    pub failure_class: Option<FailureClass>,
    pub failure_message: Option<String>,
    /// Worker of the latest attempt.
    pub worker: Option<String>,
    pub host: Option<String>,
    pub pid: Option<i64>,
    pub device: Option<String>,
    pub engine_version: Option<String>,
    pub created_ms: i64,
    pub started_ms: Option<i64>,
    pub ended_ms: Option<i64>,
    pub heartbeat_ms: Option<i64>,
    /// Attempts started so far (0 while never claimed).
    pub attempts: i64,
    /// Someone asked a running run to stop; its worker sees it on its next heartbeat.
    pub cancel_requested: bool,
    pub depends_on: Option<RunId>,
    pub checkpoint_path: Option<String>,
    pub checkpoint_step: Option<i64>,
    pub progress_step: Option<i64>,
    pub progress_total: Option<i64>,
}

/// One flattened config entry of a run.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Param {
    pub key: String,
    pub value: serde_json::Value,
}

/// Running summary of one metric of one run, kept in step with its points.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct MetricSummary {
    pub key: String,
    /// Declared with `Store::declare_metrics`; without a goal there is no `best`.
    pub goal: Option<Goal>,
    /// Points stored (NaN points included).
    pub count: i64,
    /// Points whose value was NaN.
    pub nan_count: i64,
    /// Value at the highest step (NaN if that point was NaN); `None` before any point.
    pub last: Option<f64>,
    pub last_step: Option<i64>,
    /// Extremes over the non-NaN points.
    pub min: Option<f64>,
    pub max: Option<f64>,
    /// Best non-NaN value by `goal` (the earliest step wins a tie).
    pub best: Option<f64>,
    pub best_step: Option<i64>,
}

/// A run with the summaries of its metrics (what run lists show).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RunWithSummaries {
    pub run: RunRow,
    pub summaries: Vec<MetricSummary>,
}

impl RunWithSummaries {
    pub fn summary(&self, key: &str) -> Option<&MetricSummary> {
        self.summaries.iter().find(|s| s.key == key)
    }
}

/// Everything about one run.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RunDetail {
    pub run: RunRow,
    pub params: Vec<Param>,
    pub summaries: Vec<MetricSummary>,
    pub artifacts: Vec<Artifact>,
}

/// One metric value as written by a run (ingest) and read back (W&B history).
/// `value` may be NaN; it is stored as NULL and read back as NaN.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct MetricPoint {
    pub key: String,
    pub step: i64,
    pub value: f64,
    /// Wall-clock time of the measurement, unix milliseconds.
    pub wall_ms: i64,
}

/// One point of a single metric's series.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct SeriesPoint {
    pub step: i64,
    pub value: f64,
    pub wall_ms: i64,
}

/// One stored ManagerTower manager aggregation weight: the weight at training `step`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ManagerWeightRow {
    pub step: i64,
    #[serde(flatten)]
    pub value: ManagerWeight,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Artifact {
    pub id: i64,
    pub run_id: RunId,
    pub kind: ArtifactKind,
    pub path: String,
    pub step: Option<i64>,
    pub size_bytes: Option<i64>,
    pub created_ms: i64,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct LogLine {
    pub run_id: RunId,
    /// Per-run sequence number from 1, in append order (a W&B `output.log` line offset is `seq - 1`).
    pub seq: i64,
    /// Attempt of the run that wrote it.
    pub attempt: i64,
    pub time_ms: i64,
    pub level: String,
    pub text: String,
}

/// A worker process as last seen.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct WorkerRow {
    pub id: String,
    pub host: String,
    pub pid: i64,
    pub device: String,
    pub engine_version: String,
    pub started_ms: i64,
    pub seen_ms: i64,
    /// The run it holds, if any.
    pub run_id: Option<RunId>,
}

/// Counts of runs per state (one experiment or the whole store).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct QueueState {
    pub queued: i64,
    /// Queued runs whose dependency (if any) has finished: a worker could take them now.
    pub runnable: i64,
    /// Queued runs whose dependency ended without finishing (failed/crashed/cancelled).
    pub blocked: i64,
    pub running: i64,
    pub finished: i64,
    pub failed: i64,
    pub crashed: i64,
    pub cancelled: i64,
}

impl QueueState {
    pub fn total(&self) -> i64 {
        self.queued + self.running + self.finished + self.failed + self.crashed + self.cancelled
    }
}

// ---- columns ----------------------------------------------------------------------------------

/// NaN is stored as NULL (SQLite has no NaN; PostgreSQL gets NULL too, so both read the same).
pub(crate) fn nan_if_null(v: Option<f64>) -> f64 {
    v.unwrap_or(f64::NAN)
}

/// Columns of `RunRow`, for `FROM runs r JOIN experiments e ON e.id = r.experiment_id`.
pub(crate) const RUN_COLUMNS: &str = "r.id, r.experiment_id, e.name AS experiment, r.hash, \
    r.cell_key, r.axes, r.task, r.status, r.failure_class, r.failure_message, r.worker, r.host, \
    r.pid, r.device, r.engine_version, r.created_ms, r.started_ms, r.ended_ms, r.heartbeat_ms, \
    r.attempts, r.cancel_requested, r.depends_on, r.checkpoint_path, r.checkpoint_step, \
    r.progress_step, r.progress_total";

/// Columns of `MetricSummary` in `metric_summaries`.
pub(crate) const SUMMARY_COLUMNS: &str =
    "key, goal, count, nan_count, last, last_step, min, max, best, best_step";
