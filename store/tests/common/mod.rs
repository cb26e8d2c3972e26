//! Helpers shared by the store's integration tests.
#![allow(dead_code)]

use serde_json::json;
use store::{Axes, ExperimentId, NewRun, Store, WorkerInfo};
use tempfile::TempDir;

/// A store in a fresh temporary directory (kept alive by the returned guard).
pub async fn temp_store() -> (Store, TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path().join("store.db")).await.unwrap();
    (store, dir)
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
