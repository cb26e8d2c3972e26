//! The raw layout: required files and folders (all checked before any work, reported at once),
//! image folder listings with the reference's `glob` semantics, and JSON readers.

use std::fs::File;
use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};

use serde::de::DeserializeOwned;

use super::error::{ConvertError, ConvertResult};

/// What a dataset needs under its raw root.
#[derive(Debug, Default)]
pub(crate) struct Required {
    files: Vec<PathBuf>,
    dirs: Vec<PathBuf>,
}

impl Required {
    pub fn file(&mut self, path: PathBuf) -> PathBuf {
        if !self.files.contains(&path) {
            self.files.push(path.clone());
        }
        path
    }

    pub fn dir(&mut self, path: PathBuf) -> PathBuf {
        if !self.dirs.contains(&path) {
            self.dirs.push(path.clone());
        }
        path
    }

    /// One error naming every missing path.
    pub fn check(&self, dataset: &'static str, root: &Path) -> ConvertResult<()> {
        let mut missing: Vec<(PathBuf, &'static str)> = Vec::new();
        for f in &self.files {
            if !f.is_file() {
                missing.push((f.clone(), "file"));
            }
        }
        for d in &self.dirs {
            if !d.is_dir() {
                missing.push((d.clone(), "folder"));
            }
        }
        if missing.is_empty() {
            Ok(())
        } else {
            Err(ConvertError::MissingInputs {
                dataset,
                root: root.to_path_buf(),
                missing,
            })
        }
    }
}

/// The names in `dir` that `glob(f"{dir}/*{suffix}")` returns: not hidden, ending with `suffix`
/// (case-sensitive), sorted by name. Folders are left out (the reference would fail opening
/// one); names that are not UTF-8 are left out too (pyarrow cannot store them as strings).
pub(crate) fn list_dir(dir: &Path, suffix: &str) -> ConvertResult<Vec<String>> {
    let entries = std::fs::read_dir(dir).map_err(|e| ConvertError::io(dir, e))?;
    let mut names = Vec::new();
    for entry in entries {
        let entry = entry.map_err(|e| ConvertError::io(dir, e))?;
        let Ok(name) = entry.file_name().into_string() else {
            tracing::warn!(
                "{}: skipping a file name that is not UTF-8: {:?}",
                dir.display(),
                entry.file_name()
            );
            continue;
        };
        if name.starts_with('.') || !name.ends_with(suffix) {
            continue;
        }
        let is_dir = match entry.file_type() {
            Ok(t) if t.is_symlink() => entry.path().is_dir(),
            Ok(t) => t.is_dir(),
            Err(_) => false,
        };
        if !is_dir {
            names.push(name);
        }
    }
    names.sort_unstable();
    Ok(names)
}

/// Annotation files up to this size are read whole and parsed from memory (several times
/// faster); larger ones (VG's region descriptions) are parsed from a buffered reader, so their
/// text never sits in memory beside what is parsed from it.
const SLURP_JSON_BYTES: u64 = 512 << 20;

/// A whole JSON file into `T`.
pub(crate) fn read_json<T: DeserializeOwned>(
    path: &Path,
    expected: &'static str,
) -> ConvertResult<T> {
    let bad = |source| ConvertError::Json {
        path: path.to_path_buf(),
        expected,
        source,
    };
    let file = File::open(path).map_err(|e| ConvertError::io(path, e))?;
    let len = file
        .metadata()
        .map_err(|e| ConvertError::io(path, e))?
        .len();
    if len <= SLURP_JSON_BYTES {
        let mut text = Vec::new();
        BufReader::new(file)
            .read_to_end(&mut text)
            .map_err(|e| ConvertError::io(path, e))?;
        return serde_json::from_slice(&text).map_err(bad);
    }
    let mut de = serde_json::Deserializer::from_reader(BufReader::with_capacity(1 << 20, file));
    let value = T::deserialize(&mut de).map_err(bad)?;
    de.end().map_err(bad)?;
    Ok(value)
}

/// A JSON-lines file (one object per line, `json.loads` per line); blank lines are skipped.
/// Returns (1-based line, value).
pub(crate) fn read_json_lines<T: DeserializeOwned>(
    path: &Path,
    expected: &'static str,
) -> ConvertResult<Vec<(usize, T)>> {
    let file = File::open(path).map_err(|e| ConvertError::io(path, e))?;
    let mut out = Vec::new();
    for (i, line) in BufReader::new(file).lines().enumerate() {
        let line = line.map_err(|e| ConvertError::io(path, e))?;
        if line.trim().is_empty() {
            continue;
        }
        let value = serde_json::from_str(&line).map_err(|source| ConvertError::JsonLine {
            path: path.to_path_buf(),
            line: i + 1,
            expected,
            source,
        })?;
        out.push((i + 1, value));
    }
    Ok(out)
}

/// The last component of `root` (made absolute), as the reference's `path.split("/")[-3]` sees
/// it for `{root}/{folder}/{name}`.
pub(crate) fn root_name(root: &Path) -> String {
    let abs = std::fs::canonicalize(root).unwrap_or_else(|_| root.to_path_buf());
    abs.file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default()
}
