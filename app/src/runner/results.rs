//! The results table printed after a sweep: the experiment's summary metric per cell, mean ±
//! standard deviation over its seeds.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use experiments::{Cell, Experiment, MetricSpec, Role, Summary};
use store::{RunStatus, SeriesOptions, Store};

/// One row: a grid cell over its seeds, or an eval cell.
#[derive(Debug, Clone, PartialEq)]
pub struct CellResult {
    pub key: String,
    pub metric: String,
    /// Summary values of the finished seeds.
    pub values: Vec<f64>,
    /// Seeds in the plan.
    pub seeds: usize,
}

impl CellResult {
    pub fn mean(&self) -> Option<f64> {
        (!self.values.is_empty())
            .then(|| self.values.iter().sum::<f64>() / self.values.len() as f64)
    }

    /// Sample standard deviation (n - 1); `None` with fewer than two values.
    pub fn std(&self) -> Option<f64> {
        let n = self.values.len();
        let mean = self.mean()?;
        (n >= 2).then(|| {
            (self.values.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / (n - 1) as f64).sqrt()
        })
    }
}

/// The summary value of one run for `spec` (its summary policy over the stored series).
pub async fn summary_value(
    store: &Store,
    run: store::RunId,
    spec: &MetricSpec,
) -> anyhow::Result<Option<f64>> {
    let main = store
        .metric_series(run, &spec.name, SeriesOptions::default())
        .await?;
    let mut history: BTreeMap<i64, (Option<f64>, Option<f64>)> = BTreeMap::new();
    for p in main {
        history.entry(p.step).or_default().0 = Some(p.value);
    }
    if let Summary::AtBestOf { metric, .. } = &spec.summary {
        for p in store
            .metric_series(run, metric, SeriesOptions::default())
            .await?
        {
            history.entry(p.step).or_default().1 = Some(p.value);
        }
    }
    let rows: Vec<(i64, Option<f64>, Option<f64>)> =
        history.into_iter().map(|(s, (a, b))| (s, a, b)).collect();
    Ok(spec.summarize(&rows))
}

/// The results of the grid cells of `cells`, in plan order.
pub async fn collect(
    store: &Store,
    exp: &Experiment,
    cells: &[Cell],
) -> anyhow::Result<Vec<CellResult>> {
    let hashes: Vec<String> = cells
        .iter()
        .map(|c| c.identity.as_str().to_string())
        .collect();
    let runs = store.runs_by_hash(&hashes).await?;
    let mut out: Vec<CellResult> = Vec::new();
    // Eval cells (a released checkpoint scored beside the grid) are rows of the table too.
    for cell in cells.iter().filter(|c| c.role != Role::Pretrain) {
        let Some(spec) = exp.metric_for(cell.settings.task) else {
            continue;
        };
        let idx = match out.iter().position(|r| r.key == cell.key.0) {
            Some(i) => i,
            None => {
                out.push(CellResult {
                    key: cell.key.0.clone(),
                    metric: spec.name.clone(),
                    values: Vec::new(),
                    seeds: 0,
                });
                out.len() - 1
            }
        };
        out[idx].seeds += 1;
        let finished = runs
            .iter()
            .find(|r| r.hash == cell.identity.as_str() && r.status == RunStatus::Finished);
        if let Some(run) = finished {
            if let Some(v) = summary_value(store, run.id, spec).await? {
                out[idx].values.push(v);
            }
        }
    }
    Ok(out)
}

/// A plain-text table: cell, metric, mean ± std, n.
pub fn render(results: &[CellResult]) -> String {
    let rows: Vec<[String; 4]> = results
        .iter()
        .map(|r| {
            let value = match (r.mean(), r.std()) {
                (Some(m), Some(s)) => format!("{m:.4} ± {s:.4}"),
                (Some(m), None) => format!("{m:.4}"),
                _ => "-".to_string(),
            };
            [
                r.key.clone(),
                r.metric.clone(),
                value,
                format!("{}/{}", r.values.len(), r.seeds),
            ]
        })
        .collect();
    let header = ["cell", "metric", "mean ± std", "seeds"];
    let mut widths = header.map(|h| h.chars().count());
    for row in &rows {
        for (w, c) in widths.iter_mut().zip(row) {
            *w = (*w).max(c.chars().count());
        }
    }
    let mut out = String::new();
    let mut line = |cols: [&str; 4]| {
        let parts: Vec<String> = cols
            .iter()
            .zip(widths)
            .map(|(c, w)| format!("{c:<w$}"))
            .collect();
        let _ = writeln!(out, "{}", parts.join("  ").trim_end());
    };
    line(header);
    for row in &rows {
        line([&row[0], &row[1], &row[2], &row[3]]);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mean_and_sample_std() {
        let r = CellResult {
            key: "k".into(),
            metric: "m".into(),
            values: vec![1.0, 2.0, 3.0],
            seeds: 3,
        };
        assert_eq!(r.mean(), Some(2.0));
        assert_eq!(r.std(), Some(1.0));
        let one = CellResult {
            values: vec![0.5],
            ..r.clone()
        };
        assert_eq!((one.mean(), one.std()), (Some(0.5), None));
        let table = render(&[r, one]);
        assert!(table.contains("2.0000 ± 1.0000"), "{table}");
        assert!(table.contains("3/3"), "{table}");
    }
}
