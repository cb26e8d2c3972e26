//! The command line: global flags and the subcommands that exist.

use std::path::PathBuf;

use clap::{Parser, Subcommand};

#[derive(Debug, Parser)]
#[command(
    name = "towerlab",
    version,
    about = "A terminal workbench for ManagerTower, BridgeTower and METER ablations",
    propagate_version = true
)]
pub struct Cli {
    /// The SQLite store (default: ./towerlab.db).
    #[arg(long, global = true, env = "TOWERLAB_DB", value_name = "PATH")]
    pub db: Option<PathBuf>,

    /// More log output (-v info, -vv debug); RUST_LOG overrides.
    #[arg(short, long, global = true, action = clap::ArgAction::Count)]
    pub verbose: u8,

    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Show what TowerLab found: libtorch, devices, store and cache locations.
    Doctor,
    /// Show every cell of an experiment as new, done, failed, running, queued or stale.
    Plan(PlanArgs),
    /// Queue the cells of an experiment that are missing from the store.
    Queue(PlanArgs),
    /// Queue an experiment and run it here until its grid is done, then print the results.
    Run(RunArgs),
    /// Run the embedded demo experiment (store ./towerlab.db, synthetic data).
    Demo(DemoArgs),
    /// Claim queued runs and execute them (several workers may share one store).
    Worker(WorkerArgs),
    /// List runs.
    Ls(LsArgs),
    /// Show one run: config, summaries, failure, artifacts.
    Show(ShowArgs),
    /// Cancel runs (queued ones at once, running ones at their next heartbeat).
    Cancel(CancelArgs),
    /// Put failed, crashed or cancelled runs back in the queue.
    Retry(RetryArgs),
    /// Export metrics (run, key, step, value, time) as CSV, Parquet or Arrow IPC.
    Export(ExportArgs),
}

#[derive(Debug, clap::Args)]
pub struct PlanArgs {
    /// The experiment file (TOML).
    pub file: PathBuf,
    /// Override a setting: `--set key=value` (repeatable; `pretrain.key=value` for
    /// pre-training runs only).
    #[arg(long = "set", value_name = "KEY=VALUE")]
    pub set: Vec<String>,
}

#[derive(Debug, clap::Args)]
pub struct RunArgs {
    #[command(flatten)]
    pub plan: PlanArgs,
    /// Concurrent runs (default: one per GPU, else 1 on the CPU).
    #[arg(long, short)]
    pub jobs: Option<usize>,
}

#[derive(Debug, clap::Args)]
pub struct DemoArgs {
    /// Concurrent runs (default: one per GPU, else 1 on the CPU).
    #[arg(long, short)]
    pub jobs: Option<usize>,
    /// Override a setting of the demo, e.g. `--set max_steps=200`.
    #[arg(long = "set", value_name = "KEY=VALUE")]
    pub set: Vec<String>,
}

#[derive(Debug, clap::Args)]
pub struct WorkerArgs {
    /// Concurrent runs (default: one per GPU, else 1 on the CPU).
    #[arg(long, short)]
    pub jobs: Option<usize>,
    /// Exit when nothing in the queue is runnable.
    #[arg(long)]
    pub once: bool,
    /// Only take runs of this experiment.
    #[arg(long, value_name = "NAME")]
    pub experiment: Option<String>,
}

#[derive(Debug, clap::Args)]
pub struct LsArgs {
    /// Only runs of this experiment.
    #[arg(long, short, value_name = "NAME")]
    pub experiment: Option<String>,
    /// Only runs with this status (repeatable): queued, running, finished, failed, crashed,
    /// cancelled.
    #[arg(long, short, value_name = "STATUS")]
    pub status: Vec<String>,
    /// Only runs whose grid axis has this value, e.g. `manager_type=SAUE` (repeatable).
    #[arg(value_name = "AXIS=VALUE")]
    pub filters: Vec<String>,
}

#[derive(Debug, clap::Args)]
pub struct ShowArgs {
    /// Run id or identity prefix.
    pub run: String,
}

#[derive(Debug, clap::Args)]
pub struct CancelArgs {
    /// Run ids or identity prefixes.
    #[arg(required = true)]
    pub runs: Vec<String>,
}

#[derive(Debug, clap::Args)]
pub struct RetryArgs {
    /// Run ids or identity prefixes.
    pub runs: Vec<String>,
    /// Every failed, crashed or cancelled run (of `--experiment`, if given).
    #[arg(long, conflicts_with = "runs")]
    pub failed: bool,
    #[arg(long, value_name = "NAME", requires = "failed")]
    pub experiment: Option<String>,
    /// Start over instead of resuming from the last checkpoint (drops recorded metrics).
    #[arg(long)]
    pub fresh: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum ExportFormat {
    Csv,
    Parquet,
    Arrow,
}

#[derive(Debug, clap::Args)]
pub struct ExportArgs {
    /// Runs of this experiment.
    #[arg(long, value_name = "NAME", conflicts_with = "run")]
    pub experiment: Option<String>,
    /// One run (id or identity prefix).
    #[arg(long, value_name = "RUN")]
    pub run: Option<String>,
    #[arg(long, value_enum)]
    pub format: ExportFormat,
    /// The file to write.
    #[arg(long, value_name = "FILE")]
    pub out: PathBuf,
}

impl Cli {
    pub fn db_path(&self) -> PathBuf {
        self.db
            .clone()
            .unwrap_or_else(|| PathBuf::from(experiments::paths::DEFAULT_DB))
    }
}
