//! What a soak run found, the targets judged against it, and its
//! section of `docs/performance.md`.

use std::fmt::Write as _;
use std::time::Duration;

use super::load::{End, Hostile};
use crate::bench::client::Outcome;
use crate::bench::report::percentile;

/// Marks around the soak's section of `docs/performance.md`: the soak
/// replaces only what lies between them, and the benchmark keeps it.
pub const BEGIN: &str = "<!-- soak:begin -->";
pub const END: &str = "<!-- soak:end -->";

/// min / median / max of some durations, and how many.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Spread {
    pub n: usize,
    pub min: Duration,
    pub median: Duration,
    pub max: Duration,
}

impl Spread {
    pub fn of(v: &[Duration]) -> Self {
        if v.is_empty() {
            return Self::default();
        }
        let mut s = v.to_vec();
        s.sort_unstable();
        Self {
            n: s.len(),
            min: s[0],
            median: percentile(&s, 50.0),
            max: s[s.len() - 1],
        }
    }
}

/// How the connections of one hostile kind ended.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Survival {
    /// Time from handshake until the server closed it.
    pub closed: Spread,
    /// Connections still open at the end of the phase, and the oldest of them.
    pub open: usize,
    pub oldest_open: Duration,
    pub refused: usize,
    pub failed: usize,
    /// The most common last reply before a close, with its count.
    pub parting: Option<(String, usize)>,
    /// The first refusal or failure, for the report.
    pub example: Option<String>,
}

impl Survival {
    /// Gather the ends of `kind` out of all of them.
    pub fn of(kind: Hostile, ends: &[(Hostile, End)]) -> Self {
        let mut s = Survival::default();
        let mut lives = Vec::new();
        let mut partings: Vec<(String, usize)> = Vec::new();
        for (_, e) in ends.iter().filter(|(k, _)| *k == kind) {
            match e {
                End::Closed { after, last } => {
                    lives.push(*after);
                    if let Some(l) = last {
                        // The reply code and enhanced status say what the close was.
                        let key: String =
                            l.split_whitespace().take(2).collect::<Vec<_>>().join(" ");
                        match partings.iter_mut().find(|(k, _)| *k == key) {
                            Some((_, n)) => *n += 1,
                            None => partings.push((key, 1)),
                        }
                    }
                }
                End::Open(age) => {
                    s.open += 1;
                    s.oldest_open = s.oldest_open.max(*age);
                }
                End::Refused(why) | End::Failed(why) => {
                    if matches!(e, End::Refused(_)) {
                        s.refused += 1;
                    } else {
                        s.failed += 1;
                    }
                    if s.example.is_none() {
                        s.example = Some(why.clone());
                    }
                }
            }
        }
        s.closed = Spread::of(&lives);
        s.parting = partings.into_iter().max_by_key(|(_, n)| *n);
        s
    }

    /// Every connection was closed within `bound`, and none still open had
    /// lived longer than it. `None` (no bound configured) never passes.
    pub fn within(&self, bound: Option<Duration>) -> bool {
        bound.is_some_and(|b| self.closed.n > 0 && self.closed.max <= b && self.oldest_open <= b)
    }
}

/// One sample of the server's resources.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Sample {
    pub at: Duration,
    pub rss_kib: u64,
    pub fds: usize,
    pub hostile_open: usize,
}

/// The capped-descriptor probe.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Capped {
    pub fd_limit: u64,
    pub clients: usize,
    pub admitted: usize,
    pub refused: usize,
    /// A new client's first reply while the others hold every slot.
    pub capped_reply: (Duration, Option<String>),
    /// Server CPU while capped, percent of one core (an accept loop that spins shows here).
    pub capped_cpu_pct: f64,
    /// Once the others have gone: how long until a new client got 220.
    pub freed_greeting: Option<Duration>,
}

/// One target of the issue and whether the run met it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verdict {
    pub target: String,
    pub seen: String,
    pub met: bool,
}

/// Success rate in percent (100 with nothing sent: nothing failed).
pub fn success_pct(o: &Outcome) -> f64 {
    let total = o.latencies.len() as u64 + o.failed;
    if total == 0 {
        return 100.0;
    }
    o.latencies.len() as f64 * 100.0 / total as f64
}

/// Everything a run found.
#[derive(Debug, Default)]
pub struct Findings {
    pub baseline: Outcome,
    pub loaded: Outcome,
    pub survival: Vec<(Hostile, Survival, Option<Duration>)>,
    pub samples: Vec<Sample>,
    pub rss_limit_kib: u64,
    pub capped: Option<Capped>,
}

impl Findings {
    pub fn peak_rss_kib(&self) -> u64 {
        self.samples.iter().map(|s| s.rss_kib).max().unwrap_or(0)
    }

    /// The targets, judged.
    pub fn verdicts(&self) -> Vec<Verdict> {
        let mut v = Vec::new();
        for (name, o) in [
            ("idle server", &self.baseline),
            ("under attack", &self.loaded),
        ] {
            let pct = success_pct(o);
            v.push(Verdict {
                target: format!("normal transactions succeed, {name}: 100 %"),
                seen: format!(
                    "{pct:.1} % of {}{}",
                    o.latencies.len() as u64 + o.failed,
                    o.first_error
                        .as_ref()
                        .map(|e| format!(" (first failure: {})", one_line(e)))
                        .unwrap_or_default()
                ),
                met: o.failed == 0 && !o.latencies.is_empty(),
            });
        }
        let idle_p99 = percentile(&self.baseline.latencies, 99.0);
        let loaded_p99 = percentile(&self.loaded.latencies, 99.0);
        v.push(Verdict {
            target: "p99 under attack ≤ 2 × p99 on the idle server".into(),
            seen: format!("{} vs {}", ms(loaded_p99), ms(idle_p99)),
            met: !self.loaded.latencies.is_empty() && loaded_p99 <= idle_p99 * 2,
        });
        for (kind, s, bound) in &self.survival {
            v.push(Verdict {
                target: format!(
                    "{} closed within {}",
                    kind.label(),
                    bound.map_or_else(|| "(no bound configured)".to_owned(), secs)
                ),
                seen: format!(
                    "{} closed, max {}; {} still open (oldest {})",
                    s.closed.n,
                    secs(s.closed.max),
                    s.open,
                    secs(s.oldest_open)
                ),
                met: s.within(*bound),
            });
        }
        let peak = self.peak_rss_kib();
        v.push(Verdict {
            target: format!("server RSS ≤ {}", mib(self.rss_limit_kib)),
            seen: format!("peak {}", mib(peak)),
            met: peak > 0 && peak <= self.rss_limit_kib,
        });
        if let Some(c) = &self.capped {
            let (took, line) = &c.capped_reply;
            v.push(Verdict {
                target: format!(
                    "fd limit {}: a new client is answered within 1 s while capped",
                    c.fd_limit
                ),
                seen: format!(
                    "{} after {}",
                    line.as_deref().map_or("no reply", |l| l),
                    ms(*took)
                ),
                met: line.is_some() && *took <= Duration::from_secs(1),
            });
            v.push(Verdict {
                target: format!(
                    "fd limit {}: once the others leave, a new client is greeted (220) within 1 s",
                    c.fd_limit
                ),
                seen: c.freed_greeting.map_or_else(|| "no 220".into(), ms),
                met: c
                    .freed_greeting
                    .is_some_and(|d| d <= Duration::from_secs(1)),
            });
        }
        v
    }
}

fn one_line(s: &str) -> String {
    let first = s.lines().next().unwrap_or("");
    first.chars().take(120).collect()
}

pub fn ms(d: Duration) -> String {
    format!("{:.1} ms", d.as_secs_f64() * 1000.0)
}

pub fn secs(d: Duration) -> String {
    format!("{:.1} s", d.as_secs_f64())
}

pub fn mib(kib: u64) -> String {
    format!("{:.1} MiB", kib as f64 / 1024.0)
}

/// Samples `every` apart at most (the first, then each at least `every`
/// after the last one kept, and the last), for a short table.
pub fn thin(samples: &[Sample], every: Duration) -> Vec<Sample> {
    let mut out: Vec<Sample> = Vec::new();
    for s in samples {
        if out.last().is_none_or(|l| s.at >= l.at + every) {
            out.push(*s);
        }
    }
    if let (Some(last), Some(kept)) = (samples.last(), out.last())
        && last != kept
    {
        out.push(*last);
    }
    out
}

/// The results as Markdown: targets, normal clients, survival, resources.
pub fn tables(f: &Findings) -> String {
    let mut d = String::new();
    d.push_str("| target | seen | met |\n|---|---|:-:|\n");
    for v in f.verdicts() {
        let _ = writeln!(
            d,
            "| {} | {} | {} |",
            v.target,
            v.seen.replace('|', "\\|"),
            if v.met { "yes" } else { "**no**" }
        );
    }
    d.push_str(
        "\nNormal transactions (connect to the 250 after the message):\n\n\
         | server | sent | succeeded | p50 | p99 | max |\n|---|--:|--:|--:|--:|--:|\n",
    );
    for (name, o) in [("idle", &f.baseline), ("under attack", &f.loaded)] {
        let max = o.latencies.iter().max().copied().unwrap_or_default();
        let _ = writeln!(
            d,
            "| {name} | {} | {:.1} % | {} | {} | {} |",
            o.latencies.len() as u64 + o.failed,
            success_pct(o),
            ms(percentile(&o.latencies, 50.0)),
            ms(percentile(&o.latencies, 99.0)),
            ms(max)
        );
    }
    d.push_str(
        "\nHostile connections, from the handshake until the server closed them:\n\n\
         | kind | bound | closed | min | median | max | open at end (oldest) | refused | failed | usual last reply |\n\
         |---|--:|--:|--:|--:|--:|--:|--:|--:|---|\n",
    );
    for (kind, s, bound) in &f.survival {
        let _ = writeln!(
            d,
            "| {} | {} | {} | {} | {} | {} | {} ({}) | {} | {} | {} |",
            kind.label(),
            bound.map_or_else(|| "none".to_owned(), secs),
            s.closed.n,
            secs(s.closed.min),
            secs(s.closed.median),
            secs(s.closed.max),
            s.open,
            secs(s.oldest_open),
            s.refused,
            s.failed,
            s.parting
                .as_ref()
                .map_or_else(|| "—".to_owned(), |(l, n)| format!("`{l}` ×{n}"))
        );
    }
    d.push_str(
        "\nThe server over the attack (`VmRSS` and open descriptors from `/proc`):\n\n\
         | t | RSS | fds | hostile connections open |\n|--:|--:|--:|--:|\n",
    );
    for s in thin(&f.samples, Duration::from_secs(10)) {
        let _ = writeln!(
            d,
            "| {:.0} s | {} | {} | {} |",
            s.at.as_secs_f64(),
            mib(s.rss_kib),
            s.fds,
            s.hostile_open
        );
    }
    if let Some(c) = &f.capped {
        let _ = writeln!(
            d,
            "\nfd limit {}: {} slow clients, {} admitted and held, {} turned away; server CPU while capped {:.1} % of a core.",
            c.fd_limit, c.clients, c.admitted, c.refused, c.capped_cpu_pct
        );
    }
    d
}

/// `existing` with the soak section replaced by `section` (appended when
/// there is none yet); everything else is kept as it is.
pub fn splice(existing: &str, section: &str) -> String {
    let block = format!("{BEGIN}\n{}\n{END}\n", section.trim_end());
    match (existing.find(BEGIN), existing.find(END)) {
        (Some(b), Some(e)) if b < e => {
            let after = &existing[e + END.len()..];
            let after = after.strip_prefix('\n').unwrap_or(after);
            format!("{}{block}{after}", &existing[..b])
        }
        _ => {
            let mut s = existing.trim_end().to_owned();
            if !s.is_empty() {
                s.push_str("\n\n");
            }
            s.push_str(&block);
            s
        }
    }
}

/// The soak section of `existing` with its marks, if it has one (so a
/// report that rewrites the whole file can keep it).
pub fn section(existing: &str) -> Option<&str> {
    let b = existing.find(BEGIN)?;
    let e = existing[b..].find(END)? + b;
    Some(&existing[b..e + END.len()])
}

#[cfg(test)]
#[allow(clippy::unwrap_used, reason = "a failed unwrap is a failed test")]
mod tests {
    use super::*;

    fn d(ms: u64) -> Duration {
        Duration::from_millis(ms)
    }

    #[test]
    fn spreads() {
        assert_eq!(Spread::of(&[]), Spread::default());
        let s = Spread::of(&[d(30), d(10), d(20), d(40)]);
        assert_eq!((s.n, s.min, s.median, s.max), (4, d(10), d(20), d(40)));
        let s = Spread::of(&[d(5)]);
        assert_eq!((s.min, s.median, s.max), (d(5), d(5), d(5)));
    }

    fn closed(ms: u64, last: &str) -> End {
        End::Closed {
            after: d(ms),
            last: Some(last.to_owned()),
        }
    }

    #[test]
    fn survival_and_bounds() {
        let ends = vec![
            (Hostile::Idle, closed(10_100, "421 4.4.2 mx timeout")),
            (Hostile::Idle, closed(10_300, "421 4.4.2 mx timeout")),
            (Hostile::Idle, closed(9_900, "221 bye")),
            (Hostile::Idle, End::Open(d(3_000))),
            (Hostile::Idle, End::Refused("421 4.7.0 too many".into())),
            (Hostile::DripData, End::Open(d(60_000))),
            (Hostile::DripData, End::Failed("connect: refused".into())),
        ];
        let idle = Survival::of(Hostile::Idle, &ends);
        assert_eq!(idle.closed.n, 3);
        assert_eq!(idle.closed.max, d(10_300));
        assert_eq!((idle.open, idle.oldest_open), (1, d(3_000)));
        assert_eq!((idle.refused, idle.failed), (1, 0));
        assert_eq!(idle.parting, Some(("421 4.4.2".into(), 2)));
        assert!(idle.within(Some(d(20_000))));
        assert!(!idle.within(Some(d(10_000))));
        assert!(!idle.within(None));
        // An old connection still open fails its bound, and nothing closed proves nothing.
        let data = Survival::of(Hostile::DripData, &ends);
        assert_eq!((data.closed.n, data.open, data.failed), (0, 1, 1));
        assert!(!data.within(Some(d(20_000))));
        assert_eq!(data.example.as_deref(), Some("connect: refused"));
    }

    fn outcome(lat_ms: &[u64], failed: u64) -> Outcome {
        Outcome {
            latencies: lat_ms.iter().map(|m| d(*m)).collect(),
            failed,
            first_error: (failed > 0).then(|| "RCPT: expected 250, got 451".to_owned()),
            elapsed: d(1000),
        }
    }

    #[test]
    fn verdicts_judge_each_target() {
        let mut f = Findings {
            baseline: outcome(&[10, 10, 12, 20], 0),
            loaded: outcome(&[15, 30, 40], 0),
            survival: vec![(
                Hostile::NonReader,
                Survival::of(
                    Hostile::NonReader,
                    &[(Hostile::NonReader, closed(5000, "x"))],
                ),
                Some(d(20_000)),
            )],
            samples: vec![Sample {
                at: d(0),
                rss_kib: 30 * 1024,
                fds: 40,
                hostile_open: 0,
            }],
            rss_limit_kib: 64 * 1024,
            capped: Some(Capped {
                fd_limit: 128,
                capped_reply: (d(3), Some("421 4.3.2 too many".into())),
                freed_greeting: Some(d(1500)),
                ..Capped::default()
            }),
        };
        let met = |f: &Findings| f.verdicts().iter().map(|v| v.met).collect::<Vec<_>>();
        // success ×2, p99 (40 ≤ 2×20), survival, RSS, capped reply, freed (1.5 s > 1 s).
        assert_eq!(met(&f), [true, true, true, true, true, true, false]);
        f.loaded = outcome(&[15, 41], 1);
        f.samples[0].rss_kib = 65 * 1024;
        assert_eq!(met(&f), [true, false, false, true, false, true, false]);
        let text = tables(&f);
        assert!(text.contains("| under attack | 3 | 66.7 % |"), "{text}");
        assert!(text.contains("first failure: RCPT: expected 250, got 451"));
        assert_eq!(success_pct(&Outcome::default()), 100.0);
    }

    #[test]
    fn thinning_keeps_first_and_last() {
        let s = |secs: u64| Sample {
            at: Duration::from_secs(secs),
            rss_kib: secs,
            fds: 0,
            hostile_open: 0,
        };
        let all: Vec<Sample> = (0..=25).map(s).collect();
        let at: Vec<u64> = thin(&all, Duration::from_secs(10))
            .iter()
            .map(|x| x.at.as_secs())
            .collect();
        assert_eq!(at, [0, 10, 20, 25]);
        assert!(thin(&[], Duration::from_secs(1)).is_empty());
    }

    #[test]
    fn splicing_replaces_only_the_section() {
        let doc = "# Performance\n\nbench text\n";
        let once = splice(doc, "## Soak\n\nfirst\n");
        assert_eq!(
            once,
            format!("# Performance\n\nbench text\n\n{BEGIN}\n## Soak\n\nfirst\n{END}\n")
        );
        let mid = format!("{once}\n## Later\n");
        let twice = splice(&mid, "## Soak\n\nsecond");
        assert!(twice.contains("second") && !twice.contains("first"));
        assert!(
            twice.starts_with("# Performance\n\nbench text\n") && twice.ends_with("## Later\n")
        );
        assert_eq!(section(&twice).unwrap().lines().nth(2), Some(""));
        assert!(section(doc).is_none());
        assert_eq!(splice("", "x"), format!("{BEGIN}\nx\n{END}\n"));
    }
}
