//! Karpathy caption splits: Flickr30K (`write_f30k_karpathy.py`) and COCO
//! (`write_coco_karpathy.py`, the pre-training captions and the retrieval splits alike).
//!
//! Raw layout: `ROOT/karpathy/dataset_flickr30k.json` with `ROOT/flickr30k-images/*.jpg`;
//! `ROOT/karpathy/dataset_coco.json` with `ROOT/train2014/*.jpg` and `ROOT/val2014/*.jpg`.
//!
//! The reference's rules: captions are each image's `sentences[].raw` keyed by `filename`
//! (images with no sentence are not annotated), the split is the image's `split`; every image
//! file present and annotated is one row of its split's file, `image_id` the file name. COCO
//! writes `train`, `val`, `restval` and `test`; Flickr30K `train`, `val`, `test` (another split
//! value is left out, as the reference does). The image list is shuffled once for all splits.

use std::collections::{HashMap, HashSet};

use serde::Deserialize;

use super::inputs::{list_dir, read_json, Required};
use super::order::seeded_shuffle;
use super::output::{Cell, Output, Row};
use super::{ConvertResult, Ctx, Plan, SkipReason, SkippedImage};
use crate::data::schema::CAPTION;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Corpus {
    F30k,
    Coco,
}

impl Corpus {
    fn annotations(self) -> &'static str {
        match self {
            Self::F30k => "dataset_flickr30k.json",
            Self::Coco => "dataset_coco.json",
        }
    }

    fn folders(self) -> &'static [&'static str] {
        match self {
            Self::F30k => &["flickr30k-images"],
            Self::Coco => &["train2014", "val2014"],
        }
    }

    fn splits(self) -> &'static [&'static str] {
        match self {
            Self::F30k => &["train", "val", "test"],
            Self::Coco => &["train", "val", "restval", "test"],
        }
    }

    fn prefix(self) -> &'static str {
        match self {
            Self::F30k => "f30k_caption_karpathy",
            Self::Coco => "coco_caption_karpathy",
        }
    }

    fn dataset(self) -> &'static str {
        match self {
            Self::F30k => "f30k",
            Self::Coco => "coco",
        }
    }
}

#[derive(Deserialize)]
struct KarpathyFile {
    images: Vec<KarpathyImage>,
}

#[derive(Deserialize)]
struct KarpathyImage {
    filename: String,
    split: String,
    sentences: Vec<Sentence>,
}

#[derive(Deserialize)]
struct Sentence {
    raw: String,
}

pub(crate) fn plan(ctx: &Ctx, corpus: Corpus) -> ConvertResult<Plan> {
    let root = &ctx.opts.raw;
    let mut req = Required::default();
    let ann = req.file(root.join("karpathy").join(corpus.annotations()));
    for f in corpus.folders() {
        req.dir(root.join(f));
    }
    req.check(corpus.dataset(), root)?;

    ctx.phase(&format!("reading {}", ann.display()));
    let file: KarpathyFile = read_json(&ann, "Karpathy splits ({\"images\": [...]})")?;
    let mut captions: HashMap<String, Vec<String>> = HashMap::new();
    let mut split_of: HashMap<String, String> = HashMap::new();
    let mut order: Vec<String> = Vec::new();
    for img in file.images {
        split_of.insert(img.filename.clone(), img.split);
        if img.sentences.is_empty() {
            continue;
        }
        let caps = captions.entry(img.filename.clone()).or_insert_with(|| {
            order.push(img.filename.clone());
            Vec::new()
        });
        caps.extend(img.sentences.into_iter().map(|s| s.raw));
    }

    let mut paths: Vec<(String, String)> = Vec::new();
    for f in corpus.folders() {
        ctx.phase(&format!("listing {}", root.join(f).display()));
        paths.extend(
            list_dir(&root.join(f), ".jpg")?
                .into_iter()
                .map(|n| (f.to_string(), n)),
        );
    }
    // Sorted by relative path (`folder/name`), then the seeded shuffle.
    paths.sort();
    seeded_shuffle(&mut paths, ctx.opts.seed, corpus.prefix());
    let present: HashSet<&str> = paths.iter().map(|(_, n)| n.as_str()).collect();

    let mut plan = Plan::default();
    for split in corpus.splits() {
        let rows = paths
            .iter()
            .filter(|(_, name)| captions.contains_key(name) && split_of[name] == *split)
            .map(|(folder, name)| Row {
                images: vec![root.join(folder).join(name)],
                cells: vec![
                    Cell::strs(captions[name].iter().cloned()),
                    Cell::Str(name.clone()),
                    Cell::Str(split.to_string()),
                ],
            })
            .collect();
        plan.outputs.push(Output::eager(
            format!("{}_{split}", corpus.prefix()),
            &CAPTION,
            rows,
        ));
    }
    for name in order.iter().filter(|n| !present.contains(n.as_str())) {
        let split = &split_of[name];
        if !corpus.splits().contains(&split.as_str()) {
            continue;
        }
        // COCO file names say their folder: COCO_val2014_... lives in val2014/.
        let folder = corpus
            .folders()
            .iter()
            .find(|f| name.contains(&format!("_{f}_")))
            .unwrap_or(&corpus.folders()[0]);
        plan.missing.push(SkippedImage {
            path: root.join(folder).join(name),
            output: format!("{}_{split}", corpus.prefix()),
            reason: SkipReason::Missing,
        });
    }
    Ok(plan)
}
