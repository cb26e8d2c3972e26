//! ViLT/ManagerTower data: Arrow IPC readers, image transforms, tokenisation, batches and a
//! deterministic multi-threaded loader, plus a synthetic dataset generator and the converter of
//! the raw public datasets (`convert`).
//!
//! Typical use:
//! ```no_run
//! # use std::{path::Path, sync::Arc};
//! # use engine::data::*;
//! # fn main() -> Result<(), DataError> {
//! let dir = Path::new("data");
//! // A run's tables come from `Settings::tables`, shard patterns from `experiments::expand_table`.
//! let names = ["vqav2_train".to_string(), "vqav2_val".to_string()];
//! let dataset = Arc::new(ViltDataset::open(dir, &names, DatasetKind::Vqa)?);
//! let tokenizer = Arc::new(TextTokenizer::from_file(&dir.join("tokenizer.json"), 50)?);
//! let transform = ImageTransform::from_key("albef_randaug_wohf", 576)?;
//! let loader = Loader::new(SamplePipeline::new(dataset, transform, tokenizer), LoaderConfig::default())?;
//! for batch in loader.epoch(0) {
//!     let batch = batch?;
//!     let _ = (batch.text.ids, batch.image, batch.vqa_targets);
//! }
//! # Ok(()) }
//! ```

pub mod arrow_file;
pub mod batch;
pub mod convert;
pub mod dataset;
pub mod error;
pub mod inspect;
pub mod loader;
pub mod randaugment;
pub mod schema;
pub mod synth;
pub mod synth_tokenizer;
pub mod text;
pub mod transforms;
/// The answer vocabulary file, defined beside the settings that read it.
pub use experiments::answers as vocab;
pub mod writer;

pub use arrow_file::{ArrowFile, ColKind};
pub use batch::{Batch, SamplePipeline, TextBatch};
pub use dataset::{DatasetKind, ImageSlot, Target, ViltDataset};
pub use error::{DataError, DataResult};
pub use inspect::{inspect_path, FileSummary};
pub use loader::{EpochIter, Loader, LoaderConfig, LoaderPosition};
pub use schema::{ColType, TableSchema};
pub use synth::{synth, SynthReport, SynthSize};
pub use text::{mlm_mask, Encoded, TextTokenizer, IGNORE_INDEX};
pub use transforms::{decode_rgb, ImageTransform, TransformKind, CLIP_MEAN, CLIP_STD};
pub use vocab::AnswerVocab;
pub use writer::{write_arrow, Column};
