// Shared build-script snippet, `include!`d by every package whose binaries or tests link tch.
// torch-sys adds no rpath to the final link, so without this the binaries would need
// LD_LIBRARY_PATH at run time. LIBTORCH comes from .cargo/config.toml.
fn emit_libtorch_rpath() {
    println!("cargo:rerun-if-env-changed=LIBTORCH");
    let Some(lib) = libtorch_lib() else {
        println!("cargo:warning=LIBTORCH is not set; run scripts/setup-libtorch.sh (make setup)");
        return;
    };
    println!("cargo:rustc-link-arg=-Wl,-rpath,{}", lib.display());
    // Nothing calls into libtorch_cuda.so directly, so the linker's default --as-needed drops it
    // and CUDA then reports no device even on a GPU machine. libtorch.so needs both the CPU and
    // the CUDA library; keeping it as a dependency loads the CUDA backend wherever it exists.
    if lib.join("libtorch.so").exists() {
        println!("cargo:rustc-link-search=native={}", lib.display());
        println!("cargo:rustc-link-arg=-Wl,--push-state,--no-as-needed,-ltorch,--pop-state");
    }
}

fn libtorch_lib() -> Option<std::path::PathBuf> {
    let libtorch = std::env::var("LIBTORCH").ok()?;
    let lib = std::path::Path::new(&libtorch).join("lib");
    // Resolve the .libtorch link so the rpath names the real, per-user cache directory.
    Some(std::fs::canonicalize(&lib).unwrap_or(lib))
}
