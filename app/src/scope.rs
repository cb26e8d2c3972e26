//! An experiment file's plan against the store, and the runs it puts in scope: what `plan`
//! shows as done is what reports, the results table, exports, the TUI's groups and W&B groups
//! use, and every other stored run of the experiment is left out, and said to be.

use std::collections::{HashMap, HashSet};

use experiments::plan::LastRun;
use experiments::{Cell, CellKey, CellState, Experiment, KnownRuns, Plan, Role};
use serde_json::Value as Json;
use store::{ExperimentRow, RunFilter, RunRow, RunStatus, Store};

/// Params the runner keeps on each run besides the flattened settings.
pub const PARAM_SETTINGS: &str = "_settings";
pub const PARAM_IDENTITY: &str = "_identity";
pub const PARAM_ROLE: &str = "_role";
/// An eval run's target: `{"weights", "split", "explicit"}` (see `experiments::EvalTarget`).
pub const PARAM_EVAL: &str = "_eval";

/// Which of two runs with the same identity speaks for it (a finished one wins).
fn rank(s: RunStatus) -> u8 {
    match s {
        RunStatus::Finished => 5,
        RunStatus::Running => 4,
        RunStatus::Queued => 3,
        RunStatus::Cancelled | RunStatus::Crashed => 2,
        RunStatus::Failed => 1,
    }
}

/// The seed a stored run was queued with (kept in its axes).
pub fn run_seed(run: &RunRow) -> Option<u64> {
    run.axes.get("seed").and_then(Json::as_u64)
}

/// What the store knows about `cells`: the status of each identity (in any experiment) and,
/// within `experiment`, the last run of each cell key and seed with its identity document.
pub async fn known_runs(
    store: &Store,
    experiment: Option<&ExperimentRow>,
    cells: &[Cell],
) -> anyhow::Result<(KnownRuns, HashMap<String, RunRow>)> {
    let hashes: Vec<String> = cells
        .iter()
        .map(|c| c.identity.as_str().to_string())
        .collect();
    let mut known = KnownRuns::default();
    let mut by_hash: HashMap<String, RunRow> = HashMap::new();
    for run in store.runs_by_hash(&hashes).await? {
        let better = by_hash
            .get(&run.hash)
            .is_none_or(|old| rank(run.status) > rank(old.status));
        if better {
            by_hash.insert(run.hash.clone(), run);
        }
    }
    for (hash, run) in &by_hash {
        if let Some(id) = experiments::RunId::parse(hash) {
            known.by_identity.insert(id, run.status);
        }
    }
    if let Some(exp) = experiment {
        let runs = store
            .list_runs(&RunFilter {
                experiment: Some(exp.id),
                ..RunFilter::default()
            })
            .await?;
        // The newest run (highest id) of each cell key and seed.
        let mut last: HashMap<(String, u64), &RunRow> = HashMap::new();
        for run in &runs {
            if let Some(seed) = run_seed(run) {
                last.insert((run.cell_key.clone(), seed), run);
            }
        }
        for ((key, seed), run) in last {
            let Some(identity) = experiments::RunId::parse(&run.hash) else {
                continue;
            };
            let params = store.params(run.id).await?;
            let document = params
                .into_iter()
                .find(|p| p.key == PARAM_IDENTITY)
                .map_or(Json::Null, |p| p.value);
            known
                .by_slot
                .insert((CellKey(key), seed), LastRun { identity, document });
        }
    }
    Ok((known, by_hash))
}

/// The experiment's plan against the store, with the stored runs of its identities.
pub async fn plan_against(
    store: &Store,
    exp: &Experiment,
    cells: Vec<Cell>,
) -> anyhow::Result<(Plan, HashMap<String, RunRow>)> {
    let row = store.experiment_by_name(&exp.name).await?;
    let (known, by_hash) = known_runs(store, row.as_ref(), &cells).await?;
    Ok((experiments::plan::plan(cells, &known), by_hash))
}

/// A stored run of the plan, with the plan's cell it stands for.
#[derive(Debug, Clone)]
pub struct ScopedRun {
    pub run: RunRow,
    pub cell: Cell,
    pub state: CellState,
}

impl ScopedRun {
    /// The experiment the run is stored under when that is another one: its identity is shared
    /// (same settings, data and engine), so this experiment's plan counts it as done.
    pub fn shared_from<'a>(&'a self, experiment: &str) -> Option<&'a str> {
        (self.run.experiment != experiment).then_some(self.run.experiment.as_str())
    }
}

/// Why a stored run of the experiment is not in its plan's scope.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum LeftOutWhy {
    /// Its cell and seed are in the plan, with another identity now (settings, data or engine
    /// changed): the cell is stale, or ran again.
    Superseded,
    /// Its cell or seed is no longer in the file's grid.
    NotInGrid,
}

impl LeftOutWhy {
    pub fn describe(self) -> &'static str {
        match self {
            Self::Superseded => "superseded (its cell's settings, data or engine changed since)",
            Self::NotInGrid => "no longer in the grid",
        }
    }
}

/// A run of the experiment that its plan does not include.
#[derive(Debug, Clone)]
pub struct LeftOut {
    pub run: RunRow,
    pub why: LeftOutWhy,
}

/// The plan of an experiment file against the store, split into the runs it uses and the
/// ones it leaves out.
#[derive(Debug, Clone)]
pub struct PlanScope {
    pub experiment: String,
    pub plan: Plan,
    /// The runs of the plan's done cells (one per identity: the finished one), in plan order.
    pub done: Vec<ScopedRun>,
    /// The stored runs of the plan's other cells (failed, cancelled, running, queued).
    pub pending: Vec<ScopedRun>,
    /// The experiment's stored runs outside the plan, by id.
    pub left_out: Vec<LeftOut>,
}

impl PlanScope {
    /// The plan of `cells` (the experiment's, with identities) against the store, and its scope.
    pub async fn compute(
        store: &Store,
        exp: &Experiment,
        cells: Vec<Cell>,
    ) -> anyhow::Result<Self> {
        let (plan, by_hash) = plan_against(store, exp, cells).await?;
        let mut stored = Vec::new();
        if let Some(row) = store.experiment_by_name(&exp.name).await? {
            stored = store
                .list_runs(&RunFilter {
                    experiment: Some(row.id),
                    ..RunFilter::default()
                })
                .await?;
        }
        Ok(Self::of(&exp.name, plan, &by_hash, stored))
    }

    /// The scope of a computed plan: `by_hash` holds the run speaking for each identity (as
    /// [`plan_against`] gives it), `stored` every run stored under the experiment.
    pub fn of(
        experiment: &str,
        plan: Plan,
        by_hash: &HashMap<String, RunRow>,
        stored: Vec<RunRow>,
    ) -> Self {
        let mut done = Vec::new();
        let mut pending = Vec::new();
        for row in &plan.rows {
            let Some(run) = by_hash.get(row.cell.identity.as_str()) else {
                continue;
            };
            let scoped = ScopedRun {
                run: run.clone(),
                cell: row.cell.clone(),
                state: row.state,
            };
            if row.state == CellState::Done {
                done.push(scoped);
            } else {
                pending.push(scoped);
            }
        }
        let used: HashSet<store::RunId> = done.iter().chain(&pending).map(|s| s.run.id).collect();
        let slots: HashSet<(&str, u64)> = plan
            .rows
            .iter()
            .map(|r| (r.cell.key.0.as_str(), r.cell.seed))
            .collect();
        let left_out = stored
            .into_iter()
            .filter(|r| !used.contains(&r.id))
            .map(|run| {
                let in_grid = run_seed(&run)
                    .is_some_and(|seed| slots.contains(&(run.cell_key.as_str(), seed)));
                let why = if in_grid {
                    LeftOutWhy::Superseded
                } else {
                    LeftOutWhy::NotInGrid
                };
                LeftOut { run, why }
            })
            .collect();
        Self {
            experiment: experiment.to_string(),
            plan,
            done,
            pending,
            left_out,
        }
    }

    /// The done runs of grid and eval cells (pre-training runs are their dependencies, not
    /// cells; an eval cell, a checkpoint scored beside the grid, is a row of its own).
    pub fn done_cells(&self) -> impl Iterator<Item = &ScopedRun> {
        self.done.iter().filter(|s| s.cell.role != Role::Pretrain)
    }

    /// Lines saying what a command that uses `used` (runs of this scope) holds beyond the
    /// experiment's own runs and what it leaves out: runs shared with other experiments
    /// (listed), left-out runs by reason, and the plan's runs that are not done (with ids).
    pub fn describe(&self, used: &[&ScopedRun]) -> Vec<String> {
        let mut lines = Vec::new();
        let shared: Vec<&&ScopedRun> = used
            .iter()
            .filter(|s| s.shared_from(&self.experiment).is_some())
            .collect();
        if !shared.is_empty() {
            lines.push(format!(
                "{} run(s) shared with other experiments through the same identity: {}",
                shared.len(),
                shared
                    .iter()
                    .map(|s| format!(
                        "run {} ({} {} seed {})",
                        s.run.id, s.run.experiment, s.cell.key, s.cell.seed
                    ))
                    .collect::<Vec<_>>()
                    .join(", ")
            ));
        }
        let mut by_why: std::collections::BTreeMap<LeftOutWhy, Vec<&LeftOut>> = Default::default();
        for l in &self.left_out {
            by_why.entry(l.why).or_default().push(l);
        }
        for (why, runs) in by_why {
            lines.push(format!(
                "left out {} run(s) of {} {}: {}",
                runs.len(),
                self.experiment,
                why.describe(),
                runs.iter()
                    .map(|l| format!(
                        "{} ({} seed {})",
                        l.run.id,
                        l.run.cell_key,
                        seed_text(&l.run)
                    ))
                    .collect::<Vec<_>>()
                    .join(", ")
            ));
        }
        let not_done: Vec<&ScopedRun> = self
            .pending
            .iter()
            .filter(|p| !used.iter().any(|u| u.run.id == p.run.id))
            .collect();
        if !not_done.is_empty() {
            lines.push(format!(
                "left out {} run(s) of the plan that are not done: {}",
                not_done.len(),
                not_done
                    .iter()
                    .map(|p| format!(
                        "{} ({} seed {}, {})",
                        p.run.id,
                        p.cell.key,
                        p.cell.seed,
                        p.state.as_str()
                    ))
                    .collect::<Vec<_>>()
                    .join(", ")
            ));
        }
        lines
    }
}

fn seed_text(run: &RunRow) -> String {
    run_seed(run).map_or_else(|| "-".to_string(), |s| s.to_string())
}
