//! What a sync reads from (the runs) and where it keeps what W&B acknowledged (the offsets).
//! The store implements both; tests use the in-memory and file versions here.

use std::collections::{BTreeMap, HashMap};
use std::future::Future;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use serde::{Deserialize, Serialize};

use super::events_file::EventsRow;
use super::types::{HistoryRow, LogLine, RunMeta, Selection};

/// Errors from a source or an offsets store, carried as they are.
pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// The runs to sync. History rows are read in step order after the last step sent; log lines
/// by their 0-based line index. Rows and lines already sent are never sent again.
pub trait SyncSource: Send + Sync + 'static {
    fn list_runs(
        &self,
        selection: &Selection,
    ) -> impl Future<Output = Result<Vec<RunMeta>, BoxError>> + Send;

    /// Up to `limit` rows with a step above `after_step` (all with `None`), by step.
    fn history(
        &self,
        run: &RunMeta,
        after_step: Option<u64>,
        limit: usize,
    ) -> impl Future<Output = Result<Vec<HistoryRow>, BoxError>> + Send;

    /// Up to `limit` console lines starting at line `from`.
    fn logs(
        &self,
        run: &RunMeta,
        from: u64,
        limit: usize,
    ) -> impl Future<Output = Result<Vec<LogLine>, BoxError>> + Send;

    /// Up to `limit` system samples (`wandb-events.jsonl` lines) starting at sample `from`.
    /// A source without system metrics has none.
    fn system_events(
        &self,
        run: &RunMeta,
        from: u64,
        limit: usize,
    ) -> impl Future<Output = Result<Vec<EventsRow>, BoxError>> + Send {
        let _ = (run, from, limit);
        async { Ok(Vec::new()) }
    }
}

/// What the server has acknowledged (2xx) for one run, so that the next sync sends only what
/// is new. Keyed by [`sync_key`]; never holds credentials.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Offsets {
    /// Lines of `wandb-history.jsonl` acknowledged.
    #[serde(default)]
    pub history: u64,
    /// The step of the last history line acknowledged.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub history_step: Option<u64>,
    /// Lines of `output.log` acknowledged.
    #[serde(default)]
    pub log: u64,
    /// Lines of `wandb-events.jsonl` (system samples) acknowledged.
    #[serde(default)]
    pub events: u64,
    /// Digest of the last summary acknowledged.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub summary: Option<String>,
    /// Digest of the last `UpsertBucket` variables acknowledged (config, tags, group...).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub upsert: Option<String>,
    /// The entity the server put the run in (the default entity when none was given).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub entity: Option<String>,
    /// The exit code acknowledged with `complete`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exit_code: Option<i32>,
}

/// One acknowledgement, saved as soon as the server answers 2xx.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Acked {
    Upsert {
        digest: String,
        entity: String,
    },
    /// Lines acknowledged so far and the step of the last one.
    History {
        lines: u64,
        step: u64,
    },
    Log(u64),
    /// `wandb-events.jsonl` lines acknowledged so far.
    Events(u64),
    Summary(String),
    Complete(i32),
}

impl Acked {
    /// A stable name for a key-value table: one row per (run, file).
    pub fn file(&self) -> &'static str {
        match self {
            Self::Upsert { .. } => "upsert",
            Self::History { .. } => "wandb-history.jsonl",
            Self::Log(_) => "output.log",
            Self::Events(_) => "wandb-events.jsonl",
            Self::Summary(_) => "wandb-summary.json",
            Self::Complete(_) => "complete",
        }
    }

    /// The value stored for [`file`](Self::file); [`Offsets::from_rows`] reads it back.
    pub fn value(&self) -> String {
        match self {
            Self::Upsert { digest, entity } => format!("{digest} {entity}"),
            Self::History { lines, step } => format!("{lines} {step}"),
            Self::Log(n) | Self::Events(n) => n.to_string(),
            Self::Summary(digest) => digest.clone(),
            Self::Complete(code) => code.to_string(),
        }
    }
}

#[derive(Debug, thiserror::Error)]
#[error("bad offsets row for {file:?}: {value:?}")]
pub struct BadOffsetsRow {
    pub file: String,
    pub value: String,
}

impl Offsets {
    pub fn apply(&mut self, acked: &Acked) {
        match acked {
            Acked::Upsert { digest, entity } => {
                self.upsert = Some(digest.clone());
                self.entity = Some(entity.clone());
            }
            Acked::History { lines, step } => {
                self.history = *lines;
                self.history_step = Some(*step);
            }
            Acked::Log(n) => self.log = *n,
            Acked::Events(n) => self.events = *n,
            Acked::Summary(digest) => self.summary = Some(digest.clone()),
            Acked::Complete(code) => self.exit_code = Some(*code),
        }
    }

    /// Rebuilds the record from `(file, value)` rows written with [`Acked::file`] /
    /// [`Acked::value`].
    pub fn from_rows<F, V>(rows: impl IntoIterator<Item = (F, V)>) -> Result<Self, BadOffsetsRow>
    where
        F: AsRef<str>,
        V: AsRef<str>,
    {
        let mut offsets = Self::default();
        for (file, value) in rows {
            let (file, value) = (file.as_ref(), value.as_ref());
            let bad = || BadOffsetsRow {
                file: file.to_owned(),
                value: value.to_owned(),
            };
            let acked = match file {
                "upsert" => {
                    let (digest, entity) = value.split_once(' ').ok_or_else(bad)?;
                    Acked::Upsert {
                        digest: digest.to_owned(),
                        entity: entity.to_owned(),
                    }
                }
                "wandb-history.jsonl" => {
                    let (lines, step) = value.split_once(' ').ok_or_else(bad)?;
                    Acked::History {
                        lines: lines.parse().map_err(|_| bad())?,
                        step: step.parse().map_err(|_| bad())?,
                    }
                }
                "output.log" => Acked::Log(value.parse().map_err(|_| bad())?),
                "wandb-events.jsonl" => Acked::Events(value.parse().map_err(|_| bad())?),
                "wandb-summary.json" => Acked::Summary(value.to_owned()),
                "complete" => Acked::Complete(value.parse().map_err(|_| bad())?),
                _ => return Err(bad()),
            };
            offsets.apply(&acked);
        }
        Ok(offsets)
    }
}

/// The key of a run's offsets: `<host>/<entity or ->/<project>/<wandb run id>`, so that syncing
/// to another server, entity or project starts from scratch.
pub fn sync_key(base_url: &str, entity: Option<&str>, project: &str, wandb_id: &str) -> String {
    let host = base_url
        .split_once("://")
        .map_or(base_url, |(_, rest)| rest)
        .trim_end_matches('/');
    format!("{host}/{}/{project}/{wandb_id}", entity.unwrap_or("-"))
}

/// Persists acknowledged offsets per run and destination. `key` is the [`sync_key`] of the
/// destination run (server, entity, project, W&B id); `run` says which TowerLab run it is, for
/// stores that keep the offsets next to the run (one row per `(run, key, acked.file())`).
pub trait OffsetStore: Send + Sync + 'static {
    fn load_offsets(
        &self,
        run: &RunMeta,
        key: &str,
    ) -> impl Future<Output = Result<Offsets, BoxError>> + Send;

    fn save_offsets(
        &self,
        run: &RunMeta,
        key: &str,
        acked: &Acked,
    ) -> impl Future<Output = Result<(), BoxError>> + Send;
}

/// Offsets kept in memory (lost at exit).
#[derive(Debug, Default)]
pub struct MemoryOffsets {
    runs: Mutex<HashMap<String, Offsets>>,
}

impl MemoryOffsets {
    pub fn snapshot(&self) -> HashMap<String, Offsets> {
        lock(&self.runs).clone()
    }
}

impl OffsetStore for MemoryOffsets {
    async fn load_offsets(&self, _run: &RunMeta, key: &str) -> Result<Offsets, BoxError> {
        Ok(lock(&self.runs).get(key).cloned().unwrap_or_default())
    }

    async fn save_offsets(&self, _run: &RunMeta, key: &str, acked: &Acked) -> Result<(), BoxError> {
        lock(&self.runs)
            .entry(key.to_owned())
            .or_default()
            .apply(acked);
        Ok(())
    }
}

/// Offsets in a JSON file (`{"<sync key>": {...}}`), rewritten atomically on every save.
#[derive(Debug)]
pub struct FileOffsets {
    path: PathBuf,
    runs: Mutex<BTreeMap<String, Offsets>>,
}

#[derive(Debug, thiserror::Error)]
pub enum FileOffsetsError {
    #[error("cannot read offsets file {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("offsets file {path} is not valid: {source}")]
    Parse {
        path: PathBuf,
        source: serde_json::Error,
    },
    #[error("cannot write offsets file {path}: {source}")]
    Write {
        path: PathBuf,
        source: std::io::Error,
    },
}

impl FileOffsets {
    /// Opens `path`, which may not exist yet.
    pub fn open(path: impl Into<PathBuf>) -> Result<Self, FileOffsetsError> {
        let path = path.into();
        let runs = match std::fs::read(&path) {
            Ok(bytes) => {
                serde_json::from_slice(&bytes).map_err(|source| FileOffsetsError::Parse {
                    path: path.clone(),
                    source,
                })?
            }
            Err(err) if err.kind() == std::io::ErrorKind::NotFound => BTreeMap::new(),
            Err(source) => return Err(FileOffsetsError::Read { path, source }),
        };
        Ok(Self {
            path,
            runs: Mutex::new(runs),
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    fn write(&self, runs: &BTreeMap<String, Offsets>) -> Result<(), FileOffsetsError> {
        let write_err = |source| FileOffsetsError::Write {
            path: self.path.clone(),
            source,
        };
        let bytes = serde_json::to_vec_pretty(runs).map_err(|e| write_err(e.into()))?;
        let tmp = self.path.with_extension("tmp");
        std::fs::write(&tmp, bytes).map_err(write_err)?;
        std::fs::rename(&tmp, &self.path).map_err(write_err)
    }
}

impl FileOffsets {
    /// The offsets saved under `key`.
    pub fn get(&self, key: &str) -> Offsets {
        lock(&self.runs).get(key).cloned().unwrap_or_default()
    }
}

impl OffsetStore for FileOffsets {
    async fn load_offsets(&self, _run: &RunMeta, key: &str) -> Result<Offsets, BoxError> {
        Ok(self.get(key))
    }

    async fn save_offsets(&self, _run: &RunMeta, key: &str, acked: &Acked) -> Result<(), BoxError> {
        let mut runs = lock(&self.runs);
        runs.entry(key.to_owned()).or_default().apply(acked);
        self.write(&runs)?;
        Ok(())
    }
}

/// A poisoned lock only means another sync task panicked; the map itself is still whole.
fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rows_round_trip() {
        let acks = [
            Acked::Upsert {
                digest: "abc".into(),
                entity: "lab".into(),
            },
            Acked::History {
                lines: 120,
                step: 1190,
            },
            Acked::Log(7),
            Acked::Events(3),
            Acked::Summary("def".into()),
            Acked::Complete(0),
        ];
        let mut expected = Offsets::default();
        for a in &acks {
            expected.apply(a);
        }
        let rows: Vec<_> = acks.iter().map(|a| (a.file(), a.value())).collect();
        assert_eq!(Offsets::from_rows(rows).unwrap(), expected);
        assert!(Offsets::from_rows([("wandb-history.jsonl", "x")]).is_err());
    }

    #[test]
    fn file_offsets_survive_reopening() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("offsets.json");
        let rt = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        let run = RunMeta {
            run_id: "r".into(),
            content_hash: "h".into(),
            experiment: "e".into(),
            cell: "c".into(),
            task: "t".into(),
            display_name: "d".into(),
            axes: Vec::new(),
            config: serde_json::Map::new(),
            summary: serde_json::Map::new(),
            status: super::super::types::RunState::Running,
            history_len: 0,
            log_len: 0,
            events_len: 0,
        };
        rt.block_on(async {
            let store = FileOffsets::open(&path).unwrap();
            let five = Acked::History { lines: 5, step: 4 };
            store.save_offsets(&run, "k", &five).await.unwrap();
            store.save_offsets(&run, "k", &Acked::Log(2)).await.unwrap();
            let again = FileOffsets::open(&path).unwrap();
            let o = again.load_offsets(&run, "k").await.unwrap();
            assert_eq!((o.history, o.log, o.history_step), (5, 2, Some(4)));
            assert_eq!(again.get("other"), Offsets::default());
        });
        std::fs::write(&path, "{not json").unwrap();
        let err = FileOffsets::open(&path).unwrap_err().to_string();
        assert!(err.contains("offsets.json"), "{err}");
    }

    #[test]
    fn sync_key_names_server_entity_project_and_run() {
        assert_eq!(
            sync_key("https://api.wandb.ai", Some("lab"), "mt", "abc"),
            "api.wandb.ai/lab/mt/abc"
        );
        assert_eq!(
            sync_key("http://127.0.0.1:9/", None, "mt", "abc"),
            "127.0.0.1:9/-/mt/abc"
        );
    }
}
