//! What libtorch this process actually loaded, and which devices it sees.

use std::path::{Path, PathBuf};

/// A CUDA device as libtorch reports it.
#[derive(Debug, Clone, PartialEq)]
pub struct CudaDevice {
    pub index: usize,
    pub name: String,
    pub total_memory_bytes: u64,
}

/// Whether libtorch's CUDA backend (`libtorch_cuda.so`) is in this process. libtorch finds no
/// device without it, even on a GPU machine.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CudaBackend {
    Loaded,
    /// The loaded libtorch is a CPU-only build.
    NotInLibtorch,
    /// The library exists beside `libtorch_cpu.so` but was not loaded: the binary was linked
    /// without it.
    NotLoaded,
    /// This process's mapped libraries could not be read.
    Unknown,
}

/// The libtorch this process runs on: version, location and devices.
#[derive(Debug, Clone)]
pub struct RuntimeInfo {
    /// Version string of the loaded libtorch (e.g. `2.11.0+cu130`), when it could be read.
    pub version: Option<String>,
    /// Directory holding the `libtorch_cpu.so` that the dynamic loader mapped into this process.
    pub lib_dir: Option<PathBuf>,
    pub cuda_backend: CudaBackend,
    pub cuda_devices: Vec<CudaDevice>,
    pub num_threads: i32,
    pub has_mkl: bool,
    pub has_openmp: bool,
}

impl RuntimeInfo {
    /// Queries libtorch. Touches no device memory.
    pub fn probe() -> Self {
        let maps = mapped_libraries();
        let lib_dir = loaded_libtorch_dir(&maps);
        let cuda_backend = if maps.is_empty() {
            CudaBackend::Unknown
        } else if maps.iter().any(|p| p.ends_with("/libtorch_cuda.so")) {
            CudaBackend::Loaded
        } else if lib_dir
            .as_deref()
            .is_some_and(|d| d.join("libtorch_cuda.so").exists())
        {
            CudaBackend::NotLoaded
        } else {
            CudaBackend::NotInLibtorch
        };
        let version = lib_dir.as_deref().and_then(version_beside);
        let cuda_devices = (0..tch::Cuda::device_count().max(0) as usize)
            .map(|index| {
                let (name, total_memory_bytes) = cuda_properties(index);
                CudaDevice {
                    index,
                    name,
                    total_memory_bytes,
                }
            })
            .collect();
        Self {
            version,
            lib_dir,
            cuda_backend,
            cuda_devices,
            num_threads: tch::get_num_threads(),
            has_mkl: tch::utils::has_mkl(),
            has_openmp: tch::utils::has_openmp(),
        }
    }
}

/// The files mapped into this process (`/proc/self/maps`): the libraries actually in use,
/// whatever the rpath or `LD_LIBRARY_PATH` said.
fn mapped_libraries() -> Vec<String> {
    // Make sure libtorch is loaded and initialised before looking.
    let _ = tch::get_num_threads();
    let maps = std::fs::read_to_string("/proc/self/maps").unwrap_or_default();
    maps.lines()
        .filter_map(|line| line.split_whitespace().nth(5))
        .map(str::to_string)
        .collect()
}

/// The directory of the mapped `libtorch_cpu.so`.
fn loaded_libtorch_dir(maps: &[String]) -> Option<PathBuf> {
    maps.iter()
        .find(|path| path.ends_with("/libtorch_cpu.so"))
        .and_then(|path| Path::new(path).parent().map(Path::to_path_buf))
}

/// Reads `__version__` from the wheel's `torch/version.py` (the lib dir is `torch/lib`), or the
/// `build-version` file of a plain libtorch archive.
fn version_beside(lib_dir: &Path) -> Option<String> {
    let root = lib_dir.parent()?;
    if let Ok(text) = std::fs::read_to_string(root.join("version.py")) {
        for line in text.lines() {
            if let Some(rest) = line.strip_prefix("__version__") {
                let value = rest.trim_start_matches([' ', '=', ':']).trim();
                let value = value.rsplit_once('=').map_or(value, |(_, v)| v.trim());
                return Some(value.trim_matches(['\'', '"']).to_string());
            }
        }
    }
    std::fs::read_to_string(root.join("build-version"))
        .ok()
        .map(|s| s.trim().to_string())
}

pub(crate) fn cuda_properties(index: usize) -> (String, u64) {
    // tch 0.24 exposes no device-properties call; nvidia-smi is the reliable source when a GPU
    // is present. Without it the name stays generic.
    let out = std::process::Command::new("nvidia-smi")
        .args([
            "--query-gpu=name,memory.total",
            "--format=csv,noheader,nounits",
            &format!("--id={index}"),
        ])
        .output();
    if let Ok(out) = out {
        if out.status.success() {
            let text = String::from_utf8_lossy(&out.stdout);
            if let Some((name, mem)) = text.trim().rsplit_once(',') {
                let mib: u64 = mem.trim().parse().unwrap_or(0);
                return (name.trim().to_string(), mib * 1024 * 1024);
            }
        }
    }
    (format!("cuda:{index}"), 0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn version_is_read_from_version_py() {
        let dir = tempdir();
        std::fs::create_dir_all(dir.join("lib")).unwrap();
        std::fs::write(
            dir.join("version.py"),
            "from typing import Optional\n__version__ = '2.11.0+cu130'\ncuda = '13.0'\n",
        )
        .unwrap();
        assert_eq!(
            version_beside(&dir.join("lib")).as_deref(),
            Some("2.11.0+cu130")
        );
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn probe_finds_the_loaded_libtorch() {
        let info = RuntimeInfo::probe();
        let version = info.version.expect("libtorch version");
        assert!(version.starts_with("2.11.0"), "{version}");
        assert!(info.lib_dir.is_some());
    }

    /// The linker drops `libtorch_cuda.so` unless told to keep it (build-support/rpath.rs);
    /// without it a GPU machine would silently train on the CPU.
    #[test]
    fn the_cuda_backend_is_loaded_when_libtorch_has_one() {
        let info = RuntimeInfo::probe();
        assert_ne!(info.cuda_backend, CudaBackend::NotLoaded, "{info:?}");
    }

    fn tempdir() -> PathBuf {
        let dir = std::env::temp_dir().join(format!("towerlab-rt-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        dir
    }
}
