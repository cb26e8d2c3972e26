//! The type of every setting, derived from `Settings` itself, and typed parsing of values
//! given as text (`--set key=value`, `TOWERLAB_*` variables).

use std::sync::OnceLock;

use serde_json::{Map, Value as Json};

use crate::settings::Settings;

/// What a setting accepts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyType {
    Bool,
    Int,
    Float,
    Str,
    StrList,
    /// One of a fixed list of names.
    Choice(&'static [&'static str]),
    /// A number, or one of a few names.
    FloatOr(&'static [&'static str]),
}

impl KeyType {
    /// "an integer", "one of \"a\", \"b\"" — used in "expects X" messages.
    pub fn describe(self) -> String {
        match self {
            Self::Bool => "a boolean".into(),
            Self::Int => "an integer".into(),
            Self::Float => "a number".into(),
            Self::Str => "a string".into(),
            Self::StrList => "an array of strings".into(),
            Self::Choice(names) => format!("one of {}", quoted(names)),
            Self::FloatOr(names) => format!("a number or {}", quoted(names)),
        }
    }
}

fn quoted(names: &[&str]) -> String {
    names
        .iter()
        .map(|n| format!("\"{n}\""))
        .collect::<Vec<_>>()
        .join(", ")
}

fn defaults_json() -> &'static Map<String, Json> {
    static DEFAULTS: OnceLock<Map<String, Json>> = OnceLock::new();
    DEFAULTS.get_or_init(|| match serde_json::to_value(Settings::default()) {
        Ok(Json::Object(m)) => m,
        _ => Map::new(),
    })
}

/// Every valid key path (dotted for nested sections), in declaration order.
pub fn all_keys() -> &'static [String] {
    static KEYS: OnceLock<Vec<String>> = OnceLock::new();
    KEYS.get_or_init(|| {
        let mut out = Vec::new();
        collect_keys(defaults_json(), "", &mut out);
        out
    })
}

fn collect_keys(map: &Map<String, Json>, prefix: &str, out: &mut Vec<String>) {
    for (k, v) in map {
        let path = if prefix.is_empty() {
            k.clone()
        } else {
            format!("{prefix}.{k}")
        };
        match v {
            Json::Object(inner) => collect_keys(inner, &path, out),
            _ => out.push(path),
        }
    }
}

/// Is `path` a section (a table of settings) rather than a single setting?
pub fn is_section(path: &str) -> bool {
    matches!(lookup(path), Some(Json::Object(_)))
}

fn lookup(path: &str) -> Option<&'static Json> {
    let mut parts = path.split('.');
    let mut cur = defaults_json().get(parts.next()?)?;
    for p in parts {
        cur = cur.as_object()?.get(p)?;
    }
    Some(cur)
}

/// The type of a setting, or `None` for an unknown key.
pub fn key_type(path: &str) -> Option<KeyType> {
    if let Some((_, names)) = Settings::CHOICES.iter().find(|(k, _)| *k == path) {
        return Some(KeyType::Choice(names));
    }
    if let Some((_, names)) = Settings::NUMBER_OR_NAME.iter().find(|(k, _)| *k == path) {
        return Some(KeyType::FloatOr(names));
    }
    Some(match lookup(path)? {
        Json::Bool(_) => KeyType::Bool,
        Json::Number(n) if n.is_f64() => KeyType::Float,
        Json::Number(_) => KeyType::Int,
        Json::String(_) => KeyType::Str,
        Json::Array(_) => KeyType::StrList,
        Json::Null | Json::Object(_) => return None,
    })
}

/// The closest valid key, when one is close enough to be a likely typo.
pub fn suggest(path: &str) -> Option<&'static str> {
    all_keys()
        .iter()
        .map(|k| (strsim::jaro_winkler(path, k), k))
        .filter(|(score, _)| *score >= 0.85)
        .max_by(|a, b| a.0.total_cmp(&b.0))
        .map(|(_, k)| k.as_str())
}

/// "unknown setting `x`; did you mean `y`?"
pub fn unknown_key_message(path: &str) -> String {
    if let Some((_, why)) = crate::recipes::REFERENCE_ONLY
        .iter()
        .find(|(k, _)| *k == path)
    {
        return format!("`{path}` is a reference setting TowerLab does not take: {why}");
    }
    match suggest(path) {
        Some(s) => format!("unknown setting `{path}`; did you mean `{s}`?"),
        None => format!("unknown setting `{path}`"),
    }
}

/// Checks a value for `path` and returns it in the setting's exact type (an integer given for
/// a float setting becomes a float). The message says what was expected.
pub fn check_value(path: &str, value: &Json) -> Result<Json, String> {
    let Some(ty) = key_type(path) else {
        if is_section(path) {
            return Err(format!(
                "`{path}` is a section, not a setting; set its keys, e.g. `{path}.<key>`"
            ));
        }
        return Err(unknown_key_message(path));
    };
    let found = json_type_name(value);
    let wrong = || format!("`{path}` expects {}, found {found}", ty.describe());
    let normalised = match (ty, value) {
        (KeyType::Bool, Json::Bool(_)) => value.clone(),
        (KeyType::Int, Json::Number(n)) if n.is_i64() || n.is_u64() => value.clone(),
        (KeyType::Float, Json::Number(n)) => match n.as_f64() {
            Some(f) if f.is_finite() => Json::from(f),
            _ => return Err(format!("`{path}` expects a finite number")),
        },
        (KeyType::Str, Json::String(_)) => value.clone(),
        (KeyType::StrList, Json::Array(items)) if items.iter().all(Json::is_string) => {
            value.clone()
        }
        (KeyType::Choice(names), Json::String(s)) => {
            if !names.contains(&s.as_str()) {
                return Err(format!("`{path}` expects {}, found \"{s}\"", ty.describe()));
            }
            value.clone()
        }
        (KeyType::FloatOr(_), Json::Number(n)) => match n.as_f64() {
            Some(f) if f.is_finite() => Json::from(f),
            _ => return Err(format!("`{path}` expects a finite number")),
        },
        (KeyType::FloatOr(names), Json::String(s)) => {
            if !names.contains(&s.as_str()) {
                return Err(format!("`{path}` expects {}, found \"{s}\"", ty.describe()));
            }
            value.clone()
        }
        // A numeric choice (`precision = 32`) may be written as a number.
        (KeyType::Choice(names), Json::Number(n)) => {
            let s = n.to_string();
            if !names.contains(&s.as_str()) {
                return Err(format!("`{path}` expects {}, found {s}", ty.describe()));
            }
            Json::String(s)
        }
        _ => return Err(wrong()),
    };
    // The field's Rust type may be narrower (usize, u64): let serde decide.
    let mut probe = Json::Object(defaults_json().clone());
    set_path(&mut probe, path, normalised.clone());
    match serde_json::from_value::<Settings>(probe) {
        Ok(_) => Ok(normalised),
        Err(_) => Err(format!(
            "`{path}` expects a non-negative integer, found {}",
            value
        )),
    }
}

/// Parses `text` as a value of the setting `path` (for `--set` and environment variables).
/// Lists are written `a,b` or as a TOML array `["a", "b"]`.
pub fn parse_text(path: &str, text: &str) -> Result<Json, String> {
    let Some(ty) = key_type(path) else {
        return check_value(path, &Json::Null);
    };
    let t = text.trim();
    let value = match ty {
        KeyType::Bool => match t.to_ascii_lowercase().as_str() {
            "true" | "1" | "yes" | "on" => Json::Bool(true),
            "false" | "0" | "no" | "off" => Json::Bool(false),
            _ => {
                return Err(format!(
                    "`{path}` expects a boolean (true/false), found `{t}`"
                ))
            }
        },
        KeyType::Int => match t.replace('_', "").parse::<i64>() {
            Ok(i) => Json::from(i),
            Err(_) => return Err(format!("`{path}` expects an integer, found `{t}`")),
        },
        KeyType::Float => match t.replace('_', "").parse::<f64>() {
            Ok(f) if f.is_finite() => Json::from(f),
            _ => return Err(format!("`{path}` expects a number, found `{t}`")),
        },
        KeyType::FloatOr(names) => match t.replace('_', "").parse::<f64>() {
            Ok(f) if f.is_finite() => Json::from(f),
            _ => {
                let name = t.trim_matches('"').trim_matches('\'');
                if !names.contains(&name) {
                    return Err(format!("`{path}` expects {}, found `{t}`", ty.describe()));
                }
                Json::String(name.to_string())
            }
        },
        KeyType::Str | KeyType::Choice(_) => {
            Json::String(t.trim_matches('"').trim_matches('\'').to_string())
        }
        KeyType::StrList => {
            let inner = t.strip_prefix('[').and_then(|r| r.strip_suffix(']'));
            let body = inner.unwrap_or(t);
            Json::Array(
                body.split(',')
                    .map(|s| s.trim().trim_matches('"').trim_matches('\'').to_string())
                    .filter(|s| !s.is_empty())
                    .map(Json::String)
                    .collect(),
            )
        }
    };
    check_value(path, &value)
}

/// Sets a dotted path in a JSON object, creating sections as needed.
pub(crate) fn set_path(root: &mut Json, path: &str, value: Json) {
    let mut cur = root;
    let mut parts = path.split('.').peekable();
    while let Some(p) = parts.next() {
        if !cur.is_object() {
            *cur = Json::Object(Map::new());
        }
        let Json::Object(map) = cur else { return };
        if parts.peek().is_none() {
            map.insert(p.to_string(), value);
            return;
        }
        cur = map
            .entry(p.to_string())
            .or_insert_with(|| Json::Object(Map::new()));
    }
}

pub(crate) fn json_type_name(v: &Json) -> &'static str {
    match v {
        Json::Null => "nothing",
        Json::Bool(_) => "a boolean",
        Json::Number(n) if n.is_f64() => "a float",
        Json::Number(_) => "an integer",
        Json::String(_) => "a string",
        Json::Array(_) => "an array",
        Json::Object(_) => "a table",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn types_come_from_the_defaults() {
        assert_eq!(key_type("num_layers"), Some(KeyType::Int));
        assert_eq!(key_type("learning_rate"), Some(KeyType::Float));
        assert_eq!(key_type("amp_flag"), Some(KeyType::Bool));
        assert_eq!(key_type("datasets"), Some(KeyType::StrList));
        assert_eq!(key_type("device"), Some(KeyType::Str));
        assert!(matches!(key_type("manager_type"), Some(KeyType::Choice(_))));
        assert_eq!(key_type("nope"), None);
    }

    #[test]
    fn suggestions_catch_typos_only() {
        assert_eq!(suggest("learning_rat"), Some("learning_rate"));
        assert_eq!(suggest("num_layer"), Some("num_layers"));
        assert_eq!(suggest("zzzz"), None);
        assert_eq!(
            unknown_key_message("managed_layer_text"),
            "unknown setting `managed_layer_text`; did you mean `managed_layers_text`?"
        );
    }

    #[test]
    fn check_value_normalises_and_rejects() {
        assert_eq!(check_value("learning_rate", &json!(1)).unwrap(), json!(1.0));
        assert_eq!(
            check_value("num_layers", &json!(2.5)).unwrap_err(),
            "`num_layers` expects an integer, found a float"
        );
        assert_eq!(
            check_value("manager_type", &json!("XX")).unwrap_err(),
            "`manager_type` expects one of \"AAUE\", \"SAUE\", \"SAE\", \"BT\", \"METER\", found \"XX\""
        );
        assert_eq!(check_value("decay_power", &json!(1)).unwrap(), json!(1.0));
        assert_eq!(
            check_value("decay_power", &json!("cosine")).unwrap(),
            json!("cosine")
        );
        assert_eq!(
            check_value("decay_power", &json!("linear")).unwrap_err(),
            "`decay_power` expects a number or \"cosine\", found \"linear\""
        );
        // `precision = 32` as the reference writes it; fp16 is not offered.
        assert_eq!(check_value("precision", &json!(32)).unwrap(), json!("32"));
        assert_eq!(
            check_value("precision", &json!("bf16")).unwrap(),
            json!("bf16")
        );
        assert_eq!(
            check_value("precision", &json!(16)).unwrap_err(),
            "`precision` expects one of \"32\", \"bf16\", found 16"
        );
        assert_eq!(
            check_value("num_workers", &json!(-1)).unwrap_err(),
            "`num_workers` expects a non-negative integer, found -1"
        );
        assert_eq!(
            check_value("datasets", &json!([1])).unwrap_err(),
            "`datasets` expects an array of strings, found an array"
        );
    }

    #[test]
    fn text_is_parsed_by_the_target_type() {
        assert_eq!(parse_text("learning_rate", "2e-5").unwrap(), json!(2e-5));
        assert_eq!(parse_text("learning_rate", "3").unwrap(), json!(3.0));
        assert_eq!(parse_text("num_layers", "3").unwrap(), json!(3));
        assert_eq!(parse_text("amp_flag", "false").unwrap(), json!(false));
        assert_eq!(parse_text("device", "cpu").unwrap(), json!("cpu"));
        assert_eq!(parse_text("precision", "32").unwrap(), json!("32"));
        assert_eq!(parse_text("decay_power", "2").unwrap(), json!(2.0));
        assert_eq!(
            parse_text("decay_power", "cosine").unwrap(),
            json!("cosine")
        );
        assert_eq!(
            parse_text("decay_power", "cos").unwrap_err(),
            "`decay_power` expects a number or \"cosine\", found `cos`"
        );
        assert_eq!(
            parse_text("datasets", "coco,vg").unwrap(),
            json!(["coco", "vg"])
        );
        assert_eq!(
            parse_text("datasets", "[\"coco\"]").unwrap(),
            json!(["coco"])
        );
        assert_eq!(
            parse_text("num_layers", "three").unwrap_err(),
            "`num_layers` expects an integer, found `three`"
        );
        assert_eq!(
            parse_text("learnin_rate", "1").unwrap_err(),
            "unknown setting `learnin_rate`; did you mean `learning_rate`?"
        );
    }

    #[test]
    fn paths_set_and_get() {
        let mut v = json!({});
        set_path(&mut v, "a.b", json!(1));
        set_path(&mut v, "a.c", json!(2));
        assert_eq!(v, json!({"a": {"b": 1, "c": 2}}));
    }
}
