//! Haraka's command line, as far as it makes sense for haraka-rs.

use std::path::PathBuf;

/// What the user asked for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command {
    /// Run the server on a root.
    Run {
        root: PathBuf,
    },
    /// Validate a root and exit.
    Check {
        root: PathBuf,
    },
    /// Create a working skeleton root.
    Install {
        root: PathBuf,
    },
    /// List built-in plugins (and cdylibs in ROOT/plugins with `-c`).
    List {
        root: Option<PathBuf>,
    },
    /// Print the hook order of a root.
    Order {
        root: PathBuf,
    },
    /// Queue tools.
    QList {
        root: PathBuf,
    },
    QStat {
        root: PathBuf,
    },
    QEmpty {
        root: PathBuf,
    },
    QRetry {
        root: PathBuf,
    },
    QShow {
        root: PathBuf,
        id: String,
    },
    Version,
    Help,
}

pub const USAGE: &str = "\
haraka-rs: a Haraka-compatible mail transfer agent

Usage:
  haraka-rs -c ROOT             run the server with the Haraka root ROOT
  haraka-rs -c ROOT --check     validate ROOT, list every error, exit non-zero on errors
  haraka-rs -i ROOT             create a working skeleton root
  haraka-rs -l [-c ROOT]        list built-in plugins (and cdylib plugins in ROOT/plugins)
  haraka-rs -o -c ROOT          print the plugin order for every hook
  haraka-rs -c ROOT --qlist     list queued outbound messages
  haraka-rs -c ROOT --qstat     count queued outbound messages
  haraka-rs -c ROOT --qempty    delete every queued outbound message
  haraka-rs -c ROOT --qretry    make every queued message due now (a running server: send SIGHUP)
  haraka-rs -c ROOT --qshow ID  print one queued message with its envelope
  haraka-rs -v | --version      print the version
  haraka-rs -h | --help         this text

ROOT may be a real Haraka root (ROOT/config/smtp.ini, ROOT/config/plugins, ...) or the
flat layout of a config folder (ROOT/smtp.ini, ROOT/config with [server]/[plugins]).
Logging: RUST_LOG (e.g. RUST_LOG=debug) overrides log.ini.
";

/// Parse the arguments (without the program name).
pub fn parse(args: &[String]) -> Result<Command, String> {
    let mut root: Option<PathBuf> = None;
    let mut install: Option<PathBuf> = None;
    let mut flags: Vec<&str> = Vec::new();
    let mut qshow: Option<String> = None;
    let mut it = args.iter();
    while let Some(arg) = it.next() {
        match arg.as_str() {
            "-c" | "--configs" => root = Some(path_arg(&mut it, arg)?),
            "-i" | "--install" => install = Some(path_arg(&mut it, arg)?),
            "--qshow" => {
                qshow = Some(it.next().cloned().ok_or("--qshow needs a message id")?);
                flags.push("--qshow");
            }
            a if a.starts_with("--configs=") => root = Some(PathBuf::from(&a[10..])),
            "-v" | "--version" | "-l" | "--list" | "-o" | "--order" | "-h" | "--help"
            | "--check" | "--qlist" | "--qstat" | "--qempty" | "--qretry" => flags.push(arg),
            other => return Err(format!("Undefined or erroneous argument: {other}")),
        }
    }
    let has = |f: &[&str]| flags.iter().any(|x| f.contains(x));
    if has(&["-v", "--version"]) {
        return Ok(Command::Version);
    }
    if has(&["-h", "--help"]) {
        return Ok(Command::Help);
    }
    if has(&["-l", "--list"]) {
        return Ok(Command::List { root });
    }
    if let Some(root) = install {
        return Ok(Command::Install { root });
    }
    let Some(root) = root else {
        return Err("Undefined or erroneous arguments: -c ROOT is required".to_owned());
    };
    Ok(if has(&["-o", "--order"]) {
        Command::Order { root }
    } else if has(&["--check"]) {
        Command::Check { root }
    } else if has(&["--qlist"]) {
        Command::QList { root }
    } else if has(&["--qstat"]) {
        Command::QStat { root }
    } else if has(&["--qempty"]) {
        Command::QEmpty { root }
    } else if has(&["--qretry"]) {
        Command::QRetry { root }
    } else if let Some(id) = qshow {
        Command::QShow { root, id }
    } else {
        Command::Run { root }
    })
}

fn path_arg(it: &mut std::slice::Iter<'_, String>, flag: &str) -> Result<PathBuf, String> {
    it.next()
        .map(PathBuf::from)
        .ok_or_else(|| format!("{flag} needs a directory"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(args: &[&str]) -> Result<Command, String> {
        parse(&args.iter().map(|s| s.to_string()).collect::<Vec<_>>())
    }

    #[test]
    fn table() {
        let r = || PathBuf::from("/r");
        assert_eq!(p(&["-c", "/r"]), Ok(Command::Run { root: r() }));
        assert_eq!(
            p(&["--check", "-c", "/r"]),
            Ok(Command::Check { root: r() })
        );
        assert_eq!(p(&["-c", "/r", "-o"]), Ok(Command::Order { root: r() }));
        assert_eq!(p(&["-i", "/r"]), Ok(Command::Install { root: r() }));
        assert_eq!(p(&["-l"]), Ok(Command::List { root: None }));
        assert_eq!(p(&["--version"]), Ok(Command::Version));
        assert_eq!(
            p(&["-c", "/r", "--qstat"]),
            Ok(Command::QStat { root: r() })
        );
        assert_eq!(
            p(&["-c", "/r", "--qshow", "X.1"]),
            Ok(Command::QShow {
                root: r(),
                id: "X.1".into()
            })
        );
        assert!(p(&[]).is_err());
        assert!(p(&["-c"]).is_err());
        assert!(p(&["--bogus"]).is_err());
    }
}
