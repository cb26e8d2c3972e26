//! `towerlab cancel RUN...`: queued runs are cancelled at once; running ones stop (after a
//! checkpoint) at their worker's next heartbeat. A run with a live Slurm task also has that task
//! cancelled (`scancel`): a pending one never starts, a running one gets SIGTERM and stops after
//! a checkpoint, recorded cancelled.

use std::path::Path;

use store::CancelOutcome;

use crate::runner::{self, lookup, slurm, Workspace};

#[derive(Debug, clap::Args)]
pub struct CancelArgs {
    /// Run ids, or identity prefixes of at least 4 hex characters.
    #[arg(required = true)]
    pub runs: Vec<String>,
}

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
        let jobs = store.slurm_jobs(&ids).await?;
        let states = if jobs.is_empty() {
            Ok(Default::default())
        } else {
            slurm::task_states(&jobs.values().map(|j| j.job_id).collect())
        };
        let mut to_scancel = Vec::new();
        for (run, outcome) in runs.iter().zip(outcomes) {
            let mut what = match outcome {
                CancelOutcome::Cancelled => "cancelled".to_string(),
                CancelOutcome::Requested => "stopping at its next heartbeat".to_string(),
                CancelOutcome::AlreadyEnded(s) => format!("already {s}; left alone"),
                CancelOutcome::NotFound => "not found".to_string(),
            };
            let ended = matches!(
                outcome,
                CancelOutcome::AlreadyEnded(_) | CancelOutcome::NotFound
            );
            if let (Some(job), false) = (jobs.get(&run.id), ended) {
                let task = job.task_name();
                match &states {
                    Ok(s) if s.get(&task).is_some_and(slurm::TaskState::live) => {
                        what.push_str(&format!("; Slurm task {task} cancelled"));
                        to_scancel.push(task);
                    }
                    Ok(_) => {}
                    Err(e) => what.push_str(&format!(
                        "; its Slurm task {task} could not be looked up ({e}): cancel it with \
                         `scancel {task}`"
                    )),
                }
            }
            println!("run {} {}: {what}", run.id, run.cell_key);
        }
        slurm::cancel(&to_scancel)?;
        anyhow::Ok(())
    })
}
