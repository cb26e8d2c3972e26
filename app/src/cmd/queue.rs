//! `towerlab queue FILE`: adds the plan's missing cells to the store as queued runs.

use std::path::Path;

use experiments::Overrides;

use crate::cli::PlanArgs;
use crate::runner::{self, plan, Workspace};

pub fn run(db: &Path, args: PlanArgs) -> anyhow::Result<()> {
    let prepared = runner::prepare(
        Some(args.file.as_path()),
        &Overrides::from_process_env(args.set),
        true,
    )?;
    prepared.print_made();
    let runner::Prepared {
        exp, source, cells, ..
    } = prepared;
    let rt = runner::runtime()?;
    rt.block_on(async {
        let ws = Workspace::new(db);
        let store = ws.open().await?;
        let (plan, report) = plan::plan_and_queue(&store, &exp, &source, cells).await?;
        print!("{}", describe(&report, plan.rows.len()));
        println!(
            "store: {}; start a worker with `towerlab worker`",
            ws.describe()
        );
        anyhow::Ok(())
    })
}

/// What `queue` (and `run`) did, in a few lines.
pub fn describe(report: &plan::QueueReport, cells: usize) -> String {
    let mut out = String::new();
    if report.added.is_empty() && report.resumed.is_empty() {
        out.push_str(&format!(
            "nothing to queue: all {cells} cells are already done, queued or running\n"
        ));
    } else {
        if !report.added.is_empty() {
            out.push_str(&format!("queued {} run(s):\n", report.added.len()));
            for c in &report.added {
                let after = c.depends_on.as_ref().map_or(String::new(), |d| {
                    format!(" (after pre-training {})", d.short())
                });
                out.push_str(&format!(
                    "  {}  {} seed {}{after}\n",
                    c.identity.short(),
                    c.key,
                    c.seed
                ));
            }
        }
        if !report.resumed.is_empty() {
            out.push_str(&format!(
                "re-queued {} interrupted (cancelled or crashed) run(s) to resume from their \
                 last checkpoint\n",
                report.resumed.len()
            ));
        }
        if !report.superseded.is_empty() {
            out.push_str(&format!(
                "cancelled {} queued run(s) of the old settings of stale cells\n",
                report.superseded.len()
            ));
        }
        if report.unchanged > 0 {
            out.push_str(&format!(
                "{} cell(s) already done, queued or running\n",
                report.unchanged
            ));
        }
    }
    if report.failed > 0 {
        out.push_str(&format!(
            "{} cell(s) failed and were left alone (`towerlab retry --failed` re-queues them)\n",
            report.failed
        ));
    }
    out
}
