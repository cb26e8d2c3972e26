//! Where to sync and how: base URL, entity, project, key, mode, retries and limits, read from
//! the `WANDB_*` environment and `~/.netrc` like the W&B SDK does.

use std::path::{Path, PathBuf};
use std::time::Duration;

use reqwest::Url;

use super::netrc;
use super::secret::ApiKey;

pub const DEFAULT_BASE_URL: &str = "https://api.wandb.ai";
/// The project used when neither `--project` nor `WANDB_PROJECT` names one.
pub const DEFAULT_PROJECT: &str = "towerlab";
/// W&B's file_stream request limit (`defaultMaxRequestSizeBytes` in wandb-core).
pub const MAX_REQUEST_BYTES: usize = 10 << 20;

/// `WANDB_MODE`: only `online` talks to the server.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    Online,
    Offline,
    Disabled,
}

impl Mode {
    fn parse(value: &str) -> Result<Self, ConfigError> {
        match value.trim().to_ascii_lowercase().as_str() {
            "" | "online" | "run" | "shared" => Ok(Self::Online),
            "offline" | "dryrun" => Ok(Self::Offline),
            "disabled" => Ok(Self::Disabled),
            other => Err(ConfigError::BadValue {
                name: "WANDB_MODE",
                value: other.to_owned(),
                expected: "online, offline or disabled",
            }),
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Online => "online",
            Self::Offline => "offline",
            Self::Disabled => "disabled",
        }
    }
}

/// Where the key came from (shown by `--dry-run`; the key itself never is).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KeySource {
    Env,
    Netrc(PathBuf),
    /// The password of `WANDB_BASE_URL` (`http://api:KEY@host`, as wandb accepts).
    BaseUrl,
    Missing,
}

impl std::fmt::Display for KeySource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Env => f.write_str("WANDB_API_KEY"),
            Self::BaseUrl => f.write_str("the password in WANDB_BASE_URL"),
            Self::Netrc(path) => write!(f, "{}", path.display()),
            Self::Missing => f.write_str("not found"),
        }
    }
}

/// Retries for 429, 5xx, timeouts and dropped connections: exponential backoff with full
/// jitter (a delay drawn uniformly from `0..=min(max_delay, base_delay * 2^attempt)`).
#[derive(Debug, Clone)]
pub struct RetryPolicy {
    /// Tries per request, the first included.
    pub max_attempts: u32,
    pub base_delay: Duration,
    pub max_delay: Duration,
    /// The longest `Retry-After` we wait; a longer one is cut to this.
    pub max_retry_after: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        Self {
            max_attempts: 8,
            base_delay: Duration::from_millis(500),
            max_delay: Duration::from_secs(30),
            max_retry_after: Duration::from_secs(300),
        }
    }
}

impl RetryPolicy {
    /// The jittered delay before retry number `attempt` (1 for the first retry).
    pub fn backoff(&self, attempt: u32) -> Duration {
        let exp = self.base_delay.saturating_mul(
            1u32.checked_shl(attempt.saturating_sub(1))
                .unwrap_or(u32::MAX),
        );
        let cap = exp.min(self.max_delay);
        cap.mul_f64(fastrand::f64())
    }
}

/// Everything a sync needs to know besides the runs.
#[derive(Debug, Clone)]
pub struct WandbConfig {
    /// Without a trailing slash.
    pub base_url: String,
    /// `None`: the key owner's default entity (the server tells us which).
    pub entity: Option<String>,
    pub project: String,
    /// Whether `project` / `entity` came from `WANDB_PROJECT` / `WANDB_ENTITY`, which outrank
    /// an experiment file's `[wandb]` section (see [`WandbConfig::destination`]).
    pub project_from_env: bool,
    pub entity_from_env: bool,
    pub api_key: Option<ApiKey>,
    pub key_source: KeySource,
    pub mode: Mode,
    pub retry: RetryPolicy,
    /// Per HTTP request, reading the reply included (`WANDB_HTTP_TIMEOUT`, seconds).
    pub request_timeout: Duration,
    pub connect_timeout: Duration,
    /// Upper bound for one request body.
    pub max_request_bytes: usize,
    /// Runs synced at the same time.
    pub concurrency: usize,
    /// History rows or log lines read from the source at once.
    pub page_rows: usize,
}

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("{name}={value:?} is not valid: expected {expected}")]
    BadValue {
        name: &'static str,
        value: String,
        expected: &'static str,
    },
    #[error("cannot read {path}: {source}")]
    Netrc {
        path: PathBuf,
        source: std::io::Error,
    },
}

impl WandbConfig {
    /// Reads the process environment and `$NETRC` / `~/.netrc`.
    pub fn from_env() -> Result<Self, ConfigError> {
        let home = std::env::var_os("HOME").map(PathBuf::from);
        Self::from_lookup(|name| std::env::var(name).ok(), home.as_deref())
    }

    /// Like [`from_env`](Self::from_env) with the variables from `lookup` (for tests).
    pub fn from_lookup(
        lookup: impl Fn(&str) -> Option<String>,
        home: Option<&Path>,
    ) -> Result<Self, ConfigError> {
        let non_empty = |name: &str| lookup(name).filter(|v| !v.trim().is_empty());
        let mode = Mode::parse(&lookup("WANDB_MODE").unwrap_or_default())?;
        let base_url = non_empty("WANDB_BASE_URL")
            .unwrap_or_else(|| DEFAULT_BASE_URL.to_owned())
            .trim()
            .trim_end_matches('/')
            .to_owned();
        let url = Url::parse(&base_url).map_err(|_| ConfigError::BadValue {
            name: "WANDB_BASE_URL",
            value: base_url.clone(),
            expected: "an http(s) URL such as https://api.wandb.ai",
        })?;
        if !matches!(url.scheme(), "http" | "https") || url.host_str().is_none() {
            return Err(ConfigError::BadValue {
                name: "WANDB_BASE_URL",
                value: without_credentials(&url),
                expected: "an http(s) URL such as https://api.wandb.ai",
            });
        }
        // Credentials in the URL are taken as the key and never kept in what is printed (sync
        // summaries, the store's sync keys, logs).
        let url_key = url
            .password()
            .filter(|p| !p.is_empty())
            .and_then(|p| ApiKey::new(p.to_owned()));
        let base_url = if url.password().is_some() || !url.username().is_empty() {
            without_credentials(&url)
        } else {
            base_url
        };
        // A day: longer is a typo (and `Duration::from_secs_f64` panics past ~1.8e19 s).
        const MAX_HTTP_TIMEOUT_SECS: f64 = 86_400.0;
        let request_timeout = match non_empty("WANDB_HTTP_TIMEOUT") {
            None => Duration::from_secs(60),
            Some(v) => v
                .trim()
                .parse::<f64>()
                .ok()
                .filter(|s| *s > 0.0 && *s <= MAX_HTTP_TIMEOUT_SECS)
                .and_then(|s| Duration::try_from_secs_f64(s).ok())
                .ok_or(ConfigError::BadValue {
                    name: "WANDB_HTTP_TIMEOUT",
                    value: v,
                    expected: "a positive number of seconds, at most 86400",
                })?,
        };

        let (api_key, key_source) = match non_empty("WANDB_API_KEY").and_then(ApiKey::new) {
            Some(key) => (Some(key), KeySource::Env),
            None if url_key.is_some() => (url_key, KeySource::BaseUrl),
            None => {
                let path = non_empty("NETRC")
                    .map(PathBuf::from)
                    .or_else(|| home.map(|h| h.join(".netrc")));
                let host = url.host_str().unwrap_or_default();
                match path {
                    Some(path) => match read_netrc(&path, host)? {
                        Some(key) => (Some(key), KeySource::Netrc(path)),
                        None => (None, KeySource::Missing),
                    },
                    None => (None, KeySource::Missing),
                }
            }
        };

        Ok(Self {
            base_url,
            project_from_env: non_empty("WANDB_PROJECT").is_some(),
            entity_from_env: non_empty("WANDB_ENTITY").is_some(),
            entity: non_empty("WANDB_ENTITY").map(|s| s.trim().to_owned()),
            project: non_empty("WANDB_PROJECT")
                .map(|s| s.trim().to_owned())
                .unwrap_or_else(|| DEFAULT_PROJECT.to_owned()),
            api_key,
            key_source,
            mode,
            retry: RetryPolicy::default(),
            request_timeout,
            connect_timeout: Duration::from_secs(20),
            max_request_bytes: MAX_REQUEST_BYTES,
            concurrency: 4,
            page_rows: 5_000,
        })
    }

    /// A config for `base_url` with `key`, default limits, online (for tests and embedding).
    pub fn new(base_url: &str, project: &str, api_key: ApiKey) -> Self {
        Self {
            base_url: base_url.trim_end_matches('/').to_owned(),
            entity: None,
            project: project.to_owned(),
            project_from_env: false,
            entity_from_env: false,
            api_key: Some(api_key),
            key_source: KeySource::Env,
            mode: Mode::Online,
            retry: RetryPolicy::default(),
            request_timeout: Duration::from_secs(60),
            connect_timeout: Duration::from_secs(20),
            max_request_bytes: MAX_REQUEST_BYTES,
            concurrency: 4,
            page_rows: 5_000,
        }
    }
}

impl WandbConfig {
    /// Where an experiment's runs go: the one rule of the live sync and of
    /// `sync wandb --experiment`. `WANDB_PROJECT` / `WANDB_ENTITY`, else the file's `[wandb]`
    /// section (whose project defaults to the experiment's name), else the defaults. The
    /// `--project` / `--entity` flags of `sync wandb`, where given, come before all of these.
    pub fn destination(&self, spec: Option<&experiments::WandbSpec>) -> (String, Option<String>) {
        let project = match spec {
            Some(spec) if !self.project_from_env => spec.project.clone(),
            _ => self.project.clone(),
        };
        let entity = match spec {
            Some(spec) if !self.entity_from_env => spec.entity.clone().or(self.entity.clone()),
            _ => self.entity.clone(),
        };
        (project, entity)
    }
}

fn read_netrc(path: &Path, host: &str) -> Result<Option<ApiKey>, ConfigError> {
    match std::fs::read_to_string(path) {
        Ok(text) => Ok(netrc::password_for(&text, host).and_then(ApiKey::new)),
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(source) => Err(ConfigError::Netrc {
            path: path.to_owned(),
            source,
        }),
    }
}

/// The URL with its user and password removed, as printed and stored.
fn without_credentials(url: &Url) -> String {
    let mut clean = url.clone();
    let _ = clean.set_username("");
    let _ = clean.set_password(None);
    clean.as_str().trim_end_matches('/').to_owned()
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;

    fn config(vars: &[(&str, &str)], home: Option<&Path>) -> Result<WandbConfig, ConfigError> {
        let vars: HashMap<String, String> = vars
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        WandbConfig::from_lookup(|name| vars.get(name).cloned(), home)
    }

    #[test]
    fn env_key_wins_over_netrc() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join(".netrc"),
            "machine api.wandb.ai login user password fromnetrc\n",
        )
        .unwrap();
        let c = config(&[("WANDB_API_KEY", "fromenv")], Some(dir.path())).unwrap();
        assert_eq!(c.api_key.unwrap().expose(), "fromenv");
        assert_eq!(c.key_source, KeySource::Env);
        let c = config(&[], Some(dir.path())).unwrap();
        assert_eq!(c.api_key.unwrap().expose(), "fromnetrc");
        assert_eq!(c.base_url, DEFAULT_BASE_URL);
        assert_eq!(c.project, DEFAULT_PROJECT);
        assert_eq!(c.mode, Mode::Online);
    }

    #[test]
    fn netrc_entry_follows_the_base_url_host_and_netrc_variable() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("my-netrc");
        std::fs::write(&file, "machine wandb.example.org password selfhosted\n").unwrap();
        let c = config(
            &[
                ("NETRC", file.to_str().unwrap()),
                ("WANDB_BASE_URL", "https://wandb.example.org/"),
                ("WANDB_ENTITY", "lab"),
                ("WANDB_PROJECT", "mt"),
            ],
            None,
        )
        .unwrap();
        assert_eq!(c.api_key.unwrap().expose(), "selfhosted");
        assert_eq!(c.base_url, "https://wandb.example.org");
        assert_eq!(c.entity.as_deref(), Some("lab"));
        assert_eq!(c.project, "mt");
        let c = config(&[], Some(dir.path())).unwrap();
        assert!(c.api_key.is_none());
        assert_eq!(c.key_source, KeySource::Missing);
    }

    #[test]
    fn modes_and_bad_values() {
        assert_eq!(
            config(&[("WANDB_MODE", "offline")], None).unwrap().mode,
            Mode::Offline
        );
        assert_eq!(
            config(&[("WANDB_MODE", "disabled")], None).unwrap().mode,
            Mode::Disabled
        );
        let err = config(&[("WANDB_MODE", "sometimes")], None).unwrap_err();
        assert!(err.to_string().contains("WANDB_MODE"), "{err}");
        let err = config(&[("WANDB_BASE_URL", "not a url")], None).unwrap_err();
        assert!(err.to_string().contains("WANDB_BASE_URL"), "{err}");
        let err = config(&[("WANDB_HTTP_TIMEOUT", "-3")], None).unwrap_err();
        assert!(err.to_string().contains("WANDB_HTTP_TIMEOUT"), "{err}");
        // One rule for the destination: the environment, then the file, then the defaults.
        let spec = experiments::WandbSpec {
            enabled: true,
            project: "from-file".into(),
            entity: Some("file-team".into()),
            live: false,
        };
        let plain = config(&[], None).unwrap();
        assert_eq!(
            plain.destination(Some(&spec)),
            ("from-file".to_string(), Some("file-team".to_string()))
        );
        assert_eq!(plain.destination(None), (DEFAULT_PROJECT.to_string(), None));
        let env = config(
            &[("WANDB_PROJECT", "env-p"), ("WANDB_ENTITY", "env-e")],
            None,
        )
        .unwrap();
        assert_eq!(
            env.destination(Some(&spec)),
            ("env-p".to_string(), Some("env-e".to_string()))
        );
        // A key in the URL is the key, and never part of the URL that gets printed.
        let c = config(
            &[(
                "WANDB_BASE_URL",
                "http://api:secretkey0123456789abcdef@wandb.local:8080/",
            )],
            None,
        )
        .unwrap();
        assert_eq!(c.base_url, "http://wandb.local:8080");
        assert_eq!(c.key_source, KeySource::BaseUrl);
        assert!(c.api_key.is_some());
        // Past what a Duration holds: an error, not a panic.
        for huge in ["1e30", "inf", "NaN"] {
            let err = config(&[("WANDB_HTTP_TIMEOUT", huge)], None).unwrap_err();
            assert!(err.to_string().contains("at most 86400"), "{huge}: {err}");
        }
    }

    #[test]
    fn backoff_is_bounded_and_grows() {
        let policy = RetryPolicy {
            max_attempts: 5,
            base_delay: Duration::from_millis(100),
            max_delay: Duration::from_millis(350),
            max_retry_after: Duration::from_secs(1),
        };
        for _ in 0..200 {
            assert!(policy.backoff(1) <= Duration::from_millis(100));
            assert!(policy.backoff(2) <= Duration::from_millis(200));
            assert!(policy.backoff(10) <= Duration::from_millis(350));
            assert!(policy.backoff(40) <= Duration::from_millis(350));
        }
    }
}
