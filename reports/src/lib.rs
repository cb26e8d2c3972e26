//! Paper-ready tables and figures, computed from plain data.
//!
//! The app reads the store, fills a [`ReportInput`] and calls [`write_all`] (or one renderer).
//! Every output is deterministic — the same input gives byte-identical Markdown, LaTeX, CSV and
//! SVG (and PNG) — and carries the experiment hash and the run ids it used.

pub mod analysis;
mod error;
pub mod input;
mod parallel;
pub mod provenance;
pub mod sample;
pub mod stats;
pub mod summarize;
pub mod table;
mod write;

pub use analysis::SeedCoverage;
pub use error::{ReportError, Result};
pub use input::{
    Cell, Format, Goal, ManagerWeightPoint, MetricSpec, Modality, Policy, ReportInput, RunData,
    RunStatus,
};
pub use table::{
    build_table, render_csv, render_latex, render_markdown, render_runs_csv, render_terminal, Table,
};
pub mod figures;

pub use figures::{
    ablation_bars, learning_curves, manager_heatmap, manager_panels, BarOptions, CurveOptions,
    Figure, FigureSize, ManagerOptions,
};
pub use write::{write_all, write_all_with, WriteOptions, Written};
