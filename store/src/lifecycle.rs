//! The life of a run: claim, heartbeat, finish / fail / cancel, crash detection and re-queueing.
//!
//! A claim hands out a [`Lease`] (run id + attempt number). Every later write of that attempt's
//! state checks the lease, so a worker that was presumed dead (and whose run was re-queued and
//! claimed again) cannot overwrite the new attempt: it gets [`StoreError::LeaseLost`].

use std::time::Duration;

use serde::Serialize;
use sqlx::{Sqlite, SqliteConnection};
use tracing::{info, instrument, warn};

use crate::error::{Result, StoreError};
use crate::metrics::recompute_summaries;
use crate::rows::RunRow;
use crate::runs::fetch_run;
use crate::types::{ExperimentId, FailureClass, RetryPolicy, RunId, RunStatus};
use crate::workers::{upsert_worker, WorkerInfo};
use crate::{now_ms, Store};

/// Proof that a worker holds attempt `attempt` of run `run_id`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Lease {
    pub run_id: RunId,
    pub attempt: i64,
    pub worker: String,
}

/// A claimed run. When `run.checkpoint_path` is set, the attempt should resume from it
/// (metrics after `run.checkpoint_step` were already dropped by the claim).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Claim {
    pub lease: Lease,
    pub run: RunRow,
}

/// Training progress sent with a heartbeat.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Progress {
    pub step: i64,
    pub total: Option<i64>,
}

/// What the store answers a heartbeat.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum HeartbeatReply {
    Continue,
    /// Someone cancelled the run: stop, then call [`Store::acknowledge_cancel`].
    CancelRequested,
}

/// What became of a failed attempt.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum FailOutcome {
    /// Back in the queue (it will resume from its last checkpoint); `attempts` so far.
    Requeued { attempts: i64 },
    /// Out of retries (or cancelled meanwhile): the run ended with this status.
    Ended(RunStatus),
}

/// What `cancel_runs` did to one run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum CancelOutcome {
    /// It was queued and is now cancelled.
    Cancelled,
    /// It is running; its worker will stop at its next heartbeat.
    Requested,
    /// It had already ended with this status (left alone).
    AlreadyEnded(RunStatus),
    NotFound,
}

/// A running run whose heartbeat stopped.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Reaped {
    pub run_id: RunId,
    pub worker: Option<String>,
    pub host: Option<String>,
    pub pid: Option<i64>,
    pub outcome: FailOutcome,
}

/// id, heartbeat, worker, host, pid of a running run.
type StaleRow = (RunId, i64, Option<String>, Option<String>, Option<i64>);

/// The runnable queued run with the lowest id: queued, and its dependency (if any) finished.
const NEXT_RUNNABLE: &str = "SELECT r.id FROM runs r LEFT JOIN runs d ON d.id = r.depends_on \
    WHERE r.status = 'queued' AND (r.depends_on IS NULL OR d.status = 'finished') \
      AND (?7 IS NULL OR r.experiment_id = ?7) \
    ORDER BY r.id LIMIT 1";

/// Run ?7 itself, when it is runnable (what [`Store::claim_run`] claims).
const THE_RUN_IF_RUNNABLE: &str =
    "SELECT r.id FROM runs r LEFT JOIN runs d ON d.id = r.depends_on \
    WHERE r.status = 'queued' AND (r.depends_on IS NULL OR d.status = 'finished') AND r.id = ?7";

async fn lease_lost(conn: &mut SqliteConnection, run: RunId) -> StoreError {
    match fetch_run(&mut *conn, run).await {
        Ok(Some(row)) => StoreError::LeaseLost {
            run,
            status: row.status,
            attempts: row.attempts,
        },
        Ok(None) => StoreError::UnknownRun(run),
        Err(e) => e,
    }
}

/// Ends the current attempt of a running run with a failure: re-queued while the policy allows
/// (and nobody asked to cancel), otherwise `final_status`. `attempt` guards against stale leases.
async fn end_attempt(
    conn: &mut SqliteConnection,
    run: RunId,
    attempt: Option<i64>,
    class: FailureClass,
    message: &str,
    policy: &RetryPolicy,
    final_status: RunStatus,
) -> Result<Option<FailOutcome>> {
    let row: Option<(i64, i64, bool)> = sqlx::query_as(
        "SELECT attempts, retry_base, cancel_requested FROM runs \
         WHERE id = ?1 AND status = 'running' AND (?2 IS NULL OR attempts = ?2)",
    )
    .bind(run)
    .bind(attempt)
    .fetch_optional(&mut *conn)
    .await?;
    let Some((attempts, retry_base, cancel_requested)) = row else {
        return Ok(None);
    };
    let outcome = if cancel_requested {
        FailOutcome::Ended(RunStatus::Cancelled)
    } else if attempts - retry_base < i64::from(policy.max_attempts(class)) {
        FailOutcome::Requeued { attempts }
    } else {
        FailOutcome::Ended(final_status)
    };
    let status = match outcome {
        FailOutcome::Requeued { .. } => RunStatus::Queued,
        FailOutcome::Ended(status) => status,
    };
    sqlx::query(
        "UPDATE runs SET status = ?2, failure_class = ?3, failure_message = ?4, ended_ms = ?5, \
             cancel_requested = 0 \
         WHERE id = ?1",
    )
    .bind(run)
    .bind(status.as_str())
    .bind(class.as_str())
    .bind(message)
    .bind(now_ms())
    .execute(&mut *conn)
    .await?;
    release_worker(conn, run).await?;
    Ok(Some(outcome))
}

async fn release_worker(conn: &mut SqliteConnection, run: RunId) -> Result<()> {
    sqlx::query("UPDATE workers SET run_id = NULL WHERE run_id = ?1")
        .bind(run)
        .execute(conn)
        .await?;
    Ok(())
}

/// Drops what an interrupted attempt wrote after the checkpoint the next attempt resumes from
/// (everything when there is no checkpoint), so the series describe one consistent training.
async fn rewind_to_checkpoint(conn: &mut SqliteConnection, run: RunId) -> Result<()> {
    let checkpoint: Option<i64> =
        sqlx::query_scalar("SELECT checkpoint_step FROM runs WHERE id = ?1")
            .bind(run)
            .fetch_one(&mut *conn)
            .await?;
    let deleted =
        sqlx::query("DELETE FROM metric_points WHERE run_id = ?1 AND (?2 IS NULL OR step > ?2)")
            .bind(run)
            .bind(checkpoint)
            .execute(&mut *conn)
            .await?
            .rows_affected();
    sqlx::query("DELETE FROM manager_weights WHERE run_id = ?1 AND (?2 IS NULL OR step > ?2)")
        .bind(run)
        .bind(checkpoint)
        .execute(&mut *conn)
        .await?;
    if deleted > 0 {
        recompute_summaries(conn, run, None).await?;
    }
    Ok(())
}

impl Store {
    /// Atomically claims the next runnable queued run (lowest id whose dependency, if any, has
    /// finished), optionally only in `experiment`, for `worker`. Two workers, in one process or
    /// in several, never get the same run. Returns `None` when nothing is runnable.
    #[instrument(level = "debug", skip_all, fields(worker = %worker.id), err(level = "debug"))]
    pub async fn claim(
        &self,
        worker: &WorkerInfo,
        experiment: Option<ExperimentId>,
    ) -> Result<Option<Claim>> {
        self.claim_where(worker, NEXT_RUNNABLE, experiment.map(|e| e.0))
            .await
    }

    /// Atomically claims run `run` itself for `worker`, when it is queued and runnable (its
    /// dependency, if any, finished): what a scheduler's task made for one run does. `None`
    /// when it is not (running elsewhere, ended, or waiting for its dependency).
    #[instrument(level = "debug", skip_all, fields(worker = %worker.id, run = %run), err(level = "debug"))]
    pub async fn claim_run(&self, worker: &WorkerInfo, run: RunId) -> Result<Option<Claim>> {
        self.claim_where(worker, THE_RUN_IF_RUNNABLE, Some(run.0))
            .await
    }

    /// Claims the run that `select` (a query binding `?7` to `key`) picks.
    async fn claim_where(
        &self,
        worker: &WorkerInfo,
        select: &str,
        key: Option<i64>,
    ) -> Result<Option<Claim>> {
        let now = now_ms();
        let mut tx = self.write_tx().await?;
        let claimed: Option<(RunId, i64)> = sqlx::query_as::<Sqlite, (RunId, i64)>(&format!(
            "UPDATE runs SET status = 'running', worker = ?1, host = ?2, pid = ?3, device = ?4, \
                 engine_version = ?5, started_ms = ?6, heartbeat_ms = ?6, ended_ms = NULL, \
                 attempts = attempts + 1, cancel_requested = 0, progress_step = checkpoint_step \
             WHERE id = ({select}) AND status = 'queued' \
             RETURNING id, attempts"
        ))
        .bind(&worker.id)
        .bind(&worker.host)
        .bind(i64::from(worker.pid))
        .bind(&worker.device)
        .bind(&worker.engine_version)
        .bind(now)
        .bind(key)
        .fetch_optional(&mut *tx)
        .await?;
        let Some((run_id, attempt)) = claimed else {
            upsert_worker(&mut tx, worker, None, now).await?;
            tx.commit().await?;
            return Ok(None);
        };
        rewind_to_checkpoint(&mut tx, run_id).await?;
        upsert_worker(&mut tx, worker, Some(run_id), now).await?;
        let run = fetch_run(&mut *tx, run_id)
            .await?
            .ok_or(StoreError::UnknownRun(run_id))?;
        tx.commit().await?;
        info!(run = %run_id, attempt, cell = %run.cell_key, "claimed");
        Ok(Some(Claim {
            lease: Lease {
                run_id,
                attempt,
                worker: worker.id.clone(),
            },
            run,
        }))
    }

    /// Proves the worker is alive and records progress. Fails with [`StoreError::LeaseLost`]
    /// when the run is no longer this attempt's (the worker should stop at once).
    pub async fn heartbeat(
        &self,
        lease: &Lease,
        progress: Option<Progress>,
    ) -> Result<HeartbeatReply> {
        let now = now_ms();
        let mut tx = self.write_tx().await?;
        let cancel: Option<bool> = sqlx::query_scalar(
            "UPDATE runs SET heartbeat_ms = ?3, progress_step = COALESCE(?4, progress_step), \
                 progress_total = COALESCE(?5, progress_total) \
             WHERE id = ?1 AND attempts = ?2 AND status = 'running' \
             RETURNING cancel_requested",
        )
        .bind(lease.run_id)
        .bind(lease.attempt)
        .bind(now)
        .bind(progress.map(|p| p.step))
        .bind(progress.and_then(|p| p.total))
        .fetch_optional(&mut *tx)
        .await?;
        let Some(cancel) = cancel else {
            return Err(lease_lost(&mut tx, lease.run_id).await);
        };
        sqlx::query("UPDATE workers SET seen_ms = ?2, run_id = ?3 WHERE id = ?1")
            .bind(&lease.worker)
            .bind(now)
            .bind(lease.run_id)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(if cancel {
            HeartbeatReply::CancelRequested
        } else {
            HeartbeatReply::Continue
        })
    }

    /// The attempt completed: the run is `finished` (any earlier failure is cleared).
    pub async fn finish(&self, lease: &Lease) -> Result<()> {
        self.end_with(lease, RunStatus::Finished).await
    }

    /// The worker stopped because the run was cancelled: the run is `cancelled`.
    pub async fn acknowledge_cancel(&self, lease: &Lease) -> Result<()> {
        self.end_with(lease, RunStatus::Cancelled).await
    }

    async fn end_with(&self, lease: &Lease, status: RunStatus) -> Result<()> {
        let mut tx = self.write_tx().await?;
        let done = sqlx::query(
            "UPDATE runs SET status = ?3, ended_ms = ?4, heartbeat_ms = ?4, cancel_requested = 0, \
                 failure_class = CASE WHEN ?3 = 'finished' THEN NULL ELSE failure_class END, \
                 failure_message = CASE WHEN ?3 = 'finished' THEN NULL ELSE failure_message END \
             WHERE id = ?1 AND attempts = ?2 AND status = 'running'",
        )
        .bind(lease.run_id)
        .bind(lease.attempt)
        .bind(status.as_str())
        .bind(now_ms())
        .execute(&mut *tx)
        .await?
        .rows_affected();
        if done == 0 {
            return Err(lease_lost(&mut tx, lease.run_id).await);
        }
        release_worker(&mut tx, lease.run_id).await?;
        tx.commit().await?;
        Ok(())
    }

    /// The worker was told to stop by its scheduler (Slurm's warning signal before a time limit
    /// or preemption, `scancel`, `scontrol requeue`) and stopped after a checkpoint: the run goes
    /// back to the queue to resume from it, without spending its retry budget (being stopped is
    /// not a failure). When someone asked to cancel the run meanwhile, it ends `cancelled`
    /// instead. Returns the status the run now has.
    pub async fn release(&self, lease: &Lease) -> Result<RunStatus> {
        let mut tx = self.write_tx().await?;
        let status: Option<String> = sqlx::query_scalar(
            "UPDATE runs SET status = CASE WHEN cancel_requested THEN 'cancelled' ELSE 'queued' END, \
                 retry_base = CASE WHEN cancel_requested THEN retry_base ELSE retry_base + 1 END, \
                 ended_ms = ?3, heartbeat_ms = ?3, cancel_requested = 0 \
             WHERE id = ?1 AND attempts = ?2 AND status = 'running' \
             RETURNING status",
        )
        .bind(lease.run_id)
        .bind(lease.attempt)
        .bind(now_ms())
        .fetch_optional(&mut *tx)
        .await?;
        let Some(status) = status else {
            return Err(lease_lost(&mut tx, lease.run_id).await);
        };
        release_worker(&mut tx, lease.run_id).await?;
        tx.commit().await?;
        status.parse().map_err(|e| {
            StoreError::from(sqlx::Error::ColumnDecode {
                index: "status".into(),
                source: Box::new(e),
            })
        })
    }

    /// The attempt failed with `class`: the run is re-queued while `policy` allows more attempts
    /// for that class, otherwise it ends `failed`.
    #[instrument(level = "debug", skip(self, message), err(level = "debug"))]
    pub async fn fail(
        &self,
        lease: &Lease,
        class: FailureClass,
        message: &str,
        policy: &RetryPolicy,
    ) -> Result<FailOutcome> {
        let mut tx = self.write_tx().await?;
        let outcome = end_attempt(
            &mut tx,
            lease.run_id,
            Some(lease.attempt),
            class,
            message,
            policy,
            RunStatus::Failed,
        )
        .await?;
        let Some(outcome) = outcome else {
            return Err(lease_lost(&mut tx, lease.run_id).await);
        };
        tx.commit().await?;
        Ok(outcome)
    }

    /// For a supervisor that saw a worker die: ends the running attempt of `run` as crashed
    /// (class `killed`), re-queued while `policy` allows. `None` when the run was not running.
    pub async fn crash_run(
        &self,
        run: RunId,
        message: &str,
        policy: &RetryPolicy,
    ) -> Result<Option<FailOutcome>> {
        let mut tx = self.write_tx().await?;
        let outcome = end_attempt(
            &mut tx,
            run,
            None,
            FailureClass::Killed,
            message,
            policy,
            RunStatus::Crashed,
        )
        .await?;
        tx.commit().await?;
        Ok(outcome)
    }

    /// Finds running runs whose last heartbeat is older than `timeout` and ends them as crashed
    /// (class `killed`), re-queueing those `policy` allows; they keep their last checkpoint, so
    /// the next attempt resumes from it.
    #[instrument(level = "debug", skip(self), err(level = "debug"))]
    pub async fn reap_stale(&self, timeout: Duration, policy: &RetryPolicy) -> Result<Vec<Reaped>> {
        let now = now_ms();
        let cutoff = now - i64::try_from(timeout.as_millis()).unwrap_or(i64::MAX);
        let mut tx = self.write_tx().await?;
        let stale: Vec<StaleRow> = sqlx::query_as(
            "SELECT id, heartbeat_ms, worker, host, pid FROM runs \
                 WHERE status = 'running' AND COALESCE(heartbeat_ms, started_ms, 0) < ?1 \
                 ORDER BY id",
        )
        .bind(cutoff)
        .fetch_all(&mut *tx)
        .await?;
        let mut reaped = Vec::with_capacity(stale.len());
        for (run_id, heartbeat, worker, host, pid) in stale {
            let message = format!(
                "no heartbeat for {:.0} s from worker {} (host {}, pid {})",
                (now - heartbeat) as f64 / 1000.0,
                worker.as_deref().unwrap_or("?"),
                host.as_deref().unwrap_or("?"),
                pid.map_or_else(|| "?".to_owned(), |p| p.to_string()),
            );
            let outcome = end_attempt(
                &mut tx,
                run_id,
                None,
                FailureClass::Killed,
                &message,
                policy,
                RunStatus::Crashed,
            )
            .await?;
            if let Some(outcome) = outcome {
                warn!(run = %run_id, ?outcome, "{message}");
                reaped.push(Reaped {
                    run_id,
                    worker,
                    host,
                    pid,
                    outcome,
                });
            }
        }
        tx.commit().await?;
        Ok(reaped)
    }

    /// Cancels runs: queued ones at once, running ones at their next heartbeat.
    pub async fn cancel_runs(&self, runs: &[RunId]) -> Result<Vec<CancelOutcome>> {
        let now = now_ms();
        let mut tx = self.write_tx().await?;
        let mut out = Vec::with_capacity(runs.len());
        for &run in runs {
            let status: Option<String> =
                sqlx::query_scalar("SELECT status FROM runs WHERE id = ?1")
                    .bind(run)
                    .fetch_optional(&mut *tx)
                    .await?;
            let Some(status) = status else {
                out.push(CancelOutcome::NotFound);
                continue;
            };
            let status: RunStatus = status.parse().map_err(|e| sqlx::Error::ColumnDecode {
                index: "status".into(),
                source: Box::new(e),
            })?;
            let outcome = match status {
                RunStatus::Queued => {
                    sqlx::query(
                        "UPDATE runs SET status = 'cancelled', ended_ms = ?2 WHERE id = ?1",
                    )
                    .bind(run)
                    .bind(now)
                    .execute(&mut *tx)
                    .await?;
                    CancelOutcome::Cancelled
                }
                RunStatus::Running => {
                    sqlx::query("UPDATE runs SET cancel_requested = 1 WHERE id = ?1")
                        .bind(run)
                        .execute(&mut *tx)
                        .await?;
                    CancelOutcome::Requested
                }
                ended => CancelOutcome::AlreadyEnded(ended),
            };
            out.push(outcome);
        }
        tx.commit().await?;
        Ok(out)
    }

    /// Puts ended runs that did not finish (failed / crashed / cancelled) back in the queue with
    /// a fresh retry budget (attempt numbers keep counting: the next one is the run's next). With `fresh`, finished runs are accepted too, and everything the run
    /// recorded (checkpoint, metrics, manager weights, logs, artifacts, sync cursors) is dropped
    /// so it starts over; otherwise it resumes from its last checkpoint. Returns the ids re-queued.
    pub async fn requeue_runs(&self, runs: &[RunId], fresh: bool) -> Result<Vec<RunId>> {
        let mut tx = self.write_tx().await?;
        let mut requeued = Vec::new();
        for &run in runs {
            let changed: Option<RunId> = sqlx::query_scalar(
                "UPDATE runs SET status = 'queued', retry_base = attempts, cancel_requested = 0, \
                     failure_class = NULL, failure_message = NULL, ended_ms = NULL, \
                     checkpoint_path = CASE WHEN ?2 THEN NULL ELSE checkpoint_path END, \
                     checkpoint_step = CASE WHEN ?2 THEN NULL ELSE checkpoint_step END, \
                     progress_step = CASE WHEN ?2 THEN NULL ELSE progress_step END \
                 WHERE id = ?1 AND (status IN ('failed', 'crashed', 'cancelled') \
                                    OR (?2 AND status = 'finished')) \
                 RETURNING id",
            )
            .bind(run)
            .bind(fresh)
            .fetch_optional(&mut *tx)
            .await?;
            let Some(id) = changed else { continue };
            if fresh {
                for table in [
                    "metric_points",
                    "manager_weights",
                    "log_lines",
                    "artifacts",
                    "sync_cursors",
                ] {
                    sqlx::query(&format!("DELETE FROM {table} WHERE run_id = ?1"))
                        .bind(id)
                        .execute(&mut *tx)
                        .await?;
                }
                recompute_summaries(&mut tx, id, None).await?;
            }
            requeued.push(id);
        }
        tx.commit().await?;
        Ok(requeued)
    }
}
