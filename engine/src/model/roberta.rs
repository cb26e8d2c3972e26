//! The RoBERTa text expert (`text_transformer.*`): embeddings and post-LN layers.

use tch::{nn, Kind, Tensor};

use super::bert::{BertAttention, BertFeedForward};
use super::layers::{Ctx, Embedding, LayerNorm, Linear};
use super::ModelConfig;

/// RoBERTa's `padding_idx` (`<pad>` = 1): positions start at 2, pads get 1.
pub const PADDING_IDX: i64 = 1;

/// `RobertaEmbeddings`: word + position + token type (one row), LayerNorm, dropout.
#[derive(Debug)]
struct Embeddings {
    word: Embedding,
    position: Embedding,
    token_type: Embedding,
    layer_norm: LayerNorm,
    dropout: f64,
}

impl Embeddings {
    fn new(p: nn::Path, cfg: &ModelConfig) -> Self {
        let d = cfg.text_width;
        // `padding_idx = 1` on both tables, as HF's RobertaEmbeddings: zero at init, no gradient.
        let word = Embedding::with_padding(&p / "word_embeddings", cfg.vocab_size, d, PADDING_IDX);
        let position = Embedding::with_padding(
            &p / "position_embeddings",
            cfg.text_max_positions,
            d,
            PADDING_IDX,
        );
        Self {
            word,
            position,
            token_type: Embedding::new(&p / "token_type_embeddings", cfg.text_type_vocab, d),
            layer_norm: LayerNorm::new(&p / "LayerNorm", d, cfg.text_ln_eps),
            dropout: cfg.text_dropout,
        }
    }

    fn forward(&self, ids: &Tensor, ctx: Ctx) -> Tensor {
        let positions = position_ids(ids);
        let e = self.word.forward(ids)
            + self.position.forward(&positions)
            + self.token_type.weight.get(0);
        ctx.dropout(&self.layer_norm.forward(&e, ctx), self.dropout)
    }
}

/// `create_position_ids_from_input_ids`: cumulative count of non-pad tokens, offset by the pad id.
pub fn position_ids(ids: &Tensor) -> Tensor {
    let mask = ids.ne(PADDING_IDX).to_kind(Kind::Int64);
    mask.cumsum(1, Kind::Int64) * &mask + PADDING_IDX
}

/// One `RobertaLayer`.
#[derive(Debug)]
struct Layer {
    attention: BertAttention,
    ffn: BertFeedForward,
}

/// `text_transformer`: embeddings, encoder layers, and the (unused) pooler.
#[derive(Debug)]
pub struct Roberta {
    embeddings: Embeddings,
    layers: Vec<Layer>,
}

impl Roberta {
    /// Builds under `p` = the `text_transformer` path.
    pub fn new(p: nn::Path, cfg: &ModelConfig) -> Self {
        let d = cfg.text_width;
        let enc = &p / "encoder" / "layer";
        let layers = (0..cfg.text_layers)
            .map(|i| {
                let lp = &enc / i;
                Layer {
                    attention: BertAttention::new(
                        &lp / "attention",
                        d,
                        cfg.text_heads,
                        cfg.text_ln_eps,
                        cfg.text_dropout,
                    )
                    .with_attention_dropout(cfg.text_attention_dropout),
                    ffn: BertFeedForward::new(
                        &lp,
                        d,
                        cfg.text_intermediate,
                        cfg.text_ln_eps,
                        cfg.text_dropout,
                    )
                    .with_activation(cfg.text_act),
                }
            })
            .collect();
        // RobertaModel's pooler: in the state dict, never used by the towers.
        let _ = Linear::new(&p / "pooler" / "dense", d, d);
        Self {
            embeddings: Embeddings::new(&p / "embeddings", cfg),
            layers,
        }
    }

    pub fn num_layers(&self) -> i64 {
        self.layers.len() as i64
    }

    /// Runs every layer and returns the top `keep` layer outputs, lowest first.
    /// `ext_mask` is the additive `[B, 1, 1, L]` mask.
    pub fn forward(&self, ids: &Tensor, ext_mask: &Tensor, keep: i64, ctx: Ctx) -> Vec<Tensor> {
        let split = self.num_layers() - keep;
        let mut x = self.embeddings.forward(ids, ctx);
        let mut out = Vec::with_capacity(keep as usize);
        for (i, layer) in self.layers.iter().enumerate() {
            let a = layer.attention.forward(&x, &x, Some(ext_mask), ctx);
            x = layer.ffn.forward(&a, ctx);
            if i as i64 >= split {
                out.push(x.shallow_clone());
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn position_ids_follow_roberta() {
        let ids = Tensor::from_slice(&[0i64, 31, 7, 2, 1, 1]).view([1, 6]);
        let pos = position_ids(&ids);
        assert_eq!(
            Vec::<i64>::try_from(pos.view([-1])).unwrap(),
            vec![2, 3, 4, 5, 1, 1]
        );
    }
}
