//! The demo ablation synced to a W&B-compatible test server by the real binary: `towerlab run`
//! with the demo file's `[wandb]` section turned on (`live = true`) streams all six runs while
//! they train, through injected faults; a later `towerlab sync wandb` sends nothing new; the key
//! is nowhere in the store or the output.

use app::wandb;
use std::collections::BTreeSet;
use std::process::{Command, Output};

use testkit::wandb_server::{Fault, TestServer};

const KEY: &str = "tl-demo-KEY-0123456789abcdef0123456789ab";
const STEPS: u64 = 8;

fn towerlab(server: &TestServer, db: &std::path::Path) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_towerlab"));
    for (var, _) in std::env::vars() {
        if var.starts_with("WANDB_") || var.starts_with("TOWERLAB_") {
            cmd.env_remove(var);
        }
    }
    cmd.env("WANDB_BASE_URL", &server.base_url)
        .env("WANDB_API_KEY", KEY)
        .env("NETRC", "/nonexistent")
        .arg("--db")
        .arg(db);
    cmd
}

fn ok(out: &Output, what: &str) -> String {
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{what} failed:\n{stdout}\n{stderr}");
    assert!(
        !stdout.contains(KEY) && !stderr.contains(KEY),
        "{what} printed the key"
    );
    stdout
}

/// The embedded demo, with its W&B section on, live, on a short schedule and a temporary data
/// folder.
fn demo_file(dir: &std::path::Path) -> String {
    let text = include_str!("../../experiments/demo.toml");
    let replaced = text
        .replace(
            "root = \"data/demo\"",
            &format!("root = {:?}", dir.join("data")),
        )
        .replace("max_steps = 500", &format!("max_steps = {STEPS}"))
        .replace("val_check_steps = 50", "val_check_steps = 4")
        .replace("enabled = false", "enabled = true")
        .replace("live = false", "live = true");
    for needle in [
        "enabled = true",
        "live = true",
        "max_steps = 8",
        "val_check_steps = 4",
    ] {
        assert!(replaced.contains(needle), "demo.toml changed: {needle}");
    }
    replaced
}

#[test]
fn the_demo_ablation_syncs_live_once_and_a_second_sync_sends_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("towerlab.db");
    std::fs::write(dir.path().join("demo.toml"), demo_file(dir.path())).unwrap();
    let server = TestServer::start(KEY);
    // The first requests fail: the live sync retries and catches up.
    server.inject([
        Fault::Status(500),
        Fault::Reset,
        Fault::Pass,
        Fault::Status(503),
    ]);

    let out = towerlab(&server, &db)
        .arg("run")
        .arg(dir.path().join("demo.toml"))
        .output()
        .unwrap();
    let stdout = ok(&out, "towerlab run");
    assert!(
        stdout.contains("W&B live sync (project towerlab-demo)"),
        "{stdout}"
    );

    {
        let state = server.state();
        assert_eq!(state.runs.len(), 6, "one W&B run per grid cell");
        let mut groups = BTreeSet::new();
        for run in state.runs.values() {
            assert_eq!(run.project, "towerlab-demo");
            assert_eq!(run.exit_code, Some(0), "run {} completed", run.name);
            let upsert = run.upserts.last().unwrap();
            groups.insert(upsert["groupName"].as_str().unwrap_or_default().to_owned());
            // W&B keeps one value per key: no line may repeat one (the manager weights of
            // SAUE/AAUE runs carry the cross-modal weight under its own name).
            for line in run.lines(wandb::encode::HISTORY_FILE) {
                assert_eq!(
                    wandb::encode::repeated_keys(&line),
                    Ok(vec![]),
                    "run {}: {line}",
                    run.name
                );
            }
            let history = run.history();
            let steps: Vec<u64> = history
                .iter()
                .map(|h| h["_step"].as_u64().unwrap())
                .collect();
            let unique: BTreeSet<u64> = steps.iter().copied().collect();
            assert_eq!(
                unique.len(),
                steps.len(),
                "run {}: a step sent twice",
                run.name
            );
            let loss_steps: Vec<u64> = history
                .iter()
                .filter(|h| h.get("train/vqa/loss").is_some())
                .map(|h| h["_step"].as_u64().unwrap())
                .collect();
            assert_eq!(
                loss_steps,
                (1..=STEPS).collect::<Vec<_>>(),
                "run {}",
                run.name
            );
            assert!(
                history
                    .iter()
                    .any(|h| h.get("val/vqa/score_epoch").is_some()),
                "run {}: no evaluation in the history",
                run.name
            );
        }
        assert_eq!(groups.len(), 3, "one group per manager type: {groups:?}");
    }

    let history_writes = server.state().history_writes;
    let out = towerlab(&server, &db)
        .args([
            "sync",
            "wandb",
            "--experiment",
            "demo",
            "--project",
            "towerlab-demo",
        ])
        .output()
        .unwrap();
    let stdout = ok(&out, "towerlab sync wandb");
    assert!(
        stdout.contains("0 created, 0 updated, 6 unchanged, 0 failed; 0 history lines"),
        "{stdout}"
    );
    assert_eq!(server.state().history_writes, history_writes);

    for entry in std::fs::read_dir(dir.path()).unwrap() {
        let path = entry.unwrap().path();
        if path.is_file() {
            let bytes = std::fs::read(&path).unwrap();
            assert!(
                !bytes.windows(KEY.len()).any(|w| w == KEY.as_bytes()),
                "the key is in {}",
                path.display()
            );
        }
    }
}
