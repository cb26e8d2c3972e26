//! Fills a real store with a synthetic ablation (for the end-to-end test and the benchmark),
//! through the store's public API only: runs are queued, claimed, report progress, metrics,
//! manager weights and logs, and finish or fail as a worker would make them.

use serde_json::json;
use store::{
    FailureClass, Goal, ManagerWeight, MetricPoint, NewLogLine, NewRun, Progress, RetryPolicy,
    Store, WorkerInfo,
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

fn sample_weights(steps: usize) -> Vec<ManagerWeight> {
    let mut out = Vec::new();
    for k in 1..=4 {
        let step = (steps * k / 4) as i64;
        for (m, modality) in ["text", "image"].iter().enumerate() {
            for layer in 0..6i64 {
                let raw: Vec<f64> = (0..6)
                    .map(|e| {
                        (-(0.5 + k as f64) * ((e - layer) as f64 - m as f64 * 0.5).abs()).exp()
                    })
                    .collect();
                let sum: f64 = raw.iter().sum();
                for (expert, v) in raw.iter().enumerate() {
                    out.push(ManagerWeight {
                        step,
                        modality: (*modality).into(),
                        layer,
                        expert: expert as i64,
                        weight: v / sum,
                    });
                }
            }
        }
    }
    out
}
