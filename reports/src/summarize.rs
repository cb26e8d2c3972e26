//! One number per run and metric, by the metric's policy.

use std::borrow::Cow;

use crate::input::{Goal, MetricSpec, Policy, RunData};

/// The run's value for `metric` under its policy; `None` when the run logged no usable point.
pub fn summarize_run(run: &RunData, metric: &MetricSpec) -> Option<f64> {
    let points = sorted_finite(run.series.get(&metric.key)?);
    match &metric.policy {
        Policy::Last => points.last().map(|&(_, v)| v),
        Policy::Best => best_point(&points, metric.goal).map(|(_, v)| v),
        Policy::AtBestOf { metric: key, goal } => {
            let other = sorted_finite(run.series.get(key)?);
            let (step, _) = best_point(&other, *goal)?;
            value_at_or_before(&points, step)
        }
    }
}

/// Finite points in step order (stable, so of equal steps the later logged one comes last).
/// Borrows when the series is already clean, which is the usual case.
pub(crate) fn sorted_finite(points: &[(u64, f64)]) -> Cow<'_, [(u64, f64)]> {
    // One pass: every value finite and steps non-decreasing.
    let mut prev = 0u64;
    let clean = points.iter().all(|&(s, v)| {
        let ok = v.is_finite() && s >= prev;
        prev = s;
        ok
    });
    if clean {
        Cow::Borrowed(points)
    } else {
        let mut owned: Vec<(u64, f64)> =
            points.iter().copied().filter(|p| p.1.is_finite()).collect();
        owned.sort_by_key(|p| p.0);
        Cow::Owned(owned)
    }
}

/// The best point by `goal`; the earliest step wins ties.
fn best_point(points: &[(u64, f64)], goal: Goal) -> Option<(u64, f64)> {
    let mut best: Option<(u64, f64)> = None;
    for &(s, v) in points {
        if best.is_none_or(|(_, b)| goal.better(v, b)) {
            best = Some((s, v));
        }
    }
    best
}

/// The value logged at `step`, or else the latest one before it.
fn value_at_or_before(points: &[(u64, f64)], step: u64) -> Option<f64> {
    let idx = points.partition_point(|p| p.0 <= step);
    idx.checked_sub(1).map(|i| points[i].1)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::input::RunStatus;

    fn run(series: &[(&str, Vec<(u64, f64)>)]) -> RunData {
        let mut r = RunData::new("r", 0, RunStatus::Finished);
        for (k, pts) in series {
            r.series.insert(k.to_string(), pts.clone());
        }
        r
    }

    #[test]
    fn last_takes_largest_step_whatever_the_order() {
        let r = run(&[("acc", vec![(30, 0.7), (10, 0.5), (20, 0.9)])]);
        let m = MetricSpec::new("acc", Goal::Maximize, Policy::Last);
        assert_eq!(summarize_run(&r, &m), Some(0.7));
    }

    #[test]
    fn best_follows_goal_and_skips_nan() {
        let r = run(&[("loss", vec![(1, 2.0), (2, f64::NAN), (3, 0.5), (4, 0.9)])]);
        let min = MetricSpec::new("loss", Goal::Minimize, Policy::Best);
        let max = MetricSpec::new("loss", Goal::Maximize, Policy::Best);
        assert_eq!(summarize_run(&r, &min), Some(0.5));
        assert_eq!(summarize_run(&r, &max), Some(2.0));
    }

    #[test]
    fn at_best_of_other_metric() {
        let r = run(&[
            ("val", vec![(1, 0.6), (2, 0.8), (3, 0.8), (4, 0.7)]),
            ("test", vec![(1, 0.55), (2, 0.75), (3, 0.79), (4, 0.72)]),
            ("sparse", vec![(1, 5.0), (4, 9.0)]),
        ]);
        let p = Policy::AtBestOf {
            metric: "val".into(),
            goal: Goal::Maximize,
        };
        // Ties go to the earliest step (2).
        let test = MetricSpec::new("test", Goal::Maximize, p.clone());
        assert_eq!(summarize_run(&r, &test), Some(0.75));
        // No point at step 2: the latest one before it.
        let sparse = MetricSpec::new("sparse", Goal::Maximize, p);
        assert_eq!(summarize_run(&r, &sparse), Some(5.0));
        let missing = MetricSpec::new(
            "test",
            Goal::Maximize,
            Policy::AtBestOf {
                metric: "nope".into(),
                goal: Goal::Maximize,
            },
        );
        assert_eq!(summarize_run(&r, &missing), None);
    }

    #[test]
    fn empty_or_absent_series_is_none() {
        let r = run(&[("acc", vec![(1, f64::NAN)])]);
        assert_eq!(
            summarize_run(&r, &MetricSpec::new("acc", Goal::Maximize, Policy::Last)),
            None
        );
        assert_eq!(
            summarize_run(&r, &MetricSpec::new("x", Goal::Maximize, Policy::Last)),
            None
        );
    }
}
