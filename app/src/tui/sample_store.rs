//! Fills a real store with a synthetic ablation (for the end-to-end test and the benchmark),
//! through the store's public API only: runs are queued, claimed, report progress, metrics,
//! manager weights and logs, and finish or fail as a worker would make them.

use serde_json::json;
use store::{
    FailureClass, Goal, ManagerWeight, ManagerWeightRow, MetricPoint, Modality, NewLogLine, NewRun,
    Progress, RetryPolicy, Store, WorkerInfo,
};

/// What to generate.
#[derive(Debug, Clone, Copy)]
pub struct SampleSpec {
    pub runs: usize,
    /// Steps per metric; each run logs `train/loss` at every step and `val/acc` every 10th.
    pub steps: usize,
    /// Runs are created in batches of this size (one transaction each).
    pub batch: usize,
}

/// Run `i` (0-based) fails when `i % 7 == 1` and is left running when `i == 2`.
pub async fn fill(store: &Store, spec: SampleSpec) -> store::Result<()> {
    let exp = store
        .upsert_experiment(
            "ablate-manager",
            "experiments/ablate-manager.toml",
            "sample",
        )
        .await?;
    let worker = WorkerInfo {
        id: "sample-worker".into(),
        host: "sample-host".into(),
        pid: 1,
        device: "cpu".into(),
        engine_version: "sample".into(),
    };
    let managers = ["adaptive", "static", "none"];
    let mut next = 0;
    while next < spec.runs {
        let end = (next + spec.batch.max(1)).min(spec.runs);
        let new: Vec<NewRun> = (next..end)
            .map(|i| {
                let manager = managers[i % 3];
                let layers = if (i / 3) % 2 == 0 { 6 } else { 12 };
                let seed = i / 6 + 1;
                let axes = json!({"manager": manager, "layers": layers, "seed": seed});
                NewRun {
                    hash: format!("sample{i:07}"),
                    cell_key: format!("layers={layers},manager={manager},seed={seed}"),
                    axes: axes.as_object().cloned().unwrap_or_default(),
                    task: "vqa".into(),
                    params: vec![
                        ("model.manager".into(), json!(manager)),
                        ("model.num_layers".into(), json!(layers)),
                        ("optim.lr".into(), json!(1e-5)),
                        ("seed".into(), json!(seed)),
                    ],
                    depends_on: None,
                }
            })
            .collect();
        store.create_runs(exp.id, &new).await?;
        for i in next..end {
            let Some(claim) = store.claim(&worker, Some(exp.id)).await? else {
                break;
            };
            let run = claim.lease.run_id;
            store
                .declare_metrics(
                    run,
                    &[("train/loss", Goal::Minimize), ("val/acc", Goal::Maximize)],
                )
                .await?;
            let failing = i % 7 == 1;
            let steps = if failing { spec.steps / 3 } else { spec.steps };
            let points = sample_points(i, steps);
            store.ingest_metrics(run, &points).await?;
            if managers[i % 3] == "adaptive" && i < 50 {
                store
                    .ingest_manager_weights(run, &sample_weights(steps))
                    .await?;
            }
            store
                .append_logs(
                    run,
                    &[NewLogLine {
                        time_ms: store::now_ms(),
                        level: "info".into(),
                        text: format!("run {i}: {steps} steps done"),
                    }],
                )
                .await?;
            store
                .heartbeat(
                    &claim.lease,
                    Some(Progress {
                        step: steps as i64,
                        total: Some(spec.steps as i64),
                    }),
                )
                .await?;
            if i == 2 {
                continue;
            }
            if failing {
                store
                    .fail(
                        &claim.lease,
                        FailureClass::Oom,
                        "CUDA out of memory. Tried to allocate 2.00 GiB",
                        &RetryPolicy::never(),
                    )
                    .await?;
            } else {
                store.finish(&claim.lease).await?;
            }
        }
        next = end;
    }
    Ok(())
}

fn sample_points(i: usize, steps: usize) -> Vec<MetricPoint> {
    let now = store::now_ms();
    let mut points = Vec::with_capacity(steps + steps / 10 + 1);
    let bonus = [0.04, 0.02, 0.0][i % 3];
    for s in 0..steps {
        let t = s as f64 / steps.max(1) as f64;
        points.push(MetricPoint {
            key: "train/loss".into(),
            step: s as i64,
            value: 2.0 * (-3.0 * t).exp() + 0.3 + ((i * 13 + s * 7) % 17) as f64 * 0.002,
            wall_ms: now,
        });
        if s % 10 == 0 {
            points.push(MetricPoint {
                key: "val/acc".into(),
                step: s as i64,
                value: (0.7 + bonus) * (1.0 - (-4.0 * t).exp()),
                wall_ms: now,
            });
        }
    }
    points
}

fn sample_weights(steps: usize) -> Vec<ManagerWeightRow> {
    let mut out = Vec::new();
    for k in 1..=4 {
        let step = (steps * k / 4) as i64;
        for (m, modality) in Modality::ALL.iter().enumerate() {
            for layer in 0..6u32 {
                let raw: Vec<f64> = (0..6)
                    .map(|e| {
                        (-(0.5 + k as f64) * ((e - i64::from(layer)) as f64 - m as f64 * 0.5).abs())
                            .exp()
                    })
                    .collect();
                let sum: f64 = raw.iter().sum();
                for (expert, v) in raw.iter().enumerate() {
                    out.push(ManagerWeightRow {
                        step,
                        value: ManagerWeight {
                            modality: *modality,
                            layer,
                            expert: expert as i64,
                            weight: v / sum,
                        },
                    });
                }
            }
        }
    }
    out
}

/// The experiment file of [`fill_study`]: a researcher's own study on the synthetic VQA data
/// with the tiny preset: SAUE and AAUE × a zip of managed layers (2, 4) × 2 seeds, and a VLP
/// arm (AAUE with 4 managed layers, fine-tuned from a pre-training run).
pub const STUDY_TOML: &str = r#"name = "study"
description = "SAUE vs AAUE, managed layers zipped, 2 seeds, a VLP arm"
task = "vqa"
baseline = { manager_type = "SAUE" }

[data]
root = "data/study"
synthetic = true

[base]
preset = "tiny"
max_steps = 200
val_check_steps = 50
learning_rate = 1e-3

[grid]
manager_type = ["SAUE", "AAUE"]
seeds = [0, 1]

[[zip]]
managed_layers_text = [2, 4]
managed_layers_image = [2, 4]

[[include]]
manager_type = "AAUE"
managed_layers_text = 4
managed_layers_image = 4
vlp = true

[pretrain]
max_steps = 100

[metric]
name = "val/vqa/score_epoch"
goal = "maximize"
summary = "best"
"#;

/// The clock [`fill_study`] writes run times by (the TUI fixtures' `FIXTURE_NOW_MS`).
pub const STUDY_NOW_MS: i64 = super::fixture::FIXTURE_NOW_MS;

/// Fills `store` with [`STUDY_TOML`]'s runs as the runner plans and a worker trains them: the
/// cells' real keys, axes, identities and settings (plus the runner's `_settings`,
/// `_identity` and `_role` params), the metric names the engine logs, manager weights with
/// the cross-modal weight (expert -1) for every ManagerTower run, logs. All finish but one
/// (seed 1 of SAUE with 4 managed layers fails with `nan`), the last fine-tuning run is
/// running and the one before it still queued. Run times are fixed relative to
/// [`STUDY_NOW_MS`] so that snapshots do not depend on the clock.
pub async fn fill_study(store: &Store) -> anyhow::Result<()> {
    fill_study_as(
        store,
        STUDY_TOML,
        &experiments::IdentityContext::fixed("fixture", "fixture-data"),
    )
    .await
}

/// [`fill_study`] of the study file `toml` (e.g. [`STUDY_TOML`] with another data root), its
/// runs under the identities `ctx` gives: a report of the file then finds them in its plan.
pub async fn fill_study_as(
    store: &Store,
    toml: &str,
    ctx: &experiments::IdentityContext<'_>,
) -> anyhow::Result<()> {
    use anyhow::Context as _;
    let exp = experiments::Experiment::from_toml(
        toml,
        std::path::Path::new("experiments/study.toml"),
        &experiments::Overrides::none(),
    )
    .map_err(|e| anyhow::anyhow!("the study fixture: {e}"))?;
    let cells = exp.cells(ctx);
    let row = store
        .upsert_experiment(&exp.name, "experiments/study.toml", "5747d1e5")
        .await?;
    let new: Vec<NewRun> = cells
        .iter()
        .map(|c| {
            let settings = serde_json::to_value(&c.settings)?;
            // As the runner stores them: the settings' keys, then its internal params.
            let mut params: Vec<(String, serde_json::Value)> = settings
                .as_object()
                .map(|m| m.iter().map(|(k, v)| (k.clone(), v.clone())).collect())
                .unwrap_or_default();
            params.push(("_settings".into(), settings.clone()));
            params.push(("_identity".into(), c.identity_document.clone()));
            params.push(("_role".into(), json!(c.role.as_str())));
            let mut axes: serde_json::Map<String, serde_json::Value> =
                c.axes.iter().cloned().collect();
            axes.insert("seed".into(), json!(c.seed));
            Ok(NewRun {
                hash: c.identity.as_str().to_string(),
                cell_key: c.key.0.clone(),
                axes,
                task: settings["task"].as_str().unwrap_or("vqa").to_string(),
                params,
                depends_on: c.depends_on.as_ref().map(|d| d.as_str().to_string()),
            })
        })
        .collect::<serde_json::Result<_>>()?;
    store.create_runs(row.id, &new).await?;
    let worker = WorkerInfo {
        id: "w-study".into(),
        host: "lab-node".into(),
        pid: 4242,
        device: "cpu".into(),
        engine_version: "fixture".into(),
    };
    let total = new.len();
    for n in 0..total - 1 {
        let Some(claim) = store.claim(&worker, Some(row.id)).await? else {
            break;
        };
        let run = claim.lease.run_id;
        let r = store.run(run).await?.context("a claimed run")?;
        let cell = cells
            .iter()
            .find(|c| c.identity.as_str() == r.hash)
            .context("a run of the study")?;
        let pretrain = cell.role == experiments::Role::Pretrain;
        let steps: i64 = if pretrain { 100 } else { 200 };
        let managed = cell.settings.managed_layers_text;
        let aaue = cell.settings.manager_type == experiments::ManagerType::Aaue;
        let quality = 0.30
            + 0.03 * f64::from(u8::from(aaue))
            + 0.01 * managed as f64
            + if cell.depends_on.is_some() { 0.06 } else { 0.0 }
            + 0.004 * cell.seed as f64;
        let failing = !pretrain && !aaue && managed == 4 && cell.seed == 1;
        let running = n == total - 2;
        let done = if failing {
            70
        } else if running {
            120
        } else {
            steps
        };
        // As the runner does: every run of the file declares its `[metric]`.
        store
            .declare_metrics(run, &[("val/vqa/score_epoch", Goal::Maximize)])
            .await?;
        let mut points = Vec::new();
        for s in 1..=done {
            let t = s as f64 / steps as f64;
            let wall_ms = STUDY_NOW_MS - 3_600_000 + s * 100;
            let mut push = |key: &str, value: f64| {
                points.push(MetricPoint {
                    key: key.into(),
                    step: s,
                    value,
                    wall_ms,
                })
            };
            let loss = 3.0 * (-3.0 * t).exp() + 0.6 - quality;
            if failing && s > 60 {
                push("train/loss", f64::NAN);
            } else {
                push("train/loss", loss);
            }
            push("train/lr", 1e-3 * (1.0 - t));
            push("train/grad_norm", 1.0 + 0.3 * (s as f64 * 0.7).sin());
            push("train/data_wait_share", 0.05 + 0.01 * (s as f64).cos());
            if pretrain {
                push("train/mlm/loss", loss + 1.0);
                push("train/itm/loss", 0.69 - 0.1 * t);
            } else {
                push("train/vqa/loss", loss);
                push("train/vqa/score", quality * (1.0 - (-4.0 * t).exp()));
            }
            if s % 50 == 0 {
                let score = quality * (1.0 - (-4.0 * t).exp());
                if pretrain {
                    push("val/itm/accuracy", 0.5 + 0.2 * t);
                    push("val/mlm/accuracy", 0.2 + 0.3 * t);
                    push("val/the_metric", 0.7 + 0.5 * t);
                } else {
                    push("val/vqa/score_epoch", score);
                    push("val/vqa/loss_epoch", loss + 0.1);
                    push("val/the_metric", score);
                }
            }
        }
        store.ingest_metrics(run, &points).await?;
        // Manager weights at every evaluation: softmaxed experts and, above the first
        // cross-modal layer, the raw weight on the layer below's output.
        let mut weights = Vec::new();
        for s in (50..=done).step_by(50) {
            for modality in Modality::ALL.iter().copied() {
                for layer in 0..2u32 {
                    let raw: Vec<f64> = (0..managed)
                        .map(|e| {
                            ((e + 1) as f64 * (0.4 + 0.2 * layer as f64 + s as f64 / 400.0)).exp()
                        })
                        .collect();
                    let sum: f64 = raw.iter().sum();
                    for (e, v) in raw.iter().enumerate() {
                        weights.push(ManagerWeightRow {
                            step: s,
                            value: ManagerWeight {
                                modality,
                                layer,
                                expert: e as i64,
                                weight: v / sum,
                            },
                        });
                    }
                    if layer > 0 {
                        weights.push(ManagerWeightRow {
                            step: s,
                            value: ManagerWeight {
                                modality,
                                layer,
                                expert: -1,
                                weight: 0.998 - 0.001 * s as f64 / 50.0,
                            },
                        });
                    }
                }
            }
        }
        store.ingest_manager_weights(run, &weights).await?;
        store
            .append_logs(
                run,
                &[
                    NewLogLine {
                        time_ms: STUDY_NOW_MS - 3_600_000,
                        level: "info".into(),
                        text: format!("started on cpu: {steps} steps"),
                    },
                    NewLogLine {
                        time_ms: STUDY_NOW_MS - 3_500_000,
                        level: "info".into(),
                        text: format!(
                            "step {done}: loss {:.4}",
                            3.0 * (-3.0 * done as f64 / steps as f64).exp() + 0.6 - quality
                        ),
                    },
                ],
            )
            .await?;
        store
            .heartbeat(
                &claim.lease,
                Some(Progress {
                    step: done,
                    total: Some(steps),
                }),
            )
            .await?;
        if failing {
            store
                .fail(
                    &claim.lease,
                    FailureClass::Nan,
                    "loss is NaN at step 61",
                    &RetryPolicy::never(),
                )
                .await?;
        } else if !running {
            store.finish(&claim.lease).await?;
        }
    }
    let pool = store
        .sqlite_pool()
        .ok_or_else(|| anyhow::anyhow!("the sample store is a SQLite file"))?;
    // Fixed times: run k started k minutes after the first, ran 5 minutes (+ k s).
    sqlx::query(
        "UPDATE runs SET created_ms = ?1 - 3600000 + id * 1000, \
           started_ms = CASE WHEN status = 'queued' THEN NULL ELSE ?1 - 3600000 + id * 60000 END, \
           ended_ms = CASE WHEN status IN ('finished', 'failed') THEN ?1 - 3600000 + id * 60000 + 300000 + id * 1000 END, \
           heartbeat_ms = CASE WHEN status = 'running' THEN ?2 ELSE heartbeat_ms END",
    )
    .bind(STUDY_NOW_MS)
    .bind(store::now_ms())
    .execute(pool)
    .await?;
    // No live worker: the workers pane would depend on the clock.
    sqlx::query("DELETE FROM workers").execute(pool).await?;
    Ok(())
}
