//! Input validation and the per-cell choice of runs: which seeds finished, failed or are missing.

use std::collections::{BTreeMap, BTreeSet};

use crate::error::{ReportError, Result};
use crate::input::{Cell, ReportInput, RunData, RunStatus};

/// Checks the input for contradictions the renderers cannot resolve.
pub fn validate(input: &ReportInput) -> Result<()> {
    let err = |m: String| Err(ReportError::Input(m));
    let mut cell_keys = BTreeSet::new();
    let mut run_ids = BTreeMap::new();
    let axes: BTreeSet<&str> = input.axes.iter().map(String::as_str).collect();
    if axes.len() != input.axes.len() {
        return err(format!("axes {:?} contain a duplicate", input.axes));
    }
    let mut metric_keys = BTreeSet::new();
    for m in &input.metrics {
        if m.key.is_empty() {
            return err("a metric has an empty key".into());
        }
        if !metric_keys.insert(m.key.as_str()) {
            return err(format!("metric `{}` is listed twice", m.key));
        }
    }
    for cell in &input.cells {
        if cell.key.is_empty() {
            return err("a cell has an empty key".into());
        }
        if !cell_keys.insert(cell.key.as_str()) {
            return err(format!("cell key `{}` is used twice", cell.key));
        }
        for a in &input.axes {
            if !cell.axes.contains_key(a) {
                return err(format!("cell `{}` has no value for axis `{a}`", cell.key));
            }
        }
        if let Some(extra) = cell.axes.keys().find(|k| !axes.contains(k.as_str())) {
            return err(format!(
                "cell `{}` has a value for `{extra}`, which is not one of the axes {:?}",
                cell.key, input.axes
            ));
        }
        for run in &cell.runs {
            if let Some(other) = run_ids.insert(run.run_id.as_str(), cell.key.as_str()) {
                return err(format!(
                    "run id `{}` appears twice (cells `{other}` and `{}`)",
                    run.run_id, cell.key
                ));
            }
        }
    }
    if let Some(b) = &input.baseline {
        if !cell_keys.contains(b.as_str()) {
            return err(format!("baseline `{b}` is not one of the cells"));
        }
    }
    Ok(())
}

/// How many of a cell's seeds are usable, and what happened to the others.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct SeedCoverage {
    /// Seeds the grid asks for (or the seeds present, when none were declared).
    pub expected: usize,
    pub finished: usize,
    pub failed: usize,
    pub running: usize,
    pub queued: usize,
    pub cancelled: usize,
    /// Expected seeds with no run at all.
    pub missing: usize,
}

impl SeedCoverage {
    pub fn is_complete(&self) -> bool {
        self.finished >= self.expected
            && self.failed + self.running + self.queued + self.cancelled + self.missing == 0
    }

    /// E.g. `3/3 seeds` or `2/3 seeds, 1 failed`.
    pub fn describe(&self) -> String {
        let mut s = format!("{}/{} seeds", self.finished, self.expected);
        for (n, what) in [
            (self.failed, "failed"),
            (self.running, "running"),
            (self.queued, "queued"),
            (self.cancelled, "cancelled"),
            (self.missing, "missing"),
        ] {
            if n > 0 {
                s.push_str(&format!(", {n} {what}"));
            }
        }
        s
    }
}

/// The runs a cell contributes: one finished run per seed (the latest if a seed was rerun),
/// ordered by seed, plus the coverage of its seeds.
pub fn select_runs(cell: &Cell) -> (Vec<&RunData>, SeedCoverage) {
    let mut by_seed: BTreeMap<u64, Vec<&RunData>> = BTreeMap::new();
    for run in &cell.runs {
        by_seed.entry(run.seed).or_default().push(run);
    }
    let mut seeds: BTreeSet<u64> = cell.expected_seeds.iter().copied().collect();
    let expected = if seeds.is_empty() {
        by_seed.len()
    } else {
        seeds.len()
    };
    seeds.extend(by_seed.keys().copied());
    let mut cov = SeedCoverage {
        expected,
        ..SeedCoverage::default()
    };
    let mut used = Vec::new();
    for seed in seeds {
        let Some(runs) = by_seed.get(&seed) else {
            cov.missing += 1;
            continue;
        };
        if let Some(run) = runs.iter().rev().find(|r| r.status == RunStatus::Finished) {
            cov.finished += 1;
            used.push(*run);
            continue;
        }
        // No finished run for this seed: the latest attempt tells what happened.
        match runs.last().map(|r| r.status) {
            Some(RunStatus::Failed | RunStatus::Crashed) => cov.failed += 1,
            Some(RunStatus::Running) => cov.running += 1,
            Some(RunStatus::Queued) => cov.queued += 1,
            Some(RunStatus::Cancelled) => cov.cancelled += 1,
            // A finished run was taken above, and every seed here has at least one run.
            Some(RunStatus::Finished) | None => {}
        }
    }
    (used, cov)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::input::{Goal, MetricSpec, Policy};

    fn cell(expected: &[u64], runs: &[(&str, u64, RunStatus)]) -> Cell {
        Cell {
            key: "c".into(),
            axes: BTreeMap::new(),
            expected_seeds: expected.to_vec(),
            runs: runs
                .iter()
                .map(|(id, seed, st)| RunData::new(*id, *seed, *st))
                .collect(),
        }
    }

    #[test]
    fn coverage_counts_failed_missing_and_reruns() {
        let c = cell(
            &[0, 1, 2, 3],
            &[
                ("a", 0, RunStatus::Failed),
                ("b", 0, RunStatus::Finished), // rerun of seed 0 succeeded
                ("c", 1, RunStatus::Finished),
                ("d", 2, RunStatus::Failed),
            ],
        );
        let (used, cov) = select_runs(&c);
        let ids: Vec<_> = used.iter().map(|r| r.run_id.as_str()).collect();
        assert_eq!(ids, ["b", "c"]);
        assert_eq!(cov.describe(), "2/4 seeds, 1 failed, 1 missing");
        assert!(!cov.is_complete());
    }

    #[test]
    fn undeclared_seeds_default_to_present_ones() {
        let c = cell(
            &[],
            &[("a", 5, RunStatus::Finished), ("b", 6, RunStatus::Running)],
        );
        let (_, cov) = select_runs(&c);
        assert_eq!(cov.describe(), "1/2 seeds, 1 running");
        let full = cell(&[1], &[("a", 1, RunStatus::Finished)]);
        assert!(select_runs(&full).1.is_complete());
    }

    #[test]
    fn validation_names_the_problem() {
        let mut input = ReportInput {
            axes: vec!["lr".into()],
            metrics: vec![MetricSpec::new("acc", Goal::Maximize, Policy::Last)],
            cells: vec![cell(&[], &[])],
            ..Default::default()
        };
        let e = validate(&input).unwrap_err().to_string();
        assert!(e.contains("cell `c` has no value for axis `lr`"), "{e}");
        input.cells[0].axes.insert("lr".into(), "1e-4".into());
        validate(&input).unwrap();
        input.baseline = Some("nope".into());
        let e = validate(&input).unwrap_err().to_string();
        assert!(e.contains("baseline `nope`"), "{e}");
        input.baseline = None;
        input.cells.push(input.cells[0].clone());
        let e = validate(&input).unwrap_err().to_string();
        assert!(e.contains("cell key `c` is used twice"), "{e}");
    }
}
