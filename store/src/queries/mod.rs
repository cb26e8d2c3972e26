//! The store's queries, written once and compiled once per backend: this folder is a module of
//! both `sqlite` and `postgres`, and `Db`, `Conn`, `DbRow` and `DIALECT` are that backend's.
//! Where the dialects differ, a query matches on `DIALECT` (or calls its backend's function).

pub(crate) use super::{append_points, insert_points, Backend, Conn, Db, DbRow, DIALECT};

mod artifacts;
mod copy;
mod experiments;
mod lifecycle;
mod list_json;
mod logs;
mod manager;
pub(crate) mod metrics;
mod rows;
mod runs;
mod slurm;
mod sync_cursors;
mod workers;

impl Backend<'_> {
    pub(crate) async fn schema_version(&self) -> crate::Result<i64> {
        let v: Option<i64> =
            sqlx::query_scalar("SELECT MAX(version) FROM _sqlx_migrations WHERE success")
                .fetch_one(self.pool)
                .await?;
        Ok(v.unwrap_or(0))
    }
}

impl Backend<'_> {
    /// A number that changes whenever anything was committed to the store (by any process).
    pub(crate) async fn change_token(&self) -> crate::Result<i64> {
        let sql = match DIALECT {
            // Per connection: the TUI's store has one.
            crate::Dialect::Sqlite => "PRAGMA data_version",
            // The write-ahead log's position moves with every commit on the server.
            crate::Dialect::Postgres => "SELECT (pg_current_wal_lsn() - '0/0'::PG_LSN)::BIGINT",
        };
        Ok(sqlx::query_scalar(sql).fetch_one(self.pool).await?)
    }
}

/// Appended to a SELECT of rows its transaction goes on to update: PostgreSQL locks them, so a
/// concurrent writer waits (SQLite's write transaction holds the whole file already).
pub(crate) const FOR_UPDATE: &str = match DIALECT {
    crate::Dialect::Sqlite => "",
    crate::Dialect::Postgres => " FOR UPDATE",
};

/// Appended to the SELECT that picks the run to claim: on PostgreSQL, workers on other hosts
/// skip the row another claim has locked instead of waiting for it (and then finding it taken).
pub(crate) const FOR_CLAIM: &str = match DIALECT {
    crate::Dialect::Sqlite => "",
    crate::Dialect::Postgres => " FOR UPDATE OF r SKIP LOCKED",
};

/// `rows` groups of `cols` parameters, `(?, ?), (?, ?)` on SQLite (anonymous parameters: SQLite
/// looks named ones up by a linear scan) and `($1, $2), ($3, $4)` on PostgreSQL.
pub(crate) fn values_list(rows: usize, cols: usize) -> String {
    use std::fmt::Write as _;
    let mut sql = String::with_capacity(rows * cols * 5);
    let mut n = 0;
    for r in 0..rows {
        sql.push_str(if r == 0 { "(" } else { ", (" });
        for c in 0..cols {
            if c > 0 {
                sql.push_str(", ");
            }
            n += 1;
            match DIALECT {
                crate::Dialect::Sqlite => sql.push('?'),
                crate::Dialect::Postgres => {
                    let _ = write!(sql, "${n}");
                }
            }
        }
        sql.push(')');
    }
    sql
}
