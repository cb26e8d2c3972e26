//! System metrics, sampled every few seconds on a thread of their own (never on the step's
//! path): the process's RSS, CPU use and threads from `/proc`; on CUDA the caching allocator's
//! allocated, reserved and peak bytes of the run's device (through the C++ shim); and through
//! NVML, loaded at run time, each GPU's utilisation, memory, power and temperature. No NVML
//! (no driver, a CPU machine) means no NVML metrics and no error: one debug log.
//!
//! Names are under `system/`; the W&B sync maps them onto the `system.*` keys W&B's own client
//! writes to `wandb-events.jsonl`.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::Sender;
use std::sync::{Arc, Condvar, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use experiments::run::Event;

/// Process resident set size, MiB.
pub const PROC_RSS_MB: &str = "system/proc/rss_mb";
/// Process CPU use as a share of all the machine's cores, percent (0–100).
pub const PROC_CPU_PERCENT: &str = "system/proc/cpu_percent";
/// Threads of the process.
pub const PROC_THREADS: &str = "system/proc/threads";
/// Resident set size as a percentage of the machine's memory.
pub const PROC_MEMORY_PERCENT: &str = "system/proc/memory_percent";

/// The process metrics every sample has on Linux (GPU metrics are named per device, see
/// [`gpu_key`]).
pub const PROC_METRIC_NAMES: [&str; 4] = [
    PROC_RSS_MB,
    PROC_CPU_PERCENT,
    PROC_THREADS,
    PROC_MEMORY_PERCENT,
];

/// What is measured per GPU, as the last part of `system/gpu/<index>/<what>`.
pub mod gpu {
    /// The caching allocator's bytes in use by tensors now, MiB.
    pub const ALLOCATED_MB: &str = "allocated_mb";
    /// The caching allocator's bytes reserved from the device now, MiB.
    pub const RESERVED_MB: &str = "reserved_mb";
    /// The caching allocator's peak of `allocated_mb` since the process started, MiB.
    pub const PEAK_ALLOCATED_MB: &str = "peak_allocated_mb";
    /// NVML: percent of the sample period a kernel ran.
    pub const UTIL_PERCENT: &str = "util_percent";
    /// NVML: percent of the sample period device memory was read or written.
    pub const MEMORY_UTIL_PERCENT: &str = "memory_util_percent";
    /// NVML: device memory used (every process), MiB.
    pub const MEMORY_USED_MB: &str = "memory_used_mb";
    /// NVML: device memory used as a percentage of the total.
    pub const MEMORY_PERCENT: &str = "memory_percent";
    /// NVML: board power draw, W.
    pub const POWER_W: &str = "power_w";
    /// NVML: power draw as a percentage of the enforced limit.
    pub const POWER_PERCENT: &str = "power_percent";
    /// NVML: GPU core temperature, °C.
    pub const TEMP_C: &str = "temp_c";
}

/// `system/gpu/<index>/<what>`.
pub fn gpu_key(index: usize, what: &str) -> String {
    format!("system/gpu/{index}/{what}")
}

const MIB: f64 = 1024.0 * 1024.0;

/// Reads one sample at a time; keeps what the next sample needs (the CPU time at the last).
pub struct Probe {
    /// The run's CUDA device, whose caching allocator is read.
    cuda: Option<usize>,
    nvml: Option<nvml_wrapper::Nvml>,
    last_cpu: Option<(Instant, f64)>,
    cores: f64,
    mem_total_kb: Option<f64>,
}

impl Probe {
    /// A probe for a run on `device`. NVML is loaded here (a failure is logged once, at debug
    /// level, and leaves the NVML metrics out).
    pub fn new(device: tch::Device) -> Self {
        let cuda = match device {
            tch::Device::Cuda(i) => Some(i),
            _ => None,
        };
        let nvml = match nvml_wrapper::Nvml::init() {
            Ok(nvml) => Some(nvml),
            Err(e) => {
                tracing::debug!("no NVML, so no GPU utilisation, power or temperature: {e}");
                None
            }
        };
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get()) as f64;
        Self {
            cuda,
            nvml,
            last_cpu: None,
            cores,
            mem_total_kb: meminfo_total_kb(),
        }
    }

    /// Whether NVML was loaded.
    pub fn has_nvml(&self) -> bool {
        self.nvml.is_some()
    }

    /// One sample: every metric that could be read now.
    pub fn sample(&mut self) -> Vec<(String, f64)> {
        let mut out = Vec::new();
        if let Some(status) = read_status() {
            if let Some(kb) = status.rss_kb {
                out.push((PROC_RSS_MB.to_string(), kb / 1024.0));
                if let Some(total) = self.mem_total_kb.filter(|t| *t > 0.0) {
                    out.push((PROC_MEMORY_PERCENT.to_string(), 100.0 * kb / total));
                }
            }
            if let Some(threads) = status.threads {
                out.push((PROC_THREADS.to_string(), threads));
            }
        }
        if let Some(cpu_s) = process_cpu_seconds() {
            let now = Instant::now();
            if let Some((then, before)) = self.last_cpu {
                let wall = now.duration_since(then).as_secs_f64();
                if wall > 0.0 {
                    // CPU time comes in clock ticks (10 ms): over a short window the share
                    // can read past what the cores can give; it is bounded by them.
                    let share = ((cpu_s - before) / wall / self.cores).clamp(0.0, 1.0);
                    out.push((PROC_CPU_PERCENT.to_string(), 100.0 * share));
                }
            }
            self.last_cpu = Some((now, cpu_s));
        }
        if let Some(device) = self.cuda {
            match super::native::cuda_memory(device) {
                Ok(Some(bytes)) => out.extend([
                    (
                        gpu_key(device, gpu::ALLOCATED_MB),
                        bytes.allocated as f64 / MIB,
                    ),
                    (
                        gpu_key(device, gpu::RESERVED_MB),
                        bytes.reserved as f64 / MIB,
                    ),
                    (
                        gpu_key(device, gpu::PEAK_ALLOCATED_MB),
                        bytes.peak_allocated as f64 / MIB,
                    ),
                ]),
                Ok(None) => {}
                Err(e) => tracing::debug!("CUDA caching allocator statistics: {e}"),
            }
        }
        if let Some(nvml) = &self.nvml {
            nvml_sample(nvml, &mut out);
        }
        out
    }
}

/// Each NVML device's utilisation, memory, power and temperature (what a device does not
/// report is left out).
fn nvml_sample(nvml: &nvml_wrapper::Nvml, out: &mut Vec<(String, f64)>) {
    use nvml_wrapper::enum_wrappers::device::TemperatureSensor;
    let Ok(count) = nvml.device_count() else {
        return;
    };
    for index in 0..count {
        let Ok(device) = nvml.device_by_index(index) else {
            continue;
        };
        let i = index as usize;
        if let Ok(u) = device.utilization_rates() {
            out.push((gpu_key(i, gpu::UTIL_PERCENT), f64::from(u.gpu)));
            out.push((gpu_key(i, gpu::MEMORY_UTIL_PERCENT), f64::from(u.memory)));
        }
        if let Ok(m) = device.memory_info() {
            out.push((gpu_key(i, gpu::MEMORY_USED_MB), m.used as f64 / MIB));
            if m.total > 0 {
                out.push((
                    gpu_key(i, gpu::MEMORY_PERCENT),
                    100.0 * m.used as f64 / m.total as f64,
                ));
            }
        }
        if let Ok(mw) = device.power_usage() {
            out.push((gpu_key(i, gpu::POWER_W), f64::from(mw) / 1000.0));
            if let Ok(limit) = device.enforced_power_limit() {
                if limit > 0 {
                    out.push((
                        gpu_key(i, gpu::POWER_PERCENT),
                        100.0 * f64::from(mw) / f64::from(limit),
                    ));
                }
            }
        }
        if let Ok(t) = device.temperature(TemperatureSensor::Gpu) {
            out.push((gpu_key(i, gpu::TEMP_C), f64::from(t)));
        }
    }
}

struct Status {
    rss_kb: Option<f64>,
    threads: Option<f64>,
}

/// `VmRSS` and `Threads` of `/proc/self/status` (none off Linux).
fn read_status() -> Option<Status> {
    let text = std::fs::read_to_string("/proc/self/status").ok()?;
    let field = |name: &str| {
        text.lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|rest| rest.split_whitespace().next())
            .and_then(|v| v.parse::<f64>().ok())
    };
    Some(Status {
        rss_kb: field("VmRSS:"),
        threads: field("Threads:"),
    })
}

fn meminfo_total_kb() -> Option<f64> {
    let text = std::fs::read_to_string("/proc/meminfo").ok()?;
    text.lines()
        .find_map(|l| l.strip_prefix("MemTotal:"))
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|v| v.parse().ok())
}

/// The clock ticks of `/proc/<pid>/stat` (`USER_HZ`): 100 on every architecture this engine
/// is built for (x86-64, aarch64), fixed by the kernel's ABI whatever `CONFIG_HZ` is.
const USER_HZ: f64 = 100.0;

/// User + system CPU time of the whole process (every thread), seconds.
fn process_cpu_seconds() -> Option<f64> {
    parse_stat_cpu_seconds(&std::fs::read_to_string("/proc/self/stat").ok()?)
}

/// `utime + stime` (fields 14 and 15) of a `/proc/<pid>/stat` line, in seconds. The command
/// name (field 2) is in parentheses and may hold spaces, so fields are counted after its `)`.
fn parse_stat_cpu_seconds(stat: &str) -> Option<f64> {
    let after = &stat[stat.rfind(')')? + 1..];
    let mut fields = after.split_whitespace();
    // `after` starts at field 3 (the state): utime is the 12th of these, stime the 13th.
    let utime: f64 = fields.nth(11)?.parse().ok()?;
    let stime: f64 = fields.next()?.parse().ok()?;
    Some((utime + stime) / USER_HZ)
}

/// The sampling thread of one run: samples every `interval` and once more at the stop, and
/// sends each sample as [`Event::System`] tagged with the run's latest optimiser step. Stopped
/// (and joined, after its closing sample) by [`stop`](Self::stop) or on drop; a stop
/// interrupts the wait.
pub struct SystemSampler {
    stop: Arc<(Mutex<bool>, Condvar)>,
    handle: Option<JoinHandle<()>>,
}

impl SystemSampler {
    /// Starts sampling for a run on `device` (the first sample after one `interval`, the last
    /// at the stop); `step` is the loop's latest optimiser step.
    pub fn start(
        interval: Duration,
        device: tch::Device,
        step: Arc<AtomicU64>,
        events: Sender<Event>,
    ) -> Self {
        let stop = Arc::new((Mutex::new(false), Condvar::new()));
        let flag = Arc::clone(&stop);
        let handle = std::thread::Builder::new()
            .name("towerlab-system-metrics".into())
            .spawn(move || {
                let mut probe = Probe::new(device);
                // The first reading only starts the CPU clock; samples come every interval
                // from then on (as W&B's own client does), and one more at the stop, so a run
                // shorter than the interval still has its reading and every run its last one.
                probe.sample();
                let (lock, wake) = &*flag;
                loop {
                    let Ok(stopped) = lock.lock() else { return };
                    let Ok((stopped, _)) =
                        wake.wait_timeout_while(stopped, interval, |stopped| !*stopped)
                    else {
                        return;
                    };
                    let last = *stopped;
                    drop(stopped);
                    let metrics = probe.sample();
                    if !metrics.is_empty() {
                        let event = Event::System {
                            step: step.load(Ordering::Relaxed),
                            metrics,
                        };
                        if events.send(event).is_err() {
                            return;
                        }
                    }
                    if last {
                        return;
                    }
                }
            })
            .ok();
        if handle.is_none() {
            tracing::warn!("could not start the system metrics thread; no system/ metrics");
        }
        Self { stop, handle }
    }

    /// Stops the thread and waits for it.
    pub fn stop(mut self) {
        self.shutdown();
    }

    fn shutdown(&mut self) {
        if let Some(handle) = self.handle.take() {
            let (lock, wake) = &*self.stop;
            if let Ok(mut stopped) = lock.lock() {
                *stopped = true;
            }
            wake.notify_all();
            let _ = handle.join();
        }
    }
}

impl Drop for SystemSampler {
    fn drop(&mut self) {
        self.shutdown();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cpu_time_is_read_past_a_command_name_with_spaces_and_parentheses() {
        // pid (comm) state ppid pgrp session tty tpgid flags minflt cminflt majflt cmajflt
        // utime stime ...
        let line = "4242 (my (odd) prog) R 1 2 3 4 5 6 7 8 9 10 250 50 0 0 20 0 7 0";
        assert_eq!(parse_stat_cpu_seconds(line), Some(3.0));
        assert_eq!(parse_stat_cpu_seconds("garbage"), None);
    }

    #[test]
    fn a_sample_on_the_cpu_has_the_process_metrics_and_no_gpu_ones() {
        let mut probe = Probe::new(tch::Device::Cpu);
        let first: std::collections::BTreeMap<_, _> = probe.sample().into_iter().collect();
        let rss = first[PROC_RSS_MB];
        // This test process holds libtorch: tens of MiB at least, far below a TiB.
        assert!(rss > 10.0 && rss < 1e6, "rss {rss} MiB");
        assert!(first[PROC_THREADS] >= 1.0);
        assert!(!first.contains_key(PROC_CPU_PERCENT), "needs two samples");
        // Burn some CPU so the share is above zero.
        let t = Instant::now();
        let mut x = 0u64;
        while t.elapsed() < Duration::from_millis(50) {
            x = x.wrapping_mul(31).wrapping_add(7);
        }
        std::hint::black_box(x);
        let second: std::collections::BTreeMap<_, _> = probe.sample().into_iter().collect();
        let cpu = second[PROC_CPU_PERCENT];
        assert!(cpu > 0.0 && cpu <= 100.0 + 1e-9, "cpu {cpu}%");
        if !probe.has_nvml() {
            assert!(
                second.keys().all(|k| !k.starts_with("system/gpu/")),
                "{second:?}"
            );
        }
    }

    #[test]
    fn the_sampler_sends_samples_tagged_with_the_step_and_stops_at_once() {
        let (tx, rx) = std::sync::mpsc::channel();
        let step = Arc::new(AtomicU64::new(7));
        let sampler = SystemSampler::start(
            Duration::from_millis(20),
            tch::Device::Cpu,
            Arc::clone(&step),
            tx,
        );
        let first = rx.recv_timeout(Duration::from_secs(5)).expect("a sample");
        step.store(8, Ordering::Relaxed);
        let t = Instant::now();
        let later = loop {
            match rx
                .recv_timeout(Duration::from_secs(5))
                .expect("samples keep coming")
            {
                Event::System { step: 8, metrics } => break metrics,
                _ if t.elapsed() > Duration::from_secs(5) => panic!("never saw step 8"),
                _ => {}
            }
        };
        assert!(matches!(first, Event::System { step: 7, .. }), "{first:?}");
        assert!(later.iter().any(|(k, _)| k == PROC_RSS_MB));
        // A long interval is cut short by stop.
        drop(rx);
        let (tx, slow_rx) = std::sync::mpsc::channel();
        let slow = SystemSampler::start(Duration::from_secs(3600), tch::Device::Cpu, step, tx);
        std::thread::sleep(Duration::from_millis(50));
        let t = Instant::now();
        slow.stop();
        assert!(t.elapsed() < Duration::from_secs(2));
        // ... and still sends its closing sample, the only one of a run shorter than the
        // interval.
        let closing: Vec<Event> = slow_rx.try_iter().collect();
        assert!(
            matches!(closing.as_slice(), [Event::System { step: 8, .. }]),
            "{closing:?}"
        );
        sampler.stop();
    }
}
