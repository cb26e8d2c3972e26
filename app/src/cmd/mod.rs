//! One module per subcommand.

#[cfg(feature = "engine")]
pub mod data;
mod doctor;
#[cfg(feature = "engine")]
mod model;
pub mod report;
mod tui;

use crate::cli::{Cli, Command};

pub fn dispatch(cli: Cli) -> anyhow::Result<()> {
    let db = cli.db_path();
    match cli.command {
        Command::Doctor => doctor::run(&db),
        Command::Report(args) => report::run(args, &db),
        #[cfg(feature = "engine")]
        Command::Model(cmd) => model::run(cmd),
        #[cfg(feature = "engine")]
        Command::Data(cmd) => data::run(cmd),
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
