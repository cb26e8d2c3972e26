//! ManagerTower (AAUE, SAUE, SAE), BridgeTower and METER in tch, with the reference
//! state-dict key names (LooperXX/ManagerTower `mt_module.py`, `bt_module.py`, `meter_module.py`).
//!
//! Build with [`TowerModel::new`] under a VarStore root; the VarStore then holds every parameter
//! under its reference key (with `.` for `/`), so reference checkpoints map one to one.

mod bert;
pub mod clip;
pub mod config;
pub mod cross_layer;
pub mod heads;
pub mod layers;
pub mod managers;
pub mod objectives;
pub mod retrieval;
pub mod roberta;
pub mod tower;

#[cfg(test)]
mod tests;

pub use clip::{f_resize_position_embedding, resize_position_embedding};
pub use config::{ConfigError, HeadSet, ModelConfig};
pub use layers::Ctx;
pub use managers::{LayerWeights, ManagerWeights};
pub use tower::{ForwardOptions, ImageFeatures, ImagePath, Output, TextFeatures, TowerModel};
