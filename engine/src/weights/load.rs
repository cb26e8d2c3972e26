//! Strict loading of named tensors into a `VarStore`: every missing key, unused key and shape
//! mismatch is reported by name, and nothing is copied unless the whole checkpoint fits.

use std::collections::{BTreeSet, HashMap};
use std::path::Path;

use tch::nn::VarStore;
use tch::Tensor;

use super::arch::is_head_key;
use super::error::{Mismatches, ShapeMismatch, WeightsError};
use super::read::Checkpoint;

/// How strict a load is.
#[derive(Debug, Clone, Default)]
pub struct LoadOptions {
    /// Fine-tuning for a new task: task-head variables may be missing from the checkpoint (they
    /// keep their initialisation), and the checkpoint's own heads may go unused. Both are listed.
    pub partial: bool,
    /// Only model variables under these prefixes are expected from the checkpoint (a backbone
    /// such as Hugging Face CLIP or RoBERTa); the others keep their values and are listed as
    /// kept. `None` uses what the checkpoint says it provides, or expects everything.
    pub scope: Option<Vec<String>>,
}

impl LoadOptions {
    pub fn strict() -> Self {
        Self::default()
    }

    pub fn partial() -> Self {
        Self {
            partial: true,
            ..Self::default()
        }
    }
}

/// What a successful load did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LoadReport {
    /// Variables set from the checkpoint.
    pub loaded: usize,
    /// Task-head variables the checkpoint lacks, left initialised (`partial`).
    pub missing_heads: Vec<String>,
    /// Checkpoint task-head tensors the model has no use for (`partial`).
    pub unused_heads: Vec<String>,
    /// Variables left as they were: outside the checkpoint's scope, or known-unused reference
    /// keys the checkpoint lacks (e.g. CLIP's text-side `positional_embedding` when loading
    /// Hugging Face CLIP).
    pub kept: Vec<String>,
    /// Known-unused reference keys that were skipped (`vit_model.positional_embedding`, ...).
    pub ignored: Vec<String>,
    /// Tensors adapted to the model: position embeddings resized, token types extended.
    pub adapted: Vec<String>,
}

/// Reference keys the reference model itself never uses: CLIP's text positions and final LN,
/// the RoBERTa pooler and position-id buffer, SAUE's unused temperature, CLIP's projection.
pub fn is_known_unused(key: &str) -> bool {
    key == "vit_model.positional_embedding"
        || key.starts_with("vit_model.ln_final.")
        || key == "vit_model.visual.proj"
        || key.starts_with("text_transformer.pooler.")
        || key == "text_transformer.embeddings.position_ids"
        || key.ends_with(".softmax_temperature_cross")
}

/// Loads a checkpoint into the variables of `vs`. See [`load_tensors_into`].
pub fn load_into(
    vs: &mut VarStore,
    ckpt: &Checkpoint,
    opts: &LoadOptions,
) -> Result<LoadReport, WeightsError> {
    let mut opts = opts.clone();
    if opts.scope.is_none() {
        opts.scope = ckpt
            .provides()
            .map(|p| p.iter().map(|s| s.to_string()).collect());
    }
    load_tensors_into(vs, &ckpt.tensors, &ckpt.path, &opts)
}

/// Loads named tensors (reference names) into the variables of `vs`, strictly: any missing key
/// (outside the allowances of `opts`), unused key or shape mismatch fails the whole load, naming
/// all of them; `source` names the file in errors. CLIP position embeddings trained at another
/// resolution are resized bicubically, and a 2-row token-type table is extended to 3 rows for
/// NLVR2 (row 2 a copy of row 1), as the reference does.
pub fn load_tensors_into(
    vs: &mut VarStore,
    tensors: &[(String, Tensor)],
    source: &Path,
    opts: &LoadOptions,
) -> Result<LoadReport, WeightsError> {
    let vars = vs.variables();
    let in_scope = |k: &str| {
        opts.scope
            .as_ref()
            .is_none_or(|s| s.iter().any(|p| k.starts_with(p.as_str())))
    };
    let mut report = LoadReport::default();
    let mut mismatches = Mismatches::default();
    let mut plan: Vec<(&Tensor, Tensor, &str)> = Vec::new();
    let mut provided = BTreeSet::new();

    for (key, src) in tensors {
        let Some(var) = vars.get(key) else {
            if is_known_unused(key) {
                report.ignored.push(key.clone());
            } else if opts.partial && is_head_key(key) {
                report.unused_heads.push(key.clone());
            } else {
                mismatches.unused.push(key.clone());
            }
            continue;
        };
        provided.insert(key.as_str());
        let want = var.size();
        let got = src.size();
        let value = if want == got {
            src.shallow_clone()
        } else if let Some(adapted) = adapt(key, src, &want, opts.partial)
            .map_err(|e| WeightsError::torch(source, key.clone(), e))?
        {
            report.adapted.push(key.clone());
            adapted
        } else if is_known_unused(key) {
            // Never read by the forward pass: its size (e.g. CLIP's text context) is irrelevant.
            report.ignored.push(key.clone());
            continue;
        } else {
            mismatches.shapes.push(ShapeMismatch {
                key: key.clone(),
                expected: want,
                found: got,
            });
            continue;
        };
        plan.push((var, value, key.as_str()));
    }

    let mut var_names: Vec<&String> = vars.keys().collect();
    var_names.sort();
    for name in var_names {
        if provided.contains(name.as_str()) {
            continue;
        }
        if !in_scope(name) || is_known_unused(name) {
            // Outside the checkpoint's scope, or a key the forward pass never reads.
            report.kept.push(name.clone());
        } else if opts.partial && is_head_key(name) {
            report.missing_heads.push(name.clone());
        } else {
            mismatches.missing.push(name.clone());
        }
    }

    if !mismatches.is_empty() {
        mismatches.missing.sort();
        mismatches.unused.sort();
        return Err(WeightsError::Mismatch {
            path: source.into(),
            mismatches,
        });
    }

    tch::no_grad(|| -> Result<(), WeightsError> {
        for (var, value, key) in &plan {
            let mut dst = var.shallow_clone();
            let value = value
                .f_to_kind(dst.kind())
                .and_then(|v| v.f_to_device(dst.device()))
                .map_err(|e| WeightsError::torch(source, *key, e))?;
            dst.f_copy_(&value)
                .map_err(|e| WeightsError::torch(source, *key, e))?;
        }
        Ok(())
    })?;
    report.loaded = plan.len();
    Ok(report)
}

/// Shape adaptations the reference performs when loading: CLIP position embeddings at another
/// resolution, and (fine-tuning) the NLVR2 token-type table.
fn adapt(
    key: &str,
    src: &Tensor,
    want: &[i64],
    partial: bool,
) -> Result<Option<Tensor>, tch::TchError> {
    let got = src.size();
    if key.ends_with("visual.positional_embedding")
        && got.len() == 2
        && want.len() == 2
        && got[1] == want[1]
    {
        let (before, after) = (grid_side(got[0]), grid_side(want[0]));
        if let (Some(_), Some(after)) = (before, after) {
            // Trained at another resolution: resized as the reference does on load.
            return resize_position_embedding(src, after).map(Some);
        }
    }
    if partial && key == "token_type_embeddings.weight" && got == [2, want[1]] && want[0] == 3 {
        let row1 = src.f_narrow(0, 1, 1)?;
        return Tensor::f_cat(&[src.shallow_clone(), row1], 0).map(Some);
    }
    Ok(None)
}

/// `n = side^2 + 1` (the CLS position plus a square grid).
fn grid_side(n: i64) -> Option<i64> {
    let side = ((n - 1) as f64).sqrt().round() as i64;
    (side * side + 1 == n && side > 0).then_some(side)
}

/// The bicubic position-embedding resize (the reference `adapt_position_encoding`), shared with
/// the model so that loading and building agree.
fn resize_position_embedding(pos: &Tensor, side: i64) -> Result<Tensor, tch::TchError> {
    crate::model::f_resize_position_embedding(pos, side).map_err(|e| match e {
        crate::EngineError::Torch(t) => t,
        other => tch::TchError::Shape(other.to_string()),
    })
}

/// The names and shapes of a VarStore's variables, sorted (for inspection and tests).
pub fn variable_shapes(vs: &VarStore) -> Vec<(String, Vec<i64>)> {
    let mut v: Vec<(String, Vec<i64>)> = vs
        .variables()
        .into_iter()
        .map(|(k, t)| (k, t.size()))
        .collect();
    v.sort();
    v
}

/// The VarStore's variables as named tensors, sorted by name (to save them).
pub fn named_tensors(vs: &VarStore) -> Vec<(String, Tensor)> {
    let map: HashMap<String, Tensor> = vs.variables();
    let mut v: Vec<(String, Tensor)> = map.into_iter().collect();
    v.sort_by(|a, b| a.0.cmp(&b.0));
    v
}

#[cfg(test)]
mod tests {
    use super::*;
    use tch::nn::Init;
    use tch::{Device, Kind};

    fn store() -> VarStore {
        let vs = VarStore::new(Device::Cpu);
        let root = vs.root();
        let _ = root.sub("a").var("weight", &[2, 3], Init::Const(0.0));
        let _ = root.sub("a").var("bias", &[2], Init::Const(0.0));
        let _ = root
            .sub("vqa_classifier")
            .sub("0")
            .var("weight", &[4, 2], Init::Const(7.0));
        vs
    }

    fn ones(shape: &[i64]) -> Tensor {
        Tensor::ones(shape, (Kind::Float, Device::Cpu))
    }

    #[test]
    fn strict_load_copies_everything() {
        let mut vs = store();
        let t = vec![
            ("a.weight".to_string(), ones(&[2, 3])),
            ("a.bias".to_string(), ones(&[2]).to_kind(Kind::Half)),
            ("vqa_classifier.0.weight".to_string(), ones(&[4, 2])),
            ("vit_model.ln_final.weight".to_string(), ones(&[2])),
        ];
        let r =
            load_tensors_into(&mut vs, &t, Path::new("x.ckpt"), &LoadOptions::strict()).unwrap();
        assert_eq!(r.loaded, 3);
        assert_eq!(r.ignored, vec!["vit_model.ln_final.weight".to_string()]);
        let vars = vs.variables();
        assert_eq!(vars["a.bias"].double_value(&[1]), 1.0);
        assert_eq!(vars["a.bias"].kind(), Kind::Float);
    }

    #[test]
    fn all_problems_are_reported_and_nothing_is_copied() {
        let mut vs = store();
        let t = vec![
            ("a.weight".to_string(), ones(&[3, 2])),
            ("extra.one".to_string(), ones(&[1])),
            ("extra.two".to_string(), ones(&[1])),
        ];
        let e = load_tensors_into(&mut vs, &t, Path::new("x.ckpt"), &LoadOptions::strict())
            .unwrap_err();
        let msg = e.to_string();
        for needle in [
            "x.ckpt",
            "a.bias",
            "vqa_classifier.0.weight",
            "extra.one",
            "extra.two",
            "a.weight: expected [2, 3], found [3, 2]",
        ] {
            assert!(msg.contains(needle), "{needle} not in {msg}");
        }
        assert_eq!(vs.variables()["a.weight"].double_value(&[0, 0]), 0.0);
    }

    #[test]
    fn partial_allows_missing_and_unused_heads() {
        let mut vs = store();
        let t = vec![
            ("a.weight".to_string(), ones(&[2, 3])),
            ("a.bias".to_string(), ones(&[2])),
            ("itm_score.fc.weight".to_string(), ones(&[2, 4])),
        ];
        let r =
            load_tensors_into(&mut vs, &t, Path::new("p.ckpt"), &LoadOptions::partial()).unwrap();
        assert_eq!(r.missing_heads, vec!["vqa_classifier.0.weight".to_string()]);
        assert_eq!(r.unused_heads, vec!["itm_score.fc.weight".to_string()]);
        assert_eq!(
            vs.variables()["vqa_classifier.0.weight"].double_value(&[0, 0]),
            7.0
        );
        // Without `partial` the same load fails and names the head.
        let e = load_tensors_into(&mut vs, &t, Path::new("p.ckpt"), &LoadOptions::strict())
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("vqa_classifier.0.weight") && e.contains("itm_score.fc.weight"),
            "{e}"
        );
    }

    #[test]
    fn scope_keeps_the_rest() {
        let mut vs = store();
        let t = vec![
            ("a.weight".to_string(), ones(&[2, 3])),
            ("a.bias".to_string(), ones(&[2])),
        ];
        let opts = LoadOptions {
            scope: Some(vec!["a.".into()]),
            ..LoadOptions::default()
        };
        let r = load_tensors_into(&mut vs, &t, Path::new("b.safetensors"), &opts).unwrap();
        assert_eq!(r.kept, vec!["vqa_classifier.0.weight".to_string()]);
    }

    #[test]
    fn position_embeddings_are_resized_on_load() {
        let vs = VarStore::new(Device::Cpu);
        let _ = vs.root().sub("vit_model").sub("visual").var(
            "positional_embedding",
            &[17, 8],
            Init::Const(0.0),
        );
        let mut vs = vs;
        // A 2x2 grid plus CLS; constant per channel so bicubic resizing keeps the values.
        let src = Tensor::arange(8, (Kind::Float, Device::Cpu))
            .unsqueeze(0)
            .repeat([5, 1]);
        let t = vec![("vit_model.visual.positional_embedding".to_string(), src)];
        let r =
            load_tensors_into(&mut vs, &t, Path::new("p.ckpt"), &LoadOptions::strict()).unwrap();
        assert_eq!(r.adapted.len(), 1);
        let v = &vs.variables()["vit_model.visual.positional_embedding"];
        assert_eq!(v.size(), [17, 8]);
        assert!((v.double_value(&[9, 3]) - 3.0).abs() < 1e-5);
    }

    #[test]
    fn nlvr2_token_types_grow_from_a_pretrained_table_in_partial_mode() {
        let vs = VarStore::new(Device::Cpu);
        let _ = vs
            .root()
            .sub("token_type_embeddings")
            .var("weight", &[3, 2], Init::Const(0.0));
        let mut vs = vs;
        let table = Tensor::from_slice(&[1.0f32, 2.0, 3.0, 4.0]).view([2, 2]);
        let t = vec![("token_type_embeddings.weight".to_string(), table)];
        let strict = load_tensors_into(&mut vs, &t, Path::new("pt.ckpt"), &LoadOptions::strict());
        assert!(strict
            .unwrap_err()
            .to_string()
            .contains("expected [3, 2], found [2, 2]"));
        let r =
            load_tensors_into(&mut vs, &t, Path::new("pt.ckpt"), &LoadOptions::partial()).unwrap();
        assert_eq!(r.adapted, ["token_type_embeddings.weight"]);
        let got: Vec<f32> = vs.variables()["token_type_embeddings.weight"]
            .view([-1])
            .try_into()
            .unwrap();
        assert_eq!(got, [1.0, 2.0, 3.0, 4.0, 3.0, 4.0]);
    }

    #[test]
    fn bicubic_resize_matches_torch_reference_values() {
        // torch: F.interpolate(arange(4.).reshape(1,1,2,2), size=(3,3), mode='bicubic')
        let pos = Tensor::cat(
            &[
                Tensor::from_slice(&[9.0f32]).reshape([1, 1]),
                Tensor::arange(4, (Kind::Float, Device::Cpu)).reshape([4, 1]),
            ],
            0,
        );
        let r = resize_position_embedding(&pos, 3).unwrap();
        let got: Vec<f32> = r.reshape([-1]).try_into().unwrap();
        let want = [
            9.0,
            -0.260_416_8,
            0.326_389,
            0.913_194_4,
            0.913_194_7,
            1.5,
            2.086_806,
            2.086_806,
            2.673_611,
            3.260_417,
        ];
        for (g, w) in got.iter().zip(want) {
            assert!((g - w).abs() < 1e-4, "{got:?}");
        }
    }
}
