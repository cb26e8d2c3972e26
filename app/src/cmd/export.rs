//! `towerlab export`: metric points in long format, one row per point with the run's
//! experiment, cell, axes, seed and identity, plus the manager weights as a second table. For
//! an experiment, exactly the runs its file's plan shows as done.

pub mod tables;

use std::path::{Path, PathBuf};

use crate::scope::PlanScope;
use experiments::Overrides;
use store::RunFilter;

use self::tables::{ExportRun, Format};
use crate::runner::{self, lookup, Workspace};

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum ExportFormat {
    Csv,
    Parquet,
    Arrow,
}

#[derive(Debug, clap::Args)]
pub struct ExportArgs {
    /// The runs an experiment file's plan shows as done (pre-training runs included).
    #[arg(value_name = "EXPERIMENT_FILE", conflicts_with_all = ["experiment", "run"])]
    pub file: Option<PathBuf>,
    /// The same, for an experiment in the store by name (its recorded file gives the plan).
    #[arg(long, value_name = "NAME", conflicts_with = "run")]
    pub experiment: Option<String>,
    /// One run (id or identity prefix).
    #[arg(long, value_name = "RUN")]
    pub run: Option<String>,
    #[arg(long, value_enum)]
    pub format: ExportFormat,
    /// The file to write (its folder is created); the manager weights, when any run recorded
    /// them, go beside it as `<name>-manager-weights.<ext>`.
    #[arg(long, value_name = "FILE")]
    pub out: PathBuf,
    /// Override settings as the runs were planned with (`--set key=value`).
    #[arg(long = "set", value_name = "KEY=VALUE")]
    pub set: Vec<String>,
}

pub fn run(db: &Path, args: ExportArgs) -> anyhow::Result<()> {
    let format = match args.format {
        ExportFormat::Csv => Format::Csv,
        ExportFormat::Parquet => Format::Parquet,
        ExportFormat::Arrow => Format::Arrow,
    };
    let rt = runner::runtime()?;
    rt.block_on(async move {
        let store = Workspace::new(db).open_required().await?;
        let mut notes = Vec::new();
        let mut order: Vec<String> = Vec::new();
        let runs: Vec<ExportRun> = if let Some(text) = &args.run {
            vec![ExportRun::of_row(&lookup::run(&store, text).await?)]
        } else if args.file.is_some() || args.experiment.is_some() {
            let file: Option<PathBuf> = match (&args.file, &args.experiment) {
                (Some(f), _) => Some(f.clone()),
                (None, Some(name)) => {
                    let row = lookup::experiment(&store, name).await?;
                    (row.path != experiments::DEMO_PATH).then(|| PathBuf::from(row.path))
                }
                (None, None) => None,
            };
            let prepared = runner::prepare(
                file.as_deref(),
                &Overrides::from_process_env(args.set),
                false,
            )?;
            order = prepared
                .exp
                .dimensions
                .iter()
                .flat_map(|d| d.keys())
                .map(str::to_string)
                .collect();
            let scope = PlanScope::compute(&store, &prepared.exp, prepared.cells).await?;
            let used: Vec<&crate::scope::ScopedRun> = scope.done.iter().collect();
            notes = scope.describe(&used);
            notes.insert(
                0,
                format!(
                    "{} done run(s) of {}'s current plan ({})",
                    used.len(),
                    scope.experiment,
                    scope.plan.counts()
                ),
            );
            used.iter()
                .map(|s| ExportRun {
                    run: s.run.id,
                    experiment: scope.experiment.clone(),
                    cell: s.cell.key.0.clone(),
                    axes: s.cell.axes.clone(),
                    seed: Some(s.cell.seed),
                    identity: s.run.hash.clone(),
                })
                .collect()
        } else {
            store
                .list_runs(&RunFilter::default())
                .await?
                .iter()
                .map(ExportRun::of_row)
                .collect()
        };
        let metrics = tables::metrics(&store, &runs, &order).await?;
        tables::write(&metrics, format, &args.out)?;
        println!(
            "wrote {} metric point(s) of {} run(s) to {}",
            metrics.rows(),
            runs.len(),
            args.out.display()
        );
        let weights = tables::manager_weights(&store, &runs, &order).await?;
        if weights.rows() > 0 {
            let path = tables::weights_path(&args.out);
            tables::write(&weights, format, &path)?;
            println!(
                "wrote {} manager weight(s) to {}",
                weights.rows(),
                path.display()
            );
        }
        for n in notes {
            println!("{n}");
        }
        anyhow::Ok(())
    })
}
