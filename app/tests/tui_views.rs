//! Every view rendered into ratatui's TestBackend and checked against committed snapshots.

mod tui_common;

use app::tui::fixture::FixtureSource;
use app::tui::{Action, App, View};
use crossterm::event::KeyCode;
use tui_common::{app_with, press, render, sync, typed};

fn ablation() -> (FixtureSource, App) {
    let mut src = FixtureSource::ablation(12);
    let app = app_with(&mut src, 80, 24);
    (src, app)
}

#[test]
fn loading_before_the_first_data() {
    let mut app = App::new("towerlab.db");
    app.update(Action::Resize(80, 24));
    insta::assert_snapshot!(render(&app));
}

#[test]
fn empty_store_says_how_to_start() {
    let mut src = FixtureSource::empty();
    let app = app_with(&mut src, 80, 24);
    let screen = render(&app);
    assert!(screen.contains("make demo"), "{screen}");
    assert!(
        screen.contains("towerlab run experiments/demo.toml"),
        "{screen}"
    );
    insta::assert_snapshot!(screen);
}

#[test]
fn runs_table() {
    let (_, app) = ablation();
    insta::assert_snapshot!(render(&app));
}

#[test]
fn runs_table_filtered_to_failures() {
    let (mut src, mut app) = ablation();
    let mut keys = vec![KeyCode::Char('/')];
    keys.extend(typed("status:failed"));
    keys.push(KeyCode::Enter);
    press(&mut app, &mut src, &keys);
    insta::assert_snapshot!(render(&app));
}

#[test]
fn runs_table_while_typing_a_bad_filter() {
    let (mut src, mut app) = ablation();
    let mut keys = vec![KeyCode::Char('/')];
    keys.extend(typed("status:broke"));
    press(&mut app, &mut src, &keys);
    insta::assert_snapshot!(render(&app));
}

#[test]
fn runs_grouped_by_manager_with_mean_and_std() {
    let (mut src, mut app) = ablation();
    // Axes are layers, manager, seed: the second `a` groups by manager.
    press(
        &mut app,
        &mut src,
        &[KeyCode::Char('a'), KeyCode::Char('a')],
    );
    assert_eq!(app.group_by.as_deref(), Some("manager"));
    insta::assert_snapshot!(render(&app));
}

#[test]
fn run_view_of_a_finished_run() {
    let (mut src, mut app) = ablation();
    press(&mut app, &mut src, &[KeyCode::Enter]);
    assert_eq!(app.view, View::Run);
    insta::assert_snapshot!(render(&app));
}

#[test]
fn run_view_of_a_failed_run_shows_class_and_message() {
    let (mut src, mut app) = ablation();
    press(&mut app, &mut src, &[KeyCode::Char('j'), KeyCode::Enter]);
    assert_eq!(app.open_run, Some(2));
    let screen = render(&app);
    assert!(screen.contains("failure: oom"), "{screen}");
    assert!(screen.contains("CUDA out of memory"), "{screen}");
    insta::assert_snapshot!(screen);
}

#[test]
fn run_view_second_metric() {
    let (mut src, mut app) = ablation();
    // The run view opens on the key metric (val/acc, declared with a goal); → goes on.
    press(&mut app, &mut src, &[KeyCode::Enter]);
    assert_eq!(app.chart_key(), Some("val/acc"));
    press(&mut app, &mut src, &[KeyCode::Right]);
    assert_eq!(app.chart_key(), Some("train/loss"));
    insta::assert_snapshot!(render(&app));
}

#[test]
fn compare_three_runs() {
    let (mut src, mut app) = ablation();
    // Runs 1, 4, 7: adaptive with 6 and 12 layers.
    press(
        &mut app,
        &mut src,
        &[
            KeyCode::Char(' '),
            KeyCode::Char('j'),
            KeyCode::Char('j'),
            KeyCode::Char(' '),
            KeyCode::Char('j'),
            KeyCode::Char('j'),
            KeyCode::Char(' '),
            KeyCode::Char('c'),
        ],
    );
    assert_eq!(app.compare_runs(), vec![1, 4, 7]);
    let screen = render(&app);
    assert!(screen.contains("model.num_layers"), "{screen}");
    assert!(
        !screen.contains("optim.lr"),
        "equal keys are not differences: {screen}"
    );
    insta::assert_snapshot!(screen);
}

#[test]
fn manager_weights_grid() {
    let (mut src, mut app) = ablation();
    press(&mut app, &mut src, &[KeyCode::Char('w')]);
    assert_eq!(app.view, View::Weights);
    insta::assert_snapshot!(render(&app));
}

#[test]
fn manager_weights_earlier_step() {
    let (mut src, mut app) = ablation();
    press(
        &mut app,
        &mut src,
        &[KeyCode::Char('w'), KeyCode::Left, KeyCode::Left],
    );
    assert_eq!(app.weights.as_ref().map(|w| w.step), Some(500));
    insta::assert_snapshot!(render(&app));
}

#[test]
fn weights_of_a_run_without_a_manager() {
    let (mut src, mut app) = ablation();
    press(
        &mut app,
        &mut src,
        &[KeyCode::Char('j'), KeyCode::Char('j'), KeyCode::Char('w')],
    );
    insta::assert_snapshot!(render(&app));
}

#[test]
fn sweeps_with_a_plan() {
    let (mut src, mut app) = ablation();
    press(&mut app, &mut src, &[KeyCode::Char('e'), KeyCode::Enter]);
    assert!(app.plan.is_some());
    insta::assert_snapshot!(render(&app));
}

#[test]
fn help_lists_every_key_at_80x24() {
    let (mut src, mut app) = ablation();
    press(&mut app, &mut src, &[KeyCode::Char('?')]);
    let screen = render(&app);
    for key in [
        "Tab",
        "status:x",
        "space",
        "queue new cells",
        "start / stop worker",
        "quit",
    ] {
        assert!(screen.contains(key), "{key} missing:\n{screen}");
    }
    insta::assert_snapshot!(screen);
}

#[test]
fn cancel_asks_first() {
    let (mut src, mut app) = ablation();
    press(
        &mut app,
        &mut src,
        &[KeyCode::Char('j'), KeyCode::Char('j'), KeyCode::Char('d')],
    );
    insta::assert_snapshot!(render(&app));
}

#[test]
fn resize_redraws_the_table_for_the_new_size() {
    let (mut src, mut app) = ablation();
    app.update(Action::Resize(120, 12));
    sync(&mut app, &mut src);
    let screen = render(&app);
    assert_eq!(screen.lines().count(), 12);
    insta::assert_snapshot!(screen);
}

#[test]
fn a_long_store_path_gives_way_to_the_tabs_and_counts() {
    let (_, mut app) = ablation();
    app.source_label = "/home/someone/projects/a-long-study-folder/towerlab.db".into();
    let screen = render(&app);
    let top = screen.lines().next().unwrap();
    assert!(top.contains("Sweeps "), "{top}");
    assert!(
        top.contains("1▶ 9✓ 1✗ 1… …") && top.ends_with("/towerlab.db"),
        "{top}"
    );
    assert_eq!(top.chars().count(), 80, "{top}");
}
