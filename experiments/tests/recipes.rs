//! Task recipes in the layering (preset → task recipe → file → environment → `--set`), the
//! sources of every resolved setting, and the README's copy of the recipe table.

use std::path::Path;

use experiments::{
    recipes, shipped, Experiment, IdentityContext, Overrides, Role, SettingSource, Task,
};

fn load(src: &str, ov: &Overrides) -> Experiment {
    Experiment::from_toml(src, Path::new("t.toml"), ov).unwrap_or_else(|e| panic!("{e}"))
}

const VQA: &str = r#"
name = "t"
task = "vqa"
[base]
preset = "base"
learning_rate = 3e-5
[grid]
manager_type = ["BT", "AAUE"]
[metric]
name = "val/vqa/score_epoch"
goal = "maximize"
"#;

#[test]
fn the_recipe_sits_between_the_preset_and_the_file() {
    let ov = Overrides {
        env: vec![("TOWERLAB_WEIGHT_DECAY".into(), "0.02".into())],
        set: vec!["max_epoch=3".into()],
    };
    let exp = load(VQA, &ov);
    for r in exp.runs() {
        let s = &r.settings;
        assert_eq!(r.recipe, Some("vqa-ftfs"));
        // The recipe (ftfs-base-vqa.sh) over the preset...
        assert_eq!(
            (s.image_size, s.lr_mult_head, s.batch_size),
            (576, 50.0, 512)
        );
        assert_eq!(s.train_transform_keys, ["albef_randaug_wohf"]);
        assert_eq!(r.sources["image_size"], SettingSource::Task);
        // ... under the file, the environment and --set.
        assert_eq!(s.learning_rate, 3e-5);
        assert_eq!(r.sources["learning_rate"], SettingSource::File);
        assert_eq!(s.weight_decay, 0.02);
        assert_eq!(r.sources["weight_decay"], SettingSource::Env);
        assert_eq!(s.max_epoch, 3);
        assert_eq!(r.sources["max_epoch"], SettingSource::Set);
        assert_eq!(r.sources["manager_type"], SettingSource::File);
        // What nothing names is the preset's.
        assert_eq!(r.sources["hidden_size"], SettingSource::Preset);
        // Every setting has a source.
        assert_eq!(r.sources.len(), experiments::Settings::keys().len());
    }
    // BridgeTower's managed layers follow from its type: their source is the manager type's.
    let bt = &exp.runs()[0];
    assert_eq!(bt.settings.managed_layers_text, bt.settings.num_layers);
    assert_eq!(bt.sources["managed_layers_text"], SettingSource::File);
}

#[test]
fn vlp_and_datasets_pick_the_recipe() {
    let src = r#"
name = "t"
[base]
preset = "base"
[grid]
seeds = [0]
[[zip]]
task = ["vqa", "vqa", "irtr", "irtr", "nlvr2", "snli"]
vlp = [false, true, false, false, false, false]
datasets = [["vqa"], ["vqa"], ["f30k"], ["coco"], ["nlvr2"], ["snli"]]
[pretrain]
seed = 0
[metric]
name = "val/the_metric"
goal = "maximize"
"#;
    let exp = load(src, &Overrides::none());
    let names: Vec<_> = exp.runs().iter().map(|r| r.recipe.unwrap()).collect();
    assert_eq!(
        names,
        ["vqa-ftfs", "vqa", "irtr-f30k", "irtr-coco", "nlvr2", "snli"]
    );
    // The cell keys tell the two retrieval sets apart.
    let keys: Vec<_> = exp.runs().iter().map(|r| r.key.to_string()).collect();
    assert!(
        keys.contains(&r#"datasets=["coco"],task=irtr,vlp=false"#.to_string()),
        "{keys:?}"
    );
    let coco = &exp.runs()[3].settings;
    assert_eq!(
        (coco.k_test, coco.max_epoch, coco.learning_rate),
        (256, 10, 5e-6)
    );
    let f30k = &exp.runs()[2].settings;
    assert_eq!(
        (f30k.k_test, f30k.max_epoch, f30k.per_gpu_batchsize),
        (128, 20, 64)
    );
    // The pre-training run takes pre_train.sh; its [pretrain] and fixed keys say "pretrain".
    let cells = exp.cells(&IdentityContext::fixed("v", "d"));
    let pre = cells.iter().find(|c| c.role == Role::Pretrain).unwrap();
    assert_eq!(pre.recipe, Some("pretrain"));
    assert_eq!(
        (
            pre.settings.image_size,
            pre.settings.max_steps,
            pre.settings.draw_false_image
        ),
        (288, 100_000, 1)
    );
    assert_eq!(pre.sources["image_size"], SettingSource::Task);
    assert_eq!(pre.sources["seed"], SettingSource::Pretrain);
    assert_eq!(pre.sources["task"], SettingSource::Pretrain);
}

#[test]
fn the_tiny_preset_and_the_demo_have_no_recipe() {
    let exp = Experiment::demo(&Overrides::none()).unwrap();
    for r in exp.runs() {
        assert_eq!(r.recipe, None);
        assert!(r
            .sources
            .values()
            .all(|s| matches!(s, SettingSource::Preset | SettingSource::File)));
        assert_eq!(r.settings.image_size, 64);
    }
}

#[test]
fn reference_only_keys_say_what_stands_for_them() {
    let ov = Overrides {
        env: vec![],
        set: vec!["gather_global_negative=true".into()],
    };
    let err = Experiment::from_toml(VQA, Path::new("t.toml"), &ov).unwrap_err();
    let text = err.to_string();
    assert!(
        text.contains("`gather_global_negative` is a reference setting"),
        "{text}"
    );
    assert!(text.contains("per_gpu_batchsize"), "{text}");
}

#[test]
fn eval_entries_are_cells_beside_the_grid() {
    let src =
        format!("{VQA}\n[[eval]]\nname = \"released\"\nweights = \"ckpt/x.ckpt\"\nvlp = true\n");
    let exp = load(&src, &Overrides::none());
    let cells = exp.cells(&IdentityContext::fixed("v", "d"));
    let eval = cells.iter().find(|c| c.role == Role::Eval).unwrap();
    assert_eq!(eval.key.as_str(), "eval[released]");
    assert_eq!(eval.recipe, Some("vqa"));
    assert!(
        eval.depends_on.is_none(),
        "an eval cell needs no pre-training"
    );
    assert_eq!(eval.settings.learning_rate, 3e-5);
    let target = eval.eval.as_ref().unwrap();
    assert_eq!(target.split, experiments::EvalSplit::Val);
    assert!(target.explicit.contains(&"learning_rate".to_string()));
    assert!(!target.explicit.contains(&"hidden_size".to_string()));
    // The row it makes in reports: the grid's axes, plus its name.
    assert!(eval
        .axes
        .iter()
        .any(|(k, v)| k == "manager_type" && v == "AAUE"));
    assert!(eval
        .axes
        .iter()
        .any(|(k, v)| k == "eval" && v == "released"));
    // The weights and the split are part of its identity.
    let other = src.replace("ckpt/x.ckpt", "ckpt/y.ckpt");
    let cells2 = load(&other, &Overrides::none()).cells(&IdentityContext::fixed("v", "d"));
    let eval2 = cells2.iter().find(|c| c.role == Role::Eval).unwrap();
    assert_ne!(eval.identity, eval2.identity);
    let test = src.replace("vlp = true", "vlp = true\nsplit = \"test\"");
    let cells3 = load(&test, &Overrides::none()).cells(&IdentityContext::fixed("v", "d"));
    let eval3 = cells3.iter().find(|c| c.role == Role::Eval).unwrap();
    assert_ne!(eval.identity, eval3.identity);
}

#[test]
fn bad_eval_entries_are_reported() {
    let src = format!("{VQA}\n[[eval]]\nweights = \"\"\nsplit = \"dev\"\nload_path = \"x\"\n");
    let err = Experiment::from_toml(&src, Path::new("t.toml"), &Overrides::none()).unwrap_err();
    let text = err.to_string();
    for want in [
        "needs a `name`",
        "eval weights expects the path of a checkpoint",
        "eval split expects \"val\" or \"test\"",
        "loads nothing else",
    ] {
        assert!(text.contains(want), "{want}: {text}");
    }
}

#[test]
fn the_readme_lists_every_recipe_value() {
    let readme = include_str!("../README.md");
    let table = recipes::markdown_table();
    assert!(
        readme.contains(&table),
        "experiments/README.md's recipe table is out of date; it should read:\n{table}"
    );
}

#[test]
fn shipped_paper_files_take_the_recipes_as_they_are() {
    // Every shipped paper file keeps its tasks' recipe values: what it says about a task is
    // its grid, its tables and its pre-training seed.
    for (path, src) in shipped::FILES {
        if !path.contains("paper/") {
            continue;
        }
        let exp = Experiment::from_toml(src, Path::new(path), &Overrides::none()).unwrap();
        for c in exp.cells(&IdentityContext::fixed("v", "d")) {
            let recipe = recipes::select(
                "base",
                recipes::Selector {
                    task: c.settings.task,
                    vlp: c.settings.vlp && c.role != Role::Pretrain,
                    coco: c.settings.datasets == ["coco"],
                },
            )
            .unwrap();
            assert_eq!(c.recipe, Some(recipe.name), "{path} {}", c.key);
            let settings = serde_json::to_value(&c.settings).unwrap();
            for v in &recipe.values {
                // Written in the file only where it names the recipe (`datasets` picks COCO).
                let same = experiments::grid::values_equal(&settings[v.key], &v.value);
                assert!(
                    same && matches!(c.sources[v.key], SettingSource::Task | SettingSource::File),
                    "{path} {}: {} = {} is not the recipe's {}",
                    c.key,
                    v.key,
                    settings[v.key],
                    v.value
                );
            }
            assert!(c.settings.task != Task::Pretrain || c.role == Role::Pretrain);
        }
    }
}
