//! What a build's container may use: memory, CPUs and processes. A worker has its own
//! limits (`--build-memory`, `--build-cpus`, `--build-pids`); an `ocelot.yml` `resources`
//! block may only lower them ([`Resources::within`]).

use serde::{Deserialize, Serialize};

/// Nano-CPUs in one CPU (Docker's `NanoCpus` unit).
pub const NANO_CPUS_PER_CPU: u64 = 1_000_000_000;

/// The smallest memory limit Docker accepts (6 MiB).
pub(crate) const MIN_MEMORY_BYTES: u64 = 6 * 1024 * 1024;

/// Limits for one build's container; `None` means "the worker's".
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Resources {
    /// Memory in bytes (no swap on top).
    pub memory: Option<u64>,
    /// CPU time in nano-CPUs (`1.5` CPUs = 1 500 000 000).
    pub nano_cpus: Option<u64>,
    /// Processes and threads at once.
    pub pids: Option<u64>,
}

/// The limits a build gets, all set.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Limits {
    pub memory: u64,
    pub nano_cpus: u64,
    pub pids: u64,
}

/// One value a build asked for above its worker's limit, which it does not get.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Clamped {
    /// `memory`, `cpus` or `pids`.
    pub field: &'static str,
    pub asked: String,
    pub granted: String,
}

impl std::fmt::Display for Clamped {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "resources.{} {} is above this worker's limit: {} applies",
            self.field, self.asked, self.granted
        )
    }
}

impl Resources {
    /// The limits for a build of this file on a worker with `worker`'s limits: each value
    /// the file sets if lower, else the worker's (also said in the returned list).
    pub fn within(&self, worker: Limits) -> (Limits, Vec<Clamped>) {
        let mut clamped = Vec::new();
        let mut pick = |field: &'static str,
                        asked: Option<u64>,
                        max: u64,
                        show: fn(u64) -> String| {
            match asked {
                Some(asked) if asked > max => {
                    clamped.push(Clamped {
                        field,
                        asked: show(asked),
                        granted: show(max),
                    });
                    max
                }
                Some(asked) => asked,
                None => max,
            }
        };
        let limits = Limits {
            memory: pick("memory", self.memory, worker.memory, format_memory),
            nano_cpus: pick("cpus", self.nano_cpus, worker.nano_cpus, format_cpus),
            pids: pick("pids", self.pids, worker.pids, |n| n.to_string()),
        };
        (limits, clamped)
    }
}

/// Parses a memory size like Docker's: a whole number of bytes with an optional unit
/// `k`, `m`, `g` or `t` (binary: `1k` = 1024), optionally followed by `b` or `ib`, any case
/// (`512m`, `2g`, `1536MiB`). At least 6 MiB.
pub fn parse_memory(text: &str) -> Result<u64, String> {
    let trimmed = text.trim();
    let lowered = trimmed.to_ascii_lowercase();
    let digits_end = lowered
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(lowered.len());
    let (digits, unit) = lowered.split_at(digits_end);
    let shift = match unit.trim_start() {
        "" | "b" => 0,
        "k" | "kb" | "kib" => 10,
        "m" | "mb" | "mib" => 20,
        "g" | "gb" | "gib" => 30,
        "t" | "tb" | "tib" => 40,
        _ => {
            return Err(format!(
                "`{trimmed}` is not a memory size like `512m` or `2g` (units: k, m, g, t)"
            ));
        }
    };
    let number: u64 = digits.parse().map_err(|_| {
        format!("`{trimmed}` is not a memory size like `512m` or `2g` (a whole number and a unit)")
    })?;
    let bytes = number
        .checked_mul(1u64 << shift)
        .ok_or_else(|| format!("`{trimmed}` is too large"))?;
    if bytes < MIN_MEMORY_BYTES {
        return Err(format!(
            "`{trimmed}` is below the smallest memory limit, 6m"
        ));
    }
    Ok(bytes)
}

/// Parses a number of CPUs (`2`, `0.5`, `1.25`) into nano-CPUs; at least 0.01.
pub fn parse_cpus(text: &str) -> Result<u64, String> {
    let trimmed = text.trim();
    let invalid = || format!("`{trimmed}` is not a number of CPUs like `1`, `0.5` or `2.5`");
    let (whole, fraction) = trimmed.split_once('.').unwrap_or((trimmed, ""));
    if (whole.is_empty() && fraction.is_empty())
        || !whole.chars().all(|c| c.is_ascii_digit())
        || !fraction.chars().all(|c| c.is_ascii_digit())
        || fraction.len() > 9
    {
        return Err(invalid());
    }
    let whole: u64 = if whole.is_empty() {
        0
    } else {
        whole.parse().map_err(|_| invalid())?
    };
    let fraction_nanos: u64 = if fraction.is_empty() {
        0
    } else {
        let padded = format!("{fraction:0<9}");
        padded.parse().map_err(|_| invalid())?
    };
    let nanos = whole
        .checked_mul(NANO_CPUS_PER_CPU)
        .and_then(|n| n.checked_add(fraction_nanos))
        .ok_or_else(|| format!("`{trimmed}` is too large"))?;
    if nanos < NANO_CPUS_PER_CPU / 100 {
        return Err(format!("`{trimmed}` is below the smallest CPU limit, 0.01"));
    }
    Ok(nanos)
}

/// Parses a process limit: a whole number, at least 16 (a shell and its stage need a few).
pub fn parse_pids(text: &str) -> Result<u64, String> {
    let trimmed = text.trim();
    let pids: u64 = trimmed
        .parse()
        .map_err(|_| format!("`{trimmed}` is not a whole number of processes"))?;
    if pids < 16 {
        return Err(format!(
            "`{trimmed}` is below the smallest process limit, 16"
        ));
    }
    Ok(pids)
}

/// `512m`, `2g`, or bytes when not a whole number of KiB.
pub fn format_memory(bytes: u64) -> String {
    for (shift, unit) in [(40, "t"), (30, "g"), (20, "m"), (10, "k")] {
        if bytes >= 1 << shift && bytes.is_multiple_of(1 << shift) {
            return format!("{}{unit}", bytes >> shift);
        }
    }
    format!("{bytes}b")
}

/// `1.5`, `2`, `0.25`.
pub fn format_cpus(nano_cpus: u64) -> String {
    let whole = nano_cpus / NANO_CPUS_PER_CPU;
    let fraction = nano_cpus % NANO_CPUS_PER_CPU;
    if fraction == 0 {
        return whole.to_string();
    }
    let digits = format!("{fraction:09}");
    format!("{whole}.{}", digits.trim_end_matches('0'))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn memory_sizes_read_like_dockers() {
        assert_eq!(parse_memory("512m"), Ok(512 << 20));
        assert_eq!(parse_memory("2g"), Ok(2 << 30));
        assert_eq!(parse_memory("2G"), Ok(2 << 30));
        assert_eq!(parse_memory("1536MiB"), Ok(1536 << 20));
        assert_eq!(parse_memory("10485760"), Ok(10 << 20));
        assert_eq!(parse_memory(" 64mb "), Ok(64 << 20));
        assert!(parse_memory("1m").unwrap_err().contains("smallest"));
        assert!(
            parse_memory("1.5g")
                .unwrap_err()
                .contains("not a memory size")
        );
        assert!(parse_memory("lots").is_err());
        assert!(parse_memory("").is_err());
        assert!(parse_memory("-5m").is_err());
        assert!(
            parse_memory("99999999999t")
                .unwrap_err()
                .contains("too large")
        );
    }

    #[test]
    fn cpus_are_exact_decimals() {
        assert_eq!(parse_cpus("1.5"), Ok(1_500_000_000));
        assert_eq!(parse_cpus("2"), Ok(2_000_000_000));
        assert_eq!(parse_cpus("0.25"), Ok(250_000_000));
        assert_eq!(parse_cpus(".5"), Ok(500_000_000));
        assert!(parse_cpus("0").unwrap_err().contains("smallest"));
        assert!(parse_cpus("0.001").is_err());
        assert!(parse_cpus("1,5").is_err());
        assert!(parse_cpus("-1").is_err());
        assert!(parse_cpus(".").is_err());
        assert!(parse_cpus("1e3").is_err());
    }

    #[test]
    fn pids_have_a_floor() {
        assert_eq!(parse_pids("128"), Ok(128));
        assert!(parse_pids("4").unwrap_err().contains("smallest"));
        assert!(parse_pids("many").is_err());
    }

    #[test]
    fn values_print_as_written() {
        assert_eq!(format_memory(512 << 20), "512m");
        assert_eq!(format_memory(2 << 30), "2g");
        assert_eq!(format_memory(1536 << 20), "1536m");
        assert_eq!(format_memory(1000), "1000b");
        assert_eq!(format_cpus(1_500_000_000), "1.5");
        assert_eq!(format_cpus(2_000_000_000), "2");
        assert_eq!(format_cpus(250_000_000), "0.25");
    }

    #[test]
    fn a_file_lowers_limits_and_never_raises_them() {
        let worker = Limits {
            memory: 2 << 30,
            nano_cpus: 2 * NANO_CPUS_PER_CPU,
            pids: 512,
        };
        assert_eq!(Resources::default().within(worker), (worker, vec![]));
        let lower = Resources {
            memory: Some(512 << 20),
            nano_cpus: Some(NANO_CPUS_PER_CPU / 2),
            pids: Some(128),
        };
        let (limits, clamped) = lower.within(worker);
        assert_eq!(
            limits,
            Limits {
                memory: 512 << 20,
                nano_cpus: NANO_CPUS_PER_CPU / 2,
                pids: 128
            }
        );
        assert!(clamped.is_empty());
        let higher = Resources {
            memory: Some(8 << 30),
            nano_cpus: Some(4 * NANO_CPUS_PER_CPU),
            pids: Some(100),
        };
        let (limits, clamped) = higher.within(worker);
        assert_eq!(
            limits,
            Limits {
                memory: 2 << 30,
                nano_cpus: 2 * NANO_CPUS_PER_CPU,
                pids: 100
            }
        );
        let said: Vec<String> = clamped.iter().map(ToString::to_string).collect();
        assert_eq!(
            said,
            [
                "resources.memory 8g is above this worker's limit: 2g applies",
                "resources.cpus 4 is above this worker's limit: 2 applies",
            ]
        );
    }
}
