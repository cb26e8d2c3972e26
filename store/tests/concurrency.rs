//! Several handles (as in several processes) on one store file: readers while a writer writes,
//! and claims from separate processes.

mod common;

use std::collections::HashSet;
use std::process::Command;
use std::time::Duration;

use common::{experiment, new_run, temp_store, worker, Kind};
use store::{MetricPoint, RunFilter, RunId, SeriesOptions, Store};

fn batch(from: i64, n: i64) -> Vec<MetricPoint> {
    (from..from + n)
        .map(|s| MetricPoint {
            key: "train/loss".into(),
            step: s,
            value: s as f64,
            wall_ms: s,
        })
        .collect()
}

async fn readers_keep_reading_while_a_writer_writes(kind: Kind) {
    let (writer, dir) = temp_store(kind).await;
    let reader = Store::open(dir.db()).await.unwrap();
    let exp = experiment(&writer, "wal").await;
    let run = writer.create_runs(exp, &[new_run(0)]).await.unwrap()[0].id;

    let batches = 40;
    let per_batch = 500;
    let write = tokio::spawn(async move {
        for b in 0..batches {
            writer
                .ingest_metrics(run, &batch(b * per_batch, per_batch))
                .await
                .unwrap();
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
    });
    let mut seen = Vec::new();
    while !write.is_finished() {
        let listed = reader
            .list_runs_with_summaries(&RunFilter::default())
            .await
            .unwrap();
        let count = listed[0].summary("train/loss").map_or(0, |s| s.count);
        let series = reader
            .metric_series(run, "train/loss", SeriesOptions::default())
            .await
            .unwrap();
        // Batches are atomic: a reader sees whole batches only.
        assert_eq!(count % per_batch, 0, "summary saw a partial batch");
        assert_eq!(
            series.len() as i64 % per_batch,
            0,
            "series saw a partial batch"
        );
        assert!(
            series.len() as i64 >= count,
            "series read after the summary"
        );
        seen.push(count);
    }
    write.await.unwrap();
    assert!(
        seen.windows(2).all(|w| w[0] <= w[1]),
        "counts never go back"
    );
    assert!(
        seen.iter().any(|&c| c > 0 && c < batches * per_batch),
        "the reader read while the writer was writing: {seen:?}"
    );
    let end = reader.summaries(run).await.unwrap();
    assert_eq!(end[0].count, batches * per_batch);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_open_read_snapshot_does_not_block_a_writer() {
    let (writer, dir) = temp_store(Kind::Sqlite).await;
    let reader = Store::open(dir.db()).await.unwrap();
    let exp = experiment(&writer, "snap").await;
    let run = writer.create_runs(exp, &[new_run(0)]).await.unwrap()[0].id;
    writer.ingest_metrics(run, &batch(0, 10)).await.unwrap();

    let mut snapshot = reader.sqlite_pool().unwrap().begin().await.unwrap();
    let count = |sql| sqlx::query_scalar::<_, i64>(sql);
    let before = count("SELECT COUNT(*) FROM metric_points")
        .fetch_one(&mut *snapshot)
        .await
        .unwrap();
    assert_eq!(before, 10);
    // The writer commits while the reader holds its snapshot (it would wait for the busy
    // timeout, 30 s, without WAL).
    tokio::time::timeout(
        Duration::from_secs(5),
        writer.ingest_metrics(run, &batch(10, 10)),
    )
    .await
    .expect("the writer was blocked by a reader")
    .unwrap();
    let still = count("SELECT COUNT(*) FROM metric_points")
        .fetch_one(&mut *snapshot)
        .await
        .unwrap();
    assert_eq!(still, 10, "the reader's snapshot is stable");
    snapshot.commit().await.unwrap();
    assert_eq!(reader.summaries(run).await.unwrap()[0].count, 20);
}

const CHILD_DB: &str = "TOWERLAB_STORE_TEST_CLAIMER_DB";
const CHILD_NAME: &str = "TOWERLAB_STORE_TEST_CLAIMER_NAME";

/// Entry point of the claimer processes started by `separate_processes_never_share_a_run`.
#[tokio::test]
#[ignore = "helper process of separate_processes_never_share_a_run"]
async fn claimer_process() {
    let db = std::env::var(CHILD_DB).expect("started by separate_processes_never_share_a_run");
    let name = std::env::var(CHILD_NAME).unwrap();
    let store = Store::open(db).await.unwrap();
    let me = worker(&name);
    while let Some(claim) = store.claim(&me, None).await.unwrap() {
        println!("CLAIMED {}", claim.run.id);
        store.finish(&claim.lease).await.unwrap();
    }
}

async fn separate_processes_never_share_a_run(kind: Kind) {
    let (store, dir) = temp_store(kind).await;
    let exp = experiment(&store, "procs").await;
    let n = 90;
    store
        .create_runs(exp, &(0..n).map(new_run).collect::<Vec<_>>())
        .await
        .unwrap();
    let exe = std::env::current_exe().unwrap();
    let children: Vec<_> = (0..3)
        .map(|i| {
            Command::new(&exe)
                .args(["claimer_process", "--exact", "--ignored", "--nocapture"])
                .env(CHILD_DB, dir.db())
                .env(CHILD_NAME, format!("proc{i}"))
                .output_async()
        })
        .collect();
    let mut claimed = Vec::new();
    for child in children {
        let out = child.await.unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let stdout = String::from_utf8(out.stdout).unwrap();
        claimed.extend(
            stdout
                .lines()
                .filter_map(|l| l.strip_prefix("CLAIMED "))
                .map(|id| RunId(id.trim().parse().unwrap())),
        );
    }
    assert_eq!(claimed.len(), n, "every run claimed once");
    assert_eq!(claimed.iter().collect::<HashSet<_>>().len(), n);
    let state = store.queue_state(None).await.unwrap();
    assert_eq!(state.finished, n as i64);
}

/// Runs a command to completion without blocking the async runtime.
trait OutputAsync {
    fn output_async(&mut self) -> tokio::task::JoinHandle<std::process::Output>;
}

impl OutputAsync for Command {
    fn output_async(&mut self) -> tokio::task::JoinHandle<std::process::Output> {
        let child = self
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        tokio::task::spawn_blocking(move || child.wait_with_output().unwrap())
    }
}

on_both_backends!(
    readers_keep_reading_while_a_writer_writes,
    separate_processes_never_share_a_run,
);
