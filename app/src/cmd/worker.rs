//! `towerlab worker`: claim queued runs and execute them until stopped (or, with `--once`,
//! until nothing is runnable).

use std::path::Path;
use std::sync::Arc;

use crate::cli::WorkerArgs;
use crate::runner::worker::{self, Ended, Runner, Slot, Until};
use crate::runner::{self, executor, lookup, Workspace};

pub fn run(db: &Path, args: WorkerArgs) -> anyhow::Result<()> {
    let executor = executor::local_executor()?;
    let rt = runner::runtime()?;
    rt.block_on(async move {
        let ws = Workspace::new(db);
        let store = ws.open().await?;
        let devices = executor::local_devices();
        let slots = Slot::for_process(
            args.slots.jobs,
            args.slots.threads,
            &devices,
            &executor.engine_version(),
        );
        let n = slots.len();
        let mut r = Runner::new(store.clone(), ws.runs_dir.clone(), executor);
        if let Some(name) = &args.experiment {
            r.experiment = Some(lookup::experiment(&store, name).await?.id);
        }
        let runner = Arc::new(r);
        super::run::watch_ctrl_c(runner.clone());
        runner.ui.println(&format!(
            "worker {} with {n} slot(s) on {} (store {})",
            slots[0].worker.id.rsplit_once('/').map_or("", |(w, _)| w),
            devices.join(", "),
            ws.db.display()
        ));
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
