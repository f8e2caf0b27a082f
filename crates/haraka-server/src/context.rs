//! What every connection of a running server shares.

use std::sync::Arc;
use std::time::Duration;

use haraka_plugin_api::OutboundQueue;
use haraka_smtp::SessionConfig;

use crate::env::EnvSource;
use crate::limits::ConnCaps;
use crate::rdns::Rdns;
use crate::runner::Pipeline;

/// The server-wide state a connection keeps for its whole life (a config snapshot).
pub struct ServerContext {
    pub pipeline: Pipeline,
    pub session: SessionConfig,
    /// STARTTLS handshake limit.
    pub tls_handshake_timeout: Duration,
    /// A write to the client that makes no progress for this long closes the
    /// connection (`smtp.ini write_timeout`).
    pub write_timeout: Duration,
    /// `smtp.ini max_connections` and `max_connections_per_ip`.
    pub caps: ConnCaps,
    /// Where relayed mail goes when no `queue_outbound` plugin takes it.
    pub outbound: Option<Arc<dyn OutboundQueue>>,
    pub rdns: Rdns,
    /// Implicit TLS (SMTPS) on one port (`smtp.ini smtps_port`).
    pub implicit_tls: Option<ImplicitTls>,
    /// Connection UUIDs, dates and session UUIDs ([`crate::env::SystemEnv`] in production).
    pub env: Arc<dyn EnvSource>,
}

/// Connections to `port` speak TLS from the first byte.
#[derive(Clone)]
pub struct ImplicitTls {
    pub port: u16,
    pub config: Arc<rustls::ServerConfig>,
}

impl std::fmt::Debug for ServerContext {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ServerContext")
            .field("pipeline", &self.pipeline)
            .field("inactivity_timeout", &self.session.inactivity_timeout)
            .field("write_timeout", &self.write_timeout)
            .field("caps", &self.caps)
            .finish()
    }
}
