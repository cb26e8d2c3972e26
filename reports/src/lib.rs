//! Paper-ready tables and figures, computed from plain data.
//!
//! The app reads the store, fills a [`ReportInput`] and calls [`write_all`] (or one renderer).
//! Every output is deterministic — the same input gives byte-identical Markdown, LaTeX, CSV and
//! SVG (and PNG) — and carries the experiment hash and the run ids it used.
//!
//! ```
//! use std::collections::BTreeMap;
//! use reports::{Cell, Format, Goal, MetricSpec, Policy, ReportInput, RunData, RunStatus};
//!
//! let mut run = RunData::new("run-1", 0, RunStatus::Finished);
//! run.series.insert("val/acc".into(), vec![(100, 0.61), (200, 0.66), (300, 0.64)]);
//! let input = ReportInput {
//!     experiment: "demo".into(),
//!     experiment_hash: "abc123".into(),
//!     axes: vec!["lr".into()],
//!     metrics: vec![MetricSpec::new("val/acc", Goal::Maximize, Policy::Best)],
//!     baseline: None,
//!     cells: vec![Cell {
//!         key: "lr=1e-4".into(),
//!         axes: BTreeMap::from([("lr".to_string(), "1e-4".to_string())]),
//!         expected_seeds: vec![0, 1],
//!         runs: vec![run],
//!     }],
//!     ..ReportInput::default()
//! };
//! let table = reports::build_table(&input)?;
//! let md = reports::render_markdown(&table);
//! assert!(md.contains("| 1e-4 | 1/2 seeds, 1 missing | **0.6600** (n=1) |"));
//!
//! let dir = tempfile::tempdir()?;
//! let written = reports::write_all(&input, dir.path(), &[Format::Markdown, Format::Svg])?;
//! // table.md, curves-val-acc.svg, bars-val-acc.svg; no run recorded manager weights.
//! assert_eq!(written.files.len(), 3);
//! assert_eq!(written.skipped.len(), 2);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

pub mod analysis;
pub mod cost;
mod error;
pub mod figures;
pub mod input;
mod parallel;
pub mod provenance;
pub mod sample;
pub mod stats;
pub mod summarize;
pub mod table;
mod write;

pub use analysis::SeedCoverage;
pub use cost::{cost_table, render_cost, Compute, CostTable, RunCompute};
pub use error::{ReportError, Result};
/// Names in figures, shared with experiment files' `[labels]`.
pub use experiments::Labels;
pub use figures::{
    ablation_bars, learning_curves, manager_heatmap, manager_panels, BarOptions, CurveOptions,
    Figure, FigureSize, ManagerOptions,
};
pub use input::{
    Cell, Format, Goal, ManagerWeightPoint, MetricSpec, Modality, Policy, ReportInput, RunData,
    RunStatus,
};
pub use provenance::Provenance;
pub use table::{
    build_table, render_csv, render_latex, render_markdown, render_runs_csv, render_terminal,
    Fallback, Significance, Table,
};
pub use write::{write_all, write_all_with, WriteOptions, Written};
