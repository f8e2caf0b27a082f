//! Shared test helpers: a config root, a plugin, a client connection with a message.

#![allow(dead_code, reason = "each test binary uses a different subset")]
#![allow(clippy::unwrap_used, reason = "a failed unwrap is a failed test")]

use std::path::Path;
use std::sync::Arc;

use haraka_plugin_api::{
    Address, ConfigDir, Connection, Hello, HelloVerb, Hook, HookArgs, Local, Message, Outcome,
    Plugin, PluginInit, Remote, Transaction,
};
use haraka_plugin_queue_smtp_forward::{
    Config, SMTP_FORWARD_INI, SmtpForward, factory, xclient_forward,
};

/// A temporary Haraka root with `config/<name>` files.
pub struct Root {
    pub dir: tempfile::TempDir,
}

impl Root {
    pub fn new(files: &[(&str, &str)]) -> Root {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("config")).unwrap();
        for (name, text) in files {
            std::fs::write(dir.path().join("config").join(name), text).unwrap();
        }
        Root { dir }
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    pub fn config_dir(&self) -> ConfigDir {
        ConfigDir::open(self.path()).unwrap()
    }

    /// The plugin as the server creates it.
    pub fn factory(&self) -> Arc<dyn Plugin> {
        let dir = self.config_dir();
        let init = PluginInit {
            name: "queue/smtp_forward",
            config: &dir,
        };
        factory(&init).map_err(|e| e.to_string()).unwrap()
    }

    pub fn config(&self) -> Config {
        let dir = self.config_dir();
        let ini = dir.plugin_ini(&SMTP_FORWARD_INI).unwrap();
        Config::from_ini(&ini, xclient_forward(&dir)).unwrap()
    }

    /// The plugin with a given TLS client configuration.
    pub fn plugin_with_tls(&self, tls: Arc<rustls::ClientConfig>) -> SmtpForward {
        SmtpForward::new(self.config(), Some(tls))
    }
}

/// A plugin reading `smtp_forward.ini` = `ini`.
pub fn plugin(ini: &str) -> Arc<dyn Plugin> {
    Root::new(&[("smtp_forward.ini", ini)]).factory()
}

pub fn addr(s: &str) -> Address {
    Address::parse(s).unwrap()
}

/// A client connection from 192.0.2.9 (`client.example.org`) that said
/// `EHLO helo.example.org`, with a transaction from `<sender@remote.org>` to `rcpts`.
pub fn connection(rcpts: &[&str]) -> Connection {
    let mut remote = Remote::new("192.0.2.9".parse().unwrap(), 40000);
    remote.host = Some("client.example.org".into());
    let local = Local {
        ip: "127.0.0.1".parse().unwrap(),
        port: 25,
        host: "mx.test.local".into(),
    };
    let mut conn = Connection::new("C0FFEE".into(), remote, local);
    conn.hello = Some(Hello {
        verb: HelloVerb::Ehlo,
        host: "helo.example.org".into(),
    });
    conn.esmtp = true;
    let mut txn = Transaction::new("C0FFEE.1".into());
    txn.mail_from = Some(addr("<sender@remote.org>"));
    txn.rcpt_to = rcpts.iter().map(|r| addr(r)).collect();
    txn.message = message();
    conn.transaction = Some(txn);
    conn
}

/// A message with a `.`-line and a bare LF in its body.
pub fn message() -> Message {
    let mut m = Message::default();
    m.add_header("Subject", "forwarding test");
    m.body = b"first line\r\n.leading dot\r\nbare\nLF\r\n".to_vec();
    m
}

pub const FORWARDED_BODY: &str =
    "Subject: forwarding test\r\n\r\nfirst line\r\n..leading dot\r\nbare\r\nLF\r\n.\r\n";

/// Run the `queue` hook.
pub async fn queue(p: &dyn Plugin, conn: &mut Connection) -> Outcome {
    p.hook(Hook::Queue, conn, &HookArgs::None).await
}

/// Run the `rcpt_ok` hook for the transaction's last recipient (the backend
/// connection starts being prepared).
pub async fn rcpt_ok(p: &dyn Plugin, conn: &mut Connection) -> Outcome {
    let to = conn
        .transaction
        .as_ref()
        .and_then(|t| t.rcpt_to.last().cloned())
        .unwrap();
    let args = HookArgs::Rcpt {
        to,
        params: Vec::new(),
    };
    p.hook(Hook::RcptOk, conn, &args).await
}

/// Run the `disconnect` hook.
pub async fn disconnect(p: &dyn Plugin, conn: &mut Connection) -> Outcome {
    p.hook(Hook::Disconnect, conn, &HookArgs::None).await
}

/// `smtp_forward.ini` pointing at `port` on 127.0.0.1 with short timeouts.
pub fn ini_for(port: u16, extra: &str) -> String {
    format!("host=127.0.0.1\nport={port}\nconnect_timeout=2\ntimeout=2\n{extra}\n")
}

/// A server config and a client config trusting it, for `name` (DNS name or IP).
pub fn tls_pair(name: &str) -> (Arc<rustls::ServerConfig>, Arc<rustls::ClientConfig>) {
    haraka_client::testing::tls_pair(name).unwrap()
}
