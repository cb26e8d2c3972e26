//! Finding runs and experiments named on the command line.

use store::{ExperimentRow, RunFilter, RunRow, Store};

use crate::exit::UserError;

fn user(message: String) -> anyhow::Error {
    anyhow::Error::new(UserError { code: 1, message })
}

/// Identity prefixes shorter than this are not looked up (too many runs would share them).
pub const MIN_PREFIX: usize = 4;

/// A run by id (`12`) or by identity hash prefix (at least [`MIN_PREFIX`] hex characters).
pub async fn run(store: &Store, text: &str) -> anyhow::Result<RunRow> {
    let text = text.trim();
    if let Ok(id) = text.parse::<i64>() {
        if let Some(r) = store.run(store::RunId(id)).await? {
            return Ok(r);
        }
    }
    let hex = text.bytes().all(|b| b.is_ascii_hexdigit()) && !text.is_empty();
    if !hex || text.len() < MIN_PREFIX {
        let why = if hex {
            format!(
                "an identity prefix needs at least {MIN_PREFIX} hex characters, `{text}` has {}",
                text.len()
            )
        } else {
            format!("`{text}` is neither a run id nor a hex identity prefix")
        };
        return Err(user(format!(
            "no run `{text}`: {why}; give a run id (as `towerlab ls` shows) or at least \
             {MIN_PREFIX} characters of its identity"
        )));
    }
    let lower = text.to_ascii_lowercase();
    let matches: Vec<RunRow> = store
        .list_runs(&RunFilter::default())
        .await?
        .into_iter()
        .filter(|r| r.hash.starts_with(&lower))
        .collect();
    match matches.len() {
        0 => Err(user(format!(
            "no run has an id or identity starting with `{text}`"
        ))),
        1 => Ok(matches.into_iter().next().expect("one match")),
        n => Err(user(format!(
            "`{text}` matches {n} runs ({}); give more characters or the run id",
            matches
                .iter()
                .map(|r| r.id.to_string())
                .collect::<Vec<_>>()
                .join(", ")
        ))),
    }
}

/// An experiment by name.
pub async fn experiment(store: &Store, name: &str) -> anyhow::Result<ExperimentRow> {
    match store.experiment_by_name(name).await? {
        Some(e) => Ok(e),
        None => {
            let known: Vec<String> = store
                .experiments()
                .await?
                .into_iter()
                .map(|e| e.name)
                .collect();
            Err(user(format!(
                "no experiment `{name}` in the store (known: {})",
                if known.is_empty() {
                    "none".to_string()
                } else {
                    known.join(", ")
                }
            )))
        }
    }
}
