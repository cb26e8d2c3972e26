//! One module per subcommand.

mod doctor;
#[cfg(feature = "engine")]
mod model;

use crate::cli::{Cli, Command};

pub fn dispatch(cli: Cli) -> anyhow::Result<()> {
    let db = cli.db_path();
    match cli.command {
        Command::Doctor => doctor::run(&db),
        #[cfg(feature = "engine")]
        Command::Model(cmd) => model::run(cmd),
    }
}
