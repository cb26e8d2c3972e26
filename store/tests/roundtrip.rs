//! Every table written through the API reads back as written.

mod common;

use common::{experiment, new_run, temp_store, worker, Kind};
use serde_json::json;
use store::{
    ArtifactKind, AxisFilter, Goal, ManagerWeight, ManagerWeightRow, MetricPoint, Modality,
    NewArtifact, NewLogLine, NewRun, RunFilter, RunStatus, StoreError,
};

async fn runs_and_params_round_trip(kind: Kind) {
    let (store, _dir) = temp_store(kind).await;
    let exp = experiment(&store, "ablation").await;
    let runs: Vec<NewRun> = (0..3).map(new_run).collect();
    let created = store.create_runs(exp, &runs).await.unwrap();
    assert!(created.iter().all(|c| c.inserted));

    let run = store.run(created[1].id).await.unwrap().unwrap();
    assert_eq!(run.experiment, "ablation");
    assert_eq!(run.experiment_id, exp);
    assert_eq!(run.hash, "hash00001");
    assert_eq!(run.cell_key, runs[1].cell_key);
    assert_eq!(run.axes, runs[1].axes);
    assert_eq!(run.task, "vqa");
    assert_eq!(run.status, RunStatus::Queued);
    assert_eq!(run.attempts, 0);
    assert!(run.created_ms > 0);
    assert_eq!(run.started_ms, None);

    let params = store.params(run.id).await.unwrap();
    let got: Vec<(String, serde_json::Value)> =
        params.into_iter().map(|p| (p.key, p.value)).collect();
    let mut want = runs[1].params.clone();
    want.sort_by(|a, b| a.0.cmp(&b.0));
    assert_eq!(got, want);

    // Creating the same hashes again leaves the runs alone.
    let again = store.create_runs(exp, &runs[..2]).await.unwrap();
    assert_eq!(again[0].id, created[0].id);
    assert!(again.iter().all(|c| !c.inserted));
    assert_eq!(
        store.list_runs(&RunFilter::default()).await.unwrap().len(),
        3
    );
}

async fn dependencies_resolve_by_hash_and_unknown_ones_are_an_error(kind: Kind) {
    let (store, _dir) = temp_store(kind).await;
    let exp = experiment(&store, "vlp").await;
    let mut pretrain = new_run(0);
    pretrain.task = "pretrain".into();
    let mut finetune = new_run(1);
    finetune.depends_on = Some(pretrain.hash.clone());
    let created = store.create_runs(exp, &[pretrain, finetune]).await.unwrap();
    let ft = store.run(created[1].id).await.unwrap().unwrap();
    assert_eq!(ft.depends_on, Some(created[0].id));

    let mut orphan = new_run(2);
    orphan.depends_on = Some("nope".into());
    let err = store.create_runs(exp, &[orphan]).await.unwrap_err();
    assert!(matches!(err, StoreError::UnknownDependency { .. }), "{err}");
    assert!(err.to_string().contains("nope"), "{err}");
}

async fn list_filters_by_experiment_status_task_and_axes(kind: Kind) {
    let (store, _dir) = temp_store(kind).await;
    let a = experiment(&store, "a").await;
    let b = experiment(&store, "b").await;
    let runs: Vec<NewRun> = (0..8).map(new_run).collect();
    store.create_runs(a, &runs).await.unwrap();
    store.create_runs(b, &runs[..2]).await.unwrap();

    let in_a = RunFilter {
        experiment: Some(a),
        ..RunFilter::default()
    };
    assert_eq!(store.list_runs(&in_a).await.unwrap().len(), 8);

    let adaptive = RunFilter {
        experiment: Some(a),
        axes: vec![AxisFilter::parse("manager=adaptive").unwrap()],
        ..RunFilter::default()
    };
    let got = store.list_runs(&adaptive).await.unwrap();
    assert_eq!(got.len(), 4);
    assert!(got.iter().all(|r| r.axes["manager"] == json!("adaptive")));

    // Numbers compare numerically; a string "3" does not match the number 3.
    let layers = RunFilter {
        axes: vec![
            AxisFilter::parse("layers=3.0").unwrap(),
            AxisFilter::new("seed", 0),
        ],
        ..RunFilter::default()
    };
    assert_eq!(
        store.list_runs(&layers).await.unwrap().len(),
        2,
        "seed 0 in a and b"
    );
    let as_text = RunFilter {
        axes: vec![AxisFilter::new("layers", "3")],
        ..RunFilter::default()
    };
    assert!(store.list_runs(&as_text).await.unwrap().is_empty());

    let claimed = store.claim(&worker("w"), Some(a)).await.unwrap().unwrap();
    let running = RunFilter {
        statuses: vec![RunStatus::Running],
        ..RunFilter::default()
    };
    let got = store.list_runs(&running).await.unwrap();
    assert_eq!(
        got.iter().map(|r| r.id).collect::<Vec<_>>(),
        vec![claimed.run.id]
    );

    let other_task = RunFilter {
        task: Some("snli-ve".into()),
        ..RunFilter::default()
    };
    assert!(store.list_runs(&other_task).await.unwrap().is_empty());
    let limited = RunFilter {
        limit: Some(3),
        ..RunFilter::default()
    };
    assert_eq!(store.list_runs(&limited).await.unwrap().len(), 3);

    // Plan lookups go by hash across experiments.
    let found = store
        .runs_by_hash(&["hash00000".into(), "hash00007".into(), "missing".into()])
        .await
        .unwrap();
    assert_eq!(found.len(), 3, "hash00000 is in a and b, hash00007 in a");
}

#[tokio::test]
async fn axis_filter_parsing() {
    assert_eq!(
        AxisFilter::parse("manager=adaptive"),
        Some(AxisFilter::new("manager", "adaptive"))
    );
    assert_eq!(
        AxisFilter::parse(" layers = 6 "),
        Some(AxisFilter::new("layers", 6))
    );
    assert_eq!(
        AxisFilter::parse("name=\"6\""),
        Some(AxisFilter::new("name", "6"))
    );
    assert_eq!(
        AxisFilter::parse("vlp=true"),
        Some(AxisFilter::new("vlp", true))
    );
    assert_eq!(AxisFilter::parse("noequals"), None);
    assert_eq!(AxisFilter::parse("=3"), None);
}

async fn telemetry_tables_round_trip(kind: Kind) {
    let (store, _dir) = temp_store(kind).await;
    let exp = experiment(&store, "e").await;
    let run = store.create_runs(exp, &[new_run(0)]).await.unwrap()[0].id;

    // metrics + summaries
    store
        .declare_metrics(run, &[("val/acc", Goal::Maximize)])
        .await
        .unwrap();
    let points = vec![
        MetricPoint {
            key: "train/loss".into(),
            step: 1,
            value: 2.5,
            wall_ms: 1000,
        },
        MetricPoint {
            key: "train/loss".into(),
            step: 2,
            value: 2.0,
            wall_ms: 2000,
        },
        MetricPoint {
            key: "val/acc".into(),
            step: 2,
            value: 0.4,
            wall_ms: 2001,
        },
    ];
    assert_eq!(store.ingest_metrics(run, &points).await.unwrap(), 3);
    assert_eq!(
        store.metric_keys(run).await.unwrap(),
        vec!["train/loss", "val/acc"]
    );
    let all = store.metric_points(run, None).await.unwrap();
    assert_eq!(
        all,
        vec![points[0].clone(), points[1].clone(), points[2].clone()]
    );
    let history = store.history(run, None, None).await.unwrap();
    assert_eq!(history.len(), 2);
    assert_eq!(history[1].step, 2);
    assert_eq!(history[1].wall_ms, 2001);
    assert_eq!(history[1].values["val/acc"], 0.4);
    let first_only = store.history(run, None, Some(1)).await.unwrap();
    assert_eq!(first_only.len(), 1);
    assert_eq!(store.history(run, Some(1), Some(5)).await.unwrap().len(), 1);

    // manager weights
    let weights: Vec<ManagerWeightRow> = [100, 200]
        .iter()
        .flat_map(|&step| {
            (0..2u32).flat_map(move |layer| {
                (0..3).map(move |expert| ManagerWeightRow {
                    step,
                    value: ManagerWeight {
                        modality: Modality::Text,
                        layer,
                        expert,
                        weight: (step + i64::from(layer) * 10 + expert) as f64 / 1000.0,
                    },
                })
            })
        })
        .collect();
    assert_eq!(
        store.ingest_manager_weights(run, &weights).await.unwrap(),
        12
    );
    assert_eq!(
        store.ingest_manager_weights(run, &weights).await.unwrap(),
        0
    );
    assert_eq!(
        store.manager_weight_steps(run).await.unwrap(),
        vec![100, 200]
    );
    assert_eq!(
        store.manager_weights(run, None).await.unwrap(),
        weights[6..].to_vec()
    );
    assert_eq!(
        store.manager_weights(run, Some(100)).await.unwrap(),
        weights[..6].to_vec()
    );
    assert!(store
        .manager_weights(run, Some(150))
        .await
        .unwrap()
        .is_empty());

    // artifacts: a checkpoint becomes the resume point
    let ckpt = store
        .add_artifact(
            run,
            &NewArtifact {
                kind: ArtifactKind::Checkpoint,
                path: "ckpt/step200.safetensors".into(),
                step: Some(200),
                size_bytes: Some(1234),
            },
        )
        .await
        .unwrap();
    let fig = store
        .add_artifact(
            run,
            &NewArtifact {
                kind: ArtifactKind::Figure,
                path: "fig/weights.svg".into(),
                step: None,
                size_bytes: None,
            },
        )
        .await
        .unwrap();
    assert_eq!(store.artifacts(run).await.unwrap(), vec![ckpt.clone(), fig]);
    assert_eq!(ckpt.kind, ArtifactKind::Checkpoint);
    let r = store.run(run).await.unwrap().unwrap();
    assert_eq!(
        r.checkpoint_path.as_deref(),
        Some("ckpt/step200.safetensors")
    );
    assert_eq!(r.checkpoint_step, Some(200));
    // An older checkpoint does not move the resume point back.
    store
        .add_artifact(
            run,
            &NewArtifact {
                kind: ArtifactKind::Checkpoint,
                path: "ckpt/step100.safetensors".into(),
                step: Some(100),
                size_bytes: None,
            },
        )
        .await
        .unwrap();
    assert_eq!(
        store.run(run).await.unwrap().unwrap().checkpoint_step,
        Some(200)
    );

    // logs
    let lines: Vec<NewLogLine> = (0..5)
        .map(|i| NewLogLine {
            time_ms: 10 + i,
            level: "info".into(),
            text: format!("line {i}"),
        })
        .collect();
    assert_eq!(store.append_logs(run, &lines[..3]).await.unwrap(), 1..=3);
    assert_eq!(store.append_logs(run, &lines[3..]).await.unwrap(), 4..=5);
    let got = store.log_lines(run, None, None).await.unwrap();
    assert_eq!(got.len(), 5);
    assert_eq!(got[4].text, "line 4");
    assert_eq!(got[4].seq, 5);
    assert_eq!(got[0].attempt, 0);
    let after = store.log_lines(run, Some(2), Some(2)).await.unwrap();
    assert_eq!(after.iter().map(|l| l.seq).collect::<Vec<_>>(), vec![3, 4]);
    let tail = store.log_tail(run, 2).await.unwrap();
    assert_eq!(tail.iter().map(|l| l.seq).collect::<Vec<_>>(), vec![4, 5]);

    // sync cursors
    assert_eq!(
        store.sync_cursor(run, "wandb", "history").await.unwrap(),
        None
    );
    store
        .set_sync_cursor(run, "wandb", "history", "12")
        .await
        .unwrap();
    store
        .set_sync_cursor(run, "wandb", "history", "40")
        .await
        .unwrap();
    assert_eq!(
        store
            .sync_cursor(run, "wandb", "history")
            .await
            .unwrap()
            .as_deref(),
        Some("40")
    );

    // the detail bundles it all
    let detail = store.run_detail(run).await.unwrap().unwrap();
    assert_eq!(detail.params.len(), 3);
    assert_eq!(detail.summaries.len(), 2);
    assert_eq!(detail.artifacts.len(), 3);
    assert!(store.run_detail(store::RunId(999)).await.unwrap().is_none());
}

async fn writes_to_an_unknown_run_are_a_clear_error(kind: Kind) {
    let (store, _dir) = temp_store(kind).await;
    let ghost = store::RunId(77);
    let point = MetricPoint {
        key: "k".into(),
        step: 0,
        value: 1.0,
        wall_ms: 0,
    };
    let err = store.ingest_metrics(ghost, &[point]).await.unwrap_err();
    assert!(
        matches!(err, StoreError::UnknownRun(store::RunId(77))),
        "{err}"
    );
    let err = store.append_logs(ghost, &[]).await.unwrap_err();
    assert!(matches!(err, StoreError::UnknownRun(_)), "{err}");
}

async fn workers_are_listed_while_alive(kind: Kind) {
    let (store, _dir) = temp_store(kind).await;
    let exp = experiment(&store, "e").await;
    store.create_runs(exp, &[new_run(0)]).await.unwrap();
    store.worker_heartbeat(&worker("idle")).await.unwrap();
    let claim = store.claim(&worker("busy"), None).await.unwrap().unwrap();
    let live = store
        .workers(Some(std::time::Duration::from_secs(60)))
        .await
        .unwrap();
    assert_eq!(live.len(), 2);
    let busy = live.iter().find(|w| w.id == "busy").unwrap();
    assert_eq!(busy.run_id, Some(claim.run.id));
    assert_eq!(busy.host, "testhost");
    let idle = live.iter().find(|w| w.id == "idle").unwrap();
    assert_eq!(idle.run_id, None);
    // A heartbeat of the idle worker does not clear what a busy one holds.
    store.worker_heartbeat(&worker("busy")).await.unwrap();
    let busy = store.workers(None).await.unwrap();
    assert_eq!(
        busy.iter().find(|w| w.id == "busy").unwrap().run_id,
        Some(claim.run.id)
    );
    store.finish(&claim.lease).await.unwrap();
    let after = store.workers(None).await.unwrap();
    assert!(after.iter().all(|w| w.run_id.is_none()));
    store.retire_worker("idle").await.unwrap();
    assert_eq!(store.workers(None).await.unwrap().len(), 1);
}

on_both_backends!(
    runs_and_params_round_trip,
    dependencies_resolve_by_hash_and_unknown_ones_are_an_error,
    list_filters_by_experiment_status_task_and_axes,
    telemetry_tables_round_trip,
    writes_to_an_unknown_run_are_a_clear_error,
    workers_are_listed_while_alive,
);
