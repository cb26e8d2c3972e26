//! The reference's per-task recipes: what `python run.py with task_* mt clip16 text_roberta
//! <augmentation> <script flags>` resolves to, for the settings TowerLab has.
//!
//! A recipe is the layer between the preset and the experiment file (preset → task recipe →
//! file → environment → `--set`). It holds every value the task's named config
//! (`src/config.py`: `task_mlm_itm_clip_bert`, `task_finetune_*_clip_bert`), its augmentation
//! named config (`clip_pure`, `albef_randaug_wc`, `albef_randaug_wohf`) or its launch script
//! (`scripts/pre_train.sh`, `ftfpt-base-*.sh`, `ftfs-base-vqa.sh`) sets. Sacred applies the
//! named configs in command-line order and the `key=value` flags last, so a script flag wins
//! over a named config, and the augmentation config (after `clip16`) wins over the task
//! config's transforms. Keys no recipe names keep the preset's value (the reference defaults
//! with the `clip16` and `text_roberta` backbones).
//!
//! Only the `base` preset has recipes: `tiny` is for tests and CPU demos on synthetic data,
//! where the paper's 576-px images and learning rates mean nothing.
//!
//! One device stands for the reference's eight GPUs. For the tasks whose loss is a mean over
//! independent samples (MLM, ITM, VQA, NLVR2, SNLI-VE) the per-GPU batch only trades memory for
//! speed: gradients are accumulated to `batch_size` either way. Retrieval is different: its ITC
//! loss and hard negatives range over the batch gathered from every GPU (`gather_global_negative
//! = True` in the Flickr script), 8 per GPU × 8 GPUs = 64 samples on one node. The retrieval
//! recipes reproduce that pool with `per_gpu_batchsize = 64` on one device (and 64 for the
//! evaluation loss pass, whose pool the reference gathers the same way).

use serde_json::{json, Value as Json};

use crate::settings::{Settings, Task};

/// Where a recipe value comes from in the reference repository.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Provenance {
    /// A `key=value` flag of the launch script (`scripts/…`), the `EXP_*` variable named.
    Script(&'static str),
    /// A flag of another task's script (COCO retrieval, which has none, borrows the Flickr
    /// script's flags that its named config does not set): the script and the variable.
    OtherScript(&'static str, &'static str),
    /// The task's named config in `src/config.py`.
    TaskConfig,
    /// The augmentation named config the script names (`$EXP_RGM`).
    Augmentation,
    /// Not a reference value: what one device needs to compute what the reference's eight GPUs
    /// did (the note says how).
    OneDevice,
}

/// One setting of a recipe.
#[derive(Debug, Clone, PartialEq)]
pub struct RecipeValue {
    pub key: &'static str,
    pub value: Json,
    pub from: Provenance,
    /// Why the value is what it is, where that is not plain.
    pub note: Option<&'static str>,
}

/// A task's recipe.
#[derive(Debug, Clone, PartialEq)]
pub struct Recipe {
    /// TowerLab's name: `pretrain`, `vqa`, `vqa-ftfs`, `nlvr2`, `snli`, `irtr-f30k`, `irtr-coco`.
    pub name: &'static str,
    pub task: Task,
    /// The reference's task named config.
    pub task_config: &'static str,
    /// The augmentation named config.
    pub augmentation: &'static str,
    /// The launch script, when the repository has one.
    pub script: Option<&'static str>,
    pub values: Vec<RecipeValue>,
}

/// Which recipe a run gets: by task, whether it starts from a VLP checkpoint (VQA has a
/// recipe for each arm), and for retrieval whether it is COCO (`datasets = ["coco"]`, as the
/// reference picks the datamodule) or Flickr30K.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Selector {
    pub task: Task,
    pub vlp: bool,
    pub coco: bool,
}

impl Selector {
    pub fn of(s: &Settings) -> Self {
        Self {
            task: s.task,
            vlp: s.vlp,
            coco: s.datasets == ["coco"],
        }
    }
}

const NOTE_POOL: &str = "the reference's 8 per GPU x 8 GPUs (one node): ITC and hard negatives \
     range over the gathered batch (gather_global_negative = True), so one device takes all 64 \
     at once; est. 129 GiB in fp32 (fits an H200, 140 GiB), ~80 GiB with precision = \"bf16\"; \
     32 halves the pool and the memory (fits an H100)";
const NOTE_EVAL_POOL: &str = "8 per GPU x 8 GPUs: the validation ITC/ITM loss gathers its pool \
     the same way; the recall re-ranks 64 pairs at a time";
const NOTE_VQA_BATCH: &str = "504 is not a multiple of 4 x 8 GPUs (one node gave 480); one \
     device accumulates 126 batches of 4 to exactly 504";
const NOTE_COCO: &str = "no COCO script: the named config's values, with the Flickr script's \
     flags it does not set";
const NOTE_COCO_SIZE: &str = "the named config's 384 (clip16, named after it, would reset 224; \
     every script passes image_size itself)";

const ONE_DEVICE: &str = "TowerLab trains a run on one device: `per_gpu_batchsize` is its \
     micro-batch, accumulated to `batch_size`";
const GATHER: &str = "a multi-GPU switch of the reference; on TowerLab's one device the \
     micro-batch (`per_gpu_batchsize`) is the gathered pool that ITC and the hard negatives \
     range over (the retrieval recipes set it to the reference's 8 per GPU x 8 GPUs = 64)";
const RECALL_MEMORY: &str = "a memory knob of the reference's recall; TowerLab's re-ranking \
     fuses `per_gpu_eval_batchsize` pairs at a time";

/// Reference config keys TowerLab does not take, with what stands for them: an experiment
/// file naming one gets this answer instead of "unknown setting".
pub const REFERENCE_ONLY: [(&str, &str); 13] = [
    ("num_gpus", ONE_DEVICE),
    ("num_nodes", ONE_DEVICE),
    ("gather_global_negative", GATHER),
    ("gather_all_inputs", GATHER),
    ("gather_all_image_inputs", GATHER),
    ("per_gpu_eval_batchsize_text", RECALL_MEMORY),
    ("per_gpu_eval_batchsize_image", RECALL_MEMORY),
    ("per_gpu_eval_batchsize_fusion_text", RECALL_MEMORY),
    ("image_chunks", RECALL_MEMORY),
    ("text_chunks", RECALL_MEMORY),
    (
        "whole_word_masking",
        "RoBERTa's tokenizer does not support it (the reference's text_roberta sets False)",
    ),
    (
        "test_only",
        "`towerlab eval --weights FILE --task TASK` scores a checkpoint (or an [[eval]] entry)",
    ),
    (
        "model_type",
        "`manager_type` names the fusion: \"BT\" and \"METER\" are the reference's bt and \
         meter model types, \"AAUE\"/\"SAUE\" its mt",
    ),
];

fn v(key: &'static str, value: Json, from: Provenance) -> RecipeValue {
    RecipeValue {
        key,
        value,
        from,
        note: None,
    }
}

fn noted(key: &'static str, value: Json, from: Provenance, note: &'static str) -> RecipeValue {
    RecipeValue {
        key,
        value,
        from,
        note: Some(note),
    }
}

fn strings(items: &[&str]) -> Json {
    json!(items)
}

/// `scripts/pre_train.sh` with `task_mlm_itm_clip_bert clip_pure`.
fn pretrain() -> Recipe {
    use Provenance::{Augmentation as A, Script as S, TaskConfig as C};
    Recipe {
        name: "pretrain",
        task: Task::Pretrain,
        task_config: "task_mlm_itm_clip_bert",
        augmentation: "clip_pure",
        script: Some("scripts/pre_train.sh"),
        values: vec![
            v("datasets", strings(&["coco", "vg", "sbu", "gcc"]), C),
            v("batch_size", json!(4096), C),
            v("max_epoch", json!(10), C),
            v("max_steps", json!(100_000), C),
            v("warmup_steps", json!(0.1), C),
            v("max_text_len", json!(50), C),
            v("draw_false_image", json!(1), C),
            v("lr_mult_head", json!(5.0), C),
            v("lr_mult_cross_modal", json!(5.0), C),
            v("train_transform_keys", strings(&["clip"]), A),
            v("val_transform_keys", strings(&["clip"]), A),
            v("image_size", json!(288), S("EXP_IS")),
            v("per_gpu_batchsize", json!(8), S("EXP_PGB")),
            v("per_gpu_eval_batchsize", json!(32), S("EXP_PGEB")),
            v("learning_rate", json!(1e-5), S("EXP_LR")),
        ],
    }
}

/// The values the three fine-tuning script families share (`EXP_THL`, warmup, epochs...).
fn finetune(
    name: &'static str,
    task: Task,
    task_config: &'static str,
    augmentation: &'static str,
    script: &'static str,
    dataset: &'static str,
    values: Vec<RecipeValue>,
) -> Recipe {
    use Provenance::{Augmentation as A, Script as S, TaskConfig as C};
    let mut all = vec![
        v("datasets", strings(&[dataset]), C),
        v("max_steps", json!(-1), C),
        v("task_head_layers", json!(2), S("EXP_THL")),
        v("lr_mult_cross_modal", json!(5.0), S("EXP_LMC")),
        v("train_transform_keys", strings(&[augmentation]), A),
        v("val_transform_keys", strings(&["albef"]), A),
    ];
    all.extend(values);
    Recipe {
        name,
        task,
        task_config,
        augmentation,
        script: Some(script),
        values: all,
    }
}

/// `scripts/ftfpt-base-vqa.sh` (from the pre-trained checkpoint) or `ftfs-base-vqa.sh` (from
/// the uni-modal experts), with `task_finetune_vqa_clip_bert albef_randaug_wohf`.
fn vqa(vlp: bool) -> Recipe {
    use Provenance::{Script as S, TaskConfig as C};
    let (name, script) = if vlp {
        ("vqa", "scripts/ftfpt-base-vqa.sh")
    } else {
        ("vqa-ftfs", "scripts/ftfs-base-vqa.sh")
    };
    let batch = if vlp {
        noted("batch_size", json!(504), S("EXP_BS"), NOTE_VQA_BATCH)
    } else {
        v("batch_size", json!(512), S("EXP_BS"))
    };
    finetune(
        name,
        Task::Vqa,
        "task_finetune_vqa_clip_bert",
        "albef_randaug_wohf",
        script,
        "vqa",
        vec![
            v("max_text_len", json!(50), C),
            v("image_size", json!(576), S("EXP_IS")),
            v("per_gpu_batchsize", json!(4), S("EXP_PGB")),
            v("per_gpu_eval_batchsize", json!(16), S("EXP_PGEB")),
            v(
                "learning_rate",
                json!(if vlp { 9e-6 } else { 2e-5 }),
                S("EXP_LR"),
            ),
            batch,
            v("max_epoch", json!(10), S("EXP_ME")),
            v("warmup_steps", json!(0.1), S("EXP_WS")),
            v(
                "weight_decay",
                json!(if vlp { 0.06 } else { 0.01 }),
                S("EXP_WD"),
            ),
            v("lr_mult_head", json!(50.0), S("EXP_LMH")),
            v(
                "head_hidden_scale",
                json!(if vlp { 2 } else { 1 }),
                S("EXP_HHS"),
            ),
        ],
    )
}

/// `scripts/ftfpt-base-nlvr2.sh` with `task_finetune_nlvr2_clip_bert albef_randaug_wc`.
fn nlvr2() -> Recipe {
    use Provenance::{Script as S, TaskConfig as C};
    finetune(
        "nlvr2",
        Task::Nlvr2,
        "task_finetune_nlvr2_clip_bert",
        "albef_randaug_wc",
        "scripts/ftfpt-base-nlvr2.sh",
        "nlvr2",
        vec![
            v("max_text_len", json!(50), C),
            v("image_size", json!(384), S("EXP_IS")),
            v("per_gpu_batchsize", json!(4), S("EXP_PGB")),
            v("per_gpu_eval_batchsize", json!(32), S("EXP_PGEB")),
            v("learning_rate", json!(1.4e-5), S("EXP_LR")),
            v("batch_size", json!(256), S("EXP_BS")),
            v("max_epoch", json!(5), S("EXP_ME")),
            v("warmup_steps", json!(0.1), S("EXP_WS")),
            v("weight_decay", json!(0.01), S("EXP_WD")),
            v("lr_mult_head", json!(10.0), S("EXP_LMH")),
            v("head_hidden_scale", json!(1), S("EXP_HHS")),
            v("nlvr2_drop_rate", json!(0.0), S("EXP_CDR")),
        ],
    )
}

/// `scripts/ftfpt-base-snlive.sh` with `task_finetune_snli_clip_bert albef_randaug_wc`.
fn snli() -> Recipe {
    use Provenance::{Script as S, TaskConfig as C};
    finetune(
        "snli",
        Task::Snli,
        "task_finetune_snli_clip_bert",
        "albef_randaug_wc",
        "scripts/ftfpt-base-snlive.sh",
        "snli",
        vec![
            v("max_text_len", json!(50), C),
            v("image_size", json!(384), S("EXP_IS")),
            v("per_gpu_batchsize", json!(8), S("EXP_PGB")),
            v("per_gpu_eval_batchsize", json!(64), S("EXP_PGEB")),
            v("learning_rate", json!(3e-6), S("EXP_LR")),
            v("batch_size", json!(64), S("EXP_BS")),
            v("max_epoch", json!(4), S("EXP_ME")),
            v("warmup_steps", json!(0.06), S("EXP_WS")),
            v("weight_decay", json!(0.01), S("EXP_WD")),
            v("lr_mult_head", json!(10.0), S("EXP_LMH")),
            v("head_hidden_scale", json!(2), S("EXP_HHS")),
        ],
    )
}

/// `scripts/ftfpt-base-flickr.sh` with `task_finetune_irtr_itm_itc_f30k_clip_bert
/// albef_randaug_wc`; for COCO, `task_finetune_irtr_itm_itc_coco_clip_bert` (the repository has
/// no COCO script) with the Flickr script's flags that the named config does not set.
fn irtr(coco: bool) -> Recipe {
    use Provenance::{OneDevice as O, Script as S, TaskConfig as C};
    let mut values = vec![
        v("max_text_len", json!(40), C),
        v("get_recall_metric", json!(true), C),
        noted("per_gpu_batchsize", json!(64), O, NOTE_POOL),
        noted("per_gpu_eval_batchsize", json!(64), O, NOTE_EVAL_POOL),
        v("batch_size", json!(512), S("EXP_BS")),
        v("warmup_steps", json!(0.1), S("EXP_WS")),
        v("weight_decay", json!(0.01), S("EXP_WD")),
        v("lr_mult_head", json!(5.0), S("EXP_LMH")),
        v("head_hidden_scale", json!(1), S("EXP_HHS")),
        v("amp_flag", json!(true), S("EXP_AF")),
    ];
    if coco {
        values.extend([
            noted("image_size", json!(384), C, NOTE_COCO_SIZE),
            v("learning_rate", json!(5e-6), C),
            v("max_epoch", json!(10), C),
            noted("k_test", json!(256), C, NOTE_COCO),
        ]);
    } else {
        values.extend([
            v("image_size", json!(384), S("EXP_IS")),
            v("learning_rate", json!(6e-6), S("EXP_LR")),
            v("max_epoch", json!(20), S("EXP_ME")),
            v("k_test", json!(128), C),
        ]);
    }
    let mut r = finetune(
        if coco { "irtr-coco" } else { "irtr-f30k" },
        Task::Irtr,
        if coco {
            "task_finetune_irtr_itm_itc_coco_clip_bert"
        } else {
            "task_finetune_irtr_itm_itc_f30k_clip_bert"
        },
        "albef_randaug_wc",
        "scripts/ftfpt-base-flickr.sh",
        if coco { "coco" } else { "f30k" },
        values,
    );
    if coco {
        // The Flickr script's flags, and the named config where it has the key.
        const CONFIG_KEYS: [&str; 4] = [
            "batch_size",
            "warmup_steps",
            "lr_mult_head",
            "lr_mult_cross_modal",
        ];
        for value in &mut r.values {
            if let Provenance::Script(var) = value.from {
                value.from = if CONFIG_KEYS.contains(&value.key) {
                    Provenance::TaskConfig
                } else {
                    Provenance::OtherScript("ftfpt-base-flickr.sh", var)
                };
            }
        }
        r.script = None;
    }
    r
}

/// Every recipe, in the order the documentation lists them.
pub fn all() -> Vec<Recipe> {
    vec![
        pretrain(),
        vqa(true),
        vqa(false),
        nlvr2(),
        snli(),
        irtr(false),
        irtr(true),
    ]
}

/// The recipe of a run on `preset` (only `base` has recipes).
pub fn select(preset: &str, sel: Selector) -> Option<Recipe> {
    if preset != "base" {
        return None;
    }
    Some(match sel.task {
        Task::Pretrain => pretrain(),
        Task::Vqa => vqa(sel.vlp),
        Task::Nlvr2 => nlvr2(),
        Task::Snli => snli(),
        Task::Irtr => irtr(sel.coco),
    })
}

impl Recipe {
    /// The recipe as a settings layer.
    pub fn layer(&self) -> Vec<(String, Json)> {
        self.values
            .iter()
            .map(|r| (r.key.to_string(), r.value.clone()))
            .collect()
    }

    /// Where a value comes from, as the documentation writes it.
    pub fn origin(&self, value: &RecipeValue) -> String {
        match value.from {
            Provenance::Script(var) => format!(
                "`{}` `{var}`",
                self.script
                    .unwrap_or("(no script)")
                    .trim_start_matches("scripts/")
            ),
            Provenance::OtherScript(script, var) => format!("`{script}` `{var}` (Flickr's)"),
            Provenance::TaskConfig => format!("`{}`", self.task_config),
            Provenance::Augmentation => format!("`{}`", self.augmentation),
            Provenance::OneDevice => "one device (see note)".to_string(),
        }
    }
}

/// The Markdown table of every recipe (README: task × setting × value × where from). A test
/// keeps the README's copy equal to it.
pub fn markdown_table() -> String {
    let mut out = String::from("| recipe | setting | value | from | note |\n");
    out.push_str("| --- | --- | --- | --- | --- |\n");
    for r in all() {
        for value in &r.values {
            out.push_str(&format!(
                "| {} | `{}` | `{}` | {} | {} |\n",
                r.name,
                value.key,
                crate::grid::display_value(&value.value),
                r.origin(value),
                value.note.unwrap_or("")
            ));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn recipe_keys_are_settings_with_values_of_their_type() {
        for r in all() {
            let mut seen = std::collections::HashSet::new();
            for value in &r.values {
                assert!(seen.insert(value.key), "{}: {} twice", r.name, value.key);
                crate::schema::check_value(value.key, &value.value)
                    .unwrap_or_else(|e| panic!("{}: {}: {e}", r.name, value.key));
            }
        }
    }

    #[test]
    fn selection_follows_task_vlp_and_dataset() {
        let sel = |task, vlp, coco| select("base", Selector { task, vlp, coco }).unwrap().name;
        assert_eq!(sel(Task::Vqa, true, false), "vqa");
        assert_eq!(sel(Task::Vqa, false, false), "vqa-ftfs");
        assert_eq!(sel(Task::Nlvr2, false, false), "nlvr2");
        assert_eq!(sel(Task::Irtr, true, true), "irtr-coco");
        assert_eq!(sel(Task::Irtr, true, false), "irtr-f30k");
        assert_eq!(sel(Task::Pretrain, false, false), "pretrain");
        let tiny = Selector {
            task: Task::Vqa,
            vlp: false,
            coco: false,
        };
        assert!(select("tiny", tiny).is_none());
    }
}
