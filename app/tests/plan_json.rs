//! `towerlab plan --json` of every shipped paper file: each cell's resolved recipe equals what
//! the reference's named configs and launch scripts give (transcribed here from
//! LooperXX/ManagerTower `src/config.py` and `scripts/*.sh`, independently of TowerLab's recipe
//! code), and every setting says where it came from. No network, no store.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use serde_json::{json, Value as Json};

/// The hyper-parameter variables of each launch script, verbatim.
const PRE_TRAIN_SH: &str = "EXP_IS=288 EXP_PGB=8 EXP_PGEB=32 EXP_LR=1e-5 EXP_RGM=clip_pure";
const FTFPT_VQA_SH: &str = "EXP_IS=576 EXP_PGB=4 EXP_PGEB=16 EXP_LR=9e-6 EXP_BS=504 EXP_ME=10 \
     EXP_WS=0.1 EXP_WD=0.06 EXP_LMH=50 EXP_LMC=5 EXP_THL=2 EXP_HHS=2 EXP_RGM=albef_randaug_wohf";
const FTFS_VQA_SH: &str = "EXP_IS=576 EXP_PGB=4 EXP_PGEB=16 EXP_LR=2e-5 EXP_BS=512 EXP_ME=10 \
     EXP_WS=0.1 EXP_WD=0.01 EXP_LMH=50 EXP_LMC=5 EXP_THL=2 EXP_HHS=1 EXP_RGM=albef_randaug_wohf";
const FTFPT_NLVR2_SH: &str = "EXP_IS=384 EXP_PGB=4 EXP_PGEB=32 EXP_LR=1.4e-5 EXP_BS=256 \
     EXP_ME=5 EXP_WS=0.1 EXP_WD=0.01 EXP_LMH=10 EXP_LMC=5 EXP_THL=2 EXP_HHS=1 \
     EXP_RGM=albef_randaug_wc EXP_CDR=0";
const FTFPT_SNLIVE_SH: &str = "EXP_IS=384 EXP_PGB=8 EXP_PGEB=64 EXP_LR=3e-6 EXP_BS=64 EXP_ME=4 \
     EXP_WS=0.06 EXP_WD=0.01 EXP_LMH=10 EXP_LMC=5 EXP_THL=2 EXP_HHS=2 EXP_RGM=albef_randaug_wc";
const FTFPT_FLICKR_SH: &str = "EXP_IS=384 EXP_PGB=8 EXP_PGEB=8 EXP_LR=6e-6 EXP_BS=512 EXP_ME=20 \
     EXP_WS=0.1 EXP_WD=0.01 EXP_LMH=5 EXP_LMC=5 EXP_THL=2 EXP_HHS=1 EXP_RGM=albef_randaug_wc \
     EXP_PGEBT=256 EXP_PGEBI=128 EXP_GAI=False EXP_GGN=True EXP_GAII=False EXP_AF=True EXP_IC=1";

/// GPUs of one reference node: retrieval's contrastive pool is 8 per GPU × 8 GPUs, which one
/// device reproduces with the whole pool in one batch (`gather_global_negative = True`).
const NODE_GPUS: i64 = 8;

/// The settings a script's flags give, by TowerLab key.
fn script(vars: &str) -> BTreeMap<&'static str, Json> {
    let mut out = BTreeMap::new();
    let env: BTreeMap<&str, &str> = vars
        .split_whitespace()
        .map(|kv| kv.split_once('=').unwrap())
        .collect();
    let num = |k: &str| -> f64 { env[k].parse().unwrap() };
    let int = |k: &str| -> i64 { env[k].parse().unwrap() };
    let gathered = env.get("EXP_GGN") == Some(&"True");
    let pool = if gathered { NODE_GPUS } else { 1 };
    out.insert("image_size", json!(int("EXP_IS")));
    out.insert("per_gpu_batchsize", json!(int("EXP_PGB") * pool));
    out.insert("per_gpu_eval_batchsize", json!(int("EXP_PGEB") * pool));
    out.insert("learning_rate", json!(num("EXP_LR")));
    let rgm = env["EXP_RGM"];
    if rgm == "clip_pure" {
        out.insert("train_transform_keys", json!(["clip"]));
        out.insert("val_transform_keys", json!(["clip"]));
    } else {
        out.insert("train_transform_keys", json!([rgm]));
        out.insert("val_transform_keys", json!(["albef"]));
    }
    for (var, key) in [
        ("EXP_BS", "batch_size"),
        ("EXP_ME", "max_epoch"),
        ("EXP_THL", "task_head_layers"),
        ("EXP_HHS", "head_hidden_scale"),
    ] {
        if env.contains_key(var) {
            out.insert(key, json!(int(var)));
        }
    }
    for (var, key) in [
        ("EXP_WS", "warmup_steps"),
        ("EXP_WD", "weight_decay"),
        ("EXP_LMH", "lr_mult_head"),
        ("EXP_LMC", "lr_mult_cross_modal"),
        ("EXP_CDR", "nlvr2_drop_rate"),
    ] {
        if env.contains_key(var) {
            out.insert(key, json!(num(var)));
        }
    }
    if let Some(af) = env.get("EXP_AF") {
        out.insert("amp_flag", json!(*af == "True"));
    }
    out
}

/// A named config's values (`src/config.py`), by TowerLab key, then a script's on top (sacred
/// applies the `key=value` flags last).
fn config(values: Json, flags: BTreeMap<&'static str, Json>) -> BTreeMap<String, Json> {
    let mut out: BTreeMap<String, Json> = values
        .as_object()
        .unwrap()
        .iter()
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    for (k, v) in flags {
        out.insert(k.to_string(), v);
    }
    out
}

/// What the reference gives for a run of `task` (with VLP or not; COCO or Flickr30K).
fn reference(task: &str, vlp: bool, datasets: &Json) -> BTreeMap<String, Json> {
    match task {
        "pretrain" => config(
            json!({"datasets": ["coco", "vg", "sbu", "gcc"], "batch_size": 4096,
                   "max_epoch": 10, "max_steps": 100000, "warmup_steps": 0.1,
                   "max_text_len": 50, "lr_mult_head": 5.0, "lr_mult_cross_modal": 5.0,
                   "draw_false_image": 1}),
            script(PRE_TRAIN_SH),
        ),
        "vqa" => config(
            json!({"datasets": ["vqa"], "max_steps": -1, "max_text_len": 50}),
            script(if vlp { FTFPT_VQA_SH } else { FTFS_VQA_SH }),
        ),
        "nlvr2" => config(
            json!({"datasets": ["nlvr2"], "max_steps": -1, "max_text_len": 50}),
            script(FTFPT_NLVR2_SH),
        ),
        "snli" => config(
            json!({"datasets": ["snli"], "max_steps": -1, "max_text_len": 50}),
            script(FTFPT_SNLIVE_SH),
        ),
        "irtr" if datasets == &json!(["coco"]) => {
            // No COCO script: `task_finetune_irtr_itm_itc_coco_clip_bert`, with the Flickr
            // script's flags that the named config does not set.
            let mut flags = script(FTFPT_FLICKR_SH);
            for k in ["image_size", "learning_rate", "max_epoch", "batch_size"] {
                flags.remove(k);
            }
            config(
                json!({"datasets": ["coco"], "batch_size": 512, "max_epoch": 10,
                       "max_steps": -1, "warmup_steps": 0.1, "learning_rate": 5e-6,
                       "lr_mult_head": 5.0, "lr_mult_cross_modal": 5.0, "max_text_len": 40,
                       "image_size": 384, "k_test": 256, "get_recall_metric": true}),
                flags,
            )
        }
        "irtr" => config(
            json!({"datasets": ["f30k"], "max_steps": -1, "max_text_len": 40,
                   "k_test": 128, "get_recall_metric": true}),
            script(FTFPT_FLICKR_SH),
        ),
        other => panic!("no reference recipe for {other}"),
    }
}

/// `towerlab ARGS --db DB`, run in the folder of `db`, where [`with_tables`] put the paper
/// files' tables (`plan` checks that every table a cell reads exists).
fn towerlab(args: &[&str], db: &Path) -> Output {
    Command::new(env!("CARGO_BIN_EXE_towerlab"))
        .args(args)
        .arg("--db")
        .arg(db)
        .current_dir(db.parent().unwrap())
        .env_remove("TOWERLAB_DB")
        .env("HF_HUB_OFFLINE", "1")
        .output()
        .unwrap()
}

/// Empty stand-ins, under `dir`, for every table the runs of `file` read (their relative
/// `data_root` resolved from `dir`): plans hash them, nothing reads them.
fn with_tables(file: &Path, dir: &Path) {
    let exp = experiments::Experiment::load(file, &experiments::Overrides::none())
        .unwrap_or_else(|e| panic!("{}: {e}", file.display()));
    let mut settings: Vec<&experiments::Settings> = Vec::new();
    for r in exp.runs() {
        settings.push(&r.settings);
        if let Some((p, _)) = &r.pretrain {
            settings.push(p);
        }
    }
    settings.extend(exp.evals().iter().map(|e| &e.settings));
    for s in settings {
        for table in experiments::data_files(s) {
            // A shard pattern (`gcc_train_*`) stands for its numbered shards.
            let table = PathBuf::from(table.to_string_lossy().replace('*', "0"));
            let path = dir.join(table);
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            std::fs::write(&path, b"").unwrap();
        }
    }
}

fn paper_files() -> Vec<PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../experiments/paper");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "toml"))
        .collect();
    files.sort();
    files
}

fn number_eq(a: &Json, b: &Json) -> bool {
    match (a.as_f64(), b.as_f64()) {
        (Some(x), Some(y)) => x == y,
        _ => a == b,
    }
}

#[test]
fn every_paper_cell_resolves_to_the_reference_recipe() {
    let tmp = tempfile::tempdir().unwrap();
    let db = tmp.path().join("towerlab.db");
    let files = paper_files();
    assert!(files.len() >= 5, "{files:?}");
    let mut tasks_seen = std::collections::BTreeSet::new();
    for file in files {
        with_tables(&file, tmp.path());
        let out = towerlab(&["plan", file.to_str().unwrap(), "--json"], &db);
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success(),
            "{}: {stdout}{}",
            file.display(),
            String::from_utf8_lossy(&out.stderr)
        );
        let cells: Vec<Json> = serde_json::from_str(&stdout)
            .unwrap_or_else(|e| panic!("{}: not a JSON array: {e}\n{stdout}", file.display()));
        assert!(!cells.is_empty());
        for c in &cells {
            let key = c["key"].as_str().unwrap();
            for field in ["state", "identity", "settings", "sources", "role"] {
                assert!(!c[field].is_null(), "{}: {key}: no {field}", file.display());
            }
            assert_eq!(c["state"], "new");
            assert_eq!(c["identity"].as_str().unwrap().len(), 64);
            let settings = c["settings"].as_object().unwrap();
            let sources = c["sources"].as_object().unwrap();
            // Every resolved setting has a source.
            assert_eq!(
                settings.keys().collect::<Vec<_>>(),
                sources.keys().collect::<Vec<_>>(),
                "{key}"
            );
            for s in sources.values() {
                let s = s.as_str().unwrap();
                assert!(
                    ["preset", "task", "file", "env", "set", "pretrain"].contains(&s),
                    "{key}: source {s}"
                );
            }
            let task = settings["task"].as_str().unwrap();
            let vlp = settings["vlp"].as_bool().unwrap() && c["role"] != "pretrain";
            let expected = reference(task, vlp, &settings["datasets"]);
            tasks_seen.insert(format!(
                "{task}{}",
                if task == "irtr" {
                    settings["datasets"].to_string()
                } else {
                    String::new()
                }
            ));
            for (k, want) in &expected {
                let got = &settings[k.as_str()];
                assert!(
                    number_eq(got, want),
                    "{}: {key}: {k} = {got}, the reference gives {want}",
                    file.display()
                );
                let src = sources[k.as_str()].as_str().unwrap();
                assert!(
                    src == "task" || src == "file",
                    "{}: {key}: {k} comes from {src}",
                    file.display()
                );
            }
            // The backbones of `mt clip16 text_roberta` are the preset's.
            assert_eq!(settings["vit"], "CLIP-ViT-B/16");
            assert_eq!(settings["patch_size"], 16);
            assert_eq!(settings["tokenizer"], "roberta-base");
            assert_eq!(settings["vocab_size"], 50265);
            if c["role"] == "eval" {
                assert!(c["eval"]["weights"].as_str().unwrap().ends_with(".ckpt"));
            }
        }
    }
    // Every task of the paper has a shipped cell.
    for t in [
        "pretrain",
        "vqa",
        "nlvr2",
        "snli",
        r#"irtr["f30k"]"#,
        r#"irtr["coco"]"#,
    ] {
        assert!(tasks_seen.contains(t), "{t} not in {tasks_seen:?}");
    }
}

#[test]
fn plan_settings_is_the_same_as_a_table() {
    let tmp = tempfile::tempdir().unwrap();
    let db = tmp.path().join("towerlab.db");
    let file = Path::new(env!("CARGO_MANIFEST_DIR")).join("../experiments/paper/vlp.toml");
    with_tables(&file, tmp.path());
    let out = towerlab(&["plan", file.to_str().unwrap(), "--settings"], &db);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{text}");
    // Rows per setting, one column per cell (2 pre-training runs + 4 cells).
    let lr = text
        .lines()
        .find(|l| l.starts_with("learning_rate "))
        .unwrap();
    assert_eq!(lr.matches("(task)").count(), 6, "{lr}");
    assert!(
        lr.contains("9e-6 (task)") && lr.contains("2e-5 (task)"),
        "{lr}"
    );
    assert!(text.contains("(recipe vqa-ftfs)") && text.contains("(recipe pretrain)"));
    let seed = text.lines().find(|l| l.starts_with("seed ")).unwrap();
    assert!(seed.contains("(pretrain)"), "{seed}");
    // --set shows as set.
    let out = towerlab(
        &[
            "plan",
            file.to_str().unwrap(),
            "--json",
            "--set",
            "max_epoch=2",
        ],
        &db,
    );
    let cells: Vec<Json> = serde_json::from_slice(&out.stdout).unwrap();
    assert!(cells
        .iter()
        .all(|c| c["sources"]["max_epoch"] == "set" && c["settings"]["max_epoch"] == 2));
}
