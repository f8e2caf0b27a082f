//! `--check`, `-o` and running the server.

use std::path::Path;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use haraka_plugin_api::Hook;
use haraka_server::{ConnCaps, Rdns, Server, ServerContext, privs, shutdown_channel};

use crate::app::{self, App};

/// Set up logging: `RUST_LOG` wins, else `log.ini` level, else info.
pub fn init_logging(level: Option<&str>) {
    let filter = std::env::var("RUST_LOG")
        .ok()
        .or_else(|| level.map(str::to_owned))
        .unwrap_or_else(|| "info".to_owned());
    let _ = tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::new(filter))
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .try_init();
}

/// Validate a root: print what was used and every error; non-zero on errors.
pub fn check(root: &Path) -> ExitCode {
    init_logging(Some("warn"));
    match app::load(root) {
        Ok(app) => {
            println!("config: {}", app.config.config_dir().display());
            for alias in app.config.aliases_used() {
                println!("{alias}");
            }
            println!(
                "plugins: {}",
                app.pipeline
                    .plugins()
                    .iter()
                    .map(|p| p.name().to_owned())
                    .collect::<Vec<_>>()
                    .join(", ")
            );
            let listen: Vec<String> = app
                .settings
                .listen
                .iter()
                .map(ToString::to_string)
                .collect();
            println!("listen: {}", listen.join(", "));
            println!(
                "log level: {}",
                app.settings.log_level.unwrap_or("info (default)")
            );
            // What `serve` would run with: the default cap follows the open-file
            // limit after raising it, as at start.
            println!("{}", limits_line(&app, &conn_caps(&app, nofile_limit())));
            for w in &app.warnings {
                println!("warning: {w}");
            }
            for file in app.config.unread_files() {
                println!(
                    "warning: {} is present but nothing reads it",
                    file.display()
                );
            }
            println!("OK");
            ExitCode::SUCCESS
        }
        Err(errors) => {
            for e in &errors {
                println!("error: {e}");
            }
            println!("{} error(s)", errors.len());
            ExitCode::FAILURE
        }
    }
}

/// Print the plugin order per hook (`haraka -o`).
pub fn order(root: &Path) -> anyhow::Result<ExitCode> {
    init_logging(Some("warn"));
    let app = load_or_report(root)?;
    println!("{:<22} {:<28} {:>5} {:>6}", "Hook", "Plugin", "Prio", "T/O");
    for hook in Hook::ALL {
        for (name, prio) in app.pipeline.order(hook) {
            let timeout = app
                .config
                .plugin_timeout(&name)
                .map_or("-".to_owned(), |d| format!("{}s", d.as_secs_f64()));
            println!(
                "{:<22} {:<28} {:>5} {:>6}",
                hook.name(),
                name,
                prio,
                timeout
            );
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn load_or_report(root: &Path) -> anyhow::Result<App> {
    app::load(root).map_err(|errors| {
        anyhow::anyhow!(
            "{} error(s) in {}:\n{}",
            errors.len(),
            root.display(),
            errors.join("\n")
        )
    })
}

/// Run the server until SIGTERM/SIGINT.
pub fn serve(root: &Path) -> anyhow::Result<ExitCode> {
    let level = haraka_config::ConfigDir::open_with(root, crate::registry::LAYOUTS)
        .ok()
        .and_then(|c| crate::settings::log_level(&c));
    init_logging(level);
    // Each compatibility alias is logged by the config layer when it is used.
    let app = load_or_report(root)?;
    for file in app.config.unread_files() {
        tracing::warn!("{} is present but nothing reads it", file.display());
    }
    if app.settings.daemonize {
        tracing::warn!("daemonize is ignored: run haraka-rs under a service manager instead");
    }
    // Before the default connection cap is derived from it.
    let caps = conn_caps(&app, nofile_limit());
    tracing::info!("{}", limits_line(&app, &caps));
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    runtime.block_on(serve_async(app, caps))?;
    Ok(ExitCode::SUCCESS)
}

/// Raise the soft open-file limit to the hard limit; the limit then in force
/// (`None`: unreadable).
fn nofile_limit() -> Option<u64> {
    match haraka_server::raise_nofile_limit() {
        Ok(n) => {
            tracing::info!("open-file limit: {n}");
            Some(n)
        }
        Err(e) => {
            tracing::warn!("cannot read the open-file limit: {e}");
            None
        }
    }
}

/// The connection caps in force: as configured, `max_connections` else derived
/// from the open-file limit `nofile`.
fn conn_caps(app: &App, nofile: Option<u64>) -> ConnCaps {
    ConnCaps {
        max_connections: app.settings.max_connections.unwrap_or_else(|| {
            // An unreadable limit: Linux's usual soft limit.
            ConnCaps::default_max_connections(nofile.unwrap_or(1024))
        }),
        max_connections_per_ip: app.settings.max_connections_per_ip,
    }
}

/// The limits in force, one line, as `serve` logs them and `--check` prints them.
fn limits_line(app: &App, caps: &ConnCaps) -> String {
    format!(
        "limits: max_connections={} max_connections_per_ip={} message_memory_budget={} (0 = unlimited)",
        caps.max_connections,
        caps.max_connections_per_ip,
        app.settings.session.message_budget.limit()
    )
}

async fn serve_async(app: App, caps: ConnCaps) -> anyhow::Result<()> {
    let outbound = crate::queue_cli::start_outbound(&app).await?;
    let implicit_tls = implicit_tls(&app)?;
    let ctx = Arc::new(ServerContext {
        pipeline: app.pipeline.clone(),
        session: app.settings.session.clone(),
        tls_handshake_timeout: Duration::from_secs(29),
        write_timeout: app.settings.write_timeout,
        caps,
        outbound: outbound.as_ref().map(|o| o.queue()),
        rdns: Rdns::system(app.settings.rdns_timeout),
        implicit_tls,
        env: Arc::new(haraka_server::SystemEnv),
    });
    let server = Server::bind(&app.settings.listen, ctx).await?;
    privs::drop_privileges(app.settings.user.as_deref(), app.settings.group.as_deref())?;
    let (handle, rx) = shutdown_channel();
    tokio::spawn(signals(handle, outbound.clone()));
    tracing::info!("haraka-rs {} ready", env!("CARGO_PKG_VERSION"));
    server.run(rx, app.settings.force_shutdown_timeout).await;
    if let Some(o) = outbound {
        o.shutdown().await;
    }
    tracing::info!("stopped");
    Ok(())
}

/// SMTPS on `smtps_port` (465) when a listener uses it, as Haraka does even without
/// the tls plugin; it needs the certificate of `tls.ini`.
fn implicit_tls(app: &App) -> anyhow::Result<Option<haraka_server::ImplicitTls>> {
    let port = app.settings.smtps_port;
    if !app.settings.listen.iter().any(|a| a.port() == port) {
        return Ok(None);
    }
    let tls = haraka_tls::InboundTls::load(&app.config)
        .with_context(|| format!("port {port} is smtps_port (implicit TLS)"))?;
    let config = tls.server_config(port).ok_or_else(|| {
        anyhow::anyhow!("port {port} is smtps_port (implicit TLS) but tls.ini names no usable key and certificate")
    })?;
    Ok(Some(haraka_server::ImplicitTls { port, config }))
}

async fn signals(
    handle: haraka_server::ShutdownHandle,
    outbound: Option<crate::queue_cli::OutboundHandle>,
) {
    use tokio::signal::unix::{SignalKind, signal};
    let (Ok(mut term), Ok(mut int), Ok(mut hup)) = (
        signal(SignalKind::terminate()),
        signal(SignalKind::interrupt()),
        signal(SignalKind::hangup()),
    ) else {
        tracing::error!("cannot install signal handlers");
        return;
    };
    loop {
        tokio::select! {
            _ = term.recv() => break,
            _ = int.recv() => break,
            _ = hup.recv() => {
                tracing::info!("SIGHUP: retrying deferred outbound mail now");
                if let Some(o) = &outbound {
                    o.retry_now();
                }
            }
        }
    }
    tracing::info!("shutdown requested");
    handle.shutdown();
}
