//! The results table printed after a sweep: the experiment's summary metric per cell, mean ±
//! standard deviation over its finished seeds. It is the report's table (the same runs of the
//! file's plan, the same per-run summaries and the same statistics), in the terminal's words.

use crate::scope::PlanScope;
use experiments::{text_table, Cell, Experiment};
use store::Store;

/// The report table of the plan's done runs; `None` when the plan has no stored run yet.
pub async fn collect(
    store: &Store,
    exp: &Experiment,
    cells: &[Cell],
) -> anyhow::Result<Option<reports::Table>> {
    let scope = PlanScope::compute(store, exp, cells.to_vec()).await?;
    if scope.done_cells().next().is_none() && scope.pending.is_empty() {
        return Ok(None);
    }
    let input = crate::report_input::build_input(store, exp, &scope, None, None).await?;
    Ok(Some(reports::build_table(&input)?))
}

/// A plain-text table: cell, metric, mean ± std, finished seeds of the expected ones.
pub fn render(table: Option<&reports::Table>) -> String {
    let Some(table) = table else {
        return "no runs of the plan in the store yet\n".to_string();
    };
    let mut rows: Vec<Vec<String>> = Vec::new();
    for row in &table.rows {
        for ((metric, entry), &decimals) in
            table.metrics.iter().zip(&row.entries).zip(&table.decimals)
        {
            // A metric of another task (one per task) has no value in this cell.
            if entry.summary.is_none() && table.metrics.len() > 1 {
                continue;
            }
            let value = match entry.summary {
                Some(s) => match s.std {
                    Some(std) => format!("{:.decimals$} ± {std:.decimals$}", s.mean),
                    None => format!("{:.decimals$}", s.mean),
                },
                None => "-".to_string(),
            };
            rows.push(vec![
                row.cell.clone(),
                metric.key.clone(),
                value,
                row.coverage.describe(),
            ]);
        }
    }
    text_table::render(&["cell", "metric", "mean ± std", "seeds"], &rows)
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use reports::{Cell, Goal, MetricSpec, Policy, ReportInput, RunData, RunStatus};

    use super::*;

    fn run(id: &str, seed: u64, status: RunStatus, best: f64) -> RunData {
        let mut r = RunData::new(id, seed, status);
        r.series
            .insert("acc".into(), vec![(1, best / 2.0), (2, best)]);
        r
    }

    #[test]
    fn means_count_finished_runs_only() {
        let input = ReportInput {
            experiment: "e".into(),
            axes: vec!["m".into()],
            metrics: vec![MetricSpec::new("acc", Goal::Maximize, Policy::Best)],
            cells: vec![Cell {
                key: "m=a".into(),
                axes: BTreeMap::from([("m".to_string(), "a".to_string())]),
                expected_seeds: vec![0, 1, 2],
                runs: vec![
                    run("r0", 0, RunStatus::Finished, 0.5),
                    run("r1", 1, RunStatus::Finished, 0.7),
                    // A failed run's last value must not enter the mean.
                    run("r2", 2, RunStatus::Failed, 0.1),
                ],
            }],
            ..ReportInput::default()
        };
        let table = reports::build_table(&input).unwrap();
        let text = render(Some(&table));
        assert!(text.contains("0.6000 ± 0.1414"), "{text}");
        assert!(text.contains("2/3 seeds, 1 failed"), "{text}");
        assert_eq!(render(None), "no runs of the plan in the store yet\n");
    }
}
