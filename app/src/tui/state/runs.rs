//! The runs table: the list, its filter, sort, grouping, marks and key metric, and the cursor.

use std::collections::BTreeSet;

use super::{step_index, App, View};
use crate::tui::action::{Action, InputMode};
use crate::tui::layout::TABLE_BODY_TOP;
use crate::tui::model::RunSummary;
use crate::tui::table::{self, Column, Filter, Sort};

impl App {
    pub fn metric(&self) -> &str {
        self.key_metric.as_deref().unwrap_or("")
    }

    /// Rows of the runs table: groups when grouping, else runs.
    pub fn row_count(&self) -> usize {
        if self.group_by.is_some() {
            self.groups.len()
        } else {
            self.visible.len()
        }
    }

    /// The run under the cursor (not in grouped mode).
    pub fn current_run(&self) -> Option<&RunSummary> {
        if self.group_by.is_some() {
            return None;
        }
        self.visible.get(self.cursor).map(|&i| &self.runs[i])
    }

    /// The axes column of run `id` (as the runs table shows it).
    pub fn axes_of(&self, id: i64) -> Option<&str> {
        let i = self
            .runs
            .binary_search_by_key(&id, |r| r.id)
            .ok()
            .or_else(|| self.runs.iter().position(|r| r.id == id))?;
        self.axes_column.get(i).map(String::as_str)
    }

    pub fn run_by_id(&self, id: i64) -> Option<&RunSummary> {
        // Runs arrive sorted by id from every source.
        self.runs
            .binary_search_by_key(&id, |r| r.id)
            .ok()
            .map(|i| &self.runs[i])
            .or_else(|| self.runs.iter().find(|r| r.id == id))
    }

    /// Rows of the table body at the current size (tabs, header, borders, status line).
    pub fn page_rows(&self) -> usize {
        (self.size.1 as usize).saturating_sub(5).max(1)
    }

    /// Takes a new list of runs, keeping the cursor on the same run when it still shows.
    pub fn set_runs(&mut self, runs: Vec<RunSummary>) {
        let keep = self.current_run().map(|r| r.id);
        self.runs = runs;
        self.loaded = true;
        // Computed once per list, not per keystroke or comparison.
        self.cells = self.runs.iter().map(RunSummary::cell_key).collect();
        self.axes_column = crate::tui::axes::axes_column(&self.runs);
        self.search = self
            .runs
            .iter()
            .zip(&self.cells)
            .map(|(r, cell)| table::search_text(r, cell))
            .collect();
        self.axes = table::axis_names(&self.runs);
        self.metrics = table::metric_names(&self.runs);
        if self
            .key_metric
            .as_ref()
            .is_none_or(|m| !self.metrics.contains(m))
        {
            self.key_metric = default_metric(&self.runs, &self.metrics);
        }
        let live: BTreeSet<i64> = self.runs.iter().map(|r| r.id).collect();
        self.marked.retain(|id| live.contains(id));
        self.recompute();
        if let Some(id) = keep {
            if let Some(pos) = self.visible.iter().position(|&i| self.runs[i].id == id) {
                self.cursor = pos;
            }
        }
        self.clamp_cursor();
    }

    /// Re-filters, re-sorts and re-groups after any change to runs, filter, sort or grouping.
    pub fn recompute(&mut self) {
        self.visible = table::visible_rows(
            &self.runs,
            &self.cells,
            &self.search,
            &self.filter,
            &self.sort,
            self.metric(),
            self.now_ms,
        );
        self.groups = match &self.group_by {
            Some(axis) => table::group_rows(&self.runs, &self.visible, axis, self.metric()),
            None => Vec::new(),
        };
        self.clamp_cursor();
    }

    pub(super) fn clamp_cursor(&mut self) {
        let n = self.row_count();
        self.cursor = self.cursor.min(n.saturating_sub(1));
        let page = self.page_rows();
        if self.cursor < self.offset {
            self.offset = self.cursor;
        } else if self.cursor >= self.offset + page {
            self.offset = self.cursor + 1 - page;
        }
        self.offset = self.offset.min(n.saturating_sub(page.min(n)));
    }

    pub(super) fn live_filter(&mut self) {
        match Filter::parse(&self.filter_input) {
            Ok(f) => {
                self.filter = f;
                self.filter_error = None;
                self.cursor = 0;
                self.offset = 0;
                self.recompute();
            }
            Err(e) => self.filter_error = Some(e),
        }
    }

    pub(super) fn move_cursor(&mut self, delta: i64) {
        self.cursor = step_index(self.cursor, delta, self.row_count());
        self.clamp_cursor();
    }

    /// The actions on the table itself: filter, sort, grouping, marks, key metric.
    pub(super) fn update_table(&mut self, action: Action) {
        match action {
            Action::StartFilter => {
                self.goto(View::Runs);
                self.mode = InputMode::Filter;
                self.filter_input = self.filter_text.clone();
            }
            Action::FilterChar(c) => {
                self.filter_input.push(c);
                self.live_filter();
            }
            Action::FilterBackspace => {
                self.filter_input.pop();
                self.live_filter();
            }
            Action::FilterClear => {
                self.filter_input.clear();
                self.live_filter();
            }
            Action::FilterCommit => {
                self.mode = InputMode::Normal;
                self.live_filter();
                if self.filter_error.is_none() {
                    self.filter_text = self.filter_input.clone();
                }
            }
            Action::FilterCancel => {
                self.mode = InputMode::Normal;
                self.filter_input = self.filter_text.clone();
                self.live_filter();
            }
            Action::NextKeyMetric | Action::PrevKeyMetric if !self.metrics.is_empty() => {
                let n = self.metrics.len();
                let cur = self
                    .key_metric
                    .as_ref()
                    .and_then(|m| self.metrics.iter().position(|x| x == m))
                    .unwrap_or(0);
                let next = if action == Action::NextKeyMetric {
                    (cur + 1) % n
                } else {
                    (cur + n - 1) % n
                };
                self.key_metric = Some(self.metrics[next].clone());
                self.recompute();
            }
            Action::SortBy(col) => {
                if self.sort.column == col {
                    self.sort.descending = !self.sort.descending;
                } else {
                    self.sort = Sort {
                        column: col,
                        descending: false,
                    };
                }
                self.recompute();
            }
            Action::NextSortColumn => {
                let i = Column::ALL
                    .iter()
                    .position(|c| *c == self.sort.column)
                    .unwrap_or(0);
                self.sort.column = Column::ALL[(i + 1) % Column::ALL.len()];
                self.recompute();
            }
            Action::ReverseSort => {
                self.sort.descending = !self.sort.descending;
                self.recompute();
            }
            Action::CycleGroup => {
                self.group_by = match &self.group_by {
                    None => self.axes.first().cloned(),
                    Some(cur) => {
                        let i = self.axes.iter().position(|a| a == cur);
                        i.and_then(|i| self.axes.get(i + 1)).cloned()
                    }
                };
                self.cursor = 0;
                self.offset = 0;
                self.recompute();
            }
            Action::ToggleMark => {
                if let Some(id) = self.current_run().map(|r| r.id) {
                    if !self.marked.remove(&id) {
                        self.marked.insert(id);
                    }
                    self.move_cursor(1);
                }
            }
            Action::ClearMarks => self.marked.clear(),
            _ => {}
        }
    }

    /// Enter on the table: a group drills into it (filter on its value, stop grouping), a run
    /// opens in the run view.
    pub(super) fn open_in_table(&mut self) {
        if let Some(axis) = self.group_by.clone() {
            if let Some(g) = self.groups.get(self.cursor) {
                let mut word = format!("{axis}={}", g.value);
                if table::several_experiments(&self.groups) {
                    word = format!("{word} {}", g.experiment);
                }
                self.filter_input = if self.filter_text.is_empty() {
                    word
                } else {
                    format!("{} {word}", self.filter_text)
                };
                self.filter_text = self.filter_input.clone();
                self.group_by = None;
                self.live_filter();
            }
        } else if let Some(id) = self.current_run().map(|r| r.id) {
            self.open_run_view(id);
        }
    }

    /// A click on the table's body: selects the row, or opens it when already selected.
    pub(super) fn click_table(&mut self, y: u16) {
        // Body rows start below the tabs line, the block border and the header.
        let first = TABLE_BODY_TOP;
        if y >= first {
            let row = self.offset + (y - first) as usize;
            if row < self.row_count() {
                if row == self.cursor {
                    self.open();
                } else {
                    self.cursor = row;
                    self.clamp_cursor();
                }
            }
        }
    }
}

/// The metric a table shows first: the one most runs declare with a goal (their experiment's
/// `[metric]`; validation metrics first on a tie), else the first one.
fn default_metric(runs: &[RunSummary], metrics: &[String]) -> Option<String> {
    metrics
        .iter()
        .map(|m| {
            let declared = runs
                .iter()
                .filter(|r| r.summary(m).is_some_and(|s| s.goal.is_some()))
                .count();
            (m, declared)
        })
        .filter(|(_, n)| *n > 0)
        // Most declarations, then `val…`, then the name.
        .min_by_key(|(m, n)| (std::cmp::Reverse(*n), !m.starts_with("val"), (*m).clone()))
        .map(|(m, _)| m.clone())
        .or_else(|| metrics.first().cloned())
}
