//! A profile on demand (`profile_steps = N`): the first N optimiser steps of an attempt
//! recorded with libtorch's Kineto profiler (CPU ops with their input shapes, and on CUDA the
//! kernels), written into the run folder as a Chrome trace that Perfetto or `chrome://tracing`
//! opens.

use std::path::{Path, PathBuf};
use std::sync::Mutex;

use super::native::{self, NativeError};

/// The folder of the run folder the traces go to.
pub const PROFILE_DIR: &str = "profile";

/// libtorch has one profiler per process: two runs of one process (tests, a worker with
/// several slots) cannot record at once.
static ACTIVE: Mutex<bool> = Mutex::new(false);

#[derive(Debug, thiserror::Error)]
pub enum ProfileError {
    #[error("another run in this process is being profiled (libtorch has one profiler)")]
    Busy,
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("libtorch's profiler: {0}")]
    Torch(#[from] NativeError),
}

/// The trace of steps `first..=last` in `run_dir`.
pub fn trace_path(run_dir: &Path, first: u64, last: u64) -> PathBuf {
    run_dir
        .join(PROFILE_DIR)
        .join(format!("steps-{first}-{last}.trace.json"))
}

/// A recording in progress. [`finish`](Self::finish) writes the trace; dropping it unfinished
/// (a run that failed while profiling) stops the profiler and writes nothing.
pub struct Recording {
    first: u64,
    finished: bool,
}

impl Recording {
    /// Starts recording; the next optimiser step is `first`.
    pub fn start(first: u64, cuda: bool) -> Result<Self, ProfileError> {
        {
            let mut active = ACTIVE.lock().unwrap_or_else(|e| e.into_inner());
            if *active {
                return Err(ProfileError::Busy);
            }
            *active = true;
        }
        if let Err(e) = native::profiler_start(cuda) {
            *ACTIVE.lock().unwrap_or_else(|e| e.into_inner()) = false;
            return Err(e.into());
        }
        Ok(Self {
            first,
            finished: false,
        })
    }

    /// The first step recorded.
    pub fn first(&self) -> u64 {
        self.first
    }

    /// Stops recording after step `last` and writes the trace into `run_dir`; returns its path.
    pub fn finish(mut self, run_dir: &Path, last: u64) -> Result<PathBuf, ProfileError> {
        self.finished = true;
        let path = trace_path(run_dir, self.first, last);
        let dir = run_dir.join(PROFILE_DIR);
        let made = std::fs::create_dir_all(&dir).map_err(|source| ProfileError::Io {
            path: dir.clone(),
            source,
        });
        // The profiler is stopped whatever happens to the folder.
        let tmp = path.with_extension("json.partial");
        let stopped = native::profiler_stop(if made.is_ok() { &tmp } else { &dir });
        *ACTIVE.lock().unwrap_or_else(|e| e.into_inner()) = false;
        made?;
        stopped?;
        // Written under another name first: a trace in the folder is always a whole one.
        std::fs::rename(&tmp, &path).map_err(|source| ProfileError::Io {
            path: path.clone(),
            source,
        })?;
        Ok(path)
    }
}

impl Drop for Recording {
    fn drop(&mut self) {
        if !self.finished {
            // Stopping discards the events; the result's destructor frees them.
            let dir = std::env::temp_dir().join(format!(
                "towerlab-discarded-profile-{}.json",
                std::process::id()
            ));
            if native::profiler_stop(&dir).is_ok() {
                let _ = std::fs::remove_file(&dir);
            }
            *ACTIVE.lock().unwrap_or_else(|e| e.into_inner()) = false;
        }
    }
}

// Tested through the training loop (`train::tests`): libtorch's one profiler per process
// means one profiling test per test binary.
