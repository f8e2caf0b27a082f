//! Start-up errors of tls.ini and the key/cert files, as the plugin reports them.

use haraka_tls::InboundTls;

use crate::common::{Ca, Root};

#[test]
fn unusable_configured_files_are_errors_naming_the_file() {
    let ca = Ca::new("Test CA");
    let a = ca.leaf(None, &["a.example.com"]);
    let b = ca.leaf(None, &["b.example.com"]);
    let encrypted = "-----BEGIN ENCRYPTED PRIVATE KEY-----\nMIIBvTBXBgkqhkiG9w0BBQ0wSjApBgkqhkiG9w0BBQwwHAQI\n-----END ENCRYPTED PRIVATE KEY-----\n";
    // (files to write, tls.ini, the file the error must name, a word it must contain)
    type Case<'a> = (Vec<(&'a str, String)>, &'a str, &'a str, &'a str);
    let table: Vec<Case<'_>> = vec![
        (
            vec![],
            "key=missing.pem\ncert=missing.pem\n",
            "missing.pem",
            "could not be loaded",
        ),
        (
            vec![("k.pem", a.key_pem.clone())],
            "key=k.pem\ncert=nocert.pem\n",
            "nocert.pem",
            "could not be loaded",
        ),
        (
            vec![("k.pem", a.cert_pem.clone()), ("c.pem", a.cert_pem.clone())],
            "key=k.pem\ncert=c.pem\n",
            "k.pem",
            "no PRIVATE key",
        ),
        (
            vec![("k.pem", a.key_pem.clone()), ("c.pem", a.key_pem.clone())],
            "key=k.pem\ncert=c.pem\n",
            "c.pem",
            "no CERT",
        ),
        (
            vec![("k.pem", b.key_pem.clone()), ("c.pem", a.cert_pem.clone())],
            "key=k.pem\ncert=c.pem\n",
            "k.pem",
            "does not match",
        ),
        (
            vec![
                ("k.pem", encrypted.to_owned()),
                ("c.pem", a.cert_pem.clone()),
            ],
            "key=k.pem\ncert=c.pem\n",
            "k.pem",
            "encrypted",
        ),
        (
            vec![("k.pem", "-----BEGIN PRIVATE KEY-----\n!!!\n".to_owned())],
            "key=k.pem\ncert=k.pem\n",
            "k.pem",
            "PEM",
        ),
        // only one of the two default files present
        (
            vec![("tls_key.pem", a.key_pem.clone())],
            "",
            "tls_cert.pem",
            "could not be loaded",
        ),
    ];
    for (files, ini, names, word) in table {
        let root = Root::new();
        for (name, text) in &files {
            root.write(name, text);
        }
        root.write("tls.ini", ini);
        let err = InboundTls::load(&root.cfg()).unwrap_err().to_string();
        assert!(err.contains(names), "{ini:?}: {err}");
        assert!(err.contains(word), "{ini:?}: {err}");
        // the plugin factory reports the same start-up error
        let perr = haraka_plugin_tls::TlsPlugin::new(&root.cfg())
            .unwrap_err()
            .to_string();
        assert!(perr.contains(names), "{perr}");
    }
}
