//! The store adapter: runs written through the store's API are synced to the test server,
//! offsets live in the store's `sync_cursors`, and a second sync sends nothing.

use app::wandb;
use std::sync::Arc;
use std::time::Duration;

use app::wandb::{
    sync_runs, wandb_run_id, ApiKey, Selection, StoreSource, SyncOptions, WandbConfig,
};
use serde_json::{json, Value};
use store::{
    ManagerWeight, ManagerWeightRow, MetricPoint, Modality, NewLogLine, NewRun, Store, WorkerInfo,
};
use testkit::wandb_server::TestServer;

const KEY: &str = "store-test-key";
const T0: i64 = 1_787_306_400_000;

async fn fixture(dir: &std::path::Path) -> (Store, Vec<String>) {
    let store = Store::open(dir.join("t.db")).await.unwrap();
    let exp = store
        .upsert_experiment("ablation", "ablation.toml", "exphash")
        .await
        .unwrap();
    let new_run = |seed: i64| NewRun {
        hash: wandb::encode::hex_digest(format!("run-{seed}").as_bytes()),
        cell_key: format!("manager=aaue,seed={seed}"),
        axes: serde_json::from_value(json!({"manager": "aaue", "seed": seed})).unwrap(),
        task: "vqa".into(),
        params: vec![
            ("optim.lr".into(), json!(1e-5)),
            ("model.num_layers".into(), json!(6)),
        ],
        depends_on: None,
    };
    let created = store
        .create_runs(exp.id, &[new_run(0), new_run(1)])
        .await
        .unwrap();
    // Run 0 trains: 120 steps of metrics, manager weights every 10 steps (also at a step
    // without metrics), a few log lines, and finishes.
    let worker = WorkerInfo::this_process("cpu", "test");
    let claim = store.claim(&worker, Some(exp.id)).await.unwrap().unwrap();
    let run = claim.run.id;
    let points: Vec<MetricPoint> = (0..120)
        .flat_map(|s| {
            [
                MetricPoint {
                    key: "train/loss".into(),
                    step: s,
                    value: 1.0 / (1.0 + s as f64),
                    wall_ms: T0 + s * 500,
                },
                MetricPoint {
                    key: "train/acc".into(),
                    step: s,
                    value: s as f64 / 200.0,
                    wall_ms: T0 + s * 500,
                },
            ]
        })
        .collect();
    store.ingest_metrics(run, &points).await.unwrap();
    let weights: Vec<ManagerWeightRow> = (0..=12)
        .map(|i| if i == 12 { 125 } else { i * 10 })
        .flat_map(|step| {
            // Expert -1: the raw weight on the previous cross-modal layer's output.
            (-1..3).map(move |e| ManagerWeightRow {
                step,
                value: ManagerWeight {
                    modality: Modality::Text,
                    layer: 2,
                    expert: e,
                    weight: if e < 0 { 0.998 } else { (e + 1) as f64 / 6.0 },
                },
            })
        })
        .collect();
    store.ingest_manager_weights(run, &weights).await.unwrap();
    store
        .append_logs(
            run,
            &[
                NewLogLine {
                    time_ms: T0,
                    level: "info".into(),
                    text: "epoch 0".into(),
                },
                NewLogLine {
                    time_ms: T0 + 1000,
                    level: "stderr".into(),
                    text: "warning: slow loader".into(),
                },
            ],
        )
        .await
        .unwrap();
    store.finish(&claim.lease).await.unwrap();
    (store, created.into_iter().map(|c| c.hash).collect())
}

/// serde_json's default float parser may be off by an ulp.
fn assert_close(got: &Value, want: f64) {
    let g = got.as_f64().unwrap_or(f64::NAN);
    assert!((g - want).abs() <= want.abs() * 1e-15, "{got} != {want}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn store_runs_sync_with_offsets_in_the_store() {
    let dir = tempfile::tempdir().unwrap();
    let (store, hashes) = fixture(dir.path()).await;
    let server = TestServer::start(KEY);
    let mut config = WandbConfig::new(&server.base_url, "mt", ApiKey::new(KEY).unwrap());
    config.request_timeout = Duration::from_secs(5);
    config.max_request_bytes = 8 * 1024;
    config.page_rows = 16;
    let source = Arc::new(StoreSource::new(store.clone()));
    let report = sync_runs(
        &config,
        source.clone(),
        source.clone(),
        &SyncOptions::default(),
    )
    .await
    .unwrap();
    assert!(report.failures.is_empty(), "{report}");
    assert_eq!(report.created(), 2, "{report}");

    let remote = server.run(&wandb_run_id(&hashes[0]));
    let history = remote.history();
    // 120 metric steps plus step 125 that has manager weights only.
    assert_eq!(history.len(), 121);
    let steps: Vec<u64> = history
        .iter()
        .map(|l| l["_step"].as_u64().unwrap())
        .collect();
    assert_eq!(steps, (0..120).chain([125]).collect::<Vec<_>>());
    assert_close(&history[10]["train/loss"], 1.0 / 11.0);
    assert_close(&history[10]["manager/text/layer2/expert1"], 2.0 / 6.0);
    // Every value has its own key: the cross-modal weight is named as such, not an expert.
    assert_close(&history[10]["manager/text/layer2/expert0"], 1.0 / 6.0);
    assert_close(&history[10]["manager/text/layer2/cross_modal_prev1"], 0.998);
    for line in remote.lines(wandb::encode::HISTORY_FILE) {
        assert_eq!(
            wandb::encode::repeated_keys(&line),
            Ok(vec![]),
            "a history line repeats a key: {line}"
        );
    }
    assert!(history[11].get("manager/text/layer2/expert1").is_none());
    assert_close(&history[120]["manager/text/layer2/expert2"], 0.5);
    assert_close(
        &history[119]["_timestamp"],
        (T0 + 119 * 500) as f64 / 1000.0,
    );
    assert_eq!(remote.exit_code, Some(0));
    let logs = remote.lines("output.log");
    assert_eq!(
        logs,
        [
            "2026-08-21T10:00:00.000000 epoch 0",
            "ERROR 2026-08-21T10:00:01.000000 warning: slow loader"
        ]
    );
    let vars = &remote.upserts[0];
    assert_eq!(vars["groupName"], "ablation/manager=aaue,seed=0");
    assert_eq!(vars["jobType"], "vqa");
    assert_eq!(vars["tags"], json!(["manager=aaue", "seed=0"]));
    let config_sent: Value = serde_json::from_str(vars["config"].as_str().unwrap()).unwrap();
    assert_eq!(config_sent["model.num_layers"]["value"], 6);
    let summary: Value = serde_json::from_str(&remote.lines("wandb-summary.json")[0]).unwrap();
    assert_close(&summary["train/acc"], 119.0 / 200.0);

    // The queued run exists on W&B but is not completed.
    let queued = server.run(&wandb_run_id(&hashes[1]));
    assert_eq!(queued.exit_code, None);
    assert!(queued.history().is_empty());

    // Offsets are in the store: a new adapter on a reopened store sends nothing.
    store.close().await;
    let store = Store::open(dir.path().join("t.db")).await.unwrap();
    let source = Arc::new(StoreSource::new(store.clone()));
    let before = server.request_count();
    let report = sync_runs(
        &config,
        source.clone(),
        source.clone(),
        &SyncOptions::default(),
    )
    .await
    .unwrap();
    assert_eq!(report.unchanged(), 2, "{report}");
    assert_eq!(server.request_count(), before);

    // Selection by experiment, by store id and by content hash.
    for selection in [
        Selection {
            experiments: vec!["ablation".into()],
            runs: vec![],
        },
        Selection {
            experiments: vec![],
            runs: vec!["1".into()],
        },
        Selection {
            experiments: vec![],
            runs: vec![hashes[1].clone()],
        },
    ] {
        let runs = wandb::SyncSource::list_runs(&*source, &selection)
            .await
            .unwrap();
        assert!(!runs.is_empty(), "{selection:?}");
        assert!(
            wandb::sync::unmatched(&selection, &runs).is_empty(),
            "{selection:?}"
        );
    }
}

/// A running run's newest step is held back until a later step exists (its evaluation may still
/// be on the way), so no history line goes out with half of its metrics.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_newest_step_of_a_running_run_waits_for_its_evaluation() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path().join("t.db")).await.unwrap();
    let exp = store
        .upsert_experiment("live", "live.toml", "h")
        .await
        .unwrap();
    let hash = wandb::encode::hex_digest(b"live-run");
    store
        .create_runs(
            exp.id,
            &[NewRun {
                hash: hash.clone(),
                cell_key: "manager=aaue".into(),
                axes: Default::default(),
                task: "vqa".into(),
                params: vec![],
                depends_on: None,
            }],
        )
        .await
        .unwrap();
    let worker = WorkerInfo::this_process("cpu", "test");
    let claim = store.claim(&worker, Some(exp.id)).await.unwrap().unwrap();
    let run = claim.run.id;
    let point = |key: &str, step: i64| MetricPoint {
        key: key.into(),
        step,
        value: step as f64,
        wall_ms: T0 + step,
    };
    let server = TestServer::start(KEY);
    let config = WandbConfig::new(&server.base_url, "mt", ApiKey::new(KEY).unwrap());
    let source = Arc::new(StoreSource::new(store.clone()));
    let options = SyncOptions::default();
    let sync = || sync_runs(&config, source.clone(), source.clone(), &options);

    // Steps 1..=4 trained; step 4's evaluation has not been written yet.
    let train: Vec<MetricPoint> = (1..=4).map(|s| point("train/loss", s)).collect();
    store.ingest_metrics(run, &train).await.unwrap();
    assert!(sync().await.unwrap().failures.is_empty());
    let steps = |server: &TestServer| -> Vec<u64> {
        server
            .run(&wandb_run_id(&hash))
            .history()
            .iter()
            .map(|h| h["_step"].as_u64().unwrap())
            .collect()
    };
    assert_eq!(steps(&server), vec![1, 2, 3]);

    // The evaluation of step 4 arrives, then step 5 trains: step 4 goes out whole.
    store
        .ingest_metrics(run, &[point("val/acc", 4)])
        .await
        .unwrap();
    store
        .ingest_metrics(run, &[point("train/loss", 5)])
        .await
        .unwrap();
    sync().await.unwrap();
    let remote = server.run(&wandb_run_id(&hash)).history();
    assert_eq!(remote.len(), 4);
    assert_eq!(remote[3]["_step"], 4);
    assert!(remote[3].get("val/acc").is_some() && remote[3].get("train/loss").is_some());

    // The run ends: its last step goes out too, with `complete`.
    store.finish(&claim.lease).await.unwrap();
    sync().await.unwrap();
    assert_eq!(steps(&server), vec![1, 2, 3, 4, 5]);
    assert_eq!(server.run(&wandb_run_id(&hash)).exit_code, Some(0));
}

/// `system/` metrics in the store go to `wandb-events.jsonl` with W&B's `system.*` keys (the
/// file W&B's System panels read), never to the history; a running run's newest sample is
/// held back like its newest step, and a second sync sends nothing again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn system_metrics_are_sent_as_wandb_events_lines() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path().join("t.db")).await.unwrap();
    let exp = store
        .upsert_experiment("sys", "sys.toml", "exphash")
        .await
        .unwrap();
    let created = store
        .create_runs(
            exp.id,
            &[NewRun {
                hash: wandb::encode::hex_digest(b"sys-run"),
                cell_key: "manager=aaue".into(),
                axes: serde_json::from_value(json!({"manager": "aaue"})).unwrap(),
                task: "vqa".into(),
                params: Vec::new(),
                depends_on: None,
            }],
        )
        .await
        .unwrap();
    let worker = WorkerInfo::this_process("cpu", "test");
    let claim = store.claim(&worker, Some(exp.id)).await.unwrap().unwrap();
    let run = claim.run.id;
    let point = |key: &str, step: i64, value: f64| MetricPoint {
        key: key.into(),
        step,
        value,
        wall_ms: T0 + step * 5000 + 100,
    };
    // Steps 1..=20 train; samples at every step from 0 (before the first step) to 20.
    let mut points: Vec<MetricPoint> = (1..=20).map(|s| point("train/loss", s, 1.0)).collect();
    for s in 0..=20 {
        points.push(point("system/proc/rss_mb", s, 800.0 + s as f64));
        points.push(point("system/proc/cpu_percent", s, 50.0));
        points.push(point("system/gpu/0/util_percent", s, 97.0));
    }
    store.ingest_metrics(run, &points).await.unwrap();

    let server = TestServer::start(KEY);
    let mut config = WandbConfig::new(&server.base_url, "mt", ApiKey::new(KEY).unwrap());
    config.request_timeout = Duration::from_secs(5);
    config.max_request_bytes = 2 * 1024;
    config.page_rows = 4;
    let source = Arc::new(StoreSource::new(store.clone()));
    let sync = || async {
        sync_runs(
            &config,
            source.clone(),
            source.clone(),
            &SyncOptions::default(),
        )
        .await
        .unwrap()
    };
    // Running: the newest step (20) and the newest sample (20) wait.
    let report = sync().await;
    assert!(report.failures.is_empty(), "{report}");
    let remote = server.run(&wandb_run_id(&created[0].hash));
    assert_eq!(remote.history().len(), 19);
    assert_eq!(remote.events().len(), 20);
    assert_eq!(report.events_lines(), 20, "{report}");

    store.finish(&claim.lease).await.unwrap();
    let report = sync().await;
    assert!(report.failures.is_empty(), "{report}");
    assert!(
        report.to_string().contains("; 1 system samples"),
        "{report}"
    );
    let remote = server.run(&wandb_run_id(&created[0].hash));
    let history = remote.history();
    assert_eq!(history.len(), 20);
    for line in &history {
        let keys: Vec<&String> = line.as_object().unwrap().keys().collect();
        assert!(
            keys.iter()
                .all(|k| !k.starts_with("system") && !k.contains("rss")),
            "{line}"
        );
    }
    let events = remote.events();
    assert_eq!(events.len(), 21);
    for (s, line) in events.iter().enumerate() {
        assert_close(&line["system.proc.memory.rssMB"], 800.0 + s as f64);
        assert_close(&line["system.cpu"], 50.0);
        assert_close(&line["system.gpu.0.gpu"], 97.0);
        let wall = (T0 + s as i64 * 5000 + 100) as f64 / 1000.0;
        assert_close(&line["_timestamp"], wall);
        assert!(line["_runtime"].as_f64().unwrap() >= 0.0, "{line}");
        assert_eq!(line.as_object().unwrap().len(), 5, "{line}");
    }
    // Nothing new: nothing sent.
    let requests = server.request_count();
    let report = sync().await;
    assert_eq!(report.events_lines(), 0);
    assert_eq!(report.history_lines(), 0);
    assert_eq!(server.request_count(), requests, "{report}");
}
