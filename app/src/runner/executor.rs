//! Executors run one attempt of a run. The local one runs the engine's training loop (or, for
//! an eval run, its scoring of a checkpoint) on a thread of this process; a Slurm executor will
//! submit the same job to a cluster instead.

use std::path::PathBuf;
use std::sync::atomic::AtomicBool;

use experiments::Settings;
use tokio::sync::mpsc::UnboundedSender;

use experiments::run::{Event, Outcome};

/// Everything an executor needs to run one attempt.
#[derive(Debug, Clone)]
pub struct Job {
    /// The run's identity hash (64 hex characters).
    pub hash: String,
    /// Resolved settings, with `device` set to the slot's device when it was `auto`.
    pub settings: Settings,
    /// `<store dir>/runs/<identity short>/`: checkpoints and logs.
    pub run_dir: PathBuf,
    /// The pre-training checkpoint a `vlp = true` run starts from.
    pub init_from: Option<PathBuf>,
    /// Continue from the latest checkpoint in `run_dir/checkpoints`.
    pub resume: bool,
    /// What the run's identity pinned it to load (from its stored identity document).
    pub loads: experiments::experts::Loads,
    /// Intra-op threads this attempt may use (CPU runs share the cores).
    pub threads: usize,
    /// An eval run: the checkpoint it scores and the split (no training).
    pub eval: Option<experiments::EvalTarget>,
}

/// Runs attempts. `execute` blocks until the attempt ends; it is called on a blocking thread.
pub trait Executor: Send + Sync {
    /// The engine version recorded with each attempt.
    fn engine_version(&self) -> String;
    /// Runs `job`, sending events as they happen, and stops (checkpointing) soon after `cancel`
    /// becomes true.
    fn execute(&self, job: &Job, events: &UnboundedSender<Event>, cancel: &AtomicBool) -> Outcome;
}

/// The version string hashed into run identities and recorded on runs: changing the engine
/// (a new TowerLab release) makes old results stale.
pub const ENGINE_VERSION: &str = concat!("towerlab-engine/", env!("CARGO_PKG_VERSION"));

/// The devices a worker can put runs on: every CUDA device, or the CPU.
pub fn local_devices() -> Vec<String> {
    #[cfg(feature = "engine")]
    {
        let info = engine::runtime::RuntimeInfo::probe();
        if !info.cuda_devices.is_empty() {
            return info
                .cuda_devices
                .iter()
                .map(|d| format!("cuda:{}", d.index))
                .collect();
        }
    }
    vec!["cpu".to_string()]
}

/// The engine's training loop on this machine.
#[cfg(feature = "train")]
pub mod local {
    use std::sync::atomic::AtomicBool;
    use std::sync::mpsc;

    use experiments::run::{Event, Outcome};
    use tokio::sync::mpsc::UnboundedSender;

    use super::{Executor, Job, ENGINE_VERSION};

    /// Runs `engine::train::run` on the calling thread.
    #[derive(Debug, Default, Clone, Copy)]
    pub struct LocalExecutor;

    impl Executor for LocalExecutor {
        fn engine_version(&self) -> String {
            ENGINE_VERSION.to_string()
        }

        fn execute(
            &self,
            job: &Job,
            events: &UnboundedSender<Event>,
            cancel: &AtomicBool,
        ) -> Outcome {
            // libtorch's intra-op thread count is per calling thread (OpenMP), so concurrent
            // CPU runs each get their share of the cores.
            tch::set_num_threads(job.threads.max(1) as i32);
            let (tx, rx) = mpsc::channel::<Event>();
            let forward = events.clone();
            let forwarder = std::thread::spawn(move || {
                for e in rx {
                    if forward.send(e).is_err() {
                        break;
                    }
                }
            });
            let outcome = match &job.eval {
                Some(target) => {
                    let score_job = engine::train::ScoreJob {
                        settings: job.settings.clone(),
                        weights: target.weights.clone(),
                        split: target.split,
                        explicit: target.explicit.clone(),
                        run_dir: job.run_dir.clone(),
                    };
                    engine::train::score(&score_job, &tx, cancel)
                }
                None => {
                    let train_job = engine::train::TrainJob {
                        settings: job.settings.clone(),
                        run_hash: job.hash.clone(),
                        run_dir: job.run_dir.clone(),
                        init_from: job.init_from.clone(),
                        resume: job.resume,
                        loads: job.loads.clone(),
                        hub: experiments::experts::HubEnv::from_process(),
                    };
                    engine::train::run(&train_job, &tx, cancel)
                }
            };
            drop(tx);
            let _ = forwarder.join();
            outcome
        }
    }
}

/// The executor of this build: the engine's training loop, when it is built in.
pub fn local_executor() -> anyhow::Result<std::sync::Arc<dyn Executor>> {
    #[cfg(feature = "train")]
    {
        Ok(std::sync::Arc::new(local::LocalExecutor))
    }
    #[cfg(not(feature = "train"))]
    {
        anyhow::bail!(
            "this towerlab was built without the training loop (the `train` feature of the app \
             crate); it can plan, queue and browse runs but not execute them"
        )
    }
}
