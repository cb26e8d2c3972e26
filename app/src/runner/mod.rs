//! The runner: plan/apply of experiment grids against the store, workers that claim and execute
//! queued runs, and crash safety (heartbeats, reaping, resume from checkpoints).

// Without the training loop (the `train` feature) no executor exists to produce events and
// outcomes; the rest of the runner (plan, queue, listing) still works.
#![cfg_attr(not(feature = "train"), allow(dead_code))]

pub mod checkpoints;
pub mod data;
pub mod events;
pub mod executor;
pub mod experts;
pub mod export;
pub mod lookup;
pub mod plan;
pub mod results;
pub mod sink;
pub mod table;
pub mod tracker;
pub mod ui;
pub mod worker;

use std::path::{Path, PathBuf};

use anyhow::Context as _;
use store::Store;

/// The store file and the folder beside it where run directories live.
#[derive(Debug, Clone)]
pub struct Workspace {
    pub db: PathBuf,
    /// `<store dir>/runs`.
    pub runs_dir: PathBuf,
}

impl Workspace {
    pub fn new(db: &Path) -> Self {
        let dir = db
            .parent()
            .filter(|p| !p.as_os_str().is_empty())
            .map_or_else(|| PathBuf::from("."), Path::to_path_buf);
        // Absolute, so recorded checkpoint paths stay valid for workers started elsewhere.
        let runs_dir = dir.join("runs");
        Self {
            db: db.to_path_buf(),
            runs_dir: std::path::absolute(&runs_dir).unwrap_or(runs_dir),
        }
    }

    /// Opens (or creates) the store. A file that is not a usable store is invalid input
    /// (exit 2); the store's errors name the path themselves.
    pub async fn open(&self) -> anyhow::Result<Store> {
        match Store::open(&self.db).await {
            Ok(store) => Ok(store),
            Err(
                e @ (store::StoreError::Corrupt { .. }
                | store::StoreError::NotAStore { .. }
                | store::StoreError::NewerSchema { .. }),
            ) => Err(anyhow::Error::new(crate::exit::UserError {
                code: 2,
                message: e.to_string(),
            })),
            Err(e) => Err(anyhow::Error::new(e)),
        }
    }

    /// Opens a store that must exist already: commands that act on stored runs (`cancel`,
    /// `retry`, `export`) say so instead of creating an empty one.
    pub async fn open_required(&self) -> anyhow::Result<Store> {
        if !self.db.exists() {
            return Err(anyhow::Error::new(crate::exit::UserError {
                code: 1,
                message: format!(
                    "no store at {}: run an experiment first, or point --db / TOWERLAB_DB at one",
                    self.db.display()
                ),
            }));
        }
        self.open().await
    }

    /// Opens the store only if the file exists (read-only commands should not create one).
    pub async fn open_existing(&self) -> anyhow::Result<Option<Store>> {
        if self.db.exists() {
            self.open().await.map(Some)
        } else {
            Ok(None)
        }
    }
}

/// A tokio runtime for one command.
pub fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .worker_threads(2)
        .build()
        .context("starting the async runtime")
}

/// The experiment's cells with identities, after making its synthetic data when asked to
/// (`make_data`; the identities hash the data files, so data comes first).
pub fn cells_of(
    exp: &experiments::Experiment,
    make_data: bool,
) -> anyhow::Result<Vec<experiments::Cell>> {
    if make_data && data::ensure_synthetic(exp)? {
        println!("made synthetic data in {}", exp.data.root);
    }
    let ctx = experiments::IdentityContext::from_files(executor::ENGINE_VERSION);
    Ok(exp.cells(&ctx))
}
