//! Fuzz target for the experiment-file parser: any text gets an experiment or validation
//! errors, never a panic (nor unbounded memory: grids are bounded).
//!
//! Under `cargo test` it is a bounded run (bolero's test engine) over the committed corpus in
//! `tests/__fuzz__/fuzz__experiment_parser/corpus/` (the shipped experiment files and the
//! inputs that once crashed), random inputs, and seeded mutations of the corpus files.
//! `cargo bolero test fuzz::experiment_parser` (with cargo-bolero) fuzzes without bound.

use std::path::{Path, PathBuf};

use experiments::{Experiment, Overrides};

const ITERATIONS: usize = 2000;
const MUTATIONS: usize = 300;

fn parse(input: &[u8]) {
    let text = String::from_utf8_lossy(input);
    let _ = Experiment::from_toml(&text, Path::new("fuzz.toml"), &Overrides::default());
}

fn corpus() -> Vec<Vec<u8>> {
    let dir =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/__fuzz__/fuzz__experiment_parser/corpus");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| e.unwrap().path())
        .collect();
    files.sort();
    assert!(!files.is_empty(), "{}: empty corpus", dir.display());
    files.iter().map(|p| std::fs::read(p).unwrap()).collect()
}

/// xorshift64*: deterministic mutations without a dependency.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
}

/// Text-aware mutations: TOML punctuation, digits, huge numbers and duplicated spans.
fn mutate(seed: &[u8], rng: &mut Rng) -> Vec<u8> {
    const PIECES: &[&[u8]] = &[
        b"[",
        b"]",
        b"{",
        b"}",
        b"=",
        b"\"",
        b",",
        b"\n",
        b"#",
        b".",
        b"-",
        b"0",
        b"9",
        b"1e308",
        b"nan",
        b"inf",
        b"-1",
        b"99999999999999999999",
        b"[[grid]]",
        b"[grid]\n",
        b"seeds = ",
        b"true",
        b"'''",
    ];
    let mut v = seed.to_vec();
    for _ in 0..1 + rng.below(4) {
        let at = rng.below(v.len() + 1);
        match rng.below(4) {
            0 if at < v.len() => {
                v.remove(at);
            }
            1 => {
                let p = PIECES[rng.below(PIECES.len())];
                v.splice(at..at, p.iter().copied());
            }
            2 => {
                let end = (at + 1 + rng.below(80)).min(v.len());
                let span = v[at.min(end)..end].to_vec();
                v.splice(at..at, span);
            }
            _ => v.truncate(at),
        }
    }
    v
}

#[test]
fn experiment_parser() {
    bolero::check!().with_iterations(ITERATIONS).for_each(parse);
    let mut rng = Rng(0x5eed_f00d);
    for seed in corpus() {
        parse(&seed);
        for _ in 0..MUTATIONS {
            parse(&mutate(&seed, &mut rng));
        }
    }
}
