//! [`TaskData`] over the ViLT Arrow files: the task's tables from the settings, the reference
//! transforms, the tokenizer, and the deterministic loader.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use experiments::settings::Split as TableSplit;
use experiments::{Settings, Task};

use super::source::{TaskData, TestQuestions, VqaTest};
use crate::data::{
    self, DatasetKind, ImageTransform, Loader, LoaderConfig, LoaderPosition, SamplePipeline,
    TextTokenizer, ViltDataset,
};
use crate::model::objectives::{Batch, Split};
use crate::{EngineError, InputError, Result};

/// The loaders of one run.
pub struct LoaderData {
    task: Task,
    /// Corrupt images skipped in the batches handed out so far.
    skipped: std::sync::atomic::AtomicUsize,
    train: Loader,
    /// One loader per evaluation table, with the split its metrics are logged under.
    eval: Vec<(Split, Loader)>,
    /// VQA's test tables, when they exist: the submission file's questions.
    vqa_test: Option<Loader>,
    /// VQA's test tables that are not in the data folder.
    vqa_test_missing: Vec<String>,
}

fn dataset_kind(task: Task) -> DatasetKind {
    match task {
        Task::Vqa => DatasetKind::Vqa,
        Task::Nlvr2 => DatasetKind::Nlvr2,
        Task::Snli => DatasetKind::Snli,
        Task::Pretrain | Task::Irtr => DatasetKind::Captions,
    }
}

/// The tables of a split with their shard patterns expanded.
fn expand_tables(dir: &Path, tables: &[String]) -> Vec<String> {
    tables
        .iter()
        .flat_map(|t| experiments::expand_table(dir, t))
        .collect()
}

/// The tokenizer of a run that trains its experts from scratch: the `tokenizer` setting as a
/// `tokenizer.json` file or a folder holding one, else the `tokenizer.json` beside the data
/// (the synthetic dataset ships one). A run from the pretrained experts reads the text
/// expert's (`train::init::Experts::tokenizer`).
pub fn tokenizer_path(settings: &Settings) -> Result<PathBuf> {
    let named = Path::new(&settings.tokenizer);
    let beside_data = Path::new(&settings.data_root).join("tokenizer.json");
    let candidates = [
        named.to_path_buf(),
        named.join("tokenizer.json"),
        beside_data.clone(),
    ];
    candidates
        .iter()
        .find(|p| p.is_file())
        .cloned()
        .ok_or_else(|| EngineError::NoTokenizer {
            setting: settings.tokenizer.clone(),
            beside_data,
        })
}

/// A VQA head must have one output per answer of the data's vocabulary, when the data comes
/// with one (the plan takes the size from it; a worker checks again on the data it reads).
fn check_answer_count(s: &Settings) -> Result<()> {
    if s.task != Task::Vqa {
        return Ok(());
    }
    let dir = Path::new(&s.data_root);
    match experiments::vqa_answer_count(dir).map_err(EngineError::AnswerVocabulary)? {
        Some(n) if n as i64 != s.vqav2_label_size => Err(EngineError::AnswerCount {
            label_size: s.vqav2_label_size,
            answers: n,
            vocabulary: dir.join(experiments::VQA_ANSWERS_FILE),
        }),
        _ => Ok(()),
    }
}

impl LoaderData {
    /// The loaders of `s`, tokenizing with [`tokenizer_path`].
    pub fn open(s: &Settings) -> Result<Self> {
        Self::open_with_tokenizer(s, None)
    }

    /// The loaders of `s`, tokenizing with `tokenizer` (a `tokenizer.json`) when given.
    pub fn open_with_tokenizer(s: &Settings, tokenizer: Option<PathBuf>) -> Result<Self> {
        check_answer_count(s)?;
        let dir = Path::new(&s.data_root);
        let kind = dataset_kind(s.task);
        let tokenizer = match tokenizer {
            Some(t) => t,
            None => tokenizer_path(s)?,
        };
        let tokenizer = Arc::new(TextTokenizer::from_file(
            &tokenizer,
            s.max_text_len.max(1) as usize,
        )?);
        let key = |keys: &[String]| keys.first().cloned().unwrap_or_else(|| "clip".into());
        let size = s.image_size.max(1) as u32;
        let train_transform = ImageTransform::from_key(&key(&s.train_transform_keys), size)?;
        let eval_transform = ImageTransform::from_key(&key(&s.val_transform_keys), size)?;
        let pipeline = |names: &[String], transform: &ImageTransform| -> Result<SamplePipeline> {
            let dataset = Arc::new(ViltDataset::open(dir, names, kind)?);
            let mut p = SamplePipeline::new(dataset, transform.clone(), tokenizer.clone());
            p.mlm_prob = s.mlm_prob;
            // Pre-training's ITM swaps in a random other image (`draw_false_image = 1`);
            // `itm_itc` mines its negatives in the batch instead.
            p.draw_false_image =
                if s.task == Task::Pretrain && s.objectives().iter().any(|o| o == "itm") {
                    s.draw_false_image.max(1)
                } else {
                    s.draw_false_image
                };
            p.draw_false_text = s.draw_false_text;
            p.num_answers = s.vqav2_label_size.max(1) as usize;
            Ok(p)
        };
        let train_names = expand_tables(dir, &s.tables(TableSplit::Train));
        let train = Loader::new(
            pipeline(&train_names, &train_transform)?,
            LoaderConfig {
                batch_size: s.per_gpu_batchsize.max(1),
                shuffle: true,
                // The reference keeps a last partial batch; dropping it keeps ITM's two halves
                // and MLM's masks non-empty (a one-sample batch may mask nothing: NaN loss).
                drop_last: true,
                seed: s.seed,
                num_workers: s.num_workers,
                prefetch: 2,
            },
        )?;
        let eval_config = LoaderConfig {
            batch_size: s.per_gpu_eval_batchsize.max(1),
            shuffle: false,
            drop_last: false,
            seed: s.seed,
            num_workers: s.num_workers,
            prefetch: 2,
        };
        let mut eval = Vec::new();
        for name in expand_tables(dir, &s.tables(TableSplit::Val)) {
            // NLVR2 and SNLI-VE evaluate dev and test in one pass, told apart by table name.
            let split = if matches!(s.task, Task::Nlvr2 | Task::Snli) && name.contains("test") {
                Split::Test
            } else {
                Split::Val
            };
            let loader = Loader::new(
                pipeline(std::slice::from_ref(&name), &eval_transform)?,
                eval_config.clone(),
            )?;
            eval.push((split, loader));
        }
        let test_names = expand_tables(dir, &s.tables(TableSplit::Test));
        let vqa_test_missing: Vec<String> = test_names
            .iter()
            .map(|n| dir.join(format!("{n}.arrow")))
            .filter(|p| !p.is_file())
            .map(|p| p.display().to_string())
            .collect();
        let test_present = !test_names.is_empty() && vqa_test_missing.is_empty();
        let vqa_test = if s.task == Task::Vqa && test_present {
            Some(Loader::new(
                pipeline(&test_names, &eval_transform)?,
                eval_config,
            )?)
        } else {
            None
        };
        Ok(Self {
            task: s.task,
            skipped: Default::default(),
            train,
            eval,
            vqa_test,
            vqa_test_missing: if s.task == Task::Vqa {
                vqa_test_missing
            } else {
                Vec::new()
            },
        })
    }
}

impl LoaderData {
    fn count_skipped(&self, b: &data::Batch) {
        self.skipped
            .fetch_add(b.skipped_images, std::sync::atomic::Ordering::Relaxed);
    }
}

/// From the loader's collated batch to the model's.
fn to_model_batch(task: Task, b: data::Batch) -> Result<Batch> {
    let image = match (b.image, &b.image_0) {
        (Some(image), _) => image,
        (None, Some(image_0)) => image_0.shallow_clone(),
        (None, None) => return Err(InputError::NoImages.into()),
    };
    let mut out = Batch::new(b.text.ids, b.text.masks, image);
    out.text_ids_mlm = Some(b.text.ids_mlm);
    out.text_labels_mlm = Some(b.text.labels_mlm);
    out.false_image = b.false_images.into_iter().next();
    out.image_1 = b.image_1;
    out.vqa_targets = b.vqa_targets;
    out.labels = match task {
        Task::Nlvr2 => b.nlvr2_labels,
        Task::Snli => b.snli_labels,
        _ => None,
    };
    out.img_index = Some(b.img_index);
    if !b.false_texts.is_empty() {
        let ids: Vec<_> = b
            .false_texts
            .iter()
            .map(|t| t.ids.shallow_clone())
            .collect();
        let masks: Vec<_> = b
            .false_texts
            .iter()
            .map(|t| t.masks.shallow_clone())
            .collect();
        out.false_text_ids = Some(tch::Tensor::stack(&ids, 1));
        out.false_text_masks = Some(tch::Tensor::stack(&masks, 1));
    }
    Ok(out)
}

impl TaskData for LoaderData {
    fn train_batches_per_epoch(&self) -> usize {
        self.train.batches_per_epoch()
    }

    fn train_epoch(
        &self,
        epoch: u64,
        start: usize,
    ) -> Box<dyn Iterator<Item = Result<Batch>> + '_> {
        let task = self.task;
        let iter = self.train.resume(LoaderPosition {
            epoch,
            batch: start,
        });
        Box::new(iter.map(move |b| {
            b.map_err(EngineError::from).and_then(|b| {
                self.count_skipped(&b);
                to_model_batch(task, b)
            })
        }))
    }

    fn eval_batches(&self) -> Box<dyn Iterator<Item = Result<(Split, Batch)>> + '_> {
        let task = self.task;
        Box::new(self.eval.iter().flat_map(move |(split, loader)| {
            let split = *split;
            loader.epoch(0).map(move |b| {
                b.map_err(EngineError::from)
                    .and_then(|b| {
                        self.count_skipped(&b);
                        to_model_batch(task, b)
                    })
                    .map(|b| (split, b))
            })
        }))
    }

    fn skipped_images(&self) -> usize {
        self.skipped.load(std::sync::atomic::Ordering::Relaxed)
    }

    fn vqa_test(&self) -> Result<TestQuestions<'_>> {
        let Some(test) = &self.vqa_test else {
            return Ok(if self.vqa_test_missing.is_empty() {
                TestQuestions::None
            } else {
                TestQuestions::Missing(self.vqa_test_missing.clone())
            });
        };
        let known: Vec<&ViltDataset> = std::iter::once(&self.train)
            .chain(self.eval.iter().map(|(_, l)| l))
            .map(|l| l.pipeline().dataset.as_ref())
            .collect();
        let id2answer = super::predictions::id2answer(&known)?;
        let task = self.task;
        let batches = test.epoch(0).map(move |b| {
            b.map_err(EngineError::from).and_then(|b| {
                self.count_skipped(&b);
                let ids = b.question_ids.clone();
                to_model_batch(task, b).map(|batch| (ids, batch))
            })
        });
        Ok(TestQuestions::Ready(VqaTest {
            id2answer,
            questions: test.pipeline().dataset.len(),
            batches: Box::new(batches),
        }))
    }
}
