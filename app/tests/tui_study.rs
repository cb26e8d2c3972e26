//! A researcher's own study (synthetic VQA, tiny preset, SAUE/AAUE × a zip of managed layers ×
//! 2 seeds, a VLP arm) in a real store, read by the real store source, rendered at 80×24 and
//! 100×30: runs, run, weights, sweeps and compare views.

mod tui_common;

use app::tui::fixture::FIXTURE_NOW_MS;
use app::tui::sample_store::fill_study;
use app::tui::{Action, App, DataMsg, StoreSource, TuiSource, View};
use crossterm::event::KeyCode;
use tui_common::{press, render, sync};

struct Study {
    _dir: tempfile::TempDir,
    source: StoreSource,
}

fn study() -> Study {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("towerlab.db");
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let store = store::Store::open(&db).await.unwrap();
        fill_study(&store).await.unwrap();
        store.close().await;
    });
    let source = StoreSource::open(&db).unwrap();
    Study { _dir: dir, source }
}

fn app_at(s: &mut Study, w: u16, h: u16) -> App {
    let mut app = App::new("towerlab.db");
    app.now_ms = FIXTURE_NOW_MS;
    app.update(Action::Resize(w, h));
    app.apply(DataMsg::Runs(s.source.runs().unwrap()));
    app
}

/// The runs table, then: the run view of run `run`, its weights, the sweeps plan.
fn screens(w: u16, h: u16) -> Vec<(&'static str, String)> {
    let mut s = study();
    let mut app = app_at(&mut s, w, h);
    let mut out = vec![("runs", render(&app))];
    // Run 4: SAUE with 4 managed layers, seed 0 (run 1 is the VLP arm's pre-training).
    let down = vec![KeyCode::Down; 3];
    press(&mut app, &mut s.source, &down);
    press(&mut app, &mut s.source, &[KeyCode::Enter]);
    assert_eq!((app.view, app.open_run), (View::Run, Some(4)));
    out.push(("run", render(&app)));
    press(&mut app, &mut s.source, &[KeyCode::Char('w')]);
    out.push(("weights", render(&app)));
    press(
        &mut app,
        &mut s.source,
        &[KeyCode::Char('e'), KeyCode::Enter],
    );
    sync(&mut app, &mut s.source);
    out.push(("sweeps", render(&app)));
    out
}

#[test]
fn the_study_at_80x24() {
    for (name, screen) in screens(80, 24) {
        insta::assert_snapshot!(format!("study_80x24_{name}"), screen);
    }
}

#[test]
fn the_study_at_100x30() {
    for (name, screen) in screens(100, 30) {
        insta::assert_snapshot!(format!("study_100x30_{name}"), screen);
    }
}

#[test]
fn saue_and_aaue_rows_differ_and_only_varying_axes_show() {
    for (w, h) in [(80, 24), (100, 30)] {
        let mut s = study();
        let app = app_at(&mut s, w, h);
        let screen = render(&app);
        let rows: Vec<&str> = screen.lines().filter(|l| l.contains("study")).collect();
        assert_eq!(rows.len(), 11.min(h as usize - 5), "{screen}");
        for want in [
            "mlt=2 mgr=SAUE s=0",
            "mlt=4 mgr=AAUE s=1",
            "pre mlt=4 mgr=AAUE",
            "mgr=AAUE vlp=y s=0",
        ] {
            assert!(
                screen.contains(want),
                "{want} missing at {w}x{h}:\n{screen}"
            );
        }
        // The hidden zip member and the task (the same everywhere) are not shown.
        assert!(
            !screen.contains("mli=") && !screen.contains("task="),
            "{screen}"
        );
    }
}

#[test]
fn the_run_view_opens_on_the_key_metric_with_the_full_key_and_no_internal_json() {
    for (w, h) in [(80, 24), (100, 30)] {
        let mut s = study();
        let mut app = app_at(&mut s, w, h);
        press(&mut app, &mut s.source, &[KeyCode::Down, KeyCode::Enter]);
        assert_eq!(app.chart_key(), Some("val/vqa/score_epoch"));
        let screen = render(&app);
        // The chart's title and the metric list's first line name it whole.
        assert!(
            screen.contains(" val/vqa/score_epoch ("),
            "{w}x{h}:\n{screen}"
        );
        assert!(
            screen.contains("★val/vqa/score_epoch"),
            "{w}x{h}:\n{screen}"
        );
        for axis in [
            "managed_layers_image=2",
            "managed_layers_text=2",
            "manager_type=SAUE",
        ] {
            assert!(screen.contains(axis), "{axis} at {w}x{h}:\n{screen}");
        }
        assert!(
            !screen.contains("_identity") && !screen.contains("_settings"),
            "{screen}"
        );
        // ←→ still walk every metric, and a chosen one stays while ↑↓ walk runs.
        press(&mut app, &mut s.source, &[KeyCode::Right]);
        let other = app.chart_key().unwrap().to_owned();
        assert_ne!(other, "val/vqa/score_epoch");
        press(&mut app, &mut s.source, &[KeyCode::Down]);
        assert_eq!(app.chart_key(), Some(other.as_str()));
    }
}

#[test]
fn compare_hides_the_runners_internal_params() {
    let mut s = study();
    let mut app = app_at(&mut s, 100, 30);
    press(
        &mut app,
        &mut s.source,
        &[
            KeyCode::Down,
            KeyCode::Char(' '),
            KeyCode::Down,
            KeyCode::Char(' '),
            KeyCode::Char('c'),
        ],
    );
    let screen = render(&app);
    assert!(screen.contains("managed_layers_text"), "{screen}");
    assert!(
        !screen.contains("_identity") && !screen.contains("_settings"),
        "{screen}"
    );
}

#[test]
fn two_expert_weights_of_both_modalities_side_by_side_without_overlap() {
    let mut s = study();
    let mut app = app_at(&mut s, 80, 24);
    press(
        &mut app,
        &mut s.source,
        &[KeyCode::Down, KeyCode::Char('w')],
    );
    let screen = render(&app);
    let line = screen
        .lines()
        .find(|l| l.contains("text (layer × expert)"))
        .unwrap_or_else(|| panic!("{screen}"));
    assert!(line.contains("image (layer × expert)"), "{screen}");
    // The cross-modal weight has its own column, not expert 0's.
    assert!(
        screen.contains("x-1") && screen.contains("0.994"),
        "{screen}"
    );
}
