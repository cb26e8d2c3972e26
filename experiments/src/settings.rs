//! Every engine setting, by the reference config's key names (`src/config.py` of
//! LooperXX/ManagerTower), plus the few keys TowerLab adds (marked "TowerLab").
//!
//! This struct is the single list of valid keys: experiment files are validated against it, the
//! engine builds its model and training configs from it, and run identity hashes it.
//! Defaults are the reference defaults, except where TowerLab needs a value the reference took
//! from a pretrained checkpoint (the uni-modal encoder sizes), which default to the paper's base
//! models (CLIP ViT-B/16 and RoBERTa-base).

use serde::{Deserialize, Serialize};

/// The fusion design: ManagerTower's managers, or one of the baselines.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum ManagerType {
    /// ManagerTower with adaptive managers (layer 0 static), the released model.
    #[serde(rename = "AAUE")]
    Aaue,
    /// ManagerTower with static managers over the uni-modal experts and the previous layer.
    #[serde(rename = "SAUE")]
    Saue,
    /// Static aggregation over the experts and all previous cross-modal layers (paper Fig. 8).
    #[serde(rename = "SAE")]
    Sae,
    /// BridgeTower: interleaved uni-modal and cross-modal layers with LinkTower bridges.
    #[serde(rename = "BT")]
    Bt,
    /// METER: cross-modal layers on the last uni-modal layer only.
    #[serde(rename = "METER")]
    Meter,
}

impl ManagerType {
    pub const ALL: [ManagerType; 5] = [Self::Aaue, Self::Saue, Self::Sae, Self::Bt, Self::Meter];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Aaue => "AAUE",
            Self::Saue => "SAUE",
            Self::Sae => "SAE",
            Self::Bt => "BT",
            Self::Meter => "METER",
        }
    }
}

/// `precision`: the numeric precision of training and evaluation. The reference trains in fp32
/// (`precision = 32`, its default); `"bf16"` (TowerLab) runs the matrix products in bf16 on
/// CUDA, with fp32 weights, optimizer and losses, and is ignored on the CPU. Written `32`,
/// `"32"` or `"bf16"`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
pub enum Precision {
    #[serde(rename = "32")]
    Fp32,
    #[serde(rename = "bf16")]
    Bf16,
}

impl Precision {
    pub const NAMES: [&'static str; 2] = ["32", "bf16"];

    fn from_name(name: &str) -> Option<Self> {
        match name {
            "32" => Some(Self::Fp32),
            "bf16" => Some(Self::Bf16),
            _ => None,
        }
    }
}

impl<'de> Deserialize<'de> for Precision {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Visitor;
        impl serde::de::Visitor<'_> for Visitor {
            type Value = Precision;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("32 or \"bf16\"")
            }
            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<Precision, E> {
                Precision::from_name(v)
                    .ok_or_else(|| E::invalid_value(serde::de::Unexpected::Str(v), &self))
            }
            fn visit_i64<E: serde::de::Error>(self, v: i64) -> Result<Precision, E> {
                self.visit_str(&v.to_string())
            }
            fn visit_u64<E: serde::de::Error>(self, v: u64) -> Result<Precision, E> {
                self.visit_str(&v.to_string())
            }
        }
        d.deserialize_any(Visitor)
    }
}

/// `decay_power`: the exponent of the polynomial decay after warmup (1, the default, is linear),
/// or `"cosine"`: transformers' cosine schedule with warmup (`end_lr` unused), as the
/// reference's `set_schedule` picks.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum DecayPower {
    Power(f64),
    Cosine,
}

impl DecayPower {
    pub const NAMES: [&'static str; 1] = ["cosine"];
}

impl Serialize for DecayPower {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            Self::Power(p) => s.serialize_f64(*p),
            Self::Cosine => s.serialize_str("cosine"),
        }
    }
}

impl<'de> Deserialize<'de> for DecayPower {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Visitor;
        impl serde::de::Visitor<'_> for Visitor {
            type Value = DecayPower;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("a number or \"cosine\"")
            }
            fn visit_f64<E: serde::de::Error>(self, v: f64) -> Result<DecayPower, E> {
                Ok(DecayPower::Power(v))
            }
            fn visit_i64<E: serde::de::Error>(self, v: i64) -> Result<DecayPower, E> {
                Ok(DecayPower::Power(v as f64))
            }
            fn visit_u64<E: serde::de::Error>(self, v: u64) -> Result<DecayPower, E> {
                Ok(DecayPower::Power(v as f64))
            }
            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<DecayPower, E> {
                match v {
                    "cosine" => Ok(DecayPower::Cosine),
                    _ => Err(E::invalid_value(serde::de::Unexpected::Str(v), &self)),
                }
            }
        }
        d.deserialize_any(Visitor)
    }
}

/// `manager_weight_type`: one weight per expert per channel, or one per expert.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ManagerWeightType {
    Vector,
    Scalar,
}

/// The reference `loss_names` TowerLab trains, in the order the reference `forward` computes
/// them (`irtr`, the plain ITM-based retrieval loss, is the `irtr` task's `rank_output`).
pub const LOSS_NAMES: [&str; 8] = [
    "mlm",
    "itm",
    "itc",
    "itm_itc",
    "vqa",
    "nlvr2",
    "snli",
    "irtr_itm_itc",
];

/// The task a run trains (TowerLab's name for the reference `loss_names` switches).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Task {
    /// Pre-training: MLM + ITM (`task_mlm_itm_clip_bert`).
    Pretrain,
    /// VQAv2 (`task_finetune_vqa_clip_bert`).
    Vqa,
    /// NLVR2 (`task_finetune_nlvr2_clip_bert`).
    Nlvr2,
    /// SNLI-VE (`task_finetune_snli_clip_bert`).
    Snli,
    /// Image-text retrieval with ITC + ITM (`task_finetune_irtr_itm_itc_*_clip_bert`).
    Irtr,
}

impl Task {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Pretrain => "pretrain",
            Self::Vqa => "vqa",
            Self::Nlvr2 => "nlvr2",
            Self::Snli => "snli",
            Self::Irtr => "irtr",
        }
    }

    /// The `loss_names` a run of this task may switch on: pre-training mixes MLM, ITM, ITC
    /// and ITM with ITC-mined hard negatives (`itm_itc`); each fine-tuning task has its own.
    pub fn allowed_objectives(self) -> &'static [&'static str] {
        match self {
            Self::Pretrain => &["mlm", "itm", "itc", "itm_itc"],
            other => other.objectives(),
        }
    }

    /// The reference `loss_names` switched on by the task's config (`task_*_clip_bert`).
    pub fn objectives(self) -> &'static [&'static str] {
        match self {
            Self::Pretrain => &["mlm", "itm"],
            Self::Vqa => &["vqa"],
            Self::Nlvr2 => &["nlvr2"],
            Self::Snli => &["snli"],
            Self::Irtr => &["irtr_itm_itc"],
        }
    }
}

/// A data split.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Split {
    Train,
    Val,
    Test,
}

/// All settings of one run. Field names are the reference config keys.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Settings {
    // ---- experiment ----
    /// TowerLab: the task trained by this run.
    pub task: Task,
    /// The objectives a pre-training run trains, by the reference `loss_names` (here a list of
    /// the switched-on names, e.g. `["mlm", "itm", "itc"]`, instead of a table of 0/1
    /// switches): `mlm`, `itm`, `itc`, `itm_itc` (ITM on ITC-mined hard negatives, plus ITC).
    /// Empty = the task's reference objectives (`["mlm", "itm"]` for pre-training).
    pub loss_names: Vec<String>,
    pub seed: u64,
    /// Root folder of the `.arrow` files.
    pub data_root: String,
    /// Pre-training datasets by the reference names (`coco`, `vg`, `sbu`, `gcc`).
    pub datasets: Vec<String>,
    /// Checkpoint to start from ("" = the uni-modal experts only, i.e. without VLP).
    pub load_path: String,
    /// TowerLab: fine-tune from a pre-training run of the same model axes (the "with VLP" arm).
    pub vlp: bool,

    // ---- what a run starts from (TowerLab; see `experts`) ----
    /// A fresh run starts from the pretrained experts `vit` and `tokenizer` (resolved from a
    /// local folder, the hub cache, or a download), whose `config.json` decides the encoders'
    /// architecture; false trains them from scratch. True for `base`, false for `tiny`.
    pub pretrained_experts: bool,
    /// The pre-trained checkpoint `vlp = true` cells start from instead of a pre-training run
    /// of their own: a file (e.g. the released `ManagerTower_pt_base.ckpt`) or a hub file
    /// `org/name/file` (`LooperXX/ManagerTower/ManagerTower_pt_base.ckpt`). "" = pre-train.
    pub vlp_checkpoint: String,
    /// TowerLab: `auto` (first CUDA device, else CPU), `cpu`, or `cuda:N`.
    pub device: String,
    pub num_workers: usize,
    /// Desired effective batch; gradients are accumulated up to it.
    pub batch_size: usize,
    pub per_gpu_batchsize: usize,
    pub per_gpu_eval_batchsize: usize,
    /// TowerLab: training tables (`.arrow` names without extension) under `data_root`; empty =
    /// the reference tables of the task (see [`Settings::tables`]).
    pub train_tables: Vec<String>,
    /// TowerLab: validation tables; empty = the reference tables of the task.
    pub val_tables: Vec<String>,
    /// TowerLab: test tables; empty = the reference tables of the task.
    pub test_tables: Vec<String>,

    // ---- image ----
    pub train_transform_keys: Vec<String>,
    pub val_transform_keys: Vec<String>,
    pub image_size: i64,
    pub patch_size: i64,
    pub draw_false_image: usize,
    pub resolution_before: i64,

    // ---- text ----
    pub vqav2_label_size: i64,
    pub max_text_len: i64,
    /// The text expert, as the reference names it: `roberta-base`, any hub id or local folder
    /// of a `RobertaModel`; its `tokenizer.json` is the tokenizer. Without
    /// `pretrained_experts` it may also be a `tokenizer.json` file or a folder holding one
    /// (else the `tokenizer.json` beside the data is used).
    pub tokenizer: String,
    pub vocab_size: i64,
    pub mlm_prob: f64,
    pub draw_false_text: usize,

    // ---- uni-modal encoders (TowerLab: the reference read these from the checkpoints) ----
    /// The vision expert, as the reference names it: a CLIP name (`ViT-B/32`, `ViT-B/16`,
    /// `ViT-L/14`, `ViT-L/14@336px`, also spelled `CLIP-ViT-B/16`: the matching
    /// `openai/clip-vit-*` repository), or any hub id or local folder of a `CLIPModel` or
    /// `CLIPVisionModel`.
    pub vit: String,
    pub input_image_embed_size: i64,
    pub input_text_embed_size: i64,
    /// TowerLab: number of CLIP ViT blocks.
    pub vit_num_layers: i64,
    /// TowerLab: CLIP ViT attention heads; 0 (the default) = width / 64, the reference's rule
    /// (`vision_heads = vision_width // 64`). Set it only for Hugging Face CLIP configs with
    /// another count. [`Settings::vit_heads`] resolves it.
    pub vit_num_heads: i64,
    /// TowerLab: number of RoBERTa layers.
    pub text_num_layers: i64,
    /// TowerLab: RoBERTa attention heads.
    pub text_num_heads: i64,
    /// TowerLab: RoBERTa feed-forward width.
    pub text_intermediate_size: i64,
    /// TowerLab: RoBERTa position table size (514 for roberta-base).
    pub text_max_position_embeddings: i64,

    // ---- cross-modal transformer ----
    pub hidden_size: i64,
    pub num_heads: i64,
    /// Number of cross-modal layers.
    pub num_layers: i64,
    pub mlp_ratio: i64,
    pub drop_rate: f64,

    // ---- optimiser ----
    pub optim_type: String,
    pub learning_rate: f64,
    pub weight_decay: f64,
    pub decay_power: DecayPower,
    pub max_epoch: i64,
    pub max_steps: i64,
    /// Steps, or a fraction of `max_steps` when below 1.
    pub warmup_steps: f64,
    pub end_lr: f64,
    pub lr_mult_head: f64,
    pub lr_mult_cross_modal: f64,
    /// TowerLab: clip gradients to this global norm (0 = off).
    pub gradient_clip_val: f64,

    // ---- evaluation ----
    pub get_recall_metric: bool,
    pub k_test: i64,
    /// As the reference: mixed precision for the retrieval recall evaluation only (bf16 on
    /// CUDA here, fp16 there; ignored on the CPU). Training precision is `precision`.
    pub amp_flag: bool,
    /// Training and evaluation precision: 32 (the reference, default) or `"bf16"` on CUDA.
    pub precision: Precision,
    /// TowerLab: evaluate every N optimiser steps (0 = once per epoch).
    pub val_check_steps: i64,
    /// TowerLab: checkpoints kept besides the newest, the best by `val/the_metric` (Lightning's
    /// `ModelCheckpoint(save_top_k)`, which the reference sets to 1); -1 keeps every one.
    pub save_top_k: i64,
    /// TowerLab: keep the newest checkpoint once the run has ended (Lightning's `save_last`,
    /// true in the reference). A running run always keeps it: resume starts there.
    pub save_last: bool,
    /// TowerLab: the device's dense peak in TFLOP/s at the run's `precision`, the denominator of
    /// `perf/mfu`; 0 (the default) = the engine's table of known GPUs.
    pub peak_tflops: f64,
    /// TowerLab: seconds between two samples of the `system/` metrics (memory, CPU, GPU),
    /// taken on a thread of their own; 0 turns them off.
    pub system_interval_s: f64,
    /// TowerLab: record this many optimiser steps (the first of each attempt) with libtorch's
    /// profiler into the run folder, as a Chrome trace (`profile/`); 0 (the default) = none.
    pub profile_steps: i64,

    // ---- BridgeTower / METER ----
    pub vit_remove_last: bool,
    pub vit_layernorm_shared: bool,
    /// METER only: feed the cross-modal layers a gated sum of every uni-modal layer instead of
    /// the top one (`text_gate`, `image_gate`); needs both encoder widths equal to `hidden_size`.
    pub meter_fusion: bool,
    pub task_head_layers: i64,
    pub head_hidden_scale: i64,
    pub nlvr2_drop_rate: f64,
    pub temperature: f64,
    pub contrastive_hidden_size: i64,

    // ---- ManagerTower ----
    pub manager_type: ManagerType,
    pub managed_layers_text: i64,
    pub managed_layers_image: i64,
    pub manager_learnable: bool,
    pub manager_weight_type: ManagerWeightType,
    pub manager_softmax_temperature: f64,
    pub manager_softmax_temperature_learnable: bool,
}

impl Default for Settings {
    /// The reference defaults, with the paper's backbones (`mt clip16 text_roberta`).
    fn default() -> Self {
        Self {
            task: Task::Pretrain,
            loss_names: Vec::new(),
            seed: 0,
            data_root: "data".into(),
            datasets: vec!["coco".into(), "vg".into(), "sbu".into(), "gcc".into()],
            load_path: String::new(),
            vlp: false,
            pretrained_experts: true,
            vlp_checkpoint: String::new(),
            device: "auto".into(),
            num_workers: 8,
            batch_size: 4096,
            per_gpu_batchsize: 8,
            per_gpu_eval_batchsize: 32,
            train_tables: Vec::new(),
            val_tables: Vec::new(),
            test_tables: Vec::new(),

            train_transform_keys: vec!["clip".into()],
            val_transform_keys: vec!["clip".into()],
            image_size: 224,
            patch_size: 16,
            draw_false_image: 0,
            resolution_before: 224,

            vqav2_label_size: 3129,
            max_text_len: 40,
            tokenizer: "roberta-base".into(),
            vocab_size: 50265,
            mlm_prob: 0.15,
            draw_false_text: 0,

            vit: "CLIP-ViT-B/16".into(),
            input_image_embed_size: 768,
            input_text_embed_size: 768,
            vit_num_layers: 12,
            vit_num_heads: 0,
            text_num_layers: 12,
            text_num_heads: 12,
            text_intermediate_size: 3072,
            text_max_position_embeddings: 514,

            hidden_size: 768,
            num_heads: 12,
            num_layers: 6,
            mlp_ratio: 4,
            drop_rate: 0.1,

            optim_type: "adamw".into(),
            learning_rate: 1e-5,
            weight_decay: 0.01,
            decay_power: DecayPower::Power(1.0),
            max_epoch: 10,
            max_steps: -1,
            warmup_steps: 10000.0,
            end_lr: 0.0,
            lr_mult_head: 5.0,
            lr_mult_cross_modal: 5.0,
            gradient_clip_val: 0.0,

            get_recall_metric: false,
            k_test: 128,
            amp_flag: true,
            precision: Precision::Fp32,
            val_check_steps: 0,
            save_top_k: 1,
            save_last: true,
            peak_tflops: 0.0,
            system_interval_s: 5.0,
            profile_steps: 0,

            vit_remove_last: false,
            vit_layernorm_shared: true,
            meter_fusion: false,
            task_head_layers: 2,
            head_hidden_scale: 1,
            nlvr2_drop_rate: 0.1,
            temperature: 0.07,
            contrastive_hidden_size: 256,

            manager_type: ManagerType::Aaue,
            managed_layers_text: 6,
            managed_layers_image: 6,
            manager_learnable: true,
            manager_weight_type: ManagerWeightType::Vector,
            manager_softmax_temperature: 1.0,
            manager_softmax_temperature_learnable: true,
        }
    }
}

impl Settings {
    /// Named presets for the model size: `base` (the paper) and `tiny` (tests, CPU demos).
    pub fn preset(name: &str) -> Option<Self> {
        match name {
            "base" => Some(Self::default()),
            "tiny" => Some(Self::tiny()),
            _ => None,
        }
    }

    pub const PRESETS: [&'static str; 2] = ["base", "tiny"];

    /// A model small enough to train on a laptop CPU in minutes: 4-layer encoders of width 64,
    /// 2 cross-modal layers, 64-px images with 16-px patches.
    pub fn tiny() -> Self {
        Self {
            image_size: 64,
            resolution_before: 64,
            patch_size: 16,
            max_text_len: 24,
            vocab_size: 1000,
            input_image_embed_size: 64,
            input_text_embed_size: 64,
            vit_num_layers: 4,
            vit_num_heads: 0,
            text_num_layers: 4,
            text_num_heads: 2,
            text_intermediate_size: 128,
            text_max_position_embeddings: 64,
            hidden_size: 64,
            num_heads: 2,
            num_layers: 2,
            managed_layers_text: 3,
            managed_layers_image: 3,
            contrastive_hidden_size: 32,
            num_workers: 2,
            batch_size: 32,
            per_gpu_batchsize: 32,
            per_gpu_eval_batchsize: 64,
            learning_rate: 1e-3,
            warmup_steps: 0.1,
            lr_mult_head: 1.0,
            lr_mult_cross_modal: 1.0,
            amp_flag: false,
            pretrained_experts: false,
            ..Self::default()
        }
    }

    /// Keys whose value is one of a fixed list of names (serialised enums).
    /// Number settings that also take a name (`decay_power = "cosine"`).
    pub const NUMBER_OR_NAME: [(&'static str, &'static [&'static str]); 1] =
        [("decay_power", &DecayPower::NAMES)];

    pub const CHOICES: [(&'static str, &'static [&'static str]); 4] = [
        ("task", &["pretrain", "vqa", "nlvr2", "snli", "irtr"]),
        ("manager_type", &["AAUE", "SAUE", "SAE", "BT", "METER"]),
        ("manager_weight_type", &["vector", "scalar"]),
        ("precision", &Precision::NAMES),
    ];

    /// Keys that define the model's architecture. A fine-tuning cell with `vlp = true` starts
    /// from a pre-training run with exactly these values.
    pub const MODEL_KEYS: [&'static str; 27] = [
        "vit",
        "input_image_embed_size",
        "input_text_embed_size",
        "vit_num_layers",
        "vit_num_heads",
        "text_num_layers",
        "text_num_heads",
        "text_intermediate_size",
        "text_max_position_embeddings",
        "tokenizer",
        "vocab_size",
        "patch_size",
        "resolution_before",
        "hidden_size",
        "num_heads",
        "num_layers",
        "mlp_ratio",
        "vit_remove_last",
        "vit_layernorm_shared",
        "meter_fusion",
        "manager_type",
        "managed_layers_text",
        "managed_layers_image",
        "manager_learnable",
        "manager_weight_type",
        "manager_softmax_temperature",
        "manager_softmax_temperature_learnable",
    ];

    /// Keys that say where or how fast a run executes, not what it computes; run identity
    /// ignores them so that moving the data folder or switching CPU/GPU does not re-run a grid.
    pub const EXECUTION_KEYS: [&'static str; 9] = [
        "device",
        "num_workers",
        "data_root",
        "per_gpu_eval_batchsize",
        "save_top_k",
        "save_last",
        "peak_tflops",
        "system_interval_s",
        "profile_steps",
    ];

    /// Keys added after runs were first stored, with their defaults: run identity leaves a key
    /// out while it holds its default, so runs stored before it existed keep their identities.
    pub fn late_keys() -> [(&'static str, serde_json::Value); 5] {
        [
            ("meter_fusion", serde_json::Value::Bool(false)),
            ("loss_names", serde_json::Value::Array(Vec::new())),
            ("precision", serde_json::Value::from("32")),
            // Runs stored before these trained from scratch, from no checkpoint.
            ("pretrained_experts", serde_json::Value::Bool(false)),
            ("vlp_checkpoint", serde_json::Value::from("")),
        ]
    }

    /// The CLIP ViT's head count: `vit_num_heads`, or width / 64 (at least 1) when it is 0.
    pub fn vit_heads(&self) -> i64 {
        if self.vit_num_heads != 0 {
            self.vit_num_heads
        } else {
            (self.input_image_embed_size / 64).max(1)
        }
    }

    /// [`Settings::objectives`] in the reference's order ([`LOSS_NAMES`]), each once: what
    /// the run computes, whatever order the list was written in.
    pub fn objectives_in_reference_order(&self) -> Vec<&'static str> {
        let on = self.objectives();
        LOSS_NAMES
            .into_iter()
            .filter(|n| on.iter().any(|o| o == n))
            .collect()
    }

    /// The objectives this run trains: `loss_names` when set, else the task's reference ones.
    pub fn objectives(&self) -> Vec<String> {
        if self.loss_names.is_empty() {
            self.task
                .objectives()
                .iter()
                .map(|s| s.to_string())
                .collect()
        } else {
            self.loss_names.clone()
        }
    }

    /// The tables a split reads: the explicit `*_tables` setting, else the reference tables of
    /// the task (spec 2.2 and 4). A name ending in `_*` stands for numbered shards.
    pub fn tables(&self, split: Split) -> Vec<String> {
        let explicit = match split {
            Split::Train => &self.train_tables,
            Split::Val => &self.val_tables,
            Split::Test => &self.test_tables,
        };
        if !explicit.is_empty() {
            return explicit.clone();
        }
        let names: &[&str] = match (self.task, split) {
            (Task::Vqa, Split::Train) => &["vqav2_train_fix", "vqav2_val_fix"],
            (Task::Vqa, Split::Val) => &["vqav2_val_fix"],
            (Task::Vqa, Split::Test) => &["vqav2_test"],
            (Task::Nlvr2, Split::Train) => &["nlvr2_train"],
            (Task::Nlvr2, _) => &["nlvr2_dev", "nlvr2_test1"],
            (Task::Snli, Split::Train) => &["snli_train"],
            (Task::Snli, _) => &["snli_dev", "snli_test"],
            // COCO retrieval when `datasets = ["coco"]` (the reference picks the datamodule by
            // `datasets`); Flickr30K otherwise, as the paper. Both validate on their test split,
            // as ViLT and METER do.
            (Task::Irtr, split) if self.coco_retrieval() => match split {
                Split::Train => &[
                    "coco_caption_karpathy_train",
                    "coco_caption_karpathy_restval",
                ],
                _ => &["coco_caption_karpathy_test"],
            },
            (Task::Irtr, Split::Train) => {
                &["f30k_caption_karpathy_train", "f30k_caption_karpathy_val"]
            }
            (Task::Irtr, _) => &["f30k_caption_karpathy_test"],
            (Task::Pretrain, Split::Train) => {
                return self
                    .datasets
                    .iter()
                    .flat_map(|d| match d.as_str() {
                        "coco" => vec![
                            "coco_caption_karpathy_train".to_string(),
                            "coco_caption_karpathy_restval".to_string(),
                        ],
                        "vg" => vec!["vg".to_string()],
                        "sbu" => vec!["sbu_*".to_string()],
                        "gcc" => vec!["conceptual_caption_train_*".to_string()],
                        other => vec![other.to_string()],
                    })
                    .collect();
            }
            (Task::Pretrain, _) => {
                if self.datasets.iter().any(|d| d == "coco") {
                    &["coco_caption_karpathy_test"]
                } else {
                    &[]
                }
            }
        };
        names.iter().map(|s| s.to_string()).collect()
    }

    fn coco_retrieval(&self) -> bool {
        self.datasets == ["coco"]
    }

    /// The valid keys, in declaration order (for validation and suggestions).
    pub fn keys() -> Vec<String> {
        match serde_json::to_value(Self::default()) {
            Ok(serde_json::Value::Object(map)) => map.keys().cloned().collect(),
            _ => Vec::new(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_round_trip_through_json() {
        let s = Settings::default();
        let v = serde_json::to_value(&s).unwrap();
        let back: Settings = serde_json::from_value(v).unwrap();
        assert_eq!(s, back);
    }

    #[test]
    fn manager_types_use_the_paper_names() {
        for t in ManagerType::ALL {
            let v = serde_json::to_value(t).unwrap();
            assert_eq!(v, serde_json::Value::String(t.as_str().into()));
        }
    }

    #[test]
    fn unknown_keys_are_rejected() {
        let err = serde_json::from_str::<Settings>(r#"{"learning_rat": 1.0}"#).unwrap_err();
        assert!(err.to_string().contains("learning_rat"), "{err}");
    }

    #[test]
    fn keys_include_reference_names() {
        let keys = Settings::keys();
        for k in [
            "managed_layers_text",
            "manager_softmax_temperature",
            "lr_mult_cross_modal",
        ] {
            assert!(keys.iter().any(|x| x == k), "{k}");
        }
    }

    #[test]
    fn special_key_lists_name_real_keys() {
        let keys = Settings::keys();
        let late = Settings::late_keys();
        let all = Settings::MODEL_KEYS
            .iter()
            .chain(Settings::EXECUTION_KEYS.iter())
            .chain(Settings::CHOICES.iter().map(|(k, _)| k))
            .chain(late.iter().map(|(k, _)| k));
        for k in all {
            assert!(keys.iter().any(|x| x == k), "{k}");
        }
        let defaults = serde_json::to_value(Settings::default()).unwrap();
        let tiny = serde_json::to_value(Settings::tiny()).unwrap();
        for (k, v) in Settings::late_keys() {
            // What runs stored before the key existed did: a preset's value.
            assert!(defaults[k] == v || tiny[k] == v, "{k}");
        }
    }

    #[test]
    fn choices_match_the_enums() {
        for (key, names) in Settings::CHOICES {
            for name in names {
                let mut v = serde_json::to_value(Settings::default()).unwrap();
                v[key] = serde_json::Value::String(name.to_string());
                let s: Settings = serde_json::from_value(v).unwrap();
                assert_eq!(serde_json::to_value(&s).unwrap()[key], *name);
            }
        }
    }

    #[test]
    fn reference_tables_per_task() {
        let mut s = Settings {
            task: Task::Irtr,
            ..Settings::default()
        };
        assert_eq!(s.tables(Split::Test), ["f30k_caption_karpathy_test"]);
        s.datasets = vec!["coco".into()];
        assert_eq!(
            s.tables(Split::Train),
            [
                "coco_caption_karpathy_train",
                "coco_caption_karpathy_restval"
            ]
        );
        assert_eq!(s.tables(Split::Val), ["coco_caption_karpathy_test"]);
        s.test_tables = vec!["mine".into()];
        assert_eq!(s.tables(Split::Test), ["mine"]);
        s.task = Task::Pretrain;
        s.datasets = Settings::default().datasets;
        assert!(s.tables(Split::Train).contains(&"sbu_*".to_string()));
    }

    #[test]
    fn tiny_is_consistent() {
        let t = Settings::tiny();
        assert!(t.managed_layers_text <= t.text_num_layers);
        assert!(t.managed_layers_image <= t.vit_num_layers);
        assert_eq!(t.image_size % t.patch_size, 0);
        assert_eq!(t.hidden_size % t.num_heads, 0);
    }
}
