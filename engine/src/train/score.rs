//! Scoring a checkpoint (the reference's `test_only`): the model its settings describe, with the
//! keys the user left to the weights read from them, the weights loaded strictly, and then the
//! very evaluation pass the training loop runs ([`super::eval::evaluate`], seeded by the run's
//! seed) on the same loaders. A checkpoint written by a training run therefore scores exactly
//! what that run logged at that step. On the test split VQA answers every question for the
//! evaluation server (`vqa_submit.json`), as the reference's `vqa_test_wrapup`.

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::Sender;

use experiments::{EvalSplit, Settings, Task};
use tch::nn;

use super::data_source::LoaderData;
use super::eval::{evaluate, EvalOptions, Evaluation};
use super::events::Outcome;
use super::events::{Event, FailureClass};
use super::predictions;
use super::run::{recall_options, send_end};
use super::source::{OnDevice, TaskData, TestQuestions};
use crate::device::resolve_device;
use crate::model::objectives::Split;
use crate::model::{ModelConfig, TowerModel};
use crate::weights::{self, LoadOptions, WeightsError};
use crate::EngineError;

/// One checkpoint to score.
#[derive(Debug, Clone)]
pub struct ScoreJob {
    pub settings: Settings,
    /// The checkpoint: a TowerLab step, run or checkpoints folder, a `.safetensors`, Lightning
    /// `.ckpt` or torch `.pt`/`.bin` file, or a Hugging Face folder.
    pub weights: PathBuf,
    pub split: EvalSplit,
    /// Settings keys the user chose; every other key the weights determine (sizes, fusion
    /// design, managers, task-head shapes) is read from them.
    pub explicit: Vec<String>,
    /// The eval run's folder (`vqa_submit.json` goes there).
    pub run_dir: PathBuf,
}

/// Why a checkpoint could not be scored.
#[derive(Debug, thiserror::Error)]
pub enum ScoreError {
    #[error(transparent)]
    Weights(#[from] WeightsError),
    #[error(transparent)]
    Engine(#[from] EngineError),
    #[error(
        "{path}: the checkpoint has no {task} head (missing {keys}): it was not fine-tuned for \
         {task}; score it with the task it was trained for"
    )]
    MissingHead {
        path: PathBuf,
        task: &'static str,
        keys: String,
    },
    #[error(
        "nothing to score: the {split} split of {task} reads no table from {root} (check \
         {key} and the data folder)"
    )]
    NoData {
        split: &'static str,
        task: &'static str,
        root: String,
        key: &'static str,
    },
    #[error("VQA test answers: test table(s) not found: {0}")]
    MissingTest(String),
}

/// Scores `job`, reporting through `events` as a training run does (`Started`, `Eval`,
/// `ManagerWeights`, `Predictions`, then `Finished` or `Failed`), everything at step 0.
pub fn score(job: &ScoreJob, events: &Sender<Event>, cancel: &AtomicBool) -> Outcome {
    let outcome = match score_inner(job, events, cancel) {
        Ok(true) => Outcome::Finished { step: 0 },
        Ok(false) => Outcome::Cancelled { step: 0 },
        Err(e) => {
            let class = match &e {
                ScoreError::Engine(e) => e.failure_class(),
                ScoreError::Weights(WeightsError::Torch {
                    source: tch::TchError::Torch(m),
                    ..
                }) if crate::error::is_out_of_memory(m) => FailureClass::Oom,
                _ => FailureClass::Error,
            };
            Outcome::Failed {
                step: 0,
                class,
                message: e.to_string(),
            }
        }
    };
    send_end(events, &outcome);
    outcome
}

/// Everything of `job` that can be wrong before scoring starts, checked on the CPU: the weights
/// read, fit the model and hold the task's head; the data tables open (and VQA's test tables
/// exist for the test split). Returns the load's description. `towerlab eval` calls it first,
/// so that a bad checkpoint or data folder stores nothing.
pub fn check(job: &ScoreJob) -> Result<String, ScoreError> {
    let mut job = job.clone();
    job.settings.device = "cpu".into();
    let (tx, rx) = std::sync::mpsc::channel();
    let (_vs, _model, s) = load_model(&job, &tx)?;
    let loaders = LoaderData::open_eval(&s, job.split, eval_tokenizer(&s, &tx)?)?;
    drop(tx);
    if s.task == Task::Vqa && job.split == EvalSplit::Test {
        if let TestQuestions::Missing(paths) = loaders.vqa_test()? {
            return Err(ScoreError::MissingTest(paths.join(", ")));
        }
    }
    let lines: Vec<String> = rx
        .try_iter()
        .filter_map(|e| match e {
            Event::Log { message } => Some(message),
            _ => None,
        })
        .collect();
    Ok(lines.join("\n"))
}

/// The tokenizer of a checkpoint trained from the pretrained experts (a released checkpoint on
/// the `base` preset, or a run of `pretrained_experts = true`): the text expert's, as its
/// training run read it (from the hub cache, else downloaded unless `HF_HUB_OFFLINE=1`), not a
/// `tokenizer.json` that happens to lie beside the data.
fn eval_tokenizer(s: &Settings, events: &Sender<Event>) -> Result<Option<PathBuf>, EngineError> {
    if !s.pretrained_experts {
        return Ok(None);
    }
    let mut log_line = |message: String| log(events, message);
    let found = crate::hub::ensure_expert(
        experiments::experts::Role::Text,
        &s.tokenizer,
        &experiments::experts::HubEnv::from_process(),
        None,
        &mut crate::hub::Progress::Log(&mut log_line),
    )?;
    Ok(Some(found.dir.join("tokenizer.json")))
}

fn log(events: &Sender<Event>, message: String) {
    let _ = events.send(Event::Log { message });
}

/// The model of `settings` with the checkpoint loaded: every variable from the file, by name
/// and shape (position embeddings of another resolution resized as the reference does), the
/// task head included; heads the file has beyond the task's are left unused and listed.
fn load_model(
    job: &ScoreJob,
    events: &Sender<Event>,
) -> Result<(nn::VarStore, TowerModel, Settings), ScoreError> {
    let file = experiments::weights_file(&job.weights);
    let ckpt = weights::read(&file)?;
    let (settings, inferred) =
        weights::settings_from_weights(&job.settings, &job.explicit, std::slice::from_ref(&ckpt))?;
    if !inferred.is_empty() {
        let list: Vec<String> = inferred
            .iter()
            .map(|(k, v)| format!("{k} = {}", experiments::grid::display_value(v)))
            .collect();
        log(
            events,
            format!("settings read from the weights: {}", list.join(", ")),
        );
    }
    let device = resolve_device(&settings.device).map_err(EngineError::from)?;
    let cfg = ModelConfig::from_settings(&settings).map_err(EngineError::from)?;
    let mut vs = nn::VarStore::new(device);
    let model = TowerModel::new(&vs.root(), &cfg)?;
    let report = weights::load_into(&mut vs, &ckpt, &LoadOptions::partial())?;
    if !report.missing_heads.is_empty() {
        return Err(ScoreError::MissingHead {
            path: ckpt.path.clone(),
            task: settings.task.as_str(),
            keys: report.missing_heads.join(", "),
        });
    }
    let mut message = format!(
        "scoring {} ({}, {} tensors): {} loaded",
        ckpt.path.display(),
        ckpt.format.as_str(),
        ckpt.tensors.len(),
        report.loaded
    );
    if !report.unused_heads.is_empty() {
        message.push_str(&format!(
            ", unused heads: {}",
            report.unused_heads.join(", ")
        ));
    }
    if !report.adapted.is_empty() {
        message.push_str(&format!(", adapted: {}", report.adapted.join(", ")));
    }
    log(events, message);
    Ok((vs, model, settings))
}

fn score_inner(
    job: &ScoreJob,
    events: &Sender<Event>,
    cancel: &AtomicBool,
) -> Result<bool, ScoreError> {
    let (vs, model, s) = load_model(job, events)?;
    let device = vs.device();
    let _ = events.send(Event::Started {
        total_steps: 0,
        device: crate::device::device_name(device),
        resumed_at: None,
    });
    let loaders = LoaderData::open_eval(&s, job.split, eval_tokenizer(&s, events)?)?;
    let data = OnDevice {
        inner: &loaders,
        device,
    };
    if cancel.load(Ordering::Relaxed) {
        return Ok(false);
    }
    if s.task == Task::Vqa && job.split == EvalSplit::Test {
        return answer_vqa_test(job, &s, &model, &data, events, cancel);
    }
    let split = match job.split {
        EvalSplit::Val => Split::Val,
        EvalSplit::Test => Split::Test,
    };
    let Evaluation {
        mut metrics,
        the_metric,
        manager_weights,
    } = evaluate(
        &model,
        &s.objectives(),
        &data,
        EvalOptions {
            recall: recall_options(&s),
            split,
            seed: s.seed,
        },
    )?;
    if metrics.is_empty() {
        return Err(ScoreError::NoData {
            split: job.split.as_str(),
            task: s.task.as_str(),
            root: s.data_root.clone(),
            key: match job.split {
                EvalSplit::Val => "val_tables",
                EvalSplit::Test => "test_tables",
            },
        });
    }
    let skipped = data.skipped_images();
    if skipped > 0 {
        log(events, format!("{skipped} corrupt images skipped"));
    }
    metrics.push((format!("{}/the_metric", split.as_str()), the_metric));
    let _ = events.send(Event::Eval { step: 0, metrics });
    if let Some(weights) = manager_weights {
        let _ = events.send(Event::ManagerWeights { step: 0, weights });
    }
    Ok(true)
}

/// VQA's test questions answered by the checkpoint, written for the evaluation server.
fn answer_vqa_test(
    job: &ScoreJob,
    s: &Settings,
    model: &TowerModel,
    data: &dyn TaskData,
    events: &Sender<Event>,
    cancel: &AtomicBool,
) -> Result<bool, ScoreError> {
    let test = match data.vqa_test()? {
        TestQuestions::Ready(test) => test,
        TestQuestions::Missing(paths) => return Err(ScoreError::MissingTest(paths.join(", "))),
        TestQuestions::None => {
            return Err(ScoreError::NoData {
                split: "test",
                task: s.task.as_str(),
                root: s.data_root.clone(),
                key: "test_tables",
            })
        }
    };
    let questions = test.questions;
    let Some(rows) = predictions::predict(model, test, cancel)? else {
        return Ok(false);
    };
    if rows.len() < questions {
        log(
            events,
            format!(
                "{} of {questions} test questions have no answer (their images could not be \
                 read); the evaluation server expects every question",
                questions - rows.len()
            ),
        );
    }
    let path = predictions::write_submission(&job.run_dir, &rows)?;
    let _ = events.send(Event::Predictions {
        step: 0,
        path,
        count: rows.len(),
    });
    Ok(true)
}
