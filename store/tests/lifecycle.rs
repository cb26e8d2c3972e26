//! Claims, heartbeats, failures, crash detection and retries.

mod common;

use std::collections::HashSet;
use std::time::Duration;

use common::{experiment, new_run, temp_store, worker, Kind};
use store::{
    ArtifactKind, CancelOutcome, FailOutcome, FailureClass, HeartbeatReply, MetricPoint,
    NewArtifact, Progress, RetryPolicy, RunId, RunStatus, StoreError,
};

async fn many_tasks_claiming_at_once_never_share_a_run(kind: Kind) {
    let (store, _dir) = temp_store(kind).await;
    let exp = experiment(&store, "c").await;
    let n = 60;
    store
        .create_runs(exp, &(0..n).map(new_run).collect::<Vec<_>>())
        .await
        .unwrap();
    let mut tasks = Vec::new();
    for w in 0..12 {
        let store = store.clone();
        tasks.push(tokio::spawn(async move {
            let me = worker(&format!("w{w}"));
            let mut mine = Vec::new();
            while let Some(claim) = store.claim(&me, None).await.unwrap() {
                mine.push(claim.run.id);
            }
            mine
        }));
    }
    let mut all = Vec::new();
    for t in tasks {
        all.extend(t.await.unwrap());
    }
    let distinct: HashSet<RunId> = all.iter().copied().collect();
    assert_eq!(all.len(), n, "every run claimed exactly once");
    assert_eq!(distinct.len(), n);
    let state = store.queue_state(Some(exp)).await.unwrap();
    assert_eq!((state.queued, state.running), (0, n as i64));
}

async fn two_pools_on_one_file_never_share_a_run(kind: Kind) {
    let (a, dir) = temp_store(kind).await;
    let b = store::Store::open(dir.db()).await.unwrap();
    let exp = experiment(&a, "c").await;
    let n = 40;
    a.create_runs(exp, &(0..n).map(new_run).collect::<Vec<_>>())
        .await
        .unwrap();
    let mut tasks = Vec::new();
    for (i, s) in [a.clone(), b.clone(), a.clone(), b.clone()]
        .into_iter()
        .enumerate()
    {
        tasks.push(tokio::spawn(async move {
            let me = worker(&format!("p{i}"));
            let mut mine = Vec::new();
            while let Some(claim) = s.claim(&me, None).await.unwrap() {
                mine.push(claim.run.id);
            }
            mine
        }));
    }
    let mut all = Vec::new();
    for t in tasks {
        all.extend(t.await.unwrap());
    }
    assert_eq!(all.len(), n);
    assert_eq!(all.iter().collect::<HashSet<_>>().len(), n);
}

async fn a_dependent_run_waits_for_its_dependency_to_finish(kind: Kind) {
    let (store, _dir) = temp_store(kind).await;
    let exp = experiment(&store, "vlp").await;
    let pre = new_run(0);
    let mut ft = new_run(1);
    ft.depends_on = Some(pre.hash.clone());
    let created = store.create_runs(exp, &[pre, ft]).await.unwrap();
    let w = worker("w");
    let first = store.claim(&w, None).await.unwrap().unwrap();
    assert_eq!(first.run.id, created[0].id);
    assert!(
        store.claim(&w, None).await.unwrap().is_none(),
        "blocked until pre-training ends"
    );
    let state = store.queue_state(None).await.unwrap();
    assert_eq!((state.queued, state.runnable, state.blocked), (1, 0, 0));
    store.finish(&first.lease).await.unwrap();
    let second = store.claim(&w, None).await.unwrap().unwrap();
    assert_eq!(second.run.id, created[1].id);
    assert_eq!(second.run.depends_on, Some(created[0].id));

    // A failed dependency blocks its dependents.
    let mut pre2 = new_run(2);
    pre2.task = "pretrain".into();
    let mut ft2 = new_run(3);
    ft2.depends_on = Some(pre2.hash.clone());
    store.create_runs(exp, &[pre2, ft2]).await.unwrap();
    let c = store.claim(&w, None).await.unwrap().unwrap();
    store
        .fail(&c.lease, FailureClass::Error, "boom", &RetryPolicy::never())
        .await
        .unwrap();
    let state = store.queue_state(Some(exp)).await.unwrap();
    assert_eq!((state.queued, state.runnable, state.blocked), (1, 0, 1));
    assert_eq!(state.failed, 1);
    assert!(store.claim(&w, None).await.unwrap().is_none());
}

async fn claim_records_the_worker_and_heartbeats_record_progress(kind: Kind) {
    let (store, _dir) = temp_store(kind).await;
    let exp = experiment(&store, "h").await;
    let other = experiment(&store, "other").await;
    store.create_runs(other, &[new_run(9)]).await.unwrap();
    store.create_runs(exp, &[new_run(0)]).await.unwrap();
    let w = worker("w1");
    let claim = store.claim(&w, Some(exp)).await.unwrap().unwrap();
    assert_eq!(
        claim.run.experiment_id, exp,
        "claims only in the asked experiment"
    );
    assert_eq!(claim.run.status, RunStatus::Running);
    assert_eq!(claim.run.attempts, 1);
    assert_eq!(claim.lease.attempt, 1);
    assert_eq!(claim.run.worker.as_deref(), Some("w1"));
    assert_eq!(claim.run.host.as_deref(), Some("testhost"));
    assert_eq!(claim.run.pid, Some(4242));
    assert_eq!(claim.run.device.as_deref(), Some("cpu"));
    assert_eq!(claim.run.engine_version.as_deref(), Some("0.1.0"));
    assert!(claim.run.started_ms.is_some());

    let reply = store
        .heartbeat(
            &claim.lease,
            Some(Progress {
                step: 50,
                total: Some(200),
            }),
        )
        .await
        .unwrap();
    assert_eq!(reply, HeartbeatReply::Continue);
    let run = store.run(claim.run.id).await.unwrap().unwrap();
    assert_eq!(
        (run.progress_step, run.progress_total),
        (Some(50), Some(200))
    );

    // Cancelling a running run is a request the worker sees on its next heartbeat.
    let out = store
        .cancel_runs(&[claim.run.id, RunId(999)])
        .await
        .unwrap();
    assert_eq!(out, vec![CancelOutcome::Requested, CancelOutcome::NotFound]);
    let reply = store.heartbeat(&claim.lease, None).await.unwrap();
    assert_eq!(reply, HeartbeatReply::CancelRequested);
    store.acknowledge_cancel(&claim.lease).await.unwrap();
    let run = store.run(claim.run.id).await.unwrap().unwrap();
    assert_eq!(run.status, RunStatus::Cancelled);
    assert!(run.ended_ms.is_some());
    // The lease is gone now.
    let err = store.heartbeat(&claim.lease, None).await.unwrap_err();
    assert!(
        matches!(
            err,
            StoreError::LeaseLost {
                status: RunStatus::Cancelled,
                ..
            }
        ),
        "{err}"
    );
    // A queued run is cancelled at once; an ended one is left alone.
    let queued = store.list_runs(&Default::default()).await.unwrap()[0].id;
    let out = store.cancel_runs(&[queued, claim.run.id]).await.unwrap();
    assert_eq!(
        out,
        vec![
            CancelOutcome::Cancelled,
            CancelOutcome::AlreadyEnded(RunStatus::Cancelled)
        ]
    );
}

async fn failures_are_retried_per_class_then_end_failed(kind: Kind) {
    let (store, _dir) = temp_store(kind).await;
    let exp = experiment(&store, "f").await;
    store.create_runs(exp, &[new_run(0)]).await.unwrap();
    let policy = RetryPolicy {
        oom: 2,
        ..RetryPolicy::never()
    };
    let w = worker("w");

    let c1 = store.claim(&w, None).await.unwrap().unwrap();
    let out = store
        .fail(&c1.lease, FailureClass::Oom, "CUDA out of memory", &policy)
        .await
        .unwrap();
    assert_eq!(out, FailOutcome::Requeued { attempts: 1 });
    let run = store.run(c1.run.id).await.unwrap().unwrap();
    assert_eq!(run.status, RunStatus::Queued);
    assert_eq!(run.failure_class, Some(FailureClass::Oom));

    let c2 = store.claim(&w, None).await.unwrap().unwrap();
    assert_eq!(c2.lease.attempt, 2);
    // The first attempt's lease is stale now.
    let err = store.finish(&c1.lease).await.unwrap_err();
    assert!(
        matches!(err, StoreError::LeaseLost { attempts: 2, .. }),
        "{err}"
    );
    let out = store
        .fail(&c2.lease, FailureClass::Oom, "again", &policy)
        .await
        .unwrap();
    assert_eq!(out, FailOutcome::Ended(RunStatus::Failed));
    let run = store.run(c1.run.id).await.unwrap().unwrap();
    assert_eq!(run.status, RunStatus::Failed);
    assert_eq!(run.failure_message.as_deref(), Some("again"));
    assert_eq!(run.attempts, 2);

    // A user re-queue gives a fresh budget, while attempts keep counting (a resumed run says
    // attempt 3, and no earlier lease matches it); finishing clears the failure.
    assert_eq!(
        store.requeue_runs(&[run.id], false).await.unwrap(),
        vec![run.id]
    );
    let c3 = store.claim(&w, None).await.unwrap().unwrap();
    assert_eq!(c3.lease.attempt, 3);
    assert!(store.finish(&c2.lease).await.is_err(), "an old lease");
    let out = store
        .fail(&c3.lease, FailureClass::Oom, "once more", &policy)
        .await
        .unwrap();
    assert_eq!(
        out,
        FailOutcome::Requeued { attempts: 3 },
        "the budget is fresh"
    );
    let c4 = store.claim(&w, None).await.unwrap().unwrap();
    assert_eq!(c4.lease.attempt, 4);
    store.finish(&c4.lease).await.unwrap();
    let run = store.run(run.id).await.unwrap().unwrap();
    assert_eq!(run.status, RunStatus::Finished);
    assert_eq!(run.failure_class, None);
    // A finished run is only re-queued fresh.
    assert!(store
        .requeue_runs(&[run.id], false)
        .await
        .unwrap()
        .is_empty());
}

async fn stale_heartbeats_are_reaped_requeued_and_resume_from_the_checkpoint(kind: Kind) {
    let (store, _dir) = temp_store(kind).await;
    let exp = experiment(&store, "crash").await;
    store
        .create_runs(exp, &[new_run(0), new_run(1)])
        .await
        .unwrap();
    let policy = RetryPolicy {
        killed: 2,
        ..RetryPolicy::never()
    };
    let w = worker("w");
    let c = store.claim(&w, None).await.unwrap().unwrap();
    let run = c.run.id;
    let live = store.claim(&worker("alive"), None).await.unwrap().unwrap();

    // The first attempt logs 0..=150 and checkpoints at 100, then goes silent.
    let points: Vec<MetricPoint> = (0..=150)
        .map(|s| MetricPoint {
            key: "loss".into(),
            step: s,
            value: 1000.0 - s as f64,
            wall_ms: s,
        })
        .collect();
    store.ingest_metrics(run, &points).await.unwrap();
    store
        .add_artifact(
            run,
            &NewArtifact {
                kind: ArtifactKind::Checkpoint,
                path: "ckpt/100".into(),
                step: Some(100),
                size_bytes: None,
            },
        )
        .await
        .unwrap();
    // Nothing is stale yet with a generous timeout.
    assert!(store
        .reap_stale(Duration::from_secs(60), &policy)
        .await
        .unwrap()
        .is_empty());
    tokio::time::sleep(Duration::from_millis(60)).await;
    store.heartbeat(&live.lease, None).await.unwrap();
    let reaped = store
        .reap_stale(Duration::from_millis(40), &policy)
        .await
        .unwrap();
    assert_eq!(reaped.len(), 1, "only the silent run: {reaped:?}");
    assert_eq!(reaped[0].run_id, run);
    assert_eq!(reaped[0].outcome, FailOutcome::Requeued { attempts: 1 });
    assert_eq!(reaped[0].worker.as_deref(), Some("w"));
    let r = store.run(run).await.unwrap().unwrap();
    assert_eq!(r.status, RunStatus::Queued);
    assert_eq!(r.failure_class, Some(FailureClass::Killed));
    assert!(
        r.failure_message
            .as_deref()
            .unwrap()
            .contains("no heartbeat"),
        "{r:?}"
    );
    assert_eq!(r.checkpoint_step, Some(100), "checkpoint kept for resume");
    // The zombie cannot write its state any more.
    assert!(matches!(
        store.heartbeat(&c.lease, None).await.unwrap_err(),
        StoreError::LeaseLost { .. }
    ));

    // The next attempt resumes: points after the checkpoint are dropped, summaries follow.
    let c2 = store.claim(&w, None).await.unwrap().unwrap();
    assert_eq!(c2.run.id, run);
    assert_eq!(c2.run.checkpoint_path.as_deref(), Some("ckpt/100"));
    assert_eq!(c2.run.progress_step, Some(100));
    let series = store
        .metric_series(run, "loss", Default::default())
        .await
        .unwrap();
    assert_eq!(series.last().unwrap().step, 100);
    let s = &store.summaries(run).await.unwrap()[0];
    assert_eq!(
        (s.count, s.last_step, s.last, s.min),
        (101, Some(100), Some(900.0), Some(900.0))
    );
    // Re-logging steps 101.. is stored, not ignored.
    assert_eq!(store.ingest_metrics(run, &points[101..]).await.unwrap(), 50);

    // Out of retries: the second silent attempt ends crashed.
    tokio::time::sleep(Duration::from_millis(60)).await;
    store.heartbeat(&live.lease, None).await.unwrap();
    let reaped = store
        .reap_stale(Duration::from_millis(40), &policy)
        .await
        .unwrap();
    assert_eq!(reaped.len(), 1);
    assert_eq!(reaped[0].outcome, FailOutcome::Ended(RunStatus::Crashed));
    assert_eq!(
        store.run(run).await.unwrap().unwrap().status,
        RunStatus::Crashed
    );

    // A fresh re-queue starts over without data (its attempts keep counting).
    store.requeue_runs(&[run], true).await.unwrap();
    let r = store.run(run).await.unwrap().unwrap();
    assert_eq!(
        (r.status, r.checkpoint_path, r.attempts),
        (RunStatus::Queued, None, 2)
    );
    assert!(store
        .metric_series(run, "loss", Default::default())
        .await
        .unwrap()
        .is_empty());
    assert_eq!(store.summaries(run).await.unwrap()[0].count, 0);
    assert!(store.artifacts(run).await.unwrap().is_empty());
}

async fn a_supervisor_can_crash_a_run_whose_worker_died(kind: Kind) {
    let (store, _dir) = temp_store(kind).await;
    let exp = experiment(&store, "s").await;
    store.create_runs(exp, &[new_run(0)]).await.unwrap();
    let c = store.claim(&worker("w"), None).await.unwrap().unwrap();
    let out = store
        .crash_run(
            c.run.id,
            "worker exited with signal 9",
            &RetryPolicy::default(),
        )
        .await
        .unwrap();
    assert_eq!(out, Some(FailOutcome::Requeued { attempts: 1 }));
    // Not running any more: nothing to do.
    let out = store
        .crash_run(c.run.id, "again", &RetryPolicy::default())
        .await
        .unwrap();
    assert_eq!(out, None);
}

on_both_backends!(
    many_tasks_claiming_at_once_never_share_a_run,
    two_pools_on_one_file_never_share_a_run,
    a_dependent_run_waits_for_its_dependency_to_finish,
    claim_records_the_worker_and_heartbeats_record_progress,
    failures_are_retried_per_class_then_end_failed,
    stale_heartbeats_are_reaped_requeued_and_resume_from_the_checkpoint,
    a_supervisor_can_crash_a_run_whose_worker_died,
);
