//! The compare view: the marked runs (or the one under the cursor), overlaid.

use super::App;

/// Runs the compare view overlays at most (colours stay distinct).
pub const MAX_COMPARE: usize = 8;

impl App {
    /// Runs the compare view shows: the marked ones, else the one under the cursor.
    pub fn compare_runs(&self) -> Vec<i64> {
        if self.marked.is_empty() {
            self.current_run().map(|r| vec![r.id]).unwrap_or_default()
        } else {
            self.marked.iter().copied().take(MAX_COMPARE).collect()
        }
    }

    /// Enter in the compare view: the first compared run in the run view.
    pub(super) fn open_in_compare(&mut self) {
        if let Some(&id) = self.compare_runs().first() {
            self.open_run_view(id);
        }
    }
}
