//! `store copy`, this backend's half: reading every table in one snapshot, or writing them all
//! into an empty store in one transaction (see `crate::copy`).

use sqlx::{QueryBuilder, Row};
use tokio::sync::mpsc;

use crate::copy::{Cell, Chunk, CopyReport, Table, Ty, CHUNK_ROWS, TABLES};
use crate::error::{Result, StoreError};
use crate::Dialect;

use super::{values_list, Backend, Conn, Db, DbRow, DIALECT};

/// Most values bound in one INSERT (SQLite allows 32766, PostgreSQL 65535).
const MAX_BINDS: usize = 10_000;

/// `runs.depends_on`, set after every run is in (a run may depend on a later id).
const DEPENDS_ON: usize = 20;

fn decode(row: &DbRow, table: &Table) -> sqlx::Result<Vec<Cell>> {
    table
        .columns
        .iter()
        .enumerate()
        .map(|(i, (_, ty))| {
            Ok(match ty {
                Ty::Int => Cell::Int(row.try_get(i)?),
                Ty::Real => Cell::Real(row.try_get(i)?),
                Ty::Text => Cell::Text(row.try_get(i)?),
                Ty::Bool => Cell::Bool(row.try_get(i)?),
            })
        })
        .collect()
}

async fn count(conn: &mut Conn, table: &str) -> Result<i64> {
    Ok(sqlx::query_scalar(&format!("SELECT COUNT(*) FROM {table}"))
        .fetch_one(conn)
        .await?)
}

fn column_list(table: &Table) -> String {
    table
        .columns
        .iter()
        .map(|(c, _)| *c)
        .collect::<Vec<_>>()
        .join(", ")
}

impl Backend<'_> {
    /// Streams every table, in [`TABLES`] order, in chunks of primary-key order, from one read
    /// snapshot. Stops early (without error) when the writer has gone.
    pub(crate) async fn read_all_tables(&self, out: &mpsc::Sender<Result<Chunk>>) -> Result<()> {
        let mut tx = self.pool.begin().await?;
        if DIALECT == Dialect::Postgres {
            sqlx::query("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
                .execute(&mut *tx)
                .await?;
        }
        for (index, table) in TABLES.iter().enumerate() {
            let columns = column_list(table);
            let key: Vec<usize> = table
                .order_by
                .split(", ")
                .filter_map(|k| table.columns.iter().position(|(c, _)| *c == k))
                .collect();
            let mut after: Option<Vec<Cell>> = None;
            loop {
                let mut qb =
                    QueryBuilder::<Db>::new(format!("SELECT {columns} FROM {}", table.name));
                // Keyset pagination: each chunk starts after the last key of the one before.
                if let Some(after) = &after {
                    qb.push(format!(" WHERE ({}) > (", table.order_by));
                    let mut list = qb.separated(", ");
                    for cell in after {
                        match cell {
                            Cell::Int(v) => list.push_bind(*v),
                            Cell::Real(v) => list.push_bind(*v),
                            Cell::Text(v) => list.push_bind(v.clone()),
                            Cell::Bool(v) => list.push_bind(*v),
                        };
                    }
                    qb.push(")");
                }
                qb.push(format!(" ORDER BY {} LIMIT {CHUNK_ROWS}", table.order_by));
                let rows = qb.build().fetch_all(&mut *tx).await?;
                let chunk = rows
                    .iter()
                    .map(|r| decode(r, table))
                    .collect::<sqlx::Result<Vec<_>>>()?;
                let Some(last) = chunk.last() else { break };
                after = Some(key.iter().map(|&i| last[i].clone()).collect());
                let full = chunk.len() == CHUNK_ROWS;
                if out.send(Ok((index, chunk))).await.is_err() {
                    return Ok(());
                }
                if !full {
                    break;
                }
            }
        }
        tx.commit().await?;
        Ok(())
    }

    /// Writes the chunks `chunks` brings into this store, which must be empty, in one
    /// transaction; checks every table's count against the rows received before committing.
    pub(crate) async fn write_all_tables(
        &self,
        mut chunks: mpsc::Receiver<Result<Chunk>>,
        to: &str,
    ) -> Result<CopyReport> {
        let mut tx = self.write_tx().await?;
        let mut existing = 0;
        for table in TABLES {
            existing += count(&mut tx, table.name).await?;
        }
        if existing > 0 {
            return Err(StoreError::CopyDestinationNotEmpty {
                to: to.to_owned(),
                runs: count(&mut tx, "runs").await?,
                experiments: count(&mut tx, "experiments").await?,
            });
        }
        let mut received = vec![0i64; TABLES.len()];
        let mut dependencies: Vec<(i64, i64)> = Vec::new();
        while let Some(chunk) = chunks.recv().await {
            let (index, mut rows) = chunk?;
            let table = &TABLES[index];
            if table.name == "runs" {
                for row in &mut rows {
                    let id = match row[0] {
                        Cell::Int(Some(id)) => id,
                        _ => continue,
                    };
                    if let Cell::Int(dep @ Some(_)) = &mut row[DEPENDS_ON] {
                        dependencies.push((id, dep.take().unwrap_or_default()));
                    }
                }
            }
            received[index] += rows.len() as i64;
            let columns = column_list(table);
            let per_statement = (MAX_BINDS / table.columns.len()).max(1);
            for part in rows.chunks(per_statement) {
                let sql = format!(
                    "INSERT INTO {} ({columns}) VALUES {}",
                    table.name,
                    values_list(part.len(), table.columns.len())
                );
                let mut query = sqlx::query(&sql);
                for row in part {
                    for cell in row {
                        query = match cell {
                            Cell::Int(v) => query.bind(*v),
                            Cell::Real(v) => query.bind(*v),
                            Cell::Text(v) => query.bind(v.clone()),
                            Cell::Bool(v) => query.bind(*v),
                        };
                    }
                }
                query.execute(&mut *tx).await?;
            }
        }
        for (id, dep) in dependencies {
            sqlx::query("UPDATE runs SET depends_on = $2 WHERE id = $1")
                .bind(id)
                .bind(dep)
                .execute(&mut *tx)
                .await?;
        }
        let mut tables = Vec::with_capacity(TABLES.len());
        for (table, &expected) in TABLES.iter().zip(&received) {
            let copied = count(&mut tx, table.name).await?;
            if copied != expected {
                return Err(StoreError::CopyMismatch {
                    to: to.to_owned(),
                    table: table.name,
                    copied,
                    expected,
                });
            }
            tables.push((table.name.to_owned(), copied));
        }
        if DIALECT == Dialect::Postgres {
            // Ids were given, so the identities' sequences did not move: the next id must come
            // after the copied ones.
            for table in ["experiments", "runs", "artifacts"] {
                sqlx::query(&format!(
                    "SELECT setval(pg_get_serial_sequence('{table}', 'id'), \
                         COALESCE((SELECT MAX(id) FROM {table}), 0) + 1, false)"
                ))
                .execute(&mut *tx)
                .await?;
            }
        }
        tx.commit().await?;
        Ok(CopyReport { tables })
    }
}
