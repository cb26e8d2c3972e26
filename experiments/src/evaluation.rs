//! Scoring a checkpoint (the reference's `test_only`): the eval cells of an experiment file
//! (`[[eval]]`) and the one cell of `towerlab eval`. An eval cell is a run like any other (it
//! is stored, reported, shown and synced as one), whose identity hashes the weights' content
//! and the split besides the settings and the data.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use crate::grid::{Assignment, CellKey};
use crate::layering::Sources;
use crate::settings::{Settings, Task};

/// Which tables an eval scores.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum EvalSplit {
    /// The validation pass of training (`val_tables`; NLVR2 and SNLI-VE also score their test
    /// table in it, as the reference does), logged as `val/...`.
    Val,
    /// The test tables (`test_tables`), logged as `test/...` (NLVR2 and SNLI-VE tell dev from
    /// test by table name here too: their reference test tables are dev + test); VQA's answers
    /// go to `vqa_submit.json` for the evaluation server.
    Test,
}

impl EvalSplit {
    pub const NAMES: [&'static str; 2] = ["val", "test"];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Val => "val",
            Self::Test => "test",
        }
    }

    pub fn from_name(name: &str) -> Option<Self> {
        match name {
            "val" => Some(Self::Val),
            "test" => Some(Self::Test),
            _ => None,
        }
    }
}

/// What an eval cell scores.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct EvalTarget {
    /// A TowerLab checkpoint (step folder, run folder or its `model.safetensors`), a reference
    /// Lightning `.ckpt`, a torch `.pt`/`.bin`, a `.safetensors` file or a Hugging Face folder.
    pub weights: PathBuf,
    pub split: EvalSplit,
    /// Settings keys chosen by the file or the command line (not the preset or the recipe):
    /// the engine reads the others that the weights determine (sizes, fusion, heads) from them.
    pub explicit: Vec<String>,
}

/// An eval cell before its identity is known.
#[derive(Debug, Clone, PartialEq)]
pub struct ResolvedEval {
    /// The entry's name (`[[eval]] name`), unique in the file.
    pub name: String,
    /// `eval[<name>]`.
    pub key: CellKey,
    /// The grid's axes as the eval's settings have them, plus `eval = <name>`: the row it
    /// makes in the experiment's tables.
    pub axes: Assignment,
    pub settings: Settings,
    pub sources: Sources,
    pub recipe: Option<&'static str>,
    pub target: EvalTarget,
}

/// The metric an eval of `task` is summarised by: the task's main number on the split (VQA
/// score, NLVR2 / SNLI-VE dev accuracy, retrieval `r_mean`), as `the_metric` sums it.
pub fn main_metric(task: Task, split: EvalSplit) -> String {
    let s = split.as_str();
    match task {
        Task::Vqa if split == EvalSplit::Val => format!("{s}/vqa/score_epoch"),
        Task::Nlvr2 => format!("{s}/nlvr2/accuracy_epoch"),
        Task::Snli => format!("{s}/snli/accuracy_epoch"),
        Task::Irtr => format!("{s}/r_mean"),
        Task::Vqa | Task::Pretrain => format!("{s}/the_metric"),
    }
}
