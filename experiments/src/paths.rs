//! Where TowerLab keeps things on disk, by default.

use std::path::{Path, PathBuf};

/// File name of the default store, relative to the working directory.
pub const DEFAULT_DB: &str = "towerlab.db";

/// The per-user cache root: `$XDG_CACHE_HOME/towerlab`, else `~/.cache/towerlab`.
pub fn cache_dir() -> Option<PathBuf> {
    cache_dir_from(
        std::env::var_os("XDG_CACHE_HOME").map(PathBuf::from),
        std::env::var_os("HOME").map(PathBuf::from),
    )
}

fn cache_dir_from(xdg: Option<PathBuf>, home: Option<PathBuf>) -> Option<PathBuf> {
    match xdg.filter(|p| p.is_absolute()) {
        Some(xdg) => Some(xdg.join("towerlab")),
        None => home.map(|h| h.join(".cache").join("towerlab")),
    }
}

/// The libtorch install made by `scripts/setup-libtorch.sh` for `version`.
pub fn libtorch_cache(cache: &Path, version: &str) -> PathBuf {
    cache.join(format!("torch-{version}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn xdg_cache_home_wins_when_absolute() {
        let got = cache_dir_from(Some("/x/cache".into()), Some("/home/u".into()));
        assert_eq!(got, Some(PathBuf::from("/x/cache/towerlab")));
    }

    #[test]
    fn relative_xdg_is_ignored_as_the_spec_says() {
        let got = cache_dir_from(Some("rel".into()), Some("/home/u".into()));
        assert_eq!(got, Some(PathBuf::from("/home/u/.cache/towerlab")));
    }

    #[test]
    fn no_home_no_cache() {
        assert_eq!(cache_dir_from(None, None), None);
    }
}
