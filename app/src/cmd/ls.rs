//! `towerlab ls`: the runs table, filtered by experiment, status and axis values.

use std::path::Path;

use store::{AxisFilter, RunFilter, RunStatus};

use crate::cli::LsArgs;
use crate::exit::UserError;
use crate::runner::{self, lookup, plan::run_seed, table, Workspace};

fn user(message: String) -> anyhow::Error {
    anyhow::Error::new(UserError { code: 1, message })
}

pub fn run(db: &Path, args: LsArgs) -> anyhow::Result<()> {
    let mut filter = RunFilter::default();
    for s in &args.status {
        filter
            .statuses
            .push(s.parse::<RunStatus>().map_err(|e| user(e.to_string()))?);
    }
    for f in &args.filters {
        filter.axes.push(AxisFilter::parse(f).ok_or_else(|| {
            user(format!(
                "expected AXIS=VALUE (e.g. manager_type=SAUE), found `{f}`"
            ))
        })?);
    }
    let rt = runner::runtime()?;
    rt.block_on(async move {
        let ws = Workspace::new(db);
        let Some(store) = ws.open_existing().await? else {
            println!(
                "no store at {} yet (nothing has been queued)",
                ws.db.display()
            );
            return Ok(());
        };
        if let Some(name) = &args.experiment {
            filter.experiment = Some(lookup::experiment(&store, name).await?.id);
        }
        let runs = store.list_runs_with_summaries(&filter).await?;
        let rows: Vec<Vec<String>> =
            runs.iter()
                .map(|r| {
                    let run = &r.run;
                    // The metric with a declared goal is the experiment's summary metric.
                    let metric = r.summaries.iter().find(|s| s.goal.is_some()).map_or(
                        "-".to_string(),
                        |s| {
                            s.best
                                .or(s.last)
                                .map_or("-".into(), |v| format!("{}={v:.4}", s.key))
                        },
                    );
                    let progress = match (run.progress_step, run.progress_total) {
                        (Some(s), Some(t)) => format!("{s}/{t}"),
                        (Some(s), None) => s.to_string(),
                        _ => "-".into(),
                    };
                    vec![
                        run.id.to_string(),
                        run.hash[..12.min(run.hash.len())].to_string(),
                        run.experiment.clone(),
                        run.status.to_string(),
                        run.cell_key.clone(),
                        run_seed(run).map_or("-".into(), |s| s.to_string()),
                        progress,
                        metric,
                        run.failure_class.map_or("-".into(), |c| c.to_string()),
                    ]
                })
                .collect();
        print!(
            "{}",
            table::render(
                &[
                    "id",
                    "identity",
                    "experiment",
                    "status",
                    "cell",
                    "seed",
                    "step",
                    "metric",
                    "failure"
                ],
                &rows
            )
        );
        println!("{} run(s)", rows.len());
        anyhow::Ok(())
    })
}
