-- The Slurm jobs runs were submitted as: one row per submission (a run re-submitted after a
-- `scancel` or a failure gets a new job), the newest row is the run's current job. A task of an
-- array job is `<job_id>_<array_task_id>`, as squeue and scontrol name it.
CREATE TABLE slurm_jobs (
    run_id        INTEGER NOT NULL REFERENCES runs(id) ON DELETE CASCADE,
    job_id        INTEGER NOT NULL,
    array_task_id INTEGER NOT NULL,
    submitted_ms  INTEGER NOT NULL,
    PRIMARY KEY (run_id, job_id, array_task_id)
) WITHOUT ROWID;
CREATE INDEX slurm_jobs_by_job ON slurm_jobs (job_id, array_task_id);
