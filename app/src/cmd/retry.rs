//! `towerlab retry RUN...|--failed [--experiment E]`: failed, crashed or cancelled runs go back
//! in the queue with a fresh retry budget, resuming from their last checkpoint (or from scratch
//! with `--fresh`).

use std::path::Path;

use store::{RunFilter, RunStatus};

use crate::exit::UserError;
use crate::runner::{self, lookup, Workspace};

#[derive(Debug, clap::Args)]
pub struct RetryArgs {
    /// Run ids, or identity prefixes of at least 4 hex characters.
    pub runs: Vec<String>,
    /// Every failed, crashed or cancelled run (of `--experiment`, if given).
    #[arg(long, conflicts_with = "runs")]
    pub failed: bool,
    /// With --failed: only the runs of this experiment.
    #[arg(long, value_name = "NAME", requires = "failed")]
    pub experiment: Option<String>,
    /// Start over instead of resuming from the last checkpoint (drops recorded metrics).
    #[arg(long)]
    pub fresh: bool,
}

pub fn run(db: &Path, args: RetryArgs) -> anyhow::Result<()> {
    if !args.failed && args.runs.is_empty() {
        return Err(anyhow::Error::new(UserError {
            code: 1,
            message: "name runs to retry, or pass --failed".into(),
        }));
    }
    let rt = runner::runtime()?;
    rt.block_on(async move {
        let store = Workspace::new(db).open_required().await?;
        let runs = if args.failed {
            let mut filter = RunFilter {
                statuses: vec![RunStatus::Failed, RunStatus::Crashed, RunStatus::Cancelled],
                ..RunFilter::default()
            };
            if let Some(name) = &args.experiment {
                filter.experiment = Some(lookup::experiment(&store, name).await?.id);
            }
            store.list_runs(&filter).await?
        } else {
            let mut v = Vec::new();
            for text in &args.runs {
                v.push(lookup::run(&store, text).await?);
            }
            v
        };
        let ids: Vec<store::RunId> = runs.iter().map(|r| r.id).collect();
        let requeued = store.requeue_runs(&ids, args.fresh).await?;
        for run in &runs {
            if requeued.contains(&run.id) {
                println!("re-queued run {} {}", run.id, run.cell_key);
            } else {
                println!(
                    "run {} {} is {}; left alone{}",
                    run.id,
                    run.cell_key,
                    run.status,
                    if run.status == RunStatus::Finished {
                        " (use --fresh to run it again)"
                    } else {
                        ""
                    }
                );
            }
        }
        println!(
            "{} run(s) re-queued; start a worker with `towerlab worker`",
            requeued.len()
        );
        anyhow::Ok(())
    })
}
