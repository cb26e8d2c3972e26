//! The PostgreSQL backend: opening a store on a server (recognising a dead server, a foreign or
//! newer database, migrating under the migrator's advisory lock), and the statements only
//! PostgreSQL's dialect has.

use std::time::Duration;

use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::{Connection as _, PgPool};
use tracing::debug;

use crate::error::{Result, StoreError};
use crate::rows::MetricPoint;
use crate::types::RunId;
use crate::{redact_url, Dialect, Pool, Store, StoreOptions, PG_MIGRATOR};

pub(crate) type Db = sqlx::Postgres;
pub(crate) type Conn = sqlx::PgConnection;
pub(crate) type DbRow = sqlx::postgres::PgRow;
pub(crate) const DIALECT: Dialect = Dialect::Postgres;

// The same files as the other backend's `queries`, on purpose: each query is written once and
// compiled per backend.
#[allow(clippy::duplicate_mod)]
#[path = "queries/mod.rs"]
pub(crate) mod queries;

/// The queries on one PostgreSQL pool.
#[derive(Clone, Copy)]
pub(crate) struct Backend<'a> {
    pub(crate) pool: &'a PgPool,
}

impl Backend<'_> {
    /// A write transaction (READ COMMITTED; the statements that must not race lock their rows).
    pub(crate) async fn write_tx(&self) -> Result<sqlx::Transaction<'static, Db>> {
        Ok(self.pool.begin().await?)
    }
}

/// Inserts points of one key, skipping those already stored; returns how many were new. The
/// points go as three arrays in one statement (`UNNEST`), whatever their number: a multi-row
/// VALUES list costs PostgreSQL a parse and plan per shape and five parameters per row.
pub(crate) async fn insert_points(
    conn: &mut Conn,
    run: RunId,
    key: &str,
    points: &[&MetricPoint],
) -> Result<u64> {
    let steps: Vec<i64> = points.iter().map(|p| p.step).collect();
    let values: Vec<Option<f64>> = points
        .iter()
        .map(|p| Some(p.value).filter(|v| !v.is_nan()))
        .collect();
    let walls: Vec<i64> = points.iter().map(|p| p.wall_ms).collect();
    Ok(sqlx::query(
        "INSERT INTO metric_points (run_id, key, step, value, wall_ms) \
         SELECT $1, $2, s, v, w FROM UNNEST($3::BIGINT[], $4::DOUBLE PRECISION[], $5::BIGINT[]) \
             AS t (s, v, w) \
         ON CONFLICT DO NOTHING",
    )
    .bind(run)
    .bind(key)
    .bind(steps)
    .bind(values)
    .bind(walls)
    .execute(conn)
    .await?
    .rows_affected())
}

/// Inserts points that are known to be new (each key's steps rise and follow every stored step
/// of it: the caller checked, holding the run's lock) with one binary `COPY` for all keys:
/// about three times the rate of `INSERT ... ON CONFLICT`, which pays a speculative insertion
/// per row. Returns how many were inserted.
pub(crate) async fn append_points(
    conn: &mut Conn,
    run: RunId,
    keys: &[(&str, &[&MetricPoint])],
) -> Result<u64> {
    let rows: usize = keys.iter().map(|(_, points)| points.len()).sum();
    let mut data = Vec::with_capacity(21 + rows * 70);
    // The binary format's header: signature, flags, header-extension length.
    data.extend_from_slice(b"PGCOPY\n\xff\r\n\0");
    data.extend_from_slice(&0i32.to_be_bytes());
    data.extend_from_slice(&0i32.to_be_bytes());
    for (key, points) in keys {
        for p in *points {
            // Per row: the field count, then each field's length (-1 for NULL) and bytes.
            data.extend_from_slice(&5i16.to_be_bytes());
            data.extend_from_slice(&8i32.to_be_bytes());
            data.extend_from_slice(&run.0.to_be_bytes());
            data.extend_from_slice(&(key.len() as i32).to_be_bytes());
            data.extend_from_slice(key.as_bytes());
            data.extend_from_slice(&8i32.to_be_bytes());
            data.extend_from_slice(&p.step.to_be_bytes());
            if p.value.is_nan() {
                data.extend_from_slice(&(-1i32).to_be_bytes());
            } else {
                data.extend_from_slice(&8i32.to_be_bytes());
                data.extend_from_slice(&p.value.to_be_bytes());
            }
            data.extend_from_slice(&8i32.to_be_bytes());
            data.extend_from_slice(&p.wall_ms.to_be_bytes());
        }
    }
    data.extend_from_slice(&(-1i16).to_be_bytes());
    let mut copy = conn
        .copy_in_raw(
            "COPY metric_points (run_id, key, step, value, wall_ms) FROM STDIN (FORMAT binary)",
        )
        .await?;
    copy.send(data).await?;
    Ok(copy.finish().await?)
}

/// Opens the store at `url`, creating its tables in an empty database.
pub(crate) async fn open(url: &str, options: &StoreOptions) -> Result<Store> {
    let shown = redact_url(url);
    let connect_err = |source| StoreError::Connect {
        url: shown.clone(),
        source,
    };
    let connect: PgConnectOptions = url.parse().map_err(connect_err)?;
    // One connection first: a pool retries a refused connection until its acquire timeout,
    // which made a dead server or a wrong port wait 30 s for its message.
    sqlx::PgConnection::connect_with(&connect)
        .await
        .map_err(connect_err)?
        .close()
        .await
        .map_err(connect_err)?;
    let pool = PgPoolOptions::new()
        .max_connections(options.max_connections.max(1))
        .acquire_timeout(options.busy_timeout.max(Duration::from_secs(5)))
        .connect_with(connect)
        .await
        .map_err(connect_err)?;
    prepare_schema(&pool, &shown).await?;
    debug!(url = %shown, "store open");
    Ok(Store {
        pool: Pool::Postgres(pool),
        path: url.into(),
    })
}

async fn prepare_schema(pool: &PgPool, url: &str) -> Result<()> {
    let tables: Vec<String> = sqlx::query_scalar(
        "SELECT table_name::TEXT FROM information_schema.tables \
         WHERE table_schema = current_schema() ORDER BY table_name",
    )
    .fetch_all(pool)
    .await
    .map_err(|source| StoreError::Connect {
        url: url.to_owned(),
        source,
    })?;
    let ours = tables.iter().any(|t| t == "_sqlx_migrations") && tables.iter().any(|t| t == "runs");
    if !tables.is_empty() && !ours {
        return Err(StoreError::NotAPgStore {
            url: url.to_owned(),
            tables: tables.join(", "),
        });
    }
    if ours {
        let found: Option<i64> = sqlx::query_scalar("SELECT MAX(version) FROM _sqlx_migrations")
            .fetch_one(pool)
            .await?;
        let supported = latest_version();
        if let Some(found) = found.filter(|&v| v > supported) {
            return Err(StoreError::NewerPgSchema {
                url: url.to_owned(),
                found,
                supported,
            });
        }
    }
    // The migrator holds an advisory lock, so several workers opening a fresh database at once
    // do not race to create the tables.
    PG_MIGRATOR
        .run(pool)
        .await
        .map_err(|source| StoreError::MigratePg {
            url: url.to_owned(),
            source,
        })
}

/// The newest PostgreSQL migration this build knows.
pub(crate) fn latest_version() -> i64 {
    PG_MIGRATOR.iter().map(|m| m.version).max().unwrap_or(0)
}
