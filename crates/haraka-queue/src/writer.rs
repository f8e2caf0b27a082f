//! The group-commit writer: one background thread writes queue files for every
//! submitter, and makes a whole batch durable with one directory fsync.
//!
//! For each file: create `__tmp__.<name>` (exclusive), write, fsync the file, rename
//! to `<name>`. After all renames of a batch: one fsync of the directory. Only then is
//! every submitter of the batch told its files are durable. A request with several
//! files (one message split per domain) succeeds or fails as a whole.

use std::fs::{File, OpenOptions};
use std::future::Future;
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};

use tokio::sync::oneshot;

use crate::QueueError;
use crate::name::TMP_PREFIX;

/// Most requests made durable by one directory fsync.
const MAX_BATCH: usize = 512;

/// How files and the directory are made durable. The default calls `fsync`; tests
/// substitute an implementation that counts calls or injects failures.
pub trait Syncer: Send + Sync + 'static {
    fn sync_file(&self, file: &File) -> io::Result<()>;
    fn sync_dir(&self, dir: &Path) -> io::Result<()>;
}

/// `fsync(2)` on files and on the directory.
#[derive(Debug, Default, Clone, Copy)]
pub struct FsyncSyncer;

impl Syncer for FsyncSyncer {
    fn sync_file(&self, file: &File) -> io::Result<()> {
        file.sync_all()
    }
    fn sync_dir(&self, dir: &Path) -> io::Result<()> {
        File::open(dir)?.sync_all()
    }
}

/// Counters of the writer, for tests and statistics.
#[derive(Debug, Default)]
pub struct WriterStats {
    /// Batches processed (each ends with at most one directory fsync).
    pub batches: AtomicU64,
    /// Requests (submitters) processed.
    pub requests: AtomicU64,
    /// Files written.
    pub files: AtomicU64,
    /// File fsyncs.
    pub file_syncs: AtomicU64,
    /// Directory fsyncs.
    pub dir_syncs: AtomicU64,
}

impl WriterStats {
    pub fn get(counter: &AtomicU64) -> u64 {
        counter.load(Ordering::Relaxed)
    }
}

/// One file to write: its final name and its bytes.
pub(crate) struct PendingFile {
    pub name: String,
    pub bytes: Vec<u8>,
}

pub(crate) struct Request {
    pub files: Vec<PendingFile>,
    pub done: oneshot::Sender<Result<(), QueueError>>,
}

/// The handle submitters use; the thread stops when every handle is gone.
pub(crate) struct Writer {
    tx: mpsc::Sender<Request>,
    pub stats: Arc<WriterStats>,
}

impl Writer {
    pub fn start(dir: PathBuf, syncer: Arc<dyn Syncer>) -> Result<Writer, QueueError> {
        let (tx, rx) = mpsc::channel::<Request>();
        let stats = Arc::new(WriterStats::default());
        let thread_stats = Arc::clone(&stats);
        std::thread::Builder::new()
            .name("queue-writer".into())
            .spawn(move || run(&dir, &syncer, &thread_stats, &rx))
            .map_err(QueueError::Io)?;
        Ok(Writer { tx, stats })
    }

    /// Hand `files` to the writer. The request is queued before this returns; the
    /// ticket resolves once the files are durable (or failed).
    pub fn submit(&self, files: Vec<PendingFile>) -> WriteTicket {
        let (done, rx) = oneshot::channel();
        match self.tx.send(Request { files, done }) {
            Ok(()) => WriteTicket(TicketState::Waiting(rx)),
            Err(_) => WriteTicket(TicketState::Ready(Some(Err(QueueError::WriterGone)))),
        }
    }
}

/// Resolves when a submitted request is durable.
pub(crate) struct WriteTicket(TicketState);

enum TicketState {
    Waiting(oneshot::Receiver<Result<(), QueueError>>),
    Ready(Option<Result<(), QueueError>>),
}

impl WriteTicket {
    /// Wait from synchronous code (never from inside an async task).
    pub fn wait_blocking(self) -> Result<(), QueueError> {
        match self.0 {
            TicketState::Waiting(rx) => rx.blocking_recv().unwrap_or(Err(QueueError::WriterGone)),
            TicketState::Ready(r) => r.unwrap_or(Err(QueueError::WriterGone)),
        }
    }
}

impl Future for WriteTicket {
    type Output = Result<(), QueueError>;
    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        match &mut self.get_mut().0 {
            TicketState::Waiting(rx) => match Pin::new(rx).poll(cx) {
                Poll::Ready(r) => Poll::Ready(r.unwrap_or(Err(QueueError::WriterGone))),
                Poll::Pending => Poll::Pending,
            },
            TicketState::Ready(r) => Poll::Ready(r.take().unwrap_or(Err(QueueError::WriterGone))),
        }
    }
}

fn run(
    dir: &Path,
    syncer: &Arc<dyn Syncer>,
    stats: &Arc<WriterStats>,
    rx: &mpsc::Receiver<Request>,
) {
    let mut workers = FileWorkers::new(dir, syncer, stats);
    while let Ok(first) = rx.recv() {
        let mut batch = vec![first];
        while batch.len() < MAX_BATCH {
            match rx.try_recv() {
                Ok(r) => batch.push(r),
                Err(_) => break,
            }
        }
        commit(dir, &**syncer, stats, &mut workers, batch);
    }
}

/// Make one batch durable and answer every request in it.
fn commit(
    dir: &Path,
    syncer: &dyn Syncer,
    stats: &WriterStats,
    workers: &mut FileWorkers,
    mut batch: Vec<Request>,
) {
    stats.batches.fetch_add(1, Ordering::Relaxed);
    stats
        .requests
        .fetch_add(batch.len() as u64, Ordering::Relaxed);
    let mut results = workers.write_all(&mut batch);
    if results.iter().any(Result::is_ok) {
        stats.dir_syncs.fetch_add(1, Ordering::Relaxed);
        if let Err(e) = syncer.sync_dir(dir) {
            let msg = e.to_string();
            for r in results.iter_mut() {
                if let Ok(paths) = r {
                    remove_all(paths);
                    *r = Err(QueueError::Io(io::Error::new(e.kind(), msg.clone())));
                }
            }
        }
    }
    for (req, result) in batch.into_iter().zip(results) {
        // A submitter that went away no longer cares; its files stay queued.
        let _ = req.done.send(result.map(|_| ()));
    }
}

/// Most requests of a batch written and fsynced at the same time.
const PARALLEL_WRITES: usize = 32;

type WriteResult = Result<Vec<PathBuf>, QueueError>;

/// One request's files, handed to a worker.
struct Job {
    index: usize,
    files: Vec<PendingFile>,
    reply: mpsc::Sender<(usize, WriteResult)>,
}

/// Threads that write and fsync the files of one request each, so that a batch
/// costs about one file fsync plus the directory fsync, not one fsync per
/// message. They are started as batches need them (at most [`PARALLEL_WRITES`])
/// and kept: a thread started per request cost more than the write itself.
struct FileWorkers {
    dir: Arc<Path>,
    syncer: Arc<dyn Syncer>,
    stats: Arc<WriterStats>,
    jobs: mpsc::Sender<Job>,
    queue: Arc<Mutex<mpsc::Receiver<Job>>>,
    threads: usize,
}

impl FileWorkers {
    fn new(dir: &Path, syncer: &Arc<dyn Syncer>, stats: &Arc<WriterStats>) -> FileWorkers {
        let (jobs, queue) = mpsc::channel();
        FileWorkers {
            dir: Arc::from(dir),
            syncer: Arc::clone(syncer),
            stats: Arc::clone(stats),
            jobs,
            queue: Arc::new(Mutex::new(queue)),
            threads: 0,
        }
    }

    /// Start workers until `wanted` run (or starting one fails); returns how many run.
    fn grow(&mut self, wanted: usize) -> usize {
        while self.threads < wanted.min(PARALLEL_WRITES) {
            let queue = Arc::clone(&self.queue);
            let (dir, syncer, stats) = (
                Arc::clone(&self.dir),
                Arc::clone(&self.syncer),
                Arc::clone(&self.stats),
            );
            let started = std::thread::Builder::new()
                .name("queue-fsync".into())
                .spawn(move || work(&queue, &dir, &*syncer, &stats));
            match started {
                Ok(_) => self.threads += 1,
                Err(e) => {
                    tracing::warn!("cannot start a queue fsync thread: {e}");
                    break;
                }
            }
        }
        self.threads
    }

    /// Write every request of a batch; results in the batch's order. The files
    /// move out of the requests.
    fn write_all(&mut self, batch: &mut [Request]) -> Vec<WriteResult> {
        if batch.len() == 1 || self.grow(batch.len()) == 0 {
            return batch
                .iter()
                .map(|r| write_request(&self.dir, &*self.syncer, &self.stats, &r.files))
                .collect();
        }
        let (reply, replies) = mpsc::channel();
        let mut results: Vec<Option<WriteResult>> = Vec::with_capacity(batch.len());
        for (index, req) in batch.iter_mut().enumerate() {
            let job = Job {
                index,
                files: std::mem::take(&mut req.files),
                reply: reply.clone(),
            };
            results.push(None);
            if let Err(mpsc::SendError(job)) = self.jobs.send(job) {
                // Unreachable while `self.queue` holds the receiver; write inline.
                let r = write_request(&self.dir, &*self.syncer, &self.stats, &job.files);
                results[index] = Some(r);
            }
        }
        drop(reply);
        // Ends when every job answered or its worker died (its sender dropped).
        for (index, result) in replies {
            if let Some(slot) = results.get_mut(index) {
                *slot = Some(result);
            }
        }
        results
            .into_iter()
            .map(|r| {
                r.unwrap_or_else(|| {
                    Err(QueueError::Io(io::Error::other(
                        "queue write failed in its thread",
                    )))
                })
            })
            .collect()
    }
}

fn work(queue: &Mutex<mpsc::Receiver<Job>>, dir: &Path, syncer: &dyn Syncer, stats: &WriterStats) {
    loop {
        let job = {
            let Ok(rx) = queue.lock() else { return };
            match rx.recv() {
                Ok(job) => job,
                Err(_) => return,
            }
        };
        let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            write_request(dir, syncer, stats, &job.files)
        }))
        .unwrap_or_else(|_| Err(QueueError::Io(io::Error::other("queue write panicked"))));
        let _ = job.reply.send((job.index, result));
    }
}

/// Write, fsync and rename every file of one request; on any failure undo the request.
fn write_request(
    dir: &Path,
    syncer: &dyn Syncer,
    stats: &WriterStats,
    files: &[PendingFile],
) -> Result<Vec<PathBuf>, QueueError> {
    let mut tmps = Vec::with_capacity(files.len());
    for f in files {
        let tmp = dir.join(format!("{TMP_PREFIX}{}", f.name));
        let written = write_tmp(&tmp, &f.bytes, syncer, stats);
        tmps.push(tmp);
        if let Err(e) = written {
            remove_all(&tmps);
            return Err(e);
        }
    }
    let mut finals = Vec::with_capacity(files.len());
    for (f, tmp) in files.iter().zip(&tmps) {
        let dest = dir.join(&f.name);
        if let Err(e) = std::fs::rename(tmp, &dest) {
            remove_all(&finals);
            remove_all(&tmps);
            return Err(QueueError::Io(e));
        }
        finals.push(dest);
    }
    Ok(finals)
}

fn write_tmp(
    path: &Path,
    bytes: &[u8],
    syncer: &dyn Syncer,
    stats: &WriterStats,
) -> Result<(), QueueError> {
    let mut file = OpenOptions::new().write(true).create_new(true).open(path)?;
    file.write_all(bytes)?;
    stats.files.fetch_add(1, Ordering::Relaxed);
    stats.file_syncs.fetch_add(1, Ordering::Relaxed);
    syncer.sync_file(&file)?;
    Ok(())
}

fn remove_all(paths: &[PathBuf]) {
    for p in paths {
        let _ = std::fs::remove_file(p);
    }
}
