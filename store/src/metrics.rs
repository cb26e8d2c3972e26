//! Metric points and their per-run summaries.
//!
//! Points are ingested in batches: one transaction per batch, multi-row `INSERT OR IGNORE`
//! statements (cached as prepared statements per connection) on the `(run, key, step)` key, so a
//! re-sent batch changes nothing. The summaries of the touched keys are merged in the same
//! transaction from exactly the points that were new (`RETURNING` only yields inserted rows).

use std::collections::BTreeMap;
use std::fmt::Write as _;

use serde::Serialize;
use sqlx::SqliteConnection;
use tracing::instrument;

use crate::error::{Result, StoreError};
use crate::rows::{MetricPoint, MetricSummary, SeriesPoint, SUMMARY_COLUMNS};
use crate::types::{Goal, RunId};
use crate::Store;

/// Rows per multi-row INSERT (3 bound values each, plus run and key).
const INSERT_CHUNK: usize = 256;

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

/// A summary being merged in memory.
#[derive(Debug, Clone, Default)]
struct Acc {
    goal: Option<Goal>,
    count: i64,
    nan_count: i64,
    last: Option<(i64, Option<f64>)>,
    min: Option<f64>,
    max: Option<f64>,
    best: Option<(f64, i64)>,
}

impl Acc {
    fn from_summary(s: &MetricSummary) -> Acc {
        Acc {
            goal: s.goal,
            count: s.count,
            nan_count: s.nan_count,
            last: s
                .last_step
                .map(|step| (step, s.last.filter(|v| !v.is_nan()))),
            min: s.min,
            max: s.max,
            best: s.best.zip(s.best_step),
        }
    }

    fn add(&mut self, step: i64, value: Option<f64>) {
        let value = value.filter(|v| !v.is_nan());
        self.count += 1;
        if value.is_none() {
            self.nan_count += 1;
        }
        if self.last.is_none_or(|(last, _)| step > last) {
            self.last = Some((step, value));
        }
        let Some(v) = value else { return };
        self.min = Some(self.min.map_or(v, |m| m.min(v)));
        self.max = Some(self.max.map_or(v, |m| m.max(v)));
        if let Some(goal) = self.goal {
            let better = match self.best {
                None => true,
                Some((b, b_step)) => match goal {
                    Goal::Maximize => v > b || (v == b && step < b_step),
                    Goal::Minimize => v < b || (v == b && step < b_step),
                },
            };
            if better {
                self.best = Some((v, step));
            }
        }
    }
}

fn insert_sql(rows: usize) -> String {
    let mut sql = String::with_capacity(40 + rows * 20);
    sql.push_str("INSERT OR IGNORE INTO metric_points (run_id, key, step, value, wall_ms) VALUES ");
    for i in 0..rows {
        let p = 3 + 3 * i;
        let sep = if i == 0 { "" } else { ", " };
        let _ = write!(sql, "{sep}(?1, ?2, ?{p}, ?{}, ?{})", p + 1, p + 2);
    }
    sql.push_str(" RETURNING step, value");
    sql
}

async fn fetch_summary(
    conn: &mut SqliteConnection,
    run: RunId,
    key: &str,
) -> Result<Option<MetricSummary>> {
    Ok(sqlx::query_as::<_, MetricSummary>(&format!(
        "SELECT {SUMMARY_COLUMNS} FROM metric_summaries WHERE run_id = ?1 AND key = ?2"
    ))
    .bind(run)
    .bind(key)
    .fetch_optional(conn)
    .await?)
}

async fn write_summary(
    conn: &mut SqliteConnection,
    run: RunId,
    key: &str,
    acc: &Acc,
) -> Result<()> {
    sqlx::query(
        "INSERT INTO metric_summaries \
             (run_id, key, goal, count, nan_count, last, last_step, min, max, best, best_step) \
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11) \
         ON CONFLICT (run_id, key) DO UPDATE SET count = excluded.count, \
             nan_count = excluded.nan_count, last = excluded.last, last_step = excluded.last_step, \
             min = excluded.min, max = excluded.max, best = excluded.best, \
             best_step = excluded.best_step",
    )
    .bind(run)
    .bind(key)
    .bind(acc.goal.map(Goal::as_str))
    .bind(acc.count)
    .bind(acc.nan_count)
    .bind(acc.last.and_then(|(_, v)| v))
    .bind(acc.last.map(|(s, _)| s))
    .bind(acc.min)
    .bind(acc.max)
    .bind(acc.best.map(|(v, _)| v))
    .bind(acc.best.map(|(_, s)| s))
    .execute(conn)
    .await?;
    Ok(())
}

/// Recomputes the summaries of `run` (one `key`, or all) from the stored points, keeping goals.
pub(crate) async fn recompute_summaries(
    conn: &mut SqliteConnection,
    run: RunId,
    key: Option<&str>,
) -> Result<()> {
    const POINTS: &str = "FROM metric_points p WHERE p.run_id = s.run_id AND p.key = s.key";
    sqlx::query(&format!(
        "UPDATE metric_summaries AS s SET \
             count = (SELECT COUNT(*) {POINTS}), \
             nan_count = (SELECT COUNT(*) {POINTS} AND p.value IS NULL), \
             last_step = (SELECT MAX(p.step) {POINTS}), \
             last = (SELECT p.value {POINTS} ORDER BY p.step DESC LIMIT 1), \
             min = (SELECT MIN(p.value) {POINTS}), \
             max = (SELECT MAX(p.value) {POINTS}), \
             best = CASE s.goal \
                 WHEN 'maximize' THEN (SELECT MAX(p.value) {POINTS}) \
                 WHEN 'minimize' THEN (SELECT MIN(p.value) {POINTS}) END, \
             best_step = CASE s.goal \
                 WHEN 'maximize' THEN (SELECT p.step {POINTS} AND p.value IS NOT NULL \
                                       ORDER BY p.value DESC, p.step LIMIT 1) \
                 WHEN 'minimize' THEN (SELECT p.step {POINTS} AND p.value IS NOT NULL \
                                       ORDER BY p.value ASC, p.step LIMIT 1) END \
         WHERE s.run_id = ?1 AND (?2 IS NULL OR s.key = ?2)"
    ))
    .bind(run)
    .bind(key)
    .execute(conn)
    .await?;
    Ok(())
}

async fn ensure_run(conn: &mut SqliteConnection, run: RunId) -> Result<()> {
    let exists: Option<i64> = sqlx::query_scalar("SELECT 1 FROM runs WHERE id = ?1")
        .bind(run)
        .fetch_optional(conn)
        .await?;
    exists.map(|_| ()).ok_or(StoreError::UnknownRun(run))
}

/// Min/max-per-bucket downsampling that keeps step order.
fn downsample(points: Vec<SeriesPoint>, max_points: usize) -> Vec<SeriesPoint> {
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

impl Store {
    /// Declares whether higher or lower is better for metrics of `run`, which decides `best` in
    /// their summaries. Declaring again with another goal recomputes `best` from the points.
    pub async fn declare_metrics(&self, run: RunId, goals: &[(&str, Goal)]) -> Result<()> {
        let mut tx = self.write_tx().await?;
        ensure_run(&mut tx, run).await?;
        for (key, goal) in goals {
            let changed = sqlx::query(
                "INSERT INTO metric_summaries (run_id, key, goal) VALUES (?1, ?2, ?3) \
                 ON CONFLICT (run_id, key) DO UPDATE SET goal = excluded.goal \
                     WHERE goal IS NOT excluded.goal",
            )
            .bind(run)
            .bind(key)
            .bind(goal.as_str())
            .execute(&mut *tx)
            .await?
            .rows_affected();
            if changed > 0 {
                recompute_summaries(&mut tx, run, Some(key)).await?;
            }
        }
        tx.commit().await?;
        Ok(())
    }

    /// Stores a batch of points of `run` in one transaction and updates the summaries of the
    /// keys it touches. Points whose `(key, step)` is already stored are ignored, so re-sending a
    /// batch is harmless. Returns how many points were new.
    #[instrument(level = "trace", skip_all, fields(run = %run, n = points.len()), err)]
    pub async fn ingest_metrics(&self, run: RunId, points: &[MetricPoint]) -> Result<u64> {
        if points.is_empty() {
            return Ok(0);
        }
        let mut by_key: BTreeMap<&str, Vec<&MetricPoint>> = BTreeMap::new();
        for p in points {
            by_key.entry(p.key.as_str()).or_default().push(p);
        }
        let mut tx = self.write_tx().await?;
        ensure_run(&mut tx, run).await?;
        let mut new_points = 0u64;
        for (key, key_points) in by_key {
            let mut inserted: Vec<(i64, Option<f64>)> = Vec::with_capacity(key_points.len());
            for chunk in key_points.chunks(INSERT_CHUNK) {
                let sql = insert_sql(chunk.len());
                let mut query = sqlx::query_as::<_, (i64, Option<f64>)>(&sql)
                    .bind(run)
                    .bind(key);
                for p in chunk {
                    query = query.bind(p.step).bind(p.value).bind(p.wall_ms);
                }
                inserted.extend(query.fetch_all(&mut *tx).await?);
            }
            if inserted.is_empty() {
                continue;
            }
            new_points += inserted.len() as u64;
            let mut acc = fetch_summary(&mut tx, run, key)
                .await?
                .map(|s| Acc::from_summary(&s))
                .unwrap_or_default();
            for (step, value) in inserted {
                acc.add(step, value);
            }
            write_summary(&mut tx, run, key, &acc).await?;
        }
        tx.commit().await?;
        Ok(new_points)
    }

    /// The summaries of every metric of `run`, by key.
    pub async fn summaries(&self, run: RunId) -> Result<Vec<MetricSummary>> {
        Ok(sqlx::query_as::<_, MetricSummary>(&format!(
            "SELECT {SUMMARY_COLUMNS} FROM metric_summaries WHERE run_id = ?1 ORDER BY key"
        ))
        .bind(run)
        .fetch_all(&self.pool)
        .await?)
    }

    /// The metric keys `run` has points for, sorted.
    pub async fn metric_keys(&self, run: RunId) -> Result<Vec<String>> {
        Ok(sqlx::query_scalar(
            "SELECT key FROM metric_summaries WHERE run_id = ?1 AND count > 0 ORDER BY key",
        )
        .bind(run)
        .fetch_all(&self.pool)
        .await?)
    }

    /// The series of metric `key` of `run`, by step.
    pub async fn metric_series(
        &self,
        run: RunId,
        key: &str,
        options: SeriesOptions,
    ) -> Result<Vec<SeriesPoint>> {
        let points = sqlx::query_as::<_, SeriesPoint>(
            "SELECT step, value, wall_ms FROM metric_points \
             WHERE run_id = ?1 AND key = ?2 AND (?3 IS NULL OR step > ?3) ORDER BY step",
        )
        .bind(run)
        .bind(key)
        .bind(options.after_step)
        .fetch_all(&self.pool)
        .await?;
        Ok(match options.max_points {
            Some(max) => downsample(points, max),
            None => points,
        })
    }

    /// Every point of `run` with a step above `after_step`, by step then key.
    pub async fn metric_points(
        &self,
        run: RunId,
        after_step: Option<i64>,
    ) -> Result<Vec<MetricPoint>> {
        Ok(sqlx::query_as::<_, MetricPoint>(
            "SELECT key, step, value, wall_ms FROM metric_points \
             WHERE run_id = ?1 AND (?2 IS NULL OR step > ?2) ORDER BY step, key",
        )
        .bind(run)
        .bind(after_step)
        .fetch_all(&self.pool)
        .await?)
    }

    /// The run's history as rows of one step each, for the steps above `after_step`, at most
    /// `max_rows` rows (steps are never split across calls).
    pub async fn history(
        &self,
        run: RunId,
        after_step: Option<i64>,
        max_rows: Option<i64>,
    ) -> Result<Vec<HistoryRow>> {
        let points = sqlx::query_as::<_, MetricPoint>(
            "SELECT key, step, value, wall_ms FROM metric_points \
             WHERE run_id = ?1 AND (?2 IS NULL OR step > ?2) \
               AND (?3 IS NULL OR step <= (SELECT MAX(step) FROM ( \
                   SELECT DISTINCT step FROM metric_points \
                   WHERE run_id = ?1 AND (?2 IS NULL OR step > ?2) ORDER BY step LIMIT ?3))) \
             ORDER BY step, key",
        )
        .bind(run)
        .bind(after_step)
        .bind(max_rows)
        .fetch_all(&self.pool)
        .await?;
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
        Ok(rows)
    }
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
        assert_eq!((max.min, max.max), (Some(0.1), Some(0.9)));
    }
}
