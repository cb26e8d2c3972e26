//! The Slurm jobs runs were submitted as (job and array task ids), beside the runs themselves:
//! the scheduler's view of a run, for `ls`, `show` and `cancel`.

use std::collections::HashMap;

use serde::Serialize;
use sqlx::FromRow;

use crate::error::Result;
use crate::types::RunId;
use crate::{now_ms, Store};

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

impl Store {
    /// Records that each run was submitted as `(run, job id, array task id)`. Recording the same
    /// submission again (the task itself does when it starts) changes nothing.
    pub async fn record_slurm_jobs(&self, jobs: &[(RunId, i64, i64)]) -> Result<()> {
        if jobs.is_empty() {
            return Ok(());
        }
        let now = now_ms();
        let mut tx = self.write_tx().await?;
        for &(run, job, task) in jobs {
            sqlx::query(
                "INSERT OR IGNORE INTO slurm_jobs (run_id, job_id, array_task_id, submitted_ms) \
                 VALUES (?1, ?2, ?3, ?4)",
            )
            .bind(run)
            .bind(job)
            .bind(task)
            .bind(now)
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        Ok(())
    }

    /// The newest submission of each of `runs` that has one.
    pub async fn slurm_jobs(&self, runs: &[RunId]) -> Result<HashMap<RunId, SlurmJob>> {
        let mut out = HashMap::new();
        for chunk in runs.chunks(500) {
            let marks = vec!["?"; chunk.len()].join(",");
            let sql = format!(
                "SELECT run_id, job_id, array_task_id, submitted_ms FROM slurm_jobs \
                 WHERE run_id IN ({marks}) ORDER BY submitted_ms, job_id"
            );
            let mut q = sqlx::query_as::<_, SlurmJob>(&sql);
            for r in chunk {
                q = q.bind(*r);
            }
            for job in q.fetch_all(&self.pool).await? {
                out.insert(job.run_id, job);
            }
        }
        Ok(out)
    }

    /// Every submission of `run`, oldest first.
    pub async fn slurm_job_history(&self, run: RunId) -> Result<Vec<SlurmJob>> {
        Ok(sqlx::query_as::<_, SlurmJob>(
            "SELECT run_id, job_id, array_task_id, submitted_ms FROM slurm_jobs \
             WHERE run_id = ?1 ORDER BY submitted_ms, job_id",
        )
        .bind(run)
        .fetch_all(&self.pool)
        .await?)
    }
}
