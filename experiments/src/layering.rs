//! Settings layering through figment, lowest to highest priority: preset → the task's recipe
//! (`crate::recipes`) → the file's base → the cell's axis values → `TOWERLAB_*` variables →
//! `--set` flags.

use std::collections::BTreeMap;

use figment::providers::Serialized;
use figment::Figment;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value as Json};

use crate::schema;
use crate::settings::Settings;

/// Prefix of the environment variables that override settings.
pub const ENV_PREFIX: &str = "TOWERLAB_";

/// Where a resolved setting's value came from (`towerlab plan --json` `sources`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SettingSource {
    /// The preset (`base` or `tiny`): the reference defaults with the paper's backbones.
    Preset,
    /// The task's recipe (the reference's named configs and launch scripts).
    Task,
    /// The experiment file: `task`, `[data]`, `[base]`, a grid axis, an include or eval entry.
    File,
    /// A `TOWERLAB_*` environment variable.
    Env,
    /// A `--set` flag.
    Set,
    /// The rules of a pre-training run: its `[pretrain]` section and the keys fixed for
    /// pre-training (`task`, `vlp`, `load_path`, `seed`).
    Pretrain,
    /// `towerlab eval` of a TowerLab checkpoint: the settings of the run that wrote it.
    Run,
}

impl SettingSource {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Preset => "preset",
            Self::Task => "task",
            Self::File => "file",
            Self::Env => "env",
            Self::Set => "set",
            Self::Pretrain => "pretrain",
            Self::Run => "run",
        }
    }
}

/// The source of every setting of a run, by key.
pub type Sources = BTreeMap<String, SettingSource>;

/// Settings given outside the experiment file.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Overrides {
    /// Environment variables, as `(name, value)`: `TOWERLAB_*` settings, and the Hugging
    /// Face variables the experts are looked up with ([`crate::experts::HUB_VARS`]).
    pub env: Vec<(String, String)>,
    /// `--set key=value` flags from the command line, in order.
    pub set: Vec<String>,
}

impl Overrides {
    /// No overrides.
    pub fn none() -> Self {
        Self::default()
    }

    /// The process's `TOWERLAB_*` variables plus the given `--set` flags.
    pub fn from_process_env(set: Vec<String>) -> Self {
        let mut env: Vec<(String, String)> = std::env::vars()
            .filter(|(k, _)| k.starts_with(ENV_PREFIX))
            .chain(crate::experts::process_vars())
            .collect();
        env.sort();
        Self { env, set }
    }
}

/// The setting an environment variable names: `TOWERLAB_LEARNING_RATE` → `learning_rate`,
/// `TOWERLAB_OPTIM__BETA1` → `optim.beta1` (nested sections).
pub fn env_key(var: &str) -> Option<String> {
    let rest = var.strip_prefix(ENV_PREFIX)?;
    (!rest.is_empty()).then(|| rest.to_ascii_lowercase().replace("__", "."))
}

/// The variable name for a setting (the inverse of [`env_key`]).
pub fn env_var(key: &str) -> String {
    format!(
        "{ENV_PREFIX}{}",
        key.replace('.', "__").to_ascii_uppercase()
    )
}

/// A layer: dotted key paths with already type-checked values.
pub(crate) type Layer = Vec<(String, Json)>;

pub(crate) fn layer_json(layer: &[(String, Json)]) -> Json {
    let mut root = Json::Object(Map::new());
    for (k, v) in layer {
        schema::set_path(&mut root, k, v.clone());
    }
    root
}

/// Merges the layers over `preset` with figment (later layers win) and extracts `Settings`.
pub(crate) fn resolve(preset: &Settings, layers: &[&[(String, Json)]]) -> Result<Settings, String> {
    let mut fig = Figment::from(Serialized::defaults(preset));
    for layer in layers {
        fig = fig.merge(Serialized::defaults(layer_json(layer)));
    }
    fig.extract::<Settings>().map_err(|e| {
        e.into_iter()
            .map(|e| e.to_string())
            .collect::<Vec<_>>()
            .join("; ")
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn env_names_map_to_keys() {
        assert_eq!(
            env_key("TOWERLAB_LEARNING_RATE").as_deref(),
            Some("learning_rate")
        );
        assert_eq!(
            env_key("TOWERLAB_OPTIM__BETA1").as_deref(),
            Some("optim.beta1")
        );
        assert_eq!(env_key("OTHER"), None);
        assert_eq!(env_var("optim.beta1"), "TOWERLAB_OPTIM__BETA1");
    }

    #[test]
    fn later_layers_win() {
        let a: Layer = vec![
            ("num_layers".into(), json!(3)),
            ("learning_rate".into(), json!(0.5)),
        ];
        let b: Layer = vec![("num_layers".into(), json!(4))];
        let s = resolve(&Settings::tiny(), &[&a, &b]).unwrap();
        assert_eq!(s.num_layers, 4);
        assert_eq!(s.learning_rate, 0.5);
        assert_eq!(s.hidden_size, Settings::tiny().hidden_size);
    }
}
