//! The reference optimisers over the six parameter groups of `meter_utils.set_schedule`, by
//! `optim_type`: transformers' `AdamW` (β 0.9/0.98, ε 1e-8, bias correction, decoupled weight
//! decay applied after the Adam update; the release scripts' choice), `torch.optim.Adam`
//! (default β 0.9/0.999, ε 1e-8, weight decay added to the gradient) and `torch.optim.SGD`
//! (momentum 0.9, weight decay added to the gradient). Written with plain tensor ops so that
//! the state can be saved and restored exactly, which `tch::nn::Optimizer` does not allow.
//!
//! At the first step the parameters of each group that have a gradient move into one contiguous
//! buffer (values, gradients and both moments; the variables become views of it), so a step is
//! a few kernels per group instead of a dozen per parameter: what torch's multi-tensor
//! optimisers do, and what keeps a GPU step from being bound by kernel launches. The update of
//! each element is the same either way.

use std::collections::BTreeMap;

use tch::{Kind, Tensor};

/// Name patterns from `set_schedule`: a parameter whose name contains any of them is not decayed.
pub const NO_DECAY: [&str; 9] = [
    "bias",
    "LayerNorm.bias",
    "LayerNorm.weight",
    "norm.bias",
    "norm.weight",
    "norm1.bias",
    "norm1.weight",
    "norm2.bias",
    "norm2.weight",
];
/// Task heads, trained with `lr_mult_head`.
pub const HEAD_NAMES: [&str; 5] = [
    "vqa_classifier",
    "nlvr2_classifier",
    "snli_classifier",
    "mlm_score",
    "itm_score",
];
/// Everything of the cross-modal module, trained with `lr_mult_cross_modal`.
pub const CROSS_MODAL_NAMES: [&str; 1] = ["cross_modal"];

/// Which of the reference's learning rates a parameter uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum LrClass {
    Base,
    Head,
    CrossModal,
}

/// The group a parameter falls in, or `None` when the reference leaves it out of the optimiser
/// (a name matching both a head pattern and `cross_modal` fits none of its six groups).
pub fn group_of(name: &str) -> Option<(LrClass, bool)> {
    let decay = !NO_DECAY.iter().any(|p| name.contains(p));
    let head = HEAD_NAMES.iter().any(|p| name.contains(p));
    let cross = CROSS_MODAL_NAMES.iter().any(|p| name.contains(p));
    match (head, cross) {
        (false, false) => Some((LrClass::Base, decay)),
        (true, false) => Some((LrClass::Head, decay)),
        (false, true) => Some((LrClass::CrossModal, decay)),
        (true, true) => None,
    }
}

/// `optim_type`: which update rule.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Algorithm {
    AdamW,
    Adam,
    Sgd,
}

impl Algorithm {
    pub fn from_optim_type(name: &str) -> Option<Self> {
        match name {
            "adamw" => Some(Self::AdamW),
            "adam" => Some(Self::Adam),
            "sgd" => Some(Self::Sgd),
            _ => None,
        }
    }
}

/// Hyper-parameters of the optimiser.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct OptimConfig {
    pub algorithm: Algorithm,
    pub lr: f64,
    pub lr_head: f64,
    pub lr_cross_modal: f64,
    pub weight_decay: f64,
    pub beta1: f64,
    pub beta2: f64,
    pub eps: f64,
    /// SGD's momentum.
    pub momentum: f64,
}

impl OptimConfig {
    /// The reference settings. The reference multiplies the base rate by `lr_mult_*` when the
    /// multiplier is a Python int and uses it as the rate itself when it is a float; settings
    /// hold numbers as f64, so a whole number stands for the int case (every release script
    /// uses whole multipliers).
    pub fn reference(
        algorithm: Algorithm,
        lr: f64,
        weight_decay: f64,
        lr_mult_head: f64,
        lr_mult_cross_modal: f64,
    ) -> Self {
        let resolve = |mult: f64| if mult.fract() == 0.0 { lr * mult } else { mult };
        // AdamW gets the reference's explicit betas; Adam keeps torch's defaults.
        let beta2 = if algorithm == Algorithm::AdamW {
            0.98
        } else {
            0.999
        };
        Self {
            algorithm,
            lr,
            lr_head: resolve(lr_mult_head),
            lr_cross_modal: resolve(lr_mult_cross_modal),
            weight_decay,
            beta1: 0.9,
            beta2,
            eps: 1e-8,
            momentum: 0.9,
        }
    }

    fn lr_of(&self, class: LrClass) -> f64 {
        match class {
            LrClass::Base => self.lr,
            LrClass::Head => self.lr_head,
            LrClass::CrossModal => self.lr_cross_modal,
        }
    }
}

struct Param {
    tensor: Tensor,
    class: LrClass,
    decay: bool,
    /// Adam's first moment; SGD's momentum buffer.
    exp_avg: Tensor,
    /// Adam's second moment; unused by SGD.
    exp_avg_sq: Tensor,
    /// Whether the value, gradient and moments are views of a [`FlatGroup`]'s buffers.
    flat: bool,
}

/// One group's parameters in contiguous buffers, each member at `offset` for `numel` elements.
struct FlatGroup {
    class: LrClass,
    decay: bool,
    value: Tensor,
    grad: Tensor,
    exp_avg: Tensor,
    exp_avg_sq: Tensor,
    members: Vec<(String, i64, i64)>,
}

/// The optimiser over named parameters with exactly restorable state.
pub struct Optimizer {
    config: OptimConfig,
    params: BTreeMap<String, Param>,
    flat: Vec<FlatGroup>,
    /// Whether the groups have been made contiguous (done at the first step, once gradients
    /// show which parameters take part).
    flattened: bool,
    /// Off only to compare against the per-parameter update in tests.
    flatten_groups: bool,
    /// Optimiser steps taken (the bias-correction step count).
    step: u64,
    /// Multiplier from the schedule, applied to every group's rate.
    lr_factor: f64,
}

impl Optimizer {
    /// Takes the trainable variables by name (e.g. `VarStore::variables()` filtered by
    /// `requires_grad`) and sorts them into the reference groups.
    pub fn new(config: OptimConfig, named: impl IntoIterator<Item = (String, Tensor)>) -> Self {
        let params = named
            .into_iter()
            .filter(|(_, t)| t.requires_grad())
            .filter_map(|(name, tensor)| {
                let (class, decay) = group_of(&name)?;
                let exp_avg = tensor.zeros_like().detach();
                let exp_avg_sq = tensor.zeros_like().detach();
                Some((
                    name,
                    Param {
                        tensor,
                        class,
                        decay,
                        exp_avg,
                        exp_avg_sq,
                        flat: false,
                    },
                ))
            })
            .collect();
        Self {
            config,
            params,
            flat: Vec::new(),
            flattened: false,
            flatten_groups: true,
            step: 0,
            lr_factor: 1.0,
        }
    }

    pub fn set_lr_factor(&mut self, factor: f64) {
        self.lr_factor = factor;
    }

    pub fn steps_taken(&self) -> u64 {
        self.step
    }

    /// Names of the optimised parameters with their group, for inspection and tests.
    pub fn groups(&self) -> Vec<(String, LrClass, bool)> {
        self.params
            .iter()
            .map(|(n, p)| (n.clone(), p.class, p.decay))
            .collect()
    }

    pub fn zero_grad(&mut self) {
        for g in &mut self.flat {
            let _ = g.grad.zero_();
        }
        for p in self.params.values_mut().filter(|p| !p.flat) {
            let mut g = p.tensor.grad();
            if g.defined() {
                let _ = g.detach_().zero_();
            }
        }
    }

    /// Moves each group's parameters that have a gradient into contiguous buffers.
    fn flatten(&mut self) {
        self.flattened = true;
        if !self.flatten_groups {
            return;
        }
        let mut groups: BTreeMap<(LrClass, bool, String), Vec<String>> = BTreeMap::new();
        for (name, p) in &self.params {
            if p.tensor.grad().defined() {
                let key = (
                    p.class,
                    p.decay,
                    format!("{:?}/{:?}", p.tensor.kind(), p.tensor.device()),
                );
                groups.entry(key).or_default().push(name.clone());
            }
        }
        for ((class, decay, _), names) in groups {
            let first = &self.params[&names[0]].tensor;
            let opts = (first.kind(), first.device());
            let total: i64 = names
                .iter()
                .map(|n| self.params[n].tensor.numel() as i64)
                .sum();
            let buffer = || Tensor::zeros([total], opts);
            let (value, grad, exp_avg, exp_avg_sq) = (buffer(), buffer(), buffer(), buffer());
            let mut members = Vec::with_capacity(names.len());
            let mut offset = 0;
            for name in names {
                let p = self.params.get_mut(&name).expect("grouped from params");
                let numel = p.tensor.numel() as i64;
                let shape = p.tensor.size();
                let view = |flat: &Tensor| flat.narrow(0, offset, numel).view(shape.as_slice());
                tch::no_grad(|| {
                    // The variable and its gradient keep their identity (the model and the
                    // VarStore hold them) and only change storage.
                    let mut v = view(&value);
                    v.copy_(&p.tensor);
                    p.tensor.set_data(&v);
                    let mut g = view(&grad);
                    let mut old = p.tensor.grad();
                    g.copy_(&old);
                    old.set_data(&g);
                    let mut m = view(&exp_avg);
                    m.copy_(&p.exp_avg);
                    p.exp_avg = m;
                    let mut m2 = view(&exp_avg_sq);
                    m2.copy_(&p.exp_avg_sq);
                    p.exp_avg_sq = m2;
                });
                p.flat = true;
                members.push((name, offset, numel));
                offset += numel;
            }
            self.flat.push(FlatGroup {
                class,
                decay,
                value,
                grad,
                exp_avg,
                exp_avg_sq,
                members,
            });
        }
    }

    /// Dissolves any group whose members no longer live in its buffers (a variable given new
    /// storage, a gradient set to none): its members fall back to the per-parameter update.
    fn check_flat(&mut self) {
        let params = &mut self.params;
        self.flat.retain(|g| {
            let elt = g.value.kind().elt_size_in_bytes();
            let (value, grad) = (g.value.data_ptr() as usize, g.grad.data_ptr() as usize);
            let intact = g.members.iter().all(|(name, offset, _)| {
                let p = &params[name].tensor;
                let pg = p.grad();
                let at = *offset as usize * elt;
                p.data_ptr() as usize == value + at
                    && pg.defined()
                    && pg.data_ptr() as usize == grad + at
            });
            if !intact {
                for (name, _, _) in &g.members {
                    if let Some(p) = params.get_mut(name) {
                        p.flat = false;
                    }
                }
            }
            intact
        });
    }

    /// Scales gradients so their global L2 norm is at most `max_norm`; returns the norm before.
    pub fn clip_grad_norm(&mut self, max_norm: f64) -> f64 {
        let grads: Vec<Tensor> = self
            .flat
            .iter()
            .map(|g| g.grad.shallow_clone())
            .chain(
                self.params
                    .values()
                    .filter(|p| !p.flat)
                    .map(|p| p.tensor.grad())
                    .filter(|g| g.defined()),
            )
            .collect();
        if grads.is_empty() {
            return 0.0;
        }
        let total = tch::no_grad(|| {
            let sq: Vec<Tensor> = grads
                .iter()
                .map(|g| g.to_kind(Kind::Float).pow_tensor_scalar(2).sum(Kind::Float))
                .collect();
            Tensor::stack(&sq, 0).sum(Kind::Float).sqrt()
        });
        let norm = f64::try_from(&total).unwrap_or(f64::NAN);
        let coef = max_norm / (norm + 1e-6);
        if coef < 1.0 {
            tch::no_grad(|| {
                for g in &grads {
                    let mut g = g.shallow_clone();
                    let _ = g.f_mul_scalar_(coef);
                }
            });
        }
        norm
    }

    /// One optimiser step with the current rates.
    pub fn step(&mut self) {
        if !self.flattened {
            self.flatten();
        }
        self.check_flat();
        self.step += 1;
        let t = self.step as f64;
        let c = self.config;
        let bc = (1.0 - c.beta1.powf(t), 1.0 - c.beta2.powf(t));
        let lr_factor = self.lr_factor;
        let rates = |class: LrClass, decay: bool| {
            let wd = if decay { c.weight_decay } else { 0.0 };
            (c.lr_of(class) * lr_factor, wd)
        };
        tch::no_grad(|| {
            for g in &mut self.flat {
                let (lr, wd) = rates(g.class, g.decay);
                let moments = (&mut g.exp_avg, &mut g.exp_avg_sq);
                update(c, bc, lr, wd, &mut g.value, &g.grad, moments);
            }
            for p in self.params.values_mut().filter(|p| !p.flat) {
                let grad = p.tensor.grad();
                if !grad.defined() {
                    continue;
                }
                let (lr, wd) = rates(p.class, p.decay);
                let moments = (&mut p.exp_avg, &mut p.exp_avg_sq);
                update(c, bc, lr, wd, &mut p.tensor, &grad, moments);
            }
        });
    }

    /// The state as named tensors (`{param}.exp_avg`, `{param}.exp_avg_sq`) plus the step.
    pub fn state(&self) -> (u64, Vec<(String, Tensor)>) {
        let mut out = Vec::with_capacity(self.params.len() * 2);
        for (name, p) in &self.params {
            out.push((format!("{name}.exp_avg"), p.exp_avg.shallow_clone()));
            out.push((format!("{name}.exp_avg_sq"), p.exp_avg_sq.shallow_clone()));
        }
        (self.step, out)
    }

    /// Restores a state saved by [`Optimizer::state`]; every moment must be present with its shape.
    pub fn load_state(
        &mut self,
        step: u64,
        tensors: &BTreeMap<String, Tensor>,
    ) -> Result<(), crate::weights::Mismatches> {
        let mut problems = crate::weights::Mismatches::default();
        for (name, p) in &mut self.params {
            for (suffix, dst) in [
                ("exp_avg", &mut p.exp_avg),
                ("exp_avg_sq", &mut p.exp_avg_sq),
            ] {
                let key = format!("{name}.{suffix}");
                match tensors.get(&key) {
                    Some(src) if src.size() == dst.size() => {
                        tch::no_grad(|| dst.copy_(src));
                    }
                    Some(src) => problems.shapes.push(crate::weights::ShapeMismatch {
                        key,
                        expected: dst.size(),
                        found: src.size(),
                    }),
                    None => problems.missing.push(key),
                }
            }
        }
        if !problems.is_empty() {
            return Err(problems);
        }
        self.step = step;
        Ok(())
    }
}

/// The update of `value` (one parameter, or a group's buffer) by `grad`, with the bias
/// corrections `bc` = (1 - β1^t, 1 - β2^t) and the moments (SGD: the momentum buffer, unused).
fn update(
    c: OptimConfig,
    (bc1, bc2): (f64, f64),
    lr: f64,
    wd: f64,
    value: &mut Tensor,
    grad: &Tensor,
    (exp_avg, exp_avg_sq): (&mut Tensor, &mut Tensor),
) {
    match c.algorithm {
        // transformers.AdamW, `correct_bias=True`.
        Algorithm::AdamW => {
            adam_moments(exp_avg, exp_avg_sq, grad, c);
            let mut denom = exp_avg_sq.sqrt();
            let _ = denom.f_add_scalar_(c.eps);
            // value - step_size · m / denom, as `addcdiv_(m, denom, value=-step_size)`.
            let _ = denom.f_div_scalar_(-(lr * bc2.sqrt() / bc1));
            let _ = value.f_addcdiv_(exp_avg, &denom);
            if wd > 0.0 {
                // Applied to the already-updated weights, as transformers does.
                let _ = value.f_mul_scalar_(1.0 - lr * wd);
            }
        }
        // torch.optim.Adam: L2 decay in the gradient, ε outside the correction.
        Algorithm::Adam => {
            let grad = with_l2(grad, value, wd);
            adam_moments(exp_avg, exp_avg_sq, &grad, c);
            let mut denom = exp_avg_sq.sqrt();
            let _ = denom.f_div_scalar_(bc2.sqrt());
            let _ = denom.f_add_scalar_(c.eps);
            let _ = denom.f_div_scalar_(-(lr / bc1));
            let _ = value.f_addcdiv_(exp_avg, &denom);
        }
        // torch.optim.SGD: the buffer starts as the first gradient, which a zero buffer times
        // the momentum plus that gradient is.
        Algorithm::Sgd => {
            let grad = with_l2(grad, value, wd);
            let _ = exp_avg.f_mul_scalar_(c.momentum);
            let _ = exp_avg.f_add_(&grad);
            let _ = value.f_sub_(&(&*exp_avg * lr));
        }
    }
}

/// `m = β1·m + (1-β1)·g` and `v = β2·v + (1-β2)·g²`, in place with the fewest passes over
/// memory (`lerp_`, as torch's own Adam does; equal to the reference's `mul_`/`add_` up to
/// rounding).
fn adam_moments(exp_avg: &mut Tensor, exp_avg_sq: &mut Tensor, grad: &Tensor, c: OptimConfig) {
    let _ = exp_avg.f_lerp_(grad, 1.0 - c.beta1);
    let _ = exp_avg_sq.f_lerp_(&grad.square(), 1.0 - c.beta2);
}

/// `grad + wd · w` (torch's `weight_decay` for Adam and SGD).
fn with_l2(grad: &Tensor, w: &Tensor, wd: f64) -> Tensor {
    if wd > 0.0 {
        grad + w * wd
    } else {
        grad.shallow_clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tch::Device;

    #[test]
    fn groups_follow_set_schedule() {
        assert_eq!(
            group_of("text_transformer.encoder.layer.0.attention.self.query.weight"),
            Some((LrClass::Base, true))
        );
        assert_eq!(
            group_of("text_transformer.encoder.layer.0.output.LayerNorm.weight"),
            Some((LrClass::Base, false))
        );
        assert_eq!(
            group_of("vqa_classifier.0.weight"),
            Some((LrClass::Head, true))
        );
        assert_eq!(
            group_of("vqa_classifier.0.bias"),
            Some((LrClass::Head, false))
        );
        assert_eq!(
            group_of("cross_modal_text_layers.0.attention.self.query.weight"),
            Some((LrClass::CrossModal, true))
        );
        // Manager LayerNorms are named `LayerNorm.0.weight`: decayed, as in the reference.
        assert_eq!(
            group_of("cross_modal_text_manager_tower.1.manager_layer.LayerNorm.0.weight"),
            Some((LrClass::CrossModal, true))
        );
        assert_eq!(
            group_of("vit_model.visual.transformer.resblocks.0.ln_1.weight"),
            Some((LrClass::Base, true))
        );
        assert_eq!(
            group_of("token_type_embeddings.weight"),
            Some((LrClass::Base, true))
        );
    }

    /// Two steps by hand against the formula of transformers.AdamW.
    #[test]
    fn step_matches_transformers_adamw() {
        let w = Tensor::from_slice(&[1.0f64, -2.0]).set_requires_grad(true);
        let cfg = OptimConfig::reference(Algorithm::AdamW, 0.1, 0.01, 1.0, 1.0);
        let mut opt = Optimizer::new(cfg, [("w".to_string(), w.shallow_clone())]);
        let (mut p, mut m, mut v) = ([1.0f64, -2.0], [0.0f64; 2], [0.0f64; 2]);
        for t in 1..=2 {
            opt.zero_grad();
            let loss = (&w * &w).sum(Kind::Double); // grad = 2w
            loss.backward();
            opt.step();
            let bc1 = 1.0 - 0.9f64.powi(t);
            let bc2 = 1.0 - 0.98f64.powi(t);
            for i in 0..2 {
                let g = 2.0 * p[i];
                m[i] = 0.9 * m[i] + 0.1 * g;
                v[i] = 0.98 * v[i] + 0.02 * g * g;
                p[i] -= 0.1 * bc2.sqrt() / bc1 * m[i] / (v[i].sqrt() + 1e-8);
                p[i] -= p[i] * 0.1 * 0.01;
            }
        }
        let got: Vec<f64> = Vec::try_from(&w.detach()).unwrap();
        for i in 0..2 {
            assert!((got[i] - p[i]).abs() < 1e-12, "{got:?} vs {p:?}");
        }
    }

    /// `torch.optim.Adam` and `torch.optim.SGD(momentum=0.9)` with L2 weight decay, two steps
    /// by hand; a no-decay parameter (`…bias`) ignores the decay.
    #[test]
    fn adam_and_sgd_match_torch() {
        for algorithm in [Algorithm::Adam, Algorithm::Sgd] {
            let w = Tensor::from_slice(&[1.0f64, -2.0]).set_requires_grad(true);
            let b = Tensor::from_slice(&[0.5f64]).set_requires_grad(true);
            let cfg = OptimConfig::reference(algorithm, 0.1, 0.01, 1.0, 1.0);
            let mut opt = Optimizer::new(
                cfg,
                [
                    ("w".to_string(), w.shallow_clone()),
                    ("x.bias".to_string(), b.shallow_clone()),
                ],
            );
            let mut p = [1.0f64, -2.0, 0.5];
            let (mut m, mut v) = ([0.0f64; 3], [0.0f64; 3]);
            for t in 1..=2 {
                opt.zero_grad();
                ((&w * &w).sum(Kind::Double) + (&b * &b).sum(Kind::Double)).backward();
                opt.step();
                for i in 0..3 {
                    let wd = if i < 2 { 0.01 } else { 0.0 };
                    let g = 2.0 * p[i] + wd * p[i];
                    match algorithm {
                        Algorithm::Adam => {
                            m[i] = 0.9 * m[i] + 0.1 * g;
                            v[i] = 0.999 * v[i] + 0.001 * g * g;
                            let bc1 = 1.0 - 0.9f64.powi(t);
                            let bc2 = 1.0 - 0.999f64.powi(t);
                            p[i] -= 0.1 / bc1 * m[i] / (v[i].sqrt() / bc2.sqrt() + 1e-8);
                        }
                        _ => {
                            m[i] = if t == 1 { g } else { 0.9 * m[i] + g };
                            p[i] -= 0.1 * m[i];
                        }
                    }
                }
            }
            let mut got: Vec<f64> = Vec::try_from(&w.detach()).unwrap();
            got.extend(Vec::<f64>::try_from(&b.detach()).unwrap());
            for i in 0..3 {
                assert!(
                    (got[i] - p[i]).abs() < 1e-12,
                    "{algorithm:?}: {got:?} vs {p:?}"
                );
            }
        }
    }

    #[test]
    fn whole_multipliers_multiply_and_fractions_are_rates() {
        let c = OptimConfig::reference(Algorithm::AdamW, 1e-5, 0.01, 50.0, 5e-5);
        assert!((c.lr_head - 5e-4).abs() < 1e-18);
        assert_eq!(c.lr_cross_modal, 5e-5);
    }

    #[test]
    fn state_round_trip_continues_identically() {
        let make = || Tensor::from_slice(&[0.5f32, 1.5, -1.0]).set_requires_grad(true);
        let cfg = OptimConfig::reference(Algorithm::AdamW, 0.05, 0.01, 1.0, 1.0);
        let run = |w: &Tensor, opt: &mut Optimizer, n: usize| {
            for _ in 0..n {
                opt.zero_grad();
                (w * w * 3.0 - w).sum(Kind::Float).backward();
                opt.step();
            }
        };
        let a = make();
        let mut opt_a = Optimizer::new(cfg, [("w".into(), a.shallow_clone())]);
        run(&a, &mut opt_a, 4);

        let b = make();
        let mut opt_b = Optimizer::new(cfg, [("w".into(), b.shallow_clone())]);
        run(&b, &mut opt_b, 2);
        let (step, state) = opt_b.state();
        let saved: BTreeMap<String, Tensor> =
            state.into_iter().map(|(k, t)| (k, t.copy())).collect();
        let c = b.detach().copy().set_requires_grad(true);
        let mut opt_c = Optimizer::new(cfg, [("w".into(), c.shallow_clone())]);
        opt_c.load_state(step, &saved).unwrap();
        run(&c, &mut opt_c, 2);
        let diff = f64::try_from((a.detach() - c.detach()).abs().max()).unwrap();
        assert_eq!(diff, 0.0);
        let _ = Device::Cpu;
    }

    /// Variables of several groups, one the loss never reaches, made in a VarStore like the
    /// model's; the loss reads them through the handles made before the optimiser.
    fn toy_problem() -> (tch::nn::VarStore, Vec<Tensor>) {
        let vs = tch::nn::VarStore::new(Device::Cpu);
        let root = vs.root();
        let init = |name: &str, shape: &[i64], seed: f64| {
            let n: i64 = shape.iter().product();
            let values = (Tensor::arange(n, (Kind::Float, Device::Cpu)) * seed).sin();
            let (dir, leaf) = name.rsplit_once('.').expect("dotted name");
            let path = dir.split('.').fold(root.clone(), |p, part| &p / part);
            path.var_copy(leaf, &values.view(shape))
        };
        let used = vec![
            init("layer.weight", &[3, 4], 0.7),
            init("layer.bias", &[3], 1.3),
            init("cross_modal_layer.weight", &[4, 3], 0.4),
            init("vqa_classifier.0.weight", &[2, 4], 0.9),
            init("LayerNorm.weight", &[4], 2.1),
        ];
        let _unused = init("cross_modal_unused.weight", &[5], 0.3);
        (vs, used)
    }

    fn toy_loss(w: &[Tensor], step: i64) -> Tensor {
        let x = (Tensor::arange(8, (Kind::Float, Device::Cpu)).view([2, 4]) * (0.3 + step as f64))
            .cos();
        let h = (x.matmul(&w[0].tr()) + &w[1]).tanh();
        let h = (h.matmul(&w[2].tr()) * &w[4]).relu();
        h.matmul(&w[3].tr()).pow_tensor_scalar(2).sum(Kind::Float)
    }

    /// The contiguous groups update exactly as the per-parameter loop, through the handles the
    /// model holds, for every rule; a parameter without a gradient stays as it was.
    #[test]
    fn contiguous_groups_update_as_the_per_parameter_loop() {
        for algorithm in [Algorithm::AdamW, Algorithm::Adam, Algorithm::Sgd] {
            let cfg = OptimConfig::reference(algorithm, 0.05, 0.1, 10.0, 5.0);
            let run = |flatten: bool| {
                let (vs, w) = toy_problem();
                let mut opt = Optimizer::new(cfg, vs.variables());
                opt.flatten_groups = flatten;
                for step in 0..4 {
                    opt.zero_grad();
                    // Two micro-batches: gradients accumulate into the group buffers.
                    toy_loss(&w, step).backward();
                    toy_loss(&w, step + 10).backward();
                    opt.set_lr_factor(1.0 - 0.2 * step as f64);
                    opt.step();
                }
                (vs, opt)
            };
            let (flat_vs, flat_opt) = run(true);
            let (loop_vs, _) = run(false);
            assert_eq!(
                flat_opt.flat.len(),
                4,
                "{algorithm:?}: groups with gradients"
            );
            assert!(!flat_opt.params["cross_modal_unused.weight"].flat);
            let loop_vars = loop_vs.variables();
            for (name, t) in flat_vs.variables() {
                let diff = f64::try_from((&t - &loop_vars[&name]).abs().max()).unwrap();
                assert_eq!(diff, 0.0, "{algorithm:?} {name}");
            }
            let unused = &flat_vs.variables()["cross_modal_unused.weight"];
            let first = (Tensor::arange(5, (Kind::Float, Device::Cpu)) * 0.3).sin();
            assert_eq!(f64::try_from((unused - first).abs().max()).unwrap(), 0.0);
        }
    }

    /// A variable given new storage after the groups were formed (a load that replaces data)
    /// dissolves its group instead of being left out of the update.
    #[test]
    fn moved_variable_dissolves_its_group() {
        let cfg = OptimConfig::reference(Algorithm::AdamW, 0.05, 0.1, 1.0, 1.0);
        let (vs, w) = toy_problem();
        let mut opt = Optimizer::new(cfg, vs.variables());
        opt.zero_grad();
        toy_loss(&w, 0).backward();
        opt.step();
        let mut moved = w[0].shallow_clone();
        tch::no_grad(|| moved.set_data(&w[0].detach().copy()));
        let before = w[0].detach().copy();
        opt.zero_grad();
        toy_loss(&w, 1).backward();
        opt.step();
        assert!(!opt.params["layer.weight"].flat);
        assert_eq!(opt.flat.len(), 3);
        let change = f64::try_from((w[0].detach() - before).abs().max()).unwrap();
        assert!(change > 0.0, "the moved variable was not updated");
    }

    #[test]
    fn load_state_names_missing_moments() {
        let w = Tensor::zeros([2], (Kind::Float, Device::Cpu)).set_requires_grad(true);
        let mut opt = Optimizer::new(
            OptimConfig::reference(Algorithm::AdamW, 1e-3, 0.0, 1.0, 1.0),
            [("w".into(), w)],
        );
        let err = opt.load_state(3, &BTreeMap::new()).unwrap_err();
        assert_eq!(err.missing, ["w.exp_avg", "w.exp_avg_sq"]);
    }
}
