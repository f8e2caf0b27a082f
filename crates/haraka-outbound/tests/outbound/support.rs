//! Test support: scripted fake MX servers on loopback addresses, recording hooks,
//! and an engine wired to a static DNS table.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use haraka_outbound::{
    Event, Outbound, OutboundConfig, OutboundTls, RetrySchedule, StaticResolver,
};
use haraka_plugin_api::{
    BoxFuture, Connection, Hook, Local, MxHost, OutboundArgs, OutboundHooks, OutboundMail, Outcome,
    Remote, Transaction,
};
use haraka_queue::{
    NewItem, Put, QueueDir, QueueEntry, QueueError, QueueName, QueueStore, Recovery, StoredMessage,
};
use haraka_smtp::Address;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Notify, broadcast};

/// Fails the test instead of hanging when something never happens.
pub const PATIENCE: Duration = Duration::from_secs(20);

/// What a fake server does in answer to a line.
#[derive(Debug, Clone)]
pub enum Act {
    Reply(String),
    /// Reply, then close the connection (e.g. `220` to STARTTLS and no handshake).
    ReplyClose(String),
    Close,
}

pub fn reply(text: &str) -> Option<Act> {
    Some(Act::Reply(text.to_owned()))
}

/// One connection as the server saw it.
#[derive(Debug, Clone, Default)]
pub struct SessionLog {
    pub lines: Vec<String>,
    pub messages: Vec<Vec<u8>>,
    pub closed: bool,
}

#[derive(Debug, Clone, Default)]
pub struct RecData {
    pub sessions: Vec<SessionLog>,
    pub active: usize,
    pub max_active: usize,
}

impl RecData {
    pub fn messages(&self) -> Vec<String> {
        self.sessions
            .iter()
            .flat_map(|s| s.messages.iter())
            .map(|m| String::from_utf8_lossy(m).into_owned())
            .collect()
    }
    pub fn lines(&self) -> Vec<String> {
        self.sessions.iter().flat_map(|s| s.lines.clone()).collect()
    }
}

#[derive(Default)]
pub struct Rec {
    data: Mutex<RecData>,
    changed: Notify,
}

impl Rec {
    pub fn snapshot(&self) -> RecData {
        self.data.lock().unwrap().clone()
    }
    fn update(&self, f: impl FnOnce(&mut RecData)) {
        f(&mut self.data.lock().unwrap());
        self.changed.notify_waiters();
    }
}

/// Decides the answer to a line (`None` = the default); gets the session index and
/// the lines of that session so far.
pub type Script = Arc<dyn Fn(usize, &[String], &str) -> Option<Act> + Send + Sync>;

pub struct FakeMx {
    pub addr: SocketAddr,
    pub rec: Arc<Rec>,
}

impl FakeMx {
    /// A server with the default answers.
    pub async fn plain(addr: &str) -> FakeMx {
        FakeMx::start(addr, Arc::new(|_, _, _| None)).await
    }

    pub async fn start(addr: &str, script: Script) -> FakeMx {
        let listener = TcpListener::bind(addr).await.unwrap();
        let addr = listener.local_addr().unwrap();
        let rec = Arc::new(Rec::default());
        let r = Arc::clone(&rec);
        tokio::spawn(async move {
            while let Ok((tcp, _)) = listener.accept().await {
                let (r, script) = (Arc::clone(&r), Arc::clone(&script));
                let mut index = 0;
                r.update(|d| {
                    d.sessions.push(SessionLog::default());
                    index = d.sessions.len() - 1;
                    d.active += 1;
                    d.max_active = d.max_active.max(d.active);
                });
                tokio::spawn(async move {
                    let _ = serve(tcp, index, &r, &script).await;
                    r.update(|d| {
                        d.active -= 1;
                        d.sessions[index].closed = true;
                    });
                });
            }
        });
        FakeMx { addr, rec }
    }

    pub fn port(&self) -> u16 {
        self.addr.port()
    }

    /// Wait until `pred` holds (woken by every change; no sleeping).
    pub async fn wait_for(&self, pred: impl Fn(&RecData) -> bool) -> RecData {
        tokio::time::timeout(PATIENCE, async {
            loop {
                let notified = self.rec.changed.notified();
                let now = self.rec.snapshot();
                if pred(&now) {
                    return now;
                }
                notified.await;
            }
        })
        .await
        .expect("the fake MX never saw what the test waits for")
    }
}

fn default_answer(line: &str) -> Act {
    let verb = line
        .split(' ')
        .next()
        .unwrap_or_default()
        .to_ascii_uppercase();
    let text = match verb.as_str() {
        "GREETING" => "220 fake.test ESMTP",
        "EHLO" => "250-fake.test\r\n250-PIPELINING\r\n250 8BITMIME",
        "HELO" => "250 fake.test",
        "MAIL" | "RCPT" | "RSET" | "NOOP" => "250 2.1.0 Ok",
        "DATA" => "354 go ahead",
        "." => "250 2.0.0 Ok: queued as F1",
        "QUIT" => "221 2.0.0 Bye",
        "STARTTLS" => "454 4.7.0 TLS not available",
        _ => "502 5.5.2 unknown command",
    };
    Act::Reply(text.to_owned())
}

async fn serve(
    mut tcp: TcpStream,
    index: usize,
    rec: &Rec,
    script: &Script,
) -> std::io::Result<()> {
    let mut buf = Vec::new();
    let mut seen: Vec<String> = Vec::new();
    let answer = |seen: &[String], line: &str| {
        script(index, seen, line).unwrap_or_else(|| default_answer(line))
    };
    if !send(&mut tcp, answer(&seen, "GREETING")).await? {
        return Ok(());
    }
    loop {
        let Some(line) = read_until(&mut tcp, &mut buf, b"\r\n").await? else {
            return Ok(());
        };
        let line = String::from_utf8_lossy(&line).into_owned();
        rec.update(|d| d.sessions[index].lines.push(line.clone()));
        seen.push(line.clone());
        let act = answer(&seen, &line);
        let data_ok = matches!(&act, Act::Reply(r) if r.starts_with("354"));
        let quit = line.eq_ignore_ascii_case("QUIT");
        if !send(&mut tcp, act).await? || quit {
            return Ok(());
        }
        if line.eq_ignore_ascii_case("DATA") && data_ok {
            let Some(msg) = read_until(&mut tcp, &mut buf, b"\r\n.\r\n").await? else {
                return Ok(());
            };
            rec.update(|d| d.sessions[index].messages.push(msg));
            if !send(&mut tcp, answer(&seen, ".")).await? {
                return Ok(());
            }
        }
    }
}

/// Send an answer; false when the connection is to be closed.
async fn send(tcp: &mut TcpStream, act: Act) -> std::io::Result<bool> {
    let (text, keep) = match act {
        Act::Reply(t) => (t, true),
        Act::ReplyClose(t) => (t, false),
        Act::Close => return Ok(false),
    };
    tcp.write_all(format!("{text}\r\n").as_bytes()).await?;
    tcp.flush().await?;
    Ok(keep)
}

/// Bytes up to `end` (excluded), or `None` at EOF.
async fn read_until(
    tcp: &mut TcpStream,
    buf: &mut Vec<u8>,
    end: &[u8],
) -> std::io::Result<Option<Vec<u8>>> {
    loop {
        if buf.starts_with(&end[2..]) && end.len() == 5 {
            // An empty message: ".\r\n" right after the 354.
            buf.drain(..3);
            return Ok(Some(Vec::new()));
        }
        if let Some(p) = buf.windows(end.len()).position(|w| w == end) {
            let out: Vec<u8> = buf.drain(..p + end.len()).take(p).collect();
            return Ok(Some(out));
        }
        let mut chunk = [0u8; 8192];
        let n = tcp.read(&mut chunk).await?;
        if n == 0 {
            return Ok(None);
        }
        buf.extend_from_slice(&chunk[..n]);
    }
}

/// Records every hook call; answers CONT unless told otherwise.
#[derive(Default)]
pub struct TestHooks {
    pub calls: Mutex<Vec<(Hook, String, OutboundArgs)>>,
    pub answers: Mutex<HashMap<Hook, Outcome>>,
    /// get_mx answers OK with these hosts (set on `mail.mx`).
    pub mx: Mutex<Option<Vec<MxHost>>>,
    /// get_mx panics for this domain.
    pub panic_on: Mutex<Option<String>>,
}

impl TestHooks {
    pub fn answer(&self, hook: Hook, outcome: Outcome) {
        self.answers.lock().unwrap().insert(hook, outcome);
    }
    pub fn route_to(&self, hosts: Vec<MxHost>) {
        *self.mx.lock().unwrap() = Some(hosts);
    }
    pub fn hooks_called(&self) -> Vec<Hook> {
        self.calls.lock().unwrap().iter().map(|c| c.0).collect()
    }
    pub fn args_of(&self, hook: Hook) -> Vec<OutboundArgs> {
        self.calls
            .lock()
            .unwrap()
            .iter()
            .filter(|c| c.0 == hook)
            .map(|c| c.2.clone())
            .collect()
    }
}

impl OutboundHooks for TestHooks {
    fn run<'a>(
        &'a self,
        hook: Hook,
        mail: &'a mut OutboundMail,
        args: &'a OutboundArgs,
    ) -> BoxFuture<'a, Outcome> {
        self.calls
            .lock()
            .unwrap()
            .push((hook, mail.id.clone(), args.clone()));
        let boom = self.panic_on.lock().unwrap().clone();
        if hook == Hook::GetMx && boom.as_deref() == Some(mail.domain.as_str()) {
            panic!("plugin failure for {}", mail.domain);
        }
        if hook == Hook::GetMx
            && let Some(h) = self.mx.lock().unwrap().clone()
        {
            mail.mx = Some(h);
            return Box::pin(async { Outcome::accept() });
        }
        let out = self
            .answers
            .lock()
            .unwrap()
            .get(&hook)
            .cloned()
            .unwrap_or_else(Outcome::cont);
        Box::pin(async move { out })
    }
}

pub fn addr(s: &str) -> Address {
    Address::parse(s).unwrap()
}

pub fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

/// A relaying connection with one transaction ready for the queue.
pub fn conn(from: Option<&str>, to: &[&str], subject: &str) -> Connection {
    let mut c = Connection::new(
        "CONN-UUID".into(),
        Remote::new(ip("127.0.0.1"), 40000),
        Local {
            ip: ip("127.0.0.1"),
            port: 2526,
            host: "relay.test".into(),
        },
    );
    let mut t = Transaction::new(format!(
        "TX-{}",
        haraka_smtp::ids::uuid_from_bytes(rand::random())
    ));
    t.mail_from = from.map(addr);
    t.rcpt_to = to.iter().map(|r| addr(r)).collect();
    t.message.headers = vec![
        b"Received: from client by relay.test".to_vec(),
        format!("Subject: {subject}").into_bytes(),
        b"From: <u@sender.test>".to_vec(),
    ];
    t.message.body = b"Hello.\r\n.leading dot line\r\nBye.\r\n".to_vec();
    c.transaction = Some(t);
    c
}

pub fn config(port: u16) -> OutboundConfig {
    let mut c = OutboundConfig::new("relay.test");
    c.local_mx_ok = true;
    c.smtp_port = port;
    c.connect_timeout = Duration::from_secs(10);
    c.temp_fail_intervals = RetrySchedule::new(vec![Duration::from_secs(3600); 2]);
    c
}

/// An engine over a fresh queue directory.
pub struct Env {
    pub dir: tempfile::TempDir,
    pub out: Outbound,
    pub hooks: Arc<TestHooks>,
    pub events: broadcast::Receiver<Event>,
    /// Events received while waiting for another one.
    pub backlog: Vec<Event>,
}

impl Env {
    pub async fn new(cfg: OutboundConfig, dns: StaticResolver) -> Env {
        Env::with(
            cfg,
            dns,
            OutboundTls::default(),
            tempfile::tempdir().unwrap(),
        )
        .await
    }

    pub async fn with(
        cfg: OutboundConfig,
        dns: StaticResolver,
        tls: OutboundTls,
        dir: tempfile::TempDir,
    ) -> Env {
        let store = Arc::new(QueueDir::open(dir.path()).unwrap());
        Env::with_store(cfg, dns, tls, dir, store).await
    }

    /// An engine over `store` (which keeps its files in `dir`).
    pub async fn with_store(
        cfg: OutboundConfig,
        dns: StaticResolver,
        tls: OutboundTls,
        dir: tempfile::TempDir,
        store: Arc<dyn QueueStore>,
    ) -> Env {
        let hooks = Arc::new(TestHooks::default());
        let out = Outbound::builder(cfg, store)
            .resolver(Arc::new(dns.clone()))
            .hooks(hooks.clone())
            .tls(tls)
            .build()
            .unwrap();
        let events = out.subscribe();
        out.start().await.unwrap();
        Env {
            dir,
            out,
            hooks,
            events,
            backlog: Vec::new(),
        }
    }

    /// The first event matching `pred` (earlier non-matching events are kept for
    /// later calls, so the order in which concurrent deliveries report does not matter).
    pub async fn event(&mut self, pred: impl Fn(&Event) -> bool) -> Event {
        if let Some(i) = self.backlog.iter().position(&pred) {
            return self.backlog.remove(i);
        }
        let (events, backlog) = (&mut self.events, &mut self.backlog);
        tokio::time::timeout(PATIENCE, async {
            loop {
                match events.recv().await {
                    Ok(e) if pred(&e) => return e,
                    Ok(e) => backlog.push(e),
                    Err(e) => panic!("event stream: {e}"),
                }
            }
        })
        .await
        .expect("the expected outbound event never came")
    }

    pub fn queue_files(&self) -> Vec<String> {
        let mut v: Vec<String> = std::fs::read_dir(self.dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        v.sort();
        v
    }
}

pub fn mx_host(exchange: &str, port: u16) -> MxHost {
    MxHost {
        exchange: exchange.into(),
        priority: 0,
        port,
        ip: exchange.parse().ok(),
    }
}

/// The queue directory, counting the messages read back from it.
pub struct CountingStore {
    pub dir: QueueDir,
    pub loads: AtomicUsize,
}

impl CountingStore {
    pub fn open(path: &std::path::Path) -> Arc<CountingStore> {
        Arc::new(CountingStore {
            dir: QueueDir::open(path).unwrap(),
            loads: AtomicUsize::new(0),
        })
    }
    pub fn loads(&self) -> usize {
        self.loads.load(Ordering::SeqCst)
    }
}

impl QueueStore for CountingStore {
    fn put(&self, items: Vec<NewItem>) -> Put {
        self.dir.put(items)
    }
    fn load(&self, file: &str) -> Result<StoredMessage, QueueError> {
        self.loads.fetch_add(1, Ordering::SeqCst);
        self.dir.load(file)
    }
    fn reschedule(
        &self,
        entry: &QueueEntry,
        attempts: u32,
        next_attempt: u64,
    ) -> Result<QueueEntry, QueueError> {
        self.dir.reschedule(entry, attempts, next_attempt)
    }
    fn remove(&self, file: &str) -> Result<(), QueueError> {
        self.dir.remove(file)
    }
    fn quarantine(&self, file: &str) -> Result<String, QueueError> {
        self.dir.quarantine(file)
    }
    fn recover(&self) -> Result<Recovery, QueueError> {
        self.dir.recover()
    }
    fn list(&self) -> Result<Recovery, QueueError> {
        self.dir.list()
    }
    fn locate(&self, name: &QueueName) -> Result<Option<String>, QueueError> {
        self.dir.locate(name)
    }
}
