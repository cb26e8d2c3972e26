//! What a fresh run starts from, before its first step.
//!
//! - Pre-training and "without VLP" fine-tuning (`pretrained_experts`): the vision expert
//!   (`vit`: CLIP) and the text expert (`tokenizer`: RoBERTa) from their Hugging Face folders,
//!   found locally or in the hub cache at the commit the run's identity pinned, else downloaded
//!   (unless `HF_HUB_OFFLINE=1`). Their `config.json` gives the encoders' eps, activation and
//!   MLP width; the rest of the model keeps its initialisation.
//! - "With VLP" cells: their pre-training run's checkpoint (which holds the experts), or the
//!   released checkpoint `vlp_checkpoint` names.
//! - `load_path` files on top, as before.
//!
//! Every file loaded is reported with its number of tensors.

use std::path::{Path, PathBuf};
use std::sync::mpsc::Sender;

use experiments::experts::{self, Found, HubEnv, Pin, Role};

use super::checkpoint;
use super::events::Event;
use super::run::TrainJob;
use crate::hub;
use crate::{EngineError, Result};

/// The experts of a run, found on this machine (nothing when it trains them from scratch).
#[derive(Debug, Clone, Default)]
pub struct Experts {
    pub vision: Option<Found>,
    pub text: Option<Found>,
}

impl Experts {
    pub fn vision_config(&self) -> Option<&experts::VisionConfig> {
        self.vision.as_ref().and_then(|f| f.vision.as_ref())
    }

    pub fn text_config(&self) -> Option<&experts::TextConfig> {
        self.text.as_ref().and_then(|f| f.text.as_ref())
    }

    /// The tokenizer of a run that starts from the experts: the text expert's.
    pub fn tokenizer(&self) -> Option<PathBuf> {
        self.text.as_ref().map(|f| f.dir.join("tokenizer.json"))
    }
}

/// The pinned commit of a hub expert (what the identity recorded at queue time).
fn pinned_commit(pin: Option<&Pin>) -> Option<&str> {
    match pin {
        Some(Pin::Hub { commit, .. }) => commit.as_deref(),
        _ => None,
    }
}

/// Finds (or downloads) the experts of `job`, checking that local folders still hold what the
/// identity pinned.
pub fn experts(job: &TrainJob, events: &Sender<Event>) -> Result<Experts> {
    let s = &job.settings;
    if !s.pretrained_experts {
        return Ok(Experts::default());
    }
    let mut log = |message: String| {
        let _ = events.send(Event::Log { message });
    };
    let mut out = Experts::default();
    for role in [Role::Vision, Role::Text] {
        let value = match role {
            Role::Vision => &s.vit,
            Role::Text => &s.tokenizer,
        };
        let pin = job.loads.expert(role);
        let found = hub::ensure_expert(
            role,
            value,
            &job.hub,
            pinned_commit(pin),
            &mut hub::Progress::Log(&mut log),
        )?;
        if let (Some(Pin::Local { sha256, path }), Pin::Local { sha256: now, .. }) =
            (pin, &found.pin)
        {
            if sha256 != now {
                return Err(EngineError::ExpertChanged {
                    key: role.key(),
                    path: path.clone(),
                    then: sha256.get(..12).unwrap_or(sha256).to_string(),
                    now: now.get(..12).unwrap_or(now).to_string(),
                });
            }
        }
        match role {
            Role::Vision => out.vision = Some(found),
            Role::Text => out.text = Some(found),
        }
    }
    Ok(out)
}

/// One file loaded into the model.
#[derive(Debug, Clone, PartialEq)]
pub struct Loaded {
    pub path: PathBuf,
    pub tensors: usize,
    /// What it is: the expert and its pin, or the checkpoint.
    pub what: String,
}

impl Loaded {
    /// The log line (`towerlab show` lists these).
    pub fn message(&self) -> String {
        format!(
            "loaded {} tensors from {} ({})",
            self.tensors,
            self.path.display(),
            self.what
        )
    }
}

/// Loads what a fresh run starts from into `vs`: the experts unless the run starts from a VLP
/// checkpoint, then `load_path`, then the VLP checkpoint. Each file is logged as it is loaded.
pub fn initialise(
    vs: &mut tch::nn::VarStore,
    job: &TrainJob,
    found: &Experts,
    events: &Sender<Event>,
) -> Result<Vec<Loaded>> {
    let s = &job.settings;
    let mut loaded = Vec::new();
    let mut push = |l: Loaded| {
        let _ = events.send(Event::Log {
            message: l.message(),
        });
        loaded.push(l);
    };
    let vlp_file = if job.init_from.is_none() && s.vlp && !s.vlp_checkpoint.is_empty() {
        let mut log = |message: String| {
            let _ = events.send(Event::Log { message });
        };
        let commit = pinned_commit(job.loads.vlp_checkpoint.as_ref());
        Some(hub::ensure_checkpoint(
            &s.vlp_checkpoint,
            &job.hub,
            commit,
            &mut hub::Progress::Log(&mut log),
        )?)
    } else {
        None
    };
    let from_vlp = job.init_from.is_some() || vlp_file.is_some();
    if !from_vlp {
        for f in [&found.vision, &found.text].into_iter().flatten() {
            let (n, file) = load_file(vs, &f.dir)?;
            push(Loaded {
                path: file,
                tensors: n,
                what: f.pin.describe(),
            });
        }
    }
    let explicit = s
        .load_path
        .split(',')
        .map(str::trim)
        .filter(|p| !p.is_empty())
        .map(|p| (PathBuf::from(p), "load_path".to_string()));
    let vlp = job
        .init_from
        .clone()
        .map(|p| (p, "the pre-training run's checkpoint".to_string()))
        .or_else(|| vlp_file.map(|p| (p, format!("vlp_checkpoint {}", s.vlp_checkpoint))));
    for (path, what) in explicit.chain(vlp) {
        let (n, file) = load_file(vs, &path)?;
        push(Loaded {
            path: file,
            tensors: n,
            what,
        });
    }
    Ok(loaded)
}

/// The weights file a path stands for: a TowerLab run folder (its newest checkpoint), a
/// checkpoint step folder, a Hugging Face model folder, or a file.
fn weights_file(path: &Path) -> Result<PathBuf> {
    Ok(if path.join("checkpoints").join("last").is_file() {
        checkpoint::latest(&path.join("checkpoints"))?
            .map(|d| d.join("model.safetensors"))
            .unwrap_or_else(|| path.to_path_buf())
    } else if path.join("last").is_file() {
        checkpoint::latest(path)?
            .map(|d| d.join("model.safetensors"))
            .unwrap_or_else(|| path.to_path_buf())
    } else if path.join("state.json").is_file() {
        path.join("model.safetensors")
    } else {
        path.to_path_buf()
    })
}

/// Loads one source through the strict loader (`crate::weights`) in `partial` mode: task heads
/// absent from it keep their initialisation, everything else must match by name and shape (a
/// Hugging Face backbone only its own component). The number of tensors set, and the file.
fn load_file(vs: &mut tch::nn::VarStore, path: &Path) -> Result<(usize, PathBuf)> {
    let file = weights_file(path)?;
    let ckpt = crate::weights::read(&file)?;
    let report = crate::weights::load_into(vs, &ckpt, &crate::weights::LoadOptions::partial())?;
    Ok((report.loaded, ckpt.path))
}

/// The Hugging Face environment of this process (what a worker downloads with).
pub fn process_hub() -> HubEnv {
    HubEnv::from_process()
}
