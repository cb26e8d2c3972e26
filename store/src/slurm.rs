//! The Slurm jobs runs were submitted as (job and array task ids), beside the runs themselves:
//! the scheduler's view of a run, for `ls`, `show` and `cancel`.

use serde::Serialize;
use sqlx::FromRow;

use crate::types::RunId;

/// One submission of a run: task `array_task_id` of the array job `job_id`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, FromRow)]
pub struct SlurmJob {
    pub run_id: RunId,
    pub job_id: i64,
    pub array_task_id: i64,
    pub submitted_ms: i64,
}

impl SlurmJob {
    /// `<job>_<task>`, as `squeue`, `scontrol` and `scancel` name an array task.
    pub fn task_name(&self) -> String {
        format!("{}_{}", self.job_id, self.array_task_id)
    }
}
