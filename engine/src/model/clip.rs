//! The CLIP ViT vision expert (`vit_model.*`), batch-first.
//!
//! Pre-LN residual blocks with QuickGELU and a fused `in_proj` attention, as OpenAI CLIP; every
//! tapped layer goes through the one shared `ln_post` (the released `vit_layernorm_shared=True`),
//! or, on BridgeTower's uni-modal path with `vit_layernorm_shared = false`, block `i` through
//! `ln_separate.{i}` ([`ClipVisual::forward_separate`]).

use tch::{nn, Kind, Tensor};

use super::layers::{multi_head_attention, normal, Activation, Ctx, LayerNorm, Linear, LN_EPS};
use super::ModelConfig;
use crate::{InputError, Result};

/// One CLIP residual block (`transformer.resblocks.{i}`).
#[derive(Debug)]
struct ResidualBlock {
    in_proj_weight: Tensor,
    in_proj_bias: Tensor,
    out_proj: Linear,
    ln_1: LayerNorm,
    c_fc: Linear,
    c_proj: Linear,
    ln_2: LayerNorm,
    heads: i64,
    act: Activation,
}

impl ResidualBlock {
    fn new(p: nn::Path, cfg: &ModelConfig) -> Self {
        let (width, heads, layers) = (cfg.vit_width, cfg.vit_heads, cfg.vit_layers);
        let (inner, eps) = (cfg.vit_intermediate, cfg.vit_ln_eps);
        // CLIP.initialize_parameters
        let attn_std = (width as f64).powf(-0.5);
        let proj_std = attn_std * ((2 * layers) as f64).powf(-0.5);
        let fc_std = ((2 * width) as f64).powf(-0.5);
        let attn = &p / "attn";
        let mlp = &p / "mlp";
        Self {
            in_proj_weight: attn.var("in_proj_weight", &[3 * width, width], normal(attn_std)),
            in_proj_bias: attn.var("in_proj_bias", &[3 * width], nn::Init::Const(0.0)),
            out_proj: Linear::with_init(&attn / "out_proj", width, width, true, normal(proj_std)),
            ln_1: LayerNorm::new(&p / "ln_1", width, eps),
            c_fc: Linear::with_init(&mlp / "c_fc", width, inner, true, normal(fc_std)),
            c_proj: Linear::with_init(&mlp / "c_proj", inner, width, true, normal(proj_std)),
            ln_2: LayerNorm::new(&p / "ln_2", width, eps),
            heads,
            act: cfg.vit_act,
        }
    }

    fn forward(&self, x: &Tensor, ctx: Ctx) -> Tensor {
        let h = ctx.mm(&self.ln_1.forward(x, ctx));
        let qkv = h.linear(
            &ctx.mm(&self.in_proj_weight),
            Some(&ctx.mm(&self.in_proj_bias)),
        );
        let qkv = qkv.chunk(3, -1);
        let a = multi_head_attention(&qkv[0], &qkv[1], &qkv[2], self.heads, None, 0.0, ctx);
        let x = x + self.out_proj.forward(&a, ctx);
        let m = self.c_fc.forward(&self.ln_2.forward(&x, ctx), ctx);
        &x + self.c_proj.forward(&self.act.apply(&m), ctx)
    }
}

/// `vit_model`: CLIP's visual tower plus the unused text-side tensors CLIP's state dict keeps.
#[derive(Debug)]
pub struct ClipVisual {
    conv1: Tensor,
    class_embedding: Tensor,
    positional_embedding: Tensor,
    ln_pre: LayerNorm,
    blocks: Vec<ResidualBlock>,
    ln_post: LayerNorm,
    /// `ln_separate.*` (`vit_layernorm_shared = false`): one per block before `vit_remove_last`.
    ln_separate: Vec<LayerNorm>,
    patch_size: i64,
}

impl ClipVisual {
    /// Builds under `p` = the `vit_model` path.
    pub fn new(p: nn::Path, cfg: &ModelConfig) -> Self {
        let w = cfg.vit_width;
        let ps = cfg.patch_size;
        let v = &p / "visual";
        let scale = (w as f64).powf(-0.5);
        let fan_in = (3 * ps * ps) as f64;
        let bound = 1.0 / fan_in.sqrt();
        let conv1 = (&v / "conv1").var(
            "weight",
            &[w, 3, ps, ps],
            nn::Init::Uniform {
                lo: -bound,
                up: bound,
            },
        );
        let class_embedding = v.var("class_embedding", &[w], normal(scale));
        let positional_embedding = v.var(
            "positional_embedding",
            &[cfg.image_tokens(), w],
            normal(scale),
        );
        let ln_pre = LayerNorm::new(&v / "ln_pre", w, cfg.vit_ln_eps);
        let rb = &v / "transformer" / "resblocks";
        let blocks = (0..cfg.vit_layers)
            .map(|i| ResidualBlock::new(&rb / i, cfg))
            .collect();
        let ln_post = LayerNorm::new(&v / "ln_post", w, cfg.vit_ln_eps);
        // One per block *before* `vit_remove_last` (the reference builds `layers` of them and
        // zips them with the blocks); `forward_post` (MT, BT's `infer`) never applies them.
        let sep = &v / "ln_separate";
        let ln_separate = (0..cfg.vit_ln_separate)
            .map(|i| LayerNorm::new(&sep / i, w, cfg.vit_ln_eps))
            .collect();
        // CLIP's text tower is not built, but these two stay in its state dict.
        let (ctx_len, text_w) = cfg.clip_text_context;
        let _ = p.var("positional_embedding", &[ctx_len, text_w], normal(0.01));
        let _ = LayerNorm::new(&p / "ln_final", text_w, LN_EPS);
        Self {
            conv1,
            class_embedding,
            positional_embedding,
            ln_pre,
            blocks,
            ln_post,
            ln_separate,
            patch_size: ps,
        }
    }

    pub fn num_layers(&self) -> i64 {
        self.blocks.len() as i64
    }

    /// Patch embedding, CLS, positions and `ln_pre`: `[B, 3, H, W]` → `[B, 1 + g², D]`.
    fn embed(&self, image: &Tensor, ctx: Ctx) -> Tensor {
        let x = ctx.mm(image).conv2d(
            &ctx.mm(&self.conv1),
            None::<Tensor>,
            [self.patch_size, self.patch_size],
            [0, 0],
            [1, 1],
            1,
        );
        let (b, d) = (x.size()[0], x.size()[1]);
        let x = x.flatten(2, -1).transpose(1, 2);
        let cls = self
            .class_embedding
            .to_kind(x.kind())
            .view([1, 1, d])
            .expand([b, 1, d], false);
        let x = Tensor::cat(&[cls, x], 1);
        let pos = &self.positional_embedding;
        if pos.size()[0] != x.size()[1] {
            panic!(
                "image of {} tokens does not match the {} position embeddings; \
                 resize them with resize_position_embedding",
                x.size()[1],
                pos.size()[0]
            );
        }
        let pos = pos.to_kind(x.kind());
        self.ln_pre.forward(&(x + pos), ctx)
    }

    /// Runs every block and returns `ln_post` of the top `keep` block outputs, lowest first.
    pub fn forward(&self, image: &Tensor, keep: i64, ctx: Ctx) -> Vec<Tensor> {
        self.forward_with(image, keep, false, ctx)
    }

    /// As [`forward`](Self::forward), but block `i` goes through `ln_separate.{i}` (the
    /// reference's `VisualTransformer.forward` in BT mode with `vit_layernorm_shared = false`);
    /// `ln_post` when the model has no `ln_separate`.
    pub fn forward_separate(&self, image: &Tensor, keep: i64, ctx: Ctx) -> Vec<Tensor> {
        self.forward_with(image, keep, !self.ln_separate.is_empty(), ctx)
    }

    fn forward_with(&self, image: &Tensor, keep: i64, separate: bool, ctx: Ctx) -> Vec<Tensor> {
        let n = self.num_layers();
        let split = n - keep;
        let mut x = self.embed(image, ctx);
        let mut out = Vec::with_capacity(keep as usize);
        for (i, block) in self.blocks.iter().enumerate() {
            x = block.forward(&x, ctx);
            if i as i64 >= split {
                let ln = if separate {
                    &self.ln_separate[i]
                } else {
                    &self.ln_post
                };
                out.push(ln.forward(&x, ctx));
            }
        }
        out
    }
}

/// Bicubic resize of CLIP position embeddings (`[1 + g², D]` or `[1, 1 + g², D]`) to a
/// `new_grid × new_grid` patch grid, keeping the CLS row: the reference `adapt_position_encoding`.
///
/// Panics on a non-square table; [`f_resize_position_embedding`] returns the error instead.
pub fn resize_position_embedding(pos: &Tensor, new_grid: i64) -> Tensor {
    match f_resize_position_embedding(pos, new_grid) {
        Ok(t) => t,
        Err(e) => panic!("{e}"),
    }
}

/// Fallible [`resize_position_embedding`].
pub fn f_resize_position_embedding(pos: &Tensor, new_grid: i64) -> Result<Tensor> {
    let three_d = pos.dim() == 3;
    let table = if three_d {
        if pos.size()[0] != 1 {
            return Err(InputError::Shape {
                what: "position embedding",
                found: pos.size(),
                expected: "[1, 1 + g², D]".into(),
            }
            .into());
        }
        pos.squeeze_dim(0)
    } else if pos.dim() == 2 {
        pos.shallow_clone()
    } else {
        return Err(InputError::Shape {
            what: "position embedding",
            found: pos.size(),
            expected: "[1 + g², D]".into(),
        }
        .into());
    };
    let (rows, d) = (table.size()[0], table.size()[1]);
    let grid = ((rows - 1) as f64).sqrt().round() as i64;
    if grid * grid + 1 != rows || new_grid <= 0 {
        return Err(InputError::Shape {
            what: "position embedding",
            found: table.size(),
            expected: format!("1 + a square grid of rows, resized to a grid of {new_grid} > 0"),
        }
        .into());
    }
    let kind = table.kind();
    let cls = table.narrow(0, 0, 1);
    let resized = table
        .narrow(0, 1, rows - 1)
        .to_kind(Kind::Float)
        .reshape([grid, grid, d])
        .permute([2, 0, 1])
        .unsqueeze(0)
        .f_upsample_bicubic2d([new_grid, new_grid], false, None, None)?
        .squeeze_dim(0)
        .permute([1, 2, 0])
        .reshape([new_grid * new_grid, d])
        .to_kind(kind);
    let out = Tensor::cat(&[cls, resized], 0);
    Ok(if three_d { out.unsqueeze(0) } else { out })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resize_keeps_cls_and_identity_grid() {
        let pos = Tensor::randn([1 + 16, 8], (Kind::Float, tch::Device::Cpu));
        let same = resize_position_embedding(&pos, 4);
        assert!(same.allclose(&pos, 1e-5, 1e-5, false));
        let big = resize_position_embedding(&pos, 6);
        assert_eq!(big.size(), vec![37, 8]);
        assert!(big.get(0).equal(&pos.get(0)));
        let batched = resize_position_embedding(&pos.unsqueeze(0), 6);
        assert_eq!(batched.size(), vec![1, 37, 8]);
        assert!(f_resize_position_embedding(&pos.narrow(0, 0, 15), 4).is_err());
    }

    #[test]
    fn resize_of_a_constant_grid_stays_constant() {
        let pos = Tensor::ones([1 + 9, 4], (Kind::Float, tch::Device::Cpu)) * 3.0;
        let big = resize_position_embedding(&pos, 5);
        assert!(big.allclose(&(big.ones_like() * 3.0), 1e-5, 1e-5, false));
    }
}
