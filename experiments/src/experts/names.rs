//! Expert names: the reference's CLIP names, hub ids (with the ids a repository is also
//! cached under), local paths, and `vlp_checkpoint` files.

use std::path::{Path, PathBuf};

use super::Role;

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
