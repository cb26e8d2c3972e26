//! Model FLOPs per sample of the base BridgeTower and ManagerTower (AAUE) at the paper's
//! fine-tuning resolutions, counted analytically (`engine::perf::flops`); with `--compare`,
//! beside PyTorch's `FlopCounterMode` count of the Hugging Face models
//! (`scripts/flops_peer.py`; its `PYTHONPATH` is `TOWERLAB_PEER_PYTHONPATH` when set, else from
//! `scripts/setup-python-peer.sh`). Exits 1 when any count differs from the peer's by over 2%.
//!
//! `cargo run -p engine --example flops -- [--compare | --peer FILE] [--text-len 50]
//! [--image-size 288,384]` (`--peer`: the lines a run of `scripts/flops_peer.py` printed).

use std::collections::BTreeMap;
use std::path::Path;
use std::process::{Command, ExitCode};

use engine::model::ModelConfig;
use engine::perf::flops;
use experiments::{ManagerType, Settings};

#[path = "../benches/support/python_peer.rs"]
mod python_peer;

struct Args {
    compare: bool,
    /// Lines `scripts/flops_peer.py` printed before, instead of running it (it takes minutes
    /// on a small CPU).
    peer_file: Option<std::path::PathBuf>,
    text_len: i64,
    image_sizes: Vec<i64>,
}

fn parse_args() -> Result<Args, String> {
    let mut args = Args {
        compare: false,
        peer_file: None,
        text_len: 50,
        image_sizes: vec![288, 384],
    };
    let mut it = std::env::args().skip(1);
    while let Some(a) = it.next() {
        let mut value = |name: &str| it.next().ok_or(format!("{name} needs a value"));
        match a.as_str() {
            "--compare" => args.compare = true,
            "--peer" => {
                args.compare = true;
                args.peer_file = Some(value("--peer")?.into());
            }
            "--text-len" => {
                let v = value("--text-len")?;
                args.text_len = v
                    .parse()
                    .map_err(|_| format!("--text-len: expected a number of tokens, found {v:?}"))?;
            }
            "--image-size" => {
                let v = value("--image-size")?;
                args.image_sizes = v
                    .split(',')
                    .map(|s| s.trim().parse::<i64>())
                    .collect::<Result<_, _>>()
                    .map_err(|_| {
                        format!("--image-size: expected sizes like 288,384, found {v:?}")
                    })?;
            }
            other => {
                return Err(format!(
                    "unknown argument {other:?} (expected --compare, --peer FILE, --text-len N, \
                     --image-size A,B)"
                ))
            }
        }
    }
    Ok(args)
}

fn config(manager_type: ManagerType, image_size: i64) -> Result<ModelConfig, String> {
    let s = Settings {
        manager_type,
        image_size,
        ..Settings::default()
    };
    ModelConfig::from_settings(&s).map_err(|e| format!("image size {image_size}: {e}"))
}

/// The peer's counts per sample: (model, image size) → (forward, training).
type PeerCounts = BTreeMap<(String, i64), (f64, f64)>;

/// Runs the Python peer (or reads its saved lines).
fn peer(args: &Args) -> Result<PeerCounts, String> {
    let text = match &args.peer_file {
        Some(path) => {
            std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?
        }
        None => run_peer(args)?,
    };
    let mut rows = BTreeMap::new();
    for line in text.lines().filter(|l| !l.trim().is_empty()) {
        let v: serde_json::Value = serde_json::from_str(line)
            .map_err(|e| format!("scripts/flops_peer.py printed {line:?}: {e}"))?;
        let field = |k: &str| {
            v.get(k)
                .ok_or_else(|| format!("scripts/flops_peer.py: no `{k}` in {line}"))
        };
        if field("text_len")?.as_i64() != Some(args.text_len) {
            return Err(format!(
                "the peer counted another text length than --text-len {}: {line}",
                args.text_len
            ));
        }
        let model = field("model")?.as_str().unwrap_or_default().to_string();
        let size = field("image_size")?.as_i64().unwrap_or_default();
        let fwd = field("forward")?.as_f64().unwrap_or(f64::NAN);
        let trn = field("training")?.as_f64().unwrap_or(f64::NAN);
        rows.insert((model, size), (fwd, trn));
    }
    Ok(rows)
}

/// Runs `scripts/flops_peer.py` and returns what it printed.
fn run_peer(args: &Args) -> Result<String, String> {
    let repo = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let pythonpath = python_peer::pythonpath(&repo)?;
    let sizes: Vec<String> = args.image_sizes.iter().map(|s| s.to_string()).collect();
    let out = Command::new("python3")
        .arg(repo.join("scripts/flops_peer.py"))
        .arg("--text-len")
        .arg(args.text_len.to_string())
        .arg("--image-size")
        .args(&sizes)
        .env("PYTHONPATH", pythonpath)
        .output()
        .map_err(|e| format!("python3 scripts/flops_peer.py: {e}"))?;
    if !out.status.success() {
        return Err(format!(
            "scripts/flops_peer.py failed: {}",
            String::from_utf8_lossy(&out.stderr)
        ));
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

fn gflops(x: f64) -> String {
    format!("{:.2}", x / 1e9)
}

fn diff(ours: f64, theirs: f64) -> String {
    format!("{:+.3}%", (ours - theirs) / theirs * 100.0)
}

fn main() -> ExitCode {
    let args = match parse_args() {
        Ok(a) => a,
        Err(e) => {
            eprintln!("flops: {e}");
            return ExitCode::from(2);
        }
    };
    let peer = if args.compare {
        match peer(&args) {
            Ok(p) => Some(p),
            Err(e) => {
                eprintln!("flops: the Python peer did not run: {e}");
                return ExitCode::FAILURE;
            }
        }
    } else {
        None
    };
    println!(
        "Model GFLOPs per sample (text {} tokens; multiply-add = 2 FLOPs; products only)",
        args.text_len
    );
    let mut header = vec!["model", "image", "forward", "training"];
    if peer.is_some() {
        header.extend(["peer fwd", "diff", "peer train", "diff"]);
    }
    println!("{}", header.join(" | "));
    let mut worst: f64 = 0.0;
    let mut missing = Vec::new();
    for &size in &args.image_sizes {
        for (name, t) in [("BT", ManagerType::Bt), ("AAUE", ManagerType::Aaue)] {
            let cfg = match config(t, size) {
                Ok(c) => c,
                Err(e) => {
                    eprintln!("flops: {e}");
                    return ExitCode::from(2);
                }
            };
            let f = flops::inference(&cfg, args.text_len);
            let (fwd, trn) = (f.total() as f64, f.training() as f64);
            let mut cells = vec![name.to_string(), size.to_string(), gflops(fwd), gflops(trn)];
            if let Some(p) = &peer {
                match p.get(&(name.to_string(), size)) {
                    Some(&(pf, pt)) => {
                        worst = worst
                            .max(((fwd - pf) / pf).abs())
                            .max(((trn - pt) / pt).abs());
                        cells.extend([gflops(pf), diff(fwd, pf), gflops(pt), diff(trn, pt)]);
                    }
                    None => {
                        missing.push(format!("{name} at {size} px"));
                        cells.extend(["-".into(), "-".into(), "-".into(), "-".into()]);
                    }
                }
            }
            println!("{}", cells.join(" | "));
        }
    }
    if peer.is_some() {
        println!("largest difference: {:.3}%", worst * 100.0);
        if !missing.is_empty() {
            eprintln!("flops: the peer has no count for {}", missing.join(", "));
            return ExitCode::FAILURE;
        }
        if worst > 0.02 {
            eprintln!("flops: the count differs from the peer's by more than 2%");
            return ExitCode::FAILURE;
        }
    }
    ExitCode::SUCCESS
}
