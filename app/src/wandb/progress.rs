//! Progress bars: one for the whole sync and one per run, drawn only on a terminal.

use std::io::IsTerminal as _;
use std::time::Duration;

use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};

#[derive(Debug, Clone)]
pub struct Progress {
    multi: MultiProgress,
    total: ProgressBar,
    drawing: bool,
}

impl Progress {
    /// Bars on stderr when `wanted` and stderr is a terminal; hidden otherwise.
    pub fn new(wanted: bool, runs: u64) -> Self {
        let drawing = wanted && std::io::stderr().is_terminal();
        let target = if drawing {
            ProgressDrawTarget::stderr()
        } else {
            ProgressDrawTarget::hidden()
        };
        let multi = MultiProgress::with_draw_target(target);
        let total = multi.add(ProgressBar::new(runs));
        total.set_style(
            ProgressStyle::with_template("{prefix:>12} [{bar:30}] {pos}/{len} runs {elapsed}")
                .unwrap_or_else(|_| ProgressStyle::default_bar())
                .progress_chars("=> "),
        );
        total.set_prefix("W&B sync");
        Self {
            multi,
            total,
            drawing,
        }
    }

    /// A bar for one run counting the lines it sends.
    pub fn run(&self, name: &str, lines: u64) -> ProgressBar {
        let bar = self
            .multi
            .insert_before(&self.total, ProgressBar::new(lines));
        bar.set_style(
            ProgressStyle::with_template("{prefix:>12} [{bar:30}] {pos}/{len} lines {per_sec}")
                .unwrap_or_else(|_| ProgressStyle::default_bar())
                .progress_chars("=> "),
        );
        bar.set_prefix(name.chars().take(12).collect::<String>());
        if self.drawing {
            bar.enable_steady_tick(Duration::from_millis(250));
        }
        bar
    }

    pub fn run_done(&self, bar: &ProgressBar) {
        bar.finish_and_clear();
        self.multi.remove(bar);
    }

    /// One more run handled (synced, unchanged or failed).
    pub fn run_handled(&self) {
        self.total.inc(1);
    }

    pub fn finish(&self) {
        self.total.finish_and_clear();
    }
}
