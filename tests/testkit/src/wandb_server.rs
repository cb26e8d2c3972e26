//! A W&B-compatible test server on 127.0.0.1 (GraphQL `UpsertBucket` + `file_stream`), which
//! checks Basic auth, places file_stream lines at `offset + i` like W&B's backend spy does,
//! records what it received, and injects faults on request.

use std::collections::{BTreeMap, VecDeque};
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::header::{AUTHORIZATION, RETRY_AFTER};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use serde_json::{json, Value};
use tokio::sync::{oneshot, Notify};

pub const DEFAULT_ENTITY: &str = "test-entity";

/// Which requests a fault is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Target {
    Any,
    Graphql,
    FileStream,
}

impl Target {
    fn matches(self, path: &str) -> bool {
        match self {
            Self::Any => true,
            Self::Graphql => path == "/graphql",
            Self::FileStream => path.ends_with("/file_stream"),
        }
    }
}

/// A fault applied to the next matching request, in the order injected.
#[derive(Debug, Clone)]
pub enum Fault {
    /// Let this request through untouched (to space faults out).
    Pass,
    /// Answer with this status, storing nothing.
    Status(u16),
    /// 429 with `Retry-After: <secs>`, storing nothing.
    RetryAfter(u64),
    /// Read the request, store nothing, reset the connection (RST).
    Reset,
    /// Store the request, then answer only after this delay (beyond the client's timeout the
    /// client never sees the answer although the server kept the data).
    Slow(Duration),
}

#[derive(Debug, Clone)]
pub struct RequestRecord {
    pub path: String,
    pub at: Instant,
    pub status: u16,
    pub bytes: usize,
    pub fault: Option<String>,
    /// file_stream: (file, offset, lines) per file in the body.
    pub files: Vec<(String, u64, usize)>,
}

#[derive(Debug, Clone, Default)]
pub struct RunRecord {
    pub entity: String,
    pub project: String,
    pub name: String,
    /// The variables of every `UpsertBucket` received.
    pub upserts: Vec<Value>,
    /// Lines by file, placed at `offset + i`; `None` is a hole.
    pub files: BTreeMap<String, Vec<Option<String>>>,
    pub exit_code: Option<i64>,
    pub heartbeats: usize,
}

impl RunRecord {
    /// The lines of `file`; panics on a hole.
    pub fn lines(&self, file: &str) -> Vec<String> {
        self.files
            .get(file)
            .map(|lines| {
                lines
                    .iter()
                    .enumerate()
                    .map(|(i, l)| {
                        l.clone()
                            .unwrap_or_else(|| panic!("{file}: hole at line {i}"))
                    })
                    .collect()
            })
            .unwrap_or_default()
    }

    pub fn history(&self) -> Vec<Value> {
        self.lines("wandb-history.jsonl")
            .iter()
            .map(|l| serde_json::from_str(l).expect("history line is JSON"))
            .collect()
    }

    /// The `wandb-events.jsonl` lines (system samples), parsed.
    pub fn events(&self) -> Vec<Value> {
        self.lines("wandb-events.jsonl")
            .iter()
            .map(|l| serde_json::from_str(l).expect("events line is JSON"))
            .collect()
    }
}

#[derive(Debug, Default)]
pub struct State {
    pub api_key: String,
    pub runs: BTreeMap<String, RunRecord>,
    pub faults: VecDeque<(Target, Fault)>,
    pub requests: Vec<RequestRecord>,
    /// How many times each history line index was written (re-sends after lost answers).
    pub history_writes: u64,
    /// Answer an upsert without an entity with none (as a server whose key has no default
    /// entity does), instead of [`DEFAULT_ENTITY`].
    pub no_default_entity: bool,
}

pub struct TestServer {
    pub base_url: String,
    pub addr: SocketAddr,
    state: Arc<Mutex<State>>,
    stop: Option<oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl TestServer {
    /// Starts on 127.0.0.1:0 on its own thread and runtime.
    pub fn start(api_key: &str) -> Self {
        let state = Arc::new(Mutex::new(State {
            api_key: api_key.to_owned(),
            ..State::default()
        }));
        let std_listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind loopback");
        std_listener.set_nonblocking(true).unwrap();
        let addr = std_listener.local_addr().unwrap();
        let (stop_tx, stop_rx) = oneshot::channel();
        let served = state.clone();
        let thread = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .enable_all()
                .build()
                .unwrap();
            rt.block_on(async move {
                let listener = tokio::net::TcpListener::from_std(std_listener).unwrap();
                tokio::select! {
                    () = accept_loop(listener, served) => {}
                    _ = stop_rx => {}
                }
            });
        });
        Self {
            base_url: format!("http://{addr}"),
            addr,
            state,
            stop: Some(stop_tx),
            thread: Some(thread),
        }
    }

    pub fn state(&self) -> MutexGuard<'_, State> {
        self.state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Faults for the next requests of any kind.
    pub fn inject(&self, faults: impl IntoIterator<Item = Fault>) {
        self.inject_on(Target::Any, faults);
    }

    pub fn inject_on(&self, target: Target, faults: impl IntoIterator<Item = Fault>) {
        self.state()
            .faults
            .extend(faults.into_iter().map(|f| (target, f)));
    }

    pub fn run(&self, name: &str) -> RunRecord {
        self.state()
            .runs
            .values()
            .find(|r| r.name == name)
            .cloned()
            .unwrap_or_else(|| panic!("the server has no run {name}"))
    }

    pub fn request_count(&self) -> usize {
        self.state().requests.len()
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

async fn accept_loop(listener: tokio::net::TcpListener, state: Arc<Mutex<State>>) {
    loop {
        let Ok((stream, _)) = listener.accept().await else {
            continue;
        };
        // A second handle on the socket, to set SO_LINGER=0 (reset) when a fault asks for it.
        let std_stream = stream.into_std().unwrap();
        let raw = std_stream.try_clone().unwrap();
        let stream = tokio::net::TcpStream::from_std(std_stream).unwrap();
        let kill = Arc::new(Notify::new());
        let (state, kill_svc) = (state.clone(), kill.clone());
        tokio::spawn(async move {
            let svc = service_fn(move |req| handle(state.clone(), kill_svc.clone(), req));
            let conn = http1::Builder::new().serve_connection(TokioIo::new(stream), svc);
            tokio::select! {
                _ = conn => {}
                () = kill.notified() => {
                    let _ = socket2::SockRef::from(&raw).set_linger(Some(Duration::ZERO));
                }
            }
            drop(raw);
        });
    }
}

fn reply(status: u16, body: Value) -> Response<Full<Bytes>> {
    Response::builder()
        .status(status)
        .header("content-type", "application/json")
        .body(Full::new(Bytes::from(body.to_string())))
        .unwrap()
}

async fn handle(
    state: Arc<Mutex<State>>,
    kill: Arc<Notify>,
    req: Request<Incoming>,
) -> Result<Response<Full<Bytes>>, Infallible> {
    let path = req.uri().path().to_owned();
    let auth = req
        .headers()
        .get(AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let Ok(body) = req.into_body().collect().await.map(|b| b.to_bytes()) else {
        return Ok(reply(400, json!({"error": "unreadable body"})));
    };
    let lock = || {
        state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    };
    let fault = {
        let mut state = lock();
        let at = state.faults.iter().position(|(t, _)| t.matches(&path));
        at.and_then(|i| state.faults.remove(i)).map(|(_, f)| f)
    };
    let mut record = RequestRecord {
        path: path.clone(),
        at: Instant::now(),
        status: 0,
        bytes: body.len(),
        fault: fault.as_ref().map(|f| format!("{f:?}")),
        files: Vec::new(),
    };
    let mut delay = None;
    match fault {
        Some(Fault::Reset) => {
            lock().requests.push(record);
            kill.notify_one();
            let never: Infallible = std::future::pending().await;
            match never {}
        }
        Some(Fault::Status(status)) => {
            record.status = status;
            lock().requests.push(record);
            return Ok(reply(status, json!({"error": "injected"})));
        }
        Some(Fault::RetryAfter(secs)) => {
            record.status = 429;
            lock().requests.push(record);
            let mut resp = reply(429, json!({"error": "rate limited"}));
            resp.headers_mut()
                .insert(RETRY_AFTER, secs.to_string().parse().unwrap());
            return Ok(resp);
        }
        Some(Fault::Slow(d)) => delay = Some(d),
        Some(Fault::Pass) | None => {}
    }

    let expected = format!("Basic {}", base64(&format!("api:{}", lock().api_key)));
    let resp = if auth.as_deref() != Some(expected.as_str()) {
        reply(
            401,
            json!({"errors": [{"message": "user is not logged in"}]}),
        )
    } else if path == "/graphql" {
        graphql(&mut lock(), &body)
    } else if let Some(run_path) = path
        .strip_prefix("/files/")
        .and_then(|p| p.strip_suffix("/file_stream"))
    {
        file_stream(&mut lock(), run_path, &body, &mut record)
    } else {
        reply(404, json!({"error": "not found"}))
    };
    record.status = resp.status().as_u16();
    lock().requests.push(record);
    if let Some(d) = delay {
        tokio::time::sleep(d).await;
    }
    Ok(resp)
}

fn graphql(state: &mut State, body: &[u8]) -> Response<Full<Bytes>> {
    let Ok(request) = serde_json::from_slice::<Value>(body) else {
        return reply(400, json!({"errors": [{"message": "body is not JSON"}]}));
    };
    let query = request["query"].as_str().unwrap_or_default();
    let operation = query
        .trim_start()
        .strip_prefix("mutation")
        .or_else(|| query.trim_start().strip_prefix("query"))
        .and_then(|rest| {
            rest.trim_start()
                .split(|c: char| !c.is_alphanumeric() && c != '_')
                .next()
        })
        .unwrap_or_default();
    if operation != "UpsertBucket" || !query.contains("upsertBucket(input:") {
        return reply(
            200,
            json!({"errors": [{"message": format!("unknown operation {operation:?}")}]}),
        );
    }
    let vars = &request["variables"];
    let Some(name) = vars["name"].as_str() else {
        return reply(200, json!({"errors": [{"message": "name is required"}]}));
    };
    if name.contains([':', ';', ',', '#', '?', '/', '\'']) || name.trim() != name {
        return reply(200, json!({"errors": [{"message": "invalid run id"}]}));
    }
    // The config is a JSON *string* whose top-level values are {"value": ...}.
    if let Some(config) = vars.get("config").filter(|c| !c.is_null()) {
        let parsed = config
            .as_str()
            .and_then(|s| serde_json::from_str::<Value>(s).ok());
        let wrapped = parsed.as_ref().and_then(Value::as_object).is_some_and(|m| {
            m.values()
                .all(|v| v.as_object().is_some_and(|o| o.contains_key("value")))
        });
        if !wrapped {
            return reply(
                200,
                json!({"errors": [{"message": "config is not a wrapped JSONString"}]}),
            );
        }
    }
    let entity = match vars["entity"].as_str() {
        Some(e) => e.to_owned(),
        None if state.no_default_entity => {
            return reply(
                200,
                json!({"data": {"upsertBucket": {
                    "bucket": {"id": "b", "name": name, "project": {"id": "p1", "name": "p", "entity": null}},
                    "inserted": true,
                }}}),
            );
        }
        None => DEFAULT_ENTITY.to_owned(),
    };
    let project = vars["project"]
        .as_str()
        .unwrap_or("uncategorized")
        .to_owned();
    let key = format!("{entity}/{project}/{name}");
    let inserted = !state.runs.contains_key(&key);
    let run = state.runs.entry(key).or_insert_with(|| RunRecord {
        entity: entity.clone(),
        project: project.clone(),
        name: name.to_owned(),
        ..RunRecord::default()
    });
    run.upserts.push(vars.clone());
    let history = run.files.get("wandb-history.jsonl").map_or(0, Vec::len);
    reply(
        200,
        json!({"data": {"upsertBucket": {
            "bucket": {
                "id": format!("storage-{name}"), "name": name, "displayName": vars["displayName"],
                "description": null, "config": vars["config"], "sweepName": null,
                "project": {"id": "p1", "name": project, "entity": {"id": "e1", "name": entity}},
                "historyLineCount": history,
            },
            "inserted": inserted,
        }}}),
    )
}

fn file_stream(
    state: &mut State,
    run_path: &str,
    body: &[u8],
    record: &mut RequestRecord,
) -> Response<Full<Bytes>> {
    if body.len() > 10 << 20 {
        return reply(413, json!({"error": "request too large"}));
    }
    let Ok(request) = serde_json::from_slice::<Value>(body) else {
        return reply(400, json!({"error": "body is not JSON"}));
    };
    let Some(run) = state.runs.get_mut(run_path) else {
        return reply(404, json!({"error": format!("run {run_path} not found")}));
    };
    let mut history_writes = 0;
    if let Some(files) = request.get("files").and_then(Value::as_object) {
        for (name, file) in files {
            let (Some(offset), Some(content)) =
                (file["offset"].as_u64(), file["content"].as_array())
            else {
                return reply(400, json!({"error": format!("bad file entry {name}")}));
            };
            let lines = run.files.entry(name.clone()).or_default();
            for (i, line) in content.iter().enumerate() {
                let Some(line) = line.as_str() else {
                    return reply(400, json!({"error": "content lines must be strings"}));
                };
                let at = usize::try_from(offset).unwrap() + i;
                if lines.len() <= at {
                    lines.resize(at + 1, None);
                }
                lines[at] = Some(line.to_owned());
            }
            if name == "wandb-history.jsonl" {
                history_writes += content.len() as u64;
            }
            record.files.push((name.clone(), offset, content.len()));
        }
    }
    if request["complete"].as_bool() == Some(true) {
        run.exit_code = Some(request["exitcode"].as_i64().unwrap_or(0));
    }
    if request.as_object().is_some_and(serde_json::Map::is_empty) {
        run.heartbeats += 1;
    }
    state.history_writes += history_writes;
    reply(200, json!({"exitcode": null, "limits": {}}))
}

/// Standard base64 with padding.
pub fn base64(text: &str) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let bytes = text.as_bytes();
    let mut out = String::new();
    for chunk in bytes.chunks(3) {
        let b = [
            chunk[0],
            *chunk.get(1).unwrap_or(&0),
            *chunk.get(2).unwrap_or(&0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(ALPHABET[(n >> (18 - 6 * i) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}
