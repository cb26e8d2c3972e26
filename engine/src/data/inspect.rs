//! Summaries of Arrow dataset files: schema, counts, decoded samples and label baselines.

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};

use super::arrow_file::ArrowFile;
use super::dataset::{DatasetKind, ImageSlot, Target, ViltDataset};
use super::error::{DataError, DataResult};
use super::transforms::decode_rgb;
use super::vocab::AnswerVocab;

#[derive(Debug, Clone, PartialEq)]
pub struct SampleView {
    pub text: String,
    /// (width, height) per image, or the decode error.
    pub images: Vec<Result<(u32, u32), String>>,
    pub target: String,
}

/// The label statistics of a labelled file.
#[derive(Debug, Clone, PartialEq)]
pub struct LabelStats {
    /// Distinct labels seen (VQA: answer labels).
    pub distinct: usize,
    /// The most common label and the score of always predicting it (VQA: mean VQA score of the
    /// answer with the highest total score; others: its frequency).
    pub majority: String,
    pub majority_baseline: f64,
    /// VQA: the score of the best answer per question type (the question's first two words,
    /// "how many", "is there", "what color", ...): what a model that ignores the image and
    /// reads only the question type reaches. A model must beat this, not only the majority,
    /// to show it uses the image.
    pub question_type_baseline: Option<f64>,
    pub labelled: usize,
}

/// The VQA question type: the first two words, lower-cased.
fn question_type(question: &str) -> String {
    question
        .split_whitespace()
        .take(2)
        .map(str::to_lowercase)
        .collect::<Vec<_>>()
        .join(" ")
}

#[derive(Debug, Clone, PartialEq)]
pub struct FileSummary {
    pub path: PathBuf,
    pub rows: usize,
    pub batches: usize,
    pub columns: Vec<(String, String)>,
    pub kind: Option<DatasetKind>,
    /// Samples (one per text) or the error that prevented indexing.
    pub samples: Result<usize, String>,
    pub examples: Vec<SampleView>,
    pub labels: Option<LabelStats>,
    /// The settings `towerlab data convert` wrote it with (its schema metadata).
    pub converted: Option<String>,
    /// VQA: the answer vocabulary beside the file (`vqav2_answers.json`) and its size, or why
    /// it could not be read.
    pub vocabulary: Option<(PathBuf, Result<usize, String>)>,
}

/// Summarises a file, or every `*.arrow` file of a directory (sorted by name).
pub fn inspect_path(path: &Path, examples: usize) -> DataResult<Vec<FileSummary>> {
    let files = if path.is_dir() {
        let mut v: Vec<PathBuf> = std::fs::read_dir(path)
            .map_err(|e| DataError::io(path, e))?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.extension().is_some_and(|x| x == "arrow"))
            .collect();
        v.sort();
        if v.is_empty() {
            return Err(DataError::NoArrowFiles {
                dir: path.to_path_buf(),
            });
        }
        v
    } else {
        vec![path.to_path_buf()]
    };
    files.iter().map(|p| inspect_file(p, examples)).collect()
}

pub fn inspect_file(path: &Path, examples: usize) -> DataResult<FileSummary> {
    let file = ArrowFile::open(path)?;
    let columns = file
        .schema()
        .fields()
        .iter()
        .map(|f| (f.name().clone(), f.data_type().to_string()))
        .collect();
    let kind = DatasetKind::detect(&file);
    let converted = file
        .schema()
        .metadata()
        .get(super::convert::STAMP_KEY)
        .cloned();
    let vocabulary = (kind == Some(DatasetKind::Vqa))
        .then(|| AnswerVocab::path(path.parent().unwrap_or(Path::new("."))))
        .filter(|p| p.is_file())
        .map(|p| {
            let n = AnswerVocab::read(&p)
                .map(|v| v.num_answers)
                .map_err(|e| e.to_string());
            (p, n)
        });
    let mut summary = FileSummary {
        path: path.to_path_buf(),
        rows: file.num_rows(),
        batches: file.num_batches(),
        columns,
        kind,
        samples: Err("unknown schema: not a ViLT dataset file".into()),
        examples: Vec::new(),
        labels: None,
        converted,
        vocabulary,
    };
    drop(file);
    let Some(kind) = kind else {
        return Ok(summary);
    };
    let ds = match ViltDataset::open_paths(&[path.to_path_buf()], kind, false) {
        Ok(ds) => ds,
        Err(e) => {
            summary.samples = Err(e.to_string());
            return Ok(summary);
        }
    };
    summary.samples = Ok(ds.len());
    let step = (ds.len() / examples.max(1)).max(1);
    for s in (0..ds.len()).step_by(step).take(examples) {
        let (row, _) = ds.locate(s);
        let slots: &[ImageSlot] = if kind == DatasetKind::Nlvr2 {
            &[ImageSlot::Image0, ImageSlot::Image1]
        } else {
            &[ImageSlot::Image]
        };
        let images = slots
            .iter()
            .map(|&slot| {
                ds.image_bytes(row, slot)
                    .and_then(decode_rgb)
                    .map(|i| i.dimensions())
                    .map_err(|e| e.to_string())
            })
            .collect();
        summary.examples.push(SampleView {
            text: ds.text(s).unwrap_or_else(|e| format!("<{e}>")),
            images,
            target: match ds.target(s) {
                Ok(t) => describe_target(&t),
                Err(e) => format!("<{e}>"),
            },
        });
    }
    summary.labels = label_stats(&ds)?;
    Ok(summary)
}

fn describe_target(t: &Target) -> String {
    match t {
        Target::None => String::new(),
        Target::Vqa {
            answers, scores, ..
        } => answers
            .iter()
            .zip(scores)
            .map(|(a, s)| format!("{a}:{s}"))
            .collect::<Vec<_>>()
            .join(" "),
        Target::Nlvr2 { label } => format!("{label}"),
        Target::Snli { label } => ["contradiction", "neutral", "entailment"]
            .get(*label as usize)
            .map(|s| s.to_string())
            .unwrap_or_else(|| label.to_string()),
    }
}

fn label_stats(ds: &ViltDataset) -> DataResult<Option<LabelStats>> {
    let mut totals: BTreeMap<String, f64> = BTreeMap::new();
    let mut by_type: BTreeMap<String, BTreeMap<String, f64>> = BTreeMap::new();
    let mut distinct = std::collections::BTreeSet::new();
    let mut labelled = 0usize;
    for s in 0..ds.len() {
        match ds.target(s)? {
            Target::None => return Ok(None),
            Target::Vqa {
                answers,
                labels,
                scores,
                ..
            } => {
                if labels.is_empty() {
                    continue;
                }
                labelled += 1;
                distinct.extend(labels);
                let of_type = by_type.entry(question_type(&ds.text(s)?)).or_default();
                for (a, sc) in answers.iter().zip(&scores) {
                    *totals.entry(a.clone()).or_default() += sc;
                    *of_type.entry(a.clone()).or_default() += sc;
                }
            }
            t @ (Target::Nlvr2 { .. } | Target::Snli { .. }) => {
                labelled += 1;
                let d = describe_target(&t);
                distinct.insert(0);
                *totals.entry(d).or_default() += 1.0;
            }
        }
    }
    if labelled == 0 {
        return Ok(None);
    }
    let (majority, best) = totals
        .iter()
        .max_by(|a, b| a.1.total_cmp(b.1).then_with(|| b.0.cmp(a.0)))
        .map(|(k, v)| (k.clone(), *v))
        .unwrap_or_default();
    let distinct = if ds.kind() == DatasetKind::Vqa {
        distinct.len()
    } else {
        totals.len()
    };
    let question_type_baseline = (ds.kind() == DatasetKind::Vqa).then(|| {
        let best_per_type: f64 = by_type
            .values()
            .map(|answers| answers.values().copied().fold(0.0, f64::max))
            .sum();
        best_per_type / labelled as f64
    });
    Ok(Some(LabelStats {
        distinct,
        majority,
        majority_baseline: best / labelled as f64,
        question_type_baseline,
        labelled,
    }))
}

impl fmt::Display for FileSummary {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "{}", self.path.display())?;
        writeln!(
            f,
            "  rows: {}  record batches: {}  kind: {}",
            self.rows,
            self.batches,
            self.kind
                .map(|k| format!("{k:?}"))
                .unwrap_or_else(|| "unknown".into())
        )?;
        for (name, ty) in &self.columns {
            writeln!(f, "    {name}: {ty}")?;
        }
        if let Some(stamp) = &self.converted {
            writeln!(f, "  written by towerlab data convert: {stamp}")?;
        }
        match &self.samples {
            Ok(n) => writeln!(f, "  samples (one per text): {n}")?,
            Err(e) => writeln!(f, "  cannot index samples: {e}")?,
        }
        for ex in &self.examples {
            let sizes: Vec<String> = ex
                .images
                .iter()
                .map(|r| match r {
                    Ok((w, h)) => format!("{w}x{h}"),
                    Err(e) => format!("undecodable ({e})"),
                })
                .collect();
            write!(f, "  - [{}] {:?}", sizes.join(", "), ex.text)?;
            if !ex.target.is_empty() {
                write!(f, " -> {}", ex.target)?;
            }
            writeln!(f)?;
        }
        if let Some(l) = &self.labels {
            let what = if self.kind == Some(DatasetKind::Vqa) {
                "answer vocabulary used"
            } else {
                "labels"
            };
            writeln!(
                f,
                "  {what}: {}  majority answer: {:?}  majority baseline: {:.2}% (over {} labelled)",
                l.distinct,
                l.majority,
                100.0 * l.majority_baseline,
                l.labelled
            )?;
            if let Some(b) = l.question_type_baseline {
                writeln!(
                    f,
                    "  question-type baseline (best answer per first two words, no image): {:.2}%",
                    100.0 * b
                )?;
            }
        }
        if let Some((path, n)) = &self.vocabulary {
            match n {
                Ok(n) => writeln!(f, "  answer vocabulary: {n} answers ({})", path.display())?,
                Err(e) => writeln!(f, "  answer vocabulary unreadable: {e}")?,
            }
        }
        Ok(())
    }
}
