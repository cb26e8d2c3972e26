//! Crafted weight files: shapes and pickles a real `torch.save` never writes must be errors
//! naming the file and key, never a panic or a stack overflow.

use std::io::Write as _;
use std::path::Path;

use tch::{Device, Kind, Tensor};

fn write_zip_pickle(path: &Path, pickle: &[u8]) {
    let file = std::fs::File::create(path).unwrap();
    let mut zip = zip::ZipWriter::new(file);
    let opts =
        zip::write::FileOptions::default().compression_method(zip::CompressionMethod::Stored);
    zip.start_file("archive/data.pkl", opts).unwrap();
    zip.write_all(pickle).unwrap();
    zip.start_file("archive/byteorder", opts).unwrap();
    zip.write_all(b"little").unwrap();
    zip.finish().unwrap();
}

/// 100,000 nested lists: `]` pushed that many times, then each appended into the one below.
fn deep_pickle(depth: usize) -> Vec<u8> {
    let mut p = vec![0x80, 0x02];
    p.extend(std::iter::repeat_n(b']', depth));
    p.extend(std::iter::repeat_n(b'a', depth - 1));
    p.push(b'.');
    p
}

#[test]
fn a_deeply_nested_pickle_is_an_error_naming_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("deep.pt");
    write_zip_pickle(&path, &deep_pickle(100_000));
    // On a thread with a small stack (1 MiB, half of what Rust and tokio give loader and runner
    // threads; zip's reader alone takes 64 KiB of it): 100,000 levels of recursion would need
    // many times that, so only a depth limit gets through.
    let p = path.clone();
    let err = std::thread::Builder::new()
        .stack_size(1024 * 1024)
        .spawn(move || engine::weights::read(&p).err().map(|e| e.to_string()))
        .unwrap()
        .join()
        .expect("reading the file must not crash")
        .expect("a deep pickle is an error");
    assert!(err.contains("deep.pt"), "{err}");
    assert!(err.contains("nested more than"), "{err}");
}

#[test]
fn rank_zero_and_rank_one_word_embeddings_are_errors_naming_the_key() {
    let dir = tempfile::tempdir().unwrap();
    let key = "text_transformer.embeddings.word_embeddings.weight";
    for (name, t) in [
        ("rank0.safetensors", Tensor::from(1.0f32)),
        (
            "rank1.safetensors",
            Tensor::zeros([5], (Kind::Float, Device::Cpu)),
        ),
    ] {
        let path = dir.path().join(name);
        Tensor::write_safetensors(&[(key, t)], &path).unwrap();
        let err = engine::weights::read(&path).expect_err(name).to_string();
        assert!(err.contains(name) && err.contains(key), "{err}");
        assert!(err.contains("expected rank 2"), "{err}");
    }
}
