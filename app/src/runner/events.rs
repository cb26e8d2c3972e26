//! What an executor reports about the run it executes, independent of the engine's own types
//! (the app also builds without the engine, and other executors — Slurm — report the same).

use std::path::PathBuf;

use store::FailureClass;

/// One manager aggregation weight (see `engine::train::events::ManagerWeight`): `expert >= 0`
/// is a uni-modal expert, `-k` the raw weight on the k-th previous cross-modal output.
#[derive(Debug, Clone, PartialEq)]
pub struct ManagerWeight {
    pub modality: &'static str,
    pub layer: u32,
    pub expert: i64,
    pub weight: f64,
}

/// Events of one attempt, in order: `Started`, any number of the others, then at most one of
/// `Finished` / `Cancelled` / `Failed` (an executor that was killed sends none).
#[derive(Debug, Clone, PartialEq)]
pub enum RunEvent {
    Started {
        total_steps: u64,
        device: String,
        resumed_at: Option<u64>,
    },
    /// Training metrics of one optimiser step.
    Step {
        step: u64,
        metrics: Vec<(String, f64)>,
    },
    /// Evaluation metrics.
    Eval {
        step: u64,
        metrics: Vec<(String, f64)>,
    },
    ManagerWeights {
        step: u64,
        weights: Vec<ManagerWeight>,
    },
    /// A complete checkpoint was written (the run resumes from the latest one).
    Checkpoint {
        step: u64,
        path: PathBuf,
    },
    /// Test-set predictions were written (VQA's submission file).
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
    /// Stopped on request after its last checkpoint (it resumes from there).
    Cancelled {
        step: u64,
    },
    Failed {
        step: u64,
        class: FailureClass,
        message: String,
    },
}

/// How an attempt ended, as the executor returns it.
#[derive(Debug, Clone, PartialEq)]
pub enum Outcome {
    Finished {
        step: u64,
    },
    /// Stopped because the cancel flag was set (after writing a checkpoint).
    Cancelled {
        step: u64,
    },
    Failed {
        step: u64,
        class: FailureClass,
        message: String,
    },
}
