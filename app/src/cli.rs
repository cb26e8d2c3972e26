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
    Model(ModelCommand),
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
    Plan(PlanCmdArgs),
    /// Queue the cells of an experiment that are missing from the store.
    Queue(PlanArgs),
    /// Queue an experiment and run it here until its grid is done, then print the results.
    Run(Box<RunArgs>),
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
    /// Export metrics in long format (experiment, cell, axes, seed, identity, run, key, step,
    /// value, time) and manager weights, as CSV, Parquet or Arrow IPC.
    Export(ExportArgs),
    /// Score a checkpoint on a task's validation or test tables (the reference's `test_only`),
    /// recorded in the store as an eval run.
    #[cfg(feature = "train")]
    Eval(EvalArgs),
    /// Push runs to an experiment tracker (Weights & Biases).
    Sync(crate::cmd::sync::SyncArgs),
    /// Manage stores: copy one into another (e.g. SQLite into PostgreSQL).
    #[command(subcommand)]
    Store(crate::cmd::store::StoreCommand),
}

#[cfg(feature = "engine")]
#[derive(Debug, Subcommand)]
pub enum ModelCommand {
    /// Format, keys, inferred architecture and parameter counts of a weights file
    /// (.safetensors, Lightning .ckpt, torch .pt/.bin, or a Hugging Face model directory).
    Inspect {
        /// The weights file or Hugging Face model directory.
        file: PathBuf,
        /// Also list every tensor with its shape and type.
        #[arg(long)]
        keys: bool,
    },
    /// Rewrite weights under the reference key names: `.safetensors`, or a Lightning-layout
    /// `.ckpt`/`.pt` that the reference code's `torch.load(...)["state_dict"]` reads.
    Convert {
        /// The weights file or Hugging Face model directory.
        file: PathBuf,
        /// Output file; its extension picks the format.
        #[arg(long, short, value_name = "FILE")]
        output: PathBuf,
    },
    /// One eval-mode forward pass: text_ids, text_masks and image from a safetensors file in,
    /// text_feats, image_feats, cls_feats and the manager weights out (as the reference's
    /// `infer`), plus retrieval.cls_feats (and retrieval.itc_* with ITC heads) from its
    /// retrieval path.
    Forward {
        /// Weights to load (any format `model inspect` reads). Repeat it to combine files, e.g.
        /// Hugging Face CLIP and RoBERTa directories for a model without VLP.
        #[arg(long, value_name = "FILE", required = true)]
        weights: Vec<PathBuf>,
        /// TOML settings: `preset = "tiny"|"base"` plus any Settings keys as overrides.
        #[arg(long, value_name = "FILE")]
        config: PathBuf,
        /// Safetensors file with `text_ids` [B, L], `text_masks` [B, L] and `image` [B, 3, S, S].
        #[arg(long, value_name = "FILE")]
        inputs: PathBuf,
        /// Safetensors file to write.
        #[arg(long, value_name = "FILE")]
        output: PathBuf,
        /// Allow task-head weights to be missing (a new task head) or unused; they are listed.
        #[arg(long)]
        partial: bool,
    },
    /// Download uni-modal experts into the Hugging Face hub cache (HF_HUB_CACHE, else
    /// HF_HOME/hub, else ~/.cache/huggingface/hub), as `vit` and `tokenizer` name them: CLIP
    /// names (ViT-B/16, CLIP-ViT-L/14), `roberta-base`, or hub ids of a CLIP or RoBERTa model.
    /// Uses HF_ENDPOINT and HF_TOKEN; what is cached already is only reported.
    Fetch {
        /// Model names or hub ids.
        #[arg(required = true)]
        names: Vec<String>,
    },
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
pub struct PlanCmdArgs {
    #[command(flatten)]
    pub plan: PlanArgs,
    /// Print the plan as JSON: an array with one object per cell (pre-training and eval runs
    /// included): key, state, identity, role, seed, depends_on, recipe, changes, every resolved
    /// setting (`settings`) and where each came from (`sources`).
    #[arg(long, conflicts_with = "settings")]
    pub json: bool,
    /// Print every resolved setting of every cell as a table, with its source.
    #[arg(long)]
    pub settings: bool,
}

#[derive(Debug, clap::Args)]
pub struct EvalArgs {
    /// The checkpoint: a TowerLab run, checkpoints or step folder, a `.safetensors` file, the
    /// reference's Lightning `.ckpt`, a torch `.pt`/`.bin`, or a Hugging Face folder.
    #[arg(long, value_name = "FILE")]
    pub weights: PathBuf,
    /// The task to score: vqa, nlvr2, snli, irtr (or pretrain).
    #[arg(long, value_name = "TASK")]
    pub task: String,
    /// The data folder (the `.arrow` tables); default: the run's, or `data`.
    #[arg(long, value_name = "DIR")]
    pub data: Option<PathBuf>,
    /// `val`: the validation pass as training runs it (NLVR2 and SNLI-VE also score their test
    /// table in it); `test`: the test tables (VQA writes `vqa_submit.json`).
    #[arg(long, value_name = "SPLIT", default_value = "val")]
    pub split: String,
    /// The preset under the task's recipe when the checkpoint is not a TowerLab run's
    /// (`base`, or `tiny`); keys the weights determine are read from them.
    #[arg(long, value_name = "NAME", default_value = "base")]
    pub preset: String,
    /// Override a setting: `--set key=value` (repeatable).
    #[arg(long = "set", value_name = "KEY=VALUE")]
    pub set: Vec<String>,
    /// Print the metrics as one JSON object (metric name → value).
    #[arg(long)]
    pub json: bool,
    /// CPU threads (default: this host's cores shared among its live CPU workers).
    #[arg(long, value_name = "N")]
    pub threads: Option<usize>,
}

#[derive(Debug, clap::Args)]
pub struct RunArgs {
    #[command(flatten)]
    pub plan: PlanArgs,
    #[command(flatten)]
    pub slots: SlotArgs,
    #[command(flatten)]
    pub executor: ExecutorArgs,
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

#[derive(Debug, clap::Args)]
pub struct DemoArgs {
    #[command(flatten)]
    pub slots: SlotArgs,
    /// Override a setting of the demo, e.g. `--set max_steps=200`.
    #[arg(long = "set", value_name = "KEY=VALUE")]
    pub set: Vec<String>,
}

#[derive(Debug, clap::Args)]
pub struct WorkerArgs {
    #[command(flatten)]
    pub slots: SlotArgs,
    /// Exit when nothing in the queue is runnable.
    #[arg(long, conflicts_with = "run")]
    pub once: bool,
    /// Claim and execute this run only, then exit (what each task of a Slurm array job runs;
    /// in a Slurm task the run's job and array task ids are recorded, and a signal puts the
    /// run back in the queue to resume instead of cancelling it).
    #[arg(long, value_name = "RUN_ID")]
    pub run: Option<i64>,
    /// Only take runs of this experiment.
    #[arg(long, value_name = "NAME")]
    pub experiment: Option<String>,
}

#[derive(Debug, clap::Args)]
pub struct LsArgs {
    /// Only runs of this experiment.
    #[arg(long, short, value_name = "NAME")]
    pub experiment: Option<String>,
    /// Only runs with this status (repeatable): queued, running, finished (or `done`, as
    /// `plan` says), failed, crashed, cancelled.
    #[arg(long, short, value_name = "STATUS")]
    pub status: Vec<String>,
    /// Only runs whose grid axis has this value, e.g. `manager_type=SAUE` (repeatable; a value
    /// in other letter case matches, an axis or value no run has is an error).
    #[arg(value_name = "AXIS=VALUE")]
    pub filters: Vec<String>,
}

#[derive(Debug, clap::Args)]
pub struct ShowArgs {
    /// Run id (as `towerlab ls` shows), or identity prefix of at least 4 hex characters.
    pub run: String,
}

#[derive(Debug, clap::Args)]
pub struct CancelArgs {
    /// Run ids, or identity prefixes of at least 4 hex characters.
    #[arg(required = true)]
    pub runs: Vec<String>,
}

#[derive(Debug, clap::Args)]
pub struct RetryArgs {
    /// Run ids, or identity prefixes of at least 4 hex characters.
    pub runs: Vec<String>,
    /// Every failed, crashed or cancelled run (of `--experiment`, if given).
    #[arg(long, conflicts_with = "runs")]
    pub failed: bool,
    /// With --failed: only the runs of this experiment.
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
    /// The runs an experiment file's plan shows as done (pre-training runs included).
    #[arg(value_name = "EXPERIMENT_FILE", conflicts_with_all = ["experiment", "run"])]
    pub file: Option<PathBuf>,
    /// The same, for an experiment in the store by name (its recorded file gives the plan).
    #[arg(long, value_name = "NAME", conflicts_with = "run")]
    pub experiment: Option<String>,
    /// One run (id or identity prefix).
    #[arg(long, value_name = "RUN")]
    pub run: Option<String>,
    #[arg(long, value_enum)]
    pub format: ExportFormat,
    /// The file to write (its folder is created); the manager weights, when any run recorded
    /// them, go beside it as `<name>-manager-weights.<ext>`.
    #[arg(long, value_name = "FILE")]
    pub out: PathBuf,
    /// Override settings as the runs were planned with (`--set key=value`).
    #[arg(long = "set", value_name = "KEY=VALUE")]
    pub set: Vec<String>,
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
