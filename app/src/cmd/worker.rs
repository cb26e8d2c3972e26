//! `towerlab worker`: claim queued runs and execute them until stopped (or, with `--once`,
//! until nothing is runnable; with `--run ID`, that one run: what a Slurm task runs).

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use store::RunStatus;

use crate::cli::SlotArgs;
use crate::exit::UserError;
use crate::runner::slurm::{self, TaskEnv};
use crate::runner::worker::{self, Ended, Runner, Slot, Until};
use crate::runner::{self, executor, lookup, Workspace};

#[derive(Debug, clap::Args)]
pub struct WorkerArgs {
    #[command(flatten)]
    pub slots: SlotArgs,
    /// Exit when nothing in the queue is runnable.
    #[arg(long, conflicts_with = "run")]
    pub once: bool,
    /// Claim and execute this run only, then exit (what each task of a Slurm array job runs;
    /// in a Slurm task the run's job and array task ids are recorded, and a signal puts the
    /// run back in the queue to resume instead of cancelling it).
    #[arg(long, value_name = "RUN_ID")]
    pub run: Option<i64>,
    /// Only take runs of this experiment.
    #[arg(long, value_name = "NAME")]
    pub experiment: Option<String>,
}

pub fn run(db: &Path, args: WorkerArgs) -> anyhow::Result<()> {
    let executor = executor::local_executor()?;
    let rt = runner::runtime()?;
    rt.block_on(async move {
        let ws = Workspace::new(db);
        let store = ws.open().await?;
        let devices = executor::local_devices();
        let task = TaskEnv::from_process();
        // In a Slurm task, one run on what the job was given.
        let (jobs, threads) = match (&task, args.run) {
            (Some(t), Some(_)) => (Some(1), args.slots.threads.or(t.cpus)),
            _ => (args.slots.jobs, args.slots.threads),
        };
        let slots = Slot::for_process(jobs, threads, &devices, &executor.engine_version());
        let n = slots.len();
        let mut r = Runner::new(store.clone(), ws.runs_dir.clone(), executor);
        if let Some(name) = &args.experiment {
            r.experiment = Some(lookup::experiment(&store, name).await?.id);
        }
        // A stopped Slurm task's run resumes when the task is requeued or re-submitted.
        r.release_on_stop = task.is_some();
        let runner = Arc::new(r);
        let signal = super::run::watch_ctrl_c(runner.clone());
        runner.ui.println(&format!(
            "worker {} with {n} slot(s) on {} (store {}{})",
            slots[0].worker.id.rsplit_once('/').map_or("", |(w, _)| w),
            devices.join(", "),
            ws.describe(),
            task.as_ref()
                .map_or(String::new(), |t| format!(", Slurm task {}", t.task_name()))
        ));
        if let Some(id) = args.run {
            let result = one_run(&runner, &slots[0], store::RunId(id), task.as_ref()).await;
            store.close().await;
            return finish_one(result?, signal.get().copied(), task.as_ref());
        }
        let until = if args.once {
            Until::QueueEmpty
        } else {
            Until::Stopped
        };
        let ran = worker::serve(runner, slots, until).await?;
        let finished = ran.iter().filter(|r| r.ended == Ended::Finished).count();
        println!(
            "worker done: {} attempt(s), {finished} finished, {} not",
            ran.len(),
            ran.len() - finished
        );
        store.close().await;
        anyhow::Ok(())
    })
}

/// Claims run `id` and executes it. A run still `running` under an earlier attempt of this
/// task (killed before it could say so) is reaped first, by its dead pid on this host or its
/// heartbeat; `None` when the run is not this worker's to execute.
async fn one_run(
    runner: &Runner,
    slot: &Slot,
    id: store::RunId,
    task: Option<&TaskEnv>,
) -> anyhow::Result<Option<(worker::RunResult, RunStatus)>> {
    let store = &runner.store;
    let missing = || {
        anyhow::Error::new(UserError {
            code: 1,
            message: format!("run {id} is not in the store {}", store.path().display()),
        })
    };
    // Before anything refers to it (the Slurm job's row would fail on its foreign key).
    store.run(id).await?.ok_or_else(missing)?;
    if let Some(t) = task {
        store
            .record_slurm_jobs(&[(id, t.array_job_id, t.array_task_id)])
            .await?;
    }
    let deadline = Instant::now() + runner.heartbeat_timeout + Duration::from_secs(15);
    loop {
        worker::reap(runner).await?;
        if let Some(r) = worker::execute_run(runner, slot, id).await? {
            let status = store.run(id).await?.map_or(RunStatus::Queued, |r| r.status);
            return Ok(Some((r, status)));
        }
        let row = store.run(id).await?.ok_or_else(missing)?;
        let waiting = match row.status {
            // An earlier attempt that has not been reaped yet.
            RunStatus::Running => true,
            RunStatus::Queued => match row.depends_on {
                Some(dep) => {
                    let d = store.run(dep).await?;
                    anyhow::bail!(UserError {
                        code: 1,
                        message: format!(
                            "run {id} waits for pre-training run {dep}, which is {}: not started",
                            d.map_or("gone".to_string(), |d| d.status.to_string())
                        ),
                    })
                }
                None => true,
            },
            ended => {
                println!("run {id} ({}) is {ended}: nothing to do", row.cell_key);
                return Ok(None);
            }
        };
        if !waiting || runner.stopping.load(std::sync::atomic::Ordering::SeqCst) {
            return Ok(None);
        }
        if Instant::now() > deadline {
            anyhow::bail!(UserError {
                code: 1,
                message: format!(
                    "run {id} ({}) is still {} under worker {} after {} s: not started",
                    row.cell_key,
                    row.status,
                    row.worker.as_deref().unwrap_or("?"),
                    (runner.heartbeat_timeout + Duration::from_secs(15)).as_secs()
                ),
            });
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
}

/// The exit of `worker --run`: 0 when the run finished (or had nothing to do), 128+signal when
/// a signal stopped it (after Slurm's warning, the task requeues itself to resume), 1 when it
/// failed, so `afterok` dependents start only after a finished run.
fn finish_one(
    result: Option<(worker::RunResult, RunStatus)>,
    signal: Option<u8>,
    task: Option<&TaskEnv>,
) -> anyhow::Result<()> {
    let Some((r, status)) = result else {
        return match signal {
            Some(code) => Err(anyhow::Error::new(UserError {
                code,
                message: "stopped before the run started".into(),
            })),
            None => Ok(()),
        };
    };
    if r.ended == Ended::Released && signal == Some(138) {
        if let Some(t) = task {
            // The warning before a time limit or preemption: back in Slurm's queue too.
            match slurm::requeue_self(t) {
                Ok(()) => println!(
                    "requeued Slurm task {} to resume run {}",
                    t.task_name(),
                    r.run_id
                ),
                Err(e) => eprintln!(
                    "warning: could not requeue Slurm task {}: {e}",
                    t.task_name()
                ),
            }
        }
    }
    match (status, signal) {
        (RunStatus::Finished, _) => Ok(()),
        (_, Some(code)) => Err(anyhow::Error::new(UserError {
            code,
            message: format!("run {} stopped at step {} ({status})", r.run_id, r.step),
        })),
        _ => Err(anyhow::Error::new(UserError {
            code: 1,
            message: format!("run {} ended {status}", r.run_id),
        })),
    }
}
