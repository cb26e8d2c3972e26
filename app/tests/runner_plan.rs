//! `plan`, `queue`, validation and the listing commands end to end, through the real binary on
//! a temporary store (no training needed: run states are set through the store's own API).

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use store::{FailureClass, RetryPolicy, RunFilter, RunStatus, Store, WorkerInfo};
use testkit::towerlab::runtime as rt;

const EXPERIMENT: &str = r#"
name = "plan-test"
task = "vqa"

[data]
root = "DATA"

[base]
preset = "tiny"
max_steps = 4
learning_rate = 1e-3

[grid]
manager_type = ["BT", "SAUE"]
seeds = [0, 1]

[metric]
name = "val/vqa/score_epoch"
goal = "maximize"
"#;

struct Env {
    dir: tempfile::TempDir,
}

/// The tables the test grids read (VQA's and pre-training's reference tables): `plan` and
/// `queue` check that they exist, nothing here reads them.
const TABLES: [&str; 9] = [
    "vqav2_train_fix",
    "vqav2_val_fix",
    "vqav2_test",
    "coco_caption_karpathy_train",
    "coco_caption_karpathy_restval",
    "coco_caption_karpathy_test",
    "vg",
    "sbu_0",
    "conceptual_caption_train_0",
];

impl Env {
    fn new(src: &str) -> Self {
        let env = Self::without_data(src);
        let data = env.dir.path().join("data");
        std::fs::create_dir_all(&data).unwrap();
        for t in TABLES {
            std::fs::write(data.join(format!("{t}.arrow")), b"").unwrap();
        }
        env
    }

    fn without_data(src: &str) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let data = dir.path().join("data");
        std::fs::write(
            dir.path().join("exp.toml"),
            src.replace("DATA", &data.display().to_string()),
        )
        .unwrap();
        Self { dir }
    }

    fn db(&self) -> PathBuf {
        self.dir.path().join("store").join("towerlab.db")
    }

    fn file(&self) -> PathBuf {
        self.dir.path().join("exp.toml")
    }

    fn towerlab(&self, args: &[&str]) -> Output {
        Command::new(env!("CARGO_BIN_EXE_towerlab"))
            .args(args)
            .arg("--db")
            .arg(self.db())
            .current_dir(self.dir.path())
            .env_remove("TOWERLAB_DB")
            .output()
            .unwrap()
    }

    fn ok(&self, args: &[&str]) -> String {
        testkit::towerlab::success_stdout(&self.towerlab(args), &format!("towerlab {args:?}"))
    }
}

fn path(p: &Path) -> &str {
    p.to_str().unwrap()
}

/// Lines of a rendered plan that describe cells with `state`.
fn count_state(plan: &str, state: &str) -> usize {
    plan.lines()
        .filter(|l| l.split_whitespace().next() == Some(state))
        .count()
}

#[test]
fn plan_on_an_empty_store_shows_every_cell_new_and_creates_nothing() {
    let env = Env::new(EXPERIMENT);
    let plan = env.ok(&["plan", path(&env.file())]);
    assert_eq!(count_state(&plan, "new"), 4, "{plan}");
    assert!(plan.contains("4 new, 0 stale"), "{plan}");
    assert!(!env.db().exists(), "plan must not create a store");
}

#[test]
fn queue_adds_missing_cells_once_and_plan_follows_the_store() {
    let env = Env::new(EXPERIMENT);
    let first = env.ok(&["queue", path(&env.file())]);
    assert!(first.contains("queued 4 run(s)"), "{first}");
    let again = env.ok(&["queue", path(&env.file())]);
    assert!(again.contains("nothing to queue"), "{again}");

    let plan = env.ok(&["plan", path(&env.file())]);
    assert_eq!(count_state(&plan, "queued"), 4, "{plan}");

    // Drive runs through the store: one finished, one failed for good, one running.
    rt().block_on(async {
        let store = Store::open(env.db()).await.unwrap();
        let w = WorkerInfo::this_process("cpu", "test");
        let a = store.claim(&w, None).await.unwrap().unwrap();
        store.finish(&a.lease).await.unwrap();
        let b = store.claim(&w, None).await.unwrap().unwrap();
        store
            .fail(
                &b.lease,
                FailureClass::Nan,
                "loss is NaN",
                &RetryPolicy::never(),
            )
            .await
            .unwrap();
        store.claim(&w, None).await.unwrap().unwrap();
        store.close().await;
    });
    let plan = env.ok(&["plan", path(&env.file())]);
    for state in ["done", "failed", "running", "queued"] {
        assert_eq!(count_state(&plan, state), 1, "{state}: {plan}");
    }
    let again = env.ok(&["queue", path(&env.file())]);
    assert!(again.contains("nothing to queue"), "{again}");
    assert!(again.contains("1 cell(s) failed"), "{again}");

    // A changed setting makes every cell stale, and the plan says what changed.
    let plan = env.ok(&["plan", path(&env.file()), "--set", "learning_rate=0.002"]);
    assert_eq!(count_state(&plan, "stale"), 4, "{plan}");
    assert!(plan.contains("learning_rate: 0.001 → 0.002"), "{plan}");
    let q = env.ok(&["queue", path(&env.file()), "--set", "learning_rate=0.002"]);
    assert!(q.contains("queued 4 run(s)"), "{q}");
    // The old run still queued would run stale settings: it is cancelled.
    assert!(
        q.contains("cancelled 1 queued run(s) of the old settings"),
        "{q}"
    );

    let ls = env.ok(&["ls", "--status", "queued"]);
    assert!(ls.contains("4 run(s)"), "{ls}");
    let ls = env.ok(&["ls", "manager_type=SAUE", "--experiment", "plan-test"]);
    assert!(ls.contains("4 run(s)"), "{ls}");
    let failed = env.ok(&["ls", "--status", "failed"]);
    assert!(failed.contains("nan"), "{failed}");
}

#[test]
fn cancel_retry_show_and_export_work_on_stored_runs() {
    let env = Env::new(EXPERIMENT);
    env.ok(&["queue", path(&env.file())]);
    let out = env.ok(&["cancel", "1", "2"]);
    assert_eq!(out.matches(": cancelled").count(), 2, "{out}");
    let out = env.ok(&["retry", "--failed"]);
    assert!(out.contains("2 run(s) re-queued"), "{out}");
    let shown = env.ok(&["show", "1"]);
    assert!(shown.contains("status      queued"), "{shown}");
    assert!(shown.contains("manager_type = \"BT\""), "{shown}");

    rt().block_on(async {
        let store = Store::open(env.db()).await.unwrap();
        let points: Vec<store::MetricPoint> = (1..=3)
            .map(|s| store::MetricPoint {
                key: "train/loss".into(),
                step: s,
                value: 1.0 / s as f64,
                wall_ms: 1000 * s,
            })
            .collect();
        store
            .ingest_metrics(store::RunId(1), &points)
            .await
            .unwrap();
        store.close().await;
    });
    // The output folder is made; every row says which run, cell, axes and seed it is.
    let csv = env.dir.path().join("exports").join("m.csv");
    let out = env.ok(&[
        "export",
        "--run",
        "1",
        "--format",
        "csv",
        "--out",
        path(&csv),
    ]);
    assert!(out.contains("wrote 3 metric point(s)"), "{out}");
    let text = std::fs::read_to_string(&csv).unwrap();
    assert_eq!(
        text.lines().next(),
        Some("experiment,cell,manager_type,seed,identity,run,key,step,value,time")
    );
    let line = text.lines().nth(1).unwrap();
    assert!(
        line.starts_with("plan-test,manager_type=BT,BT,0,")
            && line.ends_with(",1,train/loss,1,1,1000"),
        "{line}"
    );

    // `show` prints dates, and says what an identity prefix needs.
    let shown = env.ok(&["show", "1"]);
    assert!(shown.contains(" UTC"), "{shown}");
    assert!(!shown.contains("since epoch"), "{shown}");
    let out = env.towerlab(&["show", "ab"]);
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("at least 4 hex characters"), "{err}");
}

#[test]
fn missing_tables_are_named_before_anything_is_stored() {
    let env = Env::without_data(EXPERIMENT);
    for cmd in ["plan", "queue", "run"] {
        let out = env.towerlab(&[cmd, path(&env.file())]);
        assert_eq!(out.status.code(), Some(2), "{cmd}");
        let err = String::from_utf8_lossy(&out.stderr);
        let table = env.dir.path().join("data").join("vqav2_train_fix.arrow");
        assert!(
            err.contains(&format!("{} (train tables of 4 run(s))", table.display())),
            "{cmd}: {err}"
        );
        assert!(
            err.contains("vqav2_val_fix.arrow (train and val tables"),
            "{cmd}: {err}"
        );
        assert!(err.contains("towerlab data synth --out"), "{cmd}: {err}");
        assert!(!env.db().exists(), "{cmd} stored something");
    }

    // A relative data root is read from the working directory: from another one the tables
    // are missing, and the message says where it looked.
    let env = Env::new(&EXPERIMENT.replace("root = \"DATA\"", "root = \"data\""));
    env.ok(&["plan", path(&env.file())]);
    let elsewhere = tempfile::tempdir().unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_towerlab"))
        .args(["plan", path(&env.file()), "--db"])
        .arg(env.db())
        .current_dir(elsewhere.path())
        .env_remove("TOWERLAB_DB")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("data/vqav2_train_fix.arrow"), "{err}");
    assert!(
        err.contains("data_root \"data\" is relative to the working directory"),
        "{err}"
    );
}

#[test]
fn the_cli_tells_the_truth_about_states_axes_and_presets() {
    let env = Env::new(EXPERIMENT);
    env.ok(&["queue", path(&env.file())]);
    rt().block_on(async {
        let store = Store::open(env.db()).await.unwrap();
        let w = WorkerInfo::this_process("cpu", "test");
        let a = store.claim(&w, None).await.unwrap().unwrap();
        store.finish(&a.lease).await.unwrap();
        store.close().await;
    });
    // A cancelled run is cancelled everywhere.
    env.ok(&["cancel", "2"]);
    let plan = env.ok(&["plan", path(&env.file())]);
    assert_eq!(count_state(&plan, "cancelled"), 1, "{plan}");
    assert_eq!(count_state(&plan, "failed"), 0, "{plan}");
    let ls = env.ok(&["ls", "--status", "cancelled"]);
    assert!(ls.contains("1 run(s)"), "{ls}");

    // `done`, as plan says, lists the finished runs.
    let ls = env.ok(&["ls", "-s", "done"]);
    assert!(ls.contains("1 run(s)") && ls.contains("finished"), "{ls}");
    let out = env.towerlab(&["ls", "-s", "stale"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("a plan state"));

    // An axis no run has, or a value no run has, is an error; letter case does not matter.
    let out = env.towerlab(&["ls", "foo=bar"]);
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("no run has an axis `foo`; the axes are: manager_type, seed"),
        "{err}"
    );
    let out = env.towerlab(&["ls", "manager_type=XAUE"]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("no run has manager_type=XAUE; its values are: BT, SAUE"),
        "{err}"
    );
    let ls = env.ok(&["ls", "manager_type=saue"]);
    assert!(ls.contains("2 run(s)"), "{ls}");

    // The preset can come from a flag or a variable, like the file's.
    let src = EXPERIMENT.replace("preset = \"tiny\"\n", "");
    let env = Env::new(&src);
    let plan = env.ok(&["plan", path(&env.file()), "--set", "preset=tiny"]);
    assert!(plan.contains("4 new"), "{plan}");
    let base = env.ok(&["plan", path(&env.file())]);
    let first_id = |p: &str| {
        p.lines()
            .nth(2)
            .unwrap()
            .split_whitespace()
            .nth(1)
            .unwrap()
            .to_string()
    };
    assert_ne!(
        first_id(&plan),
        first_id(&base),
        "tiny is another model than base"
    );
    let out = Command::new(env!("CARGO_BIN_EXE_towerlab"))
        .args(["plan", path(&env.file())])
        .arg("--db")
        .arg(env.db())
        .env("TOWERLAB_PRESET", "tiny")
        .output()
        .unwrap();
    assert_eq!(
        first_id(&String::from_utf8_lossy(&out.stdout)),
        first_id(&plan)
    );
}

#[test]
fn validation_errors_exit_2_list_every_problem_and_store_nothing() {
    let bad = EXPERIMENT
        .replace("max_steps = 4", "max_steps = \"four\"\nlearnin_rate = 1")
        .replace("[\"BT\", \"SAUE\"]", "[\"BT\", \"XYZ\"]");
    let env = Env::new(&bad);
    for cmd in ["queue", "run", "plan"] {
        let out = env.towerlab(&[cmd, path(&env.file())]);
        assert_eq!(out.status.code(), Some(2), "{cmd}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains("max_steps"), "{cmd}: {err}");
        assert!(err.contains("learnin_rate"), "{cmd}: {err}");
        assert!(err.contains("XYZ"), "{cmd}: {err}");
        assert!(!env.db().exists(), "{cmd} stored something");
    }
    let out = env.towerlab(&["queue", path(&env.file()), "--set", "no_such_key=1"]);
    assert_eq!(out.status.code(), Some(2));
}

#[test]
fn vlp_cells_depend_on_one_pretraining_run_queued_once() {
    let src = EXPERIMENT.replace("seeds = [0, 1]", "vlp = [true]\nseeds = [0, 1]");
    let env = Env::new(&src);
    let out = env.ok(&["queue", path(&env.file())]);
    assert!(out.contains("queued 6 run(s)"), "{out}");
    rt().block_on(async {
        let store = Store::open(env.db()).await.unwrap();
        let runs = store.list_runs(&RunFilter::default()).await.unwrap();
        let pre: Vec<_> = runs.iter().filter(|r| r.task == "pretrain").collect();
        assert_eq!(pre.len(), 2, "one pre-training run per model");
        for r in runs.iter().filter(|r| r.task == "vqa") {
            let dep = r.depends_on.expect("fine-tuning depends on pre-training");
            assert!(pre.iter().any(|p| p.id == dep));
        }
        // Only the pre-training runs are claimable until they finish.
        let w = WorkerInfo::this_process("cpu", "test");
        let a = store.claim(&w, None).await.unwrap().unwrap();
        assert_eq!(a.run.task, "pretrain");
        assert_eq!(a.run.status, RunStatus::Running);
        store.close().await;
    });
}
