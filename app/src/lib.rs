//! The library side of the `towerlab` binary: the parts that tests and benchmarks drive directly.

pub mod exit;
pub mod report_input;
pub mod scope;
pub mod tui;
