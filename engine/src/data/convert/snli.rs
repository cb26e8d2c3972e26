//! SNLI-VE (`write_snli.py`).
//!
//! Raw layout: `ROOT/snli_ve/snli_ve_{train,dev,test}.jsonl` and `ROOT/flickr30k-images/*.jpg`.
//!
//! The reference's rules: pairs are grouped by `Flickr30K_ID` in first-seen order (no shuffle);
//! each item of `sentences` is `[sentence1, sentence2]` (premise caption, hypothesis) and its
//! label `contradiction` 0, `neutral` 1, `entailment` 2.

use std::collections::HashMap;

use serde::Deserialize;

use super::error::ConvertError;
use super::inputs::{read_json_lines, Required};
use super::output::{Cell, Output, Row};
use super::{ConvertResult, Ctx, Plan};
use crate::data::schema::SNLI;

/// The reference's `label2id`.
pub(crate) fn label_id(label: &str) -> Option<i64> {
    match label {
        "contradiction" => Some(0),
        "neutral" => Some(1),
        "entailment" => Some(2),
        _ => None,
    }
}

#[derive(Deserialize)]
struct Pair {
    #[serde(rename = "Flickr30K_ID")]
    flickr30k_id: serde_json::Value,
    sentence1: String,
    sentence2: String,
    gold_label: String,
}

pub(crate) fn plan(ctx: &Ctx) -> ConvertResult<Plan> {
    let root = &ctx.opts.raw;
    let mut req = Required::default();
    for split in ["train", "dev", "test"] {
        req.file(root.join("snli_ve").join(format!("snli_ve_{split}.jsonl")));
    }
    let images = req.dir(root.join("flickr30k-images"));
    req.check("snli-ve", root)?;

    let mut plan = Plan::default();
    for split in ["train", "dev", "test"] {
        let path = root.join("snli_ve").join(format!("snli_ve_{split}.jsonl"));
        ctx.phase(&format!("reading {}", path.display()));
        let lines: Vec<(usize, Pair)> = read_json_lines(
            &path,
            "an SNLI-VE pair ({\"Flickr30K_ID\", \"sentence1\", \"sentence2\", \"gold_label\", ...})",
        )?;
        let mut order: Vec<String> = Vec::new();
        let mut groups: HashMap<String, (Vec<Vec<String>>, Vec<i64>)> = HashMap::new();
        for (line, pair) in lines {
            let id = match &pair.flickr30k_id {
                serde_json::Value::String(s) => s.clone(),
                serde_json::Value::Number(n) => n.to_string(),
                other => {
                    return Err(ConvertError::BadLine {
                        path,
                        line,
                        what: "`Flickr30K_ID` is not a string or number",
                        value: other.to_string(),
                    })
                }
            };
            let label = label_id(&pair.gold_label).ok_or_else(|| ConvertError::BadLine {
                path: path.clone(),
                line,
                what: "`gold_label` is not contradiction, neutral or entailment",
                value: pair.gold_label.clone(),
            })?;
            let (sentences, labels) = groups.entry(id.clone()).or_insert_with(|| {
                order.push(id);
                Default::default()
            });
            sentences.push(vec![pair.sentence1, pair.sentence2]);
            labels.push(label);
        }
        let rows = order
            .into_iter()
            .map(|id| {
                let (sentences, labels) = groups.remove(&id).unwrap_or_default();
                Row {
                    images: vec![images.join(format!("{id}.jpg"))],
                    cells: vec![Cell::StrListList(sentences), Cell::IntList(labels)],
                }
            })
            .collect();
        plan.outputs
            .push(Output::eager(format!("snli_{split}"), &SNLI, rows));
    }
    Ok(plan)
}
