//! A researcher's own study, end to end, through the real binary: synthetic data from
//! `towerlab data synth` with no table settings in the file, a grid with a zip of managed
//! layers, two seeds and a VLP arm; plan, run, edit the grid, plan, run again, report, export
//! and sync to a loopback W&B server. Every step is checked against what `plan` shows: the
//! scores beat the data's majority baseline, the report, the export and the W&B groups hold
//! exactly the plan's done identities (and say what they left out), and exit codes are as
//! stated.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use serde::de::{Deserializer as _, MapAccess, Visitor};
use testkit::wandb_server::TestServer;

const KEY: &str = "study-e2e-key-0123456789abcdef0123456789";
const STEPS: u32 = 100;

/// The study as the researcher writes it: a zip of manager type and managed layers (SAUE at
/// `saue` layers, AAUE at 3), AAUE also with VLP, two seeds; no table settings, no head size.
/// Tiny models, 100 steps: enough for every run to pass the majority answer.
fn grid(saue: u32) -> String {
    format!(
        r#"
name = "study"
description = "SAUE vs AAUE at their managed layers, with and without VLP"
task = "vqa"
baseline = {{ manager_type = "SAUE" }}

[data]
root = "data"

[base]
preset = "tiny"
device = "cpu"
num_workers = 0
batch_size = 32
per_gpu_batchsize = 32
per_gpu_eval_batchsize = 64
max_steps = {STEPS}
max_epoch = 100
warmup_steps = 0.0
val_check_steps = {half}
learning_rate = 1e-3
lr_mult_head = 10.0
system_interval_s = 0.2

[grid]
vlp = [false, true]
seeds = [0, 1]

[[zip]]
manager_type = ["SAUE", "AAUE"]
managed_layers_text = [{saue}, 3]
managed_layers_image = [{saue}, 3]

[[exclude]]
manager_type = "SAUE"
vlp = true

[pretrain]
max_steps = 20
val_check_steps = 20

[metric]
name = "val/vqa/score_epoch"
goal = "maximize"
summary = "best"

[wandb]
enabled = false
project = "study"
"#,
        half = STEPS / 2
    )
}

struct Study {
    dir: tempfile::TempDir,
    server: TestServer,
}

impl Study {
    fn new() -> Self {
        Self {
            dir: tempfile::tempdir().unwrap(),
            server: TestServer::start(KEY),
        }
    }

    fn root(&self) -> &Path {
        self.dir.path()
    }

    fn file(&self) -> PathBuf {
        self.root().join("study.toml")
    }

    fn towerlab_in(&self, cwd: &Path, args: &[&str]) -> Output {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_towerlab"));
        for (var, _) in std::env::vars() {
            if var.starts_with("WANDB_") || var.starts_with("TOWERLAB_") {
                cmd.env_remove(var);
            }
        }
        cmd.current_dir(cwd)
            .env("WANDB_BASE_URL", &self.server.base_url)
            .env("WANDB_API_KEY", KEY)
            .env("NETRC", "/nonexistent")
            .arg("--db")
            .arg(self.root().join("towerlab.db"))
            .args(args)
            .output()
            .unwrap()
    }

    fn towerlab(&self, args: &[&str]) -> Output {
        self.towerlab_in(self.root(), args)
    }

    fn ok(&self, args: &[&str]) -> String {
        let out = self.towerlab(args);
        let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
        assert!(
            out.status.success(),
            "towerlab {args:?} failed ({}):\n{stdout}\n{}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        );
        stdout
    }

    fn plan(&self) -> Plan {
        Plan::parse(&self.ok(&["plan", "study.toml"]))
    }
}

/// The rows of `towerlab plan`: state, short identity, cell, seed.
struct Plan {
    text: String,
    rows: Vec<(String, String, String, u64)>,
}

impl Plan {
    fn parse(text: &str) -> Self {
        let rows = text
            .lines()
            .skip(2)
            .filter(|l| !l.starts_with(' ') && l.split_whitespace().count() >= 4)
            .filter_map(|l| {
                let f: Vec<&str> = l.split_whitespace().collect();
                Some((
                    f[0].to_string(),
                    f[1].to_string(),
                    f[2].to_string(),
                    f[3].parse().ok()?,
                ))
            })
            .collect();
        Self {
            text: text.to_string(),
            rows,
        }
    }

    fn count(&self, state: &str) -> usize {
        self.rows.iter().filter(|r| r.0 == state).count()
    }

    /// Short identities of the done rows (`grid`: without the pre-training runs).
    fn done(&self, grid: bool) -> BTreeSet<String> {
        self.rows
            .iter()
            .filter(|r| r.0 == "done" && (!grid || !r.2.starts_with("pretrain[")))
            .map(|r| r.1.clone())
            .collect()
    }
}

/// The values of a CSV column (no quoted commas in the columns read here).
fn column(csv: &str, name: &str) -> Vec<String> {
    let mut lines = csv.lines().filter(|l| !l.starts_with('#'));
    let header: Vec<&str> = lines.next().unwrap().split(',').collect();
    let i = header
        .iter()
        .position(|h| *h == name)
        .unwrap_or_else(|| panic!("no column {name} in {header:?}"));
    lines.map(|l| split_csv(l)[i].clone()).collect()
}

/// RFC 4180 fields of one line.
fn split_csv(line: &str) -> Vec<String> {
    let mut out = vec![String::new()];
    let mut quoted = false;
    let mut chars = line.chars().peekable();
    while let Some(c) = chars.next() {
        match (c, quoted) {
            ('"', true) if chars.peek() == Some(&'"') => {
                chars.next();
                out.last_mut().unwrap().push('"');
            }
            ('"', _) => quoted = !quoted,
            (',', false) => out.push(String::new()),
            (c, _) => out.last_mut().unwrap().push(c),
        }
    }
    out
}

/// The keys of one JSON object line, in order, duplicates kept (a map would drop them).
fn raw_keys(line: &str) -> Vec<String> {
    struct Keys;
    impl<'de> Visitor<'de> for Keys {
        type Value = Vec<String>;
        fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
            f.write_str("a JSON object")
        }
        fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Vec<String>, A::Error> {
            let mut keys = Vec::new();
            while let Some((k, _)) = map.next_entry::<String, serde::de::IgnoredAny>()? {
                keys.push(k);
            }
            Ok(keys)
        }
    }
    serde_json::Deserializer::from_str(line)
        .deserialize_map(Keys)
        .unwrap()
}

/// `majority baseline: 12.34%` of `towerlab data inspect` on one table.
fn majority_baseline(s: &Study, table: &str) -> f64 {
    let out = s.ok(&[
        "data",
        "inspect",
        &format!("data/{table}.arrow"),
        "--samples",
        "0",
    ]);
    let at = out.find("majority baseline: ").expect(&out) + "majority baseline: ".len();
    let pct: String = out[at..].chars().take_while(|c| *c != '%').collect();
    pct.parse::<f64>().unwrap() / 100.0
}

#[test]
fn a_researchers_own_study_runs_reports_exports_and_syncs_what_its_plan_shows() {
    let started = std::time::Instant::now();
    let s = Study::new();
    s.ok(&["data", "synth", "--out", "data"]);
    std::fs::write(s.file(), grid(2)).unwrap();

    // 1. The plan of a file without table settings: the synthetic tables are found, the VQA
    // head takes the data's 21 answers, and it says that validation is not held out.
    let plan = s.plan();
    assert_eq!(
        plan.count("new"),
        7,
        "3 cells x 2 seeds and 1 pre-training run:\n{}",
        plan.text
    );
    assert!(
        plan.text
            .contains("note: the validation tables vqav2_val_fix"),
        "{}",
        plan.text
    );

    let out = s.ok(&["run", "study.toml", "--jobs", "2", "--threads", "1"]);
    assert!(out.contains("0 failed, 7 done"), "{out}");
    let plan = s.plan();
    assert_eq!(plan.count("done"), 7, "{}", plan.text);
    let shown = s.ok(&["show", &plan.rows[1].1]);
    assert!(shown.contains("vqav2_label_size = 21"), "{shown}");
    // What it cost: throughput (no MFU on the CPU), its memory, and the CPU time it took.
    let line = |label: &str| {
        shown
            .lines()
            .find(|l| l.starts_with(label))
            .unwrap_or_else(|| panic!("no `{label}` line in {shown}"))
            .to_string()
    };
    let throughput = line("throughput  ");
    let rate: f64 = throughput["throughput  ".len()..]
        .split(' ')
        .next()
        .unwrap()
        .parse()
        .unwrap_or_else(|_| panic!("{throughput}"));
    assert!(
        rate > 0.0 && throughput.contains(" samples/s · ") && throughput.ends_with(" MFU –"),
        "{throughput}"
    );
    let memory = line("memory      ");
    assert!(
        memory.contains("RSS ") && memory.contains(" MiB"),
        "{memory}"
    );
    assert!(
        !memory.contains('–'),
        "a run of seconds has RSS samples: {memory}"
    );
    assert_eq!(line("eta         "), "eta         ended");
    assert!(
        line("compute     ").ends_with(" CPU-h (last attempt)"),
        "{shown}"
    );
    // `report --cost`: every cell in CPU-hours, the VLP cell counting its pre-training run.
    let cost = s.ok(&["report", "study.toml", "--cost"]);
    assert!(cost.starts_with("compute of study:\n"), "{cost}");
    assert_eq!(
        cost.matches(" CPU-h").count(),
        4,
        "3 cells and the total: {cost}"
    );
    assert_eq!(cost.matches("1 shared").count(), 1, "{cost}");
    assert!(cost.contains("over 7 finished run(s)"), "{cost}");

    // 2. Every run learned something: above the majority answer of the validation set.
    let majority = majority_baseline(&s, "vqav2_val_fix");
    s.ok(&["report", "study.toml", "--out", "first", "--format", "csv"]);
    let runs_csv = std::fs::read_to_string(s.root().join("first/runs.csv")).unwrap();
    for score in column(&runs_csv, "val/vqa/score_epoch") {
        let score: f64 = score.parse().unwrap();
        assert!(
            score > majority,
            "{score} <= majority baseline {majority}:\n{runs_csv}"
        );
    }

    // 3. The researcher changes the zip: SAUE manages 4 layers instead of 2. Its cells (named
    // by the zip's first axis) are stale, and the plan says what changed.
    std::fs::write(s.file(), grid(4)).unwrap();
    let plan = s.plan();
    assert_eq!(
        (plan.count("done"), plan.count("stale")),
        (5, 2),
        "{}",
        plan.text
    );
    assert!(
        plan.text.contains("managed_layers_text: 2 → 4"),
        "{}",
        plan.text
    );
    let out = s.ok(&["run", "study.toml", "--jobs", "2", "--threads", "1"]);
    assert!(out.contains("queued 2 run(s)"), "{out}");
    let plan = s.plan();
    assert_eq!(plan.count("done"), 7, "{}", plan.text);
    let done_grid = plan.done(true);
    let done_all = plan.done(false);
    assert_eq!(done_grid.len(), 6);

    // 4. The report holds exactly the plan's done identities, and says what it left out.
    let out = s.ok(&["report", "study.toml", "--out", "report", "--p-values"]);
    assert!(
        out.contains("6 done run(s) of study's current plan"),
        "{out}"
    );
    assert!(
        out.contains("left out 2 run(s) of study superseded (its cell's settings, data or engine changed since)"),
        "{out}"
    );
    let dir = s.root().join("report");
    let runs_csv = std::fs::read_to_string(dir.join("runs.csv")).unwrap();
    let ids: BTreeSet<String> = column(&runs_csv, "run_id").into_iter().collect();
    assert_eq!(ids, done_grid, "{runs_csv}");
    assert!(column(&runs_csv, "used").iter().all(|u| u == "true"));
    let md = std::fs::read_to_string(dir.join("table.md")).unwrap();
    assert!(!md.contains("| 2 |"), "no cell of the old zip: {md}");
    assert_eq!(md.matches("2/2 seeds").count(), 3, "{md}");
    assert!(md.contains("p (val/vqa/score\\_epoch)"), "{md}");
    let table_csv = std::fs::read_to_string(dir.join("table.csv")).unwrap();
    assert!(
        column(&table_csv, "test").iter().any(|t| t == "paired"),
        "{table_csv}"
    );
    for f in [
        "curves-val-vqa-score_epoch.svg",
        "bars-val-vqa-score_epoch.svg",
        "manager-heatmap.svg",
    ] {
        assert!(dir.join(f).exists(), "{f}");
    }
    // One titled manager-weights figure per ManagerTower cell (SAUE and AAUE both manage).
    let weights: Vec<String> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with("manager-weights-") && n.ends_with(".png"))
        .collect();
    assert!(weights.len() >= 2, "{weights:?}");

    // 5. The export: identity columns for pandas, the plan's done runs (pre-training too),
    // manager weights beside, the folder made.
    let out = s.ok(&[
        "export",
        "--experiment",
        "study",
        "--format",
        "csv",
        "--out",
        "exports/study.csv",
    ]);
    assert!(out.contains("of 7 run(s)"), "{out}");
    assert!(out.contains("left out 2 run(s)"), "{out}");
    let csv = std::fs::read_to_string(s.root().join("exports/study.csv")).unwrap();
    let header = csv.lines().next().unwrap();
    assert_eq!(
        header,
        "experiment,cell,vlp,manager_type,managed_layers_text,managed_layers_image,seed,identity,run,key,step,value,time"
    );
    let exported: BTreeSet<String> = column(&csv, "identity")
        .into_iter()
        .map(|h| h[..12].to_string())
        .collect();
    assert_eq!(exported, done_all);
    assert!(column(&csv, "managed_layers_text").iter().all(|v| v != "2"));
    let weights =
        std::fs::read_to_string(s.root().join("exports/study-manager-weights.csv")).unwrap();
    assert!(weights.starts_with(
        "experiment,cell,vlp,manager_type,managed_layers_text,managed_layers_image,seed,identity,run,step,modality,layer,source,expert,weight"
    ));
    assert!(column(&weights, "source").iter().any(|s| s == "unimodal"));

    // 6. W&B: the plan's done runs, grouped by the plan's cells; nothing of the old zip; no
    // history line repeats a key.
    let out = s.ok(&["sync", "wandb", "--experiment", "study"]);
    assert!(
        out.contains("study: 7 done run(s) of its current plan"),
        "{out}"
    );
    {
        let state = s.server.state();
        assert_eq!(state.runs.len(), 7, "{out}");
        let mut groups: BTreeMap<String, usize> = BTreeMap::new();
        for run in state.runs.values() {
            let upsert = run.upserts.last().unwrap();
            let group = upsert["groupName"].as_str().unwrap().to_string();
            assert!(group.starts_with("study/"), "{group}");
            let config: serde_json::Value =
                serde_json::from_str(upsert["config"].as_str().unwrap()).unwrap();
            assert_ne!(
                config["managed_layers_text"]["value"], 2,
                "a superseded run was synced: {group}"
            );
            *groups.entry(group).or_default() += 1;
            assert_eq!(run.exit_code, Some(0));
            for line in run.lines("wandb-history.jsonl") {
                let keys = raw_keys(&line);
                let unique: BTreeSet<&String> = keys.iter().collect();
                assert_eq!(unique.len(), keys.len(), "a repeated key in {line}");
                assert!(
                    !line.contains("system"),
                    "a system metric in the history: {line}"
                );
            }
            // The system samples, in W&B's System panels' file and keys.
            let events = run.events();
            assert!(
                !events.is_empty(),
                "no wandb-events.jsonl line for {}",
                run.name
            );
            for e in &events {
                assert!(
                    e["system.proc.memory.rssMB"].as_f64().unwrap() > 10.0,
                    "{e}"
                );
                assert!(e["_timestamp"].as_f64().unwrap() > 1.7e9, "{e}");
            }
        }
        // Three grid cells of two seeds each, and the pre-training run.
        assert_eq!(groups.len(), 4, "{groups:?}");
        assert_eq!(
            groups.values().filter(|n| **n == 2).count(),
            3,
            "{groups:?}"
        );
    }

    // 7. Exit codes: a plan from elsewhere names the missing tables (2); a sweep whose runs
    // fail exits 1; a typo in [metric] is refused at plan time with the right name (2).
    let elsewhere = tempfile::tempdir().unwrap();
    let out = s.towerlab_in(elsewhere.path(), &["plan", s.file().to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("data/vqav2_train_fix.arrow"), "{err}");

    std::fs::write(
        s.root().join("typo.toml"),
        grid(4).replace("val/vqa/score_epoch", "val/vqa/score"),
    )
    .unwrap();
    let out = s.towerlab(&["plan", "typo.toml"]);
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("did you mean `val/vqa/score_epoch`?"), "{err}");

    // A corrupt training table: each run fails when it opens it.
    std::fs::write(s.root().join("data/corrupt.arrow"), b"not an arrow file").unwrap();
    std::fs::write(
        s.root().join("broken.toml"),
        "name = \"broken\"\ntask = \"vqa\"\n[data]\nroot = \"data\"\n[base]\npreset = \"tiny\"\n\
         device = \"cpu\"\nnum_workers = 0\nmax_steps = 2\ntrain_tables = [\"corrupt\"]\n\
         [grid]\nmanager_type = [\"SAUE\", \"AAUE\"]\n[metric]\nname = \"val/vqa/score_epoch\"\n\
         goal = \"maximize\"\n",
    )
    .unwrap();
    let out = s.towerlab(&["run", "broken.toml"]);
    assert_eq!(
        out.status.code(),
        Some(1),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("did not finish (2 failed)"), "{err}");

    eprintln!("the study took {:.0} s", started.elapsed().as_secs_f64());
}
