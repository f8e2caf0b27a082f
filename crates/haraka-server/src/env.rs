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
        haraka_smtp::ids::uuid_from_bytes(rand::random())
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
        self.connection_uuid()
    }
}

/// The current UTC time as `Thu, 26 Nov 2026 15:51:23 +0000`.
pub fn rfc2822_now() -> String {
    let secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    haraka_smtp::ids::rfc2822_date(secs)
}
