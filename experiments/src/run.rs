//! The run vocabulary every crate speaks: where a run is in its life, why an attempt failed,
//! which way a metric improves, where a plan's cell stands, and what a training run reports
//! (its events and its outcome). One definition each: the store keeps these as text, the
//! engine sends them, reports, the TUI and W&B show them.

use std::fmt;
use std::path::PathBuf;
use std::time::Duration;

use serde::{Deserialize, Serialize};

/// A text value named none of an enum's values (a store written by another TowerLab, or edited
/// by hand; a typed filter).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown {what} {value:?} (expected one of: {expected})")]
pub struct UnknownValue {
    pub what: &'static str,
    pub value: String,
    pub expected: &'static str,
}

/// A closed vocabulary with one text per value: `as_str`, `FromStr` (errors are
/// [`UnknownValue`]), `Display`, `ALL` and serde, all on the same lowercase text.
#[macro_export]
macro_rules! text_enum {
    ($(#[$meta:meta])* $name:ident, $what:literal, { $($(#[$vmeta:meta])* $variant:ident => $text:literal),+ $(,)? }) => {
        $(#[$meta])*
        #[derive(
            Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord,
            ::serde::Serialize, ::serde::Deserialize,
        )]
        #[serde(rename_all = "lowercase")]
        pub enum $name {
            $($(#[$vmeta])* $variant),+
        }

        impl $name {
            /// Every value, in declaration order.
            pub const ALL: &'static [$name] = &[$($name::$variant),+];

            /// The text stored in the database (and shown to users).
            pub fn as_str(self) -> &'static str {
                match self {
                    $($name::$variant => $text),+
                }
            }
        }

        impl ::std::str::FromStr for $name {
            type Err = $crate::run::UnknownValue;

            fn from_str(s: &str) -> ::std::result::Result<Self, Self::Err> {
                match s {
                    $($text => Ok($name::$variant),)+
                    _ => Err($crate::run::UnknownValue {
                        what: $what,
                        value: s.to_owned(),
                        expected: concat!($($text, " "),+),
                    }),
                }
            }
        }

        impl ::std::fmt::Display for $name {
            fn fmt(&self, f: &mut ::std::fmt::Formatter<'_>) -> ::std::fmt::Result {
                f.write_str(self.as_str())
            }
        }
    };
}

text_enum!(
    /// Where a run is in its life.
    RunStatus, "run status", {
        /// Waiting for a worker (possibly for its dependency to finish first).
        Queued => "queued",
        /// Claimed by a worker that sends heartbeats.
        Running => "running",
        Finished => "finished",
        /// Failed and out of retries (see its failure class).
        Failed => "failed",
        /// Its worker stopped sending heartbeats (or died) and it is out of retries.
        Crashed => "crashed",
        /// Stopped on request (Ctrl-C, `towerlab cancel`); it resumes from its last checkpoint.
        Cancelled => "cancelled",
    }
);

impl RunStatus {
    /// Whether the run has ended for good (until someone re-queues it).
    pub fn is_terminal(self) -> bool {
        matches!(
            self,
            RunStatus::Finished | RunStatus::Failed | RunStatus::Crashed | RunStatus::Cancelled
        )
    }

    /// A failed or crashed run can be retried.
    pub fn is_failure(self) -> bool {
        matches!(self, RunStatus::Failed | RunStatus::Crashed)
    }
}

text_enum!(
    /// Why an attempt of a run failed, as the store and the retry policy classify it.
    FailureClass, "failure class", {
        /// A loss or metric became NaN/inf.
        Nan => "nan",
        /// Out of (GPU or host) memory.
        Oom => "oom",
        /// Any other error (bad data, a bug).
        Error => "error",
        /// The worker was killed or vanished (signal, no heartbeat).
        Killed => "killed",
    }
);

text_enum!(
    /// Which direction is better for a metric; decides `best` in its summary.
    Goal, "metric goal", {
        Minimize => "minimize",
        Maximize => "maximize",
    }
);

impl Goal {
    /// Is `a` strictly better than `b`?
    pub fn better(self, a: f64, b: f64) -> bool {
        match self {
            Goal::Maximize => a > b,
            Goal::Minimize => a < b,
        }
    }
}

text_enum!(
    /// Which tower a manager belongs to.
    Modality, "modality", {
        Text => "text",
        Image => "image",
    }
);

/// Where a cell of a plan stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum CellState {
    /// No run of this cell exists.
    New,
    /// A run with this identity finished.
    Done,
    /// A run with this identity failed or crashed.
    Failed,
    Running,
    Queued,
    /// A run exists for this cell key and seed, but with another identity (the file's config,
    /// data or engine changed since): queueing runs it again with the new identity.
    Stale,
    /// A run with this identity was cancelled; `queue`/`run` resume it.
    Cancelled,
    /// Running, but its worker stopped sending heartbeats (it will be reaped and resumed).
    Unresponsive,
}

impl CellState {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::New => "new",
            Self::Done => "done",
            Self::Failed => "failed",
            Self::Running => "running",
            Self::Queued => "queued",
            Self::Stale => "stale",
            Self::Cancelled => "cancelled",
            Self::Unresponsive => "no heartbeat",
        }
    }
}

impl fmt::Display for CellState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// How long a running run's worker may be silent before its cell shows as unresponsive.
pub const UNRESPONSIVE_AFTER: Duration = Duration::from_secs(60);

/// Where a cell stands, the one rule for `plan`, the Sweeps view and every other view of cells.
///
/// `planned`: what the plan made of the cell before looking at a run's status, `None` where
/// no plan is made (a view of stored runs only, or the planner for an identity that has a
/// run). `New` and `Stale` win over `status`: the status is then not this identity's. `status`
/// is that of the run that speaks for the cell's identity, `heartbeat_age` the time since its
/// worker was last heard from: a running cell silent for longer than [`UNRESPONSIVE_AFTER`]
/// is [`CellState::Unresponsive`]. A failed or crashed run is a failed cell; a cancelled one
/// stays cancelled (it resumes).
pub fn cell_state(
    planned: Option<CellState>,
    status: Option<RunStatus>,
    heartbeat_age: Option<Duration>,
) -> CellState {
    let state = match (planned, status) {
        (Some(p @ (CellState::New | CellState::Stale)), _) => p,
        (_, Some(s)) => match s {
            RunStatus::Queued => CellState::Queued,
            RunStatus::Running => CellState::Running,
            RunStatus::Finished => CellState::Done,
            RunStatus::Failed | RunStatus::Crashed => CellState::Failed,
            RunStatus::Cancelled => CellState::Cancelled,
        },
        (Some(p), None) => p,
        (None, None) => CellState::New,
    };
    let silent = heartbeat_age.is_some_and(|age| age > UNRESPONSIVE_AFTER);
    match state {
        CellState::Running if silent => CellState::Unresponsive,
        other => other,
    }
}

/// The heartbeat age of a run at `now_ms`, from its last heartbeat (epoch milliseconds).
pub fn heartbeat_age(heartbeat_ms: Option<i64>, now_ms: i64) -> Option<Duration> {
    heartbeat_ms.map(|h| Duration::from_millis(u64::try_from(now_ms - h).unwrap_or(0)))
}

/// One aggregation weight of the manager of cross-modal `layer` (0-based).
///
/// `expert >= 0`: the softmaxed weight of a uni-modal expert, 0 being the lowest managed
/// encoder layer. `expert < 0`: the raw (un-softmaxed) weight on a previous cross-modal output,
/// -1 for the immediately previous layer, -k for the k-th previous (SAE has several).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct ManagerWeight {
    pub modality: Modality,
    pub layer: u32,
    pub expert: i64,
    pub weight: f64,
}

/// What a run reports to its caller, in order: `Started`, then any number of the others, then
/// at most one of `Finished`, `Cancelled` or `Failed` (an executor that was killed sends none).
/// The engine sends them on a channel; the runner turns them into store writes.
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
    /// System metrics (`system/...`: memory, CPU, GPU), sampled every few seconds off the
    /// step's path and tagged with the latest optimiser step done.
    System {
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
    /// A complete checkpoint was written (the run resumes from the latest one).
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

/// How an attempt of a run ended.
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

impl Outcome {
    /// The event that ends the run's stream of events.
    pub fn to_event(&self) -> Event {
        match self {
            Outcome::Finished { step } => Event::Finished { step: *step },
            Outcome::Cancelled { step } => Event::Cancelled { step: *step },
            Outcome::Failed {
                step,
                class,
                message,
            } => Event::Failed {
                step: *step,
                class: *class,
                message: message.clone(),
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_enums_round_trip_and_reject_unknown_values() {
        for s in RunStatus::ALL {
            assert_eq!(s.as_str().parse::<RunStatus>().unwrap(), *s);
            assert_eq!(
                serde_json::to_value(s).unwrap(),
                serde_json::json!(s.as_str())
            );
        }
        for c in FailureClass::ALL {
            assert_eq!(c.as_str().parse::<FailureClass>().unwrap(), *c);
        }
        for g in Goal::ALL {
            assert_eq!(g.as_str().parse::<Goal>().unwrap(), *g);
        }
        for m in Modality::ALL {
            assert_eq!(m.as_str().parse::<Modality>().unwrap(), *m);
        }
        let err = "exploded".parse::<RunStatus>().unwrap_err();
        assert_eq!(err.value, "exploded");
        assert!(err.to_string().contains("queued"), "{err}");
    }

    #[test]
    fn terminal_and_failed_statuses() {
        assert!(!RunStatus::Queued.is_terminal());
        assert!(!RunStatus::Running.is_terminal());
        assert!(RunStatus::Crashed.is_terminal());
        assert!(RunStatus::Cancelled.is_terminal());
        assert!(RunStatus::Crashed.is_failure());
        assert!(!RunStatus::Cancelled.is_failure());
    }

    #[test]
    fn a_cancelled_run_is_a_cancelled_cell_and_a_crashed_one_a_failed_cell() {
        assert_eq!(
            cell_state(None, Some(RunStatus::Cancelled), None),
            CellState::Cancelled
        );
        assert_eq!(
            cell_state(None, Some(RunStatus::Crashed), None),
            CellState::Failed
        );
        assert_eq!(
            cell_state(Some(CellState::Cancelled), Some(RunStatus::Cancelled), None),
            CellState::Cancelled
        );
    }

    #[test]
    fn the_plan_decides_new_and_stale_cells_and_heartbeats_decide_running_ones() {
        let silent = Some(UNRESPONSIVE_AFTER + Duration::from_secs(1));
        let fresh = Some(Duration::from_secs(1));
        // A stale cell's stored run is of another identity: its status says nothing.
        assert_eq!(
            cell_state(Some(CellState::Stale), Some(RunStatus::Running), silent),
            CellState::Stale
        );
        assert_eq!(cell_state(None, None, None), CellState::New);
        assert_eq!(
            cell_state(Some(CellState::Running), Some(RunStatus::Running), fresh),
            CellState::Running
        );
        assert_eq!(
            cell_state(Some(CellState::Running), Some(RunStatus::Running), silent),
            CellState::Unresponsive
        );
        assert_eq!(
            cell_state(None, Some(RunStatus::Running), silent),
            CellState::Unresponsive
        );
        // Only a running cell can be unresponsive.
        assert_eq!(
            cell_state(None, Some(RunStatus::Queued), silent),
            CellState::Queued
        );
        assert_eq!(
            cell_state(Some(CellState::Done), None, None),
            CellState::Done
        );
    }

    #[test]
    fn heartbeat_age_is_never_negative() {
        assert_eq!(heartbeat_age(None, 10), None);
        assert_eq!(
            heartbeat_age(Some(4_000), 10_000),
            Some(Duration::from_secs(6))
        );
        assert_eq!(heartbeat_age(Some(20_000), 10_000), Some(Duration::ZERO));
    }

    #[test]
    fn an_outcome_ends_the_events_with_its_own_kind() {
        let failed = Outcome::Failed {
            step: 3,
            class: FailureClass::Oom,
            message: "out of memory".into(),
        };
        assert_eq!(
            failed.to_event(),
            Event::Failed {
                step: 3,
                class: FailureClass::Oom,
                message: "out of memory".into()
            }
        );
        assert_eq!(
            Outcome::Cancelled { step: 2 }.to_event(),
            Event::Cancelled { step: 2 }
        );
    }
}
