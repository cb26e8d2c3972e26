//! `towerlab run FILE --executor slurm`: queue the plan's missing cells as a local run does, then
//! submit the queued runs as Slurm array jobs (see [`crate::runner::slurm`]). Returns once
//! submitted; with `--wait`, follows the grid to its end (re-submitting runs whose task died,
//! as the retry policy allows) and prints the results table a local run prints.

use std::collections::{BTreeSet, HashMap};
use std::path::Path;
use std::time::Duration;

use experiments::{Cell, ExecutorSpec, Experiment};
use store::{FailOutcome, RunFilter, RunRow, RunStatus, Store};

use crate::exit::UserError;
use crate::runner::slurm::{self, Submitted};
use crate::runner::{self, plan, Workspace};

pub fn apply(
    db: &Path,
    exp: &Experiment,
    source: &str,
    cells: &[Cell],
    spec: &ExecutorSpec,
    wait: bool,
) -> anyhow::Result<()> {
    // Before anything is queued: a machine without Slurm says so and changes nothing.
    slurm::check_available()?;
    let rt = runner::runtime()?;
    rt.block_on(async move {
        let ws = Workspace::new(db);
        let store = ws.open().await?;
        let (plan, report) = plan::plan_and_queue(&store, exp, source, cells.to_vec()).await?;
        print!("{}", super::queue::describe(&report, plan.rows.len()));
        let Some(row) = store.experiment_by_name(&exp.name).await? else {
            println!(
                "nothing to run: all {} cells of {} are done or failed",
                plan.rows.len(),
                exp.name
            );
            store.close().await;
            return Ok(());
        };
        let hashes: BTreeSet<String> = cells
            .iter()
            .map(|c| c.identity.as_str().to_string())
            .collect();
        let policy = store::RetryPolicy::default();
        // Runs whose earlier task died without saying so go back in the queue first.
        let runs = plan_runs(&store, row.id, &hashes).await?;
        report_reaped(
            &slurm::reap_dead_tasks(&store, &runs, &policy).await?,
            &runs,
        );
        let sub = slurm::submit_queued(
            &store,
            row.id,
            &hashes,
            spec,
            &exp.name,
            &ws.db,
            &ws.runs_dir,
        )
        .await?;
        print_submitted(&sub, spec);
        if !wait {
            let pending = plan_runs(&store, row.id, &hashes)
                .await?
                .iter()
                .filter(|r| matches!(r.status, RunStatus::Queued | RunStatus::Running))
                .count();
            if pending == 0 {
                println!(
                    "nothing to run: all {} cells of {} are done or failed",
                    plan.rows.len(),
                    exp.name
                );
            } else {
                println!(
                    "follow with `towerlab ls --experiment {}` (Slurm states beside TowerLab's) or \
                     `squeue`; each run logs to <run dir>/slurm-<job>_<task>.log",
                    exp.name
                );
            }
            store.close().await;
            return Ok(());
        }
        follow(&store, &ws, exp, row.id, &hashes, spec, &policy).await?;
        let c = super::run::print_results(&store, &ws, exp, cells).await?;
        store.close().await;
        super::run::sweep_outcome(None, &c)
    })
}

async fn plan_runs(
    store: &Store,
    experiment: store::ExperimentId,
    hashes: &BTreeSet<String>,
) -> anyhow::Result<Vec<RunRow>> {
    Ok(store
        .list_runs(&RunFilter {
            experiment: Some(experiment),
            ..RunFilter::default()
        })
        .await?
        .into_iter()
        .filter(|r| hashes.contains(&r.hash))
        .collect())
}

fn print_submitted(sub: &Submitted, spec: &ExecutorSpec) {
    for slurm::SubmittedJob {
        job_id: job,
        runs,
        after,
    } in &sub.jobs
    {
        let throttle = spec
            .throttle
            .map_or(String::new(), |t| format!(", at most {t} at once"));
        let after = if after.is_empty() {
            String::new()
        } else {
            format!(", after {} (pre-training)", after.join(", "))
        };
        println!(
            "submitted Slurm job {job}: {} run(s){throttle}{after}",
            runs.len()
        );
        for (task, (run, cell)) in runs.iter().enumerate() {
            println!("  {job}_{task}  run {run}  {cell}");
        }
    }
    if sub.live > 0 {
        println!(
            "{} queued run(s) already have a pending or running Slurm task",
            sub.live
        );
    }
}

fn report_reaped(reaped: &[(store::RunId, FailOutcome)], runs: &[RunRow]) {
    let cells: HashMap<store::RunId, &str> =
        runs.iter().map(|r| (r.id, r.cell_key.as_str())).collect();
    for (run, outcome) in reaped {
        let what = match outcome {
            FailOutcome::Requeued { .. } => "re-queued to resume from its last checkpoint",
            FailOutcome::Ended(_) => "out of retries",
        };
        println!(
            "crashed   run {run} {}: its Slurm task ended while it ran; {what}",
            cells.get(run).copied().unwrap_or("")
        );
    }
}

/// Polls the store and squeue until no run of the plan is queued or running. Runs whose task
/// died are reaped and re-submitted as the retry policy allows; queued runs that no task will
/// ever take (their job was `scancel`ed) end the wait with a message.
async fn follow(
    store: &Store,
    ws: &Workspace,
    exp: &Experiment,
    experiment: store::ExperimentId,
    hashes: &BTreeSet<String>,
    spec: &ExecutorSpec,
    policy: &store::RetryPolicy,
) -> anyhow::Result<()> {
    let mut last = String::new();
    let mut orphaned_polls = 0;
    loop {
        tokio::time::sleep(Duration::from_secs(2)).await;
        let runs = plan_runs(store, experiment, hashes).await?;
        let count = |s: RunStatus| runs.iter().filter(|r| r.status == s).count();
        let (queued, running) = (count(RunStatus::Queued), count(RunStatus::Running));
        let line = format!(
            "{} finished, {running} running, {queued} queued, {} failed, {} cancelled",
            count(RunStatus::Finished),
            count(RunStatus::Failed) + count(RunStatus::Crashed),
            count(RunStatus::Cancelled)
        );
        if line != last {
            println!("{line}");
            last = line;
        }
        if queued + running == 0 {
            return Ok(());
        }
        let reaped = slurm::reap_dead_tasks(store, &runs, policy).await?;
        report_reaped(&reaped, &runs);
        if reaped
            .iter()
            .any(|(_, o)| matches!(o, FailOutcome::Requeued { .. }))
        {
            let sub = slurm::submit_queued(
                store,
                experiment,
                hashes,
                spec,
                &exp.name,
                &ws.db,
                &ws.runs_dir,
            )
            .await?;
            print_submitted(&sub, spec);
            continue;
        }
        // Queued runs no live task holds: nobody will run them.
        let ids: Vec<store::RunId> = runs
            .iter()
            .filter(|r| r.status == RunStatus::Queued)
            .map(|r| r.id)
            .collect();
        let (jobs, states) = slurm::jobs_with_states(store, &ids).await?;
        let states = states?;
        let orphans = ids
            .iter()
            .filter(|id| {
                jobs.get(id)
                    .and_then(|j| states.get(&j.task_name()))
                    .is_none_or(|s| !s.live())
            })
            .count();
        orphaned_polls = if orphans > 0 && running == 0 {
            orphaned_polls + 1
        } else {
            0
        };
        if orphaned_polls >= 3 {
            anyhow::bail!(UserError {
                code: 1,
                message: format!(
                    "{orphans} run(s) of {} are queued but no Slurm task holds them (their job was \
                     cancelled?): run the same command again to submit them",
                    exp.name
                ),
            });
        }
    }
}
