//! The metric names a run logs, known before it runs: each objective's `{split}/{task}/…`
//! keys per step and per epoch (`_epoch`), the loop's own (`train/lr`, …) and the evaluation's
//! (`val/the_metric`, recall). An experiment's `[metric]` is checked against them at plan time.

use experiments::{Settings, Task};

/// What one objective logs under its task name: the loss always, plus accuracy or VQA score.
struct Logged {
    task: &'static str,
    accuracy: bool,
    score: bool,
}

const fn loss(task: &'static str) -> Logged {
    Logged {
        task,
        accuracy: false,
        score: false,
    }
}

const fn with_accuracy(task: &'static str) -> Logged {
    Logged {
        task,
        accuracy: true,
        score: false,
    }
}

/// The task names an objective's outputs carry (as `compute_task` names them).
fn outputs(objective: &str, s: &Settings) -> Vec<Logged> {
    match objective {
        "mlm" => vec![with_accuracy("mlm")],
        "itm" => vec![with_accuracy("itm")],
        // The reference logs the plain ITC of a model without cross-modal layers as `irtr_itm`.
        "itc" if s.num_layers == 0 => vec![loss("irtr_itm")],
        "itc" => vec![loss("itc")],
        "itm_itc" => vec![loss("itc"), with_accuracy("itm")],
        "vqa" => vec![Logged {
            task: "vqa",
            accuracy: false,
            score: true,
        }],
        "nlvr2" => vec![with_accuracy("nlvr2")],
        "snli" => vec![with_accuracy("snli")],
        // The `irtr` loss of the rank head comes only with it; listing it does no harm.
        "irtr_itm_itc" => vec![loss("irtr_itc"), with_accuracy("irtr_itm"), loss("irtr")],
        _ => Vec::new(),
    }
}

/// Every metric name a run with these settings may log, sorted.
pub fn metric_names(s: &Settings) -> Vec<String> {
    let objectives = s.objectives_in_reference_order();
    let mut splits = vec!["train", "val"];
    // NLVR2 and SNLI-VE evaluate their test tables beside dev, under `test/`.
    if matches!(s.task, Task::Nlvr2 | Task::Snli) {
        splits.push("test");
    }
    let mut out: Vec<String> = Vec::new();
    for o in &objectives {
        for l in outputs(o, s) {
            let mut kinds = vec!["loss"];
            if l.accuracy {
                kinds.push("accuracy");
            }
            if l.score {
                kinds.push("score");
            }
            for split in &splits {
                for kind in &kinds {
                    let key = format!("{split}/{}/{kind}", l.task);
                    // Steps log training values as they are; epochs add `_epoch` (every split).
                    if *split == "train" {
                        out.push(key.clone());
                    }
                    out.push(format!("{key}_epoch"));
                }
            }
        }
    }
    out.extend(
        [
            "train/lr",
            "train/grad_norm",
            "train/data_wait_share",
            "train/the_metric",
            "val/the_metric",
            "val/best_the_metric",
        ]
        .map(String::from),
    );
    out.extend(crate::perf::METRIC_NAMES.map(String::from));
    if s.get_recall_metric && objectives.contains(&"irtr_itm_itc") {
        for k in [
            "ir_r1", "ir_r5", "ir_r10", "tr_r1", "tr_r5", "tr_r10", "ir_mean", "tr_mean", "r_mean",
        ] {
            out.push(format!("val/{k}"));
        }
    }
    out.sort();
    out.dedup();
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn vqa_names_are_the_references() {
        let s = Settings {
            task: Task::Vqa,
            ..Settings::tiny()
        };
        let names = metric_names(&s);
        for k in [
            "val/vqa/score_epoch",
            "val/vqa/loss_epoch",
            "train/vqa/score",
            "train/vqa/loss_epoch",
            "val/the_metric",
        ] {
            assert!(names.iter().any(|n| n == k), "{k}: {names:?}");
        }
        assert!(!names.iter().any(|n| n == "val/vqa/score"), "{names:?}");
        assert!(!names.iter().any(|n| n.starts_with("test/")), "{names:?}");
    }

    #[test]
    fn retrieval_and_nlvr2_names() {
        let s = Settings {
            task: Task::Irtr,
            get_recall_metric: true,
            ..Settings::tiny()
        };
        let names = metric_names(&s);
        assert!(names.iter().any(|n| n == "val/r_mean"));
        assert!(names.iter().any(|n| n == "val/irtr_itm/accuracy_epoch"));
        let s = Settings {
            task: Task::Nlvr2,
            ..Settings::tiny()
        };
        assert!(metric_names(&s)
            .iter()
            .any(|n| n == "test/nlvr2/accuracy_epoch"));
    }
}
