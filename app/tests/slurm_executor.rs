//! The Slurm executor against a real single-node Slurm cluster (slurmctld, slurmd and munge
//! from the Debian packages, started in a temporary folder by scripts/slurm-test-cluster.sh,
//! which installs them when missing) and the real training loop on a SQLite store (and, for the
//! demo's grid, on a PostgreSQL store: a server scripts/pg-test-server.sh starts): tiny grids on
//! synthetic data, submitted as sbatch array jobs. Without a cluster (or a PostgreSQL server)
//! these tests fail, saying why.

use std::collections::{BTreeSet, HashMap};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use store::{RunFilter, RunId, RunRow, RunStatus, SeriesOptions, SeriesPoint, SlurmJob, Store};
use testkit::towerlab::{self, runtime as rt, text, TinyVqa};

/// A single-node cluster for one test, stopped when dropped.
struct Cluster {
    dir: PathBuf,
    conf: PathBuf,
}

fn script() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../scripts/slurm-test-cluster.sh")
}

impl Cluster {
    fn start(dir: &Path) -> Self {
        let dir = dir.join("cluster");
        let out = Command::new(script())
            .arg("start")
            .arg(&dir)
            .output()
            .expect("running scripts/slurm-test-cluster.sh");
        assert!(
            out.status.success(),
            "the Slurm test cluster did not start (these tests need slurmctld, slurmd, \
             slurm-client and munge, which `make test-tools` installs, and root):\n{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        let conf = dir.join("slurm.conf");
        Cluster { dir, conf }
    }

    fn command(&self, tool: &str) -> Command {
        let mut c = Command::new(tool);
        c.env("SLURM_CONF", &self.conf);
        c
    }

    /// A Slurm client's stdout, asserting it succeeded.
    fn client(&self, tool: &str, args: &[&str]) -> String {
        let out = self.command(tool).args(args).output().unwrap();
        assert!(
            out.status.success(),
            "{tool} {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// What squeue says of array task `task` (`<job>_<n>`): `STATE|REASON`, empty when unknown.
    fn task_state(&self, task: &str) -> String {
        let job = task.split('_').next().unwrap();
        self.client(
            "squeue",
            &["-h", "-r", "--states=all", "-j", job, "-o", "%i|%T|%r"],
        )
        .lines()
        .find_map(|l| l.strip_prefix(&format!("{task}|")).map(str::to_string))
        .unwrap_or_default()
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        let _ = Command::new(script()).arg("stop").arg(&self.dir).status();
    }
}

/// Fields drop in order: the cluster is stopped (by the pid files in its folder) before the
/// temporary folder holding them is removed.
struct Env {
    cluster: Cluster,
    tmp: tempfile::TempDir,
    /// A PostgreSQL URL, or `None` for `towerlab.db` in `tmp`.
    url: Option<String>,
}

impl Env {
    fn new(experiment: &str) -> Self {
        Env::with_store(experiment, None)
    }

    /// On a fresh database of the test binary's PostgreSQL server.
    fn on_postgres(experiment: &str) -> Self {
        let url = store::testing::PgServer::shared().fresh_database_blocking();
        Env::with_store(experiment, Some(url))
    }

    fn with_store(experiment: &str, url: Option<String>) -> Self {
        let tmp = tempfile::tempdir().unwrap();
        let cluster = Cluster::start(tmp.path());
        std::fs::write(
            tmp.path().join("exp.toml"),
            experiment.replace("DATA", &tmp.path().join("data").display().to_string()),
        )
        .unwrap();
        Env { cluster, tmp, url }
    }

    fn db(&self) -> PathBuf {
        match &self.url {
            Some(url) => PathBuf::from(url),
            None => self.tmp.path().join("towerlab.db"),
        }
    }

    fn towerlab(&self, args: &[&str]) -> Output {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_towerlab"));
        for (var, _) in std::env::vars() {
            if var.starts_with("SLURM_")
                || var.starts_with("TOWERLAB_")
                || var.starts_with("WANDB_")
            {
                cmd.env_remove(var);
            }
        }
        cmd.env("SLURM_CONF", &self.cluster.conf)
            .current_dir(self.tmp.path())
            .arg("--db")
            .arg(self.db())
            .args(args)
            .output()
            .unwrap()
    }

    fn ok(&self, args: &[&str]) -> String {
        let out = self.towerlab(args);
        let text = text(&out);
        assert!(out.status.success(), "towerlab {args:?}: {text}");
        text
    }

    fn store<T>(&self, f: impl AsyncFnOnce(&Store) -> T) -> T {
        rt().block_on(async {
            let store = Store::open(self.db()).await.unwrap();
            let out = f(&store).await;
            store.close().await;
            out
        })
    }

    fn runs(&self) -> Vec<RunRow> {
        self.store(async |s| s.list_runs(&RunFilter::default()).await.unwrap())
    }

    /// Polls the store until `done` holds for its runs.
    fn wait_for(&self, what: &str, limit: Duration, done: impl Fn(&[RunRow]) -> bool) {
        let deadline = Instant::now() + limit;
        loop {
            let runs = self.runs();
            if done(&runs) {
                return;
            }
            if Instant::now() > deadline {
                let logs = self.cluster.dir.join("slurmctld.log");
                panic!(
                    "{what}: not within {limit:?}; runs: {:#?}\nsqueue:\n{}\nslurmctld.log:\n{}\n\
                     task output: {}",
                    runs.iter()
                        .map(|r| (r.id, r.status, r.checkpoint_step, r.progress_step))
                        .collect::<Vec<_>>(),
                    self.cluster.client("squeue", &["-r", "--states=all"]),
                    std::fs::read_to_string(logs).unwrap_or_default(),
                    task_logs(&self.tmp.path().join("runs"))
                );
            }
            std::thread::sleep(Duration::from_millis(300));
        }
    }
}

/// Every Slurm log under the runs folder (for a failing test's message).
fn task_logs(runs: &Path) -> String {
    let mut out = String::new();
    for dir in std::fs::read_dir(runs).into_iter().flatten().flatten() {
        for f in std::fs::read_dir(dir.path())
            .into_iter()
            .flatten()
            .flatten()
        {
            let name = f.file_name().to_string_lossy().into_owned();
            if name.starts_with("slurm-") || name.ends_with(".out") {
                out.push_str(&format!(
                    "\n--- {}\n{}",
                    f.path().display(),
                    std::fs::read_to_string(f.path()).unwrap_or_default()
                ));
            }
        }
    }
    out
}

/// A tiny VQA grid on synthetic data; `grid` and `extra` sections are the test's.
fn experiment(max_steps: i64, val_every: i64, grid: &str, extra: &str) -> String {
    TinyVqa {
        name: "slurm-test",
        data: "DATA",
        max_steps,
        val_check_steps: val_every,
        grid,
        extra,
        ..TinyVqa::default()
    }
    .toml()
}

/// `train/vqa/loss` (or pre-training's first loss) has exactly the steps 1..=steps.
async fn assert_complete_series(store: &Store, run: &RunRow, steps: i64) {
    let key = if run.task == "pretrain" {
        "train/mlm/loss"
    } else {
        "train/vqa/loss"
    };
    towerlab::assert_steps(store, run.id, key, steps).await;
}

/// The demo's shape (manager types × seeds), tiny: every run finished, each executed once
/// (one attempt, one claim), in one array job throttled to 2 tasks, job and task ids recorded,
/// each task's log in its run folder; `--wait` prints the results table a local run prints.
#[test]
fn a_grid_submitted_to_slurm_runs_every_cell_once_with_its_job_recorded() {
    const STEPS: i64 = 12;
    let env = Env::new(&experiment(
        STEPS,
        6,
        "manager_type = [\"BT\", \"SAUE\"]\nseeds = [0, 1]",
        "[executor]\nkind = \"slurm\"\ncpus = 1\nthrottle = 2\ntime = \"20:00\"\nsignal = 30",
    ));
    let out = env.ok(&["run", "exp.toml", "--wait"]);
    assert!(out.contains("submitted Slurm job"), "{out}");
    assert!(out.contains("4 run(s), at most 2 at once"), "{out}");
    assert!(out.contains("4 done"), "the results of a local run: {out}");
    assert!(out.contains("manager_type"), "the results table: {out}");

    let (runs, jobs, job) = assert_each_run_once_in_one_array_job(&env, &out, 4, STEPS);

    let shown = env
        .cluster
        .client("scontrol", &["show", "job", &format!("{job}_0")]);
    assert!(shown.contains("ArrayTaskThrottle=2"), "{shown}");
    assert!(shown.contains("Requeue=1"), "{shown}");
    assert!(shown.contains("JobState=COMPLETED"), "{shown}");
    for (run, j) in &jobs {
        let r = runs.iter().find(|r| r.id == *run).unwrap();
        let log = env
            .tmp
            .path()
            .join("runs")
            .join(&r.hash[..12])
            .join(format!("slurm-{}.log", j.task_name()));
        let text =
            std::fs::read_to_string(&log).unwrap_or_else(|e| panic!("{}: {e}", log.display()));
        assert!(
            text.contains(&format!("Slurm task {}", j.task_name())),
            "{text}"
        );
        assert!(text.contains("finished"), "{text}");
    }

    // ls and show give the scheduler's view beside TowerLab's.
    let ls = env.ok(&["ls"]);
    assert!(ls.contains("slurm"), "{ls}");
    assert!(ls.contains(&format!("{job}_3 COMPLETED")), "{ls}");
    let show = env.ok(&["show", &runs[0].id.0.to_string()]);
    assert!(show.contains(&format!("slurm       job {job}_")), "{show}");

    // Nothing left to submit.
    let again = env.ok(&["run", "exp.toml", "--executor", "slurm"]);
    assert!(!again.contains("submitted Slurm job"), "{again}");
    assert!(again.contains("nothing to run"), "{again}");
}

/// The demo's grid (3 manager types x 2 seeds, tiny and short here) submitted to the cluster
/// against a PostgreSQL store: every task's worker claims its run on the server, so all six
/// runs finish, each executed once, with their job and task ids recorded.
#[test]
fn the_demo_grid_on_slurm_against_a_postgres_store_finishes_every_run_once() {
    const STEPS: i64 = 4;
    let env = Env::on_postgres(&experiment(
        STEPS,
        2,
        "manager_type = [\"BT\", \"SAUE\", \"AAUE\"]\nseeds = [0, 1]",
        "[executor]\nkind = \"slurm\"\ncpus = 1\nthrottle = 3\ntime = \"20:00\"",
    ));
    let out = env.ok(&["run", "exp.toml", "--wait"]);
    assert!(out.contains("submitted Slurm job"), "{out}");
    assert!(out.contains("6 done"), "{out}");

    assert_eq!(env.store(async |s| s.backend()), store::Backend::Postgres);
    let (_, _, job) = assert_each_run_once_in_one_array_job(&env, &out, 6, STEPS);
    let ls = env.ok(&["ls"]);
    assert!(ls.contains(&format!("{job}_5 COMPLETED")), "{ls}");
}

/// VLP: one pre-training run, two fine-tuning runs that start from its checkpoint. The
/// fine-tuning tasks are a second array with `afterok` on the pre-training task, pending with
/// reason `Dependency` (as squeue, scontrol and `towerlab ls` show) until it finished.
#[test]
fn vlp_fine_tuning_tasks_wait_for_their_pre_training_job() {
    let env = Env::new(&experiment(
        8,
        4,
        "manager_type = [\"BT\"]\nvlp = [true]\nseeds = [0, 1]",
        "[pretrain]\nmax_steps = 30\nval_check_steps = 30\n\
         train_tables = [\"coco_caption_karpathy_train\"]\n\
         val_tables = [\"coco_caption_karpathy_val\"]\n\
         test_tables = [\"coco_caption_karpathy_test\"]",
    ));
    // The kind from the command line: the file has no [executor].
    let out = env.ok(&["run", "exp.toml", "--executor", "slurm", "--cpus", "1"]);
    let submitted: Vec<&str> = out
        .lines()
        .filter(|l| l.starts_with("submitted Slurm job"))
        .collect();
    assert_eq!(submitted.len(), 2, "{out}");
    let job_of = |line: &str| -> i64 {
        line["submitted Slurm job ".len()..]
            .split(':')
            .next()
            .unwrap()
            .parse()
            .unwrap()
    };
    let (pre_job, ft_job) = (job_of(submitted[0]), job_of(submitted[1]));
    assert!(submitted[0].contains("1 run(s)"), "{out}");
    assert!(
        submitted[1].contains(&format!("2 run(s), after {pre_job}_0 (pre-training)")),
        "{out}"
    );

    // While pre-training runs, the fine-tuning tasks wait on it.
    let shown = env
        .cluster
        .client("scontrol", &["show", "job", &format!("{ft_job}_0")]);
    assert!(
        shown.contains(&format!("Dependency=afterok:{pre_job}_0")),
        "{shown}"
    );
    // A job just submitted may show no reason until the scheduler's first pass over it.
    let deadline = Instant::now() + Duration::from_secs(20);
    for t in 0..2 {
        let task = format!("{ft_job}_{t}");
        loop {
            let state = env.cluster.task_state(&task);
            if state == "PENDING|Dependency" {
                break;
            }
            assert!(
                Instant::now() < deadline && state.starts_with("PENDING"),
                "task {task} is {state}, not pending on its dependency"
            );
            std::thread::sleep(Duration::from_millis(200));
        }
    }
    let ls = env.ok(&["ls"]);
    assert!(ls.contains("PENDING (Dependency)"), "{ls}");
    // `show` and the TUI's run view say the same of a fine-tuning run.
    let ft = env
        .runs()
        .into_iter()
        .find(|r| r.task != "pretrain")
        .unwrap();
    let shown = env.ok(&["show", &ft.id.to_string()]);
    assert!(
        shown.contains(&format!("slurm       job {ft_job}_"))
            && shown.contains("PENDING (Dependency)"),
        "{shown}"
    );
    // The TUI runs squeue itself, as a user's does, with the cluster's configuration.
    // (Only this test calls squeue in the test's own process.)
    std::env::set_var("SLURM_CONF", &env.cluster.conf);
    let mut source = app::tui::StoreSource::open(&env.db()).unwrap();
    let detail = app::tui::TuiSource::run_detail(&mut source, ft.id.0, 5)
        .unwrap()
        .unwrap();
    let scheduler = detail.scheduler.unwrap_or_default();
    assert!(
        scheduler.starts_with(&format!("job {ft_job}_"))
            && scheduler.ends_with("PENDING (Dependency)"),
        "{scheduler}"
    );
    drop(source);
    assert!(
        env.runs()
            .iter()
            .any(|r| r.task == "pretrain" && r.status != RunStatus::Finished),
        "seen while pre-training had not finished"
    );

    env.wait_for("every run finished", Duration::from_secs(600), |runs| {
        runs.len() == 3 && runs.iter().all(|r| r.status == RunStatus::Finished)
    });
    let runs = env.runs();
    let pre = runs.iter().find(|r| r.task == "pretrain").unwrap();
    let jobs = env.store(async |s| {
        s.slurm_jobs(&runs.iter().map(|r| r.id).collect::<Vec<_>>())
            .await
            .unwrap()
    });
    assert_eq!(jobs[&pre.id].job_id, pre_job);
    for r in runs.iter().filter(|r| r.task == "vqa") {
        assert_eq!(r.depends_on, Some(pre.id));
        assert_eq!(jobs[&r.id].job_id, ft_job);
        assert_eq!(r.attempts, 1);
        assert!(
            r.started_ms.unwrap() >= pre.ended_ms.unwrap(),
            "run {} started before its pre-training run ended",
            r.id
        );
    }
}

/// A task cancelled with `scancel` mid-run stops after a checkpoint (SIGTERM) and its run goes
/// back to the queue; submitting again (a new job) resumes it from that checkpoint: every step
/// once, the points before the checkpoint kept as they were.
#[test]
fn a_task_cancelled_with_scancel_resumes_from_its_checkpoint_when_resubmitted() {
    let env = Env::new(&one_run_experiment());
    let (run, first) = one_run_mid_way(&env);
    env.cluster.client("scancel", &[&first.task_name()]);
    let (checkpoint, before) = released_at_a_checkpoint(&env, "scancel");

    let out = env.ok(&["run", "exp.toml", "--wait"]);
    assert!(out.contains("submitted Slurm job"), "re-submitted: {out}");
    assert!(out.contains("1 done"), "{out}");
    env.store(async |s| {
        assert_resumed_intact(s, run.id, Some(checkpoint), &before).await;
        let history = s.slurm_job_history(run.id).await.unwrap();
        assert_eq!(history.len(), 2, "{history:?}");
        assert_ne!(history[0].job_id, history[1].job_id);
    });
}

/// Slurm's warning before a time limit or preemption (`--signal=B:USR1@…`, sent here with
/// `scancel --signal=USR1 --batch`): the worker checkpoints, puts its run back in the queue and
/// requeues its own task, which starts again (same job, restart 1) and resumes the run to the
/// end. No new submission, no retry spent, every step once.
#[test]
fn the_warning_signal_checkpoints_and_the_requeued_task_resumes() {
    let env = Env::new(&one_run_experiment());
    let (run, job) = one_run_mid_way(&env);
    env.cluster
        .client("scancel", &["--signal=USR1", "--batch", &job.task_name()]);
    start_the_requeued_task_now(&env, &job);
    assert_eq!(
        env.runs()[0].status,
        RunStatus::Queued,
        "released to resume"
    );
    env.wait_for(
        "the run finished after its requeue",
        Duration::from_secs(300),
        |runs| runs[0].status == RunStatus::Finished,
    );
    env.store(async |s| assert_resumed_intact(s, run.id, None, &[]).await);
    assert_the_same_task_ran_again(&env, &job);
    let log = std::fs::read_to_string(
        env.tmp
            .path()
            .join("runs")
            .join(&run.hash[..12])
            .join(format!("slurm-{}.log", job.task_name())),
    )
    .unwrap();
    assert!(log.contains("stopping (SIGUSR1)"), "{log}");
    assert!(
        log.contains(&format!("requeued Slurm task {}", job.task_name())),
        "{log}"
    );
}

/// An administrator's (or a preempting scheduler's) `scontrol requeue` of a running task: Slurm
/// stops the task with SIGTERM, the worker checkpoints and puts its run back in the queue, and
/// the task, started again under the same job (restart 1), resumes the run to the end from that
/// checkpoint: the steps before it are the first attempt's points, unchanged, and every step is
/// there once.
#[test]
fn a_task_requeued_with_scontrol_requeue_resumes_from_its_checkpoint() {
    let env = Env::new(&one_run_experiment());
    let (run, job) = one_run_mid_way(&env);
    env.cluster
        .client("scontrol", &["requeue", &job.task_name()]);
    let (checkpoint, before) = released_at_a_checkpoint(&env, "scontrol requeue");
    start_the_requeued_task_now(&env, &job);
    env.wait_for(
        "the run finished after its requeue",
        Duration::from_secs(300),
        |runs| runs[0].status == RunStatus::Finished,
    );
    env.store(async |s| assert_resumed_intact(s, run.id, Some(checkpoint), &before).await);
    assert_the_same_task_ran_again(&env, &job);
}

/// Every one of the `n` runs finished in one attempt with all its `steps`, each recorded as a task
/// (0..n) of one array job: the runs, their jobs and that job's id.
fn assert_each_run_once_in_one_array_job(
    env: &Env,
    out: &str,
    n: usize,
    steps: i64,
) -> (Vec<RunRow>, HashMap<RunId, SlurmJob>, i64) {
    let runs = env.runs();
    assert_eq!(runs.len(), n);
    let jobs = env.store(async |s| {
        for r in &runs {
            assert_eq!(r.status, RunStatus::Finished, "run {}: {out}", r.id);
            assert_eq!(
                r.attempts, 1,
                "run {} was executed {} times",
                r.id, r.attempts
            );
            assert_complete_series(s, r, steps).await;
        }
        s.slurm_jobs(&runs.iter().map(|r| r.id).collect::<Vec<_>>())
            .await
            .unwrap()
    });
    assert_eq!(jobs.len(), n, "every run's job is recorded: {jobs:?}");
    let job_ids: BTreeSet<i64> = jobs.values().map(|j| j.job_id).collect();
    assert_eq!(job_ids.len(), 1, "one array job: {jobs:?}");
    let tasks: BTreeSet<i64> = jobs.values().map(|j| j.array_task_id).collect();
    assert_eq!(tasks, (0..n as i64).collect(), "{jobs:?}");
    let job = *job_ids.first().unwrap();
    (runs, jobs, job)
}

/// Steps of the one-run experiments the stop-and-resume tests use: enough that the run is
/// still training for several heartbeats (3 s apart: they carry its progress) after its first
/// checkpoint, so the tests find it mid-way (60 steps were sometimes over before that).
const RESUME_STEPS: i64 = 200;

/// One BT run of [`RESUME_STEPS`] steps, checkpointed every 5, on the Slurm executor.
fn one_run_experiment() -> String {
    experiment(
        RESUME_STEPS,
        5,
        "manager_type = [\"BT\"]\nseeds = [0]",
        "[executor]\nkind = \"slurm\"\ncpus = 1",
    )
}

/// Submits the experiment and waits until its run has a checkpoint and has trained past it;
/// the run and its Slurm task.
fn one_run_mid_way(env: &Env) -> (RunRow, SlurmJob) {
    let out = env.ok(&["run", "exp.toml"]);
    assert!(out.contains("submitted Slurm job"), "{out}");
    env.wait_for("a checkpoint mid-run", Duration::from_secs(300), |runs| {
        runs.iter().any(|r| {
            r.status == RunStatus::Running
                && r.checkpoint_step.is_some()
                && r.progress_step > r.checkpoint_step
        })
    });
    let run = env.runs().remove(0);
    let job = env.store(async |s| s.slurm_jobs(&[run.id]).await.unwrap()[&run.id].clone());
    (run, job)
}

/// After the task was stopped (by `what`): the run is queued again at a checkpoint inside the
/// run; that checkpoint's step and the loss points recorded so far.
fn released_at_a_checkpoint(env: &Env, what: &str) -> (i64, Vec<SeriesPoint>) {
    env.wait_for(
        &format!("the run released after {what}"),
        Duration::from_secs(120),
        |runs| runs[0].status != RunStatus::Running,
    );
    let stopped = env.runs().remove(0);
    assert_eq!(
        stopped.status,
        RunStatus::Queued,
        "a stopped task's run is queued again, to resume"
    );
    let checkpoint = stopped.checkpoint_step.expect("a checkpoint on stop");
    assert!(checkpoint > 0 && checkpoint < RESUME_STEPS, "{checkpoint}");
    let before = env.store(async |s| {
        s.metric_series(stopped.id, "train/vqa/loss", SeriesOptions::default())
            .await
            .unwrap()
    });
    (checkpoint, before)
}

/// slurmctld makes a requeued job wait about two minutes (reason BeginTime) before it is
/// eligible again; the tests do not wait that out.
fn start_the_requeued_task_now(env: &Env, job: &SlurmJob) {
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let state = env.cluster.task_state(&job.task_name());
        if state == "PENDING|BeginTime" {
            env.cluster.client(
                "scontrol",
                &[
                    "update",
                    &format!("JobId={}", job.task_name()),
                    "StartTime=now",
                ],
            );
            return;
        }
        assert!(
            Instant::now() < deadline,
            "the task was not requeued (state {state}); {}",
            task_logs(&env.tmp.path().join("runs"))
        );
        std::thread::sleep(Duration::from_millis(300));
    }
}

/// The run finished in its second attempt, resumed from its checkpoint (`at`, when known),
/// every step there once and the points up to the checkpoint (`before`) unchanged.
async fn assert_resumed_intact(s: &Store, run: RunId, at: Option<i64>, before: &[SeriesPoint]) {
    let r = s.run(run).await.unwrap().unwrap();
    assert_eq!(r.status, RunStatus::Finished);
    assert_eq!(r.attempts, 2, "stopped once, resumed once");
    assert_complete_series(s, &r, RESUME_STEPS).await;
    let after = s
        .metric_series(run, "train/vqa/loss", SeriesOptions::default())
        .await
        .unwrap();
    for p in before.iter().filter(|p| at.is_some_and(|c| p.step <= c)) {
        let q = after.iter().find(|q| q.step == p.step).unwrap();
        assert_eq!(
            (q.value, q.wall_ms),
            (p.value, p.wall_ms),
            "step {}",
            p.step
        );
    }
    let logs = s.log_lines(run, None, None).await.unwrap();
    let resumed = match at {
        Some(c) => format!("resumed from the checkpoint at step {c}"),
        None => "resumed from the checkpoint at step".to_string(),
    };
    assert!(
        logs.iter()
            .any(|l| l.attempt == 2 && l.text.contains(&resumed)),
        "{logs:#?}"
    );
}

/// The same task ran again (restart 1): no second submission.
fn assert_the_same_task_ran_again(env: &Env, job: &SlurmJob) {
    let history = env.store(async |s| s.slurm_job_history(job.run_id).await.unwrap());
    assert_eq!(history.len(), 1, "{history:?}");
    let shown = env
        .cluster
        .client("scontrol", &["show", "job", &job.task_name()]);
    assert!(shown.contains("Restarts=1"), "{shown}");
}

/// `towerlab cancel` on runs with Slurm tasks: a pending task is cancelled in Slurm too (it never
/// starts), a running one stops after a checkpoint and its run ends cancelled, not re-queued.
#[test]
fn towerlab_cancel_cancels_the_runs_slurm_tasks() {
    let env = Env::new(&experiment(
        200,
        5,
        "manager_type = [\"BT\"]\nseeds = [0, 1]",
        "[executor]\nkind = \"slurm\"\ncpus = 1\nthrottle = 1",
    ));
    env.ok(&["run", "exp.toml"]);
    env.wait_for("one run training", Duration::from_secs(300), |runs| {
        runs.iter()
            .any(|r| r.status == RunStatus::Running && r.checkpoint_step.is_some())
    });
    let runs = env.runs();
    let running = runs
        .iter()
        .find(|r| r.status == RunStatus::Running)
        .unwrap();
    let waiting = runs.iter().find(|r| r.status == RunStatus::Queued).unwrap();
    let jobs = env.store(async |s| s.slurm_jobs(&[running.id, waiting.id]).await.unwrap());
    let out = env.ok(&[
        "cancel",
        &waiting.id.0.to_string(),
        &running.id.0.to_string(),
    ]);
    assert!(
        out.contains(&format!(
            "Slurm task {} cancelled",
            jobs[&waiting.id].task_name()
        )),
        "{out}"
    );
    assert!(
        out.contains(&format!(
            "Slurm task {} cancelled",
            jobs[&running.id].task_name()
        )),
        "{out}"
    );
    env.wait_for("both runs cancelled", Duration::from_secs(120), |runs| {
        runs.iter().all(|r| r.status == RunStatus::Cancelled)
    });
    let waited = env.runs().into_iter().find(|r| r.id == waiting.id).unwrap();
    assert_eq!(waited.attempts, 0, "the pending task never started");
    let state = env.cluster.task_state(&jobs[&waiting.id].task_name());
    assert!(state.starts_with("CANCELLED"), "{state}");
}

/// Bad executor flags, and a machine without Slurm, are refused before anything is queued.
#[test]
fn bad_executor_flags_and_a_missing_sbatch_queue_nothing() {
    let tmp = tempfile::tempdir().unwrap();
    std::fs::write(
        tmp.path().join("exp.toml"),
        experiment(4, 2, "manager_type = [\"BT\"]\nseeds = [0]", "")
            .replace("DATA", &tmp.path().join("data").display().to_string()),
    )
    .unwrap();
    let db = tmp.path().join("towerlab.db");
    let towerlab = |args: &[&str], path: Option<&str>| {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_towerlab"));
        cmd.current_dir(tmp.path()).arg("--db").arg(&db).args(args);
        if let Some(p) = path {
            cmd.env("PATH", p);
        }
        cmd.output().unwrap()
    };
    for (flags, expected) in [
        (
            &["--executor", "slurm", "--time", "forever"][..],
            "--time: `forever` is not a Slurm time limit",
        ),
        (
            &["--executor", "pbs"][..],
            "--executor: unknown executor `pbs`",
        ),
        (
            &["--executor", "slurm", "--cpus", "0"][..],
            "--cpus: expects a positive whole number",
        ),
        (&["--wait"][..], "--wait follows runs submitted to Slurm"),
    ] {
        let out = towerlab(&[&["run", "exp.toml"], flags].concat(), None);
        let all = text(&out);
        assert_eq!(out.status.code(), Some(2), "{flags:?}: {all}");
        assert!(all.contains(expected), "{flags:?}: {all}");
        assert!(!db.exists(), "{flags:?}: nothing is stored");
    }
    let empty = tmp.path().join("no-slurm-here");
    std::fs::create_dir(&empty).unwrap();
    let out = towerlab(
        &["run", "exp.toml", "--executor", "slurm"],
        Some(empty.to_str().unwrap()),
    );
    let all = text(&out);
    assert_eq!(out.status.code(), Some(1), "{all}");
    assert!(all.contains("cannot run `sbatch`"), "{all}");
    assert!(!db.exists(), "nothing queued without Slurm: {all}");
}
