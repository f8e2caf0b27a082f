//! Reloading a value when the files it was built from change.
//!
//! Haraka watches the directories of the files it read and re-reads them 5 s after
//! a change. [`Watched`] does the same without a background task: [`Watched::get`]
//! compares each file's modification time, size and inode with what they were at
//! the last load (at most once per interval, 1 s by default) and re-runs the loader
//! when one differs. A failing loader keeps the previous value and logs the error
//! once per change.

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant, SystemTime};

type Loader<T> = Box<dyn Fn() -> Result<(T, Vec<PathBuf>), String> + Send + Sync>;

/// A value rebuilt when its source files change. `Send + Sync`; share it in an `Arc`.
pub struct Watched<T> {
    loader: Loader<T>,
    interval: Duration,
    state: Mutex<State<T>>,
}

struct State<T> {
    value: Arc<T>,
    paths: Vec<PathBuf>,
    stamps: Vec<Option<FileStamp>>,
    checked: Instant,
}

/// What identifies one version of a file: modification time, size and inode. Two
/// stamps differ when the file was written, replaced or renamed over.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FileStamp {
    modified: Option<SystemTime>,
    len: u64,
    inode: (u64, u64),
}

impl FileStamp {
    /// The stamp of `path` (following symlinks), or `None` when it cannot be read.
    pub fn of(path: &Path) -> Option<FileStamp> {
        let md = std::fs::metadata(path).ok()?;
        #[cfg(unix)]
        let inode = {
            use std::os::unix::fs::MetadataExt;
            (md.dev(), md.ino())
        };
        #[cfg(not(unix))]
        let inode = (0, 0);
        Some(FileStamp {
            modified: md.modified().ok(),
            len: md.len(),
            inode,
        })
    }
}

impl<T> fmt::Debug for Watched<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Watched")
            .field("paths", &self.lock().paths)
            .field("interval", &self.interval)
            .finish()
    }
}

impl<T: Send + Sync + 'static> Watched<T> {
    /// Load once now (an error here is returned, e.g. as a start-up error) and
    /// reload whenever one of `paths` changes. A path that does not exist yet is
    /// watched for its creation.
    pub fn new<E, F>(paths: Vec<PathBuf>, loader: F) -> Result<Watched<T>, E>
    where
        E: fmt::Display,
        F: Fn() -> Result<T, E> + Send + Sync + 'static,
    {
        Watched::with_paths(move || loader().map(|v| (v, paths.clone())))
    }

    /// Like [`Watched::new`], for a loader that also says which files it read
    /// (e.g. `tls.ini` and the certificate files it names).
    pub fn with_paths<E, F>(loader: F) -> Result<Watched<T>, E>
    where
        E: fmt::Display,
        F: Fn() -> Result<(T, Vec<PathBuf>), E> + Send + Sync + 'static,
    {
        let (value, paths) = loader()?;
        let stamps = paths.iter().map(|p| FileStamp::of(p)).collect();
        Ok(Watched {
            loader: Box::new(move || loader().map_err(|e| e.to_string())),
            interval: Duration::from_secs(1),
            state: Mutex::new(State {
                value: Arc::new(value),
                paths,
                stamps,
                checked: Instant::now(),
            }),
        })
    }

    /// Check at most once per `interval` (default 1 s; zero checks on every `get`).
    pub fn with_interval(mut self, interval: Duration) -> Watched<T> {
        self.interval = interval;
        self
    }

    /// The current value, reloaded first if a source file changed.
    pub fn get(&self) -> Arc<T> {
        let mut st = self.lock();
        if st.checked.elapsed() >= self.interval {
            self.check(&mut st);
        }
        Arc::clone(&st.value)
    }

    /// Check the files now, whatever the interval; true if the value was replaced.
    pub fn reload_if_changed(&self) -> bool {
        let mut st = self.lock();
        self.check(&mut st)
    }

    /// The files being watched.
    pub fn paths(&self) -> Vec<PathBuf> {
        self.lock().paths.clone()
    }

    /// The first file being watched (the file of a value read from one file).
    pub fn path(&self) -> PathBuf {
        self.lock().paths.first().cloned().unwrap_or_default()
    }

    fn check(&self, st: &mut State<T>) -> bool {
        st.checked = Instant::now();
        let now: Vec<Option<FileStamp>> = st.paths.iter().map(|p| FileStamp::of(p)).collect();
        if now == st.stamps {
            return false;
        }
        st.stamps = now;
        match (self.loader)() {
            Ok((value, paths)) => {
                if paths != st.paths {
                    st.stamps = paths.iter().map(|p| FileStamp::of(p)).collect();
                    st.paths = paths;
                }
                st.value = Arc::new(value);
                tracing::info!("reloaded config from {}", join(&st.paths));
                true
            }
            Err(e) => {
                tracing::error!(
                    "reloading config from {} failed, keeping the previous value: {e}",
                    join(&st.paths)
                );
                false
            }
        }
    }
}

impl<T> Watched<T> {
    fn lock(&self) -> MutexGuard<'_, State<T>> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

fn join(paths: &[PathBuf]) -> String {
    paths
        .iter()
        .map(|p| p.display().to_string())
        .collect::<Vec<_>>()
        .join(", ")
}
