//! Training machinery that the task loops share: the reference optimiser and its parameter
//! groups, the learning-rate schedule, metric accumulators, events, and checkpoints.

pub mod checkpoint;
pub mod events;
pub mod metrics;
pub mod optim;
pub mod schedule;
