//! Real TLS handshakes over loopback sockets with the configs this crate builds.

use std::sync::Arc;

use haraka_tls::{InboundTls, OutboundTls, outbound_client_config};
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{ClientConfig, DigitallySignedStruct, SignatureScheme};

use crate::common::{
    Ca, Root, client, client_tls12, connect, echo_server, handshake, ping, replace, served,
};

fn root_with(leaf_combined: &str) -> Root {
    let root = Root::new();
    root.write("mail.pem", leaf_combined);
    root.write("tls.ini", "key=mail.pem\ncert=mail.pem\n");
    root
}

#[tokio::test]
async fn handshake_serves_the_configured_certificate() {
    let ca = Ca::new("Test CA");
    let leaf = ca.leaf(None, &["mail.example.com"]);
    let root = root_with(&leaf.combined());
    let tls = InboundTls::load(&root.cfg()).unwrap();
    let addr = echo_server(tls.server_config(25).unwrap()).await;
    let mut s = connect(addr, client(ca.roots(), None), "mail.example.com")
        .await
        .unwrap();
    ping(&mut s).await.unwrap();
    assert_eq!(served(&s), leaf.der);
    let (_, conn) = s.get_ref();
    assert_eq!(
        conn.protocol_version(),
        Some(rustls::ProtocolVersion::TLSv1_3)
    );
}

#[tokio::test]
async fn renewed_certificate_without_restart_keeps_open_sessions() {
    let ca = Ca::new("Test CA");
    let old = ca.leaf(None, &["mail.example.com"]);
    let new = ca.leaf(None, &["mail.example.com"]);
    let root = root_with(&old.combined());
    let tls = InboundTls::load(&root.cfg()).unwrap();
    // one server config for the whole test, as the server keeps it
    let addr = echo_server(tls.server_config(25).unwrap()).await;
    let trust = client(ca.roots(), None);

    let mut open = connect(addr, trust, "mail.example.com").await.unwrap();
    ping(&mut open).await.unwrap();
    assert_eq!(served(&open), old.der);

    replace(&root.path("mail.pem"), &new.combined());
    assert!(tls.certs().check_now());

    // a fresh client (a reused one would resume its old session without a certificate)
    let fresh = client(ca.roots(), None);
    assert_eq!(
        handshake(addr, fresh, "mail.example.com").await.unwrap(),
        new.der
    );
    // the session opened before the renewal still works
    ping(&mut open).await.unwrap();
    assert_eq!(served(&open), old.der);
}

#[tokio::test]
async fn sni_handshake_picks_directory_certificate() {
    let ca = Ca::new("Test CA");
    let default = ca.leaf(None, &["mx.example.com"]);
    let other = ca.leaf(Some("other.example.org"), &[]);
    let root = root_with(&default.combined());
    root.write("tls/other.pem", &other.combined());
    let tls = InboundTls::load(&root.cfg()).unwrap();
    let addr = echo_server(tls.server_config(25).unwrap()).await;
    // a CN-only certificate does not verify in webpki: look with the accept-any client
    let any = outbound_client_config(&Root::new().cfg()).unwrap();
    assert_eq!(
        handshake(addr, any.clone(), "other.example.org")
            .await
            .unwrap(),
        other.der
    );
    assert_eq!(
        handshake(addr, any, "mx.example.com").await.unwrap(),
        default.der
    );
}

#[tokio::test]
async fn min_version_tls13_refuses_tls12_clients() {
    let ca = Ca::new("Test CA");
    let leaf = ca.leaf(None, &["mail.example.com"]);
    let root = Root::new();
    root.write("mail.pem", &leaf.combined());
    root.write(
        "tls.ini",
        "key=mail.pem\ncert=mail.pem\nminVersion=TLSv1.3\n",
    );
    let tls = InboundTls::load(&root.cfg()).unwrap();
    let addr = echo_server(tls.server_config(25).unwrap()).await;
    assert!(
        handshake(addr, client_tls12(ca.roots()), "mail.example.com")
            .await
            .is_err()
    );
    assert!(
        handshake(addr, client(ca.roots(), None), "mail.example.com")
            .await
            .is_ok()
    );

    // the default accepts TLS 1.2
    let root = root_with(&leaf.combined());
    let tls = InboundTls::load(&root.cfg()).unwrap();
    let addr = echo_server(tls.server_config(25).unwrap()).await;
    assert!(
        handshake(addr, client_tls12(ca.roots()), "mail.example.com")
            .await
            .is_ok()
    );
}

#[tokio::test]
async fn client_certificates_per_reject_unauthorized_and_require_authorized() {
    let ca = Ca::new("Test CA");
    let stranger = Ca::new("Other CA");
    let leaf = ca.leaf(None, &["mail.example.com"]);
    let good_client = ca.leaf(Some("client.example"), &["client.example"]);
    let bad_client = stranger.leaf(Some("client.example"), &["client.example"]);
    let root = Root::new();
    root.write("mail.pem", &leaf.combined());
    root.write("ca.pem", &ca.pem);
    root.write(
        "tls.ini",
        "key=mail.pem\ncert=mail.pem\nca=ca.pem\nrequireAuthorized[]=465\n",
    );
    let tls = InboundTls::load(&root.cfg()).unwrap();

    // port 25: certificates are asked for but not required, and unverified ones pass
    let lenient = echo_server(tls.server_config(25).unwrap()).await;
    for cert in [None, Some(&good_client), Some(&bad_client)] {
        let c = client(ca.roots(), cert);
        assert!(handshake(lenient, c, "mail.example.com").await.is_ok());
    }
    // port 465 (requireAuthorized): only a certificate from the CA passes
    let strict = echo_server(tls.server_config(465).unwrap()).await;
    let table = [
        (None, false),
        (Some(&good_client), true),
        (Some(&bad_client), false),
    ];
    for (cert, ok) in table {
        let c = client(ca.roots(), cert);
        let result = handshake(strict, c, "mail.example.com").await;
        assert_eq!(result.is_ok(), ok, "{result:?}");
    }
}

#[tokio::test]
async fn outbound_opportunistic_accepts_any_certificate() {
    let ca = Ca::new("Self-made CA");
    let leaf = ca.leaf(None, &["mx.elsewhere.example"]);
    let server_root = root_with(&leaf.combined());
    let server = InboundTls::load(&server_root.cfg()).unwrap();
    let addr = echo_server(server.server_config(25).unwrap()).await;

    let ours = Root::new();
    let config = outbound_client_config(&ours.cfg()).unwrap();
    // a name that does not match and a CA nobody trusts: still encrypted
    assert_eq!(
        handshake(addr, config, "other.name.example").await.unwrap(),
        leaf.der
    );

    // verified config with our CA: the right name passes, a wrong one fails
    ours.write("ca.pem", &ca.pem);
    ours.write(
        "tls.ini",
        "[outbound]\nca=ca.pem\nrejectUnauthorized=true\n",
    );
    let out = OutboundTls::load(&ours.cfg()).unwrap();
    assert!(
        handshake(addr, out.config.clone().unwrap(), "mx.elsewhere.example")
            .await
            .is_ok()
    );
    assert!(
        handshake(addr, out.config.clone().unwrap(), "wrong.example")
            .await
            .is_err()
    );
    // a CA that did not sign the server's certificate
    let other = Ca::new("Unrelated CA");
    ours.write("ca.pem", &other.pem);
    let out = OutboundTls::load(&ours.cfg()).unwrap();
    assert!(
        handshake(addr, out.config.unwrap(), "mx.elsewhere.example")
            .await
            .is_err()
    );
}

#[tokio::test]
async fn outbound_accept_any_still_checks_the_handshake_signature() {
    // A server presenting someone else's certificate, signing with its own key:
    // the certificate is accepted unchecked, but the signature must not be.
    let ca = Ca::new("Test CA");
    let victim = ca.leaf(None, &["victim.example"]);
    let attacker = ca.leaf(None, &["victim.example"]);
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let signing = provider
        .key_provider
        .load_private_key(attacker.key())
        .unwrap();
    let forged = rustls::sign::CertifiedKey::new(victim.chain(), signing);
    let server = rustls::ServerConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_cert_resolver(Arc::new(rustls::sign::SingleCertAndKey::from(forged)));
    let addr = echo_server(Arc::new(server)).await;
    let config = outbound_client_config(&Root::new().cfg()).unwrap();
    assert!(
        handshake(addr, config.clone(), "victim.example")
            .await
            .is_err()
    );

    // the honest server with the same certificate passes
    let root = root_with(&victim.combined());
    let tls = InboundTls::load(&root.cfg()).unwrap();
    let addr = echo_server(tls.server_config(25).unwrap()).await;
    assert_eq!(
        handshake(addr, config, "victim.example").await.unwrap(),
        victim.der
    );
}

/// Accepts any server certificate but offers only `scheme`, to see which of
/// several configured keys the server picks.
#[derive(Debug)]
struct OnlyScheme(SignatureScheme, Arc<rustls::crypto::CryptoProvider>);

impl ServerCertVerifier for OnlyScheme {
    fn verify_server_cert(
        &self,
        _: &CertificateDer<'_>,
        _: &[CertificateDer<'_>],
        _: &ServerName<'_>,
        _: &[u8],
        _: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }
    fn verify_tls12_signature(
        &self,
        m: &[u8],
        c: &CertificateDer<'_>,
        d: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(m, c, d, &self.1.signature_verification_algorithms)
    }
    fn verify_tls13_signature(
        &self,
        m: &[u8],
        c: &CertificateDer<'_>,
        d: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(m, c, d, &self.1.signature_verification_algorithms)
    }
    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        vec![self.0]
    }
}

#[tokio::test]
async fn several_key_pairs_are_chosen_by_signature_scheme() {
    let ca = Ca::new("Test CA");
    let ec = ca.leaf(None, &["mx.example.com"]);
    let ed = ca.leaf_with(&rcgen::PKCS_ED25519, None, &["mx.example.com"]);
    let root = Root::new();
    root.write("ec.pem", &ec.combined());
    root.write("ed.pem", &ed.combined());
    root.write(
        "tls.ini",
        "key[]=ec.pem\nkey[]=ed.pem\ncert[]=ec.pem\ncert[]=ed.pem\n",
    );
    let tls = InboundTls::load(&root.cfg()).unwrap();
    let addr = echo_server(tls.server_config(25).unwrap()).await;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    for (scheme, want) in [
        (SignatureScheme::ED25519, &ed.der),
        (SignatureScheme::ECDSA_NISTP256_SHA256, &ec.der),
    ] {
        let config = ClientConfig::builder_with_provider(provider.clone())
            .with_safe_default_protocol_versions()
            .unwrap()
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(OnlyScheme(scheme, provider.clone())))
            .with_no_client_auth();
        let got = handshake(addr, Arc::new(config), "mx.example.com")
            .await
            .unwrap();
        assert_eq!(&got, want, "{scheme:?}");
    }
}
