//! Architecture sizes inferred from tensor shapes (reference key names), the way the reference
//! does it where it does (CLIP width, layers, heads = width / 64, patch, grid), and parameter
//! counts per component.

use std::collections::BTreeSet;

use experiments::{ManagerType, ManagerWeightType, Settings};
use tch::Tensor;

/// RoBERTa (or BERT) text encoder sizes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TextArch {
    pub vocab_size: i64,
    pub hidden_size: i64,
    pub num_layers: i64,
    /// From `config.json` when known, else hidden / 64 when that divides (the RoBERTa and BERT
    /// convention); `None` when shapes cannot tell.
    pub num_heads: Option<i64>,
    pub intermediate_size: i64,
    pub max_position_embeddings: i64,
}

/// CLIP ViT sizes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VisionArch {
    pub width: i64,
    pub num_layers: i64,
    /// width / 64, as the reference's CLIP builder sets it.
    pub num_heads: i64,
    pub patch_size: i64,
    /// Side of the patch grid the position embeddings were trained for.
    pub grid: i64,
    /// `grid * patch_size`.
    pub image_size: i64,
    /// `ln_separate.*` LayerNorms present: `vit_layernorm_shared = false` (0 when shared).
    pub ln_separate: i64,
}

impl VisionArch {
    /// `vit_remove_last`, as far as the keys tell: the reference builds one `ln_separate` per
    /// block *before* the top block is removed, so one more than the blocks means it was.
    /// `None` without `ln_separate` (a shared `ln_post` leaves no trace of it).
    pub fn remove_last(&self) -> Option<bool> {
        (self.ln_separate > 0).then_some(self.ln_separate == self.num_layers + 1)
    }
}

/// The cross-modal part: which fusion design and its sizes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FusionArch {
    pub kind: ManagerType,
    pub hidden_size: i64,
    /// Cross-modal attention heads: from `config.json` when known, else hidden / 64 when that
    /// divides (the reference configs); `None` when shapes cannot tell.
    pub num_heads: Option<i64>,
    pub num_layers: i64,
    pub managed_layers_text: i64,
    pub managed_layers_image: i64,
    pub weight_type: ManagerWeightType,
    /// Rows of `token_type_embeddings` (3 after NLVR2 fine-tuning).
    pub token_types: i64,
    /// METER's `meter_fusion` (`text_gate` and `image_gate` present).
    pub meter_fusion: bool,
    /// Cross-modal feed-forward width / hidden size.
    pub mlp_ratio: Option<i64>,
}

/// Everything inferable from a state dict.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Architecture {
    pub text: Option<TextArch>,
    pub vision: Option<VisionArch>,
    pub fusion: Option<FusionArch>,
    /// Task heads present (`vqa_classifier`, `itm_score`, ...).
    pub heads: Vec<String>,
    /// VQA answer count, when a VQA head is present.
    pub vqa_labels: Option<i64>,
    /// `head_hidden_scale`, from the hidden width of a 2-layer task head.
    pub head_hidden_scale: Option<i64>,
    /// `task_head_layers` of the VQA, NLVR2 or SNLI-VE classifier: 2 with its output layer
    /// `…classifier.3`, else 1.
    pub task_head_layers: Option<i64>,
}

/// The task-head prefixes of the reference (the parts a new task replaces); `temperature` (ITC)
/// is a whole key.
pub const HEAD_PREFIXES: [&str; 9] = [
    "mlm_score.",
    "itm_score.",
    "vqa_classifier.",
    "nlvr2_classifier.",
    "snli_classifier.",
    "rank_output.",
    "cross_modal_itc_text_head.",
    "cross_modal_itc_image_head.",
    "temperature",
];

/// True for a key that belongs to a task head.
pub fn is_head_key(key: &str) -> bool {
    HEAD_PREFIXES
        .iter()
        .any(|p| key.starts_with(p) && (p.ends_with('.') || key == *p))
}

fn shape(tensors: &[(String, Tensor)], key: &str) -> Option<Vec<i64>> {
    let size = tensors
        .iter()
        .find(|(k, _)| k == key)
        .map(|(_, t)| t.size())?;
    // A crafted file's tensor of another rank is not inferred from (and `check_ranks` names it).
    (size.len() == expected_rank(key).unwrap_or(size.len())).then_some(size)
}

/// The rank of the tensors whose shapes the inference reads.
fn expected_rank(key: &str) -> Option<usize> {
    if key == "vit_model.visual.conv1.weight" {
        Some(4)
    } else if key.ends_with(".layer_scores") {
        None
    } else if key.ends_with(".weight")
        || key.ends_with("positional_embedding")
        || key.ends_with("position_embeddings")
    {
        Some(2)
    } else {
        None
    }
}

/// The keys [`Architecture::infer`] reads shapes from.
const SHAPE_KEYS: &[&str] = &[
    "text_transformer.embeddings.word_embeddings.weight",
    "text_transformer.encoder.layer.0.intermediate.dense.weight",
    "text_transformer.embeddings.position_embeddings.weight",
    "vit_model.visual.conv1.weight",
    "vit_model.visual.positional_embedding",
    "cross_modal_text_layers.0.attention.self.query.weight",
    "cross_modal_text_layers.0.intermediate.dense.weight",
    "token_type_embeddings.weight",
    "vqa_classifier.0.weight",
    "vqa_classifier.3.weight",
    "snli_classifier.0.weight",
    "snli_classifier.3.weight",
    "nlvr2_classifier.0.weight",
    "nlvr2_classifier.3.weight",
];

/// The first tensor the architecture is read from whose rank is not what the reference
/// writes (a crafted or damaged file), as the error naming the file and key.
pub fn check_ranks(
    path: &std::path::Path,
    tensors: &[(String, Tensor)],
) -> Result<(), super::WeightsError> {
    for key in SHAPE_KEYS {
        let Some((_, t)) = tensors.iter().find(|(k, _)| k == key) else {
            continue;
        };
        let size = t.size();
        if let Some(rank) = expected_rank(key).filter(|&r| r != size.len()) {
            return Err(super::WeightsError::key(
                path,
                *key,
                format!("a tensor of shape {size:?}: expected rank {rank}"),
            ));
        }
    }
    Ok(())
}

/// Distinct values of the numeric path component right after `prefix`.
fn indices(tensors: &[(String, Tensor)], prefix: &str) -> BTreeSet<i64> {
    tensors
        .iter()
        .filter_map(|(k, _)| k.strip_prefix(prefix))
        .filter_map(|rest| rest.split('.').next()?.parse().ok())
        .collect()
}

fn has_prefix(tensors: &[(String, Tensor)], prefix: &str) -> bool {
    tensors.iter().any(|(k, _)| k.starts_with(prefix))
}

fn count(tensors: &[(String, Tensor)], prefix: &str) -> i64 {
    indices(tensors, prefix).len() as i64
}

impl Architecture {
    /// Infers what the tensors (under reference names) describe. `hf_config` supplies what
    /// shapes cannot tell (the text head count).
    pub fn infer(tensors: &[(String, Tensor)], hf_config: Option<&serde_json::Value>) -> Self {
        let text = infer_text(tensors, hf_config);
        let vision = infer_vision(tensors, hf_config);
        let fusion = infer_fusion(tensors).map(|mut f| {
            let from_cfg = hf_config
                .and_then(|c| c.get("num_attention_heads"))
                .and_then(|v| v.as_i64());
            if from_cfg.is_some() {
                f.num_heads = from_cfg;
            }
            f
        });
        let heads: BTreeSet<String> = tensors
            .iter()
            .filter(|(k, _)| is_head_key(k))
            .map(|(k, _)| k.split('.').next().unwrap_or(k).to_string())
            .collect();
        let vqa_labels = shape(tensors, "vqa_classifier.3.weight")
            .or_else(|| shape(tensors, "vqa_classifier.0.weight"))
            .map(|s| s[0]);
        let head_hidden_scale = ["vqa_classifier.0.weight", "snli_classifier.0.weight"]
            .iter()
            .find_map(|k| shape(tensors, k))
            .zip(
                shape(tensors, "vqa_classifier.3.weight")
                    .or(shape(tensors, "snli_classifier.3.weight")),
            )
            .map(|(first, _)| first[0] / first[1].max(1))
            .or_else(|| {
                let first = shape(tensors, "nlvr2_classifier.0.weight")?;
                shape(tensors, "nlvr2_classifier.3.weight")?;
                Some(first[0] * 2 / first[1].max(1))
            });
        let classifiers = ["vqa_classifier", "nlvr2_classifier", "snli_classifier"];
        let task_head_layers = if classifiers
            .iter()
            .any(|c| shape(tensors, &format!("{c}.3.weight")).is_some())
        {
            Some(2)
        } else if classifiers
            .iter()
            .any(|c| shape(tensors, &format!("{c}.0.weight")).is_some())
        {
            Some(1)
        } else {
            None
        };
        Self {
            text,
            vision,
            fusion,
            heads: heads.into_iter().collect(),
            vqa_labels,
            head_hidden_scale,
            task_head_layers,
        }
    }

    /// `base` with every inferred size written over it.
    pub fn to_settings(&self, base: &Settings) -> Settings {
        let mut s = base.clone();
        if let Some(t) = &self.text {
            s.vocab_size = t.vocab_size;
            s.input_text_embed_size = t.hidden_size;
            s.text_num_layers = t.num_layers;
            if let Some(h) = t.num_heads {
                s.text_num_heads = h;
            }
            s.text_intermediate_size = t.intermediate_size;
            s.text_max_position_embeddings = t.max_position_embeddings;
        }
        if let Some(v) = &self.vision {
            s.input_image_embed_size = v.width;
            if v.ln_separate > 0 {
                s.vit_layernorm_shared = false;
            } else if self
                .fusion
                .as_ref()
                .is_some_and(|f| f.kind != ManagerType::Meter)
            {
                // METER never builds `ln_separate`, whatever the key says.
                s.vit_layernorm_shared = true;
            }
            s.vit_remove_last = v.remove_last().unwrap_or(s.vit_remove_last);
            s.vit_num_layers = v.num_layers + i64::from(s.vit_remove_last);
            s.vit_num_heads = v.num_heads;
            s.patch_size = v.patch_size;
            s.resolution_before = v.image_size;
        }
        if let Some(f) = &self.fusion {
            s.manager_type = f.kind;
            s.hidden_size = f.hidden_size;
            if let Some(h) = f.num_heads {
                s.num_heads = h;
            }
            s.num_layers = f.num_layers;
            s.meter_fusion = f.meter_fusion;
            if let Some(r) = f.mlp_ratio {
                s.mlp_ratio = r;
            }
            if matches!(
                f.kind,
                ManagerType::Aaue | ManagerType::Saue | ManagerType::Sae
            ) {
                s.managed_layers_text = f.managed_layers_text;
                s.managed_layers_image = f.managed_layers_image;
                s.manager_weight_type = f.weight_type;
            }
        }
        if let Some(n) = self.vqa_labels {
            s.vqav2_label_size = n;
        }
        if let Some(h) = self.head_hidden_scale {
            s.head_hidden_scale = h;
        }
        // METER's classifiers are always 2 layers, whatever the key says.
        let meter = self
            .fusion
            .as_ref()
            .is_some_and(|f| f.kind == ManagerType::Meter);
        if let Some(n) = self.task_head_layers.filter(|_| !meter) {
            s.task_head_layers = n;
        }
        s
    }
}

fn infer_text(tensors: &[(String, Tensor)], cfg: Option<&serde_json::Value>) -> Option<TextArch> {
    let word = shape(
        tensors,
        "text_transformer.embeddings.word_embeddings.weight",
    )?;
    let hidden = word[1];
    let intermediate = shape(
        tensors,
        "text_transformer.encoder.layer.0.intermediate.dense.weight",
    )
    .map_or(hidden * 4, |s| s[0]);
    let positions = shape(
        tensors,
        "text_transformer.embeddings.position_embeddings.weight",
    )
    .map_or(0, |s| s[0]);
    let cfg_heads = cfg.and_then(|c| {
        // BridgeTower: `text_config`; RoBERTa: top level.
        c.get("text_config")
            .and_then(|t| t.get("num_attention_heads"))
            .or_else(|| c.get("num_attention_heads"))
            .and_then(|v| v.as_i64())
    });
    Some(TextArch {
        vocab_size: word[0],
        hidden_size: hidden,
        num_layers: count(tensors, "text_transformer.encoder.layer."),
        num_heads: cfg_heads.or((hidden % 64 == 0).then_some(hidden / 64)),
        intermediate_size: intermediate,
        max_position_embeddings: positions,
    })
}

fn infer_vision(
    tensors: &[(String, Tensor)],
    cfg: Option<&serde_json::Value>,
) -> Option<VisionArch> {
    let conv = shape(tensors, "vit_model.visual.conv1.weight")?;
    let width = conv[0];
    let patch = conv[3];
    let grid = shape(tensors, "vit_model.visual.positional_embedding")
        .map_or(0, |s| ((s[0] - 1) as f64).sqrt().round() as i64);
    Some(VisionArch {
        width,
        num_layers: count(tensors, "vit_model.visual.transformer.resblocks."),
        num_heads: clip_heads(cfg).unwrap_or((width / 64).max(1)),
        patch_size: patch,
        grid,
        image_size: grid * patch,
        ln_separate: count(tensors, "vit_model.visual.ln_separate."),
    })
}

/// The head count of a Hugging Face CLIP config (`CLIPVisionModel` or `CLIPModel`); BridgeTower
/// configs have none (its builder uses width / 64, as the reference).
fn clip_heads(cfg: Option<&serde_json::Value>) -> Option<i64> {
    let cfg = cfg?;
    match cfg.get("model_type")?.as_str()? {
        "clip_vision_model" => cfg.get("num_attention_heads")?.as_i64(),
        "clip" => cfg
            .get("vision_config")?
            .get("num_attention_heads")?
            .as_i64(),
        _ => None,
    }
}

fn layer_norms(tensors: &[(String, Tensor)], tower: &str, layer: i64) -> i64 {
    count(
        tensors,
        &format!("cross_modal_{tower}_manager_tower.{layer}.manager_layer.LayerNorm."),
    )
}

fn infer_fusion(tensors: &[(String, Tensor)]) -> Option<FusionArch> {
    let q = shape(
        tensors,
        "cross_modal_text_layers.0.attention.self.query.weight",
    )?;
    let hidden = q[0];
    let num_layers = count(tensors, "cross_modal_text_layers.");
    let has = |needle: &str| tensors.iter().any(|(k, _)| k.contains(needle));
    let token_types = shape(tensors, "token_type_embeddings.weight").map_or(2, |s| s[0]);
    let has_managers = has("_manager_tower.");
    let kind = if has_managers {
        if has(".linear_controller.") {
            ManagerType::Aaue
        } else if num_layers > 2
            && layer_norms(tensors, "text", 2) > layer_norms(tensors, "text", 0) + 1
        {
            // Static aggregation over all previous cross-modal layers: the slot count grows.
            ManagerType::Sae
        } else {
            ManagerType::Saue
        }
    } else if has("_link_tower.") || has("cross_modal_text_layernorm.") {
        ManagerType::Bt
    } else {
        ManagerType::Meter
    };
    let (managed_text, managed_image) = if has_managers {
        (
            layer_norms(tensors, "text", 0),
            layer_norms(tensors, "image", 0),
        )
    } else {
        (num_layers, num_layers)
    };
    let weight_type = shape(
        tensors,
        "cross_modal_text_manager_tower.0.manager_layer.layer_scores",
    )
    .map_or(ManagerWeightType::Vector, |s| {
        if s.last() == Some(&1) && hidden != 1 {
            ManagerWeightType::Scalar
        } else {
            ManagerWeightType::Vector
        }
    });
    Some(FusionArch {
        kind,
        hidden_size: hidden,
        num_heads: (hidden % 64 == 0).then_some(hidden / 64),
        num_layers,
        managed_layers_text: managed_text,
        managed_layers_image: managed_image,
        weight_type,
        token_types,
        meter_fusion: kind == ManagerType::Meter
            && has_prefix(tensors, "text_gate.")
            && has_prefix(tensors, "image_gate."),
        mlp_ratio: shape(
            tensors,
            "cross_modal_text_layers.0.intermediate.dense.weight",
        )
        .filter(|s| hidden > 0 && s[0] % hidden == 0)
        .map(|s| s[0] / hidden),
    })
}

/// The parts of a model that parameter counts are reported for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Component {
    TextEncoder,
    VisionEncoder,
    /// Shared projections, token-type and layer embeddings.
    Projections,
    /// BridgeTower's LinkTower and first-layer LayerNorms.
    Bridges,
    /// METER's `meter_fusion` gates (`text_gate`, `image_gate`).
    Gates,
    Managers,
    CrossModalLayers,
    Poolers,
    Heads,
    /// Reference keys nothing uses (CLIP's text positions, `ln_final`, the RoBERTa pooler).
    Unused,
    Other,
}

impl Component {
    pub fn label(self) -> &'static str {
        match self {
            Self::TextEncoder => "text encoder",
            Self::VisionEncoder => "vision encoder",
            Self::Projections => "projections + embeddings",
            Self::Bridges => "bridge layers (LinkTower)",
            Self::Gates => "METER fusion gates",
            Self::Managers => "managers",
            Self::CrossModalLayers => "cross-modal layers",
            Self::Poolers => "poolers",
            Self::Heads => "task heads",
            Self::Unused => "unused reference keys",
            Self::Other => "other",
        }
    }

    /// Which component a reference key belongs to.
    pub fn of(key: &str) -> Self {
        if super::load::is_known_unused(key) {
            Self::Unused
        } else if key.starts_with("text_transformer.") {
            Self::TextEncoder
        } else if key.starts_with("vit_model.") {
            Self::VisionEncoder
        } else if key.contains("_manager_tower.") {
            Self::Managers
        } else if key.starts_with("cross_modal_text_layers.")
            || key.starts_with("cross_modal_image_layers.")
        {
            Self::CrossModalLayers
        } else if key.contains("_link_tower.")
            || key.starts_with("cross_modal_text_layernorm.")
            || key.starts_with("cross_modal_image_layernorm.")
        {
            Self::Bridges
        } else if key.starts_with("text_gate.") || key.starts_with("image_gate.") {
            Self::Gates
        } else if key.contains("_pooler.") {
            Self::Poolers
        } else if is_head_key(key) {
            Self::Heads
        } else if key.contains("_transform.")
            || key.starts_with("token_type_embeddings.")
            || key.starts_with("layer_embeddings_")
        {
            Self::Projections
        } else {
            Self::Other
        }
    }
}

/// Parameter counts per component, in [`Component`] order, zero counts left out.
pub fn parameter_counts(tensors: &[(String, Tensor)]) -> Vec<(Component, i64)> {
    let mut counts = std::collections::BTreeMap::new();
    for (k, t) in tensors {
        *counts.entry(Component::of(k)).or_insert(0) += t.numel() as i64;
    }
    counts.into_iter().filter(|(_, n)| *n > 0).collect()
}

/// Manager parameter counts per manager: `(tower, layer index, kind, parameters)`, where kind
/// is "AAUE" when the manager has a `linear_controller`, else "SAUE".
pub fn manager_counts(tensors: &[(String, Tensor)]) -> Vec<(String, i64, &'static str, i64)> {
    let mut out = Vec::new();
    for tower in ["text", "image"] {
        let prefix = format!("cross_modal_{tower}_manager_tower.");
        for i in indices(tensors, &prefix) {
            let p = format!("{prefix}{i}.");
            let mine: Vec<&(String, Tensor)> =
                tensors.iter().filter(|(k, _)| k.starts_with(&p)).collect();
            let n: i64 = mine.iter().map(|(_, t)| t.numel() as i64).sum();
            let kind = if mine.iter().any(|(k, _)| k.contains(".linear_controller.")) {
                "AAUE"
            } else {
                "SAUE"
            };
            out.push((tower.to_string(), i, kind, n));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn z(shape: &[i64]) -> Tensor {
        Tensor::zeros(shape, (tch::Kind::Float, tch::Device::Cpu))
    }

    #[test]
    fn clip_sizes_follow_the_reference_builder() {
        let mut t = vec![
            (
                "vit_model.visual.conv1.weight".to_string(),
                z(&[768, 3, 16, 16]),
            ),
            (
                "vit_model.visual.positional_embedding".to_string(),
                z(&[325, 768]),
            ),
        ];
        for i in 0..12 {
            t.push((
                format!("vit_model.visual.transformer.resblocks.{i}.attn.in_proj_weight"),
                z(&[1, 1]),
            ));
        }
        let v = Architecture::infer(&t, None).vision.unwrap();
        assert_eq!(
            v,
            VisionArch {
                width: 768,
                num_layers: 12,
                num_heads: 12,
                patch_size: 16,
                grid: 18,
                image_size: 288,
                ln_separate: 0,
            }
        );
    }

    fn named(keys: &[(String, Vec<i64>)]) -> Vec<(String, Tensor)> {
        keys.iter().map(|(k, s)| (k.clone(), z(s))).collect()
    }

    /// The keys of a tiny model built from `s`.
    fn model_keys(s: &Settings) -> Vec<(String, Tensor)> {
        let cfg = crate::model::ModelConfig::from_settings(s).unwrap();
        let vs = tch::nn::VarStore::new(tch::Device::Cpu);
        let _m = crate::model::TowerModel::new(&vs.root(), &cfg).unwrap();
        named(&crate::weights::variable_shapes(&vs))
    }

    /// (`vit_layernorm_shared`, `vit_remove_last`, `vit_num_layers`) of recovered settings.
    fn vit_of(s: &Settings) -> (bool, bool, i64) {
        (s.vit_layernorm_shared, s.vit_remove_last, s.vit_num_layers)
    }

    #[test]
    fn ln_separate_means_unshared_and_one_extra_means_remove_last() {
        let mut s = Settings::tiny();
        s.manager_type = ManagerType::Bt;
        s.vit_layernorm_shared = false;
        s.vit_num_layers = s.text_num_layers + 1;
        s.vit_remove_last = true;
        let tensors = model_keys(&s);
        let arch = Architecture::infer(&tensors, None);
        let v = arch.vision.as_ref().unwrap();
        assert_eq!((v.num_layers, v.ln_separate), (4, 5));
        assert_eq!(v.remove_last(), Some(true));
        // From the default (shared, no remove-last) settings back to the checkpoint's.
        let back = arch.to_settings(&Settings::tiny());
        assert_eq!(vit_of(&back), (false, true, 5));
        assert_eq!(model_keys(&back).len(), tensors.len());
        let shapes = |t: &[(String, Tensor)]| -> Vec<(String, Vec<i64>)> {
            t.iter().map(|(k, v)| (k.clone(), v.size())).collect()
        };
        assert_eq!(shapes(&model_keys(&back)), shapes(&tensors));

        // Without remove-last: as many ln_separate as blocks.
        s.vit_num_layers = s.text_num_layers;
        s.vit_remove_last = false;
        let arch = Architecture::infer(&model_keys(&s), None);
        assert_eq!(arch.vision.as_ref().unwrap().remove_last(), Some(false));
        let mut base = Settings::tiny();
        base.vit_remove_last = true;
        let back = arch.to_settings(&base);
        assert_eq!(vit_of(&back), (false, false, 4));

        // Shared: no ln_separate; a BT checkpoint then says shared whatever the base says, and
        // the base's vit_remove_last keeps the block count.
        s.vit_layernorm_shared = true;
        let arch = Architecture::infer(&model_keys(&s), None);
        assert_eq!(arch.vision.as_ref().unwrap().remove_last(), None);
        let mut base = Settings::tiny();
        base.vit_layernorm_shared = false;
        base.vit_remove_last = true;
        let back = arch.to_settings(&base);
        assert_eq!(vit_of(&back), (true, true, 5));
        assert_eq!(
            crate::model::ModelConfig::from_settings(&back)
                .unwrap()
                .vit_layers,
            4
        );
    }

    /// The cross-modal feed-forward ratio and a one-layer task head come back from the shapes.
    #[test]
    fn mlp_ratio_and_task_head_layers_are_recovered() {
        let mut s = Settings::tiny();
        s.task = experiments::Task::Vqa;
        s.mlp_ratio = 2;
        s.task_head_layers = 1;
        let tensors = model_keys(&s);
        let arch = Architecture::infer(&tensors, None);
        assert_eq!(arch.fusion.as_ref().unwrap().mlp_ratio, Some(2));
        assert_eq!(arch.task_head_layers, Some(1));
        let base = Settings {
            task: experiments::Task::Vqa,
            ..Settings::tiny()
        };
        let back = arch.to_settings(&base);
        assert_eq!((back.mlp_ratio, back.task_head_layers), (2, 1));
        assert_eq!(model_keys(&back).len(), tensors.len());
        s.task_head_layers = 2;
        let arch = Architecture::infer(&model_keys(&s), None);
        assert_eq!(arch.task_head_layers, Some(2));
    }

    #[test]
    fn meter_gates_mean_meter_fusion() {
        let mut s = Settings::tiny();
        s.manager_type = ManagerType::Meter;
        s.meter_fusion = true;
        let tensors = model_keys(&s);
        assert!(tensors.iter().any(|(k, _)| k == "text_gate.weight"));
        let arch = Architecture::infer(&tensors, None);
        let f = arch.fusion.as_ref().unwrap();
        assert_eq!((f.kind, f.meter_fusion), (ManagerType::Meter, true));
        let back = arch.to_settings(&Settings::tiny());
        assert!(back.meter_fusion);
        assert_eq!(back.manager_type, ManagerType::Meter);
        assert_eq!(model_keys(&back).len(), tensors.len());
        assert_eq!(Component::of("image_gate.bias"), Component::Gates);
        // And a METER checkpoint without gates turns it off.
        let mut base = Settings::tiny();
        base.meter_fusion = true;
        s.meter_fusion = false;
        let arch = Architecture::infer(&model_keys(&s), None);
        assert!(!arch.to_settings(&base).meter_fusion);
    }

    #[test]
    fn components_of_reference_keys() {
        assert_eq!(
            Component::of(
                "cross_modal_text_manager_tower.3.manager_layer.linear_controller.weight"
            ),
            Component::Managers
        );
        assert_eq!(
            Component::of("cross_modal_text_layers.0.attention.self.query.weight"),
            Component::CrossModalLayers
        );
        assert_eq!(
            Component::of("cross_modal_text_transform.weight"),
            Component::Projections
        );
        assert_eq!(Component::of("vqa_classifier.0.weight"), Component::Heads);
        assert_eq!(
            Component::of("cross_modal_image_pooler.dense.weight"),
            Component::Poolers
        );
        assert_eq!(
            Component::of("vit_model.ln_final.weight"),
            Component::Unused
        );
        assert_eq!(
            Component::of("cross_modal_itc_text_head.fc.weight"),
            Component::Heads
        );
    }
}
