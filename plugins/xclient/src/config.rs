//! The files xclient declares to the config layer.

use haraka_config::{ConfigDir, Ini, IniSpec, ListSpec, PluginLayout, PluginSwitch};

/// The list file of extra trusted clients.
pub const HOSTS_FILE: &str = "xclient.hosts";

/// `xclient.hosts`, over Haraka's shipped `127.0.0.1`.
pub const HOSTS: ListSpec = ListSpec {
    name: HOSTS_FILE,
    shipped: &["127.0.0.1"],
    shipped_in_flat: true,
    alias: None,
};

/// The flat layout's `xclient.ini` (no Haraka file has this name): `enabled`
/// (default true) and, for queue/smtp_forward, `forward` and `destination`.
pub const XCLIENT_INI: IniSpec = IniSpec {
    name: "xclient.ini",
    booleans: &["+main.enabled", "+main.forward"],
    shipped: None,
    fixup: Some(known_keys),
};

/// `xclient.hosts` in `ROOT` marks the flat layout; `xclient.ini` `enabled=false`
/// takes xclient off the plugin list (a compatibility alias).
pub const LAYOUT: PluginLayout = PluginLayout {
    flat_markers: &[HOSTS_FILE],
    switch: Some(PluginSwitch {
        plugin: "xclient",
        ini: &XCLIENT_INI,
        key: "enabled",
    }),
};

fn known_keys(_: &ConfigDir, ini: &mut Ini) {
    ini.warn_unknown(&[("main", &["enabled", "forward", "destination"])], false);
}
