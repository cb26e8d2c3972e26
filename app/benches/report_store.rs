//! `cargo bench -p app --no-default-features --bench report_store [-- RUNS STEPS]`: the whole
//! `towerlab report` path on a store of RUNS runs (default 1,000) with STEPS steps each (default
//! 10k): read the store into the report input, then write the table (md, tex, csv) and every
//! figure (curves, bars, manager panels and heatmap, SVG and PNG). The peer, in the same run:
//! the same store's metric points read into a pandas DataFrame through sqlite3
//! (`pd.read_sql`), with the Python environment of `scripts/setup-python-peer.sh`.
//! Target: report < 3 s.

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use serde_json::json;
use store::{
    Goal, ManagerWeight, ManagerWeightRow, MetricPoint, Modality, NewRun, Store, WorkerInfo,
};

const MANAGERS: [&str; 4] = ["BT", "SAUE", "AAUE", "METER"];
const LAYERS: [i64; 5] = [2, 3, 4, 6, 8];

fn experiment_file(seeds: usize) -> String {
    let seeds: Vec<String> = (0..seeds).map(|s| s.to_string()).collect();
    format!(
        r#"
name = "report-bench"
task = "vqa"
baseline = {{ manager_type = "BT", num_layers = 2 }}

[data]
root = "data"

[grid]
manager_type = ["BT", "SAUE", "AAUE", "METER"]
num_layers = [2, 3, 4, 6, 8]
seeds = [{}]

[metric]
name = "val/vqa/score"
goal = "maximize"
summary = "best"
"#,
        seeds.join(", ")
    )
}

/// The experiment's cells with identities from a fixed data digest (no data files here).
fn cells(exp: &experiments::Experiment) -> Vec<experiments::Cell> {
    exp.cells(&experiments::IdentityContext::fixed("bench", "bench-data"))
}

/// `runs` runs, one per cell of the grid (its seeds sized to hold them), each with the
/// reported `val/vqa/score` and an unreported `train/vqa/loss` at every step, and manager
/// weights (2 modalities x 4 layers x 6 experts) at 10 evaluations. The runs carry the plan's
/// identities, so the report's scope (the plan's done runs) holds them all.
async fn fill(store: &Store, exp: &experiments::Experiment, runs: usize, steps: usize) -> u64 {
    let row = store
        .upsert_experiment("report-bench", "report-bench.toml", "bench")
        .await
        .unwrap();
    let worker = WorkerInfo::this_process("cpu", "bench");
    let mut points_total = 0;
    for (i, cell) in cells(exp).into_iter().take(runs).enumerate() {
        let manager = cell.settings.manager_type.as_str();
        let seed = cell.seed;
        let mut axes: serde_json::Map<String, serde_json::Value> =
            cell.axes.iter().cloned().collect();
        axes.insert("seed".into(), json!(seed));
        let new = NewRun {
            hash: cell.identity.as_str().to_string(),
            cell_key: cell.key.0.clone(),
            axes,
            task: "vqa".into(),
            params: vec![
                ("text_num_layers".into(), json!(12)),
                ("vit_num_layers".into(), json!(12)),
                ("managed_layers_text".into(), json!(6)),
                ("managed_layers_image".into(), json!(6)),
            ],
            depends_on: None,
        };
        store.create_runs(row.id, &[new]).await.unwrap();
        let claim = store.claim(&worker, Some(row.id)).await.unwrap().unwrap();
        let run = claim.run.id;
        store
            .declare_metrics(
                run,
                &[
                    ("val/vqa/score", Goal::Maximize),
                    ("train/vqa/loss", Goal::Minimize),
                ],
            )
            .await
            .unwrap();
        let m = MANAGERS.iter().position(|x| *x == manager).unwrap_or(0);
        let quality = 0.4 + 0.02 * m as f64 + 0.005 * seed as f64;
        let mut points = Vec::with_capacity(2 * steps);
        for s in 1..=steps as i64 {
            let t = s as f64 / steps as f64;
            points.push(MetricPoint {
                key: "train/vqa/loss".into(),
                step: s,
                value: 2.0 * (-3.0 * t).exp() + 0.01 * ((s * 7919 + i as i64) % 13) as f64,
                wall_ms: s * 100,
            });
            points.push(MetricPoint {
                key: "val/vqa/score".into(),
                step: s,
                value: quality * (1.0 - (-4.0 * t).exp())
                    + 0.002 * ((s * 31 + i as i64) % 7) as f64,
                wall_ms: s * 100,
            });
        }
        points_total += points.len() as u64;
        for batch in points.chunks(10_000) {
            store.ingest_metrics(run, batch).await.unwrap();
        }
        let weights: Vec<ManagerWeightRow> = (1..=10)
            .flat_map(|e| {
                let step = (e * steps / 10) as i64;
                Modality::ALL.iter().flat_map(move |&modality| {
                    (0..4u32).flat_map(move |layer| {
                        (0..6).map(move |expert| ManagerWeightRow {
                            step,
                            value: ManagerWeight {
                                modality,
                                layer,
                                expert,
                                weight: (1 + expert + i64::from(layer)) as f64 / 40.0,
                            },
                        })
                    })
                })
            })
            .collect();
        store.ingest_manager_weights(run, &weights).await.unwrap();
        store.finish(&claim.lease).await.unwrap();
    }
    points_total
}

fn secs(d: Duration) -> String {
    format!("{:.3}", d.as_secs_f64())
}

/// The pandas peer: `(seconds, rows)` or why it did not run.
fn pandas_peer(db: &Path) -> Result<(f64, u64), String> {
    let repo = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let setup = Command::new(repo.join("scripts/setup-python-peer.sh"))
        .output()
        .map_err(|e| format!("setup-python-peer.sh: {e}"))?;
    if !setup.status.success() {
        return Err(String::from_utf8_lossy(&setup.stderr).into_owned());
    }
    let pythonpath = String::from_utf8_lossy(&setup.stdout).trim().to_owned();
    let script = r#"
import sqlite3, sys, time
import pandas as pd
t = time.perf_counter()
con = sqlite3.connect(sys.argv[1])
df = pd.read_sql(
    "SELECT p.run_id, p.key, p.step, p.value, p.wall_ms FROM metric_points p "
    "JOIN runs r ON r.id = p.run_id JOIN experiments e ON e.id = r.experiment_id "
    "WHERE e.name = 'report-bench' AND p.key = 'val/vqa/score'", con)
print(time.perf_counter() - t, len(df))
"#;
    let out = Command::new("python3")
        .arg("-c")
        .arg(script)
        .arg(db)
        .env("PYTHONPATH", pythonpath)
        .output()
        .map_err(|e| format!("python3: {e}"))?;
    if !out.status.success() {
        return Err(String::from_utf8_lossy(&out.stderr).into_owned());
    }
    let text = String::from_utf8_lossy(&out.stdout);
    let mut parts = text.split_whitespace();
    let secs = parts.next().and_then(|s| s.parse().ok());
    let rows = parts.next().and_then(|s| s.parse().ok());
    secs.zip(rows)
        .ok_or_else(|| format!("unexpected output: {text}"))
}

fn main() {
    let args: Vec<usize> = std::env::args()
        .skip(1)
        .filter_map(|a| a.parse().ok())
        .collect();
    let runs = args.first().copied().unwrap_or(1000);
    let steps = args.get(1).copied().unwrap_or(10_000);
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("bench.db");
    let file = dir.path().join("report-bench.toml");
    // Enough seeds that every run is a cell of its own.
    let cells_per_seed = MANAGERS.len() * LAYERS.len();
    std::fs::write(&file, experiment_file(runs.div_ceil(cells_per_seed).max(1))).unwrap();
    let exp = experiments::Experiment::load(&file, &experiments::Overrides::default())
        .unwrap_or_else(|e| panic!("{e}"));
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();

    let t = Instant::now();
    let store = rt.block_on(Store::open(&db)).unwrap();
    let points = rt.block_on(fill(&store, &exp, runs, steps));
    println!(
        "store: {runs} runs x {steps} steps, {points} metric points, filled in {} s",
        secs(t.elapsed())
    );

    println!("{:<40} {:>10}", "stage", "seconds");
    let t = Instant::now();
    let input = rt
        .block_on(async {
            let scope = app::scope::PlanScope::compute(&store, &exp, cells(&exp)).await?;
            app::report_input::build_input(&store, &exp, &scope, None, None).await
        })
        .unwrap();
    let read = t.elapsed();
    println!(
        "{:<40} {:>10}",
        "towerlab: store -> report input",
        secs(read)
    );
    let out = dir.path().join("report");
    let t = Instant::now();
    let written = reports::write_all_with(
        &input,
        &out,
        &[
            reports::Format::Markdown,
            reports::Format::Latex,
            reports::Format::Csv,
            reports::Format::Svg,
            reports::Format::Png,
        ],
        &reports::WriteOptions::default(),
    )
    .unwrap();
    let write = t.elapsed();
    println!(
        "{:<40} {:>10}",
        format!("towerlab: table + figures ({} files)", written.files.len()),
        secs(write)
    );
    let total = read + write;
    println!(
        "{:<40} {:>10}   (target < 3 s)",
        "towerlab report, total",
        secs(total)
    );
    rt.block_on(store.close());

    match pandas_peer(&db) {
        Ok((secs_peer, rows)) => {
            println!(
                "{:<40} {:>10.3}   ({rows} rows)",
                "peer: pandas read_sql (same metric)", secs_peer
            );
            println!(
                "ratio peer / towerlab report: {:.2}x",
                secs_peer / total.as_secs_f64()
            );
        }
        Err(why) => println!("peer: not run ({})", why.trim()),
    }
}
