//! `towerlab sync wandb` as a user runs it.

use std::process::Command;

use serde_json::json;
use testkit::wandb_server::TestServer;

fn towerlab() -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_towerlab"));
    for var in [
        "WANDB_API_KEY",
        "WANDB_MODE",
        "WANDB_BASE_URL",
        "WANDB_ENTITY",
        "WANDB_PROJECT",
    ] {
        cmd.env_remove(var);
    }
    cmd
}

#[test]
fn sync_wandb_help_lists_the_flags() {
    let out = towerlab()
        .args(["sync", "wandb", "--help"])
        .output()
        .unwrap();
    assert!(out.status.success());
    let text = String::from_utf8_lossy(&out.stdout);
    for flag in [
        "--experiment",
        "--run",
        "--project",
        "--entity",
        "--dry-run",
        "WANDB_API_KEY",
    ] {
        assert!(text.contains(flag), "{flag} missing in: {text}");
    }
}

#[test]
fn offline_and_disabled_modes_sync_nothing_and_say_so() {
    let dir = tempfile::tempdir().unwrap();
    for mode in ["offline", "disabled"] {
        let out = towerlab()
            .args(["sync", "wandb", "--db"])
            .arg(dir.path().join("t.db"))
            .env("WANDB_MODE", mode)
            .env("WANDB_API_KEY", "tl-cli-secret-key")
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(out.status.success(), "{text}");
        assert!(
            text.contains(&format!("WANDB_MODE={mode}: nothing synced")),
            "{text}"
        );
        assert!(!text.contains("tl-cli-secret-key"));
    }
}

#[test]
fn a_bad_mode_is_one_clear_error() {
    let out = towerlab()
        .args(["sync", "wandb"])
        .env("WANDB_MODE", "sometimes")
        .output()
        .unwrap();
    assert!(!out.status.success());
    let text = String::from_utf8_lossy(&out.stderr);
    assert!(
        text.contains("WANDB_MODE") && text.contains("online, offline or disabled"),
        "{text}"
    );
}

#[test]
fn a_missing_store_is_one_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("none.db");
    let out = towerlab()
        .args(["sync", "wandb", "--db"])
        .arg(&db)
        .env("WANDB_API_KEY", "tl-cli-secret-key")
        .output()
        .unwrap();
    assert!(!out.status.success());
    let text = String::from_utf8_lossy(&out.stderr);
    assert!(
        text.contains("no store at") && text.contains("none.db"),
        "{text}"
    );
    assert!(!text.contains("tl-cli-secret-key"));
    assert!(!db.exists(), "sync must not create a store");
}

/// A store with `n` finished runs of one experiment.
fn store_with_runs(db: &std::path::Path, n: i64) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let store = store::Store::open(db).await.unwrap();
        let exp = store
            .upsert_experiment("study", "study.toml", "h")
            .await
            .unwrap();
        let runs: Vec<store::NewRun> = (0..n)
            .map(|seed| store::NewRun {
                // Distinct leading digits: the W&B id is taken from the hash's start.
                hash: format!("{seed:x}{}", "0".repeat(63)),
                cell_key: "manager_type=AAUE".into(),
                axes: serde_json::from_value(json!({"manager_type": "AAUE", "seed": seed}))
                    .unwrap(),
                task: "vqa".into(),
                params: vec![],
                depends_on: None,
            })
            .collect();
        store.create_runs(exp.id, &runs).await.unwrap();
        let worker = store::WorkerInfo::this_process("cpu", "test");
        while let Some(claim) = store.claim(&worker, Some(exp.id)).await.unwrap() {
            store.finish(&claim.lease).await.unwrap();
        }
        store.close().await;
    });
}

#[test]
fn with_no_entity_anywhere_one_plain_message_says_how_to_set_it() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("t.db");
    store_with_runs(&db, 3);
    let key = "tl-entity-test-key-0123456789abcdef0123";
    let server = TestServer::start(key);
    server.state().no_default_entity = true;
    // Piped, not a terminal: no colours.
    let out = towerlab()
        .args(["sync", "wandb", "--db"])
        .arg(&db)
        .env("WANDB_BASE_URL", &server.base_url)
        .env("WANDB_API_KEY", key)
        .env("NETRC", "/nonexistent")
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{stdout}\n{stderr}");
    let all = format!("{stdout}{stderr}");
    assert_eq!(all.matches("WANDB_ENTITY").count(), 1, "said once: {all}");
    assert!(all.contains("export WANDB_ENTITY=<user or team>"), "{all}");
    assert!(!all.contains('\u{1b}'), "no ANSI codes when piped: {all:?}");
    // Stopped at the first run: the others were not tried, so nothing is half-synced.
    assert!(
        server.state().requests.len() <= 3,
        "{:?}",
        server.state().requests.len()
    );

    // With the entity set, the same sync goes through.
    let out = towerlab()
        .args(["sync", "wandb", "--db"])
        .arg(&db)
        .env("WANDB_BASE_URL", &server.base_url)
        .env("WANDB_API_KEY", key)
        .env("WANDB_ENTITY", "my-lab")
        .env("NETRC", "/nonexistent")
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("3 created"), "{stdout}");
}
