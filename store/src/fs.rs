//! Refusing a SQLite store on a network file system.
//!
//! SQLite's locking (and WAL's shared memory) needs a local file system: on NFS or SMB, several
//! nodes writing one store file corrupt it. The store's folder is checked with `statfs`, and a
//! network file system is refused with a message pointing to PostgreSQL.

use std::path::{Path, PathBuf};

use crate::error::{Result, StoreError};

/// Network file systems by their `statfs` magic number (`f_type`, linux/magic.h).
const NETWORK_FS: &[(u64, &str)] = &[
    (0x6969, "NFS"),
    (0xFF53_4D42, "CIFS"),
    (0xFE53_4D42, "SMB2"),
    (0x517B, "SMB"),
    (0x564C, "NCP"),
    (0x6B41_4653, "AFS"),
    (0x5346_414F, "OpenAFS"),
    (0x7363_6673, "Ceph"),
    (0x0BD0_0BD0, "Lustre"),
    (0x4750_4653, "GPFS"),
    (0x0102_1997, "9P"),
    (0x6573_5546, "FUSE"),
];

/// The name of the network file system with magic number `f_type`, if it is one. FUSE counts:
/// sshfs, glusterfs and most cluster mounts are FUSE, and a local FUSE file system is rare
/// enough under a store.
pub fn network_fs_name(f_type: u64) -> Option<&'static str> {
    NETWORK_FS
        .iter()
        .find(|(magic, _)| *magic == f_type)
        .map(|(_, name)| *name)
}

/// Tells the file system type of a folder (the seam the tests replace).
pub trait FsProbe: Send + Sync {
    /// The `statfs` `f_type` of the file system holding `dir`.
    fn fs_type(&self, dir: &Path) -> std::io::Result<u64>;
}

/// The real probe: `statfs(2)`.
#[derive(Debug, Clone, Copy, Default)]
pub struct StatfsProbe;

impl FsProbe for StatfsProbe {
    #[cfg(target_os = "linux")]
    fn fs_type(&self, dir: &Path) -> std::io::Result<u64> {
        let stat = rustix::fs::statfs(dir)?;
        // `f_type` is signed on some targets; the magic numbers are its bit pattern.
        #[allow(clippy::unnecessary_cast)]
        Ok(stat.f_type as u64 & 0xFFFF_FFFF)
    }

    #[cfg(not(target_os = "linux"))]
    fn fs_type(&self, _dir: &Path) -> std::io::Result<u64> {
        Ok(0)
    }
}

/// Fails with [`StoreError::NetworkFileSystem`] when the folder of the store file `path` is on
/// a network file system. A folder whose type cannot be read is let through (SQLite's own
/// errors then say what is wrong).
pub(crate) fn refuse_network_fs(path: &Path, probe: &dyn FsProbe) -> Result<()> {
    let dir: PathBuf = match path.parent().filter(|p| !p.as_os_str().is_empty()) {
        Some(parent) => parent.to_path_buf(),
        None => PathBuf::from("."),
    };
    match probe.fs_type(&dir) {
        Ok(f_type) => match network_fs_name(f_type) {
            Some(fs) => Err(StoreError::NetworkFileSystem {
                path: path.to_path_buf(),
                fs,
            }),
            None => Ok(()),
        },
        Err(_) => Ok(()),
    }
}

/// Opens a SQLite store as [`crate::Store::open_with`] does, with `probe` telling the file
/// system type (for tests of the network-file-system refusal, which cannot mount NFS).
pub async fn open_sqlite_with_probe(
    path: &Path,
    options: &crate::StoreOptions,
    probe: &dyn FsProbe,
) -> Result<crate::Store> {
    crate::sqlite::open_file(path, options.clone(), probe).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_network_file_systems_are_recognised() {
        assert_eq!(network_fs_name(0x6969), Some("NFS"));
        assert_eq!(network_fs_name(0xFF53_4D42), Some("CIFS"));
        assert_eq!(network_fs_name(0xFE53_4D42), Some("SMB2"));
        assert_eq!(network_fs_name(0x6573_5546), Some("FUSE"));
        // ext4, xfs, btrfs, tmpfs, overlayfs: local.
        for local in [0xEF53, 0x5846_5342, 0x9123_683E, 0x0102_1994, 0x794C_7630] {
            assert_eq!(network_fs_name(local), None, "{local:#x}");
        }
    }

    #[test]
    fn the_real_probe_sees_a_local_temp_dir_as_local() {
        let dir = tempfile::tempdir().unwrap();
        let f_type = StatfsProbe.fs_type(dir.path()).unwrap();
        assert_ne!(f_type, 0);
        assert!(refuse_network_fs(&dir.path().join("s.db"), &StatfsProbe).is_ok());
    }

    struct Fake(u64);
    impl FsProbe for Fake {
        fn fs_type(&self, _dir: &Path) -> std::io::Result<u64> {
            Ok(self.0)
        }
    }

    #[test]
    fn a_store_on_nfs_is_refused_naming_the_path_and_postgres() {
        let err = refuse_network_fs(Path::new("/shared/lab/towerlab.db"), &Fake(0x6969))
            .unwrap_err()
            .to_string();
        assert!(err.contains("/shared/lab/towerlab.db"), "{err}");
        assert!(err.contains("NFS"), "{err}");
        assert!(err.contains("--db postgres://"), "{err}");
        assert!(refuse_network_fs(Path::new("/local/t.db"), &Fake(0xEF53)).is_ok());
    }

    #[tokio::test]
    async fn opening_a_store_on_nfs_is_refused_before_the_file_is_created() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("towerlab.db");
        let options = crate::StoreOptions::default();
        let err = open_sqlite_with_probe(&path, &options, &Fake(0x6969))
            .await
            .unwrap_err();
        assert!(
            matches!(err, StoreError::NetworkFileSystem { fs: "NFS", .. }),
            "{err}"
        );
        assert!(!path.exists());
        let store = open_sqlite_with_probe(&path, &options, &Fake(0xEF53))
            .await
            .unwrap();
        assert_eq!(store.backend(), crate::Backend::Sqlite);
    }
}
