//! Builds loaders from a run's [`Settings`] (the reference config keys).

use std::path::{Path, PathBuf};
use std::sync::Arc;

use experiments::settings::{Settings, Task};

use super::batch::SamplePipeline;
use super::dataset::ViltDataset;
use super::error::{DataError, DataResult};
use super::loader::{Loader, LoaderConfig};
use super::splits::{split_names, DataTask, Split, SplitProtocol};
use super::text::TextTokenizer;
use super::transforms::ImageTransform;

/// The data task of a run; retrieval uses COCO when `datasets` names coco and not f30k.
pub fn data_task(s: &Settings) -> DataTask {
    match s.task {
        Task::Pretrain => DataTask::Pretrain,
        Task::Vqa => DataTask::Vqa,
        Task::Nlvr2 => DataTask::Nlvr2,
        Task::Snli => DataTask::Snli,
        Task::Irtr => {
            let has = |n: &str| s.datasets.iter().any(|d| d == n);
            if has("coco") && !has("f30k") {
                DataTask::Coco
            } else {
                DataTask::F30k
            }
        }
    }
}

/// `tokenizer` as a path to a `tokenizer.json` (or a folder holding one), else
/// `{data_root}/tokenizer.json`. Hub names such as `roberta-base` cannot be downloaded here.
pub fn tokenizer_path(s: &Settings) -> DataResult<PathBuf> {
    let given = Path::new(&s.tokenizer);
    let candidates = [
        given.to_path_buf(),
        given.join("tokenizer.json"),
        Path::new(&s.data_root).join("tokenizer.json"),
    ];
    candidates
        .iter()
        .find(|p| p.is_file())
        .cloned()
        .ok_or_else(|| {
            DataError::Invalid(format!(
                "no tokenizer.json: `tokenizer = {:?}` is not a file or folder holding one, and \
                 {} does not exist",
                s.tokenizer,
                candidates[2].display()
            ))
        })
}

/// The loader of one split: train uses the train transform, `per_gpu_batchsize`, shuffling and
/// drop-last; val/test the val transform, `per_gpu_eval_batchsize`, in order, keeping every sample.
pub fn loader_from_settings(
    s: &Settings,
    split: Split,
    protocol: SplitProtocol,
) -> DataResult<Loader> {
    let task = data_task(s);
    let root = Path::new(&s.data_root);
    let names = split_names(root, task, split, protocol, &s.datasets)?;
    let dataset = Arc::new(ViltDataset::open(root, &names, task.kind())?);
    let train = split == Split::Train;
    let keys = if train {
        &s.train_transform_keys
    } else {
        &s.val_transform_keys
    };
    let key = keys.first().map(String::as_str).unwrap_or("clip");
    if keys.len() > 1 {
        tracing::warn!("only the first transform key ({key}) is used; {keys:?} were given");
    }
    let size = u32::try_from(s.image_size)
        .map_err(|_| DataError::Invalid(format!("image_size {} is not a size", s.image_size)))?;
    let transform = ImageTransform::from_key(key, size)?;
    let max_len = usize::try_from(s.max_text_len)
        .map_err(|_| DataError::Invalid(format!("max_text_len {} is negative", s.max_text_len)))?;
    let tokenizer = Arc::new(TextTokenizer::from_file(&tokenizer_path(s)?, max_len)?);
    let mut pipeline = SamplePipeline::new(dataset, transform, tokenizer);
    pipeline.mlm_prob = s.mlm_prob;
    pipeline.draw_false_image = s.draw_false_image;
    pipeline.draw_false_text = s.draw_false_text;
    pipeline.num_answers = usize::try_from(s.vqav2_label_size).unwrap_or(0);
    let batch_size = if train {
        s.per_gpu_batchsize
    } else if s.per_gpu_eval_batchsize > 0 {
        s.per_gpu_eval_batchsize
    } else {
        s.per_gpu_batchsize
    };
    Loader::new(
        pipeline,
        LoaderConfig {
            batch_size,
            shuffle: train,
            drop_last: train,
            seed: s.seed,
            num_workers: s.num_workers,
            prefetch: 2,
        },
    )
}
