//! `towerlab demo`: `run` of the embedded demo experiment.

use std::path::Path;

use crate::cli::{ExecutorArgs, SlotArgs};

#[derive(Debug, clap::Args)]
pub struct DemoArgs {
    #[command(flatten)]
    pub slots: SlotArgs,
    /// Override a setting of the demo, e.g. `--set max_steps=200`.
    #[arg(long = "set", value_name = "KEY=VALUE")]
    pub set: Vec<String>,
}

pub fn run(db: &Path, args: DemoArgs) -> anyhow::Result<()> {
    super::run::apply(db, None, args.set, args.slots, &ExecutorArgs::default())
}
