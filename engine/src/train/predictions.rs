//! VQA test predictions for the evaluation server (`vqa_test_step` + `vqa_test_wrapup`): after
//! training, the best checkpoint answers every question of the test tables, and the answers go
//! to `vqa_submit.json` as `[{"question_id": …, "answer": …}]`, the file eval.ai takes.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};

use tch::Kind;

use super::source::VqaTest;
use crate::data::{Target, ViltDataset};
use crate::model::objectives::{compute_vqa, Split};
use crate::model::TowerModel;
use crate::{EngineError, Result};

/// The submission file's name in the run folder.
pub const SUBMISSION_FILE: &str = "vqa_submit.json";

/// The VQA datamodule's `id2answer`: every (answer, label) pair of the given tables, later
/// pairs overriding earlier ones per answer (`answer2id = {k: v for k, v in zip(...)}`), then
/// label → answer in label order, the last answer of a label winning. Labels no answer names
/// answer "unknown", as the reference's `defaultdict`.
pub fn id2answer(datasets: &[&ViltDataset]) -> Result<BTreeMap<i64, String>> {
    let mut answer2id: HashMap<String, i64> = HashMap::new();
    // First-insertion order of the answers, which the reference's dict keeps.
    let mut order: Vec<String> = Vec::new();
    for ds in datasets {
        for sample in 0..ds.len() {
            let target = ds.target(sample)?;
            let Target::Vqa {
                answers, labels, ..
            } = target
            else {
                continue;
            };
            for (answer, label) in answers.into_iter().zip(labels) {
                if answer2id.insert(answer.clone(), label).is_none() {
                    order.push(answer);
                }
            }
        }
    }
    let mut sorted: Vec<(String, i64)> = order
        .into_iter()
        .map(|a| {
            let id = answer2id[&a];
            (a, id)
        })
        .collect();
    // Stable, as Python's `sorted`.
    sorted.sort_by_key(|(_, id)| *id);
    Ok(sorted.into_iter().map(|(a, id)| (id, a)).collect())
}

/// One answer per test question: the arg-max label of the VQA head, by `id2answer`, each
/// question once (a corrupt image's stand-in repeats another question). `None` when `cancel`
/// is raised on the way.
pub fn predict(
    model: &TowerModel,
    test: VqaTest<'_>,
    cancel: &AtomicBool,
) -> Result<Option<Vec<(i64, String)>>> {
    let mut out = Vec::new();
    let mut seen = HashSet::new();
    for item in test.batches {
        if cancel.load(Ordering::Relaxed) {
            return Ok(None);
        }
        let (question_ids, batch) = item?;
        let logits = tch::no_grad(|| compute_vqa(model, &batch, Split::Test))?.logits;
        let preds: Vec<i64> = logits
            .argmax(-1, false)
            .to_kind(Kind::Int64)
            .to_device(tch::Device::Cpu)
            .try_into()?;
        for (qid, label) in question_ids.into_iter().zip(preds) {
            if !seen.insert(qid) {
                continue;
            }
            let answer = test
                .id2answer
                .get(&label)
                .cloned()
                .unwrap_or_else(|| "unknown".into());
            out.push((qid, answer));
        }
    }
    Ok(Some(out))
}

/// Writes the submission file in `dir` whole (a temporary file renamed over it).
pub fn write_submission(dir: &Path, rows: &[(i64, String)]) -> Result<PathBuf> {
    let json: Vec<serde_json::Value> = rows
        .iter()
        .map(|(qid, answer)| serde_json::json!({"question_id": qid, "answer": answer}))
        .collect();
    let path = dir.join(SUBMISSION_FILE);
    let text = serde_json::to_string_pretty(&json).map_err(|source| EngineError::Json {
        path: path.clone(),
        source,
    })?;
    let tmp = dir.join(format!(".{SUBMISSION_FILE}.partial"));
    let io = |p: &Path| {
        let p = p.to_path_buf();
        move |source| EngineError::Io { path: p, source }
    };
    std::fs::create_dir_all(dir).map_err(io(dir))?;
    std::fs::write(&tmp, text).map_err(io(&tmp))?;
    std::fs::rename(&tmp, &path).map_err(io(&path))?;
    Ok(path)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn submission_is_the_eval_ai_format() {
        let dir = std::env::temp_dir().join(format!("towerlab-submit-{}", std::process::id()));
        let path = write_submission(&dir, &[(7, "yes".into()), (9, "2".into())]).unwrap();
        let v: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
        assert_eq!(
            v,
            serde_json::json!([
                {"question_id": 7, "answer": "yes"},
                {"question_id": 9, "answer": "2"}
            ])
        );
        assert!(!dir.join(".vqa_submit.json.partial").exists());
        std::fs::remove_dir_all(dir).unwrap();
    }
}
