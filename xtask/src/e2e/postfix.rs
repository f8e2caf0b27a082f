//! A private Postfix instance (`postfix -c DIR`): its own config, queue,
//! data directory and log file, one smtpd listener on a loopback address,
//! every accepted message for its domains delivered into one Maildir that
//! the checks read. It never looks anything up in DNS and never sends mail
//! anywhere (every non-local destination is an error transport). Each
//! message tagged with `X-E2E-Id` gets a log line naming the id, the client
//! address and the HELO the instance recorded (`info: header X-E2E-Id: …
//! from host[ip]; from=<…> to=<…> proto=ESMTP helo=<…>`).

use std::fmt::Write as _;
use std::net::SocketAddrV4;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use anyhow::{Context, bail};

use super::proc::{
    file_len, port_open, read_lossy, wait_file_line, wait_port_closed, wait_port_open, wait_until,
};
use crate::util;

/// How long Postfix may take to start or stop listening.
const PORT_TIMEOUT: Duration = Duration::from_secs(20);

/// What a private instance looks like.
#[derive(Debug, Clone)]
pub struct PostfixConfig {
    /// A short name: the folder under the run directory and the log tag.
    pub name: String,
    /// `myhostname`: the greeting and the `by` of its Received header.
    pub hostname: String,
    /// The smtpd listener.
    pub listen: SocketAddrV4,
    /// Domains delivered into the Maildir (`virtual_mailbox_domains`).
    pub domains: Vec<String>,
    /// Clients allowed to send XCLIENT (`smtpd_authorized_xclient_hosts`).
    pub xclient_hosts: Vec<String>,
    /// Offer STARTTLS with this certificate and key.
    pub tls: Option<(PathBuf, PathBuf)>,
    /// More `main.cf` settings, applied last.
    pub extra: Vec<(String, String)>,
}

/// A delivered message.
#[derive(Debug, Clone)]
pub struct Message {
    /// Its Maildir file.
    pub path: PathBuf,
    /// The whole message as delivered (CRLF turned into LF by Postfix).
    pub raw: String,
}

impl Message {
    /// Every header as (name, unfolded value), in order.
    pub fn headers(&self) -> Vec<(String, String)> {
        let mut out: Vec<(String, String)> = Vec::new();
        for line in self.raw.lines() {
            if line.is_empty() {
                break;
            }
            if line.starts_with([' ', '\t']) {
                if let Some((_, v)) = out.last_mut() {
                    v.push(' ');
                    v.push_str(line.trim());
                }
            } else if let Some((k, v)) = line.split_once(':') {
                out.push((k.trim().to_owned(), v.trim().to_owned()));
            }
        }
        out
    }

    /// Every value of the header `name` (case-insensitive), in order.
    pub fn header_all(&self, name: &str) -> Vec<String> {
        self.headers()
            .into_iter()
            .filter(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v)
            .collect()
    }

    /// The first value of the header `name`.
    pub fn header(&self, name: &str) -> Option<String> {
        self.header_all(name).into_iter().next()
    }

    /// The body (after the first empty line).
    pub fn body(&self) -> &str {
        self.raw.split_once("\n\n").map_or("", |(_, b)| b)
    }

    /// True if the message carries `X-E2E-Id: id` (see `Swaks::id`).
    pub fn has_id(&self, id: &str) -> bool {
        self.header_all(super::swaks::ID_HEADER)
            .iter()
            .any(|v| v == id)
    }
}

/// A configured private Postfix instance; stopped when dropped.
pub struct Postfix {
    cfg: PostfixConfig,
    conf: PathBuf,
    queue: PathBuf,
    maildir: PathBuf,
    log: PathBuf,
}

impl Postfix {
    /// Write the instance's files under `base/<name>`; nothing runs yet.
    pub fn create(base: &Path, cfg: PostfixConfig) -> anyhow::Result<Self> {
        let dir = base.join(&cfg.name);
        let conf = dir.join("conf");
        let data = dir.join("data");
        let mail = dir.join("mail");
        for d in [&conf, &dir.join("queue"), &data, &mail] {
            std::fs::create_dir_all(d).with_context(|| format!("creating {}", d.display()))?;
        }
        let postfix = user("postfix")?;
        let nobody = user("nobody")?;
        chown(&data, postfix)?;
        chown(&mail, nobody)?;
        let log = dir.join("maillog");
        let main_cf = main_cf(&cfg, &dir, nobody);
        write(&conf.join("main.cf"), &main_cf)?;
        write(&conf.join("master.cf"), &master_cf(cfg.listen))?;
        backdate(&conf.join("main.cf"))?;
        backdate(&conf.join("master.cf"))?;
        Ok(Self {
            cfg,
            conf,
            queue: dir.join("queue"),
            maildir: mail.join("inbox"),
            log,
        })
    }

    /// The smtpd listener.
    pub fn addr(&self) -> SocketAddrV4 {
        self.cfg.listen
    }

    /// The instance's settings.
    pub fn config(&self) -> &PostfixConfig {
        &self.cfg
    }

    /// The config directory (`postfix -c` argument).
    pub fn conf_dir(&self) -> &Path {
        &self.conf
    }

    /// Start and wait until the listener accepts.
    pub fn start(&self) -> anyhow::Result<()> {
        if port_open(self.cfg.listen.into()) {
            bail!("{} is already taken by another server", self.cfg.listen);
        }
        self.postfix(&["start"])?;
        wait_port_open(self.cfg.listen.into(), PORT_TIMEOUT)
            .with_context(|| format!("postfix {}: log ends:\n{}", self.cfg.name, self.log_tail()))
    }

    /// Stop (if running) and wait until the listener refuses connections
    /// and the master process is gone (so a start can follow at once).
    pub fn stop(&self) -> anyhow::Result<()> {
        if self.is_running() {
            self.postfix(&["stop"])?;
        }
        wait_port_closed(self.cfg.listen.into(), PORT_TIMEOUT)?;
        let name = &self.cfg.name;
        wait_until(&format!("postfix {name} to exit"), PORT_TIMEOUT, || {
            Ok((!self.is_running()).then_some(()))
        })
    }

    /// Stop, then start.
    pub fn restart(&self) -> anyhow::Result<()> {
        self.stop()?;
        self.start()
    }

    /// True while the instance's master process runs. Read from its pid
    /// file and /proc: `postfix status` can take seconds after a change.
    pub fn is_running(&self) -> bool {
        self.master_pid().is_some()
    }

    /// The master process's pid, if it runs.
    pub fn master_pid(&self) -> Option<u32> {
        let file = self.queue.join("pid").join("master.pid");
        let pid: u32 = std::fs::read_to_string(file).ok()?.trim().parse().ok()?;
        let comm = std::fs::read_to_string(format!("/proc/{pid}/comm")).ok()?;
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
        // A zombie (state Z) has exited; it only waits to be reaped.
        let state = stat
            .rsplit_once(')')
            .and_then(|(_, r)| r.split_whitespace().next());
        (comm.trim() == "master" && state != Some("Z")).then_some(pid)
    }

    /// Change `main.cf` settings (`postconf -e`) and restart if running.
    /// A restart, not a reload: after a reload, an idle smtpd with the old
    /// settings may still take the next connection.
    pub fn set(&self, settings: &[(&str, &str)]) -> anyhow::Result<()> {
        let mut cmd = Command::new("postconf");
        cmd.arg("-c").arg(&self.conf).arg("-e");
        for (k, v) in settings {
            cmd.arg(format!("{k} = {v}"));
        }
        util::output(&mut cmd)?;
        backdate(&self.conf.join("main.cf"))?;
        if self.is_running() {
            self.restart()?;
        }
        Ok(())
    }

    /// Ask the queue manager to retry deferred mail now.
    pub fn flush(&self) -> anyhow::Result<()> {
        self.postfix(&["flush"])
    }

    /// The log file (`maillog_file`).
    pub fn log_path(&self) -> &Path {
        &self.log
    }

    /// The whole log so far.
    pub fn log(&self) -> String {
        read_lossy(&self.log).unwrap_or_default()
    }

    /// A mark in the log: pass it to [`Postfix::wait_log`] to see only newer lines.
    pub fn log_mark(&self) -> usize {
        file_len(&self.log)
    }

    /// Wait for a log line after `mark` containing `needle`; returns the line.
    pub fn wait_log(&self, mark: usize, needle: &str, timeout: Duration) -> anyhow::Result<String> {
        wait_file_line(&self.log, mark, needle, timeout)
            .with_context(|| format!("postfix {}: log ends:\n{}", self.cfg.name, self.log_tail()))
    }

    fn log_tail(&self) -> String {
        super::proc::tail(&self.log(), 15)
    }

    /// Every message delivered so far, oldest file name first.
    pub fn messages(&self) -> anyhow::Result<Vec<Message>> {
        let mut paths = Vec::new();
        for sub in ["new", "cur"] {
            let dir = self.maildir.join(sub);
            let entries = match std::fs::read_dir(&dir) {
                Ok(e) => e,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
                Err(e) => return Err(e).with_context(|| format!("listing {}", dir.display())),
            };
            for entry in entries {
                paths.push(
                    entry
                        .with_context(|| format!("listing {}", dir.display()))?
                        .path(),
                );
            }
        }
        paths.sort();
        paths
            .into_iter()
            .map(|path| {
                let raw = read_lossy(&path)?;
                Ok(Message { path, raw })
            })
            .collect()
    }

    /// Wait until a delivered message satisfies `pred`; returns it.
    pub fn wait_for_delivery(
        &self,
        timeout: Duration,
        pred: impl Fn(&Message) -> bool,
    ) -> anyhow::Result<Message> {
        let name = &self.cfg.name;
        wait_until(&format!("a delivery to postfix {name}"), timeout, || {
            Ok(self.messages()?.into_iter().find(|m| pred(m)))
        })
        .with_context(|| format!("postfix {name}: log ends:\n{}", self.log_tail()))
    }

    /// Wait until the message with `X-E2E-Id: id` is delivered.
    pub fn wait_for_id(&self, id: &str, timeout: Duration) -> anyhow::Result<Message> {
        self.wait_for_delivery(timeout, |m| m.has_id(id))
    }

    /// How many delivered messages satisfy `pred`.
    pub fn count(&self, pred: impl Fn(&Message) -> bool) -> anyhow::Result<usize> {
        Ok(self.messages()?.iter().filter(|m| pred(m)).count())
    }

    fn postfix(&self, args: &[&str]) -> anyhow::Result<()> {
        let mut cmd = Command::new("postfix");
        cmd.arg("-c").arg(&self.conf).args(args);
        let out = cmd.output().with_context(|| format!("running {cmd:?}"))?;
        if !out.status.success() {
            // postfix reports on a terminal only; its log has the reason.
            bail!(
                "{cmd:?} failed: {}\n{}\nlog ends:\n{}",
                out.status,
                String::from_utf8_lossy(&out.stderr),
                self.log_tail()
            );
        }
        Ok(())
    }
}

impl Drop for Postfix {
    fn drop(&mut self) {
        if let Err(e) = self.stop() {
            eprintln!("e2e: stopping postfix {}: {e:#}", self.cfg.name);
        }
    }
}

/// Stop a Postfix instance left behind by an earlier, interrupted run.
pub fn stop_stale(conf: &Path) {
    let running = Command::new("postfix")
        .arg("-c")
        .arg(conf)
        .arg("status")
        .output()
        .map(|o| o.status.success())
        .unwrap_or(false);
    if running {
        eprintln!("e2e: stopping a leftover postfix -c {}", conf.display());
        let _ = Command::new("postfix")
            .arg("-c")
            .arg(conf)
            .arg("stop")
            .output();
    }
}

fn main_cf(cfg: &PostfixConfig, dir: &Path, (uid, gid): (u32, u32)) -> String {
    let d = dir.display();
    let mut s = format!(
        "# private instance for cargo xtask e2e\n\
         compatibility_level = 3.6\n\
         queue_directory = {d}/queue\n\
         data_directory = {d}/data\n\
         maillog_file = {d}/maillog\n\
         maillog_file_prefixes = {d}\n\
         myhostname = {host}\n\
         mydomain = {host}\n\
         myorigin = {host}\n\
         inet_interfaces = loopback-only\n\
         inet_protocols = ipv4\n\
         smtp_bind_address = {ip}\n\
         mydestination =\n\
         mynetworks = {ip}/32\n\
         relay_domains =\n\
         alias_maps =\n\
         alias_database =\n\
         local_recipient_maps =\n\
         smtpd_peername_lookup = no\n\
         smtp_dns_support_level = disabled\n\
         smtp_host_lookup = native\n\
         default_transport = error:this test instance sends no mail out\n\
         relay_transport = error:this test instance sends no mail out\n\
         virtual_mailbox_domains = {domains}\n\
         virtual_mailbox_base = {d}/mail\n\
         virtual_mailbox_maps = static:inbox/\n\
         virtual_uid_maps = static:{uid}\n\
         virtual_gid_maps = static:{gid}\n\
         smtpd_authorized_xclient_hosts = {xclient}\n\
         smtpd_error_sleep_time = 0s\n\
         header_checks = regexp:{{ {{/^{id_header}:/ INFO}} }}\n\
         smtpd_banner = $myhostname ESMTP Postfix\n\
         delay_warning_time = 0h\n\
         biff = no\n\
         smtputf8_enable = no\n\
         message_size_limit = 52428800\n\
         virtual_mailbox_limit = 0\n",
        host = cfg.hostname,
        ip = cfg.listen.ip(),
        domains = cfg.domains.join(" "),
        xclient = cfg.xclient_hosts.join(" "),
        id_header = super::swaks::ID_HEADER,
    );
    if let Some((cert, key)) = &cfg.tls {
        let _ = write!(
            s,
            "smtpd_tls_cert_file = {}\n\
             smtpd_tls_key_file = {}\n\
             smtpd_tls_security_level = may\n\
             smtpd_tls_received_header = yes\n\
             smtpd_tls_loglevel = 1\n",
            cert.display(),
            key.display()
        );
    } else {
        s.push_str("smtpd_tls_security_level = none\n");
    }
    for (k, v) in &cfg.extra {
        let _ = writeln!(s, "{k} = {v}");
    }
    s
}

/// Postfix's standard services, none chrooted (the queue is private), plus
/// one smtpd on `listen`.
fn master_cf(listen: SocketAddrV4) -> String {
    let mut s = format!("{listen} inet n - n - - smtpd\n");
    for line in [
        "pickup unix n - n 60 1 pickup",
        "cleanup unix n - n - 0 cleanup",
        "qmgr unix n - n 300 1 qmgr",
        "tlsmgr unix - - n 1000? 1 tlsmgr",
        "rewrite unix - - n - - trivial-rewrite",
        "bounce unix - - n - 0 bounce",
        "defer unix - - n - 0 bounce",
        "trace unix - - n - 0 bounce",
        "verify unix - - n - 1 verify",
        "flush unix n - n 1000? 0 flush",
        "proxymap unix - - n - - proxymap",
        "proxywrite unix - - n - 1 proxymap",
        "smtp unix - - n - - smtp",
        "relay unix - - n - - smtp",
        "showq unix n - n - - showq",
        "error unix - - n - - error",
        "retry unix - - n - - error",
        "discard unix - - n - - discard",
        "local unix - n n - - local",
        "virtual unix - n n - - virtual",
        "lmtp unix - - n - - lmtp",
        "anvil unix - - n - 1 anvil",
        "scache unix - - n - 1 scache",
        "postlog unix-dgram n - n - 1 postlogd",
    ] {
        s.push_str(line);
        s.push('\n');
    }
    s
}

/// Make a config file look a few seconds old: Postfix waits until a
/// just-modified table or config file is at least a second old before it
/// reads it, which would slow every start and restart by a second or two.
fn backdate(path: &Path) -> anyhow::Result<()> {
    let past = std::time::SystemTime::now() - Duration::from_secs(10);
    std::fs::File::options()
        .write(true)
        .open(path)
        .and_then(|f| f.set_modified(past))
        .with_context(|| format!("setting the mtime of {}", path.display()))
}

fn user(name: &str) -> anyhow::Result<(u32, u32)> {
    let u = nix::unistd::User::from_name(name)
        .with_context(|| format!("looking up user {name}"))?
        .with_context(|| format!("no user {name} (is postfix installed?)"))?;
    Ok((u.uid.as_raw(), u.gid.as_raw()))
}

fn chown(path: &Path, (uid, gid): (u32, u32)) -> anyhow::Result<()> {
    std::os::unix::fs::chown(path, Some(uid), Some(gid))
        .with_context(|| format!("chown {uid}:{gid} {}", path.display()))
}

fn write(path: &Path, text: &str) -> anyhow::Result<()> {
    std::fs::write(path, text).with_context(|| format!("writing {}", path.display()))
}
