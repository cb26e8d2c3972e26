//! The runner: plan/apply of experiment grids against the store, workers that claim and execute
//! queued runs, and crash safety (heartbeats, reaping, resume from checkpoints).

pub mod checkpoints;
pub mod data;
pub mod executor;
pub mod experts;
pub mod lookup;
pub mod metric_names;
pub mod plan;
pub mod results;
pub mod sink;
pub mod slurm;
pub mod ui;
pub mod worker;

use std::path::{Path, PathBuf};

use anyhow::Context as _;
use store::Store;

/// Whether `db` (a `--db` value) is a PostgreSQL URL.
pub fn is_postgres(db: &Path) -> bool {
    db.to_str().is_some_and(store::is_postgres_url)
}

/// `db` for messages: the path, or the URL without its password.
pub fn describe_db(db: &Path) -> String {
    match db.to_str().filter(|d| store::is_postgres_url(d)) {
        Some(url) => store::redact_url(url),
        None => db.display().to_string(),
    }
}

/// The store file and the folder beside it where run directories live.
#[derive(Debug, Clone)]
pub struct Workspace {
    pub db: PathBuf,
    /// `<store dir>/runs`.
    pub runs_dir: PathBuf,
}

impl Workspace {
    pub fn new(db: &Path) -> Self {
        // A PostgreSQL store has no folder: run directories go in the current one (on a
        // cluster, one every node mounts).
        let dir = db
            .parent()
            .filter(|p| !p.as_os_str().is_empty() && !is_postgres(db))
            .map_or_else(|| PathBuf::from("."), Path::to_path_buf);
        // Absolute, so recorded checkpoint paths stay valid for workers started elsewhere.
        let runs_dir = dir.join("runs");
        Self {
            db: db.to_path_buf(),
            runs_dir: std::path::absolute(&runs_dir).unwrap_or(runs_dir),
        }
    }

    /// Whether the store is there to open: the file exists, or it is a PostgreSQL URL (whose
    /// server answers, or not, when it is opened).
    pub fn store_exists(&self) -> bool {
        is_postgres(&self.db) || self.db.exists()
    }

    /// The store for messages: its file, or its URL without the password.
    pub fn describe(&self) -> String {
        describe_db(&self.db)
    }

    /// Opens (or creates) the store. A file that is not a usable store is invalid input
    /// (exit 2); the store's errors name the path themselves.
    pub async fn open(&self) -> anyhow::Result<Store> {
        match Store::open(&self.db).await {
            Ok(store) => Ok(store),
            Err(
                e @ (store::StoreError::Corrupt { .. }
                | store::StoreError::NotAStore { .. }
                | store::StoreError::NewerSchema { .. }
                | store::StoreError::NetworkFileSystem { .. }
                | store::StoreError::Connect { .. }
                | store::StoreError::NotAPgStore { .. }
                | store::StoreError::NewerPgSchema { .. }),
            ) => Err(anyhow::Error::new(crate::exit::UserError {
                code: 2,
                message: e.to_string(),
            })),
            Err(e) => Err(anyhow::Error::new(e)),
        }
    }

    /// Opens a store that must exist already: commands that act on stored runs (`cancel`,
    /// `retry`, `export`) say so instead of creating an empty one.
    pub async fn open_required(&self) -> anyhow::Result<Store> {
        if !self.store_exists() {
            return Err(anyhow::Error::new(crate::exit::UserError {
                code: 1,
                message: format!(
                    "no store at {}: run an experiment first, or point --db / TOWERLAB_DB at one",
                    self.describe()
                ),
            }));
        }
        self.open().await
    }

    /// Opens the store only if the file exists (read-only commands should not create one).
    pub async fn open_existing(&self) -> anyhow::Result<Option<Store>> {
        if self.store_exists() {
            self.open().await.map(Some)
        } else {
            Ok(None)
        }
    }
}

/// A tokio runtime for one command.
pub fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .worker_threads(2)
        .build()
        .context("starting the async runtime")
}

/// An experiment file read for the runner: the experiment, its source text, its cells with
/// their identities, and the tables its synthetic data will add (for a plan).
pub struct Prepared {
    pub exp: experiments::Experiment,
    pub source: String,
    pub cells: Vec<experiments::Cell>,
    /// Tables missing now that `queue`/`run` will make (`[data] synthetic = true`).
    pub to_make: Vec<data::MissingTable>,
    /// Folders where synthetic data was just written.
    pub made: Vec<PathBuf>,
}

impl Prepared {
    /// Says where synthetic data was made, if it was.
    pub fn print_made(&self) {
        for dir in &self.made {
            println!("made synthetic data in {}", dir.display());
        }
    }
}

/// Reads the experiment (`None`: the embedded demo) and checks that every table its runs read
/// exists, naming the ones that do not. With `make_data`, synthetic data is made first when the
/// file asks for it, and the file is read again: resolved settings take VQA's answer count from
/// the data, and identities hash the files. Without it nothing is written (a plan).
pub fn prepare(
    file: Option<&Path>,
    overrides: &experiments::Overrides,
    make_data: bool,
) -> anyhow::Result<Prepared> {
    let prepared = prepare_quietly(file, overrides, make_data)?;
    for w in &prepared.exp.warnings {
        eprintln!("warning: {w}");
    }
    Ok(prepared)
}

/// [`prepare`] without printing the experiment's warnings (the TUI shows none on its screen).
pub fn prepare_quietly(
    file: Option<&Path>,
    overrides: &experiments::Overrides,
    make_data: bool,
) -> anyhow::Result<Prepared> {
    let (mut exp, source) = plan::read_experiment(file, overrides)?;
    if make_data {
        // Identities pin the experts' commits: download what is missing first.
        exp = experts::fetch_missing(exp, file, overrides)?;
    }
    metric_names::check(&exp)?;
    let mut made = Vec::new();
    if make_data {
        made = data::ensure_synthetic(&exp)?;
        if !made.is_empty() {
            exp = plan::read_experiment(file, overrides)?.0;
        }
    }
    let missing = data::missing_tables(&exp);
    let to_make = if missing.is_empty() {
        Vec::new()
    } else if exp.data.synthetic && !make_data {
        missing
    } else {
        // With synthetic data asked for, what is still missing is not among its tables.
        return Err(data::missing_error(&exp, &missing, exp.data.synthetic));
    };
    let ctx = experiments::IdentityContext::from_files(executor::ENGINE_VERSION);
    let cells = exp.cells(&ctx);
    Ok(Prepared {
        exp,
        source,
        cells,
        to_make,
        made,
    })
}
