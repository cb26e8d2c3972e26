//! The files of a model folder: which weights file, whether a safetensors file is whole, and
//! content digests of local files.

use std::collections::HashMap;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::{Mutex, OnceLock};

use serde_json::Value as Json;
use sha2::{Digest, Sha256};

use super::{file_err, ExpertError, Role};

/// Weights file names of a Hugging Face model folder, in order of preference.
pub const WEIGHT_FILES: [&str; 2] = ["model.safetensors", "pytorch_model.bin"];

/// Checks the safetensors header against the file's length: a download cut short is found
/// before anything runs, without reading the tensors.
pub fn check_safetensors(path: &Path) -> Result<(), ExpertError> {
    let meta = std::fs::metadata(path).map_err(|e| file_err(path, e.to_string()))?;
    let len = meta.len();
    let mut f = std::fs::File::open(path).map_err(|e| file_err(path, e.to_string()))?;
    let mut n = [0u8; 8];
    let truncated = |detail: String| {
        file_err(
            path,
            format!("corrupt or truncated safetensors file ({detail}); delete it and fetch the model again"),
        )
    };
    f.read_exact(&mut n)
        .map_err(|_| truncated(format!("{len} bytes, no header")))?;
    let header_len = u64::from_le_bytes(n);
    if header_len > 100_000_000 || 8 + header_len > len {
        return Err(truncated(format!(
            "{len} bytes, shorter than its {header_len}-byte header"
        )));
    }
    let mut header = vec![0u8; header_len as usize];
    f.read_exact(&mut header)
        .map_err(|e| truncated(e.to_string()))?;
    let header: Json = serde_json::from_slice(&header)
        .map_err(|e| truncated(format!("unreadable header: {e}")))?;
    let end = header
        .as_object()
        .into_iter()
        .flatten()
        .filter(|(k, _)| *k != "__metadata__")
        .filter_map(|(_, t)| t.get("data_offsets")?.get(1)?.as_u64())
        .max()
        .unwrap_or(0);
    let want = 8 + header_len + end;
    if len < want {
        return Err(truncated(format!(
            "{len} bytes, its header describes {want}"
        )));
    }
    Ok(())
}

/// The weights file of a model folder.
pub fn weights_file(dir: &Path) -> Option<PathBuf> {
    WEIGHT_FILES
        .iter()
        .map(|f| dir.join(f))
        .find(|p| p.is_file())
}

/// SHA-256 over the files a run reads from a local model folder (or of one file),
/// remembered per path, size and modification time so a plan hashes each once.
pub fn digest_files(role: Role, path: &Path) -> Result<String, ExpertError> {
    let mut files: Vec<PathBuf> = if path.is_dir() {
        role.files().iter().map(|f| path.join(f)).collect()
    } else {
        Vec::new()
    };
    match weights_file(path) {
        Some(w) => files.push(w),
        None if path.is_file() => files.push(path.to_path_buf()),
        None => {}
    }
    let mut h = Sha256::new();
    for f in files.iter().filter(|f| f.is_file()) {
        let name = f.file_name().map(|n| n.to_string_lossy().into_owned());
        h.update(name.unwrap_or_default().as_bytes());
        h.update(file_sha256(f)?.as_bytes());
    }
    Ok(hex(&h.finalize()))
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// One file's SHA-256, memoised by path, size and modification time.
pub fn file_sha256(path: &Path) -> Result<String, ExpertError> {
    type Memo = Mutex<HashMap<(PathBuf, u64, u128), String>>;
    static MEMO: OnceLock<Memo> = OnceLock::new();
    let meta = std::fs::metadata(path).map_err(|e| file_err(path, e.to_string()))?;
    let mtime = meta
        .modified()
        .ok()
        .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
        .map_or(0, |d| d.as_nanos());
    let key = (path.to_path_buf(), meta.len(), mtime);
    let memo = MEMO.get_or_init(Default::default);
    if let Some(d) = memo.lock().ok().and_then(|m| m.get(&key).cloned()) {
        return Ok(d);
    }
    let mut f = std::fs::File::open(path).map_err(|e| file_err(path, e.to_string()))?;
    let mut h = Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = f
            .read(&mut buf)
            .map_err(|e| file_err(path, e.to_string()))?;
        if n == 0 {
            break;
        }
        h.update(&buf[..n]);
    }
    let d = hex(&h.finalize());
    if let Ok(mut m) = memo.lock() {
        m.insert(key, d.clone());
    }
    Ok(d)
}
