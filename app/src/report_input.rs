//! The store, read into the reports crate's plain input: one cell per grid point with its
//! seeds' metric series (by the experiment's summary policies) and manager weights. Shared by
//! `towerlab report` and the report benchmark.

use std::collections::{BTreeMap, BTreeSet};

use anyhow::bail;
use experiments::Experiment;
use reports::{
    Cell, Goal, ManagerWeightPoint, MetricSpec, Modality, Policy, ReportInput, RunData, RunStatus,
};
use serde_json::Value as Json;
use store::{RunFilter, RunRow, SeriesOptions, Store};

use crate::exit::UserError;

fn user(code: u8, message: String) -> UserError {
    UserError { code, message }
}

fn policy_of(summary: &experiments::Summary) -> Policy {
    match summary {
        experiments::Summary::Last => Policy::Last,
        experiments::Summary::Best => Policy::Best,
        experiments::Summary::AtBestOf { metric, goal } => Policy::AtBestOf {
            key: metric.clone(),
            goal: goal_of(*goal),
        },
    }
}

fn goal_of(goal: experiments::Goal) -> Goal {
    match goal {
        experiments::Goal::Maximize => Goal::Maximize,
        experiments::Goal::Minimize => Goal::Minimize,
    }
}

fn status_of(status: store::RunStatus) -> RunStatus {
    match status {
        store::RunStatus::Queued => RunStatus::Queued,
        store::RunStatus::Running => RunStatus::Running,
        store::RunStatus::Finished => RunStatus::Finished,
        store::RunStatus::Cancelled => RunStatus::Cancelled,
        store::RunStatus::Failed | store::RunStatus::Crashed => RunStatus::Failed,
    }
}

fn axis_text(v: &Json) -> String {
    match v {
        Json::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// Parses `axis=value[,axis=value]` into the cell key it selects among `cells`.
fn baseline_from_flag(flag: &str, cells: &[Cell]) -> anyhow::Result<String> {
    let want: Vec<(&str, &str)> = flag
        .split(',')
        .map(|kv| kv.split_once('=').map(|(k, v)| (k.trim(), v.trim())))
        .collect::<Option<_>>()
        .ok_or_else(|| {
            user(
                2,
                format!("--baseline `{flag}`: expected axis=value[,axis=value]"),
            )
        })?;
    let found: Vec<&Cell> = cells
        .iter()
        .filter(|c| {
            want.iter()
                .all(|(k, v)| c.axes.get(*k).is_some_and(|x| x == v))
        })
        .collect();
    match found.as_slice() {
        [one] => Ok(one.key.clone()),
        [] => bail!(user(2, format!("--baseline `{flag}` matches no cell"))),
        many => bail!(user(
            2,
            format!(
                "--baseline `{flag}` matches {} cells; name more axes",
                many.len()
            )
        )),
    }
}

/// The report input of `exp` from the store. `baseline` (`axis=value[,axis=value]`) overrides
/// the file's baseline cell; `step` picks the manager weights' step (default: each run's last).
pub async fn build_input(
    store: &Store,
    exp: &Experiment,
    baseline: Option<&str>,
    step: Option<u64>,
) -> anyhow::Result<ReportInput> {
    let row = store.experiment_by_name(&exp.name).await?.ok_or_else(|| {
        user(
            1,
            format!("experiment `{}` has no runs in the store yet", exp.name),
        )
    })?;
    let runs = store
        .list_runs(&RunFilter {
            experiment: Some(row.id),
            ..Default::default()
        })
        .await?;
    // Pre-training runs of the VLP arm are dependencies, not cells of the table.
    let runs: Vec<RunRow> = runs
        .into_iter()
        .filter(|r| !r.cell_key.starts_with("pretrain["))
        .collect();

    let metrics: Vec<MetricSpec> = exp
        .metrics
        .iter()
        .map(|m| MetricSpec::new(m.name.clone(), goal_of(m.goal), policy_of(&m.summary)))
        .collect();
    let mut keys: BTreeSet<String> = metrics.iter().map(|m| m.key.clone()).collect();
    for m in &metrics {
        if let Policy::AtBestOf { key, .. } = &m.policy {
            keys.insert(key.clone());
        }
    }

    let mut axes_names: BTreeSet<String> = BTreeSet::new();
    let mut cells: BTreeMap<String, Cell> = BTreeMap::new();
    for run in &runs {
        let axes: BTreeMap<String, String> = run
            .axes
            .iter()
            .filter(|(k, _)| k.as_str() != "seed")
            .map(|(k, v)| (k.clone(), axis_text(v)))
            .collect();
        axes_names.extend(axes.keys().cloned());
        let seed = run.axes.get("seed").and_then(Json::as_u64).unwrap_or(0);
        let mut data = RunData::new(
            run.hash.chars().take(12).collect::<String>(),
            seed,
            status_of(run.status),
        );
        for key in &keys {
            let series = store
                .metric_series(run.id, key, SeriesOptions::default())
                .await?;
            let points: Vec<(u64, f64)> = series
                .into_iter()
                .map(|p| (p.step.max(0) as u64, p.value))
                .collect();
            if !points.is_empty() {
                data.series.insert(key.clone(), points);
            }
        }
        data.manager_weights = manager_points(store, run, step).await?;
        cells
            .entry(run.cell_key.clone())
            .or_insert_with(|| Cell {
                key: run.cell_key.clone(),
                axes,
                expected_seeds: exp.seeds.clone(),
                runs: Vec::new(),
            })
            .runs
            .push(data);
    }
    let cells: Vec<Cell> = cells.into_values().collect();
    let baseline = match baseline {
        Some(flag) => Some(baseline_from_flag(flag, &cells)?),
        None => runs
            .iter()
            .find(|r| {
                let axes: Vec<(String, Json)> = r
                    .axes
                    .iter()
                    .filter(|(k, _)| k.as_str() != "seed")
                    .map(|(k, v)| (k.clone(), v.clone()))
                    .collect();
                exp.is_baseline(&axes)
            })
            .map(|r| r.cell_key.clone()),
    };
    Ok(ReportInput {
        experiment: exp.name.clone(),
        experiment_hash: row.content_hash.clone(),
        axes: axes_names.into_iter().collect(),
        metrics,
        baseline,
        cells,
    })
}

/// The run's manager weights, numbered as the paper's Fig. 6: cross-modal layers from 1, experts
/// by their encoder layer (1-based). The raw cross-modal weights (negative experts) are not drawn.
async fn manager_points(
    store: &Store,
    run: &RunRow,
    step: Option<u64>,
) -> anyhow::Result<Vec<ManagerWeightPoint>> {
    let weights = store
        .manager_weights(run.id, step.map(|s| s as i64))
        .await?;
    if weights.is_empty() {
        return Ok(Vec::new());
    }
    let params: BTreeMap<String, Json> = store
        .params(run.id)
        .await?
        .into_iter()
        .map(|p| (p.key, p.value))
        .collect();
    let int = |k: &str| params.get(k).and_then(Json::as_i64).unwrap_or(0);
    // The first managed expert is encoder layer `depth - managed + 1`.
    let first_text = (int("text_num_layers") - int("managed_layers_text")).max(0) + 1;
    let first_image = (int("vit_num_layers") - int("managed_layers_image")).max(0) + 1;
    Ok(weights
        .into_iter()
        .filter(|w| w.expert >= 0)
        .filter_map(|w| {
            let (modality, first) = match w.modality.as_str() {
                "text" => (Modality::Text, first_text),
                "image" => (Modality::Image, first_image),
                _ => return None,
            };
            Some(ManagerWeightPoint {
                step: w.step.max(0) as u64,
                modality,
                layer: (w.layer + 1) as u32,
                expert: (first + w.expert) as u32,
                weight: w.weight,
            })
        })
        .collect())
}
