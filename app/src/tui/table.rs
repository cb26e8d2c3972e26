//! The runs table as pure functions: parsing a filter, filtering, sorting and grouping runs.

use std::cmp::Ordering;

use super::model::{RunStatus, RunSummary};

/// A column of the runs table (also what `1`..`7` sort by).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Column {
    Id,
    Experiment,
    Axes,
    Status,
    Progress,
    Duration,
    Metric,
}

impl Column {
    pub const ALL: [Column; 7] = [
        Column::Id,
        Column::Experiment,
        Column::Axes,
        Column::Status,
        Column::Progress,
        Column::Duration,
        Column::Metric,
    ];

    pub fn title(self) -> &'static str {
        match self {
            Column::Id => "id",
            Column::Experiment => "exp",
            Column::Axes => "axes",
            Column::Status => "status",
            Column::Progress => "prog",
            Column::Duration => "time",
            Column::Metric => "metric",
        }
    }
}

/// A parsed `/` filter. Words are ANDed: `status:failed` (several: `status:failed,crashed`),
/// `axis=value`, and any other word matches the run's id, experiment, cell or status as text.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Filter {
    pub words: Vec<String>,
    pub statuses: Vec<RunStatus>,
    pub axes: Vec<(String, String)>,
}

impl Filter {
    /// Parses what the user typed. An unknown status is an error naming the valid ones.
    pub fn parse(text: &str) -> Result<Filter, String> {
        let mut f = Filter::default();
        for word in text.split_whitespace() {
            if let Some(list) = word.strip_prefix("status:") {
                for name in list.split(',').filter(|s| !s.is_empty()) {
                    let status = name.to_lowercase().parse::<RunStatus>().map_err(|_| {
                        let all: Vec<&str> = RunStatus::ALL.iter().map(|s| s.as_str()).collect();
                        format!(
                            "unknown status {name:?} (expected one of: {})",
                            all.join(", ")
                        )
                    })?;
                    f.statuses.push(status);
                }
            } else if let Some((axis, value)) = word.split_once('=') {
                if axis.is_empty() {
                    return Err(format!("{word:?}: expected axis=value"));
                }
                f.axes.push((axis.to_owned(), value.to_owned()));
            } else {
                f.words.push(word.to_lowercase());
            }
        }
        Ok(f)
    }

    pub fn is_empty(&self) -> bool {
        self.words.is_empty() && self.statuses.is_empty() && self.axes.is_empty()
    }

    pub fn matches(&self, run: &RunSummary) -> bool {
        self.matches_text(run, &search_text(run, &run.cell_key()))
    }

    /// `matches` with the run's [`search_text`] computed beforehand.
    pub fn matches_text(&self, run: &RunSummary, search: &str) -> bool {
        if !self.statuses.is_empty() && !self.statuses.contains(&run.status) {
            return false;
        }
        for (axis, value) in &self.axes {
            match run.axis(axis) {
                Some(v) if values_equal(v, value) => {}
                _ => return false,
            }
        }
        self.words
            .iter()
            .all(|w| search.contains(w.as_str()) || w.parse::<i64>().is_ok_and(|id| id == run.id))
    }
}

/// The lower-case text a filter word is looked up in: experiment, cell and status.
pub fn search_text(run: &RunSummary, cell: &str) -> String {
    format!("{} {} {}", run.experiment, cell, run.status.as_str()).to_lowercase()
}

/// `6` matches `6.0`; other values compare as text.
fn values_equal(a: &str, b: &str) -> bool {
    if a == b {
        return true;
    }
    match (a.parse::<f64>(), b.parse::<f64>()) {
        (Ok(x), Ok(y)) => x == y,
        _ => a.eq_ignore_ascii_case(b),
    }
}

/// Which runs are shown and in what order.
#[derive(Debug, Clone, PartialEq)]
pub struct Sort {
    pub column: Column,
    pub descending: bool,
}

impl Default for Sort {
    fn default() -> Self {
        Sort {
            column: Column::Id,
            descending: false,
        }
    }
}

/// Indices of the runs that pass `filter`, ordered by `sort` (ties by id).
pub fn visible_rows(
    runs: &[RunSummary],
    cells: &[String],
    search: &[String],
    filter: &Filter,
    sort: &Sort,
    metric: &str,
    now_ms: i64,
) -> Vec<usize> {
    let mut rows: Vec<usize> = (0..runs.len())
        .filter(|&i| filter.matches_text(&runs[i], &search[i]))
        .collect();
    // Metric values are looked up once per run, not once per comparison.
    let values: Vec<Option<f64>> = if sort.column == Column::Metric {
        runs.iter().map(|r| headline(r, metric)).collect()
    } else {
        Vec::new()
    };
    rows.sort_unstable_by(|&a, &b| {
        let (ra, rb) = (&runs[a], &runs[b]);
        let ord = match sort.column {
            Column::Axes => cells[a].cmp(&cells[b]),
            // Runs without the metric go last whichever the direction.
            Column::Metric => match (values[a], values[b]) {
                (Some(x), Some(y)) => {
                    let o = x.total_cmp(&y);
                    if sort.descending {
                        o.reverse()
                    } else {
                        o
                    }
                }
                (Some(_), None) => return Ordering::Less,
                (None, Some(_)) => return Ordering::Greater,
                (None, None) => Ordering::Equal,
            },
            col => {
                let o = compare(ra, rb, col, now_ms);
                if sort.descending {
                    o.reverse()
                } else {
                    o
                }
            }
        };
        ord.then(ra.id.cmp(&rb.id))
    });
    rows
}

fn compare(a: &RunSummary, b: &RunSummary, col: Column, now: i64) -> Ordering {
    match col {
        Column::Id => a.id.cmp(&b.id),
        Column::Experiment => a.experiment.cmp(&b.experiment),
        // Sorted through the cached cell keys in `visible_rows`.
        Column::Axes => Ordering::Equal,
        Column::Status => a.status.cmp(&b.status),
        Column::Progress => fraction(a).total_cmp(&fraction(b)),
        Column::Duration => a.duration_ms(now).cmp(&b.duration_ms(now)),
        // Sorted through the precomputed values in `visible_rows`.
        Column::Metric => Ordering::Equal,
    }
}

fn fraction(r: &RunSummary) -> f64 {
    match r.progress {
        Some((step, total)) if total > 0 => step as f64 / total as f64,
        _ if r.status == RunStatus::Finished => 1.0,
        _ => 0.0,
    }
}

/// The headline value of `metric` for a run (best by goal, else last), NaN dropped.
pub fn headline(run: &RunSummary, metric: &str) -> Option<f64> {
    run.summary(metric)
        .and_then(|s| s.headline())
        .filter(|v| !v.is_nan())
}

/// One row of a grouped table: the runs of one experiment sharing one value of the grouping
/// axis, among those of the experiment file's current plan.
#[derive(Debug, Clone, PartialEq)]
pub struct Group {
    pub experiment: String,
    pub value: String,
    /// Runs of the plan in the group (any status).
    pub runs: usize,
    /// Finished runs that have the metric: the ones the mean counts.
    pub with_metric: usize,
    pub mean: Option<f64>,
    /// Sample standard deviation; `None` with fewer than two values.
    pub std: Option<f64>,
    pub failed: usize,
    pub running: usize,
    /// Visible runs with this value that are not in the file's current plan (superseded, or
    /// no longer in the grid): not counted above.
    pub left_out: usize,
}

impl Group {
    /// The group's name in the table: its value, after the experiment when the groups span
    /// several experiments.
    pub fn label(&self, several_experiments: bool) -> String {
        if several_experiments {
            format!("{} · {}", self.experiment, self.value)
        } else {
            self.value.clone()
        }
    }
}

/// Do the groups come from more than one experiment?
pub fn several_experiments(groups: &[Group]) -> bool {
    groups
        .first()
        .is_some_and(|g| groups.iter().any(|o| o.experiment != g.experiment))
}

/// Groups the visible runs by experiment and value of `axis` (runs without it go under `-`),
/// sorted by experiment, then value. Statistics are over the runs of each experiment file's
/// current plan (runs known not to be in it are only counted as left out), and the mean ±
/// std over its finished runs only, by the reports' own statistics.
pub fn group_rows(runs: &[RunSummary], visible: &[usize], axis: &str, metric: &str) -> Vec<Group> {
    let mut by_value: std::collections::HashMap<(&str, &str), Vec<usize>> = Default::default();
    for &i in visible {
        by_value
            .entry((
                runs[i].experiment.as_str(),
                runs[i].axis(axis).unwrap_or("-"),
            ))
            .or_default()
            .push(i);
    }
    let mut groups: Vec<((String, String), Vec<usize>)> = by_value
        .into_iter()
        .map(|((e, v), members)| ((e.to_owned(), v.to_owned()), members))
        .collect();
    groups.sort_by(|((ea, a), _), ((eb, b), _)| {
        ea.cmp(eb)
            .then_with(|| match (a.parse::<f64>(), b.parse::<f64>()) {
                (Ok(x), Ok(y)) => x.total_cmp(&y),
                _ => a.cmp(b),
            })
    });
    groups
        .into_iter()
        .map(|((experiment, value), all)| {
            let (members, left): (Vec<usize>, Vec<usize>) = all
                .into_iter()
                .partition(|&i| runs[i].in_plan != Some(false));
            let values: Vec<f64> = members
                .iter()
                .filter(|&&i| runs[i].status == RunStatus::Finished)
                .filter_map(|&i| headline(&runs[i], metric))
                .collect();
            let stats = reports::stats::Summary::of(&values);
            Group {
                experiment,
                value,
                runs: members.len(),
                with_metric: values.len(),
                mean: stats.map(|s| s.mean),
                std: stats.and_then(|s| s.std),
                failed: members
                    .iter()
                    .filter(|&&i| runs[i].status.is_failure())
                    .count(),
                running: members
                    .iter()
                    .filter(|&&i| runs[i].status == RunStatus::Running)
                    .count(),
                left_out: left.len(),
            }
        })
        .collect()
}

/// Every axis name in the runs, in first-seen order.
pub fn axis_names(runs: &[RunSummary]) -> Vec<String> {
    let mut names: Vec<String> = Vec::new();
    for r in runs {
        for (k, _) in &r.axes {
            if !names.contains(k) {
                names.push(k.clone());
            }
        }
    }
    names
}

/// Every metric key with a summary, sorted.
pub fn metric_names(runs: &[RunSummary]) -> Vec<String> {
    let mut names: Vec<String> = runs
        .iter()
        .flat_map(|r| r.summaries.iter().map(|s| s.key.clone()))
        .collect();
    names.sort();
    names.dedup();
    names
}

/// `1h02m`, `3m05s`, `12s`.
pub fn format_duration(ms: i64) -> String {
    let s = ms / 1000;
    if s >= 3600 {
        format!("{}h{:02}m", s / 3600, (s % 3600) / 60)
    } else if s >= 60 {
        format!("{}m{:02}s", s / 60, s % 60)
    } else {
        format!("{s}s")
    }
}

/// Four significant digits, compact.
pub fn format_value(v: f64) -> String {
    if v.is_nan() {
        "NaN".to_owned()
    } else if v != 0.0 && (v.abs() >= 1e5 || v.abs() < 1e-3) {
        format!("{v:.3e}")
    } else {
        format!("{v:.4}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tui::model::MetricSummary;

    fn run(id: i64, status: RunStatus, axes: &[(&str, &str)], acc: Option<f64>) -> RunSummary {
        RunSummary {
            id,
            experiment: "ablate".into(),
            cell: None,
            axes: axes
                .iter()
                .map(|(k, v)| ((*k).into(), (*v).into()))
                .collect(),
            status,
            progress: None,
            started_ms: Some(0),
            ended_ms: Some(id * 1000),
            heartbeat_ms: None,
            worker: None,
            failure_class: None,
            failure_message: None,
            summaries: acc
                .map(|v| MetricSummary {
                    key: "acc".into(),
                    goal: Some(crate::tui::model::Goal::Maximize),
                    last: Some(v),
                    best: Some(v),
                    min: Some(v),
                    max: Some(v),
                    count: 1,
                })
                .into_iter()
                .collect(),
            in_plan: None,
        }
    }

    fn caches(rs: &[RunSummary]) -> (Vec<String>, Vec<String>) {
        let cells: Vec<String> = rs.iter().map(RunSummary::cell_key).collect();
        let search = rs
            .iter()
            .zip(&cells)
            .map(|(r, c)| search_text(r, c))
            .collect();
        (cells, search)
    }

    fn runs() -> Vec<RunSummary> {
        vec![
            run(
                1,
                RunStatus::Finished,
                &[("layers", "6"), ("seed", "1")],
                Some(0.7),
            ),
            run(
                2,
                RunStatus::Failed,
                &[("layers", "6"), ("seed", "2")],
                None,
            ),
            run(
                3,
                RunStatus::Finished,
                &[("layers", "12"), ("seed", "1")],
                Some(0.8),
            ),
            run(
                4,
                RunStatus::Finished,
                &[("layers", "12"), ("seed", "2")],
                Some(0.6),
            ),
        ]
    }

    #[test]
    fn filter_by_status_axis_and_text() {
        let rs = runs();
        let ids = |f: &str| -> Vec<i64> {
            let f = Filter::parse(f).unwrap();
            let (cells, search) = caches(&rs);
            visible_rows(&rs, &cells, &search, &f, &Sort::default(), "acc", 0)
                .into_iter()
                .map(|i| rs[i].id)
                .collect()
        };
        assert_eq!(ids("status:failed"), vec![2]);
        assert_eq!(ids("layers=12"), vec![3, 4]);
        assert_eq!(ids("layers=12.0 seed=2"), vec![4]);
        assert_eq!(ids("seed=1"), vec![1, 3]);
        assert_eq!(ids("ABLATE status:finished,failed"), vec![1, 2, 3, 4]);
        assert_eq!(ids("nothing"), Vec::<i64>::new());
    }

    #[test]
    fn unknown_status_names_the_valid_ones() {
        let err = Filter::parse("status:broken").unwrap_err();
        assert!(err.contains("broken") && err.contains("finished"), "{err}");
        assert!(Filter::parse("=3").is_err());
    }

    #[test]
    fn sort_by_metric_puts_missing_last_both_ways() {
        let rs = runs();
        let mut sort = Sort {
            column: Column::Metric,
            descending: false,
        };
        let (cells, search) = caches(&rs);
        let order = |s: &Sort| -> Vec<i64> {
            visible_rows(&rs, &cells, &search, &Filter::default(), s, "acc", 0)
                .into_iter()
                .map(|i| rs[i].id)
                .collect()
        };
        assert_eq!(order(&sort), vec![4, 1, 3, 2]);
        sort.descending = true;
        assert_eq!(order(&sort), vec![3, 1, 4, 2]);
    }

    #[test]
    fn group_means_count_finished_runs_of_the_current_plan_only() {
        let mut rs = runs();
        // A failed run with a last value, and a superseded run with a great one.
        rs.push(run(
            10,
            RunStatus::Failed,
            &[("layers", "12"), ("seed", "3")],
            Some(0.1),
        ));
        let mut old = run(
            11,
            RunStatus::Finished,
            &[("layers", "12"), ("seed", "1")],
            Some(0.99),
        );
        old.in_plan = Some(false);
        rs.push(old);
        for r in rs.iter_mut().filter(|r| r.id != 11) {
            r.in_plan = Some(true);
        }
        let all: Vec<usize> = (0..rs.len()).collect();
        let groups = group_rows(&rs, &all, "layers", "acc");
        let g = groups.iter().find(|g| g.value == "12").unwrap();
        assert_eq!((g.runs, g.with_metric, g.failed, g.left_out), (3, 2, 1, 1));
        assert!((g.mean.unwrap() - 0.7).abs() < 1e-12, "{g:?}");
        // One finished run: a mean without a spread.
        let six = groups.iter().find(|g| g.value == "6").unwrap();
        assert_eq!((six.mean, six.std), (Some(0.7), None));
        // Groups of several experiments are told apart.
        rs[0].experiment = "other".into();
        let groups = group_rows(&rs, &all, "layers", "acc");
        assert!(several_experiments(&groups));
        assert_eq!(groups[0].label(true), "ablate · 6");
    }

    #[test]
    fn groups_have_mean_and_sample_std() {
        let rs = runs();
        let all: Vec<usize> = (0..rs.len()).collect();
        let groups = group_rows(&rs, &all, "layers", "acc");
        assert_eq!(groups.len(), 2);
        assert_eq!(groups[0].value, "6");
        assert_eq!(groups[0].runs, 2);
        assert_eq!(groups[0].with_metric, 1);
        assert_eq!(groups[0].failed, 1);
        assert_eq!(groups[1].value, "12");
        let mean = groups[1].mean.unwrap();
        let std = groups[1].std.unwrap();
        assert!((mean - 0.7).abs() < 1e-12);
        assert!((std - 0.141_421_356).abs() < 1e-6, "{std}");
    }

    #[test]
    fn durations_read_well() {
        assert_eq!(format_duration(12_000), "12s");
        assert_eq!(format_duration(185_000), "3m05s");
        assert_eq!(format_duration(3_720_000), "1h02m");
    }
}
