//! The built-in plugins, by the names Haraka users write in `config/plugins`.

use haraka_config::PluginLayout;
use haraka_plugin_api::PluginFactory;

/// `(name, factory, what it does)` for every built-in plugin.
pub const BUILTINS: &[(&str, PluginFactory, &str)] = &[
    (
        "tls",
        haraka_plugin_tls::factory,
        "STARTTLS (rustls), certificates reloaded when they change",
    ),
    (
        "xclient",
        haraka_plugin_xclient::factory,
        "accept XCLIENT from trusted hosts",
    ),
    (
        "rcpt_to.in_host_list",
        haraka_plugin_rcpt_to_in_host_list::factory,
        "accept recipients of the domains in host_list / host_list_regex",
    ),
    (
        "queue/smtp_forward",
        haraka_plugin_queue_smtp_forward::factory,
        "forward every message to a backend SMTP server (with XCLIENT)",
    ),
    (
        "relay",
        haraka_plugin_relay::factory,
        "relaying by IP ACL and destination domains",
    ),
    (
        "limit",
        haraka_plugin_limit::factory,
        "haraka-plugin-limit: connections, recipients, errors and rates per client",
    ),
    (
        "early_talker",
        haraka_plugin_early_talker::factory,
        "refuse clients that talk before the greeting (after a pause)",
    ),
    (
        "queue/file",
        haraka_plugin_queue_file::factory,
        "store each accepted message as a file",
    ),
    (
        "queue/test",
        haraka_plugin_queue_file::factory,
        "alias of queue/file",
    ),
];

/// What the built-in plugins declare to the config layer when a root is opened
/// (their flat-layout markers and plugin-list switches).
pub const LAYOUTS: &[PluginLayout] = &[
    haraka_plugin_xclient::LAYOUT,
    haraka_plugin_rcpt_to_in_host_list::lists::LAYOUT,
    haraka_plugin_relay::config::LAYOUT,
];

/// The factory of the built-in named `name`.
pub fn builtin(name: &str) -> Option<PluginFactory> {
    BUILTINS
        .iter()
        .find(|(n, _, _)| *n == name)
        .map(|(_, f, _)| *f)
}
