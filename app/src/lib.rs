//! TowerLab as a library: the CLI's commands, the runner and its executors, the W&B sync and
//! the TUI. The `towerlab` binary parses the command line and dispatches to [`cmd`].

pub mod cli;
pub mod cmd;
pub mod exit;
pub mod report_input;
pub mod runner;
pub mod scope;
pub mod tui;
pub mod wandb;
