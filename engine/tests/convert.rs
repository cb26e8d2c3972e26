//! `data convert` on small raw datasets written here in the official formats (with generated
//! JPEG/PNG images, one missing and one corrupt image per dataset). Every column is checked
//! against values written out by hand from the reference writers' rules.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use arrow_array::cast::AsArray;
use arrow_array::{Array, RecordBatch};
use arrow_schema::{DataType, Field};
use engine::data::convert::{
    convert, ConvertError, ConvertEvent, ConvertOptions, ConvertReport, Dataset, OutputStatus,
    SkipReason,
};
use engine::data::{AnswerVocab, DatasetKind, Target, ViltDataset};
use serde_json::{json, Value};

// ---- raw inputs ---------------------------------------------------------------------------

fn image_bytes(seed: u8, format: image::ImageFormat) -> Vec<u8> {
    let img = image::RgbImage::from_fn(12, 8, |x, y| {
        image::Rgb([seed.wrapping_mul(37), (x * 20) as u8, (y * 30) as u8])
    });
    let mut out = std::io::Cursor::new(Vec::new());
    img.write_to(&mut out, format).unwrap();
    out.into_inner()
}

fn write(path: &Path, bytes: &[u8]) {
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(path, bytes).unwrap();
}

fn jpeg(path: &Path, seed: u8) -> Vec<u8> {
    let b = image_bytes(seed, image::ImageFormat::Jpeg);
    write(path, &b);
    b
}

fn png(path: &Path, seed: u8) -> Vec<u8> {
    let b = image_bytes(seed, image::ImageFormat::Png);
    write(path, &b);
    b
}

/// A JPEG cut in the middle of its scan (a partial download).
fn truncated_jpeg(path: &Path) {
    let b = image_bytes(99, image::ImageFormat::Jpeg);
    write(path, &b[..b.len() / 2]);
}

fn write_json(path: &Path, v: &Value) {
    write(path, serde_json::to_string_pretty(v).unwrap().as_bytes());
}

fn write_lines(path: &Path, lines: &[Value]) {
    let text: String = lines.iter().map(|l| format!("{l}\n")).collect();
    write(path, text.as_bytes());
}

fn mkdir(path: &Path) {
    std::fs::create_dir_all(path).unwrap();
}

// ---- reading the outputs ------------------------------------------------------------------

struct Table {
    path: PathBuf,
    fields: Vec<Arc<Field>>,
    batches: Vec<RecordBatch>,
}

impl Table {
    fn read(dir: &Path, name: &str) -> Self {
        let path = dir.join(format!("{name}.arrow"));
        let file = std::fs::File::open(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        let reader = arrow_ipc::reader::FileReader::try_new(file, None).unwrap();
        let fields = reader.schema().fields().iter().cloned().collect();
        let batches = reader.map(|b| b.unwrap()).collect();
        Self {
            path,
            fields,
            batches,
        }
    }

    fn rows(&self) -> usize {
        self.batches.iter().map(|b| b.num_rows()).sum()
    }

    fn types(&self) -> Vec<(String, DataType)> {
        self.fields
            .iter()
            .map(|f| (f.name().clone(), f.data_type().clone()))
            .collect()
    }

    fn column(&self, name: &str) -> Vec<Value> {
        let i = self
            .fields
            .iter()
            .position(|f| f.name() == name)
            .unwrap_or_else(|| panic!("{}: no column {name}", self.path.display()));
        let mut out = Vec::new();
        for b in &self.batches {
            let a = b.column(i);
            for r in 0..a.len() {
                out.push(to_json(a.as_ref(), r));
            }
        }
        out
    }

    fn bytes(&self, name: &str) -> Vec<Vec<u8>> {
        let i = self.fields.iter().position(|f| f.name() == name).unwrap();
        let mut out = Vec::new();
        for b in &self.batches {
            let a = b.column(i).as_binary::<i32>();
            out.extend((0..a.len()).map(|r| a.value(r).to_vec()));
        }
        out
    }

    /// Every row as a JSON object of its non-image columns.
    fn records(&self) -> Vec<Value> {
        let names: Vec<String> = self
            .fields
            .iter()
            .filter(|f| *f.data_type() != DataType::Binary)
            .map(|f| f.name().clone())
            .collect();
        let cols: Vec<Vec<Value>> = names.iter().map(|n| self.column(n)).collect();
        (0..self.rows())
            .map(|r| {
                Value::Object(
                    names
                        .iter()
                        .zip(&cols)
                        .map(|(n, c)| (n.clone(), c[r].clone()))
                        .collect(),
                )
            })
            .collect()
    }

    /// Records keyed by one column's value (as text).
    fn by(&self, key: &str) -> BTreeMap<String, Value> {
        self.records()
            .into_iter()
            .map(|r| {
                let k = match &r[key] {
                    Value::String(s) => s.clone(),
                    other => other.to_string(),
                };
                (k, r)
            })
            .collect()
    }
}

fn to_json(a: &dyn Array, i: usize) -> Value {
    if a.is_null(i) {
        return Value::Null;
    }
    match a.data_type() {
        DataType::Utf8 => json!(a.as_string::<i32>().value(i)),
        DataType::Int64 => json!(a.as_primitive::<arrow_array::types::Int64Type>().value(i)),
        DataType::Float64 => json!(a.as_primitive::<arrow_array::types::Float64Type>().value(i)),
        DataType::Binary => json!(format!("{} bytes", a.as_binary::<i32>().value(i).len())),
        DataType::List(_) => {
            let l = a.as_list::<i32>().value(i);
            Value::Array((0..l.len()).map(|j| to_json(l.as_ref(), j)).collect())
        }
        DataType::Null => Value::Null,
        dt => panic!("unexpected type {dt}"),
    }
}

fn list(t: DataType) -> DataType {
    DataType::List(Arc::new(Field::new("item", t, true)))
}

fn types(cols: &[(&str, DataType)]) -> Vec<(String, DataType)> {
    cols.iter()
        .map(|(n, t)| (n.to_string(), t.clone()))
        .collect()
}

fn vqa_types() -> Vec<(String, DataType)> {
    types(&[
        ("image", DataType::Binary),
        ("questions", list(DataType::Utf8)),
        ("answers", list(list(DataType::Utf8))),
        ("answer_labels", list(list(DataType::Int64))),
        ("answer_scores", list(list(DataType::Float64))),
        ("image_id", DataType::Int64),
        ("question_id", list(DataType::Int64)),
        ("split", DataType::Utf8),
    ])
}

fn caption_types() -> Vec<(String, DataType)> {
    types(&[
        ("image", DataType::Binary),
        ("caption", list(DataType::Utf8)),
        ("image_id", DataType::Utf8),
        ("split", DataType::Utf8),
    ])
}

/// What pandas writes for no rows: every column null, plus the object index.
fn empty_types(names: &[&str]) -> Vec<(String, DataType)> {
    names
        .iter()
        .chain(&["__index_level_0__"])
        .map(|n| (n.to_string(), DataType::Null))
        .collect()
}

fn options(raw: &Path, out: &Path) -> ConvertOptions {
    let mut o = ConvertOptions::new(raw, out);
    o.jobs = 2;
    o
}

fn run(dataset: Dataset, opts: &ConvertOptions) -> ConvertReport {
    convert(dataset, opts, &|_: &ConvertEvent| {}).unwrap_or_else(|e| panic!("{dataset}: {e}"))
}

fn skipped(report: &ConvertReport) -> Vec<(String, &'static str)> {
    report
        .skipped
        .iter()
        .map(|s| {
            let name = s.path.file_name().unwrap().to_string_lossy().into_owned();
            let kind = match s.reason {
                SkipReason::Missing => "missing",
                SkipReason::Unreadable(_) => "unreadable",
                SkipReason::Corrupt(_) => "corrupt",
            };
            (name, kind)
        })
        .collect()
}

fn names(report: &ConvertReport) -> Vec<String> {
    report.outputs.iter().map(|o| o.name.clone()).collect()
}

// ---- VQAv2 ----------------------------------------------------------------------------------

fn coco(split: &str, id: i64) -> String {
    format!("COCO_{split}_{id:012}.jpg")
}

/// One VQAv2 question and its annotation: `(image, question id, text, mc answer, answers)`.
type Q = (i64, i64, &'static str, &'static str, Vec<&'static str>);

fn ten(a: &'static str) -> Vec<&'static str> {
    vec![a; 10]
}

/// Train and val questions. The vocabulary (normalised `multiple_choice_answer` seen ≥ 9
/// times, first-seen order over train then val) comes out as
/// `["2", "yes", "black and white cat", "don't know"]`:
/// - "2" from `two`, `Two`, `2`, `2.`, `TWO` (number words, case, the period rule): 9;
/// - "yes" from `yes`, `Yes`, `yes!`, `YES.`: 9;
/// - "black and white cat" from `black-and-white cat` (hyphens become spaces), `a black and
///   white cat` (articles go), `The black/and/white cat`: 9;
/// - "don't know" from `dont know` (contraction), `don't know`: 9;
/// - "0" (from `none`) is seen once: not a label.
fn vqa_questions() -> (Vec<Q>, Vec<Q>) {
    let train = vec![
        // Image 1 (present): the scoring cases.
        (
            1,
            101,
            "How many cats?",
            "two",
            // plain: "2" x3 → 0.9, "black and white cat" x1 → 0.3 (raw `two`, `Two`,
            // `black-and-white cat`, `dont know` are not labels);
            // _fix: "2" x5 → 1.0, "black and white cat" x3 → 0.9, "don't know" x1 → 0.3.
            vec![
                "2",
                "two",
                "black-and-white cat",
                "2",
                "black and white cat",
                "Two",
                "2",
                "a black-and-white cat",
                "dont know",
                "other",
            ],
        ),
        (
            1,
            102,
            "Is it a cat?",
            "yes",
            // plain: "yes" x2 → 0.6; _fix: "yes" x4 → 1.0 ("Yes", "yes!" normalise).
            vec![
                "yes", "Yes", "yes", "yes!", "no", "nope", "maybe", "n", "x", "y",
            ],
        ),
        // Only `none` (→ "0", not a label): the question is removed in both variants.
        (1, 103, "How many dogs?", "none", ten("none")),
        // Image 2: a corrupt file. Image 3: no file. Both have labelled questions.
        (2, 201, "Is it red?", "yes", ten("yes")),
        (3, 301, "Is it blue?", "Yes", ten("yes")),
        // Image 4 (present): nothing labelled: removed in both variants (not missing).
        (4, 401, "What?", "none", ten("zebra")),
        // Image 5 (present): labelled only in _fix ("YES." → "yes").
        (5, 501, "Is it?", "yes!", ten("YES.")),
    ];
    let mut val = vec![
        (11, 1101, "How many?", "2", ten("2")),
        (
            12,
            1201,
            "What is it?",
            "black-and-white cat",
            ten("black and white cat"),
        ),
        (13, 1301, "Do you know?", "dont know", ten("don't know")),
    ];
    // Filler questions on val images 11..13 to reach the counts above: each answered by all
    // ten annotators with the label itself (score 1.0 in both variants).
    let mut qid = 2000;
    let mut fill =
        |image: i64, mc: &'static str, answer: &'static str, n: usize, val: &mut Vec<Q>| {
            for _ in 0..n {
                qid += 1;
                val.push((image, qid, "filler?", mc, ten(answer)));
            }
        };
    // "2": train has `two`; val 11 has `2`; 7 more.
    fill(11, "Two", "2", 3, &mut val);
    fill(11, "2.", "2", 2, &mut val);
    fill(11, "TWO", "2", 2, &mut val);
    // "yes": train has `yes`, `yes`, `Yes`, `yes!`; 5 more.
    fill(12, "YES.", "yes", 5, &mut val);
    // "black and white cat": 1 so far; 8 more.
    fill(
        12,
        "a black and white cat",
        "black and white cat",
        4,
        &mut val,
    );
    fill(
        13,
        "The black/and/white cat",
        "black and white cat",
        4,
        &mut val,
    );
    // "don't know": 1 so far; 8 more.
    fill(13, "don't know", "don't know", 8, &mut val);
    (train, val)
}

fn write_vqa(root: &Path) -> BTreeMap<String, Vec<u8>> {
    let (train, val) = vqa_questions();
    let qfile = |qs: &[Q]| {
        json!({"info": {}, "task_type": "Open-Ended", "data_type": "mscoco", "license": {},
               "data_subtype": "x",
               "questions": qs.iter().map(|(i, q, text, _, _)| json!({
                    "image_id": i, "question": text, "question_id": q})).collect::<Vec<_>>()})
    };
    let afile = |qs: &[Q]| {
        json!({"info": {}, "license": {}, "data_subtype": "x", "data_type": "mscoco",
               "annotations": qs.iter().map(|(i, q, _, mc, answers)| json!({
                    "question_type": "what", "multiple_choice_answer": mc,
                    "answers": answers.iter().enumerate().map(|(k, a)| json!({
                        "answer": a, "answer_confidence": "yes", "answer_id": k + 1}))
                        .collect::<Vec<_>>(),
                    "image_id": i, "answer_type": "other", "question_id": q}))
                    .collect::<Vec<_>>()})
    };
    let v = root.join("vqav2");
    write_json(
        &v.join("v2_OpenEnded_mscoco_train2014_questions.json"),
        &qfile(&train),
    );
    write_json(
        &v.join("v2_OpenEnded_mscoco_val2014_questions.json"),
        &qfile(&val),
    );
    write_json(
        &v.join("v2_mscoco_train2014_annotations.json"),
        &afile(&train),
    );
    write_json(&v.join("v2_mscoco_val2014_annotations.json"), &afile(&val));
    let test: Vec<Q> = vec![
        (21, 2101, "Test one?", "", vec![]),
        (21, 2102, "Test two?", "", vec![]),
        (22, 2201, "Test three?", "", vec![]),
    ];
    let dev: Vec<Q> = vec![(21, 2101, "Test one?", "", vec![])];
    write_json(
        &v.join("v2_OpenEnded_mscoco_test2015_questions.json"),
        &qfile(&test),
    );
    write_json(
        &v.join("v2_OpenEnded_mscoco_test-dev2015_questions.json"),
        &qfile(&dev),
    );
    let mut bytes = BTreeMap::new();
    for (split, ids) in [
        ("train2014", vec![1, 4, 5]),
        ("val2014", vec![11, 12, 13]),
        ("test2015", vec![21]),
    ] {
        for id in ids {
            let name = coco(split, id);
            bytes.insert(name.clone(), jpeg(&root.join(split).join(&name), id as u8));
        }
    }
    truncated_jpeg(&root.join("train2014").join(coco("train2014", 2)));
    // Files that are not annotated images: ignored.
    jpeg(&root.join("train2014").join(coco("train2014", 999)), 9);
    write(&root.join("train2014").join("README.txt"), b"not an image");
    bytes
}

#[test]
fn vqav2_columns_scores_and_fix_normalisation() {
    let dir = tempfile::tempdir().unwrap();
    let (raw, out) = (dir.path().join("raw"), dir.path().join("out"));
    let images = write_vqa(&raw);
    let mut opts = options(&raw, &out);
    opts.rest_val_rows = 1;
    let report = run(Dataset::Vqav2, &opts);

    let mut expected_names = Vec::new();
    for suffix in ["_fix", ""] {
        for s in [
            "train",
            "val",
            "test",
            "test-dev",
            "trainable_val",
            "rest_val",
        ] {
            expected_names.push(format!("vqav2_{s}{suffix}"));
        }
    }
    let mut got = names(&report);
    got.sort();
    expected_names.sort();
    assert_eq!(got, expected_names);

    // The vocabulary: count >= 9, first-seen order, written beside the tables.
    let vocab = AnswerVocab::read(&out.join("vqav2_answers.json")).unwrap();
    assert_eq!(
        vocab.label2answer,
        ["2", "yes", "black and white cat", "don't know"]
    );
    assert_eq!(report.vocab.as_ref().map(|v| v.1), Some(4));

    // Image 2 is corrupt, 3 and 22 are missing: listed, never fatal.
    assert_eq!(
        skipped(&report),
        [
            (coco("test2015", 22), "missing"),
            (coco("train2014", 2), "corrupt"),
            (coco("train2014", 3), "missing"),
        ]
    );
    assert!(out.join("vqav2_skipped_images.tsv").is_file());

    // train, _fix: images 1 and 5 (2 corrupt, 3 missing, 4 nothing labelled).
    let t = Table::read(&out, "vqav2_train_fix");
    assert_eq!(t.types(), vqa_types());
    let rows = t.by("image_id");
    assert_eq!(rows.keys().collect::<Vec<_>>(), ["1", "5"]);
    assert_eq!(
        rows["1"],
        json!({
            "questions": ["How many cats?", "Is it a cat?"],
            "answers": [["2", "black and white cat", "don't know"], ["yes"]],
            "answer_labels": [[0, 2, 3], [1]],
            "answer_scores": [[1.0, 0.9, 0.3], [1.0]],
            "image_id": 1,
            "question_id": [101, 102],
            "split": "train",
        })
    );
    assert_eq!(
        rows["5"],
        json!({"questions": ["Is it?"], "answers": [["yes"]], "answer_labels": [[1]],
               "answer_scores": [[1.0]], "image_id": 5, "question_id": [501], "split": "train"})
    );
    // The image bytes are the file's, unchanged.
    let ids = t.column("image_id");
    let one = ids.iter().position(|v| *v == json!(1)).unwrap();
    assert_eq!(t.bytes("image")[one], images[&coco("train2014", 1)]);

    // train, original (no normalisation of annotators' answers): image 5 has no label left.
    let t = Table::read(&out, "vqav2_train");
    assert_eq!(t.types(), vqa_types());
    let rows = t.by("image_id");
    assert_eq!(rows.keys().collect::<Vec<_>>(), ["1"]);
    assert_eq!(
        rows["1"],
        json!({
            "questions": ["How many cats?", "Is it a cat?"],
            "answers": [["2", "black and white cat"], ["yes"]],
            "answer_labels": [[0, 2], [1]],
            "answer_scores": [[0.9, 0.3], [0.6]],
            "image_id": 1,
            "question_id": [101, 102],
            "split": "train",
        })
    );

    // val: every question, in the questions file's order.
    let val = Table::read(&out, "vqav2_val_fix");
    let rows = val.by("image_id");
    assert_eq!(rows.keys().collect::<Vec<_>>(), ["11", "12", "13"]);
    assert_eq!(
        rows["11"]["question_id"],
        json!([1101, 2001, 2002, 2003, 2004, 2005, 2006, 2007])
    );
    assert_eq!(rows["11"]["answers"], json!(vec![vec!["2"]; 8]));
    assert_eq!(rows["11"]["answer_scores"], json!(vec![vec![1.0]; 8]));
    assert_eq!(
        rows["12"]["answer_labels"],
        json!([[2], [1], [1], [1], [1], [1], [2], [2], [2], [2]])
    );
    assert_eq!(rows["13"]["answers"][0], json!(["don't know"]));
    assert_eq!(rows["13"]["split"], json!("val"));

    // trainable_val + rest_val are val cut before its last `rest_val_rows` rows.
    let head = Table::read(&out, "vqav2_trainable_val_fix");
    let tail = Table::read(&out, "vqav2_rest_val_fix");
    assert_eq!(head.types(), vqa_types());
    assert_eq!((head.rows(), tail.rows()), (2, 1));
    let mut joined = head.records();
    joined.extend(tail.records());
    assert_eq!(joined, val.records());

    // test: no answers, typed `list<null>` as pyarrow does for lists empty in every row.
    for name in ["vqav2_test_fix", "vqav2_test"] {
        let t = Table::read(&out, name);
        let mut expected = vqa_types();
        for c in [2, 3, 4] {
            expected[c].1 = list(DataType::Null);
        }
        assert_eq!(t.types(), expected, "{name}");
        assert_eq!(
            t.records(),
            [
                json!({"questions": ["Test one?", "Test two?"], "answers": [], "answer_labels": [],
                    "answer_scores": [], "image_id": 21, "question_id": [2101, 2102],
                    "split": "test"})
            ]
        );
    }
    // With no answers, the two variants' test files are the same bytes.
    for s in ["test", "test-dev"] {
        let read = |n: &str| std::fs::read(out.join(format!("vqav2_{s}{n}.arrow"))).unwrap();
        assert_eq!(read(""), read("_fix"), "{s}");
    }
    let t = Table::read(&out, "vqav2_test-dev");
    assert_eq!(t.column("split"), [json!("test-dev")]);
    assert_eq!(t.column("question_id"), [json!([2101])]);

    // The engine's own reader takes the converted files as the reference's.
    let ds = ViltDataset::open(&out, &["vqav2_train_fix".into()], DatasetKind::Vqa).unwrap();
    assert_eq!(ds.len(), 3);
    let targets: Vec<Target> = (0..ds.len()).map(|s| ds.target(s).unwrap()).collect();
    assert!(targets.contains(&Target::Vqa {
        answers: vec![
            "2".into(),
            "black and white cat".into(),
            "don't know".into()
        ],
        labels: vec![0, 2, 3],
        scores: vec![1.0, 0.9, 0.3],
        question_id: 101,
    }));
    let test = ViltDataset::open(&out, &["vqav2_test".into()], DatasetKind::Vqa).unwrap();
    assert_eq!(test.len(), 2);

    // `data inspect` shows what the reference sees, and the vocabulary beside the files.
    let summary = engine::data::inspect_path(&out.join("vqav2_train_fix.arrow"), 1).unwrap();
    let text = summary[0].to_string();
    assert!(text.contains("rows: 2"), "{text}");
    assert!(text.contains("samples (one per text): 3"), "{text}");
    assert!(text.contains("answer vocabulary: 4 answers"), "{text}");
    assert!(text.contains("\"dataset\":\"vqav2\""), "{text}");
}

#[test]
fn vqav2_a_val_shorter_than_rest_val_leaves_an_empty_trainable_val() {
    let dir = tempfile::tempdir().unwrap();
    let (raw, out) = (dir.path().join("raw"), dir.path().join("out"));
    write_vqa(&raw);
    // The reference's default: 1000 rows, more than this val has.
    let report = run(Dataset::Vqav2, &options(&raw, &out));
    let head = Table::read(&out, "vqav2_trainable_val_fix");
    // pandas: `df[:-1000]` of a 3-row frame is empty; its object columns become null, the
    // int64 `image_id` stays int64, the RangeIndex leaves no column.
    let mut expected: Vec<(String, DataType)> = vqa_types()
        .into_iter()
        .map(|(n, _)| (n, DataType::Null))
        .collect();
    expected[5].1 = DataType::Int64;
    assert_eq!(head.types(), expected);
    assert_eq!(head.rows(), 0);
    let tail = Table::read(&out, "vqav2_rest_val_fix");
    assert_eq!(tail.records(), Table::read(&out, "vqav2_val_fix").records());
    let rest = report
        .outputs
        .iter()
        .find(|o| o.name == "vqav2_rest_val")
        .unwrap();
    assert_eq!(rest.rows, 3);
}

/// A Flickr30K raw set of `n` images (a third each in train, val, test).
fn write_f30k(root: &Path, n: usize) {
    let images: Vec<Value> = (0..n)
        .map(|i| {
            jpeg(&root.join(format!("flickr30k-images/{i}.jpg")), i as u8);
            let split = ["train", "val", "test"][i % 3];
            json!({"filename": format!("{i}.jpg"), "split": split,
                   "sentences": [{"raw": format!("image {i}")}, {"raw": "again"}]})
        })
        .collect();
    write_json(
        &root.join("karpathy/dataset_flickr30k.json"),
        &json!({"images": images}),
    );
}

#[test]
fn same_inputs_and_seed_give_the_same_bytes_whatever_the_jobs() {
    let dir = tempfile::tempdir().unwrap();
    let (vqa, f30k) = (dir.path().join("vqa"), dir.path().join("f30k"));
    write_vqa(&vqa);
    // More rows than a record batch holds, so both order and batching matter.
    write_f30k(&f30k, 3 * 70);
    let mut written = Vec::new();
    for (k, jobs, seed) in [(0, 1, 7), (1, 3, 7), (2, 2, 8)] {
        let out = dir.path().join(format!("out{k}"));
        for (dataset, raw) in [(Dataset::Vqav2, &vqa), (Dataset::F30k, &f30k)] {
            let mut opts = options(raw, &out);
            opts.jobs = jobs;
            opts.seed = seed;
            // fsync before the rename does not change a byte.
            opts.sync = k == 1;
            run(dataset, &opts);
        }
        written.push(out);
    }
    let read = |out: &Path, name: &str| std::fs::read(out.join(name)).unwrap();
    let mut files: Vec<String> = std::fs::read_dir(&written[0])
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    files.sort();
    assert_eq!(files.len(), 12 + 3 + 2, "{files:?}");
    for f in &files {
        assert_eq!(
            read(&written[0], f),
            read(&written[1], f),
            "{f} differs between --jobs 1 and 3"
        );
    }
    let t = Table::read(&written[0], "f30k_caption_karpathy_train");
    assert_eq!(t.rows(), 70);
    assert!(t.batches.len() > 1);
    // Another seed: the same rows in another order; the vocabulary does not depend on it.
    assert_eq!(
        read(&written[0], "vqav2_answers.json"),
        read(&written[2], "vqav2_answers.json")
    );
    let ids = |out: &Path| Table::read(out, "f30k_caption_karpathy_train").column("image_id");
    assert_ne!(ids(&written[0]), ids(&written[2]));
    let sorted = |mut v: Vec<Value>| {
        v.sort_by_key(|x| x.to_string());
        v
    };
    assert_eq!(sorted(ids(&written[0])), sorted(ids(&written[2])));
}

#[test]
fn reruns_skip_finished_files_and_refuse_other_settings() {
    let dir = tempfile::tempdir().unwrap();
    let raw = dir.path().join("raw");
    let out = dir.path().join("out");
    let images = raw.join("flickr30k-images");
    jpeg(&images.join("1.jpg"), 1);
    jpeg(&images.join("2.jpg"), 2);
    write_json(
        &raw.join("karpathy/dataset_flickr30k.json"),
        &json!({"images": [
            {"filename": "1.jpg", "split": "train", "sentences": [{"raw": "one"}]},
            {"filename": "2.jpg", "split": "val", "sentences": [{"raw": "two"}]},
        ]}),
    );
    let opts = options(&raw, &out);
    let first = run(Dataset::F30k, &opts);
    assert!(first
        .outputs
        .iter()
        .all(|o| o.status == OutputStatus::Written));
    let before = std::fs::read(out.join("f30k_caption_karpathy_train.arrow")).unwrap();
    // A killed run leaves only `.partial` files: they are not outputs.
    write(
        &out.join("f30k_caption_karpathy_val.arrow.partial"),
        b"half",
    );
    let second = run(Dataset::F30k, &opts);
    assert!(
        second
            .outputs
            .iter()
            .all(|o| o.status == OutputStatus::UpToDate),
        "{second:?}"
    );
    assert_eq!(second.outputs[0].rows, 1);
    assert_eq!(
        before,
        std::fs::read(out.join("f30k_caption_karpathy_train.arrow")).unwrap()
    );

    // Another seed: the finished files are not silently mixed with new ones.
    let mut other = opts.clone();
    other.seed = 5;
    let err = convert(Dataset::F30k, &other, &|_| {}).unwrap_err();
    assert!(matches!(err, ConvertError::OutputExists { .. }), "{err}");
    assert!(
        err.to_string()
            .contains("f30k_caption_karpathy_train.arrow"),
        "{err}"
    );
    assert!(err.to_string().contains("--force"), "{err}");
    other.force = true;
    let forced = run(Dataset::F30k, &other);
    assert!(forced
        .outputs
        .iter()
        .all(|o| o.status == OutputStatus::Written));

    // A file from another tool (no stamp) is not overwritten either.
    other.force = false;
    engine::data::write_arrow(
        &out.join("f30k_caption_karpathy_test.arrow"),
        &[("image", engine::data::Column::Binary(vec![]))],
        None,
    )
    .unwrap();
    let err = convert(Dataset::F30k, &other, &|_| {})
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("not written by `towerlab data convert`"),
        "{err}"
    );
}

#[test]
fn missing_annotation_files_and_folders_are_named() {
    let dir = tempfile::tempdir().unwrap();
    let raw = dir.path().join("raw");
    mkdir(&raw.join("vqav2"));
    mkdir(&raw.join("val2014"));
    let err = convert(
        Dataset::Vqav2,
        &options(&raw, &dir.path().join("out")),
        &|_| {},
    )
    .unwrap_err();
    let ConvertError::MissingInputs { missing, .. } = &err else {
        panic!("{err}")
    };
    let text = err.to_string();
    assert!(
        text.contains("v2_mscoco_train2014_annotations.json (file)"),
        "{text}"
    );
    assert!(text.contains("train2014 (folder)"), "{text}");
    assert!(
        !missing.iter().any(|(p, _)| p.ends_with("val2014")),
        "{missing:?}"
    );
    assert_eq!(missing.len(), 8, "{missing:?}");

    let err = convert(
        Dataset::Sbu,
        &options(&dir.path().join("nowhere"), &dir.path().join("o")),
        &|_| {},
    )
    .unwrap_err()
    .to_string();
    assert!(err.contains("nowhere (folder)"), "{err}");

    // A malformed annotation file names the file and what was expected.
    let raw = dir.path().join("snli");
    for s in ["train", "dev", "test"] {
        write_lines(&raw.join(format!("snli_ve/snli_ve_{s}.jsonl")), &[]);
    }
    mkdir(&raw.join("flickr30k-images"));
    write(
        &raw.join("snli_ve/snli_ve_dev.jsonl"),
        b"{\"Flickr30K_ID\": \"1\", \"sentence1\": \"a\", \"sentence2\": \"b\", \"gold_label\": \"neutral\"}\n{oops\n",
    );
    let err = convert(
        Dataset::SnliVe,
        &options(&raw, &dir.path().join("o2")),
        &|_| {},
    )
    .unwrap_err()
    .to_string();
    assert!(err.contains("snli_ve_dev.jsonl:2"), "{err}");
    write(
        &raw.join("snli_ve/snli_ve_dev.jsonl"),
        b"{\"Flickr30K_ID\": \"1\", \"sentence1\": \"a\", \"sentence2\": \"b\", \"gold_label\": \"-\"}\n",
    );
    let err = convert(
        Dataset::SnliVe,
        &options(&raw, &dir.path().join("o3")),
        &|_| {},
    )
    .unwrap_err()
    .to_string();
    assert!(
        err.contains("snli_ve_dev.jsonl:1") && err.contains("\"-\""),
        "{err}"
    );
}

// ---- Karpathy -------------------------------------------------------------------------------

#[test]
fn f30k_karpathy_splits() {
    let dir = tempfile::tempdir().unwrap();
    let (raw, out) = (dir.path().join("raw"), dir.path().join("out"));
    let images = raw.join("flickr30k-images");
    let a = jpeg(&images.join("1000092795.jpg"), 1);
    jpeg(&images.join("20.jpg"), 2);
    truncated_jpeg(&images.join("30.jpg"));
    jpeg(&images.join("99.jpg"), 3); // not annotated
    write_json(
        &raw.join("karpathy/dataset_flickr30k.json"),
        &json!({"dataset": "flickr30k", "images": [
            {"filename": "1000092795.jpg", "imgid": 0, "split": "train", "sentids": [0, 1],
             "sentences": [{"raw": "Two young guys.", "tokens": ["two"]},
                           {"raw": "Two men outside.", "tokens": ["two"]}]},
            {"filename": "20.jpg", "split": "val", "sentences": [{"raw": "A dog."}]},
            {"filename": "30.jpg", "split": "test", "sentences": [{"raw": "Corrupt."}]},
            {"filename": "40.jpg", "split": "test", "sentences": [{"raw": "Missing."}]},
            {"filename": "50.jpg", "split": "train", "sentences": []},
        ]}),
    );
    let report = run(Dataset::F30k, &options(&raw, &out));
    assert_eq!(
        names(&report),
        [
            "f30k_caption_karpathy_train",
            "f30k_caption_karpathy_val",
            "f30k_caption_karpathy_test"
        ]
    );
    assert_eq!(
        skipped(&report),
        [("30.jpg".into(), "corrupt"), ("40.jpg".into(), "missing")]
    );
    let t = Table::read(&out, "f30k_caption_karpathy_train");
    assert_eq!(t.types(), caption_types());
    assert_eq!(
        t.records(),
        [
            json!({"caption": ["Two young guys.", "Two men outside."], "image_id": "1000092795.jpg",
                "split": "train"})
        ]
    );
    assert_eq!(t.bytes("image"), [a]);
    let t = Table::read(&out, "f30k_caption_karpathy_val");
    assert_eq!(
        t.records(),
        [json!({"caption": ["A dog."], "image_id": "20.jpg", "split": "val"})]
    );
    // Test lost its only image: the empty table pandas writes.
    let t = Table::read(&out, "f30k_caption_karpathy_test");
    assert_eq!(
        t.types(),
        empty_types(&["image", "caption", "image_id", "split"])
    );
    assert_eq!(t.rows(), 0);
    // ... which the engine's reader opens as an empty caption table.
    let ds = ViltDataset::open(
        &out,
        &["f30k_caption_karpathy_test".into()],
        DatasetKind::Captions,
    )
    .unwrap();
    assert_eq!(ds.len(), 0);
}

#[test]
fn coco_karpathy_splits_with_restval() {
    let dir = tempfile::tempdir().unwrap();
    let (raw, out) = (dir.path().join("raw"), dir.path().join("out"));
    let name = |split: &str, id| coco(split, id);
    jpeg(&raw.join("train2014").join(name("train2014", 9)), 1);
    jpeg(&raw.join("val2014").join(name("val2014", 42)), 2);
    jpeg(&raw.join("val2014").join(name("val2014", 43)), 3);
    jpeg(&raw.join("val2014").join(name("val2014", 44)), 4);
    truncated_jpeg(&raw.join("train2014").join(name("train2014", 10)));
    let img = |fp: &str, f: String, split: &str, caps: &[&str]| {
        json!({"filepath": fp, "filename": f, "split": split, "cocoid": 1,
               "sentences": caps.iter().map(|c| json!({"raw": c})).collect::<Vec<_>>()})
    };
    write_json(
        &raw.join("karpathy/dataset_coco.json"),
        &json!({"images": [
            img("train2014", name("train2014", 9), "train", &["A.", "B.", "C.", "D.", "E."]),
            img("val2014", name("val2014", 42), "restval", &["R."]),
            img("val2014", name("val2014", 43), "val", &["V."]),
            img("val2014", name("val2014", 44), "test", &["T."]),
            img("train2014", name("train2014", 10), "train", &["corrupt"]),
            img("val2014", name("val2014", 45), "test", &["missing"]),
        ], "dataset": "coco"}),
    );
    let report = run(Dataset::Coco, &options(&raw, &out));
    assert_eq!(
        names(&report),
        [
            "coco_caption_karpathy_train",
            "coco_caption_karpathy_val",
            "coco_caption_karpathy_restval",
            "coco_caption_karpathy_test"
        ]
    );
    assert_eq!(
        skipped(&report),
        [
            (name("train2014", 10), "corrupt"),
            (name("val2014", 45), "missing")
        ]
    );
    assert!(report.skipped[1]
        .path
        .ends_with("val2014/COCO_val2014_000000000045.jpg"));
    let rec = |split: &str| Table::read(&out, &format!("coco_caption_karpathy_{split}")).records();
    assert_eq!(
        rec("train"),
        [
            json!({"caption": ["A.", "B.", "C.", "D.", "E."], "image_id": name("train2014", 9),
                "split": "train"})
        ]
    );
    assert_eq!(
        rec("restval"),
        [json!({"caption": ["R."], "image_id": name("val2014", 42), "split": "restval"})]
    );
    assert_eq!(
        rec("val"),
        [json!({"caption": ["V."], "image_id": name("val2014", 43), "split": "val"})]
    );
    assert_eq!(
        rec("test"),
        [json!({"caption": ["T."], "image_id": name("val2014", 44), "split": "test"})]
    );
    assert_eq!(
        Table::read(&out, "coco_caption_karpathy_test").types(),
        caption_types()
    );
}

// ---- NLVR2 ----------------------------------------------------------------------------------

#[test]
fn nlvr2_pairs_and_identifiers() {
    let dir = tempfile::tempdir().unwrap();
    let (raw, out) = (dir.path().join("raw"), dir.path().join("out"));
    let st = |id: &str, sentence: &str, label: &str, directory: Option<i64>| {
        let mut v = json!({"validation": {}, "sentence": sentence, "left_url": "x",
                           "writer": "w", "label": label, "identifier": id, "synset": "s"});
        if let Some(d) = directory {
            v["directory"] = json!(d);
        }
        v
    };
    let data = raw.join("nlvr2/data");
    write_lines(
        &data.join("train.json"),
        &[
            st("train-10171-0-0", "One dog.", "True", Some(81)),
            st("train-10171-0-1", "Two dogs.", "False", Some(81)),
            st("train-3-1-0", "Missing pair.", "True", Some(4)),
            st("train-10171-1-0", "Other pair.", "False", Some(81)),
        ],
    );
    write_lines(
        &data.join("dev.json"),
        &[st("dev-850-0-0", "A cat.", "True", None)],
    );
    write_lines(
        &data.join("test1.json"),
        &[st("test1-7-2-0", "Corrupt.", "False", None)],
    );
    for f in [
        "balanced/balanced_dev.json",
        "unbalanced/unbalanced_dev.json",
    ] {
        write_lines(&data.join(f), &[st("dev-850-0-0", "A cat.", "True", None)]);
    }
    for f in [
        "balanced/balanced_test1.json",
        "unbalanced/unbalanced_test1.json",
    ] {
        write_lines(&data.join(f), &[]);
    }
    let train = raw.join("images/train/81");
    let l0 = png(&train.join("train-10171-0-img0.png"), 1);
    let r0 = png(&train.join("train-10171-0-img1.png"), 2);
    png(&train.join("train-10171-1-img0.png"), 3);
    png(&train.join("train-10171-1-img1.png"), 4);
    png(&raw.join("images/train/4/train-3-1-img0.png"), 5); // its img1 is missing
    png(&raw.join("dev/dev-850-0-img0.png"), 6);
    png(&raw.join("dev/dev-850-0-img1.png"), 7);
    png(&raw.join("test1/test1-7-2-img0.png"), 8);
    write(
        &raw.join("test1/test1-7-2-img1.png"),
        b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR",
    );

    let report = run(Dataset::Nlvr2, &options(&raw, &out));
    assert_eq!(
        names(&report),
        [
            "nlvr2_train",
            "nlvr2_dev",
            "nlvr2_test1",
            "nlvr2_balanced_dev",
            "nlvr2_balanced_test1",
            "nlvr2_unbalanced_dev",
            "nlvr2_unbalanced_test1"
        ]
    );
    assert_eq!(
        skipped(&report),
        [
            ("train-3-1-img1.png".into(), "missing"),
            ("test1-7-2-img1.png".into(), "corrupt")
        ]
    );
    let t = Table::read(&out, "nlvr2_train");
    assert_eq!(
        t.types(),
        types(&[
            ("image_0", DataType::Binary),
            ("image_1", DataType::Binary),
            ("questions", list(DataType::Utf8)),
            ("answers", list(DataType::Utf8)),
            ("identifier", DataType::Utf8),
        ])
    );
    // Grouped by identifier less its last part, first-seen order, labels as written.
    assert_eq!(
        t.records(),
        [
            json!({"questions": ["One dog.", "Two dogs."], "answers": ["True", "False"],
                   "identifier": "train-10171-0"}),
            json!({"questions": ["Other pair."], "answers": ["False"], "identifier": "train-10171-1"}),
        ]
    );
    assert_eq!(t.bytes("image_0")[0], l0);
    assert_eq!(t.bytes("image_1")[0], r0);
    let dev = Table::read(&out, "nlvr2_dev").records();
    assert_eq!(
        dev,
        [json!({"questions": ["A cat."], "answers": ["True"], "identifier": "dev-850-0"})]
    );
    assert_eq!(Table::read(&out, "nlvr2_balanced_dev").records(), dev);
    assert_eq!(Table::read(&out, "nlvr2_test1").rows(), 0);
    let ds = ViltDataset::open(&out, &["nlvr2_train".into()], DatasetKind::Nlvr2).unwrap();
    assert_eq!(ds.target(1).unwrap(), Target::Nlvr2 { label: false });
}

// ---- SNLI-VE --------------------------------------------------------------------------------

#[test]
fn snli_ve_sentences_and_label_ids() {
    let dir = tempfile::tempdir().unwrap();
    let (raw, out) = (dir.path().join("raw"), dir.path().join("out"));
    let pair = |id: &str, s1: &str, s2: &str, label: &str| {
        json!({"Flickr30K_ID": id, "sentence1": s1, "sentence2": s2, "gold_label": label,
               "pairID": "p", "captionID": "c", "label": label})
    };
    let ve = raw.join("snli_ve");
    write_lines(
        &ve.join("snli_ve_train.jsonl"),
        &[
            pair("3416050480", "A man sleeps.", "A man rests. ", "entailment"),
            pair("100", "Dogs run.", "Cats fly.", "contradiction"),
            pair(
                "3416050480",
                "A man sleeps.",
                "He is awake.",
                "contradiction",
            ),
            pair("3416050480", "A man sleeps.", "He dreams.", "neutral"),
        ],
    );
    write_lines(
        &ve.join("snli_ve_dev.jsonl"),
        &[pair("101", "Corrupt.", "x", "neutral")],
    );
    write_lines(
        &ve.join("snli_ve_test.jsonl"),
        &[pair("102", "Missing.", "x", "neutral")],
    );
    let images = raw.join("flickr30k-images");
    jpeg(&images.join("3416050480.jpg"), 1);
    jpeg(&images.join("100.jpg"), 2);
    write(&images.join("101.jpg"), b"");

    let report = run(Dataset::SnliVe, &options(&raw, &out));
    assert_eq!(names(&report), ["snli_train", "snli_dev", "snli_test"]);
    assert_eq!(
        skipped(&report),
        [("101.jpg".into(), "corrupt"), ("102.jpg".into(), "missing")]
    );
    let t = Table::read(&out, "snli_train");
    assert_eq!(
        t.types(),
        types(&[
            ("image", DataType::Binary),
            ("sentences", list(list(DataType::Utf8))),
            ("labels", list(DataType::Int64)),
        ])
    );
    assert_eq!(
        t.records(),
        [
            json!({"sentences": [["A man sleeps.", "A man rests. "], ["A man sleeps.", "He is awake."],
                                 ["A man sleeps.", "He dreams."]],
                   "labels": [2, 0, 1]}),
            json!({"sentences": [["Dogs run.", "Cats fly."]], "labels": [0]}),
        ]
    );
    assert_eq!(
        Table::read(&out, "snli_dev").types(),
        empty_types(&["image", "sentences", "labels"])
    );
    // The loader keeps the stripped hypothesis.
    let ds = ViltDataset::open(&out, &["snli_train".into()], DatasetKind::Snli).unwrap();
    assert_eq!(ds.text(0).unwrap(), "A man rests.");
    assert_eq!(ds.target(0).unwrap(), Target::Snli { label: 2 });
}

// ---- VG, VG-QA --------------------------------------------------------------------------------

fn region(image: i64, id: i64, phrase: &str, xywh: [i64; 4]) -> Value {
    json!({"region_id": id, "width": xywh[2], "height": xywh[3], "image_id": image,
           "phrase": phrase, "y": xywh[1], "x": xywh[0]})
}

#[test]
fn vg_region_descriptions() {
    let dir = tempfile::tempdir().unwrap();
    let (raw, out) = (dir.path().join("raw"), dir.path().join("out"));
    write_json(
        &raw.join("annotations/region_descriptions.json"),
        &json!([
            {"regions": [region(1, 10, "a red car", [1, 2, 30, 40]),
                         region(1, 11, "the sky", [0, 0, 100, 20])], "id": 1},
            {"regions": [region(2, 20, "a tree", [5, 6, 7, 8])], "id": 2},
            {"regions": [region(3, 30, "missing", [0, 0, 1, 1])], "id": 3},
            {"regions": [region(4, 40, "corrupt", [0, 0, 1, 1])], "id": 4},
        ]),
    );
    jpeg(&raw.join("images/VG_100K/1.jpg"), 1);
    jpeg(&raw.join("images/VG_100K_2/2.jpg"), 2);
    truncated_jpeg(&raw.join("images/VG_100K/4.jpg"));
    let report = run(Dataset::Vg, &options(&raw, &out));
    assert_eq!(names(&report), ["vg"]);
    assert_eq!(
        skipped(&report),
        [("3.jpg".into(), "missing"), ("4.jpg".into(), "corrupt")]
    );
    let t = Table::read(&out, "vg");
    assert_eq!(
        t.types(),
        types(&[
            ("image", DataType::Binary),
            ("caption", list(DataType::Utf8)),
            ("width", list(DataType::Int64)),
            ("height", list(DataType::Int64)),
            ("x", list(DataType::Int64)),
            ("y", list(DataType::Int64)),
            ("image_id", DataType::Utf8),
        ])
    );
    let rows = t.by("image_id");
    assert_eq!(
        rows["1"],
        json!({"caption": ["a red car", "the sky"], "width": [30, 100], "height": [40, 20],
               "x": [1, 0], "y": [2, 0], "image_id": "1"})
    );
    assert_eq!(
        rows["2"],
        json!({"caption": ["a tree"], "width": [7], "height": [8], "x": [5], "y": [6], "image_id": "2"})
    );
}

fn write_vg_qa(raw: &Path) {
    let qa = |image: i64, id: i64, q: &str, a: &str| {
        json!({"a_objects": [], "question": q, "image_id": image, "qa_id": id, "answer": a,
               "q_objects": []})
    };
    write_json(
        &raw.join("annotations/question_answers.json"),
        &json!([
            {"id": 1, "qas": [
                qa(1, 100, "What color is the car?", "Red."),
                // The same question again with the same answer: only its first QA is kept.
                qa(1, 101, "What color is the car?", "red"),
                // Two different in-vocabulary answers: the question is dropped.
                qa(1, 102, "How many?", "Two."),
                qa(1, 103, "How many?", "3"),
                // Out of vocabulary: dropped.
                qa(1, 104, "Why?", "Because."),
                qa(1, 105, "Is it a car?", "Yes, it is."),
                qa(1, 106, "Is it a car?", "yes"),
            ]},
            {"id": 2, "qas": [qa(2, 200, "How many dogs?", "Two dogs.")]},
            {"id": 3, "qas": [qa(3, 300, "What is it?", "A cat")]},
            {"id": 4, "qas": []},
            {"id": 5, "qas": [qa(5, 500, "Missing?", "yes")]},
            {"id": 6, "qas": [qa(6, 600, "Corrupt?", "yes")]},
            {"id": 7, "qas": [qa(7, 700, "In no split?", "yes")]},
        ]),
    );
    let meta: Vec<Value> = [
        (1, Some(9)),
        (2, None),
        (3, Some(11)),
        (5, None),
        (6, Some(12)),
        (7, None),
    ]
    .iter()
    .map(|(i, c)| {
        json!({"width": 10, "url": format!("https://x/VG_100K/{i}.jpg"), "height": 10,
                             "image_id": i, "coco_id": c, "flickr_id": null})
    })
    .collect();
    write_json(&raw.join("image_data.json"), &Value::Array(meta));
    jpeg(&raw.join("images/VG_100K/1.jpg"), 1);
    jpeg(&raw.join("images/VG_100K_2/2.jpg"), 2);
    jpeg(&raw.join("images/VG_100K/3.jpg"), 3);
    truncated_jpeg(&raw.join("images/VG_100K/6.jpg"));
}

fn vqa_vocab(out: &Path) {
    mkdir(out);
    AnswerVocab::new(
        ["yes", "2", "red", "3", "cat", "2 dogs"]
            .map(String::from)
            .to_vec(),
    )
    .write(out)
    .unwrap();
}

#[test]
fn vgqa_answers_and_splits_from_ids_files() {
    let dir = tempfile::tempdir().unwrap();
    let (raw, out) = (dir.path().join("raw"), dir.path().join("out"));
    write_vg_qa(&raw);
    write_json(
        &raw.join("vgqa/ids.json"),
        &json!({"train": [1, 5, 6], "val": [2], "test": [3]}),
    );
    write_json(
        &raw.join("vgqa/coco_ids.json"),
        &json!({"train": [1], "val": [], "test": [3]}),
    );
    // Without a vocabulary: one message saying where it should come from.
    let err = convert(Dataset::Vgqa, &options(&raw, &out), &|_| {})
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("vqav2_answers.json") && err.contains("--vqav2-raw"),
        "{err}"
    );
    vqa_vocab(&out);
    let report = run(Dataset::Vgqa, &options(&raw, &out));
    assert_eq!(
        names(&report),
        ["vgqa_train", "vgqa_val", "vgqa_coco_train", "vgqa_coco_val"]
    );
    assert_eq!(
        skipped(&report),
        [("5.jpg".into(), "missing"), ("6.jpg".into(), "corrupt")]
    );
    let t = Table::read(&out, "vgqa_train");
    assert_eq!(t.types(), vqa_types());
    // "Red." → "red"; "Yes, it is." → "yes it is" is not a label, so "Is it a car?" keeps
    // only "yes" (its second QA).
    assert_eq!(
        t.records(),
        [
            json!({"questions": ["What color is the car?", "Is it a car?"],
                "answers": [["red"], ["yes"]], "answer_labels": [[2], [0]],
                "answer_scores": [[1.0], [1.0]], "image_id": 1, "question_id": [100, 106],
                "split": "train"})
        ]
    );
    // val = ids' val + test: "Two dogs." → "2 dogs" (number words, the period); "A cat" → "cat".
    let v = Table::read(&out, "vgqa_val").by("image_id");
    assert_eq!(v.keys().collect::<Vec<_>>(), ["2", "3"]);
    assert_eq!(
        v["2"],
        json!({"questions": ["How many dogs?"], "answers": [["2 dogs"]], "answer_labels": [[5]],
               "answer_scores": [[1.0]], "image_id": 2, "question_id": [200], "split": "val"})
    );
    assert_eq!(v["3"]["answers"], json!([["cat"]]));
    let c = Table::read(&out, "vgqa_coco_train").records();
    assert_eq!(c.len(), 1);
    assert_eq!(c[0]["image_id"], json!(1));
    assert_eq!(
        Table::read(&out, "vgqa_coco_val")
            .by("image_id")
            .keys()
            .collect::<Vec<_>>(),
        ["3"]
    );
}

#[test]
fn vgqa_split_derived_like_vgqa_split_py() {
    let dir = tempfile::tempdir().unwrap();
    let (raw, out) = (dir.path().join("raw"), dir.path().join("out"));
    write_vg_qa(&raw);
    // COCO 9 is in Karpathy train, 11 in val, 12 in test; 2, 5, 7 have no COCO id.
    let splits = raw.join("coco_splits");
    write(
        &splits.join("karpathy_train_images.txt"),
        b"train2014/COCO_train2014_000000000009.jpg 9\n",
    );
    write(
        &splits.join("karpathy_val_images.txt"),
        b"val2014/COCO_val2014_000000000011.jpg 11\n",
    );
    write(
        &splits.join("karpathy_test_images.txt"),
        b"val2014/COCO_val2014_000000000012.jpg 12\n\n",
    );
    vqa_vocab(&out);
    let mut opts = options(&raw, &out);
    // Hold out 2 images each for val and test (the reference: 5000).
    opts.vgqa_holdout = 2;
    run(Dataset::Vgqa, &opts);
    // coco_ids: train {1}, val {3}, test {6}. The remainder [2, 5, 7] shuffled by Python's
    // `random.seed(0)` is [2, 7, 5]: test pops 5 (→ {6, 5}), val pops 7 (→ {3, 7}), train gets 2.
    let ids = |name: &str| -> Vec<String> {
        Table::read(&out, name).by("image_id").into_keys().collect()
    };
    assert_eq!(ids("vgqa_coco_train"), ["1"]);
    assert_eq!(ids("vgqa_coco_val"), ["3"]);
    assert_eq!(ids("vgqa_train"), ["1", "2"]);
    assert_eq!(ids("vgqa_val"), ["3"]);
    let t = Table::read(&out, "vgqa_train").by("image_id");
    assert_eq!(t["2"]["answers"], json!([["2 dogs"]]));
    assert_eq!(t["2"]["split"], json!("train"));
}

// ---- SBU, GCC ---------------------------------------------------------------------------------

#[test]
fn sbu_shards_and_split_column() {
    let dir = tempfile::tempdir().unwrap();
    // The reference's `split` is the raw root's own name after its last `_`.
    let (raw, out) = (dir.path().join("data_sbu"), dir.path().join("out"));
    let urls: Vec<String> = (1..=6)
        .map(|i| format!("http://static.flickr.com/2/{i}_ab.jpg"))
        .collect();
    let captions: Vec<String> = (1..=6).map(|i| format!("caption {i}")).collect();
    write_json(
        &raw.join("sbu-captions-all.json"),
        &json!({"image_urls": urls, "captions": captions, "user_ids": []}),
    );
    for i in [1, 2, 3, 4] {
        jpeg(&raw.join(format!("SBU/{i}_ab.jpg")), i as u8);
    }
    truncated_jpeg(&raw.join("SBU/5_ab.jpg"));
    jpeg(&raw.join("SBU/unlisted.jpg"), 7);
    let mut opts = options(&raw, &out);
    opts.shard_size = 2;
    let report = run(Dataset::Sbu, &opts);
    // 5 listed files → shards of 2, 2, 1 (the corrupt one leaves its shard a row short).
    assert_eq!(names(&report), ["sbu_0", "sbu_1", "sbu_2"]);
    assert_eq!(
        skipped(&report),
        [
            ("5_ab.jpg".into(), "corrupt"),
            ("6_ab.jpg".into(), "missing")
        ]
    );
    let mut all = Vec::new();
    let mut sizes = Vec::new();
    for k in 0..3 {
        let t = Table::read(&out, &format!("sbu_{k}"));
        if t.rows() > 0 {
            assert_eq!(t.types(), caption_types());
        }
        sizes.push(t.rows());
        all.extend(t.records());
    }
    assert_eq!(sizes.iter().sum::<usize>(), 4);
    assert!(sizes.iter().all(|&n| n <= 2), "{sizes:?}");
    all.sort_by_key(|r| r["image_id"].as_str().unwrap().to_string());
    assert_eq!(
        all,
        (1..=4)
            .map(
                |i| json!({"caption": [format!("caption {i}")], "image_id": format!("{i}_ab.jpg"),
                            "split": "sbu"})
            )
            .collect::<Vec<_>>()
    );
}

#[test]
fn gcc_shards_cross_boundaries_and_follow_the_tsv() {
    let dir = tempfile::tempdir().unwrap();
    let (raw, out) = (dir.path().join("cc"), dir.path().join("out"));
    // Row numbers count records, not lines: the blank line does not shift them; a quoted field
    // holds a tab; `NA` is pandas' missing value (a null caption).
    write(
        &raw.join("utils/Train_GCC-training.tsv"),
        b"a man on a bike\thttp://a/0\n\"tab\tinside\"\thttp://a/1\n\nNA\thttp://a/2\na dog\thttp://a/3\nlast one\thttp://a/4\n",
    );
    write(
        &raw.join("utils/Validation_GCC-1.1.0-Validation.tsv"),
        b"val caption\thttp://v/0\n",
    );
    write(
        &raw.join("train_image_exist.txt"),
        b"/home/x/train_image/0.jpg\n/home/x/train_image/1.jpg\ntrain_image/2.jpg\n3.jpg\n4.jpg\n",
    );
    write(&raw.join("val_image_exist.txt"), b"0.jpg\n");
    for i in 0..=3 {
        jpeg(&raw.join(format!("train_image/{i}.jpg")), i as u8);
    }
    truncated_jpeg(&raw.join("train_image/4.jpg"));
    jpeg(&raw.join("val_image/0.jpg"), 9);
    let mut opts = options(&raw, &out);
    opts.shard_size = 2;
    let report = run(Dataset::Gcc, &opts);
    // val: 1 row → 1 shard; train: 5 listed → shards of 2, 2, 1.
    assert_eq!(
        names(&report),
        [
            "conceptual_caption_val_0",
            "conceptual_caption_train_0",
            "conceptual_caption_train_1",
            "conceptual_caption_train_2"
        ]
    );
    assert_eq!(skipped(&report), [("4.jpg".into(), "corrupt")]);
    let mut all = BTreeMap::new();
    for k in 0..3 {
        let t = Table::read(&out, &format!("conceptual_caption_train_{k}"));
        assert!(t.rows() <= 2);
        all.extend(t.by("image_id"));
    }
    assert_eq!(
        all.into_values().collect::<Vec<_>>(),
        [
            json!({"caption": ["a man on a bike"], "image_id": "0.jpg", "split": "cc"}),
            json!({"caption": ["tab\tinside"], "image_id": "1.jpg", "split": "cc"}),
            json!({"caption": [null], "image_id": "2.jpg", "split": "cc"}),
            json!({"caption": ["a dog"], "image_id": "3.jpg", "split": "cc"}),
        ]
    );
    assert_eq!(
        Table::read(&out, "conceptual_caption_val_0").records(),
        [json!({"caption": ["val caption"], "image_id": "0.jpg", "split": "cc"})]
    );

    // Exactly a multiple of the shard size: the reference ends with an empty shard, which
    // the engine's reader takes as an empty table.
    std::fs::remove_file(raw.join("train_image/4.jpg")).unwrap();
    let out2 = dir.path().join("out2");
    let mut opts = options(&raw, &out2);
    opts.shard_size = 2;
    let report = run(Dataset::Gcc, &opts);
    assert_eq!(report.outputs.len(), 4);
    assert_eq!(skipped(&report), [("4.jpg".into(), "missing")]);
    let last = Table::read(&out2, "conceptual_caption_train_2");
    assert_eq!(
        last.types(),
        empty_types(&["image", "caption", "image_id", "split"])
    );
    let empty = ViltDataset::open(
        &out2,
        &["conceptual_caption_train_2".into()],
        DatasetKind::Captions,
    )
    .unwrap();
    assert_eq!(empty.num_rows(), 0);
    // The null caption (pandas' NA) is data the engine's reader refuses, naming it.
    let shards: Vec<String> = (0..3)
        .map(|k| format!("conceptual_caption_train_{k}"))
        .collect();
    let err = ViltDataset::open(&out2, &shards, DatasetKind::Captions)
        .unwrap_err()
        .to_string();
    assert!(err.contains("caption") && err.contains("null"), "{err}");
}
