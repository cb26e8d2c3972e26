//! Failure paths of the real `towerlab` binary with the real training loop and store: each
//! test is a reproduction of a failure that was once reported as something it was not.
//!
//! The binary must be built first (`cargo build -p app`, which `cargo test --workspace` does);
//! these tests find it beside their own executable. The full-disk test mounts a small tmpfs,
//! which needs root (as CI and the project's machines run): without it the test fails.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use store::{FailureClass, RunFilter, RunStatus, Store};
use testkit::towerlab::{self, runtime as rt, text, TinyVqa};

fn experiment(data: &Path, max_steps: i64, extra: &str) -> String {
    TinyVqa {
        name: "failure-paths",
        data: &data.display().to_string(),
        max_steps,
        test_tables: false,
        base: extra,
        ..TinyVqa::default()
    }
    .toml()
}

fn command(dir: &Path, db: &Path, args: &[&str]) -> Command {
    let mut c = Command::new(towerlab::binary());
    c.args(args)
        .arg("--db")
        .arg(db)
        .current_dir(dir)
        .env_remove("TOWERLAB_DB")
        .env_remove("WANDB_API_KEY")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    c
}

fn run(dir: &Path, db: &Path, args: &[&str]) -> Output {
    command(dir, db, args).output().unwrap()
}

fn runs(db: &Path) -> Vec<store::RunRow> {
    rt().block_on(async {
        let store = Store::open(db).await.unwrap();
        let runs = store.list_runs(&RunFilter::default()).await.unwrap();
        store.close().await;
        runs
    })
}

/// A real allocation failure in the training step (text padded to 65,536 tokens: the first
/// attention scores need hundreds of GB, which the allocator refuses at once) is classed
/// `oom` and retried as the policy says (twice), then the run fails with that class.
#[test]
fn an_out_of_memory_step_is_classified_oom_and_retried() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let db = dir.join("towerlab.db");
    std::fs::write(
        dir.join("exp.toml"),
        experiment(
            &dir.join("data"),
            10,
            "max_text_len = 65536\ntext_max_position_embeddings = 65538",
        ),
    )
    .unwrap();
    let out = run(dir, &db, &["run", "exp.toml"]);
    let all = text(&out);
    assert!(!all.contains("panicked"), "{all}");
    let runs = runs(&db);
    assert_eq!(runs.len(), 1, "{all}");
    let r = &runs[0];
    assert_eq!(r.status, RunStatus::Failed, "{all}");
    assert_eq!(r.failure_class, Some(FailureClass::Oom), "{all}");
    // The policy allows an OOM two attempts (the first included): another process may have
    // held the memory the first time.
    assert_eq!(r.attempts, 2, "one attempt and one retry: {all}");
    let message = r.failure_message.clone().unwrap_or_default();
    assert!(message.contains("out of memory"), "{message}");
    assert!(all.contains("failed (oom, re-queued)"), "{all}");
}

/// SIGTERM (Slurm's `scancel` and time limit) is the graceful stop Ctrl-C is: the active run
/// checkpoints and is recorded cancelled, not left `running`; the next `run` resumes it.
#[test]
fn sigterm_checkpoints_and_the_next_run_resumes() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let db = dir.join("towerlab.db");
    std::fs::write(dir.join("exp.toml"), experiment(&dir.join("data"), 40, "")).unwrap();
    let mut child = command(dir, &db, &["run", "exp.toml"]).spawn().unwrap();
    let deadline = Instant::now() + Duration::from_secs(240);
    loop {
        assert!(
            Instant::now() < deadline,
            "no progress within the time limit"
        );
        if let Some(status) = child.try_wait().unwrap() {
            panic!("the sweep ended ({status}) before the signal");
        }
        if db.exists()
            && runs(&db)
                .iter()
                .any(|r| r.status == RunStatus::Running && r.checkpoint_step.is_some())
        {
            break;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    let status = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let out = wait_with_timeout(child, Duration::from_secs(120));
    let all = text(&out);
    // Stopped cleanly, but the grid is not done: 128 + SIGTERM, as an interrupted command.
    assert_eq!(
        out.status.code(),
        Some(143),
        "a graceful stop exits 143: {all}"
    );
    assert!(all.contains("stopping (SIGTERM)"), "{all}");
    let r = runs(&db).remove(0);
    assert_eq!(r.status, RunStatus::Cancelled, "{all}");
    let stopped_at = r.checkpoint_step.expect("a checkpoint on stop");
    assert!(stopped_at > 0);

    let again = run(dir, &db, &["run", "exp.toml"]);
    assert!(again.status.success(), "{}", text(&again));
    let r = runs(&db).remove(0);
    assert_eq!(r.status, RunStatus::Finished, "{}", text(&again));
    assert_eq!(r.attempts, 2);
}

fn wait_with_timeout(mut child: Child, limit: Duration) -> Output {
    let deadline = Instant::now() + limit;
    while child.try_wait().unwrap().is_none() {
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("the process did not stop within {limit:?}");
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    child.wait_with_output().unwrap()
}

/// A small tmpfs mounted for one test, unmounted on drop.
struct Mount(PathBuf);

impl Mount {
    fn tmpfs(at: &Path, size: &str) -> Self {
        std::fs::create_dir_all(at).unwrap();
        let out = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(at)
            .output()
            .expect("running mount");
        assert!(
            out.status.success(),
            "the full-disk test mounts a small tmpfs, which needs root: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        Self(at.to_path_buf())
    }

    fn resize(&self, size: &str) {
        let out = Command::new("mount")
            .args(["-o", &format!("remount,size={size}")])
            .arg(&self.0)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

impl Drop for Mount {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.0).status();
    }
}

/// A full disk under the store and the run folders: the failure is recorded (class `error`,
/// "No space left on device", naming the file), the run does not stay `running`, the store
/// stays readable, and once there is room the run is retried and finishes.
#[test]
fn a_full_disk_is_recorded_and_the_run_resumes_when_there_is_room() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    std::fs::write(dir.join("exp.toml"), experiment(&dir.join("data"), 10, "")).unwrap();
    // The data is made outside the small file system; the store and run folders inside.
    let plan = run(dir, &dir.join("plan.db"), &["plan", "exp.toml"]);
    assert!(plan.status.success(), "{}", text(&plan));
    let mount = Mount::tmpfs(&dir.join("small"), "3m");
    let db = dir.join("small/towerlab.db");
    let out = run(dir, &db, &["run", "exp.toml"]);
    let all = text(&out);
    assert!(!all.contains("panicked"), "{all}");
    assert!(!all.contains("transaction depth"), "{all}");
    let r = runs(&db).remove(0);
    assert_eq!(r.status, RunStatus::Failed, "{all}");
    assert_eq!(r.failure_class, Some(FailureClass::Error), "{all}");
    let message = r.failure_message.clone().unwrap_or_default();
    assert!(
        message.to_lowercase().contains("no space left on device"),
        "{message}"
    );
    // No torn checkpoint is left behind.
    let ckpts = dir
        .join("small/runs")
        .join(&r.hash[..12])
        .join("checkpoints");
    if ckpts.exists() {
        for e in std::fs::read_dir(&ckpts).unwrap() {
            let name = e.unwrap().file_name().to_string_lossy().into_owned();
            assert!(
                !name.ends_with(".partial"),
                "{name} left in {}",
                ckpts.display()
            );
        }
    }

    mount.resize("200m");
    let retry = run(dir, &db, &["retry", "--failed"]);
    assert!(retry.status.success(), "{}", text(&retry));
    let again = run(dir, &db, &["run", "exp.toml"]);
    assert!(again.status.success(), "{}", text(&again));
    let r = runs(&db).remove(0);
    assert_eq!(r.status, RunStatus::Finished, "{}", text(&again));
    drop(mount);
}

/// Two `run`s of one file on one store at once: the second joins the work (or waits for it),
/// it never says "nothing to run" while cells are queued.
#[test]
fn a_second_run_of_the_same_file_joins_the_work() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let db = dir.join("towerlab.db");
    let exp = experiment(&dir.join("data"), 20, "").replace("seeds = [0]", "seeds = [0, 1]");
    std::fs::write(dir.join("exp.toml"), exp).unwrap();
    let plan = run(dir, &db, &["plan", "exp.toml"]);
    assert!(plan.status.success(), "{}", text(&plan));
    let a = command(dir, &db, &["run", "exp.toml"]).spawn().unwrap();
    let b = command(dir, &db, &["run", "exp.toml"]).spawn().unwrap();
    let (a, b) = (
        wait_with_timeout(a, Duration::from_secs(300)),
        wait_with_timeout(b, Duration::from_secs(300)),
    );
    for o in [&a, &b] {
        assert!(o.status.success(), "{}", text(o));
        let out = String::from_utf8_lossy(&o.stdout);
        assert!(!out.contains("nothing to run"), "{}", text(o));
        assert!(out.contains("2 done"), "{}", text(o));
    }
    for r in runs(&db) {
        assert_eq!(r.status, RunStatus::Finished);
        assert_eq!(r.attempts, 1, "run {} claimed twice", r.id);
    }
}

/// `cancel`, `retry` and `export` on a store that does not exist say so (and create nothing);
/// an empty `TOWERLAB_DB` does not break a command that passes `--db`.
#[test]
fn commands_on_a_missing_store_say_so_and_an_empty_towerlab_db_is_ignored() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let db = dir.join("nowhere.db");
    for args in [
        &["cancel", "1"][..],
        &["retry", "--failed"],
        &["export", "--format", "csv", "--out", "x.csv"],
    ] {
        let out = run(dir, &db, args);
        let all = text(&out);
        assert_eq!(out.status.code(), Some(1), "{args:?}: {all}");
        assert!(all.contains("no store at"), "{args:?}: {all}");
        assert_eq!(
            String::from_utf8_lossy(&out.stderr).lines().count(),
            1,
            "{all}"
        );
        assert!(!db.exists(), "{args:?} created {}", db.display());
    }
    let out = command(dir, &db, &["ls"])
        .env("TOWERLAB_DB", "")
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out));
}

/// `worker --run ID` for a run the store does not hold says so in one line, in a Slurm task
/// too (where recording the task's job used to fail first, on its foreign key).
#[test]
fn a_worker_for_a_run_the_store_lacks_says_so() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let db = dir.join("towerlab.db");
    for slurm in [false, true] {
        let mut c = command(dir, &db, &["worker", "--run", "7"]);
        for k in ["SLURM_JOB_ID", "SLURM_ARRAY_JOB_ID", "SLURM_ARRAY_TASK_ID"] {
            c.env_remove(k);
        }
        if slurm {
            c.env("SLURM_JOB_ID", "41")
                .env("SLURM_ARRAY_JOB_ID", "40")
                .env("SLURM_ARRAY_TASK_ID", "1");
        }
        let out = c.output().unwrap();
        let all = text(&out);
        assert_eq!(out.status.code(), Some(1), "slurm {slurm}: {all}");
        assert!(
            all.contains("run 7 is not in the store"),
            "slurm {slurm}: {all}"
        );
        assert!(!all.contains("FOREIGN KEY"), "slurm {slurm}: {all}");
        assert_eq!(
            String::from_utf8_lossy(&out.stderr).lines().count(),
            1,
            "slurm {slurm}: {all}"
        );
    }
}

/// Invalid input files exit 2 with one line naming the file: a store file that is not a
/// store, a weights file with a rank-1 word embedding, a deeply nested pickle, an Arrow file
/// of no known schema.
#[test]
fn invalid_input_files_exit_2_with_one_line() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let junk = dir.join("junk.db");
    std::fs::write(&junk, vec![b'x'; 4096]).unwrap();
    let out = run(dir, &junk, &["ls"]);
    check_invalid(&out, "junk.db");

    let weights = dir.join("rank1.safetensors");
    {
        use tch::{Device, Kind, Tensor};
        let t = Tensor::zeros([5], (Kind::Float, Device::Cpu));
        Tensor::write_safetensors(
            &[("text_transformer.embeddings.word_embeddings.weight", t)],
            &weights,
        )
        .unwrap();
    }
    let out = run(
        dir,
        &dir.join("t.db"),
        &["model", "inspect", "rank1.safetensors"],
    );
    check_invalid(&out, "rank1.safetensors");

    let arrow = dir.join("other.arrow");
    engine::data::write_arrow(
        &arrow,
        &[("colour", engine::data::Column::Str(vec!["red".into()]))],
        None,
    )
    .unwrap();
    let out = run(dir, &dir.join("t.db"), &["data", "inspect", "other.arrow"]);
    check_invalid(&out, "other.arrow");
}

fn check_invalid(out: &Output, name: &str) {
    let all = text(out);
    assert_eq!(out.status.code(), Some(2), "{all}");
    let stderr = String::from_utf8_lossy(&out.stderr);
    let lines: Vec<&str> = stderr.lines().collect();
    assert_eq!(lines.len(), 1, "{all}");
    assert!(
        lines[0].starts_with("error: ") && lines[0].contains(name),
        "{all}"
    );
    assert!(!all.contains("panicked"), "{all}");
}
