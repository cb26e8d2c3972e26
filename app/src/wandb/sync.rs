//! The sync itself: for each selected run, `UpsertBucket` when its metadata changed, then the
//! history, console and summary lines the server has not acknowledged yet, then `complete`.

use std::fmt;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use bytes::Bytes;
use serde_json::{json, Value};
use tokio::sync::Semaphore;
use tokio::task::JoinSet;

use super::client::{Client, RequestError};
use super::config::{Mode, WandbConfig};
use super::encode::{
    console_line, hex_digest, history_line, wandb_run_id, wrapped_config, StreamBody, HISTORY_FILE,
    OUTPUT_FILE, SUMMARY_FILE,
};
use super::events_file::{events_line, EVENTS_FILE};
use super::progress::Progress;
use super::source::{sync_key, Acked, BoxError, OffsetStore, Offsets, SyncSource};
use super::types::{RunMeta, Selection};

/// What to sync and how.
#[derive(Debug, Clone, Default)]
pub struct SyncOptions {
    pub selection: Selection,
    /// Work out what would be sent, send nothing, save nothing, need no key.
    pub dry_run: bool,
    /// Draw progress bars (only on a terminal).
    pub progress: bool,
    /// Send an empty file_stream request for running runs that had nothing new, so that W&B
    /// keeps showing them as running (live mode).
    pub heartbeat: bool,
}

/// What happened to one run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SyncOutcome {
    /// `UpsertBucket` created it.
    Created,
    /// Something was sent to an existing run.
    Updated,
    /// Nothing new.
    Unchanged,
}

/// One run of the sync (what was sent, or with `--dry-run` what would be).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RunReport {
    pub run_id: String,
    pub wandb_id: String,
    /// `entity/project/run id` (entity `?` while not known: the key owner's default).
    pub path: String,
    pub outcome: SyncOutcome,
    pub upsert: bool,
    pub history_lines: u64,
    pub log_lines: u64,
    /// `wandb-events.jsonl` lines (system samples).
    pub events_lines: u64,
    pub summary: bool,
    pub complete: Option<i32>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RunFailure {
    pub run_id: String,
    pub wandb_id: String,
    pub message: String,
}

/// The summary printed at the end.
#[derive(Debug, Clone, Default)]
pub struct SyncReport {
    /// Set when `WANDB_MODE` turned the sync off.
    pub skipped: Option<Mode>,
    pub dry_run: bool,
    pub base_url: String,
    pub project: String,
    pub runs: Vec<RunReport>,
    pub failures: Vec<RunFailure>,
    pub requests: u64,
    pub retries: u64,
    pub bytes_sent: u64,
}

impl SyncReport {
    fn count(&self, outcome: SyncOutcome) -> usize {
        self.runs.iter().filter(|r| r.outcome == outcome).count()
    }

    pub fn created(&self) -> usize {
        self.count(SyncOutcome::Created)
    }

    pub fn updated(&self) -> usize {
        self.count(SyncOutcome::Updated)
    }

    pub fn unchanged(&self) -> usize {
        self.count(SyncOutcome::Unchanged)
    }

    pub fn history_lines(&self) -> u64 {
        self.runs.iter().map(|r| r.history_lines).sum()
    }

    pub fn log_lines(&self) -> u64 {
        self.runs.iter().map(|r| r.log_lines).sum()
    }

    pub fn events_lines(&self) -> u64 {
        self.runs.iter().map(|r| r.events_lines).sum()
    }
}

impl fmt::Display for SyncReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(mode) = self.skipped {
            return write!(
                f,
                "WANDB_MODE={}: nothing synced (unset WANDB_MODE or set it to online to sync)",
                mode.as_str()
            );
        }
        if self.dry_run {
            writeln!(
                f,
                "dry run: nothing sent to {} (project {})",
                self.base_url, self.project
            )?;
            for r in &self.runs {
                let mut parts = Vec::new();
                if r.upsert {
                    parts.push("create/update run".to_owned());
                }
                if r.history_lines > 0 {
                    parts.push(format!("{} history lines", r.history_lines));
                }
                if r.log_lines > 0 {
                    parts.push(format!("{} log lines", r.log_lines));
                }
                if r.events_lines > 0 {
                    parts.push(format!("{} system samples", r.events_lines));
                }
                if r.summary {
                    parts.push("summary".to_owned());
                }
                if let Some(code) = r.complete {
                    parts.push(format!("complete (exit code {code})"));
                }
                if parts.is_empty() {
                    parts.push("nothing new".to_owned());
                }
                writeln!(f, "  {} -> {}: {}", r.run_id, r.path, parts.join(", "))?;
            }
            return write!(
                f,
                "{} runs, {} history lines and {} log lines to send",
                self.runs.len(),
                self.history_lines(),
                self.log_lines()
            );
        }
        write!(
            f,
            "W&B sync to {} (project {}): {} created, {} updated, {} unchanged, {} failed; \
             {} history lines and {} log lines sent in {} requests ({} retries)",
            self.base_url,
            self.project,
            self.created(),
            self.updated(),
            self.unchanged(),
            self.failures.len(),
            self.history_lines(),
            self.log_lines(),
            self.requests,
            self.retries
        )?;
        if self.events_lines() > 0 {
            write!(f, "; {} system samples", self.events_lines())?;
        }
        for failure in &self.failures {
            write!(
                f,
                "\n  failed: run {} (W&B id {}): {}",
                failure.run_id, failure.wandb_id, failure.message
            )?;
        }
        Ok(())
    }
}

/// Errors that stop the whole sync (a run's own failure is in [`SyncReport::failures`]).
#[derive(Debug, thiserror::Error)]
pub enum SyncError {
    #[error(transparent)]
    Request(#[from] RequestError),
    #[error("cannot list the runs to sync: {0}")]
    Source(BoxError),
}

/// Why one run stopped.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    #[error(transparent)]
    Request(#[from] RequestError),
    #[error(
        "run {run}: the history line of step {step} is {bytes} bytes, over the {limit}-byte \
         request limit"
    )]
    LineTooLarge {
        run: String,
        step: u64,
        bytes: usize,
        limit: usize,
    },
    #[error(
        "run {run}: console line {index} is {bytes} bytes, over the {limit}-byte request limit"
    )]
    LogLineTooLarge {
        run: String,
        index: u64,
        bytes: usize,
        limit: usize,
    },
    #[error(
        "run {run}: system sample {index} (wandb-events.jsonl) is {bytes} bytes, over the \
         {limit}-byte request limit"
    )]
    EventsLineTooLarge {
        run: String,
        index: u64,
        bytes: usize,
        limit: usize,
    },
    #[error("run {run}: the summary is {bytes} bytes, over the {limit}-byte request limit")]
    SummaryTooLarge {
        run: String,
        bytes: usize,
        limit: usize,
    },
    #[error("run {run}: reading from the source: {source}")]
    Source { run: String, source: BoxError },
    #[error("run {run}: the source returned no lines at line {at} although it reported {len}")]
    SourceShort { run: String, at: u64, len: u64 },
    #[error("run {run}: the source returned step {step} after step {after} (steps must increase)")]
    SourceOrder { run: String, step: u64, after: u64 },
    #[error("run {run}: offsets: {source}")]
    Offsets { run: String, source: BoxError },
}

/// Selected names that matched no run (for a clear error in the CLI).
pub fn unmatched(selection: &Selection, runs: &[RunMeta]) -> Vec<String> {
    let mut missing: Vec<String> = selection
        .experiments
        .iter()
        .filter(|e| !runs.iter().any(|r| &r.experiment == *e))
        .map(|e| format!("experiment {e:?}"))
        .collect();
    missing.extend(
        selection
            .runs
            .iter()
            .filter(|id| !runs.iter().any(|r| &r.run_id == *id))
            .map(|id| format!("run {id:?}")),
    );
    missing
}

/// Syncs the selected runs, a bounded number at a time. Runs that fail are listed in the
/// report; a rejected key (401) stops everything.
pub async fn sync_runs<S: SyncSource, O: OffsetStore>(
    config: &WandbConfig,
    source: Arc<S>,
    offsets: Arc<O>,
    options: &SyncOptions,
) -> Result<SyncReport, SyncError> {
    let mut report = SyncReport {
        dry_run: options.dry_run,
        base_url: config.base_url.clone(),
        project: config.project.clone(),
        ..SyncReport::default()
    };
    if config.mode != Mode::Online {
        tracing::info!(
            mode = config.mode.as_str(),
            "W&B sync skipped by WANDB_MODE"
        );
        report.skipped = Some(config.mode);
        return Ok(report);
    }
    let client = if options.dry_run {
        None
    } else {
        Some(Client::new(config)?)
    };
    let runs = source
        .list_runs(&options.selection)
        .await
        .map_err(SyncError::Source)?;
    let progress = Progress::new(options.progress, runs.len() as u64);
    let limit = Semaphore::new(config.concurrency.max(1));
    let shared = Arc::new(Shared {
        config: config.clone(),
        client,
        limit,
        abort: AtomicBool::new(false),
        progress: progress.clone(),
        heartbeat: options.heartbeat,
    });
    let mut tasks = JoinSet::new();
    for (index, meta) in runs.into_iter().enumerate() {
        let (shared, source, offsets) = (shared.clone(), source.clone(), offsets.clone());
        tasks.spawn(async move {
            let _permit = shared.limit.acquire().await;
            let wandb_id = wandb_run_id(&meta.content_hash);
            let result = if shared.abort.load(Ordering::Relaxed) {
                Err(None)
            } else {
                RunSync {
                    shared: &shared,
                    source: &*source,
                    offsets: &*offsets,
                    meta: &meta,
                    wandb_id: &wandb_id,
                }
                .run()
                .await
                .map_err(Some)
            };
            shared.progress.run_handled();
            if let Err(Some(RunError::Request(
                RequestError::Unauthorized { .. } | RequestError::NoEntity { .. },
            ))) = &result
            {
                // The key and the entity are the same for every run: stop the ones not
                // started yet, and say it once.
                shared.abort.store(true, Ordering::Relaxed);
            }
            (index, meta.run_id, wandb_id, result)
        });
    }
    let mut results = Vec::new();
    let mut auth_error = None;
    while let Some(joined) = tasks.join_next().await {
        let Ok((index, run_id, wandb_id, result)) = joined else {
            // A panicking task is a bug; the other runs still finish.
            tracing::error!("a W&B sync task panicked");
            continue;
        };
        match result {
            Ok(run) => results.push((index, run)),
            Err(None) => {}
            Err(Some(RunError::Request(
                err @ (RequestError::Unauthorized { .. } | RequestError::NoEntity { .. }),
            ))) => {
                auth_error = Some(err);
            }
            Err(Some(err)) => {
                let message = err.to_string();
                // The report lists it; a warning too would print it twice.
                tracing::debug!(run = %run_id, wandb_id = %wandb_id, error = %message, "W&B sync of a run failed");
                report.failures.push(RunFailure {
                    run_id,
                    wandb_id,
                    message,
                });
            }
        }
    }
    progress.finish();
    if let Some(err) = auth_error {
        return Err(err.into());
    }
    results.sort_by_key(|(index, _)| *index);
    report.runs = results.into_iter().map(|(_, run)| run).collect();
    if let Some(client) = &shared.client {
        let stats = client.stats();
        report.requests = stats.requests.load(Ordering::Relaxed);
        report.retries = stats.retries.load(Ordering::Relaxed);
        report.bytes_sent = stats.bytes_sent.load(Ordering::Relaxed);
    }
    Ok(report)
}

struct Shared {
    config: WandbConfig,
    client: Option<Client>,
    limit: Semaphore,
    abort: AtomicBool,
    progress: Progress,
    heartbeat: bool,
}

/// The `UpsertBucket` variables of a run.
pub fn upsert_variables(config: &WandbConfig, meta: &RunMeta, wandb_id: &str) -> Value {
    let tags: Vec<String> = meta.axes.iter().map(|(k, v)| format!("{k}={v}")).collect();
    json!({
        "name": wandb_id,
        "project": config.project,
        "entity": config.entity,
        "groupName": format!("{}/{}", meta.experiment, meta.cell),
        "displayName": meta.display_name,
        "jobType": meta.task,
        "tags": tags,
        "config": wrapped_config(&meta.config),
    })
}

struct RunSync<'a, S, O> {
    shared: &'a Shared,
    source: &'a S,
    offsets: &'a O,
    meta: &'a RunMeta,
    wandb_id: &'a str,
}

impl<S: SyncSource, O: OffsetStore> RunSync<'_, S, O> {
    async fn run(self) -> Result<RunReport, RunError> {
        let config = &self.shared.config;
        let key = sync_key(
            &config.base_url,
            config.entity.as_deref(),
            &config.project,
            self.wandb_id,
        );
        let mut acked = self
            .offsets
            .load_offsets(self.meta, &key)
            .await
            .map_err(|source| self.offsets_err(source))?;
        let variables = upsert_variables(config, self.meta, self.wandb_id);
        let upsert_digest = hex_digest(variables.to_string().as_bytes());
        let summary_text = Value::Object(self.meta.summary.clone()).to_string();
        let summary_digest = hex_digest(summary_text.as_bytes());
        let complete = self
            .meta
            .status
            .exit_code()
            .filter(|code| acked.exit_code != Some(*code));
        let history_new = self.meta.history_len.saturating_sub(acked.history);
        let log_new = self.meta.log_len.saturating_sub(acked.log);
        let events_new = self.meta.events_len.saturating_sub(acked.events);
        let mut report = RunReport {
            run_id: self.meta.run_id.clone(),
            wandb_id: self.wandb_id.to_owned(),
            path: String::new(),
            outcome: SyncOutcome::Unchanged,
            upsert: acked.upsert.as_deref() != Some(&upsert_digest) || acked.entity.is_none(),
            history_lines: history_new,
            log_lines: log_new,
            events_lines: events_new,
            summary: acked.summary.as_deref() != Some(&summary_digest),
            complete,
        };
        if acked.history > self.meta.history_len {
            tracing::warn!(
                run = %self.meta.run_id,
                synced = acked.history,
                now = self.meta.history_len,
                "the run has fewer history lines than W&B already acknowledged; nothing re-sent"
            );
        }
        let Some(client) = &self.shared.client else {
            let entity = acked
                .entity
                .clone()
                .or_else(|| config.entity.clone())
                .unwrap_or_else(|| "?".to_owned());
            report.path = format!("{entity}/{}/{}", config.project, self.wandb_id);
            if report.upsert
                || history_new + log_new + events_new > 0
                || report.summary
                || complete.is_some()
            {
                report.outcome = SyncOutcome::Updated;
            }
            return Ok(report);
        };

        if report.upsert {
            let reply = client.upsert_bucket(&variables).await?;
            self.save(
                &key,
                &mut acked,
                Acked::Upsert {
                    digest: upsert_digest,
                    entity: reply.entity,
                },
            )
            .await?;
            report.outcome = if reply.inserted {
                SyncOutcome::Created
            } else {
                SyncOutcome::Updated
            };
        }
        let entity = acked
            .entity
            .clone()
            .or_else(|| config.entity.clone())
            .unwrap_or_default();
        report.path = format!("{entity}/{}/{}", config.project, self.wandb_id);
        let stream = Stream {
            client,
            entity: &entity,
            project: &config.project,
            run: self.meta,
            wandb_id: self.wandb_id,
        };

        let bar = self
            .shared
            .progress
            .run(&self.meta.run_id, history_new + log_new + events_new);
        let result = async {
            let before = (acked.history, acked.log, acked.events);
            let sent = async {
                if history_new > 0 {
                    self.send_history(&stream, &key, &mut acked, &bar).await?;
                }
                if log_new > 0 {
                    self.send_lines(&stream, &key, &mut acked, &bar, LineFile::Log)
                        .await?;
                }
                if events_new > 0 {
                    self.send_lines(&stream, &key, &mut acked, &bar, LineFile::Events)
                        .await?;
                }
                Ok::<_, RunError>(())
            }
            .await;
            report.history_lines = acked.history - before.0;
            report.log_lines = acked.log - before.1;
            report.events_lines = acked.events - before.2;
            sent
        }
        .await;
        self.shared.progress.run_done(&bar);
        result?;

        let mut last = serde_json::Map::new();
        if report.summary {
            last.insert(
                "files".to_owned(),
                json!({ SUMMARY_FILE: { "offset": 0, "content": [summary_text] } }),
            );
        }
        if let Some(code) = complete {
            last.insert("complete".to_owned(), Value::Bool(true));
            last.insert("exitcode".to_owned(), code.into());
        }
        let sent_lines = report.history_lines + report.log_lines + report.events_lines > 0;
        if !last.is_empty() {
            let body = Value::Object(last).to_string();
            if body.len() > config.max_request_bytes {
                return Err(RunError::SummaryTooLarge {
                    run: self.meta.run_id.clone(),
                    bytes: body.len(),
                    limit: config.max_request_bytes,
                });
            }
            stream
                .post(body.into_bytes().into(), "summary and completion")
                .await?;
            if report.summary {
                self.save(&key, &mut acked, Acked::Summary(summary_digest))
                    .await?;
            }
            if let Some(code) = complete {
                self.save(&key, &mut acked, Acked::Complete(code)).await?;
            }
        } else if self.shared.heartbeat && !sent_lines && self.meta.status.exit_code().is_none() {
            stream.post(Bytes::from_static(b"{}"), "heartbeat").await?;
        }
        if report.outcome == SyncOutcome::Unchanged
            && (sent_lines || report.summary || complete.is_some())
        {
            report.outcome = SyncOutcome::Updated;
        }
        Ok(report)
    }

    async fn send_history(
        &self,
        stream: &Stream<'_>,
        key: &str,
        acked: &mut Offsets,
        bar: &indicatif::ProgressBar,
    ) -> Result<(), RunError> {
        let limit = self.shared.config.max_request_bytes;
        let page = self.shared.config.page_rows.max(1);
        let mut after = acked.history_step;
        let mut body = StreamBody::new(HISTORY_FILE, acked.history);
        let mut body_step = after;
        let mut line = Vec::with_capacity(1024);
        loop {
            let rows = self
                .source
                .history(self.meta, after, page)
                .await
                .map_err(|source| self.source_err(source))?;
            if rows.is_empty() {
                break;
            }
            for row in &rows {
                if after.is_some_and(|a| row.step <= a) {
                    return Err(RunError::SourceOrder {
                        run: self.meta.run_id.clone(),
                        step: row.step,
                        after: after.unwrap_or_default(),
                    });
                }
                history_line(row, &mut line);
                if !body.try_push(&line, limit) {
                    let too_large = || RunError::LineTooLarge {
                        run: self.meta.run_id.clone(),
                        step: row.step,
                        bytes: line.len(),
                        limit,
                    };
                    if body.is_empty() {
                        return Err(too_large());
                    }
                    let next = body.offset() + body.lines();
                    let done = std::mem::replace(&mut body, StreamBody::new(HISTORY_FILE, next));
                    let step = body_step.unwrap_or_default();
                    self.flush(stream, key, acked, done, bar, |lines| Acked::History {
                        lines,
                        step,
                    })
                    .await?;
                    if !body.try_push(&line, limit) {
                        return Err(too_large());
                    }
                }
                body_step = Some(row.step);
                after = Some(row.step);
            }
            if rows.len() < page {
                break;
            }
        }
        if !body.is_empty() {
            let step = body_step.unwrap_or_default();
            self.flush(stream, key, acked, body, bar, |lines| Acked::History {
                lines,
                step,
            })
            .await?;
        }
        Ok(())
    }

    /// The console lines (`output.log`) or system samples (`wandb-events.jsonl`) not
    /// acknowledged yet, by line index, in bodies of at most `max_request_bytes`.
    async fn send_lines(
        &self,
        stream: &Stream<'_>,
        key: &str,
        acked: &mut Offsets,
        bar: &indicatif::ProgressBar,
        file: LineFile,
    ) -> Result<(), RunError> {
        let limit = self.shared.config.max_request_bytes;
        let page = self.shared.config.page_rows.max(1);
        let (name, end, mut next, ack): (_, _, _, fn(u64) -> Acked) = match file {
            LineFile::Log => (OUTPUT_FILE, self.meta.log_len, acked.log, Acked::Log),
            LineFile::Events => (
                EVENTS_FILE,
                self.meta.events_len,
                acked.events,
                Acked::Events,
            ),
        };
        let mut body = StreamBody::new(name, next);
        while next < end {
            let want = usize::try_from(end - next).unwrap_or(usize::MAX).min(page);
            let lines: Vec<Vec<u8>> = match file {
                LineFile::Log => self
                    .source
                    .logs(self.meta, next, want)
                    .await
                    .map_err(|source| self.source_err(source))?
                    .iter()
                    .map(|l| console_line(l).into_bytes())
                    .collect(),
                LineFile::Events => self
                    .source
                    .system_events(self.meta, next, want)
                    .await
                    .map_err(|source| self.source_err(source))?
                    .iter()
                    .map(|row| {
                        let mut line = Vec::with_capacity(1024);
                        events_line(row, &mut line);
                        line
                    })
                    .collect(),
            };
            if lines.is_empty() {
                return Err(RunError::SourceShort {
                    run: self.meta.run_id.clone(),
                    at: next,
                    len: end,
                });
            }
            for line in lines.iter().take(want) {
                if !body.try_push(line, limit) {
                    let too_large = || {
                        let (run, index, bytes) = (self.meta.run_id.clone(), next, line.len());
                        match file {
                            LineFile::Log => RunError::LogLineTooLarge {
                                run,
                                index,
                                bytes,
                                limit,
                            },
                            LineFile::Events => RunError::EventsLineTooLarge {
                                run,
                                index,
                                bytes,
                                limit,
                            },
                        }
                    };
                    if body.is_empty() {
                        return Err(too_large());
                    }
                    let done = std::mem::replace(&mut body, StreamBody::new(name, next));
                    self.flush(stream, key, acked, done, bar, ack).await?;
                    if !body.try_push(line, limit) {
                        return Err(too_large());
                    }
                }
                next += 1;
            }
        }
        if !body.is_empty() {
            self.flush(stream, key, acked, body, bar, ack).await?;
        }
        Ok(())
    }

    /// Posts a filled body and records its end as acknowledged.
    async fn flush(
        &self,
        stream: &Stream<'_>,
        key: &str,
        acked: &mut Offsets,
        body: StreamBody,
        bar: &indicatif::ProgressBar,
        ack: impl FnOnce(u64) -> Acked,
    ) -> Result<(), RunError> {
        let (offset, lines) = (body.offset(), body.lines());
        let what = format!("lines {offset}..{}", offset + lines);
        stream.post(body.finish().into(), &what).await?;
        self.save(key, acked, ack(offset + lines)).await?;
        bar.inc(lines);
        Ok(())
    }

    async fn save(&self, key: &str, acked: &mut Offsets, ack: Acked) -> Result<(), RunError> {
        self.offsets
            .save_offsets(self.meta, key, &ack)
            .await
            .map_err(|source| self.offsets_err(source))?;
        acked.apply(&ack);
        Ok(())
    }

    fn source_err(&self, source: BoxError) -> RunError {
        RunError::Source {
            run: self.meta.run_id.clone(),
            source,
        }
    }

    fn offsets_err(&self, source: BoxError) -> RunError {
        RunError::Offsets {
            run: self.meta.run_id.clone(),
            source,
        }
    }
}

/// The file_stream endpoint of one run.
struct Stream<'a> {
    client: &'a Client,
    entity: &'a str,
    project: &'a str,
    run: &'a RunMeta,
    wandb_id: &'a str,
}

impl Stream<'_> {
    async fn post(&self, body: Bytes, what: &str) -> Result<(), RequestError> {
        let what = format!(
            "file_stream of run {} (W&B {}/{}/{}), {what}",
            self.run.run_id, self.entity, self.project, self.wandb_id
        );
        self.client
            .file_stream(self.entity, self.project, self.wandb_id, body, &what)
            .await
    }
}

/// The files of line-indexed records a run streams besides its history.
#[derive(Debug, Clone, Copy)]
enum LineFile {
    /// `output.log`: the run's log lines.
    Log,
    /// `wandb-events.jsonl`: its system samples.
    Events,
}
