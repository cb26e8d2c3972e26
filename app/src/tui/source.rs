//! What the TUI reads and asks of a store. The data thread owns the source, so its calls may
//! block (SQLite, child processes) without freezing the screen.

use std::path::Path;

use super::model::{
    ExperimentInfo, ManagerWeights, Plan, RunDetail, RunSummary, Series, WorkerInfo,
};

/// An error from a source, shown in the status line.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct SourceError(pub String);

impl SourceError {
    pub fn new(msg: impl Into<String>) -> Self {
        SourceError(msg.into())
    }
}

pub type SourceResult<T> = Result<T, SourceError>;

/// The data access of the TUI.
pub trait TuiSource: Send {
    /// Changes whenever the data may have changed (another process wrote to the store), so the
    /// data thread re-reads only then. Cheap: it is polled several times a second.
    fn change_token(&mut self) -> SourceResult<u64>;

    /// Every run with the summaries of its metrics, by id.
    fn runs(&mut self) -> SourceResult<Vec<RunSummary>>;

    /// The first `limit` runs by id: shown while the full list is still being read, so the
    /// first frame of a large store does not wait for every run.
    fn first_runs(&mut self, limit: usize) -> SourceResult<Vec<RunSummary>> {
        let mut runs = self.runs()?;
        runs.truncate(limit);
        Ok(runs)
    }

    fn run_detail(&mut self, run: i64, log_lines: usize) -> SourceResult<Option<RunDetail>>;

    /// One metric of one run, downsampled by the source to at most `max_points` points.
    fn series(&mut self, run: i64, key: &str, max_points: usize) -> SourceResult<Series>;

    /// Manager weights of `run` at `step` (the newest step when `None`); `None` if the run has none.
    fn manager_weights(
        &mut self,
        run: i64,
        step: Option<i64>,
    ) -> SourceResult<Option<ManagerWeights>>;

    /// Experiments in the store and experiment files found under `dir`.
    fn experiments(&mut self, dir: &Path) -> SourceResult<Vec<ExperimentInfo>>;

    /// The plan of one experiment: each grid cell and its state.
    fn plan(&mut self, experiment: &ExperimentInfo) -> SourceResult<Plan>;

    /// Workers seen in the store recently (on any host).
    fn workers(&mut self) -> SourceResult<Vec<WorkerInfo>>;

    /// Queues the new cells of an experiment file; returns how many runs were queued.
    fn queue_experiment(&mut self, experiment: &ExperimentInfo) -> SourceResult<usize>;

    /// Asks runs to stop (queued ones are cancelled at once); returns how many were affected.
    fn cancel_runs(&mut self, runs: &[i64]) -> SourceResult<usize>;

    /// Re-queues failed or crashed runs; returns how many were re-queued.
    fn retry_runs(&mut self, runs: &[i64]) -> SourceResult<usize>;
}
