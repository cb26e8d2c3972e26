//! Weights: reading checkpoints in every format the ManagerTower ecosystem ships (safetensors,
//! the reference PyTorch-Lightning `.ckpt`, plain torch state dicts, Hugging Face CLIP / RoBERTa /
//! BridgeTower), naming their tensors by the reference `state_dict` keys, inferring the
//! architecture from their shapes, and loading them strictly into a model's `VarStore`.
//!
//! ```no_run
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! use engine::model::{ModelConfig, TowerModel};
//! use engine::weights::{self, Architecture, LoadOptions};
//!
//! let ckpt = weights::read(std::path::Path::new("ManagerTower_pt_base.ckpt"))?;
//! let arch = Architecture::infer(&ckpt.tensors, ckpt.hf_config.as_ref());
//! let mut settings = arch.to_settings(&experiments::Settings::default());
//! settings.task = experiments::Task::Vqa; // a new head: its keys may be missing
//! let mut vs = tch::nn::VarStore::new(tch::Device::Cpu);
//! let model = TowerModel::new(&vs.root(), &ModelConfig::from_settings(&settings)?)?;
//! let report = weights::load_into(&mut vs, &ckpt, &LoadOptions::partial())?;
//! println!("{} loaded, new head: {:?}", report.loaded, report.missing_heads);
//! # let _ = model; Ok(()) }
//! ```

mod arch;
mod error;
mod forward;
mod hf;
mod load;
pub mod pickle;
mod read;
mod summary;
mod torch_file;
mod torch_write;

pub use arch::{
    is_head_key, manager_counts, parameter_counts, Architecture, Component, FusionArch, TextArch,
    VisionArch, HEAD_PREFIXES,
};
pub use error::{Mismatches, ShapeMismatch, WeightsError};
pub use forward::{forward_files, settings_from_weights, ForwardRequest, ForwardSummary};
pub use hf::{map_hf, HfModel, Mapped};
pub use load::{
    is_known_unused, load_into, load_tensors_into, named_tensors, variable_shapes, LoadOptions,
    LoadReport,
};
pub use read::{read, read_safetensors, read_torch, write_safetensors, Checkpoint, Format};
pub use summary::{human_count, ManagerGroup, Summary};
pub use torch_write::write_lightning_ckpt;
