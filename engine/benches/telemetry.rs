//! What the telemetry costs a training step, measured in one run: a model trains step after
//! step (forward, backward, AdamW) while the `system/` sampler (`engine::perf::system`) is
//! switched on and off in blocks of steps, in quads off-on-on-off, so that the load of the
//! machine, which drifts, weighs on both arms alike (a linear drift cancels within a quad).
//! Each quad gives one estimate: the median step times of its two on-blocks against those of
//! its two off-blocks. The overhead is the mean of those independent estimates, with a 95%
//! confidence interval (Student's t); the target (< 1%) is met when the whole interval is below
//! it. Also times one sample of the probe (the `/proc` reads, and NVML and the caching allocator
//! where present), which bounds the sampler's share of a core.
//!
//! `cargo bench -p engine --bench telemetry`. Environment: `TOWERLAB_BENCH_QUADS` (quads,
//! default 96), `TOWERLAB_BENCH_BLOCK_STEPS` (steps per block, default 5: short blocks follow
//! the machine's drift closely),
//! `TOWERLAB_BENCH_INTERVAL` (seconds between samples, default 0.25: twenty times as often as
//! the default `system_interval_s`), `TOWERLAB_BENCH_DEVICE` (`cpu` default, or `cuda`),
//! `TOWERLAB_BENCH_THREADS` (libtorch's CPU threads; default all cores, so that on the CPU the
//! sampler's wake-ups contend with the step for a core, the worst case).

use std::sync::atomic::AtomicU64;
use std::sync::{mpsc, Arc};
use std::time::{Duration, Instant};

use engine::model::ModelConfig;
use engine::perf::system::{Probe, SystemSampler};
use experiments::{ManagerType, Settings};
use tch::{Device, Kind, Tensor};

#[path = "support/itm_step.rs"]
mod itm_step;

use itm_step::ItmStep;

fn env_f64(key: &str, default: f64) -> f64 {
    std::env::var(key)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn median(v: &[f64]) -> f64 {
    let mut v = v.to_vec();
    v.sort_by(f64::total_cmp);
    let n = v.len();
    if n == 0 {
        f64::NAN
    } else if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    }
}

/// The 97.5% quantile of Student's t with `df` degrees of freedom (two-sided 95% intervals).
fn t_975(df: usize) -> f64 {
    const TABLE: [f64; 30] = [
        12.706, 4.303, 3.182, 2.776, 2.571, 2.447, 2.365, 2.306, 2.262, 2.228, 2.201, 2.179, 2.160,
        2.145, 2.131, 2.120, 2.110, 2.101, 2.093, 2.086, 2.080, 2.074, 2.069, 2.064, 2.060, 2.056,
        2.052, 2.048, 2.045, 2.042,
    ];
    match df {
        0 => f64::NAN,
        1..=30 => TABLE[df - 1],
        _ => 1.96 + 2.4 / df as f64,
    }
}

fn main() {
    let quads = (env_f64("TOWERLAB_BENCH_QUADS", 96.0) as usize).max(3);
    let blocks = 4 * quads;
    let block_steps = (env_f64("TOWERLAB_BENCH_BLOCK_STEPS", 5.0) as usize).max(3);
    let interval = env_f64("TOWERLAB_BENCH_INTERVAL", 0.25).max(0.01);
    let device = match std::env::var("TOWERLAB_BENCH_DEVICE").as_deref() {
        Ok("cuda") => Device::Cuda(0),
        _ => Device::Cpu,
    };

    if let Some(n) = std::env::var("TOWERLAB_BENCH_THREADS")
        .ok()
        .and_then(|v| v.parse::<i32>().ok())
    {
        tch::set_num_threads(n);
    }

    // A small ManagerTower-shaped BridgeTower: tiny preset, 128 px, batch 16.
    tch::manual_seed(0);
    let mut s = Settings::tiny();
    s.manager_type = ManagerType::Bt;
    s.image_size = 128;
    let cfg = ModelConfig::from_settings(&s).expect("valid bench config");
    let mut trainer = ItmStep::new(cfg, device);
    let params = trainer.trainable_params();
    let (b, l) = (16, s.max_text_len);
    let ids = Tensor::randint_low(3, s.vocab_size, [b, l], (Kind::Int64, device));
    let mask = Tensor::ones([b, l], (Kind::Int64, device));
    let pixels = Tensor::randn([b, 3, s.image_size, s.image_size], (Kind::Float, device));
    let labels = Tensor::randint(2, [b], (Kind::Int64, device));
    let sync = || {
        if let Device::Cuda(i) = device {
            tch::Cuda::synchronize(i as i64);
        }
    };
    let mut step = || {
        trainer.step(&ids, &mask, &pixels, &labels);
        sync();
    };
    for _ in 0..3 {
        step();
    }

    println!(
        "telemetry overhead in one run: {blocks} blocks of {block_steps} steps (batch {b}, {} px, \
         {:.1}M parameters, {device:?}, {} libtorch threads on {} cores) in quads off-on-on-off, sampling every \
         {interval} s while on",
        s.image_size,
        params as f64 / 1e6,
        tch::get_num_threads(),
        std::thread::available_parallelism().map_or(1, |n| n.get())
    );
    let (tx, rx) = mpsc::channel();
    let done = Arc::new(AtomicU64::new(0));
    let mut block_medians: Vec<(bool, f64)> = Vec::new();
    let (mut all_on, mut all_off) = (Vec::new(), Vec::new());
    for block in 0..blocks {
        let on = matches!(block % 4, 1 | 2);
        // Started before the block and stopped after it: its start-up (NVML's loading) is a
        // run's, not a step's.
        let sampler = on.then(|| {
            SystemSampler::start(
                Duration::from_secs_f64(interval),
                device,
                Arc::clone(&done),
                tx.clone(),
            )
        });
        // Every block after the same pause (the sampler's start-up happens in it): the first
        // step after an idle moment is slower (libtorch's threads have gone to sleep), and a
        // pause before the on-blocks only had made them look 0.5% slower.
        std::thread::sleep(Duration::from_millis(20));
        let times: Vec<f64> = (0..block_steps)
            .map(|_| {
                let t = Instant::now();
                step();
                done.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                t.elapsed().as_secs_f64()
            })
            .collect();
        drop(sampler);
        block_medians.push((on, median(&times)));
        if on {
            all_on.extend(times);
        } else {
            all_off.extend(times);
        }
    }
    drop(tx);
    let samples = rx.try_iter().count();

    // One estimate per quad: its on-blocks against its off-blocks.
    let estimates: Vec<f64> = block_medians
        .chunks_exact(4)
        .map(|q| (q[1].1 + q[2].1) / (q[0].1 + q[3].1) - 1.0)
        .collect();
    let n = estimates.len() as f64;
    let overhead = estimates.iter().sum::<f64>() / n;
    let sd = (estimates
        .iter()
        .map(|e| (e - overhead).powi(2))
        .sum::<f64>()
        / (n - 1.0))
        .sqrt();
    let half_width = t_975(estimates.len() - 1) * sd / n.sqrt();
    let (low, high) = (overhead - half_width, overhead + half_width);

    let mut probe = Probe::new(device);
    probe.sample();
    let reps = 500;
    let t = Instant::now();
    let mut keys = 0;
    for _ in 0..reps {
        keys = probe.sample().len();
    }
    let per_sample = t.elapsed().as_secs_f64() / reps as f64;

    println!();
    println!("| arm | steps | median step (ms) | min step (ms) | system samples |");
    println!("| --- | ---: | ---: | ---: | ---: |");
    let min = |v: &[f64]| v.iter().copied().fold(f64::INFINITY, f64::min);
    println!(
        "| telemetry off | {} | {:.2} | {:.2} | 0 |",
        all_off.len(),
        median(&all_off) * 1e3,
        min(&all_off) * 1e3
    );
    println!(
        "| telemetry on | {} | {:.2} | {:.2} | {samples} |",
        all_on.len(),
        median(&all_on) * 1e3,
        min(&all_on) * 1e3
    );
    println!();
    println!(
        "overhead (mean over {} quads of their on-blocks' median step time against their \
         off-blocks'): {:+.2}%, 95% interval [{:+.2}%, {:+.2}%] (quads spread {:.2}%); \
         target < 1%: {}",
        estimates.len(),
        100.0 * overhead,
        100.0 * low,
        100.0 * high,
        100.0 * sd,
        if high < 0.01 {
            "met"
        } else if low > 0.01 {
            "NOT met"
        } else {
            "inconclusive, the interval reaches 1%: run more quads (TOWERLAB_BENCH_QUADS)"
        }
    );
    println!(
        "one sample ({keys} metrics, NVML {}): {:.1} µs, {:.4}% of a core at one sample per \
         {interval} s, {:.5}% at the default 5 s",
        if probe.has_nvml() { "loaded" } else { "absent" },
        per_sample * 1e6,
        100.0 * per_sample / interval,
        100.0 * per_sample / 5.0
    );
}
