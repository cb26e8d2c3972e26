//! The optional `[executor]` section: where `towerlab run` executes the grid (here, or as
//! Slurm jobs) and what each Slurm job asks for. Not part of any run's identity: the same cell
//! run on a laptop or a cluster is the same run.

use serde::{Deserialize, Serialize};

use crate::errors::Collector;
use crate::spanned::{Kind, Node};

/// Where the runs of `towerlab run` execute.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ExecutorKind {
    /// Worker slots in the `run` process itself.
    #[default]
    Local,
    /// One Slurm array task per run (`sbatch`).
    Slurm,
}

impl ExecutorKind {
    pub fn parse(text: &str) -> Result<Self, String> {
        match text {
            "local" => Ok(ExecutorKind::Local),
            "slurm" => Ok(ExecutorKind::Slurm),
            other => Err(format!(
                "unknown executor `{other}`; expected local or slurm"
            )),
        }
    }
}

/// `[executor]`: the kind, and the resources of each Slurm job (one run per array task).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExecutorSpec {
    pub kind: ExecutorKind,
    pub partition: Option<String>,
    pub account: Option<String>,
    pub qos: Option<String>,
    /// The time limit per run, as sbatch reads it: `MM`, `MM:SS`, `HH:MM:SS`, `D-HH`,
    /// `D-HH:MM` or `D-HH:MM:SS`.
    pub time: Option<String>,
    /// GPUs per run (`--gpus=N`: each run is a one-task job).
    pub gpus: Option<u32>,
    /// CPUs per run (`--cpus-per-task`).
    pub cpus: Option<u32>,
    /// Memory per run (`--mem`): a number with an optional K, M, G or T suffix.
    pub mem: Option<String>,
    pub constraint: Option<String>,
    /// More `#SBATCH` lines, verbatim (with or without the `#SBATCH` prefix).
    pub extra: Vec<String>,
    /// At most this many tasks of an array run at once (`--array=...%N`).
    pub throttle: Option<u32>,
    /// Seconds before the time limit at which the job gets SIGUSR1 to checkpoint and requeue.
    pub signal: Option<u32>,
}

/// The keys of `[executor]`.
pub const EXECUTOR_KEYS: [&str; 12] = [
    "kind",
    "partition",
    "account",
    "qos",
    "time",
    "gpus",
    "cpus",
    "mem",
    "constraint",
    "extra",
    "throttle",
    "signal",
];

/// A Slurm time limit: `MM`, `MM:SS`, `HH:MM:SS`, `D-HH`, `D-HH:MM`, `D-HH:MM:SS`, or
/// `UNLIMITED`/`INFINITE`.
pub fn check_time(text: &str) -> Result<(), String> {
    let bad = || {
        format!(
            "`{text}` is not a Slurm time limit; expected MM, MM:SS, HH:MM:SS, D-HH, D-HH:MM or \
             D-HH:MM:SS (e.g. \"2:00:00\" or \"1-12\")"
        )
    };
    if matches!(text, "UNLIMITED" | "INFINITE" | "unlimited" | "infinite") {
        return Ok(());
    }
    let (days, rest) = match text.split_once('-') {
        Some((d, r)) => (Some(d), r),
        None => (None, text),
    };
    let number = |s: &str| !s.is_empty() && s.len() <= 6 && s.bytes().all(|b| b.is_ascii_digit());
    if days.is_some_and(|d| !number(d)) {
        return Err(bad());
    }
    let parts: Vec<&str> = rest.split(':').collect();
    if parts.len() > 3 || !parts.iter().all(|p| number(p)) {
        return Err(bad());
    }
    Ok(())
}

/// A memory size as `--mem` reads it: digits with an optional K, M, G or T suffix.
pub fn check_mem(text: &str) -> Result<(), String> {
    let digits = text.trim_end_matches(['K', 'M', 'G', 'T', 'k', 'm', 'g', 't']);
    if !digits.is_empty()
        && digits.bytes().all(|b| b.is_ascii_digit())
        && text.len() - digits.len() <= 1
    {
        Ok(())
    } else {
        Err(format!(
            "`{text}` is not a memory size; expected a number with an optional K, M, G or T \
             suffix (e.g. \"16G\")"
        ))
    }
}

/// An sbatch option value on one line (no newline, nothing empty).
fn check_word(text: &str) -> Result<(), String> {
    if text.trim().is_empty() {
        Err("must not be empty".into())
    } else if text.contains(['\n', '\r']) {
        Err("must be one line".into())
    } else {
        Ok(())
    }
}

/// One extra `#SBATCH` line: the option itself (`--mail-type=END`), prefix dropped.
pub fn extra_line(text: &str) -> Result<String, String> {
    check_word(text)?;
    let line = text.trim();
    let line = line.strip_prefix("#SBATCH").unwrap_or(line).trim();
    if !line.starts_with('-') {
        return Err(format!(
            "`{text}` is not an sbatch option; expected e.g. \"--mail-type=END\""
        ));
    }
    Ok(line.to_string())
}

impl ExecutorSpec {
    /// Sets `key` from text (what a command-line flag gives), checking it as the file is.
    pub fn set(&mut self, key: &str, text: &str) -> Result<(), String> {
        let count = |t: &str| -> Result<u32, String> {
            t.parse::<u32>()
                .ok()
                .filter(|n| *n > 0)
                .ok_or_else(|| format!("expects a positive whole number, found `{t}`"))
        };
        match key {
            "kind" => self.kind = ExecutorKind::parse(text)?,
            "partition" | "account" | "qos" | "constraint" => {
                check_word(text)?;
                let v = Some(text.trim().to_string());
                match key {
                    "partition" => self.partition = v,
                    "account" => self.account = v,
                    "qos" => self.qos = v,
                    _ => self.constraint = v,
                }
            }
            "time" => {
                check_time(text)?;
                self.time = Some(text.to_string());
            }
            "mem" => {
                check_mem(text)?;
                self.mem = Some(text.to_string());
            }
            "gpus" => {
                // Zero GPUs is a CPU job: say so with no `gpus` rather than 0.
                self.gpus = match text.parse::<u32>() {
                    Ok(0) => None,
                    _ => Some(count(text)?),
                }
            }
            "cpus" => self.cpus = Some(count(text)?),
            "throttle" => self.throttle = Some(count(text)?),
            "signal" => self.signal = Some(count(text)?),
            "extra" => self.extra.push(extra_line(text)?),
            other => return Err(format!("unknown executor key `{other}`")),
        }
        Ok(())
    }
}

/// Reads `[executor]`; problems go to `c`, naming the key.
pub(crate) fn read_executor(
    c: &mut Collector<'_>,
    node: &Node,
    unknown: impl Fn(&str) -> String,
) -> Option<ExecutorSpec> {
    let Some(entries) = node.entries() else {
        c.at(
            node.span.start,
            format!("[executor] expects a table, found {}", node.type_name()),
        );
        return None;
    };
    let mut spec = ExecutorSpec::default();
    for e in entries {
        let key = e.key.as_str();
        if !EXECUTOR_KEYS.contains(&key) {
            c.at(e.key_span.start, unknown(key));
            continue;
        }
        let numeric = matches!(key, "gpus" | "cpus" | "throttle" | "signal");
        let result = match &e.value.kind {
            Kind::Array(items) if key == "extra" => {
                for item in items {
                    let line = match item.as_str() {
                        Some(text) => spec.set("extra", text),
                        None => Err(format!("expects strings, found {}", item.type_name())),
                    };
                    if let Err(m) = line {
                        c.at(item.span.start, format!("executor.extra {m}"));
                    }
                }
                Ok(())
            }
            Kind::Str(text) if key == "extra" => spec.set(key, text),
            _ if key == "extra" => Err(format!(
                "expects an array of strings, found {}",
                e.value.type_name()
            )),
            Kind::Int(i) if numeric => spec.set(key, &i.to_string()),
            Kind::Str(text) if !numeric => spec.set(key, text),
            _ => Err(format!(
                "expects {}, found {}",
                if numeric {
                    "a whole number"
                } else {
                    "a string"
                },
                e.value.type_name()
            )),
        };
        if let Err(m) = result {
            c.at(e.value.span.start, format!("executor.{key} {m}"));
        }
    }
    Some(spec)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slurm_time_limits_and_memory_sizes_are_checked() {
        for ok in [
            "30",
            "30:00",
            "2:00:00",
            "1-12",
            "1-12:30",
            "1-12:30:00",
            "UNLIMITED",
        ] {
            assert!(check_time(ok).is_ok(), "{ok}");
        }
        for bad in ["", "2h", "1-", "1:2:3:4", "-5", "a:b"] {
            assert!(check_time(bad).is_err(), "{bad}");
        }
        for ok in ["16G", "4000", "512M", "1t"] {
            assert!(check_mem(ok).is_ok(), "{ok}");
        }
        for bad in ["", "G", "16GB", "1.5G", "-1"] {
            assert!(check_mem(bad).is_err(), "{bad}");
        }
        assert_eq!(
            extra_line("#SBATCH --mail-type=END").unwrap(),
            "--mail-type=END"
        );
        assert_eq!(extra_line("--exclusive").unwrap(), "--exclusive");
        assert!(extra_line("mail").is_err());
        assert!(extra_line("--a\n--b").is_err());
    }

    #[test]
    fn flags_set_keys_as_the_file_does() {
        let mut s = ExecutorSpec::default();
        s.set("kind", "slurm").unwrap();
        s.set("gpus", "0").unwrap();
        s.set("cpus", "4").unwrap();
        assert_eq!(s.kind, ExecutorKind::Slurm);
        assert_eq!(s.gpus, None);
        assert_eq!(s.cpus, Some(4));
        assert!(s.set("cpus", "0").is_err());
        assert!(s.set("kind", "kubernetes").is_err());
        assert!(s.set("time", "forever").is_err());
    }
}
