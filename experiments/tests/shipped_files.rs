//! Every shipped experiment file parses, validates and expands as documented.

use std::collections::HashSet;
use std::path::Path;

use experiments::{shipped, Experiment, IdentityContext, ManagerType, Overrides, Role, Task};

fn load(path: &str, src: &str) -> Experiment {
    Experiment::from_toml(src, Path::new(path), &Overrides::none())
        .unwrap_or_else(|e| panic!("{path}:\n{e}"))
}

#[test]
fn every_shipped_file_validates_without_warnings() {
    for (path, src) in shipped::FILES {
        let exp = load(path, src);
        assert!(!exp.runs().is_empty(), "{path}");
        assert!(exp.warnings.is_empty(), "{path}: {:?}", exp.warnings);
        for t in exp.tasks() {
            assert!(exp.metric_for(t).is_some(), "{path}: no metric for {t:?}");
        }
        let cells = exp.cells(&IdentityContext::fixed("test", "data"));
        let ids: HashSet<_> = cells.iter().map(|c| c.identity.clone()).collect();
        assert_eq!(ids.len(), cells.len(), "{path}: identities must be unique");
        // The baseline names a real cell for every grid point.
        if exp.baseline.is_some() {
            for r in exp.runs() {
                assert!(exp.baseline_for(&r.axes).is_some(), "{path}: {}", r.key);
            }
        }
    }
}

#[test]
fn the_demo_is_embedded_and_small() {
    let exp = Experiment::demo(&Overrides::none()).unwrap();
    assert_eq!(exp.name, "demo");
    assert_eq!(exp.preset, "tiny");
    assert!(exp.data.synthetic);
    let keys: Vec<String> = exp.runs().iter().map(|r| r.key.to_string()).collect();
    assert_eq!(
        keys,
        [
            "manager_type=BT",
            "manager_type=BT",
            "manager_type=SAUE",
            "manager_type=SAUE",
            "manager_type=AAUE",
            "manager_type=AAUE"
        ]
    );
    let seeds: Vec<u64> = exp.runs().iter().map(|r| r.seed).collect();
    assert_eq!(seeds, [0, 1, 0, 1, 0, 1]);
    for r in exp.runs() {
        assert_eq!(r.settings.task, Task::Vqa);
        assert_eq!(r.settings.hidden_size, 64);
        // A few minutes on two cores.
        assert!(r.settings.max_steps > 0 && r.settings.max_steps <= 500);
        // BridgeTower's managed layers follow num_layers.
        if r.settings.manager_type == ManagerType::Bt {
            assert_eq!(r.settings.managed_layers_text, r.settings.num_layers);
        }
    }
    assert_eq!(
        shipped::find("demo").map(|f| f.0),
        Some("experiments/demo.toml")
    );
    assert_eq!(
        shipped::find("paper/vlp").map(|f| f.0),
        Some("experiments/paper/vlp.toml")
    );
}

#[test]
fn paper_files_use_the_papers_recipes() {
    let (path, src) = shipped::find("manager_types").unwrap();
    let exp = load(path, src);
    assert_eq!(exp.runs().len(), 8);
    for r in exp.runs() {
        let s = &r.settings;
        assert_eq!(s.hidden_size, 768);
        match s.task {
            Task::Vqa => {
                assert_eq!(
                    (s.image_size, s.learning_rate, s.lr_mult_head),
                    (576, 2e-5, 50.0)
                );
                assert_eq!(s.test_tables, ["vqav2_test-dev"]);
            }
            Task::Irtr => {
                assert_eq!(
                    (s.image_size, s.learning_rate, s.lr_mult_head),
                    (384, 6e-6, 5.0)
                );
                // The reference tables: Flickr30K validates and tests on its Karpathy test.
                assert!(s.test_tables.is_empty());
                assert_eq!(
                    s.tables(experiments::Split::Test),
                    ["f30k_caption_karpathy_test"]
                );
                assert!(s.get_recall_metric);
                // The 8 GPUs' contrastive pool on one device.
                assert_eq!(s.per_gpu_batchsize, 64);
            }
            other => panic!("{other:?}"),
        }
    }
}

#[test]
fn vlp_cells_share_one_pretraining_run_per_model() {
    let (path, src) = shipped::find("vlp").unwrap();
    let exp = load(path, src);
    let cells = exp.cells(&IdentityContext::fixed("test", "data"));
    let pre: Vec<_> = cells.iter().filter(|c| c.role == Role::Pretrain).collect();
    assert_eq!(pre.len(), 2, "one per manager type");
    for p in &pre {
        assert_eq!(p.settings.task, Task::Pretrain);
        assert_eq!(p.settings.max_steps, 100_000);
        assert_eq!(p.settings.image_size, 288);
        assert!(!p.settings.vlp);
    }
    // Pre-training runs come before the cells that need them.
    for (i, c) in cells.iter().enumerate() {
        if let Some(dep) = &c.depends_on {
            let at = cells.iter().position(|p| &p.identity == dep).unwrap();
            assert!(at < i);
            assert!(c.settings.vlp);
            assert_eq!(cells[at].settings.manager_type, c.settings.manager_type);
        } else if c.role == Role::Grid {
            assert!(!c.settings.vlp);
        }
    }
}

#[test]
fn the_readme_example_validates() {
    let readme = include_str!("../README.md");
    let start = readme.find("```toml\n").unwrap() + "```toml\n".len();
    let end = start + readme[start..].find("```").unwrap();
    let exp = load("README.md", &readme[start..end]);
    // 3 manager types × 2 depths × 2 tasks − 2 excluded + 1 included, × 3 seeds.
    assert_eq!(exp.runs().len(), (3 * 2 * 2 - 2 + 1) * 3);
    assert_eq!(
        exp.warnings,
        ["[pretrain] is unused: no cell has vlp = true"]
    );
}
