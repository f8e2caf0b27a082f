//! Test support (feature `testing`): certificates made with rcgen at test time,
//! throw-away Haraka roots and a loopback TLS echo server, for the tests of this
//! crate and of the code that uses it.

#![allow(
    clippy::unwrap_used,
    reason = "test support: a failed unwrap is a failed test"
)]

use std::fs;
use std::io;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use haraka_config::ConfigDir;
use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, IsCa, Issuer, KeyPair,
    SignatureAlgorithm,
};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use rustls::{ClientConfig, RootCertStore, ServerConfig};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio_rustls::{TlsAcceptor, TlsConnector};

/// A certificate authority.
pub struct Ca {
    issuer: Issuer<'static, KeyPair>,
    pub pem: String,
    pub der: CertificateDer<'static>,
}

/// A leaf certificate with its key, as PEM.
#[derive(Clone)]
pub struct Leaf {
    pub cert_pem: String,
    pub key_pem: String,
    pub der: Vec<u8>,
}

impl Leaf {
    /// acme.sh style: `cat key cer > combined.pem`.
    pub fn combined(&self) -> String {
        format!("{}{}", self.key_pem, self.cert_pem)
    }
    pub fn chain(&self) -> Vec<CertificateDer<'static>> {
        vec![CertificateDer::from(self.der.clone())]
    }
    pub fn key(&self) -> PrivateKeyDer<'static> {
        PrivateKeyDer::from_pem_slice(self.key_pem.as_bytes()).unwrap()
    }
}

impl Ca {
    pub fn new(name: &str) -> Ca {
        let key = KeyPair::generate().unwrap();
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.distinguished_name = DistinguishedName::new();
        params.distinguished_name.push(DnType::CommonName, name);
        let cert = params.self_signed(&key).unwrap();
        Ca {
            pem: cert.pem(),
            der: cert.der().clone(),
            issuer: Issuer::new(params, key),
        }
    }

    /// A P-256 leaf with subject CN `cn` (if any) and DNS SANs `sans`.
    pub fn leaf(&self, cn: Option<&str>, sans: &[&str]) -> Leaf {
        self.leaf_with(&rcgen::PKCS_ECDSA_P256_SHA256, cn, sans)
    }

    pub fn leaf_with(
        &self,
        alg: &'static SignatureAlgorithm,
        cn: Option<&str>,
        sans: &[&str],
    ) -> Leaf {
        let key = KeyPair::generate_for(alg).unwrap();
        let sans: Vec<String> = sans.iter().map(|s| (*s).to_owned()).collect();
        let mut params = CertificateParams::new(sans).unwrap();
        params.distinguished_name = DistinguishedName::new();
        if let Some(cn) = cn {
            params.distinguished_name.push(DnType::CommonName, cn);
        }
        let cert = params.signed_by(&key, &self.issuer).unwrap();
        Leaf {
            cert_pem: cert.pem(),
            key_pem: key.serialize_pem(),
            der: cert.der().to_vec(),
        }
    }

    pub fn roots(&self) -> RootCertStore {
        let mut roots = RootCertStore::empty();
        roots.add(self.der.clone()).unwrap();
        roots
    }
}

/// A throw-away Haraka root with a `config/` directory.
pub struct Root {
    pub dir: tempfile::TempDir,
}

impl Default for Root {
    fn default() -> Root {
        Root::new()
    }
}

impl Root {
    pub fn new() -> Root {
        let dir = tempfile::tempdir().unwrap();
        fs::create_dir(dir.path().join("config")).unwrap();
        Root { dir }
    }

    /// `config/<rel>`.
    pub fn path(&self, rel: &str) -> PathBuf {
        self.dir.path().join("config").join(rel)
    }

    /// Write `config/<rel>` (creating folders).
    pub fn write(&self, rel: &str, text: &str) -> PathBuf {
        let path = self.path(rel);
        if let Some(parent) = path.parent() {
            fs::create_dir_all(parent).unwrap();
        }
        fs::write(&path, text).unwrap();
        path
    }

    pub fn cfg(&self) -> ConfigDir {
        ConfigDir::open(self.dir.path()).unwrap()
    }
}

/// Replace `path` the way a deploy script does: write a new file and rename it over.
pub fn replace(path: &Path, text: &str) {
    let tmp = path.with_extension("tmp-new");
    fs::write(&tmp, text).unwrap();
    fs::rename(&tmp, path).unwrap();
}

/// Overwrite `path` in place (`cat > file`) and give it a distinct mtime, so the
/// change is visible even within one tick of the file system clock.
pub fn overwrite(path: &Path, text: &str, mtime_offset_secs: u64) {
    fs::write(path, text).unwrap();
    let f = fs::OpenOptions::new().write(true).open(path).unwrap();
    let t = SystemTime::now() + Duration::from_secs(mtime_offset_secs);
    f.set_modified(t).unwrap();
}

fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// A client that trusts `roots` and optionally presents a certificate.
pub fn client(roots: RootCertStore, cert: Option<&Leaf>) -> Arc<ClientConfig> {
    let b = ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots);
    let config = match cert {
        Some(leaf) => b.with_client_auth_cert(leaf.chain(), leaf.key()).unwrap(),
        None => b.with_no_client_auth(),
    };
    Arc::new(config)
}

/// A TLS 1.2-only client.
pub fn client_tls12(roots: RootCertStore) -> Arc<ClientConfig> {
    Arc::new(
        ClientConfig::builder_with_provider(provider())
            .with_protocol_versions(&[&rustls::version::TLS12])
            .unwrap()
            .with_root_certificates(roots)
            .with_no_client_auth(),
    )
}

/// An echo server on 127.0.0.1 that accepts TLS with `config` on every connection.
pub async fn echo_server(config: Arc<ServerConfig>) -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let acceptor = TlsAcceptor::from(config);
    tokio::spawn(async move {
        while let Ok((tcp, _)) = listener.accept().await {
            let acceptor = acceptor.clone();
            tokio::spawn(async move {
                let Ok(mut tls) = acceptor.accept(tcp).await else {
                    return;
                };
                let mut buf = [0u8; 256];
                loop {
                    match tls.read(&mut buf).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => {
                            if tls.write_all(&buf[..n]).await.is_err() || tls.flush().await.is_err()
                            {
                                return;
                            }
                        }
                    }
                }
            });
        }
    });
    addr
}

pub type ClientStream = tokio_rustls::client::TlsStream<TcpStream>;

/// Connect with SNI `name`.
pub async fn connect(
    addr: SocketAddr,
    config: Arc<ClientConfig>,
    name: &str,
) -> io::Result<ClientStream> {
    let tcp = TcpStream::connect(addr).await?;
    let server_name = ServerName::try_from(name.to_owned()).map_err(io::Error::other)?;
    TlsConnector::from(config).connect(server_name, tcp).await
}

/// Send `ping` and read it back (this is where a rejected client certificate shows).
pub async fn ping(stream: &mut ClientStream) -> io::Result<()> {
    stream.write_all(b"ping").await?;
    stream.flush().await?;
    let mut buf = [0u8; 4];
    stream.read_exact(&mut buf).await?;
    if &buf == b"ping" {
        Ok(())
    } else {
        Err(io::Error::other("bad echo"))
    }
}

/// The leaf certificate the server presented.
pub fn served(stream: &ClientStream) -> Vec<u8> {
    let (_, conn) = stream.get_ref();
    conn.peer_certificates()
        .and_then(|c| c.first())
        .map(|c| c.as_ref().to_vec())
        .unwrap_or_default()
}

/// Connect, ping, and return the served leaf.
pub async fn handshake(
    addr: SocketAddr,
    config: Arc<ClientConfig>,
    name: &str,
) -> io::Result<Vec<u8>> {
    let mut s = connect(addr, config, name).await?;
    ping(&mut s).await?;
    Ok(served(&s))
}
