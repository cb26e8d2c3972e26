//! `cargo bench -p store --bench ingest`: metric ingest throughput of `Store::ingest_metrics`
//! on SQLite and on PostgreSQL (a throwaway server from scripts/pg-test-server.sh, on loopback)
//! against plain per-row `INSERT` loops on the same schema, and the time to list 10k runs with
//! their summaries on both. Prints tables; targets: SQLite >= 500k points/s and list < 100 ms,
//! PostgreSQL >= 200k points/s and list < 150 ms. (PostgreSQL's CPU time is the client's only:
//! the server is another process; compare wall times.)

use std::time::{Duration, Instant};

use serde_json::json;
use store::testing::PgServer;
use store::{ExperimentId, Goal, MetricPoint, NewRun, RunFilter, RunId, Store};

/// Where a bench's stores live.
#[derive(Clone, Copy)]
enum Target<'a> {
    Sqlite(&'a tempfile::TempDir),
    Postgres(&'a PgServer),
}

impl Target<'_> {
    fn name(&self) -> &'static str {
        match self {
            Target::Sqlite(_) => "SQLite",
            Target::Postgres(_) => "PostgreSQL",
        }
    }
}

/// CPU time used by all threads of this process (SQLite runs on sqlx's worker threads), from
/// /proc (Linux). On a shared, overloaded machine wall time mostly measures waiting for a core;
/// CPU time is what the work costs.
fn cpu_time() -> Option<Duration> {
    let mut ns = 0u64;
    for task in std::fs::read_dir("/proc/self/task").ok()? {
        let stat = std::fs::read_to_string(task.ok()?.path().join("schedstat")).ok()?;
        ns += stat.split_whitespace().next()?.parse::<u64>().ok()?;
    }
    Some(Duration::from_nanos(ns))
}

/// Wall and CPU time of `f`.
async fn timed<T>(f: impl std::future::Future<Output = T>) -> (T, Duration, Option<Duration>) {
    let cpu0 = cpu_time();
    let start = Instant::now();
    let out = f.await;
    let wall = start.elapsed();
    let cpu = cpu0.zip(cpu_time()).map(|(a, b)| b.saturating_sub(a));
    (out, wall, cpu)
}

fn fmt_cpu(cpu: Option<Duration>) -> String {
    cpu.map_or_else(|| "n/a".to_owned(), |c| format!("{:.3}", c.as_secs_f64()))
}

fn rate(n: usize, t: Option<Duration>) -> String {
    t.map_or_else(
        || "n/a".to_owned(),
        |t| format!("{:.0}", n as f64 / t.as_secs_f64()),
    )
}

const KEYS: [&str; 5] = [
    "train/loss",
    "train/lr",
    "train/grad_norm",
    "val/loss",
    "val/acc",
];

/// `n` points spread over the keys above, steps from `first_step`.
fn points(first_step: i64, n: usize) -> Vec<MetricPoint> {
    let steps = n / KEYS.len();
    let mut out = Vec::with_capacity(n);
    for s in 0..steps as i64 {
        let step = first_step + s;
        for (k, key) in KEYS.iter().enumerate() {
            out.push(MetricPoint {
                key: (*key).to_owned(),
                step,
                value: 1.0 / (step + 1 + k as i64) as f64,
                wall_ms: 1_700_000_000_000 + step,
            });
        }
    }
    out
}

fn new_run(i: usize) -> NewRun {
    NewRun {
        hash: format!("{i:016x}"),
        cell_key: format!("manager=adaptive,layers={},seed={}", 3 + i % 4, i),
        axes: json!({"manager": "adaptive", "layers": 3 + i % 4, "seed": i})
            .as_object()
            .unwrap()
            .clone(),
        task: "vqa".to_owned(),
        params: vec![("train.lr".to_owned(), json!(1e-5))],
        depends_on: None,
    }
}

async fn fresh(target: Target<'_>, name: &str, runs: usize) -> (Store, ExperimentId, Vec<RunId>) {
    let db: std::path::PathBuf = match target {
        Target::Sqlite(dir) => dir.path().join(name),
        Target::Postgres(server) => server.fresh_database().await.into(),
    };
    let store = Store::open(db).await.unwrap();
    let exp = store
        .upsert_experiment("bench", "bench.toml", "h")
        .await
        .unwrap()
        .id;
    let all: Vec<NewRun> = (0..runs).map(new_run).collect();
    let ids = store
        .create_runs(exp, &all)
        .await
        .unwrap()
        .iter()
        .map(|c| c.id)
        .collect();
    (store, exp, ids)
}

struct Row {
    method: String,
    batch: usize,
    points: usize,
    elapsed: Duration,
    cpu: Option<Duration>,
}

async fn bench_store(target: Target<'_>, batch: usize, total: usize) -> Row {
    let (store, _, ids) = fresh(target, &format!("store-{batch}.db"), 1).await;
    let run = ids[0];
    let goals: Vec<(&str, Goal)> = vec![("val/acc", Goal::Maximize), ("val/loss", Goal::Minimize)];
    store.declare_metrics(run, &goals).await.unwrap();
    let batches: Vec<Vec<MetricPoint>> = (0..total / batch)
        .map(|b| points((b * batch / KEYS.len()) as i64, batch))
        .collect();
    let (stored, elapsed, cpu) = timed(async {
        let mut stored = 0;
        for b in &batches {
            stored += store.ingest_metrics(run, b).await.unwrap();
        }
        stored
    })
    .await;
    assert_eq!(stored as usize, total);
    let s = store.summaries(run).await.unwrap();
    assert_eq!(s.iter().map(|s| s.count).sum::<i64>() as usize, total);
    store.close().await;
    Row {
        method: format!("{}: Store::ingest_metrics (+summaries)", target.name()),
        batch,
        points: total,
        elapsed,
        cpu,
    }
}

/// The peer: one `INSERT` statement per point (prepared once, reused), either each in its own
/// autocommit transaction or one transaction per batch. No summaries are maintained.
async fn bench_per_row(
    dir: &tempfile::TempDir,
    batch: usize,
    total: usize,
    tx_per_batch: bool,
) -> Row {
    let name = format!("peer-{batch}-{tx_per_batch}.db");
    let (store, _, ids) = fresh(Target::Sqlite(dir), &name, 1).await;
    let run = ids[0];
    let pool = store.sqlite_pool().unwrap().clone();
    let sql = "INSERT OR IGNORE INTO metric_points (run_id, key, step, value, wall_ms) \
               VALUES (?1, ?2, ?3, ?4, ?5)";
    let batches: Vec<Vec<MetricPoint>> = (0..total / batch)
        .map(|b| points((b * batch / KEYS.len()) as i64, batch))
        .collect();
    let ((), elapsed, cpu) = timed(async {
        for b in &batches {
            if tx_per_batch {
                let mut tx = pool.begin_with("BEGIN IMMEDIATE").await.unwrap();
                for p in b {
                    sqlx::query(sql)
                        .bind(run)
                        .bind(&p.key)
                        .bind(p.step)
                        .bind(p.value)
                        .bind(p.wall_ms)
                        .execute(&mut *tx)
                        .await
                        .unwrap();
                }
                tx.commit().await.unwrap();
            } else {
                for p in b {
                    sqlx::query(sql)
                        .bind(run)
                        .bind(&p.key)
                        .bind(p.step)
                        .bind(p.value)
                        .bind(p.wall_ms)
                        .execute(&pool)
                        .await
                        .unwrap();
                }
            }
        }
    })
    .await;
    let n: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM metric_points")
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(n as usize, total);
    store.close().await;
    Row {
        method: if tx_per_batch {
            "SQLite peer: per-row INSERT, one tx per batch".into()
        } else {
            "SQLite peer: per-row INSERT, autocommit".into()
        },
        batch,
        points: total,
        elapsed,
        cpu,
    }
}

async fn bench_list(
    target: Target<'_>,
    runs: usize,
) -> Vec<(String, Duration, Option<Duration>, usize)> {
    let (store, _, ids) = fresh(target, "list.db", runs).await;
    for (i, &run) in ids.iter().enumerate() {
        let pts: Vec<MetricPoint> = points(0, 2 * KEYS.len())
            .into_iter()
            .map(|mut p| {
                p.value += i as f64;
                p
            })
            .collect();
        store.ingest_metrics(run, &pts).await.unwrap();
    }
    let mut out = Vec::new();
    let cases: [(&str, RunFilter); 3] = [
        ("list_runs (no summaries)", RunFilter::default()),
        (
            "list_runs_with_summaries (5 keys/run)",
            RunFilter::default(),
        ),
        (
            "list_runs_with_summaries (1 key selected)",
            RunFilter {
                summary_keys: vec!["val/acc".into()],
                ..RunFilter::default()
            },
        ),
    ];
    for (i, (name, filter)) in cases.iter().enumerate() {
        let mut times = Vec::new();
        let mut cpus = Vec::new();
        let mut n = 0;
        for _ in 0..7 {
            let (got, wall, cpu) = timed(async {
                if i == 0 {
                    store.list_runs(filter).await.unwrap().len()
                } else {
                    let got = store.list_runs_with_summaries(filter).await.unwrap();
                    assert!(got.iter().all(|r| !r.summaries.is_empty()));
                    got.len()
                }
            })
            .await;
            n = got;
            times.push(wall);
            cpus.extend(cpu);
        }
        times.sort();
        cpus.sort();
        let cpu = (cpus.len() == times.len()).then(|| cpus[cpus.len() / 2]);
        out.push((
            format!("{}: {name}", target.name()),
            times[times.len() / 2],
            cpu,
            n,
        ));
    }
    store.close().await;
    out
}

fn main() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let server = PgServer::start();
    let targets = [Target::Sqlite(&dir), Target::Postgres(&server)];
    // `-- list`: only the run lists (for profiling).
    let only_list = std::env::args().any(|a| a == "list");
    rt.block_on(async {
        let mut rows = Vec::new();
        for target in targets {
            for batch in [100, 1_000, 10_000].into_iter().filter(|_| !only_list) {
                rows.push(bench_store(target, batch, 500_000).await);
            }
        }
        if !only_list {
            rows.push(bench_per_row(&dir, 1_000, 200_000, true).await);
            rows.push(bench_per_row(&dir, 1_000, 10_000, false).await);
        }

        println!(
            "\nmetric ingest (SQLite: file store, WAL, synchronous=NORMAL; PostgreSQL 127.0.0.1, \
             test server settings; 5 keys per step)\n"
        );
        println!(
            "| {:<46} | {:>6} | {:>7} | {:>8} | {:>8} | {:>13} | {:>12} |",
            "method", "batch", "points", "wall s", "cpu s", "points/s wall", "points/s cpu"
        );
        println!(
            "|{:-<48}|{:->8}|{:->9}|{:->10}|{:->10}|{:->15}|{:->14}|",
            "", "", "", "", "", "", ""
        );
        for r in &rows {
            println!(
                "| {:<46} | {:>6} | {:>7} | {:>8.3} | {:>8} | {:>13} | {:>12} |",
                r.method,
                r.batch,
                r.points,
                r.elapsed.as_secs_f64(),
                fmt_cpu(r.cpu),
                rate(r.points, Some(r.elapsed)),
                rate(r.points, r.cpu),
            );
        }

        let runs = 10_000;
        let mut list = Vec::new();
        for target in targets {
            list.extend(bench_list(target, runs).await);
        }
        println!("\nrun lists ({runs} runs, 5 metric summaries each; median of 7)\n");
        println!(
            "| {:<56} | {:>6} | {:>9} | {:>9} |",
            "query", "runs", "wall ms", "cpu ms"
        );
        println!("|{:-<58}|{:->8}|{:->11}|{:->11}|", "", "", "", "");
        for (name, t, cpu, n) in &list {
            println!(
                "| {:<56} | {:>6} | {:>9.1} | {:>9} |",
                name,
                n,
                t.as_secs_f64() * 1e3,
                cpu.map_or_else(
                    || "n/a".to_owned(),
                    |c| format!("{:.1}", c.as_secs_f64() * 1e3)
                )
            );
        }
        let load = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
        // Side by side: the largest batch, and the list with every summary.
        let ingest = |backend: &str| {
            rows.iter()
                .filter(|r| r.method.starts_with(backend) && r.method.contains("ingest_metrics"))
                .map(|r| r.points as f64 / r.elapsed.as_secs_f64())
                .fold(0.0, f64::max)
        };
        let listed = |backend: &str| {
            list.iter()
                .find(|(n, ..)| n.starts_with(backend) && n.contains("(5 keys/run)"))
                .map_or(f64::NAN, |(_, t, ..)| t.as_secs_f64() * 1e3)
        };
        println!("\nPostgreSQL against SQLite (wall time)\n");
        println!(
            "| {:<40} | {:>12} | {:>12} | {:>18} |",
            "measure", "SQLite", "PostgreSQL", "PostgreSQL target"
        );
        println!("|{:-<42}|{:->14}|{:->14}|{:->20}|", "", "", "", "");
        if !only_list {
            println!(
                "| {:<40} | {:>12.0} | {:>12.0} | {:>18} |",
                "metric points ingested per second (best)",
                ingest("SQLite"),
                ingest("PostgreSQL"),
                ">= 200000"
            );
        }
        println!(
            "| {:<40} | {:>12.1} | {:>12.1} | {:>18} |",
            "ms to list 10k runs with summaries",
            listed("SQLite"),
            listed("PostgreSQL"),
            "< 150"
        );
        println!(
            "\ntargets: SQLite >= 500000 points/s in batches, list with summaries < 100 ms; \
             PostgreSQL >= 200000 points/s, < 150 ms"
        );
        println!(
            "machine: {} CPUs, load average {}",
            std::thread::available_parallelism().map_or(0, |n| n.get()),
            load.split_whitespace()
                .take(3)
                .collect::<Vec<_>>()
                .join(" ")
        );
    });
}
