//! Queries of `workers` (compiled once per backend).

use std::time::Duration;

use crate::error::Result;
use crate::now_ms;
use crate::rows::WorkerRow;
use crate::types::RunId;
use crate::workers::WorkerInfo;

use super::{Backend, Conn};

pub(crate) async fn upsert_worker(
    conn: &mut Conn,
    worker: &WorkerInfo,
    run: Option<RunId>,
    now: i64,
) -> Result<()> {
    sqlx::query(
        "INSERT INTO workers (id, host, pid, device, engine_version, started_ms, seen_ms, run_id) \
         VALUES ($1, $2, $3, $4, $5, $6, $6, $7) \
         ON CONFLICT (id) DO UPDATE SET host = excluded.host, pid = excluded.pid, \
             device = excluded.device, engine_version = excluded.engine_version, \
             seen_ms = excluded.seen_ms, run_id = excluded.run_id",
    )
    .bind(&worker.id)
    .bind(&worker.host)
    .bind(i64::from(worker.pid))
    .bind(&worker.device)
    .bind(&worker.engine_version)
    .bind(now)
    .bind(run)
    .execute(conn)
    .await?;
    Ok(())
}

impl Backend<'_> {
    pub(crate) async fn worker_heartbeat(&self, worker: &WorkerInfo) -> Result<()> {
        sqlx::query(
            "INSERT INTO workers (id, host, pid, device, engine_version, started_ms, seen_ms) \
             VALUES ($1, $2, $3, $4, $5, $6, $6) \
             ON CONFLICT (id) DO UPDATE SET host = excluded.host, pid = excluded.pid, \
                 device = excluded.device, engine_version = excluded.engine_version, \
                 seen_ms = excluded.seen_ms",
        )
        .bind(&worker.id)
        .bind(&worker.host)
        .bind(i64::from(worker.pid))
        .bind(&worker.device)
        .bind(&worker.engine_version)
        .bind(now_ms())
        .execute(self.pool)
        .await?;
        Ok(())
    }

    pub(crate) async fn retire_worker(&self, worker_id: &str) -> Result<()> {
        sqlx::query("DELETE FROM workers WHERE id = $1")
            .bind(worker_id)
            .execute(self.pool)
            .await?;
        Ok(())
    }

    pub(crate) async fn workers(&self, live_within: Option<Duration>) -> Result<Vec<WorkerRow>> {
        let cutoff = live_within.map_or(i64::MIN, |d| {
            now_ms() - i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
        });
        Ok(sqlx::query_as::<_, WorkerRow>(
            "SELECT id, host, pid, device, engine_version, started_ms, seen_ms, run_id \
             FROM workers WHERE seen_ms >= $1 ORDER BY seen_ms DESC, id",
        )
        .bind(cutoff)
        .fetch_all(self.pool)
        .await?)
    }
}
