//! One module per subcommand.

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

use crate::cli::{Cli, Command};

pub fn dispatch(cli: Cli) -> anyhow::Result<()> {
    let db = cli.db_path();
    match cli.command {
        Command::Doctor => doctor::run(&db),
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
    }
}
