//! Identifiers and the closed vocabularies (status, failure class, goal, artifact kind).

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// Row id of a run (`runs.id`).
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize, sqlx::Type,
)]
#[sqlx(transparent)]
#[serde(transparent)]
pub struct RunId(pub i64);

/// Row id of an experiment (`experiments.id`).
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize, sqlx::Type,
)]
#[sqlx(transparent)]
#[serde(transparent)]
pub struct ExperimentId(pub i64);

impl fmt::Display for RunId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

impl fmt::Display for ExperimentId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

/// A string column held an unknown value (a file written by a different TowerLab, or edited by hand).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown {what} {value:?} (expected one of: {expected})")]
pub struct UnknownValue {
    pub what: &'static str,
    pub value: String,
    pub expected: &'static str,
}

macro_rules! text_enum {
    ($(#[$meta:meta])* $name:ident, $what:literal, { $($(#[$vmeta:meta])* $variant:ident => $text:literal),+ $(,)? }) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
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

        impl FromStr for $name {
            type Err = UnknownValue;

            fn from_str(s: &str) -> Result<Self, Self::Err> {
                match s {
                    $($text => Ok($name::$variant),)+
                    _ => Err(UnknownValue {
                        what: $what,
                        value: s.to_owned(),
                        expected: concat!($($text, " "),+),
                    }),
                }
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
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
        /// Failed and out of retries (see `failure_class`).
        Failed => "failed",
        /// Its worker stopped sending heartbeats (or died) and it is out of retries.
        Crashed => "crashed",
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
}

text_enum!(
    /// Why an attempt of a run failed.
    FailureClass, "failure class", {
        /// A loss or metric became NaN/inf.
        Nan => "nan",
        /// Out of (GPU or host) memory.
        Oom => "oom",
        /// Any other error reported by the engine.
        Error => "error",
        /// The worker was killed or vanished (no heartbeat).
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

text_enum!(
    /// What an artifact file is.
    ArtifactKind, "artifact kind", {
        Checkpoint => "checkpoint",
        Log => "log",
        Figure => "figure",
        /// Model outputs on a test set, e.g. VQA's submission file.
        Predictions => "predictions",
    }
);

/// How many attempts a run gets per failure class before it stays failed/crashed.
///
/// `max_attempts` counts every attempt, the first included: 1 means "never retry".
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct RetryPolicy {
    pub nan: u32,
    pub oom: u32,
    pub error: u32,
    pub killed: u32,
}

impl Default for RetryPolicy {
    /// NaN and plain errors are deterministic for a fixed config, so they are not retried; an OOM
    /// may come from another process sharing the GPU, and a killed worker (pre-emption, lost node)
    /// is the case retries exist for.
    fn default() -> Self {
        RetryPolicy {
            nan: 1,
            oom: 2,
            error: 1,
            killed: 3,
        }
    }
}

impl RetryPolicy {
    /// A policy that never retries.
    pub fn never() -> Self {
        RetryPolicy {
            nan: 1,
            oom: 1,
            error: 1,
            killed: 1,
        }
    }

    pub fn max_attempts(&self, class: FailureClass) -> u32 {
        match class {
            FailureClass::Nan => self.nan,
            FailureClass::Oom => self.oom,
            FailureClass::Error => self.error,
            FailureClass::Killed => self.killed,
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
        }
        for c in FailureClass::ALL {
            assert_eq!(c.as_str().parse::<FailureClass>().unwrap(), *c);
        }
        let err = "exploded".parse::<RunStatus>().unwrap_err();
        assert_eq!(err.value, "exploded");
        assert!(err.to_string().contains("queued"), "{err}");
    }

    #[test]
    fn terminal_statuses() {
        assert!(!RunStatus::Queued.is_terminal());
        assert!(!RunStatus::Running.is_terminal());
        assert!(RunStatus::Crashed.is_terminal());
    }
}
