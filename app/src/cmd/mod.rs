//! One module per subcommand.

mod doctor;
pub mod sync;

use crate::cli::{Cli, Command};

pub fn dispatch(cli: Cli) -> anyhow::Result<()> {
    let db = cli.db_path();
    match cli.command {
        Command::Doctor => doctor::run(&db),
        Command::Sync(args) => sync::run(&db, args),
    }
}
