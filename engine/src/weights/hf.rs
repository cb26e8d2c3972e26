//! Hugging Face layouts mapped to the reference (ManagerTower / BridgeTower `state_dict`) names:
//! `CLIPVisionModel`/`CLIPModel` → `vit_model.visual.*`, `RobertaModel` → `text_transformer.*`,
//! `BridgeTowerModel` (and its task wrappers) → the reference `bt_module` names.

use std::collections::BTreeMap;
use std::path::Path;

use tch::Tensor;

use super::error::WeightsError;

/// Which Hugging Face model a checkpoint holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HfModel {
    /// `CLIPVisionModel` or the vision tower of a `CLIPModel`.
    ClipVision,
    RobertaModel,
    BridgeTower,
}

impl HfModel {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::ClipVision => "Hugging Face CLIP (vision tower)",
            Self::RobertaModel => "Hugging Face RoBERTa",
            Self::BridgeTower => "Hugging Face BridgeTower",
        }
    }

    /// From `config.json`'s `model_type`.
    pub fn from_model_type(model_type: &str) -> Option<Self> {
        match model_type {
            "clip" | "clip_vision_model" => Some(Self::ClipVision),
            "roberta" | "bridgetower_text_model" => Some(Self::RobertaModel),
            "bridgetower" => Some(Self::BridgeTower),
            _ => None,
        }
    }

    /// From the key names alone, when there is no `config.json`.
    pub fn detect<'a>(mut keys: impl Iterator<Item = &'a str>) -> Option<Self> {
        let mut found = None;
        for k in keys.by_ref() {
            if k.starts_with("cross_modal_") && found.is_none() {
                // Reference names and HF BridgeTower share these; decide on the encoders.
                continue;
            }
            if k.contains("vision_model.visual.") || k.starts_with("text_model.encoder.layer.") {
                return Some(Self::BridgeTower);
            }
            if k.contains("pre_layrnorm.") || k.contains("embeddings.patch_embedding.") {
                found = Some(Self::ClipVision);
            } else if (k.starts_with("roberta.") || k.starts_with("encoder.layer."))
                && found.is_none()
            {
                found = Some(Self::RobertaModel);
            }
        }
        found
    }

    /// The reference components such a checkpoint provides (prefixes of reference keys).
    pub fn provides(self) -> Option<&'static [&'static str]> {
        match self {
            Self::ClipVision => Some(&["vit_model."]),
            Self::RobertaModel => Some(&["text_transformer."]),
            Self::BridgeTower => None,
        }
    }
}

/// The result of mapping: tensors under reference names, and the HF keys that have no reference
/// counterpart (CLIP's text tower, a language-model head, buffers...).
#[derive(Debug, Default)]
pub struct Mapped {
    pub tensors: Vec<(String, Tensor)>,
    pub dropped: Vec<String>,
}

/// Maps a Hugging Face checkpoint's tensors to reference names.
pub fn map_hf(
    model: HfModel,
    tensors: Vec<(String, Tensor)>,
    path: &Path,
) -> Result<Mapped, WeightsError> {
    match model {
        HfModel::ClipVision => map_clip(tensors, path, "vit_model.visual."),
        HfModel::RobertaModel => Ok(map_roberta(tensors)),
        HfModel::BridgeTower => map_bridgetower(tensors, path),
    }
}

fn rename_ln(k: &str) -> String {
    // Old BERT-style checkpoints name LayerNorm parameters gamma/beta.
    if let Some(p) = k.strip_suffix(".gamma") {
        format!("{p}.weight")
    } else if let Some(p) = k.strip_suffix(".beta") {
        format!("{p}.bias")
    } else {
        k.to_string()
    }
}

fn map_roberta(tensors: Vec<(String, Tensor)>) -> Mapped {
    let mut out = Mapped::default();
    for (k, t) in tensors {
        let k = rename_ln(&k);
        let rest = k.strip_prefix("roberta.").unwrap_or(&k);
        if rest.starts_with("embeddings.")
            || rest.starts_with("encoder.")
            || rest.starts_with("pooler.")
        {
            if rest == "embeddings.position_ids" || rest == "embeddings.token_type_ids" {
                out.dropped.push(k.clone());
                continue;
            }
            out.tensors.push((format!("text_transformer.{rest}"), t));
        } else {
            out.dropped.push(k.clone());
        }
    }
    out
}

/// One CLIP layer's q/k/v projections, gathered to be fused into `in_proj_*`.
#[derive(Default)]
struct Qkv {
    parts: BTreeMap<(String, char), Tensor>,
}

fn map_clip(
    tensors: Vec<(String, Tensor)>,
    path: &Path,
    target: &str,
) -> Result<Mapped, WeightsError> {
    let mut out = Mapped::default();
    let mut qkv: BTreeMap<usize, Qkv> = BTreeMap::new();
    for (k, t) in tensors {
        let rest = k.strip_prefix("vision_model.").unwrap_or(&k);
        let mapped = match rest {
            "embeddings.class_embedding" => Some("class_embedding".to_string()),
            "embeddings.patch_embedding.weight" => Some("conv1.weight".to_string()),
            "embeddings.position_embedding.weight" => Some("positional_embedding".to_string()),
            _ => {
                if let Some(p) = rest.strip_prefix("pre_layrnorm.") {
                    Some(format!("ln_pre.{p}"))
                } else if let Some(p) = rest.strip_prefix("post_layernorm.") {
                    Some(format!("ln_post.{p}"))
                } else if let Some(p) = rest.strip_prefix("encoder.layers.") {
                    let (idx, tail) = p.split_once('.').unwrap_or((p, ""));
                    let i: Option<usize> = idx.parse().ok();
                    match (i, tail) {
                        (Some(i), tail) => {
                            if let Some(proj) = tail.strip_prefix("self_attn.") {
                                let which = proj.chars().next().unwrap_or(' ');
                                let param = proj.rsplit('.').next().unwrap_or("").to_string();
                                if proj.starts_with("out_proj.") {
                                    Some(format!("transformer.resblocks.{i}.attn.{proj}"))
                                } else if matches!(which, 'q' | 'k' | 'v')
                                    && proj[1..].starts_with("_proj.")
                                {
                                    qkv.entry(i).or_default().parts.insert((param, which), t);
                                    continue;
                                } else {
                                    None
                                }
                            } else {
                                let tail = tail
                                    .replace("layer_norm1.", "ln_1.")
                                    .replace("layer_norm2.", "ln_2.")
                                    .replace("mlp.fc1.", "mlp.c_fc.")
                                    .replace("mlp.fc2.", "mlp.c_proj.");
                                if tail.starts_with("ln_") || tail.starts_with("mlp.c_") {
                                    Some(format!("transformer.resblocks.{i}.{tail}"))
                                } else {
                                    None
                                }
                            }
                        }
                        _ => None,
                    }
                } else {
                    None
                }
            }
        };
        match mapped {
            Some(name) => out.tensors.push((format!("{target}{name}"), t)),
            None => out.dropped.push(k),
        }
    }
    for (i, mut layer) in qkv {
        for param in ["weight", "bias"] {
            let mut parts = Vec::with_capacity(3);
            for which in ['q', 'k', 'v'] {
                let t = layer
                    .parts
                    .remove(&(param.to_string(), which))
                    .ok_or_else(|| {
                        WeightsError::key(
                            path,
                            format!("encoder.layers.{i}.self_attn.{which}_proj.{param}"),
                            "missing: q, k and v projections must all be present",
                        )
                    })?;
                parts.push(t);
            }
            let fused = Tensor::f_cat(&parts, 0).map_err(|e| {
                WeightsError::torch(
                    path,
                    format!("encoder.layers.{i}.self_attn.q_proj.{param}"),
                    e,
                )
            })?;
            out.tensors.push((
                format!("{target}transformer.resblocks.{i}.attn.in_proj_{param}"),
                fused,
            ));
        }
        for ((param, which), _) in layer.parts {
            out.dropped
                .push(format!("encoder.layers.{i}.self_attn.{which}_proj.{param}"));
        }
    }
    Ok(out)
}

fn map_bridgetower(tensors: Vec<(String, Tensor)>, path: &Path) -> Result<Mapped, WeightsError> {
    let mut out = Mapped::default();
    for (k, t) in tensors {
        let rest = k.strip_prefix("bridgetower.").unwrap_or(&k);
        let name = if let Some(v) = rest.strip_prefix("vision_model.visual.") {
            match v {
                "embeddings.class_embedding" => Some("vit_model.visual.class_embedding".into()),
                "embeddings.patch_embedding.weight" => Some("vit_model.visual.conv1.weight".into()),
                "embeddings.position_embedding.weight" => {
                    Some("vit_model.visual.positional_embedding".into())
                }
                "embeddings.position_ids" => None,
                other => Some(format!("vit_model.visual.{other}")),
            }
        } else if let Some(tx) = rest.strip_prefix("text_model.") {
            match tx {
                "embeddings.position_ids" | "embeddings.token_type_ids" => None,
                other => Some(format!("text_transformer.{}", rename_ln(other))),
            }
        } else if let Some(h) = rest.strip_prefix("itc_text_head.") {
            Some(format!("cross_modal_itc_text_head.{h}"))
        } else if let Some(h) = rest.strip_prefix("itc_image_head.") {
            Some(format!("cross_modal_itc_image_head.{h}"))
        } else if rest.starts_with("cross_modal_")
            || rest.starts_with("token_type_embeddings.")
            || rest.starts_with("mlm_score.")
            || rest.starts_with("itm_score.")
        {
            Some(rest.to_string())
        } else {
            None
        };
        match name {
            Some(n) => out.tensors.push((n, t)),
            None => out.dropped.push(k),
        }
    }
    if !out
        .tensors
        .iter()
        .any(|(k, _)| k.starts_with("cross_modal_text_layers."))
    {
        return Err(WeightsError::key(
            path,
            "cross_modal_text_layers.0",
            "not found: this does not look like a BridgeTower checkpoint",
        ));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(shape: &[i64]) -> Tensor {
        Tensor::zeros(shape, (tch::Kind::Float, tch::Device::Cpu))
    }

    #[test]
    fn clip_qkv_are_fused_in_q_k_v_order() {
        let q = Tensor::full([4, 4], 1.0, (tch::Kind::Float, tch::Device::Cpu));
        let k = Tensor::full([4, 4], 2.0, (tch::Kind::Float, tch::Device::Cpu));
        let v = Tensor::full([4, 4], 3.0, (tch::Kind::Float, tch::Device::Cpu));
        let tensors = vec![
            (
                "vision_model.encoder.layers.0.self_attn.v_proj.weight".into(),
                v,
            ),
            (
                "vision_model.encoder.layers.0.self_attn.k_proj.weight".into(),
                k,
            ),
            (
                "vision_model.encoder.layers.0.self_attn.q_proj.weight".into(),
                q,
            ),
            (
                "vision_model.encoder.layers.0.self_attn.q_proj.bias".into(),
                t(&[4]),
            ),
            (
                "vision_model.encoder.layers.0.self_attn.k_proj.bias".into(),
                t(&[4]),
            ),
            (
                "vision_model.encoder.layers.0.self_attn.v_proj.bias".into(),
                t(&[4]),
            ),
            ("vision_model.pre_layrnorm.weight".into(), t(&[4])),
            (
                "text_model.embeddings.token_embedding.weight".into(),
                t(&[3, 4]),
            ),
            ("logit_scale".into(), t(&[])),
        ];
        let m = map_clip(tensors, Path::new("x"), "vit_model.visual.").unwrap();
        let (_, w) = m
            .tensors
            .iter()
            .find(|(k, _)| k == "vit_model.visual.transformer.resblocks.0.attn.in_proj_weight")
            .unwrap();
        assert_eq!(w.size(), [12, 4]);
        assert_eq!(w.double_value(&[0, 0]), 1.0);
        assert_eq!(w.double_value(&[4, 0]), 2.0);
        assert_eq!(w.double_value(&[8, 0]), 3.0);
        assert!(m
            .tensors
            .iter()
            .any(|(k, _)| k == "vit_model.visual.ln_pre.weight"));
        assert_eq!(m.dropped.len(), 2);
    }

    #[test]
    fn clip_missing_value_projection_names_the_key() {
        let tensors = vec![
            (
                "encoder.layers.3.self_attn.q_proj.weight".into(),
                t(&[4, 4]),
            ),
            (
                "encoder.layers.3.self_attn.k_proj.weight".into(),
                t(&[4, 4]),
            ),
        ];
        let e = map_clip(tensors, Path::new("m.safetensors"), "vit_model.visual.")
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("encoder.layers.3.self_attn.v_proj.weight"),
            "{e}"
        );
        assert!(e.contains("m.safetensors"), "{e}");
    }

    #[test]
    fn roberta_prefix_and_lm_head() {
        let tensors = vec![
            (
                "roberta.encoder.layer.0.output.LayerNorm.gamma".into(),
                t(&[4]),
            ),
            ("roberta.embeddings.position_ids".into(), t(&[1, 4])),
            ("lm_head.dense.weight".into(), t(&[4, 4])),
        ];
        let m = map_roberta(tensors);
        assert_eq!(
            m.tensors[0].0,
            "text_transformer.encoder.layer.0.output.LayerNorm.weight"
        );
        assert_eq!(m.dropped.len(), 2);
    }

    #[test]
    fn bridgetower_task_wrappers_keep_their_heads() {
        let tensors = vec![
            (
                "bridgetower.cross_modal_text_layers.0.output.dense.weight".into(),
                t(&[4, 4]),
            ),
            (
                "bridgetower.text_model.encoder.layer.0.output.dense.weight".into(),
                t(&[4, 4]),
            ),
            (
                "bridgetower.vision_model.visual.embeddings.patch_embedding.weight".into(),
                t(&[4, 3, 2, 2]),
            ),
            ("itm_score.fc.weight".into(), t(&[2, 8])),
            ("itc_text_head.weight".into(), t(&[2, 4])),
            ("itc_cross_modal_head.weight".into(), t(&[2, 8])),
            ("logit_scale".into(), t(&[])),
        ];
        let m = map_bridgetower(tensors, Path::new("bt")).unwrap();
        let names: Vec<&str> = m.tensors.iter().map(|(k, _)| k.as_str()).collect();
        assert_eq!(
            names,
            [
                "cross_modal_text_layers.0.output.dense.weight",
                "text_transformer.encoder.layer.0.output.dense.weight",
                "vit_model.visual.conv1.weight",
                "itm_score.fc.weight",
                "cross_modal_itc_text_head.weight",
            ]
        );
        assert_eq!(m.dropped, ["itc_cross_modal_head.weight", "logit_scale"]);
    }

    #[test]
    fn detection_from_keys() {
        let clip = ["vision_model.embeddings.patch_embedding.weight"];
        assert_eq!(HfModel::detect(clip.into_iter()), Some(HfModel::ClipVision));
        let bt = [
            "cross_modal_text_layers.0.x",
            "vision_model.visual.ln_post.weight",
        ];
        assert_eq!(HfModel::detect(bt.into_iter()), Some(HfModel::BridgeTower));
        let rb = ["roberta.embeddings.word_embeddings.weight"];
        assert_eq!(HfModel::detect(rb.into_iter()), Some(HfModel::RobertaModel));
        let reference = [
            "vit_model.visual.conv1.weight",
            "text_transformer.pooler.dense.weight",
        ];
        assert_eq!(HfModel::detect(reference.into_iter()), None);
    }
}
