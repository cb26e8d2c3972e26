//! `towerlab sync wandb` as a user runs it.

use std::process::Command;

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
