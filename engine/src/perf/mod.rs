//! What a run costs: model FLOPs counted from the configuration, the dense peaks of known GPUs,
//! and the `perf/` metrics of each optimiser step, measured on the host without adding a
//! device synchronisation to the step.

pub mod flops;
pub mod native;
pub mod peak;
pub mod profile;
pub mod system;

use std::time::{Duration, Instant};

pub use flops::{Flops, Shapes};
pub use peak::dense_peak_tflops;

/// Samples per second over the optimiser step.
pub const SAMPLES_PER_S: &str = "perf/samples_per_s";
/// Wall time of the optimiser step: every micro-batch of its gradient accumulation (data wait
/// included) and the optimiser update.
pub const STEP_TIME_S: &str = "perf/step_time_s";
/// Model FLOPs per training sample (forward + backward, every objective's passes).
pub const FLOPS_PER_SAMPLE: &str = "perf/flops_per_sample";
/// Achieved model TFLOP/s over the step.
pub const TFLOPS: &str = "perf/tflops";
/// Model FLOPs utilisation against the device's dense peak (CUDA, known or given peak).
pub const MFU: &str = "perf/mfu";

/// Every `perf/` metric name a training run may log.
pub const METRIC_NAMES: [&str; 5] = [SAMPLES_PER_S, STEP_TIME_S, FLOPS_PER_SAMPLE, TFLOPS, MFU];

/// Accumulates one optimiser step's samples and model FLOPs, timed from the first micro-batch
/// wait to the update, less any pause (an evaluation at an epoch's end that falls inside a
/// step whose gradient accumulation spans the epochs).
#[derive(Debug, Default)]
pub struct StepMeter {
    started: Option<Instant>,
    /// Time of the step before its last pause.
    before: Duration,
    samples: u64,
    flops: f64,
}

impl StepMeter {
    /// Marks the start of a micro-batch wait; the clock runs from the first one after the last
    /// step or pause.
    pub fn waiting(&mut self) {
        self.started.get_or_insert_with(Instant::now);
    }

    /// Stops the clock until the next [`waiting`](Self::waiting) (the end of an epoch: its
    /// evaluation and checkpoint are no step's time). A step with no micro-batch yet keeps
    /// nothing: the wait that found the epoch over belongs to no step.
    pub fn pause(&mut self) {
        let ran = self.started.take().map_or(Duration::ZERO, |t| t.elapsed());
        self.before = if self.samples == 0 {
            Duration::ZERO
        } else {
            self.before + ran
        };
    }

    /// Adds a micro-batch of `samples` samples costing `flops_per_sample` each.
    pub fn micro_batch(&mut self, samples: u64, flops_per_sample: u64) {
        self.samples += samples;
        self.flops += samples as f64 * flops_per_sample as f64;
    }

    /// Ends the step (after the optimiser update) and returns its metrics. `peak_tflops` is the
    /// device's dense peak when known (CUDA only), giving `perf/mfu`.
    pub fn finish(&mut self, peak_tflops: Option<f64>) -> Vec<(String, f64)> {
        let ran = self.started.take().map_or(Duration::ZERO, |t| t.elapsed());
        let elapsed = std::mem::take(&mut self.before) + ran;
        let (samples, flops) = (self.samples, self.flops);
        self.samples = 0;
        self.flops = 0.0;
        step_metrics(samples, flops, elapsed.as_secs_f64(), peak_tflops)
    }
}

/// The `perf/` metrics of a step of `samples` samples and `flops` model FLOPs in `seconds`.
pub fn step_metrics(
    samples: u64,
    flops: f64,
    seconds: f64,
    peak_tflops: Option<f64>,
) -> Vec<(String, f64)> {
    if samples == 0 || seconds <= 0.0 {
        return Vec::new();
    }
    let tflops = flops / seconds / 1e12;
    let mut out = vec![
        (SAMPLES_PER_S.to_string(), samples as f64 / seconds),
        (STEP_TIME_S.to_string(), seconds),
        (FLOPS_PER_SAMPLE.to_string(), flops / samples as f64),
        (TFLOPS.to_string(), tflops),
    ];
    if let Some(peak) = peak_tflops.filter(|p| *p > 0.0) {
        out.push((MFU.to_string(), tflops / peak));
    }
    out
}

/// The peak `perf/mfu` divides by: the `peak_tflops` setting when set, else the table's entry
/// for the CUDA device `name`; none on the CPU.
pub fn peak_for(
    device: tch::Device,
    name: Option<&str>,
    precision: experiments::Precision,
    setting: f64,
) -> Option<f64> {
    if !device.is_cuda() {
        return None;
    }
    if setting > 0.0 {
        return Some(setting);
    }
    name.and_then(|n| dense_peak_tflops(n, precision))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn step_metrics_are_ratios_of_what_was_measured() {
        let m: std::collections::BTreeMap<_, _> = step_metrics(64, 64.0 * 3e12, 2.0, Some(48.0))
            .into_iter()
            .collect();
        assert_eq!(m[SAMPLES_PER_S], 32.0);
        assert_eq!(m[STEP_TIME_S], 2.0);
        assert_eq!(m[FLOPS_PER_SAMPLE], 3e12);
        assert_eq!(m[TFLOPS], 96.0);
        assert_eq!(m[MFU], 2.0);
        assert!(!step_metrics(64, 1e12, 2.0, None)
            .iter()
            .any(|(k, _)| k == MFU));
        assert!(step_metrics(0, 0.0, 1.0, None).is_empty());
    }

    #[test]
    fn a_pause_is_no_steps_time() {
        let nap = || std::thread::sleep(Duration::from_millis(30));
        let time = |m: &[(String, f64)]| m.iter().find(|(k, _)| k == STEP_TIME_S).unwrap().1;
        let mut meter = StepMeter::default();
        let all = Instant::now();
        meter.waiting();
        nap();
        meter.pause(); // nothing counted yet: dropped
        nap();
        meter.waiting();
        meter.micro_batch(4, 10);
        nap();
        meter.pause(); // an epoch's evaluation inside the step
        nap();
        nap();
        meter.waiting();
        nap();
        let t = time(&meter.finish(None));
        // Two naps counted; three (at least 90 ms) not.
        let total = all.elapsed().as_secs_f64();
        assert!(t >= 0.06 && t <= total - 0.09, "{t} of {total}");
        meter.waiting();
        meter.micro_batch(4, 10);
        let t = time(&meter.finish(None));
        assert!(t < 0.02, "a finished step leaves nothing behind: {t}");
    }

    #[test]
    fn the_setting_overrides_the_table_and_the_cpu_has_no_peak() {
        let bf16 = experiments::Precision::Bf16;
        let gpu = tch::Device::Cuda(0);
        assert_eq!(peak_for(gpu, Some("NVIDIA H200"), bf16, 0.0), Some(989.4));
        assert_eq!(peak_for(gpu, Some("NVIDIA H200"), bf16, 500.0), Some(500.0));
        assert_eq!(peak_for(gpu, Some("cuda:0"), bf16, 0.0), None);
        assert_eq!(
            peak_for(tch::Device::Cpu, Some("NVIDIA H200"), bf16, 500.0),
            None
        );
    }
}
