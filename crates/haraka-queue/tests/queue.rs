//! The queue against a real directory: durability path, group commit, recovery,
//! quarantine, Haraka's format and the command-line tools.

#![allow(clippy::unwrap_used, reason = "a failed unwrap is a failed test")]

use std::fs::File;
use std::io;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, mpsc};
use std::time::Duration;

use haraka_queue::format::{crc32, dot_unstuff};
use haraka_queue::{
    Envelope, Format, NewItem, QueueDir, QueueError, QueueName, QueueStore, Syncer, WriterStats,
    cli,
};
use haraka_smtp::Address;
use serde_json::Map;

fn addr(s: &str) -> Address {
    Address::parse(s).unwrap()
}

fn envelope(domain: &str, rcpts: &[&str]) -> Envelope {
    let mut notes = Map::new();
    notes.insert("outbound_helo".into(), "helo.test".into());
    Envelope {
        uuid: "ABC.1.1".into(),
        queue_time: 1_700_000_000_000,
        domain: domain.into(),
        mail_from: Some(addr("u@example.com")),
        rcpt_to: rcpts.iter().map(|r| addr(r)).collect(),
        notes,
        force_tls: false,
        smtputf8: false,
        body_8bitmime: false,
    }
}

const MSG: &[u8] = b"Subject: hi\r\nMessage-Id: <x@y>\r\n\r\nbody\r\n.leading dot\r\n..two\r\n";

fn item(domain: &str) -> NewItem {
    NewItem {
        envelope: envelope(domain, &[&format!("x@{domain}")]),
        message: Arc::from(MSG),
        attempts: 0,
        next_attempt: None,
    }
}

fn open(dir: &Path) -> QueueDir {
    QueueDir::open_with(dir, "host_a:b".into(), Arc::new(haraka_queue::FsyncSyncer)).unwrap()
}

fn files(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    v.sort();
    v
}

fn stat(c: &AtomicU64) -> u64 {
    WriterStats::get(c)
}

#[test]
fn put_then_load_round_trips() {
    let tmp = tempfile::tempdir().unwrap();
    let q = open(tmp.path());
    let entries = q
        .put(vec![item("a.test"), item("b.test")])
        .wait_blocking()
        .unwrap();
    assert_eq!(entries.len(), 2);
    assert_eq!(files(tmp.path()).len(), 2);
    for e in &entries {
        assert!(e.file.ends_with("_host\\137a\\072b"), "{}", e.file);
        let m = q.load(&e.file).unwrap();
        assert_eq!(m.message, MSG);
        assert_eq!(m.entry.envelope, e.envelope);
        assert_eq!(m.entry.format, Format::Native);
    }
    assert_eq!(stat(&q.stats().dir_syncs), 1);
    assert_eq!(stat(&q.stats().file_syncs), 2);
}

#[test]
fn null_sender_and_notes_survive() {
    let tmp = tempfile::tempdir().unwrap();
    let q = open(tmp.path());
    let mut it = item("a.test");
    it.envelope.mail_from = None;
    it.envelope.force_tls = true;
    let e = q.put(vec![it]).wait_blocking().unwrap().remove(0);
    let m = q.load(&e.file).unwrap();
    assert_eq!(m.entry.envelope.mail_from, None);
    assert!(m.entry.envelope.force_tls);
    assert_eq!(m.entry.envelope.notes["outbound_helo"], "helo.test");
}

#[test]
fn recovery_deletes_temporary_files_and_keeps_complete_ones() {
    let tmp = tempfile::tempdir().unwrap();
    let q = open(tmp.path());
    let good = q
        .put(vec![item("a.test")])
        .wait_blocking()
        .unwrap()
        .remove(0);
    // A crash in the middle of a write leaves only a temporary file behind.
    std::fs::write(
        tmp.path().join(format!("__tmp__.{}", good.file)),
        b"partial",
    )
    .unwrap();
    std::fs::write(tmp.path().join("README"), b"not a queue file").unwrap();
    let rec = q.recover().unwrap();
    assert_eq!(rec.entries.len(), 1);
    assert_eq!(rec.entries[0].file, good.file);
    assert_eq!(rec.removed_tmp.len(), 1);
    assert_eq!(rec.unrecognized, vec!["README".to_owned()]);
    assert_eq!(files(tmp.path()), vec![good.file, "README".to_owned()]);
}

#[test]
fn unreadable_files_are_quarantined_once() {
    let tmp = tempfile::tempdir().unwrap();
    let q = open(tmp.path());
    let good = q
        .put(vec![item("a.test")])
        .wait_blocking()
        .unwrap()
        .remove(0);
    let cases: [(&str, Vec<u8>); 4] = [
        (
            "1_1_0_1_AAAAAA_1_h",
            b"garbage that is no queue file".to_vec(),
        ),
        ("1_1_0_1_BBBBBB_2_h", Vec::new()),
        ("1_1_0_1_CCCCCC_3_h", {
            // A damaged header byte.
            let mut b = std::fs::read(tmp.path().join(&good.file)).unwrap();
            b[40] ^= 0x55;
            b
        }),
        ("1_1_0_1_DDDDDD_4_h", {
            // Truncated.
            let b = std::fs::read(tmp.path().join(&good.file)).unwrap();
            b[..b.len() - 3].to_vec()
        }),
    ];
    for (name, bytes) in &cases {
        std::fs::write(tmp.path().join(name), bytes).unwrap();
    }
    let rec = q.recover().unwrap();
    assert_eq!(rec.entries.len(), 1);
    assert_eq!(rec.quarantined.len(), 4, "{:?}", rec.quarantined);
    for (name, _) in &cases {
        assert!(tmp.path().join(format!("error.{name}")).exists(), "{name}");
        assert!(!tmp.path().join(name).exists());
    }
    // The next start neither reports nor touches them again.
    let again = q.recover().unwrap();
    assert!(again.quarantined.is_empty());
    assert_eq!(again.entries.len(), 1);
    assert_eq!(files(tmp.path()).len(), 5);
}

#[test]
fn a_damaged_body_is_found_when_loading() {
    let tmp = tempfile::tempdir().unwrap();
    let q = open(tmp.path());
    let e = q
        .put(vec![item("a.test")])
        .wait_blocking()
        .unwrap()
        .remove(0);
    let path = tmp.path().join(&e.file);
    let mut b = std::fs::read(&path).unwrap();
    let last = b.len() - 1;
    b[last] ^= 1;
    std::fs::write(&path, b).unwrap();
    let err = q.load(&e.file).unwrap_err();
    assert!(err.is_corrupt(), "{err}");
    let moved = q.quarantine(&e.file).unwrap();
    assert_eq!(moved, format!("error.{}", e.file));
    assert!(q.load(&e.file).unwrap_err().is_not_found());
}

#[test]
fn reschedule_renames_atomically() {
    let tmp = tempfile::tempdir().unwrap();
    let q = open(tmp.path());
    let e = q
        .put(vec![item("a.test")])
        .wait_blocking()
        .unwrap()
        .remove(0);
    let r = q.reschedule(&e, 2, 4_000_000_000_000).unwrap();
    assert_eq!(r.name.attempts, 2);
    assert_eq!(r.name.next_attempt, 4_000_000_000_000);
    assert_eq!(r.name.arrival, e.name.arrival);
    assert_eq!(files(tmp.path()), vec![r.file.clone()]);
    assert_eq!(q.load(&r.file).unwrap().message, MSG);
    let rec = q.recover().unwrap();
    assert_eq!(rec.entries[0].name.attempts, 2);
    assert_eq!(q.locate(&e.name).unwrap(), Some(r.file.clone()));
    q.remove(&r.file).unwrap();
    q.remove(&r.file).unwrap();
    assert_eq!(q.locate(&e.name).unwrap(), None);
    assert!(files(tmp.path()).is_empty());
}

#[test]
fn an_operation_follows_a_file_a_queue_tool_renamed() {
    let tmp = tempfile::tempdir().unwrap();
    let q: Arc<dyn QueueStore> = Arc::new(open(tmp.path()));
    let e = q
        .put(vec![item("a.test")])
        .wait_blocking()
        .unwrap()
        .remove(0);
    // What `--qretry` does to a waiting delivery.
    let moved = q.reschedule(&e, 0, 1).unwrap();
    let mut tried = Vec::new();
    let loaded = q
        .on_current_file(&e.file, &e.name, |f| {
            tried.push(f.to_owned());
            q.load(f)
        })
        .unwrap();
    assert_eq!(tried, [e.file.clone(), moved.file.clone()]);
    assert_eq!(loaded.entry.file, moved.file);
    // The file it names is used when it is there.
    let again = q.on_current_file(&moved.file, &e.name, |f| q.load(f));
    assert_eq!(again.unwrap().entry.file, moved.file);
    // Gone under every name: the first error stands.
    q.remove(&moved.file).unwrap();
    let err = q
        .on_current_file(&e.file, &e.name, |f| q.load(f))
        .unwrap_err();
    assert!(err.is_not_found(), "{err}");
}

/// Blocks the first file fsync until released, counts every call, can fail a call.
struct GateSyncer {
    gate: Mutex<Option<(mpsc::Sender<()>, mpsc::Receiver<()>)>>,
    file_calls: AtomicU64,
    fail_file_call: Option<u64>,
    fail_dir: bool,
}

impl GateSyncer {
    fn new() -> GateSyncer {
        GateSyncer {
            gate: Mutex::new(None),
            file_calls: AtomicU64::new(0),
            fail_file_call: None,
            fail_dir: false,
        }
    }
}

impl Syncer for GateSyncer {
    fn sync_file(&self, file: &File) -> io::Result<()> {
        let n = self.file_calls.fetch_add(1, Ordering::SeqCst) + 1;
        if let Some((entered, release)) = self.gate.lock().unwrap().take() {
            entered.send(()).unwrap();
            release.recv().unwrap();
        }
        if self.fail_file_call == Some(n) {
            return Err(io::Error::other("injected fsync failure"));
        }
        file.sync_all()
    }
    fn sync_dir(&self, dir: &Path) -> io::Result<()> {
        if self.fail_dir {
            return Err(io::Error::other("injected dir fsync failure"));
        }
        File::open(dir)?.sync_all()
    }
}

#[test]
fn group_commit_batches_concurrent_submitters() {
    let tmp = tempfile::tempdir().unwrap();
    let (entered_tx, entered_rx) = mpsc::channel();
    let (release_tx, release_rx) = mpsc::channel();
    let syncer = GateSyncer::new();
    *syncer.gate.lock().unwrap() = Some((entered_tx, release_rx));
    let q = QueueDir::open_with(tmp.path(), "h".into(), Arc::new(syncer)).unwrap();

    let first = q.put(vec![item("a.test")]);
    entered_rx.recv().unwrap(); // the writer is inside the first batch
    let rest: Vec<_> = (0..49).map(|_| q.put(vec![item("b.test")])).collect();
    release_tx.send(()).unwrap();

    first.wait_blocking().unwrap();
    for t in rest {
        t.wait_blocking().unwrap();
    }
    let s = q.stats();
    assert_eq!(stat(&s.requests), 50);
    assert_eq!(stat(&s.file_syncs), 50);
    assert_eq!(
        stat(&s.batches),
        2,
        "the 49 waiting submitters share one batch"
    );
    assert_eq!(stat(&s.dir_syncs), 2);
    assert_eq!(files(tmp.path()).len(), 50);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_async_puts_all_become_durable() {
    let tmp = tempfile::tempdir().unwrap();
    let q = Arc::new(open(tmp.path()));
    let mut tasks = Vec::new();
    for i in 0..40 {
        let q = Arc::clone(&q);
        tasks.push(tokio::spawn(async move {
            q.put(vec![item(&format!("d{i}.test"))]).await
        }));
    }
    for t in tasks {
        assert_eq!(t.await.unwrap().unwrap().len(), 1);
    }
    assert_eq!(files(tmp.path()).len(), 40);
    assert!(stat(&q.stats().dir_syncs) <= 40);
    assert_eq!(stat(&q.stats().requests), 40);
}

#[test]
fn a_failed_fsync_leaves_nothing_behind() {
    let tmp = tempfile::tempdir().unwrap();
    let mut syncer = GateSyncer::new();
    syncer.fail_file_call = Some(2);
    let q = QueueDir::open_with(tmp.path(), "h".into(), Arc::new(syncer)).unwrap();
    // Three deliveries of one message: the second fsync fails, so none is queued.
    let err = q
        .put(vec![item("a.test"), item("b.test"), item("c.test")])
        .wait_blocking()
        .unwrap_err();
    assert!(matches!(err, QueueError::Io(_)), "{err}");
    assert!(files(tmp.path()).is_empty());
    // The writer keeps working.
    q.put(vec![item("a.test")]).wait_blocking().unwrap();
    assert_eq!(files(tmp.path()).len(), 1);
}

#[test]
fn a_failed_directory_fsync_fails_the_batch() {
    let tmp = tempfile::tempdir().unwrap();
    let mut syncer = GateSyncer::new();
    syncer.fail_dir = true;
    let q = QueueDir::open_with(tmp.path(), "h".into(), Arc::new(syncer)).unwrap();
    assert!(q.put(vec![item("a.test")]).wait_blocking().is_err());
    assert!(files(tmp.path()).is_empty());
}

/// A file as Haraka 3.0.0 writes it: a 4-byte big-endian length, the JSON todo, the message.
fn haraka_file(body: &[u8]) -> Vec<u8> {
    let json = "\n{\n\t\"queue_time\": 1795708856374,\n\t\"domain\": \"gmail.com\",\n\t\"rcpt_to\": [\n\t\t{\n\t\t\t\"original\": \"<x@gmail.com>\",\n\t\t\t\"original_host\": \"gmail.com\",\n\t\t\t\"host\": \"gmail.com\",\n\t\t\t\"user\": \"x\"\n\t\t}\n\t],\n\t\"mail_from\": {\n\t\t\"original\": \"<u@example.com>\",\n\t\t\"original_host\": \"example.com\",\n\t\t\"host\": \"example.com\",\n\t\t\"user\": \"u\"\n\t},\n\t\"notes\": {\n\t\t\"skip_plugins\": [],\n\t\t\"authentication_results\": []\n\t},\n\t\"uuid\": \"E5B23A3E-7D35-4E56-9DFA-171F8BFBBAFC.1.1\",\n\t\"force_tls\": false\n}\n";
    let mut out = (json.len() as u32).to_be_bytes().to_vec();
    out.extend_from_slice(json.as_bytes());
    out.extend_from_slice(body);
    out
}

#[test]
fn mail_parameters_survive_and_a_plain_header_stays_haraka_s() {
    let tmp = tempfile::tempdir().unwrap();
    let q = open(tmp.path());
    let mut it = item("a.test");
    it.envelope.smtputf8 = true;
    it.envelope.body_8bitmime = true;
    let plain = item("b.test");
    let json = haraka_queue::format::envelope_to_json(&plain.envelope);
    let keys: Vec<&String> = json.as_object().unwrap().keys().collect();
    assert!(
        !keys.iter().any(|k| *k == "smtputf8" || *k == "body"),
        "{keys:?}"
    );
    let with = haraka_queue::format::envelope_to_json(&it.envelope);
    assert_eq!(with["smtputf8"], true);
    assert_eq!(with["body"], "8BITMIME");
    let entries = q.put(vec![it, plain]).wait_blocking().unwrap();
    let loaded: Vec<(bool, bool)> = entries
        .iter()
        .map(|e| {
            let env = q.load(&e.file).unwrap().entry.envelope;
            (env.smtputf8, env.body_8bitmime)
        })
        .collect();
    assert_eq!(loaded, [(true, true), (false, false)]);
}

#[test]
fn mail_parameter_fields_in_a_header() {
    let good = String::from_utf8(haraka_file(b"")[4..].to_vec()).unwrap();
    let at = "\"force_tls\": false";
    // (extra fields, Some((smtputf8, 8bitmime)) or None for a corrupt file)
    let table: &[(&str, Option<(bool, bool)>)] = &[
        ("", Some((false, false))),
        (", \"smtputf8\": true", Some((true, false))),
        (", \"smtputf8\": false", Some((false, false))),
        (", \"smtputf8\": null, \"body\": null", Some((false, false))),
        (", \"body\": \"8BITMIME\"", Some((false, true))),
        (", \"body\": \"8bitmime\"", Some((false, true))),
        (", \"body\": \"7BIT\"", Some((false, false))),
        (
            ", \"smtputf8\": true, \"body\": \"8BITMIME\"",
            Some((true, true)),
        ),
        (", \"smtputf8\": \"yes\"", None),
        (", \"body\": 8", None),
        (", \"body\": \"BINARYMIME\"", None),
        (", \"body\": \"\"", None),
    ];
    for (extra, want) in table {
        let json = good.replace(at, &format!("{at}{extra}"));
        let value: serde_json::Value = serde_json::from_str(&json).unwrap();
        let got = haraka_queue::format::envelope_from_json(&value)
            .ok()
            .map(|e| (e.smtputf8, e.body_8bitmime));
        assert_eq!(got, *want, "{extra}");
    }
}

#[test]
fn reads_a_haraka_queue_file() {
    let tmp = tempfile::tempdir().unwrap();
    let name = "1795708856374_1795708861425_1_28703_ZNqUCn_10_vm";
    std::fs::write(
        tmp.path().join(name),
        haraka_file(b"Subject: t\r\n\r\n..dot\r\nplain\r\n"),
    )
    .unwrap();
    let q = open(tmp.path());
    let rec = q.recover().unwrap();
    assert_eq!(rec.entries.len(), 1);
    let e = &rec.entries[0];
    assert_eq!(e.format, Format::Haraka);
    assert_eq!(e.name.attempts, 1);
    assert_eq!(e.envelope.domain, "gmail.com");
    assert_eq!(e.envelope.uuid, "E5B23A3E-7D35-4E56-9DFA-171F8BFBBAFC.1.1");
    assert_eq!(
        e.envelope.mail_from.as_ref().unwrap().format(),
        "<u@example.com>"
    );
    assert_eq!(e.envelope.rcpt_to[0].original, "x@gmail.com");
    assert_eq!(e.envelope.rcpt_to[0].host.as_deref(), Some("gmail.com"));
    let m = q.load(name).unwrap();
    assert_eq!(m.message, b"Subject: t\r\n\r\n.dot\r\nplain\r\n");
    // A reschedule of a Haraka file keeps its content and format.
    let r = q.reschedule(&m.entry, 2, 1).unwrap();
    assert_eq!(q.load(&r.file).unwrap().entry.format, Format::Haraka);
}

#[test]
fn cli_tools() {
    let tmp = tempfile::tempdir().unwrap();
    let q = open(tmp.path());
    let mut late = item("b.test");
    late.next_attempt = Some(u64::MAX / 2);
    let e = q.put(vec![item("a.test"), late]).wait_blocking().unwrap();
    std::fs::write(tmp.path().join("1_1_0_1_ZZZZZZ_1_h"), b"junk").unwrap();

    let lines = cli::qlist(tmp.path()).unwrap();
    assert!(lines.contains(&format!(
        "Q: {} rcpt:1 from:<u@example.com> domain:a.test",
        e[0].file
    )));
    assert!(
        lines
            .iter()
            .any(|l| l.starts_with("E: 1_1_0_1_ZZZZZZ_1_h "))
    );
    assert_eq!(
        cli::qstat(tmp.path()).unwrap(),
        format!(
            "{{ queue_dir: '{}', queue_count: 3 }}",
            tmp.path().display()
        )
    );

    let shown = cli::inspect(tmp.path(), &e[0].file).unwrap();
    assert!(shown.contains("domain: a.test"), "{shown}");
    assert!(shown.contains("rcpt: <x@a.test>"), "{shown}");
    assert!(shown.contains("Subject: hi"), "{shown}");
    assert!(!shown.contains("body"), "{shown}");
    assert!(cli::inspect(tmp.path(), "nope").is_err());

    assert_eq!(cli::retry_now(tmp.path(), Some("b.test")).unwrap(), 1);
    let now = haraka_queue::now_ms();
    let rec = q.list().unwrap();
    assert!(rec.entries.iter().all(|e| e.name.next_attempt <= now));

    assert_eq!(cli::qempty(tmp.path()).unwrap(), 3);
    assert!(files(tmp.path()).is_empty());
    assert_eq!(
        cli::qstat(tmp.path()).unwrap(),
        format!(
            "{{ queue_dir: '{}', queue_count: 0 }}",
            tmp.path().display()
        )
    );
}

#[test]
fn unstuffing_and_checksum_tables() {
    let cases: [(&[u8], &[u8]); 6] = [
        (b"", b""),
        (b"..\r\n", b".\r\n"),
        (b"a\r\n..b\r\n", b"a\r\n.b\r\n"),
        (b"...x\n", b"..x\n"),
        (b"a..b\r\n", b"a..b\r\n"),
        (b".x\r\n", b".x\r\n"),
    ];
    for (input, want) in cases {
        assert_eq!(dot_unstuff(input), want, "{input:?}");
    }
    assert_eq!(crc32(b"123456789"), 0xCBF4_3926);
    assert_eq!(crc32(b""), 0);
}

#[test]
fn resolve_queue_dir_follows_haraka() {
    let root = Path::new("/srv/haraka");
    assert_eq!(
        haraka_queue::resolve_queue_dir(root, None),
        root.join("queue")
    );
    assert_eq!(
        haraka_queue::resolve_queue_dir(root, Some("/var/q")),
        Path::new("/var/q")
    );
    let rel = haraka_queue::resolve_queue_dir(root, Some("q"));
    assert!(rel.is_absolute() && rel.ends_with("q"));
    assert!(QueueName::parse("error.1_1_0_1_ZZZZZZ_1_h").is_none());
}

/// Lets a file fsync finish only once the directory fsync has started (and the
/// other way round), within a second: only a writer that runs them at the same
/// time gets through.
struct TogetherSyncer {
    dir_started: (Mutex<bool>, std::sync::Condvar),
    file_started: (Mutex<bool>, std::sync::Condvar),
}

impl TogetherSyncer {
    fn wait(flag: &(Mutex<bool>, std::sync::Condvar)) -> io::Result<()> {
        let (lock, cv) = flag;
        let guard = lock.lock().unwrap();
        let (guard, _) = cv
            .wait_timeout_while(guard, Duration::from_secs(1), |started| !*started)
            .unwrap();
        if *guard {
            Ok(())
        } else {
            Err(io::Error::other("the other fsync never started"))
        }
    }
    fn start(flag: &(Mutex<bool>, std::sync::Condvar)) {
        *flag.0.lock().unwrap() = true;
        flag.1.notify_all();
    }
}

impl Syncer for TogetherSyncer {
    fn sync_file(&self, file: &File) -> io::Result<()> {
        Self::start(&self.file_started);
        Self::wait(&self.dir_started)?;
        file.sync_all()
    }
    fn sync_dir(&self, dir: &Path) -> io::Result<()> {
        Self::start(&self.dir_started);
        Self::wait(&self.file_started)?;
        File::open(dir)?.sync_all()
    }
}

#[test]
fn files_and_their_directory_are_fsynced_in_one_round() {
    let tmp = tempfile::tempdir().unwrap();
    let syncer = TogetherSyncer {
        dir_started: (Mutex::new(false), std::sync::Condvar::new()),
        file_started: (Mutex::new(false), std::sync::Condvar::new()),
    };
    let q = QueueDir::open_with(tmp.path(), "h".into(), Arc::new(syncer)).unwrap();
    q.put(vec![item("a.test"), item("b.test")])
        .wait_blocking()
        .unwrap();
    assert_eq!(files(tmp.path()).len(), 2);
}

#[test]
fn wrongly_typed_header_fields_are_quarantined() {
    let tmp = tempfile::tempdir().unwrap();
    let good = String::from_utf8(haraka_file(b"")[4..].to_vec()).unwrap();
    let sender = "\"mail_from\": {\n\t\t\"original\": \"<u@example.com>\",\n\t\t\"original_host\": \"example.com\",\n\t\t\"host\": \"example.com\",\n\t\t\"user\": \"u\"\n\t}";
    assert!(good.contains(sender));
    let variants = [
        // Would have been delivered with MAIL FROM:<>.
        good.replace(sender, "\"mail_from\": 42"),
        good.replace(sender, "\"mail_from\": [\"u@example.com\"]"),
        good.replace("\"user\": \"u\"", "\"user\": 7"),
        good.replace("\"user\": \"x\"", "\"user\": true"),
        good.replace("\"domain\": \"gmail.com\"", "\"domain\": 1"),
        good.replace("\"force_tls\": false", "\"force_tls\": \"yes\""),
        good.replace("\"queue_time\": 1795708856374", "\"queue_time\": \"now\""),
        good.replace("\"notes\": {", "\"notes\": 3, \"x\": {"),
        good.replace(
            "\"force_tls\": false",
            "\"force_tls\": false, \"smtputf8\": 1",
        ),
        good.replace(
            "\"force_tls\": false",
            "\"force_tls\": false, \"body\": \"BINARYMIME\"",
        ),
    ];
    let mut names = Vec::new();
    for (i, json) in variants.iter().enumerate() {
        assert_ne!(json, &good, "variant {i} changed nothing");
        let mut bytes = (json.len() as u32).to_be_bytes().to_vec();
        bytes.extend_from_slice(json.as_bytes());
        bytes.extend_from_slice(b"Subject: t\r\n\r\nbody\r\n");
        let name = format!("1795708856374_1795708861425_0_28703_TYPE{i:02}_{i}_vm");
        std::fs::write(tmp.path().join(&name), bytes).unwrap();
        names.push(name);
    }
    // A null mail_from is the null sender, as Haraka writes it for bounces.
    let null = good.replace(sender, "\"mail_from\": null");
    let mut bytes = (null.len() as u32).to_be_bytes().to_vec();
    bytes.extend_from_slice(null.as_bytes());
    std::fs::write(
        tmp.path()
            .join("1795708856374_1795708861425_0_28703_NULLOK_9_vm"),
        bytes,
    )
    .unwrap();

    let rec = open(tmp.path()).recover().unwrap();
    assert_eq!(rec.entries.len(), 1, "{:?}", rec.quarantined);
    assert!(rec.entries[0].envelope.mail_from.is_none());
    assert_eq!(rec.quarantined.len(), names.len(), "{:?}", rec.quarantined);
    for name in &names {
        assert!(tmp.path().join(format!("error.{name}")).exists(), "{name}");
    }
}
