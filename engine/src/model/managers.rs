//! ManagerTower's managers (`heads.SAUE`, `heads.AAUE`) and the paper's SAE.
//!
//! Every manager LayerNorms each expert with its own affine LN (eps 1e-5). Normalisation is the
//! same for all managers of a modality, only the affine differs, so the tower normalises the
//! expert stack once and each manager applies `γ_i`, `β_i`:
//! `Σ_i w_i ⊙ (γ_i ⊙ n_i + β_i) = Σ_i (w_i γ_i) ⊙ n_i + Σ_i w_i β_i` — the reference sum, without
//! a per-manager copy of the stack.

use experiments::{ManagerType, ManagerWeightType};
use tch::{nn, Kind, Tensor};

use super::layers::{param, Ctx, LayerNorm, Linear, LN_EPS};
use super::ModelConfig;

/// A manager's eval-time weights for one batch (Fig. 6 of the paper).
#[derive(Debug, Clone, PartialEq)]
pub struct LayerWeights {
    /// Softmaxed expert weights, averaged over channels and valid tokens; lowest expert first.
    pub experts: Vec<f64>,
    /// Raw (un-softmaxed) weights on previous cross-modal outputs, averaged over channels:
    /// empty for layer 0, one for SAUE/AAUE, one per previous layer (oldest first) for SAE.
    pub cross: Vec<f64>,
    /// How many tokens the average covers (to merge batches into a dataset mean).
    pub tokens: f64,
}

/// Eval-time weights of every manager, per modality, lowest cross-modal layer first.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct ManagerWeights {
    pub text: Vec<LayerWeights>,
    pub image: Vec<LayerWeights>,
}

impl ManagerWeights {
    /// Folds another batch in: token-weighted means.
    pub fn merge(&mut self, other: &ManagerWeights) {
        for (mine, theirs) in [
            (&mut self.text, &other.text),
            (&mut self.image, &other.image),
        ] {
            if mine.is_empty() {
                mine.clone_from(theirs);
                continue;
            }
            for (a, b) in mine.iter_mut().zip(theirs) {
                let total = a.tokens + b.tokens;
                if total <= 0.0 {
                    continue;
                }
                let (wa, wb) = (a.tokens / total, b.tokens / total);
                for (x, y) in a.experts.iter_mut().zip(&b.experts) {
                    *x = *x * wa + *y * wb;
                }
                for (x, y) in a.cross.iter_mut().zip(&b.cross) {
                    *x = *x * wa + *y * wb;
                }
                a.tokens = total;
            }
        }
    }

    /// `[layers × experts]` matrices (text, image).
    pub fn expert_matrices(&self) -> (Vec<Vec<f64>>, Vec<Vec<f64>>) {
        let m = |v: &Vec<LayerWeights>| v.iter().map(|l| l.experts.clone()).collect();
        (m(&self.text), m(&self.image))
    }
}

/// Weights recorded during one manager call, still on the device.
pub(crate) struct Recorded {
    /// `[N]` mean softmaxed expert weights.
    pub experts: Tensor,
    /// `[P]` mean raw cross weights.
    pub cross: Option<Tensor>,
}

/// What a manager reads at cross-modal layer ℓ.
pub(crate) struct ManagerInput<'a> {
    /// `[B, N, L, D]` experts after LayerNorm without affine (fp32).
    pub normed: &'a Tensor,
    /// Previous cross-modal outputs of this modality, oldest first (`[B, L, D]` each).
    pub previous: &'a [Tensor],
    /// The other modality's previous cross-modal output (AAUE's extra query).
    pub other: Option<&'a Tensor>,
    /// `[B, L]` 1/0 valid-token mask for the recorded averages (`None` = all valid).
    pub mask: Option<&'a Tensor>,
    pub record: bool,
}

/// Weighted sum of the affine-LN'd experts: `Σ_i w_i ⊙ (γ_i ⊙ n_i + β_i)`.
/// `w` is `[1|B, N, 1|L, 1|D]`.
fn mix_experts(w: &Tensor, normed: &Tensor, lns: &[LayerNorm]) -> Tensor {
    let n = normed.size()[1];
    let gamma = Tensor::stack(
        &lns[..n as usize]
            .iter()
            .map(|l| &l.weight)
            .collect::<Vec<_>>(),
        0,
    );
    let beta = Tensor::stack(
        &lns[..n as usize]
            .iter()
            .map(|l| &l.bias)
            .collect::<Vec<_>>(),
        0,
    );
    let d = gamma.size()[1];
    let gamma = gamma.view([1, n, 1, d]);
    let beta = beta.view([1, n, 1, d]);
    let scaled = (normed * (w * gamma)).sum_dim_intlist(1, false, Kind::Float);
    scaled + (w * beta).sum_dim_intlist(1, false, Kind::Float)
}

/// Mean of `w` (`[1|B, N, 1|L, 1|D]`) per expert over channels and valid tokens.
fn mean_expert_weights(w: &Tensor, mask: Option<&Tensor>) -> Tensor {
    let w = w.mean_dim(3, true, Kind::Float); // [b, N, l, 1]
    let (b, n, l) = (w.size()[0], w.size()[1], w.size()[2]);
    match mask {
        Some(m) if l > 1 => {
            let m = m.to_kind(Kind::Float).view([b, 1, l, 1]);
            (&w * &m).sum_dim_intlist([0, 2, 3].as_slice(), false, Kind::Float)
                / m.sum(Kind::Float).clamp_min(1.0)
        }
        _ => w
            .view([b, n, l])
            .mean_dim([0, 2].as_slice(), false, Kind::Float),
    }
}

/// Static manager: SAUE (`num_previous` = 0 at layer 0, else 1) or SAE (all previous layers).
///
/// **SAE** is not in the released code; this is our reading of the paper (Fig. 8, "SAE"):
/// *static* learned weights over the uni-modal experts **and every previous cross-modal layer**,
/// i.e. the reference `SAUE` with its `num_previous` set to the layer index ℓ instead of 1.
/// At cross-modal layer ℓ the manager has `N + ℓ` slots, each with its own LayerNorm; the expert
/// scores start at `1/N`, go through the temperature softmax (with the same training noise as
/// SAUE), and the `ℓ` cross-modal scores start at `1/ℓ` and stay raw (not softmaxed), exactly as
/// SAUE treats its single cross slot (whose init `1/num_previous` in the reference already
/// anticipates several previous layers). Layer 0 has no previous output and equals SAUE's.
/// Keys are SAUE's: `layer_scores` `[1, N+ℓ, 1, D|1]`, `LayerNorm.{0..N+ℓ-1}`,
/// `softmax_temperature`, `softmax_temperature_cross`.
#[derive(Debug)]
pub struct StaticManager {
    layer_scores: Tensor,
    layer_norms: Vec<LayerNorm>,
    softmax_temperature: Tensor,
    routed: i64,
    previous: i64,
}

impl StaticManager {
    /// `p` is the `manager_layer` path.
    fn new(p: nn::Path, cfg: &ModelConfig, routed: i64, previous: i64) -> Self {
        let d = cfg.hidden_size;
        let slots = routed + previous;
        let mut init = vec![1.0 / routed as f32; slots as usize];
        for v in init.iter_mut().skip(routed as usize) {
            *v = 1.0 / previous as f32;
        }
        let width = match cfg.manager_weight_type {
            ManagerWeightType::Vector => d,
            ManagerWeightType::Scalar => 1,
        };
        let scores = Tensor::from_slice(&init)
            .view([1, slots, 1, 1])
            .repeat([1, 1, 1, width])
            .to_device(p.device());
        let layer_scores = param(&p, "layer_scores", &scores, cfg.manager_learnable);
        let layer_norms = (0..slots)
            .map(|i| LayerNorm::new(&p / "LayerNorm" / i, d, LN_EPS))
            .collect();
        let (softmax_temperature, _) = temperatures(&p, cfg);
        Self {
            layer_scores,
            layer_norms,
            softmax_temperature,
            routed,
            previous,
        }
    }

    fn forward(&self, input: &ManagerInput, ctx: Ctx) -> (Tensor, Option<Recorded>) {
        let n = self.routed;
        let mut scores = self.layer_scores.narrow(1, 0, n);
        if ctx.train {
            let shape = input.normed.size();
            scores = scores.expand(&shape, false) + input.normed.randn_like() * (1.0 / n as f64);
        }
        let w = (scores / &self.softmax_temperature).softmax(1, Kind::Float);
        let mut out = mix_experts(&w, input.normed, &self.layer_norms);
        let used = &input.previous[input.previous.len() - self.previous as usize..];
        for (j, prev) in used.iter().enumerate() {
            let slot = n + j as i64;
            let c = self.layer_norms[slot as usize].forward(prev, ctx);
            let s = self.layer_scores.select(1, slot); // [1, 1, D|1]
            out += s * c;
        }
        let rec = input.record.then(|| Recorded {
            experts: mean_expert_weights(&w, input.mask),
            cross: (self.previous > 0).then(|| {
                self.layer_scores.narrow(1, n, self.previous).mean_dim(
                    [0, 2, 3].as_slice(),
                    false,
                    Kind::Float,
                )
            }),
        });
        (out, rec)
    }
}

/// Adaptive manager (AAUE, layers ≥ 1): expert weights generated per token from a cross-modal
/// fused query.
#[derive(Debug)]
pub struct AdaptiveManager {
    layer_scores_cross: Tensor,
    linear_controller: Linear,
    q_proj: Linear,
    k_proj: Linear,
    layer_norms: Vec<LayerNorm>,
    extra_query_layer_norm: LayerNorm,
    softmax_temperature: Tensor,
    routed: i64,
}

impl AdaptiveManager {
    fn new(p: nn::Path, cfg: &ModelConfig, routed: i64) -> Self {
        let d = cfg.hidden_size;
        let width = match cfg.manager_weight_type {
            ManagerWeightType::Vector => d,
            ManagerWeightType::Scalar => 1,
        };
        let cross = Tensor::ones([1, 1, 1, width], (Kind::Float, p.device()));
        let fa = &p / "fusion_attention";
        let (softmax_temperature, _) = temperatures(&p, cfg);
        Self {
            layer_scores_cross: param(&p, "layer_scores_cross", &cross, cfg.manager_learnable),
            linear_controller: Linear::new(&p / "linear_controller", 2 * d, routed),
            q_proj: Linear::new(&fa / "q_proj", d, d),
            k_proj: Linear::new(&fa / "k_proj", d, d),
            layer_norms: (0..=routed)
                .map(|i| LayerNorm::new(&p / "LayerNorm" / i, d, LN_EPS))
                .collect(),
            extra_query_layer_norm: LayerNorm::new(&p / "extra_query_LayerNorm", d, LN_EPS),
            softmax_temperature,
            routed,
        }
    }

    fn forward(&self, input: &ManagerInput, ctx: Ctx) -> (Tensor, Option<Recorded>) {
        let n = self.routed;
        let prev = input
            .previous
            .last()
            .expect("AAUE runs from cross-modal layer 1 on");
        let other = input.other.expect("AAUE needs the other modality's output");
        let q = self.layer_norms[n as usize].forward(prev, ctx); // [B, L, D]
        let e = self.extra_query_layer_norm.forward(other, ctx); // [B, L', D]
                                                                 // LayerAttention: one head, scale 1/sqrt(D), no value projection, no mask on `other`.
        let qh = self.q_proj.forward(&q, ctx).unsqueeze(1);
        let kh = self.k_proj.forward(&e, ctx).unsqueeze(1);
        let vh = ctx.mm(&e).unsqueeze(1);
        let attended = Tensor::scaled_dot_product_attention(
            &qh,
            &kh.to_kind(qh.kind()),
            &vh.to_kind(qh.kind()),
            None::<Tensor>,
            0.0,
            false,
            None,
            false,
        )
        .squeeze_dim(1);
        let fused = Tensor::cat(&[ctx.full(&attended), q.shallow_clone()], -1);
        let generated = ctx
            .full(&self.linear_controller.forward(&fused, ctx))
            .transpose(1, 2)
            .unsqueeze(-1); // [B, N, L, 1]
        let scores = if ctx.train {
            let shape = input.normed.size();
            generated.expand(&shape, false) + input.normed.randn_like() * (1.0 / n as f64)
        } else {
            generated
        };
        let w = (scores / &self.softmax_temperature).softmax(1, Kind::Float);
        let out = mix_experts(&w, input.normed, &self.layer_norms)
            + self.layer_scores_cross.squeeze_dim(1) * &q;
        let rec = input.record.then(|| Recorded {
            experts: mean_expert_weights(&w, input.mask),
            cross: Some(
                self.layer_scores_cross
                    .mean_dim([0, 2, 3].as_slice(), false, Kind::Float),
            ),
        });
        (out, rec)
    }
}

/// `softmax_temperature` and the never-used `softmax_temperature_cross`, both `[1]`.
fn temperatures(p: &nn::Path, cfg: &ModelConfig) -> (Tensor, Tensor) {
    let t = Tensor::from_slice(&[cfg.manager_softmax_temperature as f32]).to_device(p.device());
    let learn = cfg.manager_softmax_temperature_learnable;
    (
        param(p, "softmax_temperature", &t, learn),
        param(p, "softmax_temperature_cross", &t, learn),
    )
}

/// `heads.Manager`: the manager of one cross-modal layer.
#[derive(Debug)]
pub enum Manager {
    Static(StaticManager),
    Adaptive(AdaptiveManager),
}

impl Manager {
    /// `p` is the `cross_modal_{text,image}_manager_tower.{layer}` path.
    pub fn new(p: nn::Path, cfg: &ModelConfig, routed: i64, layer: i64) -> Self {
        let p = &p / "manager_layer";
        match (cfg.manager_type, layer) {
            (ManagerType::Aaue, 0) | (ManagerType::Saue, 0) => {
                Self::Static(StaticManager::new(p, cfg, routed, 0))
            }
            (ManagerType::Saue, _) => Self::Static(StaticManager::new(p, cfg, routed, 1)),
            (ManagerType::Aaue, _) => Self::Adaptive(AdaptiveManager::new(p, cfg, routed)),
            (ManagerType::Sae, l) => Self::Static(StaticManager::new(p, cfg, routed, l)),
            (ManagerType::Bt | ManagerType::Meter, _) => {
                unreachable!("BT and METER have no managers")
            }
        }
    }

    pub(crate) fn forward(&self, input: &ManagerInput, ctx: Ctx) -> (Tensor, Option<Recorded>) {
        match self {
            Self::Static(m) => m.forward(input, ctx),
            Self::Adaptive(m) => m.forward(input, ctx),
        }
    }
}

/// The expert stack of one modality after LayerNorm without affine, shared by every manager.
pub(crate) fn normalize_experts(experts: &Tensor, ctx: Ctx) -> Tensor {
    let d = experts.size()[3];
    ctx.full(experts)
        .layer_norm([d], None::<Tensor>, None::<Tensor>, LN_EPS, true)
}

#[cfg(test)]
mod tests;
