use std::collections::BTreeSet;

use super::Table;
use crate::analysis::select_runs;
use crate::input::ReportInput;

/// Fixed columns of the table CSV; axis columns that collide get an `axis_` prefix.
const FIXED: [&str; 25] = [
    "cell",
    "baseline",
    "metric",
    "label",
    "goal",
    "policy",
    "n",
    "mean",
    "std",
    "seeds_expected",
    "seeds_finished",
    "seeds_failed",
    "seeds_running",
    "seeds_queued",
    "seeds_cancelled",
    "seeds_missing",
    "coverage",
    "best",
    "delta",
    "test",
    "test_note",
    "t",
    "df",
    "p",
    "significance",
];

/// The table in tidy form: one line per (cell, metric), numbers at full precision, p-values
/// included. `#` lines at the top carry the provenance.
pub fn render_csv(table: &Table) -> String {
    let mut out = String::new();
    for line in table.provenance.lines("table") {
        out.push_str(&format!("# {line}\n"));
    }
    let axis_cols = axis_columns(&table.axes, &FIXED);
    let mut header: Vec<String> = vec!["cell".into()];
    header.extend(axis_cols);
    header.extend(FIXED[1..].iter().map(|s| s.to_string()));
    if table.compute {
        header.extend(["gpu_hours".to_string(), "cpu_hours".to_string()]);
    }
    push_record(&mut out, &header);

    for row in &table.rows {
        for (m, e) in table.metrics.iter().zip(&row.entries) {
            let c = &row.coverage;
            let opt = |v: Option<f64>| v.map(num).unwrap_or_default();
            let test = e.comparison.and_then(|c| c.test);
            let mut rec = vec![row.cell.clone()];
            rec.extend(row.axis_values.iter().cloned());
            rec.extend([
                row.is_baseline.to_string(),
                m.key.clone(),
                m.label().to_string(),
                crate::input::goal_short(m.goal).to_string(),
                crate::input::describe_policy(&m.policy),
                e.summary.map_or(0, |s| s.n).to_string(),
                opt(e.summary.map(|s| s.mean)),
                opt(e.summary.and_then(|s| s.std)),
                c.expected.to_string(),
                c.finished.to_string(),
                c.failed.to_string(),
                c.running.to_string(),
                c.queued.to_string(),
                c.cancelled.to_string(),
                c.missing.to_string(),
                c.describe(),
                e.best.to_string(),
                opt(e.comparison.map(|c| c.delta)),
                test.map(|t| t.kind.as_str().to_string())
                    .unwrap_or_default(),
                e.comparison
                    .and_then(|c| c.fallback)
                    .map(|f| f.describe().to_string())
                    .unwrap_or_default(),
                opt(test.map(|t| t.t)),
                opt(test.map(|t| t.df)),
                opt(test.map(|t| t.p)),
                e.comparison
                    .map(|c| c.significance().mark().to_string())
                    .unwrap_or_default(),
            ]);
            if table.compute {
                rec.push(opt(row.compute.map(|c| c.gpu_hours)));
                rec.push(opt(row.compute.map(|c| c.cpu_hours)));
            }
            push_record(&mut out, &rec);
        }
    }
    out
}

/// One line per run (every status), with its per-metric value and whether the table used it.
/// `table` must have been built from `input`.
pub fn render_runs_csv(input: &ReportInput, table: &Table) -> String {
    let mut out = String::new();
    for line in table.provenance.lines("runs") {
        out.push_str(&format!("# {line}\n"));
    }
    let fixed = ["cell", "run_id", "seed", "status", "used"];
    let mut header: Vec<String> = vec!["cell".into()];
    header.extend(axis_columns(&input.axes, &fixed));
    header.extend(fixed[1..].iter().map(|s| s.to_string()));
    header.extend(input.metrics.iter().map(|m| m.key.clone()));
    push_record(&mut out, &header);
    for cell in &input.cells {
        let (used, _) = select_runs(cell);
        let used: BTreeSet<&str> = used.iter().map(|r| r.run_id.as_str()).collect();
        let mut runs: Vec<_> = cell.runs.iter().collect();
        runs.sort_by(|a, b| (a.seed, &a.run_id).cmp(&(b.seed, &b.run_id)));
        for run in runs {
            let mut rec = vec![cell.key.clone()];
            rec.extend(input.axes.iter().map(|a| cell.axes[a].clone()));
            rec.extend([
                run.run_id.clone(),
                run.seed.to_string(),
                run.status.as_str().to_string(),
                used.contains(run.run_id.as_str()).to_string(),
            ]);
            let values = table.run_values.get(&run.run_id);
            rec.extend((0..input.metrics.len()).map(|i| {
                values
                    .and_then(|v| v.get(i).copied().flatten())
                    .map(num)
                    .unwrap_or_default()
            }));
            push_record(&mut out, &rec);
        }
    }
    out
}

fn axis_columns(axes: &[String], fixed: &[&str]) -> Vec<String> {
    axes.iter()
        .map(|a| {
            if fixed.contains(&a.as_str()) {
                format!("axis_{a}")
            } else {
                a.clone()
            }
        })
        .collect()
}

/// Shortest text that reads back to the same f64.
fn num(v: f64) -> String {
    format!("{v:?}")
}

fn push_record(out: &mut String, fields: &[String]) {
    for (i, f) in fields.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        out.push_str(&quote(f));
    }
    out.push('\n');
}

/// RFC 4180 quoting.
fn quote(s: &str) -> String {
    if s.contains([',', '"', '\n', '\r']) || s.starts_with(' ') || s.ends_with(' ') {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s.to_string()
    }
}
