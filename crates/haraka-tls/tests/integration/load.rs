//! Loading tls.ini and the key/cert files at start-up.

use haraka_tls::{InboundTls, MinVersion, OutboundTls, TlsSettings};

use crate::common::{Ca, Root};

#[test]
fn separate_default_files() {
    let ca = Ca::new("Test CA");
    let leaf = ca.leaf(Some("mx.example.com"), &["mx.example.com"]);
    let root = Root::new();
    root.write("tls_key.pem", &leaf.key_pem);
    root.write("tls_cert.pem", &leaf.cert_pem);
    let tls = InboundTls::load(&root.cfg()).unwrap();
    assert!(tls.is_usable());
    assert!(tls.server_config(25).is_some());
    let served = tls.certs().resolve_name(None).unwrap();
    assert_eq!(served.cert[0].as_ref(), leaf.der.as_slice());
    assert!(tls.warnings().is_empty(), "{:?}", tls.warnings());
}

#[test]
fn combined_file_absolute_and_relative() {
    let ca = Ca::new("Test CA");
    let leaf = ca.leaf(Some("mail.example.com"), &["mail.example.com"]);
    let root = Root::new();
    // the example setup's form: an absolute path to one combined PEM, outside config/
    let outside = tempfile::tempdir().unwrap();
    let pem = outside.path().join("mail.example.com.pem");
    std::fs::write(&pem, leaf.combined()).unwrap();
    let p = pem.display();
    root.write("tls.ini", &format!("key={p}\ncert={p}\n"));
    let tls = InboundTls::load(&root.cfg()).unwrap();
    let served = tls.certs().resolve_name(Some("mail.example.com")).unwrap();
    assert_eq!(served.cert[0].as_ref(), leaf.der.as_slice());

    // relative to the config directory
    let root = Root::new();
    root.write("certs/combined.pem", &leaf.combined());
    root.write(
        "tls.ini",
        "key=certs/combined.pem\ncert=certs/combined.pem\n",
    );
    let tls = InboundTls::load(&root.cfg()).unwrap();
    let served = tls.certs().resolve_name(None).unwrap();
    assert_eq!(served.cert[0].as_ref(), leaf.der.as_slice());
}

#[test]
fn cert_chain_order_in_combined_file() {
    // key, leaf, intermediate: the first certificate is the leaf, the rest the chain
    let ca = Ca::new("Test CA");
    let leaf = ca.leaf(None, &["mx.example.com"]);
    let root = Root::new();
    root.write("all.pem", &format!("{}{}", leaf.combined(), ca.pem));
    root.write("tls.ini", "key=all.pem\ncert=all.pem\n");
    let tls = InboundTls::load(&root.cfg()).unwrap();
    let served = tls.certs().resolve_name(None).unwrap();
    assert_eq!(served.cert.len(), 2);
    assert_eq!(served.cert[0].as_ref(), leaf.der.as_slice());
    assert_eq!(served.cert[1].as_ref(), ca.der.as_ref());
}

#[test]
fn no_certificate_at_all_loads_without_tls() {
    let root = Root::new();
    let tls = InboundTls::load(&root.cfg()).unwrap();
    assert!(!tls.is_usable());
    assert!(tls.server_config(25).is_none());
}

#[test]
fn openssl_only_and_unknown_keys_warn() {
    let root = Root::new();
    root.write(
        "tls.ini",
        "ciphers=ECDHE-RSA-AES256-GCM-SHA384\ndhparam=dhparams.pem\necdhCurve=auto\n\
         minVersion=TLSv1\nhonorCipherOrder=false\nrequestCert=true\nno_starttls_ports[]=2525\n\
         frobnicate=1\nmutual_tls=true\n\
         [redis]\ndisable_for_failed_hosts=true\n\
         [outbound]\nciphers=HIGH\nforce_tls_hosts[]=example.net\n\
         [mx.example.com]\nrequestCert=false\n",
    );
    let s = TlsSettings::load(&root.cfg()).unwrap();
    let text: Vec<String> = s.warnings.iter().map(ToString::to_string).collect();
    for word in [
        "ciphers",
        "dhparam",
        "ecdhCurve",
        "minVersion=TLSv1",
        "frobnicate",
        "mutual_tls",
        "disable_for_failed_hosts",
        "[outbound] ciphers",
        "[mx.example.com]",
    ] {
        assert!(
            text.iter().any(|w| w.contains(word)),
            "no warning for {word}: {text:#?}"
        );
    }
    for quiet in [
        "honorCipherOrder",
        "requestCert=",
        "no_starttls_ports",
        "force_tls_hosts",
    ] {
        assert!(
            !text.iter().any(|w| w.contains(quiet)),
            "warned about {quiet}: {text:#?}"
        );
    }
    // warnings carry file and line
    assert!(s.warnings.iter().all(|d| d.file.ends_with("tls.ini")));
    assert!(s.warnings.iter().any(|d| d.line == 1));
}

#[test]
fn settings_sections_and_defaults() {
    let root = Root::new();
    let s = TlsSettings::load(&root.cfg()).unwrap();
    assert_eq!(s.inbound.keys, ["tls_key.pem"]);
    assert_eq!(s.inbound.certs, ["tls_cert.pem"]);
    assert!(!s.inbound.explicit);
    assert!(s.inbound.request_cert);
    assert!(!s.inbound.reject_unauthorized);
    assert!(s.inbound.honor_cipher_order);
    assert_eq!(s.inbound.min_version, MinVersion::Tls12);
    assert!(!s.outbound.reject_unauthorized);

    root.write(
        "tls.ini",
        "key=main.pem\ncert=main.pem\nminVersion=TLSv1.3\nrejectUnauthorized=true\nca=ca.pem\n\
         no_starttls_ports[]=2525\nno_starttls_ports[]=587\nrequireAuthorized[]=465\n\
         [inbound]\nkey=in.pem\ncert=in.pem\n\
         [outbound]\nrejectUnauthorized=false\nno_tls_hosts[]=broken.example\n\
         [no_tls_hosts]\n192.0.2.1\n198.51.100.0/24\nnot-an-ip\n",
    );
    let s = TlsSettings::load(&root.cfg()).unwrap();
    assert_eq!(s.inbound.keys, ["in.pem"]);
    assert!(s.inbound.explicit);
    assert_eq!(s.inbound.min_version, MinVersion::Tls13);
    assert!(s.inbound.reject_unauthorized);
    assert_eq!(s.inbound.ca.as_deref(), Some("ca.pem"));
    assert_eq!(s.no_starttls_ports, [2525, 587]);
    assert_eq!(s.require_authorized, [465]);
    assert_eq!(s.no_tls_hosts.len(), 2);
    assert!(s.warnings.iter().any(|w| w.message.contains("not-an-ip")));
    // [outbound] inherits key/cert/minVersion from [main], not ca
    assert_eq!(s.outbound.keys, ["main.pem"]);
    assert_eq!(s.outbound.min_version, MinVersion::Tls13);
    assert!(!s.outbound.reject_unauthorized);
    assert_eq!(s.outbound.ca, None);
    assert_eq!(s.outbound_no_tls_hosts, ["broken.example"]);
}

#[test]
fn key_and_cert_arrays_pair_by_index() {
    let ca = Ca::new("Test CA");
    let ec = ca.leaf(None, &["mx.example.com"]);
    let ed = ca.leaf_with(&rcgen::PKCS_ED25519, None, &["mx.example.com"]);
    let root = Root::new();
    root.write("ec.pem", &ec.combined());
    root.write("ed-key.pem", &ed.key_pem);
    root.write("ed-cert.pem", &ed.cert_pem);
    root.write(
        "tls.ini",
        "key[]=ec.pem\nkey[]=ed-key.pem\ncert[]=ec.pem\ncert[]=ed-cert.pem\n",
    );
    let s = TlsSettings::load(&root.cfg()).unwrap();
    assert_eq!(s.inbound.keys, ["ec.pem", "ed-key.pem"]);
    assert_eq!(s.inbound.certs, ["ec.pem", "ed-cert.pem"]);
    let tls = InboundTls::load(&root.cfg()).unwrap();
    assert!(tls.is_usable());
}

#[test]
fn outbound_configs() {
    let ca = Ca::new("Test CA");
    let leaf = ca.leaf(None, &["relay.example.com"]);
    let root = Root::new();
    root.write("ca.pem", &ca.pem);
    root.write("relay.pem", &leaf.combined());
    root.write(
        "tls.ini",
        "[outbound]\nkey=relay.pem\ncert=relay.pem\nca=ca.pem\n",
    );
    let out = OutboundTls::load(&root.cfg()).unwrap();
    assert!(out.verified.is_some());
    assert!(out.config.unwrap().client_auth_cert_resolver.has_certs());

    // rejectUnauthorized with an unreadable CA file is a start-up error naming it
    root.write(
        "tls.ini",
        "[outbound]\nrejectUnauthorized=true\nca=nope.pem\n",
    );
    let err = OutboundTls::load(&root.cfg()).unwrap_err().to_string();
    assert!(err.contains("nope.pem"), "{err}");
}
