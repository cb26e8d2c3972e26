//! Settings precedence: preset → file base → cell axes → TOWERLAB_* → --set.

use std::path::Path;

use experiments::{Experiment, IdentityContext, Overrides, Role, Settings};

const FILE: &str = r#"
name = "layers"
task = "vqa"

[base]
preset = "tiny"
learning_rate = 0.1
num_layers = 1
max_steps = 10

[grid]
num_layers = [2, 3]

[metric]
name = "val/vqa/score_epoch"
goal = "maximize"
"#;

fn load(ov: &Overrides) -> Experiment {
    Experiment::from_toml(FILE, Path::new("layers.toml"), ov).unwrap_or_else(|e| panic!("{e}"))
}

fn env(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

#[test]
fn preset_then_base_then_axes() {
    let exp = load(&Overrides::none());
    let s: Vec<&Settings> = exp.runs().iter().map(|r| &r.settings).collect();
    assert_eq!(s.len(), 2);
    // Preset value nobody overrides.
    assert_eq!(s[0].hidden_size, Settings::tiny().hidden_size);
    // Base over preset.
    assert_eq!(s[0].learning_rate, 0.1);
    // Axis over base.
    assert_eq!((s[0].num_layers, s[1].num_layers), (2, 3));
}

#[test]
fn env_over_base_and_set_over_env() {
    let ov = Overrides {
        env: env(&[
            ("TOWERLAB_LEARNING_RATE", "0.2"),
            ("TOWERLAB_DEVICE", "cpu"),
        ]),
        set: vec![],
    };
    let exp = load(&ov);
    assert!(exp
        .runs()
        .iter()
        .all(|r| r.settings.learning_rate == 0.2 && r.settings.device == "cpu"));

    let ov = Overrides {
        env: env(&[("TOWERLAB_LEARNING_RATE", "0.2")]),
        set: vec!["learning_rate=0.3".into(), "max_steps = 7".into()],
    };
    let exp = load(&ov);
    assert!(exp
        .runs()
        .iter()
        .all(|r| r.settings.learning_rate == 0.3 && r.settings.max_steps == 7));
}

#[test]
fn overriding_an_axis_narrows_it() {
    let ov = Overrides {
        env: vec![],
        set: vec!["num_layers=3".into()],
    };
    let exp = load(&ov);
    let keys: Vec<String> = exp.runs().iter().map(|r| r.key.to_string()).collect();
    assert_eq!(keys, ["num_layers=3"]);
    // A value outside the axis replaces it (the key stays truthful).
    let ov = Overrides {
        env: env(&[("TOWERLAB_NUM_LAYERS", "1")]),
        set: vec![],
    };
    let exp = load(&ov);
    assert_eq!(exp.runs().len(), 1);
    assert_eq!(exp.runs()[0].settings.num_layers, 1);
    assert_eq!(exp.runs()[0].key.as_str(), "num_layers=1");
}

#[test]
fn set_seed_replaces_the_replicate_axis() {
    let ov = Overrides {
        env: vec![],
        set: vec!["seed=7".into()],
    };
    let exp = load(&ov);
    assert_eq!(exp.seeds, [7]);
    assert!(exp
        .runs()
        .iter()
        .all(|r| r.seed == 7 && r.settings.seed == 7));
}

#[test]
fn typed_parsing_of_set_values() {
    let ov = Overrides {
        env: vec![],
        set: vec![
            "amp_flag=yes".into(),
            "datasets=coco,vg".into(),
            "warmup_steps=100".into(),
            "manager_type=SAUE".into(),
        ],
    };
    let exp = load(&ov);
    let s = &exp.runs()[0].settings;
    assert!(s.amp_flag);
    assert_eq!(s.datasets, ["coco", "vg"]);
    assert_eq!(s.warmup_steps, 100.0);
    assert_eq!(s.manager_type.as_str(), "SAUE");
}

#[test]
// figment's Jail API fixes the closure's error type.
#[allow(clippy::result_large_err)]
fn process_environment_through_figment_jail() {
    figment::Jail::expect_with(|jail| {
        jail.create_file("exp.toml", FILE)?;
        jail.set_env("TOWERLAB_DEVICE", "cpu");
        jail.set_env("TOWERLAB_MAX_STEPS", "5");
        jail.set_env("TOWERLAB_DB", "elsewhere.db");
        let ov = Overrides::from_process_env(vec!["max_steps=6".into()]);
        let exp = Experiment::load(Path::new("exp.toml"), &ov).map_err(|e| e.to_string())?;
        for r in exp.runs() {
            assert_eq!(r.settings.device, "cpu");
            assert_eq!(r.settings.max_steps, 6, "--set beats the environment");
        }
        assert!(exp.warnings.is_empty(), "{:?}", exp.warnings);
        Ok(())
    });
}

#[test]
fn missing_file_is_one_clear_error() {
    let err = Experiment::load(Path::new("/nonexistent/x.toml"), &Overrides::none()).unwrap_err();
    assert_eq!(err.len(), 1);
    assert!(
        err.to_string()
            .starts_with("/nonexistent/x.toml: cannot read the file:"),
        "{err}"
    );
}

const VLP: &str = r#"
name = "v"
task = "vqa"
[base]
preset = "tiny"
learning_rate = 0.01
[grid]
manager_type = ["BT", "AAUE"]
vlp = [false, true]
seeds = [0, 1, 2]
[pretrain]
learning_rate = 0.5
max_steps = 11
seed = 4
[metric]
name = "m"
goal = "maximize"
"#;

#[test]
fn pretraining_layers_and_dedup() {
    let ov = Overrides {
        env: env(&[("TOWERLAB_DEVICE", "cpu")]),
        set: vec!["pretrain.max_steps=12".into()],
    };
    let exp = Experiment::from_toml(VLP, Path::new("v.toml"), &ov).unwrap();
    let cells = exp.cells(&IdentityContext::fixed("e", "d"));
    let pre: Vec<_> = cells.iter().filter(|c| c.role == Role::Pretrain).collect();
    // One pre-training run per model (BT, AAUE), shared by the three seeds.
    assert_eq!(pre.len(), 2);
    for p in &pre {
        let s = &p.settings;
        assert_eq!(s.seed, 4);
        assert_eq!(s.learning_rate, 0.5, "[pretrain] not [base]");
        assert_eq!(s.max_steps, 12, "--set pretrain.* applies");
        assert_eq!(s.device, "cpu", "environment applies to pre-training too");
        assert_eq!(
            s.hidden_size,
            Settings::tiny().hidden_size,
            "model from the cell"
        );
        assert!(
            p.key.as_str().starts_with("pretrain[manager_type="),
            "{}",
            p.key
        );
    }
    let dependents = cells.iter().filter(|c| c.depends_on.is_some()).count();
    assert_eq!(dependents, 6);
    let fine: Vec<_> = cells.iter().filter(|c| c.role == Role::Grid).collect();
    assert_eq!(fine.len(), 12);
    assert!(fine.iter().all(|c| c.settings.max_steps != 12));
}
