//! Training checkpoints: weights, optimiser moments and the loop's position, written so that a
//! crash at any moment leaves either the previous or the new checkpoint, never a torn one.
//!
//! Layout: `DIR/step-{N}/{model.safetensors, optimizer.safetensors, state.json}` and
//! `DIR/last` naming the newest complete step directory.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use tch::Tensor;

use crate::error::{EngineError, Result};

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
    Tensor::write_safetensors(model, tmp.join("model.safetensors"))?;
    Tensor::write_safetensors(optimizer, tmp.join("optimizer.safetensors"))?;
    let json = serde_json::to_vec_pretty(state).map_err(|e| EngineError::Invalid(e.to_string()))?;
    let state_path = tmp.join("state.json");
    std::fs::write(&state_path, json).map_err(io(&state_path))?;
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
                Err(EngineError::Invalid(format!(
                    "{}: names {}, which is not a complete checkpoint",
                    last.display(),
                    path.display()
                )))
            }
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(io(&last)(e)),
    }
}

/// The model weights of the checkpoint in `step_dir`, without the optimiser state.
pub fn load_model(step_dir: &Path) -> Result<Vec<(String, Tensor)>> {
    let path = step_dir.join("model.safetensors");
    Tensor::read_safetensors(&path)
        .map_err(|e| EngineError::Invalid(format!("{}: {e}", path.display())))
}

/// Loads the checkpoint in `step_dir` (as returned by [`save`] or [`latest`]).
pub fn load(step_dir: &Path) -> Result<Checkpoint> {
    let state_path = step_dir.join("state.json");
    let bytes = std::fs::read(&state_path).map_err(io(&state_path))?;
    let state: LoopState = serde_json::from_slice(&bytes).map_err(|e| {
        EngineError::Invalid(format!(
            "{}: not a TowerLab loop state: {e}",
            state_path.display()
        ))
    })?;
    let read = |file: &str| -> Result<Vec<(String, Tensor)>> {
        let path = step_dir.join(file);
        Tensor::read_safetensors(&path)
            .map_err(|e| EngineError::Invalid(format!("{}: {e}", path.display())))
    };
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
        }
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
