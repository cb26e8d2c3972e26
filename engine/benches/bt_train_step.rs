//! Side-by-side training step of our BridgeTower and Hugging Face's `BridgeTowerModel` (PyTorch),
//! same shapes, batch, threads, device, loss (ITM cross-entropy on the pooled features) and
//! optimiser (AdamW, betas 0.9/0.98, eps 1e-8, weight decay 0.01; ours is the optimiser that
//! training uses, `engine::train::optim`, with the reference's parameter groups).
//!
//! `cargo bench -p engine --bench bt_train_step`. Environment:
//! - `TOWERLAB_BENCH_STEPS` (default 10) and `TOWERLAB_BENCH_ROUNDS` (default 2): the effort;
//!   `TOWERLAB_BENCH_THREADS`: intra-op threads (default: all cores);
//! - `TOWERLAB_BENCH_SHAPES`: shapes to run, of `tiny`, `small`, `base` (default `tiny,small`;
//!   `base` is CLIP ViT-B/16 + RoBERTa-base sized, 6 cross-modal layers, batch 32);
//!   `TOWERLAB_BENCH_BATCH` overrides every shape's batch;
//! - `TOWERLAB_BENCH_DEVICE`: `cpu` (default) or `cuda`; `TOWERLAB_BENCH_BF16=1`: bf16 on CUDA
//!   (ours `precision = "bf16"`, the peer `torch.autocast(dtype=bfloat16)`);
//! - `TOWERLAB_PEER_PYTHONPATH`: the peer's `PYTHONPATH` as is (a machine without network);
//!   otherwise it comes from `scripts/setup-python-peer.sh` (which installs the pinned
//!   transformers once).
//!
//! Parameter counts differ slightly: ours keeps the reference's unused CLIP text-side tensors and
//! RoBERTa pooler (no gradient, no update). The peer runs as `python3 scripts/bench_bt_peer.py`.

use std::path::PathBuf;
use std::process::Command;
use std::time::Instant;

use engine::model::ModelConfig;
use experiments::{ManagerType, Settings};
use tch::{Device, Kind, Tensor};

#[path = "support/itm_step.rs"]
mod itm_step;
#[path = "support/python_peer.rs"]
mod python_peer;

use itm_step::ItmStep;

/// Shapes shared by both sides. HF builds its cross-modal layers from the text config, so the
/// cross-modal heads and feed-forward width equal the text encoder's here.
#[derive(Clone, Copy)]
struct Shape {
    name: &'static str,
    width: i64,
    layers: i64,
    heads: i64,
    vocab: i64,
    image_size: i64,
    patch: i64,
    cross_layers: i64,
    batch: i64,
    text_len: i64,
}

const SHAPES: [Shape; 3] = [
    Shape {
        name: "tiny",
        width: 64,
        layers: 4,
        heads: 1,
        vocab: 1000,
        image_size: 64,
        patch: 16,
        cross_layers: 2,
        batch: 16,
        text_len: 24,
    },
    Shape {
        name: "small",
        width: 256,
        layers: 6,
        heads: 4,
        vocab: 8192,
        image_size: 128,
        patch: 16,
        cross_layers: 3,
        batch: 8,
        text_len: 32,
    },
    Shape {
        name: "base",
        width: 768,
        layers: 12,
        heads: 12,
        vocab: 50265,
        image_size: 224,
        patch: 16,
        cross_layers: 6,
        batch: 32,
        text_len: 40,
    },
];

/// Where and how both sides run.
#[derive(Clone, Copy)]
struct Run {
    device: Device,
    bf16: bool,
    steps: usize,
    warmup: usize,
    threads: i32,
}

impl Run {
    fn sync(&self) {
        if let Device::Cuda(i) = self.device {
            tch::Cuda::synchronize(i as i64);
        }
    }
}

impl Shape {
    fn settings(&self) -> Settings {
        let mut s = Settings::tiny();
        s.manager_type = ManagerType::Bt;
        s.input_text_embed_size = self.width;
        s.input_image_embed_size = self.width;
        s.hidden_size = self.width;
        s.text_num_layers = self.layers;
        s.vit_num_layers = self.layers;
        // HF's CLIP blocks use width / 64 heads.
        s.vit_num_heads = (self.width / 64).max(1);
        s.text_num_heads = self.heads;
        s.num_heads = self.heads;
        s.text_intermediate_size = 4 * self.width;
        s.mlp_ratio = 4;
        s.vocab_size = self.vocab;
        s.text_max_position_embeddings = self.text_len + 2;
        s.max_text_len = self.text_len;
        s.image_size = self.image_size;
        s.patch_size = self.patch;
        s.num_layers = self.cross_layers;
        s
    }

    fn peer_json(&self, run: &Run) -> String {
        format!(
            concat!(
                "{{\"text_width\":{w},\"text_layers\":{l},\"text_heads\":{h},",
                "\"text_intermediate\":{i},\"vocab\":{v},\"max_pos\":{mp},\"vit_width\":{w},",
                "\"vit_layers\":{l},\"image_size\":{is},\"patch\":{p},\"hidden\":{w},",
                "\"cross_layers\":{cl},\"cross_heads\":{h},\"batch\":{b},\"text_len\":{tl},",
                "\"steps\":{steps},\"warmup\":{warmup},\"threads\":{threads},",
                "\"device\":\"{device}\",\"bf16\":{bf16}}}"
            ),
            w = self.width,
            l = self.layers,
            h = self.heads,
            i = 4 * self.width,
            v = self.vocab,
            mp = self.text_len + 2,
            is = self.image_size,
            p = self.patch,
            cl = self.cross_layers,
            b = self.batch,
            tl = self.text_len,
            steps = run.steps,
            warmup = run.warmup,
            threads = run.threads,
            device = if run.device.is_cuda() { "cuda" } else { "cpu" },
            bf16 = run.bf16,
        )
    }
}

/// Our training step: median seconds per step and the parameter count.
fn ours(shape: &Shape, run: &Run) -> (f64, i64) {
    tch::manual_seed(0);
    let mut cfg = ModelConfig::from_settings(&shape.settings()).expect("valid bench config");
    cfg.amp = run.bf16;
    let device = run.device;
    let mut trainer = ItmStep::new(cfg, device);
    let (b, l) = (shape.batch, shape.text_len);
    let ids = Tensor::randint_low(3, shape.vocab, [b, l], (Kind::Int64, Device::Cpu));
    let mask = Tensor::ones([b, l], (Kind::Int64, Device::Cpu));
    for i in 0..b {
        let n = l - (i * 3) % (l / 2);
        let _ = mask.get(i).narrow(0, n, l - n).fill_(0);
        let _ = ids.get(i).narrow(0, n, l - n).fill_(1);
    }
    let _ = ids.select(1, 0).fill_(0);
    let pixels = Tensor::randn(
        [b, 3, shape.image_size, shape.image_size],
        (Kind::Float, device),
    );
    let labels = Tensor::randint(2, [b], (Kind::Int64, device));
    let (ids, mask) = (ids.to_device(device), mask.to_device(device));
    let mut step = || trainer.step(&ids, &mask, &pixels, &labels);
    for _ in 0..run.warmup {
        step();
    }
    run.sync();
    let mut times: Vec<f64> = (0..run.steps)
        .map(|_| {
            let t0 = Instant::now();
            step();
            run.sync();
            t0.elapsed().as_secs_f64()
        })
        .collect();
    times.sort_by(f64::total_cmp);
    (times[times.len() / 2], trainer.trainable_params())
}

/// How to start the peer: its script and `PYTHONPATH`, found once for every shape and round.
struct Peer {
    script: PathBuf,
    pythonpath: String,
}

impl Peer {
    fn find() -> Result<Self, String> {
        // The checkout it was built in, else the current directory (a binary carried to another
        // machine runs from that machine's checkout).
        let built_in = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..");
        let repo = if built_in.join("scripts/bench_bt_peer.py").is_file() {
            built_in
        } else {
            PathBuf::from(".")
        };
        let pythonpath = python_peer::pythonpath(&repo)?;
        Ok(Self {
            script: repo.join("scripts/bench_bt_peer.py"),
            pythonpath,
        })
    }
}

/// The peer's median seconds per step and parameter count, or why it could not run.
fn peer(peer: &Peer, shape: &Shape, run: &Run) -> Result<(f64, i64), String> {
    let out = Command::new("python3")
        .arg(&peer.script)
        .arg(shape.peer_json(run))
        .env("PYTHONPATH", &peer.pythonpath)
        .output()
        .map_err(|e| format!("python3: {e}"))?;
    if !out.status.success() {
        return Err(format!(
            "bench_bt_peer.py failed: {}",
            String::from_utf8_lossy(&out.stderr)
        ));
    }
    let text = String::from_utf8_lossy(&out.stdout);
    let line = text.lines().last().unwrap_or_default();
    let field = |key: &str| -> Option<f64> {
        let start = line.find(&format!("\"{key}\": "))? + key.len() + 4;
        let rest = &line[start..];
        let end = rest.find([',', '}']).unwrap_or(rest.len());
        rest[..end].trim().parse().ok()
    };
    match (field("step_s"), field("params")) {
        (Some(s), Some(p)) => Ok((s, p as i64)),
        _ => Err(format!("unexpected peer output: {line}")),
    }
}

fn env_usize(key: &str, default: usize) -> usize {
    std::env::var(key)
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(default)
}

fn main() {
    let steps = env_usize("TOWERLAB_BENCH_STEPS", 10);
    // Ours and the peer alternate; the best median of each side is kept, which discounts the
    // load that other processes put on a shared machine.
    let rounds = env_usize("TOWERLAB_BENCH_ROUNDS", 2).max(1);
    // Intra-op threads on both sides (`TOWERLAB_BENCH_THREADS`, default: all cores). On a
    // machine shared with other work, 1 thread avoids OpenMP spin-waits dominating the timings.
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let threads = env_usize("TOWERLAB_BENCH_THREADS", cores).max(1) as i32;
    tch::set_num_threads(threads);
    let device = match std::env::var("TOWERLAB_BENCH_DEVICE").as_deref() {
        Ok("cuda") => {
            if !tch::Cuda::is_available() {
                eprintln!("TOWERLAB_BENCH_DEVICE=cuda, but libtorch sees no CUDA device");
                std::process::exit(2);
            }
            Device::Cuda(0)
        }
        Ok("cpu") | Err(_) => Device::Cpu,
        Ok(other) => {
            eprintln!("TOWERLAB_BENCH_DEVICE must be cpu or cuda, found {other}");
            std::process::exit(2);
        }
    };
    let bf16 = std::env::var("TOWERLAB_BENCH_BF16").is_ok_and(|v| v == "1") && device.is_cuda();
    let names = std::env::var("TOWERLAB_BENCH_SHAPES").unwrap_or_else(|_| "tiny,small".into());
    let mut shapes = Vec::new();
    for name in names.split(',').map(str::trim) {
        match SHAPES.iter().find(|s| s.name == name) {
            Some(s) => shapes.push(Shape {
                batch: env_usize("TOWERLAB_BENCH_BATCH", s.batch as usize) as i64,
                ..*s
            }),
            None => {
                eprintln!("TOWERLAB_BENCH_SHAPES: unknown shape {name} (tiny, small, base)");
                std::process::exit(2);
            }
        }
    }
    let run = Run {
        device,
        bf16,
        steps,
        warmup: 2,
        threads,
    };
    println!(
        "BridgeTower training step on {} ({}; {threads} threads; best of {rounds} alternating \
         rounds of the median of {steps} steps after {} warm-up)",
        if device.is_cuda() { "CUDA" } else { "CPU" },
        if bf16 { "bf16 autocast" } else { "fp32" },
        run.warmup
    );
    println!(
        "{:<6} {:>6} {:>12} {:>12} {:>14} {:>14} {:>8}",
        "shape", "batch", "ours params", "HF params", "ours samples/s", "HF samples/s", "ratio"
    );
    let found = Peer::find();
    for shape in &shapes {
        let mut best_ours = f64::INFINITY;
        let mut best_peer: Result<f64, String> = Err("not run".into());
        let mut params = (0, 0);
        for _ in 0..rounds {
            let (s, p) = ours(shape, &run);
            best_ours = best_ours.min(s);
            params.0 = p;
            match found
                .as_ref()
                .map_err(Clone::clone)
                .and_then(|p| peer(p, shape, &run))
            {
                Ok((s, p)) => {
                    params.1 = p;
                    best_peer = Ok(best_peer.map_or(s, |b: f64| b.min(s)));
                }
                Err(e) => {
                    best_peer = Err(e);
                    break;
                }
            }
        }
        let ours_rate = shape.batch as f64 / best_ours;
        match best_peer {
            Ok(hf_s) => {
                let hf_rate = shape.batch as f64 / hf_s;
                println!(
                    "{:<6} {:>6} {:>12} {:>12} {:>14.2} {:>14.2} {:>7.2}x",
                    shape.name,
                    shape.batch,
                    params.0,
                    params.1,
                    ours_rate,
                    hf_rate,
                    ours_rate / hf_rate
                );
            }
            Err(e) => {
                println!(
                    "{:<6} {:>6} {:>12} {:>12} {:>14.2} {:>14} {:>8}",
                    shape.name, shape.batch, params.0, "-", ours_rate, "n/a", "-"
                );
                eprintln!("peer unavailable: {e}");
            }
        }
    }
}
