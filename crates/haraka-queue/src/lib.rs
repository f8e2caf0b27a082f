//! The durable on-disk outbound queue of haraka-rs.
//!
//! Owns: the queue directory (`ROOT/queue` or `queue_dir`), queue file names (Haraka's
//! `<arrival>_<next_attempt>_<attempts>_<pid>_<uid>_<counter>_<host>`), the file
//! format (haraka-rs's versioned, checksummed format, plus a reader for Haraka's own
//! so a Haraka queue can be drained), the durable write path
//! (`__tmp__.<name>` → rename → the files and the directory fsynced together) with
//! group commit across concurrent submitters, the start-up recovery scan with quarantine of
//! unreadable files (`error.<name>`), the [`QueueStore`] trait the outbound engine
//! uses, and the queue tools of the command line.
//!
//! It must never report a message as queued before it is durable, never delete or
//! retry an unreadable file in a loop (it is moved aside once), never panic on file
//! content, and never deliver or schedule anything itself.

pub mod cli;
pub mod format;
pub mod name;
pub mod store;
pub mod writer;

use std::future::Future;
use std::path::{Path, PathBuf};
use std::pin::Pin;

pub use format::{Envelope, Format};
pub use name::{ERROR_PREFIX, QueueName, TMP_PREFIX, now_ms, system_hostname};
pub use store::{
    NewItem, Put, Quarantined, QueueDir, QueueEntry, QueueStore, Recovery, StoredMessage,
};
pub use writer::{FsyncSyncer, Syncer, WriterStats};

/// A boxed future that can move between threads.
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// Why a queue operation failed.
#[derive(Debug, thiserror::Error)]
pub enum QueueError {
    #[error("queue IO error: {0}")]
    Io(#[from] std::io::Error),
    /// The file exists but cannot be understood; it belongs in quarantine.
    #[error("unreadable queue file: {0}")]
    Corrupt(String),
    /// Not a queue file name, or no such delivery.
    #[error("no such queue file: {0}")]
    BadName(String),
    /// The writer thread is gone (the store was dropped).
    #[error("queue writer stopped")]
    WriterGone,
}

impl QueueError {
    /// The file is gone (delivered, removed by a tool, …).
    pub fn is_not_found(&self) -> bool {
        matches!(self, QueueError::Io(e) if e.kind() == std::io::ErrorKind::NotFound)
    }

    /// The file will never be readable; move it aside.
    pub fn is_corrupt(&self) -> bool {
        matches!(self, QueueError::Corrupt(_))
    }
}

/// Where the queue lives: the `queue_dir` config value if set (a relative path is
/// relative to the working directory, as Haraka's `path.resolve`), else `ROOT/queue`.
pub fn resolve_queue_dir(root: &Path, queue_dir: Option<&str>) -> PathBuf {
    match queue_dir.map(str::trim).filter(|s| !s.is_empty()) {
        Some(q) => {
            let p = Path::new(q);
            if p.is_absolute() {
                p.to_owned()
            } else {
                std::env::current_dir()
                    .map(|cwd| cwd.join(p))
                    .unwrap_or_else(|_| p.to_owned())
            }
        }
        None => root.join("queue"),
    }
}
