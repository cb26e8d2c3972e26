//! The messages between the UI and the data thread: [`Command`]s and [`Interest`] go to it,
//! [`DataMsg`]s come back.

use super::model::{
    ExperimentInfo, ManagerWeights, Plan, RunDetail, RunSummary, Series, WorkerInfo,
};

/// Work for the data thread (writes, child processes).
#[derive(Debug, Clone, PartialEq)]
pub enum Command {
    Cancel(Vec<i64>),
    Retry(Vec<i64>),
    Queue(ExperimentInfo),
    /// Show an experiment file in Sweeps (and keep it listed), whether or not it is in the
    /// store.
    OpenFile(String),
    StartWorker,
    StopWorker,
    Refresh,
}

/// What the data thread should keep fresh, derived from the state after every update.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Interest {
    /// Runs whose config/log the views need (the open run, the compared runs).
    pub details: Vec<i64>,
    /// (run, metric) curves the views draw.
    pub series: Vec<(i64, String)>,
    pub weights: Option<(i64, Option<i64>)>,
    /// The sweeps view is open: list experiments and workers.
    pub sweeps: bool,
    pub plan: Option<ExperimentInfo>,
    /// The file picker is open: list the experiment files it offers.
    pub files: bool,
}

/// The local worker started from the TUI, as the data thread last saw it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LocalWorker {
    Stopped,
    Running { pid: u32 },
    Exited { message: String },
}

/// Everything the data thread sends. `App::apply` takes them in.
#[derive(Debug, Clone, PartialEq)]
pub enum DataMsg {
    Runs(Vec<RunSummary>),
    /// The first runs of a large store, while the full list is read.
    RunsHead(Vec<RunSummary>),
    Detail(i64, Option<Box<RunDetail>>),
    Series(Series),
    Weights(i64, Option<ManagerWeights>),
    Experiments(Vec<ExperimentInfo>),
    Plan(Plan),
    Workers(Vec<WorkerInfo>),
    LocalWorker(LocalWorker),
    /// Experiment files the picker offers (paths as typed from the working directory).
    Files(Vec<String>),
    /// A file was opened (`towerlab tui FILE`, or the picker): show its plan.
    Opened(ExperimentInfo),
    /// Outcome of a command, for the status line.
    Notice(String),
    Error(String),
}
