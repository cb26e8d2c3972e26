//! Worker processes: who is alive, on which host and device, holding which run.

/// Who is claiming runs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WorkerInfo {
    /// Unique per worker process, e.g. `host:pid` (see [`WorkerInfo::this_process`]).
    pub id: String,
    pub host: String,
    pub pid: u32,
    /// e.g. `cuda:0` or `cpu`.
    pub device: String,
    pub engine_version: String,
}

impl WorkerInfo {
    /// This process, identified as `host:pid`.
    pub fn this_process(device: impl Into<String>, engine_version: impl Into<String>) -> Self {
        let host = hostname();
        let pid = std::process::id();
        WorkerInfo {
            id: format!("{host}:{pid}"),
            host,
            pid,
            device: device.into(),
            engine_version: engine_version.into(),
        }
    }
}

/// The host name, from the kernel (Linux) or the usual environment variables.
fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .map(|s| s.trim().to_owned())
        .filter(|s| !s.is_empty())
        .or_else(|| std::env::var("HOSTNAME").ok())
        .or_else(|| std::env::var("COMPUTERNAME").ok())
        .unwrap_or_else(|| "localhost".to_owned())
}
