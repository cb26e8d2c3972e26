//! What a researcher's own grid file meets first: the preset given outside the file, VQA's head
//! size taken from the data, a bad axis value reported once, and a stale plan that names the file
//! that changed and the tables an empty `*_tables` stands for.

use std::path::Path;

use experiments::plan::{plan, KnownRuns};
use experiments::{CellState, RunStatus};
use experiments::{Experiment, IdentityContext, Overrides, Task};

const METRIC: &str = "[metric]\nname = \"val/vqa/score_epoch\"\ngoal = \"maximize\"\n";

fn load(src: &str, ov: &Overrides) -> Result<Experiment, Vec<String>> {
    Experiment::from_toml(src, Path::new("study.toml"), ov)
        .map_err(|e| e.to_string().lines().map(str::to_string).collect())
}

fn set(flags: &[&str]) -> Overrides {
    Overrides {
        env: vec![],
        set: flags.iter().map(|s| s.to_string()).collect(),
    }
}

fn env(vars: &[(&str, &str)]) -> Overrides {
    Overrides {
        env: vars
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
        set: vec![],
    }
}

fn study(root: &Path, base: &str) -> String {
    format!(
        "name = \"study\"\ntask = \"vqa\"\n[data]\nroot = {root:?}\n[base]\n{base}\n[grid]\n\
         manager_type = [\"SAUE\", \"AAUE\"]\nseeds = [0, 1]\n{METRIC}"
    )
}

#[test]
fn the_preset_can_be_given_by_flag_or_variable_like_the_files() {
    let src = format!("name = \"p\"\ntask = \"vqa\"\n[grid]\nmanager_type = [\"AAUE\"]\n{METRIC}");
    let base = load(&src, &Overrides::none()).unwrap();
    assert_eq!(base.preset, "base");
    assert_eq!(base.runs()[0].settings.hidden_size, 768);

    let tiny = load(&src, &set(&["preset=tiny"])).unwrap();
    assert_eq!(tiny.preset, "tiny");
    assert_eq!(tiny.runs()[0].settings.hidden_size, 64);

    let by_env = load(&src, &env(&[("TOWERLAB_PRESET", "tiny")])).unwrap();
    assert_eq!(by_env.preset, "tiny");
    assert_eq!(by_env.runs()[0].settings.hidden_size, 64);

    // The flag wins over the variable, as for every setting.
    let both = Overrides {
        env: vec![("TOWERLAB_PRESET".into(), "tiny".into())],
        set: vec!["preset=base".into()],
    };
    assert_eq!(load(&src, &both).unwrap().preset, "base");

    assert_eq!(
        load(&src, &set(&["preset=huge"])).unwrap_err(),
        ["study.toml: --set #1: preset expects one of \"base\", \"tiny\", found `huge`"]
    );
    assert_eq!(
        load(&src, &env(&[("TOWERLAB_PRESET", "huge")])).unwrap_err(),
        ["study.toml: environment variable TOWERLAB_PRESET: preset expects one of \"base\", \"tiny\", found `huge`"]
    );
}

#[test]
fn the_vqa_head_size_comes_from_the_datas_answer_vocabulary() {
    let dir = tempfile::tempdir().unwrap();
    // Without a vocabulary file, the reference's 3129.
    let e = load(&study(dir.path(), "preset = \"tiny\""), &Overrides::none()).unwrap();
    assert_eq!(e.runs()[0].settings.vqav2_label_size, 3129);

    std::fs::write(
        dir.path().join("vqav2_answers.json"),
        r#"{"label2answer": ["yes", "no", "two"], "num_answers": 3}"#,
    )
    .unwrap();
    let e = load(&study(dir.path(), "preset = \"tiny\""), &Overrides::none()).unwrap();
    assert!(e.runs().iter().all(|r| r.settings.vqav2_label_size == 3));
    assert_eq!(e.runs()[0].settings.task, Task::Vqa);

    // The same number written out is fine; another one is an error where it is written.
    load(
        &study(dir.path(), "preset = \"tiny\"\nvqav2_label_size = 3"),
        &Overrides::none(),
    )
    .unwrap();
    let errors = load(
        &study(dir.path(), "preset = \"tiny\"\nvqav2_label_size = 3129"),
        &Overrides::none(),
    )
    .unwrap_err();
    let file = dir.path().join("vqav2_answers.json");
    assert_eq!(
        errors,
        [format!(
            "study.toml:7:20: vqav2_label_size = 3129, but {} lists 3 answers: the VQA head \
             needs one output per answer of the data; remove the setting to take 3 from the data",
            file.display()
        )]
    );
    let errors = load(
        &study(dir.path(), "preset = \"tiny\""),
        &set(&["vqav2_label_size=10"]),
    )
    .unwrap_err();
    assert!(
        errors[0].starts_with("study.toml: --set #1: vqav2_label_size = 10"),
        "{errors:?}"
    );

    // `--set data_root=...` reads the vocabulary there.
    let other = tempfile::tempdir().unwrap();
    std::fs::write(
        other.path().join("vqav2_answers.json"),
        r#"{"label2answer": ["a", "b"]}"#,
    )
    .unwrap();
    let e = load(
        &study(dir.path(), "preset = \"tiny\""),
        &set(&[&format!("data_root={}", other.path().display())]),
    )
    .unwrap();
    assert!(e.runs().iter().all(|r| r.settings.vqav2_label_size == 2));

    std::fs::write(&file, "{not json").unwrap();
    let errors = load(&study(dir.path(), "preset = \"tiny\""), &Overrides::none()).unwrap_err();
    assert!(
        errors[0].contains("cannot read the answer vocabulary")
            && errors[0].contains(&file.display().to_string()),
        "{errors:?}"
    );
}

#[test]
fn validating_on_training_tables_is_said() {
    let dir = tempfile::tempdir().unwrap();
    let e = load(&study(dir.path(), "preset = \"tiny\""), &Overrides::none()).unwrap();
    let note = e.validation_overlap().unwrap();
    assert!(
        note.contains("vqav2_val_fix") && note.contains("not held out"),
        "{note}"
    );
    let e = load(
        &study(
            dir.path(),
            "preset = \"tiny\"\ntrain_tables = [\"vqav2_train_fix\"]",
        ),
        &Overrides::none(),
    )
    .unwrap();
    assert_eq!(e.validation_overlap(), None);
}

#[test]
fn a_bad_axis_value_is_reported_once_not_as_a_missing_axis() {
    let src = format!(
        "name = \"b\"\ntask = \"vqa\"\nbaseline = {{ manager_type = \"SAUE\" }}\n[grid]\n\
         manager_type = [\"SAUE\", \"XAUE\"]\n[[exclude]]\nmanager_type = \"SAUE\"\n{METRIC}"
    );
    let errors = load(&src, &Overrides::none()).unwrap_err();
    assert_eq!(errors.len(), 1, "{errors:?}");
    assert!(errors[0].contains("found \"XAUE\""), "{errors:?}");
}

#[test]
fn a_changed_file_makes_its_cells_stale_naming_the_file() {
    let dir = tempfile::tempdir().unwrap();
    for t in ["vqav2_train_fix", "vqav2_val_fix", "vqav2_test"] {
        std::fs::write(dir.path().join(format!("{t}.arrow")), b"0123456789").unwrap();
    }
    let src = study(dir.path(), "preset = \"tiny\"");
    let exp = load(&src, &Overrides::none()).unwrap();
    let ctx = IdentityContext::from_files("v1");
    let before = exp.cells(&ctx);
    let mut known = KnownRuns::default();
    for c in &before {
        known.insert(c, RunStatus::Finished);
    }
    // The stamps ride along the identity document without being part of the identity.
    let doc = &before[0].identity_document;
    assert!(doc["data_files"]["vqav2_train_fix.arrow"]["size"] == 10);
    assert_eq!(experiments::identity::identity_of(doc), before[0].identity);

    std::fs::write(dir.path().join("vqav2_test.arrow"), b"01234567890123").unwrap();
    let after = exp.cells(&ctx);
    let p = plan(after, &known);
    assert!(p.rows.iter().all(|r| r.state == CellState::Stale));
    let changes = &p.rows[0].changes;
    assert_eq!(changes.len(), 1, "{changes:?}");
    assert_eq!(changes[0].key, "@data vqav2_test.arrow");
    assert!(changes[0].old.starts_with("10 B, modified "), "{changes:?}");
    assert!(changes[0].new.starts_with("14 B, modified "), "{changes:?}");
    assert!(changes[0].new.ends_with(" UTC"), "{changes:?}");

    std::fs::remove_file(dir.path().join("vqav2_test.arrow")).unwrap();
    let p = plan(exp.cells(&ctx), &known);
    assert_eq!(p.rows[0].changes[0].new, "missing");
}

#[test]
fn an_empty_table_list_shows_the_tables_it_stands_for() {
    let dir = tempfile::tempdir().unwrap();
    let explicit = load(
        &study(
            dir.path(),
            "preset = \"tiny\"\ntrain_tables = [\"vqav2_train\"]",
        ),
        &Overrides::none(),
    )
    .unwrap();
    let ctx = IdentityContext::fixed("v1", "d");
    let mut known = KnownRuns::default();
    for c in explicit.cells(&ctx) {
        known.insert(&c, RunStatus::Finished);
    }
    let emptied = load(
        &study(
            dir.path(),
            "preset = \"tiny\"\ntrain_tables = [\"vqav2_train\"]",
        ),
        &env(&[("TOWERLAB_TRAIN_TABLES", "")]),
    )
    .unwrap();
    let p = plan(emptied.cells(&ctx), &known);
    let change = &p.rows[0].changes[0];
    assert_eq!(change.key, "train_tables");
    assert_eq!(change.old, "[\"vqav2_train\"]");
    assert_eq!(
        change.new,
        "[] (the task's tables: vqav2_train_fix, vqav2_val_fix)"
    );
}

#[test]
fn a_cancelled_run_is_cancelled_in_the_plan() {
    let dir = tempfile::tempdir().unwrap();
    let exp = load(&study(dir.path(), "preset = \"tiny\""), &Overrides::none()).unwrap();
    let cells = exp.cells(&IdentityContext::fixed("v1", "d"));
    let mut known = KnownRuns::default();
    known.insert(&cells[0], RunStatus::Cancelled);
    let p = plan(cells, &known);
    assert_eq!(p.rows[0].state, CellState::Cancelled);
    assert!(p.rows[0].needs_run(false), "queue resumes it");
    assert!(p.render().ends_with(", 1 cancelled"), "{}", p.render());
}
