//! History lines per second pushed to a local W&B-compatible server (the test server of
//! `testkit::wandb_server`, which parses every body and places every line, like W&B's backend
//! spy). `cargo bench -p app --no-default-features --bench wandb_sync`
//! Set `WANDB_BENCH_STEPS` to change the size (default 100000 steps x 10 metrics = 1M points).

use std::sync::Arc;
use std::time::{Duration, Instant};

use app::wandb::fixture::{fixture_run, MemorySource};
use app::wandb::{sync_runs, ApiKey, MemoryOffsets, RunState, SyncOptions, WandbConfig};
use testkit::wandb_server::TestServer;

const KEY: &str = "bench-key";
const METRICS: usize = 10;

struct Case {
    name: &'static str,
    runs: usize,
    steps_per_run: u64,
}

fn main() {
    let steps: u64 = std::env::var("WANDB_BENCH_STEPS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(100_000);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let cases = [
        Case {
            name: "1 run",
            runs: 1,
            steps_per_run: steps,
        },
        Case {
            name: "4 runs, 4 at a time",
            runs: 4,
            steps_per_run: steps / 4,
        },
    ];
    println!(
        "W&B sync to a loopback test server, {METRICS} metrics per step, 10 MiB requests (best of 3)"
    );
    println!(
        "{:<22} {:>10} {:>10} {:>12} {:>14} {:>10} {:>9} {:>14}",
        "case", "lines", "points", "seconds", "lines/s", "MiB/s", "requests", "re-sync (ms)"
    );
    for case in &cases {
        let mut best: Option<(Duration, u64, u64, u64, Duration)> = None;
        for _ in 0..3 {
            let server = TestServer::start(KEY);
            let source = Arc::new(MemorySource::new(
                (0..case.runs)
                    .map(|i| {
                        fixture_run("bench", i, case.steps_per_run, METRICS, RunState::Finished)
                    })
                    .collect(),
            ));
            let offsets = Arc::new(MemoryOffsets::default());
            let mut config =
                WandbConfig::new(&server.base_url, "bench", ApiKey::new(KEY).expect("key"));
            config.concurrency = 4;
            let options = SyncOptions::default();
            let start = Instant::now();
            let report = rt
                .block_on(sync_runs(
                    &config,
                    source.clone(),
                    offsets.clone(),
                    &options,
                ))
                .expect("sync");
            let took = start.elapsed();
            assert!(report.failures.is_empty(), "{report}");
            let lines = report.history_lines();
            assert_eq!(lines, case.steps_per_run * case.runs as u64);
            let start = Instant::now();
            let again = rt
                .block_on(sync_runs(&config, source, offsets, &options))
                .expect("re-sync");
            let resync = start.elapsed();
            assert_eq!(again.history_lines(), 0);
            if best.is_none_or(|b| took < b.0) {
                best = Some((took, lines, report.bytes_sent, report.requests, resync));
            }
        }
        let (took, lines, bytes, requests, resync) = best.expect("three rounds");
        let secs = took.as_secs_f64();
        println!(
            "{:<22} {:>10} {:>10} {:>12.3} {:>14.0} {:>10.1} {:>9} {:>14.2}",
            case.name,
            lines,
            lines * METRICS as u64,
            secs,
            lines as f64 / secs,
            bytes as f64 / (1 << 20) as f64 / secs,
            requests,
            resync.as_secs_f64() * 1e3
        );
    }
}
