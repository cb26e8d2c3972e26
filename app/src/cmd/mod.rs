//! One module per subcommand.

#[cfg(feature = "engine")]
pub mod data;
mod doctor;
#[cfg(feature = "engine")]
mod model;
pub mod report;
mod tui;
mod cancel;
mod demo;
mod doctor;
mod export;
mod ls;
mod plan;
mod queue;
mod retry;
mod run;
mod show;
mod worker;
pub mod sync;

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
        Command::Plan(args) => plan::run(&db, args),
        Command::Queue(args) => queue::run(&db, args),
        Command::Run(args) => run::run(&db, args),
        Command::Demo(args) => demo::run(&db, args),
        Command::Worker(args) => worker::run(&db, args),
        Command::Ls(args) => ls::run(&db, args),
        Command::Show(args) => show::run(&db, args),
        Command::Cancel(args) => cancel::run(&db, args),
        Command::Retry(args) => retry::run(&db, args),
        Command::Export(args) => export::run(&db, args),
        Command::Sync(args) => sync::run(&db, args),
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
