//! `cargo bench -p app --no-default-features --bench tui_frames`
//!
//! A real store of 10k runs and ~10M metric points (generated once into a cache file under
//! target/, and the generation is timed), then:
//! - start to first frame: open the store, the data thread reads the first page of runs with
//!   their summaries, the UI applies them and draws the runs table (target < 300 ms); then the
//!   time until every run is in;
//! - frame time while scrolling, paging, filtering (typed key by key), sorting and grouping:
//!   each key's update + draw, worst case (target < 16 ms).
//!
//! Frames are drawn into ratatui's TestBackend at 160×48 (no terminal I/O).

use std::path::PathBuf;
use std::time::{Duration, Instant};

use app::tui::data::{DataOptions, DataThread};
use app::tui::sample_store::{fill, SampleSpec};
use app::tui::{view, Action, App, DataMsg, StoreSource};
use ratatui::backend::TestBackend;
use ratatui::Terminal;

const RUNS: usize = 10_000;
/// 10k runs × (1005 loss + 101 acc points), a seventh of them failing a third of the way:
/// just over 10M points.
const STEPS: usize = 1005;
const W: u16 = 160;
const H: u16 = 48;

fn cache_path() -> PathBuf {
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../target"));
    target
        .join("tui-bench")
        .join(format!("store-{RUNS}-{STEPS}.db"))
}

fn rt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("tokio runtime")
}

/// Generates the store unless the cache file is complete; returns (points, generation time).
fn ensure_store(path: &PathBuf) -> (i64, Option<Duration>) {
    let done = path.with_extension("done");
    let mut took = None;
    if !done.exists() {
        let _ = std::fs::remove_file(path);
        std::fs::create_dir_all(path.parent().expect("has a parent")).expect("cache dir");
        eprintln!("generating {} (once) …", path.display());
        let t = Instant::now();
        rt().block_on(async {
            let store = store::Store::open(path).await.expect("open store");
            fill(
                &store,
                SampleSpec {
                    runs: RUNS,
                    steps: STEPS,
                    batch: 500,
                },
            )
            .await
            .expect("fill store");
            store.close().await;
        });
        took = Some(t.elapsed());
        std::fs::write(&done, b"ok").expect("marker");
    }
    let points = rt().block_on(async {
        let store = store::Store::open(path).await.expect("open store");
        let n: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM metric_points")
            .fetch_one(store.sqlite_pool().expect("a SQLite store"))
            .await
            .expect("count");
        store.close().await;
        n
    });
    (points, took)
}

fn draw(terminal: &mut Terminal<TestBackend>, app: &App) -> Duration {
    let t = Instant::now();
    terminal.draw(|f| view::draw(f, app)).expect("draw");
    t.elapsed()
}

/// CPU time this thread has run (Linux schedstat, ns): unlike wall time, it does not count the
/// time other processes held the CPU, which dominates on a shared 2-core machine.
fn thread_cpu() -> Option<Duration> {
    let text = std::fs::read_to_string("/proc/thread-self/schedstat").ok()?;
    let ns: u64 = text.split_whitespace().next()?.parse().ok()?;
    Some(Duration::from_nanos(ns))
}

struct Stats {
    name: &'static str,
    times: Vec<Duration>,
    cpu: Vec<Duration>,
}

impl Stats {
    fn pct(&self, p: f64) -> Duration {
        let mut v = self.times.clone();
        v.sort();
        v[((v.len() - 1) as f64 * p).round() as usize]
    }
    fn max(&self) -> Duration {
        self.times.iter().copied().max().unwrap_or_default()
    }
    fn cpu_pct(&self, p: f64) -> Option<Duration> {
        let mut v = self.cpu.clone();
        v.sort();
        (!v.is_empty()).then(|| v[((v.len() - 1) as f64 * p).round() as usize])
    }
}

fn record(s: &mut Stats, (wall, cpu): (Duration, Option<Duration>)) {
    s.times.push(wall);
    s.cpu.extend(cpu);
}

fn ms(d: Duration) -> String {
    format!("{:.2} ms", d.as_secs_f64() * 1e3)
}

fn main() {
    let path = cache_path();
    let (points, generated) = ensure_store(&path);

    // ---- start to first frame ------------------------------------------------------------
    let start = Instant::now();
    let source = StoreSource::open(&path).expect("open store");
    let data = DataThread::spawn(
        Box::new(source),
        DataOptions {
            poll: Duration::from_millis(250),
            experiments_dir: PathBuf::from("experiments"),
            worker: None,
            open: Vec::new(),
        },
    );
    let mut terminal = Terminal::new(TestBackend::new(W, H)).expect("terminal");
    let mut app = App::new(path.display().to_string());
    app.update(Action::Resize(W, H));
    draw(&mut terminal, &app);
    let first_frame = start.elapsed();
    // The data thread sends the first page of runs, then every run.
    let mut first_data_frame = None;
    let full_frame;
    loop {
        match data
            .rx
            .recv_timeout(Duration::from_secs(60))
            .expect("runs in time")
        {
            DataMsg::RunsHead(r) => {
                app.apply(DataMsg::RunsHead(r));
                draw(&mut terminal, &app);
                first_data_frame.get_or_insert(start.elapsed());
            }
            DataMsg::Runs(r) => {
                app.apply(DataMsg::Runs(r));
                draw(&mut terminal, &app);
                full_frame = start.elapsed();
                first_data_frame.get_or_insert(full_frame);
                break;
            }
            DataMsg::Error(e) => panic!("{e}"),
            _ => {}
        }
    }
    let first_data_frame = first_data_frame.unwrap_or(full_frame);
    let n_runs = app.runs.len();
    drop(data);

    // ---- interaction ---------------------------------------------------------------------
    let mut scroll = Stats {
        name: "scroll (↓ ×300, PgDn ×50, G, g)",
        times: vec![],
        cpu: vec![],
    };
    let mut filter = Stats {
        name: "filter typed key by key + ⌫",
        times: vec![],
        cpu: vec![],
    };
    let mut sort = Stats {
        name: "sort by each column, reverse",
        times: vec![],
        cpu: vec![],
    };
    let mut group = Stats {
        name: "group by each axis",
        times: vec![],
        cpu: vec![],
    };
    // Each step: the key's update plus one full frame. Returns (wall, thread CPU) time.
    let step = |app: &mut App, terminal: &mut Terminal<TestBackend>, a: Action| {
        let c = thread_cpu();
        let t = Instant::now();
        app.update(a);
        terminal.draw(|f| view::draw(f, app)).expect("draw");
        let wall = t.elapsed();
        (wall, thread_cpu().zip(c).map(|(b, a)| b.saturating_sub(a)))
    };
    for _ in 0..300 {
        record(&mut scroll, step(&mut app, &mut terminal, Action::Down));
    }
    for _ in 0..50 {
        record(&mut scroll, step(&mut app, &mut terminal, Action::PageDown));
    }
    record(&mut scroll, step(&mut app, &mut terminal, Action::Bottom));
    record(&mut scroll, step(&mut app, &mut terminal, Action::Top));
    for text in [
        "manager=adaptive layers=12 seed=7",
        "status:failed",
        "ablate 12",
    ] {
        record(
            &mut filter,
            step(&mut app, &mut terminal, Action::StartFilter),
        );
        for c in text.chars() {
            record(
                &mut filter,
                step(&mut app, &mut terminal, Action::FilterChar(c)),
            );
        }
        record(
            &mut filter,
            step(&mut app, &mut terminal, Action::FilterCommit),
        );
        for _ in 0..5 {
            record(&mut scroll, step(&mut app, &mut terminal, Action::Down));
        }
        record(
            &mut filter,
            step(&mut app, &mut terminal, Action::StartFilter),
        );
        for _ in text.chars() {
            record(
                &mut filter,
                step(&mut app, &mut terminal, Action::FilterBackspace),
            );
        }
        record(
            &mut filter,
            step(&mut app, &mut terminal, Action::FilterCommit),
        );
    }
    for col in app::tui::table::Column::ALL {
        record(
            &mut sort,
            step(&mut app, &mut terminal, Action::SortBy(col)),
        );
        record(
            &mut sort,
            step(&mut app, &mut terminal, Action::SortBy(col)),
        );
    }
    for _ in 0..4 {
        record(
            &mut group,
            step(&mut app, &mut terminal, Action::CycleGroup),
        );
        record(&mut group, step(&mut app, &mut terminal, Action::Down));
    }
    assert_eq!(app.visible.len(), n_runs, "filters were cleared again");

    // ---- report --------------------------------------------------------------------------
    println!();
    println!(
        "tui_frames: {n_runs} runs, {points} metric points, store {}",
        path.display()
    );
    if let Some(t) = generated {
        println!(
            "store generated in {:.1} s (cached for later runs)",
            t.as_secs_f64()
        );
    }
    println!("frames drawn into TestBackend {W}x{H}");
    println!();
    println!("| measure | value | target |");
    println!("|---|---|---|");
    println!(
        "| start → first frame (loading screen) | {} | < 300 ms |",
        ms(first_frame)
    );
    println!(
        "| start → first frame with runs (first {} runs) | {} | < 300 ms |",
        app::tui::data::FIRST_RUNS,
        ms(first_data_frame)
    );
    let all: Vec<&Stats> = vec![&scroll, &filter, &sort, &group];
    for s in &all {
        println!(
            "| {} ({} frames): wall p50 / p99 / worst | {} / {} / {} | worst < 16 ms |",
            s.name,
            s.times.len(),
            ms(s.pct(0.5)),
            ms(s.pct(0.99)),
            ms(s.max())
        );
        if let (Some(p50), Some(worst)) = (s.cpu_pct(0.5), s.cpu_pct(1.0)) {
            println!(
                "| {} : thread CPU p50 / worst | {} / {} | worst < 16 ms |",
                s.name,
                ms(p50),
                ms(worst)
            );
        }
    }
    println!(
        "| start → frame with all {n_runs} runs | {} | (no target) |",
        ms(full_frame)
    );
    let worst = all.iter().map(|s| s.max()).max().unwrap_or_default();
    println!("| worst frame overall, wall | {} | < 16 ms |", ms(worst));
    if let Some(cpu) = all.iter().filter_map(|s| s.cpu_pct(1.0)).max() {
        println!(
            "| worst frame overall, thread CPU | {} | < 16 ms |",
            ms(cpu)
        );
    }
    println!();
    println!("wall times include waiting for the CPU: compare them with `uptime`'s load average.");
}
