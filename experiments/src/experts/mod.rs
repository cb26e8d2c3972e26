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

mod cache;
mod config;
mod files;
mod names;
mod pins;

use std::path::{Path, PathBuf};

use serde_json::{json, Value as Json};

use crate::settings::Settings;

pub use cache::{process_vars, HubEnv, Snapshot, HUB_VARS};
pub use config::{text_keys, vision_keys, TextConfig, VisionConfig, ACTIVATIONS};
pub use files::{check_safetensors, digest_files, file_sha256, weights_file, WEIGHT_FILES};
pub use names::{clip_repo, locate, locate_checkpoint, HubRepo, Location, NameError, CLIP_NAMES};
pub use pins::{Loads, Pin};

use config::{set_i64, setting_i64};

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
