//! The SQLite backend: opening a store file (connection options, recognising foreign, corrupt,
//! newer and network-mounted files, migrating), and the statements only SQLite's dialect has.

use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::time::Duration;

use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};
use sqlx::Connection as _;
use sqlx::SqlitePool;
use tracing::{debug, instrument};

use crate::error::{Result, StoreError};
use crate::fs::FsProbe;
use crate::rows::MetricPoint;
use crate::types::RunId;
use crate::{Dialect, Pool, Store, StoreOptions, APPLICATION_ID, MIGRATOR};

pub(crate) type Db = sqlx::Sqlite;
pub(crate) type Conn = sqlx::SqliteConnection;
pub(crate) type DbRow = sqlx::sqlite::SqliteRow;
pub(crate) const DIALECT: Dialect = Dialect::Sqlite;

// The same files as the other backend's `queries`, on purpose: each query is written once and
// compiled per backend.
#[allow(clippy::duplicate_mod)]
#[path = "queries/mod.rs"]
pub(crate) mod queries;

/// The queries on one SQLite pool.
#[derive(Clone, Copy)]
pub(crate) struct Backend<'a> {
    pub(crate) pool: &'a SqlitePool,
}

impl Backend<'_> {
    /// Starts a write transaction that takes the write lock at once, so it never has to upgrade
    /// a read snapshot (which SQLite refuses with SQLITE_BUSY instead of waiting).
    pub(crate) async fn write_tx(&self) -> Result<sqlx::Transaction<'static, Db>> {
        Ok(self.pool.begin_with("BEGIN IMMEDIATE").await?)
    }
}

/// Multi-row insert with anonymous `?` parameters: SQLite looks a named parameter (`?NNN`) up by
/// a linear scan, which made binding a large statement quadratic.
fn insert_points_sql(rows: usize) -> String {
    let mut sql = String::with_capacity(90 + rows * 17);
    sql.push_str("INSERT OR IGNORE INTO metric_points (run_id, key, step, value, wall_ms) VALUES ");
    for i in 0..rows {
        sql.push_str(if i == 0 {
            "(?, ?, ?, ?, ?)"
        } else {
            ", (?, ?, ?, ?, ?)"
        });
    }
    sql
}

/// Inserts points of one key (a chunk of at most `queries::metrics::INSERT_CHUNK`), skipping
/// those already stored; returns how many were new. (Multi-row statements are cached as
/// prepared statements per connection.)
pub(crate) async fn insert_points(
    conn: &mut Conn,
    run: RunId,
    key: &str,
    points: &[&MetricPoint],
) -> Result<u64> {
    let sql = insert_points_sql(points.len());
    let mut query = sqlx::query(&sql);
    for p in points {
        query = query
            .bind(run)
            .bind(key)
            .bind(p.step)
            .bind(p.value)
            .bind(p.wall_ms);
    }
    Ok(query.execute(conn).await?.rows_affected())
}

/// Inserts points known to be new (see the PostgreSQL backend's `COPY`): SQLite's prepared
/// multi-row inserts are already its fastest path.
pub(crate) async fn append_points(
    conn: &mut Conn,
    run: RunId,
    keys: &[(&str, &[&MetricPoint])],
) -> Result<u64> {
    let mut inserted = 0;
    for (key, points) in keys {
        for chunk in points.chunks(crate::metrics::INSERT_CHUNK) {
            inserted += insert_points(conn, run, key, chunk).await?;
        }
    }
    Ok(inserted)
}

/// SQLite result codes that mean "this file is damaged or not a database at all".
const SQLITE_CORRUPT: &str = "11";
const SQLITE_NOTADB: &str = "26";

const ROW_CHANNEL: usize = 4096;

fn classify(path: &Path, source: sqlx::Error) -> StoreError {
    let corrupt = source
        .as_database_error()
        .and_then(|e| e.code())
        .is_some_and(|code| code == SQLITE_CORRUPT || code == SQLITE_NOTADB);
    let path = path.to_path_buf();
    if corrupt {
        StoreError::Corrupt { path, source }
    } else {
        StoreError::Open { path, source }
    }
}

#[instrument(level = "debug", skip(options, probe), err(level = "debug"))]
pub(crate) async fn open_file(
    path: &Path,
    options: StoreOptions,
    probe: &dyn FsProbe,
) -> Result<Store> {
    if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
        std::fs::create_dir_all(parent).map_err(|source| StoreError::CreateDir {
            path: parent.to_path_buf(),
            source,
        })?;
    }
    crate::fs::refuse_network_fs(path, probe)?;
    let connect = SqliteConnectOptions::new()
        .filename(path)
        .create_if_missing(true)
        .journal_mode(SqliteJournalMode::Wal)
        .synchronous(SqliteSynchronous::Normal)
        .busy_timeout(options.busy_timeout)
        .foreign_keys(true)
        .optimize_on_close(true, None)
        // Rows cross from SQLite's thread in a bounded channel; the default (50) makes a large
        // read hand over between threads every 50 rows.
        .row_buffer_size(ROW_CHANNEL);
    let pool = SqlitePoolOptions::new()
        .max_connections(options.max_connections.max(1))
        .acquire_timeout(options.busy_timeout.max(Duration::from_secs(5)))
        .before_acquire(|conn, _| {
            Box::pin(async move {
                // On a full disk SQLite rolls a failed COMMIT back by itself, so the ROLLBACK
                // sqlx sends after it fails too and the connection stays "in a transaction":
                // every later write on it failed with "begin_with at non-zero transaction
                // depth". Such a connection is closed and a fresh one handed out. (The ping
                // lets a queued rollback finish first.)
                conn.ping().await?;
                Ok(!conn.is_in_transaction())
            })
        })
        .connect_with(connect)
        .await
        .map_err(|e| classify(path, e))?;
    prepare_schema(&pool, path).await?;
    let store = Store {
        pool: Pool::Sqlite(pool),
        path: path.to_path_buf(),
    };
    debug!(path = %path.display(), "store open");
    Ok(store)
}

pub(crate) async fn open_memory() -> Result<Store> {
    let path = PathBuf::from(":memory:");
    let connect = SqliteConnectOptions::from_str("sqlite::memory:")
        .map_err(|e| classify(&path, e))?
        .foreign_keys(true)
        .row_buffer_size(ROW_CHANNEL);
    // Every connection to ":memory:" is a separate database, so the pool keeps exactly one alive.
    let pool = SqlitePoolOptions::new()
        .max_connections(1)
        .min_connections(1)
        .idle_timeout(None)
        .max_lifetime(None)
        .connect_with(connect)
        .await
        .map_err(|e| classify(&path, e))?;
    prepare_schema(&pool, &path).await?;
    Ok(Store {
        pool: Pool::Sqlite(pool),
        path,
    })
}

/// Checks what the file is and migrates it, all under one write lock so that several processes
/// opening a fresh file at once do not race to create the tables.
async fn prepare_schema(pool: &SqlitePool, path: &Path) -> Result<()> {
    let err = |e| classify(path, e);
    let mut tx = pool.begin_with("BEGIN IMMEDIATE").await.map_err(err)?;

    let application_id: i64 = sqlx::query_scalar("PRAGMA application_id")
        .fetch_one(&mut *tx)
        .await
        .map_err(err)?;
    let tables: Vec<String> = sqlx::query_scalar(
        "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%' \
         ORDER BY name",
    )
    .fetch_all(&mut *tx)
    .await
    .map_err(err)?;

    let fresh = application_id == 0 && tables.is_empty();
    if !fresh && application_id != APPLICATION_ID {
        return Err(StoreError::NotAStore {
            path: path.to_path_buf(),
            application_id,
            tables: if tables.is_empty() {
                "none".to_owned()
            } else {
                tables.join(", ")
            },
        });
    }

    if tables.iter().any(|t| t == "_sqlx_migrations") {
        let found: Option<i64> = sqlx::query_scalar("SELECT MAX(version) FROM _sqlx_migrations")
            .fetch_one(&mut *tx)
            .await
            .map_err(err)?;
        let supported = latest_version();
        if let Some(found) = found.filter(|&v| v > supported) {
            return Err(StoreError::NewerSchema {
                path: path.to_path_buf(),
                found,
                supported,
            });
        }
    }

    MIGRATOR
        .run_direct(&mut *tx)
        .await
        .map_err(|source| StoreError::Migrate {
            path: path.to_path_buf(),
            source,
        })?;
    tx.commit().await.map_err(err)?;
    Ok(())
}

/// The newest migration this build knows.
pub(crate) fn latest_version() -> i64 {
    MIGRATOR.iter().map(|m| m.version).max().unwrap_or(0)
}
