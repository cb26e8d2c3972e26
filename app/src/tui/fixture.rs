//! In-memory data for tests and benchmarks only (the CLI always reads a real store).
//!
//! Everything is a deterministic function of the run id, so snapshots are stable.

use std::path::Path;

use super::model::{
    CellState, ExperimentInfo, FailureClass, Goal, LogLine, ManagerWeights, MetricSummary,
    Modality, ModalityWeights, Plan, PlanCell, RunDetail, RunStatus, RunSummary, Series,
    WorkerInfo,
};
use super::source::{SourceError, SourceResult, TuiSource};

/// A fixed clock for fixtures: 2026-01-01T00:00:00Z.
pub const FIXTURE_NOW_MS: i64 = 1_767_225_600_000;

const MANAGERS: [&str; 3] = ["adaptive", "static", "none"];
const STEPS: i64 = 1000;

/// A store in memory: runs, their curves, weights, plans and workers.
#[derive(Debug, Clone, Default)]
pub struct FixtureSource {
    pub runs: Vec<RunSummary>,
    pub configs: Vec<(i64, Vec<(String, String)>)>,
    pub workers: Vec<WorkerInfo>,
    pub experiment_files: Vec<ExperimentInfo>,
    /// Bumped by every change, like the store's data version.
    pub version: u64,
    /// Points per curve.
    pub points_per_series: usize,
}

impl FixtureSource {
    /// No runs at all (a fresh store).
    pub fn empty() -> FixtureSource {
        FixtureSource {
            points_per_series: 200,
            ..FixtureSource::default()
        }
    }

    /// `n` runs of one `ablate-manager` grid (manager × layers × seed), with every status
    /// represented in the first few: run 2 failed (OOM), run 3 is running, run 5 is queued.
    pub fn ablation(n: usize) -> FixtureSource {
        let mut s = FixtureSource::empty();
        for i in 0..n {
            s.runs.push(fixture_run(i as i64 + 1));
        }
        s.configs = s.runs.iter().map(|r| (r.id, config_of(r))).collect();
        s.workers = vec![WorkerInfo {
            id: "w-gpu0".into(),
            host: "node07".into(),
            pid: 4242,
            device: "cuda:0".into(),
            seen_ms: FIXTURE_NOW_MS - 2_000,
            run: s
                .runs
                .iter()
                .find(|r| r.status == RunStatus::Running)
                .map(|r| r.id),
        }];
        s.experiment_files = vec![ExperimentInfo {
            name: "demo".into(),
            path: Some("experiments/demo.toml".into()),
        }];
        s
    }

    fn find(&self, id: i64) -> Option<&RunSummary> {
        self.runs.iter().find(|r| r.id == id)
    }
}

fn fixture_run(id: i64) -> RunSummary {
    let manager = MANAGERS[(id as usize - 1) % 3];
    let layers = if ((id - 1) / 3) % 2 == 0 { 6 } else { 12 };
    let seed = ((id - 1) / 6) % 3 + 1;
    let status = match id {
        2 => RunStatus::Failed,
        3 => RunStatus::Running,
        5 => RunStatus::Queued,
        _ if id % 97 == 0 => RunStatus::Crashed,
        _ if id % 89 == 0 => RunStatus::Cancelled,
        _ => RunStatus::Finished,
    };
    let started = FIXTURE_NOW_MS - 3_600_000 + id * 1_000;
    let (progress, ended, steps_done) = match status {
        RunStatus::Running => (Some((420, STEPS)), None, 420),
        RunStatus::Queued => (None, None, 0),
        RunStatus::Failed => (Some((130, STEPS)), Some(started + 95_000), 130),
        _ => (
            Some((STEPS, STEPS)),
            Some(started + 600_000 + id * 7_000),
            STEPS,
        ),
    };
    let acc = final_acc(id);
    let summaries = if steps_done == 0 {
        Vec::new()
    } else {
        let frac = steps_done as f64 / STEPS as f64;
        let last_acc = acc * (1.0 - (-4.0 * frac).exp()) / (1.0 - (-4.0f64).exp());
        let last_loss = loss_at(id, steps_done);
        vec![
            summary(
                "train/loss",
                Some(Goal::Minimize),
                last_loss,
                last_loss,
                steps_done,
            ),
            summary(
                "val/acc",
                Some(Goal::Maximize),
                last_acc,
                last_acc,
                steps_done / 100,
            ),
        ]
    };
    RunSummary {
        id,
        experiment: "ablate-manager".into(),
        cell: None,
        axes: vec![
            ("layers".into(), layers.to_string()),
            ("manager".into(), manager.into()),
            ("seed".into(), seed.to_string()),
        ],
        status,
        progress,
        started_ms: (status != RunStatus::Queued).then_some(started),
        ended_ms: ended,
        heartbeat_ms: (status == RunStatus::Running).then_some(FIXTURE_NOW_MS - 1_000),
        worker: (status != RunStatus::Queued).then(|| "w-gpu0".into()),
        failure_class: (status == RunStatus::Failed).then_some(FailureClass::Oom),
        failure_message: (status == RunStatus::Failed).then(|| {
            "CUDA out of memory. Tried to allocate 2.00 GiB (GPU 0; 79.1 GiB total)".into()
        }),
        summaries,
        in_plan: None,
    }
}

fn summary(key: &str, goal: Option<Goal>, last: f64, best: f64, count: i64) -> MetricSummary {
    MetricSummary {
        key: key.into(),
        goal,
        last: Some(last),
        best: Some(best),
        min: Some(last.min(best)),
        max: Some(last.max(best)),
        count,
    }
}

fn final_acc(id: i64) -> f64 {
    let manager_bonus = match (id - 1) % 3 {
        0 => 0.04,
        1 => 0.02,
        _ => 0.0,
    };
    0.70 + manager_bonus + ((id * 37) % 11) as f64 * 0.001
}

fn loss_at(id: i64, step: i64) -> f64 {
    let t = step as f64 / STEPS as f64;
    2.0 * (-3.0 * t).exp() + 0.3 + ((id * 13 + step * 7) % 17) as f64 * 0.002
}

fn config_of(r: &RunSummary) -> Vec<(String, String)> {
    vec![
        (
            "model.manager".into(),
            r.axis("manager").unwrap_or("-").to_owned(),
        ),
        (
            "model.num_layers".into(),
            r.axis("layers").unwrap_or("-").to_owned(),
        ),
        ("optim.lr".into(), "1e-5".into()),
        ("seed".into(), r.axis("seed").unwrap_or("-").to_owned()),
        ("task".into(), "vqa".into()),
    ]
}

/// `n` points evenly spread over `0..=last_step` of a fixture curve.
fn curve(id: i64, key: &str, last_step: i64, n: usize) -> Vec<(f64, f64)> {
    let n = n.max(2) as i64;
    (0..n)
        .map(|i| {
            let step = last_step * i / (n - 1);
            let v = if key == "val/acc" {
                let frac = step as f64 / STEPS as f64;
                final_acc(id) * (1.0 - (-4.0 * frac).exp()) / (1.0 - (-4.0f64).exp())
            } else {
                loss_at(id, step)
            };
            (step as f64, v)
        })
        .collect()
}

impl TuiSource for FixtureSource {
    fn change_token(&mut self) -> SourceResult<u64> {
        Ok(self.version)
    }

    fn runs(&mut self) -> SourceResult<Vec<RunSummary>> {
        Ok(self.runs.clone())
    }

    fn run_detail(&mut self, run: i64, log_lines: usize) -> SourceResult<Option<RunDetail>> {
        let Some(r) = self.find(run).cloned() else {
            return Ok(None);
        };
        let config = self
            .configs
            .iter()
            .find(|(id, _)| *id == run)
            .map(|(_, c)| c.clone())
            .unwrap_or_default();
        let mut log_tail: Vec<LogLine> = (0..r.progress.map_or(0, |p| p.0 / 100))
            .map(|k| LogLine {
                level: "info".into(),
                text: format!("step {} loss {:.4}", k * 100, loss_at(run, k * 100)),
            })
            .collect();
        if let Some(msg) = &r.failure_message {
            log_tail.push(LogLine {
                level: "error".into(),
                text: msg.clone(),
            });
        }
        let skip = log_tail.len().saturating_sub(log_lines);
        Ok(Some(RunDetail {
            metric_keys: r.summaries.iter().map(|s| s.key.clone()).collect(),
            run: r,
            config,
            log_tail: log_tail.split_off(skip),
            scheduler: None,
        }))
    }

    fn series(&mut self, run: i64, key: &str, max_points: usize) -> SourceResult<Series> {
        let last = self.find(run).and_then(|r| r.progress).map_or(0, |p| p.0);
        let n = self.points_per_series.min(max_points);
        Ok(Series {
            run,
            key: key.to_owned(),
            points: if last == 0 {
                Vec::new()
            } else {
                curve(run, key, last, n)
            },
        })
    }

    fn manager_weights(
        &mut self,
        run: i64,
        step: Option<i64>,
    ) -> SourceResult<Option<ManagerWeights>> {
        let Some(r) = self.find(run) else {
            return Ok(None);
        };
        if r.axis("manager") != Some("adaptive") || r.progress.is_none() {
            return Ok(None);
        }
        let steps: Vec<i64> = (1..=4).map(|k| k * 250).collect();
        let step = step.filter(|s| steps.contains(s)).unwrap_or(steps[3]);
        let layers = 6;
        let experts = 6;
        let modalities = Modality::ALL
            .iter()
            .enumerate()
            .map(|(m, modality)| ModalityWeights {
                modality: *modality,
                grid: (0..layers)
                    .map(|l| {
                        // Deeper managers favour deeper experts, sharper as training goes on.
                        let sharp = 0.5 + step as f64 / 500.0;
                        let raw: Vec<f64> = (0..experts)
                            .map(|e| {
                                (-sharp * ((e as f64) - (l as f64) - m as f64 * 0.5).abs()).exp()
                            })
                            .collect();
                        let sum: f64 = raw.iter().sum();
                        raw.into_iter().map(|v| v / sum).collect()
                    })
                    .collect(),
                cross: Vec::new(),
            })
            .collect();
        Ok(Some(ManagerWeights {
            run,
            steps,
            step,
            modalities,
        }))
    }

    fn experiments(&mut self, _dir: &Path) -> SourceResult<Vec<ExperimentInfo>> {
        let mut out: Vec<ExperimentInfo> = Vec::new();
        for r in &self.runs {
            if !out.iter().any(|e| e.name == r.experiment) {
                out.push(ExperimentInfo {
                    name: r.experiment.clone(),
                    path: Some(format!("experiments/{}.toml", r.experiment)),
                });
            }
        }
        out.extend(self.experiment_files.iter().cloned());
        Ok(out)
    }

    fn plan(&mut self, experiment: &ExperimentInfo) -> SourceResult<Plan> {
        let mut cells: Vec<PlanCell> = self
            .runs
            .iter()
            .filter(|r| r.experiment == experiment.name)
            .map(|r| PlanCell {
                cell_key: r.cell_key(),
                // The fixture's heartbeats are not aged against a clock.
                state: experiments::cell_state(None, Some(r.status), None),
                run: Some(r.id),
                progress: r.progress,
            })
            .collect();
        if cells.is_empty() {
            cells = (1..=3)
                .map(|s| PlanCell {
                    cell_key: format!("seed={s}"),
                    state: CellState::New,
                    run: None,
                    progress: None,
                })
                .collect();
        }
        Ok(Plan {
            experiment: experiment.name.clone(),
            cells,
        })
    }

    fn workers(&mut self) -> SourceResult<Vec<WorkerInfo>> {
        Ok(self.workers.clone())
    }

    fn queue_experiment(&mut self, experiment: &ExperimentInfo) -> SourceResult<usize> {
        Err(SourceError::new(format!(
            "fixture data cannot queue {}",
            experiment.name
        )))
    }

    fn cancel_runs(&mut self, runs: &[i64]) -> SourceResult<usize> {
        let mut n = 0;
        for r in self.runs.iter_mut().filter(|r| runs.contains(&r.id)) {
            if matches!(r.status, RunStatus::Queued | RunStatus::Running) {
                r.status = RunStatus::Cancelled;
                n += 1;
            }
        }
        self.version += 1;
        Ok(n)
    }

    fn retry_runs(&mut self, runs: &[i64]) -> SourceResult<usize> {
        let mut n = 0;
        for r in self.runs.iter_mut().filter(|r| runs.contains(&r.id)) {
            if r.status.is_failure() {
                r.status = RunStatus::Queued;
                n += 1;
            }
        }
        self.version += 1;
        Ok(n)
    }
}
