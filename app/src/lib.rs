//! The library side of the `towerlab` binary: the parts that tests and benchmarks drive directly.

pub mod tui;
