//! What a training run reports to its caller, through a channel. The engine never stores
//! anything itself: the runner turns these events into store writes.

use std::path::PathBuf;

/// Why a run failed, as the store and the retry policy classify it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum FailureClass {
    /// The loss became NaN or infinite.
    Nan,
    /// The device ran out of memory.
    Oom,
    /// Any other error (bad data, a bug).
    Error,
    /// The process was stopped from outside (signal, cancel).
    Killed,
}

impl FailureClass {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Nan => "nan",
            Self::Oom => "oom",
            Self::Error => "error",
            Self::Killed => "killed",
        }
    }

    /// The class of an engine error, from its type: allocation failures are `oom`.
    pub fn of(e: &crate::EngineError) -> Self {
        if e.is_out_of_memory() {
            Self::Oom
        } else {
            Self::Error
        }
    }
}

/// Which tower a manager belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Modality {
    Text,
    Image,
}

impl Modality {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Text => "text",
            Self::Image => "image",
        }
    }
}

/// One aggregation weight of the manager of cross-modal `layer` (0-based).
///
/// `expert >= 0`: the softmaxed weight of a uni-modal expert, 0 being the lowest managed
/// encoder layer. `expert < 0`: the raw (un-softmaxed) weight on a previous cross-modal output,
/// -1 for the immediately previous layer, -k for the k-th previous (SAE has several).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ManagerWeight {
    pub modality: Modality,
    pub layer: u32,
    pub expert: i64,
    pub weight: f64,
}

/// Events of one run, in order: `Started`, then any number of the others, then exactly one
/// of `Finished` or `Failed`.
#[derive(Debug, Clone, PartialEq)]
pub enum Event {
    Started {
        total_steps: u64,
        device: String,
        /// The optimiser step the run resumed from, when it resumed from a checkpoint.
        resumed_at: Option<u64>,
    },
    /// Training metrics of one optimiser step (`train/...` keys and the learning rates).
    Step {
        step: u64,
        metrics: Vec<(String, f64)>,
    },
    /// Evaluation metrics (`val/...`, `test/...`, `val/the_metric`).
    Eval {
        step: u64,
        metrics: Vec<(String, f64)>,
    },
    ManagerWeights {
        step: u64,
        weights: Vec<ManagerWeight>,
    },
    Checkpoint {
        step: u64,
        path: PathBuf,
    },
    /// Test-set predictions written (VQA's submission file), by the checkpoint of `step`.
    Predictions {
        step: u64,
        path: PathBuf,
        count: usize,
    },
    Log {
        message: String,
    },
    Finished {
        step: u64,
    },
    /// Stopped on request (the cancel flag) after its last checkpoint: not a failure.
    Cancelled {
        step: u64,
    },
    Failed {
        step: u64,
        class: FailureClass,
        message: String,
    },
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn oom_is_recognised_from_the_error_type() {
        let oom = crate::EngineError::from(tch::TchError::Torch(
            "CUDA out of memory. Tried to allocate 2.00 GiB".into(),
        ));
        assert_eq!(FailureClass::of(&oom), FailureClass::Oom);
        let other = crate::EngineError::from(crate::InputError::NoLoss);
        assert_eq!(FailureClass::of(&other), FailureClass::Error);
    }
}
