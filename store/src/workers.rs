//! Worker processes: who is alive, on which host and device, holding which run.

use std::time::Duration;

use sqlx::SqliteConnection;

use crate::error::Result;
use crate::rows::WorkerRow;
use crate::types::RunId;
use crate::{now_ms, Store};

/// Who is claiming runs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WorkerInfo {
    /// Unique per worker process, e.g. `host:pid` (see [`WorkerInfo::this_process`]).
    pub id: String,
    pub host: String,
    pub pid: u32,
    /// e.g. `cuda:0` or `cpu`.
    pub device: String,
    pub engine_version: String,
}

impl WorkerInfo {
    /// This process, identified as `host:pid`.
    pub fn this_process(device: impl Into<String>, engine_version: impl Into<String>) -> Self {
        let host = hostname();
        let pid = std::process::id();
        WorkerInfo {
            id: format!("{host}:{pid}"),
            host,
            pid,
            device: device.into(),
            engine_version: engine_version.into(),
        }
    }
}

/// The host name, from the kernel (Linux) or the usual environment variables.
fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .map(|s| s.trim().to_owned())
        .filter(|s| !s.is_empty())
        .or_else(|| std::env::var("HOSTNAME").ok())
        .or_else(|| std::env::var("COMPUTERNAME").ok())
        .unwrap_or_else(|| "localhost".to_owned())
}

pub(crate) async fn upsert_worker(
    conn: &mut SqliteConnection,
    worker: &WorkerInfo,
    run: Option<RunId>,
    now: i64,
) -> Result<()> {
    sqlx::query(
        "INSERT INTO workers (id, host, pid, device, engine_version, started_ms, seen_ms, run_id) \
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?6, ?7) \
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

impl Store {
    /// Announces (or refreshes) an idle worker; claims and heartbeats refresh it too.
    pub async fn worker_heartbeat(&self, worker: &WorkerInfo) -> Result<()> {
        sqlx::query(
            "INSERT INTO workers (id, host, pid, device, engine_version, started_ms, seen_ms) \
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?6) \
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
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// The worker exits: it is no longer listed.
    pub async fn retire_worker(&self, worker_id: &str) -> Result<()> {
        sqlx::query("DELETE FROM workers WHERE id = ?1")
            .bind(worker_id)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// Workers seen within `live_within` (all known workers with `None`), most recent first.
    pub async fn workers(&self, live_within: Option<Duration>) -> Result<Vec<WorkerRow>> {
        let cutoff = live_within.map_or(i64::MIN, |d| {
            now_ms() - i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
        });
        Ok(sqlx::query_as::<_, WorkerRow>(
            "SELECT id, host, pid, device, engine_version, started_ms, seen_ms, run_id \
             FROM workers WHERE seen_ms >= ?1 ORDER BY seen_ms DESC, id",
        )
        .bind(cutoff)
        .fetch_all(&self.pool)
        .await?)
    }
}
