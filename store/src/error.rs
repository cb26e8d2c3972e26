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

    #[error(
        "the store {path} is on a network file system ({fs}): SQLite's locks do not work \
         there, and several nodes writing it would corrupt it; keep the file on a local disk, or \
         use a PostgreSQL store for a cluster (--db postgres://USER@HOST/DATABASE, or \
         TOWERLAB_DB)"
    )]
    NetworkFileSystem { path: PathBuf, fs: &'static str },

    #[error("cannot connect to the PostgreSQL store {url}: {source}")]
    Connect {
        /// Without its password.
        url: String,
        #[source]
        source: sqlx::Error,
    },

    #[error(
        "the PostgreSQL database {url} is not a TowerLab store (it has other tables: {tables}); \
         pass an empty database or another --db"
    )]
    NotAPgStore { url: String, tables: String },

    #[error(
        "the store {url} was written by a newer TowerLab (schema version {found}; this build \
         knows versions up to {supported}); upgrade towerlab to use it"
    )]
    NewerPgSchema {
        url: String,
        found: i64,
        supported: i64,
    },

    #[error("cannot upgrade the schema of the store {url}: {source}")]
    MigratePg {
        url: String,
        #[source]
        source: sqlx::migrate::MigrateError,
    },

    #[error("cannot copy the store into {to}: it already holds {runs} runs and {experiments} experiments (copy into an empty store)")]
    CopyDestinationNotEmpty {
        to: String,
        runs: i64,
        experiments: i64,
    },

    #[error("copying the store into {to} lost rows of {table}: {copied} of {expected} arrived")]
    CopyMismatch {
        to: String,
        table: &'static str,
        copied: i64,
        expected: i64,
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
