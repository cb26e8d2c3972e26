//! `towerlab model inspect|forward` as a user runs them, on weights written by our own model.

#![cfg(feature = "engine")]

use std::path::Path;
use std::process::{Command, Output};

use engine::model::{ModelConfig, TowerModel};
use engine::weights;
use experiments::{ManagerType, Settings};
use tch::nn::VarStore;
use tch::{Device, Kind, Tensor};

fn towerlab(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_towerlab"))
        .args(args)
        .output()
        .unwrap()
}

fn text(out: &Output) -> (String, String) {
    (
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// A tiny AAUE model's weights and a matching batch of inputs.
fn write_tiny_aaue(dir: &Path) {
    let mut s = Settings::tiny();
    s.manager_type = ManagerType::Aaue;
    let cfg = ModelConfig::from_settings(&s).unwrap();
    let vs = VarStore::new(Device::Cpu);
    let _model = TowerModel::new(&vs.root(), &cfg).unwrap();
    weights::write_safetensors(&dir.join("aaue.safetensors"), &weights::named_tensors(&vs))
        .unwrap();
    let ids = Tensor::from_slice(&[0i64, 5, 9, 17, 2, 1, 0, 8, 2, 1, 1, 1]).view([2, 6]);
    let masks = ids.ne(1).to_kind(Kind::Int64);
    let image = Tensor::randn([2, 3, 64, 64], (Kind::Float, Device::Cpu));
    let inputs = vec![
        ("text_ids".to_string(), ids),
        ("text_masks".to_string(), masks),
        ("image".to_string(), image),
    ];
    weights::write_safetensors(&dir.join("inputs.safetensors"), &inputs).unwrap();
    std::fs::write(
        dir.join("tiny.toml"),
        "preset = \"tiny\"\nmanager_type = \"AAUE\"\ndevice = \"cpu\"\n",
    )
    .unwrap();
}

#[test]
fn inspect_and_forward_a_tiny_aaue_model() {
    let dir = tempfile::tempdir().unwrap();
    write_tiny_aaue(dir.path());
    let w = dir.path().join("aaue.safetensors");
    let w = w.to_str().unwrap();

    let out = towerlab(&["model", "inspect", w]);
    let (stdout, stderr) = text(&out);
    assert!(out.status.success(), "{stderr}");
    assert!(stdout.contains("fusion:     AAUE"), "{stdout}");
    assert!(
        stdout.contains("managed layers text 3 / image 3"),
        "{stdout}"
    );
    assert!(stdout.contains("managers:   2 AAUE"), "{stdout}");
    assert!(stdout.contains("managers:   2 SAUE"), "{stdout}");
    assert!(stdout.contains("cross-modal layers"), "{stdout}");

    let cfg = dir.path().join("tiny.toml");
    let inputs = dir.path().join("inputs.safetensors");
    let output = dir.path().join("out.safetensors");
    let args = [
        "model",
        "forward",
        "--weights",
        w,
        "--config",
        cfg.to_str().unwrap(),
        "--inputs",
        inputs.to_str().unwrap(),
        "--output",
        output.to_str().unwrap(),
    ];
    let out = towerlab(&args);
    let (stdout, stderr) = text(&out);
    assert!(out.status.success(), "{stdout}{stderr}");
    let got = weights::read_safetensors(&output).unwrap();
    let shape = |k: &str| {
        got.iter()
            .find(|(n, _)| n == k)
            .unwrap_or_else(|| panic!("{k} not written: {stdout}"))
            .1
            .size()
    };
    assert_eq!(shape("text_feats"), [2, 6, 64]);
    assert_eq!(shape("image_feats"), [2, 17, 64]);
    assert_eq!(shape("cls_feats"), [2, 128]);
    assert_eq!(shape("manager_weights.text.0.experts"), [3]);
    assert_eq!(shape("manager_weights.image.1.experts"), [3]);
    assert_eq!(shape("manager_weights.image.1.cross"), [1]);
    // Softmaxed expert weights sum to one.
    let (_, e) = got
        .iter()
        .find(|(n, _)| n == "manager_weights.text.1.experts")
        .unwrap();
    assert!((e.sum(Kind::Float).double_value(&[]) - 1.0).abs() < 1e-5);
}

#[test]
fn forward_with_a_mismatched_config_names_the_keys() {
    let dir = tempfile::tempdir().unwrap();
    write_tiny_aaue(dir.path());
    let cfg = dir.path().join("three.toml");
    std::fs::write(
        &cfg,
        "preset = \"tiny\"\nnum_layers = 3\ndevice = \"cpu\"\n",
    )
    .unwrap();
    let out = towerlab(&[
        "model",
        "forward",
        "--weights",
        dir.path().join("aaue.safetensors").to_str().unwrap(),
        "--config",
        cfg.to_str().unwrap(),
        "--inputs",
        dir.path().join("inputs.safetensors").to_str().unwrap(),
        "--output",
        dir.path().join("out.safetensors").to_str().unwrap(),
    ]);
    let (_, stderr) = text(&out);
    // A checkpoint that does not fit the model is invalid input.
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert_eq!(stderr.trim().lines().count(), 1, "{stderr}");
    assert!(stderr.contains("missing key(s)"), "{stderr}");
    assert!(stderr.contains("cross_modal_text_layers.2."), "{stderr}");
}

#[test]
fn bad_files_are_one_line_errors() {
    let dir = tempfile::tempdir().unwrap();
    let junk = dir.path().join("junk.ckpt");
    std::fs::write(&junk, b"PK\x03\x04 truncated").unwrap();
    let out = towerlab(&["model", "inspect", junk.to_str().unwrap()]);
    let (_, stderr) = text(&out);
    assert!(!out.status.success());
    assert_eq!(stderr.trim().lines().count(), 1, "{stderr}");
    assert!(
        stderr.contains("junk.ckpt") && stderr.contains("corrupt"),
        "{stderr}"
    );

    let cfg = dir.path().join("bad.toml");
    std::fs::write(&cfg, "preset = \"tiny\"\nnum_layer = 3\n").unwrap();
    let out = towerlab(&[
        "model",
        "forward",
        "--weights",
        "w",
        "--config",
        cfg.to_str().unwrap(),
        "--inputs",
        "i",
        "--output",
        "o",
    ]);
    let (_, stderr) = text(&out);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("bad.toml") && stderr.contains("num_layer"),
        "{stderr}"
    );
}

#[test]
fn forward_from_two_hugging_face_backbones() {
    // CLIP + RoBERTa (the "without VLP" start): each fills its encoder, the rest stays initialised.
    let fixtures = Path::new(env!("CARGO_MANIFEST_DIR")).join("../engine/tests/fixtures");
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("backbones.toml");
    std::fs::write(
        &cfg,
        "preset = \"tiny\"\nmanager_type = \"AAUE\"\ndevice = \"cpu\"\n\
         input_image_embed_size = 32\nvit_num_layers = 3\nvit_num_heads = 2\n\
         image_size = 32\npatch_size = 8\nresolution_before = 32\n\
         vocab_size = 64\ninput_text_embed_size = 32\ntext_num_layers = 3\ntext_num_heads = 2\n\
         text_intermediate_size = 64\ntext_max_position_embeddings = 24\n",
    )
    .unwrap();
    let ids = Tensor::from_slice(&[0i64, 5, 9, 17, 2, 1, 0, 8, 2, 1]).view([2, 5]);
    let inputs = vec![
        ("text_ids".to_string(), ids.shallow_clone()),
        ("text_masks".to_string(), ids.ne(1).to_kind(Kind::Int64)),
        (
            "image".to_string(),
            Tensor::randn([2, 3, 32, 32], (Kind::Float, Device::Cpu)),
        ),
    ];
    let inputs_path = dir.path().join("in.safetensors");
    weights::write_safetensors(&inputs_path, &inputs).unwrap();
    let output = dir.path().join("out.safetensors");
    let out = towerlab(&[
        "model",
        "forward",
        "--weights",
        fixtures.join("hf_clip_vision").to_str().unwrap(),
        "--weights",
        fixtures.join("hf_roberta").to_str().unwrap(),
        "--config",
        cfg.to_str().unwrap(),
        "--inputs",
        inputs_path.to_str().unwrap(),
        "--output",
        output.to_str().unwrap(),
    ]);
    let (stdout, stderr) = text(&out);
    assert!(out.status.success(), "{stdout}{stderr}");
    assert!(stdout.contains("loaded 43 tensors"), "{stdout}");
    assert!(stdout.contains("kept as initialised"), "{stdout}");
    let got = weights::read_safetensors(&output).unwrap();
    assert!(got
        .iter()
        .any(|(k, t)| k == "cls_feats" && t.size() == [2, 128]));
}

#[test]
fn convert_hugging_face_bridgetower_to_a_reference_ckpt() {
    let fixtures = Path::new(env!("CARGO_MANIFEST_DIR")).join("../engine/tests/fixtures");
    let dir = tempfile::tempdir().unwrap();
    let out_path = dir.path().join("bt.ckpt");
    let out = towerlab(&[
        "model",
        "convert",
        fixtures.join("hf_bridgetower").to_str().unwrap(),
        "--output",
        out_path.to_str().unwrap(),
    ]);
    let (stdout, stderr) = text(&out);
    assert!(out.status.success(), "{stdout}{stderr}");
    let back = weights::read(&out_path).unwrap();
    assert_eq!(back.format, weights::Format::LightningCkpt);
    let reference = weights::read(&fixtures.join("bridgetower_ref.ckpt")).unwrap();
    for (k, t) in &back.tensors {
        assert!(reference.get(k).unwrap().equal(t), "{k}");
    }
    let bad = towerlab(&[
        "model",
        "convert",
        fixtures.join("hf_bridgetower").to_str().unwrap(),
        "--output",
        dir.path().join("bt.txt").to_str().unwrap(),
    ]);
    assert_eq!(bad.status.code(), Some(2));
}

/// Keys the config leaves out are read from the weights where shapes and key names tell: a
/// config of just the preset runs a SAUE model with 3 cross-modal layers managing 4 scalar
/// experts, as exactly as the config that spells it all out.
#[test]
fn forward_reads_unset_keys_from_the_weights() {
    let dir = tempfile::tempdir().unwrap();
    write_tiny_aaue(dir.path());
    let mut s = Settings::tiny();
    s.manager_type = ManagerType::Saue;
    s.num_layers = 3;
    s.managed_layers_text = 4;
    s.managed_layers_image = 4;
    s.manager_weight_type = experiments::ManagerWeightType::Scalar;
    let cfg = ModelConfig::from_settings(&s).unwrap();
    let vs = VarStore::new(Device::Cpu);
    let _model = TowerModel::new(&vs.root(), &cfg).unwrap();
    let w = dir.path().join("saue.safetensors");
    weights::write_safetensors(&w, &weights::named_tensors(&vs)).unwrap();

    let forward = |config: &str, out: &str| {
        let cfg = dir.path().join(format!("{out}.toml"));
        std::fs::write(&cfg, config).unwrap();
        let output = dir.path().join(format!("{out}.safetensors"));
        let out = towerlab(&[
            "model",
            "forward",
            "--weights",
            w.to_str().unwrap(),
            "--config",
            cfg.to_str().unwrap(),
            "--inputs",
            dir.path().join("inputs.safetensors").to_str().unwrap(),
            "--output",
            output.to_str().unwrap(),
        ]);
        let (stdout, stderr) = text(&out);
        assert!(out.status.success(), "{stdout}{stderr}");
        (stdout, weights::read_safetensors(&output).unwrap())
    };
    let (said, inferred) = forward("preset = \"tiny\"\ndevice = \"cpu\"\n", "minimal");
    assert!(said.contains("from the weights and inputs:"), "{said}");
    for part in [
        "manager_type = \"SAUE\"",
        "num_layers = 3",
        "managed_layers_text = 4",
        "manager_weight_type = \"scalar\"",
    ] {
        assert!(said.contains(part), "{part}: {said}");
    }
    let (said, spelled) = forward(
        "preset = \"tiny\"\ndevice = \"cpu\"\nmanager_type = \"SAUE\"\nnum_layers = 3\n\
         managed_layers_text = 4\nmanaged_layers_image = 4\nmanager_weight_type = \"scalar\"\n",
        "full",
    );
    assert!(!said.contains("from the weights and inputs:"), "{said}");
    assert_eq!(inferred.len(), spelled.len());
    for (k, a) in &inferred {
        let (_, b) = spelled.iter().find(|(n, _)| n == k).unwrap();
        assert!(a.equal(b), "{k}");
    }
}
