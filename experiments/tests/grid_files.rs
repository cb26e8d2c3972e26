//! Grid features as written in files: zip groups, include/exclude rules, metrics, baselines.

use std::path::Path;

use experiments::{Experiment, Goal, Overrides, Summary, Task};

fn load(body: &str, ov: &Overrides) -> Result<Experiment, String> {
    let src = format!("name = \"g\"\ntask = \"vqa\"\n{body}");
    Experiment::from_toml(&src, Path::new("g.toml"), ov).map_err(|e| e.to_string())
}

fn keys(e: &Experiment) -> Vec<String> {
    e.runs().iter().map(|r| r.key.to_string()).collect()
}

const METRIC: &str = "[metric]\nname = \"m\"\ngoal = \"maximize\"\n";

#[test]
fn zip_include_exclude_and_seeds() {
    let body = format!(
        "[base]\npreset = \"tiny\"\n[grid]\nmanager_type = [\"BT\", \"AAUE\"]\nseeds = 2\n\
         [[zip]]\nnum_layers = [1, 2]\nlearning_rate = [1e-3, 1e-3]\n\
         [[exclude]]\nmanager_type = \"BT\"\nnum_layers = 1\n\
         [[include]]\nmanager_type = \"SAE\"\nhidden_size = 128\n{METRIC}"
    );
    let e = load(&body, &Overrides::none()).unwrap();
    // (2 × 2 − 1 excluded + 1 included) points × 2 seeds.
    assert_eq!(
        keys(&e),
        [
            "manager_type=BT,num_layers=2",
            "manager_type=BT,num_layers=2",
            "manager_type=AAUE,num_layers=1",
            "manager_type=AAUE,num_layers=1",
            "manager_type=AAUE,num_layers=2",
            "manager_type=AAUE,num_layers=2",
            "hidden_size=128,manager_type=SAE",
            "hidden_size=128,manager_type=SAE",
        ]
    );
    let inc = &e.runs()[6].settings;
    assert_eq!((inc.hidden_size, inc.manager_type.as_str()), (128, "SAE"));
    // The include takes the base values for the grid's axes.
    assert_eq!(inc.num_layers, experiments::Settings::tiny().num_layers);
    assert_eq!(e.seeds, [0, 1]);
    assert_eq!(e.runs()[1].seed, 1);
}

#[test]
fn overriding_a_zipped_axis_keeps_matching_rows() {
    let body = format!(
        "[base]\npreset = \"tiny\"\n[[zip]]\nnum_layers = [1, 2]\nlearning_rate = [1e-3, 2e-3]\n{METRIC}"
    );
    let ov = Overrides {
        env: vec![],
        set: vec!["learning_rate=2e-3".into()],
    };
    let e = load(&body, &ov).unwrap();
    assert_eq!(keys(&e), ["num_layers=2"]);
    let ov = Overrides {
        env: vec![],
        set: vec!["learning_rate=5e-3".into()],
    };
    assert_eq!(
        load(&body, &ov).unwrap_err(),
        "g.toml: --set #1: `learning_rate` = 0.005 matches no row of its zip group"
    );
}

#[test]
fn excluding_everything_is_an_error() {
    let body = format!(
        "[base]\npreset = \"tiny\"\n[grid]\nnum_layers = [1]\n[[exclude]]\nnum_layers = 1\n{METRIC}"
    );
    assert_eq!(
        load(&body, &Overrides::none()).unwrap_err(),
        "g.toml: the exclude rules remove every cell of the grid"
    );
}

#[test]
fn metrics_per_task_and_summary_policies() {
    let body = "[base]\npreset = \"tiny\"\n[[zip]]\ntask = [\"vqa\", \"irtr\"]\n\
        [[metric]]\ntask = \"vqa\"\nname = \"val/vqa/score_epoch\"\ngoal = \"maximize\"\nsummary = \"best\"\n\
        [[metric]]\nname = \"test/r_mean\"\ngoal = \"maximize\"\nsummary = { at_best_of = \"val/loss\", goal = \"minimize\" }\n";
    let e = load(body, &Overrides::none()).unwrap();
    assert_eq!(e.tasks(), [Task::Vqa, Task::Irtr]);
    let vqa = e.metric_for(Task::Vqa).unwrap();
    assert_eq!(
        (vqa.name.as_str(), &vqa.summary),
        ("val/vqa/score_epoch", &Summary::Best)
    );
    let irtr = e.metric_for(Task::Irtr).unwrap();
    assert_eq!(
        irtr.summary,
        Summary::AtBestOf {
            metric: "val/loss".into(),
            goal: Goal::Minimize
        }
    );
    // A task without a metric of its own or a catch-all is an error at [[metric]].
    let body = "[base]\npreset = \"tiny\"\n[[zip]]\ntask = [\"vqa\", \"irtr\"]\n\
        [[metric]]\ntask = \"vqa\"\nname = \"m\"\ngoal = \"maximize\"\n";
    assert_eq!(
        load(body, &Overrides::none()).unwrap_err(),
        "g.toml:7:3: no metric for task `irtr`; add a [[metric]] with task = \"irtr\""
    );
}

#[test]
fn baseline_per_grid_point() {
    let body = format!(
        "baseline = {{ manager_type = \"BT\" }}\n[base]\npreset = \"tiny\"\n[grid]\nmanager_type = [\"BT\", \"AAUE\"]\nnum_layers = [1, 2]\n{METRIC}"
    );
    let e = load(&body, &Overrides::none()).unwrap();
    let aaue2 = e
        .runs()
        .iter()
        .find(|r| r.key.as_str() == "manager_type=AAUE,num_layers=2")
        .unwrap();
    assert_eq!(
        e.baseline_for(&aaue2.axes).unwrap().as_str(),
        "manager_type=BT,num_layers=2"
    );
    assert!(!e.is_baseline(&aaue2.axes));
}

#[test]
fn narrowing_the_baseline_away_warns_instead_of_failing() {
    let body = format!(
        "baseline = {{ manager_type = \"BT\" }}\n[base]\npreset = \"tiny\"\n[grid]\nmanager_type = [\"BT\", \"AAUE\"]\n{METRIC}"
    );
    let ov = Overrides {
        env: vec![],
        set: vec!["manager_type=AAUE".into()],
    };
    let e = load(&body, &ov).unwrap();
    assert_eq!(keys(&e), ["manager_type=AAUE"]);
    assert_eq!(
        e.warnings,
        ["the baseline is outside the grid once the override of `manager_type` narrows it; reports show no differences"]
    );
    assert!(e.baseline_for(&e.runs()[0].axes).is_none());
}

#[test]
fn wandb_section_defaults() {
    let body = format!("[base]\npreset = \"tiny\"\n{METRIC}[wandb]\nentity = \"lab\"\n");
    let w = load(&body, &Overrides::none()).unwrap().wandb.unwrap();
    assert!(w.enabled && !w.live);
    assert_eq!(
        w.project, "g",
        "the project defaults to the experiment's name"
    );
    assert_eq!(w.entity.as_deref(), Some("lab"));
}

#[test]
fn overrides_apply_to_include_cells_too() {
    let body = format!(
        "[base]\npreset = \"tiny\"\n[grid]\nnum_layers = [1, 2]\n\
         [[include]]\nmanager_type = \"SAE\"\n\
         [[include]]\nmanager_type = \"SAUE\"\nnum_layers = 1\n{METRIC}"
    );
    let ov = Overrides {
        env: vec![],
        set: vec!["num_layers=2".into()],
    };
    let e = load(&body, &ov).unwrap();
    // The SAUE include sets num_layers = 1 and is narrowed away; the SAE one gets the override.
    assert_eq!(keys(&e), ["num_layers=2", "manager_type=SAE"]);
    assert!(e.runs().iter().all(|r| r.settings.num_layers == 2));
}
