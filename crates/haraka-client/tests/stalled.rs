//! A backend or MX that stalls in the middle of DATA (stops reading the message,
//! or never answers the final dot) is given up within the configured timeouts:
//! every write and every read of the client is bounded, so smtp_forward and
//! outbound, which both speak through it, cannot hang on one.

#![allow(clippy::unwrap_used, reason = "a failed unwrap is a failed test")]

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use haraka_client::{ConnectOptions, Error, SmtpClient, Stage, Timeouts};
use haraka_smtp::Message;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::{TcpSocket, TcpStream};

#[derive(Clone, Copy)]
enum Stall {
    /// After `354`, read nothing more.
    StopReading,
    /// Read the whole message, never answer the final dot.
    NoAnswer,
}

/// A backend on 127.0.0.1 with a small receive buffer that answers one envelope,
/// then stalls as told.
async fn backend(stall: Stall) -> SocketAddr {
    let socket = TcpSocket::new_v4().unwrap();
    socket.set_recv_buffer_size(4096).unwrap();
    socket.bind("127.0.0.1:0".parse().unwrap()).unwrap();
    let listener = socket.listen(1).unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        let (stream, _) = listener.accept().await.unwrap();
        let _open = converse(stream, stall).await;
        // Keep the connection open, silent, until the test ends.
        std::future::pending::<()>().await;
    });
    addr
}

async fn converse(stream: TcpStream, stall: Stall) -> BufReader<TcpStream> {
    let mut s = BufReader::new(stream);
    s.get_mut()
        .write_all(b"220 stalling.test\r\n")
        .await
        .unwrap();
    let mut line = String::new();
    loop {
        line.clear();
        if s.read_line(&mut line).await.unwrap() == 0 {
            return s;
        }
        let reply: &[u8] = match line.trim_end().to_ascii_uppercase().as_str() {
            "DATA" => b"354 go ahead\r\n",
            _ => b"250 ok\r\n",
        };
        s.get_mut().write_all(reply).await.unwrap();
        if reply.starts_with(b"354") {
            break;
        }
    }
    if let Stall::NoAnswer = stall {
        let mut seen = Vec::new();
        while !seen.ends_with(b"\r\n.\r\n") {
            let mut chunk = [0u8; 8192];
            let n = s.read(&mut chunk).await.unwrap();
            if n == 0 {
                return s;
            }
            seen.extend_from_slice(&chunk[..n]);
        }
    }
    s
}

fn opts() -> ConnectOptions {
    ConnectOptions {
        timeouts: Timeouts {
            connect: Duration::from_secs(2),
            command: Duration::from_millis(300),
            data_end: Duration::from_millis(300),
        },
        bind: None,
    }
}

fn message(body_bytes: usize) -> Message {
    let line = b"0123456789012345678901234567890123456789012345678901234567890123456789\r\n";
    let body = line.iter().copied().cycle().take(body_bytes).collect();
    Message {
        headers: vec![b"Subject: stalled".to_vec()],
        body,
    }
}

async fn send_to_stalled(stall: Stall, body_bytes: usize) -> (Error, Duration) {
    let addr = backend(stall).await;
    let mut c = SmtpClient::connect(addr, &opts()).await.unwrap();
    c.ehlo("client.test").await.unwrap();
    let replies = c
        .envelope("<s@remote.org>", &["<a@b.c>".to_owned()])
        .await
        .unwrap();
    assert!(replies.iter().all(|r| r.code == 250));
    let started = Instant::now();
    let msg = message(body_bytes);
    let err = tokio::time::timeout(Duration::from_secs(5), c.data(&msg))
        .await
        .expect("the client gives up by itself")
        .unwrap_err();
    assert!(c.is_broken(), "a timed-out connection is never reused");
    (err, started.elapsed())
}

#[tokio::test]
async fn a_backend_that_stops_reading_mid_data_is_given_up_within_the_write_timeout() {
    // Far more than the socket buffers hold, so a write has to wait for the peer.
    let (err, after) = send_to_stalled(Stall::StopReading, 16 * 1024 * 1024).await;
    assert!(
        matches!(
            err,
            Error::Timeout {
                stage: Stage::Dot,
                ..
            }
        ),
        "{err:?}"
    );
    assert!(err.is_transport());
    assert!(after < Duration::from_secs(5), "gave up after {after:?}");
}

#[tokio::test]
async fn a_backend_that_never_answers_the_dot_is_given_up_within_data_end() {
    let (err, after) = send_to_stalled(Stall::NoAnswer, 1000).await;
    assert!(
        matches!(
            err,
            Error::Timeout {
                stage: Stage::Dot,
                ..
            }
        ),
        "{err:?}"
    );
    assert!(
        (Duration::from_millis(250)..Duration::from_secs(3)).contains(&after),
        "gave up after {after:?}"
    );
}
