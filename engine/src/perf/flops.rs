//! Model FLOPs counted analytically from the model configuration.
//!
//! The convention is `torch.utils.flop_counter`'s, so the figures compare with a PyTorch count
//! one to one: a multiply-add is 2 FLOPs, and only matrix products are counted — every `Linear`
//! (`2·rows·in·out`, the bias add not counted), the patch-embedding convolution
//! (`2·out_elements·in_channels·kh·kw`) and attention's two batched products
//! (`Q·Kᵀ` and `P·V`: `2·Lq·Lk·D` each, summed over heads). Left out, as there: LayerNorms,
//! softmaxes, activations, residual and embedding adds, dropout, the managers' weighted sums of
//! the experts (elementwise), embedding look-ups, losses and the optimiser step.
//!
//! Training counts the backward pass as twice the forward of every product (a gradient for the
//! input and one for the weight), except the patch embedding, whose input is the image and
//! needs no gradient (once). Recomputation is never counted: these are *model* FLOPs, the
//! numerator of MFU (fused attention kernels that recompute `Q·Kᵀ` in the backward do more
//! work than this counts).

use crate::model::ModelConfig;
use experiments::ManagerType;

/// Forward FLOPs by part of the model, for one sample of one pass.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Flops {
    /// RoBERTa's layers (embeddings are look-ups).
    pub text_encoder: u64,
    /// CLIP's `conv1` (no gradient for its input in training).
    pub patch_embedding: u64,
    /// CLIP's residual blocks.
    pub vision_encoder: u64,
    /// `cross_modal_{text,image}_transform` on every kept layer (and METER's fusion gates).
    pub projections: u64,
    /// The cross-modal layers of both towers: self-attention, cross-attention, MLP.
    pub cross_layers: u64,
    /// The managers' controllers (AAUE's `fusion_attention` and `linear_controller`; SAUE, SAE
    /// and BridgeTower's link towers have no products).
    pub managers: u64,
    /// `cross_modal_{text,image}_pooler`.
    pub poolers: u64,
    /// Task heads (and ITC's similarity products).
    pub heads: u64,
}

impl Flops {
    pub fn total(&self) -> u64 {
        self.text_encoder
            + self.patch_embedding
            + self.vision_encoder
            + self.projections
            + self.cross_layers
            + self.managers
            + self.poolers
            + self.heads
    }

    /// Forward + backward: 3× every product but the patch embedding's (2×).
    pub fn training(&self) -> u64 {
        3 * self.total() - self.patch_embedding
    }

    fn add(mut self, o: Flops) -> Flops {
        self.text_encoder += o.text_encoder;
        self.patch_embedding += o.patch_embedding;
        self.vision_encoder += o.vision_encoder;
        self.projections += o.projections;
        self.cross_layers += o.cross_layers;
        self.managers += o.managers;
        self.poolers += o.poolers;
        self.heads += o.heads;
        self
    }

    fn times(self, k: u64) -> Flops {
        Flops {
            text_encoder: self.text_encoder * k,
            patch_embedding: self.patch_embedding * k,
            vision_encoder: self.vision_encoder * k,
            projections: self.projections * k,
            cross_layers: self.cross_layers * k,
            managers: self.managers * k,
            poolers: self.poolers * k,
            heads: self.heads * k,
        }
    }
}

/// The shapes of one micro-batch that the count depends on besides the configuration.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Shapes {
    /// Text tokens per sample (the padded length: padding is computed like any token).
    pub text_len: i64,
    /// Samples in the micro-batch: ITC's similarity products grow with it.
    pub batch: i64,
    /// False texts per sample (`draw_false_text`; the ITM-based `irtr` loss).
    pub false_texts: i64,
}

fn u(x: i64) -> u64 {
    x.max(0) as u64
}

/// `Linear(inp → out)` over `rows` rows.
fn linear(rows: i64, inp: i64, out: i64) -> u64 {
    2 * u(rows) * u(inp) * u(out)
}

/// Attention's `Q·Kᵀ` and `P·V` for `lq` queries over `lk` keys of total width `d`.
fn attention_products(lq: i64, lk: i64, d: i64) -> u64 {
    2 * 2 * u(lq) * u(lk) * u(d)
}

/// One post-LN BERT/RoBERTa or pre-LN CLIP encoder layer over `l` tokens: Q, K, V and output
/// projections, attention, MLP `d → inner → d`.
fn encoder_layer(l: i64, d: i64, inner: i64) -> u64 {
    4 * linear(l, d, d) + attention_products(l, l, d) + 2 * linear(l, d, inner)
}

/// `BertCrossLayer` of one tower: `lq` own tokens, `lk` of the other modality.
fn cross_layer(lq: i64, lk: i64, d: i64, inner: i64) -> u64 {
    let self_attention = 4 * linear(lq, d, d) + attention_products(lq, lq, d);
    let cross_attention =
        2 * linear(lq, d, d) + 2 * linear(lk, d, d) + attention_products(lq, lk, d);
    self_attention + cross_attention + 2 * linear(lq, d, inner)
}

/// AAUE's controller at one layer ≥ 1: `q_proj` on its own `l` tokens, `k_proj` on the other
/// modality's `lo`, single-head attention of width `d` (no value projection), and
/// `linear_controller(2d → n)`.
fn aaue(l: i64, lo: i64, d: i64, n: i64) -> u64 {
    linear(l, d, d) + linear(lo, d, d) + attention_products(l, lo, d) + linear(l, 2 * d, n)
}

/// What `encode_text` computes for one sample of `lt` tokens.
fn encode_text(cfg: &ModelConfig, lt: i64, kept: i64) -> Flops {
    let (d, h) = (cfg.text_width, cfg.hidden_size);
    let mut f = Flops {
        text_encoder: u(cfg.text_layers) * encoder_layer(lt, d, cfg.text_intermediate),
        ..Flops::default()
    };
    f.projections = meter_gates(cfg, lt, cfg.text_layers);
    if cfg.num_layers > 0 {
        f.projections += u(kept) * linear(lt, d, h);
    }
    f
}

/// What `encode_image` computes for one image.
fn encode_image(cfg: &ModelConfig, kept: i64) -> Flops {
    let lv = cfg.image_tokens();
    let (d, h) = (cfg.vit_width, cfg.hidden_size);
    let grid = cfg.image_size / cfg.patch_size;
    let mut f = Flops {
        patch_embedding: 2 * u(grid * grid) * u(d) * u(3 * cfg.patch_size * cfg.patch_size),
        vision_encoder: u(cfg.vit_layers) * encoder_layer(lv, d, cfg.vit_intermediate),
        ..Flops::default()
    };
    f.projections = meter_gates(cfg, lv, cfg.vit_layers);
    if cfg.num_layers > 0 {
        f.projections += u(kept) * linear(lv, d, h);
    }
    f
}

/// METER's `meter_fusion` gate on every layer but the top one.
fn meter_gates(cfg: &ModelConfig, l: i64, layers: i64) -> u64 {
    if cfg.meter_fusion {
        u(layers - 1) * linear(l, cfg.hidden_size, cfg.hidden_size)
    } else {
        0
    }
}

/// Layers each modality hands to the cross-modal encoder (as `TowerModel::kept`).
fn kept(cfg: &ModelConfig) -> (i64, i64) {
    if cfg.meter_fusion || cfg.num_layers == 0 {
        (1, 1)
    } else {
        cfg.experts()
    }
}

/// What `fuse` computes for one (text, image) pair: managers or bridges, the cross-modal
/// layers of both towers, the poolers.
fn fuse(cfg: &ModelConfig, lt: i64) -> Flops {
    let lv = cfg.image_tokens();
    let (h, inner, layers) = (cfg.hidden_size, cfg.cross_intermediate(), cfg.num_layers);
    let managers = if cfg.manager_type == ManagerType::Aaue {
        let (nt, nv) = cfg.experts();
        u(layers - 1) * (aaue(lt, lv, h, nt) + aaue(lv, lt, h, nv))
    } else {
        0
    };
    Flops {
        cross_layers: u(layers) * (cross_layer(lt, lv, h, inner) + cross_layer(lv, lt, h, inner)),
        managers,
        poolers: 2 * linear(1, h, h),
        ..Flops::default()
    }
}

/// The reference's `infer` on one pair, without task heads: what Hugging Face's
/// `BridgeTowerModel` computes for BridgeTower.
pub fn inference(cfg: &ModelConfig, text_len: i64) -> Flops {
    let (kt, kv) = kept(cfg);
    encode_text(cfg, text_len, kt)
        .add(encode_image(cfg, kv))
        .add(fuse(cfg, text_len))
}

fn head_only(heads: u64) -> Flops {
    Flops {
        heads,
        ..Flops::default()
    }
}

/// A task classifier over `input` features: one Linear, or Linear → LN → GELU → Linear.
fn classifier(cfg: &ModelConfig, input: i64, classes: i64) -> u64 {
    let h = cfg.hidden_size;
    let (hidden, layers) = if cfg.manager_type == ManagerType::Meter {
        (2 * h, 2)
    } else {
        (2 * h * cfg.head_hidden_scale, cfg.task_head_layers)
    };
    if layers == 1 {
        linear(1, input, classes)
    } else {
        linear(1, input, hidden) + linear(1, hidden, classes)
    }
}

/// ITC's heads on the two top CLS tokens and the two `[B, B]` similarity products, per sample.
fn itc(cfg: &ModelConfig, batch: i64) -> u64 {
    let c = cfg.contrastive_hidden_size;
    linear(1, cfg.text_width, c) + linear(1, cfg.vit_width, c) + 2 * linear(1, c, batch)
}

/// Forward FLOPs per sample of one training micro-batch with these objectives (the
/// reference's `loss_names`, as `compute_task` runs them): every pass each objective makes.
pub fn objectives_forward(cfg: &ModelConfig, objectives: &[String], shapes: Shapes) -> Flops {
    let lt = shapes.text_len;
    let (kt, kv) = kept(cfg);
    let text = encode_text(cfg, lt, kt);
    let image = encode_image(cfg, kv);
    let pair = fuse(cfg, lt);
    let forward = text.add(image).add(pair);
    let h = cfg.hidden_size;
    let itm_head = linear(1, 2 * h, 2);
    let mut total = Flops::default();
    for name in objectives {
        let f = match name.as_str() {
            "mlm" => forward.add(head_only(linear(lt, h, h) + linear(lt, h, cfg.vocab_size))),
            "itm" => forward.add(head_only(itm_head)),
            "itc" => text.add(image).add(head_only(itc(cfg, shapes.batch))),
            "itm_itc" | "irtr_itm_itc" => {
                // One encoding, three fused pairs (positive, negative image, negative text).
                let mut f = text
                    .add(image)
                    .add(head_only(itc(cfg, shapes.batch)))
                    .add(pair.add(head_only(itm_head)).times(3));
                if name == "irtr_itm_itc" && cfg.heads.irtr_rank {
                    let k = u(shapes.false_texts + 1);
                    f = f
                        .add(text.times(k))
                        .add(image)
                        .add(pair.add(head_only(linear(1, 2 * h, 1))).times(k));
                }
                f
            }
            "vqa" => forward.add(head_only(classifier(cfg, 2 * h, cfg.vqav2_label_size))),
            "nlvr2" => forward.times(2).add(head_only(classifier(cfg, 4 * h, 2))),
            "snli" => forward.add(head_only(classifier(cfg, 2 * h, 3))),
            _ => Flops::default(),
        };
        total = total.add(f);
    }
    total
}

/// Training FLOPs (forward + backward) per sample of a micro-batch with these objectives.
pub fn training_per_sample(cfg: &ModelConfig, objectives: &[String], shapes: Shapes) -> u64 {
    objectives_forward(cfg, objectives, shapes).training()
}

impl Shapes {
    /// The shapes of a batch, read on the host (no device synchronisation).
    pub fn of(batch: &crate::model::objectives::Batch) -> Self {
        let ids = batch.text_ids.size();
        Self {
            text_len: ids.get(1).copied().unwrap_or(0),
            batch: ids.first().copied().unwrap_or(0),
            false_texts: batch
                .false_text_ids
                .as_ref()
                .and_then(|f| f.size().get(1).copied())
                .unwrap_or(0),
        }
    }
}

#[cfg(test)]
mod tests;
