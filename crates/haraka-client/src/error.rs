//! What can go wrong talking to an SMTP server.

use std::fmt;
use std::io;
use std::net::SocketAddr;
use std::time::Duration;

use haraka_smtp::Reply;

/// The step of the dialogue an error happened in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stage {
    Connect,
    Greeting,
    Ehlo,
    Helo,
    StartTls,
    Xclient,
    Auth,
    Mail,
    Rcpt,
    Data,
    /// Sending the message and waiting for the reply to the final dot.
    Dot,
    Rset,
    Noop,
    Quit,
    /// A command sent with [`crate::SmtpClient::command`].
    Other,
}

impl Stage {
    pub fn as_str(self) -> &'static str {
        match self {
            Stage::Connect => "connect",
            Stage::Greeting => "greeting",
            Stage::Ehlo => "EHLO",
            Stage::Helo => "HELO",
            Stage::StartTls => "STARTTLS",
            Stage::Xclient => "XCLIENT",
            Stage::Auth => "AUTH",
            Stage::Mail => "MAIL",
            Stage::Rcpt => "RCPT",
            Stage::Data => "DATA",
            Stage::Dot => "end of data",
            Stage::Rset => "RSET",
            Stage::Noop => "NOOP",
            Stage::Quit => "QUIT",
            Stage::Other => "command",
        }
    }
}

impl fmt::Display for Stage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A failed SMTP client operation.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The TCP connection could not be made.
    #[error("connect to {addr}: {source}")]
    Connect {
        addr: SocketAddr,
        #[source]
        source: io::Error,
    },
    /// Reading or writing failed.
    #[error("{stage}: {source}")]
    Io {
        stage: Stage,
        #[source]
        source: io::Error,
    },
    /// The server did not answer (or accept data) in time.
    #[error("{stage}: timed out after {}s", after.as_secs_f64())]
    Timeout { stage: Stage, after: Duration },
    /// The server closed the connection.
    #[error("{stage}: connection closed by the server")]
    Closed { stage: Stage },
    /// The TLS handshake failed; the connection is unusable.
    #[error("STARTTLS: {0}")]
    Tls(io::Error),
    /// The server broke the protocol (bad reply line, data after a STARTTLS reply...).
    #[error("{stage}: protocol error: {detail}")]
    Protocol { stage: Stage, detail: String },
    /// The server answered with a 4xx or 5xx reply.
    #[error("{stage} rejected: {}", reply.one_line())]
    Rejected { stage: Stage, reply: Reply },
    /// The caller asked for something that cannot be sent (CR/LF in an argument,
    /// an empty recipient list, a connection that already failed).
    #[error("{0}")]
    Invalid(String),
    /// No connection slot became free in time (`max_connections`).
    #[error("no free connection to the destination after {}s", waited.as_secs_f64())]
    PoolExhausted { waited: Duration },
}

impl Error {
    /// The server's rejection, if that is what this is.
    pub fn reply(&self) -> Option<&Reply> {
        match self {
            Error::Rejected { reply, .. } => Some(reply),
            _ => None,
        }
    }

    /// A 5xx rejection: retrying the same thing will fail again.
    pub fn is_permanent(&self) -> bool {
        self.reply().is_some_and(|r| (500..600).contains(&r.code))
    }

    /// The stage the error happened in, when known.
    pub fn stage(&self) -> Option<Stage> {
        match self {
            Error::Connect { .. } => Some(Stage::Connect),
            Error::Io { stage, .. }
            | Error::Timeout { stage, .. }
            | Error::Closed { stage }
            | Error::Protocol { stage, .. }
            | Error::Rejected { stage, .. } => Some(*stage),
            Error::Tls(_) => Some(Stage::StartTls),
            Error::Invalid(_) | Error::PoolExhausted { .. } => None,
        }
    }

    /// The connection itself failed (as opposed to a reply the server gave).
    pub fn is_transport(&self) -> bool {
        matches!(
            self,
            Error::Connect { .. }
                | Error::Io { .. }
                | Error::Timeout { .. }
                | Error::Closed { .. }
                | Error::Tls(_)
                | Error::Protocol { .. }
        )
    }
}
