//! Training checkpoints: weights, optimiser moments and the loop's position, written so that a
//! crash at any moment leaves either the previous or the new checkpoint, never a torn one.
//!
//! Layout: `DIR/step-{N}/{model.safetensors, optimizer.safetensors, state.json}` and
//! `DIR/last` naming the newest complete step directory.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use tch::Tensor;

use crate::error::{CheckpointError, EngineError, Result};

/// Where the loop stands: enough to continue exactly as if never interrupted.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LoopState {
    /// Optimiser steps taken.
    pub step: u64,
    /// Epoch of the next batch.
    pub epoch: u64,
    /// Index of the next batch within its epoch.
    pub batch_in_epoch: u64,
    /// Optimiser steps counted for bias correction (equals `step` unless restarted).
    pub optimizer_step: u64,
    /// Best `val/the_metric` so far.
    pub best_metric: Option<f64>,
    /// The step whose checkpoint scored `best_metric` first (ties keep the earlier one, as
    /// Lightning's `best_model_path`).
    #[serde(default)]
    pub best_step: Option<u64>,
    /// The training metrics of the current epoch so far, as (weighted sum, weight) per key:
    /// the reference's `train/..._epoch` accumulators, kept so a resumed epoch reports whole.
    #[serde(default)]
    pub epoch_sums: super::metrics::WeightedSums,
    /// Content hash of the run's settings, so a checkpoint is never resumed under other settings.
    pub settings_hash: String,
    /// `val/the_metric` of the evaluation this checkpoint was written after (`None` for one
    /// written on cancel): what [`prune`] ranks checkpoints by.
    #[serde(default)]
    pub metric: Option<f64>,
}

/// Which checkpoints a run keeps (Lightning's `ModelCheckpoint(save_top_k, save_last)`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Retention {
    /// The best this many by metric (higher is better, as `val/the_metric`); negative: all.
    pub top_k: i64,
    /// Keep the newest once the run has ended.
    pub last: bool,
}

impl Retention {
    pub fn of(s: &experiments::Settings) -> Self {
        Self {
            top_k: s.save_top_k,
            last: s.save_last,
        }
    }
}

fn step_of(name: &str) -> Option<u64> {
    name.strip_prefix("step-")?.parse().ok()
}

/// Removes the checkpoints under `dir` that `policy` does not keep, and returns their steps.
/// While the run goes on (`ended = false`) the newest two are kept whatever the policy: the
/// newest to resume from, and the one before it, which is what the store names if the runner
/// dies before recording the newest (see the runner's `checkpoints::align`). Ties in the
/// metric keep the earlier step, as Lightning's `best_model_path`.
pub fn prune(dir: &Path, policy: Retention, ended: bool) -> Result<Vec<u64>> {
    if policy.top_k < 0 {
        return Ok(Vec::new());
    }
    let mut steps: Vec<(u64, Option<f64>)> = Vec::new();
    let entries = match std::fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(io(dir)(e)),
    };
    for entry in entries.flatten() {
        let Some(step) = step_of(&entry.file_name().to_string_lossy()) else {
            continue;
        };
        let metric = std::fs::read(entry.path().join("state.json"))
            .ok()
            .and_then(|b| serde_json::from_slice::<LoopState>(&b).ok())
            .and_then(|s| s.metric)
            .filter(|m| !m.is_nan());
        steps.push((step, metric));
    }
    steps.sort_by_key(|(step, _)| *step);
    let newest = latest(dir)?
        .and_then(|p| step_of(&p.file_name()?.to_string_lossy()))
        .or(steps.last().map(|(s, _)| *s));
    let mut keep: Vec<u64> = Vec::new();
    if ended {
        if policy.last {
            keep.extend(newest);
        }
    } else {
        keep.extend(steps.iter().rev().take(2).map(|(s, _)| *s));
        keep.extend(newest);
    }
    let mut ranked: Vec<(u64, f64)> = steps
        .iter()
        .filter_map(|(s, m)| m.map(|m| (*s, m)))
        .collect();
    ranked.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
    keep.extend(ranked.iter().take(policy.top_k as usize).map(|(s, _)| *s));
    let mut removed = Vec::new();
    for (step, _) in steps {
        if keep.contains(&step) {
            continue;
        }
        let path = dir.join(format!("step-{step}"));
        std::fs::remove_dir_all(&path).map_err(io(&path))?;
        removed.push(step);
    }
    if ended && !policy.last && newest.is_some_and(|n| removed.contains(&n)) {
        let last = dir.join(LAST);
        std::fs::remove_file(&last).map_err(io(&last))?;
    }
    Ok(removed)
}

/// A loaded checkpoint.
pub struct Checkpoint {
    pub dir: PathBuf,
    pub state: LoopState,
    pub model: Vec<(String, Tensor)>,
    pub optimizer: BTreeMap<String, Tensor>,
}

const LAST: &str = "last";

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> EngineError + '_ {
    move |source| EngineError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// Writes a checkpoint for `state.step` under `dir` and points `dir/last` at it.
pub fn save(
    dir: &Path,
    state: &LoopState,
    model: &[(String, Tensor)],
    optimizer: &[(String, Tensor)],
) -> Result<PathBuf> {
    std::fs::create_dir_all(dir).map_err(io(dir))?;
    let name = format!("step-{}", state.step);
    let final_dir = dir.join(&name);
    let tmp = dir.join(format!(".{name}.partial"));
    if tmp.exists() {
        std::fs::remove_dir_all(&tmp).map_err(io(&tmp))?;
    }
    std::fs::create_dir_all(&tmp).map_err(io(&tmp))?;
    if let Err(e) = write_step(&tmp, state, model, optimizer) {
        // A full disk must not stay full of a checkpoint nobody can use: the store still has
        // to record the failure.
        let _ = std::fs::remove_dir_all(&tmp);
        return Err(e);
    }
    sync_dir(&tmp);
    if final_dir.exists() {
        std::fs::remove_dir_all(&final_dir).map_err(io(&final_dir))?;
    }
    std::fs::rename(&tmp, &final_dir).map_err(io(&final_dir))?;
    // `last` is replaced by rename too, so readers see the old or the new name, whole.
    let last_tmp = dir.join(".last.partial");
    std::fs::write(&last_tmp, &name).map_err(io(&last_tmp))?;
    std::fs::rename(&last_tmp, dir.join(LAST)).map_err(io(dir))?;
    sync_dir(dir);
    Ok(final_dir)
}

fn write_step(
    tmp: &Path,
    state: &LoopState,
    model: &[(String, Tensor)],
    optimizer: &[(String, Tensor)],
) -> Result<()> {
    for (file, tensors) in [
        ("model.safetensors", model),
        ("optimizer.safetensors", optimizer),
    ] {
        let path = tmp.join(file);
        Tensor::write_safetensors(tensors, &path).map_err(|e| match e {
            tch::TchError::Io(source) => EngineError::Io { path, source },
            source => CheckpointError::Tensors { path, source }.into(),
        })?;
    }
    let state_path = tmp.join("state.json");
    let json = serde_json::to_vec_pretty(state).map_err(|source| EngineError::Json {
        path: state_path.clone(),
        source,
    })?;
    std::fs::write(&state_path, json).map_err(io(&state_path))
}

fn sync_dir(dir: &Path) {
    if let Ok(f) = std::fs::File::open(dir) {
        let _ = f.sync_all();
    }
}

/// The newest complete checkpoint under `dir`, if any.
pub fn latest(dir: &Path) -> Result<Option<PathBuf>> {
    let last = dir.join(LAST);
    match std::fs::read_to_string(&last) {
        Ok(name) => {
            let path = dir.join(name.trim());
            if path.join("state.json").is_file() {
                Ok(Some(path))
            } else {
                Err(CheckpointError::TornPointer {
                    pointer: last,
                    target: path,
                }
                .into())
            }
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(io(&last)(e)),
    }
}

/// The model weights of the checkpoint in `step_dir`, without the optimiser state.
pub fn load_model(step_dir: &Path) -> Result<Vec<(String, Tensor)>> {
    let path = step_dir.join("model.safetensors");
    read_tensors(&path)
}

fn read_tensors(path: &Path) -> Result<Vec<(String, Tensor)>> {
    Tensor::read_safetensors(path).map_err(|source| {
        CheckpointError::Tensors {
            path: path.to_path_buf(),
            source,
        }
        .into()
    })
}

/// Loads the checkpoint in `step_dir` (as returned by [`save`] or [`latest`]).
pub fn load(step_dir: &Path) -> Result<Checkpoint> {
    let state_path = step_dir.join("state.json");
    let bytes = std::fs::read(&state_path).map_err(io(&state_path))?;
    let state: LoopState =
        serde_json::from_slice(&bytes).map_err(|source| CheckpointError::State {
            path: state_path.clone(),
            source,
        })?;
    let read = |file: &str| read_tensors(&step_dir.join(file));
    let model = read("model.safetensors")?;
    let optimizer = read("optimizer.safetensors")?.into_iter().collect();
    Ok(Checkpoint {
        dir: step_dir.to_path_buf(),
        state,
        model,
        optimizer,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use tch::{Device, Kind};

    fn state(step: u64) -> LoopState {
        LoopState {
            step,
            epoch: 1,
            batch_in_epoch: 3,
            optimizer_step: step,
            best_metric: Some(0.5),
            best_step: Some(2),
            epoch_sums: BTreeMap::from([("train/vqa/loss".to_string(), (3.0, 2.0))]),
            settings_hash: "abc".into(),
            metric: None,
        }
    }

    fn save_scored(dir: &Path, step: u64, metric: f64) {
        let s = LoopState {
            metric: Some(metric),
            ..state(step)
        };
        save(dir, &s, &[], &[]).unwrap();
    }

    fn steps_in(dir: &Path) -> Vec<u64> {
        let mut v: Vec<u64> = std::fs::read_dir(dir)
            .unwrap()
            .filter_map(|e| step_of(&e.unwrap().file_name().to_string_lossy()))
            .collect();
        v.sort_unstable();
        v
    }

    #[test]
    fn pruning_keeps_the_newest_two_while_running_then_last_and_best() {
        let dir = tempfile::tempdir().unwrap();
        let policy = Retention {
            top_k: 1,
            last: true,
        };
        for (step, metric) in [(10, 0.5), (20, 0.9), (30, 0.4), (40, 0.6), (50, 0.3)] {
            save_scored(dir.path(), step, metric);
            prune(dir.path(), policy, false).unwrap();
        }
        // Best (20) and the newest two.
        assert_eq!(steps_in(dir.path()), [20, 40, 50]);
        assert_eq!(prune(dir.path(), policy, true).unwrap(), [40]);
        assert_eq!(steps_in(dir.path()), [20, 50]);
        assert!(latest(dir.path()).unwrap().unwrap().ends_with("step-50"));
    }

    #[test]
    fn ties_keep_the_earlier_step_and_negative_top_k_keeps_all() {
        let dir = tempfile::tempdir().unwrap();
        for (step, metric) in [(1, 0.7), (2, 0.7), (3, f64::NAN), (4, 0.1)] {
            save_scored(dir.path(), step, metric);
        }
        let all = Retention {
            top_k: -1,
            last: true,
        };
        assert!(prune(dir.path(), all, true).unwrap().is_empty());
        let best_only = Retention {
            top_k: 1,
            last: false,
        };
        prune(dir.path(), best_only, true).unwrap();
        assert_eq!(steps_in(dir.path()), [1]);
        // The newest is gone, and so is the pointer to it.
        assert!(latest(dir.path()).unwrap().is_none());
    }

    #[test]
    fn save_then_load_latest() {
        let dir = tempfile::tempdir().unwrap();
        let w = Tensor::randn([3, 2], (Kind::Float, Device::Cpu));
        let m = Tensor::randn([3, 2], (Kind::Float, Device::Cpu));
        save(
            dir.path(),
            &state(5),
            &[("w".into(), w.shallow_clone())],
            &[("w.exp_avg".into(), m.shallow_clone())],
        )
        .unwrap();
        save(
            dir.path(),
            &state(10),
            &[("w".into(), &w * 2.0)],
            &[("w.exp_avg".into(), m.shallow_clone())],
        )
        .unwrap();
        let last = latest(dir.path()).unwrap().unwrap();
        assert!(last.ends_with("step-10"));
        let ck = load(&last).unwrap();
        assert_eq!(ck.state, state(10));
        let got = &ck.model[0].1;
        assert!(got.allclose(&(&w * 2.0), 0.0, 0.0, false));
        assert!(ck.optimizer["w.exp_avg"].allclose(&m, 0.0, 0.0, false));
    }

    #[test]
    fn no_checkpoint_is_none_and_a_torn_pointer_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        assert!(latest(dir.path()).unwrap().is_none());
        std::fs::write(dir.path().join("last"), "step-7").unwrap();
        let err = latest(dir.path()).unwrap_err().to_string();
        assert!(err.contains("step-7"), "{err}");
    }

    #[test]
    fn corrupt_state_names_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let p = save(dir.path(), &state(1), &[], &[]).unwrap();
        std::fs::write(p.join("state.json"), "{not json").unwrap();
        let err = load(&p).err().unwrap().to_string();
        assert!(err.contains("state.json"), "{err}");
    }
}
