//! The [`QueueStore`] trait and its on-disk implementation, [`QueueDir`].

use std::fs::File;
use std::future::Future;
use std::io::{self, Read, Seek, SeekFrom};
use std::os::unix::fs::DirBuilderExt;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use crate::format::{self, Envelope, Format, Header};
use crate::name::{ERROR_PREFIX, QueueName, TMP_PREFIX, now_ms, system_hostname};
use crate::writer::{FsyncSyncer, PendingFile, Syncer, WriteTicket, Writer, WriterStats};
use crate::{BoxFuture, QueueError};

/// A delivery to add to the queue.
#[derive(Debug, Clone)]
pub struct NewItem {
    pub envelope: Envelope,
    /// The message: header fields, empty line, body; CRLF; not dot-stuffed.
    pub message: Arc<[u8]>,
    /// Temporary failures already counted (non-zero for split-off deferrals).
    pub attempts: u32,
    /// When to try first; `None` is now.
    pub next_attempt: Option<u64>,
}

/// A queued delivery as the store knows it (the message itself stays on disk).
#[derive(Debug, Clone, PartialEq)]
pub struct QueueEntry {
    /// The file name in the queue directory (the queue id).
    pub file: String,
    pub name: QueueName,
    pub envelope: Envelope,
    pub format: Format,
    /// Size of the file in bytes.
    pub size: u64,
}

/// A queued delivery with its message.
#[derive(Debug, Clone)]
pub struct StoredMessage {
    pub entry: QueueEntry,
    pub message: Vec<u8>,
}

/// A file that could not be read and was moved aside.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Quarantined {
    pub file: String,
    pub reason: String,
    /// The name it now has (`error.<file>`), or `None` if the rename failed too.
    pub moved_to: Option<String>,
}

/// What a scan of the queue directory found.
#[derive(Debug, Default)]
pub struct Recovery {
    /// Every readable queued delivery.
    pub entries: Vec<QueueEntry>,
    /// Unreadable files (moved aside by [`QueueStore::recover`], only reported by a listing).
    pub quarantined: Vec<Quarantined>,
    /// Left-over temporary files (deleted by a recovery).
    pub removed_tmp: Vec<String>,
    /// Files whose name is not a queue file name (left alone, as Haraka does).
    pub unrecognized: Vec<String>,
}

/// The result of [`QueueStore::put`]: resolves once every file is durable.
pub struct Put(PutState);

enum PutState {
    Ready(Option<Result<Vec<QueueEntry>, QueueError>>),
    Writing(Option<Vec<QueueEntry>>, WriteTicket),
    Boxed(BoxFuture<'static, Result<Vec<QueueEntry>, QueueError>>),
}

impl Put {
    /// An already finished put (for stores that write synchronously).
    pub fn ready(result: Result<Vec<QueueEntry>, QueueError>) -> Put {
        Put(PutState::Ready(Some(result)))
    }

    /// A put finished by another future.
    pub fn boxed(fut: BoxFuture<'static, Result<Vec<QueueEntry>, QueueError>>) -> Put {
        Put(PutState::Boxed(fut))
    }

    /// Wait from synchronous code (not from inside an async task). A put made with
    /// [`Put::boxed`] can only be awaited.
    pub fn wait_blocking(self) -> Result<Vec<QueueEntry>, QueueError> {
        match self.0 {
            PutState::Ready(r) => r.unwrap_or(Err(QueueError::WriterGone)),
            PutState::Writing(entries, ticket) => {
                ticket.wait_blocking()?;
                entries.ok_or(QueueError::WriterGone)
            }
            PutState::Boxed(_) => Err(QueueError::WriterGone),
        }
    }
}

impl Future for Put {
    type Output = Result<Vec<QueueEntry>, QueueError>;
    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        match &mut self.get_mut().0 {
            PutState::Ready(r) => Poll::Ready(r.take().unwrap_or(Err(QueueError::WriterGone))),
            PutState::Writing(entries, ticket) => match Pin::new(ticket).poll(cx) {
                Poll::Pending => Poll::Pending,
                Poll::Ready(Err(e)) => Poll::Ready(Err(e)),
                Poll::Ready(Ok(())) => Poll::Ready(entries.take().ok_or(QueueError::WriterGone)),
            },
            PutState::Boxed(f) => f.as_mut().poll(cx),
        }
    }
}

/// Storage for queued deliveries. The outbound engine only speaks to this trait.
///
/// Everything except [`QueueStore::put`] is blocking file IO: async callers run it on a
/// blocking thread.
pub trait QueueStore: Send + Sync + 'static {
    /// Add deliveries (all or none). The request is registered before this returns;
    /// the result resolves once all of them are durable.
    fn put(&self, items: Vec<NewItem>) -> Put;
    /// Read one delivery with its message, verifying it.
    fn load(&self, file: &str) -> Result<StoredMessage, QueueError>;
    /// Record a new schedule atomically; returns the entry under its new id.
    fn reschedule(
        &self,
        entry: &QueueEntry,
        attempts: u32,
        next_attempt: u64,
    ) -> Result<QueueEntry, QueueError>;
    /// Remove a delivery (delivered, bounced or dropped).
    fn remove(&self, file: &str) -> Result<(), QueueError>;
    /// Move an unreadable delivery aside so it is never tried again.
    fn quarantine(&self, file: &str) -> Result<String, QueueError>;
    /// The start-up scan: delete temporary files, quarantine unreadable ones and
    /// return every queued delivery.
    fn recover(&self) -> Result<Recovery, QueueError>;
    /// A read-only listing.
    fn list(&self) -> Result<Recovery, QueueError>;
    /// The current file of a delivery whose file was renamed by someone else (a
    /// queue tool rescheduling it): same arrival, pid, uid, counter and host.
    fn locate(&self, name: &QueueName) -> Result<Option<String>, QueueError> {
        let _ = name;
        Ok(None)
    }
}

impl dyn QueueStore {
    /// Run `op` on `file`, the file of the delivery `name`; if it is gone because a
    /// queue tool renamed it meanwhile (same message, new schedule), run `op` once
    /// more on the file's current name.
    pub fn on_current_file<T>(
        &self,
        file: &str,
        name: &QueueName,
        mut op: impl FnMut(&str) -> Result<T, QueueError>,
    ) -> Result<T, QueueError> {
        match op(file) {
            Err(e) if e.is_not_found() => match self.locate(name)? {
                Some(current) => op(&current),
                None => Err(e),
            },
            other => other,
        }
    }
}

/// The queue directory (`ROOT/queue` or `queue_dir`).
pub struct QueueDir {
    dir: PathBuf,
    hostname: String,
    writer: Writer,
}

impl QueueDir {
    /// Open (creating with mode 0755 if needed) with real fsyncs and the system host name.
    pub fn open(dir: &Path) -> Result<QueueDir, QueueError> {
        QueueDir::open_with(dir, system_hostname(), Arc::new(FsyncSyncer))
    }

    /// Open with a chosen host name (used in file names) and sync implementation.
    pub fn open_with(
        dir: &Path,
        hostname: String,
        syncer: Arc<dyn Syncer>,
    ) -> Result<QueueDir, QueueError> {
        if !dir.is_dir() {
            std::fs::DirBuilder::new()
                .recursive(true)
                .mode(0o755)
                .create(dir)?;
        }
        let writer = Writer::start(dir.to_owned(), syncer)?;
        Ok(QueueDir {
            dir: dir.to_owned(),
            hostname,
            writer,
        })
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Counters of the group-commit writer.
    pub fn stats(&self) -> &WriterStats {
        &self.writer.stats
    }
}

impl QueueStore for QueueDir {
    fn put(&self, items: Vec<NewItem>) -> Put {
        let now = now_ms();
        let mut files = Vec::with_capacity(items.len());
        let mut entries = Vec::with_capacity(items.len());
        for item in items {
            let mut name = QueueName::fresh(now, &self.hostname);
            name.attempts = item.attempts;
            name.next_attempt = item.next_attempt.unwrap_or(now);
            let bytes = format::encode(&item.envelope, &item.message);
            let file = name.to_string();
            entries.push(QueueEntry {
                file: file.clone(),
                name,
                envelope: item.envelope,
                format: Format::Native,
                size: bytes.len() as u64,
            });
            files.push(PendingFile { name: file, bytes });
        }
        if files.is_empty() {
            return Put::ready(Ok(Vec::new()));
        }
        Put(PutState::Writing(Some(entries), self.writer.submit(files)))
    }

    fn load(&self, file: &str) -> Result<StoredMessage, QueueError> {
        load_file(&self.dir, file)
    }

    fn reschedule(
        &self,
        entry: &QueueEntry,
        attempts: u32,
        next_attempt: u64,
    ) -> Result<QueueEntry, QueueError> {
        let name = entry.name.rescheduled(attempts, next_attempt);
        let file = name.to_string();
        std::fs::rename(self.dir.join(&entry.file), self.dir.join(&file))?;
        Ok(QueueEntry {
            file,
            name,
            ..entry.clone()
        })
    }

    fn remove(&self, file: &str) -> Result<(), QueueError> {
        match std::fs::remove_file(self.dir.join(file)) {
            Err(e) if e.kind() != io::ErrorKind::NotFound => Err(e.into()),
            _ => Ok(()),
        }
    }

    fn quarantine(&self, file: &str) -> Result<String, QueueError> {
        quarantine_file(&self.dir, file)
    }

    fn recover(&self) -> Result<Recovery, QueueError> {
        scan(&self.dir, true)
    }

    fn list(&self) -> Result<Recovery, QueueError> {
        scan(&self.dir, false)
    }

    fn locate(&self, name: &QueueName) -> Result<Option<String>, QueueError> {
        for de in std::fs::read_dir(&self.dir)? {
            let Ok(file) = de?.file_name().into_string() else {
                continue;
            };
            if QueueName::parse(&file).is_some_and(|n| n.same_message(name)) {
                return Ok(Some(file));
            }
        }
        Ok(None)
    }
}

/// Read and verify one delivery of `dir`.
pub fn load_file(dir: &Path, file: &str) -> Result<StoredMessage, QueueError> {
    let name = QueueName::parse(file).ok_or_else(|| QueueError::BadName(file.to_owned()))?;
    let mut f = File::open(dir.join(file))?;
    let len = f.metadata()?.len();
    let header = read_header(&mut f, len)?;
    let stored = read_exact_at(&mut f, header.message_offset, header.message_len)?;
    let message = format::decode_message(&header, stored)?;
    Ok(StoredMessage {
        entry: QueueEntry {
            file: file.to_owned(),
            name,
            envelope: header.envelope,
            format: header.format,
            size: len,
        },
        message,
    })
}

/// The message of one delivery of `dir`.
pub(crate) fn read_message(dir: &Path, file: &str) -> Result<Vec<u8>, QueueError> {
    load_file(dir, file).map(|m| m.message)
}

fn quarantine_file(dir: &Path, file: &str) -> Result<String, QueueError> {
    let to = format!("{ERROR_PREFIX}{file}");
    std::fs::rename(dir.join(file), dir.join(&to))?;
    Ok(to)
}

/// Scan `dir`. With `fix`, temporary files are deleted and unreadable files moved aside.
pub fn scan(dir: &Path, fix: bool) -> Result<Recovery, QueueError> {
    let mut rec = Recovery::default();
    let mut names: Vec<String> = Vec::new();
    for de in std::fs::read_dir(dir)? {
        let de = de?;
        match de.file_name().into_string() {
            Ok(n) => names.push(n),
            Err(raw) => rec.unrecognized.push(raw.to_string_lossy().into_owned()),
        }
    }
    names.sort();
    for file in names {
        if file.starts_with(TMP_PREFIX) {
            if fix {
                let _ = std::fs::remove_file(dir.join(&file));
            }
            rec.removed_tmp.push(file);
            continue;
        }
        if file.starts_with(ERROR_PREFIX) {
            continue;
        }
        let Some(name) = QueueName::parse(&file) else {
            rec.unrecognized.push(file);
            continue;
        };
        match read_entry(dir, &file, name) {
            Ok(entry) => rec.entries.push(entry),
            Err(e) if e.is_not_found() => {}
            Err(e) => {
                let moved_to = if fix {
                    quarantine_file(dir, &file).ok()
                } else {
                    None
                };
                rec.quarantined.push(Quarantined {
                    file,
                    reason: e.to_string(),
                    moved_to,
                });
            }
        }
    }
    Ok(rec)
}

fn read_entry(dir: &Path, file: &str, name: QueueName) -> Result<QueueEntry, QueueError> {
    let mut f = File::open(dir.join(file))?;
    let meta = f.metadata()?;
    if !meta.is_file() {
        return Err(QueueError::Corrupt("not a regular file".into()));
    }
    let header = read_header(&mut f, meta.len())?;
    Ok(QueueEntry {
        file: file.to_owned(),
        name,
        envelope: header.envelope,
        format: header.format,
        size: meta.len(),
    })
}

fn read_header(f: &mut File, len: u64) -> Result<Header, QueueError> {
    let mut read_at = |offset: u64, n: usize| read_exact_at(f, offset, n as u64);
    format::decode_header(len, &mut read_at)
}

fn read_exact_at(f: &mut File, offset: u64, len: u64) -> Result<Vec<u8>, QueueError> {
    let len = usize::try_from(len).map_err(|_| QueueError::Corrupt("length overflow".into()))?;
    f.seek(SeekFrom::Start(offset))?;
    let mut buf = Vec::new();
    buf.try_reserve_exact(len)
        .map_err(|_| QueueError::Corrupt("length too large".into()))?;
    f.take(len as u64).read_to_end(&mut buf)?;
    if buf.len() != len {
        return Err(QueueError::Corrupt("file truncated".into()));
    }
    Ok(buf)
}
