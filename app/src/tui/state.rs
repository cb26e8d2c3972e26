//! The TUI's state and how actions change it. No terminal, no store: `update` is a pure step
//! that may ask the data thread for work through the returned [`Command`]s.

use std::collections::{BTreeSet, HashMap};

use super::action::{Action, InputMode};
use super::layout::{tab_at, TABLE_BODY_TOP};
use super::message::{Command, DataMsg, Interest, LocalWorker};
use super::model::{
    ExperimentInfo, ManagerWeights, Plan, QueueCounts, RunDetail, RunStatus, RunSummary, Series,
    WorkerInfo,
};
use super::table::{self, Column, Filter, Group, Sort};

/// The views, in Tab order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum View {
    Runs,
    Run,
    Compare,
    Weights,
    Sweeps,
}

impl View {
    pub const ALL: [View; 5] = [
        View::Runs,
        View::Run,
        View::Compare,
        View::Weights,
        View::Sweeps,
    ];

    pub fn title(self) -> &'static str {
        match self {
            View::Runs => "Runs",
            View::Run => "Run",
            View::Compare => "Compare",
            View::Weights => "Weights",
            View::Sweeps => "Sweeps",
        }
    }
}

/// A question waiting for y/n.
#[derive(Debug, Clone, PartialEq)]
pub struct Pending {
    pub question: String,
    pub command: Command,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SweepPane {
    Experiments,
    Cells,
}

/// Points a chart asks for: about two per terminal column is plenty.
pub const SERIES_POINTS: usize = 400;
/// Runs the compare view overlays at most (colours stay distinct).
pub const MAX_COMPARE: usize = 8;

#[derive(Debug, Clone)]
pub struct App {
    /// What the data comes from, shown in the title and the empty-store help.
    pub source_label: String,
    pub view: View,
    history: Vec<View>,
    pub mode: InputMode,
    pub quit: bool,
    /// The current time (unix ms), advanced by the loop; durations of running runs use it.
    pub now_ms: i64,
    pub size: (u16, u16),

    /// False until the first list of runs arrives.
    pub loaded: bool,
    pub runs: Vec<RunSummary>,
    /// Only the first runs are in: the full list is still being read.
    pub partial: bool,
    /// Per run (same index): its cell key, and the lower-case text a filter word searches.
    pub cells: Vec<String>,
    /// Per run (same index): the table's axes column (varying axes, abbreviated).
    pub axes_column: Vec<String>,
    pub search: Vec<String>,
    /// Indices into `runs` that pass the filter, in display order.
    pub visible: Vec<usize>,
    pub groups: Vec<Group>,
    pub cursor: usize,
    pub offset: usize,
    pub marked: BTreeSet<i64>,
    pub sort: Sort,
    pub filter: Filter,
    pub filter_text: String,
    /// The text being typed after `/` (applied live).
    pub filter_input: String,
    pub filter_error: Option<String>,
    pub group_by: Option<String>,
    pub axes: Vec<String>,
    pub metrics: Vec<String>,
    /// The metric shown in the table, grouped stats and compare.
    pub key_metric: Option<String>,

    /// The run the Run and Weights views show.
    pub open_run: Option<i64>,
    pub details: HashMap<i64, RunDetail>,
    /// The metric the user moved the run view's chart to (←→); `None`: the run's key metric.
    pub chart_choice: Option<String>,
    pub series: HashMap<(i64, String), Series>,
    pub weights: Option<ManagerWeights>,
    pub weights_step: Option<i64>,

    pub experiments: Vec<ExperimentInfo>,
    pub experiment_cursor: usize,
    pub plan_for: Option<ExperimentInfo>,
    pub plan: Option<Plan>,
    pub cell_cursor: usize,
    pub sweep_pane: SweepPane,
    pub workers: Vec<WorkerInfo>,
    pub local_worker: LocalWorker,
    /// The file picker: what was typed, the files offered, the cursor among those that match.
    pub picker_input: String,
    pub picker_files: Vec<String>,
    pub picker_cursor: usize,
    /// Files opened from the picker or the command line: listed even when not in the store.
    pub opened: Vec<ExperimentInfo>,

    pub pending: Option<Pending>,
    pub status: Option<String>,
    pub error: Option<String>,
}

impl App {
    pub fn new(source_label: impl Into<String>) -> App {
        App {
            source_label: source_label.into(),
            view: View::Runs,
            history: Vec::new(),
            mode: InputMode::Normal,
            quit: false,
            now_ms: 0,
            size: (80, 24),
            loaded: false,
            runs: Vec::new(),
            partial: false,
            cells: Vec::new(),
            axes_column: Vec::new(),
            search: Vec::new(),
            visible: Vec::new(),
            groups: Vec::new(),
            cursor: 0,
            offset: 0,
            marked: BTreeSet::new(),
            sort: Sort::default(),
            filter: Filter::default(),
            filter_text: String::new(),
            filter_input: String::new(),
            filter_error: None,
            group_by: None,
            axes: Vec::new(),
            metrics: Vec::new(),
            key_metric: None,
            open_run: None,
            details: HashMap::new(),
            chart_choice: None,
            series: HashMap::new(),
            weights: None,
            weights_step: None,
            experiments: Vec::new(),
            experiment_cursor: 0,
            plan_for: None,
            plan: None,
            cell_cursor: 0,
            sweep_pane: SweepPane::Experiments,
            workers: Vec::new(),
            local_worker: LocalWorker::Stopped,
            picker_input: String::new(),
            picker_files: Vec::new(),
            picker_cursor: 0,
            opened: Vec::new(),
            pending: None,
            status: None,
            error: None,
        }
    }

    // ---- derived views of the state ------------------------------------------------------

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

    /// Runs the compare view shows: the marked ones, else the one under the cursor.
    pub fn compare_runs(&self) -> Vec<i64> {
        if self.marked.is_empty() {
            self.current_run().map(|r| vec![r.id]).unwrap_or_default()
        } else {
            self.marked.iter().copied().take(MAX_COMPARE).collect()
        }
    }

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

    /// The files the picker offers for what was typed (a case-insensitive part of the path).
    pub fn picker_matches(&self) -> Vec<&str> {
        let typed = self.picker_input.to_lowercase();
        self.picker_files
            .iter()
            .filter(|f| f.to_lowercase().contains(&typed))
            .map(String::as_str)
            .collect()
    }

    /// Rows of the table body at the current size (tabs, header, borders, status line).
    pub fn page_rows(&self) -> usize {
        (self.size.1 as usize).saturating_sub(5).max(1)
    }

    pub fn interest(&self) -> Interest {
        let mut it = Interest::default();
        match self.view {
            View::Run => {
                if let Some(run) = self.open_run {
                    it.details.push(run);
                    if let Some(key) = self.chart_key() {
                        it.series.push((run, key.to_owned()));
                    }
                }
            }
            View::Compare => {
                let runs = self.compare_runs();
                it.details.extend(&runs);
                if let Some(key) = &self.key_metric {
                    it.series.extend(runs.iter().map(|&r| (r, key.clone())));
                }
            }
            View::Weights => {
                if let Some(run) = self.open_run.or(self.current_run().map(|r| r.id)) {
                    it.weights = Some((run, self.weights_step));
                }
            }
            View::Sweeps => {
                it.sweeps = true;
                it.plan = self.plan_for.clone();
            }
            View::Runs => {}
        }
        it.files = self.mode == InputMode::Open;
        it
    }

    // ---- data from the data thread ---------------------------------------------------------

    pub fn apply(&mut self, msg: DataMsg) {
        match msg {
            DataMsg::Runs(runs) => {
                self.partial = false;
                self.set_runs(runs);
            }
            DataMsg::RunsHead(runs) => {
                // Never replace a full list by a head.
                if !self.loaded {
                    self.set_runs(runs);
                    self.partial = true;
                }
            }
            DataMsg::Detail(id, Some(d)) => {
                self.details.insert(id, *d);
            }
            DataMsg::Detail(id, None) => {
                self.details.remove(&id);
            }
            DataMsg::Series(s) => {
                self.series.insert((s.run, s.key.clone()), s);
            }
            DataMsg::Weights(_, w) => {
                if let Some(w) = &w {
                    self.weights_step = Some(w.step);
                }
                self.weights = w;
            }
            DataMsg::Experiments(e) => {
                // The cursor stays on its experiment when the list changes (an experiment
                // queued from its file moves among the store's).
                let at = self.experiments.get(self.experiment_cursor).cloned();
                self.experiments = e;
                for o in &self.opened {
                    if !self.experiments.iter().any(|x| same_experiment(x, o)) {
                        self.experiments.push(o.clone());
                    }
                }
                let found =
                    at.and_then(|a| self.experiments.iter().position(|e| same_experiment(e, &a)));
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
            DataMsg::Files(f) => {
                self.picker_files = f;
                self.picker_cursor = 0;
            }
            DataMsg::Opened(e) => {
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
            DataMsg::Plan(p) => {
                self.cell_cursor = self.cell_cursor.min(p.cells.len().saturating_sub(1));
                self.plan = Some(p);
            }
            DataMsg::Workers(w) => self.workers = w,
            DataMsg::LocalWorker(w) => self.local_worker = w,
            DataMsg::Notice(n) => {
                self.status = Some(n);
                self.error = None;
            }
            DataMsg::Error(e) => self.error = Some(e),
        }
    }

    /// Takes a new list of runs, keeping the cursor on the same run when it still shows.
    pub fn set_runs(&mut self, runs: Vec<RunSummary>) {
        let keep = self.current_run().map(|r| r.id);
        self.runs = runs;
        self.loaded = true;
        // Computed once per list, not per keystroke or comparison.
        self.cells = self.runs.iter().map(RunSummary::cell_key).collect();
        self.axes_column = super::axes::axes_column(&self.runs);
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

    fn clamp_cursor(&mut self) {
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

    // ---- actions ---------------------------------------------------------------------------

    /// Applies one action; returns the work it needs from the data thread.
    pub fn update(&mut self, action: Action) -> Vec<Command> {
        if !matches!(action, Action::Resize(..) | Action::Click(..)) {
            // Any key press acknowledges the last message.
            self.status = None;
        }
        match action {
            Action::Quit => self.quit = true,
            Action::Resize(w, h) => {
                self.size = (w, h);
                self.clamp_cursor();
            }
            Action::ToggleHelp => {
                self.mode = if self.mode == InputMode::Help {
                    InputMode::Normal
                } else {
                    InputMode::Help
                };
            }
            Action::NextView => self.switch_view(1),
            Action::PrevView => self.switch_view(View::ALL.len() - 1),
            Action::Back => self.back(),
            Action::Refresh => return vec![Command::Refresh],
            Action::Confirm => {
                self.mode = InputMode::Normal;
                if let Some(p) = self.pending.take() {
                    return vec![p.command];
                }
            }
            Action::Dismiss => {
                self.mode = InputMode::Normal;
                self.pending = None;
            }
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
            Action::OpenFile => {
                self.goto(View::Sweeps);
                self.mode = InputMode::Open;
                self.picker_input.clear();
                self.picker_cursor = 0;
            }
            Action::PickerChar(c) => {
                self.picker_input.push(c);
                self.picker_cursor = 0;
            }
            Action::PickerBackspace => {
                self.picker_input.pop();
                self.picker_cursor = 0;
            }
            Action::PickerComplete => {
                if let Some(f) = self.picker_matches().get(self.picker_cursor) {
                    self.picker_input = (*f).to_string();
                    self.picker_cursor = 0;
                }
            }
            Action::PickerCancel => self.mode = InputMode::Normal,
            Action::PickerCommit => {
                self.mode = InputMode::Normal;
                // The file under the cursor, else the path as typed.
                let path = self
                    .picker_matches()
                    .get(self.picker_cursor)
                    .map(|f| (*f).to_string())
                    .unwrap_or_else(|| self.picker_input.trim().to_string());
                if !path.is_empty() {
                    return vec![Command::OpenFile(path)];
                }
            }
            Action::Weights => {
                if let Some(id) = self.selected_run_id() {
                    self.open_run = Some(id);
                    if self.weights.as_ref().is_none_or(|w| w.run != id) {
                        self.weights = None;
                        self.weights_step = None;
                    }
                    self.goto(View::Weights);
                }
            }
            Action::Compare => self.goto(View::Compare),
            Action::Sweeps => self.goto(View::Sweeps),
            Action::StartWorker => return vec![Command::StartWorker],
            Action::StopWorker => return vec![Command::StopWorker],
            Action::QueueExperiment => {
                if let Some(e) = self.experiments.get(self.experiment_cursor).cloned() {
                    self.ask(
                        format!("queue the new cells of {}?", e.name),
                        Command::Queue(e),
                    );
                }
            }
            Action::CancelRun => {
                let ids = self.target_runs(|s| matches!(s, RunStatus::Queued | RunStatus::Running));
                if !ids.is_empty() {
                    self.ask(format!("cancel {}?", describe(&ids)), Command::Cancel(ids));
                } else {
                    self.status =
                        Some("nothing to cancel: no queued or running run selected".into());
                }
            }
            Action::RetryRun => {
                let ids = self.target_runs(RunStatus::is_failure);
                if !ids.is_empty() {
                    self.ask(format!("retry {}?", describe(&ids)), Command::Retry(ids));
                } else {
                    self.status =
                        Some("nothing to retry: no failed or crashed run selected".into());
                }
            }
            Action::NextKeyMetric | Action::PrevKeyMetric => {
                if !self.metrics.is_empty() {
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
            Action::Open => self.open(),
            Action::Up => self.move_in_view(-1),
            Action::Down => self.move_in_view(1),
            Action::PageUp => self.move_in_view(-(self.page_rows() as i64)),
            Action::PageDown => self.move_in_view(self.page_rows() as i64),
            Action::Top => self.move_in_view(i64::MIN / 2),
            Action::Bottom => self.move_in_view(i64::MAX / 2),
            Action::Left => self.sideways(-1),
            Action::Right => self.sideways(1),
            Action::Click(x, y) => self.click(x, y),
        }
        Vec::new()
    }

    fn ask(&mut self, question: String, command: Command) {
        self.pending = Some(Pending { question, command });
        self.mode = InputMode::Confirm;
    }

    fn live_filter(&mut self) {
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

    fn selected_run_id(&self) -> Option<i64> {
        match self.view {
            View::Run | View::Weights => self.open_run,
            _ => self.current_run().map(|r| r.id),
        }
    }

    /// The runs a cancel/retry acts on: the marked runs in the runs view, else the run in focus,
    /// keeping those whose status passes `keep`.
    fn target_runs(&self, keep: impl Fn(RunStatus) -> bool) -> Vec<i64> {
        let candidates: Vec<i64> = match self.view {
            View::Sweeps => match self.sweep_pane {
                SweepPane::Cells => self
                    .plan
                    .as_ref()
                    .and_then(|p| p.cells.get(self.cell_cursor))
                    .and_then(|c| c.run)
                    .into_iter()
                    .collect(),
                // On the experiment: all of its failed cells.
                SweepPane::Experiments => self
                    .plan
                    .as_ref()
                    .map(|p| p.cells.iter().filter_map(|c| c.run).collect())
                    .unwrap_or_default(),
            },
            View::Runs if !self.marked.is_empty() => self.marked.iter().copied().collect(),
            _ => self.selected_run_id().into_iter().collect(),
        };
        candidates
            .into_iter()
            .filter(|id| self.run_by_id(*id).is_some_and(|r| keep(r.status)))
            .collect()
    }

    fn goto(&mut self, view: View) {
        if self.view != view {
            self.history.push(self.view);
            self.view = view;
        }
    }

    fn back(&mut self) {
        if self.view == View::Sweeps && self.sweep_pane == SweepPane::Cells {
            // Esc in the plan goes back to the experiments list first.
            self.sweep_pane = SweepPane::Experiments;
            return;
        }
        match self.history.pop() {
            Some(v) => self.view = v,
            None if self.view != View::Runs => self.view = View::Runs,
            None if !self.filter_text.is_empty() => {
                // Esc on the runs view clears the filter.
                self.filter_text.clear();
                self.filter_input.clear();
                self.live_filter();
            }
            None => {}
        }
    }

    fn switch_view(&mut self, step: usize) {
        let i = View::ALL.iter().position(|v| *v == self.view).unwrap_or(0);
        let next = View::ALL[(i + step) % View::ALL.len()];
        if matches!(next, View::Run | View::Weights) && self.open_run.is_none() {
            self.open_run = self.current_run().map(|r| r.id);
        }
        self.history.clear();
        self.view = next;
    }

    fn open(&mut self) {
        match self.view {
            View::Runs => {
                if let Some(axis) = self.group_by.clone() {
                    // Enter on a group drills into it: filter on its value, stop grouping.
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
            View::Compare => {
                if let Some(&id) = self.compare_runs().first() {
                    self.open_run_view(id);
                }
            }
            View::Sweeps => match self.sweep_pane {
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
            },
            View::Run | View::Weights => {}
        }
    }

    /// Shows `e`'s plan with the focus on its cells (Esc or ← returns to the list; the list's
    /// cursor stays on `e`).
    fn show_plan(&mut self, e: ExperimentInfo) {
        if self.plan_for.as_ref() != Some(&e) {
            self.plan = None;
            self.cell_cursor = 0;
        }
        self.plan_for = Some(e);
        self.sweep_pane = SweepPane::Cells;
    }

    fn open_run_view(&mut self, id: i64) {
        if self.open_run != Some(id) {
            // A new run opens on its key metric.
            self.chart_choice = None;
        }
        self.open_run = Some(id);
        self.goto(View::Run);
    }

    fn move_in_view(&mut self, delta: i64) {
        if self.mode == InputMode::Open {
            let n = self.picker_matches().len();
            self.picker_cursor = step_index(self.picker_cursor, delta, n);
            return;
        }
        match self.view {
            View::Runs | View::Compare => self.move_cursor(delta),
            View::Run | View::Weights => {
                // Up/down walk through the runs list without leaving the view.
                self.move_cursor(delta);
                if let Some(id) = self.current_run().map(|r| r.id) {
                    if self.open_run != Some(id) {
                        self.open_run = Some(id);
                        self.weights_step = None;
                    }
                }
            }
            View::Sweeps => match self.sweep_pane {
                SweepPane::Experiments => {
                    self.experiment_cursor =
                        step_index(self.experiment_cursor, delta, self.experiments.len());
                }
                SweepPane::Cells => {
                    let n = self.plan.as_ref().map_or(0, |p| p.cells.len());
                    self.cell_cursor = step_index(self.cell_cursor, delta, n);
                }
            },
        }
    }

    fn move_cursor(&mut self, delta: i64) {
        self.cursor = step_index(self.cursor, delta, self.row_count());
        self.clamp_cursor();
    }

    fn sideways(&mut self, delta: i64) {
        match self.view {
            View::Run => {
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
            View::Compare => {
                let _ = self.update(if delta > 0 {
                    Action::NextKeyMetric
                } else {
                    Action::PrevKeyMetric
                });
            }
            View::Weights => {
                if let Some(w) = &self.weights {
                    if let Some(i) = w.steps.iter().position(|s| *s == w.step) {
                        let j = step_index(i, delta, w.steps.len());
                        self.weights_step = Some(w.steps[j]);
                    }
                }
            }
            View::Sweeps => {
                self.sweep_pane = if delta < 0 {
                    SweepPane::Experiments
                } else {
                    SweepPane::Cells
                };
            }
            View::Runs => {
                let _ = self.update(if delta > 0 {
                    Action::NextSortColumn
                } else {
                    Action::ReverseSort
                });
            }
        }
    }

    /// Mouse click: a tab in the top line, or a row of the runs table.
    fn click(&mut self, x: u16, y: u16) {
        if y == 0 {
            if let Some(view) = tab_at(x) {
                self.history.clear();
                if matches!(view, View::Run | View::Weights) && self.open_run.is_none() {
                    self.open_run = self.current_run().map(|r| r.id);
                }
                self.view = view;
            }
            return;
        }
        if self.view == View::Runs {
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

    /// How many runs of each status (for the sweeps view and the title).
    pub fn counts(&self) -> QueueCounts {
        QueueCounts::from_runs(&self.runs)
    }
}

/// The same experiment in two lists: same file, or same name.
fn same_experiment(a: &ExperimentInfo, b: &ExperimentInfo) -> bool {
    (a.path.is_some() && a.path == b.path) || a.name == b.name
}

fn describe(ids: &[i64]) -> String {
    match ids {
        [one] => format!("run {one}"),
        many => format!("{} runs", many.len()),
    }
}

fn step_index(cur: usize, delta: i64, n: usize) -> usize {
    if n == 0 {
        return 0;
    }
    (cur as i64).saturating_add(delta).clamp(0, n as i64 - 1) as usize
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
