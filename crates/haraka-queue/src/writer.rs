//! The group-commit writer: one background thread writes queue files for every
//! submitter, and makes a whole batch durable in one round of fsyncs.
//!
//! For each file of a batch: create `__tmp__.<name>` (exclusive), write, rename to
//! `<name>`. Then every file and the directory are fsynced at the same time (the
//! files on worker threads, the directory on the writer thread), so a batch costs
//! one journal commit rather than one for the files and another for the
//! directory. Only when all of them succeeded is every submitter of the batch told
//! its files are durable; a request with several files (one message split per
//! domain) succeeds or fails as a whole, and a failed request's files are removed.
//!
//! A crash during that round can leave a renamed file whose content did not reach
//! the disk; it was never acknowledged, and its checksums (see `format`) make
//! loading it fail, so it is moved aside instead of delivered.

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
    let mut workers = FileWorkers::new(syncer);
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
    batch: Vec<Request>,
) {
    stats.batches.fetch_add(1, Ordering::Relaxed);
    stats
        .requests
        .fetch_add(batch.len() as u64, Ordering::Relaxed);
    let mut results: Vec<Result<Vec<PathBuf>, QueueError>> = Vec::with_capacity(batch.len());
    let mut to_sync = Vec::new();
    for (index, req) in batch.iter().enumerate() {
        match write_request(dir, stats, &req.files) {
            Ok(written) => {
                let mut paths = Vec::with_capacity(written.len());
                for (path, file) in written {
                    paths.push(path);
                    to_sync.push((index, file));
                }
                results.push(Ok(paths));
            }
            Err(e) => results.push(Err(e)),
        }
    }
    if results.iter().any(Result::is_ok) {
        stats.dir_syncs.fetch_add(1, Ordering::Relaxed);
        stats
            .file_syncs
            .fetch_add(to_sync.len() as u64, Ordering::Relaxed);
        let pending = workers.sync(to_sync);
        let dir_synced = syncer.sync_dir(dir);
        for (index, failure) in pending.failures() {
            if let Some(r) = results.get_mut(index)
                && let Ok(paths) = r
            {
                remove_all(paths);
                *r = Err(failure);
            }
        }
        if let Err(e) = dir_synced {
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
        // A submitter that went away waits for no answer; its files stay queued.
        let _ = req.done.send(result.map(|_| ()));
    }
}

/// Most file fsyncs run at the same time.
const PARALLEL_SYNCS: usize = 32;

/// One file to fsync, for the request at `index` of the batch.
struct Job {
    index: usize,
    file: File,
    reply: mpsc::Sender<(usize, io::Result<()>)>,
}

/// Threads that fsync the files of a batch while the writer thread fsyncs the
/// directory. They are started as batches need them (at most
/// [`PARALLEL_SYNCS`]) and kept: a thread started per file cost more than the
/// write itself.
struct FileWorkers {
    syncer: Arc<dyn Syncer>,
    jobs: mpsc::Sender<Job>,
    queue: Arc<Mutex<mpsc::Receiver<Job>>>,
    threads: usize,
}

/// The file fsyncs of a batch under way.
struct Pending {
    replies: mpsc::Receiver<(usize, io::Result<()>)>,
    /// The request index of every file handed to a worker.
    sent: Vec<usize>,
    /// Files fsynced (and failed) without a worker.
    early: Vec<(usize, QueueError)>,
}

impl Pending {
    /// Wait for every fsync; the requests (by index) whose files failed. A file
    /// whose worker died without answering counts as failed.
    fn failures(self) -> Vec<(usize, QueueError)> {
        let mut failed = self.early;
        let mut unanswered = self.sent;
        for (index, result) in self.replies.iter().take(unanswered.len()) {
            if let Some(at) = unanswered.iter().position(|&i| i == index) {
                unanswered.swap_remove(at);
            }
            if let Err(e) = result {
                failed.push((index, QueueError::Io(e)));
            }
        }
        failed.extend(unanswered.into_iter().map(|index| {
            (
                index,
                QueueError::Io(io::Error::other("queue fsync thread stopped")),
            )
        }));
        failed
    }
}

impl FileWorkers {
    fn new(syncer: &Arc<dyn Syncer>) -> FileWorkers {
        let (jobs, queue) = mpsc::channel();
        FileWorkers {
            syncer: Arc::clone(syncer),
            jobs,
            queue: Arc::new(Mutex::new(queue)),
            threads: 0,
        }
    }

    /// Start workers until `wanted` run (or starting one fails); returns how many run.
    fn grow(&mut self, wanted: usize) -> usize {
        while self.threads < wanted.min(PARALLEL_SYNCS) {
            let queue = Arc::clone(&self.queue);
            let syncer = Arc::clone(&self.syncer);
            let started = std::thread::Builder::new()
                .name("queue-fsync".into())
                .spawn(move || work(&queue, &*syncer));
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

    /// Start fsyncing `files`; the answers are collected with [`Pending::failures`].
    fn sync(&mut self, files: Vec<(usize, File)>) -> Pending {
        let (reply, replies) = mpsc::channel();
        let mut pending = Pending {
            replies,
            sent: Vec::new(),
            early: Vec::new(),
        };
        if self.grow(files.len()) == 0 {
            // No thread: fsync here, before the directory (still correct, slower).
            for (index, file) in files {
                if let Err(e) = self.syncer.sync_file(&file) {
                    pending.early.push((index, QueueError::Io(e)));
                }
            }
            return pending;
        }
        for (index, file) in files {
            let job = Job {
                index,
                file,
                reply: reply.clone(),
            };
            match self.jobs.send(job) {
                Ok(()) => pending.sent.push(index),
                Err(mpsc::SendError(job)) => {
                    if let Err(e) = self.syncer.sync_file(&job.file) {
                        pending.early.push((job.index, QueueError::Io(e)));
                    }
                }
            }
        }
        pending
    }
}

fn work(queue: &Mutex<mpsc::Receiver<Job>>, syncer: &dyn Syncer) {
    loop {
        let job = {
            let Ok(rx) = queue.lock() else { return };
            match rx.recv() {
                Ok(job) => job,
                Err(_) => return,
            }
        };
        let result =
            std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| syncer.sync_file(&job.file)))
                .unwrap_or_else(|_| Err(io::Error::other("queue fsync panicked")));
        let _ = job.reply.send((job.index, result));
    }
}

/// Write and rename every file of one request (no fsync yet); on any failure undo
/// the request. Returns the final paths with their open files.
fn write_request(
    dir: &Path,
    stats: &WriterStats,
    files: &[PendingFile],
) -> Result<Vec<(PathBuf, File)>, QueueError> {
    let mut tmps = Vec::with_capacity(files.len());
    let mut opened = Vec::with_capacity(files.len());
    for f in files {
        let tmp = dir.join(format!("{TMP_PREFIX}{}", f.name));
        let written = write_tmp(&tmp, &f.bytes, stats);
        tmps.push(tmp);
        match written {
            Ok(file) => opened.push(file),
            Err(e) => {
                remove_all(&tmps);
                return Err(e);
            }
        }
    }
    let mut done = Vec::with_capacity(files.len());
    let mut finals = Vec::with_capacity(files.len());
    for ((f, tmp), file) in files.iter().zip(&tmps).zip(opened) {
        let dest = dir.join(&f.name);
        if let Err(e) = std::fs::rename(tmp, &dest) {
            remove_all(&finals);
            remove_all(&tmps);
            return Err(QueueError::Io(e));
        }
        finals.push(dest.clone());
        done.push((dest, file));
    }
    Ok(done)
}

fn write_tmp(path: &Path, bytes: &[u8], stats: &WriterStats) -> Result<File, QueueError> {
    let mut file = OpenOptions::new().write(true).create_new(true).open(path)?;
    file.write_all(bytes)?;
    stats.files.fetch_add(1, Ordering::Relaxed);
    Ok(file)
}

fn remove_all(paths: &[PathBuf]) {
    for p in paths {
        let _ = std::fs::remove_file(p);
    }
}
