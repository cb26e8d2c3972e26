//! One module per subcommand.

#[cfg(feature = "engine")]
pub mod data;
mod doctor;

use crate::cli::{Cli, Command};

pub fn dispatch(cli: Cli) -> anyhow::Result<()> {
    let db = cli.db_path();
    match cli.command {
        Command::Doctor => doctor::run(&db),
        #[cfg(feature = "engine")]
        Command::Data(cmd) => data::run(cmd),
    }
}
