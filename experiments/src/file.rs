//! Reading an experiment file: every section checked against the schema, every problem
//! collected with its line and column. The result is a [`Parsed`] file whose values are typed
//! and whose positions are kept for the checks that come after layering.

use std::collections::HashMap;

use serde_json::Value as Json;

use crate::errors::Collector;
use crate::evaluation::EvalSplit;
use crate::grid::{display_value, values_equal, Assignment, Dimension};
use crate::labels::{value_text, Labels};
use crate::schema;
use crate::settings::{Settings, Task};
use crate::spanned::{Entry, Kind, Node};
use crate::spec::{DataSpec, Goal, MetricSpec, Summary, WandbSpec};

/// A setting given in the file, with where its key and value are.
#[derive(Debug, Clone)]
pub(crate) struct SetEntry {
    pub(crate) path: String,
    pub(crate) value: Json,
    pub(crate) val_off: usize,
}

/// An `[[eval]]` entry: a checkpoint to score, with its own settings.
#[derive(Debug, Clone)]
pub(crate) struct EvalEntry {
    pub(crate) name: String,
    pub(crate) weights: String,
    pub(crate) split: EvalSplit,
    pub(crate) settings: Vec<SetEntry>,
    /// Where the entry starts (problems of its resolved settings point here).
    pub(crate) off: usize,
}

/// An include rule: a partial assignment and where each of its values is.
#[derive(Debug, Clone)]
pub(crate) struct Include {
    pub(crate) assignment: Assignment,
    pub(crate) offsets: HashMap<String, usize>,
}

/// The file, checked section by section.
#[derive(Debug, Clone, Default)]
pub(crate) struct Parsed {
    pub(crate) name: String,
    pub(crate) description: String,
    pub(crate) preset: String,
    pub(crate) preset_off: Option<usize>,
    pub(crate) data: Option<DataSpec>,
    pub(crate) data_root_off: Option<usize>,
    /// `task` and the `[base]` settings, in file order.
    pub(crate) base: Vec<SetEntry>,
    pub(crate) dims: Vec<Dimension>,
    /// Where each `(axis, value)` of the grid is written (first occurrence).
    pub(crate) value_offsets: HashMap<(String, String), usize>,
    pub(crate) seeds: Option<Vec<u64>>,
    pub(crate) exclude: Vec<Assignment>,
    pub(crate) include: Vec<Include>,
    pub(crate) metrics: Vec<(MetricSpec, usize)>,
    pub(crate) metric_off: Option<usize>,
    pub(crate) baseline: Option<(Assignment, usize)>,
    pub(crate) pretrain: Option<(Vec<SetEntry>, usize)>,
    pub(crate) evals: Vec<EvalEntry>,
    pub(crate) wandb: Option<WandbSpec>,
    /// The `[executor]` section, when written.
    pub(crate) executor: Option<crate::executor::ExecutorSpec>,
    /// The `[labels]` section: names in figures.
    pub(crate) labels: Labels,
    /// A `task` key was written (even with a bad value), so "missing task" is not reported.
    pub(crate) task_written: bool,
    /// Axes written in the grid whose values were rejected (already reported): rules naming
    /// them are not told that they name no axis.
    pub(crate) broken_axes: Vec<String>,
}

impl Parsed {
    pub(crate) fn axis_keys(&self) -> Vec<String> {
        self.dims
            .iter()
            .flat_map(|d| d.keys())
            .map(str::to_string)
            .collect()
    }

    pub(crate) fn value_offset(&self, key: &str, value: &Json) -> Option<usize> {
        self.value_offsets
            .get(&(key.to_string(), schema_value_id(value)))
            .copied()
    }
}

/// A value's identity for lookups (numbers by value: 3 and 3.0 are the same).
pub(crate) fn schema_value_id(v: &Json) -> String {
    match v {
        Json::Number(n) => n.as_f64().map_or(v.to_string(), |f| format!("{f:?}")),
        _ => v.to_string(),
    }
}

const SECTIONS: [&str; 16] = [
    "name",
    "description",
    "task",
    "data",
    "base",
    "grid",
    "zip",
    "exclude",
    "include",
    "metric",
    "baseline",
    "pretrain",
    "eval",
    "wandb",
    "labels",
    "executor",
];

fn join(prefix: &str, key: &str) -> String {
    if prefix.is_empty() {
        key.to_string()
    } else {
        format!("{prefix}.{key}")
    }
}

fn closest<'a>(word: &str, options: &[&'a str]) -> Option<&'a str> {
    options
        .iter()
        .map(|o| (strsim::jaro_winkler(word, o), *o))
        .filter(|(s, _)| *s >= 0.8)
        .max_by(|a, b| a.0.total_cmp(&b.0))
        .map(|(_, o)| o)
}

/// TOML puts every key after a `[section]` header into that section, so a top-level key
/// written late lands in the wrong place; say so instead of "unknown".
fn misplaced(key: &str) -> Option<String> {
    matches!(key, "name" | "description" | "baseline").then(|| {
        format!("`{key}` is a top-level key: write it before the first [section] of the file")
    })
}

fn unknown_setting(path: &str) -> String {
    misplaced(path).unwrap_or_else(|| schema::unknown_key_message(path))
}

fn unknown_in(section: &str, key: &str, options: &[&str]) -> String {
    if let Some(m) = misplaced(key) {
        return m;
    }
    match closest(key, options) {
        Some(s) => format!("unknown key `{key}` in {section}; did you mean `{s}`?"),
        None => format!(
            "unknown key `{key}` in {section}; expected one of {}",
            options.join(", ")
        ),
    }
}

/// Reads the whole file; problems go to `c`.
pub(crate) fn read(c: &mut Collector<'_>, root: &Node) -> Parsed {
    let mut p = Parsed {
        preset: "base".into(),
        ..Parsed::default()
    };
    let entries = root.entries().unwrap_or(&[]);
    let mut name_seen = false;
    let mut metric_node: Option<&Node> = None;
    let mut baseline_node: Option<&Entry> = None;
    let mut labels_node: Option<&Node> = None;
    let mut zips: Vec<&Node> = Vec::new();
    let mut excludes: Vec<&Node> = Vec::new();
    let mut includes: Vec<&Node> = Vec::new();
    for e in entries {
        match e.key.as_str() {
            "name" => {
                name_seen = true;
                match e.value.as_str() {
                    Some(n) if valid_name(n) => p.name = n.to_string(),
                    Some(n) => c.at(
                        e.value.span.start,
                        format!("name must be letters, digits, `-`, `_` or `.`, found \"{n}\""),
                    ),
                    None => c.at(
                        e.value.span.start,
                        format!("name expects a string, found {}", e.value.type_name()),
                    ),
                }
            }
            "description" => match e.value.as_str() {
                Some(d) => p.description = d.to_string(),
                None => c.at(
                    e.value.span.start,
                    format!(
                        "description expects a string, found {}",
                        e.value.type_name()
                    ),
                ),
            },
            "task" => {
                p.task_written = true;
                setting(c, e, "", &mut p.base);
            }
            "data" => read_data(c, e, &mut p),
            "base" => read_base(c, e, &mut p),
            "grid" => read_grid(c, e, &mut p, &mut zips, &mut excludes, &mut includes),
            "zip" => zips.push(&e.value),
            "exclude" => excludes.push(&e.value),
            "include" => includes.push(&e.value),
            "metric" => {
                metric_node = Some(&e.value);
                p.metric_off = Some(e.key_span.start);
            }
            "baseline" => baseline_node = Some(e),
            "pretrain" => read_pretrain(c, e, &mut p),
            "eval" => {
                for t in tables_of(c, &e.value, "eval") {
                    read_eval(c, t, &mut p);
                }
            }
            "wandb" => p.wandb = read_wandb(c, &e.value),
            "executor" => {
                p.executor = crate::executor::read_executor(c, &e.value, |k| {
                    unknown_in("[executor]", k, &crate::executor::EXECUTOR_KEYS)
                })
            }
            "labels" => labels_node = Some(&e.value),
            other => c.at(e.key_span.start, unknown_in("the file", other, &SECTIONS)),
        }
    }
    if !name_seen {
        c.at(
            0,
            "missing `name`: give the experiment a name, e.g. name = \"ablation\"",
        );
    }
    if let Some(w) = &mut p.wandb {
        if w.project.is_empty() {
            w.project = p.name.clone();
        }
    }
    for z in zips {
        read_zip(c, z, &mut p);
    }
    for x in excludes {
        for rule in tables_of(c, x, "exclude") {
            if let Some(a) = read_exclude(c, rule, &p) {
                p.exclude.push(a);
            }
        }
    }
    for x in includes {
        for rule in tables_of(c, x, "include") {
            if let Some(i) = read_include(c, rule) {
                p.include.push(i);
            }
        }
    }
    match metric_node {
        Some(m) => read_metrics(c, m, &mut p),
        None => c.at(
            0,
            "missing [metric]: name the metric to report, e.g. [metric] name = \"val/vqa/score_epoch\", goal = \"maximize\"",
        ),
    }
    if let Some(b) = baseline_node {
        p.baseline = read_baseline(c, &b.value, &p).map(|a| (a, b.key_span.start));
    }
    if let Some(l) = labels_node {
        p.labels = read_labels(c, l, &p);
    }
    p
}

/// A label: a non-empty string on one line.
fn label_text(c: &mut Collector<'_>, node: &Node, what: &str) -> Option<String> {
    match node.as_str() {
        Some(s) if !s.trim().is_empty() && !s.contains(['\n', '\r']) => Some(s.to_string()),
        Some(_) => {
            c.at(
                node.span.start,
                format!("{what} must be a non-empty line of text"),
            );
            None
        }
        None => {
            c.at(
                node.span.start,
                format!("{what} expects a string, found {}", node.type_name()),
            );
            None
        }
    }
}

/// `[labels]`: `"metric/key" = "name"` and `axis = "name"`, and `[labels.values.<axis>]`
/// with `value = "name"` for the values of a grid axis.
fn read_labels(c: &mut Collector<'_>, node: &Node, p: &Parsed) -> Labels {
    let mut out = Labels::default();
    let Some(entries) = node.entries() else {
        c.at(
            node.span.start,
            format!("[labels] expects a table, found {}", node.type_name()),
        );
        return out;
    };
    let axes = p.axis_keys();
    let names: Vec<&str> = axes.iter().map(String::as_str).collect();
    let not_an_axis = |key: &str| {
        let hint = match closest(key, &names) {
            Some(s) => format!("did you mean the axis `{s}`?"),
            None if names.is_empty() => "the grid has no axes".to_string(),
            None => format!("axes: {}", names.join(", ")),
        };
        hint
    };
    for e in entries {
        if e.key == "values" {
            let Some(per_axis) = e.value.entries() else {
                c.at(
                    e.value.span.start,
                    format!(
                        "labels.values expects a table of axes, found {}",
                        e.value.type_name()
                    ),
                );
                continue;
            };
            for a in per_axis {
                let Some(dim) = p.dims.iter().find(|d| d.keys().contains(&a.key.as_str())) else {
                    c.at(
                        a.key_span.start,
                        format!(
                            "labels.values names `{}`, which is not an axis of the grid; {}",
                            a.key,
                            not_an_axis(&a.key)
                        ),
                    );
                    continue;
                };
                let values: Vec<&Json> = match dim {
                    Dimension::Axis { values, .. } => values.iter().collect(),
                    Dimension::Zip { keys, rows } => {
                        let i = keys.iter().position(|k| *k == a.key).unwrap_or(0);
                        rows.iter().map(|r| &r[i]).collect()
                    }
                };
                let Some(value_entries) = a.value.entries() else {
                    c.at(
                        a.value.span.start,
                        format!(
                            "labels.values.{} expects a table of value = \"name\", found {}",
                            a.key,
                            a.value.type_name()
                        ),
                    );
                    continue;
                };
                for v in value_entries {
                    let matched = values.iter().find(|x| {
                        display_value(x) == v.key
                            || value_text(x) == v.key
                            || matches!(
                                (x.as_f64(), v.key.parse::<f64>()),
                                (Some(a), Ok(b)) if a == b
                            )
                    });
                    let Some(value) = matched else {
                        c.at(
                            v.key_span.start,
                            format!(
                                "labels.values.{}: `{}` is not a value of the axis ({})",
                                a.key,
                                v.key,
                                values
                                    .iter()
                                    .map(|x| display_value(x))
                                    .collect::<Vec<_>>()
                                    .join(", ")
                            ),
                        );
                        continue;
                    };
                    let what = format!("labels.values.{}.{}", a.key, v.key);
                    if let Some(name) = label_text(c, &v.value, &what) {
                        out.values
                            .entry(a.key.clone())
                            .or_default()
                            .insert(value_text(value), name);
                    }
                }
            }
            continue;
        }
        let what = format!("labels.\"{}\"", e.key);
        if axes.contains(&e.key) {
            if let Some(name) = label_text(c, &e.value, &what) {
                out.axes.insert(e.key.clone(), name);
            }
        } else if e.key.contains('/') {
            if let Some(name) = label_text(c, &e.value, &what) {
                out.metrics.insert(e.key.clone(), name);
            }
        } else {
            c.at(
                e.key_span.start,
                format!(
                    "labels names `{}`, which is neither an axis of the grid nor a logged metric \
                     name (those look like `val/vqa/score_epoch`); {}",
                    e.key,
                    not_an_axis(&e.key)
                ),
            );
        }
    }
    out
}

fn valid_name(n: &str) -> bool {
    !n.is_empty()
        && n.bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
}

/// A table, or an array of tables, as a list of tables.
fn tables_of<'a>(c: &mut Collector<'_>, node: &'a Node, what: &str) -> Vec<&'a Node> {
    match &node.kind {
        Kind::Table(_) => vec![node],
        Kind::Array(items) => items
            .iter()
            .filter(|i| {
                let ok = matches!(i.kind, Kind::Table(_));
                if !ok {
                    c.at(
                        i.span.start,
                        format!("{what} expects tables, found {}", i.type_name()),
                    );
                }
                ok
            })
            .collect(),
        _ => {
            c.at(
                node.span.start,
                format!("{what} expects a table, found {}", node.type_name()),
            );
            Vec::new()
        }
    }
}

/// One setting `e` (under `prefix`), checked; nested sections are walked.
fn setting(c: &mut Collector<'_>, e: &Entry, prefix: &str, out: &mut Vec<SetEntry>) {
    let path = join(prefix, &e.key);
    if let Kind::Table(inner) = &e.value.kind {
        // A known section, or an unknown one: then each leaf is reported by its full path.
        if schema::is_section(&path) || schema::key_type(&path).is_none() {
            if inner.is_empty() && !schema::is_section(&path) {
                c.at(e.key_span.start, unknown_setting(&path));
            }
            for i in inner {
                setting(c, i, &path, out);
            }
            return;
        }
    }
    if schema::key_type(&path).is_none() && !schema::is_section(&path) {
        c.at(e.key_span.start, unknown_setting(&path));
        return;
    }
    match check_node(&path, &e.value) {
        Ok(value) => out.push(SetEntry {
            path,
            value,
            val_off: e.value.span.start,
        }),
        Err(m) => c.at(e.value.span.start, m),
    }
}

fn read_data(c: &mut Collector<'_>, e: &Entry, p: &mut Parsed) {
    let Some(entries) = e.value.entries() else {
        c.at(
            e.value.span.start,
            format!("[data] expects a table, found {}", e.value.type_name()),
        );
        return;
    };
    let mut data = DataSpec {
        root: Settings::default().data_root,
        synthetic: false,
    };
    for d in entries {
        match (d.key.as_str(), &d.value.kind) {
            ("root", Kind::Str(s)) => {
                data.root = s.clone();
                p.data_root_off = Some(d.value.span.start);
            }
            ("synthetic", Kind::Bool(b)) => data.synthetic = *b,
            ("root", _) => c.at(
                d.value.span.start,
                format!("data.root expects a string, found {}", d.value.type_name()),
            ),
            ("synthetic", _) => c.at(
                d.value.span.start,
                format!(
                    "data.synthetic expects a boolean, found {}",
                    d.value.type_name()
                ),
            ),
            (other, _) => c.at(
                d.key_span.start,
                unknown_in("[data]", other, &["root", "synthetic"]),
            ),
        }
    }
    p.data = Some(data);
}

fn read_base(c: &mut Collector<'_>, e: &Entry, p: &mut Parsed) {
    let Some(entries) = e.value.entries() else {
        c.at(
            e.value.span.start,
            format!("[base] expects a table, found {}", e.value.type_name()),
        );
        return;
    };
    for b in entries {
        if b.key == "preset" {
            match b.value.as_str() {
                Some(name) if Settings::preset(name).is_some() => {
                    p.preset = name.to_string();
                    p.preset_off = Some(b.value.span.start);
                }
                _ => c.at(
                    b.value.span.start,
                    format!(
                        "preset expects one of {}, found {}",
                        Settings::PRESETS
                            .iter()
                            .map(|n| format!("\"{n}\""))
                            .collect::<Vec<_>>()
                            .join(", "),
                        match &b.value.kind {
                            Kind::Str(s) => format!("\"{s}\""),
                            _ => b.value.type_name().to_string(),
                        }
                    ),
                ),
            }
            continue;
        }
        if b.key == "task" {
            p.task_written = true;
        }
        if b.key == "data_root" {
            c.at(
                b.key_span.start,
                "set the data folder in [data] root, not in [base]",
            );
            continue;
        }
        setting(c, b, "", &mut p.base);
    }
}

fn read_grid<'a>(
    c: &mut Collector<'_>,
    e: &'a Entry,
    p: &mut Parsed,
    zips: &mut Vec<&'a Node>,
    excludes: &mut Vec<&'a Node>,
    includes: &mut Vec<&'a Node>,
) {
    let Some(entries) = e.value.entries() else {
        c.at(
            e.value.span.start,
            format!("[grid] expects a table, found {}", e.value.type_name()),
        );
        return;
    };
    for g in entries {
        match g.key.as_str() {
            "seeds" => read_seeds(c, g, p),
            "zip" => zips.push(&g.value),
            "exclude" => excludes.push(&g.value),
            "include" => includes.push(&g.value),
            _ => {
                p.task_written |= g.key == "task";
                read_axis(c, g, "", p);
            }
        }
    }
}

fn read_seeds(c: &mut Collector<'_>, g: &Entry, p: &mut Parsed) {
    match &g.value.kind {
        Kind::Int(n) if *n >= 1 => p.seeds = Some((0..*n as u64).collect()),
        Kind::Int(n) => c.at(
            g.value.span.start,
            format!("seeds must be at least 1, found {n}"),
        ),
        Kind::Array(items) => {
            if items.is_empty() {
                c.at(g.value.span.start, "axis `seeds` is empty");
                return;
            }
            let mut seeds = Vec::new();
            for i in items {
                match i.kind {
                    Kind::Int(s) if s >= 0 => {
                        if seeds.contains(&(s as u64)) {
                            c.at(i.span.start, format!("axis `seeds` lists {s} twice"));
                        } else {
                            seeds.push(s as u64);
                        }
                    }
                    _ => c.at(
                        i.span.start,
                        format!(
                            "seeds expects non-negative integers, found {}",
                            i.type_name()
                        ),
                    ),
                }
            }
            p.seeds = Some(seeds);
        }
        _ => c.at(
            g.value.span.start,
            format!(
                "seeds expects an array of integers or a count, found {}",
                g.value.type_name()
            ),
        ),
    }
}

/// Checks the values of an axis; `None` after reporting a problem.
fn axis_values(
    c: &mut Collector<'_>,
    key: &str,
    node: &Node,
    p: &mut Parsed,
    unique: bool,
) -> Option<Vec<Json>> {
    let Kind::Array(items) = &node.kind else {
        c.at(
            node.span.start,
            format!(
                "axis `{key}` expects an array of values, e.g. `{key} = [{}]`; put constants in [base]",
                display_or_placeholder(node)
            ),
        );
        return None;
    };
    if items.is_empty() {
        c.at(node.span.start, format!("axis `{key}` is empty"));
        return None;
    }
    let mut values: Vec<Json> = Vec::new();
    let mut ok = true;
    for i in items {
        match check_node(key, i) {
            Ok(v) => {
                if unique && values.iter().any(|x| values_equal(x, &v)) {
                    c.at(
                        i.span.start,
                        format!("axis `{key}` lists {} twice", display_value(&v)),
                    );
                    ok = false;
                    continue;
                }
                p.value_offsets
                    .entry((key.to_string(), schema_value_id(&v)))
                    .or_insert(i.span.start);
                values.push(v);
            }
            Err(m) => {
                c.at(i.span.start, m);
                ok = false;
            }
        }
    }
    ok.then_some(values)
}

fn display_or_placeholder(n: &Node) -> String {
    match &n.kind {
        Kind::Table(_) | Kind::Array(_) => "...".into(),
        _ => display_value(&n.to_json()),
    }
}

fn axis_key_ok(c: &mut Collector<'_>, key: &str, off: usize, p: &Parsed) -> bool {
    if key == "seed" {
        c.at(
            off,
            "`seed` is the replicate axis: write `seeds = [0, 1, 2]`",
        );
        return false;
    }
    if schema::key_type(key).is_none() {
        c.at(off, unknown_setting(key));
        return false;
    }
    if p.axis_keys().iter().any(|k| k == key) {
        c.at(
            off,
            format!("`{key}` appears in more than one axis or zip group"),
        );
        return false;
    }
    true
}

fn read_axis(c: &mut Collector<'_>, g: &Entry, prefix: &str, p: &mut Parsed) {
    let key = join(prefix, &g.key);
    if let Kind::Table(inner) = &g.value.kind {
        if schema::is_section(&key) {
            for i in inner {
                read_axis(c, i, &key, p);
            }
            return;
        }
    }
    if !axis_key_ok(c, &key, g.key_span.start, p) {
        return;
    }
    match axis_values(c, &key, &g.value, p, true) {
        Some(values) => p.dims.push(Dimension::Axis { key, values }),
        None => p.broken_axes.push(key),
    }
}

fn flatten_entries<'a>(entries: &'a [Entry], prefix: &str, out: &mut Vec<(String, &'a Entry)>) {
    for e in entries {
        let key = join(prefix, &e.key);
        match &e.value.kind {
            Kind::Table(inner) if schema::is_section(&key) => flatten_entries(inner, &key, out),
            _ => out.push((key, e)),
        }
    }
}

fn read_zip(c: &mut Collector<'_>, node: &Node, p: &mut Parsed) {
    for group in tables_of(c, node, "zip") {
        let mut flat = Vec::new();
        flatten_entries(group.entries().unwrap_or(&[]), "", &mut flat);
        if flat.is_empty() {
            c.at(group.span.start, "a zip group needs at least one axis");
            continue;
        }
        let mut keys = Vec::new();
        let mut columns: Vec<Vec<Json>> = Vec::new();
        let mut ok = true;
        for (key, e) in &flat {
            if !axis_key_ok(c, key, e.key_span.start, p) || keys.contains(key) {
                ok = false;
                continue;
            }
            // The first axis names the group's rows (it is the one shown in cell keys, with the
            // next ones where it repeats a value); any value may repeat, but not a whole row.
            match axis_values(c, key, &e.value, p, false) {
                Some(v) => {
                    keys.push(key.clone());
                    columns.push(v);
                }
                None => ok = false,
            }
        }
        if !ok {
            p.broken_axes.extend(flat.iter().map(|(k, _)| k.clone()));
            continue;
        }
        let len = columns[0].len();
        if columns.iter().any(|col| col.len() != len) {
            let sizes = keys
                .iter()
                .zip(&columns)
                .map(|(k, col)| format!("{k} has {}", col.len()))
                .collect::<Vec<_>>()
                .join(", ");
            c.at(
                group.span.start,
                format!("the axes of a zip group need the same number of values: {sizes}"),
            );
            p.broken_axes.extend(keys);
            continue;
        }
        let rows: Vec<Vec<Json>> = (0..len)
            .map(|i| columns.iter().map(|col| col[i].clone()).collect())
            .collect();
        let same = |a: &[Json], b: &[Json]| a.iter().zip(b).all(|(x, y)| values_equal(x, y));
        if let Some(i) = (1..len).find(|&i| rows[..i].iter().any(|r| same(r, &rows[i]))) {
            c.at(
                group.span.start,
                format!(
                    "row {} of the zip group ({} = {}) repeats an earlier row",
                    i + 1,
                    keys[0],
                    display_value(&rows[i][0])
                ),
            );
            continue;
        }
        p.dims.push(Dimension::Zip { keys, rows });
    }
}

fn read_exclude(c: &mut Collector<'_>, rule: &Node, p: &Parsed) -> Option<Assignment> {
    read_rule(c, rule, p, "exclude")
}

/// A partial assignment of axis values (an exclude rule or the baseline).
fn read_rule(c: &mut Collector<'_>, rule: &Node, p: &Parsed, what: &str) -> Option<Assignment> {
    let mut flat = Vec::new();
    flatten_entries(rule.entries().unwrap_or(&[]), "", &mut flat);
    if flat.is_empty() {
        c.at(
            rule.span.start,
            if what == "exclude" {
                "an empty exclude rule would exclude every cell".to_string()
            } else {
                format!("an empty {what} matches every cell; name axis values")
            },
        );
        return None;
    }
    let axes = p.axis_keys();
    let mut out = Vec::new();
    let mut ok = true;
    for (key, e) in flat {
        if key == "seeds" || key == "seed" {
            c.at(
                e.key_span.start,
                format!("{what} cannot name seeds; list only the seeds you want in [grid] seeds"),
            );
            ok = false;
            continue;
        }
        let Some(dim) = p.dims.iter().find(|d| d.keys().contains(&key.as_str())) else {
            if p.broken_axes.contains(&key) {
                // Its values were rejected above: that message is the one to fix.
                ok = false;
                continue;
            }
            let names: Vec<&str> = axes.iter().map(String::as_str).collect();
            let hint = match closest(&key, &names) {
                Some(s) => format!("; did you mean `{s}`?"),
                None if names.is_empty() => "; the grid has no axes".to_string(),
                None => format!(" (axes: {})", names.join(", ")),
            };
            c.at(
                e.key_span.start,
                format!("{what} names `{key}`, which is not an axis of the grid{hint}"),
            );
            ok = false;
            continue;
        };
        let v = match check_node(&key, &e.value) {
            Ok(v) => v,
            Err(m) => {
                c.at(e.value.span.start, m);
                ok = false;
                continue;
            }
        };
        let values: Vec<&Json> = match dim {
            Dimension::Axis { values, .. } => values.iter().collect(),
            Dimension::Zip { keys, rows } => {
                let i = keys.iter().position(|k| *k == key).unwrap_or(0);
                rows.iter().map(|r| &r[i]).collect()
            }
        };
        if !values.iter().any(|x| values_equal(x, &v)) {
            c.at(
                e.value.span.start,
                format!(
                    "{what} value {} is not a value of axis `{key}` ({})",
                    display_value(&v),
                    values
                        .iter()
                        .map(|x| display_value(x))
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
            );
            ok = false;
            continue;
        }
        out.push((key, v));
    }
    ok.then_some(out)
}

fn read_include(c: &mut Collector<'_>, rule: &Node) -> Option<Include> {
    let entries = rule.entries().unwrap_or(&[]);
    if entries.is_empty() {
        c.at(rule.span.start, "an empty include rule adds nothing");
        return None;
    }
    let before = c.errors.len();
    let mut set = Vec::new();
    for e in entries {
        if e.key == "seed" || e.key == "seeds" {
            c.at(
                e.key_span.start,
                "include rules cannot set seeds; every cell runs with [grid] seeds",
            );
            continue;
        }
        setting(c, e, "", &mut set);
    }
    if c.errors.len() > before {
        return None;
    }
    Some(Include {
        offsets: set.iter().map(|s| (s.path.clone(), s.val_off)).collect(),
        assignment: set.into_iter().map(|s| (s.path, s.value)).collect(),
    })
}

fn read_goal(c: &mut Collector<'_>, n: &Node, what: &str) -> Option<Goal> {
    match n.as_str() {
        Some("maximize") => Some(Goal::Maximize),
        Some("minimize") => Some(Goal::Minimize),
        _ => {
            c.at(
                n.span.start,
                format!(
                    "{what} expects \"maximize\" or \"minimize\", found {}",
                    match &n.kind {
                        Kind::Str(s) => format!("\"{s}\""),
                        _ => n.type_name().to_string(),
                    }
                ),
            );
            None
        }
    }
}

const METRIC_KEYS: [&str; 4] = ["task", "name", "goal", "summary"];

fn read_metrics(c: &mut Collector<'_>, node: &Node, p: &mut Parsed) {
    for m in tables_of(c, node, "metric") {
        let mut task = None;
        let mut name = None;
        let mut goal = None;
        let mut summary = Some(Summary::Last);
        let mut summary_goal: Option<Goal> = None;
        let mut ok = true;
        for e in m.entries().unwrap_or(&[]) {
            match e.key.as_str() {
                "task" => match schema::check_value("task", &e.value.to_json()) {
                    Ok(v) => task = serde_json::from_value::<Task>(v).ok(),
                    Err(msg) => {
                        c.at(e.value.span.start, msg.replace("`task`", "metric.task"));
                        ok = false;
                    }
                },
                "name" => match e.value.as_str() {
                    Some(n) if !n.trim().is_empty() => name = Some(n.to_string()),
                    _ => {
                        c.at(
                            e.value.span.start,
                            "metric.name expects a metric name, e.g. \"val/vqa/score_epoch\"",
                        );
                        ok = false;
                    }
                },
                "goal" => {
                    goal = read_goal(c, &e.value, "metric.goal");
                    ok &= goal.is_some();
                }
                "summary" => {
                    summary = read_summary(c, &e.value, &mut summary_goal);
                    ok &= summary.is_some();
                }
                other => {
                    c.at(
                        e.key_span.start,
                        unknown_in("[metric]", other, &METRIC_KEYS),
                    );
                    ok = false;
                }
            }
        }
        if name.is_none() && ok {
            c.at(m.span.start, "metric needs a `name`");
            ok = false;
        }
        if goal.is_none() && ok {
            c.at(
                m.span.start,
                "metric needs a `goal`: \"maximize\" or \"minimize\"",
            );
            ok = false;
        }
        if !ok {
            continue;
        }
        let (Some(name), Some(goal), Some(mut summary)) = (name, goal, summary) else {
            continue;
        };
        if let Summary::AtBestOf { goal: g, .. } = &mut summary {
            // The other metric's goal defaults to this metric's goal.
            *g = summary_goal.unwrap_or(goal);
        }
        if p.metrics.iter().any(|(x, _)| x.task == task) {
            c.at(
                m.span.start,
                match task {
                    Some(t) => format!("a second metric for task `{}`", t.as_str()),
                    None => "a second metric without a task; give each one a `task`".into(),
                },
            );
            continue;
        }
        p.metrics.push((
            MetricSpec {
                task,
                name,
                goal,
                summary,
            },
            m.span.start,
        ));
    }
}

fn read_summary(c: &mut Collector<'_>, n: &Node, goal: &mut Option<Goal>) -> Option<Summary> {
    const HELP: &str = "metric.summary expects \"last\", \"best\" or { at_best_of = \"<metric>\", goal = \"maximize\" }";
    match &n.kind {
        Kind::Str(s) if s == "last" => Some(Summary::Last),
        Kind::Str(s) if s == "best" => Some(Summary::Best),
        Kind::Table(entries) => {
            let mut metric = None;
            let mut ok = true;
            for e in entries {
                match e.key.as_str() {
                    "at_best_of" => match e.value.as_str() {
                        Some(m) if !m.trim().is_empty() => metric = Some(m.to_string()),
                        _ => {
                            c.at(e.value.span.start, "at_best_of expects a metric name");
                            ok = false;
                        }
                    },
                    "goal" => {
                        *goal = read_goal(c, &e.value, "summary.goal");
                        ok &= goal.is_some();
                    }
                    other => {
                        c.at(
                            e.key_span.start,
                            unknown_in("metric.summary", other, &["at_best_of", "goal"]),
                        );
                        ok = false;
                    }
                }
            }
            match (ok, metric) {
                (true, Some(metric)) => Some(Summary::AtBestOf {
                    metric,
                    goal: Goal::Maximize,
                }),
                (true, None) => {
                    c.at(n.span.start, HELP);
                    None
                }
                _ => None,
            }
        }
        _ => {
            c.at(n.span.start, HELP);
            None
        }
    }
}

fn read_baseline(c: &mut Collector<'_>, node: &Node, p: &Parsed) -> Option<Assignment> {
    if node.entries().is_none() {
        c.at(
            node.span.start,
            format!(
                "baseline expects a table of axis values, e.g. baseline = {{ manager_type = \"BT\" }}, found {}",
                node.type_name()
            ),
        );
        return None;
    }
    read_rule(c, node, p, "baseline")
}

fn read_pretrain(c: &mut Collector<'_>, e: &Entry, p: &mut Parsed) {
    let Some(entries) = e.value.entries() else {
        c.at(
            e.value.span.start,
            format!("[pretrain] expects a table, found {}", e.value.type_name()),
        );
        return;
    };
    let mut set = Vec::new();
    for s in entries {
        let key = s.key.as_str();
        if Settings::MODEL_KEYS.contains(&key) {
            c.at(
                s.key_span.start,
                format!("`{key}` cannot be set in [pretrain]: the pre-training run takes its model from the fine-tuning cell"),
            );
            continue;
        }
        if matches!(key, "task" | "vlp" | "load_path") {
            c.at(
                s.key_span.start,
                format!("`{key}` cannot be set in [pretrain]: it is fixed for pre-training runs"),
            );
            continue;
        }
        setting(c, s, "", &mut set);
    }
    p.pretrain = Some((set, e.key_span.start));
}

/// One `[[eval]]` table: `name`, `weights`, optional `split`, and any settings.
fn read_eval(c: &mut Collector<'_>, node: &Node, p: &mut Parsed) {
    let entries = node.entries().unwrap_or(&[]);
    let mut name = None;
    let mut weights = None;
    let mut split = EvalSplit::Val;
    let mut settings = Vec::new();
    for e in entries {
        let off = e.value.span.start;
        match e.key.as_str() {
            "name" => match e.value.as_str() {
                Some(n) if !valid_name(n) => c.at(
                    off,
                    format!("eval name must be letters, digits, `-`, `_` or `.`, found \"{n}\""),
                ),
                Some(n) if p.evals.iter().any(|x| x.name == n) => {
                    c.at(off, format!("two [[eval]] entries are named \"{n}\""))
                }
                Some(n) => name = Some(n.to_string()),
                None => c.at(
                    off,
                    format!("eval name expects a string, found {}", e.value.type_name()),
                ),
            },
            "weights" => match e.value.as_str() {
                Some(w) if !w.trim().is_empty() => weights = Some(w.to_string()),
                _ => c.at(
                    off,
                    "eval weights expects the path of a checkpoint (a TowerLab step folder, a \
                     Lightning .ckpt, a .safetensors or .pt file, a Hugging Face folder)",
                ),
            },
            "split" => match e.value.as_str().and_then(EvalSplit::from_name) {
                Some(s) => split = s,
                None => c.at(off, "eval split expects \"val\" or \"test\""),
            },
            "load_path" => c.at(
                e.key_span.start,
                "an eval scores the checkpoint named by `weights`; it loads nothing else",
            ),
            _ => setting(c, e, "", &mut settings),
        }
    }
    if name.is_none() && !entries.iter().any(|e| e.key == "name") {
        c.at(
            node.span.start,
            "[[eval]] needs a `name`, e.g. name = \"released\"",
        );
    }
    if weights.is_none() && !entries.iter().any(|e| e.key == "weights") {
        c.at(
            node.span.start,
            "[[eval]] needs `weights`: the checkpoint to score",
        );
    }
    if let (Some(name), Some(weights)) = (name, weights) {
        p.evals.push(EvalEntry {
            name,
            weights,
            split,
            settings,
            off: node.span.start,
        });
    }
}

const WANDB_KEYS: [&str; 4] = ["enabled", "project", "entity", "live"];

fn read_wandb(c: &mut Collector<'_>, node: &Node) -> Option<WandbSpec> {
    let Some(entries) = node.entries() else {
        c.at(
            node.span.start,
            format!("[wandb] expects a table, found {}", node.type_name()),
        );
        return None;
    };
    let mut w = WandbSpec {
        enabled: true,
        project: String::new(),
        entity: None,
        live: false,
    };
    for e in entries {
        match (e.key.as_str(), &e.value.kind) {
            ("enabled", Kind::Bool(b)) => w.enabled = *b,
            ("live", Kind::Bool(b)) => w.live = *b,
            ("project" | "entity", Kind::Str(s)) => {
                if let Err(m) = wandb_name(s) {
                    c.at(e.value.span.start, format!("wandb.{} {m}", e.key));
                } else if e.key == "project" {
                    w.project = s.clone();
                } else {
                    w.entity = Some(s.clone());
                }
            }
            ("enabled" | "live", _) => c.at(
                e.value.span.start,
                format!(
                    "wandb.{} expects a boolean, found {}",
                    e.key,
                    e.value.type_name()
                ),
            ),
            ("project" | "entity", _) => c.at(
                e.value.span.start,
                format!(
                    "wandb.{} expects a string, found {}",
                    e.key,
                    e.value.type_name()
                ),
            ),
            (other, _) => c.at(e.key_span.start, unknown_in("[wandb]", other, &WANDB_KEYS)),
        }
    }
    Some(w)
}

/// W&B rejects these characters in project and entity names.
fn wandb_name(s: &str) -> Result<(), String> {
    if s.is_empty() {
        return Err("must not be empty".into());
    }
    if s.len() > 128 {
        return Err("must be at most 128 characters".into());
    }
    if let Some(bad) = s.chars().find(|ch| "/\\#?%:".contains(*ch)) {
        return Err(format!("must not contain `{bad}`"));
    }
    Ok(())
}

/// [`schema::check_value`] on a TOML value. TOML's `nan` and `inf` have no JSON form; they are
/// named here instead of reaching the schema as nothing.
fn check_node(path: &str, node: &Node) -> Result<Json, String> {
    if let Some(f) = node.non_finite() {
        return Err(format!("`{path}` = {f}: expected a finite number"));
    }
    schema::check_value(path, &node.to_json())
}
