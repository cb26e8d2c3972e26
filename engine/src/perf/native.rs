//! The C++ shim over what tch 0.24 has no API for (`csrc/telemetry.cpp`): libtorch's Kineto
//! profiler and the CUDA caching allocator's statistics. Every function here is safe: the shim
//! catches C++ exceptions and returns their message.

use std::ffi::{c_char, c_int, CString};
use std::path::Path;

#[allow(unsafe_code)]
mod ffi {
    use std::ffi::{c_char, c_int};

    extern "C" {
        pub fn towerlab_profiler_start(cuda: c_int, err: *mut c_char, len: usize) -> c_int;
        pub fn towerlab_profiler_stop(path: *const c_char, err: *mut c_char, len: usize) -> c_int;
        pub fn towerlab_has_cuda_allocator() -> c_int;
        pub fn towerlab_cuda_memory(
            device: c_int,
            out: *mut i64,
            err: *mut c_char,
            len: usize,
        ) -> c_int;
    }
}

/// A libtorch call through the shim that raised.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct NativeError(pub String);

const ERR_LEN: usize = 1024;

fn message(buf: &[c_char; ERR_LEN]) -> NativeError {
    let bytes: Vec<u8> = buf
        .iter()
        .take_while(|c| **c != 0)
        .map(|c| *c as u8)
        .collect();
    NativeError(String::from_utf8_lossy(&bytes).into_owned())
}

/// Starts libtorch's profiler (CPU ops with input shapes; `cuda` adds the device's kernels).
pub fn profiler_start(cuda: bool) -> Result<(), NativeError> {
    let mut err = [0 as c_char; ERR_LEN];
    #[allow(unsafe_code)]
    // SAFETY: `err` is a writable buffer of ERR_LEN bytes; the shim writes a NUL-terminated
    // message of at most ERR_LEN - 1 bytes.
    let rc = unsafe { ffi::towerlab_profiler_start(c_int::from(cuda), err.as_mut_ptr(), ERR_LEN) };
    if rc == 0 {
        Ok(())
    } else {
        Err(message(&err))
    }
}

/// Stops the profiler and writes its Chrome trace to `path`.
pub fn profiler_stop(path: &Path) -> Result<(), NativeError> {
    let c_path = CString::new(path.as_os_str().as_encoded_bytes())
        .map_err(|_| NativeError(format!("{} has a NUL byte", path.display())))?;
    let mut err = [0 as c_char; ERR_LEN];
    #[allow(unsafe_code)]
    // SAFETY: `c_path` is NUL-terminated and outlives the call; `err` as above.
    let rc = unsafe { ffi::towerlab_profiler_stop(c_path.as_ptr(), err.as_mut_ptr(), ERR_LEN) };
    if rc == 0 {
        Ok(())
    } else {
        Err(message(&err))
    }
}

/// Whether this build reads the CUDA caching allocator (libtorch shipped `c10_cuda`).
pub fn has_cuda_allocator() -> bool {
    #[allow(unsafe_code)]
    // SAFETY: no arguments; returns a constant.
    let rc = unsafe { ffi::towerlab_has_cuda_allocator() };
    rc != 0
}

/// The CUDA caching allocator's bytes on `device`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AllocatorBytes {
    pub allocated: i64,
    pub reserved: i64,
    pub peak_allocated: i64,
}

/// The caching allocator's statistics of CUDA `device`; `None` when this build has no CUDA
/// allocator.
pub fn cuda_memory(device: usize) -> Result<Option<AllocatorBytes>, NativeError> {
    let device = c_int::try_from(device).map_err(|_| NativeError(format!("device {device}")))?;
    let mut out = [0i64; 3];
    let mut err = [0 as c_char; ERR_LEN];
    #[allow(unsafe_code)]
    // SAFETY: `out` holds the three values the shim writes; `err` as above.
    let rc =
        unsafe { ffi::towerlab_cuda_memory(device, out.as_mut_ptr(), err.as_mut_ptr(), ERR_LEN) };
    match rc {
        0 => Ok(Some(AllocatorBytes {
            allocated: out[0],
            reserved: out[1],
            peak_allocated: out[2],
        })),
        2 => Ok(None),
        _ => Err(message(&err)),
    }
}
