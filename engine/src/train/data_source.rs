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
    /// `None` when only evaluating a checkpoint.
    train: Option<Loader>,
    /// One loader per evaluation table, with the split its metrics are logged under.
    eval: Vec<(Split, Loader)>,
    /// The tables VQA's `id2answer` is read from (the training and validation tables).
    vocabulary: Vec<Arc<ViltDataset>>,
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
    match experiments::vqa_answer_count(dir).map_err(crate::data::DataError::from)? {
        Some(n) if n as i64 != s.vqav2_label_size => Err(EngineError::AnswerCount {
            label_size: s.vqav2_label_size,
            answers: n,
            vocabulary: experiments::answers::AnswerVocab::path(dir),
        }),
        _ => Ok(()),
    }
}

/// What a [`LoaderData`] is opened for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Purpose {
    /// Training: the training stream, the validation pass, VQA's test questions.
    Train,
    /// Scoring a checkpoint on the validation pass, exactly as training evaluates.
    EvalVal,
    /// Scoring a checkpoint on the test tables (VQA: its answers for the evaluation server).
    EvalTest,
}

impl LoaderData {
    /// The loaders of a training run, tokenizing with [`tokenizer_path`].
    pub fn open(s: &Settings) -> Result<Self> {
        Self::open_for(s, Purpose::Train, None)
    }

    /// The loaders of a training run, tokenizing with `tokenizer` (a `tokenizer.json`) when
    /// given.
    pub fn open_with_tokenizer(s: &Settings, tokenizer: Option<PathBuf>) -> Result<Self> {
        Self::open_for(s, Purpose::Train, tokenizer)
    }

    /// The loaders that score a checkpoint on `split`: the validation pass exactly as a
    /// training run with these settings evaluates (same tables, transforms, batches and
    /// order), or the test tables with their metrics under `test/`. No training table is read,
    /// except VQA's (with its validation tables) for the answer vocabulary of test answers.
    /// `tokenizer` as in [`Self::open_with_tokenizer`].
    pub fn open_eval(
        s: &Settings,
        split: experiments::EvalSplit,
        tokenizer: Option<PathBuf>,
    ) -> Result<Self> {
        let purpose = match split {
            experiments::EvalSplit::Val => Purpose::EvalVal,
            experiments::EvalSplit::Test => Purpose::EvalTest,
        };
        Self::open_for(s, purpose, tokenizer)
    }

    fn open_for(s: &Settings, purpose: Purpose, tokenizer: Option<PathBuf>) -> Result<Self> {
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
        let vqa_test_answers = s.task == Task::Vqa && purpose == Purpose::EvalTest;
        let train = if purpose == Purpose::Train {
            Some(Loader::new(
                pipeline(&train_names, &train_transform)?,
                LoaderConfig {
                    batch_size: s.per_gpu_batchsize.max(1),
                    shuffle: true,
                    // The reference keeps a last partial batch; dropping it keeps ITM's two
                    // halves and MLM's masks non-empty (a one-sample batch may mask nothing:
                    // NaN loss).
                    drop_last: true,
                    seed: s.seed,
                    num_workers: s.num_workers,
                    prefetch: 2,
                },
            )?)
        } else {
            None
        };
        let mut vocabulary: Vec<Arc<ViltDataset>> =
            train.iter().map(|l| l.pipeline().dataset.clone()).collect();
        if vqa_test_answers {
            vocabulary.push(Arc::new(ViltDataset::open(dir, &train_names, kind)?));
        }
        let eval_config = LoaderConfig {
            batch_size: s.per_gpu_eval_batchsize.max(1),
            shuffle: false,
            drop_last: false,
            seed: s.seed,
            num_workers: s.num_workers,
            prefetch: 2,
        };
        let mut eval = Vec::new();
        let eval_tables = match purpose {
            Purpose::Train | Purpose::EvalVal => s.tables(TableSplit::Val),
            // VQA's test questions have no answers to score: they are answered below.
            Purpose::EvalTest if vqa_test_answers => Vec::new(),
            Purpose::EvalTest => s.tables(TableSplit::Test),
        };
        for name in expand_tables(dir, &eval_tables) {
            // NLVR2 and SNLI-VE evaluate dev and test in one pass, told apart by table name,
            // on either split (their reference val and test tables are both dev + test).
            let split = if matches!(s.task, Task::Nlvr2 | Task::Snli) {
                if name.contains("test") {
                    Split::Test
                } else {
                    Split::Val
                }
            } else if purpose == Purpose::EvalTest {
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
        if purpose == Purpose::Train {
            vocabulary.extend(eval.iter().map(|(_, l)| l.pipeline().dataset.clone()));
        } else if vqa_test_answers {
            let val_names = expand_tables(dir, &s.tables(TableSplit::Val));
            vocabulary.push(Arc::new(ViltDataset::open(dir, &val_names, kind)?));
        }
        let test_names = expand_tables(dir, &s.tables(TableSplit::Test));
        let vqa_test_missing: Vec<String> = test_names
            .iter()
            .map(|n| dir.join(format!("{n}.arrow")))
            .filter(|p| !p.is_file())
            .map(|p| p.display().to_string())
            .collect();
        let test_present = !test_names.is_empty() && vqa_test_missing.is_empty();
        let answers_test = purpose == Purpose::Train || vqa_test_answers;
        let vqa_test = if s.task == Task::Vqa && test_present && answers_test {
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
            vocabulary,
            vqa_test,
            vqa_test_missing: if s.task == Task::Vqa && answers_test {
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
        self.train.as_ref().map_or(0, Loader::batches_per_epoch)
    }

    fn train_epoch(
        &self,
        epoch: u64,
        start: usize,
    ) -> Box<dyn Iterator<Item = Result<Batch>> + '_> {
        let task = self.task;
        let Some(train) = &self.train else {
            return Box::new(std::iter::empty());
        };
        let iter = train.resume(LoaderPosition {
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
        let known: Vec<&ViltDataset> = self.vocabulary.iter().map(Arc::as_ref).collect();
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
