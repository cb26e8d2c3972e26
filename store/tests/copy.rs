//! `store copy`: SQLite -> PostgreSQL -> SQLite keeps everything, ids included; a destination
//! that holds anything is refused and left as it was.

mod common;

use common::{experiment, new_run, temp_store, worker, Kind};
use store::{
    ArtifactKind, Goal, ManagerWeight, ManagerWeightRow, MetricPoint, Modality, NewArtifact,
    NewLogLine, RetryPolicy, RunFilter, RunId, Store,
};

/// A store with a bit of everything: two experiments, a dependency, a failed and a finished
/// run, NaN and infinite metrics, manager weights, artifacts, logs, cursors, Slurm jobs.
async fn fill(store: &Store) -> Vec<RunId> {
    let a = experiment(store, "ablation").await;
    let b = experiment(store, "other").await;
    let mut runs: Vec<_> = (0..4).map(new_run).collect();
    runs[3].depends_on = Some(runs[0].hash.clone());
    let mut ids: Vec<RunId> = store
        .create_runs(a, &runs)
        .await
        .unwrap()
        .iter()
        .map(|c| c.id)
        .collect();
    ids.push(store.create_runs(b, &[new_run(9)]).await.unwrap()[0].id);

    let w = worker("w1");
    let claim = store.claim(&w, Some(a)).await.unwrap().unwrap();
    let run = claim.run.id;
    store
        .declare_metrics(run, &[("val/acc", Goal::Maximize)])
        .await
        .unwrap();
    let points: Vec<MetricPoint> = (0..50)
        .flat_map(|s| {
            [
                MetricPoint {
                    key: "train/loss".into(),
                    step: s,
                    value: match s {
                        7 => f64::NAN,
                        8 => f64::INFINITY,
                        _ => 1.0 / (s as f64 + 1.0),
                    },
                    wall_ms: 1000 + s,
                },
                MetricPoint {
                    key: "val/acc".into(),
                    step: s,
                    value: 0.1 + s as f64 * 0.017,
                    wall_ms: 1000 + s,
                },
            ]
        })
        .collect();
    store.ingest_metrics(run, &points).await.unwrap();
    let weights: Vec<ManagerWeightRow> = (0..3)
        .map(|e| ManagerWeightRow {
            step: 10,
            value: ManagerWeight {
                modality: Modality::Image,
                layer: 2,
                expert: e,
                weight: if e == 1 { f64::NAN } else { 0.25 * e as f64 },
            },
        })
        .collect();
    store.ingest_manager_weights(run, &weights).await.unwrap();
    store
        .add_artifact(
            run,
            &NewArtifact {
                kind: ArtifactKind::Checkpoint,
                path: "runs/1/checkpoints/step-10".into(),
                step: Some(10),
                size_bytes: Some(1234),
            },
        )
        .await
        .unwrap();
    let lines: Vec<NewLogLine> = (0..3)
        .map(|i| NewLogLine {
            time_ms: i,
            level: "info".into(),
            text: format!("line {i}\nwith a newline"),
        })
        .collect();
    store.append_logs(run, &lines).await.unwrap();
    store
        .set_sync_cursor(run, "wandb", "history", "42")
        .await
        .unwrap();
    store
        .record_slurm_jobs(&[(run, 77, 0), (ids[1], 77, 1)])
        .await
        .unwrap();
    store.finish(&claim.lease).await.unwrap();
    let second = store.claim(&w, Some(a)).await.unwrap().unwrap();
    store
        .fail(
            &second.lease,
            store::FailureClass::Error,
            "boom",
            &RetryPolicy::default(),
        )
        .await
        .unwrap();
    ids
}

/// Everything a reader can see of `store`, as one comparable text.
async fn dump(store: &Store) -> String {
    let mut out = String::new();
    out += &format!("{:?}\n", store.experiments().await.unwrap());
    let runs = store
        .list_runs_with_summaries(&RunFilter::default())
        .await
        .unwrap();
    // NaN != NaN: compare through Debug text.
    out += &format!("{runs:?}\n");
    for r in &runs {
        let id = r.run.id;
        out += &format!("{:?}\n", store.params(id).await.unwrap());
        out += &format!("{:?}\n", store.metric_points(id, None).await.unwrap());
        out += &format!("{:?}\n", store.summaries(id).await.unwrap());
        out += &format!(
            "{:?}\n",
            store
                .manager_weights_between(id, None, i64::MAX)
                .await
                .unwrap()
        );
        out += &format!("{:?}\n", store.artifacts(id).await.unwrap());
        out += &format!("{:?}\n", store.log_lines(id, None, None).await.unwrap());
        out += &format!(
            "{:?}\n",
            store.sync_cursor(id, "wandb", "history").await.unwrap()
        );
        out += &format!("{:?}\n", store.slurm_job_history(id).await.unwrap());
    }
    out += &format!("{:?}\n", store.workers(None).await.unwrap());
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_to_postgres_to_sqlite_keeps_everything() {
    let (original, _a) = temp_store(Kind::Sqlite).await;
    let ids = fill(&original).await;
    let before = dump(&original).await;

    let (pg, _b) = temp_store(Kind::Postgres).await;
    let report = original.copy_into(&pg).await.unwrap();
    assert_eq!(report.rows("runs"), Some(5));
    assert_eq!(report.rows("metric_points"), Some(100));
    assert_eq!(report.rows("manager_weights"), Some(3));
    assert_eq!(dump(&pg).await, before);

    let (back, _c) = temp_store(Kind::Sqlite).await;
    let again = pg.copy_into(&back).await.unwrap();
    assert_eq!(again, report);
    assert_eq!(dump(&back).await, before);

    // The copy's ids go on after the copied ones.
    let exp = pg.experiment_by_name("other").await.unwrap().unwrap().id;
    let fresh = pg.create_runs(exp, &[new_run(100)]).await.unwrap()[0].id;
    assert!(fresh > *ids.iter().max().unwrap(), "{fresh} after {ids:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_destination_that_holds_anything_is_refused_and_left_alone() {
    let (source, _a) = temp_store(Kind::Sqlite).await;
    fill(&source).await;
    for kind in [Kind::Sqlite, Kind::Postgres] {
        let (to, _b) = temp_store(kind).await;
        experiment(&to, "mine").await;
        let before = dump(&to).await;
        let err = source.copy_into(&to).await.unwrap_err().to_string();
        assert!(
            err.contains("already holds 0 runs and 1 experiments"),
            "{err}"
        );
        assert!(err.contains("copy into an empty store"), "{err}");
        assert_eq!(dump(&to).await, before);
    }
}
