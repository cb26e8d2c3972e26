//! The store, read into the reports crate's plain input: one cell per grid point of the file's
//! plan with its done seeds' metric series (by the experiment's summary policies) and manager
//! weights. Shared by `towerlab report`, the results table of `towerlab run` and the report
//! benchmark.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use anyhow::{bail, Context as _};
use experiments::{Experiment, Role};
use reports::{
    Cell, Goal, ManagerWeightPoint, MetricSpec, Modality, Policy, ReportInput, RunData, RunStatus,
};
use serde_json::Value as Json;
use store::{RunFilter, RunRow, SeriesOptions, Store};

use crate::scope::{PlanScope, ScopedRun};
use tokio::sync::Semaphore;
use tokio::task::JoinHandle;

use crate::exit::UserError;

fn user(code: u8, message: String) -> UserError {
    UserError { code, message }
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

/// The report input of `exp` from the store, over exactly the runs of `scope` (the file's
/// plan): one cell per grid cell of the plan, in grid order, with the runs of its done seeds
/// and the status of its other seeds. `baseline` (`axis=value[,axis=value]`) overrides the
/// file's baseline cell; `step` picks the manager weights' step (default: each run's last).
pub async fn build_input(
    store: &Store,
    exp: &Experiment,
    scope: &PlanScope,
    baseline: Option<&str>,
    step: Option<u64>,
) -> anyhow::Result<ReportInput> {
    let done: Vec<&ScopedRun> = scope.done_cells().collect();
    let pending: Vec<&ScopedRun> = scope
        .pending
        .iter()
        .filter(|s| s.cell.role != Role::Pretrain)
        .collect();
    if done.is_empty() && pending.is_empty() {
        bail!(user(
            1,
            format!(
                "experiment `{}` has no runs of its current plan in the store yet ({}); \
                 `towerlab run {}` runs them",
                exp.name,
                scope.plan.counts(),
                exp.path.display()
            ),
        ));
    }
    let experiment_hash = store
        .experiment_by_name(&exp.name)
        .await?
        .map_or_else(|| "(not queued)".to_string(), |row| row.content_hash);
    let metrics: Vec<MetricSpec> = exp
        .metrics
        .iter()
        .map(|m| MetricSpec::new(m.name.clone(), m.goal, m.summary.clone()))
        .collect();
    let mut keys: BTreeSet<String> = metrics.iter().map(|m| m.key.clone()).collect();
    for m in &metrics {
        if let Policy::AtBestOf { metric: key, .. } = &m.policy {
            keys.insert(key.clone());
        }
    }
    // The summaries of the done runs, from each experiment they are stored under (a shared run
    // may be another experiment's).
    let mut summaries: BTreeMap<store::RunId, Vec<store::MetricSummary>> = BTreeMap::new();
    let wanted: BTreeSet<store::RunId> = done.iter().map(|s| s.run.id).collect();
    let experiment_ids: BTreeSet<store::ExperimentId> =
        done.iter().map(|s| s.run.experiment_id).collect();
    for id in experiment_ids {
        let listed = store
            .list_runs_with_summaries(&RunFilter {
                experiment: Some(id),
                summary_keys: keys.iter().cloned().collect(),
                ..Default::default()
            })
            .await?;
        for item in listed {
            if wanted.contains(&item.run.id) {
                summaries.insert(item.run.id, item.summaries);
            }
        }
    }

    // Runs are read a few at a time: SQLite works on its own threads, one per connection.
    let gate = Arc::new(Semaphore::new(READS_AT_ONCE));
    let reads: Vec<JoinHandle<anyhow::Result<RunRead>>> = done
        .iter()
        .map(|scoped| {
            let empty = Vec::new();
            let plan = series_reads(
                &metrics,
                &keys,
                summaries.get(&scoped.run.id).unwrap_or(&empty),
            );
            let (store, run, gate) = (store.clone(), scoped.run.clone(), gate.clone());
            tokio::spawn(async move {
                let _permit = gate.acquire().await?;
                read_run(&store, &run, &plan, step).await
            })
        })
        .collect();

    let axes_text = |cell: &experiments::Cell| -> BTreeMap<String, String> {
        cell.axes
            .iter()
            .map(|(k, v)| (k.clone(), axis_text(v)))
            .collect()
    };
    let mut axes_names: BTreeSet<String> = BTreeSet::new();
    let mut cells: Vec<Cell> = Vec::new();
    let mut baseline_key = None;
    for row in scope
        .plan
        .rows
        .iter()
        .filter(|r| r.cell.role != Role::Pretrain)
    {
        if cells.iter().any(|c| c.key == row.cell.key.0) {
            continue;
        }
        let axes = axes_text(&row.cell);
        axes_names.extend(axes.keys().cloned());
        // An eval row (a released checkpoint) is compared, never the baseline.
        if baseline_key.is_none() && row.cell.role == Role::Grid && exp.is_baseline(&row.cell.axes)
        {
            baseline_key = Some(row.cell.key.0.clone());
        }
        cells.push(Cell {
            key: row.cell.key.0.clone(),
            axes,
            expected_seeds: exp.seeds.clone(),
            runs: Vec::new(),
        });
    }
    let short = |hash: &str| hash.chars().take(12).collect::<String>();
    for (scoped, read) in done.iter().zip(reads) {
        let mut data = RunData::new(
            short(&scoped.run.hash),
            scoped.cell.seed,
            RunStatus::Finished,
        );
        let (series, weights) = read.await.context("reading a run for the report")??;
        data.series = series;
        data.manager_weights = weights;
        if let Some(cell) = cells.iter_mut().find(|c| c.key == scoped.cell.key.0) {
            cell.runs.push(data);
        }
    }
    for scoped in pending {
        let data = RunData::new(short(&scoped.run.hash), scoped.cell.seed, scoped.run.status);
        if let Some(cell) = cells.iter_mut().find(|c| c.key == scoped.cell.key.0) {
            cell.runs.push(data);
        }
    }
    // Cells are in the plan's order (the file's): figures colour and place by it.
    fill_missing_axes(exp, &mut cells, &axes_names);
    let baseline = match baseline {
        Some(flag) => Some(baseline_from_flag(flag, &cells)?),
        None => baseline_key,
    };
    let (axes, zips) = figure_axes(exp, axes_names);
    let compute = cell_compute(store, scope).await?;
    Ok(ReportInput {
        experiment: exp.name.clone(),
        experiment_hash,
        axes,
        metrics,
        baseline,
        cells,
        zips,
        labels: exp.labels.clone(),
        compute,
    })
}

/// The compute of each cell's finished runs, by cell key, with the pre-training run each
/// starts from (the report counts a run shared by several runs once).
async fn cell_compute(
    store: &Store,
    scope: &PlanScope,
) -> anyhow::Result<BTreeMap<String, Vec<reports::RunCompute>>> {
    let in_scope: BTreeMap<store::RunId, &RunRow> =
        scope.done.iter().map(|s| (s.run.id, &s.run)).collect();
    let mut out: BTreeMap<String, Vec<reports::RunCompute>> = BTreeMap::new();
    for scoped in scope.done_cells() {
        let mut runs: Vec<reports::RunCompute> =
            run_compute(&scoped.run, false).into_iter().collect();
        if let Some(dep) = scoped.run.depends_on {
            let row = match in_scope.get(&dep) {
                Some(row) => Some((*row).clone()),
                None => store.run(dep).await?,
            };
            if let Some(row) = row.filter(|r| r.status == RunStatus::Finished) {
                runs.extend(run_compute(&row, true));
            }
        }
        out.entry(scoped.cell.key.0.clone())
            .or_default()
            .extend(runs);
    }
    Ok(out)
}

/// A finished run's compute: the wall time of its finishing attempt on its device (the
/// engine trains a run on one device).
fn run_compute(run: &RunRow, pretrain: bool) -> Option<reports::RunCompute> {
    let (start, end) = (run.started_ms?, run.ended_ms?);
    Some(reports::RunCompute {
        run_id: run.hash.chars().take(12).collect(),
        device: run.device.clone().unwrap_or_else(|| "cpu".into()),
        devices: 1,
        wall_s: (end - start).max(0) as f64 / 1000.0,
        pretrain,
    })
}

/// A cell that does not name an axis others do (an `[[include]]` cell adding `vlp = true` to a
/// grid without a `vlp` axis) gets the value its runs were trained with, from the file's
/// resolved settings: every cell then has a value for every axis, as reports need. Beside an
/// `[[eval]]` row (axis `eval`, the entry's name) the grid's cells read `eval = -`.
/// The axis an eval cell carries its entry's name under.
const EVAL_AXIS: &str = "eval";

fn fill_missing_axes(exp: &Experiment, cells: &mut [Cell], axes: &BTreeSet<String>) {
    for cell in cells {
        if axes.contains(EVAL_AXIS) && !cell.axes.contains_key(EVAL_AXIS) {
            cell.axes.insert(EVAL_AXIS.into(), "-".into());
        }
        let Some(run) = exp.runs().iter().find(|r| r.key.0 == cell.key) else {
            continue;
        };
        let Ok(settings) = serde_json::to_value(&run.settings) else {
            continue;
        };
        for axis in axes {
            if !cell.axes.contains_key(axis) {
                let pointer = format!("/{}", axis.replace('.', "/"));
                if let Some(v) = settings.pointer(&pointer) {
                    cell.axes.insert(axis.clone(), axis_text(v));
                }
            }
        }
    }
}

/// The axes in the file's order (the first written is the slowest, and the one bars are
/// coloured by), then any others the runs carry; and the file's zip groups, which figures
/// show once by their first axis.
fn figure_axes(exp: &Experiment, names: BTreeSet<String>) -> (Vec<String>, Vec<Vec<String>>) {
    let order: Vec<&str> = exp.dimensions.iter().flat_map(|d| d.keys()).collect();
    let mut axes: Vec<String> = names.into_iter().collect();
    axes.sort_by_key(|a| order.iter().position(|o| o == a).unwrap_or(usize::MAX));
    let zips = exp
        .dimensions
        .iter()
        .filter_map(|d| match d {
            experiments::Dimension::Zip { keys, .. } => Some(keys.clone()),
            experiments::Dimension::Axis { .. } => None,
        })
        .collect();
    (axes, zips)
}

/// Runs read concurrently.
const READS_AT_ONCE: usize = 4;

/// A run's series by key and its manager-weight points.
type RunRead = (BTreeMap<String, Vec<(u64, f64)>>, Vec<ManagerWeightPoint>);

async fn read_run(
    store: &Store,
    run: &RunRow,
    plan: &BTreeMap<String, SeriesRead>,
    step: Option<u64>,
) -> anyhow::Result<RunRead> {
    let mut series = BTreeMap::new();
    for (key, read) in plan {
        let points = match read {
            SeriesRead::All => {
                store
                    .metric_series(run.id, key, SeriesOptions::default())
                    .await?
            }
            SeriesRead::Sampled(steps) => {
                let sampled = store.metric_series_at(run.id, key, steps).await?;
                // Irregular steps that the sample missed: read it all instead.
                if (sampled.len() as i64) < CURVE_POINTS / 4 {
                    store
                        .metric_series(run.id, key, SeriesOptions::default())
                        .await?
                } else {
                    sampled
                }
            }
        };
        let points: Vec<(u64, f64)> = points
            .into_iter()
            .map(|p| (p.step.max(0) as u64, p.value))
            .collect();
        if !points.is_empty() {
            series.insert(key.clone(), points);
        }
    }
    Ok((series, manager_points(store, run, step).await?))
}

/// Curves keep about this many points per run (a column-wide figure shows no more); the table
/// still gets exact values: the points it needs are read as well.
const CURVE_POINTS: i64 = 400;

/// How much of one series to read.
#[derive(Debug, Clone, PartialEq)]
enum SeriesRead {
    All,
    /// The points at these steps (a regular sample plus the exact points the table needs).
    Sampled(Vec<i64>),
}

/// For each key, what to read so that every summary policy sees its exact value: the last
/// point, the best point (for the metric's goal), and for "value at the best of another
/// metric" the point at that metric's best step. Long series are sampled for the curves; a
/// series whose needed steps the stored summary cannot give (another goal, no summary) is read
/// whole.
fn series_reads(
    metrics: &[MetricSpec],
    keys: &BTreeSet<String>,
    summaries: &[store::MetricSummary],
) -> BTreeMap<String, SeriesRead> {
    let summary = |k: &str| summaries.iter().find(|s| s.key == k);
    let best_step = |k: &str, goal: Goal| {
        summary(k)
            .filter(|s| s.goal == Some(goal))
            .and_then(|s| s.best_step)
    };
    let mut include: BTreeMap<&str, Option<Vec<i64>>> = keys
        .iter()
        .map(|k| {
            (
                k.as_str(),
                summary(k).and_then(|s| s.last_step).map(|l| vec![l]),
            )
        })
        .collect();
    let mut need = |key: &str, step: Option<i64>| {
        if let Some(slot) = include.get_mut(key) {
            match (slot.as_mut(), step) {
                (Some(steps), Some(step)) => steps.push(step),
                _ => *slot = None,
            }
        }
    };
    for m in metrics {
        match &m.policy {
            Policy::Last => {}
            Policy::Best => need(&m.key, best_step(&m.key, m.goal)),
            Policy::AtBestOf { metric: key, goal } => {
                let at = best_step(key, *goal);
                need(key, at);
                need(&m.key, at);
            }
        }
    }
    include
        .into_iter()
        .map(|(k, steps)| {
            let count = summary(k).map_or(0, |s| s.count);
            let last = summary(k).and_then(|s| s.last_step).unwrap_or(0);
            let read = match steps {
                Some(mut steps) if count > 2 * CURVE_POINTS && last > 0 => {
                    // Steps are usually regular (every step, or every N): stride over a
                    // multiple of the spacing so the multiples land on logged steps.
                    let spacing = ((last as f64 / count as f64).round() as i64).max(1);
                    let stride = spacing * ((count + CURVE_POINTS - 1) / CURVE_POINTS);
                    steps.extend((1..=last / stride).map(|k| k * stride));
                    steps.sort_unstable();
                    steps.dedup();
                    SeriesRead::Sampled(steps)
                }
                _ => SeriesRead::All,
            };
            (k.to_owned(), read)
        })
        .collect()
}

/// The encoder layer (from 1) of a manager's first uni-modal expert, from the run's flattened
/// settings: the managers take the top `managed_layers_*` layers, so it is `depth - managed + 1`.
pub fn first_expert_layer(params: &BTreeMap<String, Json>, modality: Modality) -> i64 {
    let int = |k: &str| params.get(k).and_then(Json::as_i64).unwrap_or(0);
    let (depth, managed) = match modality {
        Modality::Text => ("text_num_layers", "managed_layers_text"),
        Modality::Image => ("vit_num_layers", "managed_layers_image"),
    };
    (int(depth) - int(managed)).max(0) + 1
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
    let first_text = first_expert_layer(&params, Modality::Text);
    let first_image = first_expert_layer(&params, Modality::Image);
    Ok(weights
        .into_iter()
        .filter(|w| w.value.expert >= 0)
        .map(|w| {
            let first = match w.value.modality {
                Modality::Text => first_text,
                Modality::Image => first_image,
            };
            ManagerWeightPoint {
                step: w.step.max(0) as u64,
                modality: w.value.modality,
                layer: w.value.layer + 1,
                expert: (first + w.value.expert) as u32,
                weight: w.value.weight,
            }
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn summary(
        key: &str,
        goal: Option<store::Goal>,
        count: i64,
        best_step: i64,
    ) -> store::MetricSummary {
        store::MetricSummary {
            key: key.into(),
            goal,
            count,
            nan_count: 0,
            last: Some(0.5),
            last_step: Some(count),
            min: Some(0.0),
            max: Some(1.0),
            best: Some(1.0),
            best_step: Some(best_step),
        }
    }

    fn keys(k: &[&str]) -> BTreeSet<String> {
        k.iter().map(|s| (*s).to_owned()).collect()
    }

    #[test]
    fn long_series_are_sampled_with_their_last_and_best_points() {
        let metrics = [MetricSpec::new("acc", Goal::Maximize, Policy::Best)];
        let s = [summary("acc", Some(store::Goal::Maximize), 10_000, 4_321)];
        let reads = series_reads(&metrics, &keys(&["acc"]), &s);
        let SeriesRead::Sampled(steps) = &reads["acc"] else {
            panic!("{reads:?}")
        };
        assert!(steps.contains(&4_321) && steps.contains(&10_000));
        assert!(steps.windows(2).all(|w| w[0] < w[1]));
        assert!((CURVE_POINTS..=CURVE_POINTS + 2).contains(&(steps.len() as i64)));
    }

    #[test]
    fn a_best_the_summary_cannot_give_reads_everything() {
        let metrics = [MetricSpec::new("acc", Goal::Maximize, Policy::Best)];
        // Stored for the other goal, or without one: its best step is not this metric's.
        for goal in [Some(store::Goal::Minimize), None] {
            let s = [summary("acc", goal, 10_000, 7)];
            assert_eq!(
                series_reads(&metrics, &keys(&["acc"]), &s)["acc"],
                SeriesRead::All
            );
        }
        // Short series are read whole anyway.
        let s = [summary("acc", Some(store::Goal::Maximize), 500, 7)];
        assert_eq!(
            series_reads(&metrics, &keys(&["acc"]), &s)["acc"],
            SeriesRead::All
        );
    }

    #[test]
    fn value_at_the_best_of_another_metric_reads_that_step_in_both() {
        let metrics = [MetricSpec::new(
            "test/acc",
            Goal::Maximize,
            Policy::AtBestOf {
                metric: "val/acc".into(),
                goal: Goal::Maximize,
            },
        )];
        let s = [
            summary("test/acc", Some(store::Goal::Maximize), 10_000, 9_999),
            summary("val/acc", Some(store::Goal::Maximize), 10_000, 1_234),
        ];
        let reads = series_reads(&metrics, &keys(&["test/acc", "val/acc"]), &s);
        for key in ["test/acc", "val/acc"] {
            let SeriesRead::Sampled(steps) = &reads[key] else {
                panic!("{key}: {reads:?}")
            };
            assert!(steps.contains(&1_234), "{key}");
        }
    }
}
