//! The session's view of the clock and of randomness.

use haraka_smtp::Env;

/// Where connections get their UUID and their session's [`Env`] from.
pub trait EnvSource: Send + Sync {
    /// The UUID of a new connection.
    fn connection_uuid(&self) -> String;
    /// The clock and UUID source of a new session.
    fn session_env(&self) -> Box<dyn Env>;
}

/// Real time and random UUIDs.
#[derive(Debug, Default, Clone, Copy)]
pub struct SystemEnv;

impl EnvSource for SystemEnv {
    fn connection_uuid(&self) -> String {
        new_uuid()
    }

    fn session_env(&self) -> Box<dyn Env> {
        Box::new(SystemEnv)
    }
}

impl Env for SystemEnv {
    fn date(&self) -> String {
        rfc2822_now()
    }

    fn new_uuid(&mut self) -> String {
        new_uuid()
    }
}

/// A connection UUID as Haraka writes them: upper-case hex, `8-4-4-4-12`, version 4.
pub fn new_uuid() -> String {
    let mut b: [u8; 16] = rand::random();
    b[6] = (b[6] & 0x0f) | 0x40;
    b[8] = (b[8] & 0x3f) | 0x80;
    let hex: String = b.iter().map(|x| format!("{x:02X}")).collect();
    format!(
        "{}-{}-{}-{}-{}",
        &hex[0..8],
        &hex[8..12],
        &hex[12..16],
        &hex[16..20],
        &hex[20..32]
    )
}

/// The current UTC time as `Thu, 26 Nov 2026 15:51:23 +0000`.
pub fn rfc2822_now() -> String {
    let secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    rfc2822(secs)
}

/// `secs` since the epoch as an RFC 2822 date in UTC.
pub fn rfc2822(secs: u64) -> String {
    const DAYS: [&str; 7] = ["Thu", "Fri", "Sat", "Sun", "Mon", "Tue", "Wed"];
    const MONTHS: [&str; 12] = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    let days = secs / 86_400;
    let rem = secs % 86_400;
    let (y, m, d) = civil_from_days(days as i64);
    let wd = DAYS[(days % 7) as usize];
    let month = MONTHS[(m - 1) as usize];
    format!(
        "{wd}, {d:02} {month} {y} {:02}:{:02}:{:02} +0000",
        rem / 3600,
        (rem % 3600) / 60,
        rem % 60
    )
}

/// Days since 1970-01-01 to (year, month 1-12, day 1-31); Howard Hinnant's algorithm.
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (if m <= 2 { y + 1 } else { y }, m, d)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates() {
        assert_eq!(rfc2822(0), "Thu, 01 Jan 1970 00:00:00 +0000");
        assert_eq!(rfc2822(1_795_708_283), "Thu, 26 Nov 2026 15:51:23 +0000");
        assert_eq!(rfc2822(951_782_400), "Tue, 29 Feb 2000 00:00:00 +0000");
    }

    #[test]
    fn uuid_shape() {
        let u = new_uuid();
        assert_eq!(u.len(), 36);
        assert_eq!(&u[14..15], "4");
        assert!(matches!(&u[19..20], "8" | "9" | "A" | "B"));
        assert!(
            u.chars()
                .all(|c| c == '-' || c.is_ascii_hexdigit() && !c.is_ascii_lowercase())
        );
    }
}
