//! `haraka-rs -i ROOT`: a working root to start from (Haraka's `haraka -i`).

use std::fs;
use std::io::Write;
use std::path::Path;

use anyhow::Context as _;

const SMTP_INI: &str = "\
; Where to listen: a comma-separated list of host:port ([::0]:25 is Haraka's default).
; Port 2525 needs no root; use [::0]:25 with user/group set to drop privileges.
listen=[::0]:2525

; Seconds of client silence before `421 timeout`.
inactivity_timeout=300

; Seconds sessions may take to finish after SIGTERM/SIGINT.
force_shutdown_timeout=30

[headers]
add_received=true
show_version=true
";

const PLUGINS: &str = "\
# One plugin per line, in the order their hooks run.
# Built-in plugins: haraka-rs -l
# A name that is not built in is loaded from ROOT/plugins/lib<name>.so

# Accept mail for the domains in config/host_list:
rcpt_to.in_host_list

# Store each accepted message as a file under ROOT/queue-file/:
queue/file
";

const LOG_INI: &str = "\
[main]
; data, protocol, debug, info, notice, warn, error, crit, alert, emerg
level=info
timestamps=false
format=default
";

const README: &str = "\
This is a haraka-rs root. Configuration lives in config/ (Haraka's layout):
  config/smtp.ini   listeners and core settings
  config/plugins    the plugin list
  config/host_list  domains to accept mail for
Run it with: haraka-rs -c <this folder>
Check it with: haraka-rs -c <this folder> --check
";

/// Create `root` with `config/`, `plugins/`, `docs/`; never overwrite a file.
pub fn install(root: &Path) -> anyhow::Result<()> {
    let config = root.join("config");
    for dir in [
        root.to_path_buf(),
        config.clone(),
        root.join("plugins"),
        root.join("docs"),
    ] {
        fs::create_dir_all(&dir).with_context(|| format!("cannot create {}", dir.display()))?;
    }
    let host = hostname();
    let key: String = (0..32)
        .map(|_| format!("{:02x}", rand::random::<u8>()))
        .collect();
    let files: [(&Path, String); 7] = [
        (&root.join("README"), README.to_owned()),
        (&config.join("smtp.ini"), SMTP_INI.to_owned()),
        (&config.join("plugins"), PLUGINS.to_owned()),
        (&config.join("log.ini"), LOG_INI.to_owned()),
        (&config.join("me"), format!("{host}\n")),
        (&config.join("host_list"), format!("{host}\n")),
        (&config.join("internalcmd_key"), format!("{key}\n")),
    ];
    for (path, text) in files {
        write_new(path, &text)?;
    }
    Ok(())
}

fn write_new(path: &Path, text: &str) -> anyhow::Result<()> {
    match fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(path)
    {
        Ok(mut f) => f
            .write_all(text.as_bytes())
            .with_context(|| format!("cannot write {}", path.display())),
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Ok(()),
        Err(e) => Err(e).with_context(|| format!("cannot create {}", path.display())),
    }
}

fn hostname() -> String {
    fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .map(|s| s.trim().to_owned())
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| "localhost".to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn creates_and_never_overwrites() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("r");
        install(&root).unwrap();
        assert!(root.join("config/smtp.ini").is_file());
        assert!(root.join("plugins").is_dir());
        fs::write(root.join("config/me"), "mine\n").unwrap();
        install(&root).unwrap();
        assert_eq!(
            fs::read_to_string(root.join("config/me")).unwrap(),
            "mine\n"
        );
        let key = fs::read_to_string(root.join("config/internalcmd_key")).unwrap();
        assert_eq!(key.trim().len(), 64);
    }
}
