//! One module per subcommand.

pub mod cancel;
#[cfg(feature = "engine")]
pub mod data;
pub mod demo;
pub mod doctor;
#[cfg(feature = "train")]
pub mod eval;
pub mod export;
pub mod ls;
#[cfg(feature = "engine")]
pub mod model;
pub mod plan;
pub mod queue;
pub mod report;
pub mod retry;
pub mod run;
pub mod run_slurm;
pub mod show;
pub mod store;
pub mod sync;
pub mod tui;
pub mod worker;

use crate::cli::{Cli, Command};

pub fn dispatch(cli: Cli) -> anyhow::Result<()> {
    let db = cli.db_path();
    match cli.command {
        Some(Command::Doctor) => doctor::run(&db),
        Some(Command::Report(args)) => report::run(args, &db),
        #[cfg(feature = "engine")]
        Some(Command::Model(cmd)) => model::run(cmd),
        #[cfg(feature = "engine")]
        Some(Command::Data(cmd)) => data::run(cmd),
        Some(Command::Tui { file }) => tui::run(&db, file),
        None => no_command(&db),
        Some(Command::Plan(args)) => plan::run(&db, args),
        Some(Command::Queue(args)) => queue::run(&db, args),
        Some(Command::Run(args)) => run::run(&db, *args),
        Some(Command::Demo(args)) => demo::run(&db, args),
        Some(Command::Worker(args)) => worker::run(&db, args),
        Some(Command::Ls(args)) => ls::run(&db, args),
        Some(Command::Show(args)) => show::run(&db, args),
        Some(Command::Cancel(args)) => cancel::run(&db, args),
        Some(Command::Retry(args)) => retry::run(&db, args),
        Some(Command::Export(args)) => export::run(&db, args),
        #[cfg(feature = "train")]
        Some(Command::Eval(args)) => eval::run(&db, args),
        Some(Command::Sync(args)) => sync::run(&db, args),
        Some(Command::Store(cmd)) => store::run(&db, cmd),
    }
}

/// `towerlab` alone: the TUI in a terminal, the help otherwise (scripts, pipes).
fn no_command(db: &std::path::Path) -> anyhow::Result<()> {
    use std::io::IsTerminal;
    if std::io::stdout().is_terminal() && std::io::stdin().is_terminal() {
        return tui::run(db, None);
    }
    use clap::CommandFactory;
    Cli::command().print_help()?;
    Ok(())
}
