//! Runs: creating queued runs with their params, and the readers (lists, details, queue state).

use serde_json::Value;

use crate::rows::Axes;
use crate::types::{ExperimentId, RunId, RunStatus};

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
pub(crate) const IN_CHUNK: usize = 500;
