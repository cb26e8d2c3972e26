//! Synthetic ablations with a fixed pseudo-random generator: used by the tests, the benchmark
//! and `cargo run -p reports --example sample` to show every output without a store.

use std::collections::BTreeMap;

use crate::input::{
    Cell, Goal, ManagerWeightPoint, MetricSpec, Modality, Policy, ReportInput, RunData, RunStatus,
};

/// Textual and visual weights of the paper's Fig. 6 (layers 1–6 × experts 7–12), as read off the
/// figure in the spec; the sample runs scatter around them.
const FIG6_TEXT: [[f64; 6]; 6] = [
    [0.140, 0.139, 0.163, 0.188, 0.172, 0.130],
    [0.10, 0.065, 0.11, 0.43, 0.30, 0.01],
    [0.18, 0.077, 0.094, 0.226, 0.397, 0.032],
    [0.234, 0.096, 0.081, 0.205, 0.244, 0.145],
    [0.40, 0.121, 0.102, 0.098, 0.139, 0.147],
    [0.269, 0.160, 0.102, 0.045, 0.038, 0.391],
];
const FIG6_IMAGE: [[f64; 6]; 6] = [
    [0.107, 0.120, 0.145, 0.156, 0.181, 0.191],
    [0.01, 0.01, 0.03, 0.02, 0.27, 0.64],
    [0.01, 0.086, 0.083, 0.035, 0.584, 0.185],
    [0.08, 0.03, 0.065, 0.438, 0.104, 0.266],
    [0.266, 0.218, 0.047, 0.032, 0.071, 0.348],
    [0.062, 0.032, 0.065, 0.075, 0.444, 0.303],
];

/// splitmix64: tiny, fast and the same on every machine.
struct Rng(u64);

impl Rng {
    fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    /// Uniform in [-1, 1).
    fn noise(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64 * 2.0 - 1.0
    }
}

/// The metrics of the sample: VQA score (best), ITM loss (last), test score at best val score.
pub fn sample_metrics() -> Vec<MetricSpec> {
    vec![
        MetricSpec {
            label: Some("VQA val".into()),
            ..MetricSpec::new("val/vqa/score", Goal::Maximize, Policy::Best)
        },
        MetricSpec {
            label: Some("ITM loss".into()),
            ..MetricSpec::new("val/itm/loss", Goal::Minimize, Policy::Last)
        },
        MetricSpec {
            label: Some("VQA test".into()),
            ..MetricSpec::new(
                "test/vqa/score",
                Goal::Maximize,
                Policy::AtBestOf {
                    metric: "val/vqa/score".into(),
                    goal: Goal::Maximize,
                },
            )
        },
    ]
}

/// A small, realistic ablation: manager type × learning rate, 3 seeds, 200 logged steps, one
/// failed and one missing seed, manager weights for the ManagerTower cells.
pub fn sample_input() -> ReportInput {
    let managers = ["none", "SAUE", "AAUE"];
    let lrs = ["1e-5", "2e-5"];
    let mut rng = Rng(7);
    let mut cells = Vec::new();
    for (mi, manager) in managers.iter().enumerate() {
        for (li, lr) in lrs.iter().enumerate() {
            let key = format!("manager={manager},lr={lr}");
            let quality = 0.70 + 0.015 * mi as f64 + 0.004 * li as f64;
            let mut runs = Vec::new();
            for seed in 0..3u64 {
                let run_id = format!("r{}{}{seed}", mi, li);
                // Seed 2 of SAUE/2e-5 failed; seed 1 of none/2e-5 was never run.
                if (mi, li, seed) == (0, 1, 1) {
                    continue;
                }
                let status = if (mi, li, seed) == (1, 1, 2) {
                    RunStatus::Failed
                } else {
                    RunStatus::Finished
                };
                let mut run = synthetic_run(&mut rng, run_id, seed, status, quality, 200, 50);
                if *manager != "none" {
                    run.manager_weights = manager_weights(&mut rng, &[1_000, 5_000, 10_000]);
                }
                runs.push(run);
            }
            cells.push(Cell {
                key,
                axes: BTreeMap::from([
                    ("manager".to_string(), manager.to_string()),
                    ("lr".to_string(), lr.to_string()),
                ]),
                expected_seeds: vec![0, 1, 2],
                runs,
            });
        }
    }
    ReportInput {
        experiment: "manager_ablation".into(),
        experiment_hash: "3f9a1c07e2b4d5a6".into(),
        axes: vec!["manager".into(), "lr".into()],
        metrics: sample_metrics(),
        baseline: Some("manager=none,lr=1e-5".into()),
        cells,
        ..ReportInput::default()
    }
}

/// A large grid for the benchmark: `runs` finished runs (3 seeds per cell) with `steps` logged
/// points of each sample metric, and manager weights on every run.
pub fn synthetic(runs: usize, steps: usize) -> ReportInput {
    let seeds = 3usize;
    let n_cells = runs.div_ceil(seeds);
    let managers = ["none", "SAUE", "AAUE"];
    let mut rng = Rng(42);
    let mut cells = Vec::with_capacity(n_cells);
    let mut made = 0;
    for i in 0..n_cells {
        let manager = managers[i % managers.len()];
        let lr = format!("{}e-6", i / managers.len() + 1);
        let quality = 0.65 + 0.0001 * i as f64;
        let mut cell_runs = Vec::new();
        for seed in 0..seeds as u64 {
            if made == runs {
                break;
            }
            made += 1;
            let mut run = synthetic_run(
                &mut rng,
                format!("run{made:05}"),
                seed,
                RunStatus::Finished,
                quality,
                steps,
                10,
            );
            run.manager_weights = manager_weights(&mut rng, &[steps as u64 * 10]);
            cell_runs.push(run);
        }
        cells.push(Cell {
            key: format!("manager={manager},lr={lr}"),
            axes: BTreeMap::from([
                ("manager".to_string(), manager.to_string()),
                ("lr".to_string(), lr),
            ]),
            expected_seeds: (0..seeds as u64).collect(),
            runs: cell_runs,
        });
    }
    ReportInput {
        experiment: "synthetic".into(),
        experiment_hash: "0000synthetic".into(),
        axes: vec!["manager".into(), "lr".into()],
        metrics: sample_metrics(),
        baseline: cells.first().map(|c| c.key.clone()),
        cells,
        ..ReportInput::default()
    }
}

/// A researcher's study as the report of `towerlab report` gets it: the tiny preset's 2
/// cross-modal layers, 2 seeds, the metrics TowerLab logs, and `axes` (1 to 3) of
/// `manager_type` [SAUE, AAUE] × a zip of `managed_layers_text`/`managed_layers_image` [2, 4]
/// × `vlp` [false, true]. Every run records manager weights over its managed experts.
pub fn study_input(axes: usize) -> ReportInput {
    let mut rng = Rng(11 + axes as u64);
    let managers = ["SAUE", "AAUE"];
    let managed: &[u32] = if axes >= 2 { &[2, 4] } else { &[2] };
    let vlps: &[bool] = if axes >= 3 { &[false, true] } else { &[false] };
    let mut cells = Vec::new();
    for (mi, manager) in managers.iter().enumerate() {
        for (li, &layers) in managed.iter().enumerate() {
            for (vi, &vlp) in vlps.iter().enumerate() {
                let mut axes_map =
                    BTreeMap::from([("manager_type".to_string(), manager.to_string())]);
                let mut key = format!("manager_type={manager}");
                if axes >= 2 {
                    axes_map.insert("managed_layers_text".into(), layers.to_string());
                    axes_map.insert("managed_layers_image".into(), layers.to_string());
                    key = format!("managed_layers_text={layers},{key}");
                }
                if axes >= 3 {
                    axes_map.insert("vlp".into(), vlp.to_string());
                    key = format!("{key},vlp={vlp}");
                }
                let quality = 0.40 + 0.03 * mi as f64 + 0.02 * li as f64 + 0.05 * vi as f64;
                let runs = (0..2u64)
                    .map(|seed| {
                        let id = format!("s{mi}{li}{vi}{seed}");
                        let mut run =
                            synthetic_run(&mut rng, id, seed, RunStatus::Finished, quality, 60, 10);
                        let score = run.series.remove("val/vqa/score").unwrap_or_default();
                        run.series.insert("val/vqa/score_epoch".into(), score);
                        let loss = run.series.remove("val/itm/loss").unwrap_or_default();
                        run.series.insert("train/loss".into(), loss);
                        run.series.remove("test/vqa/score");
                        for step in [300u64, 600] {
                            for modality in [Modality::Text, Modality::Image] {
                                for layer in 1..=2u32 {
                                    let raw: Vec<f64> = (0..layers)
                                        .map(|e| {
                                            1.0 + e as f64
                                                * (layer as f64 + 0.3 * rng.noise().abs())
                                        })
                                        .collect();
                                    let sum: f64 = raw.iter().sum();
                                    for (e, w) in raw.iter().enumerate() {
                                        run.manager_weights.push(ManagerWeightPoint {
                                            step,
                                            modality,
                                            layer,
                                            // Experts numbered by their layer of a 4-layer encoder.
                                            expert: 4 - layers + 1 + e as u32,
                                            weight: w / sum,
                                        });
                                    }
                                }
                            }
                        }
                        run
                    })
                    .collect();
                cells.push(Cell {
                    key,
                    axes: axes_map,
                    expected_seeds: vec![0, 1],
                    runs,
                });
            }
        }
    }
    let mut all_axes = vec!["manager_type".to_string()];
    let mut zips = Vec::new();
    if axes >= 2 {
        all_axes.extend(["managed_layers_text".into(), "managed_layers_image".into()]);
        zips.push(vec![
            "managed_layers_text".into(),
            "managed_layers_image".into(),
        ]);
    }
    if axes >= 3 {
        all_axes.push("vlp".into());
    }
    ReportInput {
        experiment: format!("study-{axes}"),
        experiment_hash: "5747d1e5".into(),
        axes: all_axes,
        metrics: vec![
            MetricSpec::new("val/vqa/score_epoch", Goal::Maximize, Policy::Best),
            MetricSpec::new("train/loss", Goal::Minimize, Policy::Last),
        ],
        baseline: cells.first().map(|c| c.key.clone()),
        cells,
        zips,
        ..ReportInput::default()
    }
}

fn synthetic_run(
    rng: &mut Rng,
    run_id: String,
    seed: u64,
    status: RunStatus,
    quality: f64,
    points: usize,
    every: u64,
) -> RunData {
    let mut run = RunData::new(run_id, seed, status);
    let offset = 0.006 * rng.noise();
    let (mut val, mut loss, mut test) = (Vec::new(), Vec::new(), Vec::new());
    // A failed run stops a third of the way in.
    let n = if status == RunStatus::Failed {
        points / 3
    } else {
        points
    };
    for i in 1..=n {
        let step = i as u64 * every;
        let progress = 1.0 - (-(i as f64) / (points as f64 / 4.0)).exp();
        let v = (quality + offset) * progress + 0.01 * rng.noise();
        val.push((step, v));
        test.push((step, v - 0.01 + 0.005 * rng.noise()));
        loss.push((
            step,
            0.7 - 0.4 * progress - 0.2 * (quality - 0.7) + 0.02 * rng.noise(),
        ));
    }
    run.series.insert("val/vqa/score".into(), val);
    run.series.insert("test/vqa/score".into(), test);
    run.series.insert("val/itm/loss".into(), loss);
    run
}

fn manager_weights(rng: &mut Rng, steps: &[u64]) -> Vec<ManagerWeightPoint> {
    let mut out = Vec::new();
    for (si, &step) in steps.iter().enumerate() {
        // Early checkpoints are closer to uniform; the last one matches Fig. 6.
        let sharp = (si + 1) as f64 / steps.len() as f64;
        for (modality, table) in [(Modality::Text, &FIG6_TEXT), (Modality::Image, &FIG6_IMAGE)] {
            for (l, row) in table.iter().enumerate() {
                for (e, &w) in row.iter().enumerate() {
                    let w = (1.0 - sharp) / 6.0 + sharp * w + 0.01 * rng.noise();
                    out.push(ManagerWeightPoint {
                        step,
                        modality,
                        layer: l as u32 + 1,
                        expert: e as u32 + 7,
                        weight: w.max(0.0),
                    });
                }
            }
        }
    }
    out
}
