//! Downloads from the Hugging Face hub into its standard cache, through the `hf-hub` crate's
//! blocking client (ureq: no tokio in the engine). Finding what is already there is
//! [`experiments::experts`]'s (no network); this is the step after it, skipped under
//! `HF_HUB_OFFLINE=1`.
//!
//! The client asks `{HF_ENDPOINT}/{repo}/resolve/{revision}/{file}` for each file, reads the
//! commit and ETag from the `x-repo-commit` and `etag` headers, stores the bytes as
//! `blobs/{etag}`, links `snapshots/{commit}/{file}` to them and writes `refs/main`: the layout
//! Python's `huggingface_hub` writes and reads, so both share one cache.

use std::path::{Path, PathBuf};

use experiments::experts::{self, HubEnv, HubRepo, Role, Snapshot, WEIGHT_FILES};
use hf_hub::api::sync::{ApiBuilder, ApiError};
use hf_hub::{Repo, RepoType};

/// A download that could not happen or failed.
#[derive(Debug, thiserror::Error)]
pub enum HubError {
    /// Missing from the cache while `HF_HUB_OFFLINE=1`.
    #[error("{message}")]
    Offline { repo: String, message: String },
    /// No cache folder to download into.
    #[error("no hub cache to download {repo} into: set HF_HUB_CACHE or HF_HOME")]
    NoCache { repo: String },
    #[error("downloading {file} of {repo} from {endpoint}: {source}")]
    Download {
        repo: String,
        file: String,
        endpoint: String,
        #[source]
        source: Box<ApiError>,
    },
    /// The repository has none of the weights files TowerLab reads.
    #[error("{repo} at {revision} on {endpoint} has no {}", WEIGHT_FILES.join(" or "))]
    NoWeights {
        repo: String,
        revision: String,
        endpoint: String,
    },
    /// Downloaded, but not where the cache layout says.
    #[error("{repo}: the download left no snapshot in {cache}")]
    Layout { repo: String, cache: PathBuf },
    #[error(transparent)]
    Expert(#[from] experts::ExpertError),
}

/// How a download shows its progress.
pub enum Progress<'a> {
    /// A progress bar on the terminal (stderr), per file.
    Bar,
    /// Lines for a run's log: each file's start, then every quarter.
    Log(&'a mut dyn FnMut(String)),
    None,
}

const PUBLIC_HUB: &str = "https://huggingface.co";

fn endpoint(hub: &HubEnv) -> String {
    hub.endpoint
        .clone()
        .unwrap_or_else(|| PUBLIC_HUB.to_string())
        .trim_end_matches('/')
        .to_string()
}

/// A `hf_hub` progress that writes to a run's log.
struct LogProgress<'a, 'b> {
    log: &'a mut dyn FnMut(String),
    repo: &'b str,
    file: String,
    total: usize,
    done: usize,
    quarter: usize,
}

impl hf_hub::api::Progress for LogProgress<'_, '_> {
    fn init(&mut self, size: usize, filename: &str) {
        // `hf-hub` calls this twice per file (before and at the transfer).
        let again = self.total == size && self.file == filename;
        self.total = size;
        self.file = filename.to_string();
        if !again {
            (self.log)(format!(
                "downloading {filename} of {} ({:.1} MiB)",
                self.repo,
                size as f64 / 1048576.0
            ));
        }
    }

    fn update(&mut self, size: usize) {
        self.done += size;
        let q = (self.done * 4).checked_div(self.total).unwrap_or(4);
        if q > self.quarter && q < 4 {
            self.quarter = q;
            (self.log)(format!("downloading {}: {}%", self.file, q * 25));
        }
    }

    fn finish(&mut self) {}
}

fn is_not_found(e: &ApiError) -> bool {
    matches!(e, ApiError::RequestError(r) if matches!(**r, ureq::Error::Status(404, _)))
}

/// Downloads `file` of `repo` at `revision` (a branch or commit; `None` is `main`) into the
/// cache and returns its path in the snapshot. Files already in that snapshot are not fetched
/// again.
pub fn fetch_file(
    hub: &HubEnv,
    repo: &HubRepo,
    file: &str,
    revision: Option<&str>,
    progress: &mut Progress<'_>,
) -> Result<(Snapshot, PathBuf), HubError> {
    if hub.offline {
        return Err(HubError::Offline {
            repo: repo.id.clone(),
            message: format!(
                "{file} of {}: {}",
                repo.id,
                experts::offline_message("vlp_checkpoint", repo, hub)
            ),
        });
    }
    let (snapshot, paths) = download(hub, repo, &[file], revision, progress)?;
    let path = paths.into_iter().next().ok_or_else(|| HubError::Layout {
        repo: repo.id.clone(),
        cache: hub.cache.clone().unwrap_or_default(),
    })?;
    Ok((snapshot, path))
}

/// Downloads what expert `role` needs from `repo` (its [`Role::files`] and the first weights
/// file of [`WEIGHT_FILES`] the repository has) at `revision` (`None`: `main`), and returns the
/// snapshot. Offline (`HF_HUB_OFFLINE=1`): the error names the model, the cache searched and
/// how to fetch it.
pub fn fetch_expert(
    hub: &HubEnv,
    repo: &HubRepo,
    role: Role,
    revision: Option<&str>,
    progress: &mut Progress<'_>,
) -> Result<Snapshot, HubError> {
    if hub.offline {
        return Err(HubError::Offline {
            repo: repo.id.clone(),
            message: experts::offline_message(role.key(), repo, hub),
        });
    }
    let (snapshot, _) = download(hub, repo, role.files(), revision, progress)?;
    // Pin the rest of the download to the commit the first file came from, so a push in
    // between cannot mix two revisions.
    let pinned = Some(snapshot.commit.as_str());
    for (i, weights) in WEIGHT_FILES.iter().enumerate() {
        match download(hub, repo, &[weights], pinned, progress) {
            Ok(_) => return Ok(snapshot),
            Err(HubError::Download { source, .. })
                if is_not_found(&source) && i + 1 < WEIGHT_FILES.len() => {}
            Err(HubError::Download { source, .. }) if is_not_found(&source) => {
                return Err(HubError::NoWeights {
                    repo: repo.id.clone(),
                    revision: snapshot.commit.clone(),
                    endpoint: endpoint(hub),
                })
            }
            Err(e) => return Err(e),
        }
    }
    Ok(snapshot)
}

fn download(
    hub: &HubEnv,
    repo: &HubRepo,
    files: &[&str],
    revision: Option<&str>,
    progress: &mut Progress<'_>,
) -> Result<(Snapshot, Vec<PathBuf>), HubError> {
    let cache = hub.cache.clone().ok_or_else(|| HubError::NoCache {
        repo: repo.id.clone(),
    })?;
    let endpoint = endpoint(hub);
    let err = |file: &str, source: ApiError| HubError::Download {
        repo: repo.id.clone(),
        file: file.to_string(),
        endpoint: endpoint.clone(),
        source: Box::new(source),
    };
    let api = ApiBuilder::new()
        .with_cache_dir(cache.clone())
        .with_endpoint(endpoint.clone())
        .with_token(hub.token.clone())
        .with_progress(false)
        .with_retries(2)
        .build()
        .map_err(|e| err(files.first().copied().unwrap_or(""), e))?;
    let revision = revision.unwrap_or("main").to_string();
    let handle = api.repo(Repo::with_revision(
        repo.id.clone(),
        RepoType::Model,
        revision.clone(),
    ));
    let mut paths = Vec::new();
    for file in files {
        let got = match progress {
            Progress::Bar => handle.download_with_progress(file, indicatif::ProgressBar::new(0)),
            Progress::Log(log) => handle.download_with_progress(
                file,
                LogProgress {
                    log: &mut **log,
                    repo: &repo.id,
                    file: String::new(),
                    total: 0,
                    done: 0,
                    quarter: 0,
                },
            ),
            Progress::None => handle.download_with_progress(file, ()),
        };
        paths.push(got.map_err(|e| err(file, e))?);
    }
    // `snapshots/{commit}/{file}`: the commit is the folder above the first file.
    let snapshot_dir = paths
        .first()
        .and_then(|p| p.parent())
        .map(Path::to_path_buf)
        .ok_or_else(|| HubError::Layout {
            repo: repo.id.clone(),
            cache: cache.clone(),
        })?;
    let commit = snapshot_dir
        .file_name()
        .map(|c| c.to_string_lossy().into_owned())
        .unwrap_or_default();
    Ok((
        Snapshot {
            repo: repo.id.clone(),
            commit,
            dir: snapshot_dir,
        },
        paths,
    ))
}

/// Makes expert `role` named `value` available on this machine: found locally or in the cache
/// (at the pinned `commit` when given), else downloaded (unless offline). The folder the run
/// reads, with what was found.
pub fn ensure_expert(
    role: Role,
    value: &str,
    hub: &HubEnv,
    commit: Option<&str>,
    progress: &mut Progress<'_>,
) -> Result<experts::Found, HubError> {
    match experts::find(role, value, hub, commit)? {
        experts::Availability::Found(f) => Ok(*f),
        experts::Availability::Missing { repo, .. } => {
            fetch_expert(hub, &repo, role, commit, progress)?;
            match experts::find(role, value, hub, commit)? {
                experts::Availability::Found(f) => Ok(*f),
                experts::Availability::Missing { repo, detail } => Err(HubError::Layout {
                    repo: format!("{} ({detail})", repo.id),
                    cache: hub.cache.clone().unwrap_or_default(),
                }),
            }
        }
    }
}

/// The file `vlp_checkpoint` names, downloaded when it is a hub file not in the cache.
pub fn ensure_checkpoint(
    value: &str,
    hub: &HubEnv,
    commit: Option<&str>,
    progress: &mut Progress<'_>,
) -> Result<PathBuf, HubError> {
    match experts::locate_checkpoint(value).map_err(experts::ExpertError::from)? {
        experts::Location::Local(p) => Ok(p),
        experts::Location::Hub { repo, file } => {
            let file = file.unwrap_or_default();
            if let Some(snap) = hub.cached(&repo, commit) {
                let p = snap.dir.join(&file);
                if p.is_file() {
                    return Ok(p);
                }
            }
            fetch_file(hub, &repo, &file, commit, progress).map(|(_, p)| p)
        }
    }
}
