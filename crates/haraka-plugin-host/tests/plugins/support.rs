//! Test roots, connections and log capture.

use std::io::Write;
use std::path::Path;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use haraka_plugin_api::{
    Address, ConfigDir, Connection, Hello, HelloVerb, Hook, HookArgs, Local, Outcome, Plugin,
    Remote, Transaction,
};
use haraka_plugin_host::testing;
use tempfile::TempDir;

/// Everything logged in this test binary (the host's subscriber is global).
pub fn logs() -> String {
    String::from_utf8_lossy(&capture().lock().unwrap()).into_owned()
}

fn capture() -> &'static Arc<Mutex<Vec<u8>>> {
    static BUF: OnceLock<Arc<Mutex<Vec<u8>>>> = OnceLock::new();
    BUF.get_or_init(|| {
        let buf = Arc::new(Mutex::new(Vec::new()));
        let sink = Sink(buf.clone());
        tracing_subscriber::fmt()
            .with_max_level(tracing::Level::TRACE)
            .with_ansi(false)
            .with_writer(move || sink.clone())
            .init();
        buf
    })
}

#[derive(Clone)]
struct Sink(Arc<Mutex<Vec<u8>>>);

impl Write for Sink {
    fn write(&mut self, data: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(data);
        Ok(data.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// A `-c ROOT` with plugin libraries installed and config files written.
pub struct Root {
    pub dir: TempDir,
    pub config: ConfigDir,
}

impl Root {
    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    pub fn write(&self, name: &str, text: &str) {
        std::fs::write(self.path().join("config").join(name), text).unwrap();
    }

    /// Loads `name` as `config/plugins` would name it.
    pub fn load(&self, name: &str) -> Arc<dyn Plugin> {
        haraka_plugin_host::load(name, self.path(), &self.config)
            .unwrap_or_else(|e| panic!("loading {name}: {e}"))
    }
}

/// A root with the libraries `libs` installed and `files` in `config/`.
pub fn root(libs: &[&str], files: &[(&str, &str)]) -> Root {
    capture();
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join("config")).unwrap();
    for lib in libs {
        testing::install(lib, dir.path()).unwrap_or_else(|e| panic!("{e}"));
    }
    for (name, text) in files {
        std::fs::write(dir.path().join("config").join(name), text).unwrap();
    }
    let config = ConfigDir::open(dir.path()).unwrap();
    Root { dir, config }
}

/// A client after `EHLO client.example`, inside a transaction from `<sender@example.net>`.
pub fn session() -> Connection {
    let mut remote = Remote::new("192.0.2.10".parse().unwrap(), 41000);
    remote.host = Some("client.example".into());
    let local = Local {
        ip: "127.0.0.1".parse().unwrap(),
        port: 25,
        host: "mx.example".into(),
    };
    let mut conn = Connection::new("S-1".into(), remote, local);
    conn.hello = Some(Hello {
        verb: HelloVerb::Ehlo,
        host: "client.example".into(),
    });
    conn.esmtp = true;
    let mut t = Transaction::new("S-1.1".into());
    t.mail_from = Some(addr("sender@example.net"));
    conn.transaction = Some(t);
    conn.tran_count = 1;
    conn
}

pub fn addr(text: &str) -> Address {
    Address::parse(text).unwrap()
}

pub fn rcpt(text: &str) -> HookArgs {
    HookArgs::Rcpt {
        to: addr(text),
        params: vec![],
    }
}

/// Long enough for any plugin that answers; a test that hits it has failed.
pub const NO_HANG: Duration = Duration::from_secs(20);

/// Runs one hook and insists that it answers.
pub async fn run(
    plugin: &dyn Plugin,
    hook: Hook,
    conn: &mut Connection,
    args: &HookArgs,
) -> Outcome {
    tokio::time::timeout(NO_HANG, plugin.hook(hook, conn, args))
        .await
        .unwrap_or_else(|_| panic!("{} did not answer {hook}", plugin.name()))
}

/// The timeout the server applies to `plugin`: `config/<name>.timeout`, else
/// `config/plugin_timeout`, else 30 s (Haraka's rule).
pub fn timeout_for(root: &Root, plugin: &dyn Plugin) -> Duration {
    let secs = root
        .config
        .value(&format!("{}.timeout", plugin.name()))
        .or_else(|| root.config.value("plugin_timeout"))
        .and_then(|v| v.parse::<f64>().ok())
        .unwrap_or(30.0);
    Duration::from_secs_f64(secs)
}

/// What the server's runner does with a hook: the plugin's answer, or Haraka's
/// `plugin timeout` once `limit` has passed.
pub async fn run_with_timeout(
    limit: Duration,
    plugin: &dyn Plugin,
    hook: Hook,
    conn: &mut Connection,
    args: &HookArgs,
) -> Outcome {
    tokio::time::timeout(limit, plugin.hook(hook, conn, args))
        .await
        .unwrap_or_else(|_| Outcome::plugin_timeout())
}
