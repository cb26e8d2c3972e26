//! BERT-style attention and feed-forward blocks (post-LN), shared by RoBERTa and the
//! cross-modal layers: `attention.self.{query,key,value}`, `attention.output.{dense,LayerNorm}`,
//! `intermediate.dense`, `output.{dense,LayerNorm}`.

use tch::{nn, Tensor};

use super::layers::{multi_head_attention, Activation, Ctx, LayerNorm, Linear};

/// `BertAttention`: multi-head attention, dense, dropout, residual, LayerNorm.
#[derive(Debug)]
pub struct BertAttention {
    query: Linear,
    key: Linear,
    value: Linear,
    dense: Linear,
    layer_norm: LayerNorm,
    heads: i64,
    dropout: f64,
    /// On the attention probabilities (`attention_probs_dropout_prob`); `dropout` by default.
    attention_dropout: f64,
}

impl BertAttention {
    pub fn new(p: nn::Path, hidden: i64, heads: i64, eps: f64, dropout: f64) -> Self {
        let s = &p / "self";
        let o = &p / "output";
        Self {
            query: Linear::new(&s / "query", hidden, hidden),
            key: Linear::new(&s / "key", hidden, hidden),
            value: Linear::new(&s / "value", hidden, hidden),
            dense: Linear::new(&o / "dense", hidden, hidden),
            layer_norm: LayerNorm::new(&o / "LayerNorm", hidden, eps),
            heads,
            dropout,
            attention_dropout: dropout,
        }
    }

    /// Another dropout on the attention probabilities than on the output.
    pub fn with_attention_dropout(mut self, p: f64) -> Self {
        self.attention_dropout = p;
        self
    }

    /// Attends from `x` to `kv` (self-attention when `kv` is `x`), `mask` additive on the keys.
    pub fn forward(&self, x: &Tensor, kv: &Tensor, mask: Option<&Tensor>, ctx: Ctx) -> Tensor {
        let q = self.query.forward(x, ctx);
        let k = self.key.forward(kv, ctx);
        let v = self.value.forward(kv, ctx);
        let a = multi_head_attention(&q, &k, &v, self.heads, mask, self.attention_dropout, ctx);
        let h = ctx.dropout(&self.dense.forward(&a, ctx), self.dropout);
        self.layer_norm.forward(&(h + x), ctx)
    }
}

/// `BertIntermediate` + `BertOutput`: dense, activation (erf GELU unless the config says
/// otherwise), dense, dropout, residual, LayerNorm.
#[derive(Debug)]
pub struct BertFeedForward {
    intermediate: Linear,
    output: Linear,
    layer_norm: LayerNorm,
    dropout: f64,
    act: Activation,
}

impl BertFeedForward {
    /// Creates `intermediate.dense` and `output.{dense,LayerNorm}` under `p` (the layer path).
    pub fn new(p: &nn::Path, hidden: i64, inner: i64, eps: f64, dropout: f64) -> Self {
        Self {
            intermediate: Linear::new(p / "intermediate" / "dense", hidden, inner),
            output: Linear::new(p / "output" / "dense", inner, hidden),
            layer_norm: LayerNorm::new(p / "output" / "LayerNorm", hidden, eps),
            dropout,
            act: Activation::Gelu,
        }
    }

    /// Another activation than erf GELU (`hidden_act`).
    pub fn with_activation(mut self, act: Activation) -> Self {
        self.act = act;
        self
    }

    pub fn forward(&self, x: &Tensor, ctx: Ctx) -> Tensor {
        let h = self.act.apply(&self.intermediate.forward(x, ctx));
        let h = ctx.dropout(&self.output.forward(&h, ctx), self.dropout);
        self.layer_norm.forward(&(h + x), ctx)
    }
}
