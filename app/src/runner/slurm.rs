//! The Slurm executor: queued runs become tasks of `sbatch` array jobs, one run per task. Each
//! task runs `towerlab worker --run ID`, which claims exactly that run in the store and executes
//! it (the worker's one-call claim-and-execute), logging into the run folder. Runs that wait for
//! a pre-training run are a second array, `--dependency=afterok:` on the pre-training tasks.
//!
//! Jobs get `--requeue` and a warning signal (`--signal=B:USR1@SECONDS`): on it the worker
//! checkpoints, puts its run back in the queue and requeues its own task, which resumes from the
//! checkpoint. The store records each run's job and array task; `squeue` gives their state.

use std::collections::{BTreeSet, HashMap};
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::Command;

use experiments::ExecutorSpec;
use store::{RunId, RunRow, RunStatus, SlurmJob, Store};

/// A Slurm command that could not be run or that failed.
#[derive(Debug, thiserror::Error)]
pub enum SlurmError {
    #[error(
        "cannot run `{tool}` ({source}): is Slurm installed here and on PATH? (Debian: apt-get \
         install slurm-client)"
    )]
    Spawn {
        tool: &'static str,
        #[source]
        source: std::io::Error,
    },
    #[error("`{tool}` failed ({status}): {stderr}")]
    Failed {
        tool: &'static str,
        status: std::process::ExitStatus,
        stderr: String,
    },
    #[error("`sbatch --parsable` printed `{text}`, not a job id")]
    NoJobId { text: String },
    #[error("cannot write the batch script {path}")]
    Script {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

/// The `SLURM_*` environment of a task this process runs in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TaskEnv {
    /// `SLURM_JOB_ID`: the task's own job id (what `scontrol requeue` takes).
    pub job_id: i64,
    /// `SLURM_ARRAY_JOB_ID` and `SLURM_ARRAY_TASK_ID` (the job itself for a non-array job).
    pub array_job_id: i64,
    pub array_task_id: i64,
    /// `SLURM_CPUS_PER_TASK`, when the job asked for CPUs.
    pub cpus: Option<usize>,
    /// `SLURM_RESTART_COUNT`: how often the task was requeued.
    pub restarts: u32,
}

impl TaskEnv {
    /// This process's Slurm task, if it runs in one.
    pub fn from_process() -> Option<Self> {
        let var = |k: &str| {
            std::env::var(k)
                .ok()
                .and_then(|v| v.trim().parse::<i64>().ok())
        };
        let job_id = var("SLURM_JOB_ID")?;
        Some(TaskEnv {
            job_id,
            array_job_id: var("SLURM_ARRAY_JOB_ID").unwrap_or(job_id),
            array_task_id: var("SLURM_ARRAY_TASK_ID").unwrap_or(0),
            cpus: var("SLURM_CPUS_PER_TASK").and_then(|c| usize::try_from(c).ok()),
            restarts: var("SLURM_RESTART_COUNT")
                .and_then(|c| u32::try_from(c).ok())
                .unwrap_or(0),
        })
    }

    /// `<array job>_<task>`.
    pub fn task_name(&self) -> String {
        format!("{}_{}", self.array_job_id, self.array_task_id)
    }
}

fn output(tool: &'static str, args: &[String]) -> Result<String, SlurmError> {
    let out = Command::new(tool)
        .args(args)
        .output()
        .map_err(|source| SlurmError::Spawn { tool, source })?;
    if !out.status.success() {
        return Err(SlurmError::Failed {
            tool,
            status: out.status,
            stderr: String::from_utf8_lossy(&out.stderr).trim().to_string(),
        });
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// Single quotes for bash.
fn quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', r"'\''"))
}

/// One array job to submit: these runs, one per task, in this order.
pub struct ArrayJob<'a> {
    pub name: String,
    pub runs: Vec<&'a RunRow>,
    /// Array tasks (`<job>_<task>`) that must finish first.
    pub after: Vec<String>,
}

/// The batch script of an array job: `#SBATCH` lines from the spec, the run of each task, and
/// the worker that claims and executes it with its log in the run folder.
pub fn batch_script(
    job: &ArrayJob<'_>,
    spec: &ExecutorSpec,
    towerlab: &Path,
    db: &Path,
    runs_dir: &Path,
) -> String {
    let mut s = String::from("#!/bin/bash\n");
    let n = job.runs.len();
    let throttle = spec.throttle.map_or(String::new(), |t| format!("%{t}"));
    let mut line = |opt: String| {
        let _ = writeln!(s, "#SBATCH {opt}");
    };
    line(format!("--job-name={}", job.name));
    line(format!("--array=0-{}{throttle}", n.saturating_sub(1)));
    line("--ntasks=1".into());
    line("--requeue".into());
    line(format!("--signal=B:USR1@{}", spec.signal.unwrap_or(120)));
    // Before a task knows its run folder (a bad path, a missing binary), Slurm's own output.
    line(format!(
        "--output={}",
        runs_dir.join("slurm").join("%A_%a.out").display()
    ));
    for (opt, v) in [
        ("partition", &spec.partition),
        ("account", &spec.account),
        ("qos", &spec.qos),
        ("time", &spec.time),
        ("mem", &spec.mem),
        ("constraint", &spec.constraint),
    ] {
        if let Some(v) = v {
            line(format!("--{opt}={v}"));
        }
    }
    if let Some(g) = spec.gpus {
        line(format!("--gpus={g}"));
    }
    if let Some(c) = spec.cpus {
        line(format!("--cpus-per-task={c}"));
    }
    for extra in &spec.extra {
        line(extra.clone());
    }
    let ids: Vec<String> = job.runs.iter().map(|r| r.id.to_string()).collect();
    let dirs: Vec<String> = job
        .runs
        .iter()
        .map(|r| {
            quote(
                &super::worker::run_dir(runs_dir, &r.hash)
                    .display()
                    .to_string(),
            )
        })
        .collect();
    let _ = writeln!(s, "\n# One TowerLab run per array task.");
    let _ = writeln!(s, "RUNS=({})", ids.join(" "));
    let _ = writeln!(s, "DIRS=({})", dirs.join(" "));
    s.push_str(
        "RUN=${RUNS[$SLURM_ARRAY_TASK_ID]}\n\
         DIR=${DIRS[$SLURM_ARRAY_TASK_ID]}\n\
         mkdir -p \"$DIR\"\n\
         exec >>\"$DIR/slurm-${SLURM_ARRAY_JOB_ID}_${SLURM_ARRAY_TASK_ID}.log\" 2>&1\n\
         echo \"== $(date -u +%FT%TZ) job ${SLURM_ARRAY_JOB_ID}_${SLURM_ARRAY_TASK_ID} \
         (restart ${SLURM_RESTART_COUNT:-0}) on $(hostname): run $RUN\"\n",
    );
    // `exec`: the batch shell becomes the worker, so the warning signal (B:) reaches it.
    let _ = writeln!(
        s,
        "exec {} --db {} worker --run \"$RUN\"",
        quote(&towerlab.display().to_string()),
        quote(&db.display().to_string())
    );
    s
}

/// Submits `job`, returning its job id, and records each run's task in the store.
pub async fn submit(
    store: &Store,
    job: &ArrayJob<'_>,
    spec: &ExecutorSpec,
    db: &Path,
    runs_dir: &Path,
) -> anyhow::Result<i64> {
    let towerlab = std::env::current_exe()?;
    // A file relative to here would not be found from the task's folder; a URL is as it is.
    let db = if super::is_postgres(db) {
        db.to_path_buf()
    } else {
        std::path::absolute(db)?
    };
    let dir = runs_dir.join("slurm");
    std::fs::create_dir_all(&dir).map_err(|source| SlurmError::Script {
        path: dir.clone(),
        source,
    })?;
    let script = batch_script(job, spec, &towerlab, &db, runs_dir);
    let path = dir.join(format!("{}-{}.sbatch", job.name, store::now_ms()));
    std::fs::write(&path, &script).map_err(|source| SlurmError::Script {
        path: path.clone(),
        source,
    })?;
    let mut args = vec!["--parsable".to_string()];
    if !job.after.is_empty() {
        args.push(format!("--dependency=afterok:{}", job.after.join(":")));
    }
    args.push(path.display().to_string());
    let text = output("sbatch", &args)?;
    let first = text
        .trim()
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_string();
    let job_id: i64 = first.parse().map_err(|_| SlurmError::NoJobId {
        text: text.trim().to_string(),
    })?;
    let rows: Vec<(RunId, i64, i64)> = job
        .runs
        .iter()
        .enumerate()
        .map(|(i, r)| (r.id, job_id, i as i64))
        .collect();
    store.record_slurm_jobs(&rows).await?;
    Ok(job_id)
}

/// What `squeue` says of one array task.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TaskState {
    /// PENDING, RUNNING, COMPLETED, CANCELLED, FAILED, TIMEOUT, ...
    pub state: String,
    /// Why it is pending (`Dependency`, `Resources`, ...), `None` when there is none.
    pub reason: Option<String>,
    pub node: Option<String>,
}

impl TaskState {
    /// Pending or running: the task will still do something.
    pub fn live(&self) -> bool {
        matches!(
            self.state.as_str(),
            "PENDING"
                | "RUNNING"
                | "CONFIGURING"
                | "COMPLETING"
                | "REQUEUED"
                | "REQUEUE_HOLD"
                | "REQUEUE_FED"
                | "RESIZING"
                | "SUSPENDED"
                | "SIGNALING"
                | "STAGE_OUT"
        )
    }

    /// Between states: a task that ended (or was requeued) while slurmctld cleans up after it.
    /// Whether it will run again is known only once that is over.
    pub fn settling(&self) -> bool {
        matches!(
            self.state.as_str(),
            "COMPLETING" | "SIGNALING" | "STAGE_OUT"
        )
    }

    /// `RUNNING on node1`, `PENDING (Dependency)`.
    pub fn describe(&self) -> String {
        let mut s = self.state.clone();
        if let Some(n) = &self.node {
            let _ = write!(s, " on {n}");
        }
        if let Some(r) = &self.reason {
            let _ = write!(s, " ({r})");
        }
        s
    }
}

/// The state of every task of `jobs` that slurmctld still knows, by `<job>_<task>`. A task it
/// no longer knows (long finished) is absent.
pub fn task_states(jobs: &BTreeSet<i64>) -> Result<HashMap<String, TaskState>, SlurmError> {
    let mut out = HashMap::new();
    if jobs.is_empty() {
        return Ok(out);
    }
    let list: Vec<String> = jobs.iter().map(i64::to_string).collect();
    let args = vec![
        "--noheader".to_string(),
        "--array".into(),
        "--states=all".into(),
        format!("--jobs={}", list.join(",")),
        "--format=%i|%T|%r|%N".into(),
    ];
    let text = match output("squeue", &args) {
        Ok(t) => t,
        // squeue refuses a list in which no job exists any more.
        Err(SlurmError::Failed { stderr, .. }) if stderr.contains("Invalid job id") => {
            return Ok(out)
        }
        Err(e) => return Err(e),
    };
    for line in text.lines() {
        let parts: Vec<&str> = line.trim().split('|').collect();
        let [id, state, reason, node] = parts.as_slice() else {
            continue;
        };
        let none = |s: &str| (!s.is_empty() && s != "None" && s != "(null)").then(|| s.to_string());
        out.insert(
            id.to_string(),
            TaskState {
                state: state.to_string(),
                reason: none(reason),
                node: none(node),
            },
        );
    }
    Ok(out)
}

/// The Slurm jobs of `runs` and what squeue says of each (`None`: squeue does not know it,
/// or could not be asked).
pub async fn jobs_with_states(
    store: &Store,
    runs: &[RunId],
) -> anyhow::Result<(
    HashMap<RunId, SlurmJob>,
    Result<HashMap<String, TaskState>, SlurmError>,
)> {
    let jobs = store.slurm_jobs(runs).await?;
    let ids: BTreeSet<i64> = jobs.values().map(|j| j.job_id).collect();
    Ok((jobs, task_states(&ids)))
}

/// What the scheduler says of a run's current Slurm task, for `show` and the TUI's run view.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RunJobState {
    /// `<job>_<task>` of the newest submission.
    pub task: String,
    /// `RUNNING on node1`, `PENDING (Dependency)`, or why it is not known.
    pub state: String,
    /// The tasks of earlier submissions, oldest first.
    pub earlier: Vec<String>,
}

impl RunJobState {
    /// `job 12_3: RUNNING on node1`.
    pub fn describe(&self) -> String {
        format!("job {}: {}", self.task, self.state)
    }
}

/// The run's Slurm task and its state in `squeue`; `None` for a run never submitted to Slurm.
pub async fn run_job_state(store: &Store, run: RunId) -> anyhow::Result<Option<RunJobState>> {
    let jobs = store.slurm_job_history(run).await?;
    let Some(current) = jobs.last() else {
        return Ok(None);
    };
    let task = current.task_name();
    let state = match task_states(&[current.job_id].into()) {
        Ok(states) => states
            .get(&task)
            .map_or("not known to squeue (ended)".to_string(), |s| s.describe()),
        Err(e) => format!("state unknown: {e}"),
    };
    let earlier = jobs[..jobs.len() - 1]
        .iter()
        .map(SlurmJob::task_name)
        .collect();
    Ok(Some(RunJobState {
        task,
        state,
        earlier,
    }))
}

/// Fails, saying what is missing, when this machine cannot submit Slurm jobs.
pub fn check_available() -> Result<(), SlurmError> {
    output("sbatch", &["--version".to_string()]).map(|_| ())
}

/// `scancel` these tasks (`<job>_<task>`).
pub fn cancel(tasks: &[String]) -> Result<(), SlurmError> {
    if tasks.is_empty() {
        return Ok(());
    }
    output("scancel", tasks).map(|_| ())
}

/// Puts this task back in Slurm's queue (after its run checkpointed and was released).
pub fn requeue_self(task: &TaskEnv) -> Result<(), SlurmError> {
    output(
        "scontrol",
        &["requeue".to_string(), task.job_id.to_string()],
    )
    .map(|_| ())
}

/// One array job [`submit_queued`] submitted.
#[derive(Debug)]
pub struct SubmittedJob {
    pub job_id: i64,
    /// Its runs (id, cell key) in task order.
    pub runs: Vec<(RunId, String)>,
    /// The tasks it waits for (`afterok`).
    pub after: Vec<String>,
}

/// What [`submit_queued`] submitted.
#[derive(Debug, Default)]
pub struct Submitted {
    pub jobs: Vec<SubmittedJob>,
    /// Queued runs left out because their Slurm task is still pending or running.
    pub live: usize,
}

/// Submits the experiment's queued runs that no live Slurm task holds: the runnable ones as one
/// array, those waiting for a pre-training run as a second one after it.
pub async fn submit_queued(
    store: &Store,
    experiment: store::ExperimentId,
    hashes: &BTreeSet<String>,
    spec: &ExecutorSpec,
    name: &str,
    db: &Path,
    runs_dir: &Path,
) -> anyhow::Result<Submitted> {
    let runs: Vec<RunRow> = store
        .list_runs(&store::RunFilter {
            experiment: Some(experiment),
            ..store::RunFilter::default()
        })
        .await?
        .into_iter()
        .filter(|r| hashes.contains(&r.hash))
        .collect();
    let by_id: HashMap<RunId, &RunRow> = runs.iter().map(|r| (r.id, r)).collect();
    let ids: Vec<RunId> = runs.iter().map(|r| r.id).collect();
    // A task just cancelled (or requeued) is `COMPLETING` for a while: wait until it is either
    // gone or pending again before deciding whether its run needs a new job.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(90);
    let (jobs, states) = loop {
        let (jobs, states) = jobs_with_states(store, &ids).await?;
        let states = states?;
        let settling = runs.iter().any(|r| {
            r.status == RunStatus::Queued
                && jobs
                    .get(&r.id)
                    .and_then(|j| states.get(&j.task_name()))
                    .is_some_and(TaskState::settling)
        });
        if !settling || std::time::Instant::now() > deadline {
            break (jobs, states);
        }
        tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    };
    let live_task = |run: RunId| -> Option<String> {
        let job = jobs.get(&run)?;
        let name = job.task_name();
        states.get(&name).filter(|s| s.live()).map(|_| name)
    };
    let mut out = Submitted::default();
    let mut now = Vec::new();
    let mut later = Vec::new();
    for r in runs.iter().filter(|r| r.status == RunStatus::Queued) {
        if live_task(r.id).is_some() {
            out.live += 1;
            continue;
        }
        match r.depends_on.and_then(|d| by_id.get(&d).copied()) {
            Some(dep) if dep.status != RunStatus::Finished => later.push(r),
            _ => now.push(r),
        }
    }
    let mut first: Option<(i64, Vec<RunId>)> = None;
    if !now.is_empty() {
        let job = ArrayJob {
            name: format!("towerlab-{name}"),
            runs: now.clone(),
            after: Vec::new(),
        };
        let id = submit(store, &job, spec, db, runs_dir).await?;
        out.jobs.push(SubmittedJob {
            job_id: id,
            runs: now.iter().map(|r| (r.id, r.cell_key.clone())).collect(),
            after: Vec::new(),
        });
        first = Some((id, now.iter().map(|r| r.id).collect()));
    }
    if !later.is_empty() {
        let mut after = BTreeSet::new();
        for r in &later {
            let Some(dep) = r.depends_on else { continue };
            let in_first = first.as_ref().and_then(|(job, ids)| {
                ids.iter()
                    .position(|i| *i == dep)
                    .map(|t| format!("{job}_{t}"))
            });
            match in_first.or_else(|| live_task(dep)) {
                Some(task) => {
                    after.insert(task);
                }
                None => anyhow::bail!(crate::exit::UserError {
                    code: 1,
                    message: format!(
                        "run {} ({}) waits for pre-training run {dep}, which is {} and has no \
                         Slurm job: nothing submitted for it",
                        r.id,
                        r.cell_key,
                        by_id
                            .get(&dep)
                            .map_or("gone".to_string(), |d| d.status.to_string())
                    ),
                }),
            }
        }
        let after: Vec<String> = after.into_iter().collect();
        let job = ArrayJob {
            name: format!("towerlab-{name}-after-pretrain"),
            runs: later.clone(),
            after: after.clone(),
        };
        let id = submit(store, &job, spec, db, runs_dir).await?;
        out.jobs.push(SubmittedJob {
            job_id: id,
            runs: later.iter().map(|r| (r.id, r.cell_key.clone())).collect(),
            after,
        });
    }
    Ok(out)
}

/// A running run whose heartbeat is younger than this has a live worker, whatever its recorded
/// Slurm task says (a local worker may have taken it after its task was cancelled).
const FRESH_HEARTBEAT_MS: i64 = 15_000;

/// Ends running runs whose Slurm task is no longer live (killed, timed out, node lost) and
/// whose heartbeat stopped as crashed, re-queued while `policy` allows. Returns the runs
/// re-queued and those ended.
pub async fn reap_dead_tasks(
    store: &Store,
    runs: &[RunRow],
    policy: &store::RetryPolicy,
) -> anyhow::Result<Vec<(RunId, store::FailOutcome)>> {
    let now = store::now_ms();
    let running: Vec<RunId> = runs
        .iter()
        .filter(|r| {
            r.status == RunStatus::Running
                && r.heartbeat_ms.is_none_or(|h| now - h >= FRESH_HEARTBEAT_MS)
        })
        .map(|r| r.id)
        .collect();
    let (jobs, states) = jobs_with_states(store, &running).await?;
    let states = states?;
    let mut out = Vec::new();
    for run in running {
        let Some(job) = jobs.get(&run) else { continue };
        let name = job.task_name();
        let what = match states.get(&name) {
            Some(s) if s.live() => continue,
            Some(s) => s.state.clone(),
            None => "gone".to_string(),
        };
        let message = format!("its Slurm task {name} ended ({what}) while the run was running");
        if let Some(outcome) = store.crash_run(run, &message, policy).await? {
            out.push((run, outcome));
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(id: i64, hash: &str) -> RunRow {
        RunRow {
            id: RunId(id),
            experiment_id: store::ExperimentId(1),
            experiment: "e".into(),
            hash: hash.into(),
            cell_key: format!("cell{id}"),
            axes: Default::default(),
            task: "vqa".into(),
            status: RunStatus::Queued,
            failure_class: None,
            failure_message: None,
            worker: None,
            host: None,
            pid: None,
            device: None,
            engine_version: None,
            created_ms: 0,
            started_ms: None,
            ended_ms: None,
            heartbeat_ms: None,
            attempts: 0,
            cancel_requested: false,
            depends_on: None,
            checkpoint_path: None,
            checkpoint_step: None,
            progress_step: None,
            progress_total: None,
        }
    }

    #[test]
    fn the_batch_script_asks_for_what_the_spec_says_and_runs_one_run_per_task() {
        let mut spec = ExecutorSpec::default();
        for (k, v) in [
            ("kind", "slurm"),
            ("partition", "gpu"),
            ("account", "lab"),
            ("qos", "high"),
            ("time", "2:00:00"),
            ("gpus", "1"),
            ("cpus", "8"),
            ("mem", "32G"),
            ("constraint", "a100"),
            ("throttle", "3"),
            ("signal", "300"),
            ("extra", "#SBATCH --mail-type=END"),
        ] {
            spec.set(k, v).unwrap();
        }
        let (a, b) = (run(4, "aaaaaaaaaaaaaaaa"), run(9, "bbbbbbbbbbbbbbbb"));
        let job = ArrayJob {
            name: "towerlab-e".into(),
            runs: vec![&a, &b],
            after: vec![],
        };
        let s = batch_script(
            &job,
            &spec,
            Path::new("/opt/tl/towerlab"),
            Path::new("/data/it's.db"),
            Path::new("/data/runs"),
        );
        for line in [
            "#SBATCH --array=0-1%3",
            "#SBATCH --requeue",
            "#SBATCH --signal=B:USR1@300",
            "#SBATCH --partition=gpu",
            "#SBATCH --account=lab",
            "#SBATCH --qos=high",
            "#SBATCH --time=2:00:00",
            "#SBATCH --mem=32G",
            "#SBATCH --constraint=a100",
            "#SBATCH --gpus=1",
            "#SBATCH --cpus-per-task=8",
            "#SBATCH --mail-type=END",
            "RUNS=(4 9)",
            "DIRS=('/data/runs/aaaaaaaaaaaa' '/data/runs/bbbbbbbbbbbb')",
            r#"exec '/opt/tl/towerlab' --db '/data/it'\''s.db' worker --run "$RUN""#,
        ] {
            assert!(s.lines().any(|l| l == line), "no line {line:?} in:\n{s}");
        }
        // Options come before the first command, or sbatch ignores them.
        let first_command = s.lines().position(|l| l.starts_with("RUNS=")).unwrap();
        let lines: Vec<&str> = s.lines().collect();
        let last_option = lines
            .iter()
            .rposition(|l| l.starts_with("#SBATCH"))
            .unwrap();
        assert!(last_option < first_command, "{s}");
    }
}
