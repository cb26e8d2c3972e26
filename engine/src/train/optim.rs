//! transformers' `AdamW` (the reference optimiser): Adam with bias correction and decoupled weight
//! decay applied after the update, per parameter group. Its state is plain tensors so it can be
//! saved with a checkpoint and restored exactly.

use std::path::Path;

use tch::{Kind, Tensor};

use super::param_groups::ParamGroup;

#[derive(Debug)]
struct Slot {
    exp_avg: Tensor,
    exp_avg_sq: Tensor,
}

#[derive(Debug)]
pub struct AdamW {
    pub groups: Vec<ParamGroup>,
    /// Each group's lr before scheduling; `set_lr_factor` scales from these.
    initial_lr: Vec<f64>,
    pub betas: (f64, f64),
    pub eps: f64,
    step: i64,
    state: Vec<Vec<Slot>>,
}

impl AdamW {
    /// β (0.9, 0.98), ε 1e-8, as the reference.
    pub fn new(groups: Vec<ParamGroup>) -> Self {
        let state = groups
            .iter()
            .map(|g| {
                g.params
                    .iter()
                    .map(|(_, p)| Slot {
                        exp_avg: p.zeros_like().detach(),
                        exp_avg_sq: p.zeros_like().detach(),
                    })
                    .collect()
            })
            .collect();
        Self {
            initial_lr: groups.iter().map(|g| g.lr).collect(),
            groups,
            betas: (0.9, 0.98),
            eps: 1e-8,
            step: 0,
            state,
        }
    }

    pub fn step_count(&self) -> i64 {
        self.step
    }

    /// Sets every group's lr to its initial lr times `factor` (from [`super::LrSchedule`]).
    pub fn set_lr_factor(&mut self, factor: f64) {
        for (g, lr0) in self.groups.iter_mut().zip(&self.initial_lr) {
            g.lr = lr0 * factor;
        }
    }

    pub fn zero_grad(&mut self) {
        for g in &mut self.groups {
            for (_, p) in &mut g.params {
                p.zero_grad();
            }
        }
    }

    /// One update from the parameters' current gradients (parameters without one are skipped).
    pub fn step(&mut self) {
        self.step += 1;
        let (b1, b2) = self.betas;
        let t = self.step as i32;
        let correction = (1.0 - b2.powi(t)).sqrt() / (1.0 - b1.powi(t));
        tch::no_grad(|| {
            for (g, slots) in self.groups.iter_mut().zip(&mut self.state) {
                for ((_, p), s) in g.params.iter_mut().zip(slots.iter_mut()) {
                    let grad = p.grad();
                    if !grad.defined() {
                        continue;
                    }
                    let _ = s.exp_avg.g_mul_scalar_(b1).g_add_(&(&grad * (1.0 - b1)));
                    let _ = s
                        .exp_avg_sq
                        .g_mul_scalar_(b2)
                        .g_add_(&(&grad * &grad * (1.0 - b2)));
                    let denom = s.exp_avg_sq.sqrt() + self.eps;
                    let update = &s.exp_avg / denom * (g.lr * correction);
                    let _ = p.g_sub_(&update);
                    if g.weight_decay > 0.0 {
                        let decay = &*p * (g.lr * g.weight_decay);
                        let _ = p.g_sub_(&decay);
                    }
                }
            }
        });
    }

    /// The state as named tensors: `{param}.exp_avg`, `{param}.exp_avg_sq`, and `step`.
    pub fn state_tensors(&self) -> Vec<(String, Tensor)> {
        let mut out = vec![("step".to_string(), Tensor::from(self.step))];
        for (g, slots) in self.groups.iter().zip(&self.state) {
            for ((name, _), s) in g.params.iter().zip(slots) {
                out.push((format!("{name}.exp_avg"), s.exp_avg.shallow_clone()));
                out.push((format!("{name}.exp_avg_sq"), s.exp_avg_sq.shallow_clone()));
            }
        }
        out
    }

    pub fn save(&self, path: &Path) -> Result<(), tch::TchError> {
        let named = self.state_tensors();
        let refs: Vec<(&str, &Tensor)> = named.iter().map(|(n, t)| (n.as_str(), t)).collect();
        Tensor::save_multi(&refs, path)
    }

    /// Restores state saved by [`AdamW::save`] for the same parameter names and shapes.
    pub fn load(&mut self, path: &Path) -> Result<(), tch::TchError> {
        let named: std::collections::HashMap<String, Tensor> =
            Tensor::load_multi(path)?.into_iter().collect();
        let missing = |n: &str| {
            tch::TchError::FileFormat(format!("{}: no `{n}` in optimizer state", path.display()))
        };
        self.step = named
            .get("step")
            .ok_or_else(|| missing("step"))?
            .int64_value(&[]);
        for (g, slots) in self.groups.iter().zip(&mut self.state) {
            for ((name, p), s) in g.params.iter().zip(slots.iter_mut()) {
                for (suffix, dst) in [
                    ("exp_avg", &mut s.exp_avg),
                    ("exp_avg_sq", &mut s.exp_avg_sq),
                ] {
                    let key = format!("{name}.{suffix}");
                    let src = named.get(&key).ok_or_else(|| missing(&key))?;
                    if src.size() != p.size() {
                        return Err(tch::TchError::Shape(format!(
                            "{}: `{key}` has shape {:?}, the parameter {:?}",
                            path.display(),
                            src.size(),
                            p.size()
                        )));
                    }
                    *dst = src
                        .to_kind(Kind::Float)
                        .to_device(p.device())
                        .to_kind(p.kind());
                }
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::super::param_groups::{GroupKind, ParamGroup};
    use super::*;

    fn group(values: &[f32], lr: f64, wd: f64) -> ParamGroup {
        ParamGroup {
            kind: GroupKind::Base,
            decay: wd > 0.0,
            lr,
            weight_decay: wd,
            params: vec![(
                "w".into(),
                Tensor::from_slice(values).set_requires_grad(true),
            )],
        }
    }

    /// The transformers AdamW update written out in scalars.
    fn reference(mut p: f64, grads: &[f64], lr: f64, wd: f64) -> f64 {
        let (b1, b2, eps) = (0.9f64, 0.98f64, 1e-8);
        let (mut m, mut v) = (0.0, 0.0);
        for (t, g) in grads.iter().enumerate() {
            let t = t as i32 + 1;
            m = b1 * m + (1.0 - b1) * g;
            v = b2 * v + (1.0 - b2) * g * g;
            let step = lr * (1.0 - b2.powi(t)).sqrt() / (1.0 - b1.powi(t));
            p -= step * m / (v.sqrt() + eps);
            p -= lr * wd * p;
        }
        p
    }

    #[test]
    fn matches_the_scalar_reference_and_restores_state() {
        let mut opt = AdamW::new(vec![group(&[1.0, -2.0], 0.1, 0.01)]);
        let grads = [[0.5f32, -1.0], [0.25, 0.5], [-0.3, 0.1]];
        let dir = tempfile::tempdir().unwrap();
        let mut resumed: Option<AdamW> = None;
        for (i, g) in grads.iter().enumerate() {
            for o in std::iter::once(&mut opt).chain(resumed.as_mut()) {
                o.zero_grad();
                let w = o.groups[0].params[0].1.shallow_clone();
                (&w * Tensor::from_slice(g)).sum(Kind::Float).backward();
                o.step();
            }
            if i == 0 {
                opt.save(&dir.path().join("opt.pt")).unwrap();
                let w = opt.groups[0].params[0]
                    .1
                    .detach()
                    .copy()
                    .set_requires_grad(true);
                let mut g2 = group(&[0.0, 0.0], 0.1, 0.01);
                g2.params[0].1 = w;
                let mut o2 = AdamW::new(vec![g2]);
                o2.load(&dir.path().join("opt.pt")).unwrap();
                assert_eq!(o2.step_count(), 1);
                resumed = Some(o2);
            }
        }
        let w = &opt.groups[0].params[0].1;
        let expect0 = reference(1.0, &grads.map(|g| g[0] as f64), 0.1, 0.01);
        let expect1 = reference(-2.0, &grads.map(|g| g[1] as f64), 0.1, 0.01);
        assert!((w.double_value(&[0]) - expect0).abs() < 1e-6);
        assert!((w.double_value(&[1]) - expect1).abs() < 1e-6);
        let r = &resumed.unwrap().groups[0].params[0].1;
        assert!(
            r.allclose(w, 1e-7, 1e-7, false),
            "resumed optimizer diverged"
        );
    }
}
