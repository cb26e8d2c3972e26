//! `torch.save` files (zip archives: `<name>/data.pkl` + `<name>/data/<key>` storages), read
//! without Python: the reference's Lightning `.ckpt` (`{"state_dict": ..., "optimizer_states":
//! ...}`) and plain state dicts (`.pt`, `.bin`).

use std::collections::HashMap;
use std::fs::File;
use std::io::Read;
use std::path::Path;

use tch::{Kind, Tensor};

use super::error::WeightsError;
use super::pickle::{self, TensorRef, Value};

/// What kind of torch file was read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TorchLayout {
    /// A PyTorch-Lightning checkpoint: the tensors come from its `state_dict` entry.
    Lightning,
    /// A plain `torch.save(state_dict)`.
    StateDict,
}

/// Reads the state dict of a torch zip file. Only the storages the state dict uses are read.
pub fn read_torch(path: &Path) -> Result<(TorchLayout, Vec<(String, Tensor)>), WeightsError> {
    let file = File::open(path).map_err(|e| WeightsError::io(path, e))?;
    let mut zip = zip::ZipArchive::new(file).map_err(|e| zip_error(path, e))?;
    let pkl_name = zip
        .file_names()
        .map(str::to_string)
        .find(|n| n.ends_with("data.pkl") && n.matches('/').count() <= 1)
        .ok_or_else(|| WeightsError::Unsupported {
            path: path.into(),
            detail: "zip archive without data.pkl: not a torch.save file".into(),
        })?;
    let prefix = pkl_name.trim_end_matches("data.pkl").to_string();
    if let Ok(mut f) = zip.by_name(&format!("{prefix}byteorder")) {
        let mut order = String::new();
        // An unreadable byteorder entry is caught by the pickle read below.
        let _ = f.read_to_string(&mut order);
        if order.trim() == "big" {
            return Err(WeightsError::Unsupported {
                path: path.into(),
                detail: "big-endian torch files are not supported".into(),
            });
        }
    }
    let pkl = read_entry(&mut zip, &pkl_name, path)?;
    let root = pickle::unpickle(&pkl)
        .map_err(|e| WeightsError::corrupt(path, format!("data.pkl: {e}")))?;

    let (layout, dict) = select_state_dict(&root).ok_or_else(|| {
        let keys = root
            .dict_items()
            .map(|items| {
                items
                    .iter()
                    .filter_map(|(k, _)| k.as_str().map(str::to_string))
                    .collect::<Vec<_>>()
                    .join(", ")
            })
            .unwrap_or_default();
        WeightsError::Unsupported {
            path: path.into(),
            detail: format!("no state_dict of tensors found (top-level keys: [{keys}])"),
        }
    })?;

    // Storage by storage, so that only one storage's bytes are in memory besides the tensors.
    let mut by_storage: HashMap<&str, Vec<usize>> = HashMap::new();
    let mut order: Vec<&str> = Vec::new();
    for (i, (_, tref)) in dict.iter().enumerate() {
        let key = tref.storage.key.as_str();
        by_storage
            .entry(key)
            .or_insert_with(|| {
                order.push(key);
                Vec::new()
            })
            .push(i);
    }
    let mut tensors: Vec<Option<Tensor>> = (0..dict.len()).map(|_| None).collect();
    for key in order {
        let bytes = read_entry(&mut zip, &format!("{prefix}data/{key}"), path)?;
        for &i in &by_storage[key] {
            let (name, tref) = &dict[i];
            let t = materialise(tref, &bytes).map_err(|detail| WeightsError::Key {
                path: path.into(),
                key: name.clone(),
                detail,
            })?;
            tensors[i] = Some(t);
        }
    }
    let out: Vec<(String, Tensor)> = dict
        .iter()
        .zip(tensors)
        .filter_map(|((name, _), t)| t.map(|t| (name.clone(), t)))
        .collect();
    Ok((layout, out))
}

/// The Lightning `state_dict` entry, or the top-level dict when all its values are tensors.
fn select_state_dict(root: &Value) -> Option<(TorchLayout, Vec<(String, TensorRef)>)> {
    if let Some(sd) = root.get("state_dict") {
        return tensor_dict(&sd).map(|d| (TorchLayout::Lightning, d));
    }
    tensor_dict(root).map(|d| (TorchLayout::StateDict, d))
}

fn tensor_dict(v: &Value) -> Option<Vec<(String, TensorRef)>> {
    let items = v.dict_items()?;
    let mut out = Vec::with_capacity(items.len());
    for (k, v) in items {
        match (k, v) {
            (Value::Str(k), Value::Tensor(t)) => out.push((k, t)),
            _ => return None,
        }
    }
    Some(out)
}

fn read_entry(
    zip: &mut zip::ZipArchive<File>,
    name: &str,
    path: &Path,
) -> Result<Vec<u8>, WeightsError> {
    let mut f = zip.by_name(name).map_err(|e| match e {
        zip::result::ZipError::FileNotFound => {
            WeightsError::corrupt(path, format!("archive entry {name} is missing"))
        }
        other => zip_error(path, other),
    })?;
    let mut buf = Vec::with_capacity(f.size() as usize);
    f.read_to_end(&mut buf)
        .map_err(|e| WeightsError::corrupt(path, format!("reading {name}: {e}")))?;
    Ok(buf)
}

fn zip_error(path: &Path, e: zip::result::ZipError) -> WeightsError {
    match e {
        zip::result::ZipError::Io(io) => WeightsError::corrupt(path, io.to_string()),
        other => WeightsError::corrupt(path, other.to_string()),
    }
}

fn element_size(kind: Kind) -> usize {
    match kind {
        Kind::Uint8 | Kind::Int8 | Kind::Bool => 1,
        Kind::Int16 | Kind::Half | Kind::BFloat16 => 2,
        Kind::Int | Kind::Float => 4,
        Kind::Int64 | Kind::Double | Kind::ComplexFloat => 8,
        Kind::ComplexDouble => 16,
        _ => 4,
    }
}

/// Builds a contiguous tensor from a strided view of its storage bytes, checking every bound
/// first so that a damaged file gives an error rather than a libtorch abort.
fn materialise(t: &TensorRef, bytes: &[u8]) -> Result<Tensor, String> {
    let kind = t.storage.kind;
    let esize = element_size(kind);
    let available = (bytes.len() / esize) as i64;
    if available < t.storage.numel {
        return Err(format!(
            "storage {} holds {} elements, {} expected (truncated file?)",
            t.storage.key, available, t.storage.numel
        ));
    }
    if t.size.len() != t.stride.len() || t.size.iter().any(|&s| s < 0) || t.offset < 0 {
        return Err(format!(
            "invalid tensor geometry: size {:?}, stride {:?}, offset {}",
            t.size, t.stride, t.offset
        ));
    }
    let numel: i64 = t.size.iter().product();
    if numel > 0 {
        let last = t.offset
            + t.size
                .iter()
                .zip(&t.stride)
                .map(|(&s, &st)| (s - 1) * st)
                .sum::<i64>();
        if t.stride.iter().any(|&s| s < 0) || last >= t.storage.numel {
            return Err(format!(
                "tensor view (size {:?}, stride {:?}, offset {}) exceeds its storage of {} elements",
                t.size, t.stride, t.offset, t.storage.numel
            ));
        }
    }
    let used = (t.storage.numel as usize) * esize;
    let flat = Tensor::f_from_data_size(&bytes[..used], &[t.storage.numel], kind)
        .map_err(|e| e.to_string())?;
    if numel == 0 {
        return Tensor::f_empty(&t.size, (kind, tch::Device::Cpu)).map_err(|e| e.to_string());
    }
    flat.f_as_strided(&t.size, &t.stride, Some(t.offset))
        .and_then(|v| v.f_contiguous())
        .map_err(|e| e.to_string())
}
