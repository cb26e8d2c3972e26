//! `towerlab sync <tracker>`: push runs from the store to an experiment tracker.

use std::path::Path;
use std::sync::Arc;

use anyhow::Context as _;

use clap::{Args, Subcommand};

use crate::exit::UserError;
use crate::wandb::cli::{execute, WandbArgs};
use crate::wandb::config::{Mode, WandbConfig};
use crate::wandb::store_source::StoreSource;

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
    let config = WandbConfig::from_env()?;
    if config.mode != Mode::Online {
        println!(
            "WANDB_MODE={}: nothing synced (unset WANDB_MODE or set it to online to sync)",
            config.mode.as_str()
        );
        return Ok(());
    }
    if !db.exists() {
        return Err(anyhow::Error::new(UserError {
            code: 1,
            message: format!(
                "no store at {}: run an experiment first, or point --db / TOWERLAB_DB at one",
                db.display()
            ),
        }));
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    runtime.block_on(async {
        let store = store::Store::open(db)
            .await
            .with_context(|| format!("opening the store {}", db.display()))?;
        let source = Arc::new(StoreSource::new(store.clone()));
        let mut stdout = std::io::stdout();
        let result = execute(args, config, source.clone(), source, &mut stdout).await;
        store.close().await;
        result.map(drop)
    })
}
