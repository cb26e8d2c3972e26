//! `towerlab tui`: browse, compare and queue runs from the terminal.
//!
//! A message loop (the Elm shape of the ratatui templates): terminal events become
//! [`Action`]s ([`action::event_to_action`], pure), [`App::update`] changes the state and may
//! return [`Command`]s for the data thread, and [`view::draw`] renders the state (pure). Store
//! reads happen on the [`data`] thread, which polls the [`TuiSource`] and sends snapshots
//! ([`DataMsg`]) through a channel, so the screen never waits for SQLite.

pub mod action;
pub mod axes;
pub mod data;
// Fixtures for tests and benchmarks: a scripted source and a sample store.
#[cfg(any(test, feature = "test-support"))]
pub mod fixture;
pub mod layout;
pub mod message;
pub mod model;
#[cfg(any(test, feature = "test-support"))]
pub mod sample_store;
pub mod source;
pub mod state;
pub mod store_source;
pub mod table;
pub mod terminal;
pub mod view;

use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::Context;
use crossterm::event;
use ratatui::backend::Backend;
use ratatui::Terminal;

pub use action::{Action, InputMode};
pub use data::{DataOptions, DataThread, ToData, WorkerLaunch};
pub use message::{Command, DataMsg, Interest, LocalWorker};
pub use source::{SourceError, TuiSource};
pub use state::{App, View};
pub use store_source::{Planner, StoreSource};

/// How often the store is checked for writes by other processes.
pub const POLL: Duration = Duration::from_millis(250);

/// Opens the TUI on the store at `db` and runs it until the user quits; `planner` plans and
/// queues experiment files from the Sweeps view, which opens on `open`'s plan when given (a
/// file not in the store yet, too).
pub fn run_on_store(
    db: &Path,
    planner: Option<Box<dyn Planner>>,
    open: Option<PathBuf>,
) -> anyhow::Result<()> {
    let mut source =
        StoreSource::open(db).with_context(|| format!("opening the store {}", db.display()))?;
    if let Some(planner) = planner {
        source = source.with_planner(planner);
    }
    let worker = std::env::current_exe().ok().map(|exe| WorkerLaunch {
        program: exe,
        args: vec!["worker".into(), "--db".into(), db.display().to_string()],
        log: db.with_extension("worker.log"),
    });
    let options = DataOptions {
        poll: POLL,
        experiments_dir: PathBuf::from("experiments"),
        worker,
        open: open.into_iter().collect(),
    };
    run(Box::new(source), options, db.display().to_string())
}

/// Runs the TUI on any source, in the real terminal.
pub fn run(source: Box<dyn TuiSource>, options: DataOptions, label: String) -> anyhow::Result<()> {
    let stop = terminal::termination_flag().context("installing signal handlers")?;
    let options_open = options.open.clone();
    let data = DataThread::spawn(source, options);
    let mut guard = terminal::TerminalGuard::enter().context("setting up the terminal")?;
    let mut app = App::new(label);
    if !options_open.is_empty() {
        app.view = View::Sweeps;
    }
    let size = guard.terminal.size()?;
    app.size = (size.width, size.height);
    let result = event_loop(&mut guard.terminal, &mut app, &data, || {
        stop.load(Ordering::Relaxed)
    });
    // Restore before the data thread is joined (it may wait for a local worker to stop).
    drop(guard);
    drop(data);
    result
}

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

/// Draws, reads input and data, until the app quits or `stopped()` says a signal came.
pub fn event_loop<B: Backend>(
    terminal: &mut Terminal<B>,
    app: &mut App,
    data: &DataThread,
    stopped: impl Fn() -> bool,
) -> anyhow::Result<()> {
    let mut dirty = true;
    let mut last_interest: Option<Interest> = None;
    let mut last_tick = Instant::now();
    loop {
        while let Ok(msg) = data.rx.try_recv() {
            app.apply(msg);
            dirty = true;
        }
        // Running durations tick once a second.
        if last_tick.elapsed() >= Duration::from_secs(1) {
            last_tick = Instant::now();
            dirty = true;
        }
        if dirty {
            app.now_ms = now_ms();
            terminal.draw(|f| view::draw(f, app))?;
            dirty = false;
        }
        if app.quit || stopped() {
            return Ok(());
        }
        // Our own wait first: crossterm never returns from a poll of a hung-up terminal.
        match terminal::wait_for_input(Duration::from_millis(40))? {
            terminal::Input::HungUp => return Ok(()),
            // A resize is queued by crossterm's signal handler, not on stdin: asked below.
            terminal::Input::Ready | terminal::Input::Idle => {}
        }
        if event::poll(Duration::ZERO)? {
            // Take every pending event before drawing again: fast scrolling stays smooth.
            loop {
                let ev = event::read()?;
                if let Some(action) = action::event_to_action(app.mode, &ev) {
                    if let Action::Resize(..) = action {
                        terminal.autoresize()?;
                    }
                    for cmd in app.update(action) {
                        data.send(ToData::Command(cmd));
                    }
                    dirty = true;
                }
                if app.quit || !event::poll(Duration::ZERO)? {
                    break;
                }
            }
        }
        let interest = app.interest();
        if last_interest.as_ref() != Some(&interest) {
            data.send(ToData::Interest(interest.clone()));
            last_interest = Some(interest);
        }
    }
}
