//! Time limits without a clock.
//!
//! The driver waits for input at most [`Session::poll_timeout`], then reports how
//! long it waited: [`Session::time_passed`] after a wait that brought input (before
//! feeding it), [`Session::handle_timeout`] when the whole time passed. The
//! session charges that time to its budgets, so a client cannot keep a connection
//! by sending a byte now and then:
//!
//! * `inactivity_timeout` bounds every single wait (Haraka's rule): `421 timeout`;
//! * `command_timeout` bounds a command line from its first byte to its LF, however
//!   the bytes trickle in;
//! * `data_timeout` bounds the whole message after `354`, and `data_min_rate`
//!   asks for that many bytes per second in each `data_rate_period`, so a message
//!   cannot be dripped in after a fast start either.
//!
//! The last three answer `421 4.4.2 <me> timeout` and close; an unfinished message
//! is dropped with its transaction. Only time spent waiting for the client counts:
//! hooks, rDNS and writes do not use up the client's budgets.

use std::time::Duration;

use super::data::DataClock;
use super::{Mode, Session, SessionConfig};

/// The whole budget of one command line.
pub(super) fn line_limit(cfg: &SessionConfig) -> Duration {
    if cfg.command_timeout.is_zero() {
        cfg.inactivity_timeout
    } else {
        cfg.command_timeout
    }
}

impl Session {
    /// How long from now the driver may wait for input before
    /// [`Session::handle_timeout`] is due. `None` once the session has ended.
    pub fn poll_timeout(&self) -> Option<Duration> {
        if self.is_closed() {
            return None;
        }
        let idle = self.cfg.inactivity_timeout;
        Some(match &self.mode {
            Mode::Cmd | Mode::Loop { .. } if !self.input.is_empty() => idle.min(self.line_left),
            Mode::Data(state) => idle.min(state.clock.next_check(&self.cfg)),
            _ => idle,
        })
    }

    /// The time from [`Session::poll_timeout`] passed without input.
    pub fn handle_timeout(&mut self) {
        if let Some(waited) = self.poll_timeout() {
            self.time_passed(waited);
        }
    }

    /// The driver waited `waited` for input (call it before feeding what came).
    /// A limit this exhausts answers `421` and closes.
    pub fn time_passed(&mut self, waited: Duration) {
        if matches!(self.mode, Mode::Closing | Mode::Closed | Mode::Tls) {
            return;
        }
        if waited >= self.cfg.inactivity_timeout {
            self.respond1(421, "timeout");
            self.disconnect();
            return;
        }
        let cfg = &self.cfg;
        let within = match &mut self.mode {
            Mode::Cmd | Mode::Loop { .. } if self.input.is_empty() => {
                self.line_left = line_limit(cfg);
                true
            }
            Mode::Cmd | Mode::Loop { .. } => {
                self.line_left = self.line_left.saturating_sub(waited);
                !self.line_left.is_zero()
            }
            Mode::Data(state) => state.clock.charge(waited, state.rx.data_bytes(), cfg),
            _ => true,
        };
        if !within {
            let text = format!("4.4.2 {} timeout", self.cfg.me);
            self.respond1(421, &text);
            self.disconnect();
        }
    }
}

impl DataClock {
    /// Time until `data_timeout` runs out or the current rate period ends.
    pub(super) fn next_check(&self, cfg: &SessionConfig) -> Duration {
        let mut next = Duration::MAX;
        if !cfg.data_timeout.is_zero() {
            next = cfg.data_timeout.saturating_sub(self.elapsed);
        }
        if rate_applies(cfg) {
            next = next.min(cfg.data_rate_period.saturating_sub(self.period));
        }
        next
    }

    /// Charge `waited`, the receiver having counted `bytes` so far; false when the
    /// message took too long or came too slowly during the period that ended.
    pub(super) fn charge(&mut self, waited: Duration, bytes: u64, cfg: &SessionConfig) -> bool {
        self.elapsed = self.elapsed.saturating_add(waited);
        if !cfg.data_timeout.is_zero() && self.elapsed >= cfg.data_timeout {
            return false;
        }
        if !rate_applies(cfg) {
            return true;
        }
        self.period = self.period.saturating_add(waited);
        if self.period < cfg.data_rate_period {
            return true;
        }
        let got = u128::from(bytes.saturating_sub(self.period_start));
        let need = u128::from(cfg.data_min_rate) * self.period.as_millis() / 1000;
        self.period = Duration::ZERO;
        self.period_start = bytes;
        got >= need
    }
}

fn rate_applies(cfg: &SessionConfig) -> bool {
    cfg.data_min_rate > 0 && !cfg.data_rate_period.is_zero()
}
