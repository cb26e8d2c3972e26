//! Process-level runner tests with the real `towerlab` binary and the real training loop:
//! two workers sharing one store execute every run exactly once, and a sweep killed with
//! SIGKILL mid-run finishes when started again, resuming the killed run from its checkpoint
//! without duplicating or losing metric points. On a PostgreSQL store (a server
//! scripts/pg-test-server.sh starts), two workers with different host names (each in its own
//! UTS namespace, `unshare --uts`) claim every queued run once.
//!
//! The binary must be built with the training loop first (`cargo build -p app`); these tests
//! find it beside their own executable in the target directory.

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use store::{RunFilter, RunStatus, SeriesOptions, Store};
use testkit::towerlab::{self, runtime as rt, TinyVqa};

const MAX_STEPS: i64 = 40;

fn experiment(data: &Path, seeds: &str) -> String {
    TinyVqa {
        name: "crash-test",
        data: &data.display().to_string(),
        max_steps: MAX_STEPS,
        grid: &format!("manager_type = [\"BT\", \"SAUE\"]\nseeds = {seeds}"),
        ..TinyVqa::default()
    }
    .toml()
}

fn spawn(dir: &Path, args: &[&str]) -> Child {
    Command::new(towerlab::binary())
        .args(args)
        .arg("--db")
        .arg(dir.join("towerlab.db"))
        .current_dir(dir)
        .env_remove("TOWERLAB_DB")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap()
}

fn finish(child: Child, what: &str) -> String {
    towerlab::success_stdout(&child.wait_with_output().unwrap(), what)
}

/// Every run finished once per step: `train/loss` has exactly the steps 1..=MAX_STEPS.
async fn assert_complete_series(store: &Store) {
    for run in store.list_runs(&RunFilter::default()).await.unwrap() {
        assert_eq!(run.status, RunStatus::Finished, "run {}", run.id);
        // The step column shows where the run ended, not the last periodic heartbeat.
        assert_eq!(run.progress_step, Some(MAX_STEPS), "run {}", run.id);
        towerlab::assert_steps(store, run.id, "train/vqa/loss", MAX_STEPS).await;
    }
}

#[test]
fn two_worker_processes_execute_every_run_exactly_once() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    std::fs::write(
        dir.join("exp.toml"),
        experiment(&dir.join("data"), "[0, 1, 2]"),
    )
    .unwrap();
    finish(spawn(dir, &["queue", "exp.toml"]), "queue");
    let a = spawn(dir, &["worker", "--once"]);
    let b = spawn(dir, &["worker", "--once"]);
    finish(a, "worker a");
    finish(b, "worker b");
    rt().block_on(async {
        let store = Store::open(dir.join("towerlab.db")).await.unwrap();
        let runs = store.list_runs(&RunFilter::default()).await.unwrap();
        assert_eq!(runs.len(), 6);
        for r in &runs {
            assert_eq!(
                r.attempts, 1,
                "run {} was claimed {} times",
                r.id, r.attempts
            );
        }
        assert_complete_series(&store).await;
    });
}

/// `towerlab ARGS --db DB` as host `host`: in a UTS namespace of its own, renamed (as a worker
/// on another node of a cluster would be).
fn spawn_on_host(dir: &Path, db: &str, host: &str, args: &[&str]) -> Child {
    let towerlab = towerlab::binary();
    Command::new("unshare")
        .args(["--uts", "sh", "-c", "hostname \"$0\" && exec \"$@\"", host])
        .arg(&towerlab)
        .args(args)
        .arg("--db")
        .arg(db)
        .current_dir(dir)
        .env_remove("TOWERLAB_DB")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap()
}

#[test]
fn two_workers_on_different_hosts_claim_every_run_once_on_postgres() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let db = store::testing::PgServer::shared().fresh_database_blocking();
    std::fs::write(
        dir.join("exp.toml"),
        experiment(&dir.join("data"), "[0, 1, 2]"),
    )
    .unwrap();
    finish(
        spawn_on_host(dir, &db, "node-a", &["queue", "exp.toml"]),
        "queue",
    );
    let a = spawn_on_host(dir, &db, "node-a", &["worker", "--once"]);
    let b = spawn_on_host(dir, &db, "node-b", &["worker", "--once"]);
    finish(a, "worker on node-a (unshare --uts needs root)");
    finish(b, "worker on node-b");
    rt().block_on(async {
        let store = Store::open(&db).await.unwrap();
        let runs = store.list_runs(&RunFilter::default()).await.unwrap();
        assert_eq!(runs.len(), 6);
        for r in &runs {
            assert_eq!(
                r.attempts, 1,
                "run {} was claimed {} times",
                r.id, r.attempts
            );
        }
        let hosts: std::collections::BTreeSet<_> =
            runs.iter().filter_map(|r| r.host.clone()).collect();
        assert_eq!(
            hosts,
            ["node-a", "node-b"].map(String::from).into(),
            "both workers claimed runs: {runs:#?}"
        );
    });
}

#[test]
fn a_sweep_killed_mid_run_resumes_from_its_checkpoint_without_losing_points() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    std::fs::write(dir.join("exp.toml"), experiment(&dir.join("data"), "[0]")).unwrap();
    let db = dir.join("towerlab.db");

    let mut child = spawn(dir, &["run", "exp.toml"]);
    // Kill it once a run has a recorded checkpoint and has trained past it.
    let deadline = Instant::now() + Duration::from_secs(240);
    let (killed, checkpoint, before) = rt().block_on(async {
        loop {
            assert!(
                Instant::now() < deadline,
                "no checkpoint within the time limit"
            );
            if let Some(status) = child.try_wait().unwrap() {
                panic!("the sweep ended ({status}) before it could be killed");
            }
            if db.exists() {
                let store = Store::open(&db).await.unwrap();
                let runs = store.list_runs(&RunFilter::default()).await.unwrap();
                for r in runs.iter().filter(|r| r.status == RunStatus::Running) {
                    let Some(k) = r.checkpoint_step else { continue };
                    let before = store
                        .metric_series(r.id, "train/vqa/loss", SeriesOptions::default())
                        .await
                        .unwrap();
                    // Committed points past the checkpoint: it is mid-way between two.
                    if before.last().is_none_or(|p| p.step <= k) {
                        continue;
                    }
                    child.kill().unwrap();
                    child.wait().unwrap();
                    store.close().await;
                    return (r.id, k, before);
                }
                store.close().await;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    });
    assert!(before.iter().any(|p| p.step <= checkpoint));

    let out = finish(spawn(dir, &["run", "exp.toml"]), "the second run");
    assert!(out.contains("crashed"), "the dead run is reported: {out}");

    rt().block_on(async {
        let store = Store::open(&db).await.unwrap();
        assert_complete_series(&store).await;
        let run = store.run(killed).await.unwrap().unwrap();
        assert_eq!(run.attempts, 2, "the killed run ran once more");
        // Points up to the checkpoint were kept, not recomputed: same wall times.
        let after = store
            .metric_series(killed, "train/vqa/loss", SeriesOptions::default())
            .await
            .unwrap();
        for p in before.iter().filter(|p| p.step <= checkpoint) {
            let q = after.iter().find(|q| q.step == p.step).unwrap();
            assert_eq!(
                (q.value, q.wall_ms),
                (p.value, p.wall_ms),
                "step {}",
                p.step
            );
        }
        let logs = store.log_lines(killed, None, None).await.unwrap();
        let resumed = format!("resumed from the checkpoint at step {checkpoint}");
        assert!(
            logs.iter()
                .any(|l| l.attempt == 2 && l.text.contains(&resumed)),
            "{logs:#?}"
        );
        store.close().await;
    });

    let again = finish(spawn(dir, &["run", "exp.toml"]), "the third run");
    assert!(again.contains("nothing to run"), "{again}");
}
