//! W&B's system metrics file, `wandb-events.jsonl`: one line per sample with `_timestamp`,
//! `_runtime` and the `system.*` keys W&B's own client writes, so W&B's System panels chart
//! TowerLab's `system/` metrics (the engine's names, see `engine::perf::system`).

use super::encode::{push_json_str, push_number};

pub const EVENTS_FILE: &str = "wandb-events.jsonl";

/// The prefix of the metrics that go to `wandb-events.jsonl` instead of the history.
pub const SYSTEM_PREFIX: &str = "system/";

/// One system sample as W&B receives it.
#[derive(Debug, Clone, PartialEq)]
pub struct EventsRow {
    /// Seconds since the run started.
    pub runtime: f64,
    /// Unix time in seconds.
    pub timestamp: f64,
    /// TowerLab names (`system/...`), mapped by [`wandb_system_key`] when written.
    pub metrics: Vec<(String, f64)>,
}

/// W&B's key for a TowerLab `system/` metric: the ones its client writes keep its names
/// (`system.proc.memory.rssMB`, `system.cpu`, `system.gpu.0.gpu`, …); the caching allocator's
/// statistics, which W&B's client does not read, go beside them under `system.gpu.<i>.torch*`.
/// `None` for a name outside `system/`.
pub fn wandb_system_key(name: &str) -> Option<String> {
    let rest = name.strip_prefix(SYSTEM_PREFIX)?;
    let known = match rest {
        "proc/rss_mb" => Some("proc.memory.rssMB"),
        "proc/memory_percent" => Some("proc.memory.percent"),
        "proc/threads" => Some("proc.cpu.threads"),
        // W&B's `system.cpu`: the process's CPU percent over all cores.
        "proc/cpu_percent" => Some("cpu"),
        _ => None,
    };
    if let Some(key) = known {
        return Some(format!("system.{key}"));
    }
    if let Some(gpu) = rest.strip_prefix("gpu/") {
        if let Some((index, what)) = gpu.split_once('/') {
            if !index.is_empty() && index.bytes().all(|b| b.is_ascii_digit()) {
                let key = match what {
                    "util_percent" => "gpu",
                    "memory_util_percent" => "memory",
                    "memory_percent" => "memoryAllocated",
                    "power_w" => "powerWatts",
                    "power_percent" => "powerPercent",
                    "temp_c" => "temp",
                    "memory_used_mb" => "memoryUsedMB",
                    "allocated_mb" => "torchAllocatedMB",
                    "reserved_mb" => "torchReservedMB",
                    "peak_allocated_mb" => "torchPeakAllocatedMB",
                    other => return Some(format!("system.gpu.{index}.{}", dotted(other))),
                };
                return Some(format!("system.gpu.{index}.{key}"));
            }
        }
    }
    Some(format!("system.{}", dotted(rest)))
}

fn dotted(path: &str) -> String {
    path.replace('/', ".")
}

/// One `wandb-events.jsonl` line: `_timestamp`, `_runtime`, then the `system.*` keys (each
/// once, in the row's order). W&B also reports used GPU memory in bytes, added here from
/// `memory_used_mb`.
pub fn events_line(row: &EventsRow, out: &mut Vec<u8>) {
    out.clear();
    out.extend_from_slice(b"{\"_timestamp\":");
    push_number(out, row.timestamp);
    out.extend_from_slice(b",\"_runtime\":");
    push_number(out, row.runtime);
    let mut seen = std::collections::HashSet::new();
    let mut push = |out: &mut Vec<u8>, key: String, value: f64| {
        if seen.insert(key.clone()) {
            out.push(b',');
            push_json_str(out, &key);
            out.push(b':');
            push_number(out, value);
        }
    };
    for (name, value) in &row.metrics {
        let Some(key) = wandb_system_key(name) else {
            continue;
        };
        if let Some(gpu) = key.strip_suffix(".memoryUsedMB") {
            push(
                out,
                format!("{gpu}.memoryAllocatedBytes"),
                value * 1024.0 * 1024.0,
            );
        }
        push(out, key, *value);
    }
    out.push(b'}');
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn engine_names_map_onto_the_keys_of_the_wandb_client() {
        for (ours, theirs) in [
            ("system/proc/rss_mb", "system.proc.memory.rssMB"),
            ("system/proc/cpu_percent", "system.cpu"),
            ("system/proc/threads", "system.proc.cpu.threads"),
            ("system/gpu/0/util_percent", "system.gpu.0.gpu"),
            ("system/gpu/1/memory_util_percent", "system.gpu.1.memory"),
            (
                "system/gpu/0/memory_percent",
                "system.gpu.0.memoryAllocated",
            ),
            ("system/gpu/0/power_w", "system.gpu.0.powerWatts"),
            ("system/gpu/0/temp_c", "system.gpu.0.temp"),
            ("system/gpu/0/allocated_mb", "system.gpu.0.torchAllocatedMB"),
        ] {
            assert_eq!(wandb_system_key(ours).as_deref(), Some(theirs), "{ours}");
        }
        assert_eq!(wandb_system_key("train/loss"), None);
    }

    #[test]
    fn a_line_has_the_times_then_the_system_keys() {
        let row = EventsRow {
            runtime: 5.5,
            timestamp: 1_787_306_405.5,
            metrics: vec![
                ("system/proc/rss_mb".into(), 812.25),
                ("system/gpu/0/memory_used_mb".into(), 2.0),
                ("system/gpu/0/temp_c".into(), f64::NAN),
            ],
        };
        let mut out = Vec::new();
        events_line(&row, &mut out);
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "{\"_timestamp\":1787306405.5,\"_runtime\":5.5,\"system.proc.memory.rssMB\":812.25,\
             \"system.gpu.0.memoryAllocatedBytes\":2097152.0,\"system.gpu.0.memoryUsedMB\":2.0,\
             \"system.gpu.0.temp\":NaN}"
        );
    }
}
