//! `towerlab store copy --from A --to B`: moves a store to another file or to PostgreSQL.

use std::path::PathBuf;

use anyhow::Context as _;
use clap::{Args, Subcommand};

use crate::exit::UserError;
use crate::runner::{self, Workspace};

#[derive(Debug, Subcommand)]
pub enum StoreCommand {
    /// Copy every table of a store (experiments, runs, metrics, manager weights, artifacts,
    /// logs, workers, Slurm jobs, sync cursors) into an empty one, keeping ids: e.g. from
    /// towerlab.db to postgres://USER@HOST/DATABASE. Nothing is written unless all of it is.
    Copy(CopyArgs),
}

#[derive(Debug, Args)]
pub struct CopyArgs {
    /// The store to copy (a SQLite file or a PostgreSQL URL); default: --db.
    #[arg(long, value_name = "PATH|URL")]
    pub from: Option<PathBuf>,
    /// The empty store to copy into (a new SQLite file, or an empty PostgreSQL database).
    #[arg(long, value_name = "PATH|URL")]
    pub to: PathBuf,
}

pub fn run(db: &std::path::Path, cmd: StoreCommand) -> anyhow::Result<()> {
    let StoreCommand::Copy(args) = cmd;
    let from = Workspace::new(args.from.as_deref().unwrap_or(db));
    let to = Workspace::new(&args.to);
    let rt = runner::runtime()?;
    rt.block_on(async {
        let source = from.open_required().await?;
        let dest = to.open().await?;
        let report = match source.copy_into(&dest).await {
            Ok(report) => report,
            Err(e @ store::StoreError::CopyDestinationNotEmpty { .. }) => {
                return Err(anyhow::Error::new(UserError {
                    code: 2,
                    message: e.to_string(),
                }))
            }
            Err(e) => {
                return Err(e)
                    .with_context(|| format!("copying {} into {}", from.describe(), to.describe()))
            }
        };
        source.close().await;
        dest.close().await;
        println!("copied {} into {}:", from.describe(), to.describe());
        for (table, rows) in &report.tables {
            println!("  {table:<18} {rows:>10}");
        }
        Ok(())
    })
}
