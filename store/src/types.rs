//! Identifiers, the artifact kinds and the retry policy.

use std::fmt;

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

/// A string column held an unknown value (a file written by a different TowerLab, or edited by
/// hand). The run vocabulary itself (status, failure class, goal) is the domain's, in
/// `experiments::run`; its text is what the columns hold.
pub use ::experiments::run::{FailureClass, Goal, RunStatus, UnknownValue};

use ::experiments::text_enum;

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
    fn artifact_kinds_round_trip_as_stored() {
        for k in ArtifactKind::ALL {
            assert_eq!(k.as_str().parse::<ArtifactKind>().unwrap(), *k);
        }
        let err = "movie".parse::<ArtifactKind>().unwrap_err();
        assert!(err.to_string().contains("checkpoint"), "{err}");
    }
}
