//! `towerlab doctor`: what TowerLab found on this machine.

use std::fmt::Write as _;
use std::path::Path;

pub fn run(db: &Path) -> anyhow::Result<()> {
    print!("{}", render(db));
    Ok(())
}

fn render(db: &Path) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "towerlab {}", env!("CARGO_PKG_VERSION"));
    engine_section(&mut out);
    let _ = writeln!(
        out,
        "store:     {}{}",
        crate::runner::describe_db(db),
        if crate::runner::is_postgres(db) {
            ""
        } else {
            exists_note(db)
        }
    );
    match experiments::paths::cache_dir() {
        Some(cache) => {
            let _ = writeln!(out, "cache:     {}{}", cache.display(), exists_note(&cache));
        }
        None => {
            let _ = writeln!(
                out,
                "cache:     unknown (neither XDG_CACHE_HOME nor HOME is set)"
            );
        }
    }
    out
}

#[cfg(feature = "engine")]
fn engine_section(out: &mut String) {
    let info = engine::runtime::RuntimeInfo::probe();
    let version = info.version.as_deref().unwrap_or("unknown");
    let _ = writeln!(out, "libtorch:  {version}");
    match &info.lib_dir {
        Some(dir) => {
            let _ = writeln!(out, "  path:    {}", dir.display());
        }
        None => {
            let _ = writeln!(out, "  path:    not found in this process");
        }
    }
    let _ = writeln!(
        out,
        "  cpu:     {} threads, MKL {}, OpenMP {}",
        info.num_threads,
        yes_no(info.has_mkl),
        yes_no(info.has_openmp)
    );
    let backend = match info.cuda_backend {
        engine::runtime::CudaBackend::Loaded => "loaded (libtorch_cuda.so)",
        engine::runtime::CudaBackend::NotInLibtorch => "none (a CPU-only libtorch)",
        engine::runtime::CudaBackend::NotLoaded => {
            "NOT LOADED: this binary was linked without libtorch_cuda.so, so no GPU is usable; \
             rebuild it (build-support/rpath.rs keeps the library)"
        }
        engine::runtime::CudaBackend::Unknown => "unknown (/proc/self/maps is unreadable)",
    };
    let _ = writeln!(out, "  CUDA backend: {backend}");
    if info.cuda_devices.is_empty() {
        let _ = writeln!(out, "devices:   CPU only");
    } else {
        let _ = writeln!(out, "devices:");
        for d in &info.cuda_devices {
            let gib = d.total_memory_bytes as f64 / (1u64 << 30) as f64;
            let _ = writeln!(out, "  cuda:{}  {} ({gib:.1} GiB)", d.index, d.name);
        }
    }
}

#[cfg(not(feature = "engine"))]
fn engine_section(out: &mut String) {
    let _ = writeln!(
        out,
        "libtorch:  not built in (towerlab was built without the `engine` feature)"
    );
    let _ = writeln!(out, "devices:   none usable");
}

#[cfg(feature = "engine")]
fn yes_no(b: bool) -> &'static str {
    if b {
        "yes"
    } else {
        "no"
    }
}

fn exists_note(path: &Path) -> &'static str {
    if path.exists() {
        ""
    } else {
        " (not created yet)"
    }
}
