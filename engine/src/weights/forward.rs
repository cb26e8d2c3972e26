//! One eval-mode forward pass from files: a model built from `Settings`, weights loaded strictly,
//! inputs from safetensors (`text_ids`, `text_masks`, `image`), outputs to safetensors
//! (`text_feats`, `image_feats`, `cls_feats` and the managers' weights).

use std::path::{Path, PathBuf};

use experiments::Settings;
use tch::nn::VarStore;
use tch::{Device, Kind, Tensor};

use super::error::WeightsError;
use super::load::{load_into, LoadOptions, LoadReport};
use super::read::{read, read_safetensors, write_safetensors};
use crate::model::{ForwardOptions, ModelConfig, TowerModel};

/// Where the pieces of a forward pass come from and go.
#[derive(Debug, Clone)]
pub struct ForwardRequest {
    pub settings: Settings,
    pub weights: PathBuf,
    pub inputs: PathBuf,
    pub output: PathBuf,
    pub load: LoadOptions,
}

/// What a forward pass did.
#[derive(Debug)]
pub struct ForwardSummary {
    pub device: Device,
    pub load: LoadReport,
    /// Output names and shapes, in file order.
    pub outputs: Vec<(String, Vec<i64>)>,
}

/// `auto` (first CUDA device, else CPU), `cpu`, `cuda` or `cuda:N`.
pub fn parse_device(spec: &str) -> Result<Device, String> {
    match spec {
        "auto" => Ok(Device::cuda_if_available()),
        "cpu" => Ok(Device::Cpu),
        "cuda" => Ok(Device::Cuda(0)),
        s => s
            .strip_prefix("cuda:")
            .and_then(|n| n.parse().ok())
            .map(Device::Cuda)
            .ok_or_else(|| format!("device `{s}`: expected auto, cpu, cuda or cuda:N")),
    }
}

fn input(
    tensors: &[(String, Tensor)],
    path: &Path,
    key: &str,
    kind: Kind,
    device: Device,
) -> Result<Tensor, WeightsError> {
    let t = tensors
        .iter()
        .find(|(k, _)| k == key)
        .map(|(_, t)| t)
        .ok_or_else(|| {
            let found: Vec<&str> = tensors.iter().map(|(k, _)| k.as_str()).collect();
            WeightsError::key(
                path,
                key,
                format!(
                    "missing input (expected text_ids, text_masks, image; found {})",
                    found.join(", ")
                ),
            )
        })?;
    if kind == Kind::Int64 && t.is_floating_point() {
        return Err(WeightsError::key(
            path,
            key,
            format!("expected integers, found {:?}", t.kind()),
        ));
    }
    t.f_to_kind(kind)
        .and_then(|t| t.f_to_device(device))
        .map_err(|e| WeightsError::torch(path, key, e))
}

/// Runs the request. Model-level problems (an input of the wrong shape, an invalid config) come
/// back as [`WeightsError::Model`].
pub fn forward_files(req: &ForwardRequest) -> Result<ForwardSummary, WeightsError> {
    let device = parse_device(&req.settings.device).map_err(WeightsError::Model)?;
    let cfg = ModelConfig::from_settings(&req.settings)
        .map_err(|e| WeightsError::Model(format!("config: {e}")))?;
    let ckpt = read(&req.weights)?;
    let inputs = read_safetensors(&req.inputs)?;
    let mut vs = VarStore::new(device);
    let model =
        TowerModel::new(&vs.root(), &cfg).map_err(|e| WeightsError::Model(e.to_string()))?;
    let load = load_into(&mut vs, &ckpt, &req.load)?;

    let ids = input(&inputs, &req.inputs, "text_ids", Kind::Int64, device)?;
    let masks = input(&inputs, &req.inputs, "text_masks", Kind::Int64, device)?;
    let image = input(&inputs, &req.inputs, "image", Kind::Float, device)?;
    let out = tch::no_grad(|| model.forward(&ids, &masks, &image, ForwardOptions::eval()))
        .map_err(|e| WeightsError::Model(format!("{}: {e}", req.inputs.display())))?;

    let mut tensors: Vec<(String, Tensor)> = vec![
        ("text_feats".into(), out.text_feats),
        ("image_feats".into(), out.image_feats),
        ("cls_feats".into(), out.cls_feats),
    ];
    if let Some(w) = &out.manager_weights {
        for (tower, layers) in [("text", &w.text), ("image", &w.image)] {
            for (l, lw) in layers.iter().enumerate() {
                tensors.push((
                    format!("manager_weights.{tower}.{l}.experts"),
                    Tensor::from_slice(&lw.experts).to_kind(Kind::Float),
                ));
                if !lw.cross.is_empty() {
                    tensors.push((
                        format!("manager_weights.{tower}.{l}.cross"),
                        Tensor::from_slice(&lw.cross).to_kind(Kind::Float),
                    ));
                }
            }
        }
    }
    let tensors: Vec<(String, Tensor)> = tensors
        .into_iter()
        .map(|(k, t)| (k, t.to_kind(Kind::Float).to_device(Device::Cpu)))
        .collect();
    write_safetensors(&req.output, &tensors)?;
    Ok(ForwardSummary {
        device,
        load,
        outputs: tensors.iter().map(|(k, t)| (k.clone(), t.size())).collect(),
    })
}
