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

/// THE call site of the engine's synthetic data generator. It lives on the `data` branch
/// (`engine::data::synth::synth(dir, SynthSize::Small, seed)`); until that is merged the
/// runner says so instead of training on files that do not exist.
fn make_synthetic(dir: &std::path::Path) -> anyhow::Result<()> {
    anyhow::bail!(
        "the experiment asks for synthetic data in {} and some tables are missing, but this \
         build has no synthetic data generator yet (engine::data::synth); run \
         `towerlab data synth {}` first",
        dir.display(),
        dir.display()
    )
}
