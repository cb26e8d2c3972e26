//! `towerlab sync <tracker>`: push runs from the store to an experiment tracker.

use std::path::Path;

use clap::{Args, Subcommand};

use crate::wandb::cli::WandbArgs;
use crate::wandb::config::{Mode, WandbConfig};

#[derive(Debug, Args)]
pub struct SyncArgs {
    #[command(subcommand)]
    pub target: SyncTarget,
}

#[derive(Debug, Subcommand)]
pub enum SyncTarget {
    /// Push runs to Weights & Biases over its HTTP API (only what it has not acknowledged).
    ///
    /// The key comes from WANDB_API_KEY or the ~/.netrc ($NETRC) entry for the API host.
    /// WANDB_BASE_URL, WANDB_ENTITY, WANDB_PROJECT and WANDB_MODE (offline or disabled: nothing
    /// is sent) are respected. Runs keep their W&B id (derived from the content hash), so
    /// syncing again appends what is new and sends nothing for unchanged runs.
    Wandb(WandbArgs),
}

pub fn run(db: &Path, args: SyncArgs) -> anyhow::Result<()> {
    match args.target {
        SyncTarget::Wandb(args) => wandb(db, &args),
    }
}

fn wandb(db: &Path, args: &WandbArgs) -> anyhow::Result<()> {
    let config = args.apply(WandbConfig::from_env()?);
    if config.mode != Mode::Online {
        println!(
            "WANDB_MODE={}: nothing synced (unset WANDB_MODE or set it to online to sync)",
            config.mode.as_str()
        );
        return Ok(());
    }
    // The store's run reader (a `SyncSource`) and its sync-cursor table (an `OffsetStore`)
    // plug in here: `crate::wandb::cli::run_blocking(args, config, source, offsets)`.
    anyhow::bail!(
        "`towerlab sync wandb` cannot read runs from {} yet: this build has no store adapter for \
         the W&B sync",
        db.display()
    )
}
