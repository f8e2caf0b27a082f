//! What the server's socket tests share: a context with one plugin and test
//! defaults, and a server running on it on loopback.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use haraka_plugin_api::Plugin;
use haraka_server::{
    ConnCaps, LoadedPlugin, Pipeline, Rdns, Server, ServerContext, ShutdownHandle, SystemEnv,
    shutdown_channel,
};
use haraka_smtp::SessionConfig;

/// `plugin` (5 s hook timeout) and `session`, with 5 s TLS and write timeouts, no
/// caps, no outbound queue, rDNS answering NXDOMAIN and the system clock; tests
/// override fields with `..context(…)`.
pub fn context(plugin: Arc<dyn Plugin>, session: SessionConfig) -> ServerContext {
    ServerContext {
        pipeline: Pipeline::new(vec![LoadedPlugin {
            plugin,
            timeout: Some(Duration::from_secs(5)),
        }]),
        session,
        tls_handshake_timeout: Duration::from_secs(5),
        write_timeout: Duration::from_secs(5),
        caps: ConnCaps::default(),
        outbound: None,
        rdns: Rdns::fixed(Err("NXDOMAIN")),
        implicit_tls: None,
        env: Arc::new(SystemEnv),
    }
}

/// Bind `ctx` on `bind` (port 0: any) and run it until the handle shuts it down
/// (1 s grace period).
pub async fn serve(ctx: ServerContext, bind: SocketAddr) -> (SocketAddr, ShutdownHandle) {
    let server = Server::bind(&[bind], Arc::new(ctx)).await.unwrap();
    let addr = server.local_addrs()[0];
    let (handle, rx) = shutdown_channel();
    tokio::spawn(server.run(rx, Duration::from_secs(1)));
    (addr, handle)
}

/// Any free port on 127.0.0.1.
#[allow(dead_code, reason = "the timeouts tests choose their own port")]
pub fn loopback() -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], 0))
}
