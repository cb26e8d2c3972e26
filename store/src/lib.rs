//! The SQLite store: experiments, runs, metrics, manager weights, artifacts and logs.
//!
//! One [`Store`] owns a [`SqlitePool`] on one file in WAL mode, so several processes (worker
//! processes writing, the TUI and exporters reading) can use the same file at once: readers never
//! block writers, and every write transaction starts with `BEGIN IMMEDIATE` so writers queue on
//! the busy timeout instead of failing. The schema lives in `migrations/` (append-only) and is
//! applied by [`Store::open`].
//!
//! Times are unix milliseconds (`*_ms` fields). Queries are runtime-checked (no `DATABASE_URL`).

mod artifacts;
mod error;
mod experiments;
mod lifecycle;
mod list_json;
mod logs;
mod manager;
mod metrics;
mod open;
mod rows;
mod runs;
mod slurm;
mod sync_cursors;
mod types;
mod workers;

use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use sqlx::SqlitePool;

/// The run vocabulary, from the domain crate (the store keeps it as text).
pub use ::experiments::run::{ManagerWeight, Modality};
pub use artifacts::NewArtifact;
pub use error::{Result, StoreError};
pub use lifecycle::{CancelOutcome, Claim, FailOutcome, HeartbeatReply, Lease, Progress, Reaped};
pub use logs::NewLogLine;
pub use metrics::{HistoryRow, SeriesOptions};
pub use rows::{
    Artifact, Axes, ExperimentRow, LogLine, ManagerWeightRow, MetricPoint, MetricSummary, Param,
    QueueState, RunDetail, RunRow, RunWithSummaries, SeriesPoint, WorkerRow,
};
pub use runs::{AxisFilter, CreatedRun, NewRun, RunFilter};
pub use slurm::SlurmJob;
pub use types::{
    ArtifactKind, ExperimentId, FailureClass, Goal, RetryPolicy, RunId, RunStatus, UnknownValue,
};
pub use workers::WorkerInfo;

/// The schema migrations, embedded at build time.
pub static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations");

/// `PRAGMA application_id` of a TowerLab store ("TLAB").
pub const APPLICATION_ID: i64 = 0x544C_4142;

/// How a store file is opened.
#[derive(Debug, Clone)]
pub struct StoreOptions {
    /// How long a statement waits for another process's write lock before failing.
    pub busy_timeout: Duration,
    /// Connections in the pool (SQLite serialises writers anyway; more helps concurrent readers).
    pub max_connections: u32,
}

impl Default for StoreOptions {
    fn default() -> Self {
        StoreOptions {
            busy_timeout: Duration::from_secs(30),
            max_connections: 4,
        }
    }
}

/// Handle on a TowerLab store. Cheap to clone (the pool is shared).
#[derive(Debug, Clone)]
pub struct Store {
    pool: SqlitePool,
    path: PathBuf,
}

impl Store {
    /// Opens (creating if needed) the store at `path` with default options: creates the parent
    /// directory, switches to WAL, and applies pending migrations.
    ///
    /// Fails with a clear error naming the file when it is not a SQLite database or is corrupt
    /// ([`StoreError::Corrupt`]), is a database of another program ([`StoreError::NotAStore`]),
    /// or was written by a newer TowerLab ([`StoreError::NewerSchema`]).
    pub async fn open(path: impl AsRef<Path>) -> Result<Store> {
        Store::open_with(path, &StoreOptions::default()).await
    }

    pub async fn open_with(path: impl AsRef<Path>, options: &StoreOptions) -> Result<Store> {
        open::open_file(path.as_ref(), options.clone()).await
    }

    /// A private in-memory store (one connection), for tests.
    pub async fn open_in_memory() -> Result<Store> {
        open::open_memory().await
    }

    /// The file this store lives in (`:memory:` for an in-memory store).
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The underlying pool, for callers that need a query the API does not offer.
    pub fn pool(&self) -> &SqlitePool {
        &self.pool
    }

    /// Closes the pool, waiting for connections to be returned (checkpoints the WAL).
    pub async fn close(&self) {
        self.pool.close().await;
    }

    /// The newest migration version applied to this store.
    pub async fn schema_version(&self) -> Result<i64> {
        let v: Option<i64> =
            sqlx::query_scalar("SELECT MAX(version) FROM _sqlx_migrations WHERE success")
                .fetch_one(&self.pool)
                .await?;
        Ok(v.unwrap_or(0))
    }

    /// Starts a write transaction that takes the write lock at once, so it never has to upgrade
    /// a read snapshot (which SQLite refuses with SQLITE_BUSY instead of waiting).
    pub(crate) async fn write_tx(&self) -> Result<sqlx::Transaction<'static, sqlx::Sqlite>> {
        Ok(self.pool.begin_with("BEGIN IMMEDIATE").await?)
    }
}

/// Now, as unix milliseconds.
pub fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn assert_send<T: Send>(_: &T) {}

    /// The runner and the TUI spawn store calls on tokio tasks: every future must be `Send`.
    #[tokio::test]
    async fn store_futures_are_send() {
        let store = Store::open_in_memory().await.unwrap();
        let worker = WorkerInfo::this_process("cpu", "test");
        let lease = Lease {
            run_id: RunId(1),
            attempt: 1,
            worker: worker.id.clone(),
        };
        assert_send(&Store::open("unused.db"));
        assert_send(&store.claim(&worker, None));
        assert_send(&store.heartbeat(&lease, None));
        assert_send(&store.fail(&lease, FailureClass::Oom, "m", &RetryPolicy::default()));
        assert_send(&store.reap_stale(Duration::from_secs(1), &RetryPolicy::default()));
        assert_send(&store.ingest_metrics(RunId(1), &[]));
        assert_send(&store.list_runs_with_summaries(&RunFilter::default()));
        assert_send(&store.create_runs(ExperimentId(1), &[]));
        assert_send(&store.requeue_runs(&[], false));
        assert!(worker.id.ends_with(&format!(":{}", std::process::id())));
    }
}
