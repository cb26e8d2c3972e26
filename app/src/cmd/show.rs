//! `towerlab show RUN`: one run's config, summaries, failure and artifacts.

use std::fmt::Write as _;
use std::path::Path;

use crate::exit::UserError;
use crate::runner::{self, lookup, Workspace};
use experiments::text_table;

fn time(ms: Option<i64>) -> String {
    ms.map_or("-".into(), experiments::clock::utc_text)
}

#[derive(Debug, clap::Args)]
pub struct ShowArgs {
    /// Run id (as `towerlab ls` shows), or identity prefix of at least 4 hex characters.
    pub run: String,
}

pub fn run(db: &Path, args: ShowArgs) -> anyhow::Result<()> {
    let rt = runner::runtime()?;
    rt.block_on(async move {
        let ws = Workspace::new(db);
        let Some(store) = ws.open_existing().await? else {
            return Err(anyhow::Error::new(UserError {
                code: 1,
                message: format!("no store at {}", ws.describe()),
            }));
        };
        let row = lookup::run(&store, &args.run).await?;
        let detail = store
            .run_detail(row.id)
            .await?
            .ok_or_else(|| anyhow::anyhow!("run {} vanished", row.id))?;
        let r = &detail.run;
        let mut out = String::new();
        let _ = writeln!(out, "run {}  {}", r.id, r.hash);
        let _ = writeln!(out, "experiment  {}", r.experiment);
        let _ = writeln!(out, "cell        {}", r.cell_key);
        let _ = writeln!(out, "task        {}", r.task);
        let _ = writeln!(out, "status      {} (attempt {})", r.status, r.attempts);
        if let (Some(class), msg) = (r.failure_class, &r.failure_message) {
            let _ = writeln!(out, "failure     {class}: {}", msg.as_deref().unwrap_or(""));
        }
        if let Some(dep) = r.depends_on {
            let _ = writeln!(out, "after       run {dep} (pre-training)");
        }
        let eval = detail
            .params
            .iter()
            .find(|p| p.key == runner::plan::PARAM_EVAL)
            .and_then(|p| serde_json::from_value::<experiments::EvalTarget>(p.value.clone()).ok());
        if let Some(e) = eval {
            let _ = writeln!(
                out,
                "scores      {} ({} split)",
                e.weights.display(),
                e.split.as_str()
            );
        }
        let _ = writeln!(
            out,
            "worker      {} (host {}, pid {}, device {})",
            r.worker.as_deref().unwrap_or("-"),
            r.host.as_deref().unwrap_or("-"),
            r.pid.map_or("-".into(), |p| p.to_string()),
            r.device.as_deref().unwrap_or("-")
        );
        let _ = writeln!(out, "queued      {}", time(Some(r.created_ms)));
        let _ = writeln!(out, "started     {}", time(r.started_ms));
        match (r.started_ms, r.ended_ms) {
            (Some(start), Some(end)) => {
                let _ = writeln!(
                    out,
                    "ended       {} (last attempt ran {})",
                    time(Some(end)),
                    experiments::clock::duration_text(end - start)
                );
            }
            _ => {
                let _ = writeln!(out, "ended       {}", time(r.ended_ms));
            }
        }
        let _ = writeln!(
            out,
            "progress    {} / {}",
            r.progress_step.map_or("-".into(), |s| s.to_string()),
            r.progress_total.map_or("-".into(), |s| s.to_string())
        );
        for (label, text) in cost_lines(&detail.summaries, r) {
            let _ = writeln!(out, "{label:<11} {text}");
        }
        if let Some(c) = &r.checkpoint_path {
            let _ = writeln!(
                out,
                "checkpoint  {c} (step {})",
                r.checkpoint_step.map_or("-".into(), |s| s.to_string())
            );
        }
        let _ = writeln!(
            out,
            "run dir     {}",
            runner::worker::run_dir(&ws.runs_dir, &r.hash).display()
        );
        if let Some(job) = runner::slurm::run_job_state(&store, r.id).await? {
            let _ = writeln!(out, "slurm       {}", job.describe());
            if !job.earlier.is_empty() {
                let _ = writeln!(out, "            earlier jobs {}", job.earlier.join(", "));
            }
        }
        let _ = writeln!(out, "\nconfig:");
        for p in detail.params.iter().filter(|p| !p.key.starts_with('_')) {
            let _ = writeln!(out, "  {} = {}", p.key, p.value);
        }
        if !detail.summaries.is_empty() {
            let rows: Vec<Vec<String>> = detail
                .summaries
                .iter()
                .map(|s| {
                    let f = |v: Option<f64>| v.map_or("-".into(), |v| format!("{v:.5}"));
                    vec![
                        s.key.clone(),
                        s.count.to_string(),
                        f(s.last),
                        f(s.min),
                        f(s.max),
                        match (s.best, s.best_step) {
                            (Some(b), Some(st)) => format!("{b:.5} @{st}"),
                            _ => "-".into(),
                        },
                    ]
                })
                .collect();
            let _ = writeln!(out, "\nmetrics:");
            out.push_str(&text_table::render(
                &["key", "points", "last", "min", "max", "best"],
                &rows,
            ));
        }
        // What the identity pinned, and what the run's attempts loaded (their log says).
        let weights = detail
            .params
            .iter()
            .find(|p| p.key == runner::plan::PARAM_IDENTITY)
            .map(|p| experiments::experts::Loads::from_document(&p.value))
            .unwrap_or_default();
        if !weights.is_empty() {
            let _ = writeln!(out, "\nweights (pinned by the identity):");
            if let serde_json::Value::Object(m) = experiments::experts::describe(&weights) {
                for (k, v) in m {
                    let _ = writeln!(out, "  {k:<15} {}", v.as_str().unwrap_or_default());
                }
            }
        }
        let loaded: Vec<_> = store
            .log_lines(r.id, None, None)
            .await?
            .into_iter()
            .filter(|l| l.text.starts_with("loaded ") && l.text.contains(" tensors from "))
            .collect();
        if !loaded.is_empty() {
            let _ = writeln!(out, "\nloaded:");
            for l in loaded {
                let _ = writeln!(out, "  [{}] {}", l.attempt, &l.text["loaded ".len()..]);
            }
        }
        if !detail.artifacts.is_empty() {
            let _ = writeln!(out, "\nartifacts:");
            for a in &detail.artifacts {
                let _ = writeln!(
                    out,
                    "  {:<10} {}{}{}",
                    a.kind.as_str(),
                    a.path,
                    a.step.map_or(String::new(), |s| format!("  step {s}")),
                    a.size_bytes.map_or(String::new(), |b| format!(
                        "  {:.1} MiB",
                        b as f64 / 1048576.0
                    ))
                );
            }
        }
        let tail = store.log_tail(r.id, 8).await?;
        if !tail.is_empty() {
            let _ = writeln!(out, "\nlog (last {} lines):", tail.len());
            for l in tail {
                let _ = writeln!(out, "  [{}] {:<5} {}", l.attempt, l.level, l.text);
            }
        }
        print!("{out}");
        anyhow::Ok(())
    })
}

/// Throughput, memory, time left and compute (`experiments::cost`), from the run's metric
/// summaries and times.
fn cost_lines(
    summaries: &[store::MetricSummary],
    r: &store::RunRow,
) -> Vec<(&'static str, String)> {
    use experiments::cost::{show_lines, Glance};
    let glance = Glance::of(
        summaries
            .iter()
            .filter_map(|s| s.last.map(|v| (s.key.as_str(), v))),
    );
    let progress = match (r.progress_step, r.progress_total) {
        (Some(s), Some(t)) => Some((s.max(0) as u64, t.max(0) as u64)),
        _ => None,
    };
    let running = r.status == store::RunStatus::Running;
    let ran = match (r.started_ms, r.ended_ms) {
        (Some(start), Some(end)) if !running => Some((
            r.device.as_deref().unwrap_or("cpu"),
            (end - start).max(0) as f64 / 1000.0,
        )),
        _ => None,
    };
    show_lines(&glance, progress, running, ran)
}
