//! `towerlab tui`: the terminal UI on the store.

use std::io::IsTerminal;
use std::path::Path;

use crate::exit::UserError;

pub fn run(db: &Path) -> anyhow::Result<()> {
    if !std::io::stdout().is_terminal() || !std::io::stdin().is_terminal() {
        return Err(UserError {
            code: 2,
            message: "`towerlab tui` needs a terminal (stdin and stdout are not one)".into(),
        }
        .into());
    }
    app::tui::run_on_store(db)
}
