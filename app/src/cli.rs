//! The command line: global flags, the subcommands that exist, and the argument groups several
//! of them flatten in (plan file, slots, executor). Each subcommand's own arguments sit beside
//! its `run` in [`crate::cmd`].

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
    /// The store: a SQLite file, or a PostgreSQL URL (postgres://USER@HOST:PORT/DATABASE) for
    /// workers on several hosts (default: $TOWERLAB_DB, else ./towerlab.db).
    // Not clap's `env`: an empty TOWERLAB_DB would then be an invalid --db for every command,
    // even one that passes --db itself.
    #[arg(long, global = true, value_name = "PATH|URL")]
    pub db: Option<PathBuf>,

    /// More log output (-v info, -vv debug); RUST_LOG overrides.
    #[arg(short, long, global = true, action = clap::ArgAction::Count)]
    pub verbose: u8,

    /// Without a subcommand, a terminal opens the TUI.
    #[command(subcommand)]
    pub command: Option<Command>,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Show what TowerLab found: libtorch, devices, store and cache locations.
    Doctor,
    /// Paper-ready table (Markdown, LaTeX, CSV) and figures (PNG, SVG) of an experiment.
    Report(crate::cmd::report::ReportArgs),
    /// Inspect weights files and run a model on them.
    #[cfg(feature = "engine")]
    #[command(subcommand)]
    Model(crate::cmd::model::ModelCommand),
    /// Synthetic datasets and Arrow dataset inspection.
    #[cfg(feature = "engine")]
    #[command(subcommand)]
    Data(crate::cmd::data::DataCommand),
    /// Browse, compare and queue runs in a terminal UI (the default in a terminal).
    Tui {
        /// An experiment file to open in Sweeps (it need not be in the store yet): its plan,
        /// ready to queue.
        #[arg(value_name = "FILE")]
        file: Option<std::path::PathBuf>,
    },
    /// Show every cell of an experiment as new, done, failed, running, queued or stale.
    Plan(crate::cmd::plan::PlanCmdArgs),
    /// Queue the cells of an experiment that are missing from the store.
    Queue(PlanArgs),
    /// Queue an experiment and run it here until its grid is done, then print the results.
    Run(Box<crate::cmd::run::RunArgs>),
    /// Run the embedded demo experiment (store ./towerlab.db, synthetic data).
    Demo(crate::cmd::demo::DemoArgs),
    /// Claim queued runs and execute them (several workers may share one store).
    Worker(crate::cmd::worker::WorkerArgs),
    /// List runs.
    Ls(crate::cmd::ls::LsArgs),
    /// Show one run: config, summaries, failure, artifacts.
    Show(crate::cmd::show::ShowArgs),
    /// Cancel runs (queued ones at once, running ones at their next heartbeat).
    Cancel(crate::cmd::cancel::CancelArgs),
    /// Put failed, crashed or cancelled runs back in the queue.
    Retry(crate::cmd::retry::RetryArgs),
    /// Export metrics in long format (experiment, cell, axes, seed, identity, run, key, step,
    /// value, time) and manager weights, as CSV, Parquet or Arrow IPC.
    Export(crate::cmd::export::ExportArgs),
    /// Score a checkpoint on a task's validation or test tables (the reference's `test_only`),
    /// recorded in the store as an eval run.
    #[cfg(feature = "train")]
    Eval(crate::cmd::eval::EvalArgs),
    /// Push runs to an experiment tracker (Weights & Biases).
    Sync(crate::cmd::sync::SyncArgs),
    /// Manage stores: copy one into another (e.g. SQLite into PostgreSQL).
    #[command(subcommand)]
    Store(crate::cmd::store::StoreCommand),
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

/// Where `run` executes the grid; flags override the file's `[executor]`.
#[derive(Debug, Clone, Default, clap::Args)]
pub struct ExecutorArgs {
    /// `local` (worker slots in this process) or `slurm` (one sbatch array task per run).
    #[arg(long, value_name = "KIND")]
    pub executor: Option<String>,
    /// With Slurm: follow the grid until it is done and print the results table (default:
    /// return once submitted).
    #[arg(long)]
    pub wait: bool,
    /// Slurm partition.
    #[arg(long, value_name = "NAME")]
    pub partition: Option<String>,
    /// Slurm account.
    #[arg(long, value_name = "NAME")]
    pub account: Option<String>,
    /// Slurm QOS.
    #[arg(long, value_name = "NAME")]
    pub qos: Option<String>,
    /// Time limit per run, e.g. `2:00:00` or `1-12`.
    #[arg(long, value_name = "TIME")]
    pub time: Option<String>,
    /// GPUs per run.
    #[arg(long, value_name = "N")]
    pub gpus: Option<String>,
    /// CPUs per run.
    #[arg(long, value_name = "N")]
    pub cpus: Option<String>,
    /// Memory per run, e.g. `32G`.
    #[arg(long, value_name = "SIZE")]
    pub mem: Option<String>,
    /// Slurm node constraint.
    #[arg(long, value_name = "FEATURES")]
    pub constraint: Option<String>,
    /// An extra `#SBATCH` line, e.g. `--sbatch=--mail-type=END` (repeatable; added to the
    /// file's).
    #[arg(long = "sbatch", value_name = "OPTION")]
    pub extra: Vec<String>,
    /// At most N tasks of an array run at once.
    #[arg(long, value_name = "N")]
    pub throttle: Option<String>,
    /// Seconds before the time limit at which runs checkpoint and requeue (SIGUSR1).
    #[arg(long, value_name = "SECONDS")]
    pub signal: Option<String>,
}

impl ExecutorArgs {
    /// The file's `[executor]` with these flags applied; a bad flag value names the flag.
    pub fn apply(&self, spec: &mut experiments::ExecutorSpec) -> Result<(), String> {
        let flags = [
            ("kind", "executor", &self.executor),
            ("partition", "partition", &self.partition),
            ("account", "account", &self.account),
            ("qos", "qos", &self.qos),
            ("time", "time", &self.time),
            ("gpus", "gpus", &self.gpus),
            ("cpus", "cpus", &self.cpus),
            ("mem", "mem", &self.mem),
            ("constraint", "constraint", &self.constraint),
            ("throttle", "throttle", &self.throttle),
            ("signal", "signal", &self.signal),
        ];
        for (key, flag, value) in flags {
            if let Some(v) = value {
                spec.set(key, v).map_err(|m| format!("--{flag}: {m}"))?;
            }
        }
        for line in &self.extra {
            spec.set("extra", line)
                .map_err(|m| format!("--sbatch: {m}"))?;
        }
        Ok(())
    }
}

/// How many runs a process executes at once, and with how many CPU threads each.
#[derive(Debug, Clone, Copy, Default, clap::Args)]
pub struct SlotArgs {
    /// Concurrent runs (default: one per GPU, else 1 on the CPU).
    #[arg(long, short)]
    pub jobs: Option<usize>,
    /// CPU threads per run (default: the cores shared among the live CPU workers of this host,
    /// re-checked at each claim, so several worker processes do not oversubscribe the cores).
    #[arg(long, value_name = "N")]
    pub threads: Option<usize>,
}

impl Cli {
    /// `--db`, else a non-empty `TOWERLAB_DB`, else the default.
    pub fn db_path(&self) -> PathBuf {
        self.db
            .clone()
            .filter(|p| !p.as_os_str().is_empty())
            .or_else(|| {
                std::env::var_os("TOWERLAB_DB")
                    .filter(|v| !v.is_empty())
                    .map(PathBuf::from)
            })
            .unwrap_or_else(|| PathBuf::from(experiments::paths::DEFAULT_DB))
    }
}
