//! `towerlab plan FILE`: every cell against the store, with what changed for stale cells; with
//! `--json` or `--settings`, every resolved setting of every cell and where it came from.

use std::path::Path;

use experiments::{KnownRuns, Overrides};

use crate::cli::PlanArgs;
use crate::runner::{self, plan, Workspace};

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

pub fn run(db: &Path, cmd: PlanCmdArgs) -> anyhow::Result<()> {
    let args = cmd.plan;
    let prepared = runner::prepare(
        Some(args.file.as_path()),
        &Overrides::from_process_env(args.set),
        false,
    )?;
    let exp = &prepared.exp;
    let rt = runner::runtime()?;
    let rendered = rt.block_on(async {
        let ws = Workspace::new(db);
        let plan = match ws.open_existing().await? {
            Some(store) => {
                plan::plan_against(&store, exp, prepared.cells.clone())
                    .await?
                    .0
            }
            None => experiments::plan::plan(prepared.cells.clone(), &KnownRuns::default()),
        };
        anyhow::Ok(if cmd.json {
            serde_json::to_string_pretty(&plan.to_json())?
        } else if cmd.settings {
            plan.render_settings()
        } else {
            plan.render()
        })
    })?;
    if cmd.json {
        println!("{rendered}");
        return Ok(());
    }
    println!("{} ({})", exp.name, exp.path.display());
    println!("{rendered}");
    for note in runner::experts::missing_notes(exp) {
        println!("{note}");
    }
    if !prepared.to_make.is_empty() {
        let mut roots: Vec<&str> = prepared.to_make.iter().map(|m| m.root.as_str()).collect();
        roots.dedup();
        println!(
            "{} synthetic data table(s) missing in {} will be made by `towerlab queue`/`run` \
             first (identities then change)",
            prepared.to_make.len(),
            roots.join(", ")
        );
    }
    if let Some(note) = exp.validation_overlap() {
        println!("note: {note}");
    }
    Ok(())
}
