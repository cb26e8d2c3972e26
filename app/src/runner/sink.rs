//! Turns an attempt's events into store writes: metric points in batches (one transaction per
//! batch), manager weights, checkpoints as artifacts, log lines, and progress for heartbeats
//! and progress bars.

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context as _;
use store::{ArtifactKind, MetricPoint, NewArtifact, NewLogLine, RunId, Store};

use experiments::run::Event;

/// Flush metric points when this many are pending...
pub const FLUSH_POINTS: usize = 512;
/// ...or when the oldest pending one is this old.
pub const FLUSH_EVERY: Duration = Duration::from_secs(1);

/// Where an attempt stands, shared with the heartbeat task and the progress bar.
#[derive(Debug, Default)]
pub struct LiveProgress {
    /// Last optimiser step seen (-1 before any).
    pub step: AtomicI64,
    /// Total steps announced by `Started` (-1 before).
    pub total: AtomicI64,
}

impl LiveProgress {
    pub fn new(start: Option<i64>) -> Arc<Self> {
        Arc::new(Self {
            step: AtomicI64::new(start.unwrap_or(-1)),
            total: AtomicI64::new(-1),
        })
    }

    pub fn get(&self) -> Option<store::Progress> {
        let step = self.step.load(Ordering::Relaxed);
        let total = self.total.load(Ordering::Relaxed);
        (step >= 0).then(|| store::Progress {
            step,
            total: (total >= 0).then_some(total),
        })
    }
}

/// The store side of one attempt.
pub struct Sink {
    store: Store,
    run: RunId,
    pending: Vec<MetricPoint>,
    pending_since: Option<Instant>,
    logs: Vec<NewLogLine>,
    log_file: Option<std::fs::File>,
    log_path: PathBuf,
    pub progress: Arc<LiveProgress>,
    /// Metric points written by this attempt (new ones only).
    pub points_written: u64,
    /// The last evaluation metrics, for the progress line.
    pub last_eval: Vec<(String, f64)>,
}

fn now_ms() -> i64 {
    store::now_ms()
}

impl Sink {
    pub fn new(store: Store, run: RunId, run_dir: &Path, progress: Arc<LiveProgress>) -> Self {
        let log_path = run_dir.join("train.log");
        let log_file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&log_path)
            .map_err(|e| tracing::warn!("cannot write {}: {e}", log_path.display()))
            .ok();
        Self {
            store,
            run,
            pending: Vec::new(),
            pending_since: None,
            logs: Vec::new(),
            log_file,
            log_path,
            progress,
            points_written: 0,
            last_eval: Vec::new(),
        }
    }

    /// How long until the pending batch must be flushed (`None`: nothing pending).
    pub fn flush_due_in(&self) -> Option<Duration> {
        self.pending_since
            .map(|t| FLUSH_EVERY.saturating_sub(t.elapsed()))
    }

    fn log(&mut self, level: &str, text: String) {
        if let Some(f) = &mut self.log_file {
            let _ = writeln!(f, "{} {level:<5} {text}", now_ms());
        }
        self.logs.push(NewLogLine {
            time_ms: now_ms(),
            level: level.to_string(),
            text,
        });
    }

    /// Applies one event. Metric points are buffered; everything else is written at once
    /// (a checkpoint only after the points before it are stored, so a resume never loses them).
    pub async fn handle(&mut self, event: Event) -> anyhow::Result<()> {
        match event {
            Event::Started {
                total_steps,
                device,
                resumed_at,
            } => {
                self.progress
                    .total
                    .store(total_steps as i64, Ordering::Relaxed);
                if let Some(step) = resumed_at {
                    self.progress.step.store(step as i64, Ordering::Relaxed);
                }
                let from = resumed_at.map_or(String::new(), |s| {
                    format!(", resumed from the checkpoint at step {s}")
                });
                self.log(
                    "info",
                    format!("started on {device}: {total_steps} steps{from}"),
                );
            }
            Event::Step { step, metrics } => {
                self.progress.step.store(step as i64, Ordering::Relaxed);
                self.push_points(step, metrics);
            }
            Event::System { step, metrics } => self.push_points(step, metrics),
            Event::Eval { step, metrics } => {
                self.last_eval = metrics.clone();
                self.push_points(step, metrics);
            }
            Event::ManagerWeights { step, weights } => {
                let rows: Vec<store::ManagerWeightRow> = weights
                    .into_iter()
                    .map(|value| store::ManagerWeightRow {
                        step: step as i64,
                        value,
                    })
                    .collect();
                self.store
                    .ingest_manager_weights(self.run, &rows)
                    .await
                    .context("storing manager weights")?;
            }
            Event::Predictions { step, path, count } => {
                let size = std::fs::metadata(&path).map(|m| m.len()).ok();
                self.store
                    .add_artifact(
                        self.run,
                        &NewArtifact {
                            kind: ArtifactKind::Predictions,
                            path: path.display().to_string(),
                            step: Some(step as i64),
                            size_bytes: size.map(|s| s as i64),
                        },
                    )
                    .await
                    .context("recording test predictions")?;
                self.log(
                    "info",
                    format!(
                        "test predictions of the step-{step} checkpoint ({count} questions): {}",
                        path.display()
                    ),
                );
            }
            Event::Checkpoint { step, path } => {
                self.flush().await?;
                let size = dir_size(&path);
                self.store
                    .add_artifact(
                        self.run,
                        &NewArtifact {
                            kind: ArtifactKind::Checkpoint,
                            path: path.display().to_string(),
                            step: Some(step as i64),
                            size_bytes: Some(size as i64),
                        },
                    )
                    .await
                    .context("recording a checkpoint")?;
                self.log(
                    "info",
                    format!("checkpoint at step {step}: {}", path.display()),
                );
            }
            Event::Log { message } => self.log("info", message),
            Event::Finished { step } => {
                self.progress.step.store(step as i64, Ordering::Relaxed);
                self.log("info", format!("finished at step {step}"));
            }
            Event::Cancelled { step } => self.log(
                "info",
                format!("cancelled at step {step}; it resumes from its last checkpoint"),
            ),
            Event::Failed {
                step,
                class,
                message,
            } => self.log(
                "error",
                format!("failed at step {step} ({class}): {message}"),
            ),
        }
        if self.pending.len() >= FLUSH_POINTS || self.flush_due_in() == Some(Duration::ZERO) {
            self.flush().await?;
        }
        Ok(())
    }

    fn push_points(&mut self, step: u64, metrics: Vec<(String, f64)>) {
        let wall_ms = now_ms();
        if self.pending.is_empty() {
            self.pending_since = Some(Instant::now());
        }
        self.pending
            .extend(metrics.into_iter().map(|(key, value)| MetricPoint {
                key,
                step: step as i64,
                value,
                wall_ms,
            }));
    }

    /// Writes the pending points (one transaction) and log lines.
    pub async fn flush(&mut self) -> anyhow::Result<()> {
        if !self.pending.is_empty() {
            let n = self
                .store
                .ingest_metrics(self.run, &self.pending)
                .await
                .context("storing metric points")?;
            self.points_written += n;
            self.pending.clear();
        }
        self.pending_since = None;
        if !self.logs.is_empty() {
            self.store
                .append_logs(self.run, &self.logs)
                .await
                .context("storing log lines")?;
            self.logs.clear();
        }
        Ok(())
    }

    /// Records the log file as an artifact (once per attempt, at the end).
    pub async fn record_log_file(&mut self) -> anyhow::Result<()> {
        if let Some(f) = &mut self.log_file {
            let _ = f.flush();
        }
        let size = std::fs::metadata(&self.log_path).map(|m| m.len()).ok();
        if size.is_some() {
            self.store
                .add_artifact(
                    self.run,
                    &NewArtifact {
                        kind: ArtifactKind::Log,
                        path: self.log_path.display().to_string(),
                        step: None,
                        size_bytes: size.map(|s| s as i64),
                    },
                )
                .await?;
        }
        Ok(())
    }
}

fn dir_size(path: &Path) -> u64 {
    match std::fs::metadata(path) {
        Ok(m) if m.is_dir() => std::fs::read_dir(path)
            .into_iter()
            .flatten()
            .flatten()
            .map(|e| dir_size(&e.path()))
            .sum(),
        Ok(m) => m.len(),
        Err(_) => 0,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use store::{ExperimentId, NewRun, SeriesOptions};

    async fn one_run(store: &Store) -> RunId {
        let exp = store.upsert_experiment("e", "e.toml", "h").await.unwrap();
        assert_eq!(exp.id, ExperimentId(1));
        let made = store
            .create_runs(
                exp.id,
                &[NewRun {
                    hash: "a".repeat(64),
                    cell_key: "k".into(),
                    axes: Default::default(),
                    task: "vqa".into(),
                    params: vec![],
                    depends_on: None,
                }],
            )
            .await
            .unwrap();
        made[0].id
    }

    fn step(step: u64) -> Event {
        Event::Step {
            step,
            metrics: vec![("train/loss".into(), 1.0 / step as f64)],
        }
    }

    #[tokio::test]
    async fn points_are_batched_and_a_checkpoint_is_recorded_after_its_points() {
        let store = Store::open_in_memory().await.unwrap();
        let run = one_run(&store).await;
        let dir = tempfile::tempdir().unwrap();
        let mut sink = Sink::new(store.clone(), run, dir.path(), LiveProgress::new(None));
        for s in 1..=3 {
            sink.handle(step(s)).await.unwrap();
        }
        // Buffered: nothing stored yet, but a flush is due within a second.
        let series = |store: Store| async move {
            store
                .metric_series(run, "train/loss", SeriesOptions::default())
                .await
                .unwrap()
                .len()
        };
        assert_eq!(series(store.clone()).await, 0);
        assert!(sink.flush_due_in().is_some_and(|d| d <= FLUSH_EVERY));
        let ckpt = dir.path().join("checkpoints").join("step-3");
        std::fs::create_dir_all(&ckpt).unwrap();
        std::fs::write(ckpt.join("state.json"), "{}").unwrap();
        sink.handle(Event::Checkpoint {
            step: 3,
            path: ckpt.clone(),
        })
        .await
        .unwrap();
        // The checkpoint flushed the points before it.
        assert_eq!(series(store.clone()).await, 3);
        let row = store.run(run).await.unwrap().unwrap();
        assert_eq!(row.checkpoint_step, Some(3));
        assert_eq!(sink.progress.get().map(|p| p.step), Some(3));

        // Many points in one go are written once the batch is full.
        for s in 4..(4 + FLUSH_POINTS as u64) {
            sink.handle(step(s)).await.unwrap();
        }
        assert_eq!(series(store.clone()).await, 3 + FLUSH_POINTS);
        sink.handle(Event::Log {
            message: "hello".into(),
        })
        .await
        .unwrap();
        sink.flush().await.unwrap();
        let logs = store.log_lines(run, None, None).await.unwrap();
        assert!(logs.iter().any(|l| l.text == "hello"));
        assert!(logs
            .iter()
            .any(|l| l.text.starts_with("checkpoint at step 3")));
        assert!(std::fs::read_to_string(dir.path().join("train.log"))
            .unwrap()
            .contains("hello"));
    }
}
