//! The reference's torchmetrics accumulators (`gadgets/my_metrics.py`), on the host in f64.

use std::collections::BTreeMap;

use tch::{Kind, Tensor};

use crate::model::objectives::StepMetric;

/// Per-name (Σ value · weight, Σ weight): how step, epoch and evaluation metrics accumulate.
pub type WeightedSums = BTreeMap<String, (f64, f64)>;

/// Adds `metrics` to `sums`.
pub fn accumulate(sums: &mut WeightedSums, metrics: &[StepMetric]) {
    for m in metrics {
        let e = sums.entry(m.name.clone()).or_default();
        e.0 += m.value * m.weight;
        e.1 += m.weight;
    }
}

/// The weighted mean of every name that has weight.
pub fn weighted_means(sums: WeightedSums) -> BTreeMap<String, f64> {
    sums.into_iter()
        .filter(|(_, (_, w))| *w > 0.0)
        .map(|(k, (v, w))| (k, v / w))
        .collect()
}

/// Accuracy of `argmax(logits)` against labels, ignoring -100.
#[derive(Debug, Default, Clone, Copy, PartialEq)]
pub struct Accuracy {
    pub correct: f64,
    pub total: f64,
}

impl Accuracy {
    pub fn update(&mut self, logits: &Tensor, target: &Tensor) {
        let preds = logits
            .detach()
            .argmax(-1, false)
            .to_device(tch::Device::Cpu);
        let target = target.detach().to_device(tch::Device::Cpu);
        let valid = target.ne(-100);
        let n = i64::try_from(valid.sum(Kind::Int64)).unwrap_or(0);
        if n == 0 {
            return;
        }
        let correct = preds.eq_tensor(&target).logical_and(&valid);
        self.correct += i64::try_from(correct.sum(Kind::Int64)).unwrap_or(0) as f64;
        self.total += n as f64;
    }

    pub fn compute(&self) -> f64 {
        if self.total == 0.0 {
            0.0
        } else {
            self.correct / self.total
        }
    }
}

/// Running mean of a scalar (the reference's `Scalar`).
#[derive(Debug, Default, Clone, Copy, PartialEq)]
pub struct Scalar {
    pub sum: f64,
    pub total: f64,
}

impl Scalar {
    pub fn update(&mut self, value: f64) {
        self.sum += value;
        self.total += 1.0;
    }

    pub fn compute(&self) -> f64 {
        if self.total == 0.0 {
            0.0
        } else {
            self.sum / self.total
        }
    }
}

/// Soft VQA accuracy: the target score of the arg-max answer, averaged over questions.
#[derive(Debug, Default, Clone, Copy, PartialEq)]
pub struct VqaScore {
    pub score: f64,
    pub total: f64,
}

impl VqaScore {
    /// `logits` and `target` are `[B, num_answers]`; `target` holds the soft scores.
    pub fn update(&mut self, logits: &Tensor, target: &Tensor) {
        let pred = logits.detach().argmax(1, true);
        let picked = target.detach().to_kind(Kind::Float).gather(1, &pred, false);
        self.score += f64::try_from(picked.sum(Kind::Double)).unwrap_or(0.0);
        self.total += logits.size()[0] as f64;
    }

    pub fn compute(&self) -> f64 {
        if self.total == 0.0 {
            0.0
        } else {
            self.score / self.total
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accuracy_ignores_minus_100() {
        let logits = Tensor::from_slice(&[0.1f32, 0.9, 0.8, 0.2, 0.3, 0.7]).view([3, 2]);
        let target = Tensor::from_slice(&[1i64, 1, -100]);
        let mut acc = Accuracy::default();
        acc.update(&logits, &target);
        assert_eq!(acc.total, 2.0);
        assert_eq!(acc.correct, 1.0);
        assert_eq!(acc.compute(), 0.5);
    }

    #[test]
    fn vqa_score_takes_the_soft_target_of_the_argmax() {
        let logits = Tensor::from_slice(&[0.1f32, 2.0, 0.0, 3.0, 0.0, 0.0]).view([2, 3]);
        let target = Tensor::from_slice(&[0.0f32, 0.6, 1.0, 0.3, 0.0, 1.0]).view([2, 3]);
        let mut s = VqaScore::default();
        s.update(&logits, &target);
        assert!((s.compute() - 0.45).abs() < 1e-6);
    }

    #[test]
    fn scalar_is_a_mean() {
        let mut s = Scalar::default();
        s.update(1.0);
        s.update(2.0);
        assert_eq!(s.compute(), 1.5);
    }
}
