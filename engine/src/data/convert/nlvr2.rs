//! NLVR2 (`write_nlvr2.py`).
//!
//! Raw layout: `ROOT/nlvr2/data/{train,dev,test1}.json`,
//! `ROOT/nlvr2/data/balanced/balanced_{dev,test1}.json`,
//! `ROOT/nlvr2/data/unbalanced/unbalanced_{dev,test1}.json` (JSON lines), train images in
//! `ROOT/images/train/{directory}/{id}-img{0,1}.png`, the others in
//! `ROOT/{dev,test1}/{id}-img{0,1}.png`.
//!
//! The reference's rules: statements are grouped by their identifier without its last `-N`
//! (one image pair, several statements), groups in first-seen order (no shuffle); `questions`
//! are the sentences, `answers` the labels as written (`"True"`/`"False"`), `identifier` the
//! group's key; the image folder of a non-train pair is the key's first `-` part.

use std::collections::HashMap;
use std::path::PathBuf;

use serde::Deserialize;

use super::error::ConvertError;
use super::inputs::{read_json_lines, Required};
use super::output::{Cell, Output, Row};
use super::{ConvertResult, Ctx, Plan};
use crate::data::schema::NLVR2;

const SPLITS: [(&str, &str); 7] = [
    ("train", "train.json"),
    ("dev", "dev.json"),
    ("test1", "test1.json"),
    ("balanced_dev", "balanced/balanced_dev.json"),
    ("balanced_test1", "balanced/balanced_test1.json"),
    ("unbalanced_dev", "unbalanced/unbalanced_dev.json"),
    ("unbalanced_test1", "unbalanced/unbalanced_test1.json"),
];

#[derive(Deserialize)]
struct Statement {
    identifier: String,
    sentence: String,
    label: serde_json::Value,
    #[serde(default)]
    directory: Option<serde_json::Value>,
}

/// Python's `str()` of a JSON scalar, as the reference's f-strings print it.
fn py_str(v: &serde_json::Value) -> Option<String> {
    match v {
        serde_json::Value::String(s) => Some(s.clone()),
        serde_json::Value::Number(n) => Some(n.to_string()),
        serde_json::Value::Bool(true) => Some("True".into()),
        serde_json::Value::Bool(false) => Some("False".into()),
        _ => None,
    }
}

pub(crate) fn plan(ctx: &Ctx) -> ConvertResult<Plan> {
    let root = &ctx.opts.raw;
    let data = root.join("nlvr2").join("data");
    let mut req = Required::default();
    for (_, f) in SPLITS {
        req.file(data.join(f));
    }
    for d in ["images/train", "dev", "test1"] {
        req.dir(root.join(d));
    }
    req.check("nlvr2", root)?;

    let mut plan = Plan::default();
    for (split, file) in SPLITS {
        let path = data.join(file);
        ctx.phase(&format!("reading {}", path.display()));
        let lines: Vec<(usize, Statement)> = read_json_lines(
            &path,
            "an NLVR2 statement ({\"identifier\", \"sentence\", \"label\", ...})",
        )?;
        let mut order: Vec<String> = Vec::new();
        let mut groups: HashMap<String, Vec<(usize, Statement)>> = HashMap::new();
        for (line, st) in lines {
            let key = match st.identifier.rsplit_once('-') {
                Some((head, _)) => head.to_string(),
                None => String::new(),
            };
            groups
                .entry(key.clone())
                .or_insert_with(|| {
                    order.push(key);
                    Vec::new()
                })
                .push((line, st));
        }
        let mut rows = Vec::with_capacity(order.len());
        for key in order {
            let group = &groups[&key];
            let (first_line, first) = &group[0];
            let base: PathBuf = if key.starts_with("train") {
                let dir = first.directory.as_ref().and_then(py_str).ok_or_else(|| {
                    ConvertError::BadLine {
                        path: path.clone(),
                        line: *first_line,
                        what: "a train statement needs its image `directory`",
                        value: first.identifier.clone(),
                    }
                })?;
                root.join("images").join("train").join(dir)
            } else {
                root.join(key.split('-').next().unwrap_or_default())
            };
            let mut answers = Vec::with_capacity(group.len());
            for (line, st) in group {
                answers.push(py_str(&st.label).ok_or_else(|| ConvertError::BadLine {
                    path: path.clone(),
                    line: *line,
                    what: "`label` is not a string",
                    value: st.label.to_string(),
                })?);
            }
            rows.push(Row {
                images: vec![
                    base.join(format!("{key}-img0.png")),
                    base.join(format!("{key}-img1.png")),
                ],
                cells: vec![
                    Cell::strs(group.iter().map(|(_, s)| s.sentence.clone())),
                    Cell::strs(answers),
                    Cell::Str(key.clone()),
                ],
            });
        }
        plan.outputs
            .push(Output::eager(format!("nlvr2_{split}"), &NLVR2, rows));
    }
    Ok(plan)
}
