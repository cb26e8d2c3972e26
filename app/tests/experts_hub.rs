//! Pretrained experts end to end, through the real binary: a tiny run starts from exactly the
//! weights of a hub cache the test writes itself (offline), another revision in the cache makes
//! the cell stale, bad caches and contradicting settings fail with one message and store
//! nothing, and `queue` downloads a missing expert from a loopback hub.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use testkit::hub::{self, HubServer, CLIP_ID, COMMIT_A, COMMIT_B, ROBERTA_ID};

const EXPERIMENT: &str = r#"
name = "experts-test"
task = "vqa"

[data]
root = "DATA"
synthetic = true

[base]
preset = "tiny"
pretrained_experts = true
vit = "tiny-org/tiny-clip"
tokenizer = "tiny-org/tiny-roberta"
EXTRA
image_size = 32
max_text_len = 16
device = "cpu"
num_workers = 0
batch_size = 8
per_gpu_batchsize = 8
per_gpu_eval_batchsize = 64
# One step whose learning rate is 0 (the first step of the warmup): the checkpoint holds
# exactly what the run started from.
max_steps = 1
warmup_steps = 1
max_epoch = 1
val_check_steps = 1
train_tables = ["vqav2_train"]
val_tables = ["vqav2_val"]
vqav2_label_size = 21

[grid]
manager_type = ["AAUE"]

[metric]
name = "val/vqa/score_epoch"
goal = "maximize"
"#;

struct Env {
    dir: tempfile::TempDir,
    cache: PathBuf,
}

impl Env {
    fn new(extra: &str) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let data = dir.path().join("data");
        let cache = dir.path().join("hf-cache");
        std::fs::create_dir_all(&cache).unwrap();
        std::fs::write(
            dir.path().join("exp.toml"),
            EXPERIMENT
                .replace("DATA", &data.display().to_string())
                .replace("EXTRA", extra),
        )
        .unwrap();
        Self { dir, cache }
    }

    fn db(&self) -> PathBuf {
        self.dir.path().join("store").join("towerlab.db")
    }

    fn file(&self) -> String {
        self.dir.path().join("exp.toml").display().to_string()
    }

    fn command(&self, args: &[&str]) -> Command {
        let mut c = Command::new(env!("CARGO_BIN_EXE_towerlab"));
        c.args(args)
            .arg("--db")
            .arg(self.db())
            .current_dir(self.dir.path())
            .env_remove("TOWERLAB_DB")
            .env_remove("HF_HOME")
            .env_remove("HF_ENDPOINT")
            .env_remove("HF_TOKEN")
            .env("HOME", self.dir.path())
            .env("HF_HUB_CACHE", &self.cache)
            .env("HF_HUB_OFFLINE", "1");
        c
    }

    fn towerlab(&self, args: &[&str]) -> Output {
        self.command(args).output().unwrap()
    }

    fn ok(&self, args: &[&str]) -> String {
        testkit::towerlab::success_stdout(&self.towerlab(args), &format!("towerlab {args:?}"))
    }

    /// Runs a command that must fail, returning its stderr.
    fn fails(&self, args: &[&str]) -> String {
        let out = self.towerlab(args);
        let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
        assert!(
            !out.status.success(),
            "towerlab {args:?} succeeded: {stderr}"
        );
        assert_eq!(
            stderr.lines().filter(|l| l.starts_with("error")).count(),
            1,
            "one message: {stderr}"
        );
        stderr
    }
}

fn fixture_tensors(name: &str) -> Vec<(String, tch::Tensor)> {
    engine::weights::read(&hub::fixtures().join(name))
        .unwrap()
        .tensors
}

#[test]
fn a_tiny_run_starts_from_exactly_the_cached_experts_and_show_names_what_it_loaded() {
    let env = Env::new("");
    hub::write_cache(&env.cache);
    let out = env.ok(&["run", &env.file()]);
    assert!(out.contains("experts-test"), "{out}");

    // The step-1 checkpoint (its only step had learning rate 0) holds the experts' tensors.
    let runs: Vec<PathBuf> = std::fs::read_dir(env.db().parent().unwrap().join("runs"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    assert_eq!(runs.len(), 1, "{runs:?}");
    let ckpt = runs[0]
        .join("checkpoints")
        .join("step-1")
        .join("model.safetensors");
    let show = env.ok(&["show", runs[0].file_name().unwrap().to_str().unwrap()]);
    let saved: std::collections::HashMap<String, tch::Tensor> =
        tch::Tensor::read_safetensors(&ckpt)
            .unwrap_or_else(|e| panic!("{e}\n{out}\n{show}"))
            .into_iter()
            .collect();
    let mut compared = 0;
    for name in ["hf_clip_vision", "hf_roberta"] {
        for (key, want) in fixture_tensors(name) {
            if let Some(got) = saved.get(&key) {
                assert!(got.equal(&want), "{key} is not the expert's");
                compared += 1;
            }
        }
    }
    assert!(compared > 40, "only {compared} tensors compared");

    assert!(show.contains("weights (pinned by the identity)"), "{show}");
    assert!(
        show.contains(&format!("{CLIP_ID}@{}", &COMMIT_A[..12])),
        "{show}"
    );
    let loaded: Vec<&str> = show
        .lines()
        .filter(|l| l.starts_with("  [1] ") && l.contains(" tensors from "))
        .filter(|l| !l.contains(" info "))
        .collect();
    assert_eq!(loaded.len(), 2, "{show}");
    assert!(loaded.iter().any(|l| l.contains(ROBERTA_ID)), "{show}");

    // Its checkpoint scores with the text expert's tokenizer, as the run trained, not with the
    // synthetic data's `tokenizer.json` beside the tables (another vocabulary).
    let step = runs[0].join("checkpoints").join("step-1");
    let scored = env.ok(&[
        "eval",
        "--weights",
        step.to_str().unwrap(),
        "--task",
        "vqa",
        "--json",
    ]);
    let metrics: serde_json::Value = serde_json::from_str(&scored).unwrap_or_else(|e| {
        panic!("eval --json printed no JSON object ({e}): {scored}");
    });
    assert!(metrics["val/vqa/score_epoch"].is_number(), "{scored}");
}

#[test]
fn another_revision_in_the_cache_makes_the_cell_stale_and_plan_says_why() {
    let env = Env::new("");
    hub::write_cache(&env.cache);
    let queued = env.ok(&["queue", &env.file()]);
    assert!(queued.contains("queued 1 run(s)"), "{queued}");
    hub::write_snapshot(&env.cache, CLIP_ID, COMMIT_B, &hub::clip_files());
    let plan = env.ok(&["plan", &env.file()]);
    assert!(plan.contains("stale"), "{plan}");
    assert!(plan.contains("@weights.vit.commit"), "{plan}");
    assert!(plan.contains(COMMIT_B), "{plan}");
}

#[test]
fn an_expert_missing_offline_is_one_message_and_nothing_is_stored() {
    let env = Env::new("");
    let plan = env.ok(&["plan", &env.file()]);
    assert!(plan.contains("not on this machine yet"), "{plan}");
    let err = env.fails(&["run", &env.file()]);
    for needle in [
        CLIP_ID,
        env.cache.to_str().unwrap(),
        "HF_HUB_OFFLINE",
        "towerlab model fetch",
    ] {
        assert!(err.contains(needle), "{needle} not in {err}");
    }
    assert!(!env.db().exists(), "nothing may be stored");
}

#[test]
fn a_truncated_safetensors_file_in_the_cache_is_one_message_and_nothing_is_stored() {
    let env = Env::new("");
    hub::write_cache(&env.cache);
    let weights = env
        .cache
        .join("models--tiny-org--tiny-clip/snapshots")
        .join(COMMIT_A)
        .join("model.safetensors");
    let bytes = std::fs::read(&weights).unwrap();
    std::fs::write(&weights, &bytes[..bytes.len() / 2]).unwrap();
    let err = env.fails(&["run", &env.file()]);
    assert!(err.contains("truncated"), "{err}");
    assert!(err.contains(weights.to_str().unwrap()), "{err}");
    assert!(!env.db().exists(), "nothing may be stored");
}

#[test]
fn a_setting_that_contradicts_the_experts_config_names_both_values() {
    let env = Env::new("input_image_embed_size = 64");
    hub::write_cache(&env.cache);
    let err = env.fails(&["queue", &env.file()]);
    assert!(err.contains("`input_image_embed_size` = 64"), "{err}");
    assert!(err.contains("`hidden_size` = 32"), "{err}");
    assert!(err.contains(CLIP_ID), "{err}");
    assert!(!env.db().exists(), "nothing may be stored");
}

#[test]
fn queue_downloads_a_missing_expert_from_the_hub_endpoint() {
    let server = HubServer::start(&[
        (CLIP_ID, COMMIT_A, hub::clip_files()),
        (ROBERTA_ID, COMMIT_B, hub::roberta_files()),
    ]);
    let env = Env::new("");
    let out = env
        .command(&["queue", &env.file()])
        .env_remove("HF_HUB_OFFLINE")
        .env("HF_ENDPOINT", &server.url)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(
        stderr.contains(&format!("{CLIP_ID} at commit {COMMIT_A}")),
        "{stderr}"
    );
    assert!(Path::new(&env.cache)
        .join("models--tiny-org--tiny-roberta/snapshots")
        .join(COMMIT_B)
        .join("tokenizer.json")
        .is_file());
    // The queued run's identity pins both commits: offline now, the plan finds it queued.
    let plan = env.ok(&["plan", &env.file()]);
    assert!(plan.contains("queued"), "{plan}");
    assert!(!plan.contains("not on this machine"), "{plan}");
}
