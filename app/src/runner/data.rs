//! Synthetic data for experiments that ask for it (`[data] synthetic = true`), made before run
//! identities are computed (the identities hash the data files).

use experiments::{data_files, Experiment};

/// The data files the experiment's runs read that do not exist yet.
pub fn missing_files(exp: &Experiment) -> Vec<std::path::PathBuf> {
    let mut missing: Vec<_> = exp
        .runs()
        .iter()
        .flat_map(|r| data_files(&r.settings))
        .filter(|p| !p.exists())
        .collect();
    missing.sort();
    missing.dedup();
    missing
}

/// Makes the synthetic tables in `[data] root` when the experiment asks for synthetic data and
/// some are missing. Returns whether it wrote anything.
pub fn ensure_synthetic(exp: &Experiment) -> anyhow::Result<bool> {
    if !exp.data.synthetic || missing_files(exp).is_empty() {
        return Ok(false);
    }
    make_synthetic(std::path::Path::new(&exp.data.root))?;
    Ok(true)
}

/// Writes the engine's synthetic dataset (every task's tables and a tokenizer) into `dir`.
#[cfg(feature = "engine")]
fn make_synthetic(dir: &std::path::Path) -> anyhow::Result<()> {
    let report = engine::data::synth(dir, engine::data::SynthSize::Small, 0)?;
    tracing::info!(
        "wrote synthetic data: {} files in {}",
        report.files.len(),
        report.dir.display()
    );
    Ok(())
}

#[cfg(not(feature = "engine"))]
fn make_synthetic(dir: &std::path::Path) -> anyhow::Result<()> {
    anyhow::bail!(
        "the experiment asks for synthetic data in {} and some tables are missing, but this \
         towerlab was built without the engine",
        dir.display()
    )
}
