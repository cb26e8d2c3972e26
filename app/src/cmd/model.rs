//! `towerlab model inspect|forward`: look into weights files and run one forward pass.

use std::path::{Path, PathBuf};

use anyhow::Context as _;
use engine::weights::{self, ForwardRequest, LoadOptions, WeightsError};
use experiments::Settings;

use crate::exit::UserError;

#[derive(Debug, clap::Subcommand)]
pub enum ModelCommand {
    /// Format, keys, inferred architecture and parameter counts of a weights file
    /// (.safetensors, Lightning .ckpt, torch .pt/.bin, or a Hugging Face model directory).
    Inspect {
        /// The weights file or Hugging Face model directory.
        file: PathBuf,
        /// Also list every tensor with its shape and type.
        #[arg(long)]
        keys: bool,
    },
    /// Rewrite weights under the reference key names: `.safetensors`, or a Lightning-layout
    /// `.ckpt`/`.pt` that the reference code's `torch.load(...)["state_dict"]` reads.
    Convert {
        /// The weights file or Hugging Face model directory.
        file: PathBuf,
        /// Output file; its extension picks the format.
        #[arg(long, short, value_name = "FILE")]
        output: PathBuf,
    },
    /// One eval-mode forward pass: text_ids, text_masks and image from a safetensors file in,
    /// text_feats, image_feats, cls_feats and the manager weights out (as the reference's
    /// `infer`), plus retrieval.cls_feats (and retrieval.itc_* with ITC heads) from its
    /// retrieval path.
    Forward {
        /// Weights to load (any format `model inspect` reads). Repeat it to combine files, e.g.
        /// Hugging Face CLIP and RoBERTa directories for a model without VLP.
        #[arg(long, value_name = "FILE", required = true)]
        weights: Vec<PathBuf>,
        /// TOML settings: `preset = "tiny"|"base"` plus any Settings keys as overrides.
        #[arg(long, value_name = "FILE")]
        config: PathBuf,
        /// Safetensors file with `text_ids` [B, L], `text_masks` [B, L] and `image` [B, 3, S, S].
        #[arg(long, value_name = "FILE")]
        inputs: PathBuf,
        /// Safetensors file to write.
        #[arg(long, value_name = "FILE")]
        output: PathBuf,
        /// Allow task-head weights to be missing (a new task head) or unused; they are listed.
        #[arg(long)]
        partial: bool,
    },
    /// Download uni-modal experts into the Hugging Face hub cache (HF_HUB_CACHE, else
    /// HF_HOME/hub, else ~/.cache/huggingface/hub), as `vit` and `tokenizer` name them: CLIP
    /// names (ViT-B/16, CLIP-ViT-L/14), `roberta-base`, or hub ids of a CLIP or RoBERTa model.
    /// Uses HF_ENDPOINT and HF_TOKEN; what is cached already is only reported.
    Fetch {
        /// Model names or hub ids.
        #[arg(required = true)]
        names: Vec<String>,
    },
}

pub fn run(cmd: ModelCommand) -> anyhow::Result<()> {
    match cmd {
        ModelCommand::Inspect { file, keys } => inspect(&file, keys),
        ModelCommand::Convert { file, output } => convert(&file, &output),
        ModelCommand::Fetch { names } => fetch(&names),
        ModelCommand::Forward {
            weights,
            config,
            inputs,
            output,
            partial,
        } => {
            let (settings, explicit) = load_settings(&config)?;
            let req = ForwardRequest {
                settings,
                explicit_keys: Some(explicit),
                weights,
                inputs,
                output: output.clone(),
                load: if partial {
                    LoadOptions::partial()
                } else {
                    LoadOptions::strict()
                },
            };
            let summary = weights::forward_files(&req).map_err(user_error)?;
            if !summary.inferred.is_empty() {
                let list: Vec<String> = summary
                    .inferred
                    .iter()
                    .map(|(k, v)| format!("{k} = {v}"))
                    .collect();
                println!("from the weights and inputs: {}", list.join(", "));
            }
            for (path, r) in req.weights.iter().zip(&summary.load) {
                print_load(path, r, &summary.device);
            }
            println!("wrote {}:", output.display());
            for (name, shape) in &summary.outputs {
                println!("  {name:<34}{shape:?}");
            }
            Ok(())
        }
    }
}

/// `towerlab model fetch`: each name's expert into the hub cache, unless it is there.
fn fetch(names: &[String]) -> anyhow::Result<()> {
    use experiments::experts::{self, Availability, HubEnv, Location, Role};
    let hub = HubEnv::from_process();
    for name in names {
        let located =
            experts::locate(Role::Vision, name).map_err(|e| user_error_msg(e.to_string()))?;
        let Location::Hub { repo, .. } = located else {
            println!("{name}: a local folder, nothing to fetch");
            continue;
        };
        // The role decides the files (a RoBERTa needs its tokenizer.json): a CLIP name is a
        // vision expert, else the config says.
        let role = if experts::clip_repo(name).is_some() {
            Role::Vision
        } else {
            let (_, config) = engine::hub::fetch_file(
                &hub,
                &repo,
                "config.json",
                None,
                &mut engine::hub::Progress::None,
            )
            .map_err(|e| user_error_msg(e.to_string()))?;
            let c: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&config)?)
                .with_context(|| format!("{}", config.display()))?;
            match c.get("model_type").and_then(|v| v.as_str()) {
                Some("roberta") => Role::Text,
                _ => Role::Vision,
            }
        };
        if let Availability::Found(f) = experts::find(role, name, &hub, None)? {
            println!("{name}: {} in {}", f.pin.describe(), f.dir.display());
            continue;
        }
        let snap =
            engine::hub::fetch_expert(&hub, &repo, role, None, &mut engine::hub::Progress::Bar)
                .map_err(|e| user_error_msg(e.to_string()))?;
        println!(
            "{name}: {}@{} in {}",
            snap.repo,
            snap.commit,
            snap.dir.display()
        );
    }
    Ok(())
}

fn user_error_msg(message: String) -> anyhow::Error {
    anyhow::Error::new(UserError { code: 1, message })
}

fn print_load(path: &Path, r: &weights::LoadReport, device: &str) {
    println!(
        "loaded {} tensors from {} on {}",
        r.loaded,
        path.display(),
        device
    );
    for (what, list) in [
        ("missing task-head keys (initialised)", &r.missing_heads),
        ("unused task-head keys", &r.unused_heads),
        ("kept as initialised", &r.kept),
        ("ignored (unused by the reference)", &r.ignored),
        ("adapted", &r.adapted),
    ] {
        if !list.is_empty() {
            println!("{what}: {}", list.join(", "));
        }
    }
}

fn inspect(file: &Path, keys: bool) -> anyhow::Result<()> {
    let ckpt = weights::read(file).map_err(user_error)?;
    print!("{}", weights::Summary::of(&ckpt));
    if keys {
        println!("tensors:");
        for (k, t) in &ckpt.tensors {
            println!("  {k:<72}{:?} {:?}", t.size(), t.kind());
        }
    }
    Ok(())
}

fn convert(file: &Path, output: &Path) -> anyhow::Result<()> {
    let ckpt = weights::read(file).map_err(user_error)?;
    let ext = output.extension().and_then(|e| e.to_str()).unwrap_or("");
    match ext {
        "safetensors" => weights::write_safetensors(output, &ckpt.tensors),
        "ckpt" | "pt" | "pth" | "bin" => weights::write_lightning_ckpt(output, &ckpt.tensors),
        _ => {
            return Err(invalid(
                output,
                "unknown output format: use .safetensors, or .ckpt/.pt for torch",
            ))
        }
    }
    .map_err(user_error)?;
    println!(
        "wrote {} tensors ({}) from {} to {}",
        ckpt.tensors.len(),
        ckpt.describe(),
        file.display(),
        output.display()
    );
    if !ckpt.dropped.is_empty() {
        println!(
            "left out {} keys with no reference counterpart: {}",
            ckpt.dropped.len(),
            ckpt.dropped.join(", ")
        );
    }
    Ok(())
}

/// Weights errors are the user's (a file, a key); one line, exit code 2 when the file itself is
/// invalid (corrupt, unknown format, wrong checkpoint), 1 otherwise (a missing file).
fn user_error(e: WeightsError) -> anyhow::Error {
    anyhow::Error::new(UserError {
        code: if e.is_invalid_file() { 2 } else { 1 },
        message: e.to_string(),
    })
}

/// One line from a possibly multi-line parser message.
fn one_line(s: &str) -> String {
    s.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .collect::<Vec<_>>()
        .join(" ")
}

fn invalid(path: &Path, msg: impl AsRef<str>) -> anyhow::Error {
    anyhow::Error::new(UserError {
        code: 2,
        message: format!("{}: {}", path.display(), one_line(msg.as_ref())),
    })
}

/// `preset = "tiny"|"base"` (default base) plus any `Settings` keys, which override the preset.
/// The settings of a `--config` file and the keys it sets (the rest come from its preset, or
/// from the weights where they tell).
pub fn load_settings(path: &Path) -> anyhow::Result<(Settings, Vec<String>)> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    let settings = settings_from_toml(&text).map_err(|msg| invalid(path, msg))?;
    // Parsed above, so this cannot fail.
    let table: toml::Table = text.parse().unwrap_or_default();
    let explicit = table.keys().filter(|k| *k != "preset").cloned().collect();
    Ok((settings, explicit))
}

fn settings_from_toml(text: &str) -> Result<Settings, String> {
    let mut table: toml::Table = text.parse().map_err(|e: toml::de::Error| e.to_string())?;
    let preset = match table.remove("preset") {
        None => "base".to_string(),
        Some(toml::Value::String(s)) => s,
        Some(other) => return Err(format!("`preset` must be a string, found {other}")),
    };
    let base = Settings::preset(&preset).ok_or_else(|| {
        format!(
            "unknown preset `{preset}` (expected one of {})",
            Settings::PRESETS.join(", ")
        )
    })?;
    let mut merged = toml::Value::try_from(&base).map_err(|e| e.to_string())?;
    if let toml::Value::Table(t) = &mut merged {
        t.extend(table);
    }
    merged.try_into::<Settings>().map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn preset_plus_overrides() {
        let s =
            settings_from_toml("preset = \"tiny\"\nnum_layers = 3\nlearning_rate = 1\n").unwrap();
        assert_eq!(s.num_layers, 3);
        assert_eq!(s.learning_rate, 1.0);
        assert_eq!(s.hidden_size, Settings::tiny().hidden_size);
        let base = settings_from_toml("").unwrap();
        assert_eq!(base, Settings::default());
        // The reference writes `precision = 32`; forward passes are fp32 unless asked.
        assert_eq!(base.precision, experiments::Precision::Fp32);
        let s = settings_from_toml("precision = 32").unwrap();
        assert_eq!(s.precision, experiments::Precision::Fp32);
        let s = settings_from_toml("precision = \"bf16\"").unwrap();
        assert_eq!(s.precision, experiments::Precision::Bf16);
        let e = settings_from_toml("precision = 16").unwrap_err();
        assert!(e.contains("bf16"), "{e}");
    }

    #[test]
    fn unknown_keys_and_presets_are_named() {
        let e = settings_from_toml("num_layer = 3").unwrap_err();
        assert!(e.contains("num_layer"), "{e}");
        let e = settings_from_toml("preset = \"huge\"").unwrap_err();
        assert!(e.contains("huge") && e.contains("tiny"), "{e}");
        let e = settings_from_toml("manager_type = \"XYZ\"").unwrap_err();
        assert!(e.contains("XYZ") || e.contains("manager_type"), "{e}");
        let e = settings_from_toml("preset = ").unwrap_err();
        assert!(!one_line(&e).contains('\n'));
    }
}
