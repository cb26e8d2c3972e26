//! Data pipeline tests on small files written here in the reference schemas.

use std::path::{Path, PathBuf};
use std::sync::{Arc, OnceLock};

use engine::data::synth_tokenizer::train_tokenizer;
use engine::data::*;
use image::{ImageFormat, RgbImage};
use tch::Kind;

fn png(w: u32, h: u32, rgb: [u8; 3]) -> Vec<u8> {
    let img = RgbImage::from_fn(w, h, |x, y| {
        image::Rgb([
            rgb[0].wrapping_add(x as u8),
            rgb[1].wrapping_add(y as u8),
            rgb[2],
        ])
    });
    let mut out = std::io::Cursor::new(Vec::new());
    img.write_to(&mut out, ImageFormat::Png).unwrap();
    out.into_inner()
}

fn jpeg(w: u32, h: u32, rgb: [u8; 3]) -> Vec<u8> {
    let img = RgbImage::from_pixel(w, h, image::Rgb(rgb));
    let mut out = std::io::Cursor::new(Vec::new());
    img.write_to(&mut out, ImageFormat::Jpeg).unwrap();
    out.into_inner()
}

fn strs(v: &[&str]) -> Vec<String> {
    v.iter().map(|s| s.to_string()).collect()
}

fn write_captions(path: &Path, rows: usize, corrupt_row: Option<usize>, per_batch: Option<usize>) {
    let images = (0..rows)
        .map(|r| {
            if Some(r) == corrupt_row {
                b"\xff\xd8\xff\xe0 this is not a jpeg".to_vec()
            } else {
                jpeg(40 + r as u32, 30, [10 * r as u8, 100, 200])
            }
        })
        .collect();
    let captions = (0..rows)
        .map(|r| {
            vec![
                format!("a red circle number {r}"),
                format!("two blue squares in image {r}"),
                // A duplicate: dropped by the reference's set().
                format!("a red circle number {r}"),
            ]
        })
        .collect();
    write_arrow(
        path,
        &[
            ("image", Column::Binary(images)),
            ("caption", Column::StrList(captions)),
            (
                "image_id",
                Column::Str((0..rows).map(|r| format!("{r}.jpg")).collect()),
            ),
            ("split", Column::Str(vec!["train".into(); rows])),
        ],
        per_batch,
    )
    .unwrap();
}

fn write_vqa(path: &Path) {
    write_arrow(
        path,
        &[
            (
                "image",
                Column::Binary(vec![jpeg(32, 32, [1, 2, 3]), jpeg(48, 20, [9, 9, 9])]),
            ),
            (
                "questions",
                Column::StrList(vec![strs(&["how many?", "what color?"]), strs(&["is it?"])]),
            ),
            (
                "answers",
                Column::StrListList(vec![
                    vec![strs(&["2", "3"]), strs(&["red"])],
                    vec![strs(&["yes"])],
                ]),
            ),
            (
                "answer_labels",
                Column::Int64ListList(vec![vec![vec![4, 5], vec![7]], vec![vec![0]]]),
            ),
            (
                "answer_scores",
                Column::F64ListList(vec![vec![vec![1.0, 0.3], vec![0.9]], vec![vec![1.0]]]),
            ),
            ("image_id", Column::Int64(vec![11, 12])),
            (
                "question_id",
                Column::Int64List(vec![vec![110, 111], vec![120]]),
            ),
            ("split", Column::Str(strs(&["train", "train"]))),
        ],
        None,
    )
    .unwrap();
}

/// A tokenizer trained once for all tests.
fn tokenizer_path() -> &'static PathBuf {
    static PATH: OnceLock<PathBuf> = OnceLock::new();
    PATH.get_or_init(|| {
        let dir = std::env::temp_dir().join(format!("towerlab-data-tok-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("tokenizer.json");
        let mut corpus: Vec<String> = Vec::new();
        for c in ["red", "blue", "green"] {
            for s in ["circle", "square", "triangle"] {
                for n in ["a", "two", "three", "how many"] {
                    corpus.push(format!("{n} {c} {s}s in the picture"));
                    corpus.push(format!("is the {c} {s} to the left of the image number?"));
                }
            }
        }
        corpus.sort();
        train_tokenizer(&corpus, &path).unwrap();
        path
    })
}

fn tokenizer(max_len: usize) -> Arc<TextTokenizer> {
    Arc::new(TextTokenizer::from_file(tokenizer_path(), max_len).unwrap())
}

#[test]
fn captions_one_sample_per_unique_caption_across_files_and_batches() {
    let dir = tempfile::tempdir().unwrap();
    write_captions(&dir.path().join("a.arrow"), 5, None, Some(2));
    write_captions(&dir.path().join("b.arrow"), 3, None, None);
    let ds = ViltDataset::open(dir.path(), &strs(&["a", "b"]), DatasetKind::Captions).unwrap();
    assert_eq!(ds.files()[0].num_batches(), 3);
    assert_eq!(ds.num_rows(), 8);
    assert_eq!(
        ds.len(),
        16,
        "duplicates removed: 2 unique captions per row"
    );
    assert_eq!(ds.locate(10), (5, 0));
    assert_eq!(ds.text(10).unwrap(), "a red circle number 0");
    assert_eq!(ds.text(11).unwrap(), "two blue squares in image 0");
    assert_eq!(ds.table_name(5), "b");
    assert_eq!(ds.table_name(4), "a");
    // Row 4 sits in the third record batch of a.arrow.
    assert_eq!(ds.text(9).unwrap(), "two blue squares in image 4");
    let img = decode_rgb(ds.image_bytes(4, ImageSlot::Image).unwrap()).unwrap();
    assert_eq!(img.dimensions(), (44, 30));
    assert_eq!(ds.target(0).unwrap(), Target::None);
}

#[test]
fn vqa_nlvr2_snli_targets_follow_the_reference() {
    let dir = tempfile::tempdir().unwrap();
    write_vqa(&dir.path().join("vqav2_train.arrow"));
    let ds = ViltDataset::open(dir.path(), &strs(&["vqav2_train"]), DatasetKind::Vqa).unwrap();
    assert_eq!(ds.len(), 3);
    assert_eq!(ds.text(1).unwrap(), "what color?");
    assert_eq!(
        ds.target(0).unwrap(),
        Target::Vqa {
            answers: strs(&["2", "3"]),
            labels: vec![4, 5],
            scores: vec![1.0, 0.3],
            question_id: 110
        }
    );

    write_arrow(
        &dir.path().join("nlvr2_dev.arrow"),
        &[
            ("image_0", Column::Binary(vec![png(8, 8, [0, 0, 0])])),
            ("image_1", Column::Binary(vec![png(9, 7, [5, 5, 5])])),
            (
                "questions",
                Column::StrList(vec![strs(&["left has more", "right has more"])]),
            ),
            ("answers", Column::StrList(vec![strs(&["True", "False"])])),
            ("identifier", Column::Str(strs(&["dev-1-0"]))),
        ],
        None,
    )
    .unwrap();
    let ds = ViltDataset::open(dir.path(), &strs(&["nlvr2_dev"]), DatasetKind::Nlvr2).unwrap();
    assert_eq!(ds.target(0).unwrap(), Target::Nlvr2 { label: true });
    assert_eq!(ds.target(1).unwrap(), Target::Nlvr2 { label: false });
    let im1 = decode_rgb(ds.image_bytes(0, ImageSlot::Image1).unwrap()).unwrap();
    assert_eq!(im1.dimensions(), (9, 7));

    write_arrow(
        &dir.path().join("snli_dev.arrow"),
        &[
            ("image", Column::Binary(vec![jpeg(8, 8, [0, 0, 0])])),
            (
                "sentences",
                Column::StrListList(vec![vec![
                    strs(&["premise", "  a dog runs "]),
                    strs(&["premise", "a cat sleeps"]),
                ]]),
            ),
            ("labels", Column::Int64List(vec![vec![2, 0]])),
        ],
        None,
    )
    .unwrap();
    let ds = ViltDataset::open(dir.path(), &strs(&["snli_dev"]), DatasetKind::Snli).unwrap();
    assert_eq!(
        ds.text(0).unwrap(),
        "a dog runs",
        "hypothesis only, stripped"
    );
    assert_eq!(ds.target(1).unwrap(), Target::Snli { label: 0 });
}

#[test]
fn vqa_test_split_with_null_typed_empty_answers_reads() {
    let dir = tempfile::tempdir().unwrap();
    write_arrow(
        &dir.path().join("vqav2_test.arrow"),
        &[
            ("image", Column::Binary(vec![jpeg(8, 8, [0, 0, 0])])),
            ("questions", Column::StrList(vec![strs(&["q1", "q2"])])),
            ("answers", Column::EmptyLists(1)),
            ("answer_labels", Column::EmptyLists(1)),
            ("answer_scores", Column::EmptyLists(1)),
            ("image_id", Column::Int64(vec![1])),
            ("question_id", Column::Int64List(vec![vec![5, 6]])),
            ("split", Column::Str(strs(&["test"]))),
        ],
        None,
    )
    .unwrap();
    let ds = ViltDataset::open(dir.path(), &strs(&["vqav2_test"]), DatasetKind::Vqa).unwrap();
    assert_eq!(
        ds.target(1).unwrap(),
        Target::Vqa {
            answers: vec![],
            labels: vec![],
            scores: vec![],
            question_id: 6
        }
    );
}

#[test]
fn wrong_type_missing_column_and_missing_file_are_named_errors() {
    let dir = tempfile::tempdir().unwrap();
    write_arrow(
        &dir.path().join("bad.arrow"),
        &[
            ("image", Column::Binary(vec![jpeg(8, 8, [0, 0, 0])])),
            ("caption", Column::Str(strs(&["not a list"]))),
        ],
        None,
    )
    .unwrap();
    let err = ViltDataset::open(dir.path(), &strs(&["bad"]), DatasetKind::Captions).unwrap_err();
    let msg = err.to_string();
    assert!(matches!(err, DataError::ColumnType { .. }), "{msg}");
    assert!(
        msg.contains("bad.arrow") && msg.contains("`caption`"),
        "{msg}"
    );
    assert!(
        msg.contains("list<string>") && msg.contains("Utf8"),
        "{msg}"
    );

    let err = ViltDataset::open(dir.path(), &strs(&["bad"]), DatasetKind::Snli).unwrap_err();
    assert!(matches!(err, DataError::MissingColumn { .. }), "{err}");
    assert!(err.to_string().contains("`sentences`"), "{err}");

    let err = ViltDataset::open(dir.path(), &strs(&["nope"]), DatasetKind::Captions).unwrap_err();
    assert!(err.to_string().contains("nope.arrow"), "{err}");
}

#[test]
fn truncated_and_foreign_files_are_errors_not_panics() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("cap.arrow");
    write_captions(&path, 4, None, Some(2));
    let full = std::fs::read(&path).unwrap();
    for cut in [full.len() - 1, full.len() - 12, full.len() / 2, 64, 9] {
        std::fs::write(&path, &full[..cut]).unwrap();
        let err = ArrowFile::open(&path).unwrap_err();
        assert!(
            matches!(err, DataError::Truncated { .. }),
            "cut {cut}: {err}"
        );
        assert!(err.to_string().contains("cap.arrow"), "{err}");
    }
    // A footer pointing past the data: cut the body but keep the trailer.
    let mut spliced = full[..full.len() / 3].to_vec();
    let footer_len = i32::from_le_bytes(full[full.len() - 10..full.len() - 6].try_into().unwrap());
    spliced.extend_from_slice(&full[full.len() - 10 - footer_len as usize..]);
    std::fs::write(&path, &spliced).unwrap();
    assert!(ArrowFile::open(&path).is_err());

    std::fs::write(&path, b"a text file, definitely not arrow at all").unwrap();
    let err = ArrowFile::open(&path).unwrap_err();
    assert!(matches!(err, DataError::Arrow { .. }), "{err}");
}

fn pipeline(dir: &Path, names: &[&str], kind: DatasetKind, key: &str) -> SamplePipeline {
    let ds = Arc::new(ViltDataset::open(dir, &strs(names), kind).unwrap());
    let mut p = SamplePipeline::new(
        ds,
        ImageTransform::from_key(key, 32).unwrap(),
        tokenizer(12),
    );
    p.num_answers = 10;
    p
}

#[test]
fn corrupt_images_are_skipped_and_counted() {
    let dir = tempfile::tempdir().unwrap();
    write_captions(&dir.path().join("c.arrow"), 6, Some(2), None);
    let p = pipeline(dir.path(), &["c"], DatasetKind::Captions, "clip");
    let loader = Loader::new(
        p,
        LoaderConfig {
            batch_size: 4,
            shuffle: false,
            drop_last: false,
            seed: 1,
            num_workers: 2,
            prefetch: 1,
        },
    )
    .unwrap();
    let mut epoch = loader.epoch(0);
    let batches: Vec<Batch> = epoch.by_ref().map(|b| b.unwrap()).collect();
    assert_eq!(batches.len(), 3);
    // Samples 4 and 5 (row 2) are replaced by other samples.
    assert_eq!(epoch.skipped_images(), 2);
    assert!(batches[1].sample_index.iter().all(|&s| s / 2 != 2));
    assert_eq!(
        batches[1].image.as_ref().unwrap().size(),
        vec![4, 3, 32, 32]
    );
}

#[test]
fn vqa_batch_has_dense_soft_targets_and_text_tensors() {
    let dir = tempfile::tempdir().unwrap();
    write_vqa(&dir.path().join("vqav2_train.arrow"));
    let p = pipeline(
        dir.path(),
        &["vqav2_train"],
        DatasetKind::Vqa,
        "albef_randaug_wohf",
    );
    let b = p.make_batch(&[0, 1, 2], &[1, 2, 3], 9).unwrap();
    let t = b.vqa_targets.as_ref().unwrap();
    assert_eq!(t.size(), vec![3, 10]);
    assert_eq!(t.double_value(&[0, 4]), 1.0);
    assert!((t.double_value(&[0, 5]) - 0.3).abs() < 1e-6);
    assert!((t.double_value(&[1, 7]) - 0.9).abs() < 1e-6);
    assert!((t.sum(Kind::Double).double_value(&[]) - 3.2).abs() < 1e-5);
    assert_eq!(b.question_ids, vec![110, 111, 120]);
    assert_eq!(b.text.ids.size(), vec![3, 12]);
    assert_eq!(b.text.labels.min().int64_value(&[]), -100);
    assert_eq!(b.img_index.int64_value(&[2]), 1);
    let masks = &b.text.masks;
    assert_eq!(masks.int64_value(&[0, 0]), 1);
    assert_eq!(masks.int64_value(&[0, 11]), 0);
    // An out-of-vocabulary label is an error naming the file.
    let mut small = p.clone();
    small.num_answers = 5;
    let err = small.make_batch(&[1], &[1], 1).unwrap_err().to_string();
    assert!(
        err.contains("vqav2_train") && err.contains("label 7"),
        "{err}"
    );
}

fn tensors_equal(a: &tch::Tensor, b: &tch::Tensor) -> bool {
    a.size() == b.size() && a.equal(b)
}

#[test]
fn loader_is_deterministic_across_worker_counts_and_resumable() {
    let dir = tempfile::tempdir().unwrap();
    write_captions(&dir.path().join("c.arrow"), 7, None, Some(3));
    let run = |workers: usize, start: LoaderPosition| {
        let p = pipeline(
            dir.path(),
            &["c"],
            DatasetKind::Captions,
            "albef_randaug_wc",
        );
        let mut p = p;
        p.draw_false_image = 1;
        let loader = Loader::new(
            p,
            LoaderConfig {
                batch_size: 3,
                shuffle: true,
                drop_last: true,
                seed: 42,
                num_workers: workers,
                prefetch: 2,
            },
        )
        .unwrap();
        assert_eq!(loader.batches_per_epoch(), 4);
        loader.resume(start).map(|b| b.unwrap()).collect::<Vec<_>>()
    };
    let start = LoaderPosition { epoch: 3, batch: 0 };
    let reference = run(0, start);
    assert_eq!(reference.len(), 4);
    for workers in [1, 3] {
        let other = run(workers, start);
        for (a, b) in reference.iter().zip(&other) {
            assert_eq!(a.sample_index, b.sample_index);
            assert!(tensors_equal(
                a.image.as_ref().unwrap(),
                b.image.as_ref().unwrap()
            ));
            assert!(tensors_equal(&a.false_images[0], &b.false_images[0]));
            assert!(tensors_equal(&a.text.ids_mlm, &b.text.ids_mlm));
            assert!(tensors_equal(&a.text.labels_mlm, &b.text.labels_mlm));
        }
    }
    let resumed = run(2, LoaderPosition { epoch: 3, batch: 2 });
    assert_eq!(resumed.len(), 2);
    assert_eq!(resumed[0].sample_index, reference[2].sample_index);
    assert!(tensors_equal(
        resumed[1].image.as_ref().unwrap(),
        reference[3].image.as_ref().unwrap()
    ));
    let next_epoch = run(0, LoaderPosition { epoch: 4, batch: 0 });
    let order = |v: &[Batch]| {
        v.iter()
            .flat_map(|b| b.sample_index.clone())
            .collect::<Vec<_>>()
    };
    assert_ne!(order(&next_epoch), order(&reference), "epochs reshuffle");
}

#[test]
fn tokenizer_round_trip_padding_and_truncation() {
    let tok = tokenizer(10);
    let enc = tok.encode("two red circles in the picture").unwrap();
    assert_eq!(enc.ids.len(), 10);
    assert_eq!(enc.ids[0], 0, "<s>");
    let n = enc.attention_mask.iter().sum::<i64>() as usize;
    assert_eq!(enc.ids[n - 1], 2, "</s>");
    assert!(enc.ids[n..].iter().all(|&i| i == tok.pad_id()));
    assert!(enc.special[0] && enc.special[n - 1] && enc.special[n..].iter().all(|&s| s));
    assert!(!enc.special[1]);
    assert_eq!(
        tok.decode(&enc.ids).unwrap(),
        "two red circles in the picture"
    );

    let long = "is the red circle to the left of the blue square to the left of the green triangle";
    let enc = tok.encode(long).unwrap();
    assert_eq!(enc.ids.len(), 10);
    assert_eq!(enc.attention_mask.iter().sum::<i64>(), 10);
    assert_eq!(enc.ids[9], 2, "truncation keeps </s>");
}

#[test]
fn mlm_masking_statistics_and_special_token_safety() {
    use rand::SeedableRng;
    let tok = tokenizer(40);
    let enc = tok
        .encode("is the red circle to the left of the blue square in the picture")
        .unwrap();
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(5);
    let (mut chosen, mut to_mask, mut random, mut kept, mut eligible) = (0, 0, 0, 0, 0);
    for _ in 0..4000 {
        let (ids, labels) = mlm_mask(&enc, 0.15, tok.mask_id(), tok.vocab_size(), &mut rng);
        for i in 0..ids.len() {
            if enc.special[i] {
                assert_eq!(labels[i], IGNORE_INDEX);
                assert_eq!(ids[i], enc.ids[i]);
                continue;
            }
            eligible += 1;
            if labels[i] == IGNORE_INDEX {
                assert_eq!(ids[i], enc.ids[i]);
                continue;
            }
            chosen += 1;
            assert_eq!(labels[i], enc.ids[i]);
            if ids[i] == tok.mask_id() {
                to_mask += 1;
            } else if ids[i] == enc.ids[i] {
                kept += 1;
            } else {
                random += 1;
            }
        }
    }
    let rate = chosen as f64 / eligible as f64;
    assert!((rate - 0.15).abs() < 0.01, "masking rate {rate}");
    let frac = |n: i32| n as f64 / chosen as f64;
    assert!((frac(to_mask) - 0.8).abs() < 0.02, "mask {}", frac(to_mask));
    // A random id can equal the original (1/vocab), so kept is slightly above 10%.
    assert!((frac(random) - 0.1).abs() < 0.02, "random {}", frac(random));
    assert!((frac(kept) - 0.1).abs() < 0.02, "kept {}", frac(kept));
}

/// Making the set again where it already is writes nothing (modification times stay, so run
/// identities that hash them stay); a damaged or missing file is put back, alone.
#[test]
fn synth_again_leaves_identical_files_alone() {
    let dir = tempfile::tempdir().unwrap();
    let first = synth(dir.path(), SynthSize::Small, 0).unwrap();
    assert_eq!(
        first.written.len(),
        first.files.len() + 2,
        "every table, the tokenizer and the answers"
    );
    for name in ["vqav2_train_fix", "vqav2_val_fix", "vqav2_test"] {
        assert!(first.files.iter().any(|(n, _)| n == name), "{name}");
    }
    let mtimes = |d: &std::path::Path| -> Vec<(String, std::time::SystemTime)> {
        let mut v: Vec<_> = std::fs::read_dir(d)
            .unwrap()
            .map(|e| e.unwrap())
            .map(|e| {
                (
                    e.file_name().to_string_lossy().into_owned(),
                    e.metadata().unwrap().modified().unwrap(),
                )
            })
            .collect();
        v.sort();
        v
    };
    let before = mtimes(dir.path());
    std::thread::sleep(std::time::Duration::from_millis(20));
    let again = synth(dir.path(), SynthSize::Small, 0).unwrap();
    assert!(again.written.is_empty(), "{:?}", again.written);
    assert_eq!(
        mtimes(dir.path()),
        before,
        "no file was touched, no staging left"
    );

    std::fs::write(dir.path().join("snli_dev.arrow"), b"damaged").unwrap();
    std::fs::remove_file(dir.path().join("vqav2_val_fix.arrow")).unwrap();
    let repaired = synth(dir.path(), SynthSize::Small, 0).unwrap();
    assert_eq!(repaired.written, ["snli_dev.arrow", "vqav2_val_fix.arrow"]);
    assert_eq!(
        std::fs::read(dir.path().join("vqav2_val_fix.arrow")).unwrap(),
        std::fs::read(dir.path().join("vqav2_val.arrow")).unwrap()
    );
}

#[test]
fn synth_is_deterministic_loadable_and_not_trivial() {
    let a = tempfile::tempdir().unwrap();
    let b = tempfile::tempdir().unwrap();
    let report = synth(a.path(), SynthSize::Small, 7).unwrap();
    synth(b.path(), SynthSize::Small, 7).unwrap();
    let mut names: Vec<String> = report
        .files
        .iter()
        .map(|(n, _)| format!("{n}.arrow"))
        .collect();
    names.extend(["tokenizer.json".into(), "vqav2_answers.json".into()]);
    for n in &names {
        let (x, y) = (
            std::fs::read(a.path().join(n)).unwrap(),
            std::fs::read(b.path().join(n)).unwrap(),
        );
        assert!(x == y, "{n} differs between two runs with the same seed");
    }
    // Every task's tables (as a run's settings name them) open and yield a batch with the
    // synthetic tokenizer.
    use engine::train::TaskData;
    use experiments::settings::Split as TableSplit;
    use experiments::Task;
    let tok = Arc::new(TextTokenizer::from_file(&a.path().join("tokenizer.json"), 40).unwrap());
    for (task, kind, datasets) in [
        (
            Task::Pretrain,
            DatasetKind::Captions,
            &["coco", "vg", "sbu", "gcc"][..],
        ),
        (Task::Vqa, DatasetKind::Vqa, &[]),
        (Task::Nlvr2, DatasetKind::Nlvr2, &[]),
        (Task::Snli, DatasetKind::Snli, &[]),
        (Task::Irtr, DatasetKind::Captions, &["f30k"]),
        (Task::Irtr, DatasetKind::Captions, &["coco"]),
    ] {
        let settings = experiments::Settings {
            task,
            datasets: strs(datasets),
            ..experiments::Settings::default()
        };
        for split in [TableSplit::Train, TableSplit::Val] {
            let names: Vec<String> = settings
                .tables(split)
                .iter()
                // The reference's table names, as a run reads them by default.
                .flat_map(|t| experiments::expand_table(a.path(), t))
                .collect();
            let ds = Arc::new(ViltDataset::open(a.path(), &names, kind).unwrap());
            assert!(ds.len() > 10, "{task:?} {split:?}");
            let mut p = SamplePipeline::new(
                ds,
                ImageTransform::from_key("clip", 32).unwrap(),
                tok.clone(),
            );
            p.num_answers = engine::data::synth::answer_vocabulary().len();
            let batch = p.make_batch(&[0, 1], &[0, 1], 0).unwrap();
            let unk = batch.text.ids.eq(3).sum(Kind::Int64).int64_value(&[]);
            assert_eq!(unk, 0, "{task:?}: the tokenizer covers the corpus");
        }
    }

    // A run's settings build its loaders.
    let mut settings = experiments::Settings::preset("tiny").unwrap();
    settings.task = Task::Vqa;
    settings.data_root = a.path().to_string_lossy().into_owned();
    settings.tokenizer = "roberta-base".into();
    settings.image_size = 32;
    settings.per_gpu_batchsize = 4;
    settings.num_workers = 1;
    settings.train_transform_keys = vec!["albef_randaug_wohf".into()];
    settings.train_tables = strs(&["vqav2_train"]);
    settings.val_tables = strs(&["vqav2_val"]);
    // A head of the reference's 3129 answers does not fit the data's 21: no run starts.
    let err = engine::train::data_source::LoaderData::open(&settings)
        .err()
        .expect("a head size that disagrees with the data's answers");
    assert!(
        err.to_string().starts_with("vqav2_label_size = 3129, but ")
            && err
                .to_string()
                .contains("vqav2_answers.json lists 21 answers"),
        "{err}"
    );
    settings.vqav2_label_size = engine::data::synth::answer_vocabulary().len() as i64;
    let data = engine::train::data_source::LoaderData::open(&settings).unwrap();
    let first = data.train_epoch(0, 0).next().unwrap().unwrap();
    assert_eq!(
        first.vqa_targets.as_ref().unwrap().size(),
        vec![4, settings.vqav2_label_size]
    );
    assert_eq!(first.image.size(), vec![4, 3, 32, 32]);

    let vqa = inspect_path(&a.path().join("vqav2_train.arrow"), 2).unwrap();
    let labels = vqa[0].labels.as_ref().unwrap();
    assert!(
        labels.majority_baseline < 0.3,
        "majority baseline {}",
        labels.majority_baseline
    );
    assert!(labels.distinct >= 10);
    // The question alone (its type) beats the majority answer but is far from solving the set.
    let prior = labels.question_type_baseline.unwrap();
    assert!(
        prior > labels.majority_baseline && prior < 0.6,
        "question-type baseline {prior}"
    );
    for name in ["nlvr2_train.arrow", "snli_train.arrow"] {
        let s = inspect_path(&a.path().join(name), 1).unwrap();
        let l = s[0].labels.as_ref().unwrap();
        assert!(l.majority_baseline < 0.6, "{name}: {}", l.majority_baseline);
    }
}

/// An SNLI-VE label outside {0, 1, 2} panicked the loss (a device-side assert on a GPU); an
/// NLVR2 answer other than "True" trained silently as False. Both are errors naming the file,
/// row and value.
#[test]
fn out_of_range_snli_labels_and_unknown_nlvr2_answers_are_named_data_errors() {
    let dir = tempfile::tempdir().unwrap();
    for bad in [7, -1] {
        write_arrow(
            &dir.path().join("snli_train.arrow"),
            &[
                ("image", Column::Binary(vec![jpeg(8, 8, [0, 0, 0]); 2])),
                (
                    "sentences",
                    Column::StrListList(vec![
                        vec![strs(&["premise", "a dog runs"])],
                        vec![strs(&["premise", "a cat sleeps"])],
                    ]),
                ),
                ("labels", Column::Int64List(vec![vec![2], vec![bad]])),
            ],
            None,
        )
        .unwrap();
        let ds = ViltDataset::open(dir.path(), &strs(&["snli_train"]), DatasetKind::Snli).unwrap();
        assert_eq!(ds.target(0).unwrap(), Target::Snli { label: 2 });
        let err = ds.target(1).unwrap_err();
        assert!(matches!(err, DataError::BadValue { row: 1, .. }), "{err:?}");
        let msg = err.to_string();
        assert!(
            msg.contains("snli_train.arrow")
                && msg.contains("row 1")
                && msg.contains(&format!("label {bad}")),
            "{msg}"
        );
    }

    write_arrow(
        &dir.path().join("nlvr2_train.arrow"),
        &[
            ("image_0", Column::Binary(vec![png(8, 8, [0, 0, 0])])),
            ("image_1", Column::Binary(vec![png(8, 8, [5, 5, 5])])),
            (
                "questions",
                Column::StrList(vec![strs(&["left has more", "right has more"])]),
            ),
            ("answers", Column::StrList(vec![strs(&["False", "true"])])),
            ("identifier", Column::Str(strs(&["train-1-0"]))),
        ],
        None,
    )
    .unwrap();
    let ds = ViltDataset::open(dir.path(), &strs(&["nlvr2_train"]), DatasetKind::Nlvr2).unwrap();
    assert_eq!(ds.target(0).unwrap(), Target::Nlvr2 { label: false });
    let msg = ds.target(1).unwrap_err().to_string();
    assert!(
        msg.contains("nlvr2_train.arrow") && msg.contains("row 0") && msg.contains("\"true\""),
        "{msg}"
    );
}

/// A NaN (or out-of-range) VQA score printed `NaN%` baselines in `data inspect`; it is a
/// data error naming the file, row and value.
#[test]
fn vqa_scores_outside_zero_one_are_named_data_errors() {
    let dir = tempfile::tempdir().unwrap();
    write_arrow(
        &dir.path().join("vqav2_val.arrow"),
        &[
            ("image", Column::Binary(vec![jpeg(16, 16, [1, 2, 3])])),
            ("questions", Column::StrList(vec![strs(&["how many?"])])),
            ("answers", Column::StrListList(vec![vec![strs(&["2"])]])),
            ("answer_labels", Column::Int64ListList(vec![vec![vec![4]]])),
            (
                "answer_scores",
                Column::F64ListList(vec![vec![vec![f64::NAN]]]),
            ),
            ("image_id", Column::Int64(vec![11])),
            ("question_id", Column::Int64List(vec![vec![110]])),
            ("split", Column::Str(strs(&["val"]))),
        ],
        None,
    )
    .unwrap();
    let path = dir.path().join("vqav2_val.arrow");
    let msg = inspect_path(&path, 1).unwrap_err().to_string();
    assert!(
        msg.contains("vqav2_val.arrow") && msg.contains("row 0") && msg.contains("score NaN"),
        "{msg}"
    );
}
