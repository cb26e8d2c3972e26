//! One module per subcommand.

#[cfg(feature = "engine")]
pub mod data;
mod doctor;
#[cfg(feature = "engine")]
mod model;
pub mod report;

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
    }
}
