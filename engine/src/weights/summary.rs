//! A human-readable account of a checkpoint: format, keys, inferred architecture, parameter
//! counts per component and per manager (what `towerlab model inspect` prints).

use std::collections::BTreeMap;
use std::fmt;

use experiments::ManagerType;
use tch::Kind;

use super::arch::{manager_counts, parameter_counts, Architecture, Component};
use super::read::Checkpoint;

/// Managers of one kind and their total parameter count.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ManagerGroup {
    /// "AAUE" or "SAUE" (static managers, SAE included).
    pub kind: &'static str,
    pub count: usize,
    pub parameters: i64,
}

#[derive(Debug, Clone)]
pub struct Summary {
    pub path: String,
    pub format: String,
    pub keys: usize,
    pub parameters: i64,
    /// Tensor count per element type, e.g. `("f32", 412)`.
    pub dtypes: Vec<(String, usize)>,
    /// File keys with no reference counterpart (Hugging Face extras).
    pub dropped: usize,
    pub arch: Architecture,
    pub components: Vec<(Component, i64)>,
    pub managers: Vec<ManagerGroup>,
}

fn kind_name(k: Kind) -> String {
    match k {
        Kind::Float => "f32".into(),
        Kind::Half => "f16".into(),
        Kind::BFloat16 => "bf16".into(),
        Kind::Double => "f64".into(),
        Kind::Int64 => "i64".into(),
        Kind::Int => "i32".into(),
        Kind::Uint8 => "u8".into(),
        Kind::Bool => "bool".into(),
        other => format!("{other:?}"),
    }
}

/// `12.03M`, `27.6K`, `512`.
pub fn human_count(n: i64) -> String {
    let f = n as f64;
    if n >= 1_000_000_000 {
        format!("{:.2}B", f / 1e9)
    } else if n >= 1_000_000 {
        format!("{:.2}M", f / 1e6)
    } else if n >= 1_000 {
        format!("{:.1}K", f / 1e3)
    } else {
        n.to_string()
    }
}

impl Summary {
    pub fn of(ckpt: &Checkpoint) -> Self {
        let mut dtypes: BTreeMap<String, usize> = BTreeMap::new();
        for (_, t) in &ckpt.tensors {
            *dtypes.entry(kind_name(t.kind())).or_default() += 1;
        }
        let mut groups: BTreeMap<&'static str, (usize, i64)> = BTreeMap::new();
        for (_, _, kind, n) in manager_counts(&ckpt.tensors) {
            let g = groups.entry(kind).or_default();
            g.0 += 1;
            g.1 += n;
        }
        Self {
            path: ckpt.path.display().to_string(),
            format: ckpt.describe(),
            keys: ckpt.tensors.len(),
            parameters: ckpt.tensors.iter().map(|(_, t)| t.numel() as i64).sum(),
            dtypes: dtypes.into_iter().collect(),
            dropped: ckpt.dropped.len(),
            arch: Architecture::infer(&ckpt.tensors, ckpt.hf_config.as_ref()),
            components: parameter_counts(&ckpt.tensors),
            managers: groups
                .into_iter()
                .map(|(kind, (count, parameters))| ManagerGroup {
                    kind,
                    count,
                    parameters,
                })
                .collect(),
        }
    }
}

fn fusion_name(kind: ManagerType) -> &'static str {
    match kind {
        ManagerType::Aaue => "ManagerTower, adaptive managers (AAUE; layer 0 static)",
        ManagerType::Saue => "ManagerTower, static managers (SAUE)",
        ManagerType::Sae => "ManagerTower, static managers over all previous layers (SAE)",
        ManagerType::Bt => "BridgeTower (LinkTower bridges)",
        ManagerType::Meter => "METER (top uni-modal layer only)",
    }
}

fn heads_or(n: Option<i64>) -> String {
    n.map_or("? heads (not in the shapes)".into(), |h| {
        format!("{h} heads")
    })
}

impl fmt::Display for Summary {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "file:       {}", self.path)?;
        writeln!(f, "format:     {}", self.format)?;
        let dtypes: Vec<String> = self
            .dtypes
            .iter()
            .map(|(k, n)| format!("{n} {k}"))
            .collect();
        writeln!(
            f,
            "keys:       {} tensors, {} parameters ({})",
            self.keys,
            human_count(self.parameters),
            dtypes.join(", ")
        )?;
        if self.dropped > 0 {
            writeln!(
                f,
                "dropped:    {} keys with no reference counterpart",
                self.dropped
            )?;
        }
        match &self.arch.fusion {
            Some(x) => {
                writeln!(
                    f,
                    "fusion:     {} = {}",
                    x.kind.as_str(),
                    if x.meter_fusion {
                        "METER with meter_fusion (gated sum of every uni-modal layer)"
                    } else {
                        fusion_name(x.kind)
                    }
                )?;
                let mut line = format!(
                    "            {} cross-modal layers, hidden {}, {}",
                    x.num_layers,
                    x.hidden_size,
                    heads_or(x.num_heads)
                );
                if matches!(
                    x.kind,
                    ManagerType::Aaue | ManagerType::Saue | ManagerType::Sae
                ) {
                    let weights = match x.weight_type {
                        experiments::ManagerWeightType::Vector => "vector",
                        experiments::ManagerWeightType::Scalar => "scalar",
                    };
                    line.push_str(&format!(
                        ", managed layers text {} / image {}, {weights} weights",
                        x.managed_layers_text, x.managed_layers_image
                    ));
                }
                if x.token_types != 2 {
                    line.push_str(&format!(", {} token types", x.token_types));
                }
                writeln!(f, "{line}")?;
            }
            None => writeln!(f, "fusion:     none (uni-modal weights only)")?,
        }
        if let Some(t) = &self.arch.text {
            writeln!(
                f,
                "text:       RoBERTa, vocab {}, width {}, {} layers, {}, FFN {}, {} positions",
                t.vocab_size,
                t.hidden_size,
                t.num_layers,
                heads_or(t.num_heads),
                t.intermediate_size,
                t.max_position_embeddings
            )?;
        }
        if let Some(v) = &self.arch.vision {
            let mut line = format!(
                "vision:     CLIP ViT, width {}, {} layers, {} heads, patch {}, grid {}x{} ({} px)",
                v.width, v.num_layers, v.num_heads, v.patch_size, v.grid, v.grid, v.image_size
            );
            if v.ln_separate > 0 {
                line.push_str(&format!(
                    ", {} ln_separate (vit_layernorm_shared = false{})",
                    v.ln_separate,
                    if v.remove_last() == Some(true) {
                        ", vit_remove_last"
                    } else {
                        ""
                    }
                ));
            }
            writeln!(f, "{line}")?;
        }
        if !self.arch.heads.is_empty() {
            let mut line = format!("heads:      {}", self.arch.heads.join(", "));
            if let Some(n) = self.arch.vqa_labels {
                line.push_str(&format!(" (VQA: {n} answers)"));
            }
            if let Some(h) = self.arch.head_hidden_scale {
                line.push_str(&format!(", head_hidden_scale {h}"));
            }
            writeln!(f, "{line}")?;
        }
        writeln!(f, "parameters:")?;
        for (c, n) in &self.components {
            writeln!(f, "  {:<28}{:>10}  ({n})", c.label(), human_count(*n))?;
        }
        for g in &self.managers {
            writeln!(
                f,
                "managers:   {} {} ({} parameters)",
                g.count,
                g.kind,
                human_count(g.parameters)
            )?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::managers::Manager;
    use crate::model::ModelConfig;
    use std::path::PathBuf;

    #[test]
    fn human_counts() {
        assert_eq!(human_count(12_031_234), "12.03M");
        assert_eq!(human_count(27_660), "27.7K");
        assert_eq!(human_count(512), "512");
    }

    /// A safetensors checkpoint holding the variables of `vs`.
    fn safetensors_of(vs: &tch::nn::VarStore, path: &str) -> Checkpoint {
        Checkpoint {
            path: PathBuf::from(path),
            format: super::super::Format::Safetensors,
            hf_model: None,
            hf_config: None,
            tensors: crate::weights::named_tensors(vs),
            dropped: Vec::new(),
        }
    }

    fn summary_of(s: &experiments::Settings) -> String {
        let cfg = ModelConfig::from_settings(s).unwrap();
        let vs = tch::nn::VarStore::new(tch::Device::Cpu);
        let _m = crate::model::TowerModel::new(&vs.root(), &cfg).unwrap();
        Summary::of(&safetensors_of(&vs, "m.safetensors")).to_string()
    }

    #[test]
    fn meter_fusion_and_ln_separate_are_reported() {
        let mut s = experiments::Settings::tiny();
        s.manager_type = ManagerType::Meter;
        s.meter_fusion = true;
        let text = summary_of(&s);
        assert!(text.contains("METER with meter_fusion"), "{text}");
        assert!(text.contains("METER fusion gates"), "{text}");
        s.manager_type = ManagerType::Bt;
        s.meter_fusion = false;
        s.vit_layernorm_shared = false;
        s.vit_num_layers = 5;
        s.vit_remove_last = true;
        let text = summary_of(&s);
        assert!(
            text.contains("4 layers, 1 heads, patch 16, grid 4x4 (64 px), 5 ln_separate (vit_layernorm_shared = false, vit_remove_last)"),
            "{text}"
        );
    }

    /// The base-size AAUE managers (spec 1.5): 10 AAUE managers of ~1.20M parameters each.
    #[test]
    fn base_aaue_managers_count_twelve_million() {
        let cfg = ModelConfig::preset("base", ManagerType::Aaue).unwrap();
        let vs = tch::nn::VarStore::new(tch::Device::Cpu);
        for tower in ["text", "image"] {
            let p = vs.root() / format!("cross_modal_{tower}_manager_tower");
            for layer in 0..cfg.num_layers {
                let _ = Manager::new(&p / layer, &cfg, 6, layer);
            }
        }
        let s = Summary::of(&safetensors_of(&vs, "managers.safetensors"));
        let aaue = s.managers.iter().find(|g| g.kind == "AAUE").unwrap();
        assert_eq!(aaue.count, 10);
        assert_eq!(human_count(aaue.parameters), "12.03M");
        let saue = s.managers.iter().find(|g| g.kind == "SAUE").unwrap();
        assert_eq!(saue.count, 2);
        let text = s.to_string();
        assert!(
            text.contains("managers:   10 AAUE (12.03M parameters)"),
            "{text}"
        );
    }
}
