//! The data an experiment's runs read: every table a cell needs is checked before anything is
//! planned or queued, and synthetic data is made for experiments that ask for it
//! (`[data] synthetic = true`), in each run's own `data_root` (so `--set data_root=DIR` is
//! honoured), before run identities are computed (the identities hash the data files).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use experiments::settings::Split;
use experiments::{expand_table, Experiment, Settings};

use crate::exit::UserError;

/// A table file that some runs read and that does not exist.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MissingTable {
    pub path: PathBuf,
    /// The `data_root` of the runs that read it.
    pub root: String,
    /// The splits it is read for (`train`, `val`, `test`).
    pub splits: Vec<&'static str>,
    /// How many runs (cells and pre-training runs) read it.
    pub runs: usize,
}

/// The settings of every run the experiment plans: its grid cells, their pre-training runs and
/// its evals.
fn all_settings(exp: &Experiment) -> Vec<&Settings> {
    let mut out: Vec<&Settings> = Vec::new();
    for r in exp.runs() {
        out.push(&r.settings);
        if let Some((p, _)) = &r.pretrain {
            if !out.contains(&p) {
                out.push(p);
            }
        }
    }
    for e in exp.evals() {
        if !out.contains(&&e.settings) {
            out.push(&e.settings);
        }
    }
    out
}

/// The table files the experiment's runs read that do not exist, by path.
pub fn missing_tables(exp: &Experiment) -> Vec<MissingTable> {
    let mut missing: BTreeMap<PathBuf, MissingTable> = BTreeMap::new();
    for s in all_settings(exp) {
        let root = Path::new(&s.data_root);
        let mut seen_here: Vec<PathBuf> = Vec::new();
        for (split, name) in [
            (Split::Train, "train"),
            (Split::Val, "val"),
            (Split::Test, "test"),
        ] {
            for table in s.tables(split) {
                for stem in expand_table(root, &table) {
                    let path = root.join(format!("{stem}.arrow"));
                    if path.exists() {
                        continue;
                    }
                    let entry = missing.entry(path.clone()).or_insert(MissingTable {
                        path: path.clone(),
                        root: s.data_root.clone(),
                        splits: Vec::new(),
                        runs: 0,
                    });
                    if !entry.splits.contains(&name) {
                        entry.splits.push(name);
                    }
                    if !seen_here.contains(&path) {
                        entry.runs += 1;
                        seen_here.push(path);
                    }
                }
            }
        }
    }
    missing.into_values().collect()
}

/// One user error (exit code 2) naming every missing table, who reads it, and what to do.
/// `made` says that the synthetic data was just made (so those tables are not among its own).
pub fn missing_error(exp: &Experiment, missing: &[MissingTable], made: bool) -> anyhow::Error {
    let mut message = format!(
        "{} data table(s) that the runs of {} read {}:\n",
        missing.len(),
        exp.name,
        if made {
            "are not among the synthetic tables `towerlab data synth` writes"
        } else {
            "are missing"
        }
    );
    for m in missing {
        message.push_str(&format!(
            "  {} ({} tables of {} run(s))\n",
            m.path.display(),
            m.splits.join(" and "),
            m.runs
        ));
    }
    let mut roots: Vec<&str> = missing.iter().map(|m| m.root.as_str()).collect();
    roots.dedup();
    for root in roots {
        if Path::new(root).is_relative() {
            let cwd =
                std::env::current_dir().map_or_else(|_| ".".into(), |d| d.display().to_string());
            message.push_str(&format!(
                "data_root \"{root}\" is relative to the working directory ({cwd}); "
            ));
        }
    }
    message.push_str(if made {
        "name the tables it writes in [base] train_tables / val_tables / test_tables, or leave \
         them unset for the task's own"
    } else {
        "make them with `towerlab data synth --out DIR`, set [data] root (or --set data_root=DIR) \
         to the folder that holds them, or set [data] synthetic = true to have them made"
    });
    anyhow::Error::new(UserError { code: 2, message })
}

/// Makes the synthetic tables in each run's `data_root` that misses some, when the experiment
/// asks for synthetic data. Idempotent: files already there with the same bytes are left as
/// they are. Returns the folders where something was written.
pub fn ensure_synthetic(exp: &Experiment) -> anyhow::Result<Vec<PathBuf>> {
    if !exp.data.synthetic {
        return Ok(Vec::new());
    }
    let mut roots: Vec<String> = missing_tables(exp).into_iter().map(|m| m.root).collect();
    roots.sort();
    roots.dedup();
    let mut written = Vec::new();
    for root in roots {
        let dir = PathBuf::from(&root);
        if make_synthetic(&dir)? {
            written.push(dir);
        }
    }
    Ok(written)
}

/// Writes the engine's synthetic dataset (every task's tables and a tokenizer) into `dir`;
/// whether any file was written.
#[cfg(feature = "engine")]
fn make_synthetic(dir: &Path) -> anyhow::Result<bool> {
    use anyhow::Context as _;
    let report = engine::data::synth(dir, engine::data::SynthSize::Small, 0)
        .with_context(|| format!("making the synthetic data in {}", dir.display()))?;
    tracing::info!(
        "synthetic data in {}: {} file(s) written",
        report.dir.display(),
        report.written.len()
    );
    Ok(!report.written.is_empty())
}

#[cfg(not(feature = "engine"))]
fn make_synthetic(dir: &Path) -> anyhow::Result<bool> {
    anyhow::bail!(
        "the experiment asks for synthetic data in {} and some tables are missing, but this \
         towerlab was built without the engine",
        dir.display()
    )
}
