//! The whole model: uni-modal experts, projections, the cross-modal encoder with its fusion
//! (ManagerTower managers, BridgeTower link towers or METER), poolers and task heads.
//!
//! Every uni-modal layer runs first and the cross-modal encoder then reads the kept layers. For
//! BridgeTower this is the reference's `infer_fusion` order; its `infer` interleaves the two, which
//! computes the same function since the uni-modal layers never read the cross-modal states.

use std::sync::atomic::{AtomicBool, Ordering};

use experiments::ManagerType;
use tch::{nn, Device, Kind, Tensor};

use super::clip::ClipVisual;
use super::cross_layer::CrossLayer;
use super::heads::{Heads, Pooler};
use super::layers::{extended_mask, Ctx, Embedding, LayerNorm, Linear, LN_EPS};
use super::managers::{
    normalize_experts, LayerWeights, Manager, ManagerInput, ManagerWeights, Recorded,
};
use super::roberta::{Roberta, PADDING_IDX};
use super::ModelConfig;
use crate::{InputError, Result};

/// Text side of the uni-modal encoders' output.
#[derive(Debug)]
pub struct TextFeatures {
    /// `[B, K, L, H]`: the kept layers (lowest first) after `cross_modal_text_transform`;
    /// `None` when there is no cross-modal layer.
    pub experts: Option<Tensor>,
    /// `[B, L, Dt]`: the top RoBERTa layer, before any projection (ITC, `num_layers = 0`).
    pub top: Tensor,
    /// `[B, L, Dt]`: METER's `meter_fusion` of every layer with `num_layers = 0`, where it
    /// replaces `top` as the poolers' input (ITC keeps `top`). `None` otherwise (with
    /// cross-modal layers `experts` holds it, projected).
    pub fused: Option<Tensor>,
    /// `[B, L]` 1/0 attention mask.
    pub mask: Tensor,
}

/// Image side of the uni-modal encoders' output.
#[derive(Debug)]
pub struct ImageFeatures {
    /// `[B, K, L, H]`: `ln_post` of the kept blocks after `cross_modal_image_transform`.
    pub experts: Option<Tensor>,
    /// `[B, L, Dv]`: `ln_post` of the top block (`ln_separate` on BridgeTower's uni-modal path).
    pub top: Tensor,
    /// `[B, L, Dv]`: METER's `meter_fusion` of every block, as [`TextFeatures::fused`].
    pub fused: Option<Tensor>,
}

impl TextFeatures {
    /// The rows `index` of the batch (hard negatives, retrieval candidates).
    pub fn index_select(&self, index: &Tensor) -> Self {
        Self {
            experts: self.experts.as_ref().map(|e| e.index_select(0, index)),
            top: self.top.index_select(0, index),
            fused: self.fused.as_ref().map(|f| f.index_select(0, index)),
            mask: self.mask.index_select(0, index),
        }
    }

    /// Concatenates batches.
    pub fn cat(parts: &[&TextFeatures]) -> Self {
        let experts = parts
            .iter()
            .map(|p| p.experts.as_ref())
            .collect::<Option<Vec<_>>>()
            .map(|v| Tensor::cat(&v, 0));
        Self {
            experts,
            top: Tensor::cat(&parts.iter().map(|p| &p.top).collect::<Vec<_>>(), 0),
            fused: cat_optional(parts.iter().map(|p| p.fused.as_ref())),
            mask: Tensor::cat(&parts.iter().map(|p| &p.mask).collect::<Vec<_>>(), 0),
        }
    }

    pub fn batch_size(&self) -> i64 {
        self.top.size()[0]
    }
}

impl ImageFeatures {
    pub fn index_select(&self, index: &Tensor) -> Self {
        Self {
            experts: self.experts.as_ref().map(|e| e.index_select(0, index)),
            top: self.top.index_select(0, index),
            fused: self.fused.as_ref().map(|f| f.index_select(0, index)),
        }
    }

    pub fn cat(parts: &[&ImageFeatures]) -> Self {
        let experts = parts
            .iter()
            .map(|p| p.experts.as_ref())
            .collect::<Option<Vec<_>>>()
            .map(|v| Tensor::cat(&v, 0));
        Self {
            experts,
            top: Tensor::cat(&parts.iter().map(|p| &p.top).collect::<Vec<_>>(), 0),
            fused: cat_optional(parts.iter().map(|p| p.fused.as_ref())),
        }
    }

    pub fn batch_size(&self) -> i64 {
        self.top.size()[0]
    }
}

/// Concatenates along the batch when every part has the tensor.
fn cat_optional<'a>(parts: impl Iterator<Item = Option<&'a Tensor>>) -> Option<Tensor> {
    parts
        .collect::<Option<Vec<_>>>()
        .map(|v| Tensor::cat(&v, 0))
}

/// METER's `meter_fusion` over a modality's layers `F_0 … F_{N-1}` (lowest first, `[B, L, D]`
/// each): `F_{N-1} + Σ_{l<N-1} g_l ⊙ F_l` with `g = softmax over l of gate(F_l)`, per row, token
/// and channel; just `F_{N-1}` for one layer. Computed in fp32 (autocast's softmax policy).
pub(crate) fn meter_fusion(gate: &Linear, layers: &[Tensor], ctx: Ctx) -> Tensor {
    let (top, lower) = layers.split_last().expect("at least one layer");
    let top = ctx.full(top);
    if lower.is_empty() {
        return top;
    }
    let lower = ctx.full(&Tensor::stack(lower, 0)); // [N-1, B, L, D]
    let g = ctx.full(&gate.forward(&lower, ctx)).softmax(0, Kind::Float);
    top + (g * lower).sum_dim_intlist(0, false, Kind::Float)
}

/// Which of the reference's two image paths to follow. They differ only for BridgeTower with
/// `vit_layernorm_shared = false` ([`ModelConfig::vit_separate_norms_applied`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ImagePath {
    /// `infer` (fine-tuning tasks, MLM, ITM, `irtr`): every tapped block through `ln_post`.
    Infer,
    /// `get_uni_modal_features` (ITC, ITM+ITC) and `infer_image` (retrieval): block `i`
    /// through `ln_separate.{i}` where those are applied.
    UniModal,
}

/// What the model returns for a batch of (text, image) pairs.
#[derive(Debug)]
pub struct Output {
    /// `[B, Lt, H]` final cross-modal text states.
    pub text_feats: Tensor,
    /// `[B, Lv, H]` final cross-modal image states.
    pub image_feats: Tensor,
    /// `[B, 2H]` = `[text_pool; image_pool]`.
    pub cls_feats: Tensor,
    /// Managers' weights, in eval mode for ManagerTower variants; `None` otherwise.
    pub manager_weights: Option<ManagerWeights>,
}

/// Options of one forward pass.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ForwardOptions {
    /// Training mode: dropout and manager noise on, no manager-weight recording.
    pub train: bool,
    /// Token type of the image tokens: 1, or 2 for NLVR2's second image.
    pub image_token_type_idx: i64,
}

impl ForwardOptions {
    pub fn train() -> Self {
        Self {
            train: true,
            image_token_type_idx: 1,
        }
    }

    pub fn eval() -> Self {
        Self {
            train: false,
            image_token_type_idx: 1,
        }
    }

    pub fn with_image_token_type(self, idx: i64) -> Self {
        Self {
            image_token_type_idx: idx,
            ..self
        }
    }
}

/// How the cross-modal layers get their inputs.
#[derive(Debug)]
enum Fusion {
    /// ManagerTower (AAUE, SAUE, SAE).
    Managers {
        layer_embeddings_text: Embedding,
        layer_embeddings_image: Embedding,
        text: Vec<Manager>,
        image: Vec<Manager>,
    },
    /// BridgeTower: LN for layer 0, then `LayerNorm(U_ℓ + C_{ℓ-1})`.
    Bridge {
        text_layernorm: LayerNorm,
        image_layernorm: LayerNorm,
        text_links: Vec<LayerNorm>,
        image_links: Vec<LayerNorm>,
    },
    /// METER: the last uni-modal layer only.
    Meter,
}

/// ManagerTower, BridgeTower or METER (by `ModelConfig::manager_type`), with its task heads.
#[derive(Debug)]
pub struct TowerModel {
    cfg: ModelConfig,
    device: Device,
    text_transformer: Roberta,
    vit_model: ClipVisual,
    text_transform: Linear,
    image_transform: Linear,
    token_type_embeddings: Embedding,
    text_layers: Vec<CrossLayer>,
    image_layers: Vec<CrossLayer>,
    text_pooler: Pooler,
    image_pooler: Pooler,
    fusion: Fusion,
    /// METER's `meter_fusion` gates: (`text_gate`, `image_gate`).
    meter_gates: Option<(Linear, Linear)>,
    heads: Heads,
    /// Tests run the bf16 path on CPU.
    pub(crate) amp_on_cpu: bool,
    /// Set while the retrieval recall runs with `recall_amp`.
    recall_amp_active: AtomicBool,
}

impl TowerModel {
    /// Builds the model under `root` (normally `vs.root()`), with the reference initialisation.
    pub fn new(root: &nn::Path, cfg: &ModelConfig) -> Result<Self> {
        cfg.validate()?;
        let hs = cfg.hidden_size;
        let text_transformer = Roberta::new(root / "text_transformer", cfg);
        let vit_model = ClipVisual::new(root / "vit_model", cfg);
        let tt_rows = if cfg.heads.nlvr2 { 3 } else { 2 };
        let token_type_embeddings = Embedding::new(root / "token_type_embeddings", tt_rows, hs);
        if tt_rows == 3 {
            // NLVR2: the second image's row starts as a copy of the first image's.
            tch::no_grad(|| {
                token_type_embeddings
                    .weight
                    .get(2)
                    .copy_(&token_type_embeddings.weight.get(1));
            });
        }
        let cross = |name: &str| {
            (0..cfg.num_layers)
                .map(|i| CrossLayer::new(root / name / i, cfg))
                .collect::<Vec<_>>()
        };
        let fusion = match cfg.manager_type {
            ManagerType::Aaue | ManagerType::Saue | ManagerType::Sae => {
                let tower = |name: &str, routed: i64| {
                    (0..cfg.num_layers)
                        .map(|i| Manager::new(root / name / i, cfg, routed, i))
                        .collect::<Vec<_>>()
                };
                Fusion::Managers {
                    layer_embeddings_text: Embedding::new(
                        root / "layer_embeddings_text",
                        cfg.text_layers,
                        hs,
                    ),
                    layer_embeddings_image: Embedding::new(
                        root / "layer_embeddings_image",
                        cfg.vit_layers,
                        hs,
                    ),
                    text: tower("cross_modal_text_manager_tower", cfg.managed_layers_text),
                    image: tower("cross_modal_image_manager_tower", cfg.managed_layers_image),
                }
            }
            ManagerType::Bt => {
                let links = |name: &str| {
                    (0..cfg.num_layers - 1)
                        .map(|i| LayerNorm::new(root / name / i / "LayerNorm", hs, LN_EPS))
                        .collect::<Vec<_>>()
                };
                Fusion::Bridge {
                    text_layernorm: LayerNorm::new(root / "cross_modal_text_layernorm", hs, LN_EPS),
                    image_layernorm: LayerNorm::new(
                        root / "cross_modal_image_layernorm",
                        hs,
                        LN_EPS,
                    ),
                    text_links: links("cross_modal_text_link_tower"),
                    image_links: links("cross_modal_image_link_tower"),
                }
            }
            ManagerType::Meter => Fusion::Meter,
        };
        let meter_gates = cfg.meter_fusion.then(|| {
            (
                Linear::new(root / "text_gate", hs, hs),
                Linear::new(root / "image_gate", hs, hs),
            )
        });
        Ok(Self {
            device: root.device(),
            text_transform: Linear::new(root / "cross_modal_text_transform", cfg.text_width, hs),
            image_transform: Linear::new(root / "cross_modal_image_transform", cfg.vit_width, hs),
            token_type_embeddings,
            text_layers: cross("cross_modal_text_layers"),
            image_layers: cross("cross_modal_image_layers"),
            text_pooler: Pooler::new(root / "cross_modal_text_pooler", hs),
            image_pooler: Pooler::new(root / "cross_modal_image_pooler", hs),
            heads: Heads::new(root, cfg),
            text_transformer,
            vit_model,
            fusion,
            meter_gates,
            cfg: cfg.clone(),
            amp_on_cpu: false,
            recall_amp_active: AtomicBool::new(false),
        })
    }

    pub fn config(&self) -> &ModelConfig {
        &self.cfg
    }

    pub fn device(&self) -> Device {
        self.device
    }

    pub fn heads(&self) -> &Heads {
        &self.heads
    }

    /// `token_type_embeddings.weight`: `[2, H]`, or `[3, H]` with the NLVR2 head.
    pub fn token_type_embeddings(&self) -> &Tensor {
        &self.token_type_embeddings.weight
    }

    /// The per-call context: bf16 only on CUDA with `amp` (or inside
    /// [`TowerModel::with_recall_precision`] with `recall_amp`).
    pub fn ctx(&self, train: bool) -> Ctx {
        let amp = self.cfg.amp || self.recall_amp_active.load(Ordering::Relaxed);
        Ctx {
            train,
            amp: amp && (self.device.is_cuda() || self.amp_on_cpu),
        }
    }

    /// Runs `f`, the retrieval recall evaluation, in its own precision: bf16 with `recall_amp`
    /// (`amp_flag`), as the reference autocasts only there.
    pub fn with_recall_precision<T>(&self, f: impl FnOnce() -> T) -> T {
        struct Reset<'a>(&'a AtomicBool);
        impl Drop for Reset<'_> {
            fn drop(&mut self) {
                self.0.store(false, Ordering::Relaxed);
            }
        }
        if !self.cfg.recall_amp {
            return f();
        }
        self.recall_amp_active.store(true, Ordering::Relaxed);
        let _reset = Reset(&self.recall_amp_active);
        f()
    }

    /// Uni-modal layers kept for the cross-modal encoder (1 when there is none: the top); all
    /// of them for `meter_fusion`.
    fn kept(&self) -> (i64, i64) {
        if self.meter_gates.is_some() {
            (self.cfg.text_layers, self.cfg.vit_layers)
        } else if self.cfg.num_layers == 0 {
            (1, 1)
        } else {
            self.cfg.experts()
        }
    }

    /// Runs RoBERTa on `[B, L]` ids with a `[B, L]` 1/0 mask and keeps the expert layers.
    pub fn encode_text(&self, ids: &Tensor, mask: &Tensor, train: bool) -> Result<TextFeatures> {
        self.check_text(ids, mask)?;
        let ctx = self.ctx(train);
        let ext = extended_mask(mask);
        let (keep, _) = self.kept();
        let layers = self.text_transformer.forward(ids, &ext, keep, ctx);
        let top = layers.last().expect("at least one layer").shallow_clone();
        let fused = self
            .meter_gates
            .as_ref()
            .map(|(gate, _)| meter_fusion(gate, &layers, ctx));
        let layers = fused.as_ref().map_or(layers, |f| vec![f.shallow_clone()]);
        let experts = (self.cfg.num_layers > 0)
            .then(|| self.text_transform.forward(&Tensor::stack(&layers, 1), ctx));
        Ok(TextFeatures {
            experts,
            top,
            fused: fused.filter(|_| self.cfg.num_layers == 0),
            mask: mask.shallow_clone(),
        })
    }

    /// Runs the CLIP ViT on `[B, 3, S, S]` images and keeps the expert layers, as the
    /// reference's uni-modal path (ITC, ITM+ITC, retrieval): [`ImagePath::UniModal`].
    pub fn encode_image(&self, image: &Tensor, train: bool) -> Result<ImageFeatures> {
        self.encode_image_via(image, train, ImagePath::UniModal)
    }

    /// [`encode_image`](Self::encode_image) along either of the reference's image paths.
    pub fn encode_image_via(
        &self,
        image: &Tensor,
        train: bool,
        path: ImagePath,
    ) -> Result<ImageFeatures> {
        let s = self.cfg.image_size;
        let size = image.size();
        if size.len() != 4 || size[1] != 3 || size[2] != s || size[3] != s {
            return Err(InputError::Shape {
                what: "image batch",
                found: size,
                expected: format!("[B, 3, {s}, {s}] (`image_size` = {s})"),
            }
            .into());
        }
        let ctx = self.ctx(train);
        let (_, keep) = self.kept();
        let layers = if path == ImagePath::UniModal && self.cfg.vit_separate_norms_applied() {
            self.vit_model.forward_separate(image, keep, ctx)
        } else {
            self.vit_model.forward(image, keep, ctx)
        };
        let top = layers.last().expect("at least one layer").shallow_clone();
        let fused = self
            .meter_gates
            .as_ref()
            .map(|(_, gate)| meter_fusion(gate, &layers, ctx));
        let layers = fused.as_ref().map_or(layers, |f| vec![f.shallow_clone()]);
        let experts = (self.cfg.num_layers > 0).then(|| {
            self.image_transform
                .forward(&Tensor::stack(&layers, 1), ctx)
        });
        Ok(ImageFeatures {
            experts,
            top,
            fused: fused.filter(|_| self.cfg.num_layers == 0),
        })
    }

    /// L2-normalised ITC features of the top uni-modal CLS tokens: (text, image), `[B, C]` each
    /// (the unfused top layers with `meter_fusion`, as the reference).
    pub fn itc_features(
        &self,
        text: &TextFeatures,
        image: &ImageFeatures,
        train: bool,
    ) -> Result<(Tensor, Tensor)> {
        let (Some(th), Some(ih)) = (&self.heads.itc_text, &self.heads.itc_image) else {
            return Err(InputError::NoHead {
                head: "cross_modal_itc_text_head",
            }
            .into());
        };
        let ctx = self.ctx(train);
        let norm = |x: Tensor| {
            let n = x
                .norm_scalaropt_dim(2, [-1].as_slice(), true)
                .clamp_min(1e-12);
            x / n
        };
        Ok((
            norm(th.forward(&text.top.select(1, 0), ctx)),
            norm(ih.forward(&image.top.select(1, 0), ctx)),
        ))
    }

    /// The cross-modal encoder on cached uni-modal features.
    pub fn fuse(
        &self,
        text: &TextFeatures,
        image: &ImageFeatures,
        opts: ForwardOptions,
    ) -> Result<Output> {
        let ctx = self.ctx(opts.train);
        let (bt, bi) = (text.batch_size(), image.batch_size());
        if bt != bi {
            return Err(InputError::BatchSizes {
                text: bt,
                image: bi,
            }
            .into());
        }
        let rows = self.token_type_embeddings.weight.size()[0];
        if !(1..rows).contains(&opts.image_token_type_idx) {
            return Err(InputError::TokenType {
                index: opts.image_token_type_idx,
                rows,
            }
            .into());
        }
        if self.cfg.num_layers == 0 {
            let t = text.fused.as_ref().unwrap_or(&text.top);
            let i = image.fused.as_ref().unwrap_or(&image.top);
            let cls = Tensor::cat(
                &[
                    self.text_pooler.forward(t, ctx),
                    self.image_pooler.forward(i, ctx),
                ],
                -1,
            );
            return Ok(Output {
                text_feats: t.shallow_clone(),
                image_feats: i.shallow_clone(),
                cls_feats: cls,
                manager_weights: None,
            });
        }
        let (Some(te), Some(ie)) = (&text.experts, &image.experts) else {
            return Err(InputError::NoExperts.into());
        };
        let tt = &self.token_type_embeddings.weight;
        let tt_text = tt.get(0);
        let tt_image = tt.get(opts.image_token_type_idx);
        let text_ext = extended_mask(&text.mask);
        let (x, y, weights) = match &self.fusion {
            Fusion::Managers {
                layer_embeddings_text,
                layer_embeddings_image,
                text: tm,
                image: im,
            } => {
                let embed = |experts: &Tensor, table: &Embedding, tt: &Tensor| {
                    let n = experts.size()[1];
                    let total = table.weight.size()[0];
                    let rows = table.weight.narrow(0, total - n, n) + tt;
                    experts + rows.unsqueeze(1).unsqueeze(0)
                };
                let nt = normalize_experts(&embed(te, layer_embeddings_text, &tt_text), ctx);
                let ni = normalize_experts(&embed(ie, layer_embeddings_image, &tt_image), ctx);
                self.run_managers(tm, im, &nt, &ni, &text.mask, &text_ext, ctx)
            }
            Fusion::Bridge {
                text_layernorm,
                image_layernorm,
                text_links,
                image_links,
            } => {
                // Per layer (not on the whole stack): each sum is then contiguous for its LN.
                let ut = |l: usize| te.select(1, l as i64) + &tt_text;
                let ui = |l: usize| ie.select(1, l as i64) + &tt_image;
                let mut x = text_layernorm.forward(&ut(0), ctx);
                let mut y = image_layernorm.forward(&ui(0), ctx);
                for l in 0..self.text_layers.len() {
                    if l > 0 {
                        let (tl, il) = (&text_links[l - 1], &image_links[l - 1]);
                        let xin = tl.forward(&(ut(l) + &x), ctx);
                        let yin = il.forward(&(ui(l) + &y), ctx);
                        (x, y) = (xin, yin);
                    }
                    (x, y) = self.cross_step(l, &x, &y, &text_ext, ctx);
                }
                (x, y, None)
            }
            Fusion::Meter => {
                let mut x = te.select(1, 0) + &tt_text;
                let mut y = ie.select(1, 0) + &tt_image;
                for l in 0..self.text_layers.len() {
                    (x, y) = self.cross_step(l, &x, &y, &text_ext, ctx);
                }
                (x, y, None)
            }
        };
        let cls = Tensor::cat(
            &[
                self.text_pooler.forward(&x, ctx),
                self.image_pooler.forward(&y, ctx),
            ],
            -1,
        );
        Ok(Output {
            text_feats: x,
            image_feats: y,
            cls_feats: cls,
            manager_weights: weights,
        })
    }

    /// Cross-modal layer `l` on both towers in parallel.
    fn cross_step(
        &self,
        l: usize,
        x: &Tensor,
        y: &Tensor,
        text_ext: &Tensor,
        ctx: Ctx,
    ) -> (Tensor, Tensor) {
        let x1 = self.text_layers[l].forward(x, y, Some(text_ext), None, ctx);
        let y1 = self.image_layers[l].forward(y, x, None, Some(text_ext), ctx);
        (x1, y1)
    }

    #[allow(clippy::too_many_arguments)]
    fn run_managers(
        &self,
        tm: &[Manager],
        im: &[Manager],
        nt: &Tensor,
        ni: &Tensor,
        mask: &Tensor,
        text_ext: &Tensor,
        ctx: Ctx,
    ) -> (Tensor, Tensor, Option<ManagerWeights>) {
        let record = !ctx.train;
        let mut prev_t: Vec<Tensor> = Vec::with_capacity(tm.len());
        let mut prev_i: Vec<Tensor> = Vec::with_capacity(im.len());
        let mut rec_t = Vec::new();
        let mut rec_i = Vec::new();
        for l in 0..tm.len() {
            let (x_, rt) = tm[l].forward(
                &ManagerInput {
                    normed: nt,
                    previous: &prev_t,
                    other: prev_i.last(),
                    mask: Some(mask),
                    record,
                },
                ctx,
            );
            let (y_, ri) = im[l].forward(
                &ManagerInput {
                    normed: ni,
                    previous: &prev_i,
                    other: prev_t.last(),
                    mask: None,
                    record,
                },
                ctx,
            );
            rec_t.extend(rt);
            rec_i.extend(ri);
            let (x, y) = self.cross_step(l, &x_, &y_, text_ext, ctx);
            prev_t.push(x);
            prev_i.push(y);
        }
        let x = prev_t.pop().expect("num_layers > 0");
        let y = prev_i.pop().expect("num_layers > 0");
        let weights = record.then(|| {
            let text_tokens = mask.to_kind(Kind::Float).sum(Kind::Float);
            let image_tokens = (ni.size()[0] * ni.size()[2]) as f64;
            collect_weights(&rec_t, &rec_i, &text_tokens, image_tokens)
        });
        (x, y, weights)
    }

    /// `encode_text` + `encode_image_via(ImagePath::Infer)` + `fuse`: the reference's `infer`.
    pub fn forward(
        &self,
        text_ids: &Tensor,
        text_masks: &Tensor,
        image: &Tensor,
        opts: ForwardOptions,
    ) -> Result<Output> {
        let text = self.encode_text(text_ids, text_masks, opts.train)?;
        let image = self.encode_image_via(image, opts.train, ImagePath::Infer)?;
        self.fuse(&text, &image, opts)
    }

    fn check_text(&self, ids: &Tensor, mask: &Tensor) -> Result<()> {
        let size = ids.size();
        if size.len() != 2 || ids.kind() != Kind::Int64 {
            return Err(InputError::Shape {
                what: "text ids",
                found: size,
                expected: format!("int64 [B, L], not {:?}", ids.kind()),
            }
            .into());
        }
        if mask.size() != size {
            return Err(InputError::Shape {
                what: "text mask",
                found: mask.size(),
                expected: format!("the ids' {size:?}"),
            }
            .into());
        }
        let max_len = self.cfg.text_max_positions - PADDING_IDX - 1;
        if size[1] > max_len {
            return Err(InputError::TextTooLong {
                tokens: size[1],
                max_len,
                positions: self.cfg.text_max_positions,
            }
            .into());
        }
        if ids.numel() > 0 {
            let (lo, hi) = (ids.min().int64_value(&[]), ids.max().int64_value(&[]));
            if lo < 0 || hi >= self.cfg.vocab_size {
                return Err(InputError::TokenId {
                    id: if lo < 0 { lo } else { hi },
                    vocab_size: self.cfg.vocab_size,
                }
                .into());
            }
        }
        Ok(())
    }
}

/// Moves the recorded weights to the host in one transfer.
fn collect_weights(
    text: &[Recorded],
    image: &[Recorded],
    text_tokens: &Tensor,
    image_tokens: f64,
) -> ManagerWeights {
    let mut parts = vec![text_tokens.reshape([1])];
    for r in text.iter().chain(image) {
        parts.push(r.experts.shallow_clone());
        if let Some(c) = &r.cross {
            parts.push(c.shallow_clone());
        }
    }
    let flat = Tensor::cat(&parts, 0)
        .to_kind(Kind::Double)
        .to_device(Device::Cpu);
    let values = Vec::<f64>::try_from(flat).unwrap_or_default();
    let text_tokens = values.first().copied().unwrap_or(0.0);
    let mut at = 1;
    let mut take = |r: &Recorded, tokens: f64| {
        let n = r.experts.size()[0] as usize;
        let experts = values[at..at + n].to_vec();
        at += n;
        let p = r.cross.as_ref().map_or(0, |c| c.size()[0] as usize);
        let cross = values[at..at + p].to_vec();
        at += p;
        LayerWeights {
            experts,
            cross,
            tokens,
        }
    };
    let text = text.iter().map(|r| take(r, text_tokens)).collect();
    let image = image.iter().map(|r| take(r, image_tokens)).collect();
    ManagerWeights { text, image }
}
