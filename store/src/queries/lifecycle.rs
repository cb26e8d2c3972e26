//! Queries of `lifecycle` (compiled once per backend).

use std::time::Duration;

use tracing::{info, instrument, warn};

use crate::error::{Result, StoreError};
use crate::lifecycle::{
    CancelOutcome, Claim, FailOutcome, HeartbeatReply, Lease, Progress, Reaped, StaleRow,
};
use crate::now_ms;
use crate::types::{ExperimentId, FailureClass, RetryPolicy, RunId, RunStatus};
use crate::workers::WorkerInfo;

use super::metrics::recompute_summaries;
use super::runs::fetch_run;
use super::workers::upsert_worker;
use super::{Backend, Conn, Db, FOR_CLAIM, FOR_UPDATE};

/// The runnable queued run with the lowest id: queued, and its dependency (if any) finished.
const NEXT_RUNNABLE: &str = "SELECT r.id FROM runs r LEFT JOIN runs d ON d.id = r.depends_on \
    WHERE r.status = 'queued' AND (r.depends_on IS NULL OR d.status = 'finished') \
      AND ($7 IS NULL OR r.experiment_id = $7) \
    ORDER BY r.id LIMIT 1";

/// Run $7 itself, when it is runnable (what [`Store::claim_run`] claims).
const THE_RUN_IF_RUNNABLE: &str =
    "SELECT r.id FROM runs r LEFT JOIN runs d ON d.id = r.depends_on \
    WHERE r.status = 'queued' AND (r.depends_on IS NULL OR d.status = 'finished') AND r.id = $7";

async fn lease_lost(conn: &mut Conn, run: RunId) -> StoreError {
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
    conn: &mut Conn,
    run: RunId,
    attempt: Option<i64>,
    class: FailureClass,
    message: &str,
    policy: &RetryPolicy,
    final_status: RunStatus,
) -> Result<Option<FailOutcome>> {
    let row: Option<(i64, i64, bool)> = sqlx::query_as(&format!(
        "SELECT attempts, retry_base, cancel_requested FROM runs \
         WHERE id = $1 AND status = 'running' AND ($2 IS NULL OR attempts = $2){FOR_UPDATE}"
    ))
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
        "UPDATE runs SET status = $2, failure_class = $3, failure_message = $4, ended_ms = $5, \
             cancel_requested = FALSE \
         WHERE id = $1",
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

async fn release_worker(conn: &mut Conn, run: RunId) -> Result<()> {
    sqlx::query("UPDATE workers SET run_id = NULL WHERE run_id = $1")
        .bind(run)
        .execute(conn)
        .await?;
    Ok(())
}

/// Drops what an interrupted attempt wrote after the checkpoint the next attempt resumes from
/// (everything when there is no checkpoint), so the series describe one consistent training.
async fn rewind_to_checkpoint(conn: &mut Conn, run: RunId) -> Result<()> {
    let checkpoint: Option<i64> =
        sqlx::query_scalar("SELECT checkpoint_step FROM runs WHERE id = $1")
            .bind(run)
            .fetch_one(&mut *conn)
            .await?;
    let deleted =
        sqlx::query("DELETE FROM metric_points WHERE run_id = $1 AND ($2 IS NULL OR step > $2)")
            .bind(run)
            .bind(checkpoint)
            .execute(&mut *conn)
            .await?
            .rows_affected();
    sqlx::query("DELETE FROM manager_weights WHERE run_id = $1 AND ($2 IS NULL OR step > $2)")
        .bind(run)
        .bind(checkpoint)
        .execute(&mut *conn)
        .await?;
    if deleted > 0 {
        recompute_summaries(conn, run, None).await?;
    }
    Ok(())
}

impl Backend<'_> {
    #[instrument(level = "debug", skip_all, fields(worker = %worker.id), err(level = "debug"))]
    pub(crate) async fn claim(
        &self,
        worker: &WorkerInfo,
        experiment: Option<ExperimentId>,
    ) -> Result<Option<Claim>> {
        self.claim_where(worker, NEXT_RUNNABLE, experiment.map(|e| e.0))
            .await
    }

    #[instrument(level = "debug", skip_all, fields(worker = %worker.id, run = %run), err(level = "debug"))]
    pub(crate) async fn claim_run(&self, worker: &WorkerInfo, run: RunId) -> Result<Option<Claim>> {
        self.claim_where(worker, THE_RUN_IF_RUNNABLE, Some(run.0))
            .await
    }

    /// Claims the run that `select` (a query binding `$7` to `key`) picks.
    async fn claim_where(
        &self,
        worker: &WorkerInfo,
        select: &str,
        key: Option<i64>,
    ) -> Result<Option<Claim>> {
        let now = now_ms();
        let mut tx = self.write_tx().await?;
        let claimed: Option<(RunId, i64)> = sqlx::query_as::<Db, (RunId, i64)>(&format!(
            "UPDATE runs SET status = 'running', worker = $1, host = $2, pid = $3, device = $4, \
                 engine_version = $5, started_ms = $6, heartbeat_ms = $6, ended_ms = NULL, \
                 attempts = attempts + 1, cancel_requested = FALSE, progress_step = checkpoint_step \
             WHERE id = ({select}{FOR_CLAIM}) AND status = 'queued' \
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

    pub(crate) async fn heartbeat(
        &self,
        lease: &Lease,
        progress: Option<Progress>,
    ) -> Result<HeartbeatReply> {
        let now = now_ms();
        let mut tx = self.write_tx().await?;
        let cancel: Option<bool> = sqlx::query_scalar(
            "UPDATE runs SET heartbeat_ms = $3, progress_step = COALESCE($4, progress_step), \
                 progress_total = COALESCE($5, progress_total) \
             WHERE id = $1 AND attempts = $2 AND status = 'running' \
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
        sqlx::query("UPDATE workers SET seen_ms = $2, run_id = $3 WHERE id = $1")
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

    pub(crate) async fn finish(&self, lease: &Lease) -> Result<()> {
        self.end_with(lease, RunStatus::Finished).await
    }

    pub(crate) async fn acknowledge_cancel(&self, lease: &Lease) -> Result<()> {
        self.end_with(lease, RunStatus::Cancelled).await
    }

    async fn end_with(&self, lease: &Lease, status: RunStatus) -> Result<()> {
        let mut tx = self.write_tx().await?;
        let done = sqlx::query(
            "UPDATE runs SET status = $3, ended_ms = $4, heartbeat_ms = $4, cancel_requested = FALSE, \
                 failure_class = CASE WHEN $3 = 'finished' THEN NULL ELSE failure_class END, \
                 failure_message = CASE WHEN $3 = 'finished' THEN NULL ELSE failure_message END \
             WHERE id = $1 AND attempts = $2 AND status = 'running'",
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

    pub(crate) async fn release(&self, lease: &Lease) -> Result<RunStatus> {
        let mut tx = self.write_tx().await?;
        let status: Option<String> = sqlx::query_scalar(
            "UPDATE runs SET status = CASE WHEN cancel_requested THEN 'cancelled' ELSE 'queued' END, \
                 retry_base = CASE WHEN cancel_requested THEN retry_base ELSE retry_base + 1 END, \
                 ended_ms = $3, heartbeat_ms = $3, cancel_requested = FALSE \
             WHERE id = $1 AND attempts = $2 AND status = 'running' \
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

    #[instrument(level = "debug", skip(self, message), err(level = "debug"))]
    pub(crate) async fn fail(
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

    pub(crate) async fn crash_run(
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

    #[instrument(level = "debug", skip(self), err(level = "debug"))]
    pub(crate) async fn reap_stale(
        &self,
        timeout: Duration,
        policy: &RetryPolicy,
    ) -> Result<Vec<Reaped>> {
        let now = now_ms();
        let cutoff = now - i64::try_from(timeout.as_millis()).unwrap_or(i64::MAX);
        let mut tx = self.write_tx().await?;
        let stale: Vec<StaleRow> = sqlx::query_as(
            "SELECT id, heartbeat_ms, worker, host, pid FROM runs \
                 WHERE status = 'running' AND COALESCE(heartbeat_ms, started_ms, 0) < $1 \
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

    pub(crate) async fn cancel_runs(&self, runs: &[RunId]) -> Result<Vec<CancelOutcome>> {
        let now = now_ms();
        let mut tx = self.write_tx().await?;
        let mut out = Vec::with_capacity(runs.len());
        for &run in runs {
            let status: Option<String> = sqlx::query_scalar(&format!(
                "SELECT status FROM runs WHERE id = $1{FOR_UPDATE}"
            ))
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
                        "UPDATE runs SET status = 'cancelled', ended_ms = $2 WHERE id = $1",
                    )
                    .bind(run)
                    .bind(now)
                    .execute(&mut *tx)
                    .await?;
                    CancelOutcome::Cancelled
                }
                RunStatus::Running => {
                    sqlx::query("UPDATE runs SET cancel_requested = TRUE WHERE id = $1")
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

    pub(crate) async fn requeue_runs(&self, runs: &[RunId], fresh: bool) -> Result<Vec<RunId>> {
        let mut tx = self.write_tx().await?;
        let mut requeued = Vec::new();
        for &run in runs {
            let changed: Option<RunId> = sqlx::query_scalar(
                "UPDATE runs SET status = 'queued', retry_base = attempts, cancel_requested = FALSE, \
                     failure_class = NULL, failure_message = NULL, ended_ms = NULL, \
                     checkpoint_path = CASE WHEN $2 THEN NULL ELSE checkpoint_path END, \
                     checkpoint_step = CASE WHEN $2 THEN NULL ELSE checkpoint_step END, \
                     progress_step = CASE WHEN $2 THEN NULL ELSE progress_step END \
                 WHERE id = $1 AND (status IN ('failed', 'crashed', 'cancelled') \
                                    OR ($2 AND status = 'finished')) \
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
                    sqlx::query(&format!("DELETE FROM {table} WHERE run_id = $1"))
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
