//! One module per subcommand.

mod doctor;
mod tui;

use crate::cli::{Cli, Command};

pub fn dispatch(cli: Cli) -> anyhow::Result<()> {
    let db = cli.db_path();
    match cli.command {
        Some(Command::Doctor) => doctor::run(&db),
        Some(Command::Tui) => tui::run(&db),
        None => no_command(&db),
    }
}

/// `towerlab` alone: the TUI in a terminal, the help otherwise (scripts, pipes).
fn no_command(db: &std::path::Path) -> anyhow::Result<()> {
    use std::io::IsTerminal;
    if std::io::stdout().is_terminal() && std::io::stdin().is_terminal() {
        return tui::run(db);
    }
    use clap::CommandFactory;
    Cli::command().print_help()?;
    Ok(())
}
