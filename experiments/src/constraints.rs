//! Combinations of settings that cannot run, checked on a fully resolved `Settings`.

use crate::settings::{ManagerType, Settings, Task};

/// One impossible combination: the keys involved (to point at the one the user set last) and
/// what is wrong.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    pub keys: Vec<&'static str>,
    pub message: String,
}

fn problem(keys: &[&'static str], message: String) -> Problem {
    Problem {
        keys: keys.to_vec(),
        message,
    }
}

/// How many uni-modal layers a baseline feeds into the cross-modal encoder, where the reference
/// fixes it: BridgeTower bridges the top `num_layers` layers (`bt_module.py`: `split_index =
/// layers - num_layers`), METER uses the last layer only. `None` for the managers, where
/// `managed_layers_*` is free.
pub fn fixed_managed_layers(s: &Settings) -> Option<i64> {
    match s.manager_type {
        ManagerType::Bt => Some(s.num_layers),
        ManagerType::Meter => Some(1),
        ManagerType::Aaue | ManagerType::Saue | ManagerType::Sae => None,
    }
}

/// Every impossible combination in `s`.
pub fn check(s: &Settings) -> Vec<Problem> {
    let mut out = Vec::new();
    // `vit_num_heads = 0` is width / 64: say so rather than name a count nobody wrote.
    let vit_default_heads = (s.vit_num_heads == 0 && s.input_image_embed_size % s.vit_heads() != 0)
        .then(|| {
            problem(
                &["input_image_embed_size", "vit_num_heads"],
                format!(
                    "input_image_embed_size ({}) is not divisible by its default head count \
                     ({} = width / 64, as vit_num_heads = 0 means); set vit_num_heads",
                    s.input_image_embed_size,
                    s.vit_heads()
                ),
            )
        });
    let mut divisible = |a: &'static str, av: i64, b: &'static str, bv: i64| {
        if bv <= 0 {
            out.push(problem(&[b], format!("{b} must be at least 1, found {bv}")));
        } else if av % bv != 0 {
            out.push(problem(
                &[a, b],
                format!("{a} ({av}) is not divisible by {b} ({bv})"),
            ));
        }
    };
    divisible("hidden_size", s.hidden_size, "num_heads", s.num_heads);
    divisible("image_size", s.image_size, "patch_size", s.patch_size);
    if s.vit_num_heads != 0 {
        divisible(
            "input_image_embed_size",
            s.input_image_embed_size,
            "vit_num_heads",
            s.vit_num_heads,
        );
    }
    divisible(
        "input_text_embed_size",
        s.input_text_embed_size,
        "text_num_heads",
        s.text_num_heads,
    );
    out.extend(vit_default_heads);

    for (key, v) in [
        ("num_layers", s.num_layers),
        ("vit_num_layers", s.vit_num_layers),
        ("text_num_layers", s.text_num_layers),
        ("hidden_size", s.hidden_size),
        ("image_size", s.image_size),
        ("max_text_len", s.max_text_len),
        ("vocab_size", s.vocab_size),
        ("mlp_ratio", s.mlp_ratio),
    ] {
        if v < 1 {
            out.push(problem(
                &[key],
                format!("{key} must be at least 1, found {v}"),
            ));
        }
    }
    for (key, v) in [
        ("batch_size", s.batch_size),
        ("per_gpu_batchsize", s.per_gpu_batchsize),
        ("per_gpu_eval_batchsize", s.per_gpu_eval_batchsize),
    ] {
        if v < 1 {
            out.push(problem(
                &[key],
                format!("{key} must be at least 1, found {v}"),
            ));
        }
    }

    match fixed_managed_layers(s) {
        None => {
            for (key, v, enc_key, enc) in [
                (
                    "managed_layers_text",
                    s.managed_layers_text,
                    "text_num_layers",
                    s.text_num_layers,
                ),
                (
                    "managed_layers_image",
                    s.managed_layers_image,
                    "vit_num_layers",
                    s.vit_num_layers,
                ),
            ] {
                if v < 1 {
                    out.push(problem(
                        &[key],
                        format!("{key} must be at least 1, found {v}"),
                    ));
                } else if v > enc {
                    out.push(problem(
                        &[key, enc_key],
                        format!(
                            "{key} ({v}) is more than the encoder's layers ({enc_key} = {enc})"
                        ),
                    ));
                }
            }
        }
        Some(_) if s.manager_type == ManagerType::Bt => {
            // The ViT's blocks: `vit_remove_last` drops the top one.
            let vit_blocks = s.vit_num_layers - i64::from(s.vit_remove_last);
            for (enc_key, enc) in [
                ("text_num_layers", s.text_num_layers),
                ("vit_num_layers", vit_blocks),
            ] {
                if s.num_layers > enc {
                    out.push(problem(
                        &["num_layers", enc_key],
                        format!(
                            "BT bridges the top num_layers uni-modal layers, but num_layers ({}) is more than {enc_key} ({enc})",
                            s.num_layers
                        ),
                    ));
                }
            }
            if vit_blocks != s.text_num_layers {
                let removed = if s.vit_remove_last {
                    " (minus 1 for vit_remove_last)"
                } else {
                    ""
                };
                out.push(problem(
                    &["vit_num_layers", "text_num_layers", "vit_remove_last"],
                    format!(
                        "BT needs uni-modal encoders of equal depth, found vit_num_layers = {}{removed} and text_num_layers = {}",
                        s.vit_num_layers, s.text_num_layers
                    ),
                ));
            }
        }
        Some(_) => {}
    }

    if s.meter_fusion {
        if s.manager_type != ManagerType::Meter {
            out.push(problem(
                &["meter_fusion", "manager_type"],
                format!(
                    "meter_fusion applies to METER only, found manager_type = {}",
                    s.manager_type.as_str()
                ),
            ));
        }
        if s.input_text_embed_size != s.hidden_size || s.input_image_embed_size != s.hidden_size {
            out.push(problem(
                &[
                    "meter_fusion",
                    "input_text_embed_size",
                    "input_image_embed_size",
                    "hidden_size",
                ],
                format!(
                    "meter_fusion gates the uni-modal layers with hidden_size x hidden_size linears, so input_text_embed_size ({}) and input_image_embed_size ({}) must equal hidden_size ({})",
                    s.input_text_embed_size, s.input_image_embed_size, s.hidden_size
                ),
            ));
        }
    }

    if s.max_text_len + 2 > s.text_max_position_embeddings {
        out.push(problem(
            &["max_text_len", "text_max_position_embeddings"],
            format!(
                "max_text_len ({}) does not fit the text position table (text_max_position_embeddings = {}, of which RoBERTa reserves 2)",
                s.max_text_len, s.text_max_position_embeddings
            ),
        ));
    }

    for (key, v) in [
        ("learning_rate", s.learning_rate),
        ("manager_softmax_temperature", s.manager_softmax_temperature),
        ("temperature", s.temperature),
    ] {
        if v <= 0.0 {
            out.push(problem(
                &[key],
                format!("{key} must be positive, found {v}"),
            ));
        }
    }
    for (key, v) in [
        ("drop_rate", s.drop_rate),
        ("nlvr2_drop_rate", s.nlvr2_drop_rate),
    ] {
        if !(0.0..1.0).contains(&v) {
            out.push(problem(
                &[key],
                format!("{key} must be in [0, 1), found {v}"),
            ));
        }
    }
    if !(s.mlm_prob > 0.0 && s.mlm_prob < 1.0) {
        out.push(problem(
            &["mlm_prob"],
            format!("mlm_prob must be in (0, 1), found {}", s.mlm_prob),
        ));
    }
    for (key, v) in [
        ("warmup_steps", s.warmup_steps),
        ("weight_decay", s.weight_decay),
        ("end_lr", s.end_lr),
        ("gradient_clip_val", s.gradient_clip_val),
        ("peak_tflops", s.peak_tflops),
        ("system_interval_s", s.system_interval_s),
        ("profile_steps", s.profile_steps as f64),
    ] {
        if v < 0.0 {
            out.push(problem(
                &[key],
                format!("{key} must not be negative, found {v}"),
            ));
        }
    }
    // The engine builds a layer of each size; zero would pass the plan and fail every run.
    for (key, v) in [
        ("vqav2_label_size", s.vqav2_label_size),
        ("vocab_size", s.vocab_size),
        ("text_num_layers", s.text_num_layers),
        ("vit_num_layers", s.vit_num_layers),
        (
            "text_max_position_embeddings",
            s.text_max_position_embeddings,
        ),
        ("input_text_embed_size", s.input_text_embed_size),
        ("input_image_embed_size", s.input_image_embed_size),
        ("hidden_size", s.hidden_size),
    ] {
        if v <= 0 {
            out.push(problem(
                &[key],
                format!("{key} must be at least 1, found {v}"),
            ));
        }
    }
    if s.save_top_k < -1 {
        out.push(problem(
            &["save_top_k"],
            format!(
                "save_top_k must be -1 (keep every checkpoint), 0 or more, found {}",
                s.save_top_k
            ),
        ));
    }
    if s.max_steps <= 0 && s.max_epoch <= 0 {
        out.push(problem(
            &["max_steps", "max_epoch"],
            "set max_steps or max_epoch to a positive number".into(),
        ));
    }
    if s.device.parse::<crate::device::DeviceSpec>().is_err() {
        out.push(problem(
            &["device"],
            format!(
                "device must be auto, cpu, cuda or cuda:N, found \"{}\"",
                s.device
            ),
        ));
    }
    if !["adamw", "adam", "sgd"].contains(&s.optim_type.as_str()) {
        out.push(problem(
            &["optim_type"],
            format!(
                "optim_type must be adamw, adam or sgd, found \"{}\"",
                s.optim_type
            ),
        ));
    }
    if s.vlp && s.task == Task::Pretrain {
        out.push(problem(
            &["vlp", "task"],
            "vlp = true needs a fine-tuning task; a pre-training run cannot start from one".into(),
        ));
    }
    if s.vlp && !s.load_path.is_empty() {
        out.push(problem(
            &["vlp", "load_path"],
            "vlp = true and load_path exclude each other: with vlp the run starts from the plan's pre-training run".into(),
        ));
    }
    if s.task == Task::Pretrain && s.datasets.is_empty() && s.train_tables.is_empty() {
        out.push(problem(
            &["datasets"],
            "pre-training needs datasets (coco, vg, sbu, gcc) or train_tables".into(),
        ));
    }
    check_loss_names(s, &mut out);
    if s.task == Task::Irtr && s.k_test < 1 {
        out.push(problem(
            &["k_test"],
            format!("k_test must be at least 1, found {}", s.k_test),
        ));
    }
    out
}

/// `loss_names` picks among pre-training's objectives; the fine-tuning tasks have one
/// objective each, so there it can only repeat the task's own.
fn check_loss_names(s: &Settings, out: &mut Vec<Problem>) {
    let allowed = s.task.allowed_objectives();
    let quoted = |names: &mut dyn Iterator<Item = &str>| {
        names
            .map(|n| format!("\"{n}\""))
            .collect::<Vec<_>>()
            .join(", ")
    };
    let foreign = quoted(
        &mut s
            .loss_names
            .iter()
            .map(String::as_str)
            .filter(|n| !allowed.contains(n)),
    );
    if !foreign.is_empty() {
        let hint = if s.task == Task::Pretrain {
            ""
        } else {
            "; pre-training objectives go in [pretrain] (or --set pretrain.loss_names=...)"
        };
        out.push(problem(
            &["loss_names"],
            format!(
                "loss_names: task {} trains {}, found {foreign}{hint}",
                s.task.as_str(),
                quoted(&mut allowed.iter().copied())
            ),
        ));
    }
    for (i, name) in s.loss_names.iter().enumerate() {
        if s.loss_names[..i].contains(name) {
            out.push(problem(
                &["loss_names"],
                format!("loss_names names \"{name}\" twice"),
            ));
        }
    }
    // `itm_itc` logs under `itm` and `itc`: with either beside it the metrics would mix.
    let on = |n: &str| s.loss_names.iter().any(|x| x == n);
    for other in ["itm", "itc"] {
        if on("itm_itc") && on(other) {
            out.push(problem(
                &["loss_names"],
                format!("loss_names: \"itm_itc\" already trains {other}; drop \"{other}\""),
            ));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn messages(s: &Settings) -> Vec<String> {
        check(s).into_iter().map(|p| p.message).collect()
    }

    #[test]
    fn presets_are_valid() {
        assert!(
            check(&Settings::default()).is_empty(),
            "{:?}",
            check(&Settings::default())
        );
        assert!(
            check(&Settings::tiny()).is_empty(),
            "{:?}",
            check(&Settings::tiny())
        );
    }

    #[test]
    fn divisibility() {
        let s = Settings {
            hidden_size: 100,
            image_size: 250,
            ..Settings::default()
        };
        assert_eq!(
            messages(&s),
            [
                "hidden_size (100) is not divisible by num_heads (12)",
                "image_size (250) is not divisible by patch_size (16)"
            ]
        );
    }

    #[test]
    fn managed_layers_bounded_by_encoders() {
        let s = Settings {
            managed_layers_text: 13,
            ..Settings::default()
        };
        assert_eq!(
            messages(&s),
            ["managed_layers_text (13) is more than the encoder's layers (text_num_layers = 12)"]
        );
    }

    #[test]
    fn bridgetower_depths() {
        let s = Settings {
            manager_type: ManagerType::Bt,
            num_layers: 13,
            managed_layers_text: 13,
            managed_layers_image: 13,
            ..Settings::default()
        };
        let m = messages(&s);
        assert!(m.contains(&"BT bridges the top num_layers uni-modal layers, but num_layers (13) is more than text_num_layers (12)".to_string()), "{m:?}");
        let s = Settings {
            manager_type: ManagerType::Bt,
            vit_num_layers: 6,
            ..Settings::default()
        };
        assert_eq!(
            messages(&s),
            ["BT needs uni-modal encoders of equal depth, found vit_num_layers = 6 and text_num_layers = 12"]
        );
    }

    #[test]
    fn bridgetower_depth_counts_vit_blocks_after_remove_last() {
        // The reference's valid setup: a ViT one block deeper than the text encoder, top removed.
        let s = Settings {
            manager_type: ManagerType::Bt,
            vit_num_layers: 13,
            vit_remove_last: true,
            ..Settings::default()
        };
        assert!(check(&s).is_empty(), "{:?}", messages(&s));
        let s = Settings {
            vit_num_layers: 12,
            ..s
        };
        assert_eq!(
            messages(&s),
            ["BT needs uni-modal encoders of equal depth, found vit_num_layers = 12 (minus 1 for vit_remove_last) and text_num_layers = 12"]
        );
    }

    #[test]
    fn meter_fusion_needs_meter_and_hidden_widths() {
        let s = Settings {
            manager_type: ManagerType::Meter,
            meter_fusion: true,
            ..Settings::default()
        };
        assert!(check(&s).is_empty(), "{:?}", messages(&s));
        let s = Settings {
            manager_type: ManagerType::Bt,
            hidden_size: 384,
            ..s
        };
        let p = check(&s);
        assert_eq!(p.len(), 2, "{p:?}");
        assert_eq!(
            p[0].message,
            "meter_fusion applies to METER only, found manager_type = BT"
        );
        assert!(p[1].keys.contains(&"input_image_embed_size"));
        assert!(
            p[1].message.contains("must equal hidden_size (384)"),
            "{}",
            p[1].message
        );
    }

    #[test]
    fn devices() {
        for d in ["auto", "cpu", "cuda", "cuda:1"] {
            let s = Settings {
                device: d.into(),
                ..Settings::default()
            };
            assert!(messages(&s).is_empty(), "{d}");
        }
        for d in ["gpu", "cuda:", "cuda:x"] {
            let s = Settings {
                device: d.into(),
                ..Settings::default()
            };
            assert!(messages(&s).iter().any(|m| m.contains("device")), "{d}");
        }
    }

    #[test]
    fn vlp_rules() {
        let s = Settings {
            vlp: true,
            task: Task::Pretrain,
            ..Settings::default()
        };
        assert_eq!(
            messages(&s),
            ["vlp = true needs a fine-tuning task; a pre-training run cannot start from one"]
        );
    }

    #[test]
    fn loss_names_pick_among_the_task_objectives() {
        let itm_only = Settings {
            loss_names: vec!["itm".into()],
            ..Settings::default()
        };
        assert!(check(&itm_only).is_empty(), "{:?}", messages(&itm_only));
        assert_eq!(itm_only.objectives(), ["itm"]);
        assert_eq!(Settings::default().objectives(), ["mlm", "itm"]);

        let s = Settings {
            loss_names: vec!["itm".into(), "irtr".into(), "itm".into()],
            ..Settings::default()
        };
        assert_eq!(
            messages(&s),
            [
                "loss_names: task pretrain trains \"mlm\", \"itm\", \"itc\", \"itm_itc\", found \"irtr\"",
                "loss_names names \"itm\" twice"
            ]
        );
        let s = Settings {
            task: Task::Vqa,
            loss_names: vec!["mlm".into(), "itm".into()],
            ..Settings::default()
        };
        assert_eq!(
            messages(&s),
            ["loss_names: task vqa trains \"vqa\", found \"mlm\", \"itm\"; pre-training objectives go in [pretrain] (or --set pretrain.loss_names=...)"]
        );
        let s = Settings {
            loss_names: vec!["mlm".into(), "itm_itc".into(), "itc".into()],
            ..Settings::default()
        };
        assert_eq!(
            messages(&s),
            ["loss_names: \"itm_itc\" already trains itc; drop \"itc\""]
        );
    }
}
