//! Driving the `towerlab` binary from tests: where it is, what it said, a tiny VQA experiment
//! to give it, and what its runs must have stored.

use std::path::{Path, PathBuf};
use std::process::Output;

use store::{RunId, SeriesOptions, Store};

/// `target/<profile>/towerlab`, next to `target/<profile>/deps/<the running test>`: for tests
/// outside the app crate, which have no `CARGO_BIN_EXE_towerlab`.
pub fn binary() -> PathBuf {
    let exe = std::env::current_exe().unwrap();
    let bin = exe
        .parent()
        .and_then(Path::parent)
        .unwrap()
        .join(format!("towerlab{}", std::env::consts::EXE_SUFFIX));
    assert!(
        bin.exists(),
        "{} is missing: build it first with `cargo build -p app`",
        bin.display()
    );
    bin
}

/// Exit status, stdout and stderr, for an assertion's message.
pub fn text(o: &Output) -> String {
    format!(
        "status {}\nstdout:\n{}\nstderr:\n{}",
        o.status,
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

/// The stdout of a command that must have succeeded; `what` names it if it did not.
pub fn success_stdout(out: &Output, what: &str) -> String {
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "{what} failed: {stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    stdout
}

/// A single-threaded runtime for a test's store reads.
pub fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

/// A tiny VQA grid on synthetic data, trained on the CPU in seconds.
#[derive(Debug, Clone)]
pub struct TinyVqa<'a> {
    pub name: &'a str,
    /// The `[data] root`.
    pub data: &'a str,
    pub max_steps: i64,
    pub val_check_steps: i64,
    /// With a `vqav2_test` table (a test phase after training).
    pub test_tables: bool,
    /// More `[base]` lines.
    pub base: &'a str,
    /// The `[grid]` body.
    pub grid: &'a str,
    /// Sections after `[metric]`.
    pub extra: &'a str,
}

impl Default for TinyVqa<'_> {
    fn default() -> Self {
        Self {
            name: "tiny-vqa",
            data: "data",
            max_steps: 10,
            val_check_steps: 5,
            test_tables: true,
            base: "",
            grid: "manager_type = [\"BT\"]\nseeds = [0]",
            extra: "",
        }
    }
}

impl TinyVqa<'_> {
    /// The experiment file's text.
    pub fn toml(&self) -> String {
        let test_tables = if self.test_tables {
            "test_tables = [\"vqav2_test\"]\n"
        } else {
            ""
        };
        format!(
            r#"
name = "{name}"
task = "vqa"

[data]
root = "{data}"
synthetic = true

[base]
preset = "tiny"
device = "cpu"
num_workers = 0
batch_size = 4
per_gpu_batchsize = 4
per_gpu_eval_batchsize = 8
max_steps = {max_steps}
max_epoch = 100
val_check_steps = {val}
learning_rate = 1e-3
train_tables = ["vqav2_train"]
val_tables = ["vqav2_val"]
{test_tables}vqav2_label_size = 21
{base}

[grid]
{grid}

[metric]
name = "val/vqa/score_epoch"
goal = "maximize"

{extra}
"#,
            name = self.name,
            data = self.data,
            max_steps = self.max_steps,
            val = self.val_check_steps,
            base = self.base,
            grid = self.grid,
            extra = self.extra,
        )
    }
}

/// The series `key` of run `run` has exactly the steps 1..=steps: nothing lost, nothing twice.
pub async fn assert_steps(store: &Store, run: RunId, key: &str, steps: i64) {
    let series = store
        .metric_series(run, key, SeriesOptions::default())
        .await
        .unwrap();
    let got: Vec<i64> = series.iter().map(|p| p.step).collect();
    assert_eq!(
        got,
        (1..=steps).collect::<Vec<_>>(),
        "run {run} {key} steps"
    );
}
