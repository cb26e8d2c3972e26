//! What the Slurm executor needs from the store: claiming one given run, putting a run stopped
//! by its scheduler back in the queue without spending retries, and the jobs runs were
//! submitted as.

mod common;

use common::{experiment, new_run, temp_store, worker};
use store::{FailOutcome, RetryPolicy, RunId, RunStatus};

#[tokio::test]
async fn claim_run_takes_that_run_only_when_it_is_runnable() {
    let (store, _dir) = temp_store().await;
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

#[tokio::test]
async fn a_released_run_is_queued_again_without_spending_retries() {
    let (store, _dir) = temp_store().await;
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
    let (store, _dir) = temp_store().await;
    let exp = experiment(&store, "slurm").await;
    let run = store.create_runs(exp, &[new_run(0)]).await.unwrap()[0].id;
    let claim = store.claim_run(&worker("w"), run).await.unwrap().unwrap();
    store.cancel_runs(&[run]).await.unwrap();
    assert_eq!(
        store.release(&claim.lease).await.unwrap(),
        RunStatus::Cancelled
    );
}

#[tokio::test]
async fn slurm_jobs_are_recorded_once_per_submission_and_the_newest_is_current() {
    let (store, _dir) = temp_store().await;
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
    sqlx::query("DELETE FROM runs WHERE id = ?1")
        .bind(ids[0])
        .execute(store.pool())
        .await
        .unwrap();
    assert!(store.slurm_job_history(ids[0]).await.unwrap().is_empty());
}
