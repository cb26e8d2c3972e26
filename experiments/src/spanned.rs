//! A TOML tree that remembers where every key and value is.
//!
//! figment (and serde) lose source positions, so the experiment file is first read with
//! `toml_edit`'s span-keeping parser into this small tree; every check reports a line and column
//! from it, and the checked values are then handed to figment for layering.

use serde_json::Value as Json;

/// Byte range in the source.
pub(crate) type Span = std::ops::Range<usize>;

#[derive(Debug, Clone)]
pub(crate) struct Node {
    pub(crate) span: Span,
    pub(crate) kind: Kind,
}

#[derive(Debug, Clone)]
pub(crate) enum Kind {
    Str(String),
    Int(i64),
    Float(f64),
    Bool(bool),
    /// TOML date-times have no use in experiment files; kept to report them.
    Datetime(String),
    Array(Vec<Node>),
    Table(Vec<Entry>),
}

#[derive(Debug, Clone)]
pub(crate) struct Entry {
    pub(crate) key: String,
    pub(crate) key_span: Span,
    pub(crate) value: Node,
}

impl Node {
    pub(crate) fn entries(&self) -> Option<&[Entry]> {
        match &self.kind {
            Kind::Table(e) => Some(e),
            _ => None,
        }
    }

    pub(crate) fn as_str(&self) -> Option<&str> {
        match &self.kind {
            Kind::Str(s) => Some(s),
            _ => None,
        }
    }

    /// A short name of the value's type, for "expected X, found Y" messages.
    pub(crate) fn type_name(&self) -> &'static str {
        match self.kind {
            Kind::Str(_) => "a string",
            Kind::Int(_) => "an integer",
            Kind::Float(_) => "a float",
            Kind::Bool(_) => "a boolean",
            Kind::Datetime(_) => "a date-time",
            Kind::Array(_) => "an array",
            Kind::Table(_) => "a table",
        }
    }

    /// A float that is NaN or infinite (which JSON cannot hold).
    pub(crate) fn non_finite(&self) -> Option<f64> {
        match self.kind {
            Kind::Float(f) if !f.is_finite() => Some(f),
            _ => None,
        }
    }

    /// The value as JSON (date-times become strings).
    pub(crate) fn to_json(&self) -> Json {
        match &self.kind {
            Kind::Str(s) | Kind::Datetime(s) => Json::String(s.clone()),
            Kind::Int(i) => Json::from(*i),
            Kind::Float(f) => serde_json::Number::from_f64(*f).map_or(Json::Null, Json::Number),
            Kind::Bool(b) => Json::Bool(*b),
            Kind::Array(items) => Json::Array(items.iter().map(Node::to_json).collect()),
            Kind::Table(entries) => Json::Object(
                entries
                    .iter()
                    .map(|e| (e.key.clone(), e.value.to_json()))
                    .collect(),
            ),
        }
    }
}

/// A TOML syntax error: where, and what.
#[derive(Debug, Clone)]
pub(crate) struct SyntaxError {
    pub(crate) offset: usize,
    pub(crate) message: String,
}

/// Parses a TOML document into a spanned tree whose root is a table.
pub(crate) fn parse(src: &str) -> Result<Node, SyntaxError> {
    let doc = toml_edit::ImDocument::parse(src).map_err(|e| SyntaxError {
        offset: e.span().map_or(0, |s| s.start),
        message: e.message().trim().to_string(),
    })?;
    Ok(Node {
        span: 0..src.len(),
        kind: Kind::Table(table_entries(doc.as_table(), 0)),
    })
}

fn table_entries(table: &dyn toml_edit::TableLike, fallback: usize) -> Vec<Entry> {
    table
        .iter()
        .filter_map(|(name, _)| {
            let (key, item) = table.get_key_value(name)?;
            let key_span = key.span().unwrap_or(fallback..fallback);
            let value = item_node(item, key_span.start)?;
            Some(Entry {
                key: name.to_string(),
                key_span,
                value,
            })
        })
        .collect()
}

fn item_node(item: &toml_edit::Item, fallback: usize) -> Option<Node> {
    let span = item.span().unwrap_or(fallback..fallback);
    let kind = match item {
        toml_edit::Item::None => return None,
        toml_edit::Item::Value(v) => return Some(value_node(v, fallback)),
        toml_edit::Item::Table(t) => Kind::Table(table_entries(t, span.start)),
        toml_edit::Item::ArrayOfTables(a) => Kind::Array(
            a.iter()
                .map(|t| {
                    let s = t.span().unwrap_or(span.clone());
                    Node {
                        kind: Kind::Table(table_entries(t, s.start)),
                        span: s,
                    }
                })
                .collect(),
        ),
    };
    Some(Node { span, kind })
}

fn value_node(v: &toml_edit::Value, fallback: usize) -> Node {
    let span = v.span().unwrap_or(fallback..fallback);
    let kind = match v {
        toml_edit::Value::String(s) => Kind::Str(s.value().clone()),
        toml_edit::Value::Integer(i) => Kind::Int(*i.value()),
        toml_edit::Value::Float(f) => Kind::Float(*f.value()),
        toml_edit::Value::Boolean(b) => Kind::Bool(*b.value()),
        toml_edit::Value::Datetime(d) => Kind::Datetime(d.value().to_string()),
        toml_edit::Value::Array(a) => {
            Kind::Array(a.iter().map(|x| value_node(x, span.start)).collect())
        }
        toml_edit::Value::InlineTable(t) => Kind::Table(table_entries(t, span.start)),
    };
    Node { span, kind }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_and_values_keep_their_offsets() {
        let src = "name = \"x\"\n[grid]\nnum_layers = [3, 6]\n";
        let root = parse(src).unwrap();
        let e = root.entries().unwrap();
        assert_eq!(e[0].key, "name");
        assert_eq!(&src[e[0].key_span.clone()], "name");
        assert_eq!(&src[e[0].value.span.clone()], "\"x\"");
        let grid = e[1].value.entries().unwrap();
        assert_eq!(&src[grid[0].key_span.clone()], "num_layers");
        match &grid[0].value.kind {
            Kind::Array(items) => assert_eq!(&src[items[1].span.clone()], "6"),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn arrays_of_tables_and_dotted_keys() {
        let src = "[[exclude]]\na = 1\n[[exclude]]\nb.c = 2\n";
        let root = parse(src).unwrap();
        let ex = &root.entries().unwrap()[0].value;
        let Kind::Array(items) = &ex.kind else {
            panic!()
        };
        assert_eq!(items.len(), 2);
        let inner = items[1].entries().unwrap();
        assert_eq!(inner[0].key, "b");
        assert_eq!(inner[0].value.entries().unwrap()[0].key, "c");
        assert_eq!(
            &src[inner[0].value.entries().unwrap()[0].value.span.clone()],
            "2"
        );
    }

    #[test]
    fn syntax_errors_have_an_offset() {
        let err = parse("a = 1\nb = = 2\n").unwrap_err();
        assert!(err.offset >= 6, "{err:?}");
    }
}
