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
