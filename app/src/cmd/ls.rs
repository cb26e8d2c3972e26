//! `towerlab ls`: the runs table, filtered by experiment, status and axis values.

use std::collections::BTreeMap;
use std::path::Path;

use serde_json::Value as Json;
use store::{AxisFilter, RunFilter, RunStatus};

use crate::exit::UserError;
use crate::runner::{self, lookup, plan::run_seed, Workspace};
use experiments::text_table;

fn user(message: String) -> anyhow::Error {
    anyhow::Error::new(UserError { code: 1, message })
}

/// A status as typed: the store's names, plus `done` (what `plan` calls a finished run).
fn parse_status(text: &str) -> anyhow::Result<RunStatus> {
    let t = text.trim().to_ascii_lowercase();
    if t == "done" {
        return Ok(RunStatus::Finished);
    }
    t.parse::<RunStatus>().map_err(|_| {
        let plan_only = matches!(t.as_str(), "new" | "stale");
        user(format!(
            "unknown status `{text}`{}; statuses: queued, running, finished (or done), failed, \
             crashed, cancelled",
            if plan_only {
                " (a plan state: such a cell has no run of its identity yet, see `towerlab plan`)"
            } else {
                ""
            }
        ))
    })
}

fn same_value(a: &Json, b: &Json) -> bool {
    match (a.as_f64(), b.as_f64()) {
        (Some(x), Some(y)) => x == y,
        _ => a == b,
    }
}

fn text(v: &Json) -> String {
    v.as_str().map_or_else(|| v.to_string(), str::to_string)
}

/// Checks the axis filters against the axes the listed runs have: an axis no run has, or a
/// value no run has, is an error naming what exists; a value in another letter case is taken
/// as the value the runs have (`manager_type=aaue` lists the AAUE runs).
fn resolve_axes(filters: &mut [AxisFilter], runs: &[store::RunRow]) -> anyhow::Result<()> {
    if runs.is_empty() {
        // Nothing to list whatever the axes say.
        return Ok(());
    }
    let mut axes: BTreeMap<&str, Vec<&Json>> = BTreeMap::new();
    for r in runs {
        for (k, v) in &r.axes {
            let values = axes.entry(k.as_str()).or_default();
            if !values.iter().any(|x| same_value(x, v)) {
                values.push(v);
            }
        }
    }
    for f in filters.iter_mut() {
        let Some(values) = axes.get(f.axis.as_str()) else {
            let names: Vec<&str> = axes.keys().copied().collect();
            return Err(user(format!(
                "no run has an axis `{}`; the axes are: {}",
                f.axis,
                names.join(", ")
            )));
        };
        if values.iter().any(|v| same_value(v, &f.value)) {
            continue;
        }
        let wanted = text(&f.value).to_lowercase();
        let folded: Vec<&&Json> = values
            .iter()
            .filter(|v| v.is_string() && text(v).to_lowercase() == wanted)
            .collect();
        if let [one] = folded.as_slice() {
            f.value = (**one).clone();
            continue;
        }
        let mut shown: Vec<String> = values.iter().map(|v| text(v)).collect();
        shown.sort();
        return Err(user(format!(
            "no run has {}={}; its values are: {}",
            f.axis,
            text(&f.value),
            shown.join(", ")
        )));
    }
    Ok(())
}

#[derive(Debug, clap::Args)]
pub struct LsArgs {
    /// Only runs of this experiment.
    #[arg(long, short, value_name = "NAME")]
    pub experiment: Option<String>,
    /// Only runs with this status (repeatable): queued, running, finished (or `done`, as
    /// `plan` says), failed, crashed, cancelled.
    #[arg(long, short, value_name = "STATUS")]
    pub status: Vec<String>,
    /// Only runs whose grid axis has this value, e.g. `manager_type=SAUE` (repeatable; a value
    /// in other letter case matches, an axis or value no run has is an error).
    #[arg(value_name = "AXIS=VALUE")]
    pub filters: Vec<String>,
}

pub fn run(db: &Path, args: LsArgs) -> anyhow::Result<()> {
    let mut filter = RunFilter::default();
    for s in &args.status {
        filter.statuses.push(parse_status(s)?);
    }
    let mut axes = Vec::new();
    for f in &args.filters {
        axes.push(AxisFilter::parse(f).ok_or_else(|| {
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
                ws.describe()
            );
            return Ok(());
        };
        if let Some(name) = &args.experiment {
            filter.experiment = Some(lookup::experiment(&store, name).await?.id);
        }
        if !axes.is_empty() {
            resolve_axes(&mut axes, &store.list_runs(&filter).await?)?;
            filter.axes = axes;
        }
        let runs = store.list_runs_with_summaries(&filter).await?;
        // The scheduler's view, as a column only when some listed run went through Slurm.
        let ids: Vec<store::RunId> = runs.iter().map(|r| r.run.id).collect();
        let (jobs, states) = runner::slurm::jobs_with_states(&store, &ids).await?;
        let slurm_column = |run: store::RunId| -> String {
            let Some(job) = jobs.get(&run) else {
                return "-".into();
            };
            let task = job.task_name();
            match &states {
                Ok(s) => s.get(&task).map_or(format!("{task} ended"), |s| {
                    format!("{task} {}", s.describe())
                }),
                Err(_) => format!("{task} ?"),
            }
        };
        if let Err(e) = &states {
            eprintln!("warning: Slurm job states are unknown: {e}");
        }
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
                    let mut row = vec![
                        run.id.to_string(),
                        run.hash[..12.min(run.hash.len())].to_string(),
                        run.experiment.clone(),
                        run.status.to_string(),
                        run.cell_key.clone(),
                        run_seed(run).map_or("-".into(), |s| s.to_string()),
                        progress,
                        metric,
                        run.failure_class.map_or("-".into(), |c| c.to_string()),
                    ];
                    if !jobs.is_empty() {
                        row.push(slurm_column(run.id));
                    }
                    row
                })
                .collect();
        let mut header = vec![
            "id",
            "identity",
            "experiment",
            "status",
            "cell",
            "seed",
            "step",
            "metric",
            "failure",
        ];
        if !jobs.is_empty() {
            header.push("slurm");
        }
        print!("{}", text_table::render(&header, &rows));
        println!("{} run(s)", rows.len());
        anyhow::Ok(())
    })
}
