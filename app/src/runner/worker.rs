//! Workers: claim a queued run atomically, execute it, write what it reports, end it.
//!
//! [`execute_next`] is the whole life of one attempt in one call, so that another executor (a
//! Slurm one) plugs in without touching the rest. [`serve`] runs several slots of it side by
//! side (one per GPU, or N CPU runs sharing the cores) with a reaper that ends runs whose
//! worker died, so they resume from their last checkpoint.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::Context as _;
use store::{
    ExperimentId, FailOutcome, FailureClass, HeartbeatReply, Lease, RetryPolicy, RunFilter, RunId,
    RunRow, RunStatus, Store, StoreError, WorkerInfo,
};
use tokio::sync::mpsc::unbounded_channel;

use super::checkpoints;
use super::executor::{Executor, Job};
use super::plan::{PARAM_EVAL, PARAM_SETTINGS};
use super::sink::{LiveProgress, Sink};
use super::ui::Ui;
use experiments::run::Outcome;

/// How the runner behaves; shared by every slot of a process.
pub struct Runner {
    pub store: Store,
    /// `<store dir>/runs`.
    pub runs_dir: PathBuf,
    pub executor: Arc<dyn Executor>,
    pub policy: RetryPolicy,
    pub heartbeat_every: Duration,
    /// A running run whose heartbeat is older than this is presumed dead.
    pub heartbeat_timeout: Duration,
    /// Claim only runs of this experiment.
    pub experiment: Option<ExperimentId>,
    pub ui: Ui,
    /// Set on Ctrl-C: claim nothing more, and cancel what runs.
    pub stopping: Arc<AtomicBool>,
    /// A run stopped by a signal goes back to the queue (to resume from its checkpoint)
    /// instead of ending cancelled: a scheduler's task (Slurm) was stopped, not the run.
    pub release_on_stop: bool,
    active: Mutex<HashMap<RunId, Arc<AtomicBool>>>,
    active_count: AtomicUsize,
}

impl Runner {
    pub fn new(store: Store, runs_dir: PathBuf, executor: Arc<dyn Executor>) -> Self {
        Self {
            store,
            runs_dir,
            executor,
            policy: RetryPolicy::default(),
            heartbeat_every: Duration::from_secs(3),
            heartbeat_timeout: Duration::from_secs(30),
            experiment: None,
            ui: Ui::new(),
            stopping: Arc::new(AtomicBool::new(false)),
            release_on_stop: false,
            active: Mutex::new(HashMap::new()),
            active_count: AtomicUsize::new(0),
        }
    }

    /// Stops claiming and asks every active run to checkpoint and stop.
    pub fn stop(&self) {
        self.stopping.store(true, Ordering::SeqCst);
        if let Ok(active) = self.active.lock() {
            for flag in active.values() {
                flag.store(true, Ordering::SeqCst);
            }
        }
    }

    fn register(&self, run: RunId, flag: Arc<AtomicBool>) {
        if let Ok(mut a) = self.active.lock() {
            a.insert(run, flag);
        }
        self.active_count.fetch_add(1, Ordering::SeqCst);
    }

    fn unregister(&self, run: RunId) {
        if let Ok(mut a) = self.active.lock() {
            a.remove(&run);
        }
        self.active_count.fetch_sub(1, Ordering::SeqCst);
    }

    /// Runs this process is executing now.
    pub fn active(&self) -> usize {
        self.active_count.load(Ordering::SeqCst)
    }
}

/// One place a run can execute: a worker identity and a device.
#[derive(Debug, Clone)]
pub struct Slot {
    pub worker: WorkerInfo,
    pub device: String,
    /// Intra-op threads for runs in this slot; `None`: this host's cores shared among its live
    /// CPU workers, counted at each claim.
    pub threads: Option<usize>,
}

impl Slot {
    /// `jobs` slots of this process (default: one per GPU, else one on the CPU), named
    /// `host:pid/N`, on `devices[N % len]`.
    pub fn for_process(
        jobs: Option<usize>,
        threads: Option<usize>,
        devices: &[String],
        engine_version: &str,
    ) -> Vec<Slot> {
        let gpu = devices.iter().any(|d| d.starts_with("cuda"));
        let n = jobs.unwrap_or(if gpu { devices.len() } else { 1 }).max(1);
        (0..n)
            .map(|i| {
                let device = devices[i % devices.len().max(1)].clone();
                let mut worker = WorkerInfo::this_process(&device, engine_version);
                worker.id = format!("{}/{i}", worker.id);
                let threads = if device == "cpu" {
                    threads.map(|t| t.max(1))
                } else {
                    Some(1)
                };
                Slot {
                    worker,
                    device,
                    threads,
                }
            })
            .collect()
    }
}

/// This host's cores divided among its live CPU worker slots (of every process on the store).
/// Without it two worker processes each take every core, and torch's OpenMP threads spin
/// against each other: runs get ~10x slower.
async fn cpu_share(runner: &Runner) -> usize {
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let me = WorkerInfo::this_process("", "");
    let live = match runner.store.workers(Some(runner.heartbeat_timeout)).await {
        Ok(w) => w
            .iter()
            // A worker killed without retiring stays listed until its heartbeat ages out.
            .filter(|w| w.host == me.host && w.device == "cpu" && pid_alive(w.pid) != Some(false))
            .count(),
        Err(e) => {
            tracing::warn!("cannot count this host's workers: {e}");
            1
        }
    };
    (cores / live.max(1)).max(1)
}

/// How an attempt ended, as the store recorded it.
#[derive(Debug, Clone, PartialEq)]
pub enum Ended {
    Finished,
    Cancelled,
    /// Failed; `requeued` when the retry policy put it back in the queue.
    Failed {
        class: FailureClass,
        message: String,
        requeued: bool,
    },
    /// Someone else owns the run now (it was presumed dead and re-queued): nothing written.
    LeaseLost,
    /// Stopped by a signal after a checkpoint and put back in the queue to resume
    /// ([`Runner::release_on_stop`]).
    Released,
}

/// What [`execute_next`] did.
#[derive(Debug, Clone)]
pub struct RunResult {
    pub run_id: RunId,
    pub hash: String,
    pub cell_key: String,
    pub attempt: i64,
    pub ended: Ended,
    /// The last step reached.
    pub step: u64,
    /// Metric points this attempt stored.
    pub points: u64,
    pub elapsed: Duration,
}

/// Claims the next runnable run (atomically: no two workers get the same one) and executes it
/// to the end on `slot`. `Ok(None)` when nothing is runnable now.
pub async fn execute_next(runner: &Runner, slot: &Slot) -> anyhow::Result<Option<RunResult>> {
    if runner.stopping.load(Ordering::SeqCst) {
        return Ok(None);
    }
    let Some(claim) = runner.store.claim(&slot.worker, runner.experiment).await? else {
        return Ok(None);
    };
    execute_claim(runner, slot, claim).await.map(Some)
}

/// [`execute_next`] for run `run` only (what a Slurm task made for that run does). `Ok(None)`
/// when it is not runnable now.
pub async fn execute_run(
    runner: &Runner,
    slot: &Slot,
    run: RunId,
) -> anyhow::Result<Option<RunResult>> {
    if runner.stopping.load(Ordering::SeqCst) {
        return Ok(None);
    }
    let Some(claim) = runner.store.claim_run(&slot.worker, run).await? else {
        return Ok(None);
    };
    execute_claim(runner, slot, claim).await.map(Some)
}

async fn execute_claim(
    runner: &Runner,
    slot: &Slot,
    claim: store::Claim,
) -> anyhow::Result<RunResult> {
    let started = Instant::now();
    let cancel = Arc::new(AtomicBool::new(false));
    runner.register(claim.run.id, cancel.clone());
    let result = execute_claimed(runner, slot, &claim.run, &claim.lease, cancel, started).await;
    runner.unregister(claim.run.id);
    runner.ui.run_ended();
    match result {
        Ok(r) => Ok(r),
        Err(e) => {
            // A problem of this run (unreadable params, a missing pre-training checkpoint) fails
            // the run, not the worker; only when the store cannot record that either does the
            // worker stop.
            let message = format!("{e:#}");
            let recorded = runner
                .store
                .fail(&claim.lease, FailureClass::Error, &message, &runner.policy)
                .await
                .map_err(|store_err| {
                    e.context(format!(
                        "run {} ({}), and recording its failure failed too: {store_err}",
                        claim.run.id, claim.run.cell_key
                    ))
                })?;
            let result = RunResult {
                run_id: claim.run.id,
                hash: claim.run.hash.clone(),
                cell_key: claim.run.cell_key.clone(),
                attempt: claim.lease.attempt,
                ended: Ended::Failed {
                    class: FailureClass::Error,
                    message,
                    requeued: matches!(recorded, FailOutcome::Requeued { .. }),
                },
                step: claim.run.checkpoint_step.unwrap_or(0).max(0) as u64,
                points: 0,
                elapsed: started.elapsed(),
            };
            runner.ui.println(&describe(&result, &claim.run));
            Ok(result)
        }
    }
}

/// The settings a run was queued with.
pub async fn stored_settings(store: &Store, run: RunId) -> anyhow::Result<experiments::Settings> {
    let params = store.params(run).await?;
    let value = params
        .into_iter()
        .find(|p| p.key == PARAM_SETTINGS)
        .map(|p| p.value)
        .with_context(|| format!("run {run} has no stored settings (`{PARAM_SETTINGS}` param)"))?;
    serde_json::from_value(value).with_context(|| format!("run {run}: stored settings are invalid"))
}

/// What a stored run's identity pinned it to load (empty for runs stored before loads were
/// recorded: they load nothing).
pub async fn stored_loads(
    store: &Store,
    run: RunId,
) -> anyhow::Result<experiments::experts::Loads> {
    let params = store.params(run).await?;
    Ok(params
        .into_iter()
        .find(|p| p.key == super::plan::PARAM_IDENTITY)
        .map(|p| experiments::experts::Loads::from_document(&p.value))
        .unwrap_or_default())
}

/// What an eval run scores (`None` for training runs).
pub async fn stored_eval_target(
    store: &Store,
    run: RunId,
) -> anyhow::Result<Option<experiments::EvalTarget>> {
    let params = store.params(run).await?;
    params
        .into_iter()
        .find(|p| p.key == PARAM_EVAL)
        .map(|p| {
            serde_json::from_value(p.value)
                .with_context(|| format!("run {run}: the stored eval target is invalid"))
        })
        .transpose()
}

/// The folder of a run: `<runs dir>/<identity short>`.
pub fn run_dir(runs_dir: &std::path::Path, hash: &str) -> PathBuf {
    runs_dir.join(&hash[..12.min(hash.len())])
}

async fn execute_claimed(
    runner: &Runner,
    slot: &Slot,
    run: &RunRow,
    lease: &Lease,
    cancel: Arc<AtomicBool>,
    started: Instant,
) -> anyhow::Result<RunResult> {
    let store = &runner.store;
    let mut settings = stored_settings(store, run.id).await?;
    if settings.device == "auto" {
        settings.device = slot.device.clone();
    }
    let dir = run_dir(&runner.runs_dir, &run.hash);
    std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    let removed = checkpoints::align(&dir.join("checkpoints"), run.checkpoint_step)
        .with_context(|| format!("aligning checkpoints in {}", dir.display()))?;
    if !removed.is_empty() {
        tracing::info!(run = %run.id, ?removed, "dropped checkpoints the store never recorded");
    }
    let init_from = match run.depends_on {
        None => None,
        Some(dep) => {
            let dep_row = store
                .run(dep)
                .await?
                .with_context(|| format!("pre-training run {dep} is gone from the store"))?;
            let path = dep_row.checkpoint_path.with_context(|| {
                format!("pre-training run {dep} finished without recording a checkpoint")
            })?;
            Some(PathBuf::from(path))
        }
    };
    let loads = stored_loads(store, run.id).await?;
    let eval = stored_eval_target(store, run.id).await?;
    let job = Job {
        hash: run.hash.clone(),
        settings,
        run_dir: dir.clone(),
        init_from,
        resume: run.checkpoint_step.is_some() && eval.is_none(),
        loads,
        eval,
        threads: match slot.threads {
            Some(t) => t,
            None => cpu_share(runner).await,
        },
    };
    if runner.stopping.load(Ordering::SeqCst) {
        cancel.store(true, Ordering::SeqCst);
    }

    let progress = LiveProgress::new(run.checkpoint_step);
    let lost = Arc::new(AtomicBool::new(false));
    let heartbeat = tokio::spawn(heartbeat_loop(
        store.clone(),
        lease.clone(),
        progress.clone(),
        cancel.clone(),
        lost.clone(),
        runner.heartbeat_every,
    ));

    let (tx, mut rx) = unbounded_channel();
    let executor = runner.executor.clone();
    let job_for_thread = job.clone();
    let cancel_for_thread = cancel.clone();
    let handle = tokio::task::spawn_blocking(move || {
        executor.execute(&job_for_thread, &tx, &cancel_for_thread)
    });

    let seed = super::plan::run_seed(run).map_or(String::new(), |s| format!(" seed {s}"));
    let bar = runner.ui.run_bar(&format!("{}{seed}", run.cell_key));
    let mut sink = Sink::new(store.clone(), run.id, &dir, progress.clone());
    let mut sink_error: Option<anyhow::Error> = None;
    loop {
        let next = match sink.flush_due_in() {
            Some(wait) => tokio::time::timeout(wait, rx.recv()).await,
            None => Ok(rx.recv().await),
        };
        let result = match next {
            Ok(Some(event)) => {
                if sink_error.is_some() {
                    continue;
                }
                sink.handle(event).await
            }
            Ok(None) => break,
            Err(_elapsed) if sink_error.is_none() => sink.flush().await,
            Err(_) => Ok(()),
        };
        if let Err(e) = result {
            // Stop the engine; keep draining its events so it can finish.
            cancel.store(true, Ordering::SeqCst);
            sink_error = Some(e);
        }
        if let Some(p) = progress.get() {
            if let Some(total) = p.total {
                bar.set_length(total as u64);
            }
            bar.set_position(p.step.max(0) as u64);
        }
        if let Some((k, v)) = sink.last_eval.first() {
            bar.set_message(format!("{k} {v:.4}"));
        }
    }
    let outcome = match handle.await {
        Ok(o) => o,
        Err(join) => Outcome::Failed {
            step: progress.get().map_or(0, |p| p.step.max(0) as u64),
            class: FailureClass::Error,
            message: format!("the engine panicked: {join}"),
        },
    };
    heartbeat.abort();
    bar.finish_and_clear();
    if sink_error.is_none() {
        if let Err(e) = sink.flush().await {
            sink_error = Some(e);
        }
    }
    let _ = sink.record_log_file().await;
    // The periodic heartbeat lags the loop: record where the run ended, so a finished run does
    // not show an earlier step.
    if !lost.load(Ordering::SeqCst) {
        let _ = store.heartbeat(lease, progress.get()).await;
    }

    let step = match &outcome {
        Outcome::Finished { step } | Outcome::Cancelled { step } | Outcome::Failed { step, .. } => {
            *step
        }
    };
    let ended = if lost.load(Ordering::SeqCst) {
        Ended::LeaseLost
    } else if let Some(e) = sink_error {
        let message = format!("the runner could not store the run's results: {e:#}");
        let out = store
            .fail(lease, FailureClass::Error, &message, &runner.policy)
            .await?;
        Ended::Failed {
            class: FailureClass::Error,
            message,
            requeued: matches!(out, FailOutcome::Requeued { .. }),
        }
    } else {
        match outcome {
            Outcome::Finished { .. } => end_ok(store.finish(lease).await, Ended::Finished)?,
            Outcome::Cancelled { .. }
                if runner.release_on_stop && runner.stopping.load(Ordering::SeqCst) =>
            {
                match store.release(lease).await {
                    Ok(RunStatus::Queued) => Ended::Released,
                    Ok(_) => Ended::Cancelled,
                    Err(StoreError::LeaseLost { .. }) => Ended::LeaseLost,
                    Err(e) => return Err(e.into()),
                }
            }
            Outcome::Cancelled { .. } => {
                end_ok(store.acknowledge_cancel(lease).await, Ended::Cancelled)?
            }
            Outcome::Failed { class, message, .. } => {
                match store.fail(lease, class, &message, &runner.policy).await {
                    Ok(out) => Ended::Failed {
                        class,
                        message,
                        requeued: matches!(out, FailOutcome::Requeued { .. }),
                    },
                    Err(StoreError::LeaseLost { .. }) => Ended::LeaseLost,
                    Err(e) => return Err(e.into()),
                }
            }
        }
    };
    let result = RunResult {
        run_id: run.id,
        hash: run.hash.clone(),
        cell_key: run.cell_key.clone(),
        attempt: lease.attempt,
        ended,
        step,
        points: sink.points_written,
        elapsed: started.elapsed(),
    };
    runner.ui.println(&describe(&result, run));
    Ok(result)
}

fn end_ok(r: Result<(), StoreError>, ended: Ended) -> anyhow::Result<Ended> {
    match r {
        Ok(()) => Ok(ended),
        Err(StoreError::LeaseLost { .. }) => Ok(Ended::LeaseLost),
        Err(e) => Err(e.into()),
    }
}

/// One line about an ended attempt.
pub fn describe(r: &RunResult, run: &RunRow) -> String {
    let seed = super::plan::run_seed(run).map_or(String::new(), |s| format!(" seed {s}"));
    let what = match &r.ended {
        Ended::Finished => "finished".to_string(),
        Ended::Cancelled => "cancelled".to_string(),
        Ended::Failed {
            class,
            message,
            requeued,
        } => format!(
            "failed ({class}{}): {message}",
            if *requeued { ", re-queued" } else { "" }
        ),
        Ended::LeaseLost => "taken over by another worker".to_string(),
        Ended::Released => "stopped (re-queued to resume)".to_string(),
    };
    format!(
        "{what:<9} run {} {}{seed} [{}] attempt {} at step {}, {} points, {:.1} s",
        r.run_id,
        r.cell_key,
        &r.hash[..12.min(r.hash.len())],
        r.attempt,
        r.step,
        r.points,
        r.elapsed.as_secs_f64()
    )
}

async fn heartbeat_loop(
    store: Store,
    lease: Lease,
    progress: Arc<LiveProgress>,
    cancel: Arc<AtomicBool>,
    lost: Arc<AtomicBool>,
    every: Duration,
) {
    let mut tick = tokio::time::interval(every);
    tick.tick().await;
    loop {
        tick.tick().await;
        match store.heartbeat(&lease, progress.get()).await {
            Ok(HeartbeatReply::Continue) => {}
            Ok(HeartbeatReply::CancelRequested) => cancel.store(true, Ordering::SeqCst),
            Err(StoreError::LeaseLost { .. }) => {
                tracing::warn!(run = %lease.run_id, "lost the run to another worker; stopping it");
                lost.store(true, Ordering::SeqCst);
                cancel.store(true, Ordering::SeqCst);
                return;
            }
            Err(e) => tracing::warn!(run = %lease.run_id, "heartbeat failed: {e}"),
        }
    }
}

/// Is process `pid` alive on this machine? (`None`: cannot tell here.)
fn pid_alive(pid: i64) -> Option<bool> {
    if cfg!(target_os = "linux") {
        Some(std::path::Path::new(&format!("/proc/{pid}")).exists())
    } else {
        None
    }
}

/// Ends runs whose worker is gone: a heartbeat older than the timeout, or a worker process on
/// this host that no longer exists. They are re-queued (to resume from their last checkpoint)
/// while the retry policy allows. Returns how many were ended.
pub async fn reap(runner: &Runner) -> anyhow::Result<usize> {
    let mut n = runner
        .store
        .reap_stale(runner.heartbeat_timeout, &runner.policy)
        .await?
        .len();
    let me = WorkerInfo::this_process("", "");
    let running = runner
        .store
        .list_runs(&RunFilter {
            statuses: vec![RunStatus::Running],
            ..RunFilter::default()
        })
        .await?;
    for run in running {
        let (Some(host), Some(pid)) = (&run.host, run.pid) else {
            continue;
        };
        if host != &me.host || pid == i64::from(me.pid) || pid_alive(pid) != Some(false) {
            continue;
        }
        let message = format!("its worker process {pid} on {host} is gone");
        if let Some(outcome) = runner
            .store
            .crash_run(run.id, &message, &runner.policy)
            .await?
        {
            let what = match outcome {
                FailOutcome::Requeued { .. } => "re-queued to resume from its last checkpoint",
                FailOutcome::Ended(_) => "out of retries",
            };
            runner.ui.println(&format!(
                "crashed   run {} {}: {message}; {what}",
                run.id, run.cell_key
            ));
            n += 1;
        }
    }
    Ok(n)
}

/// When [`serve`] returns.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Until {
    /// Never (until Ctrl-C).
    Stopped,
    /// When nothing is runnable and this process runs nothing.
    QueueEmpty,
    /// When the experiment has no runnable or running run left (in any process).
    ExperimentDone,
}

/// Runs `slots` side by side, claiming runs until `until` holds (or Ctrl-C), with a reaper.
pub async fn serve(
    runner: Arc<Runner>,
    slots: Vec<Slot>,
    until: Until,
) -> anyhow::Result<Vec<RunResult>> {
    reap(&runner).await?;
    for slot in &slots {
        runner.store.worker_heartbeat(&slot.worker).await?;
    }
    let reaper = {
        let runner = runner.clone();
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(Duration::from_secs(5));
            loop {
                tick.tick().await;
                if let Err(e) = reap(&runner).await {
                    tracing::warn!("reaping dead runs failed: {e:#}");
                }
            }
        })
    };
    let mut tasks = Vec::new();
    for slot in slots {
        let runner = runner.clone();
        tasks.push(tokio::spawn(async move {
            let mut results = Vec::new();
            loop {
                if runner.stopping.load(Ordering::SeqCst) {
                    break;
                }
                match execute_next(&runner, &slot).await {
                    Ok(Some(r)) => results.push(r),
                    Ok(None) => {
                        if done(&runner, until).await? {
                            break;
                        }
                        let _ = runner.store.worker_heartbeat(&slot.worker).await;
                        tokio::time::sleep(Duration::from_millis(500)).await;
                    }
                    Err(e) => {
                        runner.stop();
                        let _ = runner.store.retire_worker(&slot.worker.id).await;
                        return Err(e);
                    }
                }
            }
            let _ = runner.store.retire_worker(&slot.worker.id).await;
            Ok::<_, anyhow::Error>(results)
        }));
    }
    let mut all = Vec::new();
    let mut first_error = None;
    for t in tasks {
        match t.await {
            Ok(Ok(r)) => all.extend(r),
            Ok(Err(e)) => {
                first_error.get_or_insert(e);
            }
            Err(join) => {
                first_error.get_or_insert(anyhow::anyhow!("a worker slot panicked: {join}"));
            }
        }
    }
    reaper.abort();
    runner.ui.finish();
    match first_error {
        Some(e) => Err(e),
        None => Ok(all),
    }
}

async fn done(runner: &Runner, until: Until) -> anyhow::Result<bool> {
    if runner.active() > 0 {
        return Ok(false);
    }
    let state = runner.store.queue_state(runner.experiment).await?;
    Ok(match until {
        Until::Stopped => false,
        Until::QueueEmpty => state.runnable == 0,
        Until::ExperimentDone => state.runnable == 0 && state.running == 0,
    })
}
