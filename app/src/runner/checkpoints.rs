//! Keeps a run's checkpoint folder in step with the store before an attempt resumes.
//!
//! The engine writes `checkpoints/step-N/` and then names it in `checkpoints/last`; the runner
//! records it in the store when the `Checkpoint` event arrives. A crash between the two leaves a
//! checkpoint on disk that the store does not know, while the store has already dropped the
//! metric points after its own (older) checkpoint. Resuming from the newer one would lose the
//! points in between, so the store wins: newer step folders are removed and `last` points at
//! the store's checkpoint (or is removed when the store has none, so the attempt starts over).

use std::path::Path;

const LAST: &str = "last";

fn step_of(name: &str) -> Option<u64> {
    name.strip_prefix("step-")?.parse().ok()
}

/// Makes `dir` (a run's `checkpoints/` folder) agree with the store's checkpoint step.
/// Returns the steps of the folders it removed.
pub fn align(dir: &Path, store_step: Option<i64>) -> std::io::Result<Vec<u64>> {
    let mut removed = Vec::new();
    let entries = match std::fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(removed),
        Err(e) => return Err(e),
    };
    let keep = store_step.and_then(|s| u64::try_from(s).ok());
    for entry in entries.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        let newer = step_of(&name).is_some_and(|s| keep.is_none_or(|k| s > k));
        let partial = name.starts_with('.') && name.ends_with(".partial");
        if newer || partial {
            let path = entry.path();
            if path.is_dir() {
                std::fs::remove_dir_all(&path)?;
            } else {
                std::fs::remove_file(&path)?;
            }
            if let Some(s) = step_of(&name) {
                removed.push(s);
            }
        }
    }
    let last = dir.join(LAST);
    match keep {
        Some(k) if dir.join(format!("step-{k}")).is_dir() => {
            let current = std::fs::read_to_string(&last).unwrap_or_default();
            if current.trim() != format!("step-{k}") {
                let tmp = dir.join(".last.partial");
                std::fs::write(&tmp, format!("step-{k}"))?;
                std::fs::rename(&tmp, &last)?;
            }
        }
        _ => {
            if last.exists() {
                std::fs::remove_file(&last)?;
            }
        }
    }
    removed.sort_unstable();
    Ok(removed)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn make(dir: &Path, step: u64) {
        let d = dir.join(format!("step-{step}"));
        std::fs::create_dir_all(&d).unwrap();
        std::fs::write(d.join("state.json"), "{}").unwrap();
        std::fs::write(dir.join(LAST), format!("step-{step}")).unwrap();
    }

    #[test]
    fn newer_unrecorded_checkpoints_are_dropped_and_last_rewound() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path();
        make(dir, 10);
        make(dir, 20);
        make(dir, 30);
        std::fs::create_dir_all(dir.join(".step-40.partial")).unwrap();
        let removed = align(dir, Some(20)).unwrap();
        assert_eq!(removed, vec![30]);
        assert!(dir.join("step-10").is_dir() && dir.join("step-20").is_dir());
        assert!(!dir.join("step-30").exists() && !dir.join(".step-40.partial").exists());
        assert_eq!(std::fs::read_to_string(dir.join(LAST)).unwrap(), "step-20");
    }

    #[test]
    fn no_store_checkpoint_means_start_over() {
        let tmp = tempfile::tempdir().unwrap();
        make(tmp.path(), 5);
        assert_eq!(align(tmp.path(), None).unwrap(), vec![5]);
        assert!(!tmp.path().join(LAST).exists());
        assert_eq!(
            align(&tmp.path().join("absent"), None).unwrap(),
            Vec::<u64>::new()
        );
    }
}
