//! What the Slurm executor needs from the store: claiming one given run, putting a run stopped
//! by its scheduler back in the queue without spending retries, and the jobs runs were
//! submitted as.

mod common;

use common::{experiment, new_run, temp_store, worker, Kind};
use store::{FailOutcome, RetryPolicy, RunId, RunStatus};

async fn claim_run_takes_that_run_only_when_it_is_runnable(kind: Kind) {
    let (store, _dir) = temp_store(kind).await;
    let exp = experiment(&store, "slurm").await;
    let pretrain = store.create_runs(exp, &[new_run(0)]).await.unwrap()[0].id;
    let mut dependent = new_run(1);
    dependent.depends_on = Some("hash00000".into());
    let created = store
        .create_runs(exp, &[dependent, new_run(2)])
        .await
        .unwrap();
    let (fine_tune, other) = (created[0].id, created[1].id);

    // Not the lowest runnable id: exactly the run asked for.
    let claim = store
        .claim_run(&worker("w1"), other)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(claim.run.id, other);
    assert_eq!(claim.lease.attempt, 1);
    // Taken already: nobody else gets it.
    assert!(store
        .claim_run(&worker("w2"), other)
        .await
        .unwrap()
        .is_none());
    // Waiting for its pre-training run.
    assert!(store
        .claim_run(&worker("w2"), fine_tune)
        .await
        .unwrap()
        .is_none());
    let pre = store
        .claim_run(&worker("w2"), pretrain)
        .await
        .unwrap()
        .unwrap();
    store.finish(&pre.lease).await.unwrap();
    let ft = store
        .claim_run(&worker("w3"), fine_tune)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(ft.run.id, fine_tune);
    // Ended runs and runs that do not exist are not claimable.
    assert!(store
        .claim_run(&worker("w4"), pretrain)
        .await
        .unwrap()
        .is_none());
    assert!(store
        .claim_run(&worker("w4"), RunId(999))
        .await
        .unwrap()
        .is_none());
}

async fn a_released_run_is_queued_again_without_spending_retries(kind: Kind) {
    let (store, _dir) = temp_store(kind).await;
    let exp = experiment(&store, "slurm").await;
    let run = store.create_runs(exp, &[new_run(0)]).await.unwrap()[0].id;
    let policy = RetryPolicy::default();
    // Many more stops than the retry policy allows failures: each resumes.
    for attempt in 1..=6 {
        let claim = store.claim_run(&worker("w"), run).await.unwrap().unwrap();
        assert_eq!(claim.lease.attempt, attempt);
        assert_eq!(
            store.release(&claim.lease).await.unwrap(),
            RunStatus::Queued
        );
        // A stale lease of that attempt can no longer write.
        assert!(store.release(&claim.lease).await.is_err());
    }
    let row = store.run(run).await.unwrap().unwrap();
    assert_eq!(row.status, RunStatus::Queued);
    assert_eq!(row.failure_class, None);
    // A killed worker still gets its whole budget (3 attempts): the stops spent none of it.
    for left in [true, true, false] {
        let claim = store.claim_run(&worker("w"), run).await.unwrap().unwrap();
        let out = store
            .crash_run(run, "node lost", &policy)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(
            matches!(out, FailOutcome::Requeued { .. }),
            left,
            "{out:?} {claim:?}"
        );
    }

    // Someone cancelled it while it ran: released means cancelled then.
    let (store, _dir) = temp_store(kind).await;
    let exp = experiment(&store, "slurm").await;
    let run = store.create_runs(exp, &[new_run(0)]).await.unwrap()[0].id;
    let claim = store.claim_run(&worker("w"), run).await.unwrap().unwrap();
    store.cancel_runs(&[run]).await.unwrap();
    assert_eq!(
        store.release(&claim.lease).await.unwrap(),
        RunStatus::Cancelled
    );
}

async fn slurm_jobs_are_recorded_once_per_submission_and_the_newest_is_current(kind: Kind) {
    let (store, _dir) = temp_store(kind).await;
    let exp = experiment(&store, "slurm").await;
    let ids: Vec<RunId> = store
        .create_runs(exp, &[new_run(0), new_run(1), new_run(2)])
        .await
        .unwrap()
        .iter()
        .map(|c| c.id)
        .collect();
    store
        .record_slurm_jobs(&[(ids[0], 41, 0), (ids[1], 41, 1)])
        .await
        .unwrap();
    // The task records itself again when it starts: nothing changes.
    store.record_slurm_jobs(&[(ids[1], 41, 1)]).await.unwrap();
    std::thread::sleep(std::time::Duration::from_millis(5));
    // Run 0 re-submitted as task 0 of job 57.
    store.record_slurm_jobs(&[(ids[0], 57, 0)]).await.unwrap();

    let jobs = store.slurm_jobs(&ids).await.unwrap();
    assert_eq!(jobs.len(), 2, "{jobs:?}");
    assert_eq!(jobs[&ids[0]].task_name(), "57_0");
    assert_eq!(jobs[&ids[1]].task_name(), "41_1");
    assert!(!jobs.contains_key(&ids[2]));
    let history = store.slurm_job_history(ids[0]).await.unwrap();
    let names: Vec<String> = history.iter().map(|j| j.task_name()).collect();
    assert_eq!(names, ["41_0", "57_0"]);

    // Deleting a run deletes its jobs.
    assert_eq!(store.delete_runs(&[ids[0]]).await.unwrap(), 1);
    assert!(store.slurm_job_history(ids[0]).await.unwrap().is_empty());
}

/// A store made before the Slurm jobs table (every earlier migration) opens, keeps its runs,
/// and records jobs for them.
#[tokio::test]
async fn a_store_from_before_slurm_jobs_is_upgraded_with_its_runs() {
    use sqlx::sqlite::{SqliteConnectOptions, SqlitePoolOptions};
    let dir = tempfile::tempdir().unwrap();
    let old = dir.path().join("migrations");
    std::fs::create_dir(&old).unwrap();
    let src = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("migrations");
    for e in std::fs::read_dir(&src).unwrap() {
        let p = e.unwrap().path();
        // SQLite's migrations only (PostgreSQL's are in a folder of their own).
        if p.is_file() && !p.to_string_lossy().contains("slurm_jobs") {
            std::fs::copy(&p, old.join(p.file_name().unwrap())).unwrap();
        }
    }
    let path = dir.path().join("old.db");
    let pool = SqlitePoolOptions::new()
        .max_connections(1)
        .connect_with(
            SqliteConnectOptions::new()
                .filename(&path)
                .create_if_missing(true),
        )
        .await
        .unwrap();
    sqlx::migrate::Migrator::new(old.as_path())
        .await
        .unwrap()
        .run(&pool)
        .await
        .unwrap();
    for sql in [
        "INSERT INTO experiments (id, name, path, content_hash, created_ms, updated_ms) \
         VALUES (1, 'legacy', 'legacy.toml', 'h', 1, 1)",
        "INSERT INTO runs (id, experiment_id, hash, cell_key, task, created_ms) \
         VALUES (1, 1, 'h1', 'k', 'vqa', 1)",
    ] {
        sqlx::query(sql).execute(&pool).await.unwrap();
    }
    pool.close().await;

    let store = store::Store::open(&path).await.unwrap();
    assert_eq!(
        store.schema_version().await.unwrap(),
        store::MIGRATOR.iter().map(|m| m.version).max().unwrap()
    );
    let run = store.run(RunId(1)).await.unwrap().unwrap();
    assert_eq!(run.status, RunStatus::Queued);
    assert!(store.slurm_jobs(&[RunId(1)]).await.unwrap().is_empty());
    store.record_slurm_jobs(&[(RunId(1), 7, 0)]).await.unwrap();
    assert_eq!(
        store.slurm_jobs(&[RunId(1)]).await.unwrap()[&RunId(1)].task_name(),
        "7_0"
    );
}

on_both_backends!(
    claim_run_takes_that_run_only_when_it_is_runnable,
    a_released_run_is_queued_again_without_spending_retries,
    slurm_jobs_are_recorded_once_per_submission_and_the_newest_is_current,
);
