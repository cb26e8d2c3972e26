//! Plan states against what exists, including stale cells with their changes.

use experiments::plan::{plan, KnownRuns};
use experiments::{CellState, RunStatus};
use experiments::{Experiment, IdentityContext, Overrides};

fn demo_cells(set: &[&str], engine: &str) -> Vec<experiments::Cell> {
    let ov = Overrides {
        env: vec![],
        set: set.iter().map(|s| s.to_string()).collect(),
    };
    Experiment::demo(&ov)
        .unwrap()
        .cells(&IdentityContext::fixed(engine, "data-1"))
}

#[test]
fn every_state() {
    let cells = demo_cells(&[], "v1");
    assert_eq!(cells.len(), 6);
    let mut known = KnownRuns::default();
    known.insert(&cells[0], RunStatus::Finished);
    known.insert(&cells[1], RunStatus::Failed);
    known.insert(&cells[2], RunStatus::Running);
    known.insert(&cells[3], RunStatus::Queued);
    known.insert(&cells[4], RunStatus::Crashed);
    let p = plan(cells, &known);
    let states: Vec<CellState> = p.rows.iter().map(|r| r.state).collect();
    assert_eq!(
        states,
        [
            CellState::Done,
            CellState::Failed,
            CellState::Running,
            CellState::Queued,
            CellState::Failed,
            CellState::New
        ]
    );
    let c = p.counts();
    assert_eq!(
        (c.done, c.failed, c.running, c.queued, c.new, c.stale),
        (1, 2, 1, 1, 1, 0)
    );
    assert_eq!(p.to_run(false).len(), 1);
    assert_eq!(p.to_run(true).len(), 3);
}

#[test]
fn stale_cells_say_what_changed() {
    let old = demo_cells(&[], "v1");
    let mut known = KnownRuns::default();
    for c in &old {
        known.insert(c, RunStatus::Finished);
    }
    // Unchanged: all done.
    let p = plan(demo_cells(&[], "v1"), &known);
    assert!(p.rows.iter().all(|r| r.state == CellState::Done));

    // A new learning rate and engine: every cell is stale, with both changes listed.
    let p = plan(demo_cells(&["learning_rate=0.002"], "v2"), &known);
    for (row, before) in p.rows.iter().zip(&old) {
        assert_eq!(row.state, CellState::Stale);
        assert_eq!(row.previous.as_ref(), Some(&before.identity));
        let changes: Vec<String> = row
            .changes
            .iter()
            .map(|c| format!("{}: {} → {}", c.key, c.old, c.new))
            .collect();
        assert_eq!(
            changes,
            ["@engine: v1 → v2", "learning_rate: 0.001 → 0.002"]
        );
    }
    let text = p.render();
    assert!(text.contains("learning_rate: 0.001 → 0.002"), "{text}");
    assert!(
        text.ends_with("0 new, 6 stale, 0 failed, 0 done, 0 running, 0 queued"),
        "{text}"
    );
    assert!(text.lines().next().unwrap().starts_with("state"), "{text}");

    // Execution-only settings do not make cells stale.
    let p = plan(demo_cells(&["device=cpu", "num_workers=3"], "v1"), &known);
    assert!(p.rows.iter().all(|r| r.state == CellState::Done));
}
