//! `towerlab eval` end to end on the synthetic sets: a checkpoint written by a TowerLab training
//! run scores exactly the validation metrics that run logged last (same data, same order), for
//! VQA, NLVR2, SNLI-VE and retrieval; the same weights as a reference-layout Lightning `.ckpt`
//! (written by `towerlab model convert`) score the same; an experiment file holds an eval cell
//! beside its training cells; bad checkpoints are one message with nothing stored.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::OnceLock;

use store::{RunFilter, Store};

struct Fixture {
    root: PathBuf,
    data: PathBuf,
    db: PathBuf,
}

fn towerlab(fx: &Fixture, args: &[&str]) -> Output {
    towerlab_on(fx, &fx.db, args)
}

fn towerlab_on(fx: &Fixture, db: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_towerlab"))
        .args(args)
        .arg("--db")
        .arg(db)
        .current_dir(&fx.root)
        .env_remove("TOWERLAB_DB")
        .env("HF_HUB_OFFLINE", "1")
        .output()
        .unwrap()
}

fn ok(out: &Output, what: &str) -> String {
    testkit::towerlab::success_stdout(out, what)
}

/// A tiny experiment of one cell per task, trained for a few steps on the synthetic data.
fn experiment(task: &str, data: &Path) -> String {
    let extra = match task {
        "vqa" => {
            "train_tables = [\"vqav2_train\"]\nval_tables = [\"vqav2_val\"]\n\
             test_tables = [\"vqav2_test\"]\nvqav2_label_size = 21\n"
        }
        "irtr" => "get_recall_metric = true\nk_test = 8\n",
        _ => "",
    };
    format!(
        "name = \"eval-{task}\"\ntask = \"{task}\"\n[data]\nroot = \"{}\"\n[base]\n\
         preset = \"tiny\"\ndevice = \"cpu\"\nnum_workers = 0\nbatch_size = 8\n\
         per_gpu_batchsize = 8\nper_gpu_eval_batchsize = 16\nmax_steps = 3\nmax_epoch = 1\n\
         {extra}[grid]\nmanager_type = [\"AAUE\"]\n[metric]\nname = \"val/the_metric\"\n\
         goal = \"maximize\"\n",
        data.display()
    )
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

/// The training run of experiment `name`: its step folder and its metrics at the last step.
fn trained(fx: &Fixture, name: &str) -> (PathBuf, BTreeMap<String, f64>) {
    runtime().block_on(async {
        let store = Store::open(&fx.db).await.unwrap();
        let exp = store.experiment_by_name(name).await.unwrap().unwrap();
        let runs = store
            .list_runs(&RunFilter {
                experiment: Some(exp.id),
                ..RunFilter::default()
            })
            .await
            .unwrap();
        let run = &runs[0];
        let step = run.checkpoint_step.unwrap();
        let summaries = store.summaries(run.id).await.unwrap();
        let last: BTreeMap<String, f64> = summaries
            .into_iter()
            .filter(|s| s.last_step == Some(step))
            .filter_map(|s| Some((s.key, s.last?)))
            .collect();
        let dir = fx
            .db
            .parent()
            .unwrap()
            .join("runs")
            .join(&run.hash[..12])
            .join("checkpoints")
            .join(format!("step-{step}"));
        store.close().await;
        (dir, last)
    })
}

/// Runs of the experiment `eval` in the store `db`.
fn eval_runs(db: &Path) -> usize {
    if !db.exists() {
        return 0;
    }
    runtime().block_on(async {
        let store = Store::open(db).await.unwrap();
        let n = match store.experiment_by_name("eval").await.unwrap() {
            Some(exp) => store
                .list_runs(&RunFilter {
                    experiment: Some(exp.id),
                    ..RunFilter::default()
                })
                .await
                .unwrap()
                .len(),
            None => 0,
        };
        store.close().await;
        n
    })
}

/// Runs with this identity in the fixture's store.
fn runs_with_hash(fx: &Fixture, hash: &str) -> usize {
    runtime().block_on(async {
        let store = Store::open(&fx.db).await.unwrap();
        let n = store.runs_by_hash(&[hash.to_string()]).await.unwrap().len();
        store.close().await;
        n
    })
}

/// `towerlab eval --json` with the training runs' thread count (CPU sums depend on it).
fn eval_json(fx: &Fixture, args: &[&str]) -> BTreeMap<String, f64> {
    let mut all = vec!["eval", "--json", "--threads", "2"];
    all.extend_from_slice(args);
    let out = towerlab(fx, &all);
    let stdout = ok(&out, &format!("eval {args:?}"));
    serde_json::from_str(&stdout).unwrap_or_else(|e| panic!("{e}: {stdout}"))
}

/// Synthetic data and one trained run per task, shared by the tests of this file.
fn fixture() -> &'static Fixture {
    static FX: OnceLock<Fixture> = OnceLock::new();
    FX.get_or_init(|| {
        let root = Path::new(env!("CARGO_TARGET_TMPDIR")).join("eval_cli");
        let _ = std::fs::remove_dir_all(&root);
        std::fs::create_dir_all(&root).unwrap();
        let fx = Fixture {
            data: root.join("data"),
            db: root.join("store").join("towerlab.db"),
            root,
        };
        let data = fx.data.to_str().unwrap().to_string();
        ok(
            &towerlab(&fx, &["data", "synth", "--out", &data, "--size", "small"]),
            "data synth",
        );
        for task in ["vqa", "nlvr2", "snli", "irtr"] {
            let file = fx.root.join(format!("{task}.toml"));
            std::fs::write(&file, experiment(task, &fx.data)).unwrap();
            ok(
                &towerlab(&fx, &["run", file.to_str().unwrap(), "--threads", "2"]),
                &format!("training {task}"),
            );
        }
        fx
    })
}

/// Every metric the eval reports equals the training run's last logged value, bit for bit.
fn assert_reproduces(task: &str, scored: &BTreeMap<String, f64>, logged: &BTreeMap<String, f64>) {
    assert!(scored.contains_key("val/the_metric"), "{task}: {scored:?}");
    for (k, v) in scored {
        let want = logged
            .get(k)
            .unwrap_or_else(|| panic!("{task}: {k} was not logged by the run: {logged:?}"));
        assert_eq!(
            v.to_bits(),
            want.to_bits(),
            "{task}: {k}: eval {v}, training {want}"
        );
    }
}

#[test]
fn eval_of_a_training_checkpoint_reproduces_its_last_validation() {
    let fx = fixture();
    for (task, must) in [
        ("vqa", &["val/vqa/score_epoch", "val/vqa/loss_epoch"][..]),
        (
            "nlvr2",
            &["val/nlvr2/accuracy_epoch", "test/nlvr2/accuracy_epoch"][..],
        ),
        (
            "snli",
            &["val/snli/accuracy_epoch", "test/snli/accuracy_epoch"][..],
        ),
        (
            "irtr",
            &[
                "val/ir_r1",
                "val/ir_r5",
                "val/ir_r10",
                "val/tr_r1",
                "val/tr_r5",
                "val/tr_r10",
                "val/r_mean",
                "val/irtr_itm/accuracy_epoch",
            ][..],
        ),
    ] {
        let (ckpt, logged) = trained(fx, &format!("eval-{task}"));
        let scored = eval_json(fx, &["--weights", ckpt.to_str().unwrap(), "--task", task]);
        for k in must {
            assert!(scored.contains_key(*k), "{task}: no {k} in {scored:?}");
        }
        assert_reproduces(task, &scored, &logged);
        // Scoring it again runs nothing and prints the stored result.
        let out = towerlab(
            fx,
            &["eval", "--weights", ckpt.to_str().unwrap(), "--task", task],
        );
        let text = ok(&out, "eval again");
        assert!(String::from_utf8_lossy(&out.stderr).contains("already scored"));
        let hash = text
            .lines()
            .find_map(|l| l.split_once('[').and_then(|(_, r)| r.split_once(']')))
            .map(|(h, _)| h.to_string())
            .unwrap_or_else(|| panic!("no run line: {text}"));
        let full = runtime().block_on(async {
            let store = Store::open(&fx.db).await.unwrap();
            let all = store.list_runs(&RunFilter::default()).await.unwrap();
            store.close().await;
            all.into_iter()
                .find(|r| r.hash.starts_with(&hash))
                .unwrap()
                .hash
        });
        assert_eq!(runs_with_hash(fx, &full), 1, "{task}: scored twice");
        // It is a run like any other: `show` names what it scored.
        let shown = ok(&towerlab(fx, &["show", &hash]), "show");
        assert!(
            shown.contains("scores      ") && shown.contains("(val split)"),
            "{shown}"
        );
        assert!(shown.contains("val/the_metric"), "{shown}");
    }
}

#[test]
fn a_reference_layout_ckpt_scores_the_same() {
    let fx = fixture();
    let (step, logged) = trained(fx, "eval-vqa");
    let ckpt = fx.root.join("converted_vqa.ckpt");
    ok(
        &towerlab(
            fx,
            &[
                "model",
                "convert",
                step.join("model.safetensors").to_str().unwrap(),
                "--output",
                ckpt.to_str().unwrap(),
            ],
        ),
        "model convert",
    );
    // Not a TowerLab checkpoint: the tiny preset, the data, and the training run's tables;
    // the sizes and the answer count are read from the weights.
    let scored = eval_json(
        fx,
        &[
            "--weights",
            ckpt.to_str().unwrap(),
            "--task",
            "vqa",
            "--preset",
            "tiny",
            "--data",
            fx.data.to_str().unwrap(),
            "--set",
            "train_tables=vqav2_train",
            "--set",
            "val_tables=vqav2_val",
            "--set",
            "per_gpu_eval_batchsize=16",
            "--set",
            "device=cpu",
        ],
    );
    assert_reproduces("vqa (.ckpt)", &scored, &logged);
}

#[test]
fn vqa_test_split_writes_the_submission_file() {
    let fx = fixture();
    let (step, _) = trained(fx, "eval-vqa");
    let out = towerlab(
        fx,
        &[
            "eval",
            "--weights",
            step.to_str().unwrap(),
            "--task",
            "vqa",
            "--split",
            "test",
            "--threads",
            "2",
        ],
    );
    let text = ok(&out, "eval --split test");
    let path = text
        .lines()
        .find_map(|l| l.strip_prefix("answers:"))
        .unwrap_or_else(|| panic!("no answers line: {text}"))
        .trim()
        .to_string();
    let answers: Vec<serde_json::Value> =
        serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    assert!(!answers.is_empty());
    assert!(answers[0].get("question_id").is_some() && answers[0].get("answer").is_some());
}

#[test]
fn an_experiment_file_holds_an_eval_cell_beside_its_grid() {
    let fx = fixture();
    let (step, logged) = trained(fx, "eval-snli");
    let file = fx.root.join("table.toml");
    let src = experiment("snli", &fx.data)
        .replace("eval-snli", "table-snli")
        .replace("manager_type = [\"AAUE\"]", "manager_type = [\"SAUE\"]")
        + &format!(
            "[[eval]]\nname = \"aaue-checkpoint\"\nweights = \"{}\"\nmanager_type = \"AAUE\"\n",
            step.display()
        );
    std::fs::write(&file, src).unwrap();
    let plan = ok(
        &towerlab(fx, &["plan", file.to_str().unwrap(), "--json"]),
        "plan",
    );
    let cells: Vec<serde_json::Value> = serde_json::from_str(&plan).unwrap();
    assert_eq!(cells.len(), 2);
    assert_eq!(cells[1]["role"], "eval");
    assert_eq!(cells[1]["key"], "eval[aaue-checkpoint]");
    let text = ok(
        &towerlab(fx, &["run", file.to_str().unwrap(), "--threads", "2"]),
        "run",
    );
    // The results table has both rows; the eval row holds the checkpoint's score.
    let row = text
        .lines()
        .find(|l| l.starts_with("eval[aaue-checkpoint]"))
        .unwrap_or_else(|| panic!("no eval row: {text}"));
    let want = format!("{:.4}", logged["val/the_metric"]);
    assert!(row.contains(&want), "{row} should show {want}");
    assert!(
        text.lines().any(|l| l.starts_with("manager_type=SAUE")),
        "{text}"
    );
}

#[test]
fn bad_checkpoints_are_one_message_and_store_nothing() {
    let fx = fixture();
    let (vqa_step, _) = trained(fx, "eval-vqa");
    let garbage = fx.root.join("garbage.ckpt");
    std::fs::write(&garbage, b"not a checkpoint at all").unwrap();
    // A store of its own, so that the other tests' evals do not count.
    let db = fx.root.join("bad").join("towerlab.db");
    let cases: Vec<(Vec<String>, &str)> = vec![
        (
            vec!["--weights".into(), garbage.display().to_string()],
            "garbage.ckpt",
        ),
        (
            vec![
                "--weights".into(),
                fx.root.join("nowhere.ckpt").display().to_string(),
            ],
            "no such file",
        ),
        // A VQA checkpoint has no SNLI-VE head.
        (
            vec![
                "--weights".into(),
                vqa_step.display().to_string(),
                "--task".into(),
                "snli".into(),
            ],
            "no snli head",
        ),
        (
            vec![
                "--weights".into(),
                vqa_step.display().to_string(),
                "--split".into(),
                "dev".into(),
            ],
            "--split expects val or test",
        ),
    ];
    for (args, want) in cases {
        let mut all: Vec<&str> = vec!["eval"];
        all.extend(args.iter().map(String::as_str));
        if !args.iter().any(|a| a == "--task") {
            all.extend(["--task", "vqa"]);
        }
        all.extend(["--data", fx.data.to_str().unwrap()]);
        let out = towerlab_on(fx, &db, &all);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{all:?} succeeded");
        assert!(stderr.contains(want), "{all:?}: {stderr}");
        // One error line (a warning may say where the settings came from).
        let lines: Vec<&str> = stderr
            .lines()
            .filter(|l| !l.starts_with("warning: "))
            .collect();
        assert_eq!(lines.len(), 1, "{all:?}: {stderr}");
        assert!(lines[0].starts_with("error: "), "{all:?}: {stderr}");
        assert!(!stderr.contains("panicked"), "{stderr}");
    }
    assert_eq!(eval_runs(&db), 0, "a bad eval stored a run");
}
