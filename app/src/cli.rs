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
    /// Push runs to an experiment tracker (Weights & Biases).
    Sync(crate::cmd::sync::SyncArgs),
}

impl Cli {
    pub fn db_path(&self) -> PathBuf {
        self.db
            .clone()
            .unwrap_or_else(|| PathBuf::from(experiments::paths::DEFAULT_DB))
    }
}
