//! `towerlab data convert` as a user runs it: the report, re-runs, bad input.

use std::path::Path;
use std::process::{Command, Output};

fn towerlab(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_towerlab"))
        .args(args)
        .output()
        .unwrap()
}

fn text(out: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

fn jpeg(path: &Path) {
    let img = image::RgbImage::from_fn(10, 6, |x, y| image::Rgb([x as u8 * 20, y as u8 * 30, 90]));
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    img.save_with_format(path, image::ImageFormat::Jpeg)
        .unwrap();
}

fn snli_raw(root: &Path) {
    let ve = root.join("snli_ve");
    std::fs::create_dir_all(&ve).unwrap();
    let line = |id: &str, label: &str| {
        format!(
            "{{\"Flickr30K_ID\": \"{id}\", \"sentence1\": \"A dog runs.\", \"sentence2\": \"An animal moves.\", \"gold_label\": \"{label}\"}}\n"
        )
    };
    std::fs::write(
        ve.join("snli_ve_train.jsonl"),
        line("1", "entailment") + &line("1", "neutral") + &line("2", "contradiction"),
    )
    .unwrap();
    std::fs::write(ve.join("snli_ve_dev.jsonl"), line("3", "neutral")).unwrap();
    std::fs::write(ve.join("snli_ve_test.jsonl"), "").unwrap();
    jpeg(&root.join("flickr30k-images/1.jpg"));
    jpeg(&root.join("flickr30k-images/3.jpg"));
}

#[test]
fn converts_reports_and_skips_finished_files() {
    let dir = tempfile::tempdir().unwrap();
    let (raw, out) = (dir.path().join("raw"), dir.path().join("out"));
    snli_raw(&raw);
    let args = [
        "data",
        "convert",
        "snli-ve",
        "--raw",
        raw.to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
        "--jobs",
        "2",
    ];
    let first = towerlab(&args);
    let t = text(&first);
    assert!(first.status.success(), "{t}");
    assert!(t.contains("snli_train.arrow"), "{t}");
    assert!(
        t.contains("skipped 1 images (1 missing, 0 unreadable or corrupt)"),
        "{t}"
    );
    assert!(t.contains("2.jpg  missing"), "{t}");
    assert!(t.contains("snli-ve_skipped_images.tsv"), "{t}");
    assert!(
        t.contains("converted snli-ve: 3 files (3 written, 0 up to date)"),
        "{t}"
    );
    assert!(out.join("snli_train.arrow").is_file());

    let again = towerlab(&args);
    let t = text(&again);
    assert!(again.status.success(), "{t}");
    assert!(t.contains("up to date"), "{t}");
    assert!(t.contains("(0 written, 3 up to date)"), "{t}");

    let inspect = towerlab(&[
        "data",
        "inspect",
        out.join("snli_train.arrow").to_str().unwrap(),
    ]);
    let t = text(&inspect);
    assert!(inspect.status.success(), "{t}");
    assert!(t.contains("samples (one per text): 2"), "{t}");
    assert!(t.contains("written by towerlab data convert"), "{t}");

    // Another seed over finished files: refused, nothing overwritten.
    let before = std::fs::read(out.join("snli_train.arrow")).unwrap();
    let mut other: Vec<&str> = args.to_vec();
    other.extend(["--seed", "3"]);
    let refused = towerlab(&other);
    let t = text(&refused);
    assert!(!refused.status.success(), "{t}");
    assert!(t.contains("--force"), "{t}");
    assert_eq!(before, std::fs::read(out.join("snli_train.arrow")).unwrap());
}

#[test]
fn missing_inputs_are_one_message_and_a_failure() {
    let dir = tempfile::tempdir().unwrap();
    let raw = dir.path().join("raw");
    std::fs::create_dir_all(raw.join("snli_ve")).unwrap();
    let out = towerlab(&[
        "data",
        "convert",
        "snli-ve",
        "--raw",
        raw.to_str().unwrap(),
        "--out",
        dir.path().join("out").to_str().unwrap(),
    ]);
    let t = text(&out);
    assert!(!out.status.success(), "{t}");
    assert!(t.contains("snli_ve_train.jsonl (file)"), "{t}");
    assert!(t.contains("flickr30k-images (folder)"), "{t}");
    assert!(!t.contains("panicked"), "{t}");

    let bad = towerlab(&["data", "convert", "imagenet", "--raw", ".", "--out", "."]);
    let t = text(&bad);
    assert!(!bad.status.success());
    assert!(
        t.contains("unknown dataset `imagenet`") && t.contains("vqav2"),
        "{t}"
    );
}

#[test]
fn help_lists_the_raw_layouts() {
    let out = towerlab(&["data", "convert", "--help"]);
    let t = text(&out);
    assert!(out.status.success(), "{t}");
    assert!(
        t.contains("v2_mscoco_{train2014,val2014}_annotations.json"),
        "{t}"
    );
    assert!(t.contains("--seed"), "{t}");
}
