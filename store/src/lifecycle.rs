//! The life of a run: claim, heartbeat, finish / fail / cancel, crash detection and re-queueing.
//!
//! A claim hands out a [`Lease`] (run id + attempt number). Every later write of that attempt's
//! state checks the lease, so a worker that was presumed dead (and whose run was re-queued and
//! claimed again) cannot overwrite the new attempt: it gets [`StoreError::LeaseLost`].

use serde::Serialize;

use crate::rows::RunRow;
use crate::types::{RunId, RunStatus};

/// Proof that a worker holds attempt `attempt` of run `run_id`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Lease {
    pub run_id: RunId,
    pub attempt: i64,
    pub worker: String,
}

/// A claimed run. When `run.checkpoint_path` is set, the attempt should resume from it
/// (metrics after `run.checkpoint_step` were already dropped by the claim).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Claim {
    pub lease: Lease,
    pub run: RunRow,
}

/// Training progress sent with a heartbeat.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Progress {
    pub step: i64,
    pub total: Option<i64>,
}

/// What the store answers a heartbeat.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum HeartbeatReply {
    Continue,
    /// Someone cancelled the run: stop, then call [`Store::acknowledge_cancel`].
    CancelRequested,
}

/// What became of a failed attempt.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum FailOutcome {
    /// Back in the queue (it will resume from its last checkpoint); `attempts` so far.
    Requeued { attempts: i64 },
    /// Out of retries (or cancelled meanwhile): the run ended with this status.
    Ended(RunStatus),
}

/// What `cancel_runs` did to one run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum CancelOutcome {
    /// It was queued and is now cancelled.
    Cancelled,
    /// It is running; its worker will stop at its next heartbeat.
    Requested,
    /// It had already ended with this status (left alone).
    AlreadyEnded(RunStatus),
    NotFound,
}

/// A running run whose heartbeat stopped.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Reaped {
    pub run_id: RunId,
    pub worker: Option<String>,
    pub host: Option<String>,
    pub pid: Option<i64>,
    pub outcome: FailOutcome,
}

/// id, heartbeat, worker, host, pid of a running run.
pub(crate) type StaleRow = (RunId, i64, Option<String>, Option<String>, Option<i64>);
