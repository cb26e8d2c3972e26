//! [`TuiSource`] over the real SQLite store. The data thread owns it; each call blocks on a
//! small single-threaded tokio runtime, so the UI thread never waits for SQLite.

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::time::Duration;

use store::{RunFilter, RunId, SeriesOptions, Store, StoreOptions};

use experiments::run::{cell_state, heartbeat_age};

use super::model::{
    ExperimentInfo, LogLine, ManagerWeights, MetricSummary, ModalityWeights, Plan, PlanCell,
    RunDetail, RunSummary, Series, WorkerInfo,
};
use super::source::{SourceError, SourceResult, TuiSource};

/// Workers seen within this window are listed.
pub const WORKER_WINDOW: Duration = Duration::from_secs(120);

pub struct StoreSource {
    rt: tokio::runtime::Runtime,
    store: Store,
    planner: Option<Box<dyn Planner>>,
    /// The run ids of each experiment's current plan (`None`: its file cannot be planned),
    /// and when they were computed.
    membership: Option<(std::time::Instant, Membership)>,
}

/// Per experiment, the run ids of its current plan (`None`: its file cannot be planned).
type Membership = HashMap<String, Option<HashSet<i64>>>;

/// How long the plans behind [`RunSummary::in_plan`] are reused: planning reads every
/// experiment file and stats its data, too much for each of the store's many changes.
const MEMBERSHIP_TTL: Duration = Duration::from_secs(3);

/// Plans and queues experiment files against the store. The binary supplies it from its
/// runner (grid expansion, identities, the queue), which this library does not link.
pub trait Planner: Send {
    /// Every cell of the file's grid and where it stands in the store.
    fn plan(
        &self,
        rt: &tokio::runtime::Runtime,
        store: &Store,
        file: &Path,
    ) -> anyhow::Result<Vec<PlanCell>>;
    /// Queues the file's missing cells (and resumes its interrupted runs); returns how many
    /// runs were queued.
    fn queue(
        &self,
        rt: &tokio::runtime::Runtime,
        store: &Store,
        file: &Path,
    ) -> anyhow::Result<usize>;
}

fn err(e: impl std::fmt::Display) -> SourceError {
    SourceError::new(e.to_string())
}

impl StoreSource {
    /// Opens (creating if needed) the store at `path`.
    pub fn open(path: &Path) -> anyhow::Result<StoreSource> {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?;
        // One connection: the change signal (SQLite's `PRAGMA data_version`) is per connection.
        let options = StoreOptions {
            max_connections: 1,
            ..StoreOptions::default()
        };
        let store = rt.block_on(Store::open_with(path, &options))?;
        Ok(StoreSource {
            rt,
            store,
            planner: None,
            membership: None,
        })
    }

    /// Plans and queues experiment files with `planner` (without one, the Sweeps view shows
    /// the runs an experiment has in the store, and cannot queue).
    #[must_use]
    pub fn with_planner(mut self, planner: Box<dyn Planner>) -> Self {
        self.planner = Some(planner);
        self
    }

    pub fn store(&self) -> &Store {
        &self.store
    }

    /// Marks each run as in its experiment file's current plan or not, when the planner can
    /// plan that file (else it stays unknown).
    fn mark_plan_members(&mut self, runs: &mut [RunSummary]) {
        let Some(planner) = &self.planner else {
            return;
        };
        let fresh = self
            .membership
            .as_ref()
            .is_some_and(|(at, _)| at.elapsed() < MEMBERSHIP_TTL);
        if !fresh {
            let mut plans = HashMap::new();
            let rows = self
                .rt
                .block_on(self.store.experiments())
                .unwrap_or_default();
            for e in rows {
                let file = Path::new(&e.path);
                let members = (e.path != experiments::DEMO_PATH && file.is_file())
                    .then(|| planner.plan(&self.rt, &self.store, file).ok())
                    .flatten()
                    .map(|cells| cells.iter().filter_map(|c| c.run).collect::<HashSet<i64>>());
                plans.insert(e.name, members);
            }
            self.membership = Some((std::time::Instant::now(), plans));
        }
        let Some((_, plans)) = &self.membership else {
            return;
        };
        for r in runs {
            if let Some(Some(members)) = plans.get(&r.experiment) {
                r.in_plan = Some(members.contains(&r.id));
            }
        }
    }
}

/// The experiment's file, when it names one that exists.
fn experiment_file(experiment: &ExperimentInfo) -> Option<PathBuf> {
    experiment
        .path
        .as_deref()
        .map(PathBuf::from)
        .filter(|p| p.is_file())
}

fn json_text(v: &serde_json::Value) -> String {
    match v {
        serde_json::Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

fn summary(s: &store::MetricSummary) -> MetricSummary {
    MetricSummary {
        key: s.key.clone(),
        goal: s.goal,
        last: s.last,
        best: s.best,
        min: s.min,
        max: s.max,
        count: s.count,
    }
}

fn run_summary(r: &store::RunRow, summaries: &[store::MetricSummary]) -> RunSummary {
    RunSummary {
        id: r.id.0,
        experiment: r.experiment.clone(),
        cell: Some(r.cell_key.clone()),
        axes: r
            .axes
            .iter()
            .map(|(k, v)| (k.clone(), json_text(v)))
            .collect(),
        status: r.status,
        progress: r.progress_step.zip(r.progress_total),
        started_ms: r.started_ms,
        ended_ms: r.ended_ms,
        heartbeat_ms: r.heartbeat_ms,
        worker: r.worker.clone(),
        failure_class: r.failure_class,
        failure_message: r.failure_message.clone(),
        summaries: summaries.iter().map(summary).collect(),
        in_plan: None,
    }
}

/// Experiment files in `dir` (`*.toml`), sorted.
fn experiment_files(dir: &Path) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == "toml"))
        .collect();
    files.sort();
    files
}

impl TuiSource for StoreSource {
    fn change_token(&mut self) -> SourceResult<u64> {
        let v: i64 = self.rt.block_on(self.store.change_token()).map_err(err)?;
        Ok(v as u64)
    }

    fn runs(&mut self) -> SourceResult<Vec<RunSummary>> {
        let rows = self
            .rt
            .block_on(self.store.list_runs_with_summaries(&RunFilter::default()))
            .map_err(err)?;
        let mut runs: Vec<RunSummary> = rows
            .iter()
            .map(|r| run_summary(&r.run, &r.summaries))
            .collect();
        self.mark_plan_members(&mut runs);
        Ok(runs)
    }

    fn first_runs(&mut self, limit: usize) -> SourceResult<Vec<RunSummary>> {
        let filter = RunFilter {
            limit: Some(limit as i64),
            ..RunFilter::default()
        };
        let rows = self
            .rt
            .block_on(self.store.list_runs_with_summaries(&filter))
            .map_err(err)?;
        Ok(rows
            .iter()
            .map(|r| run_summary(&r.run, &r.summaries))
            .collect())
    }

    fn run_detail(&mut self, run: i64, log_lines: usize) -> SourceResult<Option<RunDetail>> {
        let id = RunId(run);
        let Some(d) = self.rt.block_on(self.store.run_detail(id)).map_err(err)? else {
            return Ok(None);
        };
        let keys = self.rt.block_on(self.store.metric_keys(id)).map_err(err)?;
        let logs = self
            .rt
            .block_on(self.store.log_tail(id, log_lines as i64))
            .map_err(err)?;
        // Read again whenever the store changes (a running task heartbeats).
        let scheduler = self
            .rt
            .block_on(crate::runner::slurm::run_job_state(&self.store, id))
            .map_err(err)?
            .map(|j| j.describe());
        Ok(Some(RunDetail {
            run: run_summary(&d.run, &d.summaries),
            config: d
                .params
                .iter()
                .map(|p| (p.key.clone(), json_text(&p.value)))
                .collect(),
            metric_keys: keys,
            log_tail: logs
                .into_iter()
                .map(|l| LogLine {
                    level: l.level,
                    text: l.text,
                })
                .collect(),
            scheduler,
        }))
    }

    fn series(&mut self, run: i64, key: &str, max_points: usize) -> SourceResult<Series> {
        let options = SeriesOptions {
            after_step: None,
            max_points: Some(max_points),
        };
        let points = self
            .rt
            .block_on(self.store.metric_series(RunId(run), key, options))
            .map_err(err)?;
        Ok(Series {
            run,
            key: key.to_owned(),
            points: points.iter().map(|p| (p.step as f64, p.value)).collect(),
        })
    }

    fn manager_weights(
        &mut self,
        run: i64,
        step: Option<i64>,
    ) -> SourceResult<Option<ManagerWeights>> {
        let id = RunId(run);
        let steps = self
            .rt
            .block_on(self.store.manager_weight_steps(id))
            .map_err(err)?;
        if steps.is_empty() {
            return Ok(None);
        }
        let step = step.filter(|s| steps.contains(s));
        let rows = self
            .rt
            .block_on(self.store.manager_weights(id, step))
            .map_err(err)?;
        let Some(shown) = rows.first().map(|w| w.step) else {
            return Ok(None);
        };
        let mut modalities: Vec<ModalityWeights> = Vec::new();
        for w in rows.iter().map(|r| &r.value) {
            let m = match modalities.iter_mut().position(|m| m.modality == w.modality) {
                Some(i) => &mut modalities[i],
                None => {
                    modalities.push(ModalityWeights {
                        modality: w.modality,
                        grid: Vec::new(),
                        cross: Vec::new(),
                    });
                    modalities.last_mut().expect("just pushed")
                }
            };
            let layer = w.layer as usize;
            // Negative experts are the raw weights on previous cross-modal outputs, not
            // uni-modal experts: they get their own columns.
            let (table, expert) = if w.expert < 0 {
                (&mut m.cross, (-w.expert - 1) as usize)
            } else {
                (&mut m.grid, w.expert as usize)
            };
            if table.len() <= layer {
                table.resize(layer + 1, Vec::new());
            }
            let row = &mut table[layer];
            if row.len() <= expert {
                row.resize(expert + 1, f64::NAN);
            }
            row[expert] = w.weight;
        }
        // The text side first, as in the paper.
        modalities.sort_by_key(|m| m.modality);
        Ok(Some(ManagerWeights {
            run,
            steps,
            step: shown,
            modalities,
        }))
    }

    fn experiments(&mut self, dir: &Path) -> SourceResult<Vec<ExperimentInfo>> {
        let rows = self.rt.block_on(self.store.experiments()).map_err(err)?;
        let mut out: Vec<ExperimentInfo> = rows
            .into_iter()
            .map(|e| ExperimentInfo {
                name: e.name,
                path: Some(e.path),
            })
            .collect();
        for file in experiment_files(dir) {
            let shown = file.display().to_string();
            let known = out.iter().any(|e| {
                e.path.as_deref().is_some_and(|p| {
                    Path::new(p) == file || Path::new(p).file_name() == file.file_name()
                })
            });
            if !known {
                // The file's own `name` (what the store will call it once queued).
                let name = std::fs::read_to_string(&file)
                    .ok()
                    .and_then(|t| super::data::experiment_name(&t))
                    .or_else(|| file.file_stem().map(|s| s.to_string_lossy().into_owned()))
                    .unwrap_or_else(|| shown.clone());
                if out.iter().any(|e| e.name == name) {
                    continue;
                }
                out.push(ExperimentInfo {
                    name,
                    path: Some(shown),
                });
            }
        }
        Ok(out)
    }

    fn plan(&mut self, experiment: &ExperimentInfo) -> SourceResult<Plan> {
        if let (Some(planner), Some(file)) = (&self.planner, experiment_file(experiment)) {
            let cells = planner
                .plan(&self.rt, &self.store, &file)
                .map_err(|e| SourceError::new(format!("{e:#}")))?;
            return Ok(Plan {
                experiment: experiment.name.clone(),
                cells,
            });
        }
        let row = self
            .rt
            .block_on(self.store.experiment_by_name(&experiment.name))
            .map_err(err)?;
        let Some(row) = row else {
            return Err(SourceError::new(format!(
                "{} is not in the store and its file {} cannot be read",
                experiment.name,
                experiment.path.as_deref().unwrap_or("(none)")
            )));
        };
        let filter = RunFilter {
            experiment: Some(row.id),
            ..RunFilter::default()
        };
        let runs = self
            .rt
            .block_on(self.store.list_runs(&filter))
            .map_err(err)?;
        let now = store::now_ms();
        let cells = runs
            .iter()
            .map(|r| PlanCell {
                // As the planner names cells: key and seed.
                cell_key: match r.axes.get("seed") {
                    Some(seed) => format!("{} seed {seed}", r.cell_key),
                    None => r.cell_key.clone(),
                },
                state: cell_state(None, Some(r.status), heartbeat_age(r.heartbeat_ms, now)),
                run: Some(r.id.0),
                progress: r.progress_step.zip(r.progress_total),
            })
            .collect();
        Ok(Plan {
            experiment: experiment.name.clone(),
            cells,
        })
    }

    fn workers(&mut self) -> SourceResult<Vec<WorkerInfo>> {
        let rows = self
            .rt
            .block_on(self.store.workers(Some(WORKER_WINDOW)))
            .map_err(err)?;
        Ok(rows
            .into_iter()
            .map(|w| WorkerInfo {
                id: w.id,
                host: w.host,
                pid: w.pid,
                device: w.device,
                seen_ms: w.seen_ms,
                run: w.run_id.map(|r| r.0),
            })
            .collect())
    }

    fn queue_experiment(&mut self, experiment: &ExperimentInfo) -> SourceResult<usize> {
        let file = experiment_file(experiment).ok_or_else(|| {
            SourceError::new(format!(
                "{} has no readable experiment file ({}): queue it with `towerlab queue FILE`",
                experiment.name,
                experiment.path.as_deref().unwrap_or("none recorded")
            ))
        })?;
        let planner = self.planner.as_ref().ok_or_else(|| {
            SourceError::new(format!(
                "this TUI cannot queue; run `towerlab queue {}`",
                file.display()
            ))
        })?;
        planner
            .queue(&self.rt, &self.store, &file)
            .map_err(|e| SourceError::new(format!("{e:#}")))
    }

    fn cancel_runs(&mut self, runs: &[i64]) -> SourceResult<usize> {
        let ids: Vec<RunId> = runs.iter().map(|&r| RunId(r)).collect();
        let out = self
            .rt
            .block_on(self.store.cancel_runs(&ids))
            .map_err(err)?;
        Ok(out
            .iter()
            .filter(|o| {
                matches!(
                    o,
                    store::CancelOutcome::Cancelled | store::CancelOutcome::Requested
                )
            })
            .count())
    }

    fn retry_runs(&mut self, runs: &[i64]) -> SourceResult<usize> {
        let ids: Vec<RunId> = runs.iter().map(|&r| RunId(r)).collect();
        let out = self
            .rt
            .block_on(self.store.requeue_runs(&ids, false))
            .map_err(err)?;
        Ok(out.len())
    }
}
