//! The table model (one row per cell, one column per metric) and its renderers.

mod csv;
mod latex;
mod markdown;
mod terminal;

pub use csv::{render_csv, render_runs_csv};
pub use latex::{escape_latex, render_latex};
pub use markdown::render_markdown;
pub use terminal::render_terminal;

use std::collections::BTreeMap;

use crate::analysis::{select_runs, validate, SeedCoverage};
use crate::error::Result;
use crate::input::{MetricSpec, ReportInput};
use crate::parallel::par_map;
use crate::provenance::Provenance;
use crate::stats::{paired, welch, Summary, TTest};
use crate::summarize::summarize_run;

/// A report table, computed once and rendered to any format.
#[derive(Debug, Clone, PartialEq)]
pub struct Table {
    pub provenance: Provenance,
    pub axes: Vec<String>,
    pub metrics: Vec<MetricSpec>,
    /// Digits after the point per metric column.
    pub decimals: Vec<usize>,
    pub baseline: Option<String>,
    pub rows: Vec<Row>,
    /// Every run's value per metric (in `metrics` order), finished or not, by run id.
    pub run_values: BTreeMap<String, Vec<Option<f64>>>,
    /// Markdown and LaTeX add a p-value column (with the test used) per metric; the CSV always
    /// has them.
    pub p_values: bool,
    /// Every format adds a compute column (GPU-/CPU-hours per cell): the input carried compute.
    pub compute: bool,
}

/// One grid cell.
#[derive(Debug, Clone, PartialEq)]
pub struct Row {
    pub cell: String,
    /// Values in the order of `Table::axes`.
    pub axis_values: Vec<String>,
    pub is_baseline: bool,
    pub coverage: SeedCoverage,
    /// One entry per metric column.
    pub entries: Vec<Entry>,
    /// GPU- and CPU-hours of the cell's finished runs (seeds summed, its pre-training run
    /// once); `None` when the input carries none.
    pub compute: Option<crate::cost::Compute>,
}

/// One (cell, metric) statistic.
#[derive(Debug, Clone, PartialEq)]
pub struct Entry {
    /// `(seed, run_id, value)` of every run that had a value, by seed.
    pub values: Vec<(u64, String, f64)>,
    /// `None` when no run had a value.
    pub summary: Option<Summary>,
    /// Best mean of its column (ties are all best).
    pub best: bool,
    /// Against the baseline row; `None` on the baseline row itself or without a baseline.
    pub comparison: Option<Comparison>,
}

/// Difference to the baseline cell and its significance.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Comparison {
    /// This mean minus the baseline mean.
    pub delta: f64,
    /// Paired when both cells have the same seeds (≥ 2), else Welch; `None` when undefined.
    pub test: Option<TTest>,
    /// Why the test is not the paired one, or why there is none; `None` when it is paired.
    pub fallback: Option<Fallback>,
}

/// Why a comparison is not a paired t-test over the seeds both cells share.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Fallback {
    /// The cells' finished seeds differ, so values do not pair: Welch's t-test.
    SeedsDiffer,
    /// Every paired difference is the same (zero variance): Welch's t-test instead.
    ConstantDifferences,
    /// A side has fewer than two values: no test.
    TooFewRuns,
    /// Both sides are constant: the statistic is undefined, no test.
    NoVariance,
}

impl Fallback {
    pub fn describe(self) -> &'static str {
        match self {
            Fallback::SeedsDiffer => "Welch: seeds do not pair with the baseline's",
            Fallback::ConstantDifferences => "Welch: the paired differences are constant",
            Fallback::TooFewRuns => "none: fewer than 2 runs",
            Fallback::NoVariance => "none: no variance",
        }
    }
}

/// Significance level of a p-value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Significance {
    None,
    /// p < 0.05 (†)
    P05,
    /// p < 0.01 (‡)
    P01,
}

impl Significance {
    pub fn of(p: f64) -> Self {
        if p < 0.01 {
            Significance::P01
        } else if p < 0.05 {
            Significance::P05
        } else {
            Significance::None
        }
    }

    pub fn mark(self) -> &'static str {
        match self {
            Significance::None => "",
            Significance::P05 => "†",
            Significance::P01 => "‡",
        }
    }
}

impl Comparison {
    pub fn significance(&self) -> Significance {
        self.test
            .map_or(Significance::None, |t| Significance::of(t.p))
    }
}

/// Computes the table: per-run summaries, per-cell statistics, best marks, tests against the
/// baseline.
pub fn build_table(input: &ReportInput) -> Result<Table> {
    validate(input)?;
    // Summaries of every run, computed once, cells in parallel.
    let per_cell: Vec<Vec<(String, Vec<Option<f64>>)>> = par_map(&input.cells, |cell| {
        cell.runs
            .iter()
            .map(|r| {
                let values = input.metrics.iter().map(|m| summarize_run(r, m)).collect();
                (r.run_id.clone(), values)
            })
            .collect()
    });
    let run_values: BTreeMap<String, Vec<Option<f64>>> = per_cell.into_iter().flatten().collect();
    let mut run_ids = Vec::new();
    let mut rows: Vec<Row> = input
        .cells
        .iter()
        .map(|cell| {
            let (used, coverage) = select_runs(cell);
            run_ids.extend(used.iter().map(|r| r.run_id.clone()));
            let entries = (0..input.metrics.len())
                .map(|col| {
                    let values: Vec<(u64, String, f64)> = used
                        .iter()
                        .filter_map(|r| {
                            run_values[&r.run_id][col].map(|v| (r.seed, r.run_id.clone(), v))
                        })
                        .collect();
                    let plain: Vec<f64> = values.iter().map(|v| v.2).collect();
                    Entry {
                        summary: Summary::of(&plain),
                        values,
                        best: false,
                        comparison: None,
                    }
                })
                .collect();
            Row {
                cell: cell.key.clone(),
                axis_values: input.axes.iter().map(|a| cell.axes[a].clone()).collect(),
                is_baseline: input.baseline.as_deref() == Some(cell.key.as_str()),
                coverage,
                entries,
                compute: crate::cost::cell_compute(input, &cell.key),
            }
        })
        .collect();

    for (col, metric) in input.metrics.iter().enumerate() {
        let best = rows
            .iter()
            .filter_map(|r| r.entries[col].summary.map(|s| s.mean))
            .reduce(|a, b| if metric.goal.better(b, a) { b } else { a });
        if let Some(best) = best {
            for row in &mut rows {
                let e = &mut row.entries[col];
                e.best = e.summary.is_some_and(|s| s.mean == best);
            }
        }
    }

    if let Some(base_idx) = rows.iter().position(|r| r.is_baseline) {
        let base = rows[base_idx].entries.clone();
        for row in rows.iter_mut().filter(|r| !r.is_baseline) {
            for (e, b) in row.entries.iter_mut().zip(&base) {
                e.comparison = compare(e, b);
            }
        }
    }

    let decimals = input
        .metrics
        .iter()
        .enumerate()
        .map(|(col, m)| {
            m.decimals.unwrap_or_else(|| {
                auto_decimals(
                    rows.iter()
                        .filter_map(|r| r.entries[col].summary.map(|s| s.mean)),
                )
            })
        })
        .collect();

    Ok(Table {
        provenance: Provenance::new(input, run_ids),
        axes: input.axes.clone(),
        metrics: input.metrics.clone(),
        decimals,
        baseline: input.baseline.clone(),
        rows,
        run_values,
        p_values: false,
        compute: !input.compute.is_empty(),
    })
}

fn compare(e: &Entry, base: &Entry) -> Option<Comparison> {
    let (s, b) = (e.summary?, base.summary?);
    let seeds = |x: &Entry| x.values.iter().map(|v| v.0).collect::<Vec<_>>();
    let a: Vec<f64> = e.values.iter().map(|v| v.2).collect();
    let bv: Vec<f64> = base.values.iter().map(|v| v.2).collect();
    // Values are ordered by seed, so equal seed lists pair up index by index.
    let (test, fallback) = if a.len() < 2 || bv.len() < 2 {
        (None, Some(Fallback::TooFewRuns))
    } else if seeds(e) == seeds(base) {
        match paired(&a, &bv) {
            Some(t) => (Some(t), None),
            None => match welch(&a, &bv) {
                Some(t) => (Some(t), Some(Fallback::ConstantDifferences)),
                None => (None, Some(Fallback::NoVariance)),
            },
        }
    } else {
        match welch(&a, &bv) {
            Some(t) => (Some(t), Some(Fallback::SeedsDiffer)),
            None => (None, Some(Fallback::NoVariance)),
        }
    };
    Some(Comparison {
        delta: s.mean - b.mean,
        test,
        fallback,
    })
}

impl Comparison {
    /// The test used, as a table shows it: `paired`, `Welch: seeds do not pair with the
    /// baseline's`, `none: fewer than 2 runs`, ...
    pub fn test_used(&self) -> &'static str {
        match self.fallback {
            None => "paired",
            Some(f) => f.describe(),
        }
    }

    /// `0.031 (paired)`, `0.12 (Welch: seeds do not pair with the baseline's)`, `— (none: fewer
    /// than 2 runs)`: the p-value column of Markdown and LaTeX.
    pub fn p_text(&self) -> String {
        match self.test {
            Some(t) => format!("{} ({})", p_fixed(t.p), self.test_used()),
            None => format!("— ({})", self.test_used()),
        }
    }
}

/// A p-value with enough digits to read its size: 3 significant down to 0.001, then `< 0.001`.
pub(crate) fn p_fixed(p: f64) -> String {
    if p < 0.001 {
        "< 0.001".to_string()
    } else if p < 0.01 {
        format!("{p:.4}")
    } else {
        format!("{p:.3}")
    }
}

/// Enough digits to tell typical values apart: 4 below 1, 3 below 10, then 2, then 1.
fn auto_decimals(means: impl Iterator<Item = f64>) -> usize {
    let max = means.map(f64::abs).fold(0.0, f64::max);
    match max {
        m if m < 1.0 => 4,
        m if m < 10.0 => 3,
        m if m < 1000.0 => 2,
        _ => 1,
    }
}

/// Fixed-point formatting without a negative zero.
pub(crate) fn fixed(v: f64, decimals: usize) -> String {
    let s = format!("{v:.decimals$}");
    if s.starts_with('-') && s[1..].chars().all(|c| c == '0' || c == '.') {
        s[1..].to_string()
    } else {
        s
    }
}

/// Fixed-point with an explicit sign, for differences.
pub(crate) fn signed(v: f64, decimals: usize) -> String {
    let s = fixed(v, decimals);
    if s.starts_with('-') || s.chars().all(|c| c == '0' || c == '.') {
        s
    } else {
        format!("+{s}")
    }
}

#[cfg(test)]
mod tests;
