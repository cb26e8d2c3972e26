//! `towerlab report` as a user runs it, on a store written through the store's API: the table
//! in every format and all figure kinds, byte-identical twice, `--print`, and the errors.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use store::{
    FailureClass, Goal, ManagerWeight, ManagerWeightRow, MetricPoint, Modality, Store, WorkerInfo,
};

const EXPERIMENT: &str = r#"
name = "report-cli"
task = "vqa"
baseline = { manager_type = "BT" }

[data]
root = "data"

[base]
# From scratch: the base preset would start from CLIP and RoBERTa, fetched at queue time.
preset = "tiny"

[grid]
manager_type = ["BT", "SAUE", "AAUE"]
seeds = [0, 1]

[metric]
name = "val/vqa/score_epoch"
goal = "maximize"
summary = "best"
"#;

/// Six runs (3 cells x 2 seeds), queued by the real binary so that they carry the plan's
/// identities, then driven through the store's API; AAUE seed 1 failed at step 20.
async fn fill(db: &Path) {
    let store = Store::open(db).await.unwrap();
    let worker = WorkerInfo::this_process("cpu", "test");
    while let Some(claim) = store.claim(&worker, None).await.unwrap() {
        let run = claim.run.id;
        let manager = claim.run.axes["manager_type"].as_str().unwrap().to_string();
        let seed = claim.run.axes["seed"].as_u64().unwrap();
        let c = ["BT", "SAUE", "AAUE"]
            .iter()
            .position(|m| *m == manager)
            .unwrap();
        store
            .declare_metrics(run, &[("val/vqa/score_epoch", Goal::Maximize)])
            .await
            .unwrap();
        let failed = manager == "AAUE" && seed == 1;
        let last = if failed { 20 } else { 50 };
        let points: Vec<MetricPoint> = (1..=last)
            .map(|s| MetricPoint {
                key: "val/vqa/score_epoch".into(),
                step: s,
                value: 0.2 + 0.05 * c as f64 + 0.004 * s as f64 + 0.01 * seed as f64,
                wall_ms: 1_000 * s,
            })
            .collect();
        store.ingest_metrics(run, &points).await.unwrap();
        if manager != "BT" {
            let weights: Vec<ManagerWeightRow> = Modality::ALL
                .iter()
                .flat_map(|&modality| {
                    (0..2u32).flat_map(move |layer| {
                        (0..3).map(move |expert| ManagerWeightRow {
                            step: last,
                            value: ManagerWeight {
                                modality,
                                layer,
                                expert,
                                weight: (1 + expert + i64::from(layer)) as f64 / 10.0,
                            },
                        })
                    })
                })
                .collect();
            store.ingest_manager_weights(run, &weights).await.unwrap();
        }
        if failed {
            store
                .fail(
                    &claim.lease,
                    FailureClass::Nan,
                    "loss is NaN",
                    &Default::default(),
                )
                .await
                .unwrap();
        } else {
            store.finish(&claim.lease).await.unwrap();
        }
    }
    store.close().await;
}

struct Setup {
    _dir: tempfile::TempDir,
    root: PathBuf,
}

impl Setup {
    fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().to_path_buf();
        std::fs::write(root.join("exp.toml"), EXPERIMENT).unwrap();
        // The tables the plan's identities hash (nothing reads them here).
        std::fs::create_dir_all(root.join("data")).unwrap();
        for t in ["vqav2_train_fix", "vqav2_val_fix", "vqav2_test"] {
            std::fs::write(root.join("data").join(format!("{t}.arrow")), b"").unwrap();
        }
        let queued = Command::new(env!("CARGO_BIN_EXE_towerlab"))
            .current_dir(&root)
            .env_remove("TOWERLAB_DB")
            .args(["--db", "t.db", "queue", "exp.toml"])
            .output()
            .unwrap();
        assert!(queued.status.success(), "{}", text(&queued));
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap()
            .block_on(fill(&root.join("t.db")));
        Setup { _dir: dir, root }
    }

    fn report(&self, args: &[&str]) -> Output {
        Command::new(env!("CARGO_BIN_EXE_towerlab"))
            .current_dir(&self.root)
            .env_remove("TOWERLAB_DB")
            .args(["--db", "t.db", "report"])
            .args(args)
            .output()
            .unwrap()
    }
}

fn text(o: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

#[test]
fn report_writes_the_table_and_every_figure_kind_identically_twice() {
    let s = Setup::new();
    let out = s.report(&["exp.toml", "--out", "a"]);
    assert!(out.status.success(), "{}", text(&out));
    let a = s.root.join("a");
    let expected = [
        "table.md",
        "table.tex",
        "table.csv",
        "runs.csv",
        "curves-val-vqa-score_epoch.svg",
        "curves-val-vqa-score_epoch.png",
        "bars-val-vqa-score_epoch.svg",
        "bars-val-vqa-score_epoch.png",
        // One titled Fig. 6 per ManagerTower cell.
        "manager-weights-manager_type-saue.svg",
        "manager-weights-manager_type-saue.png",
        "manager-weights-manager_type-aaue.svg",
        "manager-weights-manager_type-aaue.png",
        "manager-heatmap.svg",
        "manager-heatmap.png",
    ];
    let names: Vec<String> = std::fs::read_dir(&a)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    for f in expected {
        assert!(names.iter().any(|n| n == f), "{f} missing from {names:?}");
    }

    let md = std::fs::read_to_string(a.join("table.md")).unwrap();
    for cell in ["BT", "SAUE", "AAUE"] {
        assert!(md.contains(cell), "{md}");
    }
    // The failed seed is called out, not averaged away silently.
    assert!(
        md.contains("1/2") || md.to_lowercase().contains("failed"),
        "{md}"
    );
    let tex = std::fs::read_to_string(a.join("table.tex")).unwrap();
    assert!(
        tex.contains("\\toprule") && tex.contains("% experiment hash: "),
        "{tex}"
    );
    let curves = std::fs::read_to_string(a.join("curves-val-vqa-score_epoch.svg")).unwrap();
    assert!(curves.contains("<desc>") && curves.contains("SAUE"));

    // The same store gives the same bytes.
    let out = s.report(&["--experiment", "report-cli", "--out", "b"]);
    assert!(out.status.success(), "{}", text(&out));
    for f in expected.iter().filter(|f| !f.ends_with(".png")) {
        assert_eq!(
            std::fs::read(a.join(f)).unwrap(),
            std::fs::read(s.root.join("b").join(f)).unwrap(),
            "{f} differs between two runs"
        );
    }
}

#[test]
fn report_print_shows_the_table_in_the_terminal() {
    let s = Setup::new();
    let out = s.report(&["exp.toml", "--print"]);
    let t = text(&out);
    assert!(out.status.success(), "{t}");
    assert!(
        t.contains("manager_type") && t.contains("AAUE") && t.contains("±"),
        "{t}"
    );
    assert!(!s.root.join("reports").exists(), "--print writes no files");
}

#[test]
fn report_errors_name_the_problem_and_exit_non_zero() {
    let s = Setup::new();
    let out = s.report(&["exp.toml", "--format", "md,docx"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(text(&out).contains("docx"), "{}", text(&out));

    let out = s.report(&["exp.toml", "--baseline", "manager_type=XYZ"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(text(&out).contains("matches no cell"), "{}", text(&out));

    let out = s.report(&["--experiment", "nope"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(text(&out).contains("nope"), "{}", text(&out));

    let out = Command::new(env!("CARGO_BIN_EXE_towerlab"))
        .current_dir(&s.root)
        .args(["--db", "missing.db", "report", "exp.toml"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(text(&out).contains("missing.db"), "{}", text(&out));
    assert!(!text(&out).contains("panicked"));
}

#[test]
fn the_report_holds_the_current_plan_and_says_what_it_left_out() {
    let s = Setup::new();
    // The grid loses AAUE: its runs stay in the store but leave the report.
    let text_of = std::fs::read_to_string(s.root.join("exp.toml")).unwrap();
    std::fs::write(
        s.root.join("exp.toml"),
        text_of.replace("[\"BT\", \"SAUE\", \"AAUE\"]", "[\"BT\", \"SAUE\"]"),
    )
    .unwrap();
    let out = s.report(&["exp.toml", "--out", "c", "--p-values"]);
    let t = text(&out);
    assert!(out.status.success(), "{t}");
    assert!(
        t.contains("4 done run(s) of report-cli's current plan"),
        "{t}"
    );
    assert!(
        t.contains("left out 2 run(s) of report-cli no longer in the grid"),
        "{t}"
    );
    let md = std::fs::read_to_string(s.root.join("c").join("table.md")).unwrap();
    assert!(!md.contains("AAUE"), "{md}");
    assert!(md.contains("| 2/2 seeds |"), "{md}");
    assert!(md.contains("p (val/vqa/score\\_epoch)"), "{md}");
    assert!(md.contains("runs used (4):"), "{md}");

    // A changed setting makes every cell stale: the report holds nothing of the new plan yet.
    std::fs::write(
        s.root.join("exp.toml"),
        text_of.replace(
            "preset = \"tiny\"",
            "preset = \"tiny\"\nlearning_rate = 2e-5",
        ),
    )
    .unwrap();
    let out = s.report(&["exp.toml", "--out", "d"]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(
        text(&out).contains("no runs of its current plan"),
        "{}",
        text(&out)
    );
}

#[test]
fn runs_shared_through_the_same_identity_are_reported_and_listed() {
    let s = Setup::new();
    // Another experiment whose BT cells are the same runs (same settings, data and engine).
    std::fs::write(
        s.root.join("other.toml"),
        EXPERIMENT
            .replace("name = \"report-cli\"", "name = \"other\"")
            .replace("[\"BT\", \"SAUE\", \"AAUE\"]", "[\"BT\"]"),
    )
    .unwrap();
    let out = s.report(&["other.toml", "--print"]);
    let t = text(&out);
    assert!(out.status.success(), "{t}");
    assert!(t.contains("2/2 seeds"), "{t}");
    assert!(
        t.contains("2 run(s) shared with other experiments through the same identity: run ")
            && t.contains("(report-cli manager_type=BT seed 0)"),
        "{t}"
    );
}

/// The study of `fill_study` (SAUE/AAUE × a zip of managed layers × 2 seeds and a VLP arm from
/// an `[[include]]`), reported from its file: every figure fits its canvas, names its cells
/// readably, and every ManagerTower cell with a finished run has its titled weights.
#[test]
fn a_study_with_a_zip_and_a_vlp_arm_reports_readable_figures_that_fit() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    std::fs::create_dir_all(root.join("experiments")).unwrap();
    // An absolute data root: this process and the binary (run in `root`) hash the same
    // (missing) tables, so the fixture's runs carry the identities the report's plan computes.
    let study = app::tui::sample_store::STUDY_TOML.replace(
        "root = \"data/study\"",
        &format!("root = \"{}\"", root.join("data/study").display()),
    );
    std::fs::write(root.join("experiments/study.toml"), &study).unwrap();
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
        .block_on(async {
            let store = Store::open(root.join("t.db")).await.unwrap();
            let ctx = experiments::IdentityContext::from_files(concat!(
                "towerlab-engine/",
                env!("CARGO_PKG_VERSION")
            ));
            app::tui::sample_store::fill_study_as(&store, &study, &ctx)
                .await
                .unwrap();
            store.close().await;
        });
    let out = Command::new(env!("CARGO_BIN_EXE_towerlab"))
        .current_dir(root)
        .env_remove("TOWERLAB_DB")
        .args([
            "--db",
            "t.db",
            "report",
            "experiments/study.toml",
            "--out",
            "r",
        ])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out));
    let r = root.join("r");
    let mut svgs = 0;
    for e in std::fs::read_dir(&r).unwrap() {
        let path = e.unwrap().path();
        if path.extension().is_some_and(|x| x == "svg") {
            svgs += 1;
            let svg = std::fs::read_to_string(&path).unwrap();
            let problems = reports::figures::verify_svg(&svg);
            assert!(problems.is_empty(), "{}: {problems:#?}", path.display());
        }
    }
    // Curves, bars, 4 cells' Fig. 6 (the VLP arm has no finished run yet), the heatmap.
    assert_eq!(svgs, 7);
    let curves = std::fs::read_to_string(r.join("curves-val-vqa-score_epoch.svg")).unwrap();
    let drawn = reports::figures::check_svg(&curves).unwrap();
    // The VLP arm has no finished run: the curves are named by what varies among the others.
    for label in [
        "VQA score (val)",
        "SAUE, Managed layers 2",
        "AAUE, Managed layers 4",
    ] {
        assert!(drawn.has_text(label), "{label} not drawn in the curves");
    }
    let heat = std::fs::read_to_string(r.join("manager-heatmap.svg")).unwrap();
    let drawn = reports::figures::check_svg(&heat).unwrap();
    for title in [
        "SAUE, Managed layers 2, no VLP",
        "SAUE, Managed layers 4, no VLP",
        "AAUE, Managed layers 2, no VLP",
        "AAUE, Managed layers 4, no VLP",
    ] {
        assert!(drawn.has_text(title), "heatmap row {title:?} missing");
    }
    assert!(r
        .join("manager-weights-managed_layers_text-4-manager_type-aaue.png")
        .is_file());
}
