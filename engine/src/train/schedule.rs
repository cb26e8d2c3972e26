//! `get_polynomial_decay_schedule_with_warmup` (power 1 = linear warmup then linear decay).

/// Warmup steps from the config value: a value below 1 is a fraction of `max_steps`.
pub fn warmup_steps(warmup: f64, max_steps: u64) -> u64 {
    if warmup < 1.0 {
        (max_steps as f64 * warmup.max(0.0)) as u64
    } else {
        warmup as u64
    }
}

#[derive(Debug, Clone, Copy, PartialEq)]
pub struct LrSchedule {
    pub warmup_steps: u64,
    pub total_steps: u64,
    /// The optimiser's default lr (`learning_rate`): `end_lr` is relative to it.
    pub base_lr: f64,
    pub end_lr: f64,
    pub power: f64,
}

impl LrSchedule {
    /// The factor applied to every group's initial lr at `step` (the number of optimiser steps
    /// already taken).
    pub fn factor(&self, step: u64) -> f64 {
        if step < self.warmup_steps {
            return step as f64 / self.warmup_steps.max(1) as f64;
        }
        if step > self.total_steps || self.base_lr == 0.0 {
            return self.end_lr / self.base_lr.max(f64::MIN_POSITIVE);
        }
        let decay_steps = self.total_steps.saturating_sub(self.warmup_steps).max(1) as f64;
        let remaining = 1.0 - (step - self.warmup_steps) as f64 / decay_steps;
        let lr = (self.base_lr - self.end_lr) * remaining.powf(self.power) + self.end_lr;
        lr / self.base_lr
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn linear_warmup_then_linear_decay() {
        let s = LrSchedule {
            warmup_steps: warmup_steps(0.1, 100),
            total_steps: 100,
            base_lr: 1e-5,
            end_lr: 0.0,
            power: 1.0,
        };
        assert_eq!(s.warmup_steps, 10);
        assert_eq!(s.factor(0), 0.0);
        assert!((s.factor(5) - 0.5).abs() < 1e-12);
        assert!((s.factor(10) - 1.0).abs() < 1e-12);
        assert!((s.factor(55) - 0.5).abs() < 1e-12);
        assert!(s.factor(100).abs() < 1e-12);
        assert_eq!(s.factor(150), 0.0);
        assert_eq!(warmup_steps(2500.0, 100_000), 2500);
    }
}
