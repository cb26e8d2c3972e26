//! `towerlab demo`: `run` of the embedded demo experiment.

use std::path::Path;

use crate::cli::DemoArgs;

pub fn run(db: &Path, args: DemoArgs) -> anyhow::Result<()> {
    super::run::apply(
        db,
        None,
        args.set,
        args.slots,
        &crate::cli::ExecutorArgs::default(),
    )
}
