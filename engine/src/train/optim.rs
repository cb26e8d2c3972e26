//! The reference optimisers over the six parameter groups of `meter_utils.set_schedule`, by
//! `optim_type`: transformers' `AdamW` (β 0.9/0.98, ε 1e-8, bias correction, decoupled weight
//! decay applied after the Adam update; the release scripts' choice), `torch.optim.Adam`
//! (default β 0.9/0.999, ε 1e-8, weight decay added to the gradient) and `torch.optim.SGD`
//! (momentum 0.9, weight decay added to the gradient). Written with plain tensor ops so that
//! the state can be saved and restored exactly, which `tch::nn::Optimizer` does not allow.

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
}

/// The optimiser over named parameters with exactly restorable state.
pub struct Optimizer {
    config: OptimConfig,
    params: BTreeMap<String, Param>,
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
                    },
                ))
            })
            .collect();
        Self {
            config,
            params,
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
        for p in self.params.values_mut() {
            let mut g = p.tensor.grad();
            if g.defined() {
                let _ = g.detach_().zero_();
            }
        }
    }

    /// Scales gradients so their global L2 norm is at most `max_norm`; returns the norm before.
    pub fn clip_grad_norm(&mut self, max_norm: f64) -> f64 {
        let grads: Vec<Tensor> = self
            .params
            .values()
            .map(|p| p.tensor.grad())
            .filter(|g| g.defined())
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
        self.step += 1;
        let t = self.step as f64;
        let c = self.config;
        let bc1 = 1.0 - c.beta1.powf(t);
        let bc2 = 1.0 - c.beta2.powf(t);
        tch::no_grad(|| {
            for p in self.params.values_mut() {
                let grad = p.tensor.grad();
                if !grad.defined() {
                    continue;
                }
                let lr = c.lr_of(p.class) * self.lr_factor;
                let wd = if p.decay { c.weight_decay } else { 0.0 };
                match c.algorithm {
                    // transformers.AdamW, `correct_bias=True`.
                    Algorithm::AdamW => {
                        adam_moments(p, &grad, c);
                        let denom = p.exp_avg_sq.sqrt() + c.eps;
                        let step_size = lr * bc2.sqrt() / bc1;
                        let _ = p.tensor.f_sub_(&(&p.exp_avg / denom * step_size));
                        if wd > 0.0 {
                            // Applied to the already-updated weights, as transformers does.
                            let _ = p.tensor.f_mul_scalar_(1.0 - lr * wd);
                        }
                    }
                    // torch.optim.Adam: L2 decay in the gradient, ε outside the correction.
                    Algorithm::Adam => {
                        let grad = with_l2(&grad, &p.tensor, wd);
                        adam_moments(p, &grad, c);
                        let denom = p.exp_avg_sq.sqrt() / bc2.sqrt() + c.eps;
                        let _ = p.tensor.f_sub_(&(&p.exp_avg / denom * (lr / bc1)));
                    }
                    // torch.optim.SGD: the buffer starts as the first gradient, which a zero
                    // buffer times the momentum plus that gradient is.
                    Algorithm::Sgd => {
                        let grad = with_l2(&grad, &p.tensor, wd);
                        let _ = p.exp_avg.f_mul_scalar_(c.momentum);
                        let _ = p.exp_avg.f_add_(&grad);
                        let _ = p.tensor.f_sub_(&(&p.exp_avg * lr));
                    }
                }
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
    ) -> Result<(), String> {
        let mut problems = Vec::new();
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
                    Some(src) => problems.push(format!(
                        "{key}: shape {:?}, expected {:?}",
                        src.size(),
                        dst.size()
                    )),
                    None => problems.push(format!("{key}: missing")),
                }
            }
        }
        if !problems.is_empty() {
            return Err(problems.join("; "));
        }
        self.step = step;
        Ok(())
    }
}

fn adam_moments(p: &mut Param, grad: &Tensor, c: OptimConfig) {
    let _ = p.exp_avg.f_mul_scalar_(c.beta1);
    let _ = p.exp_avg.f_add_(&(grad * (1.0 - c.beta1)));
    let _ = p.exp_avg_sq.f_mul_scalar_(c.beta2);
    let _ = p.exp_avg_sq.f_add_(&(grad * grad * (1.0 - c.beta2)));
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

    #[test]
    fn load_state_names_missing_moments() {
        let w = Tensor::zeros([2], (Kind::Float, Device::Cpu)).set_requires_grad(true);
        let mut opt = Optimizer::new(
            OptimConfig::reference(Algorithm::AdamW, 1e-3, 0.0, 1.0, 1.0),
            [("w".into(), w)],
        );
        let err = opt.load_state(3, &BTreeMap::new()).unwrap_err();
        assert!(err.contains("w.exp_avg: missing"), "{err}");
    }
}
