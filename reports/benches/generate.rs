//! Report generation for a large grid from in-memory data:
//! `cargo bench -p reports --bench generate [-- RUNS STEPS]` (default 1000 runs × 10k steps).
//!
//! Prints one line per stage (best and mean of a few repetitions) and the whole report as
//! `write_all` produces it: Markdown, LaTeX, CSV, and every figure (learning curves and bars
//! for each of the 3 metrics, manager panels and heatmap) as SVG and PNG.

use std::time::{Duration, Instant};

use reports::figures::{BarOptions, CurveOptions, ManagerOptions};
use reports::Format;

const REPS: usize = 3;

fn time<T>(name: &str, mut f: impl FnMut() -> T) -> Duration {
    let mut times = Vec::with_capacity(REPS);
    for _ in 0..REPS {
        let t = Instant::now();
        std::hint::black_box(f());
        times.push(t.elapsed());
    }
    let best = *times.iter().min().expect("REPS > 0");
    let mean = times.iter().sum::<Duration>() / REPS as u32;
    println!(
        "{name:<44} {:>9.1} ms {:>9.1} ms",
        best.as_secs_f64() * 1e3,
        mean.as_secs_f64() * 1e3
    );
    best
}

fn main() {
    let args: Vec<usize> = std::env::args()
        .skip(1)
        .filter_map(|a| a.parse().ok())
        .collect();
    let runs = args.first().copied().unwrap_or(1000);
    let steps = args.get(1).copied().unwrap_or(10_000);

    let t = Instant::now();
    let input = reports::sample::synthetic(runs, steps);
    let points: usize = input
        .cells
        .iter()
        .flat_map(|c| &c.runs)
        .flat_map(|r| r.series.values())
        .map(Vec::len)
        .sum();
    println!(
        "input: {} cells, {runs} runs, {steps} steps, {} metrics, {points} points (built in {:.0} ms)",
        input.cells.len(),
        input.metrics.len(),
        t.elapsed().as_secs_f64() * 1e3
    );
    println!("{:<44} {:>12} {:>12}", "stage", "best", "mean");

    let metric = "val/vqa/score";
    time("table (statistics)", || {
        reports::build_table(&input).unwrap()
    });
    let table = reports::build_table(&input).unwrap();
    time("markdown + latex + csv + terminal", || {
        (
            reports::render_markdown(&table),
            reports::render_latex(&table),
            reports::render_csv(&table),
            reports::render_terminal(&table),
        )
    });
    time("runs.csv", || reports::render_runs_csv(&input, &table));
    let curves = reports::learning_curves(&input, &CurveOptions::new(metric)).unwrap();
    time("learning curves: data (1 metric)", || {
        reports::learning_curves(&input, &CurveOptions::new(metric)).unwrap()
    });
    time("learning curves: svg", || curves.to_svg().unwrap());
    time("learning curves: png", || curves.to_png().unwrap());
    time("ablation bars: data + svg + png", || {
        let opts = BarOptions::auto(&input, metric);
        let b = reports::figures::ablation_bars_from_table(&input, &table, &opts).unwrap();
        (b.to_svg().unwrap(), b.to_png().unwrap())
    });
    time("manager panels + heatmap: data + svg + png", || {
        let o = ManagerOptions::default();
        let p = reports::manager_panels(&input, &o).unwrap();
        let h = reports::manager_heatmap(&input, &o).unwrap();
        (
            p.to_svg().unwrap(),
            p.to_png().unwrap(),
            h.to_svg().unwrap(),
            h.to_png().unwrap(),
        )
    });

    let cpu0 = cpu_seconds();
    let dir = std::env::temp_dir().join(format!("reports-bench-{}", std::process::id()));
    let mut files = 0;
    let whole = time("WHOLE REPORT: write_all (all formats)", || {
        let w = reports::write_all(&input, &dir, &Format::ALL).unwrap();
        files = w.files.len();
    });
    let cpu = cpu0.and_then(|c0| cpu_seconds().map(|c1| (c1 - c0) / REPS as f64));
    let _ = std::fs::remove_dir_all(&dir);
    println!(
        "whole report: {files} files in {:.2} s wall (best of {REPS}); {} CPU s per report \
         (all threads; wall time on a loaded machine overstates it); {} threads available",
        whole.as_secs_f64(),
        cpu.map_or("n/a".to_string(), |c| format!("{c:.2}")),
        std::thread::available_parallelism().map_or(1, |n| n.get()),
    );
    println!("target: < 3 s for the whole report including the store read");
}

/// User + system CPU time of this process (Linux `/proc/self/stat`, 100 Hz ticks).
fn cpu_seconds() -> Option<f64> {
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    // Fields after the parenthesised command name; utime and stime are fields 14 and 15.
    let rest = &stat[stat.rfind(')')? + 2..];
    let f: Vec<&str> = rest.split_whitespace().collect();
    let ticks: f64 = f.get(11)?.parse::<f64>().ok()? + f.get(12)?.parse::<f64>().ok()?;
    Some(ticks / 100.0)
}
