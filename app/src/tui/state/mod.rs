//! The TUI's state and how actions change it. No terminal, no store: `update` is a pure step
//! that may ask the data thread for work through the returned [`Command`]s.

use std::collections::{BTreeSet, HashMap};

use super::action::{Action, InputMode};
use super::layout::tab_at;
use super::message::{Command, DataMsg, Interest, LocalWorker};
use super::model::{
    ExperimentInfo, ManagerWeights, Plan, QueueCounts, RunDetail, RunStatus, RunSummary, Series,
    WorkerInfo,
};
use super::table::{Filter, Group, Sort};

mod compare;
mod picker;
mod run;
mod runs;
mod sweeps;
mod weights;

pub use compare::MAX_COMPARE;
pub use sweeps::SweepPane;

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

/// Points a chart asks for: about two per terminal column is plenty.
pub const SERIES_POINTS: usize = 400;

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
            DataMsg::Weights(_, w) => self.apply_weights(w),
            DataMsg::Experiments(e) => self.apply_experiments(e),
            DataMsg::Files(f) => self.apply_files(f),
            DataMsg::Opened(e) => self.apply_opened(e),
            DataMsg::Plan(p) => self.apply_plan(p),
            DataMsg::Workers(w) => self.workers = w,
            DataMsg::LocalWorker(w) => self.local_worker = w,
            DataMsg::Notice(n) => {
                self.status = Some(n);
                self.error = None;
            }
            DataMsg::Error(e) => self.error = Some(e),
        }
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
            a @ (Action::OpenFile
            | Action::PickerChar(_)
            | Action::PickerBackspace
            | Action::PickerComplete
            | Action::PickerCancel
            | Action::PickerCommit) => return self.update_picker(a),
            Action::Weights => self.open_weights(),
            Action::Compare => self.goto(View::Compare),
            Action::Sweeps => self.goto(View::Sweeps),
            Action::StartWorker => return vec![Command::StartWorker],
            Action::StopWorker => return vec![Command::StopWorker],
            Action::QueueExperiment => self.queue_experiment(),
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
            a @ (Action::StartFilter
            | Action::FilterChar(_)
            | Action::FilterBackspace
            | Action::FilterClear
            | Action::FilterCommit
            | Action::FilterCancel
            | Action::NextKeyMetric
            | Action::PrevKeyMetric
            | Action::SortBy(_)
            | Action::NextSortColumn
            | Action::ReverseSort
            | Action::CycleGroup
            | Action::ToggleMark
            | Action::ClearMarks) => self.update_table(a),
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
            View::Sweeps => self.sweep_runs(),
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

    /// Enter: what opening means in the current view.
    fn open(&mut self) {
        match self.view {
            View::Runs => self.open_in_table(),
            View::Compare => self.open_in_compare(),
            View::Sweeps => self.open_in_sweeps(),
            View::Run | View::Weights => {}
        }
    }

    fn move_in_view(&mut self, delta: i64) {
        if self.mode == InputMode::Open {
            self.move_in_picker(delta);
            return;
        }
        match self.view {
            View::Runs | View::Compare => self.move_cursor(delta),
            View::Run | View::Weights => self.follow_cursor(delta),
            View::Sweeps => self.move_in_sweeps(delta),
        }
    }

    /// ←→: the next chart, step, pane, key metric or sort column, per view.
    fn sideways(&mut self, delta: i64) {
        match self.view {
            View::Run => self.next_chart(delta),
            View::Compare => {
                let _ = self.update(if delta > 0 {
                    Action::NextKeyMetric
                } else {
                    Action::PrevKeyMetric
                });
            }
            View::Weights => self.step_weights(delta),
            View::Sweeps => self.switch_sweep_pane(delta),
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
            self.click_table(y);
        }
    }

    /// How many runs of each status (for the sweeps view and the title).
    pub fn counts(&self) -> QueueCounts {
        QueueCounts::from_runs(&self.runs)
    }
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
