//! Figures, medians and the report: one Markdown table printed to the
//! terminal and, for a full run, written to `docs/performance.md` with the
//! machine, the versions and the exact command.

use std::fmt::Write as _;
use std::time::Duration;

use super::targets::Kind;

/// What was measured for one target (medians over the runs).
#[derive(Debug, Clone, Default)]
pub struct Figures {
    /// Messages per second until the last one reached the sink.
    pub msgs_per_s: f64,
    /// The slowest and the fastest run.
    pub msgs_per_s_range: (f64, f64),
    /// Server CPU (user + system, all processes) per 1,000 messages.
    pub cpu_s_per_1000: Option<f64>,
    /// RSS once start-up work is done, before any mail.
    pub idle_rss_kib: Option<u64>,
    /// Peak RSS (`VmHWM`) after all the runs.
    pub peak_rss_kib: Option<u64>,
    /// End of DATA to 250.
    pub p50: Duration,
    pub p99: Duration,
    /// The connection-scaling run: how many, RSS before and with them open.
    pub idle_conns: Option<usize>,
    pub conns_base_kib: Option<u64>,
    pub conns_rss_kib: Option<u64>,
}

/// The outcome of one target.
#[derive(Debug, Clone)]
pub enum Row {
    Measured(Figures),
    Skipped(String),
    Failed(String),
}

/// Median of `v` (0 for an empty slice).
pub fn median(v: &[f64]) -> f64 {
    let mut s: Vec<f64> = v.iter().copied().filter(|x| x.is_finite()).collect();
    if s.is_empty() {
        return 0.0;
    }
    s.sort_by(f64::total_cmp);
    let mid = s.len() / 2;
    if s.len() % 2 == 1 {
        s[mid]
    } else {
        (s[mid - 1] + s[mid]) / 2.0
    }
}

/// The `p`th percentile (nearest rank) of `v` (zero for an empty slice).
pub fn percentile(v: &[Duration], p: f64) -> Duration {
    if v.is_empty() {
        return Duration::ZERO;
    }
    let mut s = v.to_vec();
    s.sort_unstable();
    let rank = ((p / 100.0) * s.len() as f64).ceil() as usize;
    s[rank.clamp(1, s.len()) - 1]
}

fn mib(kib: Option<u64>) -> String {
    kib.map_or_else(
        || "—".to_owned(),
        |k| format!("{:.1} MiB", k as f64 / 1024.0),
    )
}

fn ms(d: Duration) -> String {
    format!("{:.2} ms", d.as_secs_f64() * 1000.0)
}

/// The results table (Markdown).
pub fn table(rows: &[(Kind, Row)]) -> String {
    let limit = rows.iter().find_map(|(k, r)| match (k, r) {
        (Kind::Direct, Row::Measured(f)) => Some(f.msgs_per_s),
        _ => None,
    });
    let conns = rows.iter().find_map(|(_, r)| match r {
        Row::Measured(f) => f.idle_conns,
        _ => None,
    });
    let conns_head = conns.map_or_else(
        || "RSS, idle conns".to_owned(),
        |n| format!("RSS with {n} idle conns (per conn)"),
    );
    let mut t = format!(
        "| target | msg/s (slowest–fastest run) | of limit | CPU-s / 1k msgs | idle RSS | peak RSS | p50 | p99 | {conns_head} |\n\
         |---|--:|--:|--:|--:|--:|--:|--:|--:|\n"
    );
    for (kind, row) in rows {
        let f = match row {
            Row::Measured(f) => f,
            Row::Skipped(why) => {
                let _ = writeln!(
                    t,
                    "| {} | skipped: {} |||||||||",
                    kind.label(),
                    one_line(why)
                );
                continue;
            }
            Row::Failed(why) => {
                let _ = writeln!(
                    t,
                    "| {} | failed: {} |||||||||",
                    kind.label(),
                    one_line(why)
                );
                continue;
            }
        };
        let share = match limit {
            Some(l) if l > 0.0 && *kind != Kind::Direct => {
                format!("{:.0} %", f.msgs_per_s * 100.0 / l)
            }
            _ => "—".to_owned(),
        };
        let cpu = f
            .cpu_s_per_1000
            .map_or_else(|| "—".to_owned(), |c| format!("{c:.2}"));
        let conns = match (f.conns_rss_kib, f.conns_base_kib, f.idle_conns) {
            (Some(with), Some(base), Some(n)) if n > 0 => format!(
                "{} ({:+.1} KiB)",
                mib(Some(with)),
                (with as f64 - base as f64) / n as f64
            ),
            _ => "—".to_owned(),
        };
        let _ = writeln!(
            t,
            "| {} | {:.0} ({:.0}–{:.0}) | {share} | {cpu} | {} | {} | {} | {} | {conns} |",
            kind.label(),
            f.msgs_per_s,
            f.msgs_per_s_range.0,
            f.msgs_per_s_range.1,
            mib(f.idle_rss_kib),
            mib(f.peak_rss_kib),
            ms(f.p50),
            ms(f.p99),
        );
    }
    t
}

fn one_line(s: &str) -> String {
    let first = s.lines().next().unwrap_or("").replace('|', "/");
    if first.len() > 160 {
        let cut = (0..=160)
            .rev()
            .find(|i| first.is_char_boundary(*i))
            .unwrap_or(0);
        format!("{}…", &first[..cut])
    } else {
        first
    }
}

/// One line per haraka-rs target whose Haraka counterpart was measured:
/// ratios within this invocation.
pub fn comparisons(rows: &[(Kind, Row)]) -> Vec<String> {
    let get = |k: Kind| {
        rows.iter().find_map(|(kind, r)| match r {
            Row::Measured(f) if *kind == k => Some(f),
            _ => None,
        })
    };
    let mut out = Vec::new();
    for (kind, _) in rows {
        let (Some(rs), Some(reference)) = (get(*kind), kind.reference()) else {
            continue;
        };
        let Some(js) = get(reference) else {
            continue;
        };
        let mut parts = vec![format!(
            "{} the messages/s",
            ratio(rs.msgs_per_s, js.msgs_per_s)
        )];
        if let (Some(a), Some(b)) = (rs.cpu_s_per_1000, js.cpu_s_per_1000) {
            parts.push(format!("{} the CPU per message", ratio(a, b)));
        }
        let kib = |a: Option<u64>, b: Option<u64>, what: &str| match (a, b) {
            (Some(a), Some(b)) => Some(format!("{} the {what}", ratio(a as f64, b as f64))),
            _ => None,
        };
        parts.extend(kib(rs.idle_rss_kib, js.idle_rss_kib, "idle RSS"));
        parts.extend(kib(rs.peak_rss_kib, js.peak_rss_kib, "peak RSS"));
        parts.extend(kib(
            rs.conns_rss_kib,
            js.conns_rss_kib,
            "RSS with idle connections",
        ));
        parts.push(format!(
            "{} the p99 latency",
            ratio(rs.p99.as_secs_f64(), js.p99.as_secs_f64())
        ));
        out.push(format!(
            "{} vs {}: {}.",
            kind.label(),
            reference.label(),
            parts.join(", ")
        ));
    }
    out
}

/// `a / b` as `4.2×` (`n/a` when `b` is zero).
pub fn ratio(a: f64, b: f64) -> String {
    if b > 0.0 && a.is_finite() {
        let r = a / b;
        if r >= 10.0 {
            format!("{r:.0}×")
        } else if r >= 0.1 {
            format!("{r:.2}×")
        } else {
            format!("{r:.3}×")
        }
    } else {
        "n/a".to_owned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn medians() {
        assert_eq!(median(&[]), 0.0);
        assert_eq!(median(&[3.0]), 3.0);
        assert_eq!(median(&[5.0, 1.0, 3.0]), 3.0);
        assert_eq!(median(&[4.0, 1.0, 3.0, 2.0]), 2.5);
        assert_eq!(median(&[f64::NAN, 2.0]), 2.0);
    }

    #[test]
    fn percentiles() {
        let v: Vec<Duration> = (1..=100).rev().map(Duration::from_millis).collect();
        assert_eq!(percentile(&v, 50.0), Duration::from_millis(50));
        assert_eq!(percentile(&v, 99.0), Duration::from_millis(99));
        assert_eq!(percentile(&v, 100.0), Duration::from_millis(100));
        assert_eq!(percentile(&v[..1], 99.0), Duration::from_millis(100));
        assert_eq!(percentile(&[], 50.0), Duration::ZERO);
    }

    #[test]
    fn ratios() {
        assert_eq!(ratio(560.0, 280.0), "2.00×");
        assert_eq!(ratio(2800.0, 280.0), "10×");
        assert_eq!(ratio(1.0, 50.0), "0.020×");
        assert_eq!(ratio(1.0, 0.0), "n/a");
    }

    fn fig(rate: f64, rss: u64) -> Figures {
        Figures {
            msgs_per_s: rate,
            msgs_per_s_range: (rate - 10.0, rate + 10.0),
            cpu_s_per_1000: Some(1.0),
            idle_rss_kib: Some(rss),
            peak_rss_kib: Some(rss * 2),
            p50: Duration::from_millis(2),
            p99: Duration::from_millis(9),
            idle_conns: Some(1000),
            conns_base_kib: Some(rss),
            conns_rss_kib: Some(rss + 10_000),
        }
    }

    #[test]
    fn table_and_comparisons() {
        let rows = vec![
            (Kind::Direct, Row::Measured(fig(5000.0, 0))),
            (Kind::RsIn, Row::Measured(fig(2500.0, 10_240))),
            (Kind::HarakaIn, Row::Measured(fig(250.0, 102_400))),
            (Kind::RsOut, Row::Skipped("no binary\nmore".into())),
            (Kind::HarakaOut, Row::Failed("a | b".into())),
        ];
        let t = table(&rows);
        assert!(t.contains("| haraka-rs as haraka-in | 2500 (2490–2510) | 50 % | 1.00 | 10.0 MiB | 20.0 MiB | 2.00 ms | 9.00 ms | 19.8 MiB (+10.0 KiB) |"), "{t}");
        assert!(
            t.contains("| haraka-rs as haraka-out | skipped: no binary |"),
            "{t}"
        );
        assert!(t.contains("failed: a / b"), "{t}");
        assert!(t.contains("RSS with 1000 idle conns"), "{t}");
        let c = comparisons(&rows);
        assert_eq!(c.len(), 1, "{c:?}");
        assert!(c[0].starts_with("haraka-rs as haraka-in vs Haraka 3.0.0 as haraka-in: 10× the messages/s, 1.00× the CPU per message, 0.10× the idle RSS"), "{}", c[0]);
    }
}
