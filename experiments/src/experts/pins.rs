//! What a run's identity records about the weights it loads.

use serde::{Deserialize, Serialize};
use serde_json::Value as Json;

use super::Role;

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
