//! Plain data the TUI shows. The data thread fills these from a [`TuiSource`](super::TuiSource);
//! rendering and state never touch the store.

/// The run vocabulary the TUI shows: the domain's (`experiments::run`), as the store keeps it.
pub use experiments::run::{CellState, FailureClass, Goal, Modality, RunStatus};

/// Running summary of one metric of one run.
#[derive(Debug, Clone, PartialEq)]
pub struct MetricSummary {
    pub key: String,
    pub goal: Option<Goal>,
    pub last: Option<f64>,
    pub best: Option<f64>,
    pub min: Option<f64>,
    pub max: Option<f64>,
    pub count: i64,
}

impl MetricSummary {
    /// The value a run list shows for this metric: the best value when the metric has a goal,
    /// else the last one (the summary policy of the store).
    pub fn headline(&self) -> Option<f64> {
        match self.goal {
            Some(_) => self.best.or(self.last),
            None => self.last,
        }
    }
}

/// One row of the runs table.
#[derive(Debug, Clone, PartialEq)]
pub struct RunSummary {
    pub id: i64,
    pub experiment: String,
    /// The cell key the run was planned under (the axes of a zip group after the first are
    /// not in it; pre-training runs have `pretrain[...]`), when the source knows it.
    pub cell: Option<String>,
    /// Grid axes in the experiment's order, values as text (`manager=adaptive`).
    pub axes: Vec<(String, String)>,
    pub status: RunStatus,
    /// (step, total) reported by the worker.
    pub progress: Option<(i64, i64)>,
    pub started_ms: Option<i64>,
    pub ended_ms: Option<i64>,
    pub heartbeat_ms: Option<i64>,
    pub worker: Option<String>,
    pub failure_class: Option<FailureClass>,
    pub failure_message: Option<String>,
    pub summaries: Vec<MetricSummary>,
    /// Whether the run is one of its experiment file's current plan (`None`: unknown, e.g. the
    /// file cannot be read). Grouped statistics leave out the runs that are not.
    pub in_plan: Option<bool>,
}

impl RunSummary {
    pub fn axis(&self, name: &str) -> Option<&str> {
        self.axes
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    pub fn summary(&self, key: &str) -> Option<&MetricSummary> {
        self.summaries.iter().find(|s| s.key == key)
    }

    /// How long it ran: until it ended, or until `now_ms` while it still runs.
    pub fn duration_ms(&self, now_ms: i64) -> Option<i64> {
        let start = self.started_ms?;
        let end = self.ended_ms.unwrap_or(match self.status {
            RunStatus::Running => now_ms,
            _ => self.heartbeat_ms.unwrap_or(start),
        });
        Some((end - start).max(0))
    }

    /// `manager=adaptive,layers=6`: the run's cell in its grid.
    pub fn cell_key(&self) -> String {
        self.axes
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect::<Vec<_>>()
            .join(",")
    }
}

/// One log line of a run.
#[derive(Debug, Clone, PartialEq)]
pub struct LogLine {
    pub level: String,
    pub text: String,
}

/// Everything the run view shows besides curves.
#[derive(Debug, Clone, PartialEq)]
pub struct RunDetail {
    pub run: RunSummary,
    /// Flattened resolved config: (`model.num_layers`, `6`).
    pub config: Vec<(String, String)>,
    /// The metric keys that have points, sorted.
    pub metric_keys: Vec<String>,
    /// The newest log lines, oldest first.
    pub log_tail: Vec<LogLine>,
    /// What Slurm says of the run's task (`job 12_3: PENDING (Dependency)`), for a run
    /// submitted to Slurm.
    pub scheduler: Option<String>,
}

/// One metric of one run over steps.
#[derive(Debug, Clone, PartialEq)]
pub struct Series {
    pub run: i64,
    pub key: String,
    /// (step, value); NaN values are kept out of charts by the renderer.
    pub points: Vec<(f64, f64)>,
}

/// Manager aggregation weights of one run at one step: per modality a layers × experts grid.
#[derive(Debug, Clone, PartialEq)]
pub struct ManagerWeights {
    pub run: i64,
    /// Every step that has weights, ascending.
    pub steps: Vec<i64>,
    /// The step shown.
    pub step: i64,
    pub modalities: Vec<ModalityWeights>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct ModalityWeights {
    pub modality: Modality,
    /// `grid[layer][expert]`; NaN where the store has no value.
    pub grid: Vec<Vec<f64>>,
    /// `cross[layer][k - 1]`: the raw (not softmaxed) weight of the manager of `layer` on the
    /// k-th previous cross-modal layer's output (SAUE/AAUE have one, SAE several; none for the
    /// first layer); NaN where absent. Empty when the run recorded none.
    pub cross: Vec<Vec<f64>>,
}

/// An experiment known to the store or found as a file.
#[derive(Debug, Clone, PartialEq)]
pub struct ExperimentInfo {
    pub name: String,
    /// The experiment file, when known.
    pub path: Option<String>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct PlanCell {
    pub cell_key: String,
    pub state: CellState,
    pub run: Option<i64>,
    pub progress: Option<(i64, i64)>,
}

/// The plan of one experiment: each cell and its state.
#[derive(Debug, Clone, PartialEq)]
pub struct Plan {
    pub experiment: String,
    pub cells: Vec<PlanCell>,
}

/// A worker process as last seen in the store.
#[derive(Debug, Clone, PartialEq)]
pub struct WorkerInfo {
    pub id: String,
    pub host: String,
    pub pid: i64,
    pub device: String,
    pub seen_ms: i64,
    pub run: Option<i64>,
}

/// Counts of runs per status.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct QueueCounts {
    pub queued: i64,
    pub running: i64,
    pub finished: i64,
    pub failed: i64,
    pub crashed: i64,
    pub cancelled: i64,
}

impl QueueCounts {
    pub fn from_runs<'a>(runs: impl IntoIterator<Item = &'a RunSummary>) -> QueueCounts {
        let mut c = QueueCounts::default();
        for r in runs {
            match r.status {
                RunStatus::Queued => c.queued += 1,
                RunStatus::Running => c.running += 1,
                RunStatus::Finished => c.finished += 1,
                RunStatus::Failed => c.failed += 1,
                RunStatus::Crashed => c.crashed += 1,
                RunStatus::Cancelled => c.cancelled += 1,
            }
        }
        c
    }
}
