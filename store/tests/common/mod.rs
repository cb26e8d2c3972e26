//! Helpers shared by the store's integration tests.
#![allow(dead_code)]

use serde_json::json;
use std::path::PathBuf;

use store::testing::PgServer;
use store::{Axes, ExperimentId, NewRun, Store, WorkerInfo};
use tempfile::TempDir;

/// Which backend a test runs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Sqlite,
    Postgres,
}

/// Where a test's store lives: a SQLite file in a temporary folder (removed on drop), or a
/// fresh database on this test binary's PostgreSQL server.
pub struct TestDb {
    _dir: Option<TempDir>,
    db: PathBuf,
}

impl TestDb {
    /// What `Store::open` takes to open this store again (a path, or a URL).
    pub fn db(&self) -> PathBuf {
        self.db.clone()
    }
}

/// A fresh, empty store on `kind` (kept alive by the returned guard).
pub async fn temp_store(kind: Kind) -> (Store, TestDb) {
    let test_db = match kind {
        Kind::Sqlite => {
            let dir = tempfile::tempdir().unwrap();
            let db = dir.path().join("store.db");
            TestDb {
                _dir: Some(dir),
                db,
            }
        }
        Kind::Postgres => TestDb {
            _dir: None,
            db: PgServer::shared().fresh_database().await.into(),
        },
    };
    let store = Store::open(test_db.db()).await.unwrap();
    (store, test_db)
}

/// Runs each named `async fn NAME(kind: Kind)` as two tests, `NAME::sqlite` and
/// `NAME::postgres`.
#[macro_export]
macro_rules! on_both_backends {
    ($($name:ident),* $(,)?) => {
        $(
            mod $name {
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn sqlite() {
                    super::$name($crate::common::Kind::Sqlite).await
                }

                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn postgres() {
                    super::$name($crate::common::Kind::Postgres).await
                }
            }
        )*
    };
}

pub async fn experiment(store: &Store, name: &str) -> ExperimentId {
    store
        .upsert_experiment(name, &format!("experiments/{name}.toml"), "filehash")
        .await
        .unwrap()
        .id
}

pub fn axes(value: serde_json::Value) -> Axes {
    value.as_object().unwrap().clone()
}

/// A fine-tuning run of cell `i` (axes manager/layers/seed).
pub fn new_run(i: usize) -> NewRun {
    let manager = if i % 2 == 0 { "adaptive" } else { "static" };
    let layers = 3 + (i % 4);
    NewRun {
        hash: format!("hash{i:05}"),
        cell_key: format!("manager={manager},layers={layers},seed={i}"),
        axes: axes(json!({"manager": manager, "layers": layers, "seed": i})),
        task: "vqa".to_owned(),
        params: vec![
            ("model.manager".to_owned(), json!(manager)),
            ("model.num_layers".to_owned(), json!(layers)),
            ("train.lr".to_owned(), json!(1e-5)),
        ],
        depends_on: None,
    }
}

pub fn worker(name: &str) -> WorkerInfo {
    WorkerInfo {
        id: name.to_owned(),
        host: "testhost".to_owned(),
        pid: 4242,
        device: "cpu".to_owned(),
        engine_version: "0.1.0".to_owned(),
    }
}
