//! `towerlab cancel RUN...`: queued runs are cancelled at once; running ones stop (after a
//! checkpoint) at their worker's next heartbeat.

use std::path::Path;

use store::CancelOutcome;

use crate::cli::CancelArgs;
use crate::runner::{self, lookup, Workspace};

pub fn run(db: &Path, args: CancelArgs) -> anyhow::Result<()> {
    let rt = runner::runtime()?;
    rt.block_on(async move {
        let store = Workspace::new(db).open_required().await?;
        let mut runs = Vec::new();
        for text in &args.runs {
            runs.push(lookup::run(&store, text).await?);
        }
        let ids: Vec<store::RunId> = runs.iter().map(|r| r.id).collect();
        let outcomes = store.cancel_runs(&ids).await?;
        for (run, outcome) in runs.iter().zip(outcomes) {
            let what = match outcome {
                CancelOutcome::Cancelled => "cancelled".to_string(),
                CancelOutcome::Requested => "stopping at its next heartbeat".to_string(),
                CancelOutcome::AlreadyEnded(s) => format!("already {s}; left alone"),
                CancelOutcome::NotFound => "not found".to_string(),
            };
            println!("run {} {}: {what}", run.id, run.cell_key);
        }
        anyhow::Ok(())
    })
}
