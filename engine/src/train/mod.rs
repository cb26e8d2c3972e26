//! Training: the reference optimiser and its parameter groups, the learning-rate schedule,
//! metric accumulators, evaluation, checkpoints, and the loop that reports through events.

pub mod checkpoint;
pub mod data_source;
pub mod eval;
pub mod events;
pub mod init;
pub mod metrics;
pub mod names;
pub mod optim;
pub mod predictions;
pub mod run;
pub mod schedule;
pub mod source;

pub use crate::device::resolve_device;
pub use events::{Event, FailureClass};
pub use names::metric_names;
pub use run::{run, run_with_data, Outcome, TrainJob};
pub use source::{TaskData, TestQuestions, VqaTest};

#[cfg(test)]
mod tests;
