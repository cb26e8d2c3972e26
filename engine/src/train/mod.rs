//! Training-side pieces that need no model: AdamW with saveable state, the reference parameter
//! groups, and the warmup + polynomial-decay learning-rate schedule.

pub mod optim;
pub mod param_groups;
pub mod schedule;

pub use optim::AdamW;
pub use param_groups::{group_parameters, resolve_lr_mult, GroupKind, ParamGroup};
pub use schedule::{warmup_steps, LrSchedule};
