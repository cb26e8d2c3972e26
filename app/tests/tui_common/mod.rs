//! Helpers shared by the TUI tests: an app fed from fixture data, and rendering to text.

#![allow(dead_code)]

use std::path::Path;

use app::tui::data::read_interest;
use app::tui::fixture::{FixtureSource, FIXTURE_NOW_MS};
use app::tui::{view, Action, App, Command, DataMsg, TuiSource};
use crossterm::event::{KeyCode, KeyEvent, KeyModifiers};
use ratatui::backend::TestBackend;
use ratatui::Terminal;

/// An app that has received the fixture's runs, at the fixture's clock, `w`×`h` cells.
pub fn app_with(source: &mut FixtureSource, w: u16, h: u16) -> App {
    let mut app = App::new("towerlab.db");
    app.now_ms = FIXTURE_NOW_MS;
    app.update(Action::Resize(w, h));
    app.apply(DataMsg::Runs(source.runs().unwrap()));
    app
}

/// Does what the data thread would: reads what the views need and applies it (twice, since
/// a detail tells which series the run view then needs).
pub fn sync(app: &mut App, source: &mut dyn TuiSource) {
    for _ in 0..2 {
        for msg in read_interest(source, &app.interest(), Path::new("experiments")) {
            app.apply(msg);
        }
    }
}

/// Presses keys (event → action → state), running returned commands against `source`.
pub fn press(app: &mut App, source: &mut dyn TuiSource, keys: &[KeyCode]) -> Vec<Command> {
    let mut all = Vec::new();
    for code in keys {
        let ev = crossterm::event::Event::Key(KeyEvent::new(*code, KeyModifiers::NONE));
        if let Some(action) = app::tui::action::event_to_action(app.mode, &ev) {
            all.extend(app.update(action));
        }
        sync(app, source);
    }
    all
}

pub fn typed(text: &str) -> Vec<KeyCode> {
    text.chars().map(KeyCode::Char).collect()
}

/// The screen as text, one line per row.
pub fn render(app: &App) -> String {
    let (w, h) = app.size;
    let mut terminal = Terminal::new(TestBackend::new(w, h)).unwrap();
    terminal.draw(|f| view::draw(f, app)).unwrap();
    let buffer = terminal.backend().buffer().clone();
    let mut out = String::new();
    for y in 0..h {
        let mut line = String::new();
        for x in 0..w {
            line.push_str(buffer[(x, y)].symbol());
        }
        out.push_str(line.trim_end());
        out.push('\n');
    }
    out
}
