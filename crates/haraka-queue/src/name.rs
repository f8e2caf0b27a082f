//! Queue file names, in Haraka's format:
//! `<arrival ms>_<next_attempt ms>_<attempts>_<pid>_<uid>_<counter>_<host>`.
//!
//! The name carries the schedule, so a retry is an atomic rename and never a rewrite.

use std::fmt;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

use rand::Rng;

/// Prefix of files still being written; they are deleted at start-up.
pub const TMP_PREFIX: &str = "__tmp__.";
/// Prefix of files moved aside because they could not be read.
pub const ERROR_PREFIX: &str = "error.";

static COUNTER: AtomicU32 = AtomicU32::new(0);

/// The parts of a queue file name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QueueName {
    /// When the message was queued (epoch milliseconds).
    pub arrival: u64,
    /// When the next delivery attempt is due (epoch milliseconds).
    pub next_attempt: u64,
    /// Temporary failures so far.
    pub attempts: u32,
    /// Process id of the writer.
    pub pid: u32,
    /// Six random characters `[A-Za-z0-9]`.
    pub uid: String,
    /// Per-process counter (1 … 10000, then 0 again).
    pub counter: u32,
    /// The writer's host name, escaped (`\` `:` `_` → `\057` `\072` `\137`).
    pub host: String,
}

impl QueueName {
    /// A fresh name for a message queued now by this process on `host`.
    pub fn fresh(now_ms: u64, host: &str) -> QueueName {
        QueueName {
            arrival: now_ms,
            next_attempt: now_ms,
            attempts: 0,
            pid: std::process::id(),
            uid: random_uid(),
            counter: next_counter(),
            host: escape_host(host),
        }
    }

    /// Parse a file name; `None` for anything that is not a queue file name
    /// (temporary and quarantined files included). Haraka's older four-part names
    /// (`<next_attempt>_<attempts>_<pid>_<uniq>.<host>`) are accepted too.
    pub fn parse(file: &str) -> Option<QueueName> {
        if file.starts_with(TMP_PREFIX) || file.starts_with(ERROR_PREFIX) {
            return None;
        }
        let parts: Vec<&str> = file.split('_').collect();
        match parts.as_slice() {
            [arrival, next, attempts, pid, uid, counter, host] => Some(QueueName {
                arrival: arrival.parse().ok()?,
                next_attempt: next.parse().ok()?,
                attempts: attempts.parse().ok()?,
                pid: pid.parse().ok()?,
                uid: (*uid).to_owned(),
                counter: counter.parse().ok()?,
                host: (*host).to_owned(),
            }),
            [next, attempts, pid, rest] => {
                let (uniq, host) = rest.split_once('.')?;
                if uniq.is_empty() || !uniq.bytes().all(|b| b.is_ascii_digit()) {
                    return None;
                }
                let next_attempt: u64 = next.parse().ok()?;
                Some(QueueName {
                    arrival: next_attempt,
                    next_attempt,
                    attempts: attempts.parse().ok()?,
                    pid: pid.parse().ok()?,
                    uid: format!("old{uniq}"),
                    counter: 0,
                    host: host.to_owned(),
                })
            }
            _ => None,
        }
    }

    /// Both names belong to the same queued delivery (only the schedule differs).
    pub fn same_message(&self, other: &QueueName) -> bool {
        self.arrival == other.arrival
            && self.pid == other.pid
            && self.uid == other.uid
            && self.counter == other.counter
            && self.host == other.host
    }

    /// The same message with a new schedule.
    pub fn rescheduled(&self, attempts: u32, next_attempt: u64) -> QueueName {
        QueueName {
            attempts,
            next_attempt,
            ..self.clone()
        }
    }
}

impl fmt::Display for QueueName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}_{}_{}_{}_{}_{}_{}",
            self.arrival,
            self.next_attempt,
            self.attempts,
            self.pid,
            self.uid,
            self.counter,
            self.host
        )
    }
}

/// Haraka's escaping of the host part of a name.
pub fn escape_host(host: &str) -> String {
    host.replace('\\', "\\057")
        .replace(':', "\\072")
        .replace('_', "\\137")
}

/// The machine's host name (`os.hostname()`), `localhost` when it cannot be read.
pub fn system_hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .or_else(|_| std::fs::read_to_string("/etc/hostname"))
        .ok()
        .map(|s| s.trim().to_owned())
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| "localhost".to_owned())
}

/// Milliseconds since the Unix epoch.
pub fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
        .unwrap_or(0)
}

fn next_counter() -> u32 {
    let mut cur = COUNTER.load(Ordering::Relaxed);
    loop {
        let next = if cur < 10_000 { cur + 1 } else { 0 };
        match COUNTER.compare_exchange_weak(cur, next, Ordering::Relaxed, Ordering::Relaxed) {
            Ok(_) => return next,
            Err(seen) => cur = seen,
        }
    }
}

fn random_uid() -> String {
    const CHARS: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
    let mut rng = rand::rng();
    (0..6)
        .map(|_| char::from(CHARS[rng.random_range(0..CHARS.len())]))
        .collect()
}

#[cfg(test)]
#[allow(clippy::unwrap_used, reason = "a failed unwrap is a failed test")]
mod tests {
    use super::*;

    #[test]
    fn parses_haraka_oracle_name() {
        let n = QueueName::parse("1795708856374_1795708861425_1_28703_ZNqUCn_10_vm").unwrap();
        assert_eq!(n.arrival, 1795708856374);
        assert_eq!(n.next_attempt, 1795708861425);
        assert_eq!(n.attempts, 1);
        assert_eq!(n.pid, 28703);
        assert_eq!(n.uid, "ZNqUCn");
        assert_eq!(n.counter, 10);
        assert_eq!(n.host, "vm");
        assert_eq!(
            n.to_string(),
            "1795708856374_1795708861425_1_28703_ZNqUCn_10_vm"
        );
    }

    #[test]
    fn rejects_other_names() {
        for bad in [
            "",
            "README",
            "__tmp__.1_2_3_4_abcdef_5_h",
            "error.1_2_3_4_abcdef_5_h",
            "1_2_3_4_abcdef_5",
            "x_2_3_4_abcdef_5_h",
            "1_2_3_4_abcdef_5_h_extra",
            "1_2_3_x.host",
        ] {
            assert!(QueueName::parse(bad).is_none(), "{bad}");
        }
    }

    #[test]
    fn parses_old_four_part_names() {
        let n = QueueName::parse("1484878079415_0_12345_8888.mta1.example.com").unwrap();
        assert_eq!(n.next_attempt, 1484878079415);
        assert_eq!(n.pid, 12345);
        assert_eq!(n.host, "mta1.example.com");
    }

    #[test]
    fn fresh_names_round_trip_and_escape_host() {
        let n = QueueName::fresh(1000, "a_b:c\\d");
        assert_eq!(n.host, "a\\137b\\072c\\057d");
        assert_eq!(n.uid.len(), 6);
        assert_eq!(QueueName::parse(&n.to_string()), Some(n.clone()));
        let r = n.rescheduled(3, 5000);
        assert_eq!((r.attempts, r.next_attempt, r.arrival), (3, 5000, 1000));
    }

    #[test]
    fn counter_wraps_like_haraka() {
        let a = next_counter();
        let b = next_counter();
        assert!(b == a + 1 || b == 0);
        assert!(a <= 10_000);
    }
}
