//! What a run costs and how long it has left, from what runs report (their `perf/` and
//! `system/` metrics, progress and times): one definition for `towerlab show`, the TUI and
//! reports. An estimate that cannot be made is `None`, shown as [`UNKNOWN`], never a guess.

use std::collections::BTreeMap;

/// How an unknown figure is shown.
pub const UNKNOWN: &str = "–";

/// Metric names read here (the engine's, `engine::perf` and `engine::perf::system`).
pub mod names {
    pub const SAMPLES_PER_S: &str = "perf/samples_per_s";
    pub const STEP_TIME_S: &str = "perf/step_time_s";
    pub const TFLOPS: &str = "perf/tflops";
    pub const MFU: &str = "perf/mfu";
    pub const RSS_MB: &str = "system/proc/rss_mb";
    /// `system/gpu/<i>/<what>`: the caching allocator's peak and NVML's used memory.
    pub const GPU_PREFIX: &str = "system/gpu/";
    pub const GPU_PEAK_ALLOCATED_MB: &str = "peak_allocated_mb";
    pub const GPU_MEMORY_USED_MB: &str = "memory_used_mb";
}

/// The time left of a run at step `done` of `total`, at `step_time_s` per step (its recent
/// step time); `None` without a total or a step time.
pub fn run_eta_s(done: u64, total: u64, step_time_s: Option<f64>) -> Option<f64> {
    let t = step_time_s.filter(|t| t.is_finite() && *t > 0.0)?;
    if total == 0 {
        return None;
    }
    Some(total.saturating_sub(done) as f64 * t)
}

/// A run still to finish in a grid.
#[derive(Debug, Clone, PartialEq)]
pub struct RunLeft {
    /// The cell it belongs to (other seeds of the cell are the most comparable runs).
    pub cell: String,
    /// Cells of the same kind (pre-training or fine-tuning): the next most comparable.
    pub kind: String,
    /// For a running run: its own estimate when it has one ([`run_eta_s`]), else the seconds
    /// it has run so far (taken off the comparable runs' mean).
    pub running: Option<Running>,
}

#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Running {
    Eta(f64),
    Elapsed(f64),
}

/// A finished run: its cell, kind and wall time.
#[derive(Debug, Clone, PartialEq)]
pub struct RunDone {
    pub cell: String,
    pub kind: String,
    pub wall_s: f64,
}

/// The time left of a grid: each run left takes the mean wall time of the finished runs of its
/// cell (else of its kind), less what it has run; the sum is divided among `slots` runs at a
/// time (the runs running now, at least one). `None` when some run left has no comparable
/// finished run and no estimate of its own; `Some(0)` when nothing is left.
pub fn grid_eta_s(left: &[RunLeft], done: &[RunDone], slots: usize) -> Option<f64> {
    let mut by_cell: BTreeMap<&str, (f64, usize)> = BTreeMap::new();
    let mut by_kind: BTreeMap<&str, (f64, usize)> = BTreeMap::new();
    for d in done
        .iter()
        .filter(|d| d.wall_s.is_finite() && d.wall_s > 0.0)
    {
        let c = by_cell.entry(d.cell.as_str()).or_default();
        c.0 += d.wall_s;
        c.1 += 1;
        let k = by_kind.entry(d.kind.as_str()).or_default();
        k.0 += d.wall_s;
        k.1 += 1;
    }
    let mean =
        |m: &BTreeMap<&str, (f64, usize)>, key: &str| m.get(key).map(|(sum, n)| sum / *n as f64);
    let mut total = 0.0;
    for run in left {
        let comparable = mean(&by_cell, &run.cell).or_else(|| mean(&by_kind, &run.kind));
        total += match (run.running, comparable) {
            (Some(Running::Eta(eta)), _) => eta,
            (Some(Running::Elapsed(ran)), Some(m)) => (m - ran).max(0.0),
            (None, Some(m)) => m,
            (Some(Running::Elapsed(_)), None) | (None, None) => return None,
        };
    }
    Some(total / slots.max(1) as f64)
}

/// Seconds as people read a time left: `3 h 04 min`, `2 min 05 s`, `4.2 s`; [`UNKNOWN`] for
/// `None`.
pub fn eta_text(seconds: Option<f64>) -> String {
    match seconds {
        Some(s) if s.is_finite() => crate::clock::duration_text((s * 1000.0).round() as i64),
        _ => UNKNOWN.to_string(),
    }
}

/// The figures of one run a user wants at a glance, from its metrics' last values (`last`:
/// name → value).
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct Glance {
    pub samples_per_s: Option<f64>,
    pub step_time_s: Option<f64>,
    pub tflops: Option<f64>,
    pub mfu: Option<f64>,
    pub rss_mb: Option<f64>,
    /// The largest GPU memory figure of any device: the caching allocator's peak, else NVML's
    /// used memory.
    pub gpu_mb: Option<f64>,
}

impl Glance {
    pub fn of<'a>(last: impl IntoIterator<Item = (&'a str, f64)>) -> Self {
        let mut g = Self::default();
        let (mut peak, mut used): (Option<f64>, Option<f64>) = (None, None);
        for (key, value) in last {
            if !value.is_finite() {
                continue;
            }
            match key {
                names::SAMPLES_PER_S => g.samples_per_s = Some(value),
                names::STEP_TIME_S => g.step_time_s = Some(value),
                names::TFLOPS => g.tflops = Some(value),
                names::MFU => g.mfu = Some(value),
                names::RSS_MB => g.rss_mb = Some(value),
                _ => {
                    if let Some(rest) = key.strip_prefix(names::GPU_PREFIX) {
                        let what = rest.split_once('/').map(|(_, w)| w);
                        let slot = match what {
                            Some(names::GPU_PEAK_ALLOCATED_MB) => &mut peak,
                            Some(names::GPU_MEMORY_USED_MB) => &mut used,
                            _ => continue,
                        };
                        *slot = Some(slot.map_or(value, |v: f64| v.max(value)));
                    }
                }
            }
        }
        g.gpu_mb = peak.or(used);
        g
    }

    /// Whether the run reported any of these figures.
    pub fn is_empty(&self) -> bool {
        *self == Self::default()
    }

    /// `12.3 samples/s · 0.21 TFLOP/s · MFU 41.0%` ([`UNKNOWN`] for what is missing; MFU
    /// only where known, on CUDA).
    pub fn throughput_text(&self) -> String {
        let mut out = match self.samples_per_s {
            Some(v) => format!("{} samples/s", three_digits(v)),
            None => format!("{UNKNOWN} samples/s"),
        };
        if let Some(t) = self.tflops {
            out.push_str(&format!(" · {} TFLOP/s", three_digits(t)));
        }
        out.push_str(&match self.mfu {
            Some(m) => format!(" · MFU {:.1}%", 100.0 * m),
            None => format!(" · MFU {UNKNOWN}"),
        });
        out
    }

    /// `RSS 812 MiB · GPU 10.2 GiB`.
    pub fn memory_text(&self) -> String {
        let mut out = format!("RSS {}", self.rss_mb.map_or(UNKNOWN.into(), mib_text));
        if let Some(g) = self.gpu_mb {
            out.push_str(&format!(" · GPU {}", mib_text(g)));
        }
        out
    }
}

/// The lines `towerlab show` prints for a run: throughput, memory, time left and (once it
/// ended) its compute, as `(label, text)`. `progress` is (step, total); `running` whether the
/// run is going now; `ran` (device, seconds) the last attempt's wall time once it ended.
pub fn show_lines(
    glance: &Glance,
    progress: Option<(u64, u64)>,
    running: bool,
    ran: Option<(&str, f64)>,
) -> Vec<(&'static str, String)> {
    let eta = if running {
        eta_text(progress.and_then(|(s, t)| run_eta_s(s, t, glance.step_time_s)))
    } else if ran.is_some() {
        "ended".to_string()
    } else {
        UNKNOWN.to_string()
    };
    let mut out = vec![
        ("throughput", glance.throughput_text()),
        ("memory", glance.memory_text()),
        ("eta", eta),
    ];
    if let Some((device, seconds)) = ran {
        out.push((
            "compute",
            format!(
                "{} (last attempt)",
                Compute::of_run(device, 1, seconds).text()
            ),
        ));
    }
    out
}

/// MiB as `812 MiB` or `10.2 GiB`.
pub fn mib_text(mib: f64) -> String {
    if mib >= 1024.0 {
        format!("{:.1} GiB", mib / 1024.0)
    } else {
        format!("{mib:.0} MiB")
    }
}

/// Three significant digits, no exponent for everyday magnitudes.
fn three_digits(v: f64) -> String {
    let a = v.abs();
    if a >= 100.0 {
        format!("{v:.0}")
    } else if a >= 10.0 {
        format!("{v:.1}")
    } else if a >= 0.01 || a == 0.0 || !a.is_finite() {
        format!("{v:.2}")
    } else {
        // 0.00450: three significant digits past the leading zeros.
        let digits = (2 - a.log10().floor() as i64).clamp(3, 12) as usize;
        format!("{v:.digits$}")
    }
}

/// Compute hours of finished runs, by device kind.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct Compute {
    pub gpu_hours: f64,
    pub cpu_hours: f64,
}

impl Compute {
    /// One run of `wall_s` seconds on `devices` devices of `device` (`cuda:N` counts as GPU
    /// time, anything else as CPU time).
    pub fn of_run(device: &str, devices: u32, wall_s: f64) -> Self {
        let hours = wall_s.max(0.0) * f64::from(devices.max(1)) / 3600.0;
        if device.starts_with("cuda") {
            Self {
                gpu_hours: hours,
                cpu_hours: 0.0,
            }
        } else {
            Self {
                gpu_hours: 0.0,
                cpu_hours: hours,
            }
        }
    }

    pub fn add(&mut self, other: Self) {
        self.gpu_hours += other.gpu_hours;
        self.cpu_hours += other.cpu_hours;
    }

    /// `12.4 GPU-h`, `0.31 CPU-h`, or both (`12.4 GPU-h + 0.31 CPU-h`); `0 CPU-h` for none.
    pub fn text(&self) -> String {
        let h = |v: f64| {
            if v >= 10.0 {
                format!("{v:.1}")
            } else if v >= 0.01 {
                format!("{v:.2}")
            } else {
                format!("{v:.4}")
            }
        };
        match (self.gpu_hours > 0.0, self.cpu_hours > 0.0) {
            (true, true) => format!("{} GPU-h + {} CPU-h", h(self.gpu_hours), h(self.cpu_hours)),
            (true, false) => format!("{} GPU-h", h(self.gpu_hours)),
            (false, true) => format!("{} CPU-h", h(self.cpu_hours)),
            (false, false) => "0 CPU-h".to_string(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_runs_eta_is_the_steps_left_at_its_step_time_or_unknown() {
        assert_eq!(run_eta_s(40, 100, Some(0.5)), Some(30.0));
        assert_eq!(run_eta_s(100, 100, Some(0.5)), Some(0.0));
        assert_eq!(run_eta_s(40, 100, None), None);
        assert_eq!(run_eta_s(40, 100, Some(f64::NAN)), None);
        assert_eq!(run_eta_s(0, 0, Some(1.0)), None);
        assert_eq!(eta_text(None), "–");
        assert_eq!(eta_text(Some(125.0)), "2 min 05 s");
    }

    #[test]
    fn a_grids_eta_comes_from_comparable_finished_runs_or_is_unknown() {
        let done = [
            RunDone {
                cell: "a".into(),
                kind: "grid".into(),
                wall_s: 100.0,
            },
            RunDone {
                cell: "a".into(),
                kind: "grid".into(),
                wall_s: 200.0,
            },
            RunDone {
                cell: "b".into(),
                kind: "grid".into(),
                wall_s: 600.0,
            },
        ];
        let left = |cell: &str, kind: &str, running| RunLeft {
            cell: cell.into(),
            kind: kind.into(),
            running,
        };
        // Cell a's mean (150), cell c takes the grid kind's mean (300), a running one its ETA.
        let runs = [
            left("a", "grid", None),
            left("c", "grid", None),
            left("b", "grid", Some(Running::Eta(50.0))),
            left("a", "grid", Some(Running::Elapsed(100.0))),
        ];
        assert_eq!(
            grid_eta_s(&runs, &done, 1),
            Some(150.0 + 300.0 + 50.0 + 50.0)
        );
        assert_eq!(grid_eta_s(&runs, &done, 2), Some(275.0));
        // A pre-training run with nothing comparable: unknown, not a guess.
        let with_pretrain = [left("p", "pretrain", None)];
        assert_eq!(grid_eta_s(&with_pretrain, &done, 1), None);
        assert_eq!(grid_eta_s(&[], &done, 1), Some(0.0));
    }

    #[test]
    fn the_glance_reads_the_last_values_and_says_what_is_missing() {
        let g = Glance::of([
            ("perf/samples_per_s", 12.34),
            ("perf/mfu", 0.41),
            ("system/proc/rss_mb", 812.0),
            ("system/gpu/0/peak_allocated_mb", 10240.0),
            ("system/gpu/1/peak_allocated_mb", 20480.0),
            ("system/gpu/0/memory_used_mb", 30000.0),
            ("train/loss", 1.0),
        ]);
        assert_eq!(g.throughput_text(), "12.3 samples/s · MFU 41.0%");
        let cpu = Glance::of([("perf/samples_per_s", 55.1), ("perf/tflops", 0.0045)]);
        assert_eq!(
            cpu.throughput_text(),
            "55.1 samples/s · 0.00450 TFLOP/s · MFU –"
        );
        assert_eq!(g.memory_text(), "RSS 812 MiB · GPU 20.0 GiB");
        let none = Glance::of([("train/loss", 1.0)]);
        assert!(none.is_empty());
        assert_eq!(none.throughput_text(), "– samples/s · MFU –");
        assert_eq!(none.memory_text(), "RSS –");
    }

    #[test]
    fn compute_is_hours_by_device_kind() {
        let mut c = Compute::of_run("cuda:0", 1, 7200.0);
        c.add(Compute::of_run("cpu", 1, 36.0));
        assert_eq!(c.gpu_hours, 2.0);
        assert!((c.cpu_hours - 0.01).abs() < 1e-12);
        assert_eq!(c.text(), "2.00 GPU-h + 0.01 CPU-h");
        assert_eq!(Compute::default().text(), "0 CPU-h");
    }
}
