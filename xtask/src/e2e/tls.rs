//! Self-signed certificates for the checks: separate key and certificate
//! files (for Postfix) or one combined PEM, key first (the example setup's layout
//! for Haraka's tls plugin).

use std::path::{Path, PathBuf};

use anyhow::Context;

/// A fresh certificate and its key, in PEM.
#[derive(Debug, Clone)]
pub struct Cert {
    /// The certificate.
    pub cert_pem: String,
    /// The private key (PKCS#8).
    pub key_pem: String,
}

impl Cert {
    /// A fresh self-signed certificate for `names` (DNS names).
    pub fn self_signed(names: &[&str]) -> anyhow::Result<Self> {
        let names: Vec<String> = names.iter().map(|s| (*s).to_owned()).collect();
        let ck = rcgen::generate_simple_self_signed(names).context("making a certificate")?;
        Ok(Self {
            cert_pem: ck.cert.pem(),
            key_pem: ck.signing_key.serialize_pem(),
        })
    }

    /// Write `<dir>/<stem>.crt` and `<dir>/<stem>.key`; returns (cert, key) paths.
    pub fn write_pair(&self, dir: &Path, stem: &str) -> anyhow::Result<(PathBuf, PathBuf)> {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
        let cert = dir.join(format!("{stem}.crt"));
        let key = dir.join(format!("{stem}.key"));
        write(&cert, &self.cert_pem)?;
        write(&key, &self.key_pem)?;
        Ok((cert, key))
    }

    /// Write the combined PEM (key, then certificate) to `path`, replacing
    /// any file there atomically (as a renewal hook would).
    pub fn write_combined(&self, path: &Path) -> anyhow::Result<()> {
        let tmp = path.with_extension("pem.tmp");
        write(&tmp, &format!("{}{}", self.key_pem, self.cert_pem))?;
        std::fs::rename(&tmp, path)
            .with_context(|| format!("renaming {} to {}", tmp.display(), path.display()))
    }

    /// Write the combined PEM (key, then certificate) over the file at `path`
    /// in place (same inode), as acme.sh's `cat key cer > combined.pem` renewal does.
    pub fn overwrite_combined(&self, path: &Path) -> anyhow::Result<()> {
        write(path, &format!("{}{}", self.key_pem, self.cert_pem))
    }

    /// True if `pem` holds this certificate (as swaks saves a peer's).
    pub fn is(&self, pem: &str) -> bool {
        same_cert(&self.cert_pem, pem)
    }
}

/// True if both texts hold the same first certificate (PEM, whitespace ignored).
pub fn same_cert(a: &str, b: &str) -> bool {
    match (first_cert_b64(a), first_cert_b64(b)) {
        (Some(x), Some(y)) => x == y,
        _ => false,
    }
}

fn first_cert_b64(pem: &str) -> Option<String> {
    let (_, rest) = pem.split_once("-----BEGIN CERTIFICATE-----")?;
    let (body, _) = rest.split_once("-----END CERTIFICATE-----")?;
    Some(body.split_whitespace().collect())
}

fn write(path: &Path, text: &str) -> anyhow::Result<()> {
    std::fs::write(path, text).with_context(|| format!("writing {}", path.display()))
}

#[cfg(test)]
#[allow(clippy::unwrap_used, reason = "a failed unwrap is a failed test")]
mod tests {
    use super::*;

    #[test]
    fn compares_certificates_by_content() {
        let a = Cert::self_signed(&["a.test"]).unwrap();
        let b = Cert::self_signed(&["a.test"]).unwrap();
        let reflowed = a.cert_pem.replace('\n', "\r\n");
        assert!(a.is(&reflowed));
        assert!(!a.is(&b.cert_pem));
        assert!(!same_cert("no pem", &a.cert_pem));
    }
}
