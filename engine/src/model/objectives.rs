//! Task losses and step metrics (`objectives.py`), with the reference metric names
//! `{split}/{task}/{loss|accuracy|score}`. The training loss is the plain sum of every task loss.

use experiments::LOSS_NAMES;
use tch::{Kind, Reduction, Tensor};

use super::tower::{ForwardOptions, ImageFeatures, ImagePath, TextFeatures, TowerModel};
use crate::{EngineError, InputError, Result};

/// The label value ignored by MLM and the accuracies.
pub const IGNORE_INDEX: i64 = -100;

/// Which phase a batch belongs to (the metric-name prefix).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Split {
    Train,
    Val,
    Test,
}

impl Split {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Train => "train",
            Self::Val => "val",
            Self::Test => "test",
        }
    }

    pub fn is_train(self) -> bool {
        self == Self::Train
    }
}

/// A batch, as the data pipeline collates it. Only the fields a task reads must be present.
#[derive(Debug)]
pub struct Batch {
    /// `[B, L]` int64 token ids.
    pub text_ids: Tensor,
    /// `[B, L]` 1/0 attention mask.
    pub text_masks: Tensor,
    /// `[B, 3, S, S]` images (NLVR2: the first image).
    pub image: Tensor,
    /// MLM: masked ids and their labels (`-100` where not predicted).
    pub text_ids_mlm: Option<Tensor>,
    pub text_labels_mlm: Option<Tensor>,
    /// ITM pre-training: a random other image per sample (`false_image_0`).
    pub false_image: Option<Tensor>,
    /// NLVR2: the second image.
    pub image_1: Option<Tensor>,
    /// VQA: `[B, vqav2_label_size]` soft targets (see [`vqa_targets`]).
    pub vqa_targets: Option<Tensor>,
    /// NLVR2 (`answers == "True"`) and SNLI-VE class labels, int64 `[B]`.
    pub labels: Option<Tensor>,
    /// Retrieval: the image index of each pair (multi-positive ITC), int64 `[B]`.
    pub img_index: Option<Tensor>,
    /// ITM-based retrieval (`irtr`): `[B, F, L]` false texts and masks.
    pub false_text_ids: Option<Tensor>,
    pub false_text_masks: Option<Tensor>,
}

impl Batch {
    /// A batch with the common fields only.
    pub fn new(text_ids: Tensor, text_masks: Tensor, image: Tensor) -> Self {
        Self {
            text_ids,
            text_masks,
            image,
            text_ids_mlm: None,
            text_labels_mlm: None,
            false_image: None,
            image_1: None,
            vqa_targets: None,
            labels: None,
            img_index: None,
            false_text_ids: None,
            false_text_masks: None,
        }
    }

    pub fn batch_size(&self) -> i64 {
        self.text_ids.size()[0]
    }

    /// The batch on `device` (the loader collates on the CPU; the model may be on a GPU).
    pub fn to_device(self, device: tch::Device) -> Self {
        let move_ = |t: Tensor| t.to_device(device);
        let move_opt = |t: Option<Tensor>| t.map(move_);
        Self {
            text_ids: move_(self.text_ids),
            text_masks: move_(self.text_masks),
            image: move_(self.image),
            text_ids_mlm: move_opt(self.text_ids_mlm),
            text_labels_mlm: move_opt(self.text_labels_mlm),
            false_image: move_opt(self.false_image),
            image_1: move_opt(self.image_1),
            vqa_targets: move_opt(self.vqa_targets),
            labels: move_opt(self.labels),
            img_index: move_opt(self.img_index),
            false_text_ids: move_opt(self.false_text_ids),
            false_text_masks: move_opt(self.false_text_masks),
        }
    }
}

/// One logged value of a step, with the weight to average it over an epoch
/// (samples or tokens for accuracies and scores, 1 for losses).
#[derive(Debug, Clone, PartialEq)]
pub struct StepMetric {
    pub name: String,
    pub value: f64,
    pub weight: f64,
}

/// One task's loss, its predictions and the metrics to log.
#[derive(Debug)]
pub struct TaskOutput {
    /// Reference loss name: `mlm`, `itm`, `itc`, `irtr_itm`, `irtr_itc`, `vqa`, `nlvr2`, `snli`, `irtr`.
    pub task: &'static str,
    pub loss: Tensor,
    pub logits: Tensor,
    pub targets: Tensor,
    pub metrics: Vec<StepMetric>,
}

/// The sum of the task losses (`training_step`).
pub fn total_loss(outputs: &[TaskOutput]) -> Option<Tensor> {
    outputs
        .iter()
        .map(|o| o.loss.shallow_clone())
        .reduce(|a, b| a + b)
}

fn missing(field: &'static str, task: &str) -> EngineError {
    InputError::MissingField {
        task: task.to_string(),
        field,
    }
    .into()
}

fn head<'a, T>(h: &'a Option<T>, name: &'static str) -> Result<&'a T> {
    h.as_ref()
        .ok_or_else(|| InputError::NoHead { head: name }.into())
}

fn scalar(t: &Tensor) -> f64 {
    t.detach().to_kind(Kind::Double).double_value(&[])
}

fn loss_metric(split: Split, task: &str, loss: &Tensor) -> StepMetric {
    StepMetric {
        name: format!("{}/{task}/loss", split.as_str()),
        value: scalar(loss),
        weight: 1.0,
    }
}

/// `gadgets.Accuracy`: argmax accuracy over the targets that are not `-100`.
pub fn accuracy(logits: &Tensor, targets: &Tensor) -> (f64, f64) {
    let preds = logits.detach().argmax(-1, false);
    let valid = targets.ne(IGNORE_INDEX);
    let total = scalar(&valid.sum(Kind::Float));
    if total == 0.0 {
        return (0.0, 0.0);
    }
    let correct = scalar(&(preds.eq_tensor(targets).logical_and(&valid)).sum(Kind::Float));
    (correct / total, total)
}

fn accuracy_metric(split: Split, task: &str, logits: &Tensor, targets: &Tensor) -> StepMetric {
    let (value, weight) = accuracy(logits, targets);
    StepMetric {
        name: format!("{}/{task}/accuracy", split.as_str()),
        value,
        weight,
    }
}

/// `gadgets.VQAScore`: the soft score of the arg-max answer, averaged over questions.
pub fn vqa_score(logits: &Tensor, targets: &Tensor) -> f64 {
    let best = logits.detach().argmax(1, false).unsqueeze(1);
    scalar(
        &targets
            .to_kind(Kind::Float)
            .gather(1, &best, false)
            .mean(Kind::Float),
    )
}

/// Dense VQA targets from per-question answer labels and scores.
pub fn vqa_targets(labels: &[Vec<i64>], scores: &[Vec<f64>], label_size: i64) -> Tensor {
    let mut dense = vec![0f32; labels.len() * label_size as usize];
    for (i, (ls, ss)) in labels.iter().zip(scores).enumerate() {
        for (&l, &s) in ls.iter().zip(ss) {
            if (0..label_size).contains(&l) {
                dense[i * label_size as usize + l as usize] = s as f32;
            }
        }
    }
    Tensor::from_slice(&dense).view([labels.len() as i64, label_size])
}

fn cross_entropy(logits: &Tensor, targets: &Tensor) -> Tensor {
    logits.to_kind(Kind::Float).cross_entropy_loss::<Tensor>(
        targets,
        None,
        Reduction::Mean,
        IGNORE_INDEX,
        0.0,
    )
}

fn opts(split: Split) -> ForwardOptions {
    if split.is_train() {
        ForwardOptions::train()
    } else {
        ForwardOptions::eval()
    }
}

/// Masked language modelling on the final cross-modal text states.
pub fn compute_mlm(model: &TowerModel, batch: &Batch, split: Split) -> Result<TaskOutput> {
    let mlm = head(&model.heads().mlm_score, "mlm_score")?;
    let ids = batch
        .text_ids_mlm
        .as_ref()
        .ok_or_else(|| missing("text_ids_mlm", "mlm"))?;
    let labels = batch
        .text_labels_mlm
        .as_ref()
        .ok_or_else(|| missing("text_labels_mlm", "mlm"))?
        .to_device(batch.image.device());
    let out = model.forward(ids, &batch.text_masks, &batch.image, opts(split))?;
    let logits = mlm.forward(&out.text_feats, model.ctx(split.is_train()));
    let vocab = logits.size()[2];
    let loss = cross_entropy(&logits.view([-1, vocab]), &labels.view([-1]));
    let metrics = vec![
        loss_metric(split, "mlm", &loss),
        accuracy_metric(split, "mlm", &logits, &labels),
    ];
    Ok(TaskOutput {
        task: "mlm",
        loss,
        logits,
        targets: labels,
        metrics,
    })
}

/// Image-text matching: a random half of the batch gets `false_image` instead of its image.
pub fn compute_itm(model: &TowerModel, batch: &Batch, split: Split) -> Result<TaskOutput> {
    let itm = head(&model.heads().itm_score, "itm_score")?;
    let false_image = batch
        .false_image
        .as_ref()
        .ok_or_else(|| missing("false_image", "itm"))?;
    let b = batch.batch_size();
    let device = batch.image.device();
    let pos = b / 2;
    let labels = Tensor::cat(
        &[
            Tensor::ones([pos], (Kind::Int64, device)),
            Tensor::zeros([b - pos], (Kind::Int64, device)),
        ],
        0,
    );
    let labels = labels.index_select(0, &Tensor::randperm(b, (Kind::Int64, device)));
    let keep = labels.view([b, 1, 1, 1]).to_kind(Kind::Bool);
    let images = batch.image.where_self(&keep, false_image);
    let out = model.forward(&batch.text_ids, &batch.text_masks, &images, opts(split))?;
    let logits = itm.forward(&out.cls_feats, model.ctx(split.is_train()));
    let loss = cross_entropy(&logits, &labels);
    let metrics = vec![
        loss_metric(split, "itm", &loss),
        accuracy_metric(split, "itm", &logits, &labels),
    ];
    Ok(TaskOutput {
        task: "itm",
        loss,
        logits,
        targets: labels,
        metrics,
    })
}

/// `1 / temperature` after clamping the temperature to [0.001, 0.5] in place.
fn logit_scale(model: &TowerModel) -> Tensor {
    let t = &model.heads().temperature;
    tch::no_grad(|| {
        let mut t = t.shallow_clone();
        let _ = t.clamp_(0.001, 0.5);
    });
    t.reciprocal()
}

fn itc_loss(i2t: &Tensor, t2i: &Tensor, labels: &Tensor) -> Tensor {
    (cross_entropy(i2t, labels) + cross_entropy(t2i, labels)) / 2.0
}

/// Image-text contrastive loss on the top uni-modal CLS features (in-batch negatives).
pub fn compute_itc(model: &TowerModel, batch: &Batch, split: Split) -> Result<TaskOutput> {
    let train = split.is_train();
    let text = model.encode_text(&batch.text_ids, &batch.text_masks, train)?;
    let image = model.encode_image(&batch.image, train)?;
    let (t, i) = model.itc_features(&text, &image, train)?;
    let scale = logit_scale(model);
    let i2t = &scale * i.matmul(&t.tr());
    let t2i = &scale * t.matmul(&i.tr());
    let labels = Tensor::arange(batch.batch_size(), (Kind::Int64, t.device()));
    let loss = itc_loss(&i2t, &t2i, &labels);
    // The reference logs the plain ITC of a model without cross-modal layers as `irtr_itm`.
    let name = if model.config().num_layers == 0 {
        "irtr_itm"
    } else {
        "itc"
    };
    Ok(TaskOutput {
        task: name,
        metrics: vec![loss_metric(split, name, &loss)],
        loss,
        logits: i2t,
        targets: labels,
    })
}

/// Samples one index per row from `weights` (rows that are all zero sample uniformly).
fn sample_rows(weights: &Tensor) -> Tensor {
    let empty = weights.sum_dim_intlist(1, true, Kind::Float).eq(0.0);
    let w = weights + empty.to_kind(Kind::Float) * 1e-5;
    w.multinomial(1, false).view([-1])
}

/// ITC plus ITM on hard negatives sampled from the ITC similarities (ALBEF style), reusing the
/// cached expert stacks for the 3B fused pairs. `pretrain` selects in-batch identity positives
/// (`itc`, `itm`); otherwise positives share `img_index` (`irtr_itc`, `irtr_itm`).
pub fn compute_itm_itc(
    model: &TowerModel,
    batch: &Batch,
    split: Split,
    pretrain: bool,
) -> Result<Vec<TaskOutput>> {
    let itm = head(&model.heads().itm_score, "itm_score")?;
    let train = split.is_train();
    let b = batch.batch_size();
    let text = model.encode_text(&batch.text_ids, &batch.text_masks, train)?;
    let image = model.encode_image(&batch.image, train)?;
    let (t, i) = model.itc_features(&text, &image, train)?;
    let device = t.device();
    let scale = logit_scale(model);
    let i2t = &scale * i.matmul(&t.tr());
    let t2i = &scale * t.matmul(&i.tr());
    let positives = if pretrain {
        Tensor::eye(b, (Kind::Bool, device))
    } else {
        let idx = batch
            .img_index
            .as_ref()
            .ok_or_else(|| missing("img_index", "irtr_itm_itc"))?
            .to_device(device)
            .view([-1, 1]);
        idx.eq_tensor(&idx.tr())
    };
    let itc_labels = if pretrain {
        Tensor::arange(b, (Kind::Int64, device))
    } else {
        let p = positives.to_kind(Kind::Float);
        &p / p.sum_dim_intlist(1, true, Kind::Float)
    };
    let itc = itc_loss(&i2t, &t2i, &itc_labels);
    let (neg_images, neg_texts) = tch::no_grad(|| {
        let w_i2t = i2t.softmax(-1, Kind::Float).masked_fill(&positives, 0.0);
        let w_t2i = t2i.softmax(-1, Kind::Float).masked_fill(&positives, 0.0);
        (sample_rows(&w_t2i), sample_rows(&w_i2t))
    });
    let pairs_text = TextFeatures::cat(&[&text, &text, &text.index_select(&neg_texts)]);
    let pairs_image = ImageFeatures::cat(&[&image, &image.index_select(&neg_images), &image]);
    let out = model.fuse(&pairs_text, &pairs_image, opts(split))?;
    let logits = itm.forward(&out.cls_feats, model.ctx(train));
    let labels = Tensor::cat(
        &[
            Tensor::ones([b], (Kind::Int64, device)),
            Tensor::zeros([2 * b], (Kind::Int64, device)),
        ],
        0,
    );
    let itm_loss = cross_entropy(&logits, &labels);
    let (itc_name, itm_name) = if pretrain {
        ("itc", "itm")
    } else {
        ("irtr_itc", "irtr_itm")
    };
    Ok(vec![
        TaskOutput {
            task: itc_name,
            metrics: vec![loss_metric(split, itc_name, &itc)],
            loss: itc,
            logits: i2t,
            targets: itc_labels,
        },
        TaskOutput {
            task: itm_name,
            metrics: vec![
                loss_metric(split, itm_name, &itm_loss),
                accuracy_metric(split, itm_name, &logits, &labels),
            ],
            loss: itm_loss,
            logits,
            targets: labels,
        },
    ])
}

/// VQAv2: BCE-with-logits against soft targets, times the number of answers (ban-vqa).
pub fn compute_vqa(model: &TowerModel, batch: &Batch, split: Split) -> Result<TaskOutput> {
    let cls = head(&model.heads().vqa_classifier, "vqa_classifier")?;
    let targets = batch
        .vqa_targets
        .as_ref()
        .ok_or_else(|| missing("vqa_targets", "vqa"))?
        .to_kind(Kind::Float)
        .to_device(batch.image.device());
    let out = model.forward(
        &batch.text_ids,
        &batch.text_masks,
        &batch.image,
        opts(split),
    )?;
    let logits = cls.forward(&out.cls_feats, model.ctx(split.is_train()));
    let n = targets.size()[1];
    let loss =
        logits.binary_cross_entropy_with_logits::<Tensor>(&targets, None, None, Reduction::Mean)
            * n as f64;
    let metrics = vec![
        loss_metric(split, "vqa", &loss),
        StepMetric {
            name: format!("{}/vqa/score", split.as_str()),
            value: vqa_score(&logits, &targets),
            weight: batch.batch_size() as f64,
        },
    ];
    Ok(TaskOutput {
        task: "vqa",
        loss,
        logits,
        targets,
        metrics,
    })
}

fn labels_of(batch: &Batch, task: &str) -> Result<Tensor> {
    batch
        .labels
        .as_ref()
        .map(|l| l.to_device(batch.image.device()))
        .ok_or_else(|| missing("labels", task))
}

/// NLVR2: two passes (image 0 with token type 1, image 1 with token type 2), pair classifier.
pub fn compute_nlvr2(model: &TowerModel, batch: &Batch, split: Split) -> Result<TaskOutput> {
    let cls = head(&model.heads().nlvr2_classifier, "nlvr2_classifier")?;
    let image_1 = batch
        .image_1
        .as_ref()
        .ok_or_else(|| missing("image_1", "nlvr2"))?;
    let labels = labels_of(batch, "nlvr2")?;
    let o = opts(split);
    let a = model.forward(
        &batch.text_ids,
        &batch.text_masks,
        &batch.image,
        o.with_image_token_type(1),
    )?;
    let b = model.forward(
        &batch.text_ids,
        &batch.text_masks,
        image_1,
        o.with_image_token_type(2),
    )?;
    let ctx = model.ctx(split.is_train());
    let feats = ctx.dropout(
        &Tensor::cat(&[a.cls_feats, b.cls_feats], -1),
        model.config().nlvr2_drop_rate,
    );
    let logits = cls.forward(&feats, ctx);
    let loss = cross_entropy(&logits, &labels);
    Ok(TaskOutput {
        task: "nlvr2",
        metrics: vec![
            loss_metric(split, "nlvr2", &loss),
            accuracy_metric(split, "nlvr2", &logits, &labels),
        ],
        loss,
        logits,
        targets: labels,
    })
}

/// SNLI-VE: 3-way classification (contradiction 0, neutral 1, entailment 2).
pub fn compute_snli(model: &TowerModel, batch: &Batch, split: Split) -> Result<TaskOutput> {
    let cls = head(&model.heads().snli_classifier, "snli_classifier")?;
    let labels = labels_of(batch, "snli")?;
    let out = model.forward(
        &batch.text_ids,
        &batch.text_masks,
        &batch.image,
        opts(split),
    )?;
    let logits = cls.forward(&out.cls_feats, model.ctx(split.is_train()));
    let loss = cross_entropy(&logits, &labels);
    Ok(TaskOutput {
        task: "snli",
        metrics: vec![
            loss_metric(split, "snli", &loss),
            accuracy_metric(split, "snli", &logits, &labels),
        ],
        loss,
        logits,
        targets: labels,
    })
}

/// ITM-based retrieval (`irtr`): `rank_output` scores the true text against `F` false texts
/// for each image; cross-entropy with the true text at index 0.
pub fn compute_irtr(model: &TowerModel, batch: &Batch, split: Split) -> Result<TaskOutput> {
    let rank = head(&model.heads().rank_output, "rank_output")?;
    let ids = batch
        .false_text_ids
        .as_ref()
        .ok_or_else(|| missing("false_text_ids", "irtr"))?;
    let masks = batch
        .false_text_masks
        .as_ref()
        .ok_or_else(|| missing("false_text_masks", "irtr"))?;
    let (b, f, l) = ids.size3().map_err(|_| InputError::Shape {
        what: "`false_text_ids`",
        found: ids.size(),
        expected: "[B, F, L]".into(),
    })?;
    let train = split.is_train();
    let all_ids =
        Tensor::cat(&[batch.text_ids.unsqueeze(1), ids.shallow_clone()], 1).view([b * (f + 1), l]);
    let all_masks = Tensor::cat(&[batch.text_masks.unsqueeze(1), masks.shallow_clone()], 1)
        .view([b * (f + 1), l]);
    let text = model.encode_text(&all_ids, &all_masks, train)?;
    // The reference scores these pairs with `infer`.
    let image = model.encode_image_via(&batch.image, train, ImagePath::Infer)?;
    let device = batch.image.device();
    let repeat =
        Tensor::arange(b, (Kind::Int64, device)).repeat_interleave_self_int(f + 1, 0, None);
    let out = model.fuse(&text, &image.index_select(&repeat), opts(split))?;
    let ctx = model.ctx(train);
    let score = ctx
        .full(&rank.forward(&out.cls_feats, ctx))
        .view([b, f + 1]);
    let answer = Tensor::zeros([b], (Kind::Int64, device));
    let loss = cross_entropy(&score, &answer);
    Ok(TaskOutput {
        task: "irtr",
        metrics: vec![loss_metric(split, "irtr", &loss)],
        loss,
        logits: score,
        targets: answer,
    })
}

/// Every switched-on objective on one batch (`forward` of the reference module, which runs
/// each of `current_tasks` in a fixed order): `objectives` is `Settings::objectives`.
pub fn compute_task(
    model: &TowerModel,
    objectives: &[String],
    batch: &Batch,
    split: Split,
) -> Result<Vec<TaskOutput>> {
    if let Some(unknown) = objectives
        .iter()
        .find(|o| !LOSS_NAMES.contains(&o.as_str()))
    {
        return Err(InputError::UnknownObjective {
            name: unknown.clone(),
            expected: LOSS_NAMES.join(", "),
        }
        .into());
    }
    let mut out = Vec::new();
    for name in LOSS_NAMES {
        if !objectives.iter().any(|o| o == name) {
            continue;
        }
        match name {
            "mlm" => out.push(compute_mlm(model, batch, split)?),
            "itm" => out.push(compute_itm(model, batch, split)?),
            "itc" => out.push(compute_itc(model, batch, split)?),
            "itm_itc" => out.extend(compute_itm_itc(model, batch, split, true)?),
            "vqa" => out.push(compute_vqa(model, batch, split)?),
            "nlvr2" => out.push(compute_nlvr2(model, batch, split)?),
            "snli" => out.push(compute_snli(model, batch, split)?),
            _ => {
                out.extend(compute_itm_itc(model, batch, split, false)?);
                if model.heads().rank_output.is_some() {
                    out.push(compute_irtr(model, batch, split)?);
                }
            }
        }
    }
    Ok(out)
}
