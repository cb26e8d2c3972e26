//! `cargo bench -p app --bench convert`: images/s and peak memory of `towerlab data convert
//! vqav2` against the peer, a pandas + pyarrow writer working the way the reference's
//! `write_vqa.py` does (`scripts/bench_convert_peer.py`, with the pandas/pyarrow of
//! `scripts/setup-python-arrow-peer.sh`), side by side on generated raw VQAv2 sets of two sizes.
//! Both write the same 12 tables and the vocabulary; the benchmark checks they hold the same
//! columns, types and values (row order aside: both shuffle, differently).
//!
//! Peak memory is each process's maximum resident set (`getrusage(RUSAGE_CHILDREN)` of a
//! one-child wrapper, the same for both). Environment:
//! - `TOWERLAB_BENCH_CONVERT_SIZES`: images per set, comma-separated (default `10000,20000`);
//! - `TOWERLAB_BENCH_CONVERT_DIR`: where the raw sets are generated and kept between runs
//!   (default `target/bench-convert`);
//! - `TOWERLAB_BENCH_JOBS`: `--jobs` of towerlab (default 2, this machine's cores).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

use arrow_array::cast::AsArray;
use arrow_array::Array;
use arrow_schema::DataType;
use serde_json::{json, Value};

const MEASURE: &str = r#"
import json, resource, subprocess, sys, time
start = time.perf_counter()
p = subprocess.run(sys.argv[1:], stdout=subprocess.PIPE, stderr=subprocess.PIPE)
seconds = time.perf_counter() - start
usage = resource.getrusage(resource.RUSAGE_CHILDREN)
print(json.dumps({"rc": p.returncode, "seconds": seconds, "max_rss_kib": usage.ru_maxrss,
                  "cpu_seconds": usage.ru_utime + usage.ru_stime,
                  "stdout": p.stdout.decode(errors="replace")[-4000:],
                  "stderr": p.stderr.decode(errors="replace")[-4000:]}))
"#;

struct Measured {
    seconds: f64,
    cpu_seconds: f64,
    rss_mib: f64,
}

fn measure(cmd: &[String], pythonpath: &str) -> Result<Measured, String> {
    let out = Command::new("python3")
        .arg("-c")
        .arg(MEASURE)
        .args(cmd)
        .env("PYTHONPATH", pythonpath)
        .output()
        .map_err(|e| format!("python3: {e}"))?;
    let v: Value = serde_json::from_slice(&out.stdout).map_err(|e| {
        format!(
            "measuring {cmd:?}: {e}: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        )
    })?;
    if v["rc"] != json!(0) {
        return Err(format!(
            "{cmd:?} failed ({}):\n{}\n{}",
            v["rc"],
            v["stdout"].as_str().unwrap_or(""),
            v["stderr"].as_str().unwrap_or("")
        ));
    }
    Ok(Measured {
        seconds: v["seconds"].as_f64().unwrap_or(f64::NAN),
        cpu_seconds: v["cpu_seconds"].as_f64().unwrap_or(f64::NAN),
        rss_mib: v["max_rss_kib"].as_f64().unwrap_or(f64::NAN) / 1024.0,
    })
}

// ---- the generated raw set ------------------------------------------------------------------

const BASE_ANSWERS: usize = 400;

fn base_answer(k: usize) -> String {
    const WORDS: [&str; 12] = [
        "yes",
        "no",
        "red",
        "blue",
        "white",
        "black and white",
        "tennis",
        "pizza",
        "frisbee",
        "kitchen",
        "giraffe",
        "surfing",
    ];
    match k {
        0..12 => WORDS[k].to_string(),
        12..32 => (k - 12).to_string(),
        _ => format!("thing {k}"),
    }
}

/// Surface forms an annotator might type for an answer (normalised back to it).
fn variant(answer: &str, rng: &mut fastrand::Rng) -> String {
    const NUMBER_WORDS: [&str; 11] = [
        "zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine", "ten",
    ];
    match rng.u32(0..10) {
        0 => {
            let mut c = answer.chars();
            c.next()
                .map(|f| f.to_uppercase().collect::<String>() + c.as_str())
                .unwrap_or_default()
        }
        1 => format!("{answer}."),
        2 => format!("the {answer}"),
        3 => answer
            .parse::<usize>()
            .ok()
            .and_then(|n| NUMBER_WORDS.get(n))
            .map_or_else(|| answer.to_string(), |w| w.to_string()),
        4 => answer.replace(' ', "-"),
        _ => answer.to_string(),
    }
}

/// A Zipf-ish pick among the base answers.
fn pick(rng: &mut fastrand::Rng) -> usize {
    let u = rng.f64();
    ((BASE_ANSWERS as f64).powf(u) as usize)
        .saturating_sub(1)
        .min(BASE_ANSWERS - 1)
}

fn jpeg(seed: u64) -> Vec<u8> {
    let mut rng = fastrand::Rng::with_seed(seed);
    let (w, h) = (256u32, 192u32);
    let base = [rng.u8(..), rng.u8(..), rng.u8(..)];
    let img = image::RgbImage::from_fn(w, h, |x, y| {
        let n = rng.u8(0..48);
        image::Rgb([
            base[0].wrapping_add((x / 2) as u8).wrapping_add(n),
            base[1].wrapping_add((y / 2) as u8).wrapping_add(n),
            base[2].wrapping_add(((x + y) / 4) as u8),
        ])
    });
    let mut out = std::io::Cursor::new(Vec::new());
    img.write_to(&mut out, image::ImageFormat::Jpeg)
        .expect("encoding a JPEG in memory");
    out.into_inner()
}

fn write_json(path: &Path, v: &Value) -> Result<(), String> {
    std::fs::write(path, serde_json::to_vec(v).map_err(|e| e.to_string())?)
        .map_err(|e| format!("{}: {e}", path.display()))
}

/// A VQAv2 raw layout of `images` images (50% train2014, 30% val2014, 20% test2015, half of
/// the test images also in test-dev), 3 to 7 questions each, 10 annotators' answers.
fn generate(root: &Path, images: usize) -> Result<(), String> {
    let marker = root.join(".complete");
    if marker.is_file() {
        return Ok(());
    }
    let _ = std::fs::remove_dir_all(root);
    eprintln!(
        "generating a raw VQAv2 set of {images} images in {}",
        root.display()
    );
    let mut rng = fastrand::Rng::with_seed(images as u64);
    let train = images / 2;
    let val = images * 3 / 10;
    let mut splits: BTreeMap<&str, Vec<i64>> = BTreeMap::new();
    for i in 0..images {
        let split = if i < train {
            "train2014"
        } else if i < train + val {
            "val2014"
        } else {
            "test2015"
        };
        splits.entry(split).or_default().push(1 + i as i64 * 7);
    }
    for dir in ["vqav2", "train2014", "val2014", "test2015"] {
        std::fs::create_dir_all(root.join(dir)).map_err(|e| e.to_string())?;
    }
    let mut qid = 0i64;
    let mut files: BTreeMap<String, (Vec<Value>, Vec<Value>)> = BTreeMap::new();
    for (split, ids) in &splits {
        let (mut qs, mut anns) = (Vec::new(), Vec::new());
        for &iid in ids {
            for k in 0..rng.usize(3..=7) {
                qid += 1;
                let truth = base_answer(pick(&mut rng));
                qs.push(json!({"image_id": iid, "question_id": qid,
                               "question": format!("What is thing {k} of image {iid}?")}));
                let answers: Vec<Value> = (0..10)
                    .map(|a| {
                        let given = if rng.u32(0..10) < 7 {
                            variant(&truth, &mut rng)
                        } else {
                            base_answer(pick(&mut rng))
                        };
                        json!({"answer": given, "answer_confidence": "yes", "answer_id": a + 1})
                    })
                    .collect();
                anns.push(json!({"question_type": "what", "answer_type": "other",
                                 "multiple_choice_answer": variant(&truth, &mut rng),
                                 "answers": answers, "image_id": iid, "question_id": qid}));
            }
        }
        files.insert(split.to_string(), (qs, anns));
    }
    let v = root.join("vqav2");
    for (split, (qs, anns)) in &files {
        write_json(
            &v.join(format!("v2_OpenEnded_mscoco_{split}_questions.json")),
            &json!({"questions": qs, "info": {}, "license": {}}),
        )?;
        if split != "test2015" {
            write_json(
                &v.join(format!("v2_mscoco_{split}_annotations.json")),
                &json!({"annotations": anns, "info": {}, "license": {}}),
            )?;
        }
    }
    let test = &files["test2015"].0;
    let dev: Vec<&Value> = test
        .iter()
        .filter(|q| q["image_id"].as_i64().unwrap_or(0) % 2 == 1)
        .collect();
    write_json(
        &v.join("v2_OpenEnded_mscoco_test-dev2015_questions.json"),
        &json!({"questions": dev}),
    )?;
    let all: Vec<(&str, i64)> = splits
        .iter()
        .flat_map(|(s, ids)| ids.iter().map(move |&i| (*s, i)))
        .collect();
    let chunks: Vec<&[(&str, i64)]> = all.chunks(all.len().div_ceil(2).max(1)).collect();
    std::thread::scope(|scope| {
        let handles: Vec<_> = chunks
            .iter()
            .map(|chunk| {
                scope.spawn(move || -> Result<(), String> {
                    for &(split, iid) in chunk.iter() {
                        let path = root.join(split).join(format!("COCO_{split}_{iid:012}.jpg"));
                        std::fs::write(&path, jpeg(iid as u64))
                            .map_err(|e| format!("{}: {e}", path.display()))?;
                    }
                    Ok(())
                })
            })
            .collect();
        handles
            .into_iter()
            .try_for_each(|h| h.join().map_err(|_| "generator panicked".to_string())?)
    })?;
    std::fs::write(&marker, b"").map_err(|e| e.to_string())
}

// ---- parity of the two outputs ----------------------------------------------------------------

fn cell(a: &dyn Array, i: usize) -> Value {
    if a.is_null(i) {
        return Value::Null;
    }
    match a.data_type() {
        DataType::Utf8 => json!(a.as_string::<i32>().value(i)),
        DataType::Int64 => json!(a.as_primitive::<arrow_array::types::Int64Type>().value(i)),
        DataType::Float64 => json!(a.as_primitive::<arrow_array::types::Float64Type>().value(i)),
        DataType::Binary => {
            // A cheap fingerprint: length and an FNV-1a of the bytes.
            let b = a.as_binary::<i32>().value(i);
            let h = b.iter().fold(0xcbf2_9ce4_8422_2325u64, |h, &x| {
                (h ^ u64::from(x)).wrapping_mul(0x0000_0100_0000_01b3)
            });
            json!(format!("{}:{h:016x}", b.len()))
        }
        DataType::List(_) => {
            let l = a.as_list::<i32>().value(i);
            Value::Array((0..l.len()).map(|j| cell(l.as_ref(), j)).collect())
        }
        DataType::Null => Value::Null,
        other => json!(format!("<{other}>")),
    }
}

/// Field names and types, and the rows keyed by `image_id`.
type Content = (Vec<(String, String)>, BTreeMap<String, Value>);

fn content(path: &Path) -> Result<Content, String> {
    let f = std::fs::File::open(path).map_err(|e| format!("{}: {e}", path.display()))?;
    let reader = arrow_ipc::reader::FileReader::try_new(f, None)
        .map_err(|e| format!("{}: {e}", path.display()))?;
    let schema = reader.schema();
    let fields: Vec<(String, String)> = schema
        .fields()
        .iter()
        .map(|f| (f.name().clone(), f.data_type().to_string()))
        .collect();
    let key = schema.index_of("image_id").ok();
    let mut rows = BTreeMap::new();
    for batch in reader {
        let batch = batch.map_err(|e| format!("{}: {e}", path.display()))?;
        for r in 0..batch.num_rows() {
            let row: Vec<Value> = batch
                .columns()
                .iter()
                .map(|c| cell(c.as_ref(), r))
                .collect();
            let k = key
                .map(|k| row[k].to_string())
                .unwrap_or_else(|| rows.len().to_string());
            rows.insert(k, Value::Array(row));
        }
    }
    Ok((fields, rows))
}

const FILES: [&str; 6] = [
    "train",
    "val",
    "test",
    "test-dev",
    "trainable_val",
    "rest_val",
];

/// Every table holds the same columns, types and rows in both outputs; `trainable_val` and
/// `rest_val` (a shuffle-dependent cut of val) have the same sizes and together make val.
fn parity(ours: &Path, peer: &Path) -> Result<usize, String> {
    let mut checked = 0;
    for suffix in ["_fix", ""] {
        let mut cut = Vec::new();
        for f in FILES {
            let name = format!("vqav2_{f}{suffix}.arrow");
            let (a, b) = (content(&ours.join(&name))?, content(&peer.join(&name))?);
            if a.0 != b.0 {
                return Err(format!(
                    "{name}: columns differ:\n  ours {:?}\n  peer {:?}",
                    a.0, b.0
                ));
            }
            if f.ends_with("val") && f != "val" {
                if a.1.len() != b.1.len() {
                    return Err(format!(
                        "{name}: {} rows, the peer {}",
                        a.1.len(),
                        b.1.len()
                    ));
                }
                cut.push(a.1);
            } else if a.1 != b.1 {
                let diff = a.1.iter().find(|(k, v)| b.1.get(*k) != Some(v));
                return Err(format!(
                    "{name}: rows differ ({} vs {} rows); first: {diff:?}",
                    a.1.len(),
                    b.1.len()
                ));
            }
            checked += 1;
        }
        let val = content(&ours.join(format!("vqav2_val{suffix}.arrow")))?.1;
        let mut joined = cut.remove(0);
        joined.extend(cut.remove(0));
        if joined != val {
            return Err(format!(
                "vqav2_trainable_val{suffix} + vqav2_rest_val{suffix} is not val"
            ));
        }
    }
    let vocab = |p: &Path| -> Result<Value, String> {
        let text =
            std::fs::read_to_string(p.join("vqav2_answers.json")).map_err(|e| e.to_string())?;
        let v: Value = serde_json::from_str(&text).map_err(|e| e.to_string())?;
        Ok(v["label2answer"].clone())
    };
    if vocab(ours)? != vocab(peer)? {
        return Err("the answer vocabularies differ".into());
    }
    Ok(checked + 1)
}

fn run() -> Result<(), String> {
    let repo = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .ok_or("no repository root")?
        .to_path_buf();
    let sizes: Vec<usize> = std::env::var("TOWERLAB_BENCH_CONVERT_SIZES")
        .unwrap_or_else(|_| "10000,20000".into())
        .split(',')
        .map(|s| {
            s.trim()
                .parse()
                .map_err(|e| format!("TOWERLAB_BENCH_CONVERT_SIZES: {s}: {e}"))
        })
        .collect::<Result<_, _>>()?;
    let jobs = std::env::var("TOWERLAB_BENCH_JOBS").unwrap_or_else(|_| "2".into());
    let base = std::env::var_os("TOWERLAB_BENCH_CONVERT_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| repo.join("target/bench-convert"));
    let setup = Command::new(repo.join("scripts/setup-python-arrow-peer.sh"))
        .output()
        .map_err(|e| format!("scripts/setup-python-arrow-peer.sh: {e}"))?;
    if !setup.status.success() {
        return Err(format!(
            "scripts/setup-python-arrow-peer.sh failed: {}",
            String::from_utf8_lossy(&setup.stderr)
        ));
    }
    let pythonpath = String::from_utf8_lossy(&setup.stdout).trim().to_string();
    let towerlab = env!("CARGO_BIN_EXE_towerlab");
    let peer_script = repo.join("scripts/bench_convert_peer.py");

    // What any towerlab command costs before it does anything: libtorch and its CUDA
    // libraries are mapped at start-up.
    let baseline = measure(&[towerlab.to_string(), "--version".into()], &pythonpath)?;
    let mut table = Vec::new();
    for &n in &sizes {
        let raw = base.join(format!("raw-vqav2-{n}"));
        generate(&raw, n)?;
        let ours = base.join(format!("out-towerlab-{n}"));
        let peer = base.join(format!("out-peer-{n}"));
        for d in [&ours, &peer] {
            let _ = std::fs::remove_dir_all(d);
        }
        let s = |p: &Path| p.display().to_string();
        eprintln!("towerlab data convert vqav2 on {n} images ...");
        let t = measure(
            &[
                towerlab.to_string(),
                "data".into(),
                "convert".into(),
                "vqav2".into(),
                "--raw".into(),
                s(&raw),
                "--out".into(),
                s(&ours),
                "--jobs".into(),
                jobs.clone(),
            ],
            &pythonpath,
        )?;
        eprintln!("peer (pandas + pyarrow) on {n} images ...");
        let p = measure(
            &["python3".into(), s(&peer_script), s(&raw), s(&peer)],
            &pythonpath,
        )?;
        let checked = parity(&ours, &peer)?;
        table.push((n, t, p, checked));
        for d in [&ours, &peer] {
            let _ = std::fs::remove_dir_all(d);
        }
    }

    println!();
    println!("data convert vqav2 (both answer variants, 12 tables + vocabulary), --jobs {jobs}, warm page cache");
    println!(
        "| {:<24} | {:>7} | {:>9} | {:>9} | {:>9} | {:>14} |",
        "writer", "images", "seconds", "images/s", "CPU s", "peak RSS (MiB)"
    );
    println!(
        "|{:-<26}|{:->9}|{:->11}|{:->11}|{:->11}|{:->16}|",
        "", "", "", "", "", ""
    );
    for (n, t, p, _) in &table {
        for (name, m) in [("towerlab data convert", t), ("peer: pandas + pyarrow", p)] {
            println!(
                "| {name:<24} | {n:>7} | {:>9.2} | {:>9.0} | {:>9.2} | {:>14.0} |",
                m.seconds,
                *n as f64 / m.seconds,
                m.cpu_seconds,
                m.rss_mib
            );
        }
    }
    println!();
    for (n, t, p, checked) in &table {
        println!(
            "{n} images: towerlab {:.1}x the peer's images/s ({:.1}x less CPU time), {:.1}x less \
             memory; {checked} files hold the same columns, types and values",
            p.seconds / t.seconds,
            p.cpu_seconds / t.cpu_seconds,
            p.rss_mib / t.rss_mib
        );
    }
    if let [(n0, t0, _, _), .., (n1, t1, _, _)] = table.as_slice() {
        println!(
            "towerlab peak memory {:.0} MiB at {n0} images, {:.0} MiB at {n1} ({:+.0}%); \
             `towerlab --version` alone: {:.0} MiB, {:.2} s (libtorch loaded at start-up)",
            t0.rss_mib,
            t1.rss_mib,
            100.0 * (t1.rss_mib / t0.rss_mib - 1.0),
            baseline.rss_mib,
            baseline.seconds
        );
    }
    Ok(())
}

fn main() {
    if let Err(e) = run() {
        eprintln!("convert bench: {e}");
        std::process::exit(1);
    }
}
