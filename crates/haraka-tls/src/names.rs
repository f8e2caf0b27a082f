//! Host names a certificate is for (subject CN and DNS subject alternative names),
//! and its expiry, read with x509-parser.

use rustls_pki_types::CertificateDer;
use x509_parser::extensions::GeneralName;
use x509_parser::prelude::{FromDer, X509Certificate};

/// What the SNI table needs to know about a leaf certificate.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct CertNames {
    /// Lower-cased, de-duplicated; CN first, then SAN DNS names.
    pub names: Vec<String>,
    /// `notAfter` as seconds since the Unix epoch.
    pub not_after: Option<i64>,
}

/// The names of `cert`; an unparsable certificate has none (rustls rejects it later).
pub(crate) fn of(cert: &CertificateDer<'_>) -> CertNames {
    let Ok((_, x509)) = X509Certificate::from_der(cert.as_ref()) else {
        return CertNames::default();
    };
    let mut names: Vec<String> = Vec::new();
    let mut add = |name: &str| {
        let name = name.trim().trim_end_matches('.').to_ascii_lowercase();
        if !name.is_empty() && !names.contains(&name) {
            names.push(name);
        }
    };
    for cn in x509.subject().iter_common_name() {
        if let Ok(text) = cn.as_str() {
            add(text);
        }
    }
    if let Ok(Some(san)) = x509.subject_alternative_name() {
        for general in &san.value.general_names {
            if let GeneralName::DNSName(dns) = general {
                add(dns);
            }
        }
    }
    CertNames {
        names,
        not_after: Some(x509.validity().not_after.timestamp()),
    }
}

/// The wildcard name that would cover `name` (`a.example.com` → `*.example.com`).
pub(crate) fn wildcard_of(name: &str) -> Option<String> {
    let (_, rest) = name.split_once('.')?;
    if rest.contains('.') {
        Some(format!("*.{rest}"))
    } else {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::wildcard_of;

    #[test]
    fn wildcards() {
        let table = [
            ("a.example.com", Some("*.example.com")),
            ("mail.a.example.com", Some("*.a.example.com")),
            ("example.com", None),
            ("localhost", None),
        ];
        for (name, want) in table {
            assert_eq!(wildcard_of(name).as_deref(), want, "{name}");
        }
    }
}
