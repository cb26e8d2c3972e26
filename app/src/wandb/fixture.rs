//! An in-memory run source for the tests and the benchmark (the store adapter is the real one).

use std::sync::Mutex;

use serde_json::{json, Map, Value};

use crate::wandb::{
    BoxError, HistoryRow, LogLine, LogStream, RunMeta, RunState, Selection, SyncSource,
};

#[derive(Debug, Clone)]
pub struct FixtureRun {
    pub meta: RunMeta,
    pub history: Vec<HistoryRow>,
    pub logs: Vec<LogLine>,
}

#[derive(Debug, Default)]
pub struct MemorySource {
    runs: Mutex<Vec<FixtureRun>>,
}

impl MemorySource {
    pub fn new(runs: Vec<FixtureRun>) -> Self {
        Self {
            runs: Mutex::new(runs),
        }
    }

    pub fn update(&self, run_id: &str, f: impl FnOnce(&mut FixtureRun)) {
        let mut runs = self.runs.lock().unwrap();
        let run = runs
            .iter_mut()
            .find(|r| r.meta.run_id == run_id)
            .expect("fixture run");
        f(run);
        run.meta.history_len = run.history.len() as u64;
        run.meta.log_len = run.logs.len() as u64;
    }

    /// Appends `n` steps (and one log line) to a run.
    pub fn append_steps(&self, run_id: &str, n: u64, metrics: usize) {
        self.update(run_id, |run| {
            let first = run.history.last().map_or(0, |r| r.step + 1);
            run.history
                .extend((first..first + n).map(|s| row(s, metrics)));
            run.logs
                .push(log(run.logs.len(), &format!("appended {n} steps")));
        });
    }

    pub fn run(&self, run_id: &str) -> FixtureRun {
        let runs = self.runs.lock().unwrap();
        runs.iter()
            .find(|r| r.meta.run_id == run_id)
            .unwrap()
            .clone()
    }

    pub fn run_ids(&self) -> Vec<String> {
        let runs = self.runs.lock().unwrap();
        runs.iter().map(|r| r.meta.run_id.clone()).collect()
    }
}

impl SyncSource for MemorySource {
    async fn list_runs(&self, selection: &Selection) -> Result<Vec<RunMeta>, BoxError> {
        let runs = self.runs.lock().unwrap();
        Ok(runs
            .iter()
            .filter(|r| selection.matches(&r.meta))
            .map(|r| r.meta.clone())
            .collect())
    }

    async fn history(
        &self,
        run: &RunMeta,
        after_step: Option<u64>,
        limit: usize,
    ) -> Result<Vec<HistoryRow>, BoxError> {
        let runs = self.runs.lock().unwrap();
        let run = runs
            .iter()
            .find(|r| r.meta.run_id == run.run_id)
            .ok_or("no such run")?;
        let start = after_step.map_or(0, |a| run.history.partition_point(|r| r.step <= a));
        Ok(run.history[start..].iter().take(limit).cloned().collect())
    }

    async fn logs(&self, run: &RunMeta, from: u64, limit: usize) -> Result<Vec<LogLine>, BoxError> {
        let runs = self.runs.lock().unwrap();
        let run = runs
            .iter()
            .find(|r| r.meta.run_id == run.run_id)
            .ok_or("no such run")?;
        let from = usize::try_from(from)?.min(run.logs.len());
        Ok(run.logs[from..].iter().take(limit).cloned().collect())
    }
}

pub const START: f64 = 1_787_306_400.0;

/// A history row with `metrics` values: loss/acc/lr, then manager weights.
pub fn row(step: u64, metrics: usize) -> HistoryRow {
    let s = step as f64;
    let mut row = HistoryRow {
        step,
        runtime: s * 0.5,
        timestamp: START + s * 0.5,
        metrics: Vec::with_capacity(metrics),
    };
    let base = [
        ("train/loss", 2.0 / (1.0 + s)),
        ("train/acc", 1.0 - 1.0 / (2.0 + s)),
        ("lr", 1e-5 * (1.0 + (s * 0.01).sin())),
    ];
    for (k, v) in base.iter().take(metrics) {
        row.metrics.push(((*k).to_owned(), *v));
    }
    let mut i = row.metrics.len();
    'outer: for modality in ["text", "image"] {
        for layer in 1..=6 {
            let weights: Vec<f32> = (0..6).map(|e| ((step + e) % 7) as f32 / 21.0).collect();
            for (expert, w) in weights.iter().enumerate() {
                if i >= metrics {
                    break 'outer;
                }
                row.metrics.push((
                    crate::wandb::manager_weight_key(modality, layer, expert as i64),
                    f64::from(*w),
                ));
                i += 1;
            }
        }
    }
    row
}

pub fn log(i: usize, text: &str) -> LogLine {
    LogLine {
        timestamp: START + i as f64,
        stream: if i % 5 == 4 {
            LogStream::Stderr
        } else {
            LogStream::Stdout
        },
        text: text.to_owned(),
    }
}

/// Run `i` of experiment `exp` with `steps` steps of `metrics` values and 10 log lines.
pub fn fixture_run(
    exp: &str,
    i: usize,
    steps: u64,
    metrics: usize,
    status: RunState,
) -> FixtureRun {
    let mut config = Map::new();
    config.insert("lr".into(), json!(1e-5 * (i + 1) as f64));
    config.insert("model".into(), json!({"manager": "adaptive", "layers": 6}));
    config.insert("seed".into(), Value::from(i));
    let meta = RunMeta {
        run_id: format!("{exp}-run{i}"),
        content_hash: crate::wandb::encode::hex_digest(format!("{exp}/{i}").as_bytes()),
        experiment: exp.to_owned(),
        cell: format!("manager=adaptive,seed={i}"),
        task: "vqa".to_owned(),
        display_name: format!("{exp} seed {i}"),
        axes: vec![
            ("manager".to_owned(), "adaptive".to_owned()),
            ("seed".to_owned(), i.to_string()),
        ],
        config,
        summary: {
            let mut s = Map::new();
            s.insert("val/acc".into(), json!(0.7 + i as f64 / 100.0));
            s
        },
        status,
        history_len: steps,
        log_len: 10,
        events_len: 0,
    };
    FixtureRun {
        meta,
        history: (0..steps).map(|s| row(s, metrics)).collect(),
        logs: (0..10)
            .map(|l| log(l, &format!("epoch {l} of run {i}")))
            .collect(),
    }
}
