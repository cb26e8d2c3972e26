//! The run view: one run, its chart and the metric it charts.

use super::{App, View};
use crate::tui::model::RunSummary;

impl App {
    /// The metric the run view charts: the one chosen with ←→ when the run has it, else the
    /// run's key metric ([`App::run_key_metric`]).
    pub fn chart_key(&self) -> Option<&str> {
        let detail = self.details.get(&self.open_run?)?;
        let keys = &detail.metric_keys;
        if let Some(k) = self
            .chart_choice
            .as_deref()
            .and_then(|c| keys.iter().find(|k| *k == c))
        {
            return Some(k);
        }
        self.run_key_metric(&detail.run, keys)
    }

    /// The experiment's key metric for `run` among `keys`: the metric its file declares (the
    /// run's summaries with a goal, validation first), else the table's key metric, else the
    /// first key.
    pub fn run_key_metric<'a>(&self, run: &RunSummary, keys: &'a [String]) -> Option<&'a str> {
        let has = |m: &str| keys.iter().find(|k| *k == m).map(String::as_str);
        let declared: Vec<&str> = run
            .summaries
            .iter()
            .filter(|s| s.goal.is_some())
            .filter_map(|s| has(&s.key))
            .collect();
        declared
            .iter()
            .find(|m| m.starts_with("val"))
            .or(declared.first())
            .copied()
            .or_else(|| self.key_metric.as_deref().and_then(has))
            .or(keys.first().map(String::as_str))
    }

    pub(super) fn open_run_view(&mut self, id: i64) {
        if self.open_run != Some(id) {
            // A new run opens on its key metric.
            self.chart_choice = None;
        }
        self.open_run = Some(id);
        self.goto(View::Run);
    }

    /// Up/down in the run and weights views walk through the runs list without leaving it.
    pub(super) fn follow_cursor(&mut self, delta: i64) {
        self.move_cursor(delta);
        if let Some(id) = self.current_run().map(|r| r.id) {
            if self.open_run != Some(id) {
                self.open_run = Some(id);
                self.weights_step = None;
            }
        }
    }

    /// ←→: chart the run's previous or next metric.
    pub(super) fn next_chart(&mut self, delta: i64) {
        let current = self.chart_key().map(str::to_owned);
        if let Some(keys) = self
            .open_run
            .and_then(|id| self.details.get(&id))
            .map(|d| &d.metric_keys)
            .filter(|k| !k.is_empty())
        {
            let n = keys.len() as i64;
            let at = current
                .and_then(|c| keys.iter().position(|k| *k == c))
                .unwrap_or(0) as i64;
            self.chart_choice = Some(keys[(at + delta).rem_euclid(n) as usize].clone());
        }
    }
}
