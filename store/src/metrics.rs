//! Metric points and their per-run summaries.
//!
//! Points are ingested in batches, one transaction per batch. A key whose points all follow its
//! stored steps (a training's usual batch) is appended (on PostgreSQL one binary `COPY` for all
//! such keys); any other goes through inserts that skip rows already stored on the
//! `(run, key, step)` key, so a re-sent batch changes nothing. The summaries of the touched keys
//! are merged in the same transaction from exactly the points that were new.

use std::collections::BTreeMap;

use serde::Serialize;

use crate::rows::{MetricPoint, MetricSummary, SeriesPoint};
use crate::types::Goal;

/// Rows per multi-row INSERT (5 bound values each).
pub(crate) const INSERT_CHUNK: usize = 512;

/// Summaries per multi-row upsert (11 bound values each).
pub(crate) const SUMMARY_CHUNK: usize = 256;

/// How `metric_series` reads a series.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SeriesOptions {
    /// Only points with a step above this (for incremental reads while a run writes).
    pub after_step: Option<i64>,
    /// Downsample to at most this many points, keeping the minimum and maximum of each bucket
    /// so that spikes survive (values of 0 or 1 are treated as 2).
    pub max_points: Option<usize>,
}

/// One row of a run's history: every metric logged at `step` (what W&B's `wandb-history.jsonl`
/// and CSV exports hold).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct HistoryRow {
    pub step: i64,
    /// The latest wall time among the row's points.
    pub wall_ms: i64,
    /// Values by key (NaN kept as NaN).
    pub values: BTreeMap<String, f64>,
}

/// A summary being merged in memory. `min`/`max` carry the earliest step reaching them (unknown,
/// `i64::MAX`, for values read back from a stored summary, which keeps only `best_step`).
#[derive(Debug, Clone, Default)]
pub(crate) struct Acc {
    pub(crate) goal: Option<Goal>,
    pub(crate) count: i64,
    pub(crate) nan_count: i64,
    pub(crate) last: Option<(i64, Option<f64>)>,
    pub(crate) min: Option<(f64, i64)>,
    pub(crate) max: Option<(f64, i64)>,
    pub(crate) best: Option<(f64, i64)>,
}

/// `a` or `b`, whichever is better by `goal` (the earlier step wins a tie).
fn better(goal: Goal, a: Option<(f64, i64)>, b: Option<(f64, i64)>) -> Option<(f64, i64)> {
    match (a, b) {
        (Some((va, sa)), Some((vb, sb))) => {
            let b_wins = match goal {
                Goal::Maximize => vb > va,
                Goal::Minimize => vb < va,
            } || (vb == va && sb < sa);
            Some(if b_wins { (vb, sb) } else { (va, sa) })
        }
        (a, None) => a,
        (None, b) => b,
    }
}

impl Acc {
    pub(crate) fn from_summary(s: &MetricSummary) -> Acc {
        Acc {
            goal: s.goal,
            count: s.count,
            nan_count: s.nan_count,
            last: s
                .last_step
                .map(|step| (step, s.last.filter(|v| !v.is_nan()))),
            min: s.min.map(|v| (v, i64::MAX)),
            max: s.max.map(|v| (v, i64::MAX)),
            best: s.best.zip(s.best_step),
        }
    }

    pub(crate) fn add(&mut self, step: i64, value: Option<f64>) {
        let value = value.filter(|v| !v.is_nan());
        self.count += 1;
        if value.is_none() {
            self.nan_count += 1;
        }
        if self.last.is_none_or(|(last, _)| step > last) {
            self.last = Some((step, value));
        }
        let Some(v) = value else { return };
        self.min = better(Goal::Minimize, self.min, Some((v, step)));
        self.max = better(Goal::Maximize, self.max, Some((v, step)));
        if let Some(goal) = self.goal {
            self.best = better(goal, self.best, Some((v, step)));
        }
    }

    /// Folds in the summary of other points (`self`'s goal decides `best`).
    pub(crate) fn merge(&mut self, other: &Acc) {
        self.count += other.count;
        self.nan_count += other.nan_count;
        if let Some((step, value)) = other.last {
            if self.last.is_none_or(|(last, _)| step > last) {
                self.last = Some((step, value));
            }
        }
        self.min = better(Goal::Minimize, self.min, other.min);
        self.max = better(Goal::Maximize, self.max, other.max);
        if let Some(goal) = self.goal {
            let candidate = match goal {
                Goal::Maximize => other.max,
                Goal::Minimize => other.min,
            };
            self.best = better(goal, self.best, candidate);
        }
    }
}

/// Min/max-per-bucket downsampling that keeps step order.
/// Points in step order, one row per step.
pub(crate) fn rows_by_step(points: Vec<MetricPoint>) -> Vec<HistoryRow> {
    let mut rows: Vec<HistoryRow> = Vec::new();
    for p in points {
        match rows.last_mut() {
            Some(row) if row.step == p.step => {
                row.wall_ms = row.wall_ms.max(p.wall_ms);
                row.values.insert(p.key, p.value);
            }
            _ => rows.push(HistoryRow {
                step: p.step,
                wall_ms: p.wall_ms,
                values: BTreeMap::from([(p.key, p.value)]),
            }),
        }
    }
    rows
}

pub(crate) fn downsample(points: Vec<SeriesPoint>, max_points: usize) -> Vec<SeriesPoint> {
    let max_points = max_points.max(2);
    if points.len() <= max_points {
        return points;
    }
    let buckets = max_points / 2;
    let size = points.len().div_ceil(buckets);
    let mut out = Vec::with_capacity(max_points);
    for bucket in points.chunks(size) {
        let finite = bucket.iter().enumerate().filter(|(_, p)| !p.value.is_nan());
        let lo = finite
            .clone()
            .min_by(|a, b| a.1.value.total_cmp(&b.1.value))
            .map(|(i, _)| i);
        let hi = finite
            .max_by(|a, b| a.1.value.total_cmp(&b.1.value))
            .map(|(i, _)| i);
        match (lo, hi) {
            (Some(lo), Some(hi)) if lo != hi => {
                out.push(bucket[lo.min(hi)]);
                out.push(bucket[lo.max(hi)]);
            }
            (Some(i), _) => out.push(bucket[i]),
            _ => out.push(bucket[0]),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sp(step: i64, value: f64) -> SeriesPoint {
        SeriesPoint {
            step,
            value,
            wall_ms: 0,
        }
    }

    #[test]
    fn downsample_keeps_spikes_and_order() {
        let mut points: Vec<SeriesPoint> = (0..1000).map(|i| sp(i, 1.0)).collect();
        points[537].value = 50.0;
        points[12].value = -3.0;
        let out = downsample(points, 100);
        assert!(out.len() <= 100, "{}", out.len());
        assert!(out.windows(2).all(|w| w[0].step < w[1].step));
        assert!(out.iter().any(|p| p.step == 537 && p.value == 50.0));
        assert!(out.iter().any(|p| p.step == 12 && p.value == -3.0));
        let short: Vec<SeriesPoint> = (0..10).map(|i| sp(i, i as f64)).collect();
        assert_eq!(downsample(short.clone(), 100), short);
    }

    #[test]
    fn acc_tracks_best_by_goal_and_ties_keep_the_earliest_step() {
        let mut max = Acc {
            goal: Some(Goal::Maximize),
            ..Acc::default()
        };
        let mut min = Acc {
            goal: Some(Goal::Minimize),
            ..Acc::default()
        };
        for (step, v) in [(3, 0.5), (1, 0.9), (2, f64::NAN), (5, 0.9), (4, 0.1)] {
            max.add(step, Some(v));
            min.add(step, Some(v));
        }
        assert_eq!(max.best, Some((0.9, 1)));
        assert_eq!(min.best, Some((0.1, 4)));
        assert_eq!(max.last, Some((5, Some(0.9))));
        assert_eq!(max.count, 5);
        assert_eq!(max.nan_count, 1);
        assert_eq!((max.min, max.max), (Some((0.1, 4)), Some((0.9, 1))));
    }

    #[test]
    fn merging_fresh_points_into_a_stored_summary_matches_adding_them_one_by_one() {
        let points = [
            (0, 0.5),
            (1, 0.9),
            (2, f64::NAN),
            (3, 0.2),
            (4, 0.9),
            (5, 0.1),
        ];
        for goal in [Goal::Maximize, Goal::Minimize] {
            let mut one_by_one = Acc {
                goal: Some(goal),
                ..Acc::default()
            };
            for &(s, v) in &points {
                one_by_one.add(s, Some(v));
            }
            let mut stored = Acc {
                goal: Some(goal),
                ..Acc::default()
            };
            for &(s, v) in &points[..2] {
                stored.add(s, Some(v));
            }
            let mut fresh = Acc::default();
            for &(s, v) in &points[2..] {
                fresh.add(s, Some(v));
            }
            stored.merge(&fresh);
            assert_eq!(stored.best, one_by_one.best, "{goal}");
            assert_eq!(stored.last, one_by_one.last);
            assert_eq!((stored.count, stored.nan_count), (6, 1));
            assert_eq!(stored.min.map(|m| m.0), Some(0.1));
            assert_eq!(stored.max.map(|m| m.0), Some(0.9));
        }
    }
}
