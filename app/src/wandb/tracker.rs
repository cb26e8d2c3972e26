//! The experiment file's `[wandb]` section applied by `towerlab run`: with `live = true` a sync
//! runs beside the workers while the grid trains (it polls the store, so training never waits on
//! the network and an outage is caught up at the next poll); with `live = false` one sync of the
//! experiment follows the sweep. A missing key or an unreachable server is a warning, never a
//! failed sweep: the store keeps everything and `towerlab sync wandb` can push it later.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use crate::scope::{PlanScope, ScopedRun};
use experiments::{Cell, Experiment, WandbSpec};
use store::Store;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

use crate::wandb::config::{Mode, WandbConfig};
use crate::wandb::store_source::PlanCell;
use crate::wandb::sync::{sync_runs, SyncOptions};
use crate::wandb::types::Selection;
use crate::wandb::{live_sync, LiveOptions, LiveSummary, StoreSource};

/// How often a live sync polls the store.
pub const LIVE_INTERVAL: Duration = Duration::from_secs(5);

/// The sync an experiment asked for, started (live) or pending (after the sweep).
pub enum TrackerSync {
    Off,
    Live {
        stop: oneshot::Sender<()>,
        task: JoinHandle<LiveSummary>,
        project: String,
    },
    After {
        config: Box<WandbConfig>,
        store: Store,
        exp: Box<Experiment>,
        cells: Vec<Cell>,
    },
}

/// The runs of `scope` (done, or all of the plan's for a live sync), as a selection of run ids
/// and the plan cells they are sent as (their W&B groups).
fn selection_of(scope: &PlanScope, all: bool) -> (Selection, BTreeMap<store::RunId, PlanCell>) {
    let runs: Vec<&ScopedRun> = if all {
        scope.done.iter().chain(&scope.pending).collect()
    } else {
        scope.done.iter().collect()
    };
    let cells = runs
        .iter()
        .map(|s| {
            (
                s.run.id,
                PlanCell {
                    experiment: scope.experiment.clone(),
                    cell: s.cell.key.0.clone(),
                    seed: s.cell.seed,
                },
            )
        })
        .collect();
    let selection = Selection {
        experiments: Vec::new(),
        runs: runs.iter().map(|s| s.run.id.to_string()).collect(),
    };
    (selection, cells)
}

/// The W&B config of an experiment: the environment (key, base URL, mode), with the file's
/// project and entity. `None` (after one line on stderr) when nothing is to be sent.
fn config_for(spec: &WandbSpec) -> Option<WandbConfig> {
    if !spec.enabled {
        return None;
    }
    let mut config = match WandbConfig::from_env() {
        Ok(c) => c,
        Err(e) => {
            eprintln!("W&B sync skipped: {e}");
            return None;
        }
    };
    if config.mode != Mode::Online {
        eprintln!(
            "W&B sync skipped: WANDB_MODE={} (the store keeps the runs; `towerlab sync wandb` \
             pushes them later)",
            config.mode.as_str()
        );
        return None;
    }
    if config.api_key.is_none() {
        eprintln!(
            "W&B sync skipped: no API key (set WANDB_API_KEY, or add a ~/.netrc entry for the \
             API host); push later with `towerlab sync wandb --experiment NAME`"
        );
        return None;
    }
    (config.project, config.entity) = config.destination(Some(spec));
    Some(config)
}

impl TrackerSync {
    /// Starts the live sync (on the current tokio runtime) of the runs of `scope` (the file's
    /// plan, queued), or prepares the one after the sweep (of the plan's done runs then).
    pub fn start(exp: &Experiment, store: &Store, scope: &PlanScope, cells: &[Cell]) -> Self {
        let Some(spec) = &exp.wandb else {
            return Self::Off;
        };
        let Some(config) = config_for(spec) else {
            return Self::Off;
        };
        if !spec.live {
            return Self::After {
                config: Box::new(config),
                store: store.clone(),
                exp: Box::new(exp.clone()),
                cells: cells.to_vec(),
            };
        }
        let (selection, plan_cells) = selection_of(scope, true);
        if selection.runs.is_empty() {
            return Self::Off;
        }
        let source = Arc::new(StoreSource::new(store.clone()).with_cells(plan_cells));
        let (stop, stopped) = oneshot::channel::<()>();
        let project = config.project.clone();
        let options = LiveOptions {
            interval: LIVE_INTERVAL,
            selection,
        };
        let task = tokio::spawn(live_sync(config, source.clone(), source, options, async {
            let _ = stopped.await;
        }));
        Self::Live {
            stop,
            task,
            project,
        }
    }

    /// Ends the sync: the live one makes its last pass; the deferred one runs now. Prints one
    /// summary line; failures are reported, not returned.
    pub async fn finish(self) {
        match self {
            Self::Off => {}
            Self::Live {
                stop,
                task,
                project,
            } => {
                let _ = stop.send(());
                match task.await {
                    Ok(s) => {
                        println!(
                            "W&B live sync (project {project}): {} passes, {} history lines, \
                             {} log lines{}",
                            s.passes,
                            s.history_lines,
                            s.log_lines,
                            s.last_error.map_or(String::new(), |e| format!(
                                "; last error: {e} (run `towerlab sync wandb` to catch up)"
                            ))
                        );
                    }
                    Err(e) => eprintln!("W&B live sync ended abnormally: {e}"),
                }
            }
            Self::After {
                config,
                store,
                exp,
                cells,
            } => {
                let scope = match PlanScope::compute(&store, &exp, cells).await {
                    Ok(s) => s,
                    Err(e) => {
                        eprintln!("W&B sync skipped: cannot read the plan's runs: {e:#}");
                        return;
                    }
                };
                let (selection, plan_cells) = selection_of(&scope, false);
                if selection.runs.is_empty() {
                    println!("W&B sync: no done run of {} to send", exp.name);
                    return;
                }
                let source = Arc::new(StoreSource::new(store).with_cells(plan_cells));
                let options = SyncOptions {
                    selection,
                    dry_run: false,
                    progress: true,
                    heartbeat: false,
                };
                match sync_runs(&config, source.clone(), source, &options).await {
                    Ok(report) => println!("{report}"),
                    Err(e) => eprintln!(
                        "W&B sync failed: {e}; the store keeps the runs, run `towerlab sync \
                         wandb` to push them"
                    ),
                }
            }
        }
    }
}
