//! The `[executor]` section: read and checked with the rest of the file, never part of a run's
//! identity.

use std::path::Path;

use experiments::{ExecutorKind, Experiment, IdentityContext, Overrides};

const BASE: &str = r#"
name = "exec"
task = "vqa"

[base]
preset = "tiny"

[grid]
manager_type = ["BT", "SAUE"]

[metric]
name = "val/vqa/score_epoch"
goal = "maximize"
"#;

fn load(extra: &str) -> Result<Experiment, String> {
    Experiment::from_toml(
        &format!("{BASE}\n{extra}"),
        Path::new("exec.toml"),
        &Overrides::none(),
    )
    .map_err(|e| e.to_string())
}

#[test]
fn the_executor_section_is_read_and_leaves_identities_alone() {
    let exp = load(
        r##"
[executor]
kind = "slurm"
partition = "gpu"
account = "vl-lab"
qos = "normal"
time = "1-12:00:00"
gpus = 1
cpus = 8
mem = "32G"
constraint = "a100"
throttle = 4
signal = 120
extra = ["#SBATCH --mail-type=END", "--exclusive"]
"##,
    )
    .unwrap();
    let e = &exp.executor;
    assert_eq!(e.kind, ExecutorKind::Slurm);
    assert_eq!(e.partition.as_deref(), Some("gpu"));
    assert_eq!(e.account.as_deref(), Some("vl-lab"));
    assert_eq!(e.time.as_deref(), Some("1-12:00:00"));
    assert_eq!(
        (e.gpus, e.cpus, e.throttle, e.signal),
        (Some(1), Some(8), Some(4), Some(120))
    );
    assert_eq!(e.mem.as_deref(), Some("32G"));
    assert_eq!(e.extra, ["--mail-type=END", "--exclusive"]);

    let ctx = IdentityContext::from_files("test");
    let local = load("").unwrap();
    assert_eq!(local.executor.kind, ExecutorKind::Local);
    let ids = |x: &Experiment| -> Vec<String> {
        x.cells(&ctx)
            .iter()
            .map(|c| c.identity.as_str().to_string())
            .collect()
    };
    assert_eq!(
        ids(&exp),
        ids(&local),
        "where a run executes is not what it is"
    );
}

#[test]
fn bad_executor_keys_and_values_are_named_with_their_line() {
    let err = load(
        r#"
[executor]
kind = "kubernetes"
time = "2 hours"
gpus = "one"
mem = "lots"
partiton = "gpu"
extra = ["mail-type=END", 3]
"#,
    )
    .unwrap_err();
    for expected in [
        "unknown executor `kubernetes`",
        "executor.time `2 hours` is not a Slurm time limit",
        "executor.gpus expects a whole number, found a string",
        "executor.mem `lots` is not a memory size",
        "unknown key `partiton` in [executor]; did you mean `partition`?",
        "executor.extra `mail-type=END` is not an sbatch option",
        "executor.extra expects strings, found an integer",
    ] {
        assert!(err.contains(expected), "missing {expected:?} in:\n{err}");
    }
    assert!(err.contains("exec.toml:17:8: executor.kind"), "{err}");
}
