//! The store as a W&B sync source: runs, params, summaries, history (metrics plus manager
//! weights, see [`manager_weight_key`]), system samples (the `system/` metrics, which go to
//! `wandb-events.jsonl` instead of the history), log lines, and the acknowledged
//! offsets in its `sync_cursors` table (target `wandb <sync key>`, one row per file).

use std::collections::BTreeMap;

use serde_json::{Map, Value};
use store::{RunFilter, RunId, RunRow, Store};

use super::events_file::EventsRow;
use super::source::{Acked, BoxError, OffsetStore, Offsets, SyncSource};
use super::types::{
    manager_weight_key, HistoryRow, LogLine, LogStream, RunMeta, RunState, Selection,
};

/// Exit codes reported for runs that ended without finishing.
const FAILED_EXIT: i32 = 1;
const CRASHED_EXIT: i32 = 137;
const CANCELLED_EXIT: i32 = 130;

/// The cursor names used in `sync_cursors` (one per [`Acked::file`]).
const CURSOR_FILES: [&str; 6] = [
    "upsert",
    "wandb-history.jsonl",
    "output.log",
    "wandb-events.jsonl",
    "wandb-summary.json",
    "complete",
];

#[derive(Debug, Clone)]
pub struct StoreSource {
    store: Store,
    /// The plan cell each selected run stands for, by store id: its W&B group is the
    /// experiment's cell (`experiment/cell`), also for a run stored under another experiment
    /// with the same identity.
    cells: std::sync::Arc<BTreeMap<RunId, PlanCell>>,
}

/// Where an experiment's plan puts a run: its experiment, cell key and seed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlanCell {
    pub experiment: String,
    pub cell: String,
    pub seed: u64,
}

impl StoreSource {
    pub fn new(store: Store) -> Self {
        Self {
            store,
            cells: Default::default(),
        }
    }

    /// Runs named in `cells` are sent as the cells of the plan that selected them.
    #[must_use]
    pub fn with_cells(mut self, cells: BTreeMap<RunId, PlanCell>) -> Self {
        self.cells = std::sync::Arc::new(cells);
        self
    }

    async fn meta(&self, row: RunRow) -> Result<RunMeta, BoxError> {
        let id = row.id;
        let config: Map<String, Value> = self
            .store
            .params(id)
            .await?
            .into_iter()
            .map(|p| (p.key, p.value))
            .collect();
        let mut summary = Map::new();
        let mut last_step = None;
        for s in self.store.summaries(id).await? {
            // W&B shows the last value of a metric by default; NaN becomes null in JSON.
            if let Some(last) = s.last {
                summary.insert(
                    s.key,
                    serde_json::Number::from_f64(last).map_or(Value::Null, Value::Number),
                );
            }
            last_step = last_step.max(s.last_step);
        }
        if let Some(step) = last_step {
            summary.insert("_step".to_owned(), step.into());
        }
        let (history_len, log_len, events_len) = self.store.step_and_log_counts(id).await?;
        let running = matches!(
            row.status,
            store::RunStatus::Queued | store::RunStatus::Running
        );
        // The newest step of a running run is held back (see `history`), and so is its newest
        // system sample's step (a later sample may still add a metric to it).
        let (history_len, events_len) = if running {
            ((history_len - 1).max(0), (events_len - 1).max(0))
        } else {
            (history_len, events_len)
        };
        let status = match row.status {
            store::RunStatus::Queued | store::RunStatus::Running => RunState::Running,
            store::RunStatus::Finished => RunState::Finished,
            store::RunStatus::Failed => RunState::Failed {
                exit_code: FAILED_EXIT,
            },
            store::RunStatus::Crashed => RunState::Failed {
                exit_code: CRASHED_EXIT,
            },
            store::RunStatus::Cancelled => RunState::Failed {
                exit_code: CANCELLED_EXIT,
            },
        };
        let axes = row
            .axes
            .iter()
            .map(|(k, v)| {
                let v = v.as_str().map_or_else(|| v.to_string(), str::to_owned);
                (k.clone(), v)
            })
            .collect();
        let (experiment, cell, seed) = match self.cells.get(&id) {
            Some(c) => (c.experiment.clone(), c.cell.clone(), Some(c.seed)),
            None => (
                row.experiment.clone(),
                row.cell_key.clone(),
                row.axes.get("seed").and_then(Value::as_u64),
            ),
        };
        Ok(RunMeta {
            run_id: id.to_string(),
            content_hash: row.hash,
            // Seeds of one cell share its group; the name tells them apart.
            display_name: match seed {
                Some(seed) => format!("{experiment} {cell} seed {seed}"),
                None => format!("{experiment} {cell}"),
            },
            experiment,
            cell,
            task: row.task,
            axes,
            config,
            summary,
            status,
            history_len: u64::try_from(history_len).unwrap_or(0),
            log_len: u64::try_from(log_len).unwrap_or(0),
            events_len: u64::try_from(events_len).unwrap_or(0),
        })
    }

    /// The highest step with a metric point or manager weights.
    async fn newest_step(&self, run: RunId) -> Result<Option<i64>, BoxError> {
        Ok(self.store.newest_step(run).await?)
    }

    async fn started_ms(&self, run: RunId) -> Result<Option<i64>, BoxError> {
        Ok(self
            .store
            .run(run)
            .await?
            .and_then(|r| r.started_ms.or(Some(r.created_ms))))
    }
}

fn run_id(run: &RunMeta) -> Result<RunId, BoxError> {
    run.run_id
        .parse()
        .map(RunId)
        .map_err(|_| format!("run id {:?} is not a store id", run.run_id).into())
}

impl SyncSource for StoreSource {
    async fn list_runs(&self, selection: &Selection) -> Result<Vec<RunMeta>, BoxError> {
        let mut rows: BTreeMap<RunId, RunRow> = BTreeMap::new();
        if selection.is_all() {
            for row in self.store.list_runs(&RunFilter::default()).await? {
                rows.insert(row.id, row);
            }
        }
        for name in &selection.experiments {
            if let Some(exp) = self.store.experiment_by_name(name).await? {
                let filter = RunFilter {
                    experiment: Some(exp.id),
                    ..RunFilter::default()
                };
                for row in self.store.list_runs(&filter).await? {
                    rows.insert(row.id, row);
                }
            }
        }
        // `--run` takes a store id or a full content hash.
        let mut hashes = Vec::new();
        for id in &selection.runs {
            match id.parse::<i64>() {
                Ok(n) => {
                    if let Some(row) = self.store.run(RunId(n)).await? {
                        rows.insert(row.id, row);
                    }
                }
                Err(_) => hashes.push(id.clone()),
            }
        }
        if !hashes.is_empty() {
            for row in self.store.runs_by_hash(&hashes).await? {
                rows.insert(row.id, row);
            }
        }
        let mut metas = Vec::with_capacity(rows.len());
        for row in rows.into_values() {
            let hash = row.hash.clone();
            let mut meta = self.meta(row).await?;
            // Let `--run <hash>` match the run it named.
            if selection.runs.contains(&hash) {
                meta.run_id.clone_from(&hash);
            }
            metas.push(meta);
        }
        Ok(metas)
    }

    async fn history(
        &self,
        run: &RunMeta,
        after_step: Option<u64>,
        limit: usize,
    ) -> Result<Vec<HistoryRow>, BoxError> {
        let id = store_id(&self.store, run).await?;
        let after = after_step.map(i64::try_from).transpose()?;
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        // A running run's newest step may still be getting points (the evaluation of a step
        // comes after its training metrics), and W&B history lines are never rewritten: it is
        // sent once a later step exists, or when the run has ended.
        let open_step = match run.status {
            RunState::Running => self.newest_step(id).await?,
            _ => None,
        };
        let mut metric_rows = self.store.history(id, after, Some(limit)).await?;
        if let Some(open) = open_step {
            metric_rows.retain(|r| r.step < open);
        }
        // Manager weights up to the last metric row (all of them at the end of the history),
        // so a step with weights but no metrics still gets its own row, in order.
        let upto = if i64::try_from(metric_rows.len()).unwrap_or(i64::MAX) < limit {
            i64::MAX
        } else {
            metric_rows.last().map_or(i64::MAX, |r| r.step)
        };
        let weights = self
            .store
            .manager_weights_between(id, after, upto.min(open_step.map_or(i64::MAX, |s| s - 1)))
            .await?;
        let started = self.started_ms(id).await?.unwrap_or(0);
        let mut by_step: BTreeMap<i64, (i64, Vec<(String, f64)>)> = BTreeMap::new();
        for row in metric_rows {
            by_step.insert(row.step, (row.wall_ms, row.values.into_iter().collect()));
        }
        for w in weights {
            let entry = by_step.entry(w.step).or_insert((0, Vec::new()));
            let v = w.value;
            entry.1.push((
                manager_weight_key(v.modality.as_str(), v.layer as usize, v.expert),
                v.weight,
            ));
        }
        let mut out = Vec::with_capacity(
            by_step
                .len()
                .min(usize::try_from(limit).unwrap_or(usize::MAX)),
        );
        let mut last_wall = started;
        for (step, (wall_ms, metrics)) in by_step {
            // Weight-only steps carry no wall time: reuse the previous one.
            let wall = if wall_ms > 0 { wall_ms } else { last_wall };
            last_wall = wall;
            out.push(HistoryRow {
                step: u64::try_from(step)?,
                runtime: (wall - started).max(0) as f64 / 1000.0,
                timestamp: wall as f64 / 1000.0,
                metrics,
            });
            if out.len() as i64 >= limit {
                break;
            }
        }
        Ok(out)
    }

    async fn system_events(
        &self,
        run: &RunMeta,
        from: u64,
        limit: usize,
    ) -> Result<Vec<EventsRow>, BoxError> {
        let id = store_id(&self.store, run).await?;
        let samples = self
            .store
            .system_samples(
                id,
                i64::try_from(from)?,
                i64::try_from(limit).unwrap_or(i64::MAX),
            )
            .await?;
        let started = self.started_ms(id).await?.unwrap_or(0);
        Ok(samples
            .into_iter()
            .map(|row| EventsRow {
                runtime: (row.wall_ms - started).max(0) as f64 / 1000.0,
                timestamp: row.wall_ms as f64 / 1000.0,
                metrics: row.values.into_iter().collect(),
            })
            .collect())
    }

    async fn logs(&self, run: &RunMeta, from: u64, limit: usize) -> Result<Vec<LogLine>, BoxError> {
        let id = store_id(&self.store, run).await?;
        let lines = self
            .store
            .log_lines(id, Some(i64::try_from(from)?), Some(i64::try_from(limit)?))
            .await?;
        Ok(lines
            .into_iter()
            .map(|l| LogLine {
                timestamp: l.time_ms as f64 / 1000.0,
                stream: match l.level.as_str() {
                    "stderr" | "error" | "warn" => LogStream::Stderr,
                    _ => LogStream::Stdout,
                },
                text: l.text,
            })
            .collect())
    }
}

/// The store id of a run listed by [`StoreSource::list_runs`] (its id, or the hash it was
/// selected by).
async fn store_id(store: &Store, run: &RunMeta) -> Result<RunId, BoxError> {
    if let Ok(id) = run_id(run) {
        return Ok(id);
    }
    store
        .runs_by_hash(std::slice::from_ref(&run.content_hash))
        .await?
        .first()
        .map(|r| r.id)
        .ok_or_else(|| format!("run {} is no longer in the store", run.run_id).into())
}

impl OffsetStore for StoreSource {
    async fn load_offsets(&self, run: &RunMeta, key: &str) -> Result<Offsets, BoxError> {
        let id = store_id(&self.store, run).await?;
        let target = format!("wandb {key}");
        let mut rows = Vec::new();
        for file in CURSOR_FILES {
            if let Some(value) = self.store.sync_cursor(id, &target, file).await? {
                rows.push((file, value));
            }
        }
        Ok(Offsets::from_rows(rows)?)
    }

    async fn save_offsets(&self, run: &RunMeta, key: &str, acked: &Acked) -> Result<(), BoxError> {
        let id = store_id(&self.store, run).await?;
        self.store
            .set_sync_cursor(id, &format!("wandb {key}"), acked.file(), &acked.value())
            .await?;
        Ok(())
    }
}
