//! Fuzz targets for the readers of untrusted files: the pickle VM (`torch.save` files), the
//! weights reader on safetensors headers, and the Arrow dataset reader. Each must answer any
//! byte string with a value or an error, never a panic, an abort or a stack overflow.
//!
//! Under `cargo test` each target is a bounded run (bolero's test engine): the committed
//! corpus under `tests/__fuzz__/fuzz__<target>/corpus/` (valid files and the inputs that once
//! crashed), random inputs, and seeded mutations of the corpus files, which reach far deeper
//! than random bytes do. `cargo bolero test fuzz::pickle_reader` (with cargo-bolero) fuzzes
//! without bound. `cargo test -p engine --test fuzz -- --ignored write_corpus` rewrites the
//! valid seed files.

use std::path::{Path, PathBuf};

use rand::{Rng, SeedableRng};

/// Random inputs per target in the test suite.
const ITERATIONS: usize = 300;
/// Seeded mutations of each corpus file.
const MUTATIONS: usize = 150;

fn corpus_dir(target: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/__fuzz__")
        .join(format!("fuzz__{target}"))
        .join("corpus")
}

fn corpus(target: &str) -> Vec<Vec<u8>> {
    let dir = corpus_dir(target);
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| e.unwrap().path())
        .collect();
    files.sort();
    let seeds: Vec<Vec<u8>> = files.iter().map(|p| std::fs::read(p).unwrap()).collect();
    assert!(!seeds.is_empty(), "{}: empty corpus", dir.display());
    seeds
}

/// Byte flips, overwrites with boundary values, truncation and duplication of a span:
/// deterministic for a seed.
fn mutate(seed: &[u8], rng: &mut rand_chacha::ChaCha8Rng) -> Vec<u8> {
    let mut v = seed.to_vec();
    for _ in 0..rng.gen_range(1..=4) {
        if v.is_empty() {
            v.push(rng.gen());
            continue;
        }
        let at = rng.gen_range(0..v.len());
        match rng.gen_range(0..5) {
            0 => v[at] ^= 1 << rng.gen_range(0..8),
            1 => v[at] = [0x00, 0x7f, 0x80, 0xff][rng.gen_range(0..4)],
            2 => {
                let end = (at + 8).min(v.len());
                for b in &mut v[at..end] {
                    *b = 0xff;
                }
            }
            3 => v.truncate(at),
            _ => {
                let end = (at + rng.gen_range(1..64)).min(v.len());
                let span = v[at..end].to_vec();
                v.splice(at..at, span);
            }
        }
    }
    v
}

/// `TOWERLAB_FUZZ_MUTATIONS` and `TOWERLAB_FUZZ_SEED` run longer or other mutations by hand.
fn env_or(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn mutations(target: &str, check: impl Fn(&[u8])) {
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(env_or("TOWERLAB_FUZZ_SEED", 0x70_77_e7));
    let n = env_or("TOWERLAB_FUZZ_MUTATIONS", MUTATIONS as u64);
    for seed in corpus(target) {
        check(&seed);
        for _ in 0..n {
            check(&mutate(&seed, &mut rng));
        }
    }
}

/// Writes `bytes` to a file named `name` in a fresh folder and calls `f` on its path.
fn with_file<T>(name: &str, bytes: &[u8], f: impl FnOnce(&Path) -> T) -> T {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join(name);
    std::fs::write(&path, bytes).unwrap();
    f(&path)
}

fn pickle(input: &[u8]) {
    let _ = engine::weights::pickle::unpickle(input);
}

/// The whole weights reader, then what `model inspect` shows of a file it read (the
/// architecture inferred from shapes, parameter counts).
fn weights(name: &str, input: &[u8]) {
    with_file(name, input, |p| {
        if let Ok(ckpt) = engine::weights::read(p) {
            let _ = engine::weights::Summary::of(&ckpt).to_string();
        }
    });
}

/// A `torch.save` zip archive around the pickle too.
fn torch_file(input: &[u8]) {
    weights("fuzz.pt", input);
}

fn safetensors(input: &[u8]) {
    weights("fuzz.safetensors", input);
}

/// An Arrow file as `data inspect` reads it: schema, task detection, samples, targets and
/// image bytes of every row.
fn arrow(input: &[u8]) {
    with_file("fuzz.arrow", input, |p| {
        let _ = engine::data::inspect_path(p, 4);
    });
}

#[test]
fn pickle_reader() {
    bolero::check!()
        .with_iterations(ITERATIONS * 10)
        .for_each(pickle);
    mutations("pickle_reader", pickle);
}

#[test]
fn torch_file_reader() {
    bolero::check!()
        .with_iterations(ITERATIONS)
        .for_each(torch_file);
    mutations("torch_file_reader", torch_file);
}

#[test]
fn safetensors_reader() {
    bolero::check!()
        .with_iterations(ITERATIONS)
        .for_each(safetensors);
    mutations("safetensors_reader", safetensors);
}

#[test]
fn arrow_reader() {
    bolero::check!().with_iterations(ITERATIONS).for_each(arrow);
    mutations("arrow_reader", arrow);
}

/// Rewrites the valid seed files of the corpus (the crash regressions beside them stay).
#[test]
#[ignore = "writes the committed corpus; run by hand"]
fn write_corpus() {
    use engine::data::{write_arrow, Column};
    use tch::{Device, Kind, Tensor};

    let tensors = vec![
        (
            "text_transformer.embeddings.word_embeddings.weight".to_string(),
            Tensor::ones([4, 2], (Kind::Float, Device::Cpu)),
        ),
        (
            "vit_model.visual.conv1.weight".to_string(),
            Tensor::zeros([2, 3, 2, 2], (Kind::Half, Device::Cpu)),
        ),
        (
            "token_type_embeddings.weight".to_string(),
            Tensor::zeros([2, 2], (Kind::Float, Device::Cpu)),
        ),
    ];
    let write = |target: &str, name: &str, bytes: Vec<u8>| {
        let dir = corpus_dir(target);
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join(name), bytes).unwrap();
    };
    let tmp = tempfile::tempdir().unwrap();

    let st = tmp.path().join("w.safetensors");
    engine::weights::write_safetensors(&st, &tensors).unwrap();
    write(
        "safetensors_reader",
        "seed-small.safetensors",
        std::fs::read(&st).unwrap(),
    );

    let ckpt = tmp.path().join("w.ckpt");
    engine::weights::write_lightning_ckpt(&ckpt, &tensors).unwrap();
    let ckpt_bytes = std::fs::read(&ckpt).unwrap();
    write(
        "torch_file_reader",
        "seed-lightning.ckpt",
        ckpt_bytes.clone(),
    );
    let mut zip = zip::ZipArchive::new(std::io::Cursor::new(ckpt_bytes)).unwrap();
    let name = (0..zip.len())
        .map(|i| zip.by_index(i).unwrap().name().to_string())
        .find(|n| n.ends_with("data.pkl"))
        .unwrap();
    let mut pkl = Vec::new();
    std::io::Read::read_to_end(&mut zip.by_name(&name).unwrap(), &mut pkl).unwrap();
    write("pickle_reader", "seed-lightning.pkl", pkl);

    let strs = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
    let arrow = tmp.path().join("vqa.arrow");
    write_arrow(
        &arrow,
        &[
            (
                "image",
                Column::Binary(vec![b"\x89PNG\r\n\x1a\nnot really".to_vec()]),
            ),
            (
                "questions",
                Column::StrList(vec![strs(&["how many?", "what?"])]),
            ),
            (
                "answers",
                Column::StrListList(vec![vec![strs(&["2"]), strs(&["red"])]]),
            ),
            (
                "answer_labels",
                Column::Int64ListList(vec![vec![vec![4], vec![7]]]),
            ),
            (
                "answer_scores",
                Column::F64ListList(vec![vec![vec![1.0], vec![0.3]]]),
            ),
            ("image_id", Column::Int64(vec![11])),
            ("question_id", Column::Int64List(vec![vec![110, 111]])),
            ("split", Column::Str(strs(&["train"]))),
        ],
        None,
    )
    .unwrap();
    write(
        "arrow_reader",
        "seed-vqa.arrow",
        std::fs::read(&arrow).unwrap(),
    );
    let nlvr2 = tmp.path().join("nlvr2.arrow");
    write_arrow(
        &nlvr2,
        &[
            ("image_0", Column::Binary(vec![vec![0u8; 4]])),
            ("image_1", Column::Binary(vec![vec![1u8; 4]])),
            ("questions", Column::StrList(vec![strs(&["left has more"])])),
            ("answers", Column::StrList(vec![strs(&["True"])])),
            ("identifier", Column::Str(strs(&["dev-1-0"]))),
        ],
        None,
    )
    .unwrap();
    write(
        "arrow_reader",
        "seed-nlvr2.arrow",
        std::fs::read(&nlvr2).unwrap(),
    );
}
