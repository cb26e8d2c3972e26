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

/// `torch.serialization.MAGIC_NUMBER`, the first pickle of a legacy (non-zip) file.
const LEGACY_MAGIC: u128 = 0x1950a86a20f9469cfc6c;

/// True when `head` starts like a legacy (pre-1.6 default, or `_use_new_zipfile_serialization=
/// False`) torch file: a pickled magic number.
pub fn is_legacy(head: &[u8]) -> bool {
    head.len() >= 4 && head[0] == 0x80 && head[1] == 2 && head[2] == 0x8a && head[3] == 10
}

/// Reads the state dict of a torch file: the zip format, or the legacy stream of pickles and
/// raw storages.
pub fn read_torch(path: &Path) -> Result<(TorchLayout, Vec<(String, Tensor)>), WeightsError> {
    let mut head = [0u8; 4];
    {
        let mut f = File::open(path).map_err(|e| WeightsError::io(path, e))?;
        // A short file is left to the zip reader's error.
        let _ = f.read(&mut head).map_err(|e| WeightsError::io(path, e))?;
    }
    if is_legacy(&head) {
        return read_legacy(path);
    }
    read_zip(path)
}

fn read_zip(path: &Path) -> Result<(TorchLayout, Vec<(String, Tensor)>), WeightsError> {
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

    let (layout, dict) = select(&root, path)?;
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

fn select(
    root: &Value,
    path: &Path,
) -> Result<(TorchLayout, Vec<(String, TensorRef)>), WeightsError> {
    select_state_dict(root).ok_or_else(|| {
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
    })
}

/// The legacy format: pickles of the magic number, the protocol version and system info, then
/// the object (storages as persistent ids), then the list of storage keys, then each storage as
/// an int64 element count followed by its raw bytes, in that list's order.
fn read_legacy(path: &Path) -> Result<(TorchLayout, Vec<(String, Tensor)>), WeightsError> {
    let data = std::fs::read(path).map_err(|e| WeightsError::io(path, e))?;
    let corrupt =
        |what: &str, e: pickle::PickleError| WeightsError::corrupt(path, format!("{what}: {e}"));
    let mut pos = 0;
    let magic = pickle::unpickle_prefix(&data).map_err(|e| corrupt("magic number", e))?;
    pos += magic.end;
    let is_magic = match &magic.value {
        Value::BigInt(b) => {
            let mut a = [0u8; 16];
            a[..b.len().min(16)].copy_from_slice(&b[..b.len().min(16)]);
            u128::from_le_bytes(a) == LEGACY_MAGIC
        }
        _ => false,
    };
    if !is_magic {
        return Err(WeightsError::UnknownFormat {
            path: path.into(),
            detail: "a pickle, but not a torch.save file".into(),
        });
    }
    for what in ["protocol version", "system info"] {
        let u = pickle::unpickle_prefix(&data[pos..]).map_err(|e| corrupt(what, e))?;
        pos += u.end;
    }
    let main = pickle::unpickle_prefix(&data[pos..]).map_err(|e| corrupt("object", e))?;
    pos += main.end;
    let keys = pickle::unpickle_prefix(&data[pos..]).map_err(|e| corrupt("storage keys", e))?;
    pos += keys.end;
    let key_list: Vec<String> = match &keys.value {
        Value::List(l) => l
            .borrow()
            .iter()
            .filter_map(|v| v.as_str().map(str::to_string))
            .collect(),
        _ => {
            return Err(WeightsError::corrupt(
                path,
                "storage key list is not a list",
            ))
        }
    };
    // Where each storage's bytes are.
    let mut spans: HashMap<String, (usize, usize)> = HashMap::new();
    for key in &key_list {
        let st = main
            .storages
            .iter()
            .find(|s| &s.key == key)
            .ok_or_else(|| WeightsError::corrupt(path, format!("storage {key} is never used")))?;
        let count = data.get(pos..pos + 8).ok_or_else(|| {
            WeightsError::corrupt(path, format!("storage {key}: file ends early"))
        })?;
        let mut a = [0u8; 8];
        a.copy_from_slice(count);
        let numel = u64::from_le_bytes(a) as usize;
        let len = numel.saturating_mul(element_size(st.kind));
        let start = pos + 8;
        if start.saturating_add(len) > data.len() {
            return Err(WeightsError::corrupt(
                path,
                format!("storage {key}: {len} bytes expected, file ends early"),
            ));
        }
        spans.insert(key.clone(), (start, len));
        pos = start + len;
    }
    let (layout, dict) = select(&main.value, path)?;
    let mut out = Vec::with_capacity(dict.len());
    for (name, tref) in dict {
        let (start, len) = spans.get(&tref.storage.key).copied().ok_or_else(|| {
            WeightsError::key(
                path,
                &name,
                format!("storage {} not in the file", tref.storage.key),
            )
        })?;
        let t = materialise(&tref, &data[start..start + len])
            .map_err(|detail| WeightsError::key(path, &name, detail))?;
        out.push((name, t));
    }
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
