//! `towerlab data convert`: the public raw datasets to the reference's ViLT Arrow tables, without
//! Python. Same file names, columns, Arrow types and values as the reference writers
//! (`src/utils/write_*.py` of ManagerTower, most unchanged from ViLT/METER), so TowerLab and the
//! reference code read them alike, but streamed, parallel and deterministic:
//!
//! - the reference's unseeded `random.shuffle` of the image list becomes the seeded rule of
//!   [`order`] (same inputs and seed, byte-identical files, whatever `--jobs`);
//! - images are read and checked on `jobs` threads in chunks of [`CHUNK_ROWS`] rows, each
//!   chunk one record batch; memory is bounded by the chunks in flight, not the split size;
//! - each file is written as `NAME.arrow.partial` and renamed when complete; its schema
//!   metadata (`towerlab.convert`) records the settings, so a re-run skips finished files and
//!   refuses to mix files of different settings;
//! - a missing annotation file or image folder is one error naming every path expected; missing
//!   or unreadable images are skipped, counted and listed (`DATASET_skipped_images.tsv`).
//!
//! Where the reference keeps a bad image (it stores the bytes unread), TowerLab drops the row:
//! the reference's loader would fail on it at training time. The reference's empty tables (a
//! split with no images, the trailing shard of a multiple of the shard size) are reproduced as
//! pandas writes them: every column `null` plus `__index_level_0__`.

mod error;
mod gcc;
pub mod glossary;
mod image_check;
mod inputs;
mod karpathy;
mod nlvr2;
pub mod order;
mod output;
mod pyrandom;
mod sbu;
mod snli;
mod vg;
mod vgqa;
mod vqa;

pub(crate) use vqa::score as vqa_score;

use std::path::{Path, PathBuf};

pub use error::{ConvertError, ConvertResult};
pub use image_check::{check_image, ImageCheck};
pub use output::{CHUNK_ROWS, STAMP_KEY};

use crate::data::vocab::AnswerVocab;
use output::Output;

/// The datasets the reference writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Dataset {
    /// `write_vqa.py`: `vqav2_{train,val,test,test-dev,trainable_val,rest_val}{_fix,}`.
    Vqav2,
    /// `write_vgqa.py` (+ `vgqa_split.py`): `vgqa_{train,val}`, `vgqa_coco_{train,val}`.
    Vgqa,
    /// `write_nlvr2.py`: `nlvr2_{train,dev,test1,balanced_*,unbalanced_*}`.
    Nlvr2,
    /// `write_snli.py`: `snli_{train,dev,test}`.
    SnliVe,
    /// `write_f30k_karpathy.py`: `f30k_caption_karpathy_{train,val,test}`.
    F30k,
    /// `write_coco_karpathy.py`: `coco_caption_karpathy_{train,val,restval,test}` (the
    /// pre-training captions and the retrieval splits are the same files).
    Coco,
    /// `write_vg.py`: `vg`.
    Vg,
    /// `write_sbu.py`: `sbu_{k}`.
    Sbu,
    /// `write_conceptual_caption.py`: `conceptual_caption_{val,train}_{k}`.
    Gcc,
}

impl Dataset {
    pub const ALL: [Self; 9] = [
        Self::Vqav2,
        Self::Vgqa,
        Self::Nlvr2,
        Self::SnliVe,
        Self::F30k,
        Self::Coco,
        Self::Vg,
        Self::Sbu,
        Self::Gcc,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Self::Vqav2 => "vqav2",
            Self::Vgqa => "vgqa",
            Self::Nlvr2 => "nlvr2",
            Self::SnliVe => "snli-ve",
            Self::F30k => "f30k",
            Self::Coco => "coco",
            Self::Vg => "vg",
            Self::Sbu => "sbu",
            Self::Gcc => "gcc",
        }
    }

    fn sharded(self) -> bool {
        matches!(self, Self::Sbu | Self::Gcc)
    }
}

impl std::fmt::Display for Dataset {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

impl std::str::FromStr for Dataset {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let s = s.to_ascii_lowercase();
        let alias = match s.as_str() {
            "snli" | "snli_ve" | "snlive" => "snli-ve",
            "flickr30k" | "f30k_karpathy" => "f30k",
            "conceptual_caption" | "cc" | "cc3m" => "gcc",
            "vqa" => "vqav2",
            other => other,
        };
        Self::ALL
            .into_iter()
            .find(|d| d.name() == alias)
            .ok_or_else(|| {
                let names: Vec<&str> = Self::ALL.iter().map(|d| d.name()).collect();
                format!(
                    "unknown dataset `{s}` (expected one of {})",
                    names.join(", ")
                )
            })
    }
}

/// Settings of one conversion.
#[derive(Debug, Clone)]
pub struct ConvertOptions {
    /// The raw root, laid out as the reference expects (see each dataset's module).
    pub raw: PathBuf,
    /// Where the `.arrow` files go (created if missing).
    pub out: PathBuf,
    /// The seed of the row order (the reference shuffles unseeded).
    pub seed: u64,
    /// Threads reading and checking images.
    pub jobs: usize,
    pub check: ImageCheck,
    /// Rows per shard of SBU and GCC (the reference: 100,000).
    pub shard_size: usize,
    /// Rows of `vqav2_rest_val` (the reference: the last 1,000 of val).
    pub rest_val_rows: usize,
    /// VG-QA: the size of each of val and test when the split is derived from the COCO split
    /// files (`vgqa_split.py`: 5,000).
    pub vgqa_holdout: usize,
    /// VG-QA: the VQAv2 raw root to build the answer vocabulary from, when `out` has no
    /// `vqav2_answers.json` yet.
    pub vqav2_raw: Option<PathBuf>,
    /// Overwrite existing outputs, even ones of other settings or other tools.
    pub force: bool,
    /// `fsync` each file before renaming it into place (durable across a power loss, at the
    /// cost of waiting for the disk; a killed run is safe either way).
    pub sync: bool,
}

impl ConvertOptions {
    pub fn new(raw: impl Into<PathBuf>, out: impl Into<PathBuf>) -> Self {
        Self {
            raw: raw.into(),
            out: out.into(),
            seed: 0,
            jobs: std::thread::available_parallelism().map_or(1, |n| n.get()),
            check: ImageCheck::default(),
            shard_size: 100_000,
            rest_val_rows: 1000,
            vgqa_holdout: 5000,
            vqav2_raw: None,
            force: false,
            sync: false,
        }
    }

    /// The settings that shape the bytes of `dataset`'s files, as stored in each file.
    fn stamp(&self, dataset: Dataset) -> String {
        let mut v = serde_json::json!({
            "format": 1,
            "dataset": dataset.name(),
            "seed": self.seed,
            "check": self.check.name(),
        });
        if dataset.sharded() {
            v["shard_size"] = self.shard_size.into();
        }
        match dataset {
            Dataset::Vqav2 => v["rest_val_rows"] = self.rest_val_rows.into(),
            Dataset::Vgqa => v["vgqa_holdout"] = self.vgqa_holdout.into(),
            _ => {}
        }
        v.to_string()
    }
}

/// Why an image was left out.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SkipReason {
    /// Annotated but not in the image folder.
    Missing,
    /// The file could not be read.
    Unreadable(String),
    /// Not an image the engine can decode (truncated, empty, foreign format).
    Corrupt(String),
}

impl std::fmt::Display for SkipReason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Missing => f.write_str("missing"),
            Self::Unreadable(e) => write!(f, "unreadable: {e}"),
            Self::Corrupt(e) => write!(f, "corrupt: {e}"),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SkippedImage {
    pub path: PathBuf,
    /// The first output (by name) it was left out of.
    pub output: String,
    pub reason: SkipReason,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OutputStatus {
    Written,
    /// Already converted with the same settings: left as it was.
    UpToDate,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutputReport {
    pub name: String,
    pub path: PathBuf,
    pub rows: usize,
    /// Rows left out for a bad image while writing this file.
    pub skipped_images: usize,
    pub status: OutputStatus,
}

/// What a conversion did.
#[derive(Debug, Clone)]
pub struct ConvertReport {
    pub dataset: Dataset,
    pub outputs: Vec<OutputReport>,
    /// Every image left out, once per path, sorted by path.
    pub skipped: Vec<SkippedImage>,
    /// Where the skipped images are listed (when there are any).
    pub skipped_list: Option<PathBuf>,
    /// The answer vocabulary written beside the tables (VQAv2) and its size.
    pub vocab: Option<(PathBuf, usize)>,
    /// Image rows planned (the progress total).
    pub planned_rows: u64,
}

impl ConvertReport {
    pub fn missing(&self) -> usize {
        self.skipped
            .iter()
            .filter(|s| s.reason == SkipReason::Missing)
            .count()
    }
}

/// Progress, reported from the calling thread.
#[derive(Debug)]
pub enum ConvertEvent<'a> {
    /// A planning step (reading annotations, listing folders).
    Phase(&'a str),
    /// Planning is done: `rows` image rows in `files` files will be read (or found up to date).
    Planned {
        files: usize,
        rows: u64,
    },
    /// `rows` more planned rows were handled.
    Progress {
        rows: u64,
    },
    OutputDone(&'a OutputReport),
}

/// What the planners and writers share.
pub(crate) struct Ctx<'a> {
    pub out: &'a Path,
    pub opts: &'a ConvertOptions,
    pub stamp: String,
    pub progress: &'a (dyn Fn(&ConvertEvent) + Sync),
}

impl Ctx<'_> {
    pub fn phase(&self, what: &str) {
        (self.progress)(&ConvertEvent::Phase(what));
    }
}

/// What a dataset's planner hands to the writer.
#[derive(Debug, Default)]
pub(crate) struct Plan {
    pub outputs: Vec<Output>,
    /// Annotated images not found in their folder.
    pub missing: Vec<SkippedImage>,
    pub vocab: Option<AnswerVocab>,
    /// `(source, head, tail)`: written after the outputs by [`output::split_tail`].
    pub tail_splits: Vec<(String, String, String)>,
}

/// Converts `dataset` from `opts.raw` into `opts.out`.
pub fn convert(
    dataset: Dataset,
    opts: &ConvertOptions,
    progress: &(dyn Fn(&ConvertEvent) + Sync),
) -> ConvertResult<ConvertReport> {
    if !opts.raw.is_dir() {
        return Err(ConvertError::MissingInputs {
            dataset: dataset.name(),
            root: opts.raw.clone(),
            missing: vec![(opts.raw.clone(), "folder")],
        });
    }
    std::fs::create_dir_all(&opts.out).map_err(|e| ConvertError::io(&opts.out, e))?;
    let ctx = Ctx {
        out: &opts.out,
        opts,
        stamp: opts.stamp(dataset),
        progress,
    };
    let plan = match dataset {
        Dataset::Vqav2 => vqa::plan(&ctx)?,
        Dataset::Vgqa => vgqa::plan(&ctx)?,
        Dataset::Nlvr2 => nlvr2::plan(&ctx)?,
        Dataset::SnliVe => snli::plan(&ctx)?,
        Dataset::F30k => karpathy::plan(&ctx, karpathy::Corpus::F30k)?,
        Dataset::Coco => karpathy::plan(&ctx, karpathy::Corpus::Coco)?,
        Dataset::Vg => vg::plan(&ctx)?,
        Dataset::Sbu => sbu::plan(&ctx)?,
        Dataset::Gcc => gcc::plan(&ctx)?,
    };
    let vocab = match &plan.vocab {
        Some(v) => Some((v.write(ctx.out)?, v.num_answers)),
        None => None,
    };
    let planned_rows: u64 = plan.outputs.iter().map(|o| o.len as u64).sum();
    progress(&ConvertEvent::Planned {
        files: plan.outputs.len() + 2 * plan.tail_splits.len(),
        rows: planned_rows,
    });
    let mut skipped = plan.missing;
    let mut outputs = output::write_outputs(&ctx, &plan.outputs, &mut skipped)?;
    for (source, head, tail) in &plan.tail_splits {
        outputs.extend(output::split_tail(
            &ctx,
            source,
            head,
            tail,
            opts.rest_val_rows,
        )?);
    }
    // Outputs are written in parallel, so an image several outputs skip arrives in any order:
    // the listed one is the first by name, whatever `--jobs`.
    skipped.sort_by(|a, b| (&a.path, &a.output).cmp(&(&b.path, &b.output)));
    skipped.dedup_by(|a, b| a.path == b.path);
    let skipped_list = write_skipped_list(&ctx, dataset, &skipped)?;
    Ok(ConvertReport {
        dataset,
        outputs,
        skipped,
        skipped_list,
        vocab,
        planned_rows,
    })
}

/// `DATASET_skipped_images.tsv`: path, reason, output; removed when a run skips nothing.
fn write_skipped_list(
    ctx: &Ctx,
    dataset: Dataset,
    skipped: &[SkippedImage],
) -> ConvertResult<Option<PathBuf>> {
    let path = ctx
        .out
        .join(format!("{}_skipped_images.tsv", dataset.name()));
    if skipped.is_empty() {
        if path.exists() {
            std::fs::remove_file(&path).map_err(|e| ConvertError::io(&path, e))?;
        }
        return Ok(None);
    }
    let mut text = String::from("path\treason\toutput\n");
    for s in skipped {
        let reason = s.reason.to_string().replace(['\t', '\n'], " ");
        text.push_str(&format!("{}\t{reason}\t{}\n", s.path.display(), s.output));
    }
    let tmp = path.with_extension("tsv.partial");
    std::fs::write(&tmp, text).map_err(|e| ConvertError::io(&tmp, e))?;
    std::fs::rename(&tmp, &path).map_err(|e| ConvertError::io(&path, e))?;
    Ok(Some(path))
}
