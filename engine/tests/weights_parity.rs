//! Parity with Hugging Face transformers 5.23 (fp32, CPU, eval): tiny random CLIPVisionModel,
//! RobertaModel and BridgeTowerModel (engine/tests/fixtures, from gen_fixtures.py) are loaded
//! through the key maps of `engine::weights` into our models, and their outputs compared.
//!
//! Known differences that stay inside the tolerance: HF BridgeTower's cross-modal layers use
//! LayerNorm eps 1e-5 where the reference (and our model) uses BertConfig's 1e-12, and HF masks
//! padding with the dtype minimum where the reference adds -10000; both give the same softmax in
//! fp32 (exp(-10000) underflows to 0), and the eps difference changes outputs by ~1e-6 here.

use std::path::{Path, PathBuf};

use engine::model::clip::ClipVisual;
use engine::model::layers::{extended_mask, Ctx};
use engine::model::roberta::Roberta;
use engine::model::{ForwardOptions, ModelConfig, TowerModel};
use engine::weights::{self, Architecture, LoadOptions};
use experiments::{Settings, Task};
use tch::nn::VarStore;
use tch::{Device, Kind, Tensor};

const TOL: f64 = 1e-4;

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(name)
}

fn io(name: &str) -> Vec<(String, Tensor)> {
    weights::read_safetensors(&fixture(name)).unwrap()
}

fn get<'a>(tensors: &'a [(String, Tensor)], key: &str) -> &'a Tensor {
    &tensors
        .iter()
        .find(|(k, _)| k == key)
        .unwrap_or_else(|| panic!("{key} not in fixture"))
        .1
}

fn max_diff(a: &Tensor, b: &Tensor) -> f64 {
    assert_eq!(a.size(), b.size());
    (a - b).abs().max().double_value(&[])
}

fn assert_close(ours: &Tensor, theirs: &Tensor, what: &str) {
    let d = max_diff(ours, theirs);
    eprintln!("{what}: max abs diff {d:e}");
    assert!(d <= TOL, "{what}: max abs diff {d:e} > {TOL:e}");
}

/// Settings sized like a checkpoint: the tiny preset overwritten by what the shapes say.
fn settings_for(ckpt: &weights::Checkpoint) -> Settings {
    let arch = Architecture::infer(&ckpt.tensors, ckpt.hf_config.as_ref());
    let mut s = arch.to_settings(&Settings::tiny());
    s.max_text_len = 9;
    s
}

#[test]
fn roberta_hidden_states_match_transformers() {
    let ckpt = weights::read(&fixture("hf_roberta")).unwrap();
    let cfg = ModelConfig::from_settings(&settings_for(&ckpt)).unwrap();
    let mut vs = VarStore::new(Device::Cpu);
    let model = Roberta::new(vs.root() / "text_transformer", &cfg);
    let report = weights::load_into(&mut vs, &ckpt, &LoadOptions::strict()).unwrap();
    assert_eq!(report.loaded, vs.len());

    let fx = io("roberta_io.safetensors");
    let ids = get(&fx, "input_ids");
    let mask = get(&fx, "attention_mask");
    let layers = tch::no_grad(|| model.forward(ids, &extended_mask(mask), 3, Ctx::eval()));
    assert_eq!(layers.len(), 3);
    for (i, ours) in layers.iter().enumerate() {
        assert_close(
            ours,
            get(&fx, &format!("hidden.{}", i + 1)),
            &format!("layer {}", i + 1),
        );
    }
}

#[test]
fn clip_vision_layers_match_transformers() {
    let ckpt = weights::read(&fixture("hf_clip_vision")).unwrap();
    let s = settings_for(&ckpt);
    assert_eq!(
        (s.vit_num_heads, s.patch_size, s.resolution_before),
        (2, 8, 32)
    );
    let mut s = s;
    s.image_size = 32;
    let cfg = ModelConfig::from_settings(&s).unwrap();
    let mut vs = VarStore::new(Device::Cpu);
    let model = ClipVisual::new(vs.root() / "vit_model", &cfg);
    let report = weights::load_into(&mut vs, &ckpt, &LoadOptions::strict()).unwrap();
    // CLIP's unused text-side keys are not in a Hugging Face vision checkpoint.
    assert!(
        report.kept.iter().all(|k| weights::is_known_unused(k)),
        "{:?}",
        report.kept
    );

    let fx = io("clip_vision_io.safetensors");
    let layers = tch::no_grad(|| model.forward(get(&fx, "pixel_values"), 3, Ctx::eval()));
    for (i, ours) in layers.iter().enumerate() {
        assert_close(
            ours,
            get(&fx, &format!("ln_post.{}", i + 1)),
            &format!("layer {}", i + 1),
        );
    }
    // The HF pooled output is ln_post of the top layer's CLS token.
    assert_close(
        &layers[2].select(1, 0),
        get(&fx, "pooler_output"),
        "pooler_output",
    );
}

#[test]
fn clip_position_embeddings_are_resized_for_another_resolution() {
    let ckpt = weights::read(&fixture("hf_clip_vision")).unwrap();
    let mut s = settings_for(&ckpt);
    s.image_size = 48; // a 6x6 grid instead of the checkpoint's 4x4
    let cfg = ModelConfig::from_settings(&s).unwrap();
    let mut vs = VarStore::new(Device::Cpu);
    let _model = ClipVisual::new(vs.root() / "vit_model", &cfg);
    let report = weights::load_into(&mut vs, &ckpt, &LoadOptions::strict()).unwrap();
    assert_eq!(
        report.adapted,
        vec!["vit_model.visual.positional_embedding".to_string()]
    );
    let loaded = &vs.variables()["vit_model.visual.positional_embedding"];
    let want = engine::model::resize_position_embedding(
        ckpt.get("vit_model.visual.positional_embedding").unwrap(),
        6,
    );
    assert_eq!(loaded.size(), [37, 32]);
    assert!(loaded.equal(&want));
}

/// Our BridgeTower (reference `bt_module`) for the HF fixture's sizes.
fn bridgetower(ckpt: &weights::Checkpoint) -> (VarStore, TowerModel) {
    let mut s = settings_for(ckpt);
    assert_eq!(s.manager_type, experiments::ManagerType::Bt);
    s.task = Task::Pretrain;
    s.image_size = 32;
    // HF BridgeTower's cross layers take the text config's FFN width (64 = 2 x 32); their head
    // count is in config.json, which a reference .ckpt does not carry.
    s.mlp_ratio = 2;
    s.num_heads = 2;
    s.text_num_heads = 2;
    let cfg = ModelConfig::from_settings(&s).unwrap();
    let vs = VarStore::new(Device::Cpu);
    let model = TowerModel::new(&vs.root(), &cfg).unwrap();
    (vs, model)
}

fn check_bridgetower_outputs(model: &TowerModel) {
    let fx = io("bridgetower_io.safetensors");
    let out = tch::no_grad(|| {
        model.forward(
            get(&fx, "input_ids"),
            get(&fx, "attention_mask"),
            get(&fx, "pixel_values"),
            ForwardOptions::eval(),
        )
    })
    .unwrap();
    assert_close(&out.text_feats, get(&fx, "text_features"), "text_feats");
    assert_close(&out.image_feats, get(&fx, "image_features"), "image_feats");
    assert_close(&out.cls_feats, get(&fx, "pooler_output"), "cls_feats");
    assert_eq!(out.cls_feats.kind(), Kind::Float);
}

#[test]
fn bridgetower_matches_transformers_from_hf_weights() {
    let ckpt = weights::read(&fixture("hf_bridgetower")).unwrap();
    let (mut vs, model) = bridgetower(&ckpt);
    // BridgeTowerModel has no task heads: the pre-training heads stay initialised.
    let report = weights::load_into(&mut vs, &ckpt, &LoadOptions::partial()).unwrap();
    assert!(report
        .missing_heads
        .iter()
        .any(|k| k.starts_with("mlm_score.")));
    assert!(report.missing_heads.iter().all(|k| weights::is_head_key(k)));
    check_bridgetower_outputs(&model);
    // Strictly, the missing heads are an error naming them.
    let err = weights::load_into(&mut vs, &ckpt, &LoadOptions::strict())
        .unwrap_err()
        .to_string();
    assert!(err.contains("itm_score.fc.weight"), "{err}");
}

#[test]
fn bridgetower_matches_transformers_from_the_reference_ckpt() {
    let ckpt = weights::read(&fixture("bridgetower_ref.ckpt")).unwrap();
    assert_eq!(ckpt.format, weights::Format::LightningCkpt);
    let (mut vs, model) = bridgetower(&ckpt);
    let report = weights::load_into(&mut vs, &ckpt, &LoadOptions::partial()).unwrap();
    // CLIP's text-side keys (another context size here) are skipped, and listed.
    assert!(report
        .ignored
        .iter()
        .any(|k| k == "vit_model.positional_embedding"));
    check_bridgetower_outputs(&model);
}

#[test]
fn round_trip_through_safetensors_in_the_reference_layout() {
    // Save a model's VarStore, load it back strictly into a fresh model: identical outputs.
    let ckpt = weights::read(&fixture("hf_bridgetower")).unwrap();
    let (mut vs, model) = bridgetower(&ckpt);
    weights::load_into(&mut vs, &ckpt, &LoadOptions::partial()).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("bt.safetensors");
    weights::write_safetensors(&path, &weights::named_tensors(&vs)).unwrap();

    let back = weights::read(&path).unwrap();
    assert!(
        back.hf_model.is_none(),
        "reference names must not look like HF"
    );
    let (mut vs2, model2) = bridgetower(&ckpt);
    let report = weights::load_into(&mut vs2, &back, &LoadOptions::strict()).unwrap();
    assert_eq!(report.loaded, vs2.len());
    check_bridgetower_outputs(&model2);

    // And as a reference-layout Lightning .ckpt (what the reference's torch.load reads).
    let ckpt_path = dir.path().join("bt.ckpt");
    weights::write_lightning_ckpt(&ckpt_path, &weights::named_tensors(&vs)).unwrap();
    let back = weights::read(&ckpt_path).unwrap();
    assert_eq!(back.format, weights::Format::LightningCkpt);
    let (mut vs3, model3) = bridgetower(&ckpt);
    let report = weights::load_into(&mut vs3, &back, &LoadOptions::strict()).unwrap();
    assert_eq!(report.loaded, vs3.len());
    check_bridgetower_outputs(&model3);
    let _ = model;
}

#[test]
fn reference_ckpt_into_a_model_of_other_sizes_fails_naming_keys() {
    let ckpt = weights::read(&fixture("bridgetower_ref.ckpt")).unwrap();
    let mut s = settings_for(&ckpt);
    s.image_size = 32;
    s.mlp_ratio = 2;
    s.num_heads = 2;
    s.text_num_heads = 2;
    s.vocab_size = 65;
    s.num_layers = 3;
    s.managed_layers_text = 3;
    s.managed_layers_image = 3;
    s.vit_num_layers = 3;
    s.text_num_layers = 3;
    let cfg = ModelConfig::from_settings(&s).unwrap();
    let mut vs = VarStore::new(Device::Cpu);
    let _model = TowerModel::new(&vs.root(), &cfg).unwrap();
    let err = weights::load_into(&mut vs, &ckpt, &LoadOptions::partial())
        .unwrap_err()
        .to_string();
    for needle in [
        "bridgetower_ref.ckpt",
        "text_transformer.embeddings.word_embeddings.weight: expected [65, 32], found [64, 32]",
        "cross_modal_text_layers.2.attention.self.query.weight",
        "cross_modal_image_link_tower.1.LayerNorm.weight",
        "vit_model.visual.transformer.resblocks.2.ln_1.weight",
    ] {
        assert!(err.contains(needle), "{needle} not in {err}");
    }
}

#[test]
fn settings_are_recovered_from_a_model_state_dict() {
    for kind in [
        experiments::ManagerType::Aaue,
        experiments::ManagerType::Saue,
        experiments::ManagerType::Sae,
        experiments::ManagerType::Bt,
        experiments::ManagerType::Meter,
    ] {
        let mut s = Settings::tiny();
        s.manager_type = kind;
        s.num_layers = 3;
        s.managed_layers_text = 4;
        s.managed_layers_image = 2;
        s.task = Task::Vqa;
        s.vqav2_label_size = 17;
        s.head_hidden_scale = 2;
        let cfg = ModelConfig::from_settings(&s).unwrap();
        let vs = VarStore::new(Device::Cpu);
        let _model = TowerModel::new(&vs.root(), &cfg).unwrap();
        let tensors = weights::named_tensors(&vs);
        let inferred = Architecture::infer(&tensors, None).to_settings(&Settings::default());
        let f = Architecture::infer(&tensors, None).fusion.unwrap();
        assert_eq!(f.kind, kind);
        assert_eq!(inferred.num_layers, 3, "{kind:?}");
        if matches!(
            kind,
            experiments::ManagerType::Bt | experiments::ManagerType::Meter
        ) {
            continue;
        }
        assert_eq!(
            (inferred.managed_layers_text, inferred.managed_layers_image),
            (4, 2),
            "{kind:?}"
        );
        for (a, b, what) in [
            (inferred.hidden_size, s.hidden_size, "hidden_size"),
            (inferred.vocab_size, s.vocab_size, "vocab_size"),
            (
                inferred.text_num_layers,
                s.text_num_layers,
                "text_num_layers",
            ),
            (inferred.vit_num_layers, s.vit_num_layers, "vit_num_layers"),
            (inferred.patch_size, s.patch_size, "patch_size"),
            (inferred.resolution_before, s.image_size, "resolution"),
            (inferred.vqav2_label_size, 17, "vqav2_label_size"),
            (inferred.head_hidden_scale, 2, "head_hidden_scale"),
        ] {
            assert_eq!(a, b, "{kind:?}: {what}");
        }
    }
}

#[test]
fn forward_files_checks_the_union_of_several_weights_files() {
    let mut s = Settings::tiny();
    s.device = "cpu".into();
    let cfg = ModelConfig::from_settings(&s).unwrap();
    let vs = VarStore::new(Device::Cpu);
    let _model = TowerModel::new(&vs.root(), &cfg).unwrap();
    let all = weights::named_tensors(&vs);
    let dir = tempfile::tempdir().unwrap();
    let (encoders, rest): (Vec<_>, Vec<_>) = all
        .into_iter()
        .partition(|(k, _)| k.starts_with("text_transformer.") || k.starts_with("vit_model."));
    let a = dir.path().join("encoders.safetensors");
    let b = dir.path().join("fusion.safetensors");
    weights::write_safetensors(&a, &encoders).unwrap();
    let ids = Tensor::from_slice(&[0i64, 5, 9, 2]).view([1, 4]);
    let inputs = dir.path().join("in.safetensors");
    weights::write_safetensors(
        &inputs,
        &[
            ("text_ids".to_string(), ids.shallow_clone()),
            ("text_masks".to_string(), ids.ones_like()),
            (
                "image".to_string(),
                Tensor::zeros([1, 3, 64, 64], (Kind::Float, Device::Cpu)),
            ),
        ],
    )
    .unwrap();
    let mut req = weights::ForwardRequest {
        settings: s,
        explicit_keys: None,
        weights: vec![a.clone(), b.clone()],
        inputs,
        output: dir.path().join("out.safetensors"),
        load: LoadOptions::strict(),
    };
    // Without the managers and cross layers the union is incomplete: named, nothing run.
    let without: Vec<(String, Tensor)> = rest
        .iter()
        .filter(|(k, _)| !k.contains("_manager_tower."))
        .map(|(k, t)| (k.clone(), t.shallow_clone()))
        .collect();
    weights::write_safetensors(&b, &without).unwrap();
    let err = weights::forward_files(&req).unwrap_err().to_string();
    assert!(
        err.contains("cross_modal_text_manager_tower.0.manager_layer.layer_scores"),
        "{err}"
    );
    assert!(!req.output.exists());
    // With everything it runs.
    weights::write_safetensors(&b, &rest).unwrap();
    let summary = weights::forward_files(&req).unwrap();
    assert_eq!(summary.load.len(), 2);
    assert!(req.output.exists());
    req.weights = vec![];
    assert!(weights::forward_files(&req).is_err());
}
