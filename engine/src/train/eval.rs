//! One evaluation pass (`validation_step` + `epoch_wrapup` of the reference): epoch metrics,
//! `the_metric`, and the managers' aggregation weights averaged over the evaluation set.

use std::collections::BTreeMap;

use super::events::{ManagerWeight, Modality};
use super::metrics::{accumulate, weighted_means, WeightedSums};
use super::source::TaskData;
use crate::model::objectives::{compute_task, Split};
use crate::model::retrieval::{recall, rerank_scores, Recall};
use crate::model::{ForwardOptions, ImageFeatures, ManagerWeights, TextFeatures, TowerModel};
use crate::Result;

/// Batches whose manager weights are averaged (enough for a stable mean, cheap on big sets).
const MANAGER_WEIGHT_BATCHES: usize = 16;

pub struct Evaluation {
    /// `{split}/{task}/{loss|accuracy|score}_epoch` keys, as the reference logs them.
    pub metrics: Vec<(String, f64)>,
    pub the_metric: f64,
    /// `None` for models without managers (BT, METER).
    pub manager_weights: Option<Vec<ManagerWeight>>,
}

/// Retrieval recall at evaluation (`get_recall_metric`), with `k_test` ITM re-ranked candidates.
#[derive(Debug, Clone, Copy)]
pub struct RecallOptions {
    pub k_test: i64,
    /// Image-text pairs fused at once while re-ranking.
    pub chunk: i64,
}

/// How an evaluation pass runs.
#[derive(Debug, Clone, Copy)]
pub struct EvalOptions {
    pub recall: Option<RecallOptions>,
    /// The split recall and `the_metric` are computed on: `Val` for training's validation pass
    /// (whose NLVR2 / SNLI-VE test table is logged under `test/` beside it), `Test` when a
    /// checkpoint is scored on the test tables.
    pub split: Split,
    /// The run's seed: the pass seeds the generator with it, so what it draws (ITM's swapped
    /// images, the hard negatives of `irtr_itm_itc`) is the same whenever the same weights are
    /// evaluated, during training or by `towerlab eval`.
    pub seed: u64,
}

/// The generator seed of an evaluation pass.
fn eval_seed(seed: u64) -> i64 {
    (seed ^ 0x5EED_E7A1_0000_0000) as i64 & i64::MAX
}

pub fn evaluate(
    model: &TowerModel,
    objectives: &[String],
    data: &dyn TaskData,
    opts: EvalOptions,
) -> Result<Evaluation> {
    tch::manual_seed(eval_seed(opts.seed));
    tch::no_grad(|| {
        let mut sums = WeightedSums::new();
        let mut weights = ManagerWeights::default();
        let mut weight_batches = 0;
        for item in data.eval_batches() {
            let (split, batch) = item?;
            for out in compute_task(model, objectives, &batch, split)? {
                accumulate(&mut sums, &out.metrics);
            }
            if weight_batches < MANAGER_WEIGHT_BATCHES && model.config().is_manager_tower() {
                let out = model.forward(
                    &batch.text_ids,
                    &batch.text_masks,
                    &batch.image,
                    ForwardOptions::eval(),
                )?;
                if let Some(w) = out.manager_weights {
                    weights.merge(&w);
                    weight_batches += 1;
                }
            }
        }
        let epoch = weighted_means(sums);
        let mut metrics: Vec<(String, f64)> = epoch
            .iter()
            .map(|(k, v)| (format!("{k}_epoch"), *v))
            .collect();
        let mut epoch = epoch;
        let retrieval = objectives.iter().any(|o| o == "irtr_itm_itc");
        if let (true, Some(recall)) = (retrieval, opts.recall) {
            if let Some(r) = retrieval_recall(model, data, recall, opts.split)? {
                // The reference logs recall under its own names (no `_epoch`), in percent.
                for m in r.metrics(opts.split.as_str()) {
                    epoch.insert(m.name.clone(), m.value);
                    metrics.push((m.name, m.value));
                }
            }
        }
        let the_metric = the_metric(objectives, opts.split, &epoch);
        let manager_weights = (weight_batches > 0).then(|| flatten(&weights));
        Ok(Evaluation {
            metrics,
            the_metric,
            manager_weights,
        })
    })
}

/// `compute_irtr_itm_itc_recall` on `split`'s tables: every caption against every distinct
/// image (by `img_index`), ITC top-`k_test` candidates re-ranked by ITM. `None` without data
/// of that split.
fn retrieval_recall(
    model: &TowerModel,
    data: &dyn TaskData,
    opts: RecallOptions,
    split: Split,
) -> Result<Option<Recall>> {
    model.with_recall_precision(|| retrieval_recall_in(model, data, opts, split))
}

fn retrieval_recall_in(
    model: &TowerModel,
    data: &dyn TaskData,
    opts: RecallOptions,
    wanted: Split,
) -> Result<Option<Recall>> {
    let mut texts = Vec::new();
    let mut text_image = Vec::new();
    let mut images = Vec::new();
    let mut image_ids = Vec::new();
    let mut seen = std::collections::HashSet::new();
    for item in data.eval_batches() {
        let (split, batch) = item?;
        let Some(ids) = batch.img_index.as_ref().filter(|_| split == wanted) else {
            continue;
        };
        let ids: Vec<i64> = ids.to_device(tch::Device::Cpu).try_into()?;
        texts.push(model.encode_text(&batch.text_ids, &batch.text_masks, false)?);
        text_image.extend_from_slice(&ids);
        let new: Vec<i64> = (0..ids.len())
            .filter(|&i| seen.insert(ids[i]))
            .map(|i| i as i64)
            .collect();
        if !new.is_empty() {
            let rows = tch::Tensor::from_slice(&new).to_device(batch.image.device());
            images.push(model.encode_image(&batch.image.index_select(0, &rows), false)?);
            image_ids.extend(new.iter().map(|&i| ids[i as usize]));
        }
    }
    if texts.is_empty() {
        return Ok(None);
    }
    let texts = TextFeatures::cat(&texts.iter().collect::<Vec<_>>());
    let images = ImageFeatures::cat(&images.iter().collect::<Vec<_>>());
    let scores = rerank_scores(model, &texts, &images, opts.k_test, opts.chunk)?;
    Ok(Some(recall(
        &scores,
        &tch::Tensor::from_slice(&image_ids),
        &tch::Tensor::from_slice(&text_image),
    )))
}

/// `epoch_wrapup`'s sum over the switched-on `loss_names`, on `split` (validation, or the
/// training epoch): ITM and MLM accuracy, the VQA score, NLVR2/SNLI (dev) accuracy, `r_mean`
/// for retrieval (when recall was computed, as a fraction: the reference logs recall in percent
/// but adds `r_mean` itself); plain `itc` adds nothing.
pub fn the_metric(objectives: &[String], split: Split, epoch: &BTreeMap<String, f64>) -> f64 {
    let get = |name: &str, what: &str| {
        let key = format!("{}/{name}/{what}", split.as_str());
        epoch.get(&key).copied().unwrap_or(0.0)
    };
    objectives
        .iter()
        .map(|o| match o.as_str() {
            "vqa" => get("vqa", "score"),
            "mlm" | "itm" | "nlvr2" | "snli" => get(o, "accuracy"),
            "itm_itc" => get("itm", "accuracy"),
            "irtr_itm_itc" => epoch
                .get(&format!("{}/r_mean", split.as_str()))
                .map_or(0.0, |pct| pct / 100.0),
            _ => 0.0,
        })
        .sum()
}

fn flatten(w: &ManagerWeights) -> Vec<ManagerWeight> {
    let mut out = Vec::new();
    for (modality, layers) in [(Modality::Text, &w.text), (Modality::Image, &w.image)] {
        for (layer, lw) in layers.iter().enumerate() {
            for (e, v) in lw.experts.iter().enumerate() {
                out.push(ManagerWeight {
                    modality,
                    layer: layer as u32,
                    expert: e as i64,
                    weight: *v,
                });
            }
            // `cross` is oldest first; -1 names the immediately previous layer.
            let n = lw.cross.len() as i64;
            for (i, v) in lw.cross.iter().enumerate() {
                out.push(ManagerWeight {
                    modality,
                    layer: layer as u32,
                    expert: -(n - i as i64),
                    weight: *v,
                });
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::LayerWeights;

    #[test]
    fn the_metric_sums_the_reference_terms() {
        let mut e = BTreeMap::new();
        e.insert("val/itm/accuracy".to_string(), 0.75);
        e.insert("val/mlm/accuracy".to_string(), 0.25);
        e.insert("test/itm/accuracy".to_string(), 0.5);
        let names = |t: &[&str]| t.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        assert_eq!(the_metric(&names(&["mlm", "itm"]), Split::Val, &e), 1.0);
        assert_eq!(the_metric(&names(&["mlm", "itc"]), Split::Val, &e), 0.25);
        assert_eq!(the_metric(&names(&["itm_itc"]), Split::Val, &e), 0.75);
        assert_eq!(the_metric(&names(&["vqa"]), Split::Val, &e), 0.0);
        // The training epoch's sum reads the train keys.
        assert_eq!(the_metric(&names(&["mlm", "itm"]), Split::Train, &e), 0.0);
        e.insert("train/itm/accuracy".to_string(), 0.5);
        assert_eq!(the_metric(&names(&["mlm", "itm"]), Split::Train, &e), 0.5);
        e.insert("val/r_mean".to_string(), 62.5);
        assert_eq!(the_metric(&names(&["irtr_itm_itc"]), Split::Val, &e), 0.625);
    }

    #[test]
    fn cross_weights_get_negative_indices_newest_first() {
        let w = ManagerWeights {
            text: vec![LayerWeights {
                experts: vec![0.5, 0.5],
                cross: vec![0.9, 1.1],
                tokens: 3.0,
            }],
            image: vec![],
        };
        let flat = flatten(&w);
        let experts: Vec<i64> = flat.iter().map(|m| m.expert).collect();
        assert_eq!(experts, vec![0, 1, -2, -1]);
        assert_eq!(flat[3].weight, 1.1);
    }
}
