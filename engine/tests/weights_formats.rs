//! Reading every weights format from the committed fixtures (engine/tests/fixtures, written by
//! gen_fixtures.py with torch 2.11 / transformers 5.23), and strict loading into a VarStore.

use std::path::{Path, PathBuf};

use engine::weights::{self, Format, HfModel, LoadOptions, WeightsError};
use tch::nn::{Init, VarStore};
use tch::{Device, Kind, Tensor};

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(name)
}

fn get<'a>(tensors: &'a [(String, Tensor)], key: &str) -> &'a Tensor {
    &tensors
        .iter()
        .find(|(k, _)| k == key)
        .unwrap_or_else(|| panic!("{key} not found"))
        .1
}

fn assert_same(a: &Tensor, b: &Tensor, what: &str) {
    assert_eq!(a.kind(), b.kind(), "{what}: kind");
    assert_eq!(a.size(), b.size(), "{what}: shape");
    assert!(a.equal(b), "{what}: values differ");
}

#[test]
fn lightning_ckpt_with_every_dtype_and_view() {
    let ckpt = weights::read(&fixture("dtypes.ckpt")).unwrap();
    assert_eq!(ckpt.format, Format::LightningCkpt);
    assert!(ckpt.hf_model.is_none());
    let expected = weights::read_safetensors(&fixture("dtypes_expected.safetensors")).unwrap();
    assert_eq!(ckpt.tensors.len(), expected.len());
    for (k, want) in &expected {
        assert_same(get(&ckpt.tensors, k), want, k);
    }
    // The transposed view and the offset slice came out right, not just equal to themselves.
    let w = get(&ckpt.tensors, "layer.weight");
    assert_same(
        get(&ckpt.tensors, "layer.weight_t"),
        &w.tr().contiguous(),
        "transpose",
    );
    assert_eq!(get(&ckpt.tensors, "half.weight").kind(), Kind::Half);
    assert_eq!(get(&ckpt.tensors, "bf16.weight").kind(), Kind::BFloat16);
    let ids: Vec<i64> = get(&ckpt.tensors, "long.ids").try_into().unwrap();
    assert_eq!(ids, [-2, -1, 0, 1, 2]);
    assert_eq!(
        get(&ckpt.tensors, "scalar.temperature").size(),
        Vec::<i64>::new()
    );
}

#[test]
fn legacy_stream_format_ckpt() {
    let ckpt = weights::read(&fixture("dtypes_legacy.ckpt")).unwrap();
    assert_eq!(ckpt.format, Format::LightningCkpt);
    let expected = weights::read_safetensors(&fixture("dtypes_expected.safetensors")).unwrap();
    assert_eq!(ckpt.tensors.len(), expected.len());
    for (k, want) in &expected {
        assert_same(get(&ckpt.tensors, k), want, k);
    }
    let dir = tempfile::tempdir().unwrap();
    for keep in [0.3, 0.9, 0.99] {
        let path = truncated_copy(&fixture("dtypes_legacy.ckpt"), dir.path(), keep);
        let msg = weights::read(&path).unwrap_err().to_string();
        assert!(msg.contains("dtypes_legacy.ckpt"), "{msg}");
    }
}

#[test]
fn plain_torch_state_dict() {
    let ckpt = weights::read(&fixture("dtypes_plain.pt")).unwrap();
    assert_eq!(ckpt.format, Format::TorchStateDict);
    let expected = weights::read_safetensors(&fixture("dtypes_expected.safetensors")).unwrap();
    for (k, want) in &expected {
        assert_same(get(&ckpt.tensors, k), want, k);
    }
}

#[test]
fn reference_ckpt_equals_mapped_hf_bridgetower() {
    let hf = weights::read(&fixture("hf_bridgetower")).unwrap();
    assert_eq!(hf.hf_model, Some(HfModel::BridgeTower));
    let reference = weights::read(&fixture("bridgetower_ref.ckpt")).unwrap();
    assert_eq!(reference.format, Format::LightningCkpt);
    let mut hf_keys: Vec<&str> = hf.tensors.iter().map(|(k, _)| k.as_str()).collect();
    let mut ref_keys: Vec<&str> = reference
        .tensors
        .iter()
        .map(|(k, _)| k.as_str())
        .filter(|k| !weights::is_known_unused(k) || k.starts_with("text_transformer.pooler"))
        .collect();
    hf_keys.sort();
    ref_keys.sort();
    assert_eq!(hf_keys, ref_keys);
    for (k, t) in &hf.tensors {
        assert_same(t, get(&reference.tensors, k), k);
    }
}

#[test]
fn hf_clip_vision_is_mapped_to_the_reference_layout() {
    let ckpt = weights::read(&fixture("hf_clip_vision")).unwrap();
    assert_eq!(ckpt.hf_model, Some(HfModel::ClipVision));
    assert_eq!(ckpt.provides(), Some(&["vit_model."][..]));
    let raw = weights::read_safetensors(&fixture("hf_clip_vision/model.safetensors")).unwrap();
    let raw_key = |k: &str| {
        raw.iter()
            .find(|(n, _)| n == k || n == &format!("vision_model.{k}"))
            .map(|(_, t)| t)
            .unwrap_or_else(|| panic!("{k}"))
    };
    for i in 0..3 {
        let fused = get(
            &ckpt.tensors,
            &format!("vit_model.visual.transformer.resblocks.{i}.attn.in_proj_weight"),
        );
        let want = Tensor::cat(
            &[
                raw_key(&format!("encoder.layers.{i}.self_attn.q_proj.weight")),
                raw_key(&format!("encoder.layers.{i}.self_attn.k_proj.weight")),
                raw_key(&format!("encoder.layers.{i}.self_attn.v_proj.weight")),
            ],
            0,
        );
        assert_same(fused, &want, "in_proj_weight");
    }
    assert_same(
        get(&ckpt.tensors, "vit_model.visual.ln_pre.weight"),
        raw_key("pre_layrnorm.weight"),
        "ln_pre",
    );
    assert_same(
        get(&ckpt.tensors, "vit_model.visual.conv1.weight"),
        raw_key("embeddings.patch_embedding.weight"),
        "conv1",
    );
    let arch = weights::Architecture::infer(&ckpt.tensors, ckpt.hf_config.as_ref());
    let v = arch.vision.unwrap();
    assert_eq!((v.width, v.num_layers, v.num_heads), (32, 3, 2));
    assert_eq!((v.patch_size, v.grid, v.image_size), (8, 4, 32));
}

#[test]
fn hf_roberta_and_architecture() {
    let ckpt = weights::read(&fixture("hf_roberta")).unwrap();
    assert_eq!(ckpt.hf_model, Some(HfModel::RobertaModel));
    assert!(ckpt
        .tensors
        .iter()
        .all(|(k, _)| k.starts_with("text_transformer.")));
    let t = weights::Architecture::infer(&ckpt.tensors, ckpt.hf_config.as_ref())
        .text
        .unwrap();
    assert_eq!(
        (t.vocab_size, t.hidden_size, t.num_layers, t.num_heads),
        (64, 32, 3, Some(2))
    );
    assert_eq!((t.intermediate_size, t.max_position_embeddings), (64, 24));
}

#[test]
fn bridgetower_architecture_is_inferred() {
    let ckpt = weights::read(&fixture("bridgetower_ref.ckpt")).unwrap();
    let arch = weights::Architecture::infer(&ckpt.tensors, None);
    let f = arch.fusion.unwrap();
    assert_eq!(f.kind, experiments::ManagerType::Bt);
    assert_eq!((f.hidden_size, f.num_layers, f.token_types), (32, 2, 2));
    let v = arch.vision.unwrap();
    assert_eq!((v.width, v.num_layers, v.num_heads), (64, 2, 1));
}

/// A VarStore with one variable per tensor of `tensors`, shaped alike, zero-filled.
fn store_like(tensors: &[(String, Tensor)]) -> VarStore {
    let vs = VarStore::new(Device::Cpu);
    for (k, t) in tensors {
        let mut path = vs.root();
        let mut parts: Vec<&str> = k.split('.').collect();
        let last = parts.pop().unwrap();
        for p in parts {
            path = path.sub(p);
        }
        let _ = path.var(last, &t.size(), Init::Const(0.0));
    }
    vs
}

fn without_unused(tensors: &[(String, Tensor)]) -> Vec<(String, Tensor)> {
    tensors
        .iter()
        .filter(|(k, _)| !weights::is_known_unused(k))
        .map(|(k, t)| (k.clone(), t.shallow_clone()))
        .collect()
}

#[test]
fn strict_load_of_each_format() {
    for name in [
        "bridgetower_ref.ckpt",
        "hf_bridgetower",
        "hf_bridgetower/model.safetensors",
    ] {
        let ckpt = weights::read(&fixture(name)).unwrap();
        let mut vs = store_like(&without_unused(&ckpt.tensors));
        let report = weights::load_into(&mut vs, &ckpt, &LoadOptions::strict()).unwrap();
        assert_eq!(report.loaded, vs.len(), "{name}");
        let vars = vs.variables();
        for (k, t) in without_unused(&ckpt.tensors) {
            assert!(vars[&k].equal(&t.to_kind(Kind::Float)), "{name}: {k}");
        }
    }
}

#[test]
fn wrong_shape_and_missing_key_fail_with_their_names() {
    for name in ["bridgetower_ref.ckpt", "hf_bridgetower", "hf_clip_vision"] {
        let ckpt = weights::read(&fixture(name)).unwrap();
        let mut shapes = without_unused(&ckpt.tensors);
        // One variable of another shape, one the checkpoint lacks.
        let wrong = shapes
            .iter()
            .position(|(k, _)| k.ends_with("ln_post.weight"))
            .unwrap();
        let wrong_key = shapes[wrong].0.clone();
        shapes[wrong].1 = Tensor::zeros([3], (Kind::Float, Device::Cpu));
        let missing_key = if ckpt.provides().is_some() {
            "vit_model.visual.extra.weight".to_string()
        } else {
            "cross_modal_text_pooler.extra.weight".to_string()
        };
        shapes.push((
            missing_key.clone(),
            Tensor::zeros([2], (Kind::Float, Device::Cpu)),
        ));
        let mut vs = store_like(&shapes);
        let err = weights::load_into(&mut vs, &ckpt, &LoadOptions::strict()).unwrap_err();
        let msg = err.to_string();
        assert!(matches!(err, WeightsError::Mismatch { .. }), "{msg}");
        assert!(msg.contains(&missing_key), "{name}: {msg}");
        assert!(
            msg.contains(&format!("{wrong_key}: expected [3], found [")),
            "{name}: {msg}"
        );
        assert!(
            msg.contains(name.split('/').next().unwrap()),
            "{name}: {msg}"
        );
        // Nothing was copied.
        assert_eq!(
            vs.variables()[&wrong_key]
                .abs()
                .sum(Kind::Float)
                .double_value(&[]),
            0.0
        );
    }
}

#[test]
fn backbones_load_into_their_scope_only() {
    let clip = weights::read(&fixture("hf_clip_vision")).unwrap();
    let mut shapes = without_unused(&clip.tensors);
    shapes.push((
        "cross_modal_text_transform.weight".into(),
        Tensor::zeros([2, 2], (Kind::Float, Device::Cpu)),
    ));
    let mut vs = store_like(&shapes);
    let report = weights::load_into(&mut vs, &clip, &LoadOptions::strict()).unwrap();
    assert_eq!(
        report.kept,
        vec!["cross_modal_text_transform.weight".to_string()]
    );
    assert_eq!(report.loaded, clip.tensors.len());
}

fn truncated_copy(src: &Path, dir: &Path, keep: f64) -> PathBuf {
    let bytes = std::fs::read(src).unwrap();
    let name = src.file_name().unwrap();
    let dst = dir.join(name);
    let n = (bytes.len() as f64 * keep) as usize;
    std::fs::write(&dst, &bytes[..n]).unwrap();
    dst
}

#[test]
fn corrupt_and_truncated_files_are_errors_naming_the_file() {
    let dir = tempfile::tempdir().unwrap();
    for (src, keep) in [
        (fixture("dtypes.ckpt"), 0.5),
        (fixture("dtypes.ckpt"), 0.97),
        (fixture("hf_roberta/model.safetensors"), 0.5),
        (fixture("hf_roberta/model.safetensors"), 0.0005),
    ] {
        let path = truncated_copy(&src, dir.path(), keep);
        let err = weights::read(&path).unwrap_err();
        let msg = err.to_string();
        assert!(msg.contains(&path.display().to_string()), "{msg}");
    }
    let garbage = dir.path().join("garbage.bin");
    std::fs::write(&garbage, b"this is not a checkpoint").unwrap();
    let err = weights::read(&garbage).unwrap_err();
    assert!(matches!(err, WeightsError::UnknownFormat { .. }), "{err}");
    let missing = dir.path().join("nope.ckpt");
    assert!(matches!(
        weights::read(&missing).unwrap_err(),
        WeightsError::Io { .. }
    ));
}

#[test]
fn corrupted_storage_bytes_in_a_zip_are_caught() {
    // Flip bytes inside the pickle of a valid archive: an error, never a panic.
    let dir = tempfile::tempdir().unwrap();
    let mut bytes = std::fs::read(fixture("dtypes_plain.pt")).unwrap();
    let at = bytes
        .windows(8)
        .position(|w| w == b"data.pkl")
        .expect("entry name");
    for b in &mut bytes[at + 40..at + 80] {
        *b ^= 0x5a;
    }
    let path = dir.path().join("flipped.pt");
    std::fs::write(&path, &bytes).unwrap();
    let err = weights::read(&path).unwrap_err().to_string();
    assert!(err.contains("flipped.pt"), "{err}");
}

#[test]
fn safetensors_round_trip() {
    let dir = tempfile::tempdir().unwrap();
    let ckpt = weights::read(&fixture("dtypes.ckpt")).unwrap();
    let out = dir.path().join("rt.safetensors");
    weights::write_safetensors(&out, &ckpt.tensors).unwrap();
    let back = weights::read(&out).unwrap();
    assert_eq!(back.format, Format::Safetensors);
    for (k, t) in &ckpt.tensors {
        assert_same(get(&back.tensors, k), t, k);
    }
}

#[test]
fn lightning_ckpt_writer_round_trips_every_dtype() {
    let dir = tempfile::tempdir().unwrap();
    let src = weights::read(&fixture("dtypes.ckpt")).unwrap();
    let out = dir.path().join("w.ckpt");
    weights::write_lightning_ckpt(&out, &src.tensors).unwrap();
    let back = weights::read(&out).unwrap();
    assert_eq!(back.format, Format::LightningCkpt);
    assert_eq!(back.tensors.len(), src.tensors.len());
    for (k, t) in &src.tensors {
        assert_same(get(&back.tensors, k), t, k);
    }
}
