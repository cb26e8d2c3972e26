//! The Hugging Face environment (`HF_HUB_CACHE`, `HF_HOME`, `HF_HUB_OFFLINE`, `HF_ENDPOINT`,
//! `HF_TOKEN`) and snapshots in the hub cache (`models--{org}--{name}/refs/main` →
//! `snapshots/{commit}/`).

use std::path::PathBuf;

use super::names::HubRepo;

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
