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

/// The project each selected experiment asked for in its file's `[wandb]` section, so that a
/// later `sync wandb --experiment E` lands where `towerlab run` synced E live. An explicit
/// `--project` or `WANDB_PROJECT` wins; runs picked by `--run` use the default.
async fn by_project(
    store: &store::Store,
    args: &WandbArgs,
    config: &WandbConfig,
) -> Vec<WandbArgs> {
    let explicit = args.project.is_some()
        || std::env::var("WANDB_PROJECT").is_ok_and(|v| !v.trim().is_empty());
    if explicit || args.experiments.is_empty() {
        return vec![args.clone()];
    }
    let mut groups: std::collections::BTreeMap<String, Vec<String>> = Default::default();
    for name in &args.experiments {
        let project = file_project(store, name)
            .await
            .unwrap_or_else(|| config.project.clone());
        groups.entry(project).or_default().push(name.clone());
    }
    let mut out: Vec<WandbArgs> = groups
        .into_iter()
        .map(|(project, experiments)| WandbArgs {
            experiments,
            runs: Vec::new(),
            project: Some(project),
            ..args.clone()
        })
        .collect();
    if !args.runs.is_empty() {
        out.push(WandbArgs {
            experiments: Vec::new(),
            ..args.clone()
        });
    }
    out
}

/// `[wandb] project` of the experiment's recorded file, when it can be read.
async fn file_project(store: &store::Store, name: &str) -> Option<String> {
    let row = store.experiment_by_name(name).await.ok()??;
    let overrides = experiments::Overrides::default();
    let exp = if row.path == experiments::DEMO_PATH {
        experiments::Experiment::demo(&overrides).ok()?
    } else {
        experiments::Experiment::load(Path::new(&row.path), &overrides).ok()?
    };
    exp.wandb.map(|w| w.project)
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
        let mut result = Ok(());
        let mut said: Vec<String> = Vec::new();
        for args in by_project(&store, args, &config).await {
            let r = execute(
                &args,
                config.clone(),
                source.clone(),
                source.clone(),
                &mut stdout,
            )
            .await;
            if let Err(e) = r {
                // Keep syncing the other projects; the first failure is reported at the end
                // (by the caller), later different ones here, each once.
                let message = format!("{e:#}");
                if result.is_ok() {
                    result = Err(e);
                } else if !said.contains(&message) {
                    eprintln!("error: {message}");
                }
                said.push(message);
            }
        }
        store.close().await;
        result
    })
}
