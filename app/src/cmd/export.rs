//! `towerlab export`: metric points in long format (run, key, step, value, time).

use std::path::Path;

use store::RunFilter;

use crate::cli::{ExportArgs, ExportFormat};
use crate::runner::export::{self, Format};
use crate::runner::{self, lookup, Workspace};

pub fn run(db: &Path, args: ExportArgs) -> anyhow::Result<()> {
    let format = match args.format {
        ExportFormat::Csv => Format::Csv,
        ExportFormat::Parquet => Format::Parquet,
        ExportFormat::Arrow => Format::Arrow,
    };
    let rt = runner::runtime()?;
    rt.block_on(async move {
        let store = Workspace::new(db).open_required().await?;
        let runs: Vec<store::RunId> = if let Some(text) = &args.run {
            vec![lookup::run(&store, text).await?.id]
        } else {
            let mut filter = RunFilter::default();
            if let Some(name) = &args.experiment {
                filter.experiment = Some(lookup::experiment(&store, name).await?.id);
            }
            store
                .list_runs(&filter)
                .await?
                .into_iter()
                .map(|r| r.id)
                .collect()
        };
        let cols = export::collect(&store, &runs).await?;
        export::write(&cols, format, &args.out)?;
        println!(
            "wrote {} metric point(s) of {} run(s) to {}",
            cols.run.len(),
            runs.len(),
            args.out.display()
        );
        anyhow::Ok(())
    })
}
