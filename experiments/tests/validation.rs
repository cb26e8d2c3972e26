//! Every validation problem, with its exact message and position.

use std::path::Path;

use experiments::{Experiment, Origin, Overrides};

const HEAD: &str = "name = \"t\"\ntask = \"vqa\"\n[metric]\nname = \"m\"\ngoal = \"maximize\"\n";

/// The `path:line:col: message` lines for `src` (HEAD is prepended: 5 lines).
fn errors_with(src: &str, ov: &Overrides) -> Vec<String> {
    let full = format!("{HEAD}{src}");
    match Experiment::from_toml(&full, Path::new("t.toml"), ov) {
        Ok(_) => Vec::new(),
        Err(e) => e.to_string().lines().map(str::to_string).collect(),
    }
}

fn errors(src: &str) -> Vec<String> {
    errors_with(src, &Overrides::none())
}

#[test]
fn a_valid_file_has_no_errors() {
    assert_eq!(
        errors("[base]\npreset = \"tiny\"\n[grid]\nmanager_type = [\"AAUE\"]\n"),
        Vec::<String>::new()
    );
}

#[test]
fn unknown_keys_suggest_the_closest() {
    assert_eq!(
        errors("[base]\npreset = \"tiny\"\nlearning_rat = 1e-3\n"),
        ["t.toml:8:1: unknown setting `learning_rat`; did you mean `learning_rate`?"]
    );
    assert_eq!(
        errors("[grid]\nmanaged_layer_text = [3]\n"),
        ["t.toml:7:1: unknown setting `managed_layer_text`; did you mean `managed_layers_text`?"]
    );
    assert_eq!(
        errors("[gird]\nx = 1\n"),
        ["t.toml:6:2: unknown key `gird` in the file; did you mean `grid`?"]
    );
}

#[test]
fn wrong_types_point_at_the_value() {
    assert_eq!(
        errors("[base]\nnum_layers = \"two\"\n"),
        ["t.toml:7:14: `num_layers` expects an integer, found a string"]
    );
    assert_eq!(
        errors("[grid]\nmanager_type = [\"AAUE\", \"XYZ\"]\n"),
        ["t.toml:7:25: `manager_type` expects one of \"AAUE\", \"SAUE\", \"SAE\", \"BT\", \"METER\", found \"XYZ\""]
    );
    assert_eq!(
        errors("[base]\npreset = \"huge\"\n"),
        ["t.toml:7:10: preset expects one of \"base\", \"tiny\", found \"huge\""]
    );
}

#[test]
fn empty_and_scalar_axes() {
    assert_eq!(
        errors("[grid]\nnum_layers = []\n"),
        ["t.toml:7:14: axis `num_layers` is empty"]
    );
    assert_eq!(
        errors("[grid]\nnum_layers = 3\n"),
        ["t.toml:7:14: axis `num_layers` expects an array of values, e.g. `num_layers = [3]`; put constants in [base]"]
    );
    assert_eq!(
        errors("[grid]\nnum_layers = [3, 3]\n"),
        ["t.toml:7:18: axis `num_layers` lists 3 twice"]
    );
    assert_eq!(
        errors("[grid]\nseeds = []\n"),
        ["t.toml:7:9: axis `seeds` is empty"]
    );
}

#[test]
fn impossible_combinations() {
    // Tiny encoders have 4 layers.
    assert_eq!(
        errors("[base]\npreset = \"tiny\"\n[grid]\nmanaged_layers_text = [3, 5]\n"),
        ["t.toml:9:27: cell managed_layers_text=5: managed_layers_text (5) is more than the encoder's layers (text_num_layers = 4)"]
    );
    assert_eq!(
        errors("[base]\npreset = \"tiny\"\nhidden_size = 65\n"),
        ["t.toml:8:15: hidden_size (65) is not divisible by num_heads (2)"]
    );
    assert_eq!(
        errors("[base]\npreset = \"tiny\"\nimage_size = 70\n"),
        ["t.toml:8:14: image_size (70) is not divisible by patch_size (16)"]
    );
    // BridgeTower bridges the top num_layers layers: a different managed_layers on an axis
    // would only make duplicate runs.
    assert_eq!(
        errors("[base]\npreset = \"tiny\"\n[grid]\nmanager_type = [\"BT\", \"AAUE\"]\nmanaged_layers_text = [2, 3]\n"),
        ["t.toml:10:27: cell managed_layers_text=3,manager_type=BT: managed_layers_text = 3 has no effect for BT, which bridges the top num_layers (2) uni-modal layers; exclude this combination or use 2"]
    );
    // ... and the exclude rule makes it valid.
    assert_eq!(
        errors("[base]\npreset = \"tiny\"\n[grid]\nmanager_type = [\"BT\", \"AAUE\"]\nmanaged_layers_text = [2, 3]\n[[exclude]]\nmanager_type = \"BT\"\nmanaged_layers_text = 3\n"),
        Vec::<String>::new()
    );
    assert_eq!(
        errors("[base]\npreset = \"tiny\"\n[grid]\nmanager_type = [\"BT\"]\nnum_layers = [4, 5]\n"),
        ["t.toml:10:18: cell manager_type=BT,num_layers=5: BT bridges the top num_layers uni-modal layers, but num_layers (5) is more than text_num_layers (4)",
         "t.toml:10:18: cell manager_type=BT,num_layers=5: BT bridges the top num_layers uni-modal layers, but num_layers (5) is more than vit_num_layers (4)"]
    );
}

#[test]
fn exclude_rules_must_name_axes_and_their_values() {
    let grid = "[grid]\nmanager_type = [\"BT\", \"AAUE\"]\nnum_layers = [2, 3]\n";
    assert_eq!(
        errors(&format!("{grid}[[exclude]]\nnum_layer = 2\n")),
        ["t.toml:10:1: exclude names `num_layer`, which is not an axis of the grid; did you mean `num_layers`?"]
    );
    assert_eq!(
        errors(&format!("{grid}[[exclude]]\nhidden_size = 2\n")),
        ["t.toml:10:1: exclude names `hidden_size`, which is not an axis of the grid (axes: manager_type, num_layers)"]
    );
    assert_eq!(
        errors(&format!("{grid}[[exclude]]\nnum_layers = 5\n")),
        ["t.toml:10:14: exclude value 5 is not a value of axis `num_layers` (2, 3)"]
    );
    assert_eq!(
        errors(&format!("{grid}[[exclude]]\n")),
        ["t.toml:9:1: an empty exclude rule would exclude every cell"]
    );
}

#[test]
fn zip_groups_need_equal_lengths() {
    assert_eq!(
        errors("[[zip]]\nnum_layers = [2, 3]\nlearning_rate = [1e-3]\n"),
        ["t.toml:6:1: the axes of a zip group need the same number of values: num_layers has 2, learning_rate has 1"]
    );
    assert_eq!(
        errors("[grid]\nnum_layers = [2]\n[[zip]]\nnum_layers = [2]\n"),
        ["t.toml:9:1: `num_layers` appears in more than one axis or zip group"]
    );
}

#[test]
fn metric_wandb_and_name_problems() {
    let src = "name = \"my exp\"\ntask = \"vqa\"\n[metric]\nname = \"m\"\ngoal = \"up\"\nsummary = \"median\"\n[wandb]\nproject = \"a/b\"\nlve = true\n";
    let err = Experiment::from_toml(src, Path::new("w.toml"), &Overrides::none()).unwrap_err();
    assert_eq!(
        err.to_string(),
        [
            "w.toml:1:8: name must be letters, digits, `-`, `_` or `.`, found \"my exp\"",
            "w.toml:5:8: metric.goal expects \"maximize\" or \"minimize\", found \"up\"",
            "w.toml:6:11: metric.summary expects \"last\", \"best\" or { at_best_of = \"<metric>\", goal = \"maximize\" }",
            "w.toml:8:11: wandb.project must not contain `/`",
            "w.toml:9:1: unknown key `lve` in [wandb]; did you mean `live`?",
        ]
        .join("\n")
    );
}

#[test]
fn missing_sections_and_syntax_errors() {
    let err =
        Experiment::from_toml("[grid]\n", Path::new("e.toml"), &Overrides::none()).unwrap_err();
    assert_eq!(
        err.messages(),
        [
            "missing [metric]: name the metric to report, e.g. [metric] name = \"val/vqa/score_epoch\", goal = \"maximize\"",
            "missing `name`: give the experiment a name, e.g. name = \"ablation\"",
            "missing `task`: say what the grid trains, e.g. task = \"vqa\"",
        ]
    );
    let err = Experiment::from_toml(
        "name = \"x\"\nnum = = 1\n",
        Path::new("s.toml"),
        &Overrides::none(),
    )
    .unwrap_err();
    assert_eq!(err.len(), 1);
    let line = err.to_string();
    assert!(line.starts_with("s.toml:2:"), "{line}");
    assert!(line.contains("TOML syntax error"), "{line}");
}

#[test]
fn all_problems_come_back_at_once_in_file_order() {
    let got = errors("[base]\nnum_layers = \"two\"\nlearnin_rate = 1\n[grid]\nseeds = []\nmanager_type = [\"XX\"]\n");
    assert_eq!(got.len(), 4, "{got:#?}");
    let lines: Vec<usize> = got
        .iter()
        .map(|l| l.split(':').nth(1).unwrap().parse().unwrap())
        .collect();
    assert_eq!(lines, [7, 8, 10, 11]);
}

#[test]
fn overrides_are_checked_with_their_origin() {
    let ov = Overrides {
        env: vec![
            ("TOWERLAB_NUM_LAYERS".into(), "many".into()),
            ("TOWERLAB_DB".into(), "x.db".into()),
        ],
        set: vec!["learning_rate".into(), "hidden_size=65".into()],
    };
    let full = format!("{HEAD}[base]\npreset = \"tiny\"\n");
    let err = Experiment::from_toml(&full, Path::new("t.toml"), &ov).unwrap_err();
    let origins: Vec<&Origin> = err.iter().map(|e| &e.origin).collect();
    assert_eq!(
        origins,
        [
            &Origin::Env("TOWERLAB_NUM_LAYERS".into()),
            &Origin::Set(1),
            &Origin::Set(2)
        ]
    );
    assert_eq!(
        err.to_string(),
        [
            "t.toml: environment variable TOWERLAB_NUM_LAYERS: `num_layers` expects an integer, found `many`",
            "t.toml: --set #1: expected key=value, found `learning_rate`",
            "t.toml: --set #2: hidden_size (65) is not divisible by num_heads (2)",
        ]
        .join("\n")
    );
}

#[test]
fn unknown_settings_in_env_are_warnings_only() {
    let ov = Overrides {
        env: vec![("TOWERLAB_LEARNIN_RATE".into(), "1".into())],
        set: vec![],
    };
    let exp = Experiment::from_toml(HEAD, Path::new("t.toml"), &ov).unwrap();
    assert_eq!(
        exp.warnings,
        ["TOWERLAB_LEARNIN_RATE is not a setting and is ignored; did you mean TOWERLAB_LEARNING_RATE?"]
    );
}

#[test]
fn pretrain_section_cannot_change_the_model() {
    assert_eq!(
        errors("[grid]\nvlp = [true]\n[pretrain]\nhidden_size = 512\ntask = \"vqa\"\n"),
        [
            "t.toml:9:1: `hidden_size` cannot be set in [pretrain]: the pre-training run takes its model from the fine-tuning cell",
            "t.toml:10:1: `task` cannot be set in [pretrain]: it is fixed for pre-training runs",
        ]
    );
}

#[test]
fn baseline_must_name_axis_values() {
    let src = "name = \"t\"\ntask = \"vqa\"\nbaseline = { manager_type = \"BT\" }\n[grid]\nmanager_type = [\"AAUE\"]\n[metric]\nname = \"m\"\ngoal = \"maximize\"\n";
    let err = Experiment::from_toml(src, Path::new("b.toml"), &Overrides::none()).unwrap_err();
    assert_eq!(
        err.to_string(),
        "b.toml:3:29: baseline value BT is not a value of axis `manager_type` (AAUE)"
    );
}

#[test]
fn dotted_keys_are_checked_as_paths() {
    assert_eq!(
        errors("[base]\noptim.lr = 1\n"),
        ["t.toml:7:7: unknown setting `optim.lr`"]
    );
    assert_eq!(
        errors("[base]\ndata_root = \"x\"\n"),
        ["t.toml:7:1: set the data folder in [data] root, not in [base]"]
    );
}

#[test]
fn top_level_keys_written_after_a_section() {
    assert_eq!(
        errors("[grid]\nmanager_type = [\"BT\"]\nbaseline = { manager_type = \"BT\" }\n"),
        ["t.toml:8:1: `baseline` is a top-level key: write it before the first [section] of the file"]
    );
}

#[test]
fn rejected_cells_do_not_also_report_the_baseline() {
    // The baseline cell is rejected for its loss_names: that error is the one to read, not
    // "the baseline matches no cell".
    let src = "name = \"t\"\ntask = \"vqa\"\nbaseline = { manager_type = \"BT\" }\n[base]\npreset = \"tiny\"\nloss_names = [\"mlm\"]\n[grid]\nmanager_type = [\"BT\", \"AAUE\"]\n[metric]\nname = \"m\"\ngoal = \"maximize\"\n";
    let err = Experiment::from_toml(src, Path::new("b.toml"), &Overrides::none()).unwrap_err();
    let lines: Vec<String> = err.to_string().lines().map(str::to_string).collect();
    assert_eq!(
        lines,
        ["b.toml:6:14: loss_names: task vqa trains \"vqa\", found \"mlm\"; pre-training objectives go in [pretrain] (or --set pretrain.loss_names=...)"]
    );
}
