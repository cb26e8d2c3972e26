//! The experts' `config.json`: the architecture it decides, with transformers' defaults for
//! what it leaves out.

use std::path::Path;

use serde_json::Value as Json;

use super::{file_err, ExpertError, Role};
use crate::settings::Settings;

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

pub(super) fn setting_i64(s: &Settings, key: &str) -> i64 {
    match key {
        // 0 means width / 64: compare the count.
        "vit_num_heads" => s.vit_heads(),
        _ => serde_json::to_value(s)
            .ok()
            .and_then(|v| v.get(key).and_then(Json::as_i64))
            .unwrap_or(0),
    }
}

pub(super) fn set_i64(s: &mut Settings, key: &str, value: i64) {
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
