//! The `towerlab` binary as a user runs it.

use std::process::Command;

fn towerlab() -> Command {
    Command::new(env!("CARGO_BIN_EXE_towerlab"))
}

#[test]
fn help_lists_the_subcommands() {
    let out = towerlab().arg("--help").output().unwrap();
    assert!(out.status.success());
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("doctor"), "{text}");
    assert!(text.contains("model"), "{text}");
}

#[test]
fn doctor_reports_libtorch_and_cpu_only() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("t.db");
    let out = towerlab()
        .args(["doctor", "--db"])
        .arg(&db)
        .env_remove("LD_LIBRARY_PATH")
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(text.contains("libtorch:  2.11.0"), "{text}");
    assert!(text.contains(&db.display().to_string()), "{text}");
    // A libtorch with a CUDA backend (the wheel's) must have it loaded, even without a GPU.
    assert!(text.contains("  CUDA backend: "), "{text}");
    assert!(!text.contains("NOT LOADED"), "{text}");
    // This machine (and CI) has no GPU.
    if !std::path::Path::new("/dev/nvidia0").exists() {
        assert!(text.contains("CPU only"), "{text}");
    }
}

#[test]
fn unknown_subcommand_is_one_line_and_nonzero() {
    let out = towerlab().arg("frobnicate").output().unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stdout).is_empty());
}

/// Output piped into a reader that stops early (`towerlab plan --settings F | head`) ends the
/// command quietly by SIGPIPE, as any Unix tool does, never with a panic and a backtrace.
#[test]
fn a_reader_that_stops_early_ends_the_output_quietly() {
    use std::os::unix::process::ExitStatusExt as _;
    use std::process::Stdio;
    let exp = concat!(env!("CARGO_MANIFEST_DIR"), "/../experiments/demo.toml");
    let dir = tempfile::tempdir().unwrap();
    let mut child = towerlab()
        .args(["plan", "--settings", exp, "--db"])
        .arg(dir.path().join("t.db"))
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // The reader is gone before the first line is written.
    drop(child.stdout.take());
    let out = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!stderr.contains("panicked"), "{stderr}");
    assert_eq!(out.status.signal(), Some(13), "{:?} {stderr}", out.status);
}

/// `towerlab store copy` from a SQLite store to a PostgreSQL database (a throwaway server the
/// test starts) and back to a new SQLite file: every run there, ids kept; copying into a store
/// that holds anything is refused with exit 2 and leaves it as it was.
#[test]
fn store_copy_moves_a_store_to_postgres_and_back() {
    let dir = tempfile::tempdir().unwrap();
    let src = dir.path().join("a.db");
    let rt = tokio::runtime::Runtime::new().unwrap();
    let ids = rt.block_on(async {
        let s = store::Store::open(&src).await.unwrap();
        let e = s
            .upsert_experiment("copied", "experiments/copied.toml", "filehash")
            .await
            .unwrap()
            .id;
        let runs: Vec<store::NewRun> = (0..3)
            .map(|i| store::NewRun {
                hash: format!("hash{i:05}"),
                cell_key: format!("seed={i}"),
                axes: serde_json::json!({ "seed": i })
                    .as_object()
                    .unwrap()
                    .clone(),
                task: "vqa".to_owned(),
                params: vec![("train.lr".to_owned(), serde_json::json!(1e-5))],
                depends_on: None,
            })
            .collect();
        let ids: Vec<i64> = s
            .create_runs(e, &runs)
            .await
            .unwrap()
            .iter()
            .map(|c| c.id.0)
            .collect();
        s.close().await;
        ids
    });
    let pg = store::testing::PgServer::shared().fresh_database_blocking();
    let copy = |from: &str, to: &str| {
        towerlab()
            .args(["store", "copy", "--from", from, "--to", to])
            .env_remove("TOWERLAB_DB")
            .current_dir(dir.path())
            .output()
            .unwrap()
    };
    let out = copy(&src.display().to_string(), &pg);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(text.contains("runs") && text.contains(" 3"), "{text}");
    let back = dir.path().join("b.db");
    let out = copy(&pg, &back.display().to_string());
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let got: Vec<i64> = rt.block_on(async {
        let s = store::Store::open(&back).await.unwrap();
        let runs = s.list_runs(&store::RunFilter::default()).await.unwrap();
        runs.iter().map(|r| r.id.0).collect()
    });
    assert_eq!(got, ids);
    // Into a store that holds anything: refused, one line, exit 2, nothing written.
    let out = copy(&src.display().to_string(), &back.display().to_string());
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert_eq!(err.trim().lines().count(), 1, "{err}");
}
