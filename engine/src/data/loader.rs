//! A multi-threaded, deterministic, resumable batch loader.
//!
//! The epoch's sample order comes from `(seed, epoch)`; every random choice inside a batch comes
//! from seeds derived from `(seed, epoch, position)`. Worker `w` of `W` builds batches
//! `start + w, start + w + W, ...` into its own bounded channel and the iterator reads the channels
//! round-robin, so batches arrive in order and are identical whatever `W` is.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;

use crossbeam_channel::{bounded, Receiver};
use rand::seq::SliceRandom;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;

use super::batch::{Batch, SamplePipeline};
use super::error::{DataError, DataResult};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LoaderConfig {
    pub batch_size: usize,
    pub shuffle: bool,
    /// Drop the last incomplete batch (training) or keep it (evaluation).
    pub drop_last: bool,
    pub seed: u64,
    /// 0 builds batches on the calling thread.
    pub num_workers: usize,
    /// Batches each worker may have ready ahead of the consumer.
    pub prefetch: usize,
}

impl Default for LoaderConfig {
    fn default() -> Self {
        Self {
            batch_size: 8,
            shuffle: true,
            drop_last: true,
            seed: 0,
            num_workers: 2,
            prefetch: 2,
        }
    }
}

/// Where an epoch stands: the next batch to be produced. Save it with a checkpoint and pass it to
/// [`Loader::resume`] to continue with exactly the batches that would have followed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
pub struct LoaderPosition {
    pub epoch: u64,
    pub batch: usize,
}

#[derive(Debug, Clone)]
pub struct Loader {
    pipeline: Arc<SamplePipeline>,
    config: LoaderConfig,
}

/// SplitMix64 finaliser: decorrelates nearby seeds.
pub(crate) fn mix(mut x: u64) -> u64 {
    x = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
    x = (x ^ (x >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    x ^ (x >> 31)
}

fn derive(seed: u64, epoch: u64, stream: u64, index: u64) -> u64 {
    mix(mix(mix(mix(seed) ^ epoch) ^ stream) ^ index)
}

/// The work for one epoch, shared by the workers.
#[derive(Debug)]
struct EpochPlan {
    pipeline: Arc<SamplePipeline>,
    order: Vec<usize>,
    batch_size: usize,
    num_batches: usize,
    seed: u64,
    epoch: u64,
}

impl EpochPlan {
    fn build(&self, b: usize) -> DataResult<Batch> {
        let start = b * self.batch_size;
        let end = (start + self.batch_size).min(self.order.len());
        let samples = &self.order[start..end];
        let seeds: Vec<u64> = (start..end)
            .map(|p| derive(self.seed, self.epoch, 1, p as u64))
            .collect();
        let batch_seed = derive(self.seed, self.epoch, 2, b as u64);
        self.pipeline.make_batch(samples, &seeds, batch_seed)
    }
}

impl Loader {
    pub fn new(pipeline: SamplePipeline, config: LoaderConfig) -> DataResult<Self> {
        if config.batch_size == 0 {
            return Err(DataError::Setting {
                key: "batch_size",
                detail: "must be at least 1".into(),
            });
        }
        if pipeline.dataset.is_empty() {
            return Err(DataError::NoSamples);
        }
        Ok(Self {
            pipeline: Arc::new(pipeline),
            config,
        })
    }

    pub fn config(&self) -> &LoaderConfig {
        &self.config
    }

    pub fn pipeline(&self) -> &SamplePipeline {
        &self.pipeline
    }

    pub fn batches_per_epoch(&self) -> usize {
        let n = self.pipeline.dataset.len();
        let bs = self.config.batch_size;
        if self.config.drop_last {
            n / bs
        } else {
            n.div_ceil(bs)
        }
    }

    /// The sample order of an epoch.
    pub fn epoch_order(&self, epoch: u64) -> Vec<usize> {
        let mut order: Vec<usize> = (0..self.pipeline.dataset.len()).collect();
        if self.config.shuffle {
            let mut rng = ChaCha8Rng::seed_from_u64(derive(self.config.seed, epoch, 0, 0));
            order.shuffle(&mut rng);
        }
        order
    }

    /// Iterates over an epoch from its first batch.
    pub fn epoch(&self, epoch: u64) -> EpochIter {
        self.resume(LoaderPosition { epoch, batch: 0 })
    }

    /// Iterates over an epoch from `position.batch`.
    pub fn resume(&self, position: LoaderPosition) -> EpochIter {
        let plan = Arc::new(EpochPlan {
            pipeline: self.pipeline.clone(),
            order: self.epoch_order(position.epoch),
            batch_size: self.config.batch_size,
            num_batches: self.batches_per_epoch(),
            seed: self.config.seed,
            epoch: position.epoch,
        });
        let start = position.batch.min(plan.num_batches);
        let stop = Arc::new(AtomicBool::new(false));
        let workers = self.config.num_workers;
        let mut receivers = Vec::with_capacity(workers);
        let mut handles = Vec::with_capacity(workers);
        for w in 0..workers {
            let (tx, rx) = bounded(self.config.prefetch.max(1));
            let plan = plan.clone();
            let worker_stop = stop.clone();
            let handle = std::thread::Builder::new()
                .name(format!("towerlab-data-{w}"))
                .spawn(move || {
                    let mut b = start + w;
                    while b < plan.num_batches && !worker_stop.load(Ordering::Relaxed) {
                        if tx.send(plan.build(b)).is_err() {
                            break;
                        }
                        b += workers;
                    }
                });
            match handle {
                Ok(h) => {
                    receivers.push(rx);
                    handles.push(h);
                }
                Err(e) => {
                    // The stride assumes all workers run: fall back to loading on this thread.
                    tracing::warn!("cannot start a loader thread ({e}); loading on this thread");
                    stop.store(true, Ordering::Relaxed);
                    receivers.clear();
                    for h in handles.drain(..) {
                        let _ = h.join();
                    }
                    break;
                }
            }
        }
        EpochIter {
            plan,
            start,
            next: start,
            receivers,
            handles,
            stop,
            skipped: 0,
            finished: false,
        }
    }
}

/// The batches of one epoch, in order. Dropping it stops the workers.
pub struct EpochIter {
    plan: Arc<EpochPlan>,
    start: usize,
    next: usize,
    receivers: Vec<Receiver<DataResult<Batch>>>,
    handles: Vec<JoinHandle<()>>,
    stop: Arc<AtomicBool>,
    skipped: usize,
    finished: bool,
}

impl EpochIter {
    /// The position of the next batch: save it to resume here.
    pub fn position(&self) -> LoaderPosition {
        LoaderPosition {
            epoch: self.plan.epoch,
            batch: self.next,
        }
    }

    pub fn num_batches(&self) -> usize {
        self.plan.num_batches
    }

    /// Corrupt images skipped so far in this epoch (by the batches already returned).
    pub fn skipped_images(&self) -> usize {
        self.skipped
    }

    fn shutdown(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        self.receivers.clear();
        for h in self.handles.drain(..) {
            let _ = h.join();
        }
    }
}

impl Iterator for EpochIter {
    type Item = DataResult<Batch>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.next >= self.plan.num_batches {
            if !self.finished {
                self.finished = true;
                if self.skipped > 0 {
                    tracing::warn!(
                        "epoch {}: skipped {} corrupt image(s)",
                        self.plan.epoch,
                        self.skipped
                    );
                }
                self.shutdown();
            }
            return None;
        }
        let b = self.next;
        let result = if self.receivers.is_empty() {
            self.plan.build(b)
        } else {
            let w = (b - self.start) % self.receivers.len();
            match self.receivers[w].recv() {
                Ok(r) => r,
                Err(_) => Err(DataError::WorkerStopped {
                    worker: w,
                    batch: b,
                }),
            }
        };
        self.next += 1;
        if let Ok(batch) = &result {
            self.skipped += batch.skipped_images;
        }
        Some(result)
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        let left = self.plan.num_batches - self.next;
        (left, Some(left))
    }
}

impl Drop for EpochIter {
    fn drop(&mut self) {
        self.shutdown();
    }
}
