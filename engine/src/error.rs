//! Errors the engine reports to its callers, typed so that a failure's class (out of memory or
//! not) and its source chain survive to the runner. User-facing variants name the file or key.

use std::path::PathBuf;

use crate::data::DataError;
use crate::model::ConfigError;
use crate::weights::{Mismatches, WeightsError};

#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    /// libtorch could not allocate memory (the CPU allocator or a CUDA device). The retry
    /// policy treats it apart from other errors.
    #[error("out of memory: {message}")]
    OutOfMemory {
        message: String,
        #[source]
        source: Option<tch::TchError>,
    },
    /// Any other libtorch error. Built through `From<TchError>`, which sorts allocation
    /// failures into [`EngineError::OutOfMemory`].
    #[error(transparent)]
    Torch(tch::TchError),
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// An expert or checkpoint could not be found or downloaded.
    #[error(transparent)]
    Hub(#[from] crate::hub::HubError),
    /// A local expert folder whose files are not the ones the run's identity pinned.
    #[error(
        "`{key}`: {path} changed since the run was queued (sha256 {then} then, {now} now); \
         plan again to make it another run"
    )]
    ExpertChanged {
        key: &'static str,
        path: String,
        then: String,
        now: String,
    },
    #[error(transparent)]
    Data(#[from] DataError),
    #[error(transparent)]
    Weights(#[from] WeightsError),
    #[error("model config: {0}")]
    Config(#[from] ConfigError),
    #[error(transparent)]
    Device(#[from] DeviceError),
    #[error(transparent)]
    Input(#[from] InputError),
    #[error(transparent)]
    Checkpoint(#[from] CheckpointError),
    /// A setting the engine cannot use.
    #[error("setting `{key}`: {detail}")]
    Setting { key: &'static str, detail: String },
    #[error(
        "no tokenizer: `tokenizer = \"{setting}\"` is neither a tokenizer.json file nor a folder \
         holding one, and {} does not exist",
        beside_data.display()
    )]
    NoTokenizer {
        setting: String,
        beside_data: PathBuf,
    },
    /// Writing VQA's submission file failed.
    #[error("VQA test predictions ({file}): {source}")]
    Predictions {
        file: &'static str,
        #[source]
        source: Box<EngineError>,
    },
    #[error("{path}: {source}")]
    Json {
        path: PathBuf,
        #[source]
        source: serde_json::Error,
    },
    /// libtorch or the engine panicked (tch's infallible calls panic on any libtorch error);
    /// caught at the run's boundary. An allocation failure's panic is [`Self::OutOfMemory`].
    #[error("the engine panicked: {0}")]
    Panic(String),
    /// The VQA head's size disagrees with the data's answer vocabulary.
    #[error(
        "vqav2_label_size = {label_size}, but {vocabulary} lists {answers} answers: the VQA head \
         needs one output per answer of the data"
    )]
    AnswerCount {
        label_size: i64,
        answers: usize,
        vocabulary: PathBuf,
    },
}

impl From<tch::TchError> for EngineError {
    fn from(e: tch::TchError) -> Self {
        match &e {
            tch::TchError::Torch(message) if is_out_of_memory(message) => Self::OutOfMemory {
                message: first_line(message),
                source: Some(e),
            },
            _ => Self::Torch(e),
        }
    }
}

impl EngineError {
    /// Whether this error (or its source) is an allocation failure.
    pub fn is_out_of_memory(&self) -> bool {
        match self {
            Self::OutOfMemory { .. } => true,
            Self::Weights(WeightsError::Torch { source, .. }) => {
                matches!(source, tch::TchError::Torch(m) if is_out_of_memory(m))
            }
            Self::Predictions { source, .. } => source.is_out_of_memory(),
            Self::Checkpoint(CheckpointError::Tensors { source, .. }) => {
                matches!(source, tch::TchError::Torch(m) if is_out_of_memory(m))
            }
            _ => false,
        }
    }

    /// The error a panic payload stands for: tch's infallible calls panic with the libtorch
    /// message, so an allocation failure is still recognised.
    pub fn from_panic(payload: &(dyn std::any::Any + Send)) -> Self {
        let message = payload
            .downcast_ref::<String>()
            .cloned()
            .or_else(|| payload.downcast_ref::<&str>().map(|s| s.to_string()))
            .unwrap_or_else(|| "a panic without a message".into());
        if is_out_of_memory(&message) {
            Self::OutOfMemory {
                message: first_line(unwrap_prefix(&message)),
                source: None,
            }
        } else {
            Self::Panic(first_line(&message))
        }
    }
}

/// libtorch's allocation-failure messages: `c10::OutOfMemoryError` from the CUDA caching
/// allocator ("CUDA out of memory. Tried to allocate ..."), the CPU allocator's
/// ("DefaultCPUAllocator: can't allocate memory: you tried to allocate N bytes. Error code 12"
/// in 2.11, "not enough memory" before), and CUDA runtime or MPS failures. libtorch's C API
/// keeps only `what()`, so this string test, at the one place a libtorch error enters the
/// engine's types, is all there is to go on.
pub fn is_out_of_memory(message: &str) -> bool {
    let m = message.to_ascii_lowercase();
    m.contains("out of memory")
        || m.contains("not enough memory")
        || m.contains("can't allocate memory")
        || m.contains("cannot allocate memory")
        || m.contains("cuda_error_out_of_memory")
        || m.contains("cudaerrormemoryallocation")
}

/// The first line, without libtorch's C++ backtrace (`Exception raised from ...`). A panic
/// message quotes the error with `{:?}`, where the line break is the two characters `\n`.
fn first_line(message: &str) -> String {
    let line = message.lines().next().unwrap_or("");
    let line = line.split("\\n").next().unwrap_or(line).trim();
    line.split(" (Exception raised from")
        .next()
        .unwrap_or(line)
        .trim_end_matches(['"', ')'])
        .to_string()
}

/// `called `Result::unwrap()` on an `Err` value: Torch("...")` → the libtorch message.
fn unwrap_prefix(message: &str) -> &str {
    message
        .split_once("Torch(\"")
        .map_or(message, |(_, rest)| rest)
}

/// A `device` setting that names no usable device.
#[derive(Debug, thiserror::Error)]
pub enum DeviceError {
    #[error(transparent)]
    Syntax(#[from] experiments::DeviceSpecError),
    #[error("device `{spec}` does not exist ({count} CUDA devices)")]
    Missing {
        spec: experiments::DeviceSpec,
        count: i64,
    },
}

/// Model inputs that do not fit the model or the task.
#[derive(Debug, thiserror::Error)]
pub enum InputError {
    #[error("the {task} objective needs `{field}` in the batch")]
    MissingField { task: String, field: &'static str },
    #[error("this model has no `{head}` head (it is built for another task)")]
    NoHead { head: &'static str },
    #[error("{what} of shape {found:?}: expected {expected}")]
    Shape {
        what: &'static str,
        found: Vec<i64>,
        expected: String,
    },
    #[error("text of {tokens} tokens exceeds the {max_len} positions of `text_max_position_embeddings` = {positions}")]
    TextTooLong {
        tokens: i64,
        max_len: i64,
        positions: i64,
    },
    #[error("token id {id} outside the vocabulary of `vocab_size` = {vocab_size}")]
    TokenId { id: i64, vocab_size: i64 },
    #[error("text batch of {text} and image batch of {image} differ")]
    BatchSizes { text: i64, image: i64 },
    #[error("image token type {index} does not exist (the table has {rows} rows)")]
    TokenType { index: i64, rows: i64 },
    #[error("features were encoded without the expert stacks")]
    NoExperts,
    #[error("unknown objective `{name}`; expected one of {expected}")]
    UnknownObjective { name: String, expected: String },
    #[error("the task computed no loss")]
    NoLoss,
    #[error("a batch without images")]
    NoImages,
    #[error("the training set yields no batch (fewer samples than per_gpu_batchsize?)")]
    EmptyTrainingSet,
}

/// Training checkpoints that cannot be resumed or read.
#[derive(Debug, thiserror::Error)]
pub enum CheckpointError {
    #[error("{}: names {}, which is not a complete checkpoint", pointer.display(), target.display())]
    TornPointer { pointer: PathBuf, target: PathBuf },
    #[error("{}: not a TowerLab loop state: {source}", path.display())]
    State {
        path: PathBuf,
        #[source]
        source: serde_json::Error,
    },
    #[error("{}: {source}", path.display())]
    Tensors {
        path: PathBuf,
        #[source]
        source: tch::TchError,
    },
    #[error("{}: written by run {found}, not {expected}", dir.display())]
    ForeignRun {
        dir: PathBuf,
        found: String,
        expected: String,
    },
    /// The checkpoint's tensors (model or optimiser moments) do not match the model.
    #[error("{}: {what} does not match: {mismatches}", dir.display())]
    Mismatch {
        dir: PathBuf,
        what: &'static str,
        mismatches: Mismatches,
    },
}

pub type Result<T, E = EngineError> = std::result::Result<T, E>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn allocation_failures_become_out_of_memory() {
        for m in [
            "CUDA out of memory. Tried to allocate 2.00 GiB",
            "DefaultCPUAllocator: not enough memory: you tried to allocate 1099511627776 bytes.",
            "[enforce fail at alloc_cpu.cpp:127] err == 0. DefaultCPUAllocator: can't allocate \
             memory: you tried to allocate 137438953472 bytes. Error code 12 (Cannot allocate \
             memory)",
        ] {
            let e = EngineError::from(tch::TchError::Torch(m.into()));
            assert!(e.is_out_of_memory(), "{m}");
            assert!(matches!(e, EngineError::OutOfMemory { .. }));
        }
        let e = EngineError::from(tch::TchError::Torch("shape mismatch".into()));
        assert!(!e.is_out_of_memory());
    }

    #[test]
    fn a_panic_from_an_unwrapped_allocation_failure_is_out_of_memory() {
        let payload: Box<dyn std::any::Any + Send> = Box::new(String::from(
            "called `Result::unwrap()` on an `Err` value: Torch(\"DefaultCPUAllocator: not \
             enough memory: you tried to allocate 8 bytes.\\nException raised from ...\")",
        ));
        let e = EngineError::from_panic(payload.as_ref());
        assert!(e.is_out_of_memory(), "{e}");
        assert_eq!(
            e.to_string(),
            "out of memory: DefaultCPUAllocator: not enough memory: you tried to allocate 8 bytes."
        );
        let other: Box<dyn std::any::Any + Send> = Box::new("index out of range");
        let e = EngineError::from_panic(other.as_ref());
        assert!(!e.is_out_of_memory());
        assert_eq!(e.to_string(), "the engine panicked: index out of range");
    }
}
