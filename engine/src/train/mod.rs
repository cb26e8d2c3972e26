//! Training: the reference optimiser and its parameter groups, the learning-rate schedule,
//! metric accumulators, evaluation, checkpoints, the loop that reports through events, and the
//! scoring of a checkpoint with the same evaluation (`score`).

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
pub mod score;
pub mod source;

pub use crate::device::resolve_device;
pub use events::{Event, FailureClass, Outcome};
pub use names::metric_names;
pub use run::{run, run_with_data, TrainJob};
pub use score::{check as check_score, score, ScoreError, ScoreJob};
pub use source::{TaskData, TestQuestions, VqaTest};

#[cfg(test)]
mod tests;
