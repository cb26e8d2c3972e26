//! The store: experiments, runs, metrics, manager weights, artifacts and logs, behind one
//! [`Store`] API on either backend:
//!
//! - **SQLite** (the embedded default): one file in WAL mode, so several processes (worker
//!   processes writing, the TUI and exporters reading) can use it at once: readers never block
//!   writers, and every write transaction starts with `BEGIN IMMEDIATE` so writers queue on the
//!   busy timeout instead of failing. Refused on a network file system (see [`fs`]).
//! - **PostgreSQL** (`postgres://...`): for workers on several hosts; claims lock the claimed
//!   row with `FOR UPDATE SKIP LOCKED`, points are ingested as arrays (`UNNEST`).
//!
//! Every query is written once (`queries/`) and compiled once per backend, with concrete types
//! (no `Any` driver: no per-row conversion); where the dialects differ the backend module
//! (`sqlite.rs`, `postgres.rs`) holds its own version. Each backend has its own append-only
//! migrations (`migrations/`, `migrations/postgres/`), applied by [`Store::open`].
//!
//! Times are unix milliseconds (`*_ms` fields). Queries are runtime-checked (no `DATABASE_URL`).

mod api;
mod artifacts;
mod copy;
mod error;
mod experiments;
pub mod fs;
mod lifecycle;
mod logs;
mod manager;
mod metrics;
mod postgres;
mod rows;
mod runs;
mod slurm;
mod sqlite;
#[cfg(feature = "test-support")]
pub mod testing;
mod types;
mod workers;

use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use sqlx::{PgPool, SqlitePool};

/// The run vocabulary, from the domain crate (the store keeps it as text).
pub use ::experiments::run::{ManagerWeight, Modality};
pub use artifacts::NewArtifact;
pub use copy::CopyReport;
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

/// The SQLite schema migrations, embedded at build time.
pub static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations");

/// The PostgreSQL schema migrations, embedded at build time.
pub static PG_MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/postgres");

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

/// Which database a store lives in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

/// The SQL dialect a query is compiled for (each backend module has its own constant).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Dialect {
    Sqlite,
    Postgres,
}

#[derive(Debug, Clone)]
pub(crate) enum Pool {
    Sqlite(SqlitePool),
    Postgres(PgPool),
}

/// Runs `$call` with `$b` bound to the store's backend (the same code, compiled per backend).
macro_rules! dispatch {
    ($store:expr, $b:ident => $call:expr) => {
        match &$store.pool {
            $crate::Pool::Sqlite(pool) => {
                let $b = $crate::sqlite::Backend { pool };
                $call
            }
            $crate::Pool::Postgres(pool) => {
                let $b = $crate::postgres::Backend { pool };
                $call
            }
        }
    };
}
pub(crate) use dispatch;

/// Whether `db` (a `--db` value) names a PostgreSQL database rather than a SQLite file.
pub fn is_postgres_url(db: &str) -> bool {
    db.starts_with("postgres://") || db.starts_with("postgresql://")
}

/// `url` without its password, for messages and logs.
pub fn redact_url(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_owned();
    };
    let (authority, tail) = match rest.find(['/', '?']) {
        Some(i) => rest.split_at(i),
        None => (rest, ""),
    };
    match authority.rsplit_once('@') {
        Some((user_info, host)) => {
            let user = user_info.split_once(':').map_or(user_info, |(u, _)| u);
            if user_info.contains(':') {
                format!("{scheme}://{user}:***@{host}{tail}")
            } else {
                url.to_owned()
            }
        }
        None => url.to_owned(),
    }
}

/// Handle on a TowerLab store. Cheap to clone (the pool is shared).
#[derive(Debug, Clone)]
pub struct Store {
    pool: Pool,
    /// The file, or the PostgreSQL URL, as given to [`Store::open`].
    path: PathBuf,
}

impl Store {
    /// Opens (creating if needed) the store at `path` with default options, and applies pending
    /// migrations. A `postgres://` or `postgresql://` URL opens a PostgreSQL store; anything
    /// else is a SQLite file (its parent directory is created, and it is switched to WAL).
    ///
    /// Fails with a clear error naming the file when it is not a SQLite database or is corrupt
    /// ([`StoreError::Corrupt`]), is a database of another program ([`StoreError::NotAStore`]),
    /// was written by a newer TowerLab ([`StoreError::NewerSchema`]), lies on a network file
    /// system ([`StoreError::NetworkFileSystem`]), or names a server that cannot be reached
    /// ([`StoreError::Connect`]).
    pub async fn open(path: impl AsRef<Path>) -> Result<Store> {
        Store::open_with(path, &StoreOptions::default()).await
    }

    pub async fn open_with(path: impl AsRef<Path>, options: &StoreOptions) -> Result<Store> {
        let path = path.as_ref();
        match path.to_str().filter(|p| is_postgres_url(p)) {
            Some(url) => postgres::open(url, options).await,
            None => sqlite::open_file(path, options.clone(), &fs::StatfsProbe).await,
        }
    }

    /// A private in-memory store (one connection), for tests.
    pub async fn open_in_memory() -> Result<Store> {
        sqlite::open_memory().await
    }

    /// The file this store lives in (`:memory:` for an in-memory store), or its PostgreSQL URL
    /// as given (what another process passes to [`Store::open`] to open the same store).
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The store for messages: the file, or the URL without its password.
    pub fn describe(&self) -> String {
        match self.backend() {
            Backend::Sqlite => self.path.display().to_string(),
            Backend::Postgres => redact_url(&self.path.to_string_lossy()),
        }
    }

    /// The pool of a SQLite store (`None` on PostgreSQL), for what only SQLite has: its pragmas
    /// (the TUI's change signal is `PRAGMA data_version`), and tests of its file format.
    pub fn sqlite_pool(&self) -> Option<&SqlitePool> {
        match &self.pool {
            Pool::Sqlite(pool) => Some(pool),
            Pool::Postgres(_) => None,
        }
    }

    pub fn backend(&self) -> Backend {
        match self.pool {
            Pool::Sqlite(_) => Backend::Sqlite,
            Pool::Postgres(_) => Backend::Postgres,
        }
    }

    /// Closes the pool, waiting for connections to be returned (checkpoints a SQLite WAL).
    pub async fn close(&self) {
        match &self.pool {
            Pool::Sqlite(pool) => pool.close().await,
            Pool::Postgres(pool) => pool.close().await,
        }
    }

    /// The newest migration version applied to this store.
    pub async fn schema_version(&self) -> Result<i64> {
        dispatch!(self, b => b.schema_version().await)
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
