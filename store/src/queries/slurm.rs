//! Queries of `slurm` (compiled once per backend).

use std::collections::HashMap;

use crate::error::Result;
use crate::now_ms;
use crate::slurm::SlurmJob;
use crate::types::RunId;

use sqlx::QueryBuilder;

use super::{Backend, Db};

impl Backend<'_> {
    pub(crate) async fn record_slurm_jobs(&self, jobs: &[(RunId, i64, i64)]) -> Result<()> {
        if jobs.is_empty() {
            return Ok(());
        }
        let now = now_ms();
        let mut tx = self.write_tx().await?;
        for &(run, job, task) in jobs {
            sqlx::query(
                "INSERT INTO slurm_jobs (run_id, job_id, array_task_id, submitted_ms) \
                 VALUES ($1, $2, $3, $4) ON CONFLICT DO NOTHING",
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

    pub(crate) async fn slurm_jobs(&self, runs: &[RunId]) -> Result<HashMap<RunId, SlurmJob>> {
        let mut out = HashMap::new();
        for chunk in runs.chunks(500) {
            let mut qb = QueryBuilder::<Db>::new(
                "SELECT run_id, job_id, array_task_id, submitted_ms FROM slurm_jobs \
                 WHERE run_id IN (",
            );
            let mut list = qb.separated(", ");
            for r in chunk {
                list.push_bind(*r);
            }
            qb.push(") ORDER BY submitted_ms, job_id");
            for job in qb.build_query_as::<SlurmJob>().fetch_all(self.pool).await? {
                out.insert(job.run_id, job);
            }
        }
        Ok(out)
    }

    pub(crate) async fn slurm_job_history(&self, run: RunId) -> Result<Vec<SlurmJob>> {
        Ok(sqlx::query_as::<_, SlurmJob>(
            "SELECT run_id, job_id, array_task_id, submitted_ms FROM slurm_jobs \
             WHERE run_id = $1 ORDER BY submitted_ms, job_id",
        )
        .bind(run)
        .fetch_all(self.pool)
        .await?)
    }
}
