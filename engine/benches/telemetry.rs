//! What the telemetry costs a training step, measured in one run: a model trains step after
//! step (forward, backward, AdamW) while the `system/` sampler (`engine::perf::system`) is
//! switched on and off in alternate blocks of steps, so that the load of the machine, which
//! drifts, weighs on both arms alike. Each block's median step time is compared with the
//! median of the two blocks around it; the overhead is the median of those ratios. Also times
//! one sample of the probe (the `/proc` reads, and NVML and the caching allocator where
//! present), which bounds the sampler's share of a core.
//!
//! `cargo bench -p engine --bench telemetry`. Environment: `TOWERLAB_BENCH_BLOCKS` (blocks,
//! default 20, half of them on), `TOWERLAB_BENCH_BLOCK_STEPS` (steps per block, default 15),
//! `TOWERLAB_BENCH_INTERVAL` (seconds between samples, default 0.25: twenty times as often as
//! the default `system_interval_s`), `TOWERLAB_BENCH_DEVICE` (`cpu` default, or `cuda`).

use std::sync::atomic::AtomicU64;
use std::sync::{mpsc, Arc};
use std::time::{Duration, Instant};

use engine::model::{ForwardOptions, HeadSet, ModelConfig, TowerModel};
use engine::perf::system::{Probe, SystemSampler};
use engine::train::optim::{Algorithm, OptimConfig, Optimizer};
use experiments::{ManagerType, Settings};
use tch::{nn, Device, Kind, Reduction, Tensor};

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

fn main() {
    let blocks = (env_f64("TOWERLAB_BENCH_BLOCKS", 20.0) as usize).max(4);
    let block_steps = (env_f64("TOWERLAB_BENCH_BLOCK_STEPS", 15.0) as usize).max(3);
    let interval = env_f64("TOWERLAB_BENCH_INTERVAL", 0.25).max(0.01);
    let device = match std::env::var("TOWERLAB_BENCH_DEVICE").as_deref() {
        Ok("cuda") => Device::Cuda(0),
        _ => Device::Cpu,
    };

    // A small ManagerTower-shaped BridgeTower: tiny preset, 128 px, batch 16.
    tch::manual_seed(0);
    let mut s = Settings::tiny();
    s.manager_type = ManagerType::Bt;
    s.image_size = 128;
    let mut cfg = ModelConfig::from_settings(&s).expect("valid bench config");
    cfg.heads = HeadSet {
        itm: true,
        ..HeadSet::default()
    };
    let vs = nn::VarStore::new(device);
    let model = TowerModel::new(&vs.root(), &cfg).expect("model builds");
    let itm = model.heads().itm_score.as_ref().expect("itm head");
    let mut opt = Optimizer::new(
        OptimConfig::reference(Algorithm::AdamW, 1e-5, 0.01, 1.0, 1.0),
        vs.variables(),
    );
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
        let out = model
            .forward(&ids, &mask, &pixels, ForwardOptions::train())
            .expect("forward");
        let logits = itm.forward(&out.cls_feats, model.ctx(true));
        let loss = logits.cross_entropy_loss::<Tensor>(&labels, None, Reduction::Mean, -100, 0.0);
        opt.zero_grad();
        loss.backward();
        opt.step();
        sync();
    };
    for _ in 0..3 {
        step();
    }

    println!(
        "telemetry overhead in one run: {blocks} blocks of {block_steps} steps (batch {b}, {} px, \
         {device:?}), the sampler on every other block, sampling every {interval} s",
        s.image_size
    );
    let (tx, rx) = mpsc::channel();
    let done = Arc::new(AtomicU64::new(0));
    let mut block_medians: Vec<(bool, f64)> = Vec::new();
    let (mut all_on, mut all_off) = (Vec::new(), Vec::new());
    for block in 0..blocks {
        let on = block % 2 == 1;
        // Started before the block and stopped after it: its start-up (NVML's loading) is a
        // run's, not a step's.
        let sampler = on.then(|| {
            let s = SystemSampler::start(
                Duration::from_secs_f64(interval),
                device,
                Arc::clone(&done),
                tx.clone(),
            );
            std::thread::sleep(Duration::from_millis(20));
            s
        });
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

    // Each "on" block against the mean of the "off" blocks on both sides of it.
    let ratios: Vec<f64> = (1..block_medians.len() - 1)
        .filter(|&i| block_medians[i].0)
        .map(|i| {
            let around = (block_medians[i - 1].1 + block_medians[i + 1].1) / 2.0;
            block_medians[i].1 / around
        })
        .collect();
    let overhead = median(&ratios) - 1.0;
    // The machine's own drift between blocks: two off-blocks around an on-block, compared.
    let noise = median(
        &(1..block_medians.len() - 1)
            .filter(|&i| block_medians[i].0)
            .map(|i| (block_medians[i + 1].1 / block_medians[i - 1].1 - 1.0).abs())
            .collect::<Vec<_>>(),
    );

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
        "overhead (median over {} on-blocks of its median step time against the off-blocks \
         beside it): {:+.2}%; off-blocks differ by {:.2}% between themselves (target < 1%: {})",
        ratios.len(),
        100.0 * overhead,
        100.0 * noise,
        if noise > 0.01 {
            "inconclusive, the machine's own variation is larger; see the sample's cost below"
        } else if overhead < 0.01 {
            "met"
        } else {
            "NOT met"
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
