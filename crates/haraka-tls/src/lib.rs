//! TLS for haraka-rs: everything about `config/tls.ini` and the certificates it
//! names, for every part of the server that speaks TLS.
//!
//! Owns: reading `tls.ini` ([`TlsSettings`]: keys supported, OpenSSL-only keys
//! warned about), loading key/cert pairs (separate files or one combined PEM,
//! relative to the config dir or absolute), the SNI certificates of `config/tls/`
//! (by CN and DNS SAN), reloading all of them when the files change on disk
//! ([`CertStore`]), the rustls server configs for STARTTLS and SMTPS
//! ([`InboundTls`]), the client configs and host lists of outbound delivery
//! ([`OutboundTls`]), the certificate verifiers `requestCert` /
//! `rejectUnauthorized` imply, and [`Stream`], the socket that is plain TCP until
//! a handshake upgrades it (server and client side alike).
//!
//! Must never: decide SMTP replies or run hooks (the `tls` plugin offers
//! STARTTLS, the server and client drive the handshake), depend on the server, a
//! plugin or the binary, panic on file content, or block a handshake for more than
//! one look at the files per second.
//!
//! A client certificate a handshake accepted is only known to chain to the
//! configured CA when [`InboundTls::server_config`] returned the strict config
//! (`rejectUnauthorized=true`, or the port is in `requireAuthorized[]`); otherwise
//! any certificate is accepted, as Node does with `rejectUnauthorized=false`.

mod client;
mod names;
mod pem;
mod server;
mod settings;
mod store;
mod stream;
#[cfg(feature = "testing")]
pub mod testing;
mod verify;

use std::path::PathBuf;

use haraka_config::ConfigErrors;

pub use client::{OutboundTls, outbound_client_config, system_client_config};
pub use server::InboundTls;
pub use settings::{MinVersion, SideSettings, TlsSettings};
pub use store::{CertStore, RELOAD_INTERVAL};
pub use stream::Stream;

/// Why TLS could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("{0}")]
    Config(#[from] ConfigErrors),
    #[error("tls {what} {path} could not be loaded: {source}")]
    Read {
        what: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("tls file {path}: {reason}")]
    Pem { path: PathBuf, reason: String },
    #[error("tls key {key} does not match the certificate in {cert}")]
    Mismatch { key: PathBuf, cert: PathBuf },
    #[error(
        "verifying TLS peers (rejectUnauthorized / requireAuthorized) needs CA certificates: \
         set ca= in tls.ini (no system CA bundle was found)"
    )]
    NoRoots,
    #[error(
        "no CA certificates found (looked at SSL_CERT_FILE and {})",
        verify::SYSTEM_BUNDLES.join(", ")
    )]
    NoSystemRoots,
    #[error("tls: {0}")]
    Rustls(#[from] rustls::Error),
    #[error("tls: {0}")]
    Other(String),
}
