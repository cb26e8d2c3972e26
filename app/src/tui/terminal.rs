//! Entering and leaving the terminal UI. The terminal is restored on every way out: normal exit
//! and errors (the guard's `Drop`), panics (a panic hook), and signals (the loop watches a flag
//! set by SIGTERM/SIGINT/SIGHUP handlers; Ctrl-C in raw mode is a key and quits as `q` does).

use std::io::{self, Stdout};
use std::sync::atomic::AtomicBool;
use std::sync::{Arc, Once};

use crossterm::cursor::Show;
use crossterm::event::{DisableMouseCapture, EnableMouseCapture};
use crossterm::execute;
use crossterm::terminal::{
    disable_raw_mode, enable_raw_mode, EnterAlternateScreen, LeaveAlternateScreen,
};
use ratatui::backend::CrosstermBackend;
use ratatui::Terminal;

pub type Term = Terminal<CrosstermBackend<Stdout>>;

/// Restores the terminal when dropped.
pub struct TerminalGuard {
    pub terminal: Term,
}

impl TerminalGuard {
    pub fn enter() -> io::Result<TerminalGuard> {
        install_panic_hook();
        enable_raw_mode()?;
        let mut out = io::stdout();
        if let Err(e) = execute!(out, EnterAlternateScreen, EnableMouseCapture) {
            let _ = restore();
            return Err(e);
        }
        match Terminal::new(CrosstermBackend::new(out)) {
            Ok(mut terminal) => {
                let _ = terminal.clear();
                Ok(TerminalGuard { terminal })
            }
            Err(e) => {
                let _ = restore();
                Err(e)
            }
        }
    }
}

impl Drop for TerminalGuard {
    fn drop(&mut self) {
        let _ = restore();
    }
}

/// Leaves raw mode and the alternate screen and shows the cursor. Safe to call twice.
pub fn restore() -> io::Result<()> {
    let raw = disable_raw_mode();
    execute!(
        io::stdout(),
        DisableMouseCapture,
        LeaveAlternateScreen,
        Show
    )?;
    raw
}

fn install_panic_hook() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        let previous = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            // Restore first, so the panic message lands on a normal screen.
            let _ = restore();
            previous(info);
        }));
    });
}

/// A flag raised by SIGTERM, SIGINT or SIGHUP; the event loop quits cleanly when it is set.
pub fn termination_flag() -> io::Result<Arc<AtomicBool>> {
    let flag = Arc::new(AtomicBool::new(false));
    for signal in [
        signal_hook::consts::SIGTERM,
        signal_hook::consts::SIGINT,
        signal_hook::consts::SIGHUP,
    ] {
        signal_hook::flag::register(signal, Arc::clone(&flag))?;
    }
    Ok(flag)
}

/// What the terminal's input holds after [`wait_for_input`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Input {
    /// Bytes (or an event crossterm queued, such as a resize) may be read.
    Ready,
    /// Nothing came within the timeout.
    Idle,
    /// The terminal is gone (its pty was closed: a killed tmux or ssh session).
    HungUp,
}

/// Waits up to `timeout` for input on stdin, the terminal crossterm reads. crossterm itself,
/// asked to poll a hung-up terminal, reads end-of-file in a loop and never returns (so the
/// signal flag was never looked at, and the process spun until killed); this wait sees the
/// hang-up first and says so.
pub fn wait_for_input(timeout: std::time::Duration) -> io::Result<Input> {
    use rustix::event::{PollFd, PollFlags, Timespec};
    let stdin = io::stdin();
    let mut fds = [PollFd::new(&stdin, PollFlags::IN)];
    let timeout = Timespec {
        tv_sec: timeout.as_secs() as _,
        tv_nsec: timeout.subsec_nanos() as _,
    };
    match rustix::event::poll(&mut fds, Some(&timeout)) {
        Ok(0) => Ok(Input::Idle),
        Ok(_) => {
            let revents = fds[0].revents();
            if revents.intersects(PollFlags::HUP | PollFlags::ERR | PollFlags::NVAL) {
                Ok(Input::HungUp)
            } else {
                Ok(Input::Ready)
            }
        }
        // A signal (SIGWINCH, SIGTERM) ends the wait early: the loop looks again.
        Err(rustix::io::Errno::INTR) => Ok(Input::Idle),
        Err(e) => Err(e.into()),
    }
}
