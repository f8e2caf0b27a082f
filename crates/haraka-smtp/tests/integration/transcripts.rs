//! Every `tests/transcripts/*.txt` against the sans-IO session.

use std::path::PathBuf;

use haraka_smtp::transcript;

fn dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/transcripts")
}

#[test]
fn transcripts() {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir())
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "txt"))
        .collect();
    files.sort();
    assert!(files.len() >= 20, "only {} transcripts", files.len());
    let mut failures = Vec::new();
    for f in &files {
        let text = std::fs::read_to_string(f).unwrap();
        let name = f.file_name().unwrap().to_string_lossy().into_owned();
        let result = transcript::parse(&text)
            .map_err(|e| e.to_string())
            .and_then(|t| transcript::run(&t));
        if let Err(e) = result {
            failures.push(format!("{name}: {e}"));
        }
    }
    assert!(
        failures.is_empty(),
        "{} failing:\n{}",
        failures.len(),
        failures.join("\n\n")
    );
}

/// The runner must notice a wrong reply, a missing reply and an extra reply.
#[test]
fn runner_detects_mismatches() {
    let wrong = "S: 220 mx.test.local ESMTP Haraka/3.0.0 ready\nC: NOOP\nS: 250 NOT OK\n";
    let missing = "S: 220 mx.test.local ESMTP Haraka/3.0.0 ready\nS: 250 OK\n";
    let extra = "S: 220 mx.test.local ESMTP Haraka/3.0.0 ready\nC: NOOP\n";
    for bad in [wrong, missing, extra] {
        let t = transcript::parse(bad).unwrap();
        assert!(transcript::run(&t).is_err(), "{bad}");
    }
    let good = "S: 220 mx.test.local ESMTP Haraka/3.0.0 ready\nC: NOOP\nS: 250 OK\n";
    transcript::run(&transcript::parse(good).unwrap()).unwrap();
}

#[test]
fn parse_errors_name_the_line() {
    let e = transcript::parse("S: 220 x\nO: me=y\n").unwrap_err();
    assert_eq!(e.line, 2);
    let e = transcript::parse("H: nohook=OK\n").unwrap_err();
    assert_eq!(e.line, 1);
    let e = transcript::parse("H: rcpt=MAYBE\n").unwrap_err();
    assert!(e.reason.contains("MAYBE"));
    assert!(transcript::parse("X: what\n").is_err());
}
