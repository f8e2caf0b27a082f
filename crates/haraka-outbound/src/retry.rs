//! Haraka's retry schedule: `temp_fail_intervals` and `maxTempFailures` of
//! `outbound.ini`, and when a deferred delivery is tried next.

use std::time::Duration;

/// The wait after each temporary failure; its length is the number of temporary
/// failures tolerated before the message bounces.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RetrySchedule {
    intervals: Vec<Duration>,
}

impl RetrySchedule {
    pub fn new(intervals: Vec<Duration>) -> RetrySchedule {
        RetrySchedule { intervals }
    }

    /// Haraka's schedule when `temp_fail_intervals` is unset: 2^(n+5) s for n = 1 …
    /// `max_temp_failures - 1`.
    pub fn doubling(max_temp_failures: u32) -> RetrySchedule {
        RetrySchedule::new(
            (1..max_temp_failures.min(40))
                .map(|i| Duration::from_secs(1u64 << (i + 5)))
                .collect(),
        )
    }

    /// From the `temp_fail_intervals` text if there is one, else the doubling
    /// schedule of `maxTempFailures`; a syntax error is passed to `warn` and the
    /// doubling schedule used, as Haraka does.
    pub fn from_settings(
        intervals: Option<&str>,
        max_temp_failures: u32,
        warn: impl FnOnce(String),
    ) -> RetrySchedule {
        match intervals.map(RetrySchedule::parse) {
            Some(Ok(schedule)) => return schedule,
            Some(Err(e)) => warn(format!(
                "temp_fail_intervals syntax error: {e}; using the default schedule"
            )),
            None => {}
        }
        RetrySchedule::doubling(max_temp_failures)
    }

    /// Parse `1m, 5m*2, 1h*3` (units `s m h d`, `*N` repeats, each value ≥ 5 s) or
    /// `none` (no retries).
    pub fn parse(text: &str) -> Result<RetrySchedule, String> {
        let input: String = text
            .chars()
            .filter(|c| !c.is_whitespace())
            .collect::<String>()
            .to_ascii_lowercase();
        if input.is_empty() {
            return Err("nothing specified".into());
        }
        if input == "none" {
            return Ok(RetrySchedule::new(Vec::new()));
        }
        let mut out = Vec::new();
        for (i, item) in input.split(',').enumerate() {
            let err = |m: &str| format!("element {i}: {m}");
            let (span, count) = match item.split_once('*') {
                None => (item, 1u32),
                Some((span, n)) => {
                    if n.contains('*') {
                        return Err(err("too many *"));
                    }
                    (
                        span,
                        n.parse::<u32>()
                            .map_err(|_| err("multiplier is not an integer"))?,
                    )
                }
            };
            if span.len() < 2 {
                return Err(err("invalid time span"));
            }
            let (num, unit) = span.split_at(span.len() - 1);
            let num: f64 = num.parse().map_err(|_| err("invalid number or symbol"))?;
            let secs = match unit {
                "s" => num,
                "m" => num * 60.0,
                "h" => num * 3600.0,
                "d" => num * 86400.0,
                _ => return Err(err("invalid time span symbol")),
            };
            if secs.is_nan() || secs < 5.0 || !secs.is_finite() {
                return Err(err("delay time too small, should be >=5 seconds"));
            }
            if out.len() + count as usize > 100_000 {
                return Err(err("too many intervals"));
            }
            let span =
                Duration::try_from_secs_f64(secs).map_err(|_| err("delay time too large"))?;
            out.extend(std::iter::repeat_n(span, count as usize));
        }
        if out.is_empty() {
            return Err("unexpected parsing result".into());
        }
        Ok(RetrySchedule::new(out))
    }

    /// The wait after temporary failure number `failures` (1 for the first), or
    /// `None` when the retries ran out and the message bounces.
    pub fn delay(&self, failures: u32) -> Option<Duration> {
        let index = usize::try_from(failures).ok()?.checked_sub(1)?;
        self.intervals.get(index).copied()
    }

    /// The next attempt (epoch ms) `delay` after `now_ms`.
    pub fn due(now_ms: u64, delay: Duration) -> u64 {
        now_ms.saturating_add(u64::try_from(delay.as_millis()).unwrap_or(u64::MAX))
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, reason = "a failed unwrap is a failed test")]
mod tests {
    use super::*;

    fn secs(v: &[u64]) -> Vec<Duration> {
        v.iter().map(|s| Duration::from_secs(*s)).collect()
    }

    #[test]
    fn interval_table() {
        let ok: [(&str, Vec<Duration>); 6] = [
            ("1m, 5m*2, 1h*3", secs(&[60, 300, 300, 3600, 3600, 3600])),
            ("5s*2", secs(&[5, 5])),
            ("none", Vec::new()),
            ("NONE", Vec::new()),
            ("1d", secs(&[86400])),
            ("10S , 1M", secs(&[10, 60])),
        ];
        for (text, want) in ok {
            assert_eq!(
                RetrySchedule::parse(text).unwrap().intervals,
                want,
                "{text}"
            );
        }
        for bad in [
            "", "4s", "1x", "m", "1m*2*3", "1m*x", "abc", "1m,,2m", "1m*0",
        ] {
            assert!(RetrySchedule::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn default_schedule_is_haraka_s() {
        let d = RetrySchedule::doubling(13).intervals;
        assert_eq!(d.len(), 12);
        assert_eq!(d[0], Duration::from_secs(64));
        assert_eq!(d[11], Duration::from_secs(131072));
        assert!(RetrySchedule::doubling(1).intervals.is_empty());
    }

    #[test]
    fn delays_and_due_times() {
        let s = RetrySchedule::parse("5s, 1m").unwrap();
        assert_eq!(s.delay(0), None);
        assert_eq!(s.delay(1), Some(Duration::from_secs(5)));
        assert_eq!(s.delay(2), Some(Duration::from_secs(60)));
        assert_eq!(s.delay(3), None);
        assert_eq!(RetrySchedule::due(1_000, Duration::from_secs(5)), 6_000);
        assert_eq!(
            RetrySchedule::due(u64::MAX, Duration::from_secs(1)),
            u64::MAX
        );
    }
}
