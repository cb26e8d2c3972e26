//! `towerlab run FILE`: queue the experiment's missing cells and work on them here until the
//! grid is done, then print the results table and where things were written.

use std::path::Path;
use std::sync::Arc;

use experiments::{CellState, Overrides};

use crate::cli::{ExecutorArgs, PlanArgs, SlotArgs};
use crate::runner::worker::{self, Runner, Slot, Until};
use crate::runner::{self, executor, plan, results, Workspace};
use crate::wandb::tracker;

#[derive(Debug, clap::Args)]
pub struct RunArgs {
    #[command(flatten)]
    pub plan: PlanArgs,
    #[command(flatten)]
    pub slots: SlotArgs,
    #[command(flatten)]
    pub executor: ExecutorArgs,
}

pub fn run(db: &Path, args: RunArgs) -> anyhow::Result<()> {
    apply(
        db,
        Some(args.plan.file.as_path()),
        args.plan.set,
        args.slots,
        &args.executor,
    )
}

/// Queue + a foreground worker for one experiment (`None`: the embedded demo), or, with the
/// Slurm executor, queue + sbatch array jobs.
pub fn apply(
    db: &Path,
    file: Option<&Path>,
    set: Vec<String>,
    slots: SlotArgs,
    flags: &ExecutorArgs,
) -> anyhow::Result<()> {
    let prepared = runner::prepare(file, &Overrides::from_process_env(set), true)?;
    prepared.print_made();
    let runner::Prepared {
        exp, source, cells, ..
    } = prepared;
    let mut spec = exp.executor.clone();
    flags
        .apply(&mut spec)
        .map_err(|message| anyhow::Error::new(crate::exit::UserError { code: 2, message }))?;
    if spec.kind == experiments::ExecutorKind::Slurm {
        return super::run_slurm::apply(db, &exp, &source, &cells, &spec, flags.wait);
    }
    if flags.wait {
        anyhow::bail!(crate::exit::UserError {
            code: 2,
            message: "--wait follows runs submitted to Slurm (`--executor slurm`); a local run \
                      always waits"
                .into(),
        });
    }
    let executor = executor::local_executor()?;
    let rt = runner::runtime()?;
    rt.block_on(async move {
        let ws = Workspace::new(db);
        let store = ws.open().await?;
        let mut stopped: Option<u8> = None;
        let (plan, report) = plan::plan_and_queue(&store, &exp, &source, cells.clone()).await?;
        // What is queued or running now, after this process queued: another `run` of the same
        // file may have queued the cells between our plan and our queueing (then we added
        // nothing, and the plan from before still says "new"). This process joins that work.
        let (now, _) = plan::plan_against(&store, &exp, cells.clone()).await?;
        let pending = now
            .rows
            .iter()
            .filter(|r| matches!(r.state, CellState::Queued | CellState::Running))
            .count();
        if report.added.is_empty() && report.resumed.is_empty() && pending == 0 {
            println!(
                "nothing to run: all {} cells of {} are done or failed",
                plan.rows.len(),
                exp.name
            );
        } else {
            if report.added.is_empty() && report.resumed.is_empty() {
                println!(
                    "{pending} cell(s) of {} are queued or running elsewhere (another `run` or \
                     worker on this store): working on the queued ones here",
                    exp.name
                );
            }
            print!("{}", super::queue::describe(&report, plan.rows.len()));
            let Some(row) = &report.experiment else {
                anyhow::bail!("the experiment {} is not in the store", exp.name);
            };
            let devices = executor::local_devices();
            let slots = Slot::for_process(
                slots.jobs,
                slots.threads,
                &devices,
                &executor.engine_version(),
            );
            let mut r = Runner::new(store.clone(), ws.runs_dir.clone(), executor);
            r.experiment = Some(row.id);
            let todo = report.added.len() + report.resumed.len() + pending;
            r.ui = runner::ui::Ui::new().with_sweep(todo as u64, 0);
            let runner = Arc::new(r);
            let signal = watch_ctrl_c(runner.clone());
            let scope = crate::scope::PlanScope::compute(&store, &exp, cells.clone()).await?;
            let tracker = tracker::TrackerSync::start(&exp, &store, &scope, &cells);
            let ran = worker::serve(runner.clone(), slots, Until::ExperimentDone).await;
            tracker.finish().await;
            let ran = ran?;
            if runner.stopping.load(std::sync::atomic::Ordering::SeqCst) {
                println!(
                    "stopped after {} attempt(s); run the same command again to resume",
                    ran.len()
                );
                // As an interrupted command: 128 + the signal (Ctrl-C 130, SIGTERM 143).
                stopped = Some(signal.get().copied().unwrap_or(130));
            }
        }
        let c = print_results(&store, &ws, &exp, &cells).await?;
        store.close().await;
        sweep_outcome(stopped, &c)
    })
}

/// The end of a sweep: the results table, the plan's counts, and where things are.
pub(crate) async fn print_results(
    store: &store::Store,
    ws: &Workspace,
    exp: &experiments::Experiment,
    cells: &[experiments::Cell],
) -> anyhow::Result<experiments::plan::PlanCounts> {
    let (after, _) = plan::plan_against(store, exp, cells.to_vec()).await?;
    let c = after.counts();
    let table = results::render(results::collect(store, exp, cells).await?.as_ref());
    println!("\n{} — {}", exp.name, exp.path.display());
    print!("{table}");
    println!("{c}");
    println!("store:    {}", ws.describe());
    println!("run dirs: {}/<identity>", ws.runs_dir.display());
    if c.failed > 0 {
        println!("see failures with `towerlab ls --status failed` and `towerlab show RUN`");
    }
    Ok(c)
}

/// The exit of a sweep: success only when every cell is done. Failed or cancelled cells exit
/// with 1; a sweep stopped by a signal exits with `stopped` (130 after Ctrl-C, 143 after
/// SIGTERM), as an interrupted command does: a script or scheduler sees the grid is not done.
pub(crate) fn sweep_outcome(
    stopped: Option<u8>,
    c: &experiments::plan::PlanCounts,
) -> anyhow::Result<()> {
    let message = if let Some(code) = stopped {
        Some((
            code,
            "the sweep was stopped before its grid was done; run the same command again to resume"
                .to_string(),
        ))
    } else if c.failed + c.cancelled > 0 {
        let mut parts = Vec::new();
        if c.failed > 0 {
            parts.push(format!("{} failed", c.failed));
        }
        if c.cancelled > 0 {
            parts.push(format!("{} cancelled", c.cancelled));
        }
        Some((
            1,
            format!(
                "{} of the grid's {} runs did not finish ({}); `towerlab retry --failed` re-queues them",
                c.failed + c.cancelled,
                c.new + c.stale + c.failed + c.done + c.running + c.queued + c.cancelled,
                parts.join(", ")
            ),
        ))
    } else {
        None
    };
    match message {
        Some((code, message)) => Err(anyhow::Error::new(crate::exit::UserError { code, message })),
        None => Ok(()),
    }
}

/// First Ctrl-C, SIGTERM (what Slurm sends on `scancel` and at the time limit) or SIGUSR1
/// (the warning Slurm jobs are submitted with, `--signal=B:USR1@SECONDS`): stop claiming, let
/// active runs checkpoint and stop. A second one aborts at once. The returned cell holds the
/// exit code the first signal stands for (130, 143 or 138) once it came.
pub fn watch_ctrl_c(runner: Arc<Runner>) -> Arc<std::sync::OnceLock<u8>> {
    use tokio::signal::unix::{signal, SignalKind};
    let signalled = Arc::new(std::sync::OnceLock::new());
    let cell = signalled.clone();
    tokio::spawn(async move {
        let (mut term, mut usr1) = match (
            signal(SignalKind::terminate()),
            signal(SignalKind::user_defined1()),
        ) {
            (Ok(t), Ok(u)) => (t, u),
            (Err(e), _) | (_, Err(e)) => {
                tracing::warn!("cannot watch SIGTERM and SIGUSR1: {e}");
                return;
            }
        };
        let first = tokio::select! {
            r = tokio::signal::ctrl_c() => r.ok().map(|()| ("Ctrl-C", 130)),
            s = term.recv() => s.map(|()| ("SIGTERM", 143)),
            s = usr1.recv() => s.map(|()| ("SIGUSR1", 138)),
        };
        let Some((what, code)) = first else { return };
        let _ = cell.set(code);
        eprintln!("stopping ({what}): active runs checkpoint and stop (Ctrl-C again aborts now)");
        runner.stop();
        // Slurm may send the warning and then SIGTERM for the same stop: only a second Ctrl-C
        // or SIGTERM aborts.
        let again = tokio::select! {
            r = tokio::signal::ctrl_c() => r.ok().map(|()| 130),
            s = term.recv() => s.map(|()| 143),
        };
        if let Some(code) = again {
            eprintln!("aborted; interrupted runs resume from their last checkpoint");
            std::process::exit(code);
        }
    });
    signalled
}
