//! The sweeps view: the experiments, the plan of the one opened, its cells.

use super::{step_index, App, View};
use crate::tui::message::Command;
use crate::tui::model::{ExperimentInfo, Plan};

/// Where the focus is in the sweeps view.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SweepPane {
    Experiments,
    Cells,
}

impl App {
    /// Shows `e`'s plan with the focus on its cells (Esc or ← returns to the list; the list's
    /// cursor stays on `e`).
    pub(super) fn show_plan(&mut self, e: ExperimentInfo) {
        if self.plan_for.as_ref() != Some(&e) {
            self.plan = None;
            self.cell_cursor = 0;
        }
        self.plan_for = Some(e);
        self.sweep_pane = SweepPane::Cells;
    }

    /// `q`: queue the new cells of the experiment under the cursor, once confirmed.
    pub(super) fn queue_experiment(&mut self) {
        if let Some(e) = self.experiments.get(self.experiment_cursor).cloned() {
            self.ask(
                format!("queue the new cells of {}?", e.name),
                Command::Queue(e),
            );
        }
    }

    pub(super) fn apply_experiments(&mut self, e: Vec<ExperimentInfo>) {
        // The cursor stays on its experiment when the list changes (an experiment
        // queued from its file moves among the store's).
        let at = self.experiments.get(self.experiment_cursor).cloned();
        self.experiments = e;
        for o in &self.opened {
            if !self.experiments.iter().any(|x| same_experiment(x, o)) {
                self.experiments.push(o.clone());
            }
        }
        let found = at.and_then(|a| self.experiments.iter().position(|e| same_experiment(e, &a)));
        self.experiment_cursor = found.unwrap_or_else(|| {
            self.experiment_cursor
                .min(self.experiments.len().saturating_sub(1))
        });
        // The plan shown follows its experiment's new entry (name from the store).
        if let Some(shown) = &self.plan_for {
            if let Some(e) = self.experiments.iter().find(|e| same_experiment(e, shown)) {
                self.plan_for = Some(e.clone());
            }
        }
    }

    /// A file opened from the picker or the command line: listed, selected and its plan shown.
    pub(super) fn apply_opened(&mut self, e: ExperimentInfo) {
        self.goto(View::Sweeps);
        if !self.opened.iter().any(|x| same_experiment(x, &e)) {
            self.opened.push(e.clone());
        }
        if !self.experiments.iter().any(|x| same_experiment(x, &e)) {
            self.experiments.push(e.clone());
        }
        self.experiment_cursor = self
            .experiments
            .iter()
            .position(|x| same_experiment(x, &e))
            .unwrap_or(0);
        self.show_plan(e);
    }

    pub(super) fn apply_plan(&mut self, p: Plan) {
        self.cell_cursor = self.cell_cursor.min(p.cells.len().saturating_sub(1));
        self.plan = Some(p);
    }

    /// The runs a cancel or retry in the sweeps view acts on: the cell's run, or on the
    /// experiment all of its cells' runs.
    pub(super) fn sweep_runs(&self) -> Vec<i64> {
        match self.sweep_pane {
            SweepPane::Cells => self
                .plan
                .as_ref()
                .and_then(|p| p.cells.get(self.cell_cursor))
                .and_then(|c| c.run)
                .into_iter()
                .collect(),
            SweepPane::Experiments => self
                .plan
                .as_ref()
                .map(|p| p.cells.iter().filter_map(|c| c.run).collect())
                .unwrap_or_default(),
        }
    }

    /// Enter: an experiment shows its plan, a cell opens its run.
    pub(super) fn open_in_sweeps(&mut self) {
        match self.sweep_pane {
            SweepPane::Experiments => {
                if let Some(e) = self.experiments.get(self.experiment_cursor).cloned() {
                    self.show_plan(e);
                }
            }
            SweepPane::Cells => {
                let run = self
                    .plan
                    .as_ref()
                    .and_then(|p| p.cells.get(self.cell_cursor))
                    .and_then(|c| c.run);
                if let Some(id) = run {
                    self.open_run_view(id);
                }
            }
        }
    }

    pub(super) fn move_in_sweeps(&mut self, delta: i64) {
        match self.sweep_pane {
            SweepPane::Experiments => {
                self.experiment_cursor =
                    step_index(self.experiment_cursor, delta, self.experiments.len());
            }
            SweepPane::Cells => {
                let n = self.plan.as_ref().map_or(0, |p| p.cells.len());
                self.cell_cursor = step_index(self.cell_cursor, delta, n);
            }
        }
    }

    /// ← the experiments list, → the plan.
    pub(super) fn switch_sweep_pane(&mut self, delta: i64) {
        self.sweep_pane = if delta < 0 {
            SweepPane::Experiments
        } else {
            SweepPane::Cells
        };
    }
}

/// The same experiment in two lists: same file, or same name.
fn same_experiment(a: &ExperimentInfo, b: &ExperimentInfo) -> bool {
    (a.path.is_some() && a.path == b.path) || a.name == b.name
}
