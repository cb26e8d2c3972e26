//! TowerLab's engine: the only crate that links libtorch.
//!
//! It knows nothing of the store, tokio or the terminal UI; it reports through events on a channel.

pub mod data;
pub mod device;
pub mod error;
pub mod hub;
pub mod model;
pub mod panic;
pub mod perf;
pub mod runtime;
pub mod train;
pub mod weights;

pub use error::{CheckpointError, DeviceError, EngineError, InputError, Result};
