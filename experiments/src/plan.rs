//! Plan primitives (no store access): classify each cell against what already exists and say
//! what changed for stale cells. The store provides a [`RunsView`].

use std::collections::HashMap;
use std::fmt::Write as _;

use serde::{Deserialize, Serialize};
use serde_json::Value as Json;

use crate::experiment::{diff_documents, Cell, Role};
use crate::grid::CellKey;
use crate::identity::RunId;
use crate::run::{cell_state, CellState, RunStatus};
use crate::text_table::aligned;

/// The last run recorded for a cell key and seed.
#[derive(Debug, Clone, PartialEq)]
pub struct LastRun {
    pub identity: RunId,
    /// Its identity document ([`Cell::identity_document`]), or its resolved settings as JSON.
    pub document: Json,
}

/// What the store knows, as the plan needs it.
pub trait RunsView {
    /// The status of the run with this identity, if one exists.
    fn status(&self, id: &RunId) -> Option<RunStatus>;
    /// The most recent run for this cell key and seed (any identity).
    fn last_run(&self, key: &CellKey, seed: u64) -> Option<LastRun>;
}

/// An in-memory [`RunsView`] (what a store query fills, and what tests use).
#[derive(Debug, Clone, Default)]
pub struct KnownRuns {
    pub by_identity: HashMap<RunId, RunStatus>,
    pub by_slot: HashMap<(CellKey, u64), LastRun>,
}

impl KnownRuns {
    /// Records a run: its status, and it as the last run of its cell key and seed.
    pub fn insert(&mut self, cell: &Cell, status: RunStatus) {
        self.by_identity.insert(cell.identity.clone(), status);
        self.by_slot.insert(
            (cell.key.clone(), cell.seed),
            LastRun {
                identity: cell.identity.clone(),
                document: cell.identity_document.clone(),
            },
        );
    }
}

impl RunsView for KnownRuns {
    fn status(&self, id: &RunId) -> Option<RunStatus> {
        self.by_identity.get(id).copied()
    }

    fn last_run(&self, key: &CellKey, seed: u64) -> Option<LastRun> {
        self.by_slot.get(&(key.clone(), seed)).cloned()
    }
}

/// One changed input of a stale cell.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Change {
    /// A settings key, or `@data`, `@engine`, `@depends_on`.
    pub key: String,
    pub old: String,
    pub new: String,
}

/// A cell and where it stands.
#[derive(Debug, Clone, PartialEq)]
pub struct PlanRow {
    pub cell: Cell,
    pub state: CellState,
    /// For stale cells: the identity of the existing run.
    pub previous: Option<RunId>,
    /// For stale cells: what differs (`key: old → new`).
    pub changes: Vec<Change>,
}

impl PlanRow {
    /// Does `apply` have to run it? New, stale and cancelled (to resume) cells always; failed
    /// ones when retrying.
    pub fn needs_run(&self, retry_failed: bool) -> bool {
        match self.state {
            CellState::New | CellState::Stale | CellState::Cancelled => true,
            CellState::Failed => retry_failed,
            CellState::Done | CellState::Running | CellState::Queued | CellState::Unresponsive => {
                false
            }
        }
    }
}

/// Counts per state.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PlanCounts {
    pub new: usize,
    pub done: usize,
    pub failed: usize,
    pub running: usize,
    pub queued: usize,
    pub stale: usize,
    pub cancelled: usize,
}

impl std::fmt::Display for PlanCounts {
    /// `2 new, 0 stale, 1 failed, 5 done, 0 running, 0 queued` (and cancelled cells, when any).
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} new, {} stale, {} failed, {} done, {} running, {} queued",
            self.new, self.stale, self.failed, self.done, self.running, self.queued
        )?;
        if self.cancelled > 0 {
            write!(f, ", {} cancelled", self.cancelled)?;
        }
        Ok(())
    }
}

/// The experiment's cells with their states, in plan order (pre-training runs first).
#[derive(Debug, Clone, PartialEq)]
pub struct Plan {
    pub rows: Vec<PlanRow>,
}

/// Classifies every cell against `view`.
pub fn plan(cells: Vec<Cell>, view: &dyn RunsView) -> Plan {
    let rows = cells.into_iter().map(|cell| classify(cell, view)).collect();
    Plan { rows }
}

fn classify(cell: Cell, view: &dyn RunsView) -> PlanRow {
    let by_id = view
        .status(&cell.identity)
        .map(|s| cell_state(None, Some(s), None));
    if let Some(state) = by_id {
        return PlanRow {
            cell,
            state,
            previous: None,
            changes: Vec::new(),
        };
    }
    match view.last_run(&cell.key, cell.seed) {
        Some(last) if last.identity != cell.identity => {
            let changes = diff_documents(&last.document, &cell.identity_document)
                .into_iter()
                .map(|(key, old, new)| Change { key, old, new })
                .collect();
            PlanRow {
                cell,
                state: CellState::Stale,
                previous: Some(last.identity),
                changes,
            }
        }
        _ => PlanRow {
            cell,
            state: CellState::New,
            previous: None,
            changes: Vec::new(),
        },
    }
}

impl PlanRow {
    /// The row as `towerlab plan --json` prints it: `key`, `state`, `identity` (64 hex),
    /// `role`, `seed`, `depends_on`, `recipe`, `eval` (what an eval cell scores), `changes`
    /// (stale cells), `settings` (every resolved setting by its reference key) and `sources`
    /// (per setting: `preset`, `task`, `file`, `env`, `set`, `pretrain` or `run`).
    pub fn to_json(&self) -> Json {
        let c = &self.cell;
        let mut out = serde_json::json!({
            "key": c.key.as_str(),
            "state": self.state.as_str(),
            "identity": c.identity.as_str(),
            "role": c.role.as_str(),
            "seed": c.seed,
            "depends_on": c.depends_on.as_ref().map(RunId::as_str),
            "recipe": c.recipe,
            "changes": self.changes,
            "settings": serde_json::to_value(&c.settings).unwrap_or(Json::Null),
            "sources": c.sources,
        });
        if let (Some(e), Json::Object(map)) = (&c.eval, &mut out) {
            map.insert(
                "eval".into(),
                serde_json::json!({
                    "weights": e.weights.display().to_string(),
                    "split": e.split.as_str(),
                }),
            );
        }
        out
    }
}

impl Plan {
    /// `towerlab plan --json`: one object per cell ([`PlanRow::to_json`]), in plan order.
    pub fn to_json(&self) -> Json {
        Json::Array(self.rows.iter().map(PlanRow::to_json).collect())
    }

    /// `towerlab plan --settings`: every resolved setting (rows) of every cell (columns, numbered
    /// and listed under the table), each value followed by its source unless it is the preset's.
    pub fn render_settings(&self) -> String {
        let keys = crate::settings::Settings::keys();
        let header: Vec<String> = std::iter::once("setting".to_string())
            .chain((1..=self.rows.len()).map(|i| format!("#{i}")))
            .collect();
        let mut body: Vec<Vec<String>> = Vec::new();
        let values: Vec<Json> = self
            .rows
            .iter()
            .map(|r| serde_json::to_value(&r.cell.settings).unwrap_or(Json::Null))
            .collect();
        for k in &keys {
            let mut row = vec![k.clone()];
            for (r, v) in self.rows.iter().zip(&values) {
                let text = v
                    .get(k)
                    .map_or_else(|| "-".to_string(), crate::grid::display_value);
                let text = match r.cell.sources.get(k) {
                    Some(src) if *src != crate::layering::SettingSource::Preset => {
                        format!("{text} ({})", src.as_str())
                    }
                    _ => text,
                };
                row.push(text);
            }
            body.push(row);
        }
        let mut out = String::new();
        body.insert(0, header);
        for line in aligned(&body) {
            let _ = writeln!(out, "{line}");
        }
        let _ = writeln!(out);
        for (i, r) in self.rows.iter().enumerate() {
            let _ = writeln!(
                out,
                "#{}  {}  {}  {} seed {}{}",
                i + 1,
                r.state.as_str(),
                r.cell.identity.short(),
                r.cell.key,
                r.cell.seed,
                r.cell
                    .recipe
                    .map_or(String::new(), |n| format!("  (recipe {n})"))
            );
        }
        let _ = write!(
            out,
            "sources: preset unless marked (task = the task's recipe, file, env, set, pretrain)"
        );
        out
    }

    pub fn counts(&self) -> PlanCounts {
        let mut c = PlanCounts::default();
        for r in &self.rows {
            match r.state {
                CellState::New => c.new += 1,
                CellState::Done => c.done += 1,
                CellState::Failed => c.failed += 1,
                CellState::Running | CellState::Unresponsive => c.running += 1,
                CellState::Queued => c.queued += 1,
                CellState::Stale => c.stale += 1,
                CellState::Cancelled => c.cancelled += 1,
            }
        }
        c
    }

    /// The rows `apply` has to run, in order (a pre-training run comes before its dependents).
    pub fn to_run(&self, retry_failed: bool) -> Vec<&PlanRow> {
        self.rows
            .iter()
            .filter(|r| r.needs_run(retry_failed))
            .collect()
    }

    /// A plain-text table: state, short identity, cell key, seed, dependency, and for stale
    /// cells the changes, then a summary line.
    pub fn render(&self) -> String {
        let header = ["state", "id", "cell", "seed", "after"].map(String::from);
        let body: Vec<Vec<String>> = self
            .rows
            .iter()
            .map(|r| {
                vec![
                    r.state.as_str().to_string(),
                    r.cell.identity.short().to_string(),
                    r.cell.key.to_string(),
                    r.cell.seed.to_string(),
                    match (&r.cell.depends_on, r.cell.role) {
                        (Some(d), _) => d.short().to_string(),
                        (None, Role::Pretrain) => "(pre-training)".into(),
                        (None, Role::Eval) => "(eval)".into(),
                        (None, Role::Grid) => "-".into(),
                    },
                ]
            })
            .collect();
        let mut table = vec![header.to_vec()];
        table.extend(body);
        let lines = aligned(&table);
        let mut out = String::new();
        let _ = writeln!(out, "{}", lines[0]);
        for (line, r) in lines[1..].iter().zip(&self.rows) {
            let _ = writeln!(out, "{line}");
            for ch in &r.changes {
                let _ = writeln!(out, "    {}: {} → {}", ch.key, ch.old, ch.new);
            }
        }
        let c = self.counts();
        let _ = write!(out, "{}", c);
        out
    }
}
