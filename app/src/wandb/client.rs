//! The three HTTP calls of a W&B sync (GraphQL `UpsertBucket`, file_stream posts and the final
//! `complete`), with Basic auth, retries and messages that never contain the key.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use reqwest::header::{HeaderMap, CONTENT_TYPE, RETRY_AFTER};
use reqwest::{StatusCode, Url};
use serde_json::Value;

use super::config::{RetryPolicy, WandbConfig};
use super::secret::ApiKey;

const UPSERT_BUCKET: &str = "mutation UpsertBucket($id: String, $name: String, $project: String, \
$entity: String, $groupName: String, $description: String, $displayName: String, $notes: String, \
$commit: String, $config: JSONString, $host: String, $debug: Boolean, $program: String, \
$repo: String, $jobType: String, $state: String, $sweep: String, $tags: [String!], \
$summaryMetrics: JSONString) { upsertBucket(input: { id: $id, name: $name, groupName: $groupName, \
modelName: $project, entityName: $entity, description: $description, displayName: $displayName, \
notes: $notes, config: $config, commit: $commit, host: $host, debug: $debug, jobProgram: $program, \
jobRepo: $repo, jobType: $jobType, state: $state, sweep: $sweep, tags: $tags, \
summaryMetrics: $summaryMetrics }) { bucket { id name displayName description config sweepName \
project { id name entity { id name } } historyLineCount } inserted } }";

/// A request that did not succeed. None of the texts contains the API key.
#[derive(Debug, thiserror::Error)]
pub enum RequestError {
    #[error(
        "W&B rejected the API key (HTTP 401 from {host}). Set it with `export WANDB_API_KEY=<key>` \
         or a `machine {host} login user password <key>` line in ~/.netrc (or the file named by \
         $NETRC); keys are listed at https://wandb.ai/authorize"
    )]
    Unauthorized { host: String },
    #[error("no W&B API key: set `export WANDB_API_KEY=<key>` or add a `machine {host} login user password <key>` line to ~/.netrc (or the file named by $NETRC)")]
    NoKey { host: String },
    #[error("{what}: HTTP {status}: {message}")]
    Rejected {
        what: String,
        status: u16,
        message: String,
    },
    #[error("{what}: gave up after {attempts} attempts: {last}")]
    GaveUp {
        what: String,
        attempts: u32,
        last: String,
    },
    #[error("{what}: {message}")]
    BadReply { what: String, message: String },
    #[error(
        "the W&B server at {host} named no entity (user or team) for the runs and none is set: \
         set one with `export WANDB_ENTITY=<user or team>`, `towerlab sync wandb --entity \
         <user or team>`, or `entity = \"<user or team>\"` in the experiment file's [wandb] \
         section"
    )]
    NoEntity { host: String },
    #[error("cannot set up the HTTP client: {0}")]
    Setup(String),
}

/// Counters over all requests of one client.
#[derive(Debug, Default)]
pub struct RequestStats {
    pub requests: AtomicU64,
    pub retries: AtomicU64,
    pub bytes_sent: AtomicU64,
}

/// What `UpsertBucket` told us.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UpsertReply {
    pub inserted: bool,
    pub entity: String,
    pub history_line_count: Option<u64>,
}

#[derive(Debug, Clone)]
pub struct Client {
    http: reqwest::Client,
    base: Url,
    host: String,
    key: ApiKey,
    retry: RetryPolicy,
    stats: Arc<RequestStats>,
}

impl Client {
    pub fn new(config: &WandbConfig) -> Result<Self, RequestError> {
        let base = Url::parse(&config.base_url)
            .map_err(|e| RequestError::Setup(format!("bad base URL: {e}")))?;
        let host = base.host_str().unwrap_or_default().to_owned();
        let key = config
            .api_key
            .clone()
            .ok_or_else(|| RequestError::NoKey { host: host.clone() })?;
        let mut headers = HeaderMap::new();
        headers.insert(
            CONTENT_TYPE,
            "application/json".parse().expect("static header"),
        );
        let http = reqwest::Client::builder()
            .user_agent(concat!("towerlab/", env!("CARGO_PKG_VERSION")))
            .default_headers(headers)
            .timeout(config.request_timeout)
            .connect_timeout(config.connect_timeout)
            .build()
            .map_err(|e| RequestError::Setup(describe(&e, &key)))?;
        Ok(Self {
            http,
            base,
            host,
            key,
            retry: config.retry.clone(),
            stats: Arc::default(),
        })
    }

    pub fn stats(&self) -> &RequestStats {
        &self.stats
    }

    /// `UpsertBucket` with the given variables (see the sync module for their content).
    pub async fn upsert_bucket(&self, variables: &Value) -> Result<UpsertReply, RequestError> {
        let what = format!(
            "UpsertBucket for run {}",
            variables["name"].as_str().unwrap_or("?")
        );
        let body = serde_json::json!({
            "operationName": "UpsertBucket",
            "query": UPSERT_BUCKET,
            "variables": variables,
        });
        let mut url = self.base.clone();
        extend_path(&mut url, &["graphql"]);
        let reply = self.post(url, body.to_string().into(), &what).await?;
        let reply: Value = serde_json::from_slice(&reply).map_err(|e| RequestError::BadReply {
            what: what.clone(),
            message: format!("the reply is not JSON: {e}"),
        })?;
        if let Some(errors) = reply.get("errors").and_then(Value::as_array) {
            if !errors.is_empty() {
                let message = errors
                    .iter()
                    .map(|e| e["message"].as_str().unwrap_or("unknown error").to_owned())
                    .collect::<Vec<_>>()
                    .join("; ");
                return Err(RequestError::Rejected {
                    what,
                    status: 200,
                    message: self.key.redact(&message),
                });
            }
        }
        let upsert = &reply["data"]["upsertBucket"];
        let entity = upsert["bucket"]["project"]["entity"]["name"]
            .as_str()
            .filter(|e| !e.is_empty())
            .or_else(|| variables["entity"].as_str().filter(|e| !e.is_empty()))
            .ok_or_else(|| RequestError::NoEntity {
                host: self.host.clone(),
            })?;
        Ok(UpsertReply {
            inserted: upsert["inserted"].as_bool().unwrap_or(false),
            entity: entity.to_owned(),
            history_line_count: upsert["bucket"]["historyLineCount"].as_u64(),
        })
    }

    /// One file_stream POST for `entity/project/run_id`.
    pub async fn file_stream(
        &self,
        entity: &str,
        project: &str,
        run_id: &str,
        body: Bytes,
        what: &str,
    ) -> Result<(), RequestError> {
        let mut url = self.base.clone();
        extend_path(&mut url, &["files", entity, project, run_id, "file_stream"]);
        self.post(url, body, what).await.map(drop)
    }

    /// POSTs `body`, retrying 408, 429, 5xx, timeouts and dropped connections.
    async fn post(&self, url: Url, body: Bytes, what: &str) -> Result<Bytes, RequestError> {
        let max = self.retry.max_attempts.max(1);
        let mut attempt = 0;
        loop {
            attempt += 1;
            self.stats.requests.fetch_add(1, Ordering::Relaxed);
            self.stats
                .bytes_sent
                .fetch_add(body.len() as u64, Ordering::Relaxed);
            let sent = self
                .http
                .post(url.clone())
                .basic_auth("api", Some(self.key.expose()))
                .body(body.clone())
                .send()
                .await;
            let (last, retry_after) = match sent {
                Ok(resp) => {
                    let status = resp.status();
                    let retry_after = retry_after(resp.headers());
                    if status.is_success() {
                        match resp.bytes().await {
                            Ok(bytes) => return Ok(bytes),
                            Err(e) => (describe(&e, &self.key), None),
                        }
                    } else {
                        let text = resp.text().await.unwrap_or_default();
                        let message = self.key.redact(&short(&text));
                        match classify(status) {
                            Class::Auth => {
                                return Err(RequestError::Unauthorized {
                                    host: self.host.clone(),
                                })
                            }
                            Class::Fatal => {
                                return Err(RequestError::Rejected {
                                    what: what.to_owned(),
                                    status: status.as_u16(),
                                    message,
                                })
                            }
                            Class::Retry => (format!("HTTP {status}: {message}"), retry_after),
                        }
                    }
                }
                Err(e) if e.is_builder() => {
                    return Err(RequestError::Setup(describe(&e, &self.key)));
                }
                Err(e) => (describe(&e, &self.key), None),
            };
            if attempt >= max {
                return Err(RequestError::GaveUp {
                    what: what.to_owned(),
                    attempts: attempt,
                    last,
                });
            }
            let delay = match retry_after {
                Some(wait) => wait.min(self.retry.max_retry_after),
                None => self.retry.backoff(attempt),
            };
            self.stats.retries.fetch_add(1, Ordering::Relaxed);
            tracing::warn!(
                request = what,
                attempt,
                delay_ms = delay.as_millis() as u64,
                error = %last,
                "W&B request failed; retrying"
            );
            tokio::time::sleep(delay).await;
        }
    }
}

enum Class {
    Auth,
    Fatal,
    Retry,
}

fn classify(status: StatusCode) -> Class {
    match status.as_u16() {
        401 => Class::Auth,
        408 | 429 => Class::Retry,
        s if s >= 500 => Class::Retry,
        _ => Class::Fatal,
    }
}

/// `Retry-After` in seconds (the HTTP-date form is rare for APIs and falls back to backoff).
fn retry_after(headers: &HeaderMap) -> Option<Duration> {
    let value = headers.get(RETRY_AFTER)?.to_str().ok()?.trim();
    let secs: f64 = value.parse().ok()?;
    // A server's value is capped: an hour is already past any sync's patience, and a huge one
    // would panic `Duration::from_secs_f64`.
    Duration::try_from_secs_f64(secs)
        .ok()
        .map(|d| d.min(Duration::from_secs(3600)))
}

fn extend_path(url: &mut Url, segments: &[&str]) {
    if let Ok(mut path) = url.path_segments_mut() {
        path.pop_if_empty().extend(segments);
    }
}

/// A transport error as text: its cause chain, without the URL, with the key masked.
fn describe(err: &reqwest::Error, key: &ApiKey) -> String {
    let kind = if err.is_timeout() {
        "timed out"
    } else if err.is_connect() {
        "cannot connect"
    } else if err.is_body() || err.is_decode() {
        "broken reply"
    } else {
        "request failed"
    };
    let mut text = kind.to_owned();
    let mut source = std::error::Error::source(err);
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    key.redact(&text)
}

/// The first 300 characters of a reply, on one line.
fn short(text: &str) -> String {
    let line: String = text.split_whitespace().collect::<Vec<_>>().join(" ");
    match line.char_indices().nth(300) {
        Some((i, _)) => format!("{}…", &line[..i]),
        None => line,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statuses_are_classified() {
        assert!(matches!(classify(StatusCode::UNAUTHORIZED), Class::Auth));
        for s in [400, 403, 404, 409] {
            assert!(matches!(
                classify(StatusCode::from_u16(s).unwrap()),
                Class::Fatal
            ));
        }
        for s in [408, 429, 500, 502, 503, 504] {
            assert!(matches!(
                classify(StatusCode::from_u16(s).unwrap()),
                Class::Retry
            ));
        }
    }

    #[test]
    fn retry_after_in_seconds() {
        let mut h = HeaderMap::new();
        assert_eq!(retry_after(&h), None);
        h.insert(RETRY_AFTER, "2".parse().unwrap());
        assert_eq!(retry_after(&h), Some(Duration::from_secs(2)));
        h.insert(
            RETRY_AFTER,
            "Wed, 21 Oct 2015 07:28:00 GMT".parse().unwrap(),
        );
        assert_eq!(retry_after(&h), None);
    }

    #[test]
    fn urls_keep_a_base_path_and_escape_segments() {
        let mut url = Url::parse("https://wandb.example.org/api/").unwrap();
        extend_path(&mut url, &["files", "my lab", "p", "r", "file_stream"]);
        assert_eq!(
            url.as_str(),
            "https://wandb.example.org/api/files/my%20lab/p/r/file_stream"
        );
    }

    #[test]
    fn missing_key_says_how_to_set_it() {
        let mut config = WandbConfig::new("https://api.wandb.ai", "p", ApiKey::new("k").unwrap());
        config.api_key = None;
        let err = Client::new(&config).unwrap_err().to_string();
        assert!(
            err.contains("WANDB_API_KEY") && err.contains(".netrc"),
            "{err}"
        );
    }
}
