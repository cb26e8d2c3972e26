//! A Hugging Face hub the tests make themselves: a cache in the layout `huggingface_hub`
//! writes (`models--{org}--{name}/refs/main`, `snapshots/{commit}/`), holding the tiny
//! `CLIPVisionModel` and `RobertaModel` fixtures, and a loopback HTTP server that answers the
//! hub's file API the way `hf-hub` calls it (`/{repo}/resolve/{revision}/{file}`, `Range`,
//! `x-repo-commit` and `etag` headers). Shared by the engine's and the app's tests.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

/// The engine's fixture folder.
pub fn fixtures() -> PathBuf {
    // This crate is tests/testkit.
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("..")
        .join("..")
        .join("engine")
        .join("tests")
        .join("fixtures")
}

pub const CLIP_ID: &str = "tiny-org/tiny-clip";
pub const ROBERTA_ID: &str = "tiny-org/tiny-roberta";
pub const COMMIT_A: &str = "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa";
pub const COMMIT_B: &str = "bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb";

/// Words of the synthetic captions and questions, so the tiny tokenizer maps most of them to
/// their own ids (anything else is `<unk>`); 5 special tokens + these stay under the fixture
/// RoBERTa's vocabulary of 64.
const WORDS: [&str; 40] = [
    "a",
    "an",
    "the",
    "is",
    "are",
    "there",
    "what",
    "how",
    "many",
    "of",
    "in",
    "on",
    "left",
    "right",
    "above",
    "below",
    "red",
    "green",
    "blue",
    "yellow",
    "white",
    "black",
    "circle",
    "circles",
    "square",
    "squares",
    "triangle",
    "triangles",
    "shape",
    "shapes",
    "color",
    "background",
    "one",
    "two",
    "three",
    "yes",
    "no",
    "and",
    "with",
    "?",
];

/// A RoBERTa-style `tokenizer.json` (word level, `<s> … </s>`, `<pad>` = 1, `<mask>`).
pub fn tokenizer_json() -> String {
    let specials = ["<s>", "<pad>", "</s>", "<unk>", "<mask>"];
    let mut vocab = serde_json::Map::new();
    for (i, t) in specials.iter().chain(WORDS.iter()).enumerate() {
        vocab.insert(t.to_string(), serde_json::json!(i));
    }
    let added: Vec<serde_json::Value> = specials
        .iter()
        .enumerate()
        .map(|(i, t)| {
            serde_json::json!({"id": i, "content": t, "single_word": false, "lstrip": false,
                "rstrip": false, "normalized": false, "special": true})
        })
        .collect();
    serde_json::json!({
        "version": "1.0",
        "truncation": null,
        "padding": null,
        "added_tokens": added,
        "normalizer": {"type": "Lowercase"},
        "pre_tokenizer": {"type": "Whitespace"},
        "post_processor": {"type": "RobertaProcessing", "sep": ["</s>", 2], "cls": ["<s>", 0],
            "trim_offsets": true, "add_prefix_space": false},
        "decoder": null,
        "model": {"type": "WordLevel", "vocab": vocab, "unk_token": "<unk>"}
    })
    .to_string()
}

/// A repository's files: `(name, bytes)`.
pub type Files = Vec<(String, Vec<u8>)>;

/// The files of the tiny CLIP vision expert.
pub fn clip_files() -> Vec<(String, Vec<u8>)> {
    let dir = fixtures().join("hf_clip_vision");
    ["config.json", "model.safetensors"]
        .iter()
        .map(|f| (f.to_string(), std::fs::read(dir.join(f)).unwrap()))
        .collect()
}

/// The files of the tiny RoBERTa text expert, with its tokenizer.
pub fn roberta_files() -> Vec<(String, Vec<u8>)> {
    let dir = fixtures().join("hf_roberta");
    let mut out: Vec<(String, Vec<u8>)> = ["config.json", "model.safetensors"]
        .iter()
        .map(|f| (f.to_string(), std::fs::read(dir.join(f)).unwrap()))
        .collect();
    out.push(("tokenizer.json".into(), tokenizer_json().into_bytes()));
    out
}

/// Writes `repo` at `commit` into the cache `root` and points `refs/main` at it.
pub fn write_snapshot(
    root: &Path,
    repo: &str,
    commit: &str,
    files: &[(String, Vec<u8>)],
) -> PathBuf {
    let dir = root.join(format!("models--{}", repo.replace('/', "--")));
    let snap = dir.join("snapshots").join(commit);
    std::fs::create_dir_all(&snap).unwrap();
    for (name, bytes) in files {
        std::fs::write(snap.join(name), bytes).unwrap();
    }
    std::fs::create_dir_all(dir.join("refs")).unwrap();
    std::fs::write(dir.join("refs").join("main"), commit).unwrap();
    snap
}

/// A cache holding both tiny experts at [`COMMIT_A`].
pub fn write_cache(root: &Path) {
    write_snapshot(root, CLIP_ID, COMMIT_A, &clip_files());
    write_snapshot(root, ROBERTA_ID, COMMIT_A, &roberta_files());
}

/// One request the server answered.
#[derive(Debug, Clone)]
pub struct Request {
    pub path: String,
    pub range: Option<String>,
    pub authorization: Option<String>,
}

/// Repositories: id → (commit, files).
type Repos = BTreeMap<String, (String, BTreeMap<String, Vec<u8>>)>;

/// The loopback hub. Stops when dropped.
pub struct HubServer {
    pub url: String,
    pub requests: Arc<Mutex<Vec<Request>>>,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
    addr: std::net::SocketAddr,
}

impl HubServer {
    /// Serves `repos`: `(id, commit, files)`.
    pub fn start(repos: &[(&str, &str, Files)]) -> Self {
        let map: Repos = repos
            .iter()
            .map(|(id, commit, files)| {
                (
                    id.to_string(),
                    (commit.to_string(), files.iter().cloned().collect()),
                )
            })
            .collect();
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let stop = Arc::new(AtomicBool::new(false));
        let requests = Arc::new(Mutex::new(Vec::new()));
        let (s, r) = (stop.clone(), requests.clone());
        let thread = std::thread::spawn(move || {
            for conn in listener.incoming() {
                if s.load(Ordering::SeqCst) {
                    break;
                }
                if let Ok(c) = conn {
                    let _ = c.set_read_timeout(Some(Duration::from_secs(10)));
                    serve(c, &map, &r);
                }
            }
        });
        Self {
            url: format!("http://{addr}"),
            requests,
            stop,
            thread: Some(thread),
            addr,
        }
    }

    pub fn paths(&self) -> Vec<String> {
        self.requests
            .lock()
            .unwrap()
            .iter()
            .map(|r| r.path.clone())
            .collect()
    }
}

impl Drop for HubServer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        let _ = TcpStream::connect(self.addr);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn respond(mut c: TcpStream, status: &str, headers: &[(String, String)], body: &[u8]) {
    let mut head = format!(
        "HTTP/1.1 {status}\r\ncontent-length: {}\r\nconnection: close\r\n",
        body.len()
    );
    for (k, v) in headers {
        head.push_str(&format!("{k}: {v}\r\n"));
    }
    head.push_str("\r\n");
    let _ = c.write_all(head.as_bytes());
    let _ = c.write_all(body);
    let _ = c.flush();
}

fn serve(c: TcpStream, repos: &Repos, log: &Mutex<Vec<Request>>) {
    let mut reader = BufReader::new(c.try_clone().unwrap());
    let mut line = String::new();
    if reader.read_line(&mut line).is_err() {
        return;
    }
    let path = line.split_whitespace().nth(1).unwrap_or("").to_string();
    let (mut range, mut authorization) = (None, None);
    loop {
        let mut h = String::new();
        if reader.read_line(&mut h).is_err() || h.trim().is_empty() {
            break;
        }
        if let Some((k, v)) = h.split_once(':') {
            match k.trim().to_ascii_lowercase().as_str() {
                "range" => range = Some(v.trim().to_string()),
                "authorization" => authorization = Some(v.trim().to_string()),
                _ => {}
            }
        }
    }
    log.lock().unwrap().push(Request {
        path: path.clone(),
        range: range.clone(),
        authorization,
    });
    // /{org}/{name}/resolve/{revision}/{file}
    let parts: Vec<&str> = path.trim_start_matches('/').splitn(5, '/').collect();
    let found = match parts.as_slice() {
        [org, name, "resolve", rev, file] => repos
            .get(&format!("{org}/{name}"))
            .filter(|(commit, _)| *rev == "main" || rev == commit)
            .and_then(|(commit, files)| files.get(*file).map(|b| (commit, b))),
        _ => None,
    };
    let Some((commit, bytes)) = found else {
        let headers = vec![("x-error-code".to_string(), "EntryNotFound".to_string())];
        return respond(c, "404 Not Found", &headers, b"Entry not found");
    };
    let etag = format!("\"{:016x}{}\"", fnv(bytes), bytes.len());
    let mut headers = vec![
        ("x-repo-commit".to_string(), commit.clone()),
        ("etag".to_string(), etag),
    ];
    let len = bytes.len();
    let start = range
        .as_deref()
        .and_then(|r| r.strip_prefix("bytes="))
        .and_then(|r| r.split('-').next())
        .and_then(|s| s.parse::<usize>().ok());
    match start {
        Some(start) => {
            let end = match range.as_deref().and_then(|r| r.split('-').nth(1)) {
                Some(e) if !e.is_empty() => e.parse::<usize>().unwrap_or(len - 1).min(len - 1),
                _ => len - 1,
            };
            let start = start.min(len);
            headers.push(("content-range".into(), format!("bytes {start}-{end}/{len}")));
            let body = if start < len {
                &bytes[start..=end]
            } else {
                &[][..]
            };
            respond(c, "206 Partial Content", &headers, body);
        }
        None => respond(c, "200 OK", &headers, bytes),
    }
}

/// A content hash for the ETag (the hub's is the file's SHA-256; any content hash will do).
fn fnv(bytes: &[u8]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in bytes {
        h ^= u64::from(*b);
        h = h.wrapping_mul(0x100_0000_01b3);
    }
    h
}
