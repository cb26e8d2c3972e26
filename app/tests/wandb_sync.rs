//! W&B sync against a local W&B-compatible server: full sync, idempotent re-sync, append,
//! faults, auth errors, request limits, live mode and key hygiene.

use app::wandb;
use std::sync::Arc;
use std::time::Duration;

use app::wandb::cli::{execute, WandbArgs};
use app::wandb::fixture::{fixture_run, FixtureRun, MemorySource};
use app::wandb::{
    sync_runs, wandb_run_id, ApiKey, FileOffsets, LiveHandle, LiveOptions, MemoryOffsets,
    RetryPolicy, RunState, Selection, SyncError, SyncOptions, WandbConfig,
};
use serde_json::Value;
use testkit::wandb_server::{self, Fault, Target, TestServer, DEFAULT_ENTITY};

const KEY: &str = "tl-secret-KEY-0123456789abcdef0123456789";
const METRICS: usize = 15;

fn config(server: &TestServer) -> WandbConfig {
    let mut c = WandbConfig::new(&server.base_url, "towerlab-test", ApiKey::new(KEY).unwrap());
    c.retry = RetryPolicy {
        max_attempts: 8,
        base_delay: Duration::from_millis(5),
        max_delay: Duration::from_millis(40),
        max_retry_after: Duration::from_secs(5),
    };
    // Long enough for a loaded debug build; the slow faults go beyond it.
    c.request_timeout = Duration::from_millis(1000);
    c.connect_timeout = Duration::from_millis(1000);
    // Small requests so that a few hundred steps need several chunks.
    c.max_request_bytes = 32 * 1024;
    c.page_rows = 64;
    c
}

fn runs(steps: u64) -> Vec<FixtureRun> {
    vec![
        fixture_run("ablation", 0, steps, METRICS, RunState::Running),
        fixture_run("ablation", 1, steps, METRICS, RunState::Finished),
        fixture_run(
            "ablation",
            2,
            steps,
            METRICS,
            RunState::Failed { exit_code: 2 },
        ),
        fixture_run("baseline", 0, steps, METRICS, RunState::Finished),
    ]
}

fn options() -> SyncOptions {
    SyncOptions::default()
}

/// Every history line of every run is on the server exactly once, in order, equal to what
/// the source holds.
fn assert_history_complete(server: &TestServer, source: &MemorySource) {
    for id in source.run_ids() {
        let run = source.run(&id);
        let remote = server.run(&wandb_run_id(&run.meta.content_hash));
        let lines = remote.history();
        assert_eq!(lines.len(), run.history.len(), "run {id}: history length");
        for (line, row) in lines.iter().zip(&run.history) {
            assert_eq!(line["_step"], row.step, "run {id}");
            assert_eq!(line["_runtime"], row.runtime, "run {id}");
            assert_eq!(line["_timestamp"], row.timestamp, "run {id}");
            for (k, v) in &row.metrics {
                // serde_json's default float parser may be off by one ulp.
                let got = line[k.as_str()].as_f64().unwrap_or(f64::NAN);
                assert!(
                    (got - v).abs() <= v.abs() * 1e-15,
                    "run {id} step {} {k}: {got} != {v}",
                    row.step
                );
            }
            assert_eq!(line.as_object().unwrap().len(), 3 + row.metrics.len());
        }
    }
}

fn history_requests(server: &TestServer) -> usize {
    server
        .state()
        .requests
        .iter()
        .filter(|r| r.files.iter().any(|(f, _, _)| f == "wandb-history.jsonl"))
        .count()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn full_sync_then_nothing_new_then_append() {
    let server = TestServer::start(KEY);
    let source = Arc::new(MemorySource::new(runs(300)));
    let dir = tempfile::tempdir().unwrap();
    let offsets_path = dir.path().join("offsets.json");
    let offsets = Arc::new(FileOffsets::open(&offsets_path).unwrap());
    let config = config(&server);

    let report = sync_runs(&config, source.clone(), offsets.clone(), &options())
        .await
        .unwrap();
    assert_eq!(report.created(), 4, "{report}");
    assert_eq!(report.history_lines(), 1200);
    assert_eq!(report.log_lines(), 40);
    assert!(report.failures.is_empty(), "{report}");
    assert_history_complete(&server, &source);
    // Chunked by bytes: no body over the limit, several history requests per run.
    let chunks = history_requests(&server);
    assert!(chunks >= 4 * 4, "{chunks}");
    {
        let state = server.state();
        assert!(state.requests.iter().all(|r| r.bytes <= 32 * 1024));
        assert_eq!(
            state.history_writes, 1200,
            "no line sent twice without a fault"
        );
    }

    let run0 = source.run("ablation-run0");
    let remote = server.run(&wandb_run_id(&run0.meta.content_hash));
    assert_eq!(remote.entity, DEFAULT_ENTITY);
    assert_eq!(remote.project, "towerlab-test");
    let vars = &remote.upserts[0];
    assert_eq!(vars["groupName"], "ablation/manager=adaptive,seed=0");
    assert_eq!(vars["jobType"], "vqa");
    assert_eq!(vars["displayName"], "ablation seed 0");
    assert_eq!(
        vars["tags"],
        serde_json::json!(["manager=adaptive", "seed=0"])
    );
    let config_sent: Value = serde_json::from_str(vars["config"].as_str().unwrap()).unwrap();
    assert_eq!(config_sent["model"]["value"]["layers"], 6);
    assert_eq!(config_sent["seed"]["value"], 0);
    assert_eq!(remote.exit_code, None, "a running run is not completed");
    let summary: Value = serde_json::from_str(&remote.lines("wandb-summary.json")[0]).unwrap();
    assert_eq!(summary["val/acc"], 0.7);
    let logs = remote.lines("output.log");
    assert_eq!(logs.len(), 10);
    assert_eq!(logs[0], "2026-08-21T10:00:00.000000 epoch 0 of run 0");
    assert_eq!(logs[4], "ERROR 2026-08-21T10:00:04.000000 epoch 4 of run 0");
    let first = &remote.history()[0];
    assert!(first
        .get("manager/text/layer1/expert0")
        .is_some_and(Value::is_f64));
    let failed = source.run("ablation-run2");
    assert_eq!(
        server
            .run(&wandb_run_id(&failed.meta.content_hash))
            .exit_code,
        Some(2)
    );
    let finished = source.run("baseline-run0");
    assert_eq!(
        server
            .run(&wandb_run_id(&finished.meta.content_hash))
            .exit_code,
        Some(0)
    );

    // Second sync, offsets re-read from the file: nothing is sent at all.
    let requests = server.request_count();
    let offsets = Arc::new(FileOffsets::open(&offsets_path).unwrap());
    let report = sync_runs(&config, source.clone(), offsets.clone(), &options())
        .await
        .unwrap();
    assert_eq!(report.unchanged(), 4, "{report}");
    assert_eq!(report.history_lines() + report.log_lines(), 0);
    assert_eq!(
        server.request_count(),
        requests,
        "an unchanged sync sends nothing"
    );

    // The running run gains 50 steps and finishes: only those lines, then `complete`.
    source.append_steps("ablation-run0", 50, METRICS);
    source.update("ablation-run0", |r| r.meta.status = RunState::Finished);
    let report = sync_runs(&config, source.clone(), offsets.clone(), &options())
        .await
        .unwrap();
    assert_eq!(report.updated(), 1, "{report}");
    assert_eq!(report.unchanged(), 3, "{report}");
    assert_eq!(report.history_lines(), 50);
    assert_eq!(report.log_lines(), 1);
    assert_history_complete(&server, &source);
    let remote = server.run(&wandb_run_id(&run0.meta.content_hash));
    assert_eq!(remote.exit_code, Some(0));
    assert_eq!(
        remote.upserts.len(),
        1,
        "config unchanged: no second UpsertBucket"
    );
    let appended: Vec<_> = server.state().requests[requests..]
        .iter()
        .flat_map(|r| r.files.clone())
        .filter(|(f, _, _)| f == "wandb-history.jsonl")
        .collect();
    assert_eq!(appended.first().map(|a| a.1), Some(300), "{appended:?}");
    assert_eq!(server.state().history_writes, 1250);

    // A config change re-sends UpsertBucket only.
    source.update("ablation-run1", |r| {
        r.meta.config.insert("notes".into(), "rerun".into());
    });
    let before = server.request_count();
    let report = sync_runs(&config, source.clone(), offsets.clone(), &options())
        .await
        .unwrap();
    assert_eq!(report.updated(), 1, "{report}");
    assert_eq!(server.request_count(), before + 1);
    let run1 = source.run("ablation-run1");
    assert_eq!(
        server
            .run(&wandb_run_id(&run1.meta.content_hash))
            .upserts
            .len(),
        2
    );

    // The offsets file holds positions, never credentials.
    let text = std::fs::read_to_string(&offsets_path).unwrap();
    assert!(text.contains("\"history\": 350"), "{text}");
    assert!(!text.contains(KEY) && !text.contains(&wandb_server::base64(&format!("api:{KEY}"))));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn faults_are_retried_and_every_line_lands_once_in_order() {
    let server = TestServer::start(KEY);
    let source = Arc::new(MemorySource::new(runs(200)));
    let offsets = Arc::new(MemoryOffsets::default());
    let mut config = config(&server);
    // One run at a time, so that the request after a fault is its retry.
    config.concurrency = 1;
    server.inject_on(
        Target::Graphql,
        [Fault::Status(500), Fault::Pass, Fault::Reset],
    );
    server.inject_on(
        Target::FileStream,
        [
            Fault::Status(500),
            Fault::Pass,
            Fault::Reset,
            Fault::Pass,
            Fault::Pass,
            Fault::Slow(Duration::from_millis(1500)),
            Fault::Pass,
            Fault::Status(503),
            Fault::RetryAfter(1),
            Fault::Pass,
            Fault::Pass,
            Fault::Reset,
            Fault::Pass,
            Fault::Status(502),
        ],
    );
    let report = sync_runs(&config, source.clone(), offsets.clone(), &options())
        .await
        .unwrap();
    assert!(report.failures.is_empty(), "{report}");
    // 9 injected failures (a loaded machine may add timeouts of its own).
    assert!(report.retries >= 9, "{report}");
    assert_history_complete(&server, &source);
    {
        let state = server.state();
        let at_429 = state
            .requests
            .iter()
            .position(|r| r.status == 429)
            .expect("the 429 was served");
        let waited = state.requests[at_429 + 1].at - state.requests[at_429].at;
        assert!(
            waited >= Duration::from_millis(950),
            "Retry-After ignored: {waited:?}"
        );
        // The slow request was stored although its answer came too late; the client re-sent it
        // and placement at `offset + i` kept each line once.
        assert!(state.history_writes > 800, "{}", state.history_writes);
        assert!(state.faults.is_empty(), "every fault was served");
    }

    // Concurrent runs with faults everywhere.
    let server = TestServer::start(KEY);
    let source = Arc::new(MemorySource::new(runs(200)));
    let mut config = self::config(&server);
    config.concurrency = 4;
    // One request may meet all 16 faults in a row: enough attempts for that.
    config.retry.max_attempts = 20;
    server.inject_on(
        Target::FileStream,
        (0..16).map(|i| match i % 4 {
            0 => Fault::Status(500),
            1 => Fault::Reset,
            2 => Fault::Slow(Duration::from_millis(1500)),
            _ => Fault::Status(503),
        }),
    );
    let report = sync_runs(
        &config,
        source.clone(),
        Arc::new(MemoryOffsets::default()),
        &options(),
    )
    .await
    .unwrap();
    assert!(report.failures.is_empty(), "{report}");
    assert_history_complete(&server, &source);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_outage_fails_runs_and_the_next_sync_resumes() {
    let server = TestServer::start(KEY);
    let source = Arc::new(MemorySource::new(runs(300)));
    let offsets = Arc::new(MemoryOffsets::default());
    let mut config = config(&server);
    config.retry.max_attempts = 3;
    config.concurrency = 1;
    let first = source.run("ablation-run0");
    let report = sync_runs(
        &config,
        source.clone(),
        offsets.clone(),
        &SyncOptions {
            selection: Selection {
                experiments: vec![],
                runs: vec!["ablation-run0".into()],
            },
            ..options()
        },
    )
    .await
    .unwrap();
    assert_eq!(report.created(), 1);
    source.append_steps("ablation-run0", 100, METRICS);
    server.inject(std::iter::repeat_n(Fault::Status(503), 40));
    let report = sync_runs(&config, source.clone(), offsets.clone(), &options())
        .await
        .unwrap();
    assert!(!report.failures.is_empty(), "{report}");
    assert!(
        report.to_string().contains("gave up after 3 attempts"),
        "{report}"
    );
    server.state().faults.clear();
    let report = sync_runs(&config, source.clone(), offsets.clone(), &options())
        .await
        .unwrap();
    assert!(report.failures.is_empty(), "{report}");
    assert_history_complete(&server, &source);
    let remote = server.run(&wandb_run_id(&first.meta.content_hash));
    assert_eq!(remote.history().len(), 400);
}

#[tokio::test]
async fn a_rejected_key_stops_with_how_to_set_it() {
    let server = TestServer::start("the-right-key");
    let source = Arc::new(MemorySource::new(runs(20)));
    let err = sync_runs(
        &config(&server),
        source,
        Arc::new(MemoryOffsets::default()),
        &options(),
    )
    .await
    .unwrap_err();
    assert!(matches!(
        err,
        SyncError::Request(wandb::RequestError::Unauthorized { .. })
    ));
    let text = err.to_string();
    assert!(text.contains("401"), "{text}");
    assert!(
        text.contains("WANDB_API_KEY") && text.contains(".netrc"),
        "{text}"
    );
    assert!(!text.contains(KEY), "{text}");
    // The other runs were not tried one by one after the key was refused.
    assert!(server.request_count() <= 4, "{}", server.request_count());
}

#[tokio::test]
async fn bad_requests_fail_the_run_without_retrying() {
    let server = TestServer::start(KEY);
    let source = Arc::new(MemorySource::new(runs(20)));
    let mut config = config(&server);
    config.concurrency = 1;
    server.inject([Fault::Status(404)]);
    let report = sync_runs(
        &config,
        source,
        Arc::new(MemoryOffsets::default()),
        &options(),
    )
    .await
    .unwrap();
    assert_eq!(report.failures.len(), 1, "{report}");
    assert!(report.failures[0].message.contains("HTTP 404"), "{report}");
    assert_eq!(report.retries, 0);
    assert_eq!(report.runs.len(), 3);
}

#[tokio::test]
async fn a_line_over_the_limit_names_the_run_and_step() {
    let server = TestServer::start(KEY);
    let mut run = fixture_run("big", 0, 5, 3, RunState::Finished);
    run.history[3]
        .metrics
        .extend((0..4000).map(|i| (format!("wide/metric{i}"), i as f64)));
    let source = Arc::new(MemorySource::new(vec![run]));
    let report = sync_runs(
        &config(&server),
        source,
        Arc::new(MemoryOffsets::default()),
        &options(),
    )
    .await
    .unwrap();
    assert_eq!(report.failures.len(), 1, "{report}");
    let message = &report.failures[0].message;
    assert!(
        message.contains("big-run0") && message.contains("step 3"),
        "{message}"
    );
    // The lines before it were sent and acknowledged.
    let remote = server.state().runs.values().next().unwrap().clone();
    assert_eq!(remote.history().len(), 3);
}

#[tokio::test]
async fn offline_and_disabled_modes_send_nothing() {
    let server = TestServer::start(KEY);
    let source = Arc::new(MemorySource::new(runs(10)));
    for mode in [wandb::Mode::Offline, wandb::Mode::Disabled] {
        let mut config = config(&server);
        config.mode = mode;
        let report = sync_runs(
            &config,
            source.clone(),
            Arc::new(MemoryOffsets::default()),
            &options(),
        )
        .await
        .unwrap();
        assert!(report.to_string().contains("nothing synced"), "{report}");
    }
    assert_eq!(server.request_count(), 0);
}

#[tokio::test]
async fn the_command_selects_runs_and_dry_run_sends_nothing() {
    let server = TestServer::start(KEY);
    let source = Arc::new(MemorySource::new(runs(30)));
    let offsets = Arc::new(MemoryOffsets::default());
    let args = WandbArgs {
        experiments: vec!["baseline".into()],
        runs: vec!["ablation-run2".into()],
        project: Some("chosen".into()),
        entity: Some("lab".into()),
        dry_run: true,
        jobs: 2,
    };
    let mut out = Vec::new();
    let report = execute(
        &args,
        config(&server),
        source.clone(),
        offsets.clone(),
        &mut out,
    )
    .await
    .unwrap();
    let text = String::from_utf8(out).unwrap();
    assert_eq!(report.runs.len(), 2, "{text}");
    assert!(text.contains("dry run"), "{text}");
    assert!(text.contains("lab/chosen/"), "{text}");
    assert!(
        text.contains("30 history lines") && text.contains("complete (exit code 2)"),
        "{text}"
    );
    assert!(!text.contains(KEY), "{text}");
    assert_eq!(server.request_count(), 0);
    assert!(offsets.snapshot().is_empty());

    let args = WandbArgs {
        dry_run: false,
        ..args
    };
    let mut out = Vec::new();
    let report = execute(
        &args,
        config(&server),
        source.clone(),
        offsets.clone(),
        &mut out,
    )
    .await
    .unwrap();
    assert_eq!(report.created(), 2);
    assert_eq!(
        server
            .state()
            .runs
            .keys()
            .filter(|k| k.starts_with("lab/chosen/"))
            .count(),
        2
    );

    let args = WandbArgs {
        runs: vec!["no-such-run".into()],
        experiments: vec![],
        ..args
    };
    let err = execute(&args, config(&server), source, offsets, &mut Vec::new())
        .await
        .unwrap_err();
    assert!(err.to_string().contains("no-such-run"), "{err}");
}

/// Polls `done` for up to 30 s (the machine may be loaded).
fn wait_until(what: &str, done: impl Fn() -> bool) {
    let start = std::time::Instant::now();
    while !done() {
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "timed out waiting for {what}"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
}

#[test]
fn live_sync_catches_up_after_an_outage_and_never_fails_the_caller() {
    let server = TestServer::start(KEY);
    let source = Arc::new(MemorySource::new(vec![fixture_run(
        "live",
        0,
        50,
        METRICS,
        RunState::Running,
    )]));
    let offsets = Arc::new(MemoryOffsets::default());
    let mut config = config(&server);
    config.retry.max_attempts = 2;
    let live = LiveHandle::spawn(
        config,
        source.clone(),
        offsets.clone(),
        LiveOptions {
            interval: Duration::from_millis(50),
            selection: Selection::all(),
        },
    )
    .unwrap();
    let run = source.run("live-run0");
    let wandb_id = wandb_run_id(&run.meta.content_hash);
    let lines_and_heartbeats = || {
        let state = server.state();
        state
            .runs
            .values()
            .find(|r| r.name == wandb_id)
            .map_or((0, 0), |r| {
                (
                    r.files.get("wandb-history.jsonl").map_or(0, Vec::len),
                    r.heartbeats,
                )
            })
    };
    wait_until("the first pass and a heartbeat", || {
        let (lines, heartbeats) = lines_and_heartbeats();
        lines == 50 && heartbeats >= 1
    });
    // "Training" goes on while the server is down: at least two passes fail.
    server.inject(std::iter::repeat_n(Fault::Status(503), 30));
    for _ in 0..5 {
        source.append_steps("live-run0", 20, METRICS);
        std::thread::sleep(Duration::from_millis(20));
    }
    wait_until("failed passes", || server.state().faults.len() <= 26);
    server.state().faults.clear();
    wait_until("the catch-up", || lines_and_heartbeats().0 == 150);
    source.append_steps("live-run0", 20, METRICS);
    source.update("live-run0", |r| r.meta.status = RunState::Finished);
    // Stopping makes one last pass: the last lines and `complete` go out.
    let summary = live.stop();
    assert!(summary.passes >= 4, "{summary:?}");
    assert!(
        summary.failed_passes >= 1,
        "the outage was noticed: {summary:?}"
    );
    assert_history_complete(&server, &source);
    let run = source.run("live-run0");
    let remote = server.run(&wandb_run_id(&run.meta.content_hash));
    assert_eq!(remote.history().len(), 170);
    assert_eq!(remote.exit_code, Some(0));
    assert!(
        remote.heartbeats >= 1,
        "idle passes heartbeat a running run"
    );
}
