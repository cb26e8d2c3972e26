//! VQAv2 (`write_vqa.py`).
//!
//! Raw layout (`--raw ROOT`): `ROOT/vqav2/v2_OpenEnded_mscoco_{train2014,val2014,test2015,
//! test-dev2015}_questions.json`, `ROOT/vqav2/v2_mscoco_{train2014,val2014}_annotations.json`,
//! and the COCO folders `ROOT/{train2014,val2014,test2015}/*.jpg`.
//!
//! The reference's rules: the answer vocabulary is `normalize_word(multiple_choice_answer)` over
//! train then val annotations, answers seen at least 9 times, in first-seen order. Per question
//! the annotators' answers are counted (normalised first in the `_fix` files only), answers
//! outside the vocabulary dropped, counts scored 1→0.3, 2→0.6, 3→0.9, ≥4→1.0; questions left
//! with no answer are removed, then images left with no question. One row per image present in
//! the folder, questions in the questions file's order. Test rows have empty answer lists
//! (`list<null>`). `vqav2_trainable_val`/`vqav2_rest_val` are val without / with only its last
//! 1,000 rows. Both the `_fix` and the original files are written, as the reference's script does.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde::Deserialize;

use super::error::{ConvertError, ConvertResult};
use super::glossary::normalize_word;
use super::inputs::{list_dir, read_json, Required};
use super::order::seeded_shuffle;
use super::output::{Cell, Output, Row};
use super::{Ctx, Plan, SkipReason, SkippedImage};
use crate::data::schema::VQA;
use crate::data::vocab::AnswerVocab;

/// Answers seen fewer times as a `multiple_choice_answer` are not labels.
pub(crate) const MIN_ANSWER_COUNT: usize = 9;

/// `get_score`: the VQA soft score of an answer given by `count` annotators.
pub(crate) fn score(count: usize) -> f64 {
    match count {
        0 => 0.0,
        1 => 0.3,
        2 => 0.6,
        3 => 0.9,
        _ => 1.0,
    }
}

#[derive(Deserialize)]
struct QuestionsFile {
    questions: Vec<Question>,
}

#[derive(Deserialize)]
struct Question {
    image_id: i64,
    question: String,
    question_id: i64,
}

#[derive(Deserialize)]
struct AnnotationsFile {
    annotations: Vec<Annotation>,
}

/// One annotation, reduced while it is parsed to what the tables need: the distinct raw
/// answers with their counts, in first-seen order.
#[derive(Deserialize)]
#[serde(from = "RawAnnotation")]
struct Annotation {
    question_id: i64,
    image_id: i64,
    multiple_choice_answer: String,
    answers: Vec<(Box<str>, usize)>,
}

#[derive(Deserialize)]
struct RawAnnotation {
    question_id: i64,
    image_id: i64,
    multiple_choice_answer: String,
    answers: Vec<RawAnswer>,
}

#[derive(Deserialize)]
struct RawAnswer {
    answer: String,
}

impl From<RawAnnotation> for Annotation {
    fn from(a: RawAnnotation) -> Self {
        Self {
            question_id: a.question_id,
            image_id: a.image_id,
            multiple_choice_answer: a.multiple_choice_answer,
            answers: count_first_seen(a.answers.into_iter().map(|x| x.answer)),
        }
    }
}

/// Python's `answer_count[a] = answer_count.get(a, 0) + 1` over `answers`: distinct values in
/// first-seen order with their counts.
fn count_first_seen<S: AsRef<str> + Into<Box<str>>>(
    answers: impl IntoIterator<Item = S>,
) -> Vec<(Box<str>, usize)> {
    let mut counts: Vec<(Box<str>, usize)> = Vec::new();
    for a in answers {
        match counts.iter_mut().find(|(k, _)| **k == *a.as_ref()) {
            Some((_, n)) => *n += 1,
            None => counts.push((a.into(), 1)),
        }
    }
    counts
}

/// `normalize_word` with a cache (answers repeat a lot).
#[derive(Default)]
pub(crate) struct Normalizer {
    cache: HashMap<Box<str>, Box<str>>,
}

impl Normalizer {
    pub fn get(&mut self, raw: &str) -> &str {
        if !self.cache.contains_key(raw) {
            self.cache.insert(raw.into(), normalize_word(raw).into());
        }
        &self.cache[raw]
    }
}

/// The vocabulary from the two annotation files: `Counter` over the normalised
/// `multiple_choice_answer`s, train then val, kept when seen ≥ 9 times, first-seen order.
fn vocabulary<'a>(
    annotations: impl IntoIterator<Item = &'a Annotation>,
    norm: &mut Normalizer,
) -> AnswerVocab {
    let mut counts: Vec<(String, usize)> = Vec::new();
    let mut index: HashMap<String, usize> = HashMap::new();
    for a in annotations {
        let word = norm.get(&a.multiple_choice_answer).to_string();
        match index.get(&word) {
            Some(&i) => counts[i].1 += 1,
            None => {
                index.insert(word.clone(), counts.len());
                counts.push((word, 1));
            }
        }
    }
    AnswerVocab::new(
        counts
            .into_iter()
            .filter(|(_, n)| *n >= MIN_ANSWER_COUNT)
            .map(|(w, _)| w)
            .collect(),
    )
}

/// Reads the answer vocabulary the way `write_vqa.py` and `write_vgqa.py` build it.
pub(crate) fn vocabulary_from_raw(ctx: &Ctx, root: &Path) -> ConvertResult<AnswerVocab> {
    let mut req = Required::default();
    let files: Vec<PathBuf> = ["train2014", "val2014"]
        .iter()
        .map(|s| req.file(annotations_path(root, s)))
        .collect();
    req.check("vqav2 (answer vocabulary)", root)?;
    let mut all = Vec::new();
    for f in &files {
        ctx.phase(&format!("reading {}", f.display()));
        let a: AnnotationsFile = read_json(f, "VQAv2 annotations ({\"annotations\": [...]})")?;
        all.push(a.annotations);
    }
    Ok(vocabulary(all.iter().flatten(), &mut Normalizer::default()))
}

fn questions_path(root: &Path, split: &str) -> PathBuf {
    root.join("vqav2")
        .join(format!("v2_OpenEnded_mscoco_{split}_questions.json"))
}

fn annotations_path(root: &Path, split: &str) -> PathBuf {
    root.join("vqav2")
        .join(format!("v2_mscoco_{split}_annotations.json"))
}

/// One question of an image, with its labels per variant (`[fix, original]`).
struct Asked {
    question_id: i64,
    question: String,
    labels: [Vec<(i64, f64)>; 2],
    annotated: bool,
}

/// The questions of one split grouped by image, in first-seen order (Python's dict of dicts).
pub(crate) struct ByImage<T> {
    pub order: Vec<i64>,
    pub items: HashMap<i64, Vec<T>>,
}

impl<T> Default for ByImage<T> {
    fn default() -> Self {
        Self {
            order: Vec::new(),
            items: HashMap::new(),
        }
    }
}

impl<T> ByImage<T> {
    pub fn entry(&mut self, image: i64) -> &mut Vec<T> {
        if !self.items.contains_key(&image) {
            self.order.push(image);
        }
        self.items.entry(image).or_default()
    }
}

struct Split {
    /// Output name part: `train`, `val`, `test`, `test-dev`.
    name: &'static str,
    /// The questions file's split name.
    questions: &'static str,
    /// Annotations file's split name (none for test).
    annotations: Option<&'static str>,
    /// Image folder (and the COCO file name part).
    folder: &'static str,
}

const SPLITS: [Split; 4] = [
    Split {
        name: "train",
        questions: "train2014",
        annotations: Some("train2014"),
        folder: "train2014",
    },
    Split {
        name: "val",
        questions: "val2014",
        annotations: Some("val2014"),
        folder: "val2014",
    },
    Split {
        name: "test",
        questions: "test2015",
        annotations: None,
        folder: "test2015",
    },
    Split {
        name: "test-dev",
        questions: "test-dev2015",
        annotations: None,
        folder: "test2015",
    },
];

/// `int(path.split("/")[-1].split("_")[-1][:-4])`: the image id of a COCO file name.
pub(crate) fn coco_image_id(name: &str) -> Option<i64> {
    let last = name.rsplit('_').next()?;
    let stem = last.get(..last.len().checked_sub(4)?)?;
    stem.trim().parse().ok()
}

/// The output-name suffix of each variant: `_fix` normalises annotators' answers.
const VARIANTS: [(&str, bool); 2] = [("_fix", true), ("", false)];

pub(crate) fn plan(ctx: &Ctx) -> ConvertResult<Plan> {
    let root = &ctx.opts.raw;
    let mut req = Required::default();
    for s in &SPLITS {
        req.file(questions_path(root, s.questions));
        if let Some(a) = s.annotations {
            req.file(annotations_path(root, a));
        }
        req.dir(root.join(s.folder));
    }
    req.check("vqav2", root)?;

    let mut by_split: Vec<ByImage<Asked>> = Vec::new();
    for s in &SPLITS {
        let path = questions_path(root, s.questions);
        ctx.phase(&format!("reading {}", path.display()));
        let file: QuestionsFile = read_json(&path, "VQAv2 questions ({\"questions\": [...]})")?;
        let mut grouped: ByImage<Asked> = ByImage::default();
        for q in file.questions {
            let list = grouped.entry(q.image_id);
            let asked = Asked {
                question_id: q.question_id,
                question: q.question,
                labels: [Vec::new(), Vec::new()],
                annotated: false,
            };
            // A repeated question id replaces the first in place (a Python dict).
            match list.iter_mut().find(|a| a.question_id == asked.question_id) {
                Some(a) => *a = asked,
                None => list.push(asked),
            }
        }
        by_split.push(grouped);
    }

    let mut annotations: Vec<(usize, PathBuf, Vec<Annotation>)> = Vec::new();
    for (i, s) in SPLITS.iter().enumerate() {
        if let Some(a) = s.annotations {
            let path = annotations_path(root, a);
            ctx.phase(&format!("reading {}", path.display()));
            let file: AnnotationsFile =
                read_json(&path, "VQAv2 annotations ({\"annotations\": [...]})")?;
            annotations.push((i, path, file.annotations));
        }
    }
    ctx.phase("building the answer vocabulary");
    let mut norm = Normalizer::default();
    let vocab = vocabulary(annotations.iter().flat_map(|(_, _, a)| a), &mut norm);
    let ans2label: HashMap<&str, i64> = vocab
        .label2answer
        .iter()
        .enumerate()
        .map(|(i, a)| (a.as_str(), i as i64))
        .collect();

    for (split, path, anns) in &annotations {
        let grouped = &mut by_split[*split];
        let q_path = questions_path(root, SPLITS[*split].questions);
        for a in anns {
            let asked = grouped
                .items
                .get_mut(&a.image_id)
                .and_then(|qs| qs.iter_mut().find(|q| q.question_id == a.question_id))
                .ok_or_else(|| ConvertError::BadRecord {
                    path: path.clone(),
                    key: "question_id",
                    value: a.question_id.to_string(),
                    what: format!(
                        "annotated for image {} but not asked of it in {}",
                        a.image_id,
                        q_path.display()
                    ),
                })?;
            let fixed = count_first_seen(a.answers.iter().flat_map(|(raw, n)| {
                let w: Box<str> = norm.get(raw).into();
                std::iter::repeat_n(w, *n)
            }));
            for (v, counts) in [fixed.as_slice(), a.answers.as_slice()]
                .into_iter()
                .enumerate()
            {
                asked.labels[v] = counts
                    .iter()
                    .filter_map(|(ans, n)| ans2label.get(&**ans).map(|&l| (l, score(*n))))
                    .collect();
            }
            asked.annotated = true;
        }
        if let Some((image, q)) = grouped
            .order
            .iter()
            .flat_map(|i| grouped.items[i].iter().map(move |q| (i, q)))
            .find(|(_, q)| !q.annotated)
        {
            return Err(ConvertError::BadRecord {
                path: path.clone(),
                key: "question_id",
                value: q.question_id.to_string(),
                what: format!(
                    "asked of image {image} in {} but has no annotation",
                    q_path.display()
                ),
            });
        }
    }

    // The raw annotations are no longer needed: only the grouped questions are kept.
    drop(annotations);
    drop(norm);

    let mut plan = Plan::default();
    let mut listings: HashMap<&str, Vec<String>> = HashMap::new();
    for s in &SPLITS {
        if !listings.contains_key(s.folder) {
            ctx.phase(&format!("listing {}", root.join(s.folder).display()));
            listings.insert(s.folder, list_dir(&root.join(s.folder), ".jpg")?);
        }
    }
    // Rows are built when written, from the questions shared by every output.
    let shared = Arc::new((by_split, vocab.clone()));
    for (suffix, fix) in VARIANTS {
        let v = usize::from(!fix);
        for (i, s) in SPLITS.iter().enumerate() {
            let grouped = &shared.0[i];
            let test = s.annotations.is_none();
            let mut names = listings[s.folder].clone();
            seeded_shuffle(&mut names, ctx.opts.seed, &format!("vqav2_{}", s.name));
            let mut keys: Vec<(String, i64)> = Vec::new();
            let mut present = std::collections::HashSet::new();
            for name in names {
                let Some(iid) = coco_image_id(&name) else {
                    continue;
                };
                if grouped.items.contains_key(&iid) && !kept(grouped, iid, v, test).is_empty() {
                    present.insert(iid);
                    keys.push((name, iid));
                }
            }
            let name = format!("vqav2_{}{suffix}", s.name);
            let folder = root.join(s.folder);
            for &iid in &grouped.order {
                if !present.contains(&iid) && !kept(grouped, iid, v, test).is_empty() {
                    plan.missing.push(SkippedImage {
                        path: folder.join(format!("COCO_{}_{iid:012}.jpg", s.folder)),
                        output: name.clone(),
                        reason: SkipReason::Missing,
                    });
                }
            }
            if test && !fix {
                // The test files hold no answers: the original variant's are the _fix ones.
                let source = plan
                    .outputs
                    .iter()
                    .find(|o| o.name == format!("vqav2_{}_fix", s.name))
                    .ok_or_else(|| {
                        ConvertError::Worker("the _fix test output is planned first".into())
                    })?;
                let copy = Output::copy(name, source);
                plan.outputs.push(copy);
                continue;
            }
            let (len, shared, split) = (keys.len(), shared.clone(), s.name);
            plan.outputs.push(Output::lazy(
                name,
                &VQA,
                len,
                Arc::new(move |r| {
                    let (file, iid) = &keys[r];
                    let (by_split, vocab) = &*shared;
                    let qs = kept(&by_split[i], *iid, v, test);
                    row(&folder.join(file), split, *iid, &qs, v, test, vocab)
                }),
            ));
        }
        plan.tail_splits.push((
            format!("vqav2_val{suffix}"),
            format!("vqav2_trainable_val{suffix}"),
            format!("vqav2_rest_val{suffix}"),
        ));
    }
    plan.vocab = Some(vocab);
    Ok(plan)
}

/// The questions of an image a variant keeps: those with a label left (all, for test).
fn kept(grouped: &ByImage<Asked>, image: i64, variant: usize, test: bool) -> Vec<&Asked> {
    grouped
        .items
        .get(&image)
        .map(|qs| {
            qs.iter()
                .filter(|q| test || !q.labels[variant].is_empty())
                .collect()
        })
        .unwrap_or_default()
}

fn row(
    path: &Path,
    split: &str,
    iid: i64,
    qs: &[&Asked],
    variant: usize,
    test: bool,
    vocab: &AnswerVocab,
) -> Row {
    let (answers, labels, scores) = if test {
        (Vec::new(), Vec::new(), Vec::new())
    } else {
        let labels: Vec<Vec<i64>> = qs
            .iter()
            .map(|q| q.labels[variant].iter().map(|(l, _)| *l).collect())
            .collect();
        let answers = labels
            .iter()
            .map(|ls| {
                ls.iter()
                    .map(|&l| vocab.label2answer[l as usize].clone())
                    .collect()
            })
            .collect();
        let scores = qs
            .iter()
            .map(|q| q.labels[variant].iter().map(|(_, s)| *s).collect())
            .collect();
        (answers, labels, scores)
    };
    Row {
        images: vec![path.to_path_buf()],
        cells: vec![
            Cell::strs(qs.iter().map(|q| q.question.clone())),
            Cell::StrListList(answers),
            Cell::IntListList(labels),
            Cell::F64ListList(scores),
            Cell::Int(iid),
            Cell::IntList(qs.iter().map(|q| q.question_id).collect()),
            Cell::Str(split.to_string()),
        ],
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scores_follow_the_annotator_count() {
        let s: Vec<f64> = (0..6).map(score).collect();
        assert_eq!(s, [0.0, 0.3, 0.6, 0.9, 1.0, 1.0]);
    }

    #[test]
    fn counts_keep_first_seen_order() {
        let c = count_first_seen(["b", "a", "b", "c", "b"]);
        let c: Vec<(&str, usize)> = c.iter().map(|(k, n)| (&**k, *n)).collect();
        assert_eq!(c, [("b", 3), ("a", 1), ("c", 1)]);
    }

    #[test]
    fn coco_ids_come_from_the_last_underscore_part() {
        assert_eq!(coco_image_id("COCO_train2014_000000000009.jpg"), Some(9));
        assert_eq!(coco_image_id("COCO_val2014_000000391895.jpg"), Some(391895));
        assert_eq!(coco_image_id("notes.jpg"), None);
        assert_eq!(coco_image_id(".jpg"), None);
    }
}
