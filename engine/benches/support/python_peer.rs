//! The Python peer's `PYTHONPATH`, for the benches and examples that run it side by side with
//! TowerLab: `TOWERLAB_PEER_PYTHONPATH` as is (a machine without network), else what
//! `scripts/setup-python-peer.sh` (run in `repo`) installs and prints.

use std::path::Path;
use std::process::Command;

pub fn pythonpath(repo: &Path) -> Result<String, String> {
    if let Ok(p) = std::env::var("TOWERLAB_PEER_PYTHONPATH") {
        return Ok(p);
    }
    let setup = Command::new(repo.join("scripts/setup-python-peer.sh"))
        .output()
        .map_err(|e| format!("scripts/setup-python-peer.sh: {e}"))?;
    if !setup.status.success() {
        return Err(format!(
            "scripts/setup-python-peer.sh failed: {}",
            String::from_utf8_lossy(&setup.stderr)
        ));
    }
    Ok(String::from_utf8_lossy(&setup.stdout).trim().to_string())
}
