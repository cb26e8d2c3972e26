//! The plain input of a sync: what TowerLab knows about a run, independent of the store.

use serde_json::{Map, Value};

/// A run as W&B knows it: running, or complete with an exit code (TowerLab's
/// [`experiments::RunStatus`] is mapped onto it where runs are read). A run that has ended gets
/// `{"complete": true, "exitcode": n}`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RunState {
    Running,
    Finished,
    Failed { exit_code: i32 },
}

impl RunState {
    /// The exit code to report, or `None` while the run is still going.
    pub fn exit_code(self) -> Option<i32> {
        match self {
            Self::Running => None,
            Self::Finished => Some(0),
            // W&B reads any non-zero code as failed; a failure recorded as 0 must not look finished.
            Self::Failed { exit_code } => Some(if exit_code == 0 { 1 } else { exit_code }),
        }
    }
}

/// One run as the sync sees it. History and log lines are read page by page through the
/// source; `history_len` (rows, one per step), `log_len` and `events_len` (system samples)
/// say how many exist now.
#[derive(Debug, Clone, PartialEq)]
pub struct RunMeta {
    /// TowerLab's run id (what `--run` selects).
    pub run_id: String,
    /// TowerLab's content hash; the W&B run id is derived from it.
    pub content_hash: String,
    pub experiment: String,
    /// The grid cell key (the run's group on W&B together with the experiment).
    pub cell: String,
    /// The task, sent as W&B `jobType`.
    pub task: String,
    /// The W&B display name.
    pub display_name: String,
    /// Axis values, sent as `key=value` tags.
    pub axes: Vec<(String, String)>,
    pub config: Map<String, Value>,
    pub summary: Map<String, Value>,
    pub status: RunState,
    pub history_len: u64,
    pub log_len: u64,
    pub events_len: u64,
}

/// One logged step. `metrics` keys are unique; W&B charts slash-separated keys in sections
/// (see [`manager_weight_key`]).
#[derive(Debug, Clone, PartialEq)]
pub struct HistoryRow {
    pub step: u64,
    /// Seconds since the run started.
    pub runtime: f64,
    /// Unix time in seconds.
    pub timestamp: f64,
    pub metrics: Vec<(String, f64)>,
}

impl HistoryRow {
    /// Adds one manager's aggregation weights, one key per expert.
    pub fn push_manager_weights(&mut self, modality: &str, layer: usize, weights: &[f32]) {
        self.metrics
            .extend(weights.iter().enumerate().map(|(expert, w)| {
                (
                    manager_weight_key(modality, layer, expert as i64),
                    f64::from(*w),
                )
            }));
    }
}

/// The history key of one manager weight, as stored (`layer` 0-based; `expert` the 0-based
/// uni-modal expert, or `-k` for the raw weight on the k-th previous cross-modal layer's
/// output): `manager/<modality>/layer<l>/expert<e>` and
/// `manager/<modality>/layer<l>/cross_modal_prev<k>`, one key per value. W&B groups the
/// charts by the slash sections.
pub fn manager_weight_key(modality: &str, layer: usize, expert: i64) -> String {
    if expert < 0 {
        format!(
            "manager/{modality}/layer{layer}/cross_modal_prev{}",
            expert.unsigned_abs()
        )
    } else {
        format!("manager/{modality}/layer{layer}/expert{expert}")
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogStream {
    Stdout,
    Stderr,
}

/// One console line of a run.
#[derive(Debug, Clone, PartialEq)]
pub struct LogLine {
    /// Unix time in seconds.
    pub timestamp: f64,
    pub stream: LogStream,
    pub text: String,
}

/// Which runs to sync: the union of the named experiments and runs; empty means all.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Selection {
    pub experiments: Vec<String>,
    pub runs: Vec<String>,
}

impl Selection {
    pub fn all() -> Self {
        Self::default()
    }

    pub fn is_all(&self) -> bool {
        self.experiments.is_empty() && self.runs.is_empty()
    }

    /// Whether `run` is selected (for sources that filter in memory).
    pub fn matches(&self, run: &RunMeta) -> bool {
        self.is_all()
            || self.experiments.contains(&run.experiment)
            || self.runs.contains(&run.run_id)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn manager_weights_get_chartable_keys() {
        let mut row = HistoryRow {
            step: 1,
            runtime: 0.5,
            timestamp: 1.0,
            metrics: vec![("loss".into(), 0.1)],
        };
        row.push_manager_weights("text", 2, &[0.25, 0.75]);
        assert_eq!(row.metrics[1].0, "manager/text/layer2/expert0");
        assert_eq!(row.metrics[2], ("manager/text/layer2/expert1".into(), 0.75));
        // The raw cross-modal weights get their own names, never an expert's.
        assert_eq!(
            manager_weight_key("image", 1, -1),
            "manager/image/layer1/cross_modal_prev1"
        );
        assert_eq!(
            manager_weight_key("image", 3, -2),
            "manager/image/layer3/cross_modal_prev2"
        );
    }

    #[test]
    fn failed_runs_never_report_zero() {
        assert_eq!(RunState::Running.exit_code(), None);
        assert_eq!(RunState::Finished.exit_code(), Some(0));
        assert_eq!(RunState::Failed { exit_code: 3 }.exit_code(), Some(3));
        assert_eq!(RunState::Failed { exit_code: 0 }.exit_code(), Some(1));
    }
}
