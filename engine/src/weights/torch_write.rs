//! Writing a state dict as a `torch.save` zip file in the PyTorch-Lightning layout
//! (`{"state_dict": OrderedDict(...)}`), so that the reference code (`torch.load(path)
//! ["state_dict"]`) can read TowerLab's weights.

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::Path;

use tch::{Device, Kind, Tensor};
use zip::write::FileOptions;
use zip::CompressionMethod;

use super::error::WeightsError;

/// The legacy typed-storage class torch.save names for a dtype.
fn storage_class(kind: Kind) -> Option<&'static str> {
    Some(match kind {
        Kind::Float => "FloatStorage",
        Kind::Double => "DoubleStorage",
        Kind::Half => "HalfStorage",
        Kind::BFloat16 => "BFloat16Storage",
        Kind::Int64 => "LongStorage",
        Kind::Int => "IntStorage",
        Kind::Int16 => "ShortStorage",
        Kind::Int8 => "CharStorage",
        Kind::Uint8 => "ByteStorage",
        Kind::Bool => "BoolStorage",
        _ => return None,
    })
}

/// A pickle program under construction (protocol 2, what torch.save writes).
struct Pickler {
    out: Vec<u8>,
}

impl Pickler {
    fn op(&mut self, b: u8) {
        self.out.push(b);
    }

    fn global(&mut self, module: &str, name: &str) {
        self.op(b'c');
        self.out.extend_from_slice(module.as_bytes());
        self.op(b'\n');
        self.out.extend_from_slice(name.as_bytes());
        self.op(b'\n');
    }

    fn string(&mut self, s: &str) {
        self.op(b'X');
        self.out.extend_from_slice(&(s.len() as u32).to_le_bytes());
        self.out.extend_from_slice(s.as_bytes());
    }

    fn int(&mut self, v: i64) {
        if (0..256).contains(&v) {
            self.op(b'K');
            self.op(v as u8);
        } else if i32::try_from(v).is_ok() {
            self.op(b'J');
            self.out.extend_from_slice(&(v as i32).to_le_bytes());
        } else {
            self.op(0x8a);
            self.op(8);
            self.out.extend_from_slice(&v.to_le_bytes());
        }
    }

    fn int_tuple(&mut self, v: &[i64]) {
        self.op(b'(');
        for &x in v {
            self.int(x);
        }
        self.op(b't');
    }

    fn empty_ordered_dict(&mut self) {
        self.global("collections", "OrderedDict");
        self.op(b')');
        self.op(b'R');
    }
}

/// Writes `tensors` (reference names) as a Lightning-layout `.ckpt`.
pub fn write_lightning_ckpt(path: &Path, tensors: &[(String, Tensor)]) -> Result<(), WeightsError> {
    let archive = "archive";
    let mut p = Pickler { out: Vec::new() };
    p.op(0x80);
    p.op(2);
    p.op(b'}');
    p.string("state_dict");
    p.empty_ordered_dict();
    let mut storages: Vec<Tensor> = Vec::with_capacity(tensors.len());
    if !tensors.is_empty() {
        p.op(b'(');
    }
    for (i, (name, t)) in tensors.iter().enumerate() {
        let class = storage_class(t.kind()).ok_or_else(|| WeightsError::Unsupported {
            path: path.into(),
            detail: format!("{name}: cannot write tensors of kind {:?}", t.kind()),
        })?;
        let t = t
            .f_to_device(Device::Cpu)
            .and_then(|t| t.f_contiguous())
            .map_err(|e| WeightsError::torch(path, name.clone(), e))?;
        let size = t.size();
        // Row-major strides of a contiguous tensor.
        let mut stride = vec![1i64; size.len()];
        for d in (0..size.len().saturating_sub(1)).rev() {
            stride[d] = stride[d + 1] * size[d + 1].max(1);
        }
        p.string(name);
        p.global("torch._utils", "_rebuild_tensor_v2");
        p.op(b'(');
        // Persistent id: ('storage', torch.FloatStorage, key, 'cpu', numel).
        p.op(b'(');
        p.string("storage");
        p.global("torch", class);
        p.string(&i.to_string());
        p.string("cpu");
        p.int(t.numel() as i64);
        p.op(b't');
        p.op(b'Q');
        p.int(0);
        p.int_tuple(&size);
        p.int_tuple(&stride);
        p.op(0x89); // requires_grad = False
        p.empty_ordered_dict();
        p.op(b't');
        p.op(b'R');
        storages.push(t);
    }
    if !tensors.is_empty() {
        p.op(b'u');
    }
    p.op(b's');
    p.op(b'.');

    let io = |e: std::io::Error| WeightsError::io(path, e);
    let zerr = |e: zip::result::ZipError| WeightsError::Unsupported {
        path: path.into(),
        detail: format!("writing the archive: {e}"),
    };
    let file = File::create(path).map_err(io)?;
    let mut zip = zip::ZipWriter::new(BufWriter::new(file));
    let stored = FileOptions::default().compression_method(CompressionMethod::Stored);
    zip.start_file(format!("{archive}/data.pkl"), stored)
        .map_err(zerr)?;
    zip.write_all(&p.out).map_err(io)?;
    zip.start_file(format!("{archive}/byteorder"), stored)
        .map_err(zerr)?;
    zip.write_all(b"little").map_err(io)?;
    for (i, t) in storages.iter().enumerate() {
        let numel = t.numel();
        let mut bytes = vec![0u8; numel * t.kind().elt_size_in_bytes()];
        t.f_copy_data_u8(&mut bytes, numel)
            .map_err(|e| WeightsError::torch(path, tensors[i].0.clone(), e))?;
        let opts = stored.large_file(bytes.len() >= u32::MAX as usize);
        // torch aligns storages to 64 bytes so that they can be memory-mapped.
        zip.start_file_aligned(format!("{archive}/data/{i}"), opts, 64)
            .map_err(zerr)?;
        zip.write_all(&bytes).map_err(io)?;
    }
    zip.start_file(format!("{archive}/version"), stored)
        .map_err(zerr)?;
    zip.write_all(b"3\n").map_err(io)?;
    zip.finish().map_err(zerr)?.flush().map_err(io)?;
    Ok(())
}
