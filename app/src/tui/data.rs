//! The data thread: owns the [`TuiSource`], re-reads it when the store changes (polled every
//! `poll` interval) or when the views need something new, runs commands, and sends plain
//! snapshots to the UI thread. Nothing here ever runs on the UI thread.

use std::collections::HashSet;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command as Process, Stdio};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, Sender};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use super::message::{Command, DataMsg, Interest, LocalWorker};
use super::model::ExperimentInfo;
use super::source::TuiSource;
use super::state::SERIES_POINTS;

/// Log lines the run view asks for.
pub const LOG_LINES: usize = 50;
/// Runs read first, before the full list (a screenful or two, whatever the store's size).
pub const FIRST_RUNS: usize = 200;

/// Messages from the UI to the data thread.
#[derive(Debug)]
pub enum ToData {
    Interest(Interest),
    Command(Command),
}

/// How to start a local worker (`towerlab worker --db <db>`), where its output goes.
#[derive(Debug, Clone)]
pub struct WorkerLaunch {
    pub program: PathBuf,
    pub args: Vec<String>,
    pub log: PathBuf,
}

#[derive(Debug, Clone)]
pub struct DataOptions {
    /// How often the store is checked for changes (≤ 1 s keeps other processes' runs live).
    pub poll: Duration,
    /// Where experiment files are looked for.
    pub experiments_dir: PathBuf,
    pub worker: Option<WorkerLaunch>,
    /// Experiment files to show at once (`towerlab tui FILE`), in or not yet in the store.
    pub open: Vec<PathBuf>,
}

/// The UI's handle on the data thread. Dropping it stops the thread.
pub struct DataThread {
    pub tx: Sender<ToData>,
    pub rx: Receiver<DataMsg>,
    handle: Option<JoinHandle<()>>,
}

impl DataThread {
    pub fn spawn(source: Box<dyn TuiSource>, options: DataOptions) -> DataThread {
        let (tx, from_ui) = mpsc::channel();
        let (to_ui, rx) = mpsc::channel();
        let handle = std::thread::Builder::new()
            .name("tui-data".into())
            .spawn(move || {
                let mut worker = Worker {
                    source,
                    options,
                    to_ui,
                    interest: Interest::default(),
                    token: None,
                    fetched: HashSet::new(),
                    local: None,
                    last_sweep_read: None,
                    head_sent: false,
                };
                for file in worker.options.open.clone() {
                    worker.open_file(&file.display().to_string());
                }
                worker.run(&from_ui);
                worker.stop_local_worker();
            })
            .expect("spawning a thread only fails when the OS is out of resources");
        DataThread {
            tx,
            rx,
            handle: Some(handle),
        }
    }

    pub fn send(&self, msg: ToData) {
        // A send only fails once the thread has ended, and then there is no one to tell.
        let _ = self.tx.send(msg);
    }
}

impl Drop for DataThread {
    fn drop(&mut self) {
        // Closing the channel ends the thread's loop.
        let (dead, _) = mpsc::channel();
        self.tx = dead;
        if let Some(h) = self.handle.take() {
            let _ = h.join();
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
enum Item {
    Detail(i64),
    Series(i64, String),
    Weights(i64, Option<i64>),
    Plan(String),
    Files,
}

struct Worker {
    source: Box<dyn TuiSource>,
    options: DataOptions,
    to_ui: Sender<DataMsg>,
    interest: Interest,
    /// The store's change token at the last full read.
    token: Option<u64>,
    /// Items read since the last change of the store.
    fetched: HashSet<Item>,
    local: Option<Child>,
    last_sweep_read: Option<Instant>,
    /// The first page of runs went out (only the very first read is split).
    head_sent: bool,
}

impl Worker {
    fn run(&mut self, from_ui: &Receiver<ToData>) {
        let mut deadline = Instant::now();
        loop {
            let timeout = deadline.saturating_duration_since(Instant::now());
            match from_ui.recv_timeout(timeout) {
                Ok(msg) => {
                    self.handle(msg);
                    // Take everything queued before reading, so a burst of keys costs one read.
                    while let Ok(msg) = from_ui.try_recv() {
                        self.handle(msg);
                    }
                }
                Err(RecvTimeoutError::Timeout) => deadline = Instant::now() + self.options.poll,
                Err(RecvTimeoutError::Disconnected) => return,
            }
            if self.refresh().is_err() {
                return;
            }
        }
    }

    fn send(&self, msg: DataMsg) -> Result<(), ()> {
        self.to_ui.send(msg).map_err(|_| ())
    }

    fn handle(&mut self, msg: ToData) {
        match msg {
            ToData::Interest(i) => self.interest = i,
            ToData::Command(c) => self.command(c),
        }
    }

    fn command(&mut self, command: Command) {
        let result = match command {
            Command::Refresh => {
                self.token = None;
                return;
            }
            Command::Cancel(ids) => self
                .source
                .cancel_runs(&ids)
                .map(|n| format!("cancel: {n} of {} run(s) stopped or stopping", ids.len())),
            Command::Retry(ids) => self
                .source
                .retry_runs(&ids)
                .map(|n| format!("retry: {n} run(s) queued again")),
            Command::Queue(e) => self
                .source
                .queue_experiment(&e)
                .map(|n| format!("{}: {n} new run(s) queued", e.name)),
            Command::OpenFile(path) => {
                self.open_file(&path);
                return;
            }
            Command::StartWorker => Ok(self.start_local_worker()),
            Command::StopWorker => Ok(self.stop_local_worker()),
        };
        let _ = match result {
            Ok(notice) => self.send(DataMsg::Notice(notice)),
            Err(e) => self.send(DataMsg::Error(e.to_string())),
        };
        // Our own writes do not change the per-connection data version: read again.
        self.token = None;
    }

    fn open_file(&mut self, path: &str) {
        let _ = match open_experiment_file(path) {
            Ok(e) => self.send(DataMsg::Opened(e)),
            Err(e) => self.send(DataMsg::Error(e)),
        };
    }

    /// Reads what changed or what the views newly need.
    fn refresh(&mut self) -> Result<(), ()> {
        match self.source.change_token() {
            Ok(token) if Some(token) == self.token => {}
            Ok(token) => {
                if !self.head_sent {
                    self.head_sent = true;
                    if let Ok(head) = self.source.first_runs(FIRST_RUNS) {
                        if head.len() == FIRST_RUNS {
                            self.send(DataMsg::RunsHead(head))?;
                        }
                    }
                }
                match self.source.runs() {
                    Ok(runs) => {
                        self.token = Some(token);
                        self.fetched.clear();
                        self.send(DataMsg::Runs(runs))?;
                    }
                    Err(e) => self.send(DataMsg::Error(format!("reading runs: {e}")))?,
                }
            }
            Err(e) => self.send(DataMsg::Error(format!("store: {e}")))?,
        }
        let interest = self.interest.clone();
        for &run in &interest.details {
            if self.fetched.insert(Item::Detail(run)) {
                match self.source.run_detail(run, LOG_LINES) {
                    Ok(d) => self.send(DataMsg::Detail(run, d.map(Box::new)))?,
                    Err(e) => self.send(DataMsg::Error(format!("run {run}: {e}")))?,
                }
            }
        }
        for (run, key) in &interest.series {
            if self.fetched.insert(Item::Series(*run, key.clone())) {
                match self.source.series(*run, key, SERIES_POINTS) {
                    Ok(s) => self.send(DataMsg::Series(s))?,
                    Err(e) => self.send(DataMsg::Error(format!("run {run} {key}: {e}")))?,
                }
            }
        }
        if let Some((run, step)) = interest.weights {
            if self.fetched.insert(Item::Weights(run, step)) {
                match self.source.manager_weights(run, step) {
                    Ok(w) => self.send(DataMsg::Weights(run, w))?,
                    Err(e) => self.send(DataMsg::Error(format!("weights of run {run}: {e}")))?,
                }
            }
        }
        if interest.files && self.fetched.insert(Item::Files) {
            self.send(DataMsg::Files(experiment_files_under(Path::new("."))))?;
        }
        if !interest.files {
            self.fetched.remove(&Item::Files);
        }
        if interest.sweeps {
            // Worker heartbeats do not always change runs; re-read the sweep pane every second.
            let due = self
                .last_sweep_read
                .is_none_or(|t| t.elapsed() >= Duration::from_secs(1));
            if due {
                self.last_sweep_read = Some(Instant::now());
                match self.source.experiments(&self.options.experiments_dir) {
                    Ok(e) => self.send(DataMsg::Experiments(e))?,
                    Err(e) => self.send(DataMsg::Error(format!("experiments: {e}")))?,
                }
                match self.source.workers() {
                    Ok(w) => self.send(DataMsg::Workers(w))?,
                    Err(e) => self.send(DataMsg::Error(format!("workers: {e}")))?,
                }
                self.fetched.retain(|i| !matches!(i, Item::Plan(_)));
            }
            if let Some(exp) = &interest.plan {
                if self.fetched.insert(Item::Plan(exp.name.clone())) {
                    match self.source.plan(exp) {
                        Ok(p) => self.send(DataMsg::Plan(p))?,
                        Err(e) => self.send(DataMsg::Error(format!("plan: {e}")))?,
                    }
                }
            }
        }
        self.poll_local_worker()
    }

    fn start_local_worker(&mut self) -> String {
        if let Some(child) = &self.local {
            return format!("a local worker is already running (pid {})", child.id());
        }
        let Some(launch) = self.options.worker.clone() else {
            return "no worker command configured".into();
        };
        let log = match std::fs::File::create(&launch.log) {
            Ok(f) => f,
            Err(e) => return format!("cannot write {}: {e}", launch.log.display()),
        };
        let err_log = match log.try_clone() {
            Ok(f) => f,
            Err(e) => return format!("cannot write {}: {e}", launch.log.display()),
        };
        // Its output goes to a file: it must never write over the screen.
        let spawned = Process::new(&launch.program)
            .args(&launch.args)
            .stdin(Stdio::null())
            .stdout(log)
            .stderr(err_log)
            .spawn();
        match spawned {
            Ok(child) => {
                let pid = child.id();
                self.local = Some(child);
                let _ = self.send(DataMsg::LocalWorker(LocalWorker::Running { pid }));
                format!(
                    "local worker started (pid {pid}), output in {}",
                    launch.log.display()
                )
            }
            Err(e) => format!("cannot start {}: {e}", launch.program.display()),
        }
    }

    fn stop_local_worker(&mut self) -> String {
        let Some(mut child) = self.local.take() else {
            return "no local worker to stop".into();
        };
        let pid = child.id();
        // SIGTERM lets the worker hand its run back; kill only if it does not go in 5 s.
        let _ = Process::new("kill")
            .args(["-TERM", &pid.to_string()])
            .status();
        let deadline = Instant::now() + Duration::from_secs(5);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = child.try_wait() {
                let _ = self.send(DataMsg::LocalWorker(LocalWorker::Stopped));
                return format!("local worker {pid} stopped");
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = child.kill();
        let _ = child.wait();
        let _ = self.send(DataMsg::LocalWorker(LocalWorker::Stopped));
        format!("local worker {pid} killed (did not stop on SIGTERM within 5 s)")
    }

    fn poll_local_worker(&mut self) -> Result<(), ()> {
        let Some(child) = &mut self.local else {
            return Ok(());
        };
        if let Ok(Some(status)) = child.try_wait() {
            self.local = None;
            let last = self
                .options
                .worker
                .as_ref()
                .and_then(|w| last_line(&w.log))
                .map(|l| format!(": {l}"))
                .unwrap_or_default();
            self.send(DataMsg::LocalWorker(LocalWorker::Exited {
                message: format!("exited ({status}){last}"),
            }))?;
        }
        Ok(())
    }
}

/// An experiment file to show: its `name` (read from the file, so that it matches the
/// store's entry once queued) and path; an error naming the path when it is not a readable
/// TOML file.
pub fn open_experiment_file(path: &str) -> Result<ExperimentInfo, String> {
    let p = Path::new(path);
    let text = std::fs::read_to_string(p).map_err(|e| format!("cannot open {path}: {e}"))?;
    let name = experiment_name(&text).unwrap_or_else(|| {
        p.file_stem()
            .map_or_else(|| path.to_string(), |s| s.to_string_lossy().into_owned())
    });
    Ok(ExperimentInfo {
        name,
        path: Some(path.to_string()),
    })
}

/// The `name = "..."` of an experiment file's text, when it parses.
pub fn experiment_name(text: &str) -> Option<String> {
    let table: toml::Table = toml::from_str(text).ok()?;
    table.get("name")?.as_str().map(str::to_string)
}

/// Experiment files (`*.toml`) under `dir`, three folders deep at most, skipping hidden
/// folders and build outputs; sorted, at most 500.
pub fn experiment_files_under(dir: &Path) -> Vec<String> {
    fn walk(dir: &Path, depth: usize, out: &mut Vec<PathBuf>) {
        let Ok(entries) = std::fs::read_dir(dir) else {
            return;
        };
        for e in entries.flatten() {
            let path = e.path();
            let name = e.file_name().to_string_lossy().into_owned();
            if path.is_dir() {
                let skip =
                    name.starts_with('.') || matches!(name.as_str(), "target" | "node_modules");
                if depth > 0 && !skip {
                    walk(&path, depth - 1, out);
                }
            } else if path.extension().is_some_and(|x| x == "toml")
                && !matches!(
                    name.as_str(),
                    "Cargo.toml" | "config.toml" | "rustfmt.toml" | "clippy.toml"
                )
            {
                out.push(path);
            }
        }
    }
    let mut found = Vec::new();
    walk(dir, 3, &mut found);
    let mut shown: Vec<String> = found
        .iter()
        .map(|p| p.strip_prefix(dir).unwrap_or(p).display().to_string())
        .collect();
    shown.sort();
    shown.truncate(500);
    shown
}

fn last_line(path: &std::path::Path) -> Option<String> {
    let file = std::fs::File::open(path).ok()?;
    BufReader::new(file)
        .lines()
        .map_while(Result::ok)
        .filter(|l| !l.trim().is_empty())
        .last()
}

/// Reads everything `interest` asks for, at once and on the calling thread. Tests and
/// benchmarks use it to bring an [`App`](super::App) up to date without a data thread.
pub fn read_interest(
    source: &mut dyn TuiSource,
    interest: &Interest,
    experiments_dir: &std::path::Path,
) -> Vec<DataMsg> {
    let mut out = Vec::new();
    let mut push = |r: Result<DataMsg, super::SourceError>| match r {
        Ok(m) => out.push(m),
        Err(e) => out.push(DataMsg::Error(e.to_string())),
    };
    for &run in &interest.details {
        push(
            source
                .run_detail(run, LOG_LINES)
                .map(|d| DataMsg::Detail(run, d.map(Box::new))),
        );
    }
    for (run, key) in &interest.series {
        push(source.series(*run, key, SERIES_POINTS).map(DataMsg::Series));
    }
    if let Some((run, step)) = interest.weights {
        push(
            source
                .manager_weights(run, step)
                .map(|w| DataMsg::Weights(run, w)),
        );
    }
    if interest.sweeps {
        push(
            source
                .experiments(experiments_dir)
                .map(DataMsg::Experiments),
        );
        push(source.workers().map(DataMsg::Workers));
        if let Some(e) = &interest.plan {
            push(source.plan(e).map(DataMsg::Plan));
        }
    }
    if interest.files {
        out.push(DataMsg::Files(experiment_files_under(Path::new("."))));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tui::fixture::FixtureSource;
    use crate::tui::model::FailureClass;

    fn recv_until(rx: &Receiver<DataMsg>, pred: impl Fn(&DataMsg) -> bool) -> DataMsg {
        let deadline = Instant::now() + Duration::from_secs(5);
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            let msg = rx.recv_timeout(left).expect("data thread answered in time");
            if pred(&msg) {
                return msg;
            }
        }
    }

    fn options() -> DataOptions {
        DataOptions {
            poll: Duration::from_millis(20),
            experiments_dir: PathBuf::from("."),
            worker: None,
            open: Vec::new(),
        }
    }

    #[test]
    fn sends_runs_then_what_the_views_ask_for() {
        let data = DataThread::spawn(Box::new(FixtureSource::ablation(6)), options());
        let runs = recv_until(&data.rx, |m| matches!(m, DataMsg::Runs(_)));
        let DataMsg::Runs(runs) = runs else {
            unreachable!()
        };
        assert_eq!(runs.len(), 6);
        data.send(ToData::Interest(Interest {
            details: vec![2],
            series: vec![(1, "val/acc".into())],
            ..Interest::default()
        }));
        let d = recv_until(&data.rx, |m| matches!(m, DataMsg::Detail(2, Some(_))));
        let DataMsg::Detail(_, Some(d)) = d else {
            unreachable!()
        };
        assert_eq!(d.run.failure_class, Some(FailureClass::Oom));
        let s = recv_until(&data.rx, |m| matches!(m, DataMsg::Series(_)));
        let DataMsg::Series(s) = s else {
            unreachable!()
        };
        assert_eq!((s.run, s.key.as_str()), (1, "val/acc"));
        assert!(!s.points.is_empty());
    }

    #[test]
    fn a_command_reports_and_rereads_the_runs() {
        let data = DataThread::spawn(Box::new(FixtureSource::ablation(6)), options());
        recv_until(&data.rx, |m| matches!(m, DataMsg::Runs(_)));
        data.send(ToData::Command(Command::Retry(vec![2])));
        let n = recv_until(&data.rx, |m| matches!(m, DataMsg::Notice(_)));
        assert_eq!(n, DataMsg::Notice("retry: 1 run(s) queued again".into()));
        let runs = recv_until(&data.rx, |m| matches!(m, DataMsg::Runs(_)));
        let DataMsg::Runs(runs) = runs else {
            unreachable!()
        };
        assert_eq!(runs[1].status, crate::tui::model::RunStatus::Queued);
    }

    #[test]
    fn a_local_worker_that_fails_is_reported_with_its_last_line() {
        let dir = tempfile::tempdir().unwrap();
        let mut opts = options();
        opts.worker = Some(WorkerLaunch {
            program: PathBuf::from("sh"),
            args: vec![
                "-c".into(),
                "echo 'error: no such store' >&2; exit 3".into(),
            ],
            log: dir.path().join("worker.log"),
        });
        let data = DataThread::spawn(Box::new(FixtureSource::empty()), opts);
        data.send(ToData::Command(Command::StartWorker));
        let exited = recv_until(&data.rx, |m| {
            matches!(m, DataMsg::LocalWorker(LocalWorker::Exited { .. }))
        });
        let DataMsg::LocalWorker(LocalWorker::Exited { message }) = exited else {
            unreachable!()
        };
        assert!(
            message.contains("3") && message.contains("no such store"),
            "{message}"
        );
    }
}
