//! Poolers, the pre-training heads (`mlm_score`, `itm_score`, ITC) and the task classifiers.

use experiments::ManagerType;
use tch::{nn, Tensor};

use super::layers::{gelu, Ctx, LayerNorm, Linear, BERT_LN_EPS, LN_EPS};
use super::ModelConfig;

/// `heads.Pooler`: `tanh(W h[:, 0] + b)`.
#[derive(Debug)]
pub struct Pooler {
    dense: Linear,
}

impl Pooler {
    pub fn new(p: nn::Path, hidden: i64) -> Self {
        Self {
            dense: Linear::new(&p / "dense", hidden, hidden),
        }
    }

    pub fn forward(&self, h: &Tensor, ctx: Ctx) -> Tensor {
        ctx.full(&self.dense.forward(&h.select(1, 0), ctx)).tanh()
    }
}

/// `heads.MLMHead`: dense, GELU, LayerNorm (eps 1e-12), then an untied decoder plus `bias`.
#[derive(Debug)]
pub struct MlmHead {
    dense: Linear,
    layer_norm: LayerNorm,
    decoder: Linear,
    bias: Tensor,
}

impl MlmHead {
    pub fn new(p: nn::Path, hidden: i64, vocab: i64) -> Self {
        let t = &p / "transform";
        Self {
            dense: Linear::new(&t / "dense", hidden, hidden),
            layer_norm: LayerNorm::new(&t / "LayerNorm", hidden, BERT_LN_EPS),
            decoder: Linear::no_bias(&p / "decoder", hidden, vocab),
            bias: p.var("bias", &[vocab], nn::Init::Const(0.0)),
        }
    }

    pub fn forward(&self, x: &Tensor, ctx: Ctx) -> Tensor {
        let h = self
            .layer_norm
            .forward(&gelu(&self.dense.forward(x, ctx)), ctx);
        ctx.full(&self.decoder.forward(&h, ctx)) + &self.bias
    }
}

/// An `nn.Sequential` task classifier: `0` Linear, or `0` Linear → `1` LayerNorm → GELU → `3` Linear.
#[derive(Debug)]
pub struct Classifier {
    first: Linear,
    rest: Option<(LayerNorm, Linear)>,
}

impl Classifier {
    pub fn new(p: nn::Path, input: i64, hidden: i64, classes: i64, layers: i64) -> Self {
        if layers == 1 {
            return Self {
                first: Linear::new(&p / 0, input, classes),
                rest: None,
            };
        }
        Self {
            first: Linear::new(&p / 0, input, hidden),
            rest: Some((
                LayerNorm::new(&p / 1, hidden, LN_EPS),
                Linear::new(&p / 3, hidden, classes),
            )),
        }
    }

    pub fn forward(&self, x: &Tensor, ctx: Ctx) -> Tensor {
        let h = self.first.forward(x, ctx);
        match &self.rest {
            None => ctx.full(&h),
            Some((ln, last)) => ctx.full(&last.forward(&gelu(&ln.forward(&h, ctx)), ctx)),
        }
    }
}

/// A single Linear head with the `fc` key (`itm_score.fc`, `cross_modal_itc_*_head.fc`).
#[derive(Debug)]
pub struct FcHead {
    pub fc: Linear,
}

impl FcHead {
    pub fn new(p: nn::Path, input: i64, output: i64) -> Self {
        Self {
            fc: Linear::new(&p / "fc", input, output),
        }
    }

    pub fn forward(&self, x: &Tensor, ctx: Ctx) -> Tensor {
        ctx.full(&self.fc.forward(x, ctx))
    }
}

/// The task heads that exist for the configured task.
#[derive(Debug)]
pub struct Heads {
    pub mlm_score: Option<MlmHead>,
    pub itm_score: Option<FcHead>,
    pub itc_text: Option<FcHead>,
    pub itc_image: Option<FcHead>,
    pub vqa_classifier: Option<Classifier>,
    pub nlvr2_classifier: Option<Classifier>,
    pub snli_classifier: Option<Classifier>,
    /// `rank_output`: `Linear(2H, 1)` started from row 1 of `itm_score.fc` (then frozen).
    pub rank_output: Option<Linear>,
    /// ITC temperature (`temperature`, a 0-d parameter), clamped to [0.001, 0.5] before use.
    pub temperature: Tensor,
}

impl Heads {
    /// `root` is the model's root path.
    pub fn new(root: &nn::Path, cfg: &ModelConfig) -> Self {
        let hs = cfg.hidden_size;
        let h = cfg.heads;
        // METER's classifiers ignore `head_hidden_scale` and `task_head_layers`.
        let (hidden, layers) = if cfg.manager_type == ManagerType::Meter {
            (hs * 2, 2)
        } else {
            (hs * 2 * cfg.head_hidden_scale, cfg.task_head_layers)
        };
        let itm_score = h.itm.then(|| FcHead::new(root / "itm_score", hs * 2, 2));
        let rank_output = match (&itm_score, h.irtr_rank) {
            (Some(itm), true) => {
                let p = root / "rank_output";
                let w = tch::no_grad(|| itm.fc.weight.narrow(0, 1, 1).copy());
                let b = tch::no_grad(|| itm.fc.bias.as_ref().map(|b| b.narrow(0, 1, 1).copy()));
                let rank = Linear {
                    weight: p.var_copy("weight", &w),
                    bias: b.map(|b| p.var_copy("bias", &b)),
                };
                // The reference freezes the ITM head for the `irtr` loss.
                let _ = itm.fc.weight.set_requires_grad(false);
                if let Some(b) = &itm.fc.bias {
                    let _ = b.set_requires_grad(false);
                }
                Some(rank)
            }
            _ => None,
        };
        Self {
            mlm_score: h
                .mlm
                .then(|| MlmHead::new(root / "mlm_score", hs, cfg.vocab_size)),
            itm_score,
            itc_text: h.itc.then(|| {
                FcHead::new(
                    root / "cross_modal_itc_text_head",
                    cfg.text_width,
                    cfg.contrastive_hidden_size,
                )
            }),
            itc_image: h.itc.then(|| {
                FcHead::new(
                    root / "cross_modal_itc_image_head",
                    cfg.vit_width,
                    cfg.contrastive_hidden_size,
                )
            }),
            vqa_classifier: h.vqa.then(|| {
                Classifier::new(
                    root / "vqa_classifier",
                    hs * 2,
                    hidden,
                    cfg.vqav2_label_size,
                    layers,
                )
            }),
            nlvr2_classifier: h
                .nlvr2
                .then(|| Classifier::new(root / "nlvr2_classifier", hs * 4, hidden, 2, layers)),
            snli_classifier: h
                .snli
                .then(|| Classifier::new(root / "snli_classifier", hs * 2, hidden, 3, layers)),
            rank_output,
            temperature: root.var("temperature", &[], nn::Init::Const(cfg.temperature)),
        }
    }
}
