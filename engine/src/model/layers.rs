//! Building blocks shared by every tower: linear, layer norm, embedding, multi-head attention.
//!
//! Parameters are created under the caller's `nn::Path`, so the VarStore keys are the reference
//! state-dict keys (`…/weight`, `…/bias`). Mixed precision is explicit rather than libtorch
//! autocast (which tch can only switch to fp16 on CUDA): with `Ctx::amp`, matrix products run in
//! bf16 while layer norms and softmaxes stay in fp32, the autocast policy.

use tch::{nn, Kind, Tensor};

/// Per-call state: training mode (dropout, manager noise) and bf16 compute.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ctx {
    pub train: bool,
    pub amp: bool,
}

impl Ctx {
    pub fn eval() -> Self {
        Self {
            train: false,
            amp: false,
        }
    }

    pub fn train() -> Self {
        Self {
            train: true,
            amp: false,
        }
    }

    /// The tensor in the compute dtype of matrix products.
    pub fn mm(&self, t: &Tensor) -> Tensor {
        if self.amp && t.kind() != Kind::BFloat16 {
            t.to_kind(Kind::BFloat16)
        } else {
            t.shallow_clone()
        }
    }

    /// The tensor in fp32 (normalisations, softmaxes, losses).
    pub fn full(&self, t: &Tensor) -> Tensor {
        if t.kind() != Kind::Float && t.is_floating_point() {
            t.to_kind(Kind::Float)
        } else {
            t.shallow_clone()
        }
    }

    pub fn dropout(&self, t: &Tensor, p: f64) -> Tensor {
        if self.train && p > 0.0 {
            t.dropout(p, true)
        } else {
            t.shallow_clone()
        }
    }
}

/// `objectives.init_weights` for Linear and Embedding weights.
pub const INIT_STD: f64 = 0.02;

pub fn normal(std: f64) -> nn::Init {
    nn::Init::Randn {
        mean: 0.0,
        stdev: std,
    }
}

/// A parameter with an explicit initial value that may be frozen (`requires_grad=False`).
pub fn param(p: &nn::Path, name: &str, value: &Tensor, trainable: bool) -> Tensor {
    if trainable {
        p.var_copy(name, value)
    } else {
        let mut t = p.zeros_no_train(name, &value.size());
        tch::no_grad(|| t.copy_(value));
        t
    }
}

/// `nn.Linear` with the reference key names `weight` ([out, in]) and `bias`.
#[derive(Debug)]
pub struct Linear {
    pub weight: Tensor,
    pub bias: Option<Tensor>,
}

impl Linear {
    /// N(0, 0.02) weights, zero bias.
    pub fn new(p: nn::Path, in_dim: i64, out_dim: i64) -> Self {
        Self::with_init(p, in_dim, out_dim, true, normal(INIT_STD))
    }

    pub fn no_bias(p: nn::Path, in_dim: i64, out_dim: i64) -> Self {
        Self::with_init(p, in_dim, out_dim, false, normal(INIT_STD))
    }

    pub fn with_init(p: nn::Path, in_dim: i64, out_dim: i64, bias: bool, init: nn::Init) -> Self {
        let weight = p.var("weight", &[out_dim, in_dim], init);
        let bias = bias.then(|| p.var("bias", &[out_dim], nn::Init::Const(0.0)));
        Self { weight, bias }
    }

    pub fn forward(&self, x: &Tensor, ctx: Ctx) -> Tensor {
        if ctx.amp {
            let b = self.bias.as_ref().map(|b| ctx.mm(b));
            ctx.mm(x).linear(&ctx.mm(&self.weight), b.as_ref())
        } else {
            x.linear(&self.weight, self.bias.as_ref())
        }
    }
}

/// `nn.LayerNorm` (`weight` 1, `bias` 0), always computed in fp32.
#[derive(Debug)]
pub struct LayerNorm {
    pub weight: Tensor,
    pub bias: Tensor,
    pub eps: f64,
    dim: i64,
}

/// The torch default, used by CLIP, RoBERTa (as configured), managers and task heads.
pub const LN_EPS: f64 = 1e-5;
/// BertConfig's default, used by the cross-modal layers and the MLM head transform.
pub const BERT_LN_EPS: f64 = 1e-12;

impl LayerNorm {
    pub fn new(p: nn::Path, dim: i64, eps: f64) -> Self {
        Self {
            weight: p.var("weight", &[dim], nn::Init::Const(1.0)),
            bias: p.var("bias", &[dim], nn::Init::Const(0.0)),
            eps,
            dim,
        }
    }

    pub fn forward(&self, x: &Tensor, ctx: Ctx) -> Tensor {
        ctx.full(x).layer_norm(
            [self.dim],
            Some(&self.weight),
            Some(&self.bias),
            self.eps,
            true,
        )
    }
}

/// `nn.Embedding` with N(0, 0.02) weights.
#[derive(Debug)]
pub struct Embedding {
    pub weight: Tensor,
    /// Row that receives no gradient (`padding_idx`), or -1.
    padding_idx: i64,
}

impl Embedding {
    pub fn new(p: nn::Path, rows: i64, dim: i64) -> Self {
        Self {
            weight: p.var("weight", &[rows, dim], normal(INIT_STD)),
            padding_idx: -1,
        }
    }

    /// An embedding whose `padding_idx` row starts at zero and is never updated.
    pub fn with_padding(p: nn::Path, rows: i64, dim: i64, padding_idx: i64) -> Self {
        let e = Self {
            padding_idx: if padding_idx < rows { padding_idx } else { -1 },
            ..Self::new(p, rows, dim)
        };
        if e.padding_idx >= 0 {
            tch::no_grad(|| {
                let _ = e.weight.get(e.padding_idx).zero_();
            });
        }
        e
    }

    pub fn forward(&self, ids: &Tensor) -> Tensor {
        Tensor::embedding(&self.weight, ids, self.padding_idx, false, false)
    }
}

/// Exact (erf) GELU.
pub fn gelu(x: &Tensor) -> Tensor {
    x.gelu("none")
}

/// CLIP's `x * sigmoid(1.702 x)`.
pub fn quick_gelu(x: &Tensor) -> Tensor {
    x * (x * 1.702).sigmoid()
}

/// A feed-forward activation, by the `hidden_act` names of transformers' `ACT2FN`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Activation {
    /// `gelu`: exact (erf).
    Gelu,
    /// `quick_gelu`: CLIP's.
    QuickGelu,
    /// `gelu_new` / `gelu_pytorch_tanh`: the tanh approximation.
    GeluTanh,
    Relu,
}

impl Activation {
    /// From `config.json`'s `hidden_act` (see `experiments::experts::ACTIVATIONS`).
    pub fn from_name(name: &str) -> Option<Self> {
        match name {
            "gelu" => Some(Self::Gelu),
            "quick_gelu" => Some(Self::QuickGelu),
            "gelu_new" | "gelu_pytorch_tanh" => Some(Self::GeluTanh),
            "relu" => Some(Self::Relu),
            _ => None,
        }
    }

    pub fn apply(self, x: &Tensor) -> Tensor {
        match self {
            Self::Gelu => gelu(x),
            Self::QuickGelu => quick_gelu(x),
            Self::GeluTanh => x.gelu("tanh"),
            Self::Relu => x.relu(),
        }
    }
}

/// `(1 - mask) * -10000` broadcast to `[B, 1, 1, L]` (transformers 4.17 `get_extended_attention_mask`).
pub fn extended_mask(mask: &Tensor) -> Tensor {
    (mask.to_kind(Kind::Float).ones_like() - mask.to_kind(Kind::Float))
        .unsqueeze(1)
        .unsqueeze(1)
        * -10000.0
}

/// Scaled dot-product attention over `[B, L, H*dh]` projections, returning `[B, Lq, H*dh]`.
/// `mask` is additive, broadcastable to `[B, H, Lq, Lk]`.
pub fn multi_head_attention(
    q: &Tensor,
    k: &Tensor,
    v: &Tensor,
    heads: i64,
    mask: Option<&Tensor>,
    dropout: f64,
    ctx: Ctx,
) -> Tensor {
    let (b, lq, d) = q.size3().expect("attention query is [B, L, D]");
    let lk = k.size()[1];
    let dh = d / heads;
    let split = |t: &Tensor, l: i64| t.view([b, l, heads, dh]).transpose(1, 2);
    let (qh, kh, vh) = (split(q, lq), split(k, lk), split(v, lk));
    let mask = mask.map(|m| m.to_kind(qh.kind()));
    let p = if ctx.train { dropout } else { 0.0 };
    let out = Tensor::scaled_dot_product_attention(&qh, &kh, &vh, mask, p, false, None, false);
    out.transpose(1, 2).reshape([b, lq, d])
}
