//! `store copy`: every table of one store into another, empty one, ids kept, on either backend.
//!
//! The source is read in one snapshot (a read transaction) by a task that streams each table in
//! chunks; the destination writes them in one transaction, checks that every table holds as
//! many rows as were read, moves PostgreSQL's id sequences past the copied ids, and only then
//! commits. Nothing is written when any of that fails.

use serde::Serialize;

/// How a column is carried across backends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Ty {
    Int,
    Real,
    Text,
    Bool,
}

/// One value of a row being copied, typed by its column (a NULL keeps its column's type, which
/// PostgreSQL needs to bind it).
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Cell {
    Int(Option<i64>),
    Real(Option<f64>),
    Text(Option<String>),
    Bool(Option<bool>),
}

pub(crate) struct Table {
    pub(crate) name: &'static str,
    pub(crate) columns: &'static [(&'static str, Ty)],
    /// The primary key, so chunks come in a stable order.
    pub(crate) order_by: &'static str,
}

use Ty::{Bool, Int, Real, Text};

/// Every table of the store, parents before children.
pub(crate) const TABLES: &[Table] = &[
    Table {
        name: "experiments",
        columns: &[
            ("id", Int),
            ("name", Text),
            ("path", Text),
            ("content_hash", Text),
            ("created_ms", Int),
            ("updated_ms", Int),
        ],
        order_by: "id",
    },
    Table {
        name: "runs",
        columns: &[
            ("id", Int),
            ("experiment_id", Int),
            ("hash", Text),
            ("cell_key", Text),
            ("axes", Text),
            ("task", Text),
            ("status", Text),
            ("failure_class", Text),
            ("failure_message", Text),
            ("worker", Text),
            ("host", Text),
            ("pid", Int),
            ("device", Text),
            ("engine_version", Text),
            ("created_ms", Int),
            ("started_ms", Int),
            ("ended_ms", Int),
            ("heartbeat_ms", Int),
            ("attempts", Int),
            ("cancel_requested", Bool),
            ("depends_on", Int),
            ("checkpoint_path", Text),
            ("checkpoint_step", Int),
            ("progress_step", Int),
            ("progress_total", Int),
            ("retry_base", Int),
        ],
        order_by: "id",
    },
    Table {
        name: "params",
        columns: &[("run_id", Int), ("key", Text), ("value", Text)],
        order_by: "run_id, key",
    },
    Table {
        name: "workers",
        columns: &[
            ("id", Text),
            ("host", Text),
            ("pid", Int),
            ("device", Text),
            ("engine_version", Text),
            ("started_ms", Int),
            ("seen_ms", Int),
            ("run_id", Int),
        ],
        order_by: "id",
    },
    Table {
        name: "metric_points",
        columns: &[
            ("run_id", Int),
            ("key", Text),
            ("step", Int),
            ("value", Real),
            ("wall_ms", Int),
        ],
        order_by: "run_id, key, step",
    },
    Table {
        name: "metric_summaries",
        columns: &[
            ("run_id", Int),
            ("key", Text),
            ("goal", Text),
            ("count", Int),
            ("nan_count", Int),
            ("last", Real),
            ("last_step", Int),
            ("min", Real),
            ("max", Real),
            ("best", Real),
            ("best_step", Int),
        ],
        order_by: "run_id, key",
    },
    Table {
        name: "manager_weights",
        columns: &[
            ("run_id", Int),
            ("step", Int),
            ("modality", Text),
            ("layer", Int),
            ("expert", Int),
            ("weight", Real),
        ],
        order_by: "run_id, step, modality, layer, expert",
    },
    Table {
        name: "artifacts",
        columns: &[
            ("id", Int),
            ("run_id", Int),
            ("kind", Text),
            ("path", Text),
            ("step", Int),
            ("size_bytes", Int),
            ("created_ms", Int),
        ],
        order_by: "id",
    },
    Table {
        name: "log_lines",
        columns: &[
            ("run_id", Int),
            ("seq", Int),
            ("attempt", Int),
            ("time_ms", Int),
            ("level", Text),
            ("text", Text),
        ],
        order_by: "run_id, seq",
    },
    Table {
        name: "sync_cursors",
        columns: &[
            ("run_id", Int),
            ("target", Text),
            ("name", Text),
            ("value", Text),
        ],
        order_by: "run_id, target, name",
    },
    Table {
        name: "slurm_jobs",
        columns: &[
            ("run_id", Int),
            ("job_id", Int),
            ("array_task_id", Int),
            ("submitted_ms", Int),
        ],
        order_by: "run_id, job_id, array_task_id",
    },
];

/// Rows per chunk between the reading task and the writer.
pub(crate) const CHUNK_ROWS: usize = 2000;

/// A chunk of table `TABLES[.0]`.
pub(crate) type Chunk = (usize, Vec<Vec<Cell>>);

/// What a copy moved: rows per table, in [`TABLES`] order.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CopyReport {
    pub tables: Vec<(String, i64)>,
}

impl CopyReport {
    pub fn rows(&self, table: &str) -> Option<i64> {
        self.tables
            .iter()
            .find(|(t, _)| t == table)
            .map(|(_, n)| *n)
    }
}

impl crate::Store {
    /// Copies every table of this store into `to`, which must be empty (a fresh file or
    /// database), keeping ids: experiments, runs, params, workers, metrics and their summaries,
    /// manager weights, artifacts, logs, sync cursors and Slurm jobs. One transaction on `to`,
    /// committed only when every table holds as many rows as were read.
    pub async fn copy_into(&self, to: &crate::Store) -> crate::Result<CopyReport> {
        let (tx, rx) = tokio::sync::mpsc::channel::<crate::Result<Chunk>>(4);
        let source = self.clone();
        let reader = tokio::spawn(async move {
            let sent = crate::dispatch!(source, b => b.read_all_tables(&tx).await);
            if let Err(e) = sent {
                // The writer stops at this error (and rolls back).
                let _ = tx.send(Err(e)).await;
            }
        });
        let to_name = to.describe();
        let written = crate::dispatch!(to, b => b.write_all_tables(rx, &to_name).await);
        let _ = reader.await;
        written
    }
}
