//! One eval-mode forward pass from files: a model built from `Settings`, weights loaded strictly,
//! inputs from safetensors (`text_ids`, `text_masks`, `image`), outputs to safetensors
//! (`text_feats`, `image_feats`, `cls_feats` and the managers' weights, as the reference's
//! `infer`; `retrieval.cls_feats` and, with ITC heads, `retrieval.itc_text` / `.itc_image`, as
//! its retrieval path `infer_text` + `infer_image` + `infer_fusion`).

use std::path::{Path, PathBuf};

use experiments::Settings;
use tch::nn::VarStore;
use tch::{Device, Kind, Tensor};

use super::arch::Architecture;
use super::error::WeightsError;
use super::load::{load_into, LoadOptions, LoadReport};
use super::read::{read, read_safetensors, write_safetensors, Checkpoint};
use crate::model::{ForwardOptions, ModelConfig, TowerModel};

/// Where the pieces of a forward pass come from and go.
#[derive(Debug, Clone)]
pub struct ForwardRequest {
    pub settings: Settings,
    /// The settings keys the caller chose. With `Some`, every other key the weights determine
    /// (sizes from tensor shapes, the fusion design from key names) is read from the weights;
    /// with `None`, `settings` is used as it is.
    pub explicit_keys: Option<Vec<String>>,
    /// Weights files, loaded in order; a Hugging Face backbone (CLIP, RoBERTa) only fills its own
    /// part, so `clip/` and `roberta/` together initialise both encoders.
    pub weights: Vec<PathBuf>,
    pub inputs: PathBuf,
    pub output: PathBuf,
    pub load: LoadOptions,
}

/// What a forward pass did.
#[derive(Debug)]
pub struct ForwardSummary {
    /// The device it ran on, e.g. `Cpu` or `Cuda(0)`.
    pub device: String,
    /// One report per weights file.
    pub load: Vec<LoadReport>,
    /// Output names and shapes, in file order.
    pub outputs: Vec<(String, Vec<i64>)>,
    /// Settings read from the weights that differ from the request's, as `(key, value)`.
    pub inferred: Vec<(String, serde_json::Value)>,
}

/// `base` with what the weights determine written over it (see [`Architecture::infer`]),
/// except the `explicit` keys, and the keys that changed. Without a `config.json` the text and
/// cross-modal head counts stay as in `base` while the widths do, and are width / 64 otherwise.
pub fn settings_from_weights(
    base: &Settings,
    explicit: &[String],
    checkpoints: &[Checkpoint],
) -> Result<(Settings, Vec<(String, serde_json::Value)>), WeightsError> {
    let mut s = base.clone();
    for ck in checkpoints {
        let before = s.clone();
        s = Architecture::infer(&ck.tensors, ck.hf_config.as_ref()).to_settings(&s);
        if ck.hf_config.is_none() {
            // Without a config the head counts are guesses (width / 64): keep the preset's for
            // the widths it has.
            if s.input_text_embed_size == before.input_text_embed_size {
                s.text_num_heads = before.text_num_heads;
            }
            if s.hidden_size == before.hidden_size {
                s.num_heads = before.num_heads;
            }
            // width / 64 is what `vit_num_heads = 0` already means.
            s.vit_num_heads = before.vit_num_heads;
        }
    }
    let to_json = |s: &Settings| match serde_json::to_value(s) {
        Ok(serde_json::Value::Object(m)) => Ok(m),
        other => Err(WeightsError::Model(format!("settings: {other:?}"))),
    };
    let chosen = to_json(base)?;
    let mut merged = to_json(&s)?;
    for key in explicit {
        if let Some(v) = chosen.get(key) {
            merged.insert(key.clone(), v.clone());
        }
    }
    let inferred = merged
        .iter()
        .filter(|(k, v)| chosen.get(*k) != Some(*v))
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    let s = serde_json::from_value(serde_json::Value::Object(merged))
        .map_err(|e| WeightsError::Model(format!("settings from the weights: {e}")))?;
    Ok((s, inferred))
}

/// With several files, every variable must come from one of them (task heads excepted with
/// `partial`), unless all of them are uni-modal backbones: CLIP + RoBERTa initialise a model
/// "without VLP", the rest keeping its initialisation, as the reference does.
fn check_union(
    vs: &VarStore,
    reports: &[LoadReport],
    opts: &LoadOptions,
    all_backbones: bool,
    first: &Path,
) -> Result<(), WeightsError> {
    if all_backbones {
        return Ok(());
    }
    let mut missing: Vec<String> = vs
        .variables()
        .into_keys()
        .filter(|k| reports.iter().all(|r| r.kept.contains(k)))
        .filter(|k| !(opts.partial && super::arch::is_head_key(k)))
        .filter(|k| !super::load::is_known_unused(k))
        .collect();
    if missing.is_empty() {
        return Ok(());
    }
    missing.sort();
    Err(WeightsError::Mismatch {
        path: first.into(),
        mismatches: super::error::Mismatches {
            missing,
            ..Default::default()
        },
    })
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
    if req.weights.is_empty() {
        return Err(WeightsError::Model("no weights file given".into()));
    }
    let checkpoints = req
        .weights
        .iter()
        .map(|p| read(p))
        .collect::<Result<Vec<_>, _>>()?;
    let inputs = read_safetensors(&req.inputs)?;
    let (settings, inferred) = match &req.explicit_keys {
        Some(explicit) => {
            let mut base = req.settings.clone();
            let mut explicit = explicit.clone();
            // The model runs at the inputs' resolution unless the config says otherwise.
            let side = inputs
                .iter()
                .find(|(k, _)| k == "image")
                .map(|(_, t)| t.size())
                .filter(|d| d.len() == 4 && d[2] == d[3])
                .map(|d| d[3]);
            if let Some(side) = side.filter(|_| !explicit.iter().any(|k| k == "image_size")) {
                if side != base.image_size {
                    base.image_size = side;
                    explicit.push("image_size".into());
                }
            }
            let (s, mut inferred) = settings_from_weights(&base, &explicit, &checkpoints)?;
            if base.image_size != req.settings.image_size {
                inferred.push((
                    "image_size".into(),
                    serde_json::Value::from(base.image_size),
                ));
            }
            (s, inferred)
        }
        None => (req.settings.clone(), Vec::new()),
    };
    let device = crate::device::resolve_device(&settings.device)?;
    let cfg = ModelConfig::from_settings(&settings)
        .map_err(|e| WeightsError::Model(format!("config: {e}")))?;
    let mut vs = VarStore::new(device);
    let model =
        TowerModel::new(&vs.root(), &cfg).map_err(|e| WeightsError::Model(e.to_string()))?;
    let several = req.weights.len() > 1;
    let mut load = Vec::with_capacity(req.weights.len());
    let mut all_backbones = true;
    for ckpt in checkpoints {
        all_backbones &= ckpt.provides().is_some();
        let mut opts = req.load.clone();
        if several && opts.scope.is_none() && ckpt.provides().is_none() {
            // Several files together: each provides the variables it has, and the union is
            // checked below.
            opts.scope = Some(ckpt.tensors.iter().map(|(k, _)| k.clone()).collect());
        }
        load.push(load_into(&mut vs, &ckpt, &opts)?);
    }
    if several {
        check_union(&vs, &load, &req.load, all_backbones, &req.weights[0])?;
    }

    let ids = input(&inputs, &req.inputs, "text_ids", Kind::Int64, device)?;
    let masks = input(&inputs, &req.inputs, "text_masks", Kind::Int64, device)?;
    let image = input(&inputs, &req.inputs, "image", Kind::Float, device)?;
    let model_err =
        |e: crate::EngineError| WeightsError::Model(format!("{}: {e}", req.inputs.display()));
    let out = tch::no_grad(|| model.forward(&ids, &masks, &image, ForwardOptions::eval()))
        .map_err(model_err)?;
    // The retrieval path: uni-modal features cached once, then fused (`ImagePath::UniModal`).
    let (retrieval, itc) = tch::no_grad(|| -> crate::Result<_> {
        let text = model.encode_text(&ids, &masks, false)?;
        let img = model.encode_image(&image, false)?;
        let has_itc = model.heads().itc_text.is_some() && model.heads().itc_image.is_some();
        let itc = if has_itc {
            Some(model.itc_features(&text, &img, false)?)
        } else {
            None
        };
        Ok((model.fuse(&text, &img, ForwardOptions::eval())?, itc))
    })
    .map_err(model_err)?;

    let mut tensors: Vec<(String, Tensor)> = vec![
        ("text_feats".into(), out.text_feats),
        ("image_feats".into(), out.image_feats),
        ("cls_feats".into(), out.cls_feats),
        ("retrieval.cls_feats".into(), retrieval.cls_feats),
    ];
    if let Some((t, i)) = itc {
        tensors.push(("retrieval.itc_text".into(), t));
        tensors.push(("retrieval.itc_image".into(), i));
    }
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
        device: format!("{device:?}"),
        load,
        outputs: tensors.iter().map(|(k, t)| (k.clone(), t.size())).collect(),
        inferred,
    })
}
