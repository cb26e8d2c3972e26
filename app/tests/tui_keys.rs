//! Key handling as pure functions: key events → actions → state (no terminal).

mod tui_common;

use app::tui::fixture::FixtureSource;
use app::tui::{Command, InputMode, TuiSource, View};
use crossterm::event::KeyCode;
use tui_common::{app_with, press, sync, typed};

fn ids(app: &app::tui::App) -> Vec<i64> {
    app.visible.iter().map(|&i| app.runs[i].id).collect()
}

#[test]
fn filter_by_axis_then_open_then_back() {
    let mut src = FixtureSource::ablation(12);
    let mut app = app_with(&mut src, 80, 24);
    let mut keys = vec![KeyCode::Char('/')];
    keys.extend(typed("manager=adaptive layers=12"));
    press(&mut app, &mut src, &keys);
    assert_eq!(app.mode, InputMode::Filter);
    // Applied live while typing.
    assert_eq!(ids(&app), vec![4, 10]);
    press(
        &mut app,
        &mut src,
        &[KeyCode::Enter, KeyCode::Char('j'), KeyCode::Enter],
    );
    assert_eq!(app.mode, InputMode::Normal);
    assert_eq!((app.view, app.open_run), (View::Run, Some(10)));
    press(&mut app, &mut src, &[KeyCode::Esc]);
    assert_eq!(app.view, View::Runs);
    assert_eq!(app.filter_text, "manager=adaptive layers=12");
    // Esc on the runs view clears the filter.
    press(&mut app, &mut src, &[KeyCode::Esc]);
    assert_eq!(app.visible.len(), 12);
}

#[test]
fn escape_while_typing_restores_the_previous_filter() {
    let mut src = FixtureSource::ablation(12);
    let mut app = app_with(&mut src, 80, 24);
    let mut keys = vec![KeyCode::Char('/')];
    keys.extend(typed("seed=1"));
    keys.push(KeyCode::Enter);
    keys.push(KeyCode::Char('/'));
    keys.extend(typed(" status:failed"));
    keys.push(KeyCode::Esc);
    press(&mut app, &mut src, &keys);
    assert_eq!(app.filter_text, "seed=1");
    assert_eq!(ids(&app), vec![1, 2, 3, 4, 5, 6]);
}

#[test]
fn sort_keys_toggle_direction_and_keep_the_cursor_on_its_run() {
    let mut src = FixtureSource::ablation(12);
    let mut app = app_with(&mut src, 80, 24);
    assert_eq!(app.key_metric.as_deref(), Some("val/acc"));
    press(&mut app, &mut src, &[KeyCode::Char('7')]);
    let ascending = ids(&app);
    press(&mut app, &mut src, &[KeyCode::Char('7')]);
    let descending = ids(&app);
    assert!(app.sort.descending);
    // Runs without the metric (queued run 5) stay last both ways.
    assert_eq!(*ascending.last().unwrap(), 5);
    assert_eq!(*descending.last().unwrap(), 5);
    assert_ne!(ascending, descending);
    // New data keeps the cursor on the same run.
    press(
        &mut app,
        &mut src,
        &[KeyCode::Char('j'), KeyCode::Char('j')],
    );
    let on = app.current_run().unwrap().id;
    app.set_runs(src.runs().unwrap());
    assert_eq!(app.current_run().unwrap().id, on);
}

#[test]
fn vim_and_paging_keys_stay_in_bounds() {
    let mut src = FixtureSource::ablation(100);
    let mut app = app_with(&mut src, 80, 24);
    press(&mut app, &mut src, &[KeyCode::Char('G')]);
    assert_eq!(app.cursor, 99);
    assert!(app.offset + app.page_rows() > 99 && app.offset <= 99);
    press(&mut app, &mut src, &[KeyCode::Char('j')]);
    assert_eq!(app.cursor, 99);
    press(&mut app, &mut src, &[KeyCode::PageUp]);
    assert_eq!(app.cursor, 99 - app.page_rows());
    press(
        &mut app,
        &mut src,
        &[KeyCode::Char('g'), KeyCode::Char('k')],
    );
    assert_eq!((app.cursor, app.offset), (0, 0));
}

#[test]
fn tab_cycles_every_view_and_back_tab_returns() {
    let mut src = FixtureSource::ablation(6);
    let mut app = app_with(&mut src, 80, 24);
    let mut seen = vec![app.view];
    for _ in 0..5 {
        press(&mut app, &mut src, &[KeyCode::Tab]);
        seen.push(app.view);
    }
    assert_eq!(
        seen,
        vec![
            View::Runs,
            View::Run,
            View::Compare,
            View::Weights,
            View::Sweeps,
            View::Runs
        ]
    );
    press(&mut app, &mut src, &[KeyCode::BackTab]);
    assert_eq!(app.view, View::Sweeps);
}

#[test]
fn cancel_needs_a_yes_and_goes_to_the_source() {
    let mut src = FixtureSource::ablation(6);
    let mut app = app_with(&mut src, 80, 24);
    // Run 3 is running.
    let cmds = press(
        &mut app,
        &mut src,
        &[KeyCode::Char('j'), KeyCode::Char('j'), KeyCode::Char('d')],
    );
    assert!(cmds.is_empty());
    assert_eq!(app.mode, InputMode::Confirm);
    let cmds = press(&mut app, &mut src, &[KeyCode::Char('n')]);
    assert!(cmds.is_empty() && app.pending.is_none());
    let cmds = press(
        &mut app,
        &mut src,
        &[KeyCode::Char('d'), KeyCode::Char('y')],
    );
    assert_eq!(cmds, vec![Command::Cancel(vec![3])]);
}

#[test]
fn retry_only_offers_failed_runs() {
    let mut src = FixtureSource::ablation(6);
    let mut app = app_with(&mut src, 80, 24);
    let cmds = press(&mut app, &mut src, &[KeyCode::Char('r')]);
    assert!(cmds.is_empty());
    assert!(app.status.as_deref().unwrap().contains("nothing to retry"));
    let cmds = press(
        &mut app,
        &mut src,
        &[KeyCode::Char('j'), KeyCode::Char('r'), KeyCode::Char('y')],
    );
    assert_eq!(cmds, vec![Command::Retry(vec![2])]);
}

#[test]
fn marks_drive_compare_and_vanish_with_their_runs() {
    let mut src = FixtureSource::ablation(6);
    let mut app = app_with(&mut src, 80, 24);
    press(
        &mut app,
        &mut src,
        &[KeyCode::Char(' '), KeyCode::Char(' ')],
    );
    assert_eq!(app.marked.iter().copied().collect::<Vec<_>>(), vec![1, 2]);
    assert_eq!(app.cursor, 2, "space moves down");
    src.runs.retain(|r| r.id != 2);
    app.set_runs(src.runs().unwrap());
    assert_eq!(app.compare_runs(), vec![1]);
    press(&mut app, &mut src, &[KeyCode::Char('u')]);
    assert!(app.marked.is_empty());
}

#[test]
fn enter_on_a_group_drills_into_it() {
    let mut src = FixtureSource::ablation(12);
    let mut app = app_with(&mut src, 80, 24);
    press(
        &mut app,
        &mut src,
        &[KeyCode::Char('a'), KeyCode::Char('j'), KeyCode::Enter],
    );
    // Layers groups sort numerically: 6 then 12.
    assert_eq!(app.group_by, None);
    assert_eq!(app.filter_text, "layers=12");
    assert!(app
        .visible
        .iter()
        .all(|&i| app.runs[i].axis("layers") == Some("12")));
}

#[test]
fn help_closes_on_any_key_but_q_still_quits() {
    let mut src = FixtureSource::ablation(3);
    let mut app = app_with(&mut src, 80, 24);
    press(
        &mut app,
        &mut src,
        &[KeyCode::Char('?'), KeyCode::Char('x')],
    );
    assert_eq!(app.mode, InputMode::Normal);
    assert!(!app.quit);
    press(
        &mut app,
        &mut src,
        &[KeyCode::Char('?'), KeyCode::Char('q')],
    );
    assert!(app.quit);
}

#[test]
fn clicks_select_rows_and_tabs() {
    let mut src = FixtureSource::ablation(12);
    let mut app = app_with(&mut src, 80, 24);
    app.update(app::tui::Action::Click(
        10,
        app::tui::layout::TABLE_BODY_TOP + 4,
    ));
    assert_eq!(app.current_run().unwrap().id, 5);
    // A second click on the selected row opens it.
    app.update(app::tui::Action::Click(
        10,
        app::tui::layout::TABLE_BODY_TOP + 4,
    ));
    assert_eq!((app.view, app.open_run), (View::Run, Some(5)));
    let sweeps_x = " Runs │ Run │ Compare │ Weights │ ".chars().count() as u16 + 1;
    app.update(app::tui::Action::Click(sweeps_x, 0));
    assert_eq!(app.view, View::Sweeps);
}

#[test]
fn a_first_page_shows_until_the_full_list_and_never_replaces_it() {
    let mut src = FixtureSource::ablation(12);
    let mut app = app::tui::App::new("t.db");
    let head: Vec<_> = src.runs().unwrap().into_iter().take(4).collect();
    app.apply(app::tui::DataMsg::RunsHead(head.clone()));
    assert!(app.partial && app.runs.len() == 4);
    app.apply(app::tui::DataMsg::Runs(src.runs().unwrap()));
    assert!(!app.partial && app.runs.len() == 12);
    app.apply(app::tui::DataMsg::RunsHead(head));
    assert!(!app.partial && app.runs.len() == 12);
}

#[test]
fn the_file_picker_opens_a_file_not_in_the_store_and_keeps_it_listed() {
    use app::tui::data::open_experiment_file;
    use app::tui::DataMsg;
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("my-study.toml");
    std::fs::write(&file, "name = \"my-study\"\ntask = \"vqa\"\n").unwrap();
    let file = file.display().to_string();

    let mut src = FixtureSource::ablation(6);
    let mut app = app_with(&mut src, 80, 24);
    press(&mut app, &mut src, &[KeyCode::Char('o')]);
    assert_eq!((app.view, app.mode), (View::Sweeps, InputMode::Open));
    // (Keys straight to the state here: the data thread would list this folder's files.)
    for c in "my-st".chars() {
        let ev = crossterm::event::Event::Key(crossterm::event::KeyEvent::from(KeyCode::Char(c)));
        let action = app::tui::action::event_to_action(app.mode, &ev).unwrap();
        assert!(app.update(action).is_empty());
    }
    app.apply(DataMsg::Files(vec![
        "experiments/demo.toml".into(),
        file.clone(),
    ]));
    assert_eq!(app.picker_matches(), [file.as_str()]);
    let screen = tui_common::render(&app);
    assert!(
        screen.contains("open an experiment file") && screen.contains("> my-st"),
        "{screen}"
    );
    let cmds = app.update(app::tui::Action::PickerCommit);
    assert_eq!(cmds, [Command::OpenFile(file.clone())]);
    assert_eq!(app.mode, InputMode::Normal);

    // What the data thread answers: the file's own name, its plan shown, focus on its cells.
    let opened = open_experiment_file(&file).unwrap();
    assert_eq!(opened.name, "my-study");
    app.apply(DataMsg::Opened(opened.clone()));
    assert_eq!(app.plan_for.as_ref(), Some(&opened));
    assert_eq!(app.sweep_pane, app::tui::state::SweepPane::Cells);
    sync(&mut app, &mut src);
    // Later lists of the store's experiments keep it, and the cursor on it.
    assert_eq!(app.experiments[app.experiment_cursor], opened);
    // Esc goes back to the list first, then leaves the view.
    press(&mut app, &mut src, &[KeyCode::Esc]);
    assert_eq!(
        (app.view, app.sweep_pane),
        (View::Sweeps, app::tui::state::SweepPane::Experiments)
    );
    press(&mut app, &mut src, &[KeyCode::Esc]);
    assert_eq!(app.view, View::Runs);

    let e = open_experiment_file("/nonexistent/study.toml").unwrap_err();
    assert!(e.contains("/nonexistent/study.toml"), "{e}");
}
