//! Reading a weights file of any supported format into tensors under reference names.

use std::io::Read;
use std::path::{Path, PathBuf};

use tch::Tensor;

use super::error::WeightsError;
use super::hf::{self, HfModel};
use super::torch_file::{self, TorchLayout};

/// The container a checkpoint came in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Safetensors,
    /// PyTorch-Lightning `.ckpt` (its `state_dict`).
    LightningCkpt,
    /// `torch.save(state_dict)` (`.pt`, `.bin`), zip or legacy format.
    TorchStateDict,
}

impl Format {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Safetensors => "safetensors",
            Self::LightningCkpt => "PyTorch Lightning checkpoint",
            Self::TorchStateDict => "torch state dict",
        }
    }
}

/// A checkpoint read into memory, with its tensors renamed to the reference key names.
#[derive(Debug)]
pub struct Checkpoint {
    /// The file the tensors came from.
    pub path: PathBuf,
    pub format: Format,
    /// Set when the file held a Hugging Face model whose names were mapped.
    pub hf_model: Option<HfModel>,
    /// The Hugging Face `config.json` beside the weights, when there was one.
    pub hf_config: Option<serde_json::Value>,
    /// Tensors under reference names, in file order.
    pub tensors: Vec<(String, Tensor)>,
    /// Keys of the file with no reference counterpart, left out (e.g. CLIP's text tower).
    pub dropped: Vec<String>,
}

impl Checkpoint {
    /// The reference components this checkpoint can provide, when it holds only some of a model
    /// (a Hugging Face backbone); `None` for a whole model.
    pub fn provides(&self) -> Option<&'static [&'static str]> {
        self.hf_model.and_then(HfModel::provides)
    }

    pub fn get(&self, key: &str) -> Option<&Tensor> {
        self.tensors.iter().find(|(k, _)| k == key).map(|(_, t)| t)
    }

    /// A one-line description: format and, for Hugging Face files, the model.
    pub fn describe(&self) -> String {
        match self.hf_model {
            Some(m) => format!("{}, {}", m.as_str(), self.format.as_str()),
            None => self.format.as_str().to_string(),
        }
    }
}

/// Reads a safetensors file as it is (no renaming).
pub fn read_safetensors(path: &Path) -> Result<Vec<(String, Tensor)>, WeightsError> {
    Tensor::read_safetensors(path).map_err(|e| match e {
        tch::TchError::Io(io) => WeightsError::io(path, io),
        tch::TchError::SafeTensorError { err, .. } => {
            WeightsError::corrupt(path, format!("safetensors: {err}"))
        }
        other => WeightsError::corrupt(path, other.to_string()),
    })
}

/// Writes named tensors to a safetensors file (made contiguous first).
pub fn write_safetensors(path: &Path, tensors: &[(String, Tensor)]) -> Result<(), WeightsError> {
    let contiguous: Vec<(String, Tensor)> = tensors
        .iter()
        .map(|(k, t)| (k.clone(), t.contiguous()))
        .collect();
    Tensor::write_safetensors(&contiguous, path).map_err(|e| match e {
        tch::TchError::Io(io) => WeightsError::io(path, io),
        other => WeightsError::Unsupported {
            path: path.into(),
            detail: format!("writing safetensors: {other}"),
        },
    })
}

/// Reads a `torch.save` file's state dict as it is (no renaming).
pub fn read_torch(path: &Path) -> Result<Vec<(String, Tensor)>, WeightsError> {
    torch_file::read_torch(path).map(|(_, t)| t)
}

/// Reads weights from `path`: a safetensors file, a Lightning `.ckpt`, a torch state dict, or a
/// Hugging Face model directory (`config.json` + `model.safetensors` / `pytorch_model.bin`).
/// Hugging Face names are mapped to the reference names.
pub fn read(path: &Path) -> Result<Checkpoint, WeightsError> {
    let (file, config) = resolve(path)?;
    let (format, raw) = read_any(&file)?;
    let hf_model = match &config {
        Some(cfg) => cfg
            .get("model_type")
            .and_then(|v| v.as_str())
            .and_then(HfModel::from_model_type)
            .or_else(|| HfModel::detect(raw.iter().map(|(k, _)| k.as_str()))),
        None => HfModel::detect(raw.iter().map(|(k, _)| k.as_str())),
    };
    let (tensors, dropped) = match hf_model {
        Some(m) => {
            let mapped = hf::map_hf(m, raw, &file)?;
            (mapped.tensors, mapped.dropped)
        }
        None => (raw, Vec::new()),
    };
    super::arch::check_ranks(&file, &tensors)?;
    Ok(Checkpoint {
        path: file,
        format,
        hf_model,
        hf_config: config,
        tensors,
        dropped,
    })
}

/// A directory becomes its weights file; a `config.json` beside the weights is read too.
fn resolve(path: &Path) -> Result<(PathBuf, Option<serde_json::Value>), WeightsError> {
    let (file, dir) = if path.is_dir() {
        let candidates = ["model.safetensors", "pytorch_model.bin"];
        let file = candidates
            .iter()
            .map(|c| path.join(c))
            .find(|p| p.is_file())
            .ok_or_else(|| WeightsError::UnknownFormat {
                path: path.into(),
                detail: "directory without model.safetensors or pytorch_model.bin".into(),
            })?;
        (file, path.to_path_buf())
    } else {
        let dir = path.parent().unwrap_or(Path::new(".")).to_path_buf();
        (path.to_path_buf(), dir)
    };
    let config_path = dir.join("config.json");
    let is_hf_name = file
        .file_name()
        .and_then(|n| n.to_str())
        .is_some_and(|n| n == "model.safetensors" || n == "pytorch_model.bin");
    let config = if is_hf_name && config_path.is_file() {
        let text =
            std::fs::read_to_string(&config_path).map_err(|e| WeightsError::io(&config_path, e))?;
        Some(
            serde_json::from_str(&text)
                .map_err(|e| WeightsError::corrupt(&config_path, e.to_string()))?,
        )
    } else {
        None
    };
    Ok((file, config))
}

/// Detects the container from the first bytes, not the extension.
fn read_any(path: &Path) -> Result<(Format, Vec<(String, Tensor)>), WeightsError> {
    let mut head = [0u8; 9];
    let n = {
        let mut f = std::fs::File::open(path).map_err(|e| WeightsError::io(path, e))?;
        let mut n = 0;
        while n < head.len() {
            let r = f
                .read(&mut head[n..])
                .map_err(|e| WeightsError::io(path, e))?;
            if r == 0 {
                break;
            }
            n += r;
        }
        n
    };
    if (n >= 4 && &head[..4] == b"PK\x03\x04") || torch_file::is_legacy(&head[..n]) {
        let (layout, tensors) = torch_file::read_torch(path)?;
        let format = match layout {
            TorchLayout::Lightning => Format::LightningCkpt,
            TorchLayout::StateDict => Format::TorchStateDict,
        };
        return Ok((format, tensors));
    }
    if n == 9 && head[8] == b'{' {
        return Ok((Format::Safetensors, read_safetensors(path)?));
    }
    if n >= 2 && head[0] == 0x80 && head[1] <= 5 {
        return Err(WeightsError::UnknownFormat {
            path: path.into(),
            detail: "a pickle, but not a torch.save file".into(),
        });
    }
    Err(WeightsError::UnknownFormat {
        path: path.into(),
        detail: if n == 0 {
            "empty file".into()
        } else {
            "expected safetensors or a torch zip checkpoint".into()
        },
    })
}
