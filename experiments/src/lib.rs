//! Experiment files, grid expansion, run identity and settings.
//!
//! A leaf crate: it links neither libtorch nor SQLite.
//!
//! Reading an experiment: [`Experiment::load`] (or [`Experiment::demo`]) parses the TOML file,
//! checks it against [`Settings`], expands the grid and resolves every run's settings through
//! the layers preset → task recipe ([`recipes`]) → `[base]` → the cell's axes → `TOWERLAB_*` →
//! `--set`; every problem comes
//! back at once in [`ValidationErrors`]. [`Experiment::cells`] then gives the plan's runs with
//! their identities, and [`plan::plan`] compares them with what the store knows.

pub mod answers;
pub mod clock;
pub mod constraints;
pub mod cost;
pub mod device;
pub mod errors;
pub mod evaluation;
pub mod executor;
pub mod experiment;
pub mod experts;
mod file;
pub mod grid;
pub mod identity;
pub mod labels;
pub mod layering;
pub mod paths;
pub mod plan;
pub mod recipes;
pub mod run;
pub mod schema;
pub mod settings;
pub mod shipped;
mod spanned;
pub mod spec;
pub mod text_table;

pub use device::{DeviceSpec, DeviceSpecError};
pub use errors::{Origin, ValidationError, ValidationErrors};
pub use evaluation::{EvalSplit, EvalTarget, ResolvedEval};
pub use executor::{ExecutorKind, ExecutorSpec};
pub use experiment::{
    Cell, EvalRequest, Experiment, MissingExpert, ResolvedRun, Role, DEMO_PATH, DEMO_TOML,
    EVAL_EXPERIMENT,
};
pub use grid::{Assignment, CellKey, Dimension};
pub use identity::{
    data_digest, data_files, data_stamps, expand_table, vqa_answer_count, weights_digest,
    weights_file, DataDigest, IdentityContext, RunId,
};
pub use labels::Labels;
pub use layering::{Overrides, SettingSource, Sources};
pub use plan::{KnownRuns, Plan, PlanRow};
pub use run::{
    cell_state, CellState, Event, FailureClass, Goal, ManagerWeight, Modality, Outcome, RunStatus,
    UnknownValue,
};
pub use settings::{
    DecayPower, ManagerType, ManagerWeightType, Precision, Settings, Split, Task, LOSS_NAMES,
};
pub use spec::{DataSpec, MetricSpec, Summary, WandbSpec};
