// Shared build-script snippet, `include!`d by every package whose binaries or tests link tch.
// torch-sys adds no rpath to the final link, so without this the binaries would need
// LD_LIBRARY_PATH at run time. LIBTORCH comes from .cargo/config.toml.
fn emit_libtorch_rpath() {
    println!("cargo:rerun-if-env-changed=LIBTORCH");
    let Ok(libtorch) = std::env::var("LIBTORCH") else {
        println!("cargo:warning=LIBTORCH is not set; run scripts/setup-libtorch.sh (make setup)");
        return;
    };
    let lib = std::path::Path::new(&libtorch).join("lib");
    // Resolve the .libtorch link so the rpath names the real, per-user cache directory.
    let lib = std::fs::canonicalize(&lib).unwrap_or(lib);
    println!("cargo:rustc-link-arg=-Wl,-rpath,{}", lib.display());
}
