//! The certificate store: the default key/cert pair(s) from `tls.ini` and the SNI
//! certificates of `config/tls/`, re-read when their files change on disk.
//!
//! Handshakes look at the store through [`ResolvesServerCert`] (and outgoing
//! connections through [`ResolvesClientCert`]); at most once per
//! [`RELOAD_INTERVAL`] a handshake first compares the files' mtime, size and inode
//! with what was loaded and re-reads what changed. A changed file that does not
//! load keeps the previous certificate and logs an error naming the file, once per
//! change. Sessions already open are never touched.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard, RwLock, TryLockError};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use rustls::SignatureScheme;
use rustls::client::ResolvesClientCert;
use rustls::crypto::CryptoProvider;
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;

use crate::TlsError;
use crate::names;
use haraka_config::FileStamp;

use crate::pem;

/// How often a handshake may trigger a look at the files.
pub const RELOAD_INTERVAL: Duration = Duration::from_secs(1);

/// How deep `config/tls/` is searched (haraka-config reads it recursively).
const MAX_DEPTH: usize = 8;

/// One key/cert pair named in `tls.ini`.
struct CertPair {
    key: PathBuf,
    cert: PathBuf,
    stamp: (Option<FileStamp>, Option<FileStamp>),
    current: Option<Arc<CertifiedKey>>,
}

impl CertPair {
    /// Re-read the pair if its files changed; `true` when a new key is in use.
    fn refresh(&mut self, provider: &CryptoProvider) -> bool {
        let now = (FileStamp::of(&self.key), FileStamp::of(&self.cert));
        if now == self.stamp {
            return false;
        }
        self.stamp = now;
        match pem::load_pair(&self.key, &self.cert, provider) {
            Ok(key) => {
                tracing::info!(cert = %self.cert.display(), "reloaded TLS certificate");
                self.current = Some(key);
                true
            }
            Err(e) if self.current.is_some() => {
                tracing::error!("{e}; keeping the previous TLS certificate");
                false
            }
            Err(e) => {
                tracing::error!("{e}");
                false
            }
        }
    }
}

/// One file of `config/tls/`.
struct SniFile {
    stamp: Option<FileStamp>,
    /// The key and its names; `None` while the file has never loaded.
    loaded: Option<(Arc<CertifiedKey>, Vec<String>)>,
}

struct Files {
    pairs: Vec<CertPair>,
    sni_dir: Option<PathBuf>,
    sni: BTreeMap<PathBuf, SniFile>,
}

/// What handshakes read: replaced as a whole after a reload.
#[derive(Default)]
struct Snapshot {
    defaults: Vec<Arc<CertifiedKey>>,
    by_name: HashMap<String, Vec<Arc<CertifiedKey>>>,
}

/// The certificates of one side, kept current with the files on disk.
///
/// It notices changes with `haraka_config::FileStamp`, file by file, rather than
/// through `haraka_config::Watched`,
/// which rebuilds one value from a fixed list of files, keeps the whole previous
/// value when the rebuild fails, and holds its lock while it re-reads. The store
/// needs more than that: files appear in and vanish from `config/tls/`; each file
/// keeps its own previous certificate when a new version does not load, without
/// holding back the others; an SNI file that never loaded is skipped rather than
/// fatal; and handshakes read a published snapshot, so none waits while another
/// re-reads the files.
pub struct CertStore {
    provider: Arc<CryptoProvider>,
    files: Mutex<Files>,
    snapshot: RwLock<Arc<Snapshot>>,
    last_check: Mutex<Instant>,
}

impl std::fmt::Debug for CertStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let snap = self.snapshot();
        f.debug_struct("CertStore")
            .field("defaults", &snap.defaults.len())
            .field("sni_names", &snap.by_name.len())
            .finish()
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

impl CertStore {
    /// Load the default pairs and `sni_dir`.
    ///
    /// `required` pairs must load now (a configured but unreadable key or cert is a
    /// start-up error naming the file); `optional` pairs (Haraka's default
    /// `tls_key.pem`/`tls_cert.pem`, not written in tls.ini) may be missing and are
    /// picked up when they appear. Files in `sni_dir` that do not load are logged
    /// and skipped, as in Haraka.
    pub(crate) fn load(
        required: Vec<(PathBuf, PathBuf)>,
        optional: Vec<(PathBuf, PathBuf)>,
        sni_dir: Option<PathBuf>,
        provider: Arc<CryptoProvider>,
    ) -> Result<CertStore, TlsError> {
        let required = required.into_iter().map(|pair| (pair, true));
        let mut pairs = Vec::new();
        for ((key, cert), required) in required.chain(optional.into_iter().map(|p| (p, false))) {
            let stamp = (FileStamp::of(&key), FileStamp::of(&cert));
            let current = if required || stamp != (None, None) {
                Some(pem::load_pair(&key, &cert, &provider)?)
            } else {
                None
            };
            pairs.push(CertPair {
                key,
                cert,
                stamp,
                current,
            });
        }
        let store = CertStore {
            provider,
            files: Mutex::new(Files {
                pairs,
                sni_dir,
                sni: BTreeMap::new(),
            }),
            snapshot: RwLock::new(Arc::new(Snapshot::default())),
            last_check: Mutex::new(Instant::now()),
        };
        {
            let mut w = lock(&store.files);
            refresh_sni(&mut w, &store.provider);
            if let Some(dir) = &w.sni_dir {
                let n = w.sni.values().filter(|f| f.loaded.is_some()).count();
                tracing::info!("found {n} TLS certs in {}", dir.display());
            }
            store.publish(&w);
        }
        Ok(store)
    }

    fn snapshot(&self) -> Arc<Snapshot> {
        self.snapshot
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }

    fn publish(&self, w: &Files) {
        let mut snap = Snapshot {
            defaults: w.pairs.iter().filter_map(|p| p.current.clone()).collect(),
            by_name: HashMap::new(),
        };
        for file in w.sni.values() {
            if let Some((key, names)) = &file.loaded {
                for name in names {
                    snap.by_name
                        .entry(name.clone())
                        .or_default()
                        .push(key.clone());
                }
            }
        }
        *self
            .snapshot
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = Arc::new(snap);
    }

    /// Whether a default certificate is loaded (Haraka's `tls_valid`).
    pub fn is_usable(&self) -> bool {
        !self.snapshot().defaults.is_empty()
    }

    /// The host names served from `config/tls/`, sorted.
    pub fn sni_names(&self) -> Vec<String> {
        let mut names: Vec<String> = self.snapshot().by_name.keys().cloned().collect();
        names.sort();
        names
    }

    /// Look at the files now if the last look is [`RELOAD_INTERVAL`] old.
    pub fn maybe_check(&self) {
        let due = match self.last_check.try_lock() {
            Ok(mut last) => due(&mut last),
            Err(TryLockError::Poisoned(p)) => due(&mut p.into_inner()),
            Err(TryLockError::WouldBlock) => false,
        };
        if due {
            self.check_now();
        }
    }

    /// Compare the files with what is loaded and re-read what changed, now.
    /// Returns whether new handshakes will see a different set of certificates.
    pub fn check_now(&self) -> bool {
        let mut w = lock(&self.files);
        let mut changed = false;
        for pair in &mut w.pairs {
            changed |= pair.refresh(&self.provider);
        }
        changed |= refresh_sni(&mut w, &self.provider);
        if changed {
            self.publish(&w);
        }
        changed
    }

    /// The key a handshake for `server_name` would get when the client accepts
    /// every signature scheme.
    pub fn resolve_name(&self, server_name: Option<&str>) -> Option<Arc<CertifiedKey>> {
        self.pick(server_name, None)
    }

    fn pick(
        &self,
        server_name: Option<&str>,
        schemes: Option<&[SignatureScheme]>,
    ) -> Option<Arc<CertifiedKey>> {
        let snap = self.snapshot();
        let fits =
            |k: &&Arc<CertifiedKey>| schemes.is_none_or(|s| k.key.choose_scheme(s).is_some());
        if let Some(name) = server_name {
            let name = name.trim_end_matches('.').to_ascii_lowercase();
            let candidates = snap
                .by_name
                .get(&name)
                .or_else(|| names::wildcard_of(&name).and_then(|w| snap.by_name.get(&w)));
            if let Some(found) = candidates.and_then(|c| c.iter().find(fits)) {
                return Some(found.clone());
            }
        }
        snap.defaults
            .iter()
            .find(fits)
            .or_else(|| snap.defaults.first())
            .cloned()
    }
}

fn due(last: &mut Instant) -> bool {
    if last.elapsed() >= RELOAD_INTERVAL {
        *last = Instant::now();
        true
    } else {
        false
    }
}

impl ResolvesServerCert for CertStore {
    fn resolve(&self, client_hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        self.maybe_check();
        self.pick(
            client_hello.server_name(),
            Some(client_hello.signature_schemes()),
        )
    }
}

impl ResolvesClientCert for CertStore {
    fn resolve(
        &self,
        _root_hint_subjects: &[&[u8]],
        sigschemes: &[SignatureScheme],
    ) -> Option<Arc<CertifiedKey>> {
        self.maybe_check();
        let snap = self.snapshot();
        snap.defaults
            .iter()
            .find(|k| k.key.choose_scheme(sigschemes).is_some())
            .cloned()
    }

    fn has_certs(&self) -> bool {
        self.is_usable()
    }
}

/// Every regular file under `dir`, sorted, up to [`MAX_DEPTH`] levels.
fn files_under(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut todo = vec![(dir.to_owned(), 0)];
    while let Some((d, depth)) = todo.pop() {
        let Ok(entries) = std::fs::read_dir(&d) else {
            continue;
        };
        for entry in entries.flatten() {
            let path = entry.path();
            match std::fs::metadata(&path) {
                Ok(m) if m.is_dir() && depth < MAX_DEPTH => todo.push((path, depth + 1)),
                Ok(m) if m.is_file() => out.push(path),
                _ => {}
            }
        }
    }
    out.sort();
    out
}

/// Bring the `config/tls/` table up to date; `true` if it changed.
fn refresh_sni(w: &mut Files, provider: &CryptoProvider) -> bool {
    let Some(dir) = w.sni_dir.clone() else {
        return false;
    };
    let present = files_under(&dir);
    let mut changed = false;
    let before = w.sni.len();
    w.sni.retain(|path, _| present.contains(path));
    changed |= w.sni.len() != before;
    for path in present {
        let stamp = FileStamp::of(&path);
        let old = w.sni.get(&path);
        if old.is_some_and(|f| f.stamp == stamp) {
            continue;
        }
        let previous = old.and_then(|f| f.loaded.clone());
        let loaded = match pem::load_combined(&path, provider) {
            Ok(key) => {
                let info = key.cert.first().map(names::of).unwrap_or_default();
                warn_expired(&path, info.not_after);
                if previous.is_some() {
                    tracing::info!(file = %path.display(), "reloaded TLS certificate");
                }
                changed = true;
                Some((key, info.names))
            }
            Err(e) => {
                let file = path.file_name().map(|f| f.to_string_lossy().into_owned());
                let file = file.unwrap_or_default();
                if previous.is_some() {
                    tracing::error!("{file} had error: {e}; keeping the previous TLS certificate");
                } else {
                    tracing::error!("{file} had error: {e}");
                }
                previous
            }
        };
        w.sni.insert(path, SniFile { stamp, loaded });
    }
    changed
}

fn warn_expired(path: &Path, not_after: Option<i64>) {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX));
    if let Some(t) = not_after
        && t < now
    {
        tracing::error!(
            "{} expired (notAfter {t} seconds after the epoch); still used",
            path.display()
        );
    }
}
