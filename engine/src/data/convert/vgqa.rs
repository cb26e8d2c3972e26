//! Visual Genome QA (`write_vgqa.py`, with the split of `vgqa_split.py`).
//!
//! Raw layout (`--raw VG_ROOT`): `annotations/question_answers.json`, `image_data.json`,
//! `images/{VG_100K,VG_100K_2}/*.jpg`, and either the split files `vgqa/ids.json` and
//! `vgqa/coco_ids.json` that `vgqa_split.py` writes, or the COCO split files it reads,
//! `coco_splits/karpathy_{train,val,test}_images.txt`, from which the same split is derived here
//! (Python's `random.seed(0)` shuffle reproduced bit for bit). The answer vocabulary is VQAv2's:
//! `OUT/vqav2_answers.json` from `data convert vqav2`, or built from `--vqav2-raw`.
//!
//! The reference's rules: an image belongs to train if its first QA's image is in the split's
//! train ids, to val if in val or test; a question (per image) is kept only if all its
//! in-vocabulary normalised answers agree, once (its first QA); its answer scores 1.0. Written
//! twice: `vgqa_{train,val}` over all VG images (`ids.json`) and `vgqa_coco_{train,val}` over the
//! VG images with a COCO id (`coco_ids.json`), in the VQA schema.

use std::collections::{HashMap, HashSet};
use std::fs::File;
use std::io::{BufRead, BufReader};
use std::path::Path;

use serde::Deserialize;

use super::error::ConvertError;
use super::inputs::{read_json, Required};
use super::output::{Cell, Output, Row};
use super::pyrandom::PyRandom;
use super::vg::{vg_image_id, vg_images, VG_FOLDERS};
use super::vqa::{vocabulary_from_raw, ByImage, Normalizer};
use super::{ConvertResult, Ctx, Plan, SkipReason, SkippedImage};
use crate::data::schema::VQA;
use crate::data::vocab::AnswerVocab;

#[derive(Deserialize)]
struct SplitIds {
    train: Vec<i64>,
    val: Vec<i64>,
    test: Vec<i64>,
}

/// Image ids of train and of val (the reference's val is `val + test`).
struct Membership {
    train: HashSet<i64>,
    val: HashSet<i64>,
}

impl Membership {
    fn of(ids: SplitIds) -> Self {
        Self {
            train: ids.train.into_iter().collect(),
            val: ids.val.into_iter().chain(ids.test).collect(),
        }
    }

    fn split(&self, image: i64) -> Option<usize> {
        if self.train.contains(&image) {
            Some(0)
        } else if self.val.contains(&image) {
            Some(1)
        } else {
            None
        }
    }
}

#[derive(Deserialize)]
struct ImageData {
    image_id: i64,
    #[serde(default)]
    coco_id: Option<i64>,
}

/// `int(line.split('.')[0].split('_')[-1])` over the non-blank lines.
fn karpathy_ids(path: &Path) -> ConvertResult<HashSet<i64>> {
    let file = File::open(path).map_err(|e| ConvertError::io(path, e))?;
    let mut ids = HashSet::new();
    for (i, line) in BufReader::new(file).lines().enumerate() {
        let line = line.map_err(|e| ConvertError::io(path, e))?;
        if line.trim().is_empty() {
            continue;
        }
        let stem = line.split('.').next().unwrap_or_default();
        let id = stem
            .rsplit('_')
            .next()
            .and_then(|s| s.trim().parse().ok())
            .ok_or_else(|| ConvertError::BadLine {
                path: path.to_path_buf(),
                line: i + 1,
                what: "not a COCO file name (`..._<id>.jpg`)",
                value: line.clone(),
            })?;
        ids.insert(id);
    }
    Ok(ids)
}

/// `vgqa_split.py`: `(ids, coco_ids)`.
fn derive_split(ctx: &Ctx, metadata: &[ImageData]) -> ConvertResult<(SplitIds, SplitIds)> {
    let root = &ctx.opts.raw;
    let dir = root.join("coco_splits");
    let mut karpathy = Vec::new();
    for split in ["train", "val", "test"] {
        karpathy.push(karpathy_ids(
            &dir.join(format!("karpathy_{split}_images.txt")),
        )?);
    }
    let mut sets: [Vec<i64>; 3] = Default::default();
    let mut seen: [HashSet<i64>; 3] = Default::default();
    let mut add = |k: usize, id: i64, sets: &mut [Vec<i64>; 3]| {
        if seen[k].insert(id) {
            sets[k].push(id);
        }
    };
    let mut remainder = Vec::new();
    for item in metadata {
        match item.coco_id.filter(|&c| c != 0) {
            Some(coco) => match karpathy.iter().position(|s| s.contains(&coco)) {
                Some(k) => add(k, item.image_id, &mut sets),
                None => remainder.push(item.image_id),
            },
            None => remainder.push(item.image_id),
        }
    }
    let coco = SplitIds {
        train: sets[0].clone(),
        val: sets[1].clone(),
        test: sets[2].clone(),
    };
    PyRandom::seed(0).shuffle(&mut remainder);
    let holdout = ctx.opts.vgqa_holdout;
    for k in [2, 1] {
        while sets[k].len() < holdout {
            let id = remainder.pop().ok_or_else(|| ConvertError::BadInput {
                path: root.join("image_data.json"),
                detail: format!(
                    "too few images outside the Karpathy splits to hold out {holdout} for val and \
                     for test (vgqa_split.py)"
                ),
            })?;
            add(k, id, &mut sets);
        }
    }
    for id in remainder {
        add(0, id, &mut sets);
    }
    let [train, val, test] = sets;
    Ok((SplitIds { train, val, test }, coco))
}

#[derive(Deserialize)]
struct ImageQas {
    qas: Vec<Qa>,
}

#[derive(Deserialize)]
struct Qa {
    image_id: i64,
    qa_id: i64,
    question: String,
    answer: String,
}

/// A kept question: (qa id, question, label).
type Kept = (i64, String, i64);

pub(crate) fn plan(ctx: &Ctx) -> ConvertResult<Plan> {
    let root = &ctx.opts.raw;
    let mut req = Required::default();
    let qa_path = req.file(root.join("annotations").join("question_answers.json"));
    let meta_path = req.file(root.join("image_data.json"));
    for f in VG_FOLDERS {
        req.dir(root.join("images").join(f));
    }
    let ids_path = root.join("vgqa").join("ids.json");
    let coco_ids_path = root.join("vgqa").join("coco_ids.json");
    let have_ids = ids_path.is_file() && coco_ids_path.is_file();
    if !have_ids {
        for split in ["train", "val", "test"] {
            req.file(
                root.join("coco_splits")
                    .join(format!("karpathy_{split}_images.txt")),
            );
        }
    }
    let vocab_path = AnswerVocab::path(ctx.out);
    if ctx.opts.vqav2_raw.is_none() && !vocab_path.is_file() {
        return Err(ConvertError::BadInput {
            path: vocab_path,
            detail: "VG-QA answers are labelled with the VQAv2 answer vocabulary: run \
                     `towerlab data convert vqav2` into the same --out first, or pass \
                     --vqav2-raw with the VQAv2 raw root"
                .into(),
        });
    }
    req.check("vgqa", root)?;

    let vocab = match &ctx.opts.vqav2_raw {
        Some(vqa_root) => vocabulary_from_raw(ctx, vqa_root)?,
        None => AnswerVocab::read(&vocab_path)?,
    };
    let ans2label: HashMap<&str, i64> = vocab
        .label2answer
        .iter()
        .enumerate()
        .map(|(i, a)| (a.as_str(), i as i64))
        .collect();

    ctx.phase(&format!("reading {}", meta_path.display()));
    let metadata: Vec<ImageData> = read_json(
        &meta_path,
        "VG image metadata ([{\"image_id\", \"coco_id\", ...}])",
    )?;
    let (ids, coco_ids) = if have_ids {
        let expected = "VG-QA split ids ({\"train\", \"val\", \"test\"})";
        (
            read_json(&ids_path, expected)?,
            read_json(&coco_ids_path, expected)?,
        )
    } else {
        ctx.phase("deriving the VG-QA split (vgqa_split.py)");
        derive_split(ctx, &metadata)?
    };
    drop(metadata);
    let variants = [
        ("vgqa", Membership::of(ids)),
        ("vgqa_coco", Membership::of(coco_ids)),
    ];

    ctx.phase(&format!("reading {}", qa_path.display()));
    let entries: Vec<ImageQas> =
        read_json(&qa_path, "VG question answers ([{\"qas\": [...]}, ...])")?;
    let mut norm = Normalizer::default();
    // annotations[variant][split]: image -> kept questions.
    let mut annotations: Vec<[ByImage<Kept>; 2]> = (0..variants.len())
        .map(|_| [ByImage::default(), ByImage::default()])
        .collect();
    for entry in &entries {
        let Some(first) = entry.qas.first() else {
            continue;
        };
        let labels: Vec<Option<i64>> = entry
            .qas
            .iter()
            .map(|qa| ans2label.get(norm.get(&qa.answer)).copied())
            .collect();
        // Distinct in-vocabulary answers per question.
        let mut answers_of: HashMap<&str, Vec<i64>> = HashMap::new();
        for (qa, label) in entry.qas.iter().zip(&labels) {
            if let Some(l) = label {
                let seen = answers_of.entry(qa.question.as_str()).or_default();
                if !seen.contains(l) {
                    seen.push(*l);
                }
            }
        }
        for (v, (_, membership)) in variants.iter().enumerate() {
            let Some(split) = membership.split(first.image_id) else {
                continue;
            };
            let mut taken: HashSet<&str> = HashSet::new();
            for (qa, label) in entry.qas.iter().zip(&labels) {
                let Some(l) = label else { continue };
                let q = qa.question.as_str();
                if answers_of.get(q).map_or(0, Vec::len) != 1 || !taken.insert(q) {
                    continue;
                }
                let list = annotations[v][split].entry(qa.image_id);
                let kept = (qa.qa_id, qa.question.clone(), *l);
                match list.iter_mut().find(|k| k.0 == qa.qa_id) {
                    Some(k) => *k = kept,
                    None => list.push(kept),
                }
            }
        }
    }
    drop(entries);

    let mut plan = Plan::default();
    let images_root = root.join("images");
    for (v, (prefix, _)) in variants.iter().enumerate() {
        for (s, split) in ["train", "val"].into_iter().enumerate() {
            let grouped = &annotations[v][s];
            let paths = vg_images(ctx, &format!("vgqa_{split}"))?;
            let mut present = HashSet::new();
            let mut rows = Vec::new();
            for (folder, name) in &paths {
                let Some(iid) = vg_image_id(name) else {
                    continue;
                };
                let Some(qs) = grouped.items.get(&iid) else {
                    continue;
                };
                present.insert(iid);
                rows.push(Row {
                    images: vec![images_root.join(folder).join(name)],
                    cells: vec![
                        Cell::strs(qs.iter().map(|q| q.1.clone())),
                        Cell::StrListList(
                            qs.iter()
                                .map(|q| vec![vocab.label2answer[q.2 as usize].clone()])
                                .collect(),
                        ),
                        Cell::IntListList(qs.iter().map(|q| vec![q.2]).collect()),
                        Cell::F64ListList(qs.iter().map(|_| vec![1.0]).collect()),
                        Cell::Int(iid),
                        Cell::IntList(qs.iter().map(|q| q.0).collect()),
                        Cell::Str(split.to_string()),
                    ],
                });
            }
            let name = format!("{prefix}_{split}");
            for iid in grouped.order.iter().filter(|i| !present.contains(*i)) {
                plan.missing.push(SkippedImage {
                    path: images_root.join(VG_FOLDERS[0]).join(format!("{iid}.jpg")),
                    output: name.clone(),
                    reason: SkipReason::Missing,
                });
            }
            plan.outputs.push(Output::eager(name, &VQA, rows));
        }
    }
    Ok(plan)
}
