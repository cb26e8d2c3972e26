//! Errors of the store.

use std::path::PathBuf;

use crate::types::{RunId, RunStatus};

pub type Result<T, E = StoreError> = std::result::Result<T, E>;

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("cannot create the directory {path} for the store: {source}")]
    CreateDir {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },

    #[error("cannot open the store {path}: {source}")]
    Open {
        path: PathBuf,
        #[source]
        source: sqlx::Error,
    },

    #[error("{path} is not a SQLite database, or it is corrupt ({source})")]
    Corrupt {
        path: PathBuf,
        #[source]
        source: sqlx::Error,
    },

    #[error(
        "{path} is a SQLite database but not a TowerLab store (application id {application_id:#x}, \
         tables: {tables}); pass another --db path"
    )]
    NotAStore {
        path: PathBuf,
        application_id: i64,
        tables: String,
    },

    #[error(
        "the store {path} was written by a newer TowerLab (schema version {found}; this build \
         knows versions up to {supported}); upgrade towerlab to use it"
    )]
    NewerSchema {
        path: PathBuf,
        found: i64,
        supported: i64,
    },

    #[error("cannot upgrade the schema of the store {path}: {source}")]
    Migrate {
        path: PathBuf,
        #[source]
        source: sqlx::migrate::MigrateError,
    },

    #[error("no run with id {0} in the store")]
    UnknownRun(RunId),

    #[error("run {run} depends on a run with hash {hash}, which is not in the store")]
    UnknownDependency { run: String, hash: String },

    #[error("run {run} is no longer held by this claim (it is {status} at attempt {attempts})")]
    LeaseLost {
        run: RunId,
        status: RunStatus,
        attempts: i64,
    },

    #[error("cannot encode {what} as JSON: {source}")]
    Json {
        what: String,
        #[source]
        source: serde_json::Error,
    },

    #[error("store query failed: {0}")]
    Sqlx(#[from] sqlx::Error),
}
