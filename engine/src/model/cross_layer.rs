//! `BertCrossLayer`: self-attention, cross-attention to the other modality, feed-forward; all
//! post-LN with BertConfig's eps 1e-12 (the reference passes no `layer_norm_eps`).

use tch::{nn, Tensor};

use super::bert::{BertAttention, BertFeedForward};
use super::layers::{Ctx, BERT_LN_EPS};
use super::ModelConfig;

#[derive(Debug)]
pub struct CrossLayer {
    attention: BertAttention,
    crossattention: BertAttention,
    ffn: BertFeedForward,
}

impl CrossLayer {
    pub fn new(p: nn::Path, cfg: &ModelConfig) -> Self {
        let (d, h, drop) = (cfg.hidden_size, cfg.num_heads, cfg.drop_rate);
        Self {
            attention: BertAttention::new(&p / "attention", d, h, BERT_LN_EPS, drop),
            crossattention: BertAttention::new(&p / "crossattention", d, h, BERT_LN_EPS, drop),
            ffn: BertFeedForward::new(&p, d, cfg.cross_intermediate(), BERT_LN_EPS, drop),
        }
    }

    /// `x` attends to itself under `mask`, then to `other` under `other_mask` (additive masks;
    /// `None` = no padding).
    pub fn forward(
        &self,
        x: &Tensor,
        other: &Tensor,
        mask: Option<&Tensor>,
        other_mask: Option<&Tensor>,
        ctx: Ctx,
    ) -> Tensor {
        let a = self.attention.forward(x, x, mask, ctx);
        let c = self.crossattention.forward(&a, other, other_mask, ctx);
        self.ffn.forward(&c, ctx)
    }
}
