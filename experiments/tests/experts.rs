//! Experts at plan time: their configs decide the encoder keys, a contradicting setting names
//! both values, identities pin the cached commit, and a missing expert is only noted.

use std::path::Path;

use experiments::experts::Pin;
use experiments::{Experiment, IdentityContext, Overrides};

const CLIP: &str = "tiny-org/tiny-clip";
const ROBERTA: &str = "tiny-org/tiny-roberta";
const A: &str = "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa";
const B: &str = "bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb";

fn fixture(name: &str) -> Vec<u8> {
    std::fs::read(
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../engine/tests/fixtures")
            .join(name),
    )
    .unwrap()
}

fn snapshot(root: &Path, repo: &str, commit: &str, files: &[(&str, Vec<u8>)]) {
    let dir = root.join(format!("models--{}", repo.replace('/', "--")));
    let snap = dir.join("snapshots").join(commit);
    std::fs::create_dir_all(&snap).unwrap();
    for (n, b) in files {
        std::fs::write(snap.join(n), b).unwrap();
    }
    std::fs::create_dir_all(dir.join("refs")).unwrap();
    std::fs::write(dir.join("refs/main"), commit).unwrap();
}

fn cache(root: &Path, clip_commit: &str) {
    snapshot(
        root,
        CLIP,
        clip_commit,
        &[
            ("config.json", fixture("hf_clip_vision/config.json")),
            (
                "model.safetensors",
                fixture("hf_clip_vision/model.safetensors"),
            ),
        ],
    );
    snapshot(
        root,
        ROBERTA,
        A,
        &[
            ("config.json", fixture("hf_roberta/config.json")),
            ("model.safetensors", fixture("hf_roberta/model.safetensors")),
            ("tokenizer.json", b"{}".to_vec()),
        ],
    );
}

const METRIC: &str = "[metric]\nname = \"val/vqa/score_epoch\"\ngoal = \"maximize\"\n";

fn file(extra: &str) -> String {
    format!(
        "name = \"e\"\ntask = \"vqa\"\n[base]\npreset = \"base\"\nvit = \"{CLIP}\"\n\
         tokenizer = \"{ROBERTA}\"\nmax_text_len = 20\nmanaged_layers_text = 3\nmanaged_layers_image = 3\n{extra}\n[grid]\nseeds = [0, 1]\n{METRIC}"
    )
}

fn load(src: &str, cache: Option<&Path>) -> Result<Experiment, experiments::ValidationErrors> {
    let env = cache
        .map(|c| vec![("HF_HUB_CACHE".to_string(), c.display().to_string())])
        .unwrap_or_default();
    Experiment::from_toml(
        src,
        Path::new("e.toml"),
        &Overrides {
            env,
            set: Vec::new(),
        },
    )
}

#[test]
fn the_experts_configs_decide_the_encoder_keys_and_identities_pin_the_commit() {
    let dir = tempfile::tempdir().unwrap();
    cache(dir.path(), A);
    let exp = load(&file(""), Some(dir.path())).unwrap();
    assert!(exp.missing_experts.is_empty());
    let s = &exp.runs()[0].settings;
    assert!(
        s.pretrained_experts,
        "the base preset starts from the experts"
    );
    // From the configs, not the base preset's 768 / 12 / 50265.
    assert_eq!(
        (
            s.input_image_embed_size,
            s.vit_num_layers,
            s.patch_size,
            s.resolution_before
        ),
        (32, 3, 8, 32)
    );
    assert_eq!(
        (s.input_text_embed_size, s.text_num_layers, s.vocab_size),
        (32, 3, 64)
    );
    let ctx = IdentityContext::fixed("v", "d");
    let cell = exp.cells(&ctx).pop().unwrap();
    assert_eq!(
        cell.loads.vit,
        Some(Pin::Hub {
            repo: CLIP.into(),
            commit: Some(A.into()),
            file: None
        })
    );
    assert_eq!(cell.identity_document["weights"]["tokenizer"]["commit"], A);

    // Another revision of CLIP is another run, and the diff says which input changed.
    cache(dir.path(), B);
    let again = load(&file(""), Some(dir.path())).unwrap();
    let other = again.cells(&ctx).pop().unwrap();
    assert_ne!(other.identity, cell.identity);
    let diff =
        experiments::experiment::diff_documents(&cell.identity_document, &other.identity_document);
    assert_eq!(diff.len(), 1, "{diff:?}");
    assert_eq!(diff[0].0, "@weights.vit.commit");
}

#[test]
fn a_setting_contradicting_the_config_is_an_error_naming_both_values() {
    let dir = tempfile::tempdir().unwrap();
    cache(dir.path(), A);
    let errors = load(&file("input_text_embed_size = 768"), Some(dir.path())).unwrap_err();
    // One message for the two cells (seeds) that share the setting.
    assert_eq!(errors.len(), 1, "{errors}");
    let e = errors.to_string();
    assert!(e.contains("`input_text_embed_size` = 768"), "{e}");
    assert!(e.contains("`hidden_size` = 32"), "{e}");
    assert!(e.contains(ROBERTA), "{e}");
    // Written to the value the config has, it is fine.
    assert!(load(&file("input_text_embed_size = 32"), Some(dir.path())).is_ok());
}

#[test]
fn a_missing_expert_is_noted_and_its_cells_carry_no_commit() {
    let exp = load(&file(""), None).unwrap();
    let keys: Vec<&str> = exp.missing_experts.iter().map(|m| m.key).collect();
    assert_eq!(keys, ["vit", "tokenizer"]);
    assert!(exp.warnings.is_empty(), "{:?}", exp.warnings);
    let cell = exp.cells(&IdentityContext::fixed("v", "d")).pop().unwrap();
    assert_eq!(
        cell.loads.vit,
        Some(Pin::Hub {
            repo: CLIP.into(),
            commit: None,
            file: None
        })
    );
    // Still the preset's sizes.
    assert_eq!(exp.runs()[0].settings.input_image_embed_size, 768);
}

#[test]
fn runs_from_scratch_load_nothing_and_keep_their_identity() {
    let src = format!(
        "name = \"t\"\ntask = \"vqa\"\n[base]\npreset = \"tiny\"\n[grid]\nseeds = [0]\n{METRIC}"
    );
    let exp = load(&src, None).unwrap();
    let cell = exp.cells(&IdentityContext::fixed("v", "d")).pop().unwrap();
    assert!(cell.loads.is_empty());
    assert!(cell.identity_document.get("weights").is_none());
    let plain = experiments::identity::identity_document(&cell.settings, "d", "v", None);
    assert_eq!(cell.identity, experiments::RunId::of_document(&plain));
    assert!(plain["settings"].get("pretrained_experts").is_none());
}

#[test]
fn vlp_checkpoint_stands_in_for_the_pre_training_run() {
    let dir = tempfile::tempdir().unwrap();
    let ckpt = dir.path().join("ManagerTower_pt_base.ckpt");
    std::fs::write(&ckpt, b"weights").unwrap();
    let src = format!(
        "name = \"v\"\ntask = \"vqa\"\n[base]\npreset = \"tiny\"\nvlp_checkpoint = \"{}\"\n\
         [grid]\nvlp = [false, true]\n{METRIC}",
        ckpt.display()
    );
    let exp = load(&src, None).unwrap();
    let cells = exp.cells(&IdentityContext::fixed("v", "d"));
    assert_eq!(cells.len(), 2, "no pre-training run is planned");
    assert!(cells.iter().all(|c| c.depends_on.is_none()));
    let with = cells.iter().find(|c| c.settings.vlp).unwrap();
    assert!(matches!(with.loads.vlp_checkpoint, Some(Pin::Local { .. })));
    let without = cells.iter().find(|c| !c.settings.vlp).unwrap();
    assert!(without.settings.vlp_checkpoint.is_empty());
    assert!(without.loads.is_empty());
    // A name that is neither a file nor a hub file is refused.
    let bad = src.replace(&ckpt.display().to_string(), "missing.ckpt");
    assert!(load(&bad, None)
        .unwrap_err()
        .to_string()
        .contains("vlp_checkpoint"));
}
