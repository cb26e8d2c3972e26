//! The bytes W&B receives: run ids, history lines, config, console lines and file_stream bodies.

use std::io::Write as _;

use serde_json::{Map, Value};
use sha2::{Digest as _, Sha256};

use super::types::{HistoryRow, LogLine, LogStream};

pub const HISTORY_FILE: &str = "wandb-history.jsonl";
pub const SUMMARY_FILE: &str = "wandb-summary.json";
pub const OUTPUT_FILE: &str = "output.log";

/// The W&B run id of a TowerLab run: 16 characters of `[0-9a-z]` (80 bits) taken from the
/// content hash, so that syncing the same run again updates it instead of adding a copy.
/// A hexadecimal hash is converted directly; any other string is hashed first.
pub fn wandb_run_id(content_hash: &str) -> String {
    let hash = content_hash.trim();
    let hex: String = if hash.len() >= 20 && hash.bytes().all(|b| b.is_ascii_hexdigit()) {
        hash[..20].to_ascii_lowercase()
    } else {
        hex_digest(hash.as_bytes())[..20].to_owned()
    };
    let mut n = u128::from_str_radix(&hex, 16).unwrap_or_default();
    let mut out = [b'0'; 16];
    for slot in out.iter_mut().rev() {
        // `n % 36` is below 36, so the index is in range.
        *slot = b"0123456789abcdefghijklmnopqrstuvwxyz"[(n % 36) as usize];
        n /= 36;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// SHA-256 in lowercase hex.
pub fn hex_digest(bytes: &[u8]) -> String {
    let digest = Sha256::digest(bytes);
    let mut out = String::with_capacity(64);
    for b in digest {
        out.push_str(&format!("{b:02x}"));
    }
    out
}

/// The `config` variable of `UpsertBucket`: a JSON string with each top-level key wrapped as
/// `{"value": ...}` (what wandb-core's `runconfig.Serialize` sends).
pub fn wrapped_config(config: &Map<String, Value>) -> String {
    let wrapped: Map<String, Value> = config
        .iter()
        .map(|(k, v)| {
            let mut inner = Map::new();
            inner.insert("value".to_owned(), v.clone());
            (k.clone(), Value::Object(inner))
        })
        .collect();
    Value::Object(wrapped).to_string()
}

/// One `wandb-history.jsonl` line: `_step`, `_runtime`, `_timestamp`, then the metrics.
/// Non-finite values are written as `NaN`, `Infinity` and `-Infinity`, as the Python SDK's
/// JSON encoder sends them.
pub fn history_line(row: &HistoryRow, out: &mut Vec<u8>) {
    out.clear();
    out.extend_from_slice(b"{\"_step\":");
    let _ = write!(out, "{}", row.step);
    out.extend_from_slice(b",\"_runtime\":");
    push_number(out, row.runtime);
    out.extend_from_slice(b",\"_timestamp\":");
    push_number(out, row.timestamp);
    for (key, value) in &row.metrics {
        out.push(b',');
        push_json_str(out, key);
        out.push(b':');
        push_number(out, *value);
    }
    out.push(b'}');
}

/// The keys that occur more than once at the top level of one history line (W&B keeps one
/// value per key, so a repeated key loses data), in order of their second occurrence. Reads
/// the line as written (`NaN`/`Infinity` values included), not through a JSON map, which
/// would hide repeats. Errs when the line is not a JSON object. Used by the tests that check
/// that no history line repeats a key, the end-to-end study's included.
pub fn repeated_keys(line: &str) -> Result<Vec<String>, String> {
    let b = line.as_bytes();
    let mut i = 0;
    let ws = |i: &mut usize| {
        while *i < b.len() && b[*i].is_ascii_whitespace() {
            *i += 1;
        }
    };
    // The end (exclusive) of the string literal starting at `start` (a `"`).
    let string_end = |start: usize| -> Result<usize, String> {
        let mut j = start + 1;
        while j < b.len() {
            match b[j] {
                b'\\' => j += 2,
                b'"' => return Ok(j + 1),
                _ => j += 1,
            }
        }
        Err(format!("unterminated string at byte {start}"))
    };
    ws(&mut i);
    if b.get(i) != Some(&b'{') {
        return Err("a history line is a JSON object".into());
    }
    i += 1;
    let mut seen = std::collections::HashSet::new();
    let mut repeated = Vec::new();
    loop {
        ws(&mut i);
        match b.get(i) {
            Some(b'}') => return Ok(repeated),
            Some(b'"') => {}
            _ => return Err(format!("expected a key at byte {i}")),
        }
        let end = string_end(i)?;
        let key: String =
            serde_json::from_str(&line[i..end]).map_err(|e| format!("key at byte {i}: {e}"))?;
        i = end;
        ws(&mut i);
        if b.get(i) != Some(&b':') {
            return Err(format!("expected `:` after key {key:?}"));
        }
        i += 1;
        // Skip the value: up to a `,` or the closing `}` outside strings and brackets.
        let mut depth = 0usize;
        loop {
            match b.get(i) {
                None => return Err("unterminated object".into()),
                Some(b'"') => i = string_end(i)?,
                Some(b'[' | b'{') => {
                    depth += 1;
                    i += 1;
                }
                Some(b']') => {
                    depth = depth.saturating_sub(1);
                    i += 1;
                }
                Some(b'}') if depth > 0 => {
                    depth -= 1;
                    i += 1;
                }
                Some(b',' | b'}') if depth == 0 => break,
                Some(_) => i += 1,
            }
        }
        if !seen.insert(key.clone()) {
            repeated.push(key);
        }
        if b[i] == b',' {
            i += 1;
        }
    }
}

pub(crate) fn push_number(out: &mut Vec<u8>, value: f64) {
    if value.is_nan() {
        out.extend_from_slice(b"NaN");
    } else if value.is_infinite() {
        out.extend_from_slice(if value > 0.0 {
            b"Infinity"
        } else {
            b"-Infinity"
        });
    } else {
        // serde_json prints the shortest representation that reads back exactly.
        let _ = serde_json::to_writer(&mut *out, &value);
    }
}

/// Appends `s` as a JSON string literal.
pub fn push_json_str(out: &mut Vec<u8>, s: &str) {
    out.push(b'"');
    let bytes = s.as_bytes();
    let mut start = 0;
    for (i, &b) in bytes.iter().enumerate() {
        let escape: &[u8] = match b {
            b'"' => b"\\\"",
            b'\\' => b"\\\\",
            b'\n' => b"\\n",
            b'\r' => b"\\r",
            b'\t' => b"\\t",
            0..=0x1f => b"",
            _ => continue,
        };
        out.extend_from_slice(&bytes[start..i]);
        if escape.is_empty() {
            let _ = write!(out, "\\u{b:04x}");
        } else {
            out.extend_from_slice(escape);
        }
        start = i + 1;
    }
    out.extend_from_slice(&bytes[start..]);
    out.push(b'"');
}

/// The legacy console format: `[ERROR ]YYYY-MM-DDTHH:MM:SS.ffffff <text>` (UTC, no `Z`;
/// stderr lines carry the `ERROR ` prefix).
pub fn console_line(line: &LogLine) -> String {
    let prefix = match line.stream {
        LogStream::Stdout => "",
        LogStream::Stderr => "ERROR ",
    };
    format!("{prefix}{} {}", iso_utc_micros(line.timestamp), line.text)
}

/// Unix seconds as `YYYY-MM-DDTHH:MM:SS.ffffff` in UTC.
pub fn iso_utc_micros(unix: f64) -> String {
    let micros = if unix.is_finite() {
        (unix * 1e6).round() as i64
    } else {
        0
    };
    let secs = micros.div_euclid(1_000_000);
    let frac = micros.rem_euclid(1_000_000);
    let days = secs.div_euclid(86_400);
    let tod = secs.rem_euclid(86_400);
    let (y, m, d) = experiments::clock::civil_from_days(days);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}.{frac:06}",
        tod / 3600,
        tod % 3600 / 60,
        tod % 60
    )
}

const BODY_SUFFIX: &[u8] = b"]}}}";

/// A file_stream body for one file, `{"files":{"<file>":{"offset":N,"content":[...]}}}`,
/// filled line by line up to a byte limit.
#[derive(Debug)]
pub struct StreamBody {
    buf: Vec<u8>,
    offset: u64,
    lines: u64,
    scratch: Vec<u8>,
}

impl StreamBody {
    pub fn new(file: &str, offset: u64) -> Self {
        let mut buf = Vec::with_capacity(64 * 1024);
        buf.extend_from_slice(b"{\"files\":{");
        push_json_str(&mut buf, file);
        let _ = write!(buf, ":{{\"offset\":{offset},\"content\":[");
        Self {
            buf,
            offset,
            lines: 0,
            scratch: Vec::new(),
        }
    }

    /// The line index of the first line.
    pub fn offset(&self) -> u64 {
        self.offset
    }

    pub fn lines(&self) -> u64 {
        self.lines
    }

    pub fn is_empty(&self) -> bool {
        self.lines == 0
    }

    /// Adds `line` if the body stays within `limit` bytes; `false` leaves the body unchanged.
    pub fn try_push(&mut self, line: &[u8], limit: usize) -> bool {
        self.scratch.clear();
        // `line` is UTF-8 JSON we wrote, or console text; invalid bytes are replaced.
        push_json_str(&mut self.scratch, &String::from_utf8_lossy(line));
        let comma = usize::from(self.lines > 0);
        if self.buf.len() + comma + self.scratch.len() + BODY_SUFFIX.len() > limit {
            return false;
        }
        if comma == 1 {
            self.buf.push(b',');
        }
        self.buf.extend_from_slice(&self.scratch);
        self.lines += 1;
        true
    }

    pub fn finish(mut self) -> Vec<u8> {
        self.buf.extend_from_slice(BODY_SUFFIX);
        self.buf
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn run_ids_are_stable_valid_and_distinct() {
        let a = wandb_run_id("3f2a9c0d4e5b6a7980112233445566778899aabbccddeeff0011223344556677");
        assert_eq!(a.len(), 16);
        assert!(a
            .bytes()
            .all(|b| b.is_ascii_digit() || b.is_ascii_lowercase()));
        assert_eq!(
            a,
            wandb_run_id("3F2A9C0D4E5B6A7980112233445566778899AABBCCDDEEFF")
        );
        assert_ne!(a, wandb_run_id("3f2a9c0d4e5b6a7980122233445566778899aabb"));
        let b = wandb_run_id("not-hex:run/7");
        assert_eq!(b.len(), 16);
        assert!(!b.contains([':', ';', ',', '#', '?', '/', '\'']));
        assert_eq!(wandb_run_id("00000000000000000000"), "0000000000000000");
        assert_eq!(wandb_run_id("00000000000000000024"), "0000000000000010");
    }

    #[test]
    fn config_keys_are_wrapped_in_value() {
        let config: Map<String, Value> =
            serde_json::from_str(r#"{"lr":0.001,"model":{"layers":6}}"#).unwrap();
        let s = wrapped_config(&config);
        let back: Value = serde_json::from_str(&s).unwrap();
        assert_eq!(
            back,
            serde_json::json!({"lr": {"value": 0.001}, "model": {"value": {"layers": 6}}})
        );
    }

    #[test]
    fn history_lines_are_json_with_step_runtime_timestamp() {
        let row = HistoryRow {
            step: 12,
            runtime: 1.5,
            timestamp: 1_755_770_000.25,
            metrics: vec![("loss".into(), 0.41), ("we\"ird\n".into(), 1e-300)],
        };
        let mut out = Vec::new();
        history_line(&row, &mut out);
        let v: Value = serde_json::from_slice(&out).unwrap();
        assert_eq!(v["_step"], 12);
        assert_eq!(v["_runtime"], 1.5);
        assert_eq!(v["_timestamp"], 1_755_770_000.25);
        assert_eq!(v["loss"], 0.41);
        assert_eq!(v["we\"ird\n"], 1e-300);
        let row = HistoryRow {
            metrics: vec![("x".into(), f64::NAN), ("y".into(), f64::NEG_INFINITY)],
            ..row
        };
        history_line(&row, &mut out);
        let text = String::from_utf8(out).unwrap();
        assert!(text.ends_with(r#""x":NaN,"y":-Infinity}"#), "{text}");
    }

    #[test]
    fn repeated_keys_are_found_in_the_line_as_written() {
        assert_eq!(
            repeated_keys(
                r#"{"_step":1,"a":NaN,"b":"x,}\"y","a":0.5,"c":[1,{"a":2}],"b":-Infinity}"#
            ),
            Ok(vec!["a".to_string(), "b".to_string()])
        );
        let row = HistoryRow {
            step: 3,
            runtime: 0.0,
            timestamp: 1.0,
            metrics: vec![("x".into(), f64::NAN), ("we\"ird".into(), 1.0)],
        };
        let mut out = Vec::new();
        history_line(&row, &mut out);
        assert_eq!(
            repeated_keys(std::str::from_utf8(&out).unwrap()),
            Ok(vec![])
        );
        assert!(repeated_keys("[1]").is_err());
        assert!(repeated_keys(r#"{"a":1"#).is_err());
    }

    #[test]
    fn console_lines_use_the_legacy_format() {
        let line = LogLine {
            timestamp: 1_787_306_400.123_456,
            stream: LogStream::Stderr,
            text: "Traceback".into(),
        };
        assert_eq!(
            console_line(&line),
            "ERROR 2026-08-21T10:00:00.123456 Traceback"
        );
        assert_eq!(iso_utc_micros(0.0), "1970-01-01T00:00:00.000000");
        assert_eq!(iso_utc_micros(951_782_400.5), "2000-02-29T00:00:00.500000");
    }

    #[test]
    fn stream_bodies_respect_the_limit_and_parse() {
        let mut body = StreamBody::new(HISTORY_FILE, 40);
        assert!(body.try_push(br#"{"_step":40,"a":1}"#, 200));
        assert!(body.try_push(br#"{"_step":41,"a":2}"#, 200));
        let before = body.lines();
        while body.try_push(br#"{"_step":42,"a":3}"#, 200) {}
        assert!(body.lines() > before);
        let bytes = body.finish();
        assert!(bytes.len() <= 200, "{}", bytes.len());
        let v: Value = serde_json::from_slice(&bytes).unwrap();
        let file = &v["files"][HISTORY_FILE];
        assert_eq!(file["offset"], 40);
        let first: Value = serde_json::from_str(file["content"][0].as_str().unwrap()).unwrap();
        assert_eq!(first["_step"], 40);
        let mut tiny = StreamBody::new(HISTORY_FILE, 0);
        assert!(!tiny.try_push(&[b'x'; 300], 200));
        assert!(tiny.is_empty());
    }
}
