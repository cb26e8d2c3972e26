//! The weights view: the manager weights of the open run, one step at a time.

use super::{step_index, App, View};
use crate::tui::model::ManagerWeights;

impl App {
    /// `w`: the weights of the selected run.
    pub(super) fn open_weights(&mut self) {
        if let Some(id) = self.selected_run_id() {
            self.open_run = Some(id);
            if self.weights.as_ref().is_none_or(|w| w.run != id) {
                self.weights = None;
                self.weights_step = None;
            }
            self.goto(View::Weights);
        }
    }

    pub(super) fn apply_weights(&mut self, w: Option<ManagerWeights>) {
        if let Some(w) = &w {
            self.weights_step = Some(w.step);
        }
        self.weights = w;
    }

    /// ←→: the previous or next step with weights.
    pub(super) fn step_weights(&mut self, delta: i64) {
        if let Some(w) = &self.weights {
            if let Some(i) = w.steps.iter().position(|s| *s == w.step) {
                let j = step_index(i, delta, w.steps.len());
                self.weights_step = Some(w.steps[j]);
            }
        }
    }
}
