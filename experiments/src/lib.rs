//! Experiment files, grid expansion, run identity and settings.
//!
//! A leaf crate: it links neither libtorch nor SQLite.

pub mod paths;
pub mod settings;

pub use settings::{ManagerType, ManagerWeightType, Settings, Task};
