//! What the telemetry costs a training step: the real training loop (`run_with_data`) on
//! random VQA batches, run after run in one process with the `system/` sampler off and on
//! (alternating, so drift hits both arms alike), comparing the steps' own `perf/step_time_s`.
//! Also times one sample of the probe (the `/proc` reads, and NVML and the caching allocator
//! where present), which bounds the sampler's share of a core at any step time.
//!
//! `cargo bench -p engine --bench telemetry`. Environment: `TOWERLAB_BENCH_STEPS` (steps per
//! run, default 40), `TOWERLAB_BENCH_ROUNDS` (off/on pairs, default 4),
//! `TOWERLAB_BENCH_INTERVAL` (seconds between samples in the "on" arm, default 1, five times
//! as often as the default `system_interval_s`), `TOWERLAB_BENCH_IMAGE` (image size, default
//! 64), `TOWERLAB_BENCH_DEVICE` (`cpu` default, or `cuda`).

use std::sync::atomic::AtomicBool;
use std::sync::mpsc;
use std::time::Instant;

// What `random_vqa` takes from its includer.
#[allow(unused_imports)]
use engine::model::objectives::{Batch, Split};
use engine::perf::system::Probe;
use engine::train::{run_with_data, Event, TaskData, TrainJob};
#[allow(unused_imports)]
use engine::Result;
#[allow(unused_imports)]
use experiments::{ManagerType, Settings, Task};
#[allow(unused_imports)]
use tch::{Device, Kind, Tensor};

#[allow(dead_code)]
#[path = "../tests/support/random_vqa.rs"]
mod random_vqa;
use random_vqa::{job, settings, RandomVqa};

fn env_f64(key: &str, default: f64) -> f64 {
    std::env::var(key)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

struct Arm {
    step_times: Vec<f64>,
    samples: usize,
}

/// One run of `steps` steps; its step times after the first (warm-up) and the system samples
/// it sent.
fn one_run(s: &Settings, steps: usize) -> Arm {
    let data = RandomVqa {
        settings: s.clone(),
        batches: steps * 2,
        poison_at: None,
    };
    let dir = tempfile::tempdir().expect("a temporary folder");
    let (tx, rx) = mpsc::channel();
    let outcome = run_with_data(
        &job(dir.path(), s.clone(), false),
        &data,
        &tx,
        &AtomicBool::new(false),
    );
    drop(tx);
    assert!(
        matches!(outcome, engine::train::Outcome::Finished { .. }),
        "{outcome:?}"
    );
    let mut arm = Arm {
        step_times: Vec::new(),
        samples: 0,
    };
    for e in rx.try_iter() {
        match e {
            Event::Step { step, metrics } if step > 1 => {
                if let Some((_, t)) = metrics.iter().find(|(k, _)| k == engine::perf::STEP_TIME_S) {
                    arm.step_times.push(*t);
                }
            }
            Event::System { .. } => arm.samples += 1,
            _ => {}
        }
    }
    arm
}

fn median(v: &mut [f64]) -> f64 {
    v.sort_by(f64::total_cmp);
    let n = v.len();
    if n == 0 {
        return f64::NAN;
    }
    if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    }
}

fn main() {
    // `cargo bench` passes `--bench`; nothing to parse.
    let steps = env_f64("TOWERLAB_BENCH_STEPS", 40.0).max(3.0) as usize;
    let rounds = env_f64("TOWERLAB_BENCH_ROUNDS", 4.0).max(1.0) as usize;
    let interval = env_f64("TOWERLAB_BENCH_INTERVAL", 1.0);
    let image = env_f64("TOWERLAB_BENCH_IMAGE", 64.0) as i64;
    let device = std::env::var("TOWERLAB_BENCH_DEVICE").unwrap_or_else(|_| "cpu".into());
    let mut base = settings(steps as i64);
    base.val_check_steps = 0;
    base.image_size = image;
    base.resolution_before = image;
    base.device = device.clone();
    base.save_last = false;
    let off = Settings {
        system_interval_s: 0.0,
        ..base.clone()
    };
    let on = Settings {
        system_interval_s: interval,
        ..base.clone()
    };
    println!(
        "telemetry overhead: {rounds} rounds of one run off and one on, {steps} steps each \
         (batch {}, {image} px, {device}), samples every {interval} s when on",
        base.batch_size
    );
    let (mut t_off, mut t_on, mut samples) = (Vec::new(), Vec::new(), 0);
    for round in 0..rounds {
        // Alternate which arm goes first.
        let order = if round % 2 == 0 {
            [(&off, false), (&on, true)]
        } else {
            [(&on, true), (&off, false)]
        };
        for (s, is_on) in order {
            let arm = one_run(s, steps);
            if is_on {
                t_on.extend(arm.step_times);
                samples += arm.samples;
            } else {
                assert_eq!(arm.samples, 0, "telemetry off sent samples");
                t_off.extend(arm.step_times);
            }
        }
    }
    let wall_on: f64 = t_on.iter().sum();
    let mean = |v: &[f64]| v.iter().sum::<f64>() / v.len().max(1) as f64;
    let (mean_off, mean_on) = (mean(&t_off), mean(&t_on));
    let (med_off, med_on) = (median(&mut t_off), median(&mut t_on));

    // One probe sample, timed on its own.
    let mut probe = Probe::new(engine::train::resolve_device(&device).unwrap_or(tch::Device::Cpu));
    probe.sample();
    let reps = 200;
    let t = Instant::now();
    let mut keys = 0;
    for _ in 0..reps {
        keys = probe.sample().len();
    }
    let per_sample = t.elapsed().as_secs_f64() / reps as f64;

    println!();
    println!("| arm | steps | median step (ms) | mean step (ms) | system samples |");
    println!("| --- | ---: | ---: | ---: | ---: |");
    println!(
        "| telemetry off | {} | {:.2} | {:.2} | 0 |",
        t_off.len(),
        med_off * 1e3,
        mean_off * 1e3
    );
    println!(
        "| telemetry on | {} | {:.2} | {:.2} | {samples} |",
        t_on.len(),
        med_on * 1e3,
        mean_on * 1e3
    );
    let overhead = (med_on - med_off) / med_off;
    println!();
    println!(
        "overhead (median step time, on vs off): {:+.2}% (target < 1%: {})",
        100.0 * overhead,
        if overhead < 0.01 { "met" } else { "NOT met" }
    );
    println!(
        "one sample ({keys} metrics, NVML {}): {:.1} µs, i.e. {:.4}% of a core at one sample \
         per {interval} s ({} samples over {:.1} s of steps)",
        if probe.has_nvml() { "loaded" } else { "absent" },
        per_sample * 1e6,
        100.0 * per_sample / interval.max(1e-9),
        samples,
        wall_on
    );
}
