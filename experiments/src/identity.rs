//! Run identity: a SHA-256 over the canonical resolved settings, the data's identity, the
//! engine version and the pre-training run a cell starts from.

use std::fmt;
use std::path::{Path, PathBuf};
use std::time::UNIX_EPOCH;

use serde::{Deserialize, Serialize};
use serde_json::{json, Value as Json};
use sha2::{Digest, Sha256};

use crate::evaluation::EvalSplit;
use crate::settings::{Settings, Split};

/// A run's identity: 64 lowercase hex characters.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct RunId(String);

impl RunId {
    /// The full 64-character hex form.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The 12-character display form.
    pub fn short(&self) -> &str {
        &self.0[..12.min(self.0.len())]
    }

    /// Accepts a 64-character hex string (as stored by the store).
    pub fn parse(s: &str) -> Option<Self> {
        (s.len() == 64 && s.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')))
            .then(|| Self(s.to_string()))
    }

    /// SHA-256 of the canonical form of `doc`.
    pub fn of_document(doc: &Json) -> Self {
        Self(sha256_hex(canonical_json(doc).as_bytes()))
    }
}

impl fmt::Display for RunId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.short())
    }
}

/// What a run's identity is computed from. The store should keep this document next to the
/// run: the plan diffs it to explain why a cell is stale.
pub fn identity_document(
    settings: &Settings,
    data_digest: &str,
    engine_version: &str,
    depends_on: Option<&RunId>,
) -> Json {
    identity_document_with(settings, data_digest, engine_version, depends_on, None)
}

/// [`identity_document`] with what the run loads before its first step
/// ([`crate::experts::Loads::to_json`]: the commit of each hub expert, the digest of local
/// files) under `weights`; without it the document is what it was before loads were recorded.
pub fn identity_document_with(
    settings: &Settings,
    data_digest: &str,
    engine_version: &str,
    depends_on: Option<&RunId>,
    weights: Option<Json>,
) -> Json {
    let mut s = serde_json::to_value(settings).unwrap_or(Json::Null);
    if let Json::Object(map) = &mut s {
        for k in Settings::EXECUTION_KEYS {
            map.remove(k);
        }
        // Heads are counted, not spelled: `0` (width / 64) and that number are one model.
        map.insert("vit_num_heads".into(), Json::from(settings.vit_heads()));
        // The same objectives in another order, or spelled out as the task's own, are the
        // same run.
        let objectives = settings.objectives_in_reference_order();
        let own = settings.task.objectives();
        let loss_names = if objectives == own {
            Json::Array(Vec::new())
        } else {
            json!(objectives)
        };
        map.insert("loss_names".into(), loss_names);
        // Keys added after runs were stored count only when set, so that those runs keep
        // their identities.
        for (k, default) in Settings::late_keys() {
            if map.get(k) == Some(&default) {
                map.remove(k);
            }
        }
    }
    let mut doc = json!({
        "settings": s,
        "data": data_digest,
        "engine": engine_version,
        "depends_on": depends_on.map(RunId::as_str),
    });
    if let (Some(w), Json::Object(map)) = (weights, &mut doc) {
        map.insert("weights".into(), w);
    }
    doc
}

/// An eval run's identity document: the settings, data and engine as [`identity_document`],
/// plus what it scores: the weights' content digest ([`weights_digest`]) and the split.
pub fn eval_identity_document(
    settings: &Settings,
    data_digest: &str,
    engine_version: &str,
    weights_digest: &str,
    split: EvalSplit,
) -> Json {
    let mut doc = identity_document(settings, data_digest, engine_version, None);
    if let Json::Object(map) = &mut doc {
        map.insert(
            "eval".into(),
            json!({ "weights": weights_digest, "split": split.as_str() }),
        );
    }
    doc
}

/// The file a weights path names for its digest: a TowerLab run or checkpoints folder (its
/// newest checkpoint), a step folder or a Hugging Face folder (its `model.safetensors`), or
/// the file itself.
pub fn weights_file(path: &Path) -> PathBuf {
    let newest = |dir: &Path| {
        std::fs::read_to_string(dir.join("last"))
            .ok()
            .map(|name| dir.join(name.trim()).join("model.safetensors"))
    };
    if path.is_dir() {
        if let Some(f) = newest(&path.join("checkpoints")).or_else(|| newest(path)) {
            return f;
        }
        for name in ["model.safetensors", "pytorch_model.bin"] {
            if path.join(name).is_file() {
                return path.join(name);
            }
        }
    }
    path.to_path_buf()
}

/// SHA-256 of the weights' content (see [`weights_file`]), or `missing:<path>` when the file
/// cannot be read: an eval's identity changes with what it scores, not with where it lies.
/// Each file is read once per process while its size and modification time stay (a plan, or
/// the TUI's, asks for it again and again).
pub fn weights_digest(path: &Path) -> String {
    use std::collections::HashMap;
    use std::sync::{Mutex, OnceLock};
    type Stamp = (PathBuf, u64, Option<std::time::SystemTime>);
    static SEEN: OnceLock<Mutex<HashMap<Stamp, String>>> = OnceLock::new();
    let file = weights_file(path);
    let Ok(meta) = std::fs::metadata(&file) else {
        return format!("missing:{}", file.display());
    };
    let stamp: Stamp = (file.clone(), meta.len(), meta.modified().ok());
    let seen = SEEN.get_or_init(Default::default);
    if let Some(d) = seen.lock().unwrap_or_else(|e| e.into_inner()).get(&stamp) {
        return d.clone();
    }
    let digest = content_digest(&file);
    seen.lock()
        .unwrap_or_else(|e| e.into_inner())
        .insert(stamp, digest.clone());
    digest
}

fn content_digest(file: &Path) -> String {
    use std::io::Read as _;
    let Ok(mut f) = std::fs::File::open(file) else {
        return format!("missing:{}", file.display());
    };
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    loop {
        match f.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => hasher.update(&buf[..n]),
            Err(_) => return format!("unreadable:{}", file.display()),
        }
    }
    hasher
        .finalize()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// JSON with object keys sorted at every level, no whitespace, and numbers in one form:
/// integers as integers, every other number by Rust's shortest round-trip float formatting.
/// `Settings` fields have fixed types, so `5` and `5.0` for a float setting both arrive as 5.0.
pub fn canonical_json(v: &Json) -> String {
    let mut out = String::new();
    write_canonical(v, &mut out);
    out
}

fn write_canonical(v: &Json, out: &mut String) {
    match v {
        Json::Null => out.push_str("null"),
        Json::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
        Json::Number(n) => {
            if let Some(i) = n.as_i64() {
                out.push_str(&i.to_string());
            } else if let Some(u) = n.as_u64() {
                out.push_str(&u.to_string());
            } else {
                let f = n.as_f64().unwrap_or(f64::NAN);
                // `{:?}` always keeps a decimal point or exponent: 5.0, 1e-5.
                out.push_str(&format!("{f:?}"));
            }
        }
        Json::String(s) => out.push_str(&Json::String(s.clone()).to_string()),
        Json::Array(items) => {
            out.push('[');
            for (i, x) in items.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                write_canonical(x, out);
            }
            out.push(']');
        }
        Json::Object(map) => {
            let mut keys: Vec<&String> = map.keys().collect();
            keys.sort();
            out.push('{');
            for (i, k) in keys.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                out.push_str(&Json::String((*k).clone()).to_string());
                out.push(':');
                write_canonical(&map[*k], out);
            }
            out.push('}');
        }
    }
}

fn sha256_hex(bytes: &[u8]) -> String {
    let digest = Sha256::digest(bytes);
    digest.iter().map(|b| format!("{b:02x}")).collect()
}

/// The identity of a run's input data, as a hex digest.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct DataDigest(pub String);

impl DataDigest {
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// How the cheap digest sees one file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FileStamp {
    Present { size: u64, mtime_ns: u128 },
    Missing,
}

/// A cheap identity for a list of files: each path with its size and modification time (no
/// content is read, so terabytes of `.arrow` files cost one `stat` each). A missing file is
/// recorded as missing, so creating it later changes the digest.
pub fn data_digest<P: AsRef<Path>>(files: &[P]) -> DataDigest {
    let mut lines: Vec<String> = files
        .iter()
        .map(|p| {
            let p = p.as_ref();
            let stamp = match std::fs::metadata(p) {
                Ok(m) => FileStamp::Present {
                    size: m.len(),
                    mtime_ns: m
                        .modified()
                        .ok()
                        .and_then(|t| t.duration_since(UNIX_EPOCH).ok())
                        .map_or(0, |d| d.as_nanos()),
                },
                Err(_) => FileStamp::Missing,
            };
            match stamp {
                FileStamp::Present { size, mtime_ns } => {
                    format!("{}\t{size}\t{mtime_ns}", p.display())
                }
                FileStamp::Missing => format!("{}\tmissing", p.display()),
            }
        })
        .collect();
    lines.sort();
    lines.dedup();
    DataDigest(sha256_hex(lines.join("\n").as_bytes()))
}

/// How each of `files` stands, keyed by file name: `{"size": bytes, "mtime_ms": ms}`, or
/// `"missing"`. Stored beside a run's identity (not hashed: [`data_digest`] is), so that a
/// later plan can name the file that changed instead of two digests.
pub fn data_stamps<P: AsRef<Path>>(files: &[P]) -> Json {
    let mut map = serde_json::Map::new();
    for p in files {
        let p = p.as_ref();
        let name = p.file_name().map_or_else(
            || p.display().to_string(),
            |n| n.to_string_lossy().into_owned(),
        );
        let stamp = match std::fs::metadata(p) {
            Ok(m) => json!({
                "size": m.len(),
                "mtime_ms": m
                    .modified()
                    .ok()
                    .and_then(|t| t.duration_since(UNIX_EPOCH).ok())
                    .map_or(0, |d| d.as_millis() as u64),
            }),
            Err(_) => Json::String("missing".into()),
        };
        map.insert(name, stamp);
    }
    Json::Object(map)
}

/// One file's stamp from [`data_stamps`] as text: `51234 B, modified 2026-05-01 10:00:00 UTC`.
pub fn describe_stamp(stamp: Option<&Json>) -> String {
    match stamp {
        None => "(not read)".into(),
        Some(Json::Object(m)) => {
            let size = m.get("size").and_then(Json::as_u64).unwrap_or(0);
            let ms = m.get("mtime_ms").and_then(Json::as_i64).unwrap_or(0);
            format!("{size} B, modified {}", crate::clock::utc_text(ms))
        }
        Some(other) => other.as_str().unwrap_or("?").to_string(),
    }
}

/// The number of answers in `data_root`'s answer vocabulary ([`crate::answers::ANSWERS_FILE`]);
/// `Ok(None)` when there is none (the reference's own tables come without one).
pub fn vqa_answer_count(data_root: &Path) -> Result<Option<usize>, crate::answers::VocabError> {
    let path = crate::answers::AnswerVocab::path(data_root);
    if !path.exists() {
        return Ok(None);
    }
    crate::answers::AnswerVocab::read(&path).map(|v| Some(v.num_answers))
}

/// The `.arrow` files a run reads: the tables of every split under `data_root`, shard patterns
/// expanded by [`expand_table`].
pub fn data_files(settings: &Settings) -> Vec<PathBuf> {
    let root = Path::new(&settings.data_root);
    let mut out: Vec<PathBuf> = [Split::Train, Split::Val, Split::Test]
        .into_iter()
        .flat_map(|split| settings.tables(split))
        .flat_map(|table| expand_table(root, &table))
        .map(|name| root.join(format!("{name}.arrow")))
        .collect();
    out.sort();
    out.dedup();
    out
}

/// The file stems a table name stands for in `dir`: the name itself, or for a shard pattern
/// (`sbu_*`) the numbered shards present (`sbu_0`, `sbu_1`, ... in numeric order). A pattern
/// with no shard stays as it is, so that whoever opens it reports the missing file by name.
pub fn expand_table(dir: &Path, table: &str) -> Vec<String> {
    let Some(prefix) = table.strip_suffix('*') else {
        return vec![table.to_string()];
    };
    let mut shards: Vec<(u64, String)> = std::fs::read_dir(dir)
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| {
            let stem = e.file_name().to_str()?.strip_suffix(".arrow")?.to_string();
            let number = stem.strip_prefix(prefix)?;
            let k = (!number.is_empty() && number.bytes().all(|b| b.is_ascii_digit()))
                .then(|| number.parse().unwrap_or(u64::MAX))?;
            Some((k, stem))
        })
        .collect();
    if shards.is_empty() {
        return vec![table.to_string()];
    }
    shards.sort();
    shards.into_iter().map(|(_, stem)| stem).collect()
}

/// What identities are computed with, besides the settings: the engine version, the data and
/// (for eval cells) the weights.
pub struct IdentityContext<'a> {
    pub engine_version: String,
    /// The data digest of a run, from its resolved settings.
    pub data: Box<dyn Fn(&Settings) -> DataDigest + 'a>,
    /// The stamps of the files a run reads ([`data_stamps`]), kept beside its identity;
    /// `Null` when there are none to keep.
    pub stamps: Box<dyn Fn(&Settings) -> Json + 'a>,
    /// The digest of the weights an eval cell scores.
    pub weights: Box<dyn Fn(&Path) -> String + 'a>,
}

impl<'a> IdentityContext<'a> {
    /// Digest the files each run reads, by path, size and modification time.
    pub fn from_files(engine_version: impl Into<String>) -> Self {
        Self {
            engine_version: engine_version.into(),
            data: Box::new(|s| data_digest(&data_files(s))),
            stamps: Box::new(|s| data_stamps(&data_files(s))),
            weights: Box::new(weights_digest),
        }
    }

    /// One fixed digest for every run (tests, or a caller that hashed the data itself).
    pub fn fixed(engine_version: impl Into<String>, digest: impl Into<String>) -> Self {
        let d = DataDigest(digest.into());
        Self {
            engine_version: engine_version.into(),
            data: Box::new(move |_| d.clone()),
            stamps: Box::new(|_| Json::Null),
            weights: Box::new(|p| format!("path:{}", p.display())),
        }
    }
}

/// The key of an identity document that holds the data files' stamps: informative only, so
/// the identity hashes the document without it.
pub const DATA_STAMPS_KEY: &str = "data_files";

/// The identity of a document made by [`identity_document`] (its [`DATA_STAMPS_KEY`] left out).
pub fn identity_of(doc: &Json) -> RunId {
    match doc {
        Json::Object(map) if map.contains_key(DATA_STAMPS_KEY) => {
            let mut hashed = map.clone();
            hashed.remove(DATA_STAMPS_KEY);
            RunId::of_document(&Json::Object(hashed))
        }
        _ => RunId::of_document(doc),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn canonical_json_sorts_and_normalises() {
        let a: Json =
            serde_json::from_str(r#"{"b": 1, "a": {"y": 2.50, "x": [1e-5, true]}}"#).unwrap();
        let b: Json =
            serde_json::from_str(r#"{"a": {"x": [0.00001, true], "y": 2.5}, "b": 1}"#).unwrap();
        assert_eq!(canonical_json(&a), canonical_json(&b));
        assert_eq!(
            canonical_json(&a),
            r#"{"a":{"x":[1e-5,true],"y":2.5},"b":1}"#
        );
    }

    #[test]
    fn identity_ignores_execution_keys_only() {
        let s = Settings::tiny();
        let id = |s: &Settings| RunId::of_document(&identity_document(s, "d", "v1", None));
        let base = id(&s);
        assert_eq!(base.as_str().len(), 64);
        assert_eq!(base.short().len(), 12);
        assert_eq!(
            base,
            id(&Settings {
                device: "cpu".into(),
                ..s.clone()
            })
        );
        assert_eq!(
            base,
            id(&Settings {
                data_root: "/elsewhere".into(),
                ..s.clone()
            })
        );
        assert_ne!(
            base,
            id(&Settings {
                seed: 1,
                ..s.clone()
            })
        );
        assert_ne!(
            base,
            id(&Settings {
                learning_rate: 2e-3,
                ..s.clone()
            })
        );
        // A late key at its default leaves the identity of runs stored before it existed.
        let doc = identity_document(&s, "d", "v1", None);
        assert!(doc["settings"].get("meter_fusion").is_none());
        assert_eq!(RunId::of_document(&doc), base);
        assert_ne!(
            base,
            id(&Settings {
                meter_fusion: true,
                ..s.clone()
            })
        );
        let other_engine = RunId::of_document(&identity_document(&s, "d", "v2", None));
        assert_ne!(base, other_engine);
        let with_dep = RunId::of_document(&identity_document(&s, "d", "v1", Some(&base)));
        assert_ne!(base, with_dep);
        assert_eq!(RunId::parse(base.as_str()), Some(base.clone()));
        assert_eq!(RunId::parse("xyz"), None);
    }

    #[test]
    fn loss_names_count_by_what_the_run_computes() {
        let s = Settings::tiny();
        let id = |names: &[&str]| {
            let s = Settings {
                loss_names: names.iter().map(|n| n.to_string()).collect(),
                ..s.clone()
            };
            RunId::of_document(&identity_document(&s, "d", "v1", None))
        };
        let doc = identity_document(&s, "d", "v1", None);
        assert!(doc["settings"].get("loss_names").is_none());
        // The task's own objectives, in any order, are the default.
        assert_eq!(id(&[]), id(&["mlm", "itm"]));
        assert_eq!(id(&[]), id(&["itm", "mlm"]));
        assert_ne!(id(&[]), id(&["itm"]));
        assert_eq!(id(&["itc", "itm", "mlm"]), id(&["mlm", "itm", "itc"]));
        assert_ne!(id(&["mlm", "itm", "itc"]), id(&[]));
    }

    /// `vit_num_heads = 0` means width / 64: the same model, and the same identity, as that
    /// count spelled out (base runs stored with 12 keep theirs).
    #[test]
    fn vit_heads_count_by_value() {
        let id = |s: &Settings| RunId::of_document(&identity_document(s, "d", "v1", None));
        let base = Settings::default();
        assert_eq!(base.vit_num_heads, 0);
        assert_eq!(base.vit_heads(), 12);
        let spelled = Settings {
            vit_num_heads: 12,
            ..base.clone()
        };
        assert_eq!(id(&base), id(&spelled));
        let doc = identity_document(&base, "d", "v1", None);
        assert_eq!(doc["settings"]["vit_num_heads"], 12);
        let six = Settings {
            vit_num_heads: 6,
            ..base.clone()
        };
        assert_ne!(id(&base), id(&six));
        // The tiny preset's 64-wide ViT has one head, as the reference builds it.
        assert_eq!(Settings::tiny().vit_heads(), 1);
    }

    #[test]
    fn file_digest_follows_size_and_presence() {
        let dir = tempfile::tempdir().unwrap();
        let a = dir.path().join("a.arrow");
        let missing = data_digest(&[&a]);
        std::fs::write(&a, b"12345").unwrap();
        let present = data_digest(&[&a]);
        assert_ne!(missing, present);
        assert_eq!(present, data_digest(&[&a]));
        std::fs::write(&a, b"123456").unwrap();
        assert_ne!(present, data_digest(&[&a]));
    }

    #[test]
    fn weights_digest_is_the_content_of_the_file_a_path_names() {
        let dir = tempfile::tempdir().unwrap();
        let a = dir.path().join("a.ckpt");
        let b = dir.path().join("b.ckpt");
        std::fs::write(&a, b"weights").unwrap();
        std::fs::write(&b, b"weights").unwrap();
        // Where it lies does not matter; what it holds does.
        assert_eq!(weights_digest(&a), weights_digest(&b));
        assert_eq!(weights_digest(&a).len(), 64);
        std::fs::write(&b, b"other weights").unwrap();
        assert_ne!(weights_digest(&a), weights_digest(&b));
        assert!(weights_digest(&dir.path().join("none.ckpt")).starts_with("missing:"));
        // A run folder names its newest checkpoint's model; a step folder its model.
        let step = dir.path().join("run/checkpoints/step-7");
        std::fs::create_dir_all(&step).unwrap();
        std::fs::write(step.join("model.safetensors"), b"weights").unwrap();
        std::fs::write(dir.path().join("run/checkpoints/last"), "step-7").unwrap();
        assert_eq!(
            weights_file(&dir.path().join("run")),
            step.join("model.safetensors")
        );
        assert_eq!(weights_file(&step), step.join("model.safetensors"));
        assert_eq!(weights_digest(&dir.path().join("run")), weights_digest(&a));
    }

    #[test]
    fn shard_patterns_expand() {
        let dir = tempfile::tempdir().unwrap();
        for n in ["sbu_0.arrow", "sbu_1.arrow", "sbu_extra.arrow", "vg.arrow"] {
            std::fs::write(dir.path().join(n), b"x").unwrap();
        }
        let s = Settings {
            data_root: dir.path().display().to_string(),
            datasets: vec!["sbu".into(), "vg".into()],
            ..Settings::default()
        };
        let names: Vec<String> = data_files(&s)
            .iter()
            .map(|p| p.file_name().unwrap().to_string_lossy().into_owned())
            .collect();
        assert_eq!(names, ["sbu_0.arrow", "sbu_1.arrow", "vg.arrow"]);
    }

    #[test]
    fn shards_come_in_numeric_order_and_a_pattern_without_shards_stays() {
        let dir = tempfile::tempdir().unwrap();
        for n in [
            "gcc_10.arrow",
            "gcc_2.arrow",
            "gcc_0.arrow",
            "gcc_x.arrow",
            "gcc_.arrow",
        ] {
            std::fs::write(dir.path().join(n), b"x").unwrap();
        }
        assert_eq!(
            expand_table(dir.path(), "gcc_*"),
            ["gcc_0", "gcc_2", "gcc_10"]
        );
        assert_eq!(expand_table(dir.path(), "sbu_*"), ["sbu_*"]);
        assert_eq!(expand_table(dir.path(), "vg"), ["vg"]);
    }
}
