//! SNI selection from config/tls/ and reloading changed files.

use haraka_tls::InboundTls;

use crate::common::{Ca, Root, overwrite, replace};

fn served(tls: &InboundTls, name: Option<&str>) -> Vec<u8> {
    tls.certs()
        .resolve_name(name)
        .map(|k| k.cert[0].as_ref().to_vec())
        .unwrap_or_default()
}

#[test]
fn sni_by_cn_and_san() {
    let ca = Ca::new("Test CA");
    let default = ca.leaf(Some("default.example"), &["default.example"]);
    let by_cn = ca.leaf(Some("cn-only.example.org"), &[]);
    let by_san = ca.leaf(
        Some("ignored-cn.example.net"),
        &["san.example.net", "*.wild.example.net"],
    );
    let root = Root::new();
    root.write("tls_key.pem", &default.key_pem);
    root.write("tls_cert.pem", &default.cert_pem);
    root.write("tls/cn.pem", &by_cn.combined());
    // order inside the file does not matter; sub-folders are searched
    root.write(
        "tls/sub/san.pem",
        &format!("{}{}", by_san.cert_pem, by_san.key_pem),
    );
    root.write("tls/no-key.pem", &by_cn.cert_pem);
    root.write("tls/no-cert.pem", &by_cn.key_pem);
    let tls = InboundTls::load(&root.cfg()).unwrap();

    assert_eq!(
        tls.certs().sni_names(),
        [
            "*.wild.example.net",
            "cn-only.example.org",
            "ignored-cn.example.net",
            "san.example.net"
        ]
    );
    let table: [(Option<&str>, &[u8]); 8] = [
        (Some("cn-only.example.org"), &by_cn.der),
        (Some("CN-Only.Example.Org"), &by_cn.der),
        (Some("san.example.net"), &by_san.der),
        (Some("ignored-cn.example.net"), &by_san.der),
        (Some("a.wild.example.net"), &by_san.der),
        (Some("a.b.wild.example.net"), &default.der),
        (Some("unknown.example"), &default.der),
        (None, &default.der),
    ];
    for (name, want) in table {
        assert_eq!(served(&tls, name), want, "{name:?}");
    }
}

#[test]
fn directory_certificates_alone_do_not_enable_tls() {
    let ca = Ca::new("Test CA");
    let root = Root::new();
    root.write("tls/a.pem", &ca.leaf(None, &["a.example"]).combined());
    let tls = InboundTls::load(&root.cfg()).unwrap();
    assert!(!tls.is_usable());
    assert!(tls.server_config(25).is_none());
}

#[test]
fn replaced_combined_file_is_served_after_a_check() {
    let ca = Ca::new("Test CA");
    let old = ca.leaf(None, &["mail.example.com"]);
    let new = ca.leaf(None, &["mail.example.com"]);
    let root = Root::new();
    let pem = root.write("mail.pem", &old.combined());
    root.write("tls.ini", "key=mail.pem\ncert=mail.pem\n");
    let tls = InboundTls::load(&root.cfg()).unwrap();
    assert_eq!(served(&tls, None), old.der);
    assert!(!tls.certs().check_now(), "nothing changed yet");

    replace(&pem, &new.combined());
    assert!(tls.certs().check_now());
    assert_eq!(served(&tls, None), new.der);

    // in place, as `cat key cer > file` does (same inode)
    let third = ca.leaf(None, &["mail.example.com"]);
    overwrite(&pem, &third.combined(), 10);
    assert!(tls.certs().check_now());
    assert_eq!(served(&tls, None), third.der);
}

#[test]
fn broken_replacement_keeps_the_old_certificate() {
    let ca = Ca::new("Test CA");
    let good = ca.leaf(None, &["mail.example.com"]);
    let root = Root::new();
    let pem = root.write("mail.pem", &good.combined());
    root.write("tls.ini", "key=mail.pem\ncert=mail.pem\n");
    let tls = InboundTls::load(&root.cfg()).unwrap();

    for (i, broken) in [
        String::new(),
        "garbage".to_owned(),
        good.cert_pem.clone(),
        format!("{}{}", ca.leaf(None, &["x"]).key_pem, good.cert_pem),
    ]
    .iter()
    .enumerate()
    {
        overwrite(&pem, broken, 10 + i as u64);
        assert!(!tls.certs().check_now(), "case {i}");
        assert_eq!(served(&tls, None), good.der, "case {i}");
        assert!(tls.server_config(25).is_some());
    }
    // removing the file keeps the old certificate too
    std::fs::remove_file(&pem).unwrap();
    assert!(!tls.certs().check_now());
    assert_eq!(served(&tls, None), good.der);

    // a good file after the broken ones is picked up
    let fixed = ca.leaf(None, &["mail.example.com"]);
    overwrite(&pem, &fixed.combined(), 30);
    assert!(tls.certs().check_now());
    assert_eq!(served(&tls, None), fixed.der);
}

#[test]
fn separate_files_switch_when_both_match() {
    let ca = Ca::new("Test CA");
    let old = ca.leaf(None, &["mx.example.com"]);
    let new = ca.leaf(None, &["mx.example.com"]);
    let root = Root::new();
    let key = root.write("tls_key.pem", &old.key_pem);
    let cert = root.write("tls_cert.pem", &old.cert_pem);
    let tls = InboundTls::load(&root.cfg()).unwrap();

    // the key arrives first: it does not match the old certificate
    replace(&key, &new.key_pem);
    assert!(!tls.certs().check_now());
    assert_eq!(served(&tls, None), old.der);
    // then the certificate
    replace(&cert, &new.cert_pem);
    assert!(tls.certs().check_now());
    assert_eq!(served(&tls, None), new.der);
}

#[test]
fn default_files_appearing_later_enable_tls() {
    let ca = Ca::new("Test CA");
    let leaf = ca.leaf(None, &["mx.example.com"]);
    let root = Root::new();
    let tls = InboundTls::load(&root.cfg()).unwrap();
    assert!(!tls.is_usable());
    root.write("tls_key.pem", &leaf.key_pem);
    root.write("tls_cert.pem", &leaf.cert_pem);
    assert!(tls.certs().check_now());
    assert!(tls.is_usable());
    assert_eq!(served(&tls, None), leaf.der);
}

#[test]
fn sni_directory_changes() {
    let ca = Ca::new("Test CA");
    let default = ca.leaf(None, &["default.example"]);
    let a1 = ca.leaf(None, &["a.example"]);
    let a2 = ca.leaf(None, &["a.example"]);
    let b = ca.leaf(None, &["b.example"]);
    let root = Root::new();
    root.write("tls_key.pem", &default.key_pem);
    root.write("tls_cert.pem", &default.cert_pem);
    let a = root.write("tls/a.pem", &a1.combined());
    let tls = InboundTls::load(&root.cfg()).unwrap();
    assert_eq!(served(&tls, Some("a.example")), a1.der);
    assert_eq!(served(&tls, Some("b.example")), default.der);

    // a new file
    root.write("tls/b.pem", &b.combined());
    assert!(tls.certs().check_now());
    assert_eq!(served(&tls, Some("b.example")), b.der);

    // a renewed file; then a broken renewal keeps it
    replace(&a, &a2.combined());
    assert!(tls.certs().check_now());
    assert_eq!(served(&tls, Some("a.example")), a2.der);
    overwrite(&a, "-----BEGIN CERTIFICATE-----\n", 10);
    assert!(!tls.certs().check_now());
    assert_eq!(served(&tls, Some("a.example")), a2.der);

    // a removed file
    std::fs::remove_file(root.path("tls/b.pem")).unwrap();
    assert!(tls.certs().check_now());
    assert_eq!(served(&tls, Some("b.example")), default.der);
}
