//! The public API of [`Store`]: each method runs its query on the store's backend (the queries
//! themselves are in `queries/`, compiled once per backend).

use std::collections::HashMap;
use std::time::Duration;

use crate::artifacts::NewArtifact;
use crate::error::Result;
use crate::lifecycle::{
    CancelOutcome, Claim, FailOutcome, HeartbeatReply, Lease, Progress, Reaped,
};
use crate::logs::NewLogLine;
use crate::metrics::{HistoryRow, SeriesOptions};
use crate::rows::{
    Artifact, ExperimentRow, LogLine, ManagerWeightRow, MetricPoint, MetricSummary, Param,
    QueueState, RunDetail, RunRow, RunWithSummaries, SeriesPoint, WorkerRow,
};
use crate::runs::{CreatedRun, NewRun, RunFilter};
use crate::slurm::SlurmJob;
use crate::types::{ExperimentId, FailureClass, Goal, RetryPolicy, RunId, RunStatus};
use crate::workers::WorkerInfo;
use crate::{dispatch, Store};

impl Store {
    // artifacts
    /// Records an artifact of `run` (the same path again updates it). A checkpoint at a step at
    /// least as late as the run's current one becomes the run's resume point.
    pub async fn add_artifact(&self, run: RunId, artifact: &NewArtifact) -> Result<Artifact> {
        dispatch!(self, b => b.add_artifact(run, artifact).await)
    }

    /// The artifacts of `run`, oldest first.
    pub async fn artifacts(&self, run: RunId) -> Result<Vec<Artifact>> {
        dispatch!(self, b => b.artifacts(run).await)
    }

    // experiments
    /// Creates the experiment `name`, or updates its file path and content hash.
    pub async fn upsert_experiment(
        &self,
        name: &str,
        path: &str,
        content_hash: &str,
    ) -> Result<ExperimentRow> {
        dispatch!(self, b => b.upsert_experiment(name, path, content_hash).await)
    }

    /// All experiments, by name.
    pub async fn experiments(&self) -> Result<Vec<ExperimentRow>> {
        dispatch!(self, b => b.experiments().await)
    }

    pub async fn experiment_by_name(&self, name: &str) -> Result<Option<ExperimentRow>> {
        dispatch!(self, b => b.experiment_by_name(name).await)
    }

    // lifecycle
    /// Atomically claims the next runnable queued run (lowest id whose dependency, if any, has
    /// finished), optionally only in `experiment`, for `worker`. Two workers, in one process or
    /// in several, never get the same run. Returns `None` when nothing is runnable.
    pub async fn claim(
        &self,
        worker: &WorkerInfo,
        experiment: Option<ExperimentId>,
    ) -> Result<Option<Claim>> {
        dispatch!(self, b => b.claim(worker, experiment).await)
    }

    /// Atomically claims run `run` itself for `worker`, when it is queued and runnable (its
    /// dependency, if any, finished): what a scheduler's task made for one run does. `None`
    /// when it is not (running elsewhere, ended, or waiting for its dependency).
    pub async fn claim_run(&self, worker: &WorkerInfo, run: RunId) -> Result<Option<Claim>> {
        dispatch!(self, b => b.claim_run(worker, run).await)
    }

    /// Proves the worker is alive and records progress. Fails with [`StoreError::LeaseLost`]
    /// when the run is no longer this attempt's (the worker should stop at once).
    pub async fn heartbeat(
        &self,
        lease: &Lease,
        progress: Option<Progress>,
    ) -> Result<HeartbeatReply> {
        dispatch!(self, b => b.heartbeat(lease, progress).await)
    }

    /// The attempt completed: the run is `finished` (any earlier failure is cleared).
    pub async fn finish(&self, lease: &Lease) -> Result<()> {
        dispatch!(self, b => b.finish(lease).await)
    }

    /// The worker stopped because the run was cancelled: the run is `cancelled`.
    pub async fn acknowledge_cancel(&self, lease: &Lease) -> Result<()> {
        dispatch!(self, b => b.acknowledge_cancel(lease).await)
    }

    /// The worker was told to stop by its scheduler (Slurm's warning signal before a time limit
    /// or preemption, `scancel`, `scontrol requeue`) and stopped after a checkpoint: the run goes
    /// back to the queue to resume from it, without spending its retry budget (being stopped is
    /// not a failure). When someone asked to cancel the run meanwhile, it ends `cancelled`
    /// instead. Returns the status the run now has.
    pub async fn release(&self, lease: &Lease) -> Result<RunStatus> {
        dispatch!(self, b => b.release(lease).await)
    }

    /// The attempt failed with `class`: the run is re-queued while `policy` allows more attempts
    /// for that class, otherwise it ends `failed`.
    pub async fn fail(
        &self,
        lease: &Lease,
        class: FailureClass,
        message: &str,
        policy: &RetryPolicy,
    ) -> Result<FailOutcome> {
        dispatch!(self, b => b.fail(lease, class, message, policy).await)
    }

    /// For a supervisor that saw a worker die: ends the running attempt of `run` as crashed
    /// (class `killed`), re-queued while `policy` allows. `None` when the run was not running.
    pub async fn crash_run(
        &self,
        run: RunId,
        message: &str,
        policy: &RetryPolicy,
    ) -> Result<Option<FailOutcome>> {
        dispatch!(self, b => b.crash_run(run, message, policy).await)
    }

    /// Finds running runs whose last heartbeat is older than `timeout` and ends them as crashed
    /// (class `killed`), re-queueing those `policy` allows; they keep their last checkpoint, so
    /// the next attempt resumes from it.
    pub async fn reap_stale(&self, timeout: Duration, policy: &RetryPolicy) -> Result<Vec<Reaped>> {
        dispatch!(self, b => b.reap_stale(timeout, policy).await)
    }

    /// Cancels runs: queued ones at once, running ones at their next heartbeat.
    pub async fn cancel_runs(&self, runs: &[RunId]) -> Result<Vec<CancelOutcome>> {
        dispatch!(self, b => b.cancel_runs(runs).await)
    }

    /// Puts ended runs that did not finish (failed / crashed / cancelled) back in the queue with
    /// a fresh retry budget (attempt numbers keep counting: the next one is the run's next). With `fresh`, finished runs are accepted too, and everything the run
    /// recorded (checkpoint, metrics, manager weights, logs, artifacts, sync cursors) is dropped
    /// so it starts over; otherwise it resumes from its last checkpoint. Returns the ids re-queued.
    pub async fn requeue_runs(&self, runs: &[RunId], fresh: bool) -> Result<Vec<RunId>> {
        dispatch!(self, b => b.requeue_runs(runs, fresh).await)
    }

    // logs
    /// Appends lines to `run`'s log, numbered after the last one, tagged with the run's current
    /// attempt. Returns the sequence numbers given (empty range for no lines).
    pub async fn append_logs(
        &self,
        run: RunId,
        lines: &[NewLogLine],
    ) -> Result<std::ops::RangeInclusive<i64>> {
        dispatch!(self, b => b.append_logs(run, lines).await)
    }

    /// Lines of `run` after sequence number `after_seq` (from the start with `None`), at most
    /// `limit`, in order.
    pub async fn log_lines(
        &self,
        run: RunId,
        after_seq: Option<i64>,
        limit: Option<i64>,
    ) -> Result<Vec<LogLine>> {
        dispatch!(self, b => b.log_lines(run, after_seq, limit).await)
    }

    /// The last `n` lines of `run`, in order.
    pub async fn log_tail(&self, run: RunId, n: i64) -> Result<Vec<LogLine>> {
        dispatch!(self, b => b.log_tail(run, n).await)
    }

    // manager
    /// Stores manager weights of `run` in one transaction; a `(step, modality, layer, expert)`
    /// already stored is ignored. Returns how many were new.
    pub async fn ingest_manager_weights(
        &self,
        run: RunId,
        weights: &[ManagerWeightRow],
    ) -> Result<u64> {
        dispatch!(self, b => b.ingest_manager_weights(run, weights).await)
    }

    /// The steps at which `run` recorded manager weights, ascending.
    pub async fn manager_weight_steps(&self, run: RunId) -> Result<Vec<i64>> {
        dispatch!(self, b => b.manager_weight_steps(run).await)
    }

    /// The manager weights of `run` at `step`, or at its last recorded step with `None`, ordered
    /// by modality, layer, expert. Empty when there are none.
    pub async fn manager_weights(
        &self,
        run: RunId,
        step: Option<i64>,
    ) -> Result<Vec<ManagerWeightRow>> {
        dispatch!(self, b => b.manager_weights(run, step).await)
    }

    // metrics
    /// Declares whether higher or lower is better for metrics of `run`, which decides `best` in
    /// their summaries. Declaring again with another goal recomputes `best` from the points.
    pub async fn declare_metrics(&self, run: RunId, goals: &[(&str, Goal)]) -> Result<()> {
        dispatch!(self, b => b.declare_metrics(run, goals).await)
    }

    /// Stores a batch of points of `run` in one transaction and updates the summaries of the
    /// keys it touches. Points whose `(key, step)` is already stored are ignored, so re-sending a
    /// batch is harmless. Returns how many points were new.
    pub async fn ingest_metrics(&self, run: RunId, points: &[MetricPoint]) -> Result<u64> {
        dispatch!(self, b => b.ingest_metrics(run, points).await)
    }

    /// The summaries of every metric of `run`, by key.
    pub async fn summaries(&self, run: RunId) -> Result<Vec<MetricSummary>> {
        dispatch!(self, b => b.summaries(run).await)
    }

    /// The metric keys `run` has points for, sorted.
    pub async fn metric_keys(&self, run: RunId) -> Result<Vec<String>> {
        dispatch!(self, b => b.metric_keys(run).await)
    }

    /// The series of metric `key` of `run`, by step.
    pub async fn metric_series(
        &self,
        run: RunId,
        key: &str,
        options: SeriesOptions,
    ) -> Result<Vec<SeriesPoint>> {
        dispatch!(self, b => b.metric_series(run, key, options).await)
    }

    /// The points of a series at `steps` (those that exist), in step order: a sample of a long
    /// series for a figure, read by index lookups, so a 10k-step run costs only the rows asked.
    pub async fn metric_series_at(
        &self,
        run: RunId,
        key: &str,
        steps: &[i64],
    ) -> Result<Vec<SeriesPoint>> {
        dispatch!(self, b => b.metric_series_at(run, key, steps).await)
    }

    /// Every point of `run` with a step above `after_step`, by step then key.
    pub async fn metric_points(
        &self,
        run: RunId,
        after_step: Option<i64>,
    ) -> Result<Vec<MetricPoint>> {
        dispatch!(self, b => b.metric_points(run, after_step).await)
    }

    /// The run's training history (every metric but the `system/` samples) as rows of one step
    /// each, for the steps above `after_step`, at most `max_rows` rows (steps are never split
    /// across calls).
    pub async fn history(
        &self,
        run: RunId,
        after_step: Option<i64>,
        max_rows: Option<i64>,
    ) -> Result<Vec<HistoryRow>> {
        dispatch!(self, b => b.history(run, after_step, max_rows).await)
    }

    /// The system samples of `run` (its `system/` metrics, which the history leaves out), one
    /// row per sampled step in step order: `limit` rows from the `from`-th.
    pub async fn system_samples(
        &self,
        run: RunId,
        from: i64,
        limit: i64,
    ) -> Result<Vec<HistoryRow>> {
        dispatch!(self, b => b.system_samples(run, from, limit).await)
    }

    // runs
    /// Queues runs (status `queued`) in `experiment` with their params, in one transaction.
    /// A hash the experiment already has is left as it is (`inserted: false`).
    pub async fn create_runs(
        &self,
        experiment: ExperimentId,
        runs: &[NewRun],
    ) -> Result<Vec<CreatedRun>> {
        dispatch!(self, b => b.create_runs(experiment, runs).await)
    }

    /// One run, or `None`.
    pub async fn run(&self, id: RunId) -> Result<Option<RunRow>> {
        dispatch!(self, b => b.run(id).await)
    }

    /// A run with its params, summaries and artifacts, or `None`.
    pub async fn run_detail(&self, id: RunId) -> Result<Option<RunDetail>> {
        dispatch!(self, b => b.run_detail(id).await)
    }

    /// The flattened config of a run, by key.
    pub async fn params(&self, run: RunId) -> Result<Vec<Param>> {
        dispatch!(self, b => b.params(run).await)
    }

    /// Runs matching `filter`, by id.
    pub async fn list_runs(&self, filter: &RunFilter) -> Result<Vec<RunRow>> {
        dispatch!(self, b => b.list_runs(filter).await)
    }

    /// Runs matching `filter` with their metric summaries (by key), by id, from one snapshot.
    pub async fn list_runs_with_summaries(
        &self,
        filter: &RunFilter,
    ) -> Result<Vec<RunWithSummaries>> {
        dispatch!(self, b => b.list_runs_with_summaries(filter).await)
    }

    /// Deletes runs with everything they recorded (metrics, manager weights, params, logs,
    /// artifacts, cursors, Slurm jobs; a dependent run loses its dependency). Returns how many
    /// runs there were.
    pub async fn delete_runs(&self, runs: &[RunId]) -> Result<u64> {
        dispatch!(self, b => b.delete_runs(runs).await)
    }

    /// Runs (in any experiment) whose identity hash is one of `hashes`, by id. This is what a
    /// plan compares a grid against: a missing hash is new, and the status of a found one tells
    /// done / failed / running.
    pub async fn runs_by_hash(&self, hashes: &[String]) -> Result<Vec<RunRow>> {
        dispatch!(self, b => b.runs_by_hash(hashes).await)
    }

    /// How many runs are in each state, for one experiment or (`None`) the whole store.
    pub async fn queue_state(&self, experiment: Option<ExperimentId>) -> Result<QueueState> {
        dispatch!(self, b => b.queue_state(experiment).await)
    }

    // slurm
    /// Records that each run was submitted as `(run, job id, array task id)`. Recording the same
    /// submission again (the task itself does when it starts) changes nothing.
    pub async fn record_slurm_jobs(&self, jobs: &[(RunId, i64, i64)]) -> Result<()> {
        dispatch!(self, b => b.record_slurm_jobs(jobs).await)
    }

    /// The newest submission of each of `runs` that has one.
    pub async fn slurm_jobs(&self, runs: &[RunId]) -> Result<HashMap<RunId, SlurmJob>> {
        dispatch!(self, b => b.slurm_jobs(runs).await)
    }

    /// Every submission of `run`, oldest first.
    pub async fn slurm_job_history(&self, run: RunId) -> Result<Vec<SlurmJob>> {
        dispatch!(self, b => b.slurm_job_history(run).await)
    }

    // sync_cursors
    /// The cursor `name` of exporter `target` for `run` (e.g. `("wandb", "history")`).
    pub async fn sync_cursor(
        &self,
        run: RunId,
        target: &str,
        name: &str,
    ) -> Result<Option<String>> {
        dispatch!(self, b => b.sync_cursor(run, target, name).await)
    }

    pub async fn set_sync_cursor(
        &self,
        run: RunId,
        target: &str,
        name: &str,
        value: &str,
    ) -> Result<()> {
        dispatch!(self, b => b.set_sync_cursor(run, target, name, value).await)
    }

    // workers
    /// Announces (or refreshes) an idle worker; claims and heartbeats refresh it too.
    pub async fn worker_heartbeat(&self, worker: &WorkerInfo) -> Result<()> {
        dispatch!(self, b => b.worker_heartbeat(worker).await)
    }

    /// The worker exits: it is no longer listed.
    pub async fn retire_worker(&self, worker_id: &str) -> Result<()> {
        dispatch!(self, b => b.retire_worker(worker_id).await)
    }

    /// Workers seen within `live_within` (all known workers with `None`), most recent first.
    pub async fn workers(&self, live_within: Option<Duration>) -> Result<Vec<WorkerRow>> {
        dispatch!(self, b => b.workers(live_within).await)
    }

    // for exporters and the TUI

    /// A number that changes whenever anything was committed to the store, by any process: the
    /// TUI's signal to refresh. (On SQLite it is per connection: keep one connection.)
    pub async fn change_token(&self) -> Result<i64> {
        dispatch!(self, b => b.change_token().await)
    }

    /// The manager weights of `run` at steps above `after` (all with `None`) up to `upto`, by
    /// step, modality, layer and expert.
    pub async fn manager_weights_between(
        &self,
        run: RunId,
        after: Option<i64>,
        upto: i64,
    ) -> Result<Vec<ManagerWeightRow>> {
        dispatch!(self, b => b.manager_weights_between(run, after, upto).await)
    }

    /// The highest step of `run` with a (training, not `system/`) metric point or manager
    /// weights.
    pub async fn newest_step(&self, run: RunId) -> Result<Option<i64>> {
        dispatch!(self, b => b.newest_step(run).await)
    }

    /// How many distinct steps `run` has training points (not `system/`) or manager weights
    /// at, how many log lines, and how many system samples (distinct steps of `system/` points).
    pub async fn step_and_log_counts(&self, run: RunId) -> Result<(i64, i64, i64)> {
        dispatch!(self, b => b.step_and_log_counts(run).await)
    }
}
