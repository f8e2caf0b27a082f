//! The MAIL FROM parameters that travel with a message to the next hop: `SMTPUTF8`
//! (RFC 6531) and `BODY=8BITMIME` (RFC 6152), as the sender gave them. smtp_forward
//! and outbound delivery both build their MAIL FROM argument here.

use haraka_smtp::client::Capabilities;

/// What the sender asked for in MAIL FROM that the next hop must be told.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct MailParams {
    /// `SMTPUTF8`: addresses or header fields may carry UTF-8.
    pub smtputf8: bool,
    /// `BODY=8BITMIME`.
    pub eight_bit: bool,
}

/// The message needs SMTPUTF8 and the server does not offer it: RFC 6531 3.4 forbids
/// sending it anyway. What the sender is told is the caller's decision.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("SMTPUTF8 is required, but was not offered by the host")]
pub struct Smtputf8NotOffered;

impl MailParams {
    /// From the parameters of a MAIL command (keys and values in any case).
    pub fn from_args(args: &[(String, Option<String>)]) -> MailParams {
        let mut p = MailParams::default();
        for (key, value) in args {
            if key.eq_ignore_ascii_case("SMTPUTF8") {
                p.smtputf8 = true;
            } else if key.eq_ignore_ascii_case("BODY") {
                p.eight_bit = value
                    .as_deref()
                    .is_some_and(|v| v.eq_ignore_ascii_case("8BITMIME"));
            }
        }
        p
    }

    /// Whether the envelope needs SMTPUTF8: the sender asked for it, or a path (as
    /// it will be sent, domains already punycoded) is not ASCII.
    pub fn needs_smtputf8(self, from: &str, rcpts: &[String]) -> bool {
        self.smtputf8 || !from.is_ascii() || rcpts.iter().any(|r| !r.is_ascii())
    }

    /// MAIL FROM's argument: the path `from`, then ` SMTPUTF8` when the envelope
    /// needs it, then ` BODY=8BITMIME` when the sender gave it and the server offers
    /// it (without 8BITMIME at the server the message goes without
    /// `BODY=`, as Haraka sends every message). Nothing is added for a plain message, so `from` comes
    /// back as it was, without allocating.
    pub fn mail_from(
        self,
        mut from: String,
        rcpts: &[String],
        caps: &Capabilities,
    ) -> Result<String, Smtputf8NotOffered> {
        if self.needs_smtputf8(&from, rcpts) {
            if !caps.has("SMTPUTF8") {
                return Err(Smtputf8NotOffered);
            }
            from.push_str(" SMTPUTF8");
        }
        if self.eight_bit && caps.has("8BITMIME") {
            from.push_str(" BODY=8BITMIME");
        }
        Ok(from)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, reason = "a failed unwrap is a failed test")]
mod tests {
    use super::*;
    use haraka_smtp::Reply;

    fn caps(keywords: &[&str]) -> Capabilities {
        let mut lines = vec!["mx.test".to_owned()];
        lines.extend(keywords.iter().map(|k| (*k).to_owned()));
        Capabilities::from_reply(&Reply { code: 250, lines })
    }

    type Args<'a> = &'a [(&'a str, Option<&'a str>)];
    /// Parameters, path, recipients, capabilities, the argument (`None`: refused).
    type Case<'a> = (
        MailParams,
        &'a str,
        &'a [String],
        &'a Capabilities,
        Option<&'a str>,
    );

    fn args(list: Args<'_>) -> Vec<(String, Option<String>)> {
        list.iter()
            .map(|(k, v)| ((*k).to_owned(), v.map(str::to_owned)))
            .collect()
    }

    #[test]
    fn from_args() {
        let table: &[(Args<'_>, MailParams)] = &[
            (&[], MailParams::default()),
            (&[("SIZE", Some("10"))], MailParams::default()),
            (
                &[("smtputf8", None), ("body", Some("8bitmime"))],
                MailParams {
                    smtputf8: true,
                    eight_bit: true,
                },
            ),
            (&[("BODY", Some("7BIT"))], MailParams::default()),
            (&[("BODY", None)], MailParams::default()),
        ];
        for (given, want) in table {
            assert_eq!(MailParams::from_args(&args(given)), *want, "{given:?}");
        }
    }

    #[test]
    fn mail_from_argument() {
        let both = MailParams {
            smtputf8: true,
            eight_bit: true,
        };
        let plain = MailParams::default();
        let ascii = ["<r@x.test>".to_owned()];
        let utf8_rcpt = ["<jörg@x.test>".to_owned()];
        let all = caps(&["SMTPUTF8", "8BITMIME"]);
        let none = caps(&["PIPELINING"]);
        let table: &[Case<'_>] = &[
            (plain, "<a@b.test>", &ascii, &all, Some("<a@b.test>")),
            (plain, "<a@b.test>", &ascii, &none, Some("<a@b.test>")),
            (
                both,
                "<a@b.test>",
                &ascii,
                &all,
                Some("<a@b.test> SMTPUTF8 BODY=8BITMIME"),
            ),
            (both, "<a@b.test>", &ascii, &none, None),
            (
                MailParams {
                    smtputf8: false,
                    eight_bit: true,
                },
                "<>",
                &ascii,
                &none,
                Some("<>"),
            ),
            (plain, "<jörg@b.test>", &ascii, &none, None),
            (
                plain,
                "<jörg@b.test>",
                &ascii,
                &all,
                Some("<jörg@b.test> SMTPUTF8"),
            ),
            (plain, "<a@b.test>", &utf8_rcpt, &none, None),
        ];
        for (p, from, rcpts, caps, want) in table {
            let got = p.mail_from((*from).to_owned(), rcpts, caps).ok();
            assert_eq!(got.as_deref(), *want, "{p:?} {from} {rcpts:?}");
        }
    }
}
