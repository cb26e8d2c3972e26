//! Queries of `metrics` (compiled once per backend).

use std::collections::{BTreeMap, HashMap};

use tracing::instrument;

use crate::error::{Result, StoreError};
use crate::metrics::{
    downsample, rows_by_step, Acc, HistoryRow, SeriesOptions, INSERT_CHUNK, SUMMARY_CHUNK,
};
use crate::rows::{MetricPoint, MetricSummary, SeriesPoint, SUMMARY_COLUMNS};
use crate::types::{Goal, RunId};

use super::{append_points, insert_points, values_list, Backend, Conn, DIALECT};
use crate::Dialect;

/// Upserts the summaries of `run` for the given keys in one statement.
async fn write_summaries(conn: &mut Conn, run: RunId, accs: &[(&str, Acc)]) -> Result<()> {
    if accs.is_empty() {
        return Ok(());
    }
    let mut sql = String::from(
        "INSERT INTO metric_summaries \
             (run_id, key, goal, count, nan_count, last, last_step, min, max, best, best_step) \
         VALUES ",
    );
    sql.push_str(&values_list(accs.len(), 11));
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
    conn: &mut Conn,
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
         WHERE s.run_id = $1 AND ($2 IS NULL OR s.key = $2)"
    ))
    .bind(run)
    .bind(key)
    .execute(conn)
    .await?;
    Ok(())
}

/// Checks that `run` exists, locking its row on PostgreSQL (SQLite's write transaction holds
/// the file): writers of one run's metrics queue behind each other, so a summary is never
/// merged from a stale read, and what [`appends`] found stays true until the commit.
async fn ensure_run(conn: &mut Conn, run: RunId) -> Result<()> {
    let lock = match DIALECT {
        Dialect::Sqlite => "",
        // Not FOR UPDATE: inserts that reference the run (logs, artifacts) need not wait.
        Dialect::Postgres => " FOR NO KEY UPDATE",
    };
    let exists: Option<RunId> =
        sqlx::query_scalar(&format!("SELECT id FROM runs WHERE id = $1{lock}"))
            .bind(run)
            .fetch_optional(conn)
            .await?;
    exists.map(|_| ()).ok_or(StoreError::UnknownRun(run))
}

/// Whether one key's `points` (in the order given) can be appended with no check for stored
/// duplicates: their steps rise, and the first follows every stored step of the key (the
/// summary's `last_step`, which is the largest; without a summary, the points themselves).
async fn appends(
    conn: &mut Conn,
    run: RunId,
    key: &str,
    stored: Option<&MetricSummary>,
    points: &[&MetricPoint],
) -> Result<bool> {
    if !points.windows(2).all(|w| w[0].step < w[1].step) {
        return Ok(false);
    }
    let last: Option<i64> = match stored {
        Some(summary) => summary.last_step,
        None => {
            sqlx::query_scalar("SELECT MAX(step) FROM metric_points WHERE run_id = $1 AND key = $2")
                .bind(run)
                .bind(key)
                .fetch_one(conn)
                .await?
        }
    };
    Ok(points
        .first()
        .is_some_and(|first| last.is_none_or(|last| first.step > last)))
}

impl Backend<'_> {
    pub(crate) async fn declare_metrics(&self, run: RunId, goals: &[(&str, Goal)]) -> Result<()> {
        let mut tx = self.write_tx().await?;
        ensure_run(&mut tx, run).await?;
        for (key, goal) in goals {
            let changed = sqlx::query(
                "INSERT INTO metric_summaries (run_id, key, goal) VALUES ($1, $2, $3) \
                 ON CONFLICT (run_id, key) DO UPDATE SET goal = excluded.goal \
                     WHERE metric_summaries.goal IS DISTINCT FROM excluded.goal",
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

    #[instrument(level = "trace", skip_all, fields(run = %run, n = points.len()), err(level = "debug"))]
    pub(crate) async fn ingest_metrics(&self, run: RunId, points: &[MetricPoint]) -> Result<u64> {
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
            &format!("SELECT {SUMMARY_COLUMNS} FROM metric_summaries WHERE run_id = $1"),
        )
        .bind(run)
        .fetch_all(&mut *tx)
        .await?
        .into_iter()
        .map(|s| (s.key.clone(), s))
        .collect();
        let mut merged: Vec<(&str, Acc)> = Vec::with_capacity(by_key.len());
        let mut new_points = 0u64;
        // Keys whose points all follow what is stored (a training's usual batch) are appended
        // together below; the others go through the duplicate-skipping insert.
        let mut appended: Vec<(&str, Vec<&MetricPoint>)> = Vec::new();
        for (key, key_points) in by_key {
            if appends(&mut tx, run, key, stored.get(key), &key_points).await? {
                appended.push((key, key_points));
                continue;
            }
            // Fast path: a chunk whose rows were all inserted is merged from memory. When some
            // were already stored (a re-sent batch, a repeated step), the summary of that key is
            // recomputed from the stored points instead, so it never counts a point twice.
            let mut fresh = Acc::default();
            let mut partial = false;
            let mut inserted_for_key = 0u64;
            // PostgreSQL takes a chunk as three arrays, so its chunks can be long.
            let chunk_len = match DIALECT {
                Dialect::Sqlite => INSERT_CHUNK,
                Dialect::Postgres => 16 * INSERT_CHUNK,
            };
            for chunk in key_points.chunks(chunk_len) {
                let inserted = insert_points(&mut tx, run, key, chunk).await?;
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
        if !appended.is_empty() {
            let keys: Vec<(&str, &[&MetricPoint])> = appended
                .iter()
                .map(|(key, points)| (*key, points.as_slice()))
                .collect();
            let expected: usize = appended.iter().map(|(_, points)| points.len()).sum();
            let inserted = append_points(&mut tx, run, &keys).await?;
            new_points += inserted;
            for (key, points) in &appended {
                let stored = stored.remove(*key);
                if inserted == expected as u64 {
                    let mut acc = stored.as_ref().map(Acc::from_summary).unwrap_or_default();
                    for p in points {
                        acc.add(p.step, Some(p.value));
                    }
                    merged.push((key, acc));
                } else {
                    // Not what the check promised: count from the stored points instead.
                    if stored.is_none() {
                        write_summaries(&mut tx, run, &[(key, Acc::default())]).await?;
                    }
                    recompute_summaries(&mut tx, run, Some(key)).await?;
                }
            }
        }
        for chunk in merged.chunks(SUMMARY_CHUNK) {
            write_summaries(&mut tx, run, chunk).await?;
        }
        tx.commit().await?;
        Ok(new_points)
    }

    pub(crate) async fn summaries(&self, run: RunId) -> Result<Vec<MetricSummary>> {
        Ok(sqlx::query_as::<_, MetricSummary>(&format!(
            "SELECT {SUMMARY_COLUMNS} FROM metric_summaries WHERE run_id = $1 ORDER BY key"
        ))
        .bind(run)
        .fetch_all(self.pool)
        .await?)
    }

    pub(crate) async fn metric_keys(&self, run: RunId) -> Result<Vec<String>> {
        Ok(sqlx::query_scalar(
            "SELECT key FROM metric_summaries WHERE run_id = $1 AND count > 0 ORDER BY key",
        )
        .bind(run)
        .fetch_all(self.pool)
        .await?)
    }

    pub(crate) async fn metric_series(
        &self,
        run: RunId,
        key: &str,
        options: SeriesOptions,
    ) -> Result<Vec<SeriesPoint>> {
        let points = sqlx::query_as::<_, SeriesPoint>(
            "SELECT step, value, wall_ms FROM metric_points \
             WHERE run_id = $1 AND key = $2 AND ($3 IS NULL OR step > $3) ORDER BY step",
        )
        .bind(run)
        .bind(key)
        .bind(options.after_step)
        .fetch_all(self.pool)
        .await?;
        Ok(match options.max_points {
            Some(max) => downsample(points, max),
            None => points,
        })
    }

    pub(crate) async fn metric_series_at(
        &self,
        run: RunId,
        key: &str,
        steps: &[i64],
    ) -> Result<Vec<SeriesPoint>> {
        let steps = serde_json::to_string(steps).map_err(|e| sqlx::Error::Encode(Box::new(e)))?;
        Ok(sqlx::query_as::<_, SeriesPoint>(&format!(
            "SELECT step, value, wall_ms FROM metric_points \
             WHERE run_id = $1 AND key = $2 AND step IN ({}) ORDER BY step",
            match DIALECT {
                Dialect::Sqlite => "SELECT value FROM json_each($3)",
                Dialect::Postgres => "SELECT value::BIGINT FROM json_array_elements_text($3::JSON)",
            }
        ))
        .bind(run)
        .bind(key)
        .bind(steps)
        .fetch_all(self.pool)
        .await?)
    }

    pub(crate) async fn metric_points(
        &self,
        run: RunId,
        after_step: Option<i64>,
    ) -> Result<Vec<MetricPoint>> {
        Ok(sqlx::query_as::<_, MetricPoint>(
            "SELECT key, step, value, wall_ms FROM metric_points \
             WHERE run_id = $1 AND ($2 IS NULL OR step > $2) ORDER BY step, key",
        )
        .bind(run)
        .bind(after_step)
        .fetch_all(self.pool)
        .await?)
    }

    pub(crate) async fn history(
        &self,
        run: RunId,
        after_step: Option<i64>,
        max_rows: Option<i64>,
    ) -> Result<Vec<HistoryRow>> {
        let points = sqlx::query_as::<_, MetricPoint>(
            "SELECT key, step, value, wall_ms FROM metric_points \
             WHERE run_id = $1 AND key NOT LIKE 'system/%' AND ($2 IS NULL OR step > $2) \
               AND ($3 IS NULL OR step <= (SELECT MAX(step) FROM ( \
                   SELECT DISTINCT step FROM metric_points \
                   WHERE run_id = $1 AND key NOT LIKE 'system/%' AND ($2 IS NULL OR step > $2) \
                   ORDER BY step LIMIT $3) AS steps)) \
             ORDER BY step, key",
        )
        .bind(run)
        .bind(after_step)
        .bind(max_rows)
        .fetch_all(self.pool)
        .await?;
        Ok(rows_by_step(points))
    }

    pub(crate) async fn system_samples(
        &self,
        run: RunId,
        from: i64,
        limit: i64,
    ) -> Result<Vec<HistoryRow>> {
        let points = sqlx::query_as::<_, MetricPoint>(
            "SELECT key, step, value, wall_ms FROM metric_points \
             WHERE run_id = $1 AND key LIKE 'system/%' AND step IN ( \
               SELECT DISTINCT step FROM metric_points \
               WHERE run_id = $1 AND key LIKE 'system/%' ORDER BY step LIMIT $3 OFFSET $2) \
             ORDER BY step, key",
        )
        .bind(run)
        .bind(from)
        .bind(limit)
        .fetch_all(self.pool)
        .await?;
        Ok(rows_by_step(points))
    }
}
