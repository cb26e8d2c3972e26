//! Metric points and their per-run summaries.
//!
//! Points are ingested in batches: one transaction per batch, multi-row `INSERT OR IGNORE`
//! statements (cached as prepared statements per connection) on the `(run, key, step)` key, so a
//! re-sent batch changes nothing. The summaries of the touched keys are merged in the same
//! transaction from exactly the points that were new (`RETURNING` only yields inserted rows).

use std::collections::{BTreeMap, HashMap};

use serde::Serialize;
use sqlx::SqliteConnection;
use tracing::instrument;

use crate::error::{Result, StoreError};
use crate::rows::{MetricPoint, MetricSummary, SeriesPoint, SUMMARY_COLUMNS};
use crate::types::{Goal, RunId};
use crate::Store;

/// Rows per multi-row INSERT (5 bound values each).
const INSERT_CHUNK: usize = 512;

/// Summaries per multi-row upsert (11 bound values each).
const SUMMARY_CHUNK: usize = 256;

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
struct Acc {
    goal: Option<Goal>,
    count: i64,
    nan_count: i64,
    last: Option<(i64, Option<f64>)>,
    min: Option<(f64, i64)>,
    max: Option<(f64, i64)>,
    best: Option<(f64, i64)>,
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
    fn from_summary(s: &MetricSummary) -> Acc {
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
        self.min = better(Goal::Minimize, self.min, Some((v, step)));
        self.max = better(Goal::Maximize, self.max, Some((v, step)));
        if let Some(goal) = self.goal {
            self.best = better(goal, self.best, Some((v, step)));
        }
    }

    /// Folds in the summary of other points (`self`'s goal decides `best`).
    fn merge(&mut self, other: &Acc) {
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

/// Multi-row insert with anonymous `?` parameters: SQLite looks a named parameter (`?NNN`) up by
/// a linear scan, which made binding a large statement quadratic.
fn insert_sql(rows: usize) -> String {
    let mut sql = String::with_capacity(90 + rows * 17);
    sql.push_str("INSERT OR IGNORE INTO metric_points (run_id, key, step, value, wall_ms) VALUES ");
    for i in 0..rows {
        sql.push_str(if i == 0 {
            "(?, ?, ?, ?, ?)"
        } else {
            ", (?, ?, ?, ?, ?)"
        });
    }
    sql
}

/// Upserts the summaries of `run` for the given keys in one statement.
async fn write_summaries(
    conn: &mut SqliteConnection,
    run: RunId,
    accs: &[(&str, Acc)],
) -> Result<()> {
    if accs.is_empty() {
        return Ok(());
    }
    let mut sql = String::from(
        "INSERT INTO metric_summaries \
             (run_id, key, goal, count, nan_count, last, last_step, min, max, best, best_step) \
         VALUES ",
    );
    for i in 0..accs.len() {
        sql.push_str(if i == 0 { "" } else { ", " });
        sql.push_str("(?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)");
    }
    sql.push_str(
        " ON CONFLICT (run_id, key) DO UPDATE SET count = excluded.count, \
             nan_count = excluded.nan_count, last = excluded.last, last_step = excluded.last_step, \
             min = excluded.min, max = excluded.max, best = excluded.best, \
             best_step = excluded.best_step",
    );
    let mut query = sqlx::query(&sql);
    for (key, acc) in accs {
        query = query
            .bind(run)
            .bind(*key)
            .bind(acc.goal.map(Goal::as_str))
            .bind(acc.count)
            .bind(acc.nan_count)
            .bind(acc.last.and_then(|(_, v)| v))
            .bind(acc.last.map(|(s, _)| s))
            .bind(acc.min.map(|(v, _)| v))
            .bind(acc.max.map(|(v, _)| v))
            .bind(acc.best.map(|(v, _)| v))
            .bind(acc.best.map(|(_, s)| s));
    }
    query.execute(conn).await?;
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
    #[instrument(level = "trace", skip_all, fields(run = %run, n = points.len()), err(level = "debug"))]
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
        let mut stored: HashMap<String, MetricSummary> = sqlx::query_as::<_, MetricSummary>(
            &format!("SELECT {SUMMARY_COLUMNS} FROM metric_summaries WHERE run_id = ?1"),
        )
        .bind(run)
        .fetch_all(&mut *tx)
        .await?
        .into_iter()
        .map(|s| (s.key.clone(), s))
        .collect();
        let mut merged: Vec<(&str, Acc)> = Vec::with_capacity(by_key.len());
        let mut new_points = 0u64;
        for (key, key_points) in by_key {
            // Fast path: a chunk whose rows were all inserted is merged from memory. When some
            // were already stored (a re-sent batch, a repeated step), the summary of that key is
            // recomputed from the stored points instead, so it never counts a point twice.
            let mut fresh = Acc::default();
            let mut partial = false;
            let mut inserted_for_key = 0u64;
            for chunk in key_points.chunks(INSERT_CHUNK) {
                let sql = insert_sql(chunk.len());
                let mut query = sqlx::query(&sql);
                for p in chunk {
                    query = query
                        .bind(run)
                        .bind(key)
                        .bind(p.step)
                        .bind(p.value)
                        .bind(p.wall_ms);
                }
                let inserted = query.execute(&mut *tx).await?.rows_affected();
                inserted_for_key += inserted;
                if inserted == chunk.len() as u64 {
                    for p in chunk {
                        fresh.add(p.step, Some(p.value));
                    }
                } else if inserted > 0 {
                    partial = true;
                }
            }
            if inserted_for_key == 0 {
                continue;
            }
            new_points += inserted_for_key;
            let stored = stored.remove(key);
            if partial {
                if stored.is_none() {
                    write_summaries(&mut tx, run, &[(key, Acc::default())]).await?;
                }
                recompute_summaries(&mut tx, run, Some(key)).await?;
            } else {
                let mut acc = stored.as_ref().map(Acc::from_summary).unwrap_or_default();
                acc.merge(&fresh);
                merged.push((key, acc));
            }
        }
        for chunk in merged.chunks(SUMMARY_CHUNK) {
            write_summaries(&mut tx, run, chunk).await?;
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

    /// The points of a series at `steps` (those that exist), in step order: a sample of a long
    /// series for a figure, read by index lookups, so a 10k-step run costs only the rows asked.
    pub async fn metric_series_at(
        &self,
        run: RunId,
        key: &str,
        steps: &[i64],
    ) -> Result<Vec<SeriesPoint>> {
        let steps = serde_json::to_string(steps).map_err(|e| sqlx::Error::Encode(Box::new(e)))?;
        Ok(sqlx::query_as::<_, SeriesPoint>(
            "SELECT step, value, wall_ms FROM metric_points \
             WHERE run_id = ?1 AND key = ?2 AND step IN (SELECT value FROM json_each(?3)) \
             ORDER BY step",
        )
        .bind(run)
        .bind(key)
        .bind(steps)
        .fetch_all(&self.pool)
        .await?)
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
