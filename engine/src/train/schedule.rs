//! Linear warmup then polynomial decay, as transformers'
//! `get_polynomial_decay_schedule_with_warmup` (the reference uses power 1: linear decay), or
//! cosine decay, as `get_cosine_schedule_with_warmup` (`decay_power = "cosine"`).

use experiments::DecayPower;

/// The learning-rate multiplier schedule of one run, in optimiser steps.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Schedule {
    pub warmup_steps: u64,
    pub total_steps: u64,
    pub base_lr: f64,
    pub end_lr: f64,
    pub power: DecayPower,
}

impl Schedule {
    /// `warmup` below 1 is a fraction of `total_steps` (the reference's float `warmup_steps`).
    pub fn new(
        warmup: f64,
        total_steps: u64,
        base_lr: f64,
        end_lr: f64,
        power: DecayPower,
    ) -> Self {
        let warmup_steps = if warmup < 1.0 {
            (total_steps as f64 * warmup.max(0.0)) as u64
        } else {
            warmup as u64
        };
        Self {
            warmup_steps,
            total_steps,
            base_lr,
            end_lr,
            power,
        }
    }

    /// The factor applied to every group's initial learning rate at `step` (0-based, before
    /// the optimiser step is taken, as LambdaLR does).
    pub fn factor(&self, step: u64) -> f64 {
        if step < self.warmup_steps {
            return step as f64 / self.warmup_steps.max(1) as f64;
        }
        let power = match self.power {
            DecayPower::Power(p) => p,
            DecayPower::Cosine => {
                // One half cosine wave (`num_cycles = 0.5`) from the warmup's end to zero.
                let progress = (step - self.warmup_steps) as f64
                    / self.total_steps.saturating_sub(self.warmup_steps).max(1) as f64;
                return (0.5 * (1.0 + (std::f64::consts::PI * progress).cos())).max(0.0);
            }
        };
        if step > self.total_steps {
            return self.end_lr / self.base_lr;
        }
        let range = self.base_lr - self.end_lr;
        let decay_steps = (self.total_steps - self.warmup_steps) as f64;
        let remaining = if decay_steps > 0.0 {
            1.0 - (step - self.warmup_steps) as f64 / decay_steps
        } else {
            0.0
        };
        (range * remaining.powf(power) + self.end_lr) / self.base_lr
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn warmup_then_linear_decay_to_zero() {
        let s = Schedule::new(0.1, 100, 1e-4, 0.0, DecayPower::Power(1.0));
        assert_eq!(s.warmup_steps, 10);
        assert_eq!(s.factor(0), 0.0);
        assert!((s.factor(5) - 0.5).abs() < 1e-12);
        assert!((s.factor(10) - 1.0).abs() < 1e-12);
        assert!((s.factor(55) - 0.5).abs() < 1e-12);
        assert_eq!(s.factor(100), 0.0);
        assert_eq!(s.factor(150), 0.0);
    }

    #[test]
    fn integer_warmup_and_end_lr() {
        let s = Schedule::new(4.0, 8, 1.0, 0.5, DecayPower::Power(1.0));
        assert_eq!(s.warmup_steps, 4);
        assert!((s.factor(6) - 0.75).abs() < 1e-12);
        assert!((s.factor(8) - 0.5).abs() < 1e-12);
        assert!((s.factor(9) - 0.5).abs() < 1e-12);
    }

    /// transformers' `get_cosine_schedule_with_warmup`: linear warmup, then
    /// `max(0, ½(1 + cos(π · progress)))`, zero from the last step on; `end_lr` plays no part.
    #[test]
    fn cosine_after_warmup() {
        let s = Schedule::new(10.0, 110, 1e-4, 5e-5, DecayPower::Cosine);
        assert!((s.factor(5) - 0.5).abs() < 1e-12);
        assert!((s.factor(10) - 1.0).abs() < 1e-12);
        assert!((s.factor(60) - 0.5).abs() < 1e-12);
        assert!((s.factor(35) - 0.5 * (1.0 + std::f64::consts::FRAC_PI_4.cos())).abs() < 1e-12);
        assert!(s.factor(110).abs() < 1e-12);
        assert!(s.factor(150) >= 0.0);
    }
}
