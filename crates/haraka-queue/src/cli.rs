//! The queue tools behind `--qlist`, `--qstat`, `--qempty`, `--qinspect` and
//! `--qretry`. They read the directory directly and need no running server.

use std::fmt::Write as _;
use std::path::Path;

use crate::format::Format;
use crate::name::{QueueName, now_ms};
use crate::store::{Recovery, scan};
use crate::{QueueEntry, QueueError};

/// One line per queued delivery, as `haraka --qlist` prints them:
/// `Q: <file> rcpt:<n> from:<sender> domain:<domain>`. Unreadable files follow as
/// `E: <file> <reason>`.
pub fn qlist(dir: &Path) -> Result<Vec<String>, QueueError> {
    let rec = scan(dir, false)?;
    let mut out: Vec<String> = rec.entries.iter().map(qlist_line).collect();
    out.extend(
        rec.quarantined
            .iter()
            .map(|q| format!("E: {} {}", q.file, q.reason)),
    );
    Ok(out)
}

fn qlist_line(e: &QueueEntry) -> String {
    let from = match &e.envelope.mail_from {
        Some(a) => a.format(),
        None => "<>".to_owned(),
    };
    format!(
        "Q: {} rcpt:{} from:{} domain:{}",
        e.file,
        e.envelope.rcpt_to.len(),
        from,
        e.envelope.domain
    )
}

/// `haraka --qstat`: `{ queue_dir: '<dir>', queue_count: <n> }`.
pub fn qstat(dir: &Path) -> Result<String, QueueError> {
    let rec = scan(dir, false)?;
    let count = rec.entries.len() + rec.quarantined.len();
    Ok(format!(
        "{{ queue_dir: '{}', queue_count: {} }}",
        dir.display(),
        count
    ))
}

/// Delete every queued delivery (and left-over temporary files); quarantined
/// `error.*` files are kept for inspection. Returns how many deliveries were removed.
/// Meant for a stopped server: a running one simply drops deliveries whose file vanished.
pub fn qempty(dir: &Path) -> Result<usize, QueueError> {
    let rec = scan(dir, false)?;
    let mut removed = 0;
    let files = rec
        .entries
        .iter()
        .map(|e| &e.file)
        .chain(rec.quarantined.iter().map(|q| &q.file));
    for file in files {
        match std::fs::remove_file(dir.join(file)) {
            Ok(()) => removed += 1,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(e.into()),
        }
    }
    for tmp in &rec.removed_tmp {
        let _ = std::fs::remove_file(dir.join(tmp));
    }
    Ok(removed)
}

/// Make every queued delivery (or those for `domain`) due now by renaming its file.
/// For a stopped server; a running one is told with SIGHUP instead.
pub fn retry_now(dir: &Path, domain: Option<&str>) -> Result<usize, QueueError> {
    let rec: Recovery = scan(dir, false)?;
    let now = now_ms();
    let mut count = 0;
    for e in rec.entries {
        if domain.is_some_and(|d| !d.eq_ignore_ascii_case(&e.envelope.domain)) {
            continue;
        }
        if e.name.next_attempt <= now {
            count += 1;
            continue;
        }
        let to = e.name.rescheduled(e.name.attempts, now).to_string();
        std::fs::rename(dir.join(&e.file), dir.join(to))?;
        count += 1;
    }
    Ok(count)
}

/// A readable description of one delivery: `id` is a file name or a queue uuid.
pub fn inspect(dir: &Path, id: &str) -> Result<String, QueueError> {
    let rec = scan(dir, false)?;
    let entry = rec
        .entries
        .iter()
        .find(|e| e.file == id || e.envelope.uuid == id)
        .ok_or_else(|| QueueError::BadName(id.to_owned()))?;
    let now = now_ms();
    let e = &entry.envelope;
    let mut s = String::new();
    let _ = writeln!(s, "file: {}", entry.file);
    let _ = writeln!(
        s,
        "format: {}",
        match entry.format {
            Format::Native => "haraka-rs v1",
            Format::Haraka => "haraka",
        }
    );
    let _ = writeln!(s, "size: {} bytes", entry.size);
    let _ = writeln!(s, "uuid: {}", e.uuid);
    let _ = writeln!(s, "domain: {}", e.domain);
    let _ = writeln!(s, "queued: {}", relative(entry.name.arrival, now));
    let _ = writeln!(
        s,
        "next attempt: {}",
        relative(entry.name.next_attempt, now)
    );
    let _ = writeln!(s, "attempts: {}", entry.name.attempts);
    let from = e.mail_from.as_ref().map_or("<>".to_owned(), |a| a.format());
    let _ = writeln!(s, "from: {from}");
    for r in &e.rcpt_to {
        let _ = writeln!(s, "rcpt: {}", r.format());
    }
    let _ = writeln!(s, "force_tls: {}", e.force_tls);
    let _ = writeln!(s, "notes: {}", serde_json::Value::Object(e.notes.clone()));
    if let Some(name) = QueueName::parse(&entry.file) {
        let _ = writeln!(s, "pid: {}", name.pid);
    }
    let store = crate::store::read_message(dir, &entry.file)?;
    let _ = writeln!(s, "--- headers ---");
    s.push_str(&String::from_utf8_lossy(header_block(&store)));
    Ok(s)
}

fn header_block(message: &[u8]) -> &[u8] {
    let end = message
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .map(|p| p + 2)
        .unwrap_or(message.len());
    &message[..end]
}

fn relative(ms: u64, now: u64) -> String {
    if ms >= now {
        format!("{ms} (in {} s)", (ms - now) / 1000)
    } else {
        format!("{ms} ({} s ago)", (now - ms) / 1000)
    }
}
