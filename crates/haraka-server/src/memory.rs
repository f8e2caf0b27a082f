//! The memory the process may use, and the default `smtp.ini message_memory_budget`
//! derived from it.

/// The budget's ceiling when derived: 256 MiB of message data in flight is ten
/// 25 MB messages at once, more than a small server receives.
pub const MAX_DEFAULT_BUDGET: u64 = 256 * 1024 * 1024;

/// `message_memory_budget` when not configured: a quarter of `memory` (the
/// machine's memory, or its cgroup's limit when lower), at most
/// [`MAX_DEFAULT_BUDGET`]; [`MAX_DEFAULT_BUDGET`] when `memory` is unknown.
pub fn default_message_memory_budget(memory: Option<u64>) -> u64 {
    match memory {
        Some(m) => (m / 4).clamp(1, MAX_DEFAULT_BUDGET),
        None => MAX_DEFAULT_BUDGET,
    }
}

/// The memory available to this process: `MemTotal` of `/proc/meminfo`, lowered
/// to the cgroup v2 limit (`/sys/fs/cgroup/memory.max`) when there is one. `None`
/// when neither can be read.
pub fn available_memory() -> Option<u64> {
    let total = std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|t| mem_total(&t));
    let cgroup = std::fs::read_to_string("/sys/fs/cgroup/memory.max")
        .ok()
        .and_then(|t| t.trim().parse::<u64>().ok());
    match (total, cgroup) {
        (Some(t), Some(c)) => Some(t.min(c)),
        (t, c) => t.or(c),
    }
}

/// `MemTotal:  16314220 kB` in bytes.
fn mem_total(meminfo: &str) -> Option<u64> {
    let line = meminfo.lines().find(|l| l.starts_with("MemTotal:"))?;
    let mut words = line["MemTotal:".len()..].split_whitespace();
    let n: u64 = words.next()?.parse().ok()?;
    let unit = match words.next() {
        Some("kB") => 1024,
        None => 1,
        Some(_) => return None,
    };
    n.checked_mul(unit)
}

#[cfg(test)]
mod tests {
    use super::*;

    const MIB: u64 = 1024 * 1024;

    #[test]
    fn a_quarter_of_memory_at_most_256_mib() {
        assert_eq!(default_message_memory_budget(Some(1024 * MIB)), 256 * MIB);
        assert_eq!(default_message_memory_budget(Some(512 * MIB)), 128 * MIB);
        assert_eq!(
            default_message_memory_budget(Some(24 * 1024 * MIB)),
            256 * MIB
        );
        assert_eq!(default_message_memory_budget(Some(0)), 1);
        assert_eq!(default_message_memory_budget(None), 256 * MIB);
    }

    #[test]
    fn meminfo_is_read_in_bytes() {
        let text = "MemFree:  10 kB\nMemTotal:       16314220 kB\nBuffers: 1 kB\n";
        assert_eq!(mem_total(text), Some(16_314_220 * 1024));
        assert_eq!(mem_total("MemTotal: x kB\n"), None);
        assert_eq!(mem_total("MemTotal: 5 MB\n"), None);
        assert_eq!(mem_total(""), None);
    }

    #[test]
    fn this_machine_has_some_memory() {
        assert!(available_memory().is_some_and(|m| m > 0));
    }
}
