//! e2e checks: cdylib plugins in a real server. The example and fixture
//! libraries of `plugins/examples/` are built once per run (`cargo build -p
//! …`), copied into a haraka-in root's `plugins/` folder and named in the
//! `[plugins]` section of its `config` file, exactly as a user installs one
//! (see `docs/writing-plugins.md`).

use std::net::{IpAddr, Ipv4Addr};
use std::path::PathBuf;
use std::process::Command;
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use anyhow::{Context, anyhow, bail, ensure};

use super::{Check, Env, HarakaRs, RawSmtp, Swaks, net};
use crate::util;

/// How long a forwarded message may take to reach the backend's Maildir.
const DELIVERY: Duration = Duration::from_secs(20);

/// The plugin libraries used here: `[lib] name` and package.
const LIBRARIES: &[(&str, &str)] = &[
    ("rcpt_allow", "haraka-example-rcpt-allow"),
    ("body_stamp", "haraka-example-body-stamp"),
    ("fixture_wrong_major", "haraka-fixture-wrong-major"),
    ("fixture_short_vtable", "haraka-fixture-short-vtable"),
    ("fixture_no_entry", "haraka-fixture-no-entry"),
    ("fixture_panics", "haraka-fixture-panics"),
    ("fixture_never_completes", "haraka-fixture-never-completes"),
    ("fixture_completes_twice", "haraka-fixture-completes-twice"),
];

/// The plugin checks, in the order they run.
pub const CHECKS: &[Check] = &[
    (
        "plugins: rcpt_allow and body_stamp cdylibs change replies and the delivered message",
        examples_on_the_wire,
    ),
    (
        "plugins: unusable libraries stop --check and the start, naming the file and the problem",
        unusable_libraries,
    ),
    (
        "plugins: a panicking plugin gives a 4xx and the server keeps serving",
        panicking_plugin,
    ),
    (
        "plugins: a never-completing plugin gets its <name>.timeout 4xx",
        never_completing_plugin,
    ),
    (
        "plugins: a plugin answering twice or late: the first answer counts",
        completes_twice_plugin,
    ),
];

fn ip(a: Ipv4Addr) -> IpAddr {
    IpAddr::V4(a)
}

/// The folder the plugin libraries are built into (`target/debug`), after
/// building them once per run.
fn library_dir() -> anyhow::Result<PathBuf> {
    static BUILT: OnceLock<Result<PathBuf, String>> = OnceLock::new();
    BUILT
        .get_or_init(|| {
            let mut args = vec!["build"];
            for (_, package) in LIBRARIES {
                args.extend(["-p", package]);
            }
            util::cargo(&args).map_err(|e| format!("{e:#}"))?;
            let target = std::env::var_os("CARGO_TARGET_DIR")
                .map_or_else(|| util::root().join("target"), PathBuf::from);
            Ok(target.join("debug"))
        })
        .clone()
        .map_err(|e| anyhow!("building the plugin libraries: {e}"))
}

/// `lib<name>.so`.
fn file_name(lib: &str) -> String {
    format!(
        "{}{lib}{}",
        std::env::consts::DLL_PREFIX,
        std::env::consts::DLL_SUFFIX
    )
}

/// A copy of the example haraka-in as `plugins-<tag>`, with `libs` listed first in its `[plugins]` section (before
/// `rcpt_to.in_host_list`, which would otherwise accept local recipients
/// first) and, those built here, copied into its `plugins/` folder. `files`
/// are written into the root as (relative path, text).
fn plugin_root(env: &Env, tag: &str, libs: &[&str], files: Files<'_>) -> anyhow::Result<PathBuf> {
    let mut list = String::from("[plugins]\n");
    for lib in libs {
        list.push_str(lib);
        list.push('\n');
    }
    let rules = vec![("[plugins]\n".to_owned(), list)];
    let root = env.root("haraka-in", &format!("plugins-{tag}"), &rules)?;
    let built = library_dir()?;
    for lib in libs {
        if !LIBRARIES.iter().any(|(l, _)| l == lib) {
            continue;
        }
        let from = built.join(file_name(lib));
        let to = root.join("plugins").join(file_name(lib));
        std::fs::copy(&from, &to)
            .with_context(|| format!("copying {} to {}", from.display(), to.display()))?;
    }
    for (rel, text) in files {
        let path = root.join(rel);
        std::fs::write(&path, text).with_context(|| format!("writing {}", path.display()))?;
    }
    Ok(root)
}

/// Run `body`; a failure gets the end of haraka-rs's log appended.
fn with_log<T>(haraka: &HarakaRs, body: impl FnOnce() -> anyhow::Result<T>) -> anyhow::Result<T> {
    body().map_err(|e| anyhow!("{e:#}\n--- haraka-rs log ends:\n{}", haraka.log_tail()))
}

/// A swaks session to haraka-in from `client`.
fn to_haraka(client: Ipv4Addr, rcpt: &str) -> Swaks {
    Swaks::new(net::HARAKA_IN.into(), rcpt).source_ip(ip(client))
}

/// rcpt_allow answers RCPT before rcpt_to.in_host_list (a local recipient
/// it does not list is refused with its own text, where haraka-in alone
/// accepts), and body_stamp's header arrives in the message Postfix
/// delivers; a configured phrase is refused after the dot.
fn examples_on_the_wire(env: &Env) -> anyhow::Result<()> {
    let root = plugin_root(
        env,
        "examples",
        &["rcpt_allow", "body_stamp"],
        &[
            (
                "plugins/rcpt_allow.ini",
                "[main]\nmessage=rcpt_allow does not list {rcpt}\n\
                 [recipients]\nalice@example.com\n",
            ),
            (
                "plugins/body_stamp.ini",
                "[main]\nheader=X-Body-Stamp\n[reject]\nphrase[]=wire the money\n",
            ),
        ],
    )?;
    let haraka = env.haraka(&root, net::HARAKA_IN.into())?;
    with_log(&haraka, || {
        let id = env.unique("plugin-stamp");
        let tr = to_haraka(net::CLIENTS[0], "alice@example.com")
            .header("X-Body-Stamp: forged by the client")
            .body("first line\nsecond line")
            .id(&id)
            .run()?;
        tr.expect("RCPT TO", "250")?;
        tr.expect(".", "250")?;
        let msg = env.backend.wait_for_id(&id, DELIVERY)?;
        // Postfix stores LF line ends; haraka-rs saw CRLF.
        let lines = msg.body().matches('\n').count();
        let want = format!("lines={lines}; bytes={}", msg.body().len() + lines);
        let stamps = msg.header_all("X-Body-Stamp");
        ensure!(
            stamps == [want.clone()],
            "expected body_stamp's one {want:?} in the delivered message, found {stamps:?}:\n{}",
            msg.raw
        );

        let tr = to_haraka(net::CLIENTS[1], "bob@example.com")
            .quit_after("RCPT")
            .run()?;
        let reply = tr.expect("RCPT TO", "550")?;
        ensure!(
            reply == "550 rcpt_allow does not list <bob@example.com>",
            "not rcpt_allow's reply: {reply:?}\n{}",
            tr.excerpt()
        );

        let tr = to_haraka(net::CLIENTS[2], "alice@example.com")
            .body("please wire the money today")
            .run()?;
        let reply = tr.expect(".", "550")?;
        ensure!(
            reply.contains("Message content rejected"),
            "not body_stamp's reply: {reply:?}\n{}",
            tr.excerpt()
        );
        Ok(())
    })
}

/// Files written into a root: (relative path, text).
type Files<'a> = &'a [(&'a str, &'a str)];

/// Each library that cannot be used makes `--check` fail, and the server
/// refuse to start, with an error naming the library file and the problem.
fn unusable_libraries(env: &Env) -> anyhow::Result<()> {
    // (plugin, files to write, what the error names, the problem it states)
    let table: [(&str, Files<'_>, &str, &str); 5] = [
        (
            "fixture_wrong_major",
            &[],
            "plugins/libfixture_wrong_major.so",
            "built for plugin ABI v2, this server speaks v1",
        ),
        (
            "fixture_short_vtable",
            &[],
            "plugins/libfixture_short_vtable.so",
            "plugin vtable is 24 bytes",
        ),
        (
            "fixture_no_entry",
            &[],
            "plugins/libfixture_no_entry.so",
            "not a haraka-rs plugin library",
        ),
        (
            "fixture_panics",
            &[("plugins/fixture_panics.ini", "panic_in_create=true\n")],
            "plugins/libfixture_panics.so",
            "plugin fixture_panics failed to start",
        ),
        // listed, but no library installed
        ("no_such_plugin", &[], "plugins", "no shared library for it"),
    ];
    let bin = env.haraka_bin()?;
    for (name, files, named, problem) in table {
        let root = plugin_root(env, name, &[name], files)?;
        let file = root.join(named).display().to_string();
        let out = Command::new(bin)
            .arg("-c")
            .arg(&root)
            .arg("--check")
            .output()
            .with_context(|| format!("running {} --check", bin.display()))?;
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        ensure!(!out.status.success(), "--check accepted {name}:\n{text}");
        let said = text
            .lines()
            .any(|l| l.contains(&file) && l.contains(problem));
        ensure!(said, "--check did not say \"{file}: … {problem}\":\n{text}");
        match HarakaRs::start(bin, &root, net::HARAKA_IN.into(), &[]) {
            Ok(mut h) => {
                let log = h.log_tail();
                let _ = h.kill9();
                bail!("haraka-rs started with {name}; log ends:\n{log}");
            }
            Err(e) => {
                let why = format!("{e:#}");
                ensure!(
                    why.contains("before listening")
                        && why.contains(&file)
                        && why.contains(problem),
                    "haraka-rs did not refuse to start naming {file} and {problem:?}: {why}"
                );
            }
        }
    }
    Ok(())
}

/// The panic fixture panics at `rcpt`: the client gets a 4xx, and the next
/// session is served as usual (its `helo` and `mail` answered, and the same
/// plugin's next panic again a 4xx, not a dead server).
fn panicking_plugin(env: &Env) -> anyhow::Result<()> {
    let root = plugin_root(env, "panics", &["fixture_panics"], &[])?;
    let haraka = env.haraka(&root, net::HARAKA_IN.into())?;
    with_log(&haraka, || {
        let tr = to_haraka(net::CLIENTS[0], "carol@example.com").run()?;
        let reply = tr.expect("RCPT TO", "4")?;
        ensure!(
            reply.contains("plugin error"),
            "the panic's 4xx does not say \"plugin error\": {reply:?}\n{}",
            tr.excerpt()
        );
        haraka.wait_log(0, "panic", Duration::from_secs(5))?;

        let (mut c, greeting) = RawSmtp::connect(net::CLIENTS[1], net::HARAKA_IN)?;
        ensure!(greeting.code == 220, "greeting {greeting:?}");
        let steps = [
            ("HELO again.origin.test", 250, None),
            ("MAIL FROM:<sender@sender.test>", 250, None),
            ("RCPT TO:<carol@example.com>", 4, Some("plugin error")),
            ("QUIT", 221, None),
        ];
        for (cmd, code, text) in steps {
            let r = c.cmd(cmd)?;
            let code_ok = if code < 10 {
                r.code / 100 == code
            } else {
                r.code == code
            };
            ensure!(
                code_ok && text.is_none_or(|t| r.text().contains(t)),
                "after the panic, {cmd} was answered {:?}:\n{}",
                r.text(),
                c.transcript()
            );
        }
        Ok(())
    })
}

/// The never-completing fixture with `fixture_never_completes.timeout` = 1:
/// the server answers RCPT with its timeout 4xx after about a second, and the
/// session goes on.
fn never_completing_plugin(env: &Env) -> anyhow::Result<()> {
    let root = plugin_root(
        env,
        "never-completes",
        &["fixture_never_completes"],
        &[("fixture_never_completes.timeout", "1\n")],
    )?;
    let haraka = env.haraka(&root, net::HARAKA_IN.into())?;
    with_log(&haraka, || {
        let (mut c, _) = RawSmtp::connect(net::CLIENTS[2], net::HARAKA_IN)?;
        c.cmd("EHLO waiting.origin.test")?;
        c.cmd("MAIL FROM:<sender@sender.test>")?;
        let t = Instant::now();
        let r = c.cmd("RCPT TO:<dave@example.com>")?;
        let took = t.elapsed();
        ensure!(
            r.code / 100 == 4 && r.text().contains("plugin timeout"),
            "RCPT was not answered with the timeout's 4xx:\n{}",
            c.transcript()
        );
        ensure!(
            took >= Duration::from_millis(900) && took < Duration::from_secs(10),
            "the timeout's 4xx came after {took:?}, not after the configured 1 s"
        );
        let q = c.cmd("QUIT")?;
        ensure!(q.code == 221, "QUIT after the timeout:\n{}", c.transcript());
        println!("     {} after {:.1}s", r.text(), took.as_secs_f64());
        Ok(())
    })
}

/// The fixture that answers `rcpt` twice (DENY, then OK) and `helo` only
/// after its timeout: the first answer is the reply, the late one is
/// ignored, and the server goes on serving.
fn completes_twice_plugin(env: &Env) -> anyhow::Result<()> {
    let root = plugin_root(
        env,
        "completes-twice",
        &["fixture_completes_twice"],
        &[("fixture_completes_twice.timeout", "1\n")],
    )?;
    let haraka = env.haraka(&root, net::HARAKA_IN.into())?;
    with_log(&haraka, || {
        let (mut c, _) = RawSmtp::connect(net::CLIENTS[0], net::HARAKA_IN)?;
        let helo = c.cmd("HELO late.origin.test")?;
        ensure!(
            helo.code / 100 == 4 && helo.text().contains("plugin timeout"),
            "HELO was not answered with the timeout's 4xx:\n{}",
            c.transcript()
        );
        let steps = [
            ("EHLO late.origin.test", 250, None),
            ("MAIL FROM:<sender@sender.test>", 250, None),
            ("RCPT TO:<erin@example.com>", 550, Some("first answer")),
            ("QUIT", 221, None),
        ];
        for (cmd, code, text) in steps {
            let r = c.cmd(cmd)?;
            ensure!(
                r.code == code && text.is_none_or(|t| r.text().contains(t)),
                "{cmd} was answered {:?}:\n{}",
                r.text(),
                c.transcript()
            );
        }
        // The server is still there for the next client.
        let tr = to_haraka(net::CLIENTS[1], "erin@example.com")
            .quit_after("MAIL")
            .run()?;
        tr.expect("MAIL FROM", "250")?;
        Ok(())
    })
}
