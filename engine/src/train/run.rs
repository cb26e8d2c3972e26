//! The training loop of one run: build the model, resume or initialise it, train with gradient
//! accumulation, evaluate, checkpoint, and report everything as [`Event`]s.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::Sender;
use std::time::Instant;

use experiments::Settings;
use tch::{nn, Device, Tensor};

use super::checkpoint::{self, LoopState};
use super::eval::{evaluate, Evaluation};
use super::events::{Event, FailureClass};
use super::metrics::{accumulate, weighted_means};
use super::optim::{Algorithm, OptimConfig, Optimizer};
use super::predictions;
use super::schedule::Schedule;
use super::source::{OnDevice, TaskData, TestQuestions};
use crate::model::objectives::{compute_task, total_loss, Split};
use crate::model::{ModelConfig, TowerModel};
use crate::{EngineError, Result};

/// Everything one run needs.
#[derive(Debug, Clone)]
pub struct TrainJob {
    pub settings: Settings,
    /// The run's identity hash: recorded in checkpoints so a checkpoint is only resumed by the
    /// run that wrote it.
    pub run_hash: String,
    /// This run's folder: `checkpoints/` goes there.
    pub run_dir: PathBuf,
    /// Weights to start from (the VLP arm: the pre-training run's checkpoint folder or a
    /// `.safetensors` file). Heads absent from it keep their initialisation.
    pub init_from: Option<PathBuf>,
    /// Continue from the newest checkpoint in `run_dir` when there is one.
    pub resume: bool,
}

/// How a run ended.
#[derive(Debug, Clone, PartialEq)]
pub enum Outcome {
    Finished {
        step: u64,
    },
    Cancelled {
        step: u64,
    },
    Failed {
        step: u64,
        class: FailureClass,
        message: String,
    },
}

impl TrainJob {
    pub fn checkpoint_dir(&self) -> PathBuf {
        self.run_dir.join("checkpoints")
    }
}

/// Picks the device named by the `device` setting.
pub fn resolve_device(name: &str) -> Result<Device> {
    match name {
        "auto" => Ok(Device::cuda_if_available()),
        "cpu" => Ok(Device::Cpu),
        "cuda" => Ok(Device::Cuda(0)),
        other => match other.strip_prefix("cuda:").map(str::parse::<usize>) {
            Some(Ok(i)) if (i as i64) < tch::Cuda::device_count() => Ok(Device::Cuda(i)),
            Some(Ok(i)) => Err(EngineError::Invalid(format!(
                "device `cuda:{i}` does not exist ({} CUDA devices)",
                tch::Cuda::device_count()
            ))),
            _ => Err(EngineError::Invalid(format!(
                "device `{other}`: expected `auto`, `cpu` or `cuda:N`"
            ))),
        },
    }
}

fn device_name(d: Device) -> String {
    match d {
        Device::Cpu => "cpu".into(),
        Device::Cuda(i) => format!("cuda:{i}"),
        other => format!("{other:?}").to_lowercase(),
    }
}

/// Runs one training job on the given data to its end, sending events as it goes. Never panics
/// on bad input: every problem ends the run as `Failed` with a class and a message.
pub fn run_with_data(
    job: &TrainJob,
    data: &dyn TaskData,
    events: &Sender<Event>,
    cancel: &AtomicBool,
) -> Outcome {
    let mut step = 0;
    let outcome = match train(job, data, events, cancel, &mut step) {
        Ok(outcome) => outcome,
        Err(e) => {
            let message = e.to_string();
            Outcome::Failed {
                step,
                class: FailureClass::from_message(&message),
                message,
            }
        }
    };
    send_end(events, &outcome);
    outcome
}

/// The last event of a run (or a scoring): `Finished`, or `Failed` (cancelled runs as killed).
pub(crate) fn send_end(events: &Sender<Event>, outcome: &Outcome) {
    let _ = events.send(match outcome {
        Outcome::Finished { step } => Event::Finished { step: *step },
        Outcome::Cancelled { step } => Event::Failed {
            step: *step,
            class: FailureClass::Killed,
            message: "cancelled".into(),
        },
        Outcome::Failed {
            step,
            class,
            message,
        } => Event::Failed {
            step: *step,
            class: *class,
            message: message.clone(),
        },
    });
}

/// Per-micro-batch seed: dropout and manager noise depend only on (seed, micro-batch), so a
/// resumed run draws exactly what the uninterrupted run would have.
fn micro_seed(seed: u64, micro: u64) -> i64 {
    let mut x = seed ^ micro.wrapping_mul(0x9E37_79B9_7F4A_7C15);
    x = (x ^ (x >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    ((x ^ (x >> 31)) >> 1) as i64
}

fn train(
    job: &TrainJob,
    data: &dyn TaskData,
    events: &Sender<Event>,
    cancel: &AtomicBool,
    step_out: &mut u64,
) -> Result<Outcome> {
    let s = &job.settings;
    let device = resolve_device(&s.device)?;
    let on_device = OnDevice {
        inner: data,
        device,
    };
    let data: &dyn TaskData = &on_device;
    let cfg = ModelConfig::from_settings(s).map_err(|e| EngineError::Invalid(e.to_string()))?;
    tch::manual_seed(s.seed as i64);
    let mut vs = nn::VarStore::new(device);
    let model = TowerModel::new(&vs.root(), &cfg)?;

    let accum = (s.batch_size / s.per_gpu_batchsize.max(1)).max(1) as u64;
    let per_epoch = data.train_batches_per_epoch() as u64;
    if per_epoch == 0 {
        return Err(EngineError::Invalid(
            "the training set yields no batch (fewer samples than per_gpu_batchsize?)".into(),
        ));
    }
    let total_steps = if s.max_steps > 0 {
        s.max_steps as u64
    } else {
        (per_epoch * s.max_epoch.max(1) as u64 / accum).max(1)
    };
    let schedule = Schedule::new(
        s.warmup_steps,
        total_steps,
        s.learning_rate,
        s.end_lr,
        s.decay_power,
    );
    let named: Vec<(String, Tensor)> = vs.variables().into_iter().collect();
    let algorithm = Algorithm::from_optim_type(&s.optim_type).ok_or_else(|| {
        EngineError::Invalid(format!(
            "optim_type must be adamw, adam or sgd, found \"{}\"",
            s.optim_type
        ))
    })?;
    let mut opt = Optimizer::new(
        OptimConfig::reference(
            algorithm,
            s.learning_rate,
            s.weight_decay,
            s.lr_mult_head,
            s.lr_mult_cross_modal,
        ),
        named,
    );

    let ckpt_dir = job.checkpoint_dir();
    let mut state = LoopState {
        step: 0,
        epoch: 0,
        batch_in_epoch: 0,
        optimizer_step: 0,
        best_metric: None,
        best_step: None,
        epoch_sums: BTreeMap::new(),
        settings_hash: job.run_hash.clone(),
    };
    let mut resumed_at = None;
    let resume_from = if job.resume {
        checkpoint::latest(&ckpt_dir)?
    } else {
        None
    };
    if let Some(dir) = resume_from {
        let ck = checkpoint::load(&dir)?;
        if ck.state.settings_hash != job.run_hash {
            return Err(EngineError::Invalid(format!(
                "{}: written by run {}, not {}",
                dir.display(),
                ck.state.settings_hash,
                job.run_hash
            )));
        }
        copy_named(&vs, &ck.model, &dir)?;
        opt.load_state(ck.state.optimizer_step, &ck.optimizer)
            .map_err(|e| EngineError::Invalid(format!("{}: {e}", dir.display())))?;
        state = ck.state;
        resumed_at = Some(state.step);
    } else {
        // A fresh start: an earlier attempt's answers are not this run's.
        let stale = job.run_dir.join(predictions::SUBMISSION_FILE);
        if stale.is_file() {
            std::fs::remove_file(&stale).map_err(|source| EngineError::Io {
                path: stale.clone(),
                source,
            })?;
        }
        // `load_path` (e.g. Hugging Face CLIP and RoBERTa for the "without VLP" arm, comma
        // separated), then the VLP checkpoint on top.
        let sources = s
            .load_path
            .split(',')
            .map(str::trim)
            .filter(|p| !p.is_empty())
            .map(PathBuf::from)
            .chain(job.init_from.clone());
        for path in sources {
            let report = init_weights(&mut vs, &path)?;
            let _ = events.send(Event::Log { message: report });
        }
    }
    *step_out = state.step;
    let _ = events.send(Event::Started {
        total_steps,
        device: device_name(device),
        resumed_at,
    });
    if state.step >= total_steps {
        // Finished before; the predictions may not have been written yet.
        if !write_vqa_predictions(job, &model, &vs, data, &state, events, cancel, false)? {
            return Ok(Outcome::Cancelled { step: state.step });
        }
        return Ok(Outcome::Finished { step: state.step });
    }

    let objectives = s.objectives();
    let mut micro_in_step = 0u64;
    let mut sums = super::metrics::WeightedSums::new();
    let mut waited = 0.0f64;
    let mut busy = 0.0f64;
    loop {
        let epoch = state.epoch;
        let start = state.batch_in_epoch as usize;
        let mut batches = data.train_epoch(epoch, start);
        let mut index = start as u64;
        loop {
            let t_wait = Instant::now();
            let Some(batch) = batches.next() else { break };
            let batch = batch?;
            waited += t_wait.elapsed().as_secs_f64();
            let t_busy = Instant::now();
            let micro = epoch * per_epoch + index;
            tch::manual_seed(micro_seed(s.seed, micro));
            let outputs = compute_task(&model, &objectives, &batch, Split::Train)?;
            let loss = total_loss(&outputs)
                .ok_or_else(|| EngineError::Invalid("the task computed no loss".into()))?;
            let value = loss.double_value(&[]);
            if !value.is_finite() {
                return Ok(Outcome::Failed {
                    step: state.step,
                    class: FailureClass::Nan,
                    message: format!(
                        "loss is {value} at step {} (epoch {epoch}, batch {index})",
                        state.step
                    ),
                });
            }
            (loss / accum as f64).backward();
            for o in &outputs {
                accumulate(&mut sums, &o.metrics);
                accumulate(&mut state.epoch_sums, &o.metrics);
            }
            index += 1;
            micro_in_step += 1;
            busy += t_busy.elapsed().as_secs_f64();
            if micro_in_step < accum {
                continue;
            }
            // One optimiser step.
            micro_in_step = 0;
            let factor = schedule.factor(state.step);
            opt.set_lr_factor(factor);
            let grad_norm = if s.gradient_clip_val > 0.0 {
                Some(opt.clip_grad_norm(s.gradient_clip_val))
            } else {
                None
            };
            opt.step();
            opt.zero_grad();
            state.step += 1;
            *step_out = state.step;
            state.epoch = epoch;
            state.batch_in_epoch = index;
            state.optimizer_step = opt.steps_taken();
            let mut metrics: Vec<(String, f64)> = weighted_means(std::mem::take(&mut sums))
                .into_iter()
                .collect();
            metrics.push(("train/lr".into(), s.learning_rate * factor));
            if let Some(n) = grad_norm {
                metrics.push(("train/grad_norm".into(), n));
            }
            if waited + busy > 0.0 {
                metrics.push(("train/data_wait_share".into(), waited / (waited + busy)));
            }
            let _ = events.send(Event::Step {
                step: state.step,
                metrics,
            });

            let done = state.step >= total_steps;
            let val_due = s.val_check_steps > 0 && state.step % s.val_check_steps as u64 == 0;
            if done {
                send_train_epoch(&objectives, &mut state, events);
            }
            if val_due || done {
                evaluate_and_checkpoint(job, &model, &vs, &opt, data, &mut state, events)?;
            }
            if done {
                if !write_vqa_predictions(job, &model, &vs, data, &state, events, cancel, true)? {
                    return Ok(Outcome::Cancelled { step: state.step });
                }
                return Ok(Outcome::Finished { step: state.step });
            }
            if cancel.load(Ordering::Relaxed) {
                if !val_due {
                    save_checkpoint(job, &vs, &opt, &state, events)?;
                }
                return Ok(Outcome::Cancelled { step: state.step });
            }
        }
        // End of epoch.
        let skipped = data.skipped_images();
        if skipped > 0 {
            let _ = events.send(Event::Log {
                message: format!("epoch {epoch}: {skipped} corrupt images skipped so far"),
            });
        }
        send_train_epoch(&objectives, &mut state, events);
        state.epoch = epoch + 1;
        state.batch_in_epoch = 0;
        if s.val_check_steps <= 0 {
            evaluate_and_checkpoint(job, &model, &vs, &opt, data, &mut state, events)?;
        }
    }
}

/// `epoch_wrapup(split = "train")`: the epoch's training metrics as `train/{task}/…_epoch` and
/// `train/the_metric`, at the end of each epoch and where training stops (`max_steps`).
fn send_train_epoch(objectives: &[String], state: &mut LoopState, events: &Sender<Event>) {
    let epoch = weighted_means(std::mem::take(&mut state.epoch_sums));
    if epoch.is_empty() {
        return;
    }
    let mut metrics: Vec<(String, f64)> = epoch
        .iter()
        .map(|(k, v)| (format!("{k}_epoch"), *v))
        .collect();
    metrics.push((
        "train/the_metric".into(),
        super::eval::the_metric(objectives, Split::Train, &epoch),
    ));
    let _ = events.send(Event::Step {
        step: state.step,
        metrics,
    });
}

/// Recall at evaluation, as `get_recall_metric` asks (the re-ranking fuses
/// `per_gpu_eval_batchsize` pairs at a time).
pub(crate) fn recall_options(s: &experiments::Settings) -> Option<super::eval::RecallOptions> {
    s.get_recall_metric.then(|| super::eval::RecallOptions {
        k_test: s.k_test,
        chunk: s.per_gpu_eval_batchsize.max(1) as i64,
    })
}

fn evaluate_and_checkpoint(
    job: &TrainJob,
    model: &TowerModel,
    vs: &nn::VarStore,
    opt: &Optimizer,
    data: &dyn TaskData,
    state: &mut LoopState,
    events: &Sender<Event>,
) -> Result<()> {
    let Evaluation {
        metrics,
        the_metric,
        manager_weights,
    } = evaluate(
        model,
        &job.settings.objectives(),
        data,
        super::eval::EvalOptions {
            recall: recall_options(&job.settings),
            split: Split::Val,
            seed: job.settings.seed,
        },
    )?;
    // NaN never counts as best; a first finite value replaces a NaN.
    if !the_metric.is_nan()
        && state
            .best_metric
            .is_none_or(|b| b.is_nan() || the_metric > b)
    {
        state.best_metric = Some(the_metric);
        state.best_step = Some(state.step);
    }
    let best = state.best_metric.unwrap_or(the_metric);
    let mut metrics = metrics;
    metrics.push(("val/the_metric".into(), the_metric));
    metrics.push(("val/best_the_metric".into(), best));
    let _ = events.send(Event::Eval {
        step: state.step,
        metrics,
    });
    if let Some(weights) = manager_weights {
        let _ = events.send(Event::ManagerWeights {
            step: state.step,
            weights,
        });
    }
    save_checkpoint(job, vs, opt, state, events)
}

/// VQA's submission file from the best checkpoint (the reference tests `best_model_path`).
/// `rewrite = false` keeps an existing file (a finished run started again). Returns `false`
/// when cancelled before the file was written.
#[allow(clippy::too_many_arguments)]
pub(crate) fn write_vqa_predictions(
    job: &TrainJob,
    model: &TowerModel,
    vs: &nn::VarStore,
    data: &dyn TaskData,
    state: &LoopState,
    events: &Sender<Event>,
    cancel: &AtomicBool,
    rewrite: bool,
) -> Result<bool> {
    if !rewrite && job.run_dir.join(predictions::SUBMISSION_FILE).is_file() {
        return Ok(true);
    }
    let log = |message: String| {
        let _ = events.send(Event::Log { message });
    };
    let test = match data.vqa_test()? {
        TestQuestions::None => return Ok(true),
        TestQuestions::Missing(paths) => {
            log(format!(
                "no VQA test predictions: test table(s) not found: {}",
                paths.join(", ")
            ));
            return Ok(true);
        }
        TestQuestions::Ready(test) => test,
    };
    let context = |e: EngineError| {
        EngineError::Invalid(format!(
            "VQA test predictions ({}): {e}",
            predictions::SUBMISSION_FILE
        ))
    };
    let step = match state.best_step {
        Some(best) if best != state.step => {
            let dir = job.checkpoint_dir().join(format!("step-{best}"));
            let model = checkpoint::load_model(&dir).map_err(context)?;
            copy_named(vs, &model, &dir).map_err(context)?;
            best
        }
        Some(_) => state.step,
        None => {
            log("no best checkpoint recorded: VQA test predictions use the last weights".into());
            state.step
        }
    };
    let questions = test.questions;
    let Some(rows) = predictions::predict(model, test, cancel).map_err(context)? else {
        return Ok(false);
    };
    if rows.len() < questions {
        log(format!(
            "VQA test predictions: {} of {questions} questions have no answer (their images \
             could not be read); the evaluation server expects every question",
            questions - rows.len()
        ));
    }
    let path = predictions::write_submission(&job.run_dir, &rows).map_err(context)?;
    let _ = events.send(Event::Predictions {
        step,
        path,
        count: rows.len(),
    });
    Ok(true)
}

fn save_checkpoint(
    job: &TrainJob,
    vs: &nn::VarStore,
    opt: &Optimizer,
    state: &LoopState,
    events: &Sender<Event>,
) -> Result<()> {
    let mut model: Vec<(String, Tensor)> = vs.variables().into_iter().collect();
    model.sort_by(|a, b| a.0.cmp(&b.0));
    let (_, optimizer) = opt.state();
    let path = checkpoint::save(&job.checkpoint_dir(), state, &model, &optimizer)?;
    let _ = events.send(Event::Checkpoint {
        step: state.step,
        path,
    });
    Ok(())
}

/// Copies our own checkpoint's tensors into the VarStore when resuming: every variable must be
/// present with its shape, and nothing may be left over.
fn copy_named(vs: &nn::VarStore, tensors: &[(String, Tensor)], source: &Path) -> Result<()> {
    let mut vars = vs.variables();
    let mut unused = Vec::new();
    let mut problems = Vec::new();
    for (name, src) in tensors {
        match vars.remove(name) {
            Some(mut dst) if dst.size() == src.size() => {
                tch::no_grad(|| dst.copy_(src));
            }
            Some(dst) => problems.push(format!(
                "{name}: shape {:?} in the file, {:?} in the model",
                src.size(),
                dst.size()
            )),
            None => unused.push(name.clone()),
        }
    }
    let mut missing: Vec<String> = vars.into_keys().collect();
    missing.sort();
    if !missing.is_empty() {
        problems.push(format!("missing: {}", missing.join(", ")));
    }
    if !unused.is_empty() {
        problems.push(format!("unused: {}", unused.join(", ")));
    }
    if !problems.is_empty() {
        return Err(EngineError::Invalid(format!(
            "{}: {}",
            source.display(),
            problems.join("; ")
        )));
    }
    Ok(())
}

/// Initialises from checkpoint files through the strict loader (`crate::weights`), in
/// `partial` mode: task heads absent from a file keep their initialisation (the VLP arm starts a
/// VQA head on a pre-training checkpoint), everything else must match by name and shape.
/// A folder is a TowerLab run folder (its newest checkpoint), a Hugging Face model folder, or a
/// checkpoint step folder.
fn init_weights(vs: &mut nn::VarStore, path: &Path) -> Result<String> {
    let file = if path.join("checkpoints").join("last").is_file() {
        checkpoint::latest(&path.join("checkpoints"))?
            .map(|d| d.join("model.safetensors"))
            .unwrap_or_else(|| path.to_path_buf())
    } else if path.join("last").is_file() {
        checkpoint::latest(path)?
            .map(|d| d.join("model.safetensors"))
            .unwrap_or_else(|| path.to_path_buf())
    } else if path.join("state.json").is_file() {
        path.join("model.safetensors")
    } else {
        path.to_path_buf()
    };
    let ckpt = crate::weights::read(&file).map_err(|e| EngineError::Invalid(e.to_string()))?;
    let report = crate::weights::load_into(vs, &ckpt, &crate::weights::LoadOptions::partial())
        .map_err(|e| EngineError::Invalid(e.to_string()))?;
    Ok(format!(
        "initialised {} tensors from {} ({} new head tensors, {} kept, {} adapted)",
        report.loaded,
        file.display(),
        report.missing_heads.len(),
        report.kept.len(),
        report.adapted.len()
    ))
}

/// Runs one training job on the ViLT Arrow files its settings name (see
/// [`super::data_source::LoaderData`]). Data errors end the run as `Failed` like any other.
pub fn run(job: &TrainJob, events: &Sender<Event>, cancel: &AtomicBool) -> Outcome {
    match super::data_source::LoaderData::open(&job.settings) {
        Ok(data) => run_with_data(job, &data, events, cancel),
        Err(e) => {
            let message = e.to_string();
            let _ = events.send(Event::Failed {
                step: 0,
                class: FailureClass::Error,
                message: message.clone(),
            });
            Outcome::Failed {
                step: 0,
                class: FailureClass::Error,
                message,
            }
        }
    }
}
