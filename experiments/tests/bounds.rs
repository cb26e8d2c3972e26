//! Inputs that once took the machine's memory or passed the plan with a value no run can use.

use std::path::Path;
use std::time::Instant;

use experiments::{Experiment, Overrides};

const HEAD: &str = "name = \"t\"\ntask = \"vqa\"\n[metric]\nname = \"m\"\ngoal = \"maximize\"\n";

fn errors(src: &str) -> String {
    let full = format!("{HEAD}{src}");
    match Experiment::from_toml(&full, Path::new("t.toml"), &Overrides::none()) {
        Ok(_) => String::new(),
        Err(e) => e.to_string(),
    }
}

/// 10⁶ cells used to take 4 GB before anything was planned; past the limit the file is refused
/// with the count, at once.
#[test]
fn a_grid_past_the_run_limit_is_refused_with_its_count() {
    let axis = |n: usize| {
        (0..n)
            .map(|i| (i + 1).to_string())
            .collect::<Vec<_>>()
            .join(", ")
    };
    let src = format!(
        "[base]\npreset = \"tiny\"\n[grid]\nnum_layers = [{}]\nmanaged_layers_text = [{}]\n\
         seeds = [0, 1]\n",
        axis(1000),
        axis(1000)
    );
    let started = Instant::now();
    let e = errors(&src);
    assert!(
        e.contains("1000000 cells × 2 seed(s)") && e.contains("10000 runs"),
        "{e}"
    );
    assert!(started.elapsed().as_secs() < 10, "{:?}", started.elapsed());
}

#[test]
fn files_are_read_up_to_a_size_limit() {
    let dir = tempfile::tempdir().unwrap();
    let big = dir.path().join("big.toml");
    std::fs::write(&big, format!("{HEAD}# {}\n", "x".repeat(2 << 20))).unwrap();
    let e = Experiment::load(&big, &Overrides::none())
        .err()
        .unwrap()
        .to_string();
    assert!(
        e.contains("big.toml") && e.contains("larger than 1024 KiB"),
        "{e}"
    );
    // An endless file is not read to its end.
    let started = Instant::now();
    let e = Experiment::load(Path::new("/dev/zero"), &Overrides::none())
        .err()
        .unwrap()
        .to_string();
    assert!(e.contains("/dev/zero"), "{e}");
    assert!(started.elapsed().as_secs() < 5);
}

#[test]
fn a_nan_setting_is_named_as_such() {
    let e = errors("[base]\npreset = \"tiny\"\nlearning_rate = nan\n");
    assert!(
        e.contains("`learning_rate` = NaN: expected a finite number"),
        "{e}"
    );
    assert!(!e.contains("found nothing"), "{e}");
}

#[test]
fn a_zero_answer_vocabulary_fails_the_plan() {
    let e = errors("[base]\npreset = \"tiny\"\nvqav2_label_size = 0\n");
    assert!(
        e.contains("vqav2_label_size must be at least 1, found 0"),
        "{e}"
    );
}
