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
    /// text_feats, image_feats, cls_feats and the manager weights out.
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
    /// Synthetic datasets and Arrow dataset inspection.
    #[cfg(feature = "engine")]
    #[command(subcommand)]
    Data(crate::cmd::data::DataCommand),
    /// Browse, compare and queue runs in a terminal UI (the default in a terminal).
    Tui,
}

impl Cli {
    pub fn db_path(&self) -> PathBuf {
        self.db
            .clone()
            .unwrap_or_else(|| PathBuf::from(experiments::paths::DEFAULT_DB))
    }
}
