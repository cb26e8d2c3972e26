//! The training loop of one run: build the model, resume or initialise it, train with gradient
//! accumulation, evaluate, checkpoint, and report everything as [`Event`]s.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc::Sender;
use std::sync::Arc;
use std::time::{Duration, Instant};

use experiments::experts::{HubEnv, Loads};
use experiments::Settings;
use tch::{nn, Tensor};

use super::checkpoint::{self, LoopState};
use super::eval::{evaluate, Evaluation};
use super::events::{Event, FailureClass, Outcome};
use super::metrics::{accumulate, weighted_means};
use super::optim::{Algorithm, OptimConfig, Optimizer};
use super::predictions;
use super::schedule::Schedule;
use super::source::{OnDevice, TaskData, TestQuestions};
use crate::device::{device_name, resolve_device};
use crate::error::{CheckpointError, InputError};
use crate::model::objectives::{compute_task, total_loss, Split};
use crate::model::{ModelConfig, TowerModel};
use crate::perf::profile::Recording;
use crate::perf::system::SystemSampler;
use crate::perf::{self, Shapes, StepMeter};
use crate::weights::Mismatches;
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
    /// What the run's identity pinned it to load (the experts' commits or digests); empty:
    /// whatever the cache's `refs/main` holds.
    pub loads: Loads,
    /// Where the experts are looked up and downloaded from (`HF_HUB_CACHE`, `HF_ENDPOINT`,
    /// `HF_TOKEN`, `HF_HUB_OFFLINE`).
    pub hub: HubEnv,
}

impl TrainJob {
    pub fn checkpoint_dir(&self) -> PathBuf {
        self.run_dir.join("checkpoints")
    }
}

/// Runs one training job on the given data to its end, sending events as it goes. Never panics
/// on bad input: every problem ends the run as `Failed` with a class and a message, and a
/// panic inside libtorch (tch's infallible calls panic on any libtorch error) is caught here,
/// so an allocation failure anywhere in the step is classed `oom` like a returned one.
pub fn run_with_data(
    job: &TrainJob,
    data: &dyn TaskData,
    events: &Sender<Event>,
    cancel: &AtomicBool,
) -> Outcome {
    let mut step = 0;
    let mut skipped_reported = 0;
    let result =
        crate::panic::catch(|| train(job, data, events, cancel, &mut step, &mut skipped_reported));
    // Corrupt images skipped since the last epoch's line (a run that ends before its epoch
    // does would otherwise never say so).
    let skipped = data.skipped_images();
    if skipped > skipped_reported {
        let _ = events.send(Event::Log {
            message: format!("{skipped} corrupt images skipped in this attempt"),
        });
    }
    let outcome = match result {
        Ok(outcome) => outcome,
        Err(e) => Outcome::Failed {
            step,
            class: e.failure_class(),
            message: e.to_string(),
        },
    };
    send_end(events, &outcome);
    outcome
}

/// The last event of a run (or a scoring): `Finished`, `Cancelled` or `Failed`.
pub(crate) fn send_end(events: &Sender<Event>, outcome: &Outcome) {
    let _ = events.send(outcome.to_event());
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
    skipped_reported: &mut usize,
) -> Result<Outcome> {
    let s = &job.settings;
    let device = resolve_device(&s.device)?;
    let on_device = OnDevice {
        inner: data,
        device,
    };
    let data: &dyn TaskData = &on_device;
    let experts = super::init::experts(job, events)?;
    let cfg = ModelConfig::from_settings(s)?
        .with_experts(experts.vision_config(), experts.text_config())?;
    tch::manual_seed(s.seed as i64);
    let mut vs = nn::VarStore::new(device);
    let model = TowerModel::new(&vs.root(), &cfg)?;

    let accum = (s.batch_size / s.per_gpu_batchsize.max(1)).max(1) as u64;
    let per_epoch = data.train_batches_per_epoch() as u64;
    if per_epoch == 0 {
        return Err(InputError::EmptyTrainingSet.into());
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
    let algorithm =
        Algorithm::from_optim_type(&s.optim_type).ok_or_else(|| EngineError::Setting {
            key: "optim_type",
            detail: format!("expected adamw, adam or sgd, found \"{}\"", s.optim_type),
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
        metric: None,
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
            return Err(CheckpointError::ForeignRun {
                dir,
                found: ck.state.settings_hash,
                expected: job.run_hash.clone(),
            }
            .into());
        }
        copy_named(&vs, &ck.model, &dir)?;
        opt.load_state(ck.state.optimizer_step, &ck.optimizer)
            .map_err(|mismatches| CheckpointError::Mismatch {
                dir: dir.clone(),
                what: "the optimiser state",
                mismatches,
            })?;
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
        super::init::initialise(&mut vs, job, &experts, events)?;
    }
    *step_out = state.step;
    let _ = events.send(Event::Started {
        total_steps,
        device: device_name(device),
        resumed_at,
    });
    if state.step >= total_steps {
        // Finished before; the predictions may not have been written yet.
        write_vqa_predictions(job, &model, &vs, data, &state, events, false)?;
        prune_checkpoints(job, true, events)?;
        return Ok(Outcome::Finished { step: state.step });
    }

    let objectives = s.objectives();
    // MFU's denominator, looked up once (the name comes from nvidia-smi on CUDA only).
    let peak = perf::peak_for(
        device,
        gpu_name(device).as_deref(),
        s.precision,
        s.peak_tflops,
    );
    // System metrics on a thread of their own, tagged with the latest step; joined when the
    // loop returns, so no sample comes after the run's last event.
    let step_now = Arc::new(AtomicU64::new(state.step));
    let _sampler = (s.system_interval_s > 0.0).then(|| {
        SystemSampler::start(
            Duration::from_secs_f64(s.system_interval_s),
            device,
            Arc::clone(&step_now),
            events.clone(),
        )
    });
    let mut profile = Profile {
        left: u64::try_from(s.profile_steps).unwrap_or(0),
        recording: None,
    };
    let mut meter = StepMeter::default();
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
            if micro_in_step == 0 {
                profile.before_step(state.step + 1, device, events);
            }
            meter.waiting();
            let t_wait = Instant::now();
            let Some(batch) = batches.next() else { break };
            let batch = batch?;
            waited += t_wait.elapsed().as_secs_f64();
            let t_busy = Instant::now();
            let micro = epoch * per_epoch + index;
            tch::manual_seed(micro_seed(s.seed, micro));
            let outputs = compute_task(&model, &objectives, &batch, Split::Train)?;
            let loss = total_loss(&outputs).ok_or(InputError::NoLoss)?;
            let value = loss.f_double_value(&[])?;
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
            (loss / accum as f64).f_backward()?;
            let shapes = Shapes::of(&batch);
            meter.micro_batch(
                shapes.batch.max(0) as u64,
                perf::flops::training_per_sample(&cfg, &objectives, shapes),
            );
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
            step_now.store(state.step, Ordering::Relaxed);
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
            metrics.extend(meter.finish(peak));
            let _ = events.send(Event::Step {
                step: state.step,
                metrics,
            });
            let done = state.step >= total_steps;
            let stopping = done || cancel.load(Ordering::Relaxed);
            profile.after_step(state.step, stopping, &job.run_dir, events);

            let val_due = s.val_check_steps > 0 && state.step % s.val_check_steps as u64 == 0;
            if done {
                send_train_epoch(&objectives, &mut state, events);
            }
            if val_due || done {
                evaluate_and_checkpoint(job, &model, &vs, &opt, data, &mut state, events)?;
            }
            if done {
                write_vqa_predictions(job, &model, &vs, data, &state, events, true)?;
                prune_checkpoints(job, true, events)?;
                return Ok(Outcome::Finished { step: state.step });
            }
            if cancel.load(Ordering::Relaxed) {
                if !val_due {
                    state.metric = None;
                    save_checkpoint(job, &vs, &opt, &state, events)?;
                }
                return Ok(Outcome::Cancelled { step: state.step });
            }
        }
        // End of epoch: its evaluation and checkpoint are not the next step's time.
        meter.pause();
        let skipped = data.skipped_images();
        if skipped > *skipped_reported {
            let _ = events.send(Event::Log {
                message: format!("epoch {epoch}: {skipped} corrupt images skipped so far"),
            });
            *skipped_reported = skipped;
        }
        send_train_epoch(&objectives, &mut state, events);
        state.epoch = epoch + 1;
        state.batch_in_epoch = 0;
        if s.val_check_steps <= 0 {
            evaluate_and_checkpoint(job, &model, &vs, &opt, data, &mut state, events)?;
        }
    }
}

/// `profile_steps`: the next steps still to record and the recording in progress.
struct Profile {
    left: u64,
    recording: Option<Recording>,
}

impl Profile {
    /// Starts recording before step `step` when steps are left to record.
    fn before_step(&mut self, step: u64, device: tch::Device, events: &Sender<Event>) {
        if self.left == 0 || self.recording.is_some() {
            return;
        }
        match Recording::start(step, device.is_cuda()) {
            Ok(r) => self.recording = Some(r),
            Err(e) => {
                self.left = 0;
                let _ = events.send(Event::Log {
                    message: format!("profile_steps: no profile: {e}"),
                });
            }
        }
    }

    /// After step `step`: writes the trace once the steps asked for are recorded, or now when
    /// the run `stopping` (its last step, or a stop request).
    fn after_step(&mut self, step: u64, stopping: bool, run_dir: &Path, events: &Sender<Event>) {
        let Some(first) = self.recording.as_ref().map(Recording::first) else {
            return;
        };
        if step + 1 - first < self.left && !stopping {
            return;
        }
        self.left = 0;
        let Some(recording) = self.recording.take() else {
            return;
        };
        let message = match recording.finish(run_dir, step) {
            Ok(path) => format!(
                "profile of steps {first}-{step} written to {} (open it in Perfetto, \
                 https://ui.perfetto.dev, or chrome://tracing)",
                path.display()
            ),
            Err(e) => {
                format!("profile_steps: the profile of steps {first}-{step} was not written: {e}")
            }
        };
        let _ = events.send(Event::Log { message });
    }
}

/// The CUDA device's name as `nvidia-smi` reports it (the peak table's key); none on the CPU.
fn gpu_name(device: tch::Device) -> Option<String> {
    match device {
        tch::Device::Cuda(i) => Some(crate::runtime::cuda_properties(i).0),
        _ => None,
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
    state.metric = Some(the_metric);
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
/// `rewrite = false` keeps an existing file (a finished run started again). A graceful stop
/// (Ctrl-C, SIGTERM, `cancel`) does not interrupt it: training is over, and a run whose every
/// step is done is finished, not cancelled. Returns `true` (kept for its callers' tests).
pub(crate) fn write_vqa_predictions(
    job: &TrainJob,
    model: &TowerModel,
    vs: &nn::VarStore,
    data: &dyn TaskData,
    state: &LoopState,
    events: &Sender<Event>,
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
    let context = |e: EngineError| EngineError::Predictions {
        file: predictions::SUBMISSION_FILE,
        source: Box::new(e),
    };
    let step = match state.best_step {
        Some(best) if best != state.step => {
            let dir = job.checkpoint_dir().join(format!("step-{best}"));
            if dir.join("model.safetensors").is_file() {
                let model = checkpoint::load_model(&dir).map_err(context)?;
                copy_named(vs, &model, &dir).map_err(context)?;
                best
            } else {
                log(format!(
                    "the best checkpoint (step {best}) is not kept (`save_top_k` = {}): VQA \
                     test predictions use the last weights",
                    job.settings.save_top_k
                ));
                state.step
            }
        }
        Some(_) => state.step,
        None => {
            log("no best checkpoint recorded: VQA test predictions use the last weights".into());
            state.step
        }
    };
    let questions = test.questions;
    let never = AtomicBool::new(false);
    let Some(rows) = predictions::predict(model, test, &never).map_err(context)? else {
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
    prune_checkpoints(job, false, events)
}

/// Applies the run's retention policy (`save_top_k`, `save_last`) to its checkpoint folder.
fn prune_checkpoints(job: &TrainJob, ended: bool, events: &Sender<Event>) -> Result<()> {
    let removed = checkpoint::prune(
        &job.checkpoint_dir(),
        checkpoint::Retention::of(&job.settings),
        ended,
    )?;
    if !removed.is_empty() {
        let steps: Vec<String> = removed.iter().map(|s| format!("step-{s}")).collect();
        let _ = events.send(Event::Log {
            message: format!(
                "removed checkpoint(s) {} (keeping the newest and the best {} by val/the_metric)",
                steps.join(", "),
                job.settings.save_top_k
            ),
        });
    }
    Ok(())
}

/// Copies our own checkpoint's tensors into the VarStore when resuming: every variable must be
/// present with its shape, and nothing may be left over.
fn copy_named(vs: &nn::VarStore, tensors: &[(String, Tensor)], source: &Path) -> Result<()> {
    let mut vars = vs.variables();
    let mut mismatches = Mismatches::default();
    for (name, src) in tensors {
        match vars.remove(name) {
            Some(mut dst) if dst.size() == src.size() => {
                tch::no_grad(|| dst.f_copy_(src))?;
            }
            Some(dst) => mismatches.shapes.push(crate::weights::ShapeMismatch {
                key: name.clone(),
                expected: dst.size(),
                found: src.size(),
            }),
            None => mismatches.unused.push(name.clone()),
        }
    }
    mismatches.missing = vars.into_keys().collect();
    mismatches.missing.sort();
    if !mismatches.is_empty() {
        return Err(CheckpointError::Mismatch {
            dir: source.to_path_buf(),
            what: "the model",
            mismatches,
        }
        .into());
    }
    Ok(())
}

/// Runs one training job on the ViLT Arrow files its settings name (see
/// [`super::data_source::LoaderData`]). Data errors end the run as `Failed` like any other.
pub fn run(job: &TrainJob, events: &Sender<Event>, cancel: &AtomicBool) -> Outcome {
    // A run that starts from the experts reads their tokenizer.
    let opened = crate::panic::catch(|| {
        super::init::experts(job, events).and_then(|experts| {
            super::data_source::LoaderData::open_with_tokenizer(&job.settings, experts.tokenizer())
        })
    });
    match opened {
        Ok(data) => run_with_data(job, &data, events, cancel),
        Err(e) => {
            let class = e.failure_class();
            let message = e.to_string();
            let _ = events.send(Event::Failed {
                step: 0,
                class,
                message: message.clone(),
            });
            Outcome::Failed {
                step: 0,
                class,
                message,
            }
        }
    }
}
