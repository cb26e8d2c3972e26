//! The model's shape and behaviour, by the reference config key names, checked for consistency.

use experiments::experts::{TextConfig, VisionConfig};
use experiments::{ManagerType, ManagerWeightType, Settings};

use super::layers::{Activation, LN_EPS};

/// A configuration that cannot build a model. Names the offending key(s).
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ConfigError {
    #[error("`{key}` must be positive, got {value}")]
    NotPositive { key: &'static str, value: i64 },
    #[error("`{key}` = {value} is larger than `{limit_key}` = {limit}")]
    TooLarge {
        key: &'static str,
        value: i64,
        limit_key: &'static str,
        limit: i64,
    },
    #[error("`{size_key}` = {size} is not divisible by `{heads_key}` = {heads}")]
    HeadsDoNotDivide {
        size_key: &'static str,
        size: i64,
        heads_key: &'static str,
        heads: i64,
    },
    #[error("`image_size` = {image_size} is not a multiple of `patch_size` = {patch_size}")]
    PatchDoesNotDivide { image_size: i64, patch_size: i64 },
    #[error("`{key}` = {value} must be in {range}")]
    OutOfRange {
        key: &'static str,
        value: f64,
        range: &'static str,
    },
    #[error("{0}")]
    Inconsistent(String),
}

/// Which task heads exist (the reference creates a head only when its loss is switched on).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct HeadSet {
    /// `mlm_score` (MLM pre-training).
    pub mlm: bool,
    /// `itm_score` (ITM pre-training, ITM+ITC retrieval).
    pub itm: bool,
    /// `cross_modal_itc_{text,image}_head` (ITC, ITM+ITC retrieval).
    pub itc: bool,
    /// `vqa_classifier`.
    pub vqa: bool,
    /// `nlvr2_classifier` (and a 3-row `token_type_embeddings`).
    pub nlvr2: bool,
    /// `snli_classifier`.
    pub snli: bool,
    /// `rank_output` (the ITM-based `irtr` loss; needs `itm`, whose weights it starts from).
    pub irtr_rank: bool,
}

impl HeadSet {
    /// The heads of a run's objectives ([`Settings::objectives`]), as the reference builds
    /// them: a head exists only when a `loss_names` switch that uses it is on, so an
    /// ITM-only pre-training has no MLM head.
    pub fn for_settings(s: &Settings) -> Self {
        let objectives = s.objectives();
        let on = |names: &[&str]| objectives.iter().any(|o| names.contains(&o.as_str()));
        Self {
            mlm: on(&["mlm"]),
            itm: on(&["itm", "itm_itc", "irtr_itm_itc"]),
            itc: on(&["itc", "itm_itc", "irtr_itm_itc"]),
            vqa: on(&["vqa"]),
            nlvr2: on(&["nlvr2"]),
            snli: on(&["snli"]),
            irtr_rank: false,
        }
    }
}

/// Everything needed to build ManagerTower, BridgeTower or METER.
#[derive(Debug, Clone, PartialEq)]
pub struct ModelConfig {
    pub manager_type: ManagerType,
    pub heads: HeadSet,

    // ---- vision expert (CLIP ViT) ----
    pub image_size: i64,
    pub patch_size: i64,
    /// CLIP width (`input_image_embed_size`).
    pub vit_width: i64,
    /// Residual blocks actually built (`vit_num_layers`, minus one with `vit_remove_last`).
    pub vit_layers: i64,
    pub vit_heads: i64,
    /// CLIP's MLP width (4 × width in OpenAI's CLIP; `intermediate_size` of the expert).
    pub vit_intermediate: i64,
    /// `layer_norm_eps` of the vision expert (CLIP's fp32 LayerNorms: 1e-5).
    pub vit_ln_eps: f64,
    /// `hidden_act` of the vision expert (CLIP: QuickGELU).
    pub vit_act: Activation,
    /// One `ln_post` for every tapped layer (`vit_layernorm_shared`); otherwise `ln_separate.*` exist.
    pub vit_layernorm_shared: bool,
    /// How many `ln_separate.*` LayerNorms the reference state dict holds: `vit_num_layers` —
    /// counted *before* `vit_remove_last` drops a block — with `vit_layernorm_shared = false`;
    /// none for METER, whose `build_model` call does not pass `vit_layernorm_shared` and so
    /// always builds the shared layout. Only BridgeTower's uni-modal path applies them (see
    /// [`ModelConfig::vit_separate_norms_applied`]).
    pub vit_ln_separate: i64,
    /// Shape of CLIP's unused text-side `positional_embedding` and `ln_final`, kept so reference
    /// checkpoints load strictly: (context length, text width).
    pub clip_text_context: (i64, i64),

    // ---- text expert (RoBERTa) ----
    pub vocab_size: i64,
    /// RoBERTa width (`input_text_embed_size`).
    pub text_width: i64,
    pub text_layers: i64,
    pub text_heads: i64,
    pub text_intermediate: i64,
    pub text_max_positions: i64,
    /// Hidden dropout (`hidden_dropout_prob`; roberta-base: 0.1).
    pub text_dropout: f64,
    /// Dropout on the attention probabilities (`attention_probs_dropout_prob`).
    pub text_attention_dropout: f64,
    /// `layer_norm_eps` of the text expert (roberta-base: 1e-5).
    pub text_ln_eps: f64,
    /// `hidden_act` of the text expert (roberta-base: erf GELU).
    pub text_act: Activation,
    /// Rows of RoBERTa's `token_type_embeddings` (`type_vocab_size`; roberta-base: 1).
    pub text_type_vocab: i64,

    // ---- cross-modal encoder ----
    pub hidden_size: i64,
    pub num_heads: i64,
    /// Number of cross-modal layers (`num_layers`).
    pub num_layers: i64,
    pub mlp_ratio: i64,
    pub drop_rate: f64,

    /// METER's `meter_fusion`: the cross-modal layers read `top + Σ softmax(gate(F_l)) ⊙ F_l`
    /// over all uni-modal layers (`text_gate`, `image_gate`).
    pub meter_fusion: bool,

    // ---- managers ----
    pub managed_layers_text: i64,
    pub managed_layers_image: i64,
    pub manager_learnable: bool,
    pub manager_weight_type: ManagerWeightType,
    pub manager_softmax_temperature: f64,
    pub manager_softmax_temperature_learnable: bool,

    // ---- heads ----
    pub vqav2_label_size: i64,
    pub task_head_layers: i64,
    pub head_hidden_scale: i64,
    pub nlvr2_drop_rate: f64,
    /// ITC temperature init.
    pub temperature: f64,
    pub contrastive_hidden_size: i64,

    /// bf16 matrix products on CUDA (`precision = "bf16"`); ignored on CPU.
    pub amp: bool,
    /// `amp_flag`: the same, for the retrieval recall evaluation only (the reference autocasts
    /// there and trains in fp32).
    pub recall_amp: bool,
}

impl ModelConfig {
    /// Builds and validates the model configuration of a run.
    pub fn from_settings(s: &Settings) -> Result<Self, ConfigError> {
        let vit_layers = s.vit_num_layers - i64::from(s.vit_remove_last);
        let cfg = Self {
            manager_type: s.manager_type,
            heads: HeadSet::for_settings(s),
            image_size: s.image_size,
            patch_size: s.patch_size,
            vit_width: s.input_image_embed_size,
            vit_layers,
            vit_heads: s.vit_heads(),
            vit_intermediate: 4 * s.input_image_embed_size,
            vit_ln_eps: LN_EPS,
            vit_act: Activation::QuickGelu,
            vit_layernorm_shared: s.vit_layernorm_shared,
            vit_ln_separate: if s.vit_layernorm_shared || s.manager_type == ManagerType::Meter {
                0
            } else {
                s.vit_num_layers
            },
            clip_text_context: clip_text_shape(&s.vit, s.input_image_embed_size),
            vocab_size: s.vocab_size,
            text_width: s.input_text_embed_size,
            text_layers: s.text_num_layers,
            text_heads: s.text_num_heads,
            text_intermediate: s.text_intermediate_size,
            text_max_positions: s.text_max_position_embeddings,
            text_dropout: 0.1,
            text_attention_dropout: 0.1,
            text_ln_eps: LN_EPS,
            text_act: Activation::Gelu,
            text_type_vocab: 1,
            hidden_size: s.hidden_size,
            num_heads: s.num_heads,
            num_layers: s.num_layers,
            mlp_ratio: s.mlp_ratio,
            drop_rate: s.drop_rate,
            meter_fusion: s.meter_fusion,
            managed_layers_text: s.managed_layers_text,
            managed_layers_image: s.managed_layers_image,
            manager_learnable: s.manager_learnable,
            manager_weight_type: s.manager_weight_type,
            manager_softmax_temperature: s.manager_softmax_temperature,
            manager_softmax_temperature_learnable: s.manager_softmax_temperature_learnable,
            vqav2_label_size: s.vqav2_label_size,
            task_head_layers: s.task_head_layers,
            head_hidden_scale: s.head_hidden_scale,
            nlvr2_drop_rate: s.nlvr2_drop_rate,
            temperature: s.temperature,
            contrastive_hidden_size: s.contrastive_hidden_size,
            amp: s.precision == experiments::Precision::Bf16,
            recall_amp: s.amp_flag,
        };
        cfg.validate()?;
        Ok(cfg)
    }

    /// The experts' own architecture, from their `config.json`: the sizes must be the ones the
    /// settings hold (the plan wrote them from the same configs; a difference means the files
    /// changed since), and eps, activation, MLP width and dropout are taken as they are.
    pub fn with_experts(
        mut self,
        vision: Option<&VisionConfig>,
        text: Option<&TextConfig>,
    ) -> Result<Self, ConfigError> {
        let differ = |key: &'static str, ours: i64, config_key: &str, theirs: i64, who: &str| {
            (ours != theirs).then(|| {
                ConfigError::Inconsistent(format!(
                    "`{key}` = {ours} but the {who} expert's config.json has `{config_key}` = \
                     {theirs}"
                ))
            })
        };
        if let Some(v) = vision {
            for (key, ours, config_key, theirs) in [
                (
                    "input_image_embed_size",
                    self.vit_width,
                    "hidden_size",
                    v.hidden_size,
                ),
                (
                    "vit_num_heads",
                    self.vit_heads,
                    "num_attention_heads",
                    v.num_attention_heads,
                ),
                ("patch_size", self.patch_size, "patch_size", v.patch_size),
            ] {
                if let Some(e) = differ(key, ours, config_key, theirs, "vision") {
                    return Err(e);
                }
            }
            self.vit_intermediate = v.intermediate_size;
            self.vit_ln_eps = v.layer_norm_eps;
            self.vit_act = act(&v.hidden_act)?;
        }
        if let Some(t) = text {
            for (key, ours, config_key, theirs) in [
                (
                    "input_text_embed_size",
                    self.text_width,
                    "hidden_size",
                    t.hidden_size,
                ),
                (
                    "text_num_layers",
                    self.text_layers,
                    "num_hidden_layers",
                    t.num_hidden_layers,
                ),
                (
                    "text_num_heads",
                    self.text_heads,
                    "num_attention_heads",
                    t.num_attention_heads,
                ),
                (
                    "text_intermediate_size",
                    self.text_intermediate,
                    "intermediate_size",
                    t.intermediate_size,
                ),
                ("vocab_size", self.vocab_size, "vocab_size", t.vocab_size),
                (
                    "text_max_position_embeddings",
                    self.text_max_positions,
                    "max_position_embeddings",
                    t.max_position_embeddings,
                ),
            ] {
                if let Some(e) = differ(key, ours, config_key, theirs, "text") {
                    return Err(e);
                }
            }
            self.text_ln_eps = t.layer_norm_eps;
            self.text_act = act(&t.hidden_act)?;
            self.text_dropout = t.hidden_dropout_prob;
            self.text_attention_dropout = t.attention_probs_dropout_prob;
            self.text_type_vocab = t.type_vocab_size;
        }
        self.validate()?;
        Ok(self)
    }

    /// A preset by name (`base`, `tiny`), for tests and benchmarks.
    pub fn preset(name: &str, manager_type: ManagerType) -> Option<Self> {
        let mut s = Settings::preset(name)?;
        s.manager_type = manager_type;
        Self::from_settings(&s).ok()
    }

    /// Number of image tokens (CLS + patches).
    pub fn image_tokens(&self) -> i64 {
        let g = self.image_size / self.patch_size;
        g * g + 1
    }

    /// Intermediate width of the cross-modal layers.
    pub fn cross_intermediate(&self) -> i64 {
        self.hidden_size * self.mlp_ratio
    }

    /// How many top uni-modal layers per modality feed the cross-modal encoder.
    pub fn experts(&self) -> (i64, i64) {
        match self.manager_type {
            ManagerType::Aaue | ManagerType::Saue | ManagerType::Sae => {
                (self.managed_layers_text, self.managed_layers_image)
            }
            ManagerType::Bt => (self.num_layers.max(1), self.num_layers.max(1)),
            ManagerType::Meter => (1, 1),
        }
    }

    /// Whether the ViT's uni-modal path (the reference's `get_uni_modal_features` and
    /// `infer_image`: ITC, ITM+ITC, retrieval) puts block `i` through `ln_separate.{i}` instead
    /// of `ln_post`: BridgeTower with `vit_layernorm_shared = false`. Its `infer` (and every path
    /// of ManagerTower) uses `ln_post`.
    pub fn vit_separate_norms_applied(&self) -> bool {
        self.manager_type == ManagerType::Bt && self.vit_ln_separate > 0
    }

    /// Whether the model has managers (ManagerTower variants).
    pub fn is_manager_tower(&self) -> bool {
        matches!(
            self.manager_type,
            ManagerType::Aaue | ManagerType::Saue | ManagerType::Sae
        )
    }

    pub fn validate(&self) -> Result<(), ConfigError> {
        let positive = [
            ("image_size", self.image_size),
            ("patch_size", self.patch_size),
            ("input_image_embed_size", self.vit_width),
            ("vit_num_layers", self.vit_layers),
            ("vit_num_heads", self.vit_heads),
            ("vocab_size", self.vocab_size),
            ("input_text_embed_size", self.text_width),
            ("text_num_layers", self.text_layers),
            ("text_num_heads", self.text_heads),
            ("text_intermediate_size", self.text_intermediate),
            ("text_max_position_embeddings", self.text_max_positions),
            ("hidden_size", self.hidden_size),
            ("num_heads", self.num_heads),
            ("mlp_ratio", self.mlp_ratio),
            ("vqav2_label_size", self.vqav2_label_size),
            ("head_hidden_scale", self.head_hidden_scale),
            ("contrastive_hidden_size", self.contrastive_hidden_size),
        ];
        for (key, value) in positive {
            if value <= 0 {
                return Err(ConfigError::NotPositive { key, value });
            }
        }
        if self.num_layers < 0 {
            return Err(ConfigError::OutOfRange {
                key: "num_layers",
                value: self.num_layers as f64,
                range: "0..",
            });
        }
        if self.image_size % self.patch_size != 0 {
            return Err(ConfigError::PatchDoesNotDivide {
                image_size: self.image_size,
                patch_size: self.patch_size,
            });
        }
        for (size_key, size, heads_key, heads) in [
            (
                "input_image_embed_size",
                self.vit_width,
                "vit_num_heads",
                self.vit_heads,
            ),
            (
                "input_text_embed_size",
                self.text_width,
                "text_num_heads",
                self.text_heads,
            ),
            ("hidden_size", self.hidden_size, "num_heads", self.num_heads),
        ] {
            if size % heads != 0 {
                return Err(ConfigError::HeadsDoNotDivide {
                    size_key,
                    size,
                    heads_key,
                    heads,
                });
            }
        }
        if self.is_manager_tower() {
            for (key, value, limit_key, limit) in [
                (
                    "managed_layers_text",
                    self.managed_layers_text,
                    "text_num_layers",
                    self.text_layers,
                ),
                (
                    "managed_layers_image",
                    self.managed_layers_image,
                    "vit_num_layers",
                    self.vit_layers,
                ),
            ] {
                if value <= 0 {
                    return Err(ConfigError::NotPositive { key, value });
                }
                if value > limit {
                    return Err(ConfigError::TooLarge {
                        key,
                        value,
                        limit_key,
                        limit,
                    });
                }
            }
            let t = self.manager_softmax_temperature;
            if !(t.is_finite() && t > 0.0) {
                return Err(ConfigError::OutOfRange {
                    key: "manager_softmax_temperature",
                    value: t,
                    range: "(0, inf)",
                });
            }
        }
        if self.manager_type == ManagerType::Bt {
            // The reference's `infer` runs ViT block `i` beside RoBERTa layer `i` (IndexError
            // with a shallower ViT, top blocks silently unused with a deeper one) while its
            // retrieval path (`infer_image`) taps the top ViT blocks: only equal depths agree.
            if self.vit_layers != self.text_layers {
                return Err(ConfigError::Inconsistent(format!(
                    "BT runs ViT block i beside RoBERTa layer i, so the ViT's blocks \
                     (`vit_num_layers` minus `vit_remove_last`: {}) must equal \
                     `text_num_layers` ({})",
                    self.vit_layers, self.text_layers
                )));
            }
            for (limit_key, limit) in [
                ("text_num_layers", self.text_layers),
                ("vit_num_layers", self.vit_layers),
            ] {
                if self.num_layers > limit {
                    return Err(ConfigError::TooLarge {
                        key: "num_layers",
                        value: self.num_layers,
                        limit_key,
                        limit,
                    });
                }
            }
        }
        if self.num_layers == 0
            && (self.text_width != self.hidden_size || self.vit_width != self.hidden_size)
        {
            // With no cross-modal layer the poolers read the uni-modal outputs directly.
            return Err(ConfigError::Inconsistent(format!(
                "with `num_layers` = 0 the poolers read the uni-modal outputs, so \
                 `input_text_embed_size` ({}) and `input_image_embed_size` ({}) must equal \
                 `hidden_size` ({})",
                self.text_width, self.vit_width, self.hidden_size
            )));
        }
        if self.meter_fusion {
            if self.manager_type != ManagerType::Meter {
                // The reference's MT and BT modules never read the key.
                return Err(ConfigError::Inconsistent(format!(
                    "`meter_fusion` applies to METER only, not `manager_type` = {}",
                    self.manager_type.as_str()
                )));
            }
            if self.text_width != self.hidden_size || self.vit_width != self.hidden_size {
                return Err(ConfigError::Inconsistent(format!(
                    "`meter_fusion` gates the uni-modal layers with `hidden_size` x `hidden_size` \
                     linears (`text_gate`, `image_gate`), so `input_text_embed_size` ({}) and \
                     `input_image_embed_size` ({}) must equal `hidden_size` ({})",
                    self.text_width, self.vit_width, self.hidden_size
                )));
            }
        }
        if !(1..=2).contains(&self.task_head_layers) {
            return Err(ConfigError::OutOfRange {
                key: "task_head_layers",
                value: self.task_head_layers as f64,
                range: "{1, 2}",
            });
        }
        for (key, p) in [
            ("drop_rate", self.drop_rate),
            ("nlvr2_drop_rate", self.nlvr2_drop_rate),
        ] {
            if !(0.0..1.0).contains(&p) {
                return Err(ConfigError::OutOfRange {
                    key,
                    value: p,
                    range: "[0, 1)",
                });
            }
        }
        if self.temperature.is_nan() || self.temperature <= 0.0 {
            return Err(ConfigError::OutOfRange {
                key: "temperature",
                value: self.temperature,
                range: "(0, inf)",
            });
        }
        if self.heads.irtr_rank && !self.heads.itm {
            return Err(ConfigError::Inconsistent(
                "the `irtr` rank head starts from the ITM head, which is not built".into(),
            ));
        }
        Ok(())
    }
}

fn act(name: &str) -> Result<Activation, ConfigError> {
    Activation::from_name(name).ok_or_else(|| {
        ConfigError::Inconsistent(format!("`hidden_act` = \"{name}\" is not implemented"))
    })
}

/// CLIP's text tower shapes (context length, width) for the `vit` name; only its unused
/// `positional_embedding` and `ln_final` survive in the reference model.
fn clip_text_shape(vit: &str, vit_width: i64) -> (i64, i64) {
    let repo = experiments::experts::clip_repo(vit).unwrap_or(vit);
    match (repo, vit_width) {
        ("openai/clip-vit-base-patch32" | "openai/clip-vit-base-patch16", 768) => (77, 512),
        ("openai/clip-vit-large-patch14" | "openai/clip-vit-large-patch14-336", 1024) => (77, 768),
        // A custom-size ViT (e.g. the tiny preset) has no CLIP checkpoint to match.
        _ => (77, vit_width),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn presets_validate() {
        for name in Settings::PRESETS {
            for t in ManagerType::ALL {
                assert!(ModelConfig::preset(name, t).is_some(), "{name} {t:?}");
            }
        }
    }

    #[test]
    fn too_many_managed_layers_is_rejected() {
        let mut s = Settings::tiny();
        s.managed_layers_text = s.text_num_layers + 1;
        let err = ModelConfig::from_settings(&s).unwrap_err();
        assert!(err.to_string().contains("managed_layers_text"), "{err}");
    }

    #[test]
    fn heads_must_divide_width() {
        let mut s = Settings::tiny();
        s.num_heads = 5;
        let err = ModelConfig::from_settings(&s).unwrap_err();
        assert!(matches!(err, ConfigError::HeadsDoNotDivide { .. }), "{err}");
        assert!(err.to_string().contains("hidden_size"));
    }

    #[test]
    fn patch_must_divide_image() {
        let mut s = Settings::tiny();
        s.image_size = 70;
        assert!(matches!(
            ModelConfig::from_settings(&s),
            Err(ConfigError::PatchDoesNotDivide { .. })
        ));
    }

    #[test]
    fn bt_needs_enough_uni_modal_layers() {
        let mut s = Settings::tiny();
        s.manager_type = ManagerType::Bt;
        s.num_layers = s.text_num_layers + 1;
        assert!(matches!(
            ModelConfig::from_settings(&s),
            Err(ConfigError::TooLarge {
                key: "num_layers",
                ..
            })
        ));
    }

    #[test]
    fn bt_needs_equal_depths_after_vit_remove_last() {
        let mut s = Settings::tiny();
        s.manager_type = ManagerType::Bt;
        s.vit_num_layers = s.text_num_layers + 2;
        let err = ModelConfig::from_settings(&s).unwrap_err();
        assert!(err.to_string().contains("text_num_layers"), "{err}");
        s.vit_num_layers = s.text_num_layers + 1;
        s.vit_remove_last = true;
        assert!(ModelConfig::from_settings(&s).is_ok());
    }

    #[test]
    fn ln_separate_counts_blocks_before_remove_last_and_meter_has_none() {
        let mut s = Settings::tiny();
        s.vit_layernorm_shared = false;
        s.vit_remove_last = true;
        let c = ModelConfig::from_settings(&s).unwrap();
        assert_eq!(
            (c.vit_layers, c.vit_ln_separate),
            (s.vit_num_layers - 1, s.vit_num_layers)
        );
        s.manager_type = ManagerType::Meter;
        assert_eq!(ModelConfig::from_settings(&s).unwrap().vit_ln_separate, 0);
        s.vit_layernorm_shared = true;
        s.manager_type = ManagerType::Aaue;
        assert_eq!(ModelConfig::from_settings(&s).unwrap().vit_ln_separate, 0);
    }

    #[test]
    fn meter_fusion_is_meter_only_with_hidden_widths() {
        let mut s = Settings::tiny();
        s.meter_fusion = true;
        s.manager_type = ManagerType::Meter;
        assert!(ModelConfig::from_settings(&s).unwrap().meter_fusion);
        s.manager_type = ManagerType::Bt;
        let err = ModelConfig::from_settings(&s).unwrap_err();
        assert!(err.to_string().contains("METER only"), "{err}");
        s.manager_type = ManagerType::Meter;
        s.input_image_embed_size = 32;
        s.vit_num_heads = 2;
        let err = ModelConfig::from_settings(&s).unwrap_err().to_string();
        for key in [
            "input_text_embed_size",
            "input_image_embed_size",
            "hidden_size",
        ] {
            assert!(err.contains(key), "{err}");
        }
    }

    #[test]
    fn cross_depth_and_managed_layers_are_independent() {
        let mut s = Settings::tiny();
        s.num_layers = 1;
        s.managed_layers_text = 4;
        s.managed_layers_image = 2;
        let c = ModelConfig::from_settings(&s).unwrap();
        assert_eq!(c.experts(), (4, 2));
    }
}
