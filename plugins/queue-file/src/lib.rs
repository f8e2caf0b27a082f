//! A queue plugin that stores each accepted message as a file (quickstart).
//!
//! Owns the `queue` and `queue_outbound` hooks for roots that have nowhere to send
//! mail yet: each message is written to `ROOT/queue-file/<transaction uuid>.eml`
//! (directory configurable with `queue_file.ini` `[main] path=`, relative to ROOT).
//! Haraka's closest plugin is `queue/test`, which overwrites `/tmp/mail.eml`.
//!
//! It must never answer OK before the file is durable: temporary file, fsync,
//! rename, fsync of the directory; any IO error is a temporary failure (4xx) whose
//! text says the message was not queued. It never delivers mail and never touches
//! a file other than its own temporary and message files.

use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use haraka_config::ConfigDir;
use haraka_plugin_api::{
    BoxFuture, Connection, Hooks, Outcome, Plugin, PluginError, PluginInit, Register,
};

/// The ini file with `[main] path=`.
pub const INI: &str = "queue_file.ini";
/// The directory under ROOT when `path` is not set.
pub const DEFAULT_DIR: &str = "queue-file";
/// The reply text after a message was stored.
pub const QUEUED: &str = "Message Queued";

/// Create the plugin (a [`haraka_plugin_api::PluginFactory`]).
pub fn factory(init: &PluginInit<'_>) -> Result<Arc<dyn Plugin>, PluginError> {
    Ok(haraka_plugin_api::plugin(
        init.name,
        QueueFile::new(init.name, init.config)?,
    ))
}

/// The queue/file plugin.
pub struct QueueFile {
    dir: PathBuf,
}

impl QueueFile {
    /// Read `queue_file.ini` and create the directory.
    pub fn new(name: &str, cfg: &ConfigDir) -> Result<QueueFile, PluginError> {
        let ini = cfg.ini(INI)?;
        ini.warn_unknown(&[("main", &["path"])], false);
        let configured = ini
            .get("main", "path")
            .map(str::trim)
            .filter(|p| !p.is_empty())
            .unwrap_or(DEFAULT_DIR);
        let dir = cfg.root().join(configured);
        std::fs::create_dir_all(&dir).map_err(|e| {
            PluginError::Other(format!(
                "{name}: cannot create the queue directory {}: {e}",
                dir.display()
            ))
        })?;
        Ok(QueueFile { dir })
    }

    /// Where messages are written.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    fn queue(&self, conn: &mut Connection) -> BoxFuture<'static, Outcome> {
        let Some(txn) = conn.transaction.as_ref() else {
            return Box::pin(std::future::ready(Outcome::deny_soft(
                "Message not queued: no transaction",
            )));
        };
        let file_name = format!("{}.eml", safe_name(&txn.uuid));
        let bytes = txn.message.to_bytes();
        let dir = self.dir.clone();
        let uuid = txn.uuid.clone();
        Box::pin(async move {
            let written = match tokio::runtime::Handle::try_current() {
                Ok(rt) => rt
                    .spawn_blocking(move || write_atomic(&dir, &file_name, &bytes))
                    .await
                    .unwrap_or_else(|e| Err(io::Error::other(e))),
                Err(_) => write_atomic(&dir, &file_name, &bytes),
            };
            match written {
                Ok(path) => {
                    tracing::info!(uuid = %uuid, "message stored in {}", path.display());
                    Outcome::accept_with(QUEUED)
                }
                Err(e) => {
                    tracing::error!(uuid = %uuid, "message not stored: {e}");
                    Outcome::deny_soft(format!(
                        "Message not queued: the queue file could not be written ({})",
                        e.kind()
                    ))
                }
            }
        })
    }
}

/// A file name made of `[A-Za-z0-9._-]` that cannot start with a dot (temporary
/// files do) or leave the directory.
pub fn safe_name(uuid: &str) -> String {
    let name: String = uuid
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_') {
                c
            } else {
                '_'
            }
        })
        .collect();
    if name.is_empty() || name.starts_with('.') {
        format!("_{name}")
    } else {
        name
    }
}

/// Write `dir/name` so that it either exists complete and durable or not at all.
fn write_atomic(dir: &Path, name: &str, bytes: &[u8]) -> io::Result<PathBuf> {
    let tmp = dir.join(format!(".{name}.tmp"));
    let path = dir.join(name);
    let result = (|| {
        let mut file = OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .open(&tmp)?;
        file.write_all(bytes)?;
        file.sync_all()?;
        drop(file);
        std::fs::rename(&tmp, &path)?;
        File::open(dir)?.sync_all()
    })();
    if result.is_err() {
        // Best effort: a leftover temporary file is harmless but untidy.
        let _ = std::fs::remove_file(&tmp);
    }
    result.map(|()| path)
}

impl Register for QueueFile {
    fn register(&self, hooks: &mut Hooks<Self>) {
        hooks.queue(Self::queue);
        hooks.queue_outbound(Self::queue);
    }
}
