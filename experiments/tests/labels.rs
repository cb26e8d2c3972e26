//! The `[labels]` section: names for metrics, axes and axis values in figures.

use std::path::Path;

use experiments::{Experiment, Overrides};

const HEAD: &str = r#"name = "t"
task = "vqa"
[metric]
name = "val/vqa/score_epoch"
goal = "maximize"
[base]
preset = "tiny"
[grid]
manager_type = ["SAUE", "AAUE"]
vlp = [false, true]
learning_rate = [1e-4, 2e-5]
[[zip]]
managed_layers_text = [2, 4]
managed_layers_image = [2, 4]
"#;

fn load(labels: &str) -> Result<Experiment, Vec<String>> {
    let src = format!("{HEAD}{labels}");
    Experiment::from_toml(&src, Path::new("t.toml"), &Overrides::none())
        .map_err(|e| e.to_string().lines().map(str::to_string).collect())
}

#[test]
fn the_file_names_metrics_axes_and_values() {
    let exp = load(
        r#"[labels]
"val/vqa/score_epoch" = "VQAv2 accuracy"
manager_type = "Manager"
managed_layers_text = "Managed layers"
[labels.values.vlp]
true = "with VLP"
false = "from scratch"
[labels.values.learning_rate]
1e-4 = "high"
[labels.values.managed_layers_text]
2 = "two"
"#,
    )
    .unwrap();
    let l = &exp.labels;
    assert_eq!(l.metric("val/vqa/score_epoch"), "VQAv2 accuracy");
    assert_eq!(l.metric("train/loss"), "Loss (train)", "defaults stay");
    assert_eq!(l.axis("managed_layers_text"), "Managed layers");
    assert_eq!(l.value("vlp", "false"), "from scratch");
    // Values are keyed as runs carry them: numbers as JSON.
    assert_eq!(l.values["learning_rate"]["0.0001"], "high");
    assert_eq!(l.value("managed_layers_text", "2"), "two");
    // Without a section, only defaults.
    assert!(load("").unwrap().labels == experiments::Labels::default());
}

#[test]
fn bad_labels_name_the_key_and_what_was_expected() {
    let errors = load(
        r#"[labels]
manager_typ = "Manager"
"val/vqa/score_epoch" = 3
"train/loss" = ""
[labels.values.vpl]
true = "VLP"
[labels.values.manager_type]
BT = "BridgeTower"
"#,
    )
    .unwrap_err();
    assert_eq!(
        errors,
        [
            "t.toml:16:1: labels names `manager_typ`, which is neither an axis of the grid nor a logged metric name (those look like `val/vqa/score_epoch`); did you mean the axis `manager_type`?",
            "t.toml:17:25: labels.\"val/vqa/score_epoch\" expects a string, found an integer",
            "t.toml:18:16: labels.\"train/loss\" must be a non-empty line of text",
            "t.toml:19:16: labels.values names `vpl`, which is not an axis of the grid; axes: manager_type, vlp, learning_rate, managed_layers_text, managed_layers_image",
            "t.toml:22:1: labels.values.manager_type: `BT` is not a value of the axis (SAUE, AAUE)",
        ]
    );
    let e = load("[labels]\nvalues = 3\n").unwrap_err();
    assert_eq!(
        e,
        ["t.toml:16:10: labels.values expects a table of axes, found an integer"]
    );
}
