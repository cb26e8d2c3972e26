//! The experts an experiment's runs start from, before anything is queued: `queue` and `run`
//! download what is not on this machine (so every identity pins the commit its run loads),
//! `plan` only says what is missing.

use std::path::Path;

use experiments::{Experiment, MissingExpert, Overrides};

use crate::exit::UserError;

/// Lines for `plan`: each expert not on this machine yet.
pub fn missing_notes(exp: &Experiment) -> Vec<String> {
    exp.missing_experts
        .iter()
        .map(|m| {
            format!(
                "`{}`: {} is not on this machine yet ({}); `towerlab queue`/`run` download it \
                 before queueing{}, until then its cells show no commit and keep the preset's \
                 encoder sizes",
                m.key,
                m.repo.id,
                m.detail,
                if exp.hub.offline {
                    " (but HF_HUB_OFFLINE=1 forbids it)"
                } else {
                    ""
                }
            )
        })
        .collect()
}

fn user(message: String) -> anyhow::Error {
    anyhow::Error::new(UserError { code: 1, message })
}

/// Downloads the missing experts of `exp` into the hub cache, then reads the experiment again
/// (their configs now decide the encoder keys, and identities pin their commits). Offline, or
/// built without the engine: one error naming each model, the cache searched and how to fetch
/// it; nothing is stored.
pub fn fetch_missing(
    exp: Experiment,
    file: Option<&Path>,
    overrides: &Overrides,
) -> anyhow::Result<Experiment> {
    if exp.missing_experts.is_empty() {
        return Ok(exp);
    }
    if exp.hub.offline {
        let lines: Vec<String> = exp
            .missing_experts
            .iter()
            .map(|m| experiments::experts::offline_message(m.key, &m.repo, &exp.hub))
            .collect();
        return Err(user(format!("nothing was queued: {}", lines.join("; "))));
    }
    for m in &exp.missing_experts {
        download(m, &exp)?;
    }
    let (again, _) = super::plan::read_experiment(file, overrides)?;
    if let Some(m) = again.missing_experts.first() {
        return Err(user(format!(
            "`{}`: {} is still not usable after the download: {}",
            m.key, m.repo.id, m.detail
        )));
    }
    Ok(again)
}

#[cfg(feature = "engine")]
fn download(m: &MissingExpert, exp: &Experiment) -> anyhow::Result<()> {
    use experiments::experts::Role;
    let role = if m.key == Role::Vision.key() {
        Role::Vision
    } else {
        Role::Text
    };
    eprintln!(
        "downloading {} (`{}`) into the hub cache {}",
        m.repo.id,
        m.key,
        exp.hub.cache_display()
    );
    let snap = engine::hub::fetch_expert(
        &exp.hub,
        &m.repo,
        role,
        None,
        &mut engine::hub::Progress::Bar,
    )
    .map_err(|e| user(e.to_string()))?;
    eprintln!(
        "{} at commit {}: {}",
        m.repo.id,
        snap.commit,
        snap.dir.display()
    );
    Ok(())
}

#[cfg(not(feature = "engine"))]
fn download(m: &MissingExpert, exp: &Experiment) -> anyhow::Result<()> {
    Err(user(format!(
        "`{}`: {} is not in the hub cache {}, and this towerlab was built without the engine \
         that downloads it; fetch it with `huggingface-cli download {}`",
        m.key,
        m.repo.id,
        exp.hub.cache_display(),
        m.repo.id
    )))
}
