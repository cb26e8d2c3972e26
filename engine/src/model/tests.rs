//! Whole-model tests on the tiny preset (CPU).

use std::collections::HashMap;

use experiments::{ManagerType, Precision, Settings, Task};
use tch::{nn, nn::OptimizerConfig, Device, Kind, Tensor};

use super::objectives::{self, total_loss, Batch, Split};
use super::*;

const B: i64 = 3;

fn settings(kind: ManagerType, task: Task) -> Settings {
    let mut s = Settings::tiny();
    s.manager_type = kind;
    s.task = task;
    s
}

fn build(s: &Settings) -> (nn::VarStore, TowerModel) {
    tch::manual_seed(0);
    let vs = nn::VarStore::new(Device::Cpu);
    let cfg = ModelConfig::from_settings(s).unwrap();
    let model = TowerModel::new(&vs.root(), &cfg).unwrap();
    (vs, model)
}

/// Text with padding in the last rows: `<s> … </s> <pad>…`.
fn text(s: &Settings) -> (Tensor, Tensor) {
    let l = s.max_text_len;
    let ids = Tensor::randint_low(3, s.vocab_size, [B, l], (Kind::Int64, Device::Cpu));
    let lens = [l, l - 5, 4];
    let mask = Tensor::zeros([B, l], (Kind::Int64, Device::Cpu));
    for (b, &n) in lens.iter().enumerate() {
        let _ = mask.get(b as i64).narrow(0, 0, n).fill_(1);
    }
    let ids = ids * &mask + (mask.ones_like() - &mask) * roberta::PADDING_IDX;
    let _ = ids.select(1, 0).fill_(0);
    (ids, mask)
}

fn image(s: &Settings) -> Tensor {
    Tensor::randn(
        [B, 3, s.image_size, s.image_size],
        (Kind::Float, Device::Cpu),
    )
}

#[test]
fn output_shapes_for_every_fusion_type() {
    for kind in ManagerType::ALL {
        for num_layers in [2, 0] {
            let mut s = settings(kind, Task::Pretrain);
            s.num_layers = num_layers;
            let (_vs, model) = build(&s);
            let (ids, mask) = text(&s);
            let img = image(&s);
            for train in [false, true] {
                let opts = if train {
                    ForwardOptions::train()
                } else {
                    ForwardOptions::eval()
                };
                let out = model.forward(&ids, &mask, &img, opts).unwrap();
                let h = s.hidden_size;
                let lv = model.config().image_tokens();
                assert_eq!(
                    out.text_feats.size(),
                    vec![B, s.max_text_len, h],
                    "{kind:?}"
                );
                assert_eq!(out.image_feats.size(), vec![B, lv, h], "{kind:?}");
                assert_eq!(out.cls_feats.size(), vec![B, 2 * h], "{kind:?}");
                assert!(bool::try_from(out.cls_feats.isfinite().all()).unwrap());
                let expect_weights = !train && num_layers > 0 && model.config().is_manager_tower();
                assert_eq!(out.manager_weights.is_some(), expect_weights, "{kind:?}");
                if let Some(w) = out.manager_weights {
                    assert_eq!(w.text.len(), num_layers as usize);
                    assert_eq!(w.image.len(), num_layers as usize);
                    for (l, lw) in w.text.iter().enumerate() {
                        assert_eq!(lw.experts.len(), s.managed_layers_text as usize);
                        let sum: f64 = lw.experts.iter().sum();
                        assert!((sum - 1.0).abs() < 1e-5, "{kind:?} {sum}");
                        let cross = match (kind, l) {
                            (_, 0) => 0,
                            (ManagerType::Sae, l) => l,
                            _ => 1,
                        };
                        assert_eq!(lw.cross.len(), cross, "{kind:?} layer {l}");
                    }
                    // Only valid text tokens count.
                    let valid = f64::try_from(mask.sum(Kind::Float)).unwrap();
                    assert_eq!(w.text[0].tokens, valid);
                    assert_eq!(w.image[0].tokens, (B * lv) as f64);
                }
            }
        }
    }
}

#[test]
fn eval_is_deterministic_and_training_is_not() {
    for kind in [ManagerType::Aaue, ManagerType::Bt] {
        let s = settings(kind, Task::Vqa);
        let (_vs, model) = build(&s);
        let (ids, mask) = text(&s);
        let img = image(&s);
        let run = |o| model.forward(&ids, &mask, &img, o).unwrap().cls_feats;
        assert!(run(ForwardOptions::eval()).equal(&run(ForwardOptions::eval())));
        assert!(!run(ForwardOptions::train()).equal(&run(ForwardOptions::train())));
    }
}

#[test]
fn padding_does_not_leak_into_valid_text_of_the_uni_modal_encoder() {
    let s = settings(ManagerType::Meter, Task::Vqa);
    let (_vs, model) = build(&s);
    let (ids, mask) = text(&s);
    let a = model.encode_text(&ids, &mask, false).unwrap();
    // Change a padded id of the last row (4 valid tokens).
    let ids2 = ids.copy();
    let _ = ids2.get(2).get(10).fill_(77);
    let b = model.encode_text(&ids2, &mask, false).unwrap();
    let valid = |t: &Tensor| t.get(2).narrow(0, 0, 4);
    assert!(valid(&a.top).allclose(&valid(&b.top), 1e-5, 1e-5, false));
}

fn names(vs: &nn::VarStore) -> HashMap<String, Vec<i64>> {
    vs.variables()
        .into_iter()
        .map(|(k, v)| (k, v.size()))
        .collect()
}

#[test]
fn reference_key_names_and_shapes() {
    let s = settings(ManagerType::Aaue, Task::Pretrain);
    let (vs, _model) = build(&s);
    let keys = names(&vs);
    let h = s.hidden_size;
    let n = s.managed_layers_text;
    for (k, shape) in [
        (
            "text_transformer.embeddings.word_embeddings.weight",
            vec![s.vocab_size, 64],
        ),
        (
            "text_transformer.embeddings.position_embeddings.weight",
            vec![64, 64],
        ),
        (
            "text_transformer.embeddings.token_type_embeddings.weight",
            vec![1, 64],
        ),
        ("text_transformer.embeddings.LayerNorm.weight", vec![64]),
        (
            "text_transformer.encoder.layer.0.attention.self.query.weight",
            vec![64, 64],
        ),
        (
            "text_transformer.encoder.layer.3.attention.output.LayerNorm.bias",
            vec![64],
        ),
        (
            "text_transformer.encoder.layer.1.intermediate.dense.weight",
            vec![128, 64],
        ),
        (
            "text_transformer.encoder.layer.1.output.dense.weight",
            vec![64, 128],
        ),
        ("text_transformer.pooler.dense.weight", vec![64, 64]),
        ("vit_model.visual.conv1.weight", vec![64, 3, 16, 16]),
        ("vit_model.visual.class_embedding", vec![64]),
        ("vit_model.visual.positional_embedding", vec![17, 64]),
        ("vit_model.visual.ln_pre.weight", vec![64]),
        (
            "vit_model.visual.transformer.resblocks.0.attn.in_proj_weight",
            vec![192, 64],
        ),
        (
            "vit_model.visual.transformer.resblocks.0.attn.in_proj_bias",
            vec![192],
        ),
        (
            "vit_model.visual.transformer.resblocks.3.attn.out_proj.weight",
            vec![64, 64],
        ),
        (
            "vit_model.visual.transformer.resblocks.0.mlp.c_fc.weight",
            vec![256, 64],
        ),
        (
            "vit_model.visual.transformer.resblocks.0.mlp.c_proj.bias",
            vec![64],
        ),
        (
            "vit_model.visual.transformer.resblocks.0.ln_1.weight",
            vec![64],
        ),
        ("vit_model.visual.ln_post.bias", vec![64]),
        ("vit_model.positional_embedding", vec![77, 64]),
        ("vit_model.ln_final.weight", vec![64]),
        ("cross_modal_text_transform.weight", vec![h, 64]),
        ("cross_modal_image_transform.bias", vec![h]),
        ("token_type_embeddings.weight", vec![2, h]),
        ("layer_embeddings_text.weight", vec![4, h]),
        ("layer_embeddings_image.weight", vec![4, h]),
        (
            "cross_modal_text_layers.0.attention.self.query.weight",
            vec![h, h],
        ),
        (
            "cross_modal_text_layers.0.crossattention.self.key.weight",
            vec![h, h],
        ),
        (
            "cross_modal_image_layers.1.crossattention.output.LayerNorm.weight",
            vec![h],
        ),
        (
            "cross_modal_image_layers.1.output.dense.weight",
            vec![h, 4 * h],
        ),
        (
            "cross_modal_text_manager_tower.0.manager_layer.layer_scores",
            vec![1, n, 1, h],
        ),
        (
            "cross_modal_text_manager_tower.0.manager_layer.LayerNorm.2.weight",
            vec![h],
        ),
        (
            "cross_modal_text_manager_tower.0.manager_layer.softmax_temperature",
            vec![1],
        ),
        (
            "cross_modal_text_manager_tower.0.manager_layer.softmax_temperature_cross",
            vec![1],
        ),
        (
            "cross_modal_text_manager_tower.1.manager_layer.linear_controller.weight",
            vec![n, 2 * h],
        ),
        (
            "cross_modal_text_manager_tower.1.manager_layer.layer_scores_cross",
            vec![1, 1, 1, h],
        ),
        (
            "cross_modal_image_manager_tower.1.manager_layer.fusion_attention.q_proj.weight",
            vec![h, h],
        ),
        (
            "cross_modal_image_manager_tower.1.manager_layer.fusion_attention.k_proj.bias",
            vec![h],
        ),
        (
            "cross_modal_image_manager_tower.1.manager_layer.extra_query_LayerNorm.weight",
            vec![h],
        ),
        (
            "cross_modal_image_manager_tower.1.manager_layer.LayerNorm.3.bias",
            vec![h],
        ),
        ("cross_modal_text_pooler.dense.weight", vec![h, h]),
        ("cross_modal_image_pooler.dense.bias", vec![h]),
        ("temperature", vec![]),
        ("itm_score.fc.weight", vec![2, 2 * h]),
        ("mlm_score.transform.dense.weight", vec![h, h]),
        ("mlm_score.transform.LayerNorm.weight", vec![h]),
        ("mlm_score.decoder.weight", vec![s.vocab_size, h]),
        ("mlm_score.bias", vec![s.vocab_size]),
    ] {
        assert_eq!(keys.get(k), Some(&shape), "{k}");
    }
    for absent in [
        "cross_modal_text_manager_tower.0.manager_layer.LayerNorm.3.weight",
        "cross_modal_text_manager_tower.1.manager_layer.layer_scores",
        "mlm_score.decoder.bias",
        "vqa_classifier.0.weight",
        "cross_modal_text_link_tower.0.LayerNorm.weight",
    ] {
        assert!(!keys.contains_key(absent), "{absent}");
    }
}

#[test]
fn task_heads_and_baseline_keys() {
    let mut s = settings(ManagerType::Bt, Task::Nlvr2);
    s.head_hidden_scale = 2;
    let (vs, model) = build(&s);
    let keys = names(&vs);
    let h = s.hidden_size;
    for (k, shape) in [
        ("nlvr2_classifier.0.weight", vec![4 * h, 4 * h]),
        ("nlvr2_classifier.1.weight", vec![4 * h]),
        ("nlvr2_classifier.3.weight", vec![2, 4 * h]),
        ("token_type_embeddings.weight", vec![3, h]),
        ("cross_modal_text_layernorm.weight", vec![h]),
        ("cross_modal_image_layernorm.bias", vec![h]),
        ("cross_modal_text_link_tower.0.LayerNorm.weight", vec![h]),
        ("cross_modal_image_link_tower.0.LayerNorm.bias", vec![h]),
    ] {
        assert_eq!(keys.get(k), Some(&shape), "{k}");
    }
    assert!(!keys.contains_key("cross_modal_text_link_tower.1.LayerNorm.weight"));
    assert!(!keys
        .keys()
        .any(|k| k.contains("manager") || k.contains("layer_embeddings")));
    let tt = model.token_type_embeddings();
    assert!(tt.get(2).equal(&tt.get(1)));
    assert!(!tt.get(0).equal(&tt.get(1)));

    // METER ignores head_hidden_scale; VQA head of `vqav2_label_size` answers.
    let mut s = settings(ManagerType::Meter, Task::Vqa);
    s.head_hidden_scale = 2;
    let (vs, _m) = build(&s);
    let keys = names(&vs);
    assert_eq!(
        keys.get("vqa_classifier.0.weight"),
        Some(&vec![2 * h, 2 * h])
    );
    assert_eq!(
        keys.get("vqa_classifier.3.weight"),
        Some(&vec![3129, 2 * h])
    );
    assert!(!keys
        .keys()
        .any(|k| k.contains("link_tower") || k.contains("manager")));

    // Retrieval: ITM + ITC heads of `contrastive_hidden_size`.
    let s = settings(ManagerType::Saue, Task::Irtr);
    let (vs, _m) = build(&s);
    let keys = names(&vs);
    assert_eq!(
        keys.get("cross_modal_itc_text_head.fc.weight"),
        Some(&vec![32, 64])
    );
    assert_eq!(
        keys.get("cross_modal_itc_image_head.fc.weight"),
        Some(&vec![32, 64])
    );
    assert_eq!(keys.get("itm_score.fc.weight"), Some(&vec![2, 2 * h]));
}

/// Parameters the reference keeps in its state dict but never uses in the forward pass.
fn unused_by_design(k: &str) -> bool {
    k.starts_with("text_transformer.pooler")
        || k == "vit_model.positional_embedding"
        || k.starts_with("vit_model.ln_final")
        || k.ends_with("softmax_temperature_cross")
}

fn train_batch(s: &Settings, task: Task) -> Batch {
    let (ids, mask) = text(s);
    let mut batch = Batch::new(ids.copy(), mask, image(s));
    match task {
        Task::Pretrain => {
            let labels = ids.full_like(objectives::IGNORE_INDEX);
            labels.narrow(1, 1, 3).copy_(&ids.narrow(1, 1, 3));
            let masked = ids.copy();
            let _ = masked.narrow(1, 1, 3).fill_(4);
            batch.text_ids_mlm = Some(masked);
            batch.text_labels_mlm = Some(labels);
            batch.false_image = Some(image(s));
        }
        Task::Vqa => {
            batch.vqa_targets = Some(objectives::vqa_targets(
                &[vec![1, 5], vec![2], vec![]],
                &[vec![1.0, 0.3], vec![0.6], vec![]],
                s.vqav2_label_size,
            ));
        }
        Task::Nlvr2 => {
            batch.image_1 = Some(image(s));
            batch.labels = Some(Tensor::from_slice(&[1i64, 0, 1]));
        }
        Task::Snli => batch.labels = Some(Tensor::from_slice(&[0i64, 1, 2])),
        Task::Irtr => batch.img_index = Some(Tensor::from_slice(&[0i64, 0, 1])),
    }
    batch
}

/// A training step reaches every parameter the reference uses, and AdamW moves them.
#[test]
fn gradients_reach_every_parameter() {
    for (kind, task) in [
        (ManagerType::Aaue, Task::Pretrain),
        (ManagerType::Saue, Task::Vqa),
        (ManagerType::Sae, Task::Irtr),
        (ManagerType::Bt, Task::Nlvr2),
        (ManagerType::Meter, Task::Snli),
        (ManagerType::Meter, Task::Irtr),
    ] {
        let mut s = settings(kind, task);
        // ITC on the unfused top layers, ITM on the gated sum.
        s.meter_fusion = kind == ManagerType::Meter && task == Task::Irtr;
        let (vs, model) = build(&s);
        let batch = train_batch(&s, task);
        let outs = objectives::compute_task(&model, &s.objectives(), &batch, Split::Train).unwrap();
        let loss = total_loss(&outs).unwrap();
        assert!(f64::try_from(&loss).unwrap().is_finite());
        let mut opt = nn::AdamW::default().build(&vs, 1e-3).unwrap();
        let before: HashMap<String, Tensor> = vs
            .variables()
            .into_iter()
            .map(|(k, v)| (k, v.copy()))
            .collect();
        opt.zero_grad();
        loss.backward();
        for (k, v) in vs.variables() {
            let g = v.grad();
            let uses = !(unused_by_design(&k) || (k == "temperature" && task != Task::Irtr));
            let reached = g.defined() && f64::try_from(g.abs().sum(Kind::Double)).unwrap() > 0.0;
            assert_eq!(reached, uses, "{kind:?} {task:?}: gradient of {k}");
        }
        opt.step();
        let moved = vs
            .variables()
            .iter()
            .filter(|(k, v)| !v.equal(&before[*k]))
            .count();
        assert!(moved > vs.variables().len() / 2, "{kind:?}: {moved} moved");
        // Metric names follow the reference.
        let names: Vec<_> = outs
            .iter()
            .flat_map(|o| o.metrics.iter().map(|m| m.name.clone()))
            .collect();
        let want: &[&str] = match task {
            Task::Pretrain => &[
                "train/mlm/loss",
                "train/mlm/accuracy",
                "train/itm/loss",
                "train/itm/accuracy",
            ],
            Task::Vqa => &["train/vqa/loss", "train/vqa/score"],
            Task::Nlvr2 => &["train/nlvr2/loss", "train/nlvr2/accuracy"],
            Task::Snli => &["train/snli/loss", "train/snli/accuracy"],
            Task::Irtr => &[
                "train/irtr_itc/loss",
                "train/irtr_itm/loss",
                "train/irtr_itm/accuracy",
            ],
        };
        assert_eq!(names, want);
    }
}

/// `loss_names` switches pre-training's objectives as the reference's `current_tasks`: the
/// heads that exist, the losses computed (in the reference order, whatever the list order) and
/// their metric names. `["itm"]` is the reference's ITM-only pre-training: no MLM head.
#[test]
fn pretraining_trains_the_objectives_loss_names_switch_on() {
    let cases: [(&[&str], &[&str]); 4] = [
        (&["itm"], &["train/itm/loss", "train/itm/accuracy"]),
        (&["mlm"], &["train/mlm/loss", "train/mlm/accuracy"]),
        (
            &["itc", "itm", "mlm"],
            &[
                "train/mlm/loss",
                "train/mlm/accuracy",
                "train/itm/loss",
                "train/itm/accuracy",
                "train/itc/loss",
            ],
        ),
        (
            &["mlm", "itm_itc"],
            &[
                "train/mlm/loss",
                "train/mlm/accuracy",
                "train/itc/loss",
                "train/itm/loss",
                "train/itm/accuracy",
            ],
        ),
    ];
    for (names, want) in cases {
        let mut s = settings(ManagerType::Aaue, Task::Pretrain);
        s.loss_names = names.iter().map(|n| n.to_string()).collect();
        let (vs, model) = build(&s);
        let on = |n: &str| names.contains(&n);
        let has = |prefix: &str| vs.variables().keys().any(|k| k.starts_with(prefix));
        assert_eq!(has("mlm_score."), on("mlm"), "{names:?}");
        assert_eq!(has("itm_score."), on("itm") || on("itm_itc"), "{names:?}");
        assert_eq!(
            has("cross_modal_itc_text_head."),
            on("itc") || on("itm_itc"),
            "{names:?}"
        );
        let batch = train_batch(&s, Task::Pretrain);
        let outs = objectives::compute_task(&model, &s.objectives(), &batch, Split::Train).unwrap();
        let got: Vec<_> = outs
            .iter()
            .flat_map(|o| o.metrics.iter().map(|m| m.name.clone()))
            .collect();
        assert_eq!(got, want, "{names:?}");
        assert!(f64::try_from(total_loss(&outs).unwrap())
            .unwrap()
            .is_finite());
    }
    let unknown = objectives::compute_task(
        &build(&settings(ManagerType::Aaue, Task::Pretrain)).1,
        &["itn".to_string()],
        &train_batch(&settings(ManagerType::Aaue, Task::Pretrain), Task::Pretrain),
        Split::Train,
    )
    .err()
    .unwrap()
    .to_string();
    assert!(unknown.contains("unknown objective `itn`"), "{unknown}");
}

#[test]
fn vqa_loss_is_bce_times_answers_and_score_is_soft() {
    let logits = Tensor::from_slice(&[2.0f32, -1.0, 0.0, 0.0, 0.0, 3.0]).view([2, 3]);
    let targets = objectives::vqa_targets(&[vec![0], vec![1, 2]], &[vec![0.6], vec![1.0, 0.3]], 3);
    // Arg-maxes are answer 0 (score 0.6) and answer 2 (score 0.3).
    let score = objectives::vqa_score(&logits, &targets);
    assert!((score - 0.45).abs() < 1e-6);
    let (acc, n) = objectives::accuracy(
        &Tensor::from_slice(&[0.0f32, 1.0, 1.0, 0.0, 1.0, 0.0]).view([3, 2]),
        &Tensor::from_slice(&[1i64, -100, 1]),
    );
    assert_eq!((acc, n), (0.5, 2.0));
}

#[test]
fn irtr_rank_head_starts_from_itm_row_one() {
    let s = settings(ManagerType::Aaue, Task::Irtr);
    let mut cfg = ModelConfig::from_settings(&s).unwrap();
    cfg.heads.irtr_rank = true;
    let vs = nn::VarStore::new(Device::Cpu);
    let model = TowerModel::new(&vs.root(), &cfg).unwrap();
    let h = model.heads();
    let itm = h.itm_score.as_ref().unwrap();
    let rank = h.rank_output.as_ref().unwrap();
    assert!(rank.weight.equal(&itm.fc.weight.narrow(0, 1, 1)));
    assert!(!itm.fc.weight.requires_grad());
    let mut batch = train_batch(&s, Task::Irtr);
    let (fi, fm) = text(&s);
    batch.false_text_ids = Some(Tensor::stack(&[&fi, &fi], 1));
    batch.false_text_masks = Some(Tensor::stack(&[&fm, &fm], 1));
    let outs = objectives::compute_task(&model, &s.objectives(), &batch, Split::Val).unwrap();
    assert_eq!(outs.last().unwrap().task, "irtr");
    assert_eq!(outs.last().unwrap().logits.size(), vec![B, 3]);
}

#[test]
fn bad_inputs_are_errors() {
    let s = settings(ManagerType::Aaue, Task::Vqa);
    let (_vs, model) = build(&s);
    let (ids, mask) = text(&s);
    let small = Tensor::zeros([B, 3, 32, 32], (Kind::Float, Device::Cpu));
    let err = model
        .forward(&ids, &mask, &small, ForwardOptions::eval())
        .unwrap_err();
    assert!(err.to_string().contains("image_size"), "{err}");
    let big_ids = ids.full_like(s.vocab_size);
    let err = model
        .forward(&big_ids, &mask, &image(&s), ForwardOptions::eval())
        .unwrap_err();
    assert!(err.to_string().contains("vocab_size"), "{err}");
    let err = model
        .forward(
            &ids,
            &mask,
            &image(&s),
            ForwardOptions::eval().with_image_token_type(2),
        )
        .unwrap_err();
    assert!(err.to_string().contains("token type"), "{err}");
    let err =
        objectives::compute_nlvr2(&model, &train_batch(&s, Task::Vqa), Split::Train).unwrap_err();
    assert!(err.to_string().contains("nlvr2_classifier"), "{err}");
}

#[test]
fn amp_path_runs_in_bf16_and_stays_close() {
    let mut s = settings(ManagerType::Aaue, Task::Vqa);
    s.precision = Precision::Bf16;
    let (_vs, mut model) = build(&s);
    let (ids, mask) = text(&s);
    let img = image(&s);
    let full = model
        .forward(&ids, &mask, &img, ForwardOptions::eval())
        .unwrap();
    model.amp_on_cpu = true;
    let half = model
        .forward(&ids, &mask, &img, ForwardOptions::eval())
        .unwrap();
    assert_eq!(half.cls_feats.kind(), Kind::Float);
    let diff = f64::try_from((&half.cls_feats - &full.cls_feats).abs().max()).unwrap();
    assert!(diff > 0.0 && diff < 0.1, "bf16 drifts by {diff}");
    let w = half.manager_weights.unwrap();
    let sum: f64 = w.text[1].experts.iter().sum();
    assert!((sum - 1.0).abs() < 1e-4);
}

/// Every fusion type and task objective trains under the bf16 path (what `precision = "bf16"` does on
/// CUDA, forced on CPU here): no dtype clash in any loss, head or hard-negative sampling, a
/// finite fp32 loss, finite fp32 gradients on every parameter the step reaches. (How close
/// bf16 stays to fp32 is checked in eval mode above: training draws dropout, manager noise and
/// negatives from torch's process-wide generator, which tests running beside this one share.)
#[test]
fn amp_training_step_runs_for_every_fusion_and_objective() {
    let cases: [(ManagerType, Task, &[&str]); 7] = [
        (ManagerType::Aaue, Task::Pretrain, &["mlm", "itm", "itc"]),
        (ManagerType::Saue, Task::Pretrain, &["mlm", "itm_itc"]),
        (ManagerType::Sae, Task::Vqa, &[]),
        (ManagerType::Bt, Task::Nlvr2, &[]),
        (ManagerType::Meter, Task::Snli, &[]),
        (ManagerType::Aaue, Task::Irtr, &[]),
        (ManagerType::Meter, Task::Irtr, &[]),
    ];
    for (kind, task, names) in cases {
        let mut s = settings(kind, task);
        s.precision = Precision::Bf16;
        s.loss_names = names.iter().map(|n| n.to_string()).collect();
        let (vs, mut model) = build(&s);
        model.amp_on_cpu = true;
        let batch = train_batch(&s, task);
        let outs = objectives::compute_task(&model, &s.objectives(), &batch, Split::Train).unwrap();
        let loss = total_loss(&outs).unwrap();
        assert_eq!(loss.kind(), Kind::Float, "{kind:?} {task:?}");
        let value = f64::try_from(&loss).unwrap();
        assert!(value.is_finite(), "{kind:?} {task:?}: bf16 loss {value}");
        loss.backward();
        let mut reached = 0;
        for (k, v) in vs.variables() {
            let g = v.grad();
            if g.defined() {
                assert_eq!(g.kind(), Kind::Float, "{kind:?} {task:?}: gradient of {k}");
                assert!(
                    f64::try_from(g.isfinite().all()).unwrap() == 1.0,
                    "{kind:?} {task:?}: gradient of {k}"
                );
                reached += 1;
            }
        }
        assert!(reached > vs.variables().len() / 2, "{kind:?} {task:?}");
    }
}

fn close(a: &Tensor, b: &Tensor) -> bool {
    a.size() == b.size() && a.allclose(b, 1e-5, 1e-6, false)
}

/// The gate math by hand: identity gate, zero bias, three layers of two channels.
#[test]
fn meter_fusion_gate_math() {
    let vs = nn::VarStore::new(Device::Cpu);
    let gate = layers::Linear::new(vs.root() / "gate", 2, 2);
    tch::no_grad(|| {
        gate.weight
            .shallow_clone()
            .copy_(&Tensor::eye(2, (Kind::Float, Device::Cpu)));
    });
    let t = |v: [f32; 2]| Tensor::from_slice(&v).view([1, 1, 2]);
    let ln3 = 3f32.ln();
    let (f0, f1, f2) = (t([0.0, ln3]), t([0.0, 0.0]), t([1.0, -2.0]));
    let fused = tower::meter_fusion(&gate, &[f0.copy(), f1.copy(), f2.copy()], Ctx::eval());
    // Channel 0: softmax(0, 0) = (1/2, 1/2) of zeros; channel 1: softmax(ln 3, 0) = (3/4, 1/4),
    // so 3/4 · ln 3 + 1/4 · 0.
    assert!(close(&fused, &t([1.0, -2.0 + 0.75 * ln3])), "{fused}");
    // One layer: just the top.
    assert!(tower::meter_fusion(&gate, &[f2.copy()], Ctx::eval()).equal(&f2));
    // A zero gate weighs the lower layers uniformly.
    tch::no_grad(|| {
        let _ = gate.weight.shallow_clone().zero_();
    });
    let fused = tower::meter_fusion(&gate, &[f0.copy(), f1.copy(), f2.copy()], Ctx::eval());
    assert!(close(&fused, &(&f2 + (&f0 + &f1) / 2.0)), "{fused}");
}

/// METER with `meter_fusion`: gate keys, all layers fused (zero gates: top + mean of the
/// rest), the unfused top kept for ITC, and the poolers reading the fused features with
/// `num_layers = 0`.
#[test]
fn meter_fusion_fuses_every_uni_modal_layer() {
    for num_layers in [2, 0] {
        let mut s = settings(ManagerType::Meter, Task::Irtr);
        s.meter_fusion = true;
        s.num_layers = num_layers;
        s.vit_num_layers = 3;
        let (vs, model) = build(&s);
        let keys = names(&vs);
        assert_eq!(keys.get("text_gate.weight"), Some(&vec![64, 64]));
        assert_eq!(keys.get("image_gate.bias"), Some(&vec![64]));
        tch::no_grad(|| {
            for (k, mut v) in vs.variables() {
                if k.contains("_gate.") {
                    let _ = v.zero_();
                }
            }
        });
        // The uni-modal encoders alone, with the model's weights.
        let cfg = model.config().clone();
        let mut uni = nn::VarStore::new(Device::Cpu);
        let roberta = roberta::Roberta::new(uni.root() / "text_transformer", &cfg);
        let vit = clip::ClipVisual::new(uni.root() / "vit_model", &cfg);
        uni.copy(&vs).unwrap();
        let (ids, mask) = text(&s);
        let img = image(&s);
        let (t, i, out) = tch::no_grad(|| {
            let t = model.encode_text(&ids, &mask, false).unwrap();
            let i = model.encode_image(&img, false).unwrap();
            let out = model.fuse(&t, &i, ForwardOptions::eval()).unwrap();
            (t, i, out)
        });
        let tl =
            tch::no_grad(|| roberta.forward(&ids, &layers::extended_mask(&mask), 4, Ctx::eval()));
        let vl = tch::no_grad(|| vit.forward(&img, 3, Ctx::eval()));
        let want_t = &tl[3] + (&tl[0] + &tl[1] + &tl[2]) / 3.0;
        let want_v = &vl[2] + (&vl[0] + &vl[1]) / 2.0;
        assert!(close(&t.top, &tl[3]) && close(&i.top, &vl[2]));
        if num_layers == 0 {
            assert!(t.experts.is_none());
            assert!(close(t.fused.as_ref().unwrap(), &want_t));
            assert!(close(i.fused.as_ref().unwrap(), &want_v));
            assert!(close(&out.text_feats, &want_t) && close(&out.image_feats, &want_v));
        } else {
            let vars = vs.variables();
            let project = |x: &Tensor, name: &str| {
                let w = &vars[&format!("cross_modal_{name}_transform.weight")];
                let b = &vars[&format!("cross_modal_{name}_transform.bias")];
                x.linear(w, Some(b)).unsqueeze(1)
            };
            assert!(t.fused.is_none() && i.fused.is_none());
            assert!(close(
                t.experts.as_ref().unwrap(),
                &project(&want_t, "text")
            ));
            assert!(close(
                i.experts.as_ref().unwrap(),
                &project(&want_v, "image")
            ));
            assert_eq!(
                t.experts.as_ref().unwrap().size(),
                [B, 1, s.max_text_len, 64]
            );
            let full = tch::no_grad(|| {
                model
                    .forward(&ids, &mask, &img, ForwardOptions::eval())
                    .unwrap()
            });
            assert!(close(&full.cls_feats, &out.cls_feats));
        }
    }
}

/// BridgeTower with `vit_layernorm_shared = false`: the uni-modal path (ITC, retrieval) puts
/// block i through `ln_separate.{i}`, `infer` through `ln_post`; ManagerTower never uses them.
#[test]
fn ln_separate_only_on_bridgetower_uni_modal_path() {
    for kind in [ManagerType::Bt, ManagerType::Aaue] {
        let mut s = settings(kind, Task::Irtr);
        s.vit_layernorm_shared = false;
        s.vit_num_layers = 5;
        s.vit_remove_last = true;
        let (vs, model) = build(&s);
        let keys = names(&vs);
        assert!(keys.contains_key("vit_model.visual.ln_separate.4.weight"));
        tch::no_grad(|| {
            for (k, mut v) in vs.variables() {
                if k.starts_with("vit_model.visual.ln_separate.") && k.ends_with(".weight") {
                    let _ = v.fill_(2.0);
                }
            }
        });
        let img = image(&s);
        let (uni, infer) = tch::no_grad(|| {
            (
                model.encode_image(&img, false).unwrap(),
                model
                    .encode_image_via(&img, false, ImagePath::Infer)
                    .unwrap(),
            )
        });
        let scale = if kind == ManagerType::Bt { 2.0 } else { 1.0 };
        assert!(close(&uni.top, &(&infer.top * scale)), "{kind:?}");
        assert_eq!(
            close(
                uni.experts.as_ref().unwrap(),
                infer.experts.as_ref().unwrap()
            ),
            kind != ManagerType::Bt
        );
    }
}
