//! `towerlab sync wandb`: the flags and the command body, over any [`SyncSource`].

use std::io::Write;
use std::sync::Arc;

use anyhow::Context as _;

use super::config::{Mode, WandbConfig};
use super::source::{OffsetStore, SyncSource};
use super::sync::{sync_runs, SyncOptions, SyncReport};
use super::types::Selection;

/// The flags of `towerlab sync wandb` (the help text is on the subcommand).
#[derive(Debug, Clone, Default, clap::Args)]
pub struct WandbArgs {
    /// Sync the runs of this experiment (repeatable; with --run: the union).
    #[arg(long = "experiment", value_name = "NAME")]
    pub experiments: Vec<String>,
    /// Sync this run: its store id or content hash (repeatable). Without --experiment or
    /// --run: every run.
    #[arg(long = "run", value_name = "ID")]
    pub runs: Vec<String>,
    /// W&B project (default: WANDB_PROJECT, else "towerlab").
    #[arg(long, value_name = "P")]
    pub project: Option<String>,
    /// W&B entity, a user or team (default: WANDB_ENTITY, else the key owner's default).
    #[arg(long, value_name = "E")]
    pub entity: Option<String>,
    /// Show what would be sent; send and save nothing.
    #[arg(long)]
    pub dry_run: bool,
    /// Runs synced at the same time.
    #[arg(long, value_name = "N", default_value_t = 4, value_parser = clap::value_parser!(u16).range(1..=64))]
    pub jobs: u16,
}

impl WandbArgs {
    pub fn selection(&self) -> Selection {
        Selection {
            experiments: self.experiments.clone(),
            runs: self.runs.clone(),
        }
    }

    /// The flags on top of the environment's config.
    pub fn apply(&self, mut config: WandbConfig) -> WandbConfig {
        if let Some(project) = &self.project {
            config.project.clone_from(project);
        }
        if let Some(entity) = &self.entity {
            config.entity = Some(entity.clone());
        }
        config.concurrency = usize::from(self.jobs.max(1));
        config
    }
}

/// Runs the command: prints the report (or the dry-run plan) to `out`, and fails when a run
/// failed or the selection named something that does not exist.
pub async fn execute<S: SyncSource, O: OffsetStore>(
    args: &WandbArgs,
    config: WandbConfig,
    source: Arc<S>,
    offsets: Arc<O>,
    out: &mut (dyn Write + Send),
) -> anyhow::Result<SyncReport> {
    let config = args.apply(config);
    let options = SyncOptions {
        selection: args.selection(),
        dry_run: args.dry_run,
        progress: true,
        heartbeat: false,
    };
    if config.mode == Mode::Online && !options.selection.is_all() {
        let runs = source
            .list_runs(&options.selection)
            .await
            .map_err(|e| anyhow::anyhow!("cannot list the runs to sync: {e}"))?;
        let missing = super::sync::unmatched(&options.selection, &runs);
        if !missing.is_empty() {
            anyhow::bail!(
                "nothing to sync for {}: no such run in the store",
                missing.join(", ")
            );
        }
    }
    let report = sync_runs(&config, source, offsets, &options).await?;
    writeln!(out, "{report}").context("writing the report")?;
    if !report.failures.is_empty() {
        anyhow::bail!(
            "{} of {} runs failed to sync (see above); run the command again to resume them",
            report.failures.len(),
            report.failures.len() + report.runs.len()
        );
    }
    Ok(report)
}
