//! The mail transaction of [`SmtpClient`]: the envelope (pipelined when the
//! server offers PIPELINING), DATA and the message, dot-stuffed on the way out.

use haraka_smtp::message::DotStuffer;
use haraka_smtp::{Message, Reply};
use tokio::io::{AsyncRead, AsyncReadExt};

use super::{CHUNK, SmtpClient, check_line, expect_2xx, is_2xx};
use crate::error::{Error, Stage};

impl SmtpClient {
    /// `MAIL FROM:<from>` and one `RCPT TO:<rcpt>` each, pipelined when the server
    /// advertises PIPELINING. `from` and each recipient are the full path text with
    /// any parameters (`<a@b> BODY=8BITMIME`). A refused MAIL is an error; the
    /// recipients' replies come back in order, accepted or not.
    pub async fn envelope(&mut self, from: &str, rcpts: &[String]) -> Result<Vec<Reply>, Error> {
        if rcpts.is_empty() {
            return Err(Error::Invalid("no recipients".into()));
        }
        let mail = format!("MAIL FROM:{from}");
        let rcpt_lines: Vec<String> = rcpts.iter().map(|r| format!("RCPT TO:{r}")).collect();
        if !self.caps.has("PIPELINING") {
            expect_2xx(Stage::Mail, self.command_at(Stage::Mail, &mail).await?)?;
            let mut replies = Vec::with_capacity(rcpts.len());
            for line in &rcpt_lines {
                replies.push(self.command_at(Stage::Rcpt, line).await?);
            }
            return Ok(replies);
        }
        let mut batch = Vec::new();
        for line in std::iter::once(&mail).chain(&rcpt_lines) {
            check_line(line)?;
            batch.extend_from_slice(line.as_bytes());
            batch.extend_from_slice(b"\r\n");
        }
        self.write_all(Stage::Mail, &batch).await?;
        let mail_reply = self.read_reply(Stage::Mail, self.timeouts.command).await?;
        let mut replies = Vec::with_capacity(rcpts.len());
        for _ in rcpts {
            replies.push(self.read_reply(Stage::Rcpt, self.timeouts.command).await?);
        }
        expect_2xx(Stage::Mail, mail_reply)?;
        Ok(replies)
    }

    /// [`SmtpClient::envelope`] and then DATA. With PIPELINING, DATA goes in the
    /// same group as MAIL and RCPT (RFC 2920 allows it as the last command), which
    /// saves a round trip per message.
    ///
    /// `Ok` with every recipient's reply 2xx means the server answered 354 and
    /// waits for [`SmtpClient::message`]. When a recipient was refused, DATA is not
    /// pending: it was refused too, or, if the server still answered 354, the
    /// connection is marked broken, since closing it is the only way to end DATA
    /// without sending a message. A refused MAIL, or a refused DATA after accepted
    /// recipients, is an error.
    pub async fn envelope_data(
        &mut self,
        from: &str,
        rcpts: &[String],
    ) -> Result<Vec<Reply>, Error> {
        if !self.caps.has("PIPELINING") {
            let replies = self.envelope(from, rcpts).await?;
            if replies.iter().all(is_2xx) {
                self.start_data().await?;
            }
            return Ok(replies);
        }
        if rcpts.is_empty() {
            return Err(Error::Invalid("no recipients".into()));
        }
        let (mail_reply, replies, data_reply) = self.envelope_group(false, from, rcpts).await?;
        let accepted = is_2xx(&mail_reply) && replies.iter().all(is_2xx);
        if data_reply.code == 354 && !accepted {
            // The server waits for a message that must not be sent.
            self.broken = true;
        }
        expect_2xx(Stage::Mail, mail_reply)?;
        if accepted && data_reply.code != 354 {
            return Err(Error::Rejected {
                stage: Stage::Data,
                reply: data_reply,
            });
        }
        Ok(replies)
    }

    /// DATA, then `msg` dot-stuffed with CRLF line ends, then the final dot. Returns
    /// the 2xx reply to the dot.
    pub async fn data(&mut self, msg: &Message) -> Result<Reply, Error> {
        self.start_data().await?;
        self.message(msg).await
    }

    /// After a 354 (from [`SmtpClient::envelope_data`]): `msg` dot-stuffed with CRLF
    /// line ends, then the final dot. Returns the 2xx reply to the dot.
    pub async fn message(&mut self, msg: &Message) -> Result<Reply, Error> {
        for chunk in msg.dot_stuffed_chunks() {
            self.write_all(Stage::Dot, &chunk).await?;
        }
        let reply = self.read_reply(Stage::Dot, self.timeouts.data_end).await?;
        expect_2xx(Stage::Dot, reply)
    }

    /// [`SmtpClient::message`] for the last message of a connection: with
    /// PIPELINING, QUIT goes out in the same write as the final dot (RFC 2920
    /// lets QUIT end a group), and its 221 is not waited for, as Postfix's client
    /// does by default (`smtp_skip_quit_response`). That saves the backend and this
    /// client a write, a read and a round trip per connection. Afterwards the
    /// connection only closes; without PIPELINING this is [`SmtpClient::message`].
    pub async fn message_then_quit(&mut self, msg: &Message) -> Result<Reply, Error> {
        if !self.caps.has("PIPELINING") {
            return self.message(msg).await;
        }
        let mut chunks = msg.dot_stuffed_chunks().peekable();
        while let Some(mut chunk) = chunks.next() {
            if chunks.peek().is_none() {
                chunk.extend_from_slice(b"QUIT\r\n");
            }
            self.write_all(Stage::Dot, &chunk).await?;
        }
        self.quit_sent = true;
        let reply = self.read_reply(Stage::Dot, self.timeouts.data_end).await?;
        expect_2xx(Stage::Dot, reply)
    }

    /// For a client that delivers to whichever recipients are accepted (the
    /// outbound engine): MAIL, every RCPT and DATA, in one group when the server
    /// offers PIPELINING (RFC 2920 lets DATA end it), which saves the round trip of
    /// a separate DATA. Returns every recipient's reply and whether the server
    /// waits for the message (354 with at least one recipient accepted). A server
    /// that answers 354 although no recipient was accepted is left broken (only
    /// closing ends that DATA). A refused MAIL, or a refused DATA after accepted
    /// recipients, is an error.
    pub async fn envelope_then_data(
        &mut self,
        from: &str,
        rcpts: &[String],
    ) -> Result<(Vec<Reply>, bool), Error> {
        self.pipelined_envelope(false, from, rcpts).await
    }

    /// [`SmtpClient::envelope_then_data`] on a reused connection: RSET goes first
    /// in the same group (RFC 2920 lets it), so reuse costs no extra round trip.
    /// A failed RSET is an error at [`Stage::Rset`] and the connection is given
    /// up: nothing can have been accepted for delivery (the message itself is
    /// not sent before the 354 is read), and the caller may use another
    /// connection.
    pub async fn reset_envelope_then_data(
        &mut self,
        from: &str,
        rcpts: &[String],
    ) -> Result<(Vec<Reply>, bool), Error> {
        self.pipelined_envelope(true, from, rcpts).await
    }

    async fn pipelined_envelope(
        &mut self,
        rset: bool,
        from: &str,
        rcpts: &[String],
    ) -> Result<(Vec<Reply>, bool), Error> {
        if !self.caps.has("PIPELINING") {
            if rset {
                self.rset().await?;
            }
            let replies = self.envelope(from, rcpts).await?;
            if !replies.iter().any(is_2xx) {
                return Ok((replies, false));
            }
            self.start_data().await?;
            return Ok((replies, true));
        }
        if rcpts.is_empty() {
            return Err(Error::Invalid("no recipients".into()));
        }
        let (mail_reply, replies, data_reply) = self.envelope_group(rset, from, rcpts).await?;
        let accepted = is_2xx(&mail_reply) && replies.iter().any(is_2xx);
        if data_reply.code == 354 && !accepted {
            // The server waits for a message that must not be sent.
            self.broken = true;
        }
        expect_2xx(Stage::Mail, mail_reply)?;
        match (accepted, data_reply.code == 354) {
            (true, true) => Ok((replies, true)),
            (true, false) => Err(Error::Rejected {
                stage: Stage::Data,
                reply: data_reply,
            }),
            (false, _) => Ok((replies, false)),
        }
    }

    /// Write `[RSET,] MAIL, RCPT..., DATA` as one group; read the replies to
    /// MAIL, to each RCPT and to DATA. A refused RSET is an error and leaves the
    /// connection given up (the rest of the group may or may not be answered).
    async fn envelope_group(
        &mut self,
        rset: bool,
        from: &str,
        rcpts: &[String],
    ) -> Result<(Reply, Vec<Reply>, Reply), Error> {
        let mut batch = Vec::new();
        if rset {
            batch.extend_from_slice(b"RSET\r\n");
        }
        let mail = format!("MAIL FROM:{from}");
        let rcpt_lines = rcpts.iter().map(|r| format!("RCPT TO:{r}"));
        for line in std::iter::once(mail).chain(rcpt_lines) {
            check_line(&line)?;
            batch.extend_from_slice(line.as_bytes());
            batch.extend_from_slice(b"\r\n");
        }
        batch.extend_from_slice(b"DATA\r\n");
        let first = if rset { Stage::Rset } else { Stage::Mail };
        self.write_all(first, &batch).await?;
        if rset {
            let reply = self.read_reply(Stage::Rset, self.timeouts.command).await?;
            if !is_2xx(&reply) {
                self.broken = true;
                return Err(Error::Rejected {
                    stage: Stage::Rset,
                    reply,
                });
            }
        }
        let mail_reply = self.read_reply(Stage::Mail, self.timeouts.command).await?;
        let mut replies = Vec::with_capacity(rcpts.len());
        for _ in rcpts {
            replies.push(self.read_reply(Stage::Rcpt, self.timeouts.command).await?);
        }
        let data_reply = self.read_reply(Stage::Data, self.timeouts.command).await?;
        Ok((mail_reply, replies, data_reply))
    }

    /// After a 354: `message` (a whole message as stored) dot-stuffed with CRLF
    /// line ends, then the final dot. Returns the 2xx reply to the dot.
    pub async fn message_bytes(&mut self, message: &[u8]) -> Result<Reply, Error> {
        let mut enc = DotStuffer::new();
        let first = message.len().min(CHUNK);
        let mut out = Vec::with_capacity(first + first / 32 + 8);
        for piece in message.chunks(CHUNK) {
            enc.push(piece, &mut out);
            if out.len() >= CHUNK {
                self.write_all(Stage::Dot, &out).await?;
                out.clear();
            }
        }
        self.end_data(enc, out).await
    }

    /// Like [`SmtpClient::data`] with the message read from `reader` (e.g. a queue file).
    pub async fn data_from_reader<R: AsyncRead + Unpin>(
        &mut self,
        reader: &mut R,
    ) -> Result<Reply, Error> {
        self.start_data().await?;
        let mut enc = DotStuffer::new();
        let mut inbuf = vec![0u8; CHUNK];
        let mut out = Vec::with_capacity(CHUNK * 2);
        loop {
            let n = reader.read(&mut inbuf).await.map_err(|source| {
                self.broken = true;
                Error::Io {
                    stage: Stage::Dot,
                    source,
                }
            })?;
            if n == 0 {
                break;
            }
            enc.push(&inbuf[..n], &mut out);
            if out.len() >= CHUNK {
                self.write_all(Stage::Dot, &out).await?;
                out.clear();
            }
        }
        self.end_data(enc, out).await
    }

    async fn start_data(&mut self) -> Result<(), Error> {
        let reply = self.command_at(Stage::Data, "DATA").await?;
        if reply.code != 354 {
            return Err(Error::Rejected {
                stage: Stage::Data,
                reply,
            });
        }
        Ok(())
    }

    async fn end_data(&mut self, mut enc: DotStuffer, mut out: Vec<u8>) -> Result<Reply, Error> {
        enc.finish(&mut out);
        self.write_all(Stage::Dot, &out).await?;
        let reply = self.read_reply(Stage::Dot, self.timeouts.data_end).await?;
        expect_2xx(Stage::Dot, reply)
    }
}
