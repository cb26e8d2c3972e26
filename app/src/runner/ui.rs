//! Progress bars: one for the sweep and one per active run, drawn only when stdout is a
//! terminal; otherwise one plain line per finished run.

use std::io::IsTerminal as _;
use std::time::Duration;

use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};

#[derive(Clone)]
pub struct Ui {
    multi: MultiProgress,
    pub interactive: bool,
    sweep: Option<ProgressBar>,
    /// Lines and bars go to stderr (the command's result owns stdout).
    stderr: bool,
}

impl Ui {
    /// Bars when stdout is a terminal, plain lines otherwise.
    pub fn new() -> Self {
        Self::on(false)
    }

    /// Bars when stderr is a terminal, plain lines otherwise, all on stderr: for commands
    /// whose stdout is their result (`towerlab eval --json`).
    pub fn on_stderr() -> Self {
        Self::on(true)
    }

    fn on(stderr: bool) -> Self {
        let interactive = if stderr {
            std::io::stderr().is_terminal()
        } else {
            std::io::stdout().is_terminal()
        };
        let target = match (interactive, stderr) {
            (false, _) => ProgressDrawTarget::hidden(),
            (true, false) => ProgressDrawTarget::stdout(),
            (true, true) => ProgressDrawTarget::stderr(),
        };
        Self {
            multi: MultiProgress::with_draw_target(target),
            interactive,
            sweep: None,
            stderr,
        }
    }

    /// Adds the sweep bar: `total` runs, `done` already ended.
    pub fn with_sweep(mut self, total: u64, done: u64) -> Self {
        let bar = self.multi.add(ProgressBar::new(total));
        bar.set_style(
            ProgressStyle::with_template("sweep {bar:30.green/white} {pos}/{len} runs {msg}")
                .unwrap_or_else(|_| ProgressStyle::default_bar()),
        );
        bar.set_position(done);
        self.sweep = Some(bar);
        self
    }

    /// One run ended.
    pub fn run_ended(&self) {
        if let Some(s) = &self.sweep {
            s.inc(1);
        }
    }

    /// A bar for one active run.
    pub fn run_bar(&self, label: &str) -> ProgressBar {
        let bar = self.multi.add(ProgressBar::new(0));
        bar.set_style(
            ProgressStyle::with_template("  {prefix:40!} {bar:25.cyan/white} {pos}/{len} {msg}")
                .unwrap_or_else(|_| ProgressStyle::default_bar()),
        );
        bar.set_prefix(label.to_string());
        if self.interactive {
            bar.enable_steady_tick(Duration::from_millis(500));
        }
        bar
    }

    /// A line above the bars (or on stdout without them).
    pub fn println(&self, line: &str) {
        if self.interactive {
            let _ = self.multi.println(line);
        } else if self.stderr {
            eprintln!("{line}");
        } else {
            println!("{line}");
        }
    }

    pub fn finish(&self) {
        if let Some(s) = &self.sweep {
            s.finish_and_clear();
        }
    }
}

impl Default for Ui {
    fn default() -> Self {
        Self::new()
    }
}
