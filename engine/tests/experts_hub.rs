//! Runs start from the pretrained experts, found in a hub cache the test writes itself (the
//! tiny `CLIPVisionModel` and `RobertaModel` fixtures in the `models--…/refs/main` →
//! `snapshots/{commit}/` layout), or downloaded from a loopback server speaking the hub's file
//! API through the real `hf-hub` client.

use std::collections::BTreeMap;
use std::sync::mpsc;

use engine::hub::{self, HubError, Progress};
use engine::model::{ModelConfig, TowerModel};
use engine::train::{init, TrainJob};
use experiments::experts::{self, Availability, HubEnv, Pin, Role};
use experiments::{Settings, Task};
use tch::Tensor;

use testkit::hub::{HubServer, CLIP_ID, COMMIT_A, COMMIT_B, ROBERTA_ID};

fn hub_at(root: &std::path::Path) -> HubEnv {
    HubEnv {
        cache: Some(root.to_path_buf()),
        cache_from: "HF_HUB_CACHE",
        offline: true,
        ..HubEnv::default()
    }
}

/// The tiny preset on the tiny experts, their configs applied as the plan applies them.
fn settings(hub: &HubEnv) -> Settings {
    let mut s = Settings {
        task: Task::Vqa,
        pretrained_experts: true,
        vit: CLIP_ID.into(),
        tokenizer: ROBERTA_ID.into(),
        image_size: 32,
        max_text_len: 16,
        ..Settings::tiny()
    };
    let applied = experts::apply(&mut s, &|_| false, hub);
    assert!(
        applied.errors.is_empty() && applied.missing.is_empty(),
        "{applied:?}"
    );
    s
}

fn job(s: Settings, hub: HubEnv, dir: &std::path::Path) -> TrainJob {
    TrainJob {
        settings: s,
        run_hash: "experts".into(),
        run_dir: dir.to_path_buf(),
        init_from: None,
        resume: false,
        loads: Default::default(),
        hub,
    }
}

fn fixture(name: &str) -> BTreeMap<String, Tensor> {
    let ckpt = engine::weights::read(&testkit::hub::fixtures().join(name)).unwrap();
    ckpt.tensors.into_iter().collect()
}

#[test]
fn a_fresh_run_starts_from_exactly_the_cached_experts() {
    let cache = tempfile::tempdir().unwrap();
    testkit::hub::write_cache(cache.path());
    let hub = hub_at(cache.path());
    let s = settings(&hub);
    // The configs decided the encoders: width 32, 3 layers, 2 heads, patch 8 at 32 px.
    assert_eq!(
        (
            s.input_image_embed_size,
            s.vit_num_layers,
            s.vit_heads(),
            s.patch_size
        ),
        (32, 3, 2, 8)
    );
    assert_eq!(
        (
            s.input_text_embed_size,
            s.vocab_size,
            s.text_max_position_embeddings
        ),
        (32, 64, 24)
    );

    let run = tempfile::tempdir().unwrap();
    let job = job(s.clone(), hub, run.path());
    let (tx, rx) = mpsc::channel();
    let found = init::experts(&job, &tx).unwrap();
    let cfg = ModelConfig::from_settings(&s)
        .unwrap()
        .with_experts(found.vision_config(), found.text_config())
        .unwrap();
    assert_eq!(
        (cfg.vit_ln_eps, cfg.text_ln_eps, cfg.vit_intermediate),
        (1e-5, 1e-5, 128)
    );
    tch::manual_seed(0);
    let mut vs = tch::nn::VarStore::new(tch::Device::Cpu);
    let _model = TowerModel::new(&vs.root(), &cfg).unwrap();
    let loaded = init::initialise(&mut vs, &job, &found, &tx).unwrap();

    // Every expert tensor is the fixture's, bit for bit, before any step.
    let vars = vs.variables();
    let mut compared = 0;
    for name in ["hf_clip_vision", "hf_roberta"] {
        for (key, want) in fixture(name) {
            let Some(got) = vars.get(&key) else {
                assert!(
                    engine::weights::is_known_unused(&key),
                    "{key} not in the model"
                );
                continue;
            };
            assert!(got.equal(&want), "{key} differs from the fixture");
            compared += 1;
        }
    }
    let total: usize = loaded.iter().map(|l| l.tensors).sum();
    assert_eq!(compared, total);
    assert_eq!(loaded.len(), 2);
    assert!(loaded[0]
        .path
        .ends_with(format!("snapshots/{COMMIT_A}/model.safetensors")));
    assert!(loaded[0].what.contains(CLIP_ID), "{}", loaded[0].what);
    let logs: Vec<String> = rx
        .try_iter()
        .filter_map(|e| match e {
            engine::train::Event::Log { message } => Some(message),
            _ => None,
        })
        .collect();
    assert!(
        logs.iter()
            .any(|l| l.starts_with(&format!("loaded {} tensors from", loaded[0].tensors))),
        "{logs:?}"
    );
    // The tokenizer is the text expert's.
    assert!(found
        .tokenizer()
        .unwrap()
        .ends_with(format!("snapshots/{COMMIT_A}/tokenizer.json")));
}

#[test]
fn the_pinned_commit_is_loaded_even_when_refs_main_moved() {
    let cache = tempfile::tempdir().unwrap();
    testkit::hub::write_cache(cache.path());
    let hub = hub_at(cache.path());
    let s = settings(&hub);
    let pins = experts::loads(&s, &hub);
    // A second revision lands and refs/main follows it.
    testkit::hub::write_snapshot(cache.path(), CLIP_ID, COMMIT_B, &testkit::hub::clip_files());
    let run = tempfile::tempdir().unwrap();
    let mut job = job(s.clone(), hub.clone(), run.path());
    job.loads = pins;
    let (tx, _rx) = mpsc::channel();
    let found = init::experts(&job, &tx).unwrap();
    let vision = found.vision.unwrap();
    assert!(vision.dir.ends_with(COMMIT_A), "{}", vision.dir.display());
    // Unpinned, refs/main decides.
    assert_eq!(
        experts::loads(&s, &hub).vit,
        Some(Pin::Hub {
            repo: CLIP_ID.into(),
            commit: Some(COMMIT_B.into()),
            file: None
        })
    );
}

#[test]
fn offline_and_missing_names_the_model_the_cache_and_how_to_fetch_it() {
    let cache = tempfile::tempdir().unwrap();
    let hub = hub_at(cache.path());
    let e =
        hub::ensure_expert(Role::Vision, "ViT-B/16", &hub, None, &mut Progress::None).unwrap_err();
    assert!(matches!(e, HubError::Offline { .. }), "{e}");
    let msg = e.to_string();
    for needle in [
        "openai/clip-vit-base-patch16",
        &cache.path().display().to_string(),
        "HF_HUB_OFFLINE",
        "towerlab model fetch",
    ] {
        assert!(msg.contains(needle), "{needle} not in {msg}");
    }
}

#[test]
fn downloads_through_the_hub_file_api_into_the_standard_layout() {
    let server = HubServer::start(&[
        (CLIP_ID, COMMIT_A, testkit::hub::clip_files()),
        (ROBERTA_ID, COMMIT_B, testkit::hub::roberta_files()),
    ]);
    let cache = tempfile::tempdir().unwrap();
    let hub = HubEnv {
        cache: Some(cache.path().to_path_buf()),
        cache_from: "HF_HUB_CACHE",
        offline: false,
        endpoint: Some(server.url.clone()),
        token: Some("hf_test_token".into()),
    };
    let mut lines = Vec::new();
    let mut log = |l: String| lines.push(l);
    let found = hub::ensure_expert(
        Role::Text,
        ROBERTA_ID,
        &hub,
        None,
        &mut Progress::Log(&mut log),
    )
    .unwrap();
    assert_eq!(
        found.pin,
        Pin::Hub {
            repo: ROBERTA_ID.into(),
            commit: Some(COMMIT_B.into()),
            file: None
        }
    );
    let repo_dir = cache.path().join("models--tiny-org--tiny-roberta");
    assert_eq!(
        std::fs::read_to_string(repo_dir.join("refs/main")).unwrap(),
        COMMIT_B
    );
    for f in ["config.json", "tokenizer.json", "model.safetensors"] {
        let p = repo_dir.join("snapshots").join(COMMIT_B).join(f);
        // A link into blobs/{etag}, as huggingface_hub lays it out.
        assert!(
            std::fs::symlink_metadata(&p)
                .unwrap()
                .file_type()
                .is_symlink(),
            "{f}"
        );
        let want = testkit::hub::roberta_files()
            .into_iter()
            .find(|(n, _)| n == f)
            .unwrap()
            .1;
        assert_eq!(std::fs::read(&p).unwrap(), want, "{f}");
    }
    assert!(
        lines
            .iter()
            .any(|l| l.contains("downloading model.safetensors")),
        "{lines:?}"
    );
    let requests = server.requests.lock().unwrap().clone();
    assert!(requests
        .iter()
        .all(|r| r.authorization.as_deref() == Some("Bearer hf_test_token")));
    let paths: Vec<&str> = requests.iter().map(|r| r.path.as_str()).collect();
    assert!(
        paths.contains(&"/tiny-org/tiny-roberta/resolve/main/config.json"),
        "{paths:?}"
    );
    // The weights are asked for at the commit the first file came from.
    assert!(
        paths.contains(
            &format!("/tiny-org/tiny-roberta/resolve/{COMMIT_B}/model.safetensors").as_str()
        ),
        "{paths:?}"
    );

    // Found in the cache now: nothing more is asked.
    let before = requests.len();
    let again =
        hub::ensure_expert(Role::Text, ROBERTA_ID, &hub, None, &mut Progress::None).unwrap();
    assert_eq!(again.dir, found.dir);
    assert_eq!(server.requests.lock().unwrap().len(), before);
    assert!(matches!(
        experts::find(Role::Text, ROBERTA_ID, &hub, None).unwrap(),
        Availability::Found(_)
    ));

    // A repository without weights: the error names it.
    let e = hub::ensure_expert(
        Role::Vision,
        "tiny-org/nothing",
        &hub,
        None,
        &mut Progress::None,
    )
    .unwrap_err()
    .to_string();
    assert!(
        e.contains("tiny-org/nothing") && e.contains("config.json"),
        "{e}"
    );
}
