include!("../build-support/rpath.rs");

fn main() {
    emit_libtorch_rpath();
    build_telemetry_shim();
}

/// Compiles `csrc/telemetry.cpp` (the profiler and the CUDA caching allocator's statistics,
/// which tch has no API for) against the libtorch headers torch-sys builds against. The CUDA
/// part is compiled only when libtorch ships `c10_cuda` (a CPU-only libtorch builds and links
/// without it).
fn build_telemetry_shim() {
    println!("cargo:rerun-if-changed=csrc/telemetry.cpp");
    let Ok(libtorch) = std::env::var("LIBTORCH") else {
        panic!("LIBTORCH is not set; run scripts/setup-libtorch.sh (make setup)");
    };
    let root = std::path::PathBuf::from(libtorch);
    let lib = libtorch_lib().unwrap_or_else(|| root.join("lib"));
    let include = root.join("include");
    // The CUDA headers the allocator's header includes: the wheel's `nvidia/<cuXX>/include`
    // beside `torch/`, or a CUDA toolkit's.
    let cuda_include = cuda_runtime_include(&root);
    let cuda = lib.join("libc10_cuda.so").exists()
        && include.join("c10/cuda/CUDACachingAllocator.h").exists()
        && cuda_include.is_some();
    let mut build = cc::Build::new();
    build
        .cpp(true)
        .pic(true)
        .warnings(false)
        .include(&include)
        .include(include.join("torch/csrc/api/include"))
        .flag("-std=c++17")
        .flag(format!(
            "-D_GLIBCXX_USE_CXX11_ABI={}",
            std::env::var("LIBTORCH_CXX11_ABI").unwrap_or_else(|_| "1".into())
        ))
        .flag("-DGLOG_USE_GLOG_EXPORT")
        .file("csrc/telemetry.cpp");
    if let (true, Some(dir)) = (cuda, &cuda_include) {
        build.define("TOWERLAB_CUDA", None).include(dir);
    }
    build.compile("towerlab_telemetry");
    println!("cargo:rustc-link-search=native={}", lib.display());
    println!("cargo:rustc-link-lib=dylib=torch_cpu");
    println!("cargo:rustc-link-lib=dylib=c10");
    if cuda {
        println!("cargo:rustc-link-lib=dylib=c10_cuda");
    }
}

/// A folder holding `cuda_runtime.h`: the torch wheel's `../nvidia/*/include` (the
/// `nvidia-cuda-runtime` package), `CUDA_HOME`'s, or `/usr/local/cuda`'s.
fn cuda_runtime_include(torch: &std::path::Path) -> Option<std::path::PathBuf> {
    println!("cargo:rerun-if-env-changed=CUDA_HOME");
    let mut candidates = Vec::new();
    if let Some(site) = torch.parent() {
        if let Ok(entries) = std::fs::read_dir(site.join("nvidia")) {
            let mut dirs: Vec<_> = entries
                .flatten()
                .map(|e| e.path().join("include"))
                .collect();
            dirs.sort();
            candidates.extend(dirs);
            candidates.push(site.join("nvidia/cuda_runtime/include"));
        }
    }
    if let Ok(home) = std::env::var("CUDA_HOME") {
        candidates.push(std::path::Path::new(&home).join("include"));
    }
    candidates.push("/usr/local/cuda/include".into());
    candidates
        .into_iter()
        .find(|dir| dir.join("cuda_runtime.h").exists())
}
