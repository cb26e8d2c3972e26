//! Queueing the cells of a plan that have to run (the plan against the store itself is
//! [`crate::scope`]'s, shared with the reports, exports and the TUI).

use std::collections::HashMap;
use std::path::Path;

use anyhow::Context as _;
use experiments::{Cell, CellState, Experiment, Plan};
use serde_json::{Map, Value as Json};
use store::{ExperimentRow, NewRun, RunRow, RunStatus, Store};

pub use crate::scope::{
    plan_against, run_seed, PARAM_EVAL, PARAM_IDENTITY, PARAM_ROLE, PARAM_SETTINGS,
};

fn flatten(prefix: &str, v: &Json, out: &mut Vec<(String, Json)>) {
    match v {
        Json::Object(map) if !map.is_empty() => {
            for (k, v) in map {
                let key = if prefix.is_empty() {
                    k.clone()
                } else {
                    format!("{prefix}.{k}")
                };
                flatten(&key, v, out);
            }
        }
        _ => out.push((prefix.to_string(), v.clone())),
    }
}

/// The store row for a cell: axes (with the seed), task, flattened settings, and the settings
/// and identity document whole (the worker runs from the first, `plan` diffs the second).
pub fn new_run(cell: &Cell) -> anyhow::Result<NewRun> {
    let settings = serde_json::to_value(&cell.settings).context("encoding settings")?;
    let mut params = Vec::new();
    flatten("", &settings, &mut params);
    params.push((PARAM_SETTINGS.to_string(), settings));
    params.push((PARAM_IDENTITY.to_string(), cell.identity_document.clone()));
    params.push((
        PARAM_ROLE.to_string(),
        Json::String(cell.role.as_str().into()),
    ));
    if let Some(target) = &cell.eval {
        // Absolute, so a worker started elsewhere finds the checkpoint.
        let target = experiments::EvalTarget {
            weights: std::path::absolute(&target.weights).unwrap_or(target.weights.clone()),
            ..target.clone()
        };
        params.push((
            PARAM_EVAL.to_string(),
            serde_json::to_value(&target).context("encoding the eval target")?,
        ));
    }
    let mut axes: Map<String, Json> = cell.axes.iter().cloned().collect();
    axes.insert("seed".into(), Json::from(cell.seed));
    let task = serde_json::to_value(cell.settings.task)?
        .as_str()
        .unwrap_or_default()
        .to_string();
    Ok(NewRun {
        hash: cell.identity.as_str().to_string(),
        cell_key: cell.key.0.clone(),
        axes,
        task,
        params,
        depends_on: cell.depends_on.as_ref().map(|d| d.as_str().to_string()),
    })
}

/// What `queue` did.
#[derive(Debug, Clone, Default)]
pub struct QueueReport {
    pub experiment: Option<ExperimentRow>,
    /// Cells queued as new runs (new or stale cells).
    pub added: Vec<Cell>,
    /// Interrupted runs (cancelled or crashed) of the plan put back in the queue to resume.
    pub resumed: Vec<store::RunId>,
    /// Cells already done, queued or running.
    pub unchanged: usize,
    /// Cells whose run failed (left alone: `towerlab retry` re-queues them).
    pub failed: usize,
    /// Queued runs of stale cells, cancelled because a run with the new identity replaces them.
    pub superseded: Vec<store::RunId>,
}

/// A hash of the experiment's source text, recorded with the experiment.
pub fn content_hash(src: &str) -> String {
    experiments::RunId::of_document(&Json::String(src.to_string()))
        .as_str()
        .to_string()
}

/// Plans `cells` against the store and queues what has to run (what `queue`, `run` and the
/// TUI's Sweeps view do).
pub async fn plan_and_queue(
    store: &Store,
    exp: &Experiment,
    source: &str,
    cells: Vec<Cell>,
) -> anyhow::Result<(Plan, QueueReport)> {
    let (plan, stored) = plan_against(store, exp, cells).await?;
    let report = queue_plan(store, exp, source, &plan, &stored).await?;
    Ok((plan, report))
}

/// Queues the plan's new and stale cells (pre-training runs before their dependents, each
/// once) and resumes its interrupted runs. Nothing is written when nothing needs to run.
pub async fn queue_plan(
    store: &Store,
    exp: &Experiment,
    source: &str,
    plan: &Plan,
    stored: &HashMap<String, RunRow>,
) -> anyhow::Result<QueueReport> {
    let mut report = QueueReport::default();
    let mut to_add = Vec::new();
    let mut interrupted = Vec::new();
    let mut previous = Vec::new();
    for row in &plan.rows {
        match row.state {
            CellState::New => to_add.push(&row.cell),
            CellState::Stale => {
                to_add.push(&row.cell);
                previous.extend(row.previous.as_ref().map(|p| p.as_str().to_string()));
            }
            CellState::Failed | CellState::Cancelled => {
                match stored.get(row.cell.identity.as_str()) {
                    Some(run)
                        if matches!(run.status, RunStatus::Cancelled | RunStatus::Crashed) =>
                    {
                        interrupted.push(run.id);
                    }
                    _ => report.failed += 1,
                }
            }
            CellState::Done | CellState::Queued | CellState::Running | CellState::Unresponsive => {
                report.unchanged += 1
            }
        }
    }
    if to_add.is_empty() && interrupted.is_empty() {
        report.experiment = store.experiment_by_name(&exp.name).await?;
        return Ok(report);
    }
    // A run queued before its expert is downloaded would pin no commit: `queue`/`run` fetch
    // the experts first (`runner::experts::fetch_missing`); other callers must too.
    if let Some(m) = exp.missing_experts.first() {
        anyhow::bail!(crate::exit::UserError {
            code: 1,
            message: format!(
                "nothing was queued: `{}`: {} is not on this machine yet ({}); `towerlab queue` \
                 downloads it first, or fetch it with `towerlab model fetch {}`",
                m.key, m.repo.id, m.detail, m.repo.id
            ),
        });
    }
    let path = exp.path.display().to_string();
    let row = store
        .upsert_experiment(&exp.name, &path, &content_hash(source))
        .await?;
    let new_runs = to_add
        .iter()
        .map(|c| new_run(c))
        .collect::<anyhow::Result<Vec<_>>>()?;
    let created = store.create_runs(row.id, &new_runs).await?;
    for (made, cell) in created.iter().zip(&to_add) {
        if !made.inserted {
            continue;
        }
        if let Some(metric) = exp.metric_for(cell.settings.task) {
            store
                .declare_metrics(made.id, &[(metric.name.as_str(), metric.goal)])
                .await?;
        }
        report.added.push((*cell).clone());
    }
    report.resumed = store.requeue_runs(&interrupted, false).await?;
    // A queued run of the old identity would still be claimed and run: cancel it.
    let old: Vec<store::RunId> = store
        .runs_by_hash(&previous)
        .await?
        .into_iter()
        .filter(|r| r.experiment_id == row.id && r.status == RunStatus::Queued)
        .map(|r| r.id)
        .collect();
    store.cancel_runs(&old).await?;
    report.superseded = old;
    report.experiment = Some(row);
    Ok(report)
}

/// Reads the experiment file (or the embedded demo), returning it with its source text (its
/// warnings are the caller's to print). Validation problems become one user error (exit code
/// 2) listing every problem.
pub fn read_experiment(
    file: Option<&Path>,
    overrides: &experiments::Overrides,
) -> anyhow::Result<(Experiment, String)> {
    let (result, source) = match file {
        Some(path) => (
            Experiment::load(path, overrides),
            std::fs::read_to_string(path).unwrap_or_default(),
        ),
        None => (
            Experiment::demo(overrides),
            experiments::DEMO_TOML.to_string(),
        ),
    };
    match result {
        Ok(exp) => Ok((exp, source)),
        Err(errors) => {
            let n = errors.len();
            Err(anyhow::Error::new(crate::exit::UserError {
                code: 2,
                message: format!(
                    "{n} problem{} in the experiment; nothing was run:\n{errors}",
                    if n == 1 { "" } else { "s" }
                ),
            }))
        }
    }
}
