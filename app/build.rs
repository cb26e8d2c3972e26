include!("../build-support/rpath.rs");

fn main() {
    // Without the engine nothing links libtorch (the store and report benchmarks).
    if std::env::var_os("CARGO_FEATURE_ENGINE").is_some() {
        emit_libtorch_rpath();
    }
}
