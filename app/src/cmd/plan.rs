//! `towerlab plan FILE`: every cell against the store, with what changed for stale cells; with
//! `--json` or `--settings`, every resolved setting of every cell and where it came from.

use std::path::Path;

use experiments::{KnownRuns, Overrides};

use crate::cli::PlanCmdArgs;
use crate::runner::{self, plan, Workspace};

pub fn run(db: &Path, cmd: PlanCmdArgs) -> anyhow::Result<()> {
    let args = cmd.plan;
    let (exp, _) = plan::load_experiment(
        Some(args.file.as_path()),
        &Overrides::from_process_env(args.set),
    )?;
    let missing = if exp.data.synthetic {
        runner::data::missing_files(&exp).len()
    } else {
        0
    };
    let cells = runner::cells_of(&exp, false)?;
    let rt = runner::runtime()?;
    let rendered = rt.block_on(async {
        let ws = Workspace::new(db);
        let plan = match ws.open_existing().await? {
            Some(store) => plan::plan_against(&store, &exp, cells).await?.0,
            None => experiments::plan::plan(cells, &KnownRuns::default()),
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
    if missing > 0 {
        println!(
            "{missing} synthetic data table(s) in {} will be made first (identities then change)",
            exp.data.root
        );
    }
    Ok(())
}
