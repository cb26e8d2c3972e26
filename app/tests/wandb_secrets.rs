//! The API key never shows up: not in logs (all of them, captured at TRACE), command output,
//! dry-run output, error messages, reports or the offsets file.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use app::wandb::cli::{execute, WandbArgs};
use app::wandb::fixture::{fixture_run, FixtureRun, MemorySource};
use app::wandb::{
    sync_runs, ApiKey, FileOffsets, MemoryOffsets, RetryPolicy, RunState, SyncOptions, WandbConfig,
};
use testkit::wandb_server::{self, Fault, TestServer};

const KEY: &str = "tl-secret-KEY-0123456789abcdef0123456789";

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
    c.max_request_bytes = 32 * 1024;
    c
}

fn runs(steps: u64) -> Vec<FixtureRun> {
    vec![
        fixture_run("ablation", 0, steps, 15, RunState::Running),
        fixture_run("ablation", 1, steps, 15, RunState::Failed { exit_code: 2 }),
    ]
}

fn options() -> SyncOptions {
    SyncOptions::default()
}

/// A log writer that keeps everything written.
#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl std::io::Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[test]
fn the_api_key_appears_in_no_log_output_error_or_offsets_record() {
    let logs = Captured::default();
    let writer = logs.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_max_level(tracing::Level::TRACE)
        .with_writer(move || writer.clone())
        .with_ansi(false)
        .finish();
    // The only test in this binary, so a global subscriber sees every thread.
    tracing::subscriber::set_global_default(subscriber).unwrap();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    let basic = wandb_server::base64(&format!("api:{KEY}"));
    let server = TestServer::start(KEY);
    let dir = tempfile::tempdir().unwrap();
    let offsets_path = dir.path().join("offsets.json");
    let source = Arc::new(MemorySource::new(runs(40)));
    let mut texts = Vec::new();
    rt.block_on(async {
        let offsets = Arc::new(FileOffsets::open(&offsets_path).unwrap());
        let mut cfg = config(&server);
        texts.push(format!("{cfg:?}"));
        server.inject([
            Fault::Status(500),
            Fault::Reset,
            Fault::Slow(Duration::from_millis(1500)),
            Fault::Status(404),
        ]);
        cfg.concurrency = 1;
        let mut out = Vec::new();
        let args = WandbArgs {
            jobs: 1,
            ..WandbArgs::default()
        };
        let result = execute(
            &args,
            cfg.clone(),
            source.clone(),
            offsets.clone(),
            &mut out,
        )
        .await;
        texts.push(String::from_utf8(out).unwrap());
        texts.push(format!("{:?}", result.map(|r| r.to_string())));
        let mut out = Vec::new();
        let dry = WandbArgs {
            dry_run: true,
            ..args
        };
        let result = execute(&dry, cfg.clone(), source.clone(), offsets.clone(), &mut out).await;
        texts.push(String::from_utf8(out).unwrap());
        texts.push(format!("{result:?}"));
        // A refused key and an unreachable server.
        let wrong = TestServer::start("another-key");
        let mut bad = config(&wrong);
        bad.api_key = ApiKey::new(KEY);
        let err = sync_runs(
            &bad,
            source.clone(),
            Arc::new(MemoryOffsets::default()),
            &options(),
        )
        .await
        .unwrap_err();
        texts.push(format!("{err} {err:?}"));
        let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = closed.local_addr().unwrap().port();
        drop(closed);
        let mut gone = config(&server);
        gone.base_url = format!("http://127.0.0.1:{port}");
        gone.retry.max_attempts = 2;
        let report = sync_runs(
            &gone,
            source.clone(),
            Arc::new(MemoryOffsets::default()),
            &options(),
        )
        .await
        .unwrap();
        assert!(!report.failures.is_empty());
        texts.push(format!("{report} {report:?}"));
        let o = FileOffsets::open(&offsets_path).unwrap();
        texts.push(format!("{o:?}"));
    });
    texts.push(std::fs::read_to_string(&offsets_path).unwrap());
    let logs = String::from_utf8(logs.0.lock().unwrap().clone()).unwrap();
    assert!(logs.contains("retrying"), "the faults were logged: {logs}");
    texts.push(logs);
    for text in &texts {
        assert!(!text.contains(KEY), "key leaked in: {text}");
        assert!(!text.contains(&basic), "encoded key leaked in: {text}");
    }
}
