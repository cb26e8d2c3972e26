//! What an experiment cost: compute hours per cell (GPU-hours for runs on CUDA, CPU-hours
//! otherwise; wall time × devices of finished runs, summed over seeds) and for the whole
//! experiment. A pre-training run that several fine-tuning runs start from is counted once in
//! each cell that uses it, and once in the experiment's total.

use std::collections::BTreeSet;

pub use experiments::cost::Compute;

use crate::input::ReportInput;

/// One finished run's compute, as the app reads it from the store.
#[derive(Debug, Clone, PartialEq)]
pub struct RunCompute {
    /// The run's id (what deduplicates a shared pre-training run).
    pub run_id: String,
    /// `cuda:N` or `cpu` (what the run recorded).
    pub device: String,
    /// Devices the run used.
    pub devices: u32,
    /// Wall time of the attempt that finished, seconds.
    pub wall_s: f64,
    /// A pre-training run the cell's runs start from (not one of the cell's seeds).
    pub pretrain: bool,
}

impl RunCompute {
    pub fn compute(&self) -> Compute {
        Compute::of_run(&self.device, self.devices, self.wall_s)
    }
}

/// The compute of `runs`, each distinct run once.
pub fn total(runs: &[&RunCompute]) -> Compute {
    let mut seen = BTreeSet::new();
    let mut out = Compute::default();
    for r in runs {
        if seen.insert(r.run_id.as_str()) {
            out.add(r.compute());
        }
    }
    out
}

/// The compute of cell `key` (its seeds and its pre-training run, once); `None` when the
/// input carries no compute for it.
pub fn cell_compute(input: &ReportInput, key: &str) -> Option<Compute> {
    let runs = input.compute.get(key)?;
    Some(total(&runs.iter().collect::<Vec<_>>()))
}

/// One line of `towerlab report --cost`.
#[derive(Debug, Clone, PartialEq)]
pub struct CostRow {
    /// The cell's axis values (`axis=value`, joined), or the cell key.
    pub cell: String,
    /// Finished runs of the cell's seeds.
    pub runs: usize,
    /// Pre-training runs the cell starts from (shared with other cells).
    pub pretrain_runs: usize,
    pub compute: Compute,
}

/// The whole experiment's cost: a row per cell and the total, where a run shared by cells
/// counts once.
#[derive(Debug, Clone, PartialEq)]
pub struct CostTable {
    pub experiment: String,
    pub rows: Vec<CostRow>,
    pub total: Compute,
    pub total_runs: usize,
}

pub fn cost_table(input: &ReportInput) -> CostTable {
    let mut rows = Vec::new();
    let mut all: Vec<&RunCompute> = Vec::new();
    for cell in &input.cells {
        let runs: Vec<&RunCompute> = input
            .compute
            .get(&cell.key)
            .map(|r| r.iter().collect())
            .unwrap_or_default();
        let name = if input.axes.is_empty() {
            cell.key.clone()
        } else {
            input
                .axes
                .iter()
                .filter_map(|a| cell.axes.get(a).map(|v| format!("{a}={v}")))
                .collect::<Vec<_>>()
                .join(" ")
        };
        rows.push(CostRow {
            cell: name,
            runs: runs.iter().filter(|r| !r.pretrain).count(),
            pretrain_runs: runs
                .iter()
                .filter(|r| r.pretrain)
                .map(|r| r.run_id.as_str())
                .collect::<BTreeSet<_>>()
                .len(),
            compute: total(&runs),
        });
        all.extend(runs);
    }
    let total_runs = all
        .iter()
        .map(|r| r.run_id.as_str())
        .collect::<BTreeSet<_>>()
        .len();
    CostTable {
        experiment: input.experiment.clone(),
        rows,
        total: total(&all),
        total_runs,
    }
}

/// `towerlab report --cost` as plain text: one line per cell, then the total.
pub fn render_cost(table: &CostTable) -> String {
    let width = table
        .rows
        .iter()
        .map(|r| r.cell.chars().count())
        .max()
        .unwrap_or(4)
        .max(4);
    let mut out = format!("compute of {}:\n", table.experiment);
    out.push_str(&format!(
        "  {:<width$}  {:>4}  {:>8}  compute\n",
        "cell", "runs", "pretrain"
    ));
    for r in &table.rows {
        out.push_str(&format!(
            "  {:<width$}  {:>4}  {:>8}  {}\n",
            r.cell,
            r.runs,
            if r.pretrain_runs > 0 {
                format!("{} shared", r.pretrain_runs)
            } else {
                "-".into()
            },
            r.compute.text()
        ));
    }
    out.push_str(&format!(
        "  total: {} over {} finished run(s) (wall time × devices of the attempt that \
         finished; a shared pre-training run counted once)\n",
        table.total.text(),
        table.total_runs
    ));
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::input::Cell;
    use std::collections::BTreeMap;

    fn run(id: &str, device: &str, wall_s: f64, pretrain: bool) -> RunCompute {
        RunCompute {
            run_id: id.into(),
            device: device.into(),
            devices: 1,
            wall_s,
            pretrain,
        }
    }

    #[test]
    fn cells_sum_their_seeds_and_a_shared_pretraining_run_counts_once() {
        let cell = |key: &str, vlp: &str| Cell {
            key: key.into(),
            axes: BTreeMap::from([("vlp".to_string(), vlp.to_string())]),
            ..Cell::default()
        };
        let pre = run("p", "cuda:0", 7200.0, true);
        let input = ReportInput {
            experiment: "study".into(),
            axes: vec!["vlp".into()],
            cells: vec![cell("a", "false"), cell("b", "true"), cell("c", "true")],
            compute: BTreeMap::from([
                (
                    "a".to_string(),
                    vec![
                        run("a0", "cuda:0", 1800.0, false),
                        run("a1", "cuda:1", 1800.0, false),
                    ],
                ),
                (
                    "b".to_string(),
                    vec![pre.clone(), run("b0", "cuda:0", 3600.0, false), pre.clone()],
                ),
                ("c".to_string(), vec![pre, run("c0", "cpu", 360.0, false)]),
            ]),
            ..ReportInput::default()
        };
        assert_eq!(cell_compute(&input, "a").unwrap().gpu_hours, 1.0);
        // Its seed and the pre-training run once, though two of its runs start from it.
        assert_eq!(cell_compute(&input, "b").unwrap().gpu_hours, 3.0);
        let t = cost_table(&input);
        assert_eq!(t.rows[1].runs, 1);
        assert_eq!(t.rows[1].pretrain_runs, 1);
        assert_eq!(t.rows[2].compute.text(), "2.00 GPU-h + 0.10 CPU-h");
        // The experiment: 1 + 1 + the pre-training run once (2) = 4 GPU-h, 0.1 CPU-h.
        assert_eq!(t.total.gpu_hours, 4.0);
        assert!((t.total.cpu_hours - 0.1).abs() < 1e-12);
        assert_eq!(t.total_runs, 5);
        let text = render_cost(&t);
        assert!(
            text.contains("vlp=true      1  1 shared  3.00 GPU-h"),
            "{text}"
        );
        assert!(
            text.contains("total: 4.00 GPU-h + 0.10 CPU-h over 5 finished run(s)"),
            "{text}"
        );
        assert_eq!(cell_compute(&ReportInput::default(), "a"), None);
    }
}
