//! Plain input types: what the app reads from the store and hands to the renderers.

use std::collections::BTreeMap;

pub use experiments::run::{Goal, Modality, RunStatus};
use experiments::Labels;

/// Everything a report is built from. The app fills it from the store; nothing here touches I/O.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct ReportInput {
    /// Experiment name, shown in titles and provenance.
    pub experiment: String,
    /// Content hash of the experiment file; printed in every output for provenance.
    pub experiment_hash: String,
    /// Grid axes in display order (e.g. `["manager", "lr"]`). Every cell must give a value for each.
    pub axes: Vec<String>,
    /// Table columns / figure metrics, in display order.
    pub metrics: Vec<MetricSpec>,
    /// Key of the cell every other cell is compared against (Δ and significance).
    pub baseline: Option<String>,
    /// Grid cells, in display order.
    pub cells: Vec<Cell>,
    /// Axes that move together (the file's zip groups): figures show each group once, by its
    /// first axis, under a name for the group.
    pub zips: Vec<Vec<String>>,
    /// Names of metrics, axes and values in figures (defaults for what is not given).
    pub labels: Labels,
    /// Compute of each cell's finished runs (its seeds and the pre-training runs they start
    /// from), by cell key; empty when not read: tables then have no compute column.
    pub compute: BTreeMap<String, Vec<crate::cost::RunCompute>>,
}

/// One reported metric.
#[derive(Debug, Clone, PartialEq)]
pub struct MetricSpec {
    /// Series key as logged, e.g. `val/vqa/score`.
    pub key: String,
    /// Display name; the key when `None`.
    pub label: Option<String>,
    /// Which direction is better: decides "best" (bold) and the `Best` policy.
    pub goal: Goal,
    /// How one run's series becomes one number.
    pub policy: Policy,
    /// Digits after the decimal point in tables; chosen from the magnitude when `None`.
    pub decimals: Option<usize>,
}

impl MetricSpec {
    /// A metric with the key as label and automatic decimals.
    pub fn new(key: impl Into<String>, goal: Goal, policy: Policy) -> Self {
        Self {
            key: key.into(),
            label: None,
            goal,
            policy,
            decimals: None,
        }
    }

    /// The display name.
    pub fn label(&self) -> &str {
        self.label.as_deref().unwrap_or(&self.key)
    }
}

/// The short name of a goal in tables and policy descriptions (`max`, `min`).
pub fn goal_short(goal: Goal) -> &'static str {
    match goal {
        Goal::Maximize => "max",
        Goal::Minimize => "min",
    }
}

/// How a run's series is summarised into one value: the experiment file's summary policy
/// (`Last`, `Best`, or `AtBestOf` another metric: the value at the step where that series is
/// best, ties to the earliest step, else this metric's latest point before it).
pub use experiments::Summary as Policy;

/// A policy as tables name it: `last`, `best`, `at max of val/acc`.
pub fn describe_policy(policy: &Policy) -> String {
    match policy {
        Policy::Last => "last".to_string(),
        Policy::Best => "best".to_string(),
        Policy::AtBestOf { metric, goal } => format!("at {} of {metric}", goal_short(*goal)),
    }
}

/// One grid cell: a combination of axis values, run once per seed.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Cell {
    /// Stable key of the cell (unique within the input).
    pub key: String,
    /// Axis name → value, one entry per `ReportInput::axes`.
    pub axes: BTreeMap<String, String>,
    /// Seeds the grid asks for. Empty means "the seeds of the runs given".
    pub expected_seeds: Vec<u64>,
    /// Runs of this cell, in the order they were started (later runs of a seed win).
    pub runs: Vec<RunData>,
}

/// One run: its identity, status and logged series.
#[derive(Debug, Clone, PartialEq)]
pub struct RunData {
    pub run_id: String,
    pub seed: u64,
    pub status: RunStatus,
    /// Metric key → `(step, value)` points. Order does not matter; non-finite values are ignored.
    pub series: BTreeMap<String, Vec<(u64, f64)>>,
    /// Manager aggregation weights recorded for this run (empty for non-ManagerTower models).
    pub manager_weights: Vec<ManagerWeightPoint>,
}

impl RunData {
    /// A run with no series and no manager weights.
    pub fn new(run_id: impl Into<String>, seed: u64, status: RunStatus) -> Self {
        Self {
            run_id: run_id.into(),
            seed,
            status,
            series: BTreeMap::new(),
            manager_weights: Vec::new(),
        }
    }
}

/// Row title of a manager's modality as in the paper's Fig. 6.
pub fn modality_title(m: Modality) -> &'static str {
    match m {
        Modality::Text => "Textual",
        Modality::Image => "Visual",
    }
}

/// One aggregation weight: manager of `modality` in cross-modal `layer`, for uni-modal `expert`.
/// `layer` and `expert` are the numbers shown on the figure (the paper uses layers 1–6 and
/// experts 7–12).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ManagerWeightPoint {
    pub step: u64,
    pub modality: Modality,
    pub layer: u32,
    pub expert: u32,
    pub weight: f64,
}

/// Output formats of [`crate::write_all`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Format {
    Markdown,
    Latex,
    Csv,
    Svg,
    Png,
}

impl Format {
    pub const ALL: [Format; 5] = [
        Format::Markdown,
        Format::Latex,
        Format::Csv,
        Format::Svg,
        Format::Png,
    ];

    pub fn extension(self) -> &'static str {
        match self {
            Format::Markdown => "md",
            Format::Latex => "tex",
            Format::Csv => "csv",
            Format::Svg => "svg",
            Format::Png => "png",
        }
    }
}
