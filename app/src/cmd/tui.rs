//! `towerlab tui`: the terminal UI on the store, with the runner's planner so that the Sweeps
//! view plans and queues experiment files exactly as `towerlab plan` / `towerlab queue` do.

use std::io::IsTerminal;
use std::path::{Path, PathBuf};

use crate::tui::model::PlanCell;
use crate::tui::Planner;
use experiments::run::{cell_state, heartbeat_age};
use experiments::Overrides;
use store::Store;

use crate::exit::UserError;
use crate::runner::{self, plan};

pub fn run(db: &Path, file: Option<PathBuf>) -> anyhow::Result<()> {
    if let Some(f) = &file {
        // Checked before the screen is taken: a wrong path or file is one line, exit code 2.
        prepare(f, false).map_err(|e| UserError {
            code: 2,
            message: format!("{e:#}"),
        })?;
    }
    if !std::io::stdout().is_terminal() || !std::io::stdin().is_terminal() {
        return Err(UserError {
            code: 2,
            message: "`towerlab tui` needs a terminal (stdin and stdout are not one)".into(),
        }
        .into());
    }
    crate::tui::run_on_store(db, Some(Box::new(RunnerPlanner)), file)
}

/// The runner's plan and queue, for the TUI.
struct RunnerPlanner;

fn prepare(file: &Path, make_data: bool) -> anyhow::Result<runner::Prepared> {
    runner::prepare_quietly(
        Some(file),
        &Overrides::from_process_env(Vec::new()),
        make_data,
    )
}

impl Planner for RunnerPlanner {
    fn plan(
        &self,
        rt: &tokio::runtime::Runtime,
        store: &Store,
        file: &Path,
    ) -> anyhow::Result<Vec<PlanCell>> {
        // No side effects here: synthetic data is made when the cells are queued.
        let runner::Prepared { exp, cells, .. } = prepare(file, false)?;
        let (plan, stored) = rt.block_on(plan::plan_against(store, &exp, cells))?;
        let now = store::now_ms();
        Ok(plan
            .rows
            .iter()
            .map(|row| {
                let run = stored.get(row.cell.identity.as_str());
                PlanCell {
                    cell_key: format!("{} seed {}", row.cell.key.0, row.cell.seed),
                    state: cell_state(
                        Some(row.state),
                        run.map(|r| r.status),
                        run.and_then(|r| heartbeat_age(r.heartbeat_ms, now)),
                    ),
                    run: run.map(|r| r.id.0),
                    progress: run.and_then(|r| r.progress_step.zip(r.progress_total)),
                }
            })
            .collect())
    }

    fn queue(
        &self,
        rt: &tokio::runtime::Runtime,
        store: &Store,
        file: &Path,
    ) -> anyhow::Result<usize> {
        let runner::Prepared {
            exp, source, cells, ..
        } = prepare(file, true)?;
        let (_, report) = rt.block_on(plan::plan_and_queue(store, &exp, &source, cells))?;
        Ok(report.added.len() + report.resumed.len())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use experiments::CellState;

    const EXPERIMENT: &str = r#"
name = "tui-plan"
task = "vqa"

[data]
root = "data"
synthetic = true

[base]
preset = "tiny"
max_steps = 4
train_tables = ["vqav2_train"]
val_tables = ["vqav2_val"]
test_tables = ["vqav2_test"]
vqav2_label_size = 21

[grid]
manager_type = ["BT", "AAUE"]
seeds = [0, 1]

[metric]
name = "val/vqa/score_epoch"
goal = "maximize"
"#;

    #[test]
    fn the_sweeps_view_plans_queues_and_replans_an_experiment_file() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("exp.toml");
        let data = dir.path().join("data");
        std::fs::write(
            &file,
            EXPERIMENT.replace("root = \"data\"", &format!("root = {data:?}")),
        )
        .unwrap();
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let store = rt.block_on(Store::open(dir.path().join("t.db"))).unwrap();
        let planner = RunnerPlanner;

        let queued = planner.queue(&rt, &store, &file).unwrap();
        assert_eq!(queued, 4);
        let cells = planner.plan(&rt, &store, &file).unwrap();
        assert_eq!(cells.len(), 4);
        assert!(cells
            .iter()
            .all(|c| c.state == CellState::Queued && c.run.is_some()));
        assert!(cells
            .iter()
            .any(|c| c.cell_key == "manager_type=AAUE seed 1"));
        // Queueing again adds nothing.
        assert_eq!(planner.queue(&rt, &store, &file).unwrap(), 0);

        // A changed file makes its cells stale: they would run again with the new config.
        let text = std::fs::read_to_string(&file).unwrap();
        std::fs::write(&file, text.replace("max_steps = 4", "max_steps = 5")).unwrap();
        let cells = planner.plan(&rt, &store, &file).unwrap();
        assert!(
            cells.iter().all(|c| c.state == CellState::Stale),
            "{cells:?}"
        );

        // A broken file is one error naming it.
        std::fs::write(&file, text.replace("max_steps = 4", "max_stepz = 4")).unwrap();
        let e = format!("{:#}", planner.plan(&rt, &store, &file).unwrap_err());
        assert!(e.contains("max_stepz") && e.contains("exp.toml"), "{e}");
        rt.block_on(store.close());
    }
}
