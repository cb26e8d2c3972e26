//! `towerlab sync <tracker>`: push runs from the store to an experiment tracker.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::scope::{PlanScope, ScopedRun};
use anyhow::Context as _;

use clap::{Args, Subcommand};

use crate::exit::UserError;
use crate::runner::{self, lookup};
use crate::wandb::cli::{execute, WandbArgs};
use crate::wandb::config::{Mode, WandbConfig};
use crate::wandb::store_source::{PlanCell, StoreSource};

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
    if args.project.is_some() || args.experiments.is_empty() {
        return vec![args.clone()];
    }
    // Each experiment where the live sync would have sent it (`WandbConfig::destination`).
    let mut groups: std::collections::BTreeMap<(String, Option<String>), Vec<String>> =
        Default::default();
    for name in &args.experiments {
        let spec = file_wandb(store, name).await;
        let (project, entity) = config.destination(spec.as_ref());
        let entity = args.entity.clone().or(entity);
        groups
            .entry((project, entity))
            .or_default()
            .push(name.clone());
    }
    let mut out: Vec<WandbArgs> = groups
        .into_iter()
        .map(|((project, entity), experiments)| WandbArgs {
            experiments,
            runs: Vec::new(),
            project: Some(project),
            entity,
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

/// The `[wandb]` section of the experiment's recorded file, when it can be read.
async fn file_wandb(store: &store::Store, name: &str) -> Option<experiments::WandbSpec> {
    let row = store.experiment_by_name(name).await.ok()??;
    let overrides = experiments::Overrides::default();
    let exp = if row.path == experiments::DEMO_PATH {
        experiments::Experiment::demo(&overrides).ok()?
    } else {
        experiments::Experiment::load(Path::new(&row.path), &overrides).ok()?
    };
    exp.wandb
}

/// `--experiment NAME` as the runs its file's plan shows as done: their ids replace the name,
/// each sent as its plan cell (W&B group `NAME/cell`, shared runs included), and lines saying
/// what was included and left out.
async fn scoped(
    store: &store::Store,
    args: WandbArgs,
) -> anyhow::Result<(WandbArgs, BTreeMap<store::RunId, PlanCell>, Vec<String>)> {
    let mut cells = BTreeMap::new();
    let mut notes = Vec::new();
    let mut runs = args.runs.clone();
    for name in &args.experiments {
        let row = lookup::experiment(store, name).await?;
        let file = (row.path != experiments::DEMO_PATH).then(|| PathBuf::from(&row.path));
        let prepared = runner::prepare(
            file.as_deref(),
            &experiments::Overrides::from_process_env(Vec::new()),
            false,
        )
        .with_context(|| {
            format!("`--experiment {name}` syncs the runs that its file's plan shows as done")
        })?;
        let scope = PlanScope::compute(store, &prepared.exp, prepared.cells).await?;
        let used: Vec<&ScopedRun> = scope.done.iter().collect();
        notes.push(format!(
            "{name}: {} done run(s) of its current plan ({})",
            used.len(),
            scope.plan.counts()
        ));
        notes.extend(scope.describe(&used));
        for s in used {
            runs.push(s.run.id.to_string());
            cells.insert(
                s.run.id,
                PlanCell {
                    experiment: scope.experiment.clone(),
                    cell: s.cell.key.0.clone(),
                    seed: s.cell.seed,
                },
            );
        }
    }
    let args = WandbArgs {
        experiments: Vec::new(),
        runs,
        ..args
    };
    Ok((args, cells, notes))
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
    if !(crate::runner::is_postgres(db) || db.exists()) {
        return Err(anyhow::Error::new(UserError {
            code: 1,
            message: format!(
                "no store at {}: run an experiment first, or point --db / TOWERLAB_DB at one",
                crate::runner::describe_db(db)
            ),
        }));
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    runtime.block_on(async {
        let store = crate::runner::Workspace::new(db).open().await?;
        let mut stdout = std::io::stdout();
        let mut result = Ok(());
        let mut said: Vec<String> = Vec::new();
        for args in by_project(&store, args, &config).await {
            let named = !args.selection().is_all();
            let (args, cells, notes) = scoped(&store, args).await?;
            for n in &notes {
                println!("{n}");
            }
            if named && args.selection().is_all() {
                // The named experiments have no done run: nothing to send (not "everything").
                println!("nothing to sync");
                continue;
            }
            let source = Arc::new(StoreSource::new(store.clone()).with_cells(cells));
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
                let message = crate::exit::one_line(&e);
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
