//! `towerlab report`: the experiment's table and figures, read from the store.

use std::path::{Path, PathBuf};

use crate::scope::PlanScope;
use anyhow::{bail, Context};
use clap::Args;
use experiments::{Experiment, Overrides};
use reports::{Format, WriteOptions};
use store::Store;

use crate::exit::UserError;

#[derive(Debug, Args)]
pub struct ReportArgs {
    /// The experiment file (its name selects the runs in the store).
    #[arg(
        value_name = "FILE",
        required_unless_present = "experiment",
        conflicts_with = "experiment"
    )]
    pub file: Option<PathBuf>,
    /// An experiment already in the store, by name (its recorded file gives the metrics).
    #[arg(long, value_name = "NAME")]
    pub experiment: Option<String>,
    /// Output folder (default: reports/<experiment>).
    #[arg(long, value_name = "DIR")]
    pub out: Option<PathBuf>,
    /// Formats to write, comma separated: md, tex, csv, png, svg.
    #[arg(long, value_name = "LIST", default_value = "md,tex,csv,png,svg")]
    pub format: String,
    /// Print the table to the terminal instead of writing files.
    #[arg(long)]
    pub print: bool,
    /// Baseline cell for Δ and significance, as `axis=value[,axis=value]` (default: the file's).
    #[arg(long, value_name = "AXES")]
    pub baseline: Option<String>,
    /// Step of the manager-weight figures (default: each run's last).
    #[arg(long, value_name = "STEP")]
    pub step: Option<u64>,
    /// Add a p-value column, with the test used, per metric to table.md and table.tex (the
    /// CSV always has them).
    #[arg(long)]
    pub p_values: bool,
    /// Print what the experiment cost instead of writing files: GPU- or CPU-hours per cell
    /// (its seeds summed, its pre-training run counted once) and in total.
    #[arg(long)]
    pub cost: bool,
    /// Override settings as the runs were planned with (`--set key=value`).
    #[arg(long = "set", value_name = "KEY=VALUE")]
    pub set: Vec<String>,
}

pub fn run(args: ReportArgs, db: &Path) -> anyhow::Result<()> {
    let formats = parse_formats(&args.format)?;
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    rt.block_on(async {
        if !(crate::runner::is_postgres(db) || db.exists()) {
            bail!(user(
                1,
                format!(
                    "{}: no store here (run an experiment first, e.g. `make demo`)",
                    crate::runner::describe_db(db)
                )
            ));
        }
        let store = Store::open(db).await?;
        let (exp, cells) = load_experiment(&store, &args).await?;
        let scope = PlanScope::compute(&store, &exp, cells).await?;
        let input = crate::report_input::build_input(
            &store,
            &exp,
            &scope,
            args.baseline.as_deref(),
            args.step,
        )
        .await?;
        let used: Vec<&crate::scope::ScopedRun> = scope.done_cells().collect();
        let notes = scope.describe(&used);
        if args.cost {
            print!("{}", reports::render_cost(&reports::cost_table(&input)));
            for n in &notes {
                println!("{n}");
            }
            return Ok(());
        }
        if args.print {
            let mut table = reports::build_table(&input)?;
            table.p_values = args.p_values;
            print!("{}", reports::render_terminal(&table));
            for n in &notes {
                println!("{n}");
            }
            return Ok(());
        }
        let out = args
            .out
            .clone()
            .unwrap_or_else(|| PathBuf::from("reports").join(&exp.name));
        let options = WriteOptions {
            manager: reports::ManagerOptions {
                step: args.step,
                ..Default::default()
            },
            p_values: args.p_values,
            ..Default::default()
        };
        let written = tokio::task::spawn_blocking(move || {
            reports::write_all_with(&input, &out, &formats, &options)
        })
        .await??;
        for f in &written.files {
            println!("{}", f.display());
        }
        for s in &written.skipped {
            println!("skipped: {s}");
        }
        println!(
            "{} done run(s) of {}'s current plan ({})",
            used.len(),
            exp.name,
            scope.plan.counts()
        );
        for n in &notes {
            println!("{n}");
        }
        Ok(())
    })
}

fn user(code: u8, message: String) -> UserError {
    UserError { code, message }
}

fn parse_formats(list: &str) -> anyhow::Result<Vec<Format>> {
    list.split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(|s| match s {
            "md" | "markdown" => Ok(Format::Markdown),
            "tex" | "latex" => Ok(Format::Latex),
            "csv" => Ok(Format::Csv),
            "png" => Ok(Format::Png),
            "svg" => Ok(Format::Svg),
            other => Err(anyhow::Error::new(user(
                2,
                format!("--format: unknown format `{other}` (expected md, tex, csv, png, svg)"),
            ))),
        })
        .collect()
}

/// The experiment (by file, or by the file its name recorded) and its cells with identities:
/// the report holds the runs its plan shows as done.
async fn load_experiment(
    store: &Store,
    args: &ReportArgs,
) -> anyhow::Result<(Experiment, Vec<experiments::Cell>)> {
    let overrides = Overrides::from_process_env(args.set.clone());
    let path = match (&args.file, &args.experiment) {
        (Some(file), _) => Some(file.clone()),
        (None, Some(name)) => {
            let row = store
                .experiment_by_name(name)
                .await?
                .ok_or_else(|| user(1, format!("no experiment named `{name}` in the store")))?;
            (row.path != experiments::DEMO_PATH).then(|| PathBuf::from(row.path))
        }
        (None, None) => bail!(user(
            2,
            "give an experiment file or --experiment NAME".into()
        )),
    };
    let prepared = crate::runner::prepare(path.as_deref(), &overrides, false)?;
    Ok((prepared.exp, prepared.cells))
}
