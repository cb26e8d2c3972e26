//! The uni-modal experts a run starts from, named as the reference names them (`vit`,
//! `tokenizer`), and found where the Hugging Face ecosystem keeps them.
//!
//! Resolution order: a local folder; else the standard hub cache (`HF_HUB_CACHE`, else
//! `HF_HOME/hub`, else `~/.cache/huggingface/hub`, in the `models--{org}--{name}/refs/main` →
//! `snapshots/{commit}/` layout that Python's `huggingface_hub` writes, so what a user already
//! downloaded is found); else a download. Nothing here touches the network: `plan` only looks
//! (local folder and cache), `queue`/`run` download what is missing first (`engine::hub`,
//! unless `HF_HUB_OFFLINE=1`), so that every identity pins the commit the run loads.
//!
//! The experts' architecture comes from their `config.json` ([`VisionConfig`], [`TextConfig`]):
//! the settings keys it decides are written from it, and one the experiment sets to another
//! value is an error naming both values.

use std::collections::HashMap;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::{Mutex, OnceLock};

use serde::{Deserialize, Serialize};
use serde_json::{json, Value as Json};
use sha2::{Digest, Sha256};

use crate::settings::Settings;

/// The reference's CLIP names (`clip_model._MODELS`, written with or without its `CLIP-`
/// prefix) and the hub repositories holding the same weights.
pub const CLIP_NAMES: [(&str, &str); 4] = [
    ("ViT-B/32", "openai/clip-vit-base-patch32"),
    ("ViT-B/16", "openai/clip-vit-base-patch16"),
    ("ViT-L/14", "openai/clip-vit-large-patch14"),
    ("ViT-L/14@336px", "openai/clip-vit-large-patch14-336"),
];

/// Short text-model ids whose repositories moved under an organisation: the hub still answers
/// the short id, and Python caches under whichever id the user typed, so both are searched.
const TEXT_ALIASES: [(&str, &str); 2] = [
    ("roberta-base", "FacebookAI/roberta-base"),
    ("roberta-large", "FacebookAI/roberta-large"),
];

/// Which expert: the settings key that names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Role {
    /// `vit`: a `CLIPVisionModel` or `CLIPModel`.
    Vision,
    /// `tokenizer`: a `RobertaModel`, whose `tokenizer.json` is the tokenizer.
    Text,
}

impl Role {
    pub fn key(self) -> &'static str {
        match self {
            Self::Vision => "vit",
            Self::Text => "tokenizer",
        }
    }

    fn what(self) -> &'static str {
        match self {
            Self::Vision => "a CLIPModel or CLIPVisionModel",
            Self::Text => "a RobertaModel",
        }
    }

    /// The files a run reads from the expert's folder (weights: the first present of
    /// [`WEIGHT_FILES`]).
    pub fn files(self) -> &'static [&'static str] {
        match self {
            Self::Vision => &["config.json"],
            Self::Text => &["config.json", "tokenizer.json"],
        }
    }
}

/// Weights file names of a Hugging Face model folder, in order of preference.
pub const WEIGHT_FILES: [&str; 2] = ["model.safetensors", "pytorch_model.bin"];

/// A hub model repository, with the other ids it may be cached under.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct HubRepo {
    /// The id downloads use (e.g. `openai/clip-vit-base-patch16`).
    pub id: String,
    /// Other ids of the same repository (e.g. `roberta-base` for `FacebookAI/roberta-base`).
    pub aliases: Vec<String>,
}

impl HubRepo {
    fn new(id: &str) -> Self {
        let mut aliases = Vec::new();
        let mut canonical = id.to_string();
        for (short, full) in TEXT_ALIASES {
            if id == short {
                canonical = full.to_string();
                aliases.push(short.to_string());
            } else if id == full {
                aliases.push(short.to_string());
            }
        }
        Self {
            id: canonical,
            aliases,
        }
    }

    /// Every id the repository may be cached under, the canonical one first.
    pub fn ids(&self) -> impl Iterator<Item = &str> {
        std::iter::once(self.id.as_str()).chain(self.aliases.iter().map(String::as_str))
    }

    /// `models--{org}--{name}`, the cache folder of one id.
    pub fn folder_name(id: &str) -> String {
        format!("models--{}", id.replace('/', "--"))
    }
}

/// Where a setting says an expert (or a checkpoint) comes from.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Location {
    /// A folder (or file) on this machine.
    Local(PathBuf),
    /// A hub repository; `file` for a single file in it (a released checkpoint).
    Hub { repo: HubRepo, file: Option<String> },
}

/// A name that is neither a local path nor a hub id.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("`{key} = \"{value}\"` is {expected}")]
pub struct NameError {
    pub key: &'static str,
    pub value: String,
    pub expected: String,
}

/// `org/name` or `name`, as the hub accepts ids.
fn is_hub_id(s: &str) -> bool {
    let part = |p: &str| {
        !p.is_empty()
            && !p.starts_with(['.', '-'])
            && !p.contains("..")
            && p.bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
    };
    match s.split_once('/') {
        Some((org, name)) => part(org) && part(name),
        None => part(s),
    }
}

/// The hub repository of a reference CLIP name (`ViT-B/16` or `CLIP-ViT-B/16`).
pub fn clip_repo(vit: &str) -> Option<&'static str> {
    let name = vit.strip_prefix("CLIP-").unwrap_or(vit);
    CLIP_NAMES
        .iter()
        .find(|(n, _)| *n == name)
        .map(|(_, repo)| *repo)
}

/// Where the expert `role` named `value` (the `vit` or `tokenizer` setting) comes from.
pub fn locate(role: Role, value: &str) -> Result<Location, NameError> {
    if role == Role::Vision {
        if let Some(repo) = clip_repo(value) {
            return Ok(Location::Hub {
                repo: HubRepo::new(repo),
                file: None,
            });
        }
    }
    let path = Path::new(value);
    if !value.is_empty() && path.exists() {
        return Ok(Location::Local(path.to_path_buf()));
    }
    if is_hub_id(value) {
        return Ok(Location::Hub {
            repo: HubRepo::new(value),
            file: None,
        });
    }
    let names: Vec<String> = CLIP_NAMES.iter().map(|(n, _)| format!("\"{n}\"")).collect();
    Err(NameError {
        key: role.key(),
        value: value.to_string(),
        expected: match role {
            Role::Vision => format!(
                "not a CLIP name ({}), an existing folder, or a hub id (org/name) of {}",
                names.join(", "),
                role.what()
            ),
            Role::Text => format!(
                "not an existing folder or a hub id (org/name) of {}",
                role.what()
            ),
        },
    })
}

/// Where `vlp_checkpoint` comes from: a local file, or `[hf://]org/name/path/in/repo`.
pub fn locate_checkpoint(value: &str) -> Result<Location, NameError> {
    let stripped = value.strip_prefix("hf://");
    let path = Path::new(value);
    if stripped.is_none() && path.exists() {
        return Ok(Location::Local(path.to_path_buf()));
    }
    let rest = stripped.unwrap_or(value);
    let mut parts = rest.splitn(3, '/');
    if let (Some(org), Some(name), Some(file)) = (parts.next(), parts.next(), parts.next()) {
        let id = format!("{org}/{name}");
        if is_hub_id(&id) && !file.is_empty() && !file.split('/').any(|p| p == "..") {
            return Ok(Location::Hub {
                repo: HubRepo::new(&id),
                file: Some(file.to_string()),
            });
        }
    }
    Err(NameError {
        key: "vlp_checkpoint",
        value: value.to_string(),
        expected: "neither an existing file nor a hub file (org/name/file, e.g. \
                   LooperXX/ManagerTower/ManagerTower_pt_base.ckpt)"
            .into(),
    })
}

/// The Hugging Face environment: where the hub cache is, whether the network may be used, and
/// what a download talks to.
#[derive(Clone, PartialEq, Eq, Default)]
pub struct HubEnv {
    /// The cache root; `None` when no variable names one and there is no home folder.
    pub cache: Option<PathBuf>,
    /// What decided the root (`HF_HUB_CACHE`, `HF_HOME`, or `~/.cache/huggingface/hub`), for
    /// messages.
    pub cache_from: &'static str,
    /// `HF_HUB_OFFLINE=1`: never touch the network.
    pub offline: bool,
    /// `HF_ENDPOINT`, else the public hub.
    pub endpoint: Option<String>,
    /// `HF_TOKEN`, else the token file `huggingface-cli login` writes.
    pub token: Option<String>,
}

impl std::fmt::Debug for HubEnv {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HubEnv")
            .field("cache", &self.cache)
            .field("offline", &self.offline)
            .field("endpoint", &self.endpoint)
            .field("token", &self.token.as_ref().map(|_| "(set)"))
            .finish()
    }
}

/// The environment variables [`HubEnv::from_vars`] reads.
pub const HUB_VARS: [&str; 6] = [
    "HF_HUB_CACHE",
    "HF_HOME",
    "HF_HUB_OFFLINE",
    "HF_ENDPOINT",
    "HF_TOKEN",
    "HOME",
];

fn truthy(v: &str) -> bool {
    matches!(
        v.trim().to_ascii_lowercase().as_str(),
        "1" | "true" | "yes" | "on"
    )
}

impl HubEnv {
    /// From `(name, value)` pairs (see [`HUB_VARS`]); the others are ignored.
    pub fn from_vars(vars: &[(String, String)]) -> Self {
        let get = |name: &str| {
            vars.iter()
                .rev()
                .find(|(k, v)| k == name && !v.is_empty())
                .map(|(_, v)| v.clone())
        };
        let home = get("HOME").map(PathBuf::from);
        let hf_home = get("HF_HOME")
            .map(PathBuf::from)
            .or_else(|| home.as_ref().map(|h| h.join(".cache").join("huggingface")));
        let (cache, cache_from) = if let Some(c) = get("HF_HUB_CACHE") {
            (Some(PathBuf::from(c)), "HF_HUB_CACHE")
        } else if let Some(h) = get("HF_HOME") {
            (Some(PathBuf::from(h).join("hub")), "HF_HOME/hub")
        } else {
            (
                home.map(|h| h.join(".cache").join("huggingface").join("hub")),
                "~/.cache/huggingface/hub",
            )
        };
        let token = get("HF_TOKEN").or_else(|| {
            let file = hf_home?.join("token");
            let t = std::fs::read_to_string(file).ok()?;
            let t = t.trim();
            (!t.is_empty()).then(|| t.to_string())
        });
        Self {
            cache,
            cache_from,
            offline: get("HF_HUB_OFFLINE").is_some_and(|v| truthy(&v)),
            endpoint: get("HF_ENDPOINT"),
            token,
        }
    }

    /// From this process's environment.
    pub fn from_process() -> Self {
        Self::from_vars(&process_vars())
    }

    /// The cache root for messages.
    pub fn cache_display(&self) -> String {
        match &self.cache {
            Some(c) => format!("{} ({})", c.display(), self.cache_from),
            None => "no hub cache (set HF_HUB_CACHE or HF_HOME)".into(),
        }
    }

    /// The snapshot of `repo` the cache holds: at `commit` when given, else the one
    /// `refs/main` points to; each id of the repository is tried.
    pub fn cached(&self, repo: &HubRepo, commit: Option<&str>) -> Option<Snapshot> {
        let root = self.cache.as_ref()?;
        for id in repo.ids() {
            let dir = root.join(HubRepo::folder_name(id));
            let commit = match commit {
                Some(c) => c.to_string(),
                None => match std::fs::read_to_string(dir.join("refs").join("main")) {
                    Ok(c) => c.trim().to_string(),
                    Err(_) => continue,
                },
            };
            if commit.is_empty() || commit.contains(['/', '\\']) || commit.starts_with('.') {
                continue;
            }
            let snapshot = dir.join("snapshots").join(&commit);
            if snapshot.is_dir() {
                return Some(Snapshot {
                    repo: repo.id.clone(),
                    commit,
                    dir: snapshot,
                });
            }
        }
        None
    }
}

/// The process's variables among [`HUB_VARS`].
pub fn process_vars() -> Vec<(String, String)> {
    HUB_VARS
        .iter()
        .filter_map(|k| std::env::var(k).ok().map(|v| (k.to_string(), v)))
        .collect()
}

/// One revision of a hub repository in the cache.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Snapshot {
    pub repo: String,
    pub commit: String,
    pub dir: PathBuf,
}

/// What a run's identity records about a file it loads: the commit of a hub snapshot, or the
/// digest of local files. Another revision of CLIP is another run.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum Pin {
    /// A hub repository at a commit; `commit` is `None` while it is not in the cache yet
    /// (`plan` before the download).
    Hub {
        repo: String,
        commit: Option<String>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        file: Option<String>,
    },
    /// Files on this machine, by content.
    Local { path: String, sha256: String },
}

impl Pin {
    /// `org/name@commit`, or the path with a digest prefix.
    pub fn describe(&self) -> String {
        match self {
            Self::Hub { repo, commit, file } => {
                let at = commit.as_deref().map_or("(not downloaded)".into(), |c| {
                    c.chars().take(12).collect::<String>()
                });
                match file {
                    Some(f) => format!("{repo}/{f}@{at}"),
                    None => format!("{repo}@{at}"),
                }
            }
            Self::Local { path, sha256 } => {
                format!("{path} (sha256 {})", sha256.get(..12).unwrap_or(sha256))
            }
        }
    }
}

/// Everything a run loads before its first step, by the setting that names it: the part of
/// its identity that says which weights it starts from.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Loads {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub vit: Option<Pin>,
    /// The text expert: its weights (fresh runs) and its `tokenizer.json` (every run).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tokenizer: Option<Pin>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub vlp_checkpoint: Option<Pin>,
}

impl Loads {
    pub fn is_empty(&self) -> bool {
        self.vit.is_none() && self.tokenizer.is_none() && self.vlp_checkpoint.is_none()
    }

    /// The identity document's `weights` entry (`None` when nothing is loaded, so identities
    /// of runs that load nothing are what they were before this existed).
    pub fn to_json(&self) -> Option<Json> {
        (!self.is_empty()).then(|| serde_json::to_value(self).unwrap_or(Json::Null))
    }

    /// From an identity document (what the worker loads is what the identity pinned).
    pub fn from_document(doc: &Json) -> Self {
        doc.get("weights")
            .and_then(|w| serde_json::from_value(w.clone()).ok())
            .unwrap_or_default()
    }

    /// The pin of an expert.
    pub fn expert(&self, role: Role) -> Option<&Pin> {
        match role {
            Role::Vision => self.vit.as_ref(),
            Role::Text => self.tokenizer.as_ref(),
        }
    }
}

/// A problem with an expert, found before anything runs.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ExpertError {
    #[error(transparent)]
    Name(#[from] NameError),
    #[error("{path}: {detail}")]
    File { path: PathBuf, detail: String },
    /// A local folder that is not a Hugging Face model folder.
    #[error("`{key}`: {path} has no {missing}: expected a Hugging Face model folder of {what}")]
    NotAModel {
        key: &'static str,
        path: PathBuf,
        missing: String,
        what: &'static str,
    },
    /// The config names another kind of model.
    #[error("`{key}`: {path} holds a `{model_type}` model, expected {what}")]
    WrongModel {
        key: &'static str,
        path: PathBuf,
        model_type: String,
        what: &'static str,
    },
    /// A setting that the expert's config decides differently.
    #[error("{0}")]
    Contradiction(Box<Contradiction>),
}

/// A setting the experiment gives another value than the expert's `config.json`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Contradiction {
    pub key: &'static str,
    pub setting: String,
    pub config_key: &'static str,
    pub config: String,
    /// The expert, with its pin.
    pub expert: String,
    /// Its `config.json`.
    pub path: PathBuf,
}

impl std::fmt::Display for Contradiction {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "`{}` = {} contradicts {}: its config.json has `{}` = {} ({}); remove `{}` from \
             the experiment or name another expert",
            self.key,
            self.setting,
            self.expert,
            self.config_key,
            self.config,
            self.path.display(),
            self.key
        )
    }
}

fn file_err(path: &Path, detail: impl Into<String>) -> ExpertError {
    ExpertError::File {
        path: path.to_path_buf(),
        detail: detail.into(),
    }
}

/// `hidden_act` names TowerLab's encoders implement (transformers' `ACT2FN`).
pub const ACTIVATIONS: [&str; 5] = [
    "gelu",
    "quick_gelu",
    "gelu_new",
    "gelu_pytorch_tanh",
    "relu",
];

/// A CLIP vision tower's `config.json` (`CLIPVisionConfig`, or `vision_config` of a
/// `CLIPConfig`); keys the file leaves out take transformers' defaults, as Python would.
#[derive(Debug, Clone, PartialEq)]
pub struct VisionConfig {
    pub hidden_size: i64,
    pub intermediate_size: i64,
    pub num_hidden_layers: i64,
    pub num_attention_heads: i64,
    pub patch_size: i64,
    pub image_size: i64,
    pub layer_norm_eps: f64,
    pub hidden_act: String,
}

/// A RoBERTa `config.json` (`RobertaConfig`); keys the file leaves out take transformers'
/// defaults.
#[derive(Debug, Clone, PartialEq)]
pub struct TextConfig {
    pub vocab_size: i64,
    pub hidden_size: i64,
    pub num_hidden_layers: i64,
    pub num_attention_heads: i64,
    pub intermediate_size: i64,
    pub max_position_embeddings: i64,
    pub type_vocab_size: i64,
    pub pad_token_id: i64,
    pub layer_norm_eps: f64,
    pub hidden_act: String,
    pub hidden_dropout_prob: f64,
    pub attention_probs_dropout_prob: f64,
}

fn read_json(path: &Path) -> Result<Json, ExpertError> {
    let text = std::fs::read_to_string(path).map_err(|e| file_err(path, e.to_string()))?;
    serde_json::from_str(&text).map_err(|e| file_err(path, format!("not valid JSON: {e}")))
}

fn int(c: &Json, key: &str, default: i64, path: &Path) -> Result<i64, ExpertError> {
    match c.get(key) {
        None | Some(Json::Null) => Ok(default),
        Some(v) => v
            .as_i64()
            .filter(|n| *n > 0 || key == "pad_token_id")
            .ok_or_else(|| file_err(path, format!("`{key}` = {v}: expected a positive integer"))),
    }
}

fn float(c: &Json, key: &str, default: f64, path: &Path) -> Result<f64, ExpertError> {
    match c.get(key) {
        None | Some(Json::Null) => Ok(default),
        Some(v) => v
            .as_f64()
            .filter(|x| x.is_finite() && *x >= 0.0)
            .ok_or_else(|| file_err(path, format!("`{key}` = {v}: expected a number"))),
    }
}

fn act(c: &Json, default: &str, path: &Path) -> Result<String, ExpertError> {
    let a = match c.get("hidden_act") {
        None | Some(Json::Null) => return Ok(default.into()),
        Some(Json::String(s)) => s.clone(),
        Some(v) => {
            return Err(file_err(
                path,
                format!("`hidden_act` = {v}: expected a name"),
            ))
        }
    };
    if ACTIVATIONS.contains(&a.as_str()) {
        Ok(a)
    } else {
        Err(file_err(
            path,
            format!(
                "`hidden_act` = \"{a}\" is not one TowerLab implements ({})",
                ACTIVATIONS.join(", ")
            ),
        ))
    }
}

impl VisionConfig {
    /// Reads a `CLIPVisionModel` or `CLIPModel` `config.json`.
    pub fn read(path: &Path) -> Result<Self, ExpertError> {
        let root = read_json(path)?;
        Self::from_json(&root, path)
    }

    pub fn from_json(root: &Json, path: &Path) -> Result<Self, ExpertError> {
        let model_type = root.get("model_type").and_then(Json::as_str).unwrap_or("");
        let c = match model_type {
            "clip_vision_model" => root,
            "clip" => root.get("vision_config").unwrap_or(&Json::Null),
            other => {
                return Err(ExpertError::WrongModel {
                    key: "vit",
                    path: path.to_path_buf(),
                    model_type: if other.is_empty() {
                        "(no model_type)".into()
                    } else {
                        other.into()
                    },
                    what: Role::Vision.what(),
                })
            }
        };
        // transformers' CLIPVisionConfig defaults.
        Ok(Self {
            hidden_size: int(c, "hidden_size", 768, path)?,
            intermediate_size: int(c, "intermediate_size", 3072, path)?,
            num_hidden_layers: int(c, "num_hidden_layers", 12, path)?,
            num_attention_heads: int(c, "num_attention_heads", 12, path)?,
            patch_size: int(c, "patch_size", 32, path)?,
            image_size: int(c, "image_size", 224, path)?,
            layer_norm_eps: float(c, "layer_norm_eps", 1e-5, path)?,
            hidden_act: act(c, "quick_gelu", path)?,
        })
    }
}

impl TextConfig {
    /// Reads a `RobertaModel` `config.json`.
    pub fn read(path: &Path) -> Result<Self, ExpertError> {
        let c = read_json(path)?;
        Self::from_json(&c, path)
    }

    pub fn from_json(c: &Json, path: &Path) -> Result<Self, ExpertError> {
        let model_type = c.get("model_type").and_then(Json::as_str).unwrap_or("");
        if model_type != "roberta" {
            return Err(ExpertError::WrongModel {
                key: "tokenizer",
                path: path.to_path_buf(),
                model_type: if model_type.is_empty() {
                    "(no model_type)".into()
                } else {
                    model_type.into()
                },
                what: Role::Text.what(),
            });
        }
        // transformers' RobertaConfig (BertConfig) defaults.
        Ok(Self {
            vocab_size: int(c, "vocab_size", 50265, path)?,
            hidden_size: int(c, "hidden_size", 768, path)?,
            num_hidden_layers: int(c, "num_hidden_layers", 12, path)?,
            num_attention_heads: int(c, "num_attention_heads", 12, path)?,
            intermediate_size: int(c, "intermediate_size", 3072, path)?,
            max_position_embeddings: int(c, "max_position_embeddings", 512, path)?,
            type_vocab_size: int(c, "type_vocab_size", 2, path)?,
            pad_token_id: int(c, "pad_token_id", 1, path)?,
            layer_norm_eps: float(c, "layer_norm_eps", 1e-12, path)?,
            hidden_act: act(c, "gelu", path)?,
            hidden_dropout_prob: float(c, "hidden_dropout_prob", 0.1, path)?,
            attention_probs_dropout_prob: float(c, "attention_probs_dropout_prob", 0.1, path)?,
        })
    }
}

/// The settings keys a vision config decides: `(settings key, config key, value)`.
pub fn vision_keys(c: &VisionConfig) -> [(&'static str, &'static str, i64); 5] {
    [
        ("input_image_embed_size", "hidden_size", c.hidden_size),
        ("vit_num_layers", "num_hidden_layers", c.num_hidden_layers),
        (
            "vit_num_heads",
            "num_attention_heads",
            c.num_attention_heads,
        ),
        ("patch_size", "patch_size", c.patch_size),
        // The resolution the position embeddings were trained at; `image_size` is the run's.
        ("resolution_before", "image_size", c.image_size),
    ]
}

/// The settings keys a text config decides: `(settings key, config key, value)`.
pub fn text_keys(c: &TextConfig) -> [(&'static str, &'static str, i64); 6] {
    [
        ("input_text_embed_size", "hidden_size", c.hidden_size),
        ("text_num_layers", "num_hidden_layers", c.num_hidden_layers),
        (
            "text_num_heads",
            "num_attention_heads",
            c.num_attention_heads,
        ),
        (
            "text_intermediate_size",
            "intermediate_size",
            c.intermediate_size,
        ),
        (
            "text_max_position_embeddings",
            "max_position_embeddings",
            c.max_position_embeddings,
        ),
        ("vocab_size", "vocab_size", c.vocab_size),
    ]
}

fn setting_i64(s: &Settings, key: &str) -> i64 {
    match key {
        // 0 means width / 64: compare the count.
        "vit_num_heads" => s.vit_heads(),
        _ => serde_json::to_value(s)
            .ok()
            .and_then(|v| v.get(key).and_then(Json::as_i64))
            .unwrap_or(0),
    }
}

fn set_i64(s: &mut Settings, key: &str, value: i64) {
    match key {
        "input_image_embed_size" => s.input_image_embed_size = value,
        "vit_num_layers" => s.vit_num_layers = value,
        "vit_num_heads" => s.vit_num_heads = value,
        "patch_size" => s.patch_size = value,
        "resolution_before" => s.resolution_before = value,
        "input_text_embed_size" => s.input_text_embed_size = value,
        "text_num_layers" => s.text_num_layers = value,
        "text_num_heads" => s.text_num_heads = value,
        "text_intermediate_size" => s.text_intermediate_size = value,
        "text_max_position_embeddings" => s.text_max_position_embeddings = value,
        "vocab_size" => s.vocab_size = value,
        _ => {}
    }
}

/// Checks the safetensors header against the file's length: a download cut short is found
/// before anything runs, without reading the tensors.
pub fn check_safetensors(path: &Path) -> Result<(), ExpertError> {
    let meta = std::fs::metadata(path).map_err(|e| file_err(path, e.to_string()))?;
    let len = meta.len();
    let mut f = std::fs::File::open(path).map_err(|e| file_err(path, e.to_string()))?;
    let mut n = [0u8; 8];
    let truncated = |detail: String| {
        file_err(
            path,
            format!("corrupt or truncated safetensors file ({detail}); delete it and fetch the model again"),
        )
    };
    f.read_exact(&mut n)
        .map_err(|_| truncated(format!("{len} bytes, no header")))?;
    let header_len = u64::from_le_bytes(n);
    if header_len > 100_000_000 || 8 + header_len > len {
        return Err(truncated(format!(
            "{len} bytes, shorter than its {header_len}-byte header"
        )));
    }
    let mut header = vec![0u8; header_len as usize];
    f.read_exact(&mut header)
        .map_err(|e| truncated(e.to_string()))?;
    let header: Json = serde_json::from_slice(&header)
        .map_err(|e| truncated(format!("unreadable header: {e}")))?;
    let end = header
        .as_object()
        .into_iter()
        .flatten()
        .filter(|(k, _)| *k != "__metadata__")
        .filter_map(|(_, t)| t.get("data_offsets")?.get(1)?.as_u64())
        .max()
        .unwrap_or(0);
    let want = 8 + header_len + end;
    if len < want {
        return Err(truncated(format!(
            "{len} bytes, its header describes {want}"
        )));
    }
    Ok(())
}

/// The weights file of a model folder.
pub fn weights_file(dir: &Path) -> Option<PathBuf> {
    WEIGHT_FILES
        .iter()
        .map(|f| dir.join(f))
        .find(|p| p.is_file())
}

/// An expert found on this machine: its folder, its config, and what the identity pins.
#[derive(Debug, Clone, PartialEq)]
pub struct Found {
    pub dir: PathBuf,
    pub weights: PathBuf,
    pub pin: Pin,
    pub vision: Option<VisionConfig>,
    pub text: Option<TextConfig>,
}

/// Whether an expert is on this machine.
#[derive(Debug, Clone, PartialEq)]
pub enum Availability {
    Found(Box<Found>),
    /// A hub repository not (completely) in the cache: a download is needed.
    Missing {
        repo: HubRepo,
        detail: String,
    },
}

/// Checks a model folder for the files `role` needs and reads its config.
pub fn inspect_dir(role: Role, dir: &Path, pin: Pin) -> Result<Found, ExpertError> {
    let not_a_model = |missing: String| ExpertError::NotAModel {
        key: role.key(),
        path: dir.to_path_buf(),
        missing,
        what: role.what(),
    };
    if !dir.is_dir() {
        return Err(not_a_model("folder (it is a file)".into()));
    }
    for f in role.files() {
        if !dir.join(f).is_file() {
            return Err(not_a_model((*f).into()));
        }
    }
    let weights = weights_file(dir).ok_or_else(|| not_a_model(WEIGHT_FILES.join(" or ")))?;
    if weights.extension().is_some_and(|e| e == "safetensors") {
        check_safetensors(&weights)?;
    }
    let config = dir.join("config.json");
    let (vision, text) = match role {
        Role::Vision => (Some(VisionConfig::read(&config)?), None),
        Role::Text => (None, Some(TextConfig::read(&config)?)),
    };
    Ok(Found {
        dir: dir.to_path_buf(),
        weights,
        pin,
        vision,
        text,
    })
}

/// A snapshot lacking a file `role` needs (an interrupted download), by name.
fn snapshot_gap(role: Role, dir: &Path) -> Option<String> {
    role.files()
        .iter()
        .find(|f| !dir.join(f).is_file())
        .map(|f| f.to_string())
        .or_else(|| {
            weights_file(dir)
                .is_none()
                .then(|| WEIGHT_FILES.join(" or "))
        })
}

/// Finds expert `role` named `value` on this machine (local folder, else the hub cache at
/// `commit`, else at `refs/main`). Never touches the network.
pub fn find(
    role: Role,
    value: &str,
    hub: &HubEnv,
    commit: Option<&str>,
) -> Result<Availability, ExpertError> {
    match locate(role, value)? {
        Location::Local(path) => {
            let dir = std::fs::canonicalize(&path).unwrap_or(path);
            let mut found = inspect_dir(
                role,
                &dir,
                Pin::Local {
                    path: dir.display().to_string(),
                    sha256: String::new(),
                },
            )?;
            if let Pin::Local { sha256, .. } = &mut found.pin {
                *sha256 = digest_files(role, &dir)?;
            }
            Ok(Availability::Found(Box::new(found)))
        }
        Location::Hub { repo, .. } => match hub.cached(&repo, commit) {
            Some(snap) => {
                if let Some(missing) = snapshot_gap(role, &snap.dir) {
                    return Ok(Availability::Missing {
                        repo,
                        detail: format!("{} lacks {missing}", snap.dir.display()),
                    });
                }
                let pin = Pin::Hub {
                    repo: snap.repo.clone(),
                    commit: Some(snap.commit.clone()),
                    file: None,
                };
                inspect_dir(role, &snap.dir, pin).map(|f| Availability::Found(Box::new(f)))
            }
            None => Ok(Availability::Missing {
                detail: format!(
                    "not in the hub cache {}{}",
                    hub.cache_display(),
                    commit.map_or(String::new(), |c| format!(" at commit {c}"))
                ),
                repo,
            }),
        },
    }
}

/// The message for an expert that is missing while the network may not be used.
pub fn offline_message(key: &str, repo: &HubRepo, hub: &HubEnv) -> String {
    format!(
        "`{key}`: {} is not in the hub cache {} and HF_HUB_OFFLINE=1 forbids downloading it; \
         fetch it where the network is reachable (`towerlab model fetch {}`, or \
         `huggingface-cli download {}`) into that cache, or unset HF_HUB_OFFLINE",
        repo.id,
        hub.cache_display(),
        repo.id,
        repo.id
    )
}

/// SHA-256 over the files a run reads from a local model folder (or of one file),
/// remembered per path, size and modification time so a plan hashes each once.
pub fn digest_files(role: Role, path: &Path) -> Result<String, ExpertError> {
    let mut files: Vec<PathBuf> = if path.is_dir() {
        role.files().iter().map(|f| path.join(f)).collect()
    } else {
        Vec::new()
    };
    match weights_file(path) {
        Some(w) => files.push(w),
        None if path.is_file() => files.push(path.to_path_buf()),
        None => {}
    }
    let mut h = Sha256::new();
    for f in files.iter().filter(|f| f.is_file()) {
        let name = f.file_name().map(|n| n.to_string_lossy().into_owned());
        h.update(name.unwrap_or_default().as_bytes());
        h.update(file_sha256(f)?.as_bytes());
    }
    Ok(hex(&h.finalize()))
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// One file's SHA-256, memoised by path, size and modification time.
pub fn file_sha256(path: &Path) -> Result<String, ExpertError> {
    type Memo = Mutex<HashMap<(PathBuf, u64, u128), String>>;
    static MEMO: OnceLock<Memo> = OnceLock::new();
    let meta = std::fs::metadata(path).map_err(|e| file_err(path, e.to_string()))?;
    let mtime = meta
        .modified()
        .ok()
        .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
        .map_or(0, |d| d.as_nanos());
    let key = (path.to_path_buf(), meta.len(), mtime);
    let memo = MEMO.get_or_init(Default::default);
    if let Some(d) = memo.lock().ok().and_then(|m| m.get(&key).cloned()) {
        return Ok(d);
    }
    let mut f = std::fs::File::open(path).map_err(|e| file_err(path, e.to_string()))?;
    let mut h = Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = f
            .read(&mut buf)
            .map_err(|e| file_err(path, e.to_string()))?;
        if n == 0 {
            break;
        }
        h.update(&buf[..n]);
    }
    let d = hex(&h.finalize());
    if let Ok(mut m) = memo.lock() {
        m.insert(key, d.clone());
    }
    Ok(d)
}

/// What applying the experts to one run's settings found.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Applied {
    /// Settings keys written from an expert's config (for `plan --settings`: their source).
    pub from_config: Vec<(&'static str, Role)>,
    /// Problems, with the settings key to point at: a bad name, a damaged file, a
    /// contradicting setting.
    pub errors: Vec<(&'static str, ExpertError)>,
    /// Hub repositories not in the cache yet (`queue`/`run` download them).
    pub missing: Vec<(Role, HubRepo, String)>,
}

/// Resolves the experts of a run that starts from them (`pretrained_experts`) on this machine
/// and writes the architecture their configs decide into `s`; a key `explicit` says the
/// experiment set is checked instead (an error naming both values when they differ).
pub fn apply(s: &mut Settings, explicit: &dyn Fn(&str) -> bool, hub: &HubEnv) -> Applied {
    let mut out = Applied::default();
    if !s.pretrained_experts {
        return out;
    }
    for role in [Role::Vision, Role::Text] {
        let value = match role {
            Role::Vision => s.vit.clone(),
            Role::Text => s.tokenizer.clone(),
        };
        let found = match find(role, &value, hub, None) {
            Ok(Availability::Found(f)) => f,
            Ok(Availability::Missing { repo, detail }) => {
                out.missing.push((role, repo, detail));
                continue;
            }
            Err(e) => {
                out.errors.push((role.key(), e));
                continue;
            }
        };
        let keys: Vec<(&'static str, &'static str, i64)> = match (&found.vision, &found.text) {
            (Some(v), _) => vision_keys(v).to_vec(),
            (_, Some(t)) => text_keys(t).to_vec(),
            _ => Vec::new(),
        };
        for (key, config_key, value) in keys {
            let current = setting_i64(s, key);
            if explicit(key) && current != value {
                out.errors.push((
                    key,
                    ExpertError::Contradiction(Box::new(Contradiction {
                        key,
                        setting: current.to_string(),
                        config_key,
                        config: value.to_string(),
                        expert: found.pin.describe(),
                        path: found.dir.join("config.json"),
                    })),
                ));
            } else if !(key == "vit_num_heads" && current == value) {
                set_i64(s, key, value);
                out.from_config.push((key, role));
            }
        }
    }
    out
}

/// What a run with settings `s` loads, pinned as far as this machine can tell (see
/// [`Loads`]); problems are [`apply`]'s to report, so they are left out here.
pub fn loads(s: &Settings, hub: &HubEnv) -> Loads {
    let mut out = Loads::default();
    if s.pretrained_experts {
        for role in [Role::Vision, Role::Text] {
            let value = match role {
                Role::Vision => &s.vit,
                Role::Text => &s.tokenizer,
            };
            let pin = match find(role, value, hub, None) {
                Ok(Availability::Found(f)) => Some(f.pin),
                Ok(Availability::Missing { repo, .. }) => Some(Pin::Hub {
                    repo: repo.id,
                    commit: None,
                    file: None,
                }),
                Err(_) => None,
            };
            match role {
                Role::Vision => out.vit = pin,
                Role::Text => out.tokenizer = pin,
            }
        }
    }
    if s.vlp && !s.vlp_checkpoint.is_empty() {
        out.vlp_checkpoint = checkpoint_pin(&s.vlp_checkpoint, hub).ok();
    }
    out
}

/// The pin of `vlp_checkpoint`: a local file's digest, or its hub repository's cached commit.
pub fn checkpoint_pin(value: &str, hub: &HubEnv) -> Result<Pin, ExpertError> {
    match locate_checkpoint(value)? {
        Location::Local(path) => {
            let path = std::fs::canonicalize(&path).unwrap_or(path);
            if !path.is_file() {
                return Err(file_err(&path, "`vlp_checkpoint` must name a file"));
            }
            Ok(Pin::Local {
                sha256: file_sha256(&path)?,
                path: path.display().to_string(),
            })
        }
        Location::Hub { repo, file } => {
            let commit = hub
                .cached(&repo, None)
                .filter(|snap| file.as_ref().is_some_and(|f| snap.dir.join(f).is_file()))
                .map(|snap| snap.commit);
            Ok(Pin::Hub {
                repo: repo.id,
                commit,
                file,
            })
        }
    }
}

/// `{"vit": ..., "tokenizer": ...}` as one-line descriptions, for messages.
pub fn describe(loads: &Loads) -> Json {
    let mut m = serde_json::Map::new();
    for (k, p) in [
        ("vit", &loads.vit),
        ("tokenizer", &loads.tokenizer),
        ("vlp_checkpoint", &loads.vlp_checkpoint),
    ] {
        if let Some(p) = p {
            m.insert(k.into(), json!(p.describe()));
        }
    }
    Json::Object(m)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reference_clip_names_map_to_openai_repositories() {
        for (name, repo) in CLIP_NAMES {
            for spelled in [name.to_string(), format!("CLIP-{name}")] {
                match locate(Role::Vision, &spelled).unwrap() {
                    Location::Hub { repo: r, .. } => assert_eq!(r.id, repo),
                    other => panic!("{other:?}"),
                }
            }
        }
        let e = locate(Role::Vision, "ViT-X/9 ??").unwrap_err().to_string();
        assert!(e.contains("ViT-B/16") && e.contains("`vit"), "{e}");
    }

    #[test]
    fn roberta_short_ids_are_cached_under_both_names() {
        let Location::Hub { repo, .. } = locate(Role::Text, "roberta-base").unwrap() else {
            panic!()
        };
        assert_eq!(repo.id, "FacebookAI/roberta-base");
        assert_eq!(
            repo.ids().collect::<Vec<_>>(),
            ["FacebookAI/roberta-base", "roberta-base"]
        );
        assert_eq!(
            HubRepo::folder_name("FacebookAI/roberta-base"),
            "models--FacebookAI--roberta-base"
        );
    }

    #[test]
    fn cache_root_follows_the_huggingface_order() {
        let v = |pairs: &[(&str, &str)]| {
            pairs
                .iter()
                .map(|(a, b)| (a.to_string(), b.to_string()))
                .collect::<Vec<_>>()
        };
        let all = HubEnv::from_vars(&v(&[
            ("HOME", "/h"),
            ("HF_HOME", "/hf"),
            ("HF_HUB_CACHE", "/c"),
        ]));
        assert_eq!(all.cache.as_deref(), Some(Path::new("/c")));
        let home = HubEnv::from_vars(&v(&[("HOME", "/h"), ("HF_HOME", "/hf")]));
        assert_eq!(home.cache.as_deref(), Some(Path::new("/hf/hub")));
        let plain = HubEnv::from_vars(&v(&[("HOME", "/h"), ("HF_HUB_OFFLINE", "1")]));
        assert_eq!(
            plain.cache.as_deref(),
            Some(Path::new("/h/.cache/huggingface/hub"))
        );
        assert!(plain.offline);
        assert!(HubEnv::from_vars(&[]).cache.is_none());
    }

    #[test]
    fn checkpoints_name_files_locally_or_on_the_hub() {
        let Location::Hub { repo, file } =
            locate_checkpoint("LooperXX/ManagerTower/ManagerTower_pt_base.ckpt").unwrap()
        else {
            panic!()
        };
        assert_eq!(repo.id, "LooperXX/ManagerTower");
        assert_eq!(file.as_deref(), Some("ManagerTower_pt_base.ckpt"));
        assert!(locate_checkpoint("hf://a/b/c/d.ckpt").is_ok());
        assert!(locate_checkpoint("nothing-here.ckpt").is_err());
    }

    #[test]
    fn truncated_safetensors_are_found_from_the_header() {
        let dir = tempfile::tempdir().unwrap();
        let header = br#"{"a":{"dtype":"F32","shape":[4],"data_offsets":[0,16]}}"#;
        let mut bytes = (header.len() as u64).to_le_bytes().to_vec();
        bytes.extend_from_slice(header);
        bytes.extend_from_slice(&[0u8; 16]);
        let p = dir.path().join("model.safetensors");
        std::fs::write(&p, &bytes).unwrap();
        check_safetensors(&p).unwrap();
        std::fs::write(&p, &bytes[..bytes.len() - 3]).unwrap();
        let e = check_safetensors(&p).unwrap_err().to_string();
        assert!(
            e.contains("truncated") && e.contains("model.safetensors"),
            "{e}"
        );
    }

    #[test]
    fn configs_read_with_transformers_defaults() {
        let clip = json!({"model_type": "clip", "vision_config": {"hidden_size": 1024,
            "num_hidden_layers": 24, "num_attention_heads": 16, "patch_size": 14}});
        let v = VisionConfig::from_json(&clip, Path::new("c.json")).unwrap();
        assert_eq!(
            (v.hidden_size, v.image_size, v.layer_norm_eps),
            (1024, 224, 1e-5)
        );
        assert_eq!(v.hidden_act, "quick_gelu");
        let bert = json!({"model_type": "bert"});
        let e = TextConfig::from_json(&bert, Path::new("b.json")).unwrap_err();
        assert!(e.to_string().contains("`bert`"), "{e}");
        let bad = json!({"model_type": "roberta", "hidden_act": "swish"});
        assert!(TextConfig::from_json(&bad, Path::new("r.json"))
            .unwrap_err()
            .to_string()
            .contains("swish"));
    }
}
