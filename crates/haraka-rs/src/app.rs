//! Loading a root: config, plugins and the hook pipeline, with every error collected.

use std::path::Path;
use std::sync::Arc;

use haraka_config::{ConfigDir, Diag};
use haraka_plugin_api::{Plugin, PluginInit};
use haraka_server::{LoadedPlugin, Pipeline};

use crate::registry;
use crate::settings::{self, Settings};

/// A loaded root, ready to serve.
pub struct App {
    pub config: ConfigDir,
    pub settings: Settings,
    pub pipeline: Pipeline,
    /// Problems that do not stop start-up (the outbound engine logs its own when it starts).
    pub warnings: Vec<String>,
}

/// Load `root`; on failure every problem found is returned, each naming its file
/// (and line where there is one).
pub fn load(root: &Path) -> Result<App, Vec<String>> {
    let config = ConfigDir::open_with(root, registry::LAYOUTS).map_err(|e| diags(&e.0))?;
    let mut errors: Vec<String> = Vec::new();
    let settings = match settings::load(&config) {
        Ok(s) => Some(s),
        Err(e) => {
            errors.extend(diags(&e.0));
            None
        }
    };
    // The outbound engine reads these when it starts; validate them now so that
    // --check reports their errors too.
    let mut warnings = Vec::new();
    if let Some(s) = &settings {
        match haraka_outbound::OutboundConfig::load(&config, &s.session.me) {
            Ok((_, w)) => warnings.extend(diags(&w)),
            Err(e) => errors.extend(diags(&e.0)),
        }
        let _ = haraka_outbound::BounceTemplates::load(&config);
    }
    let entries = match config.plugins() {
        Ok(e) => e,
        Err(e) => {
            errors.extend(diags(&e.0));
            Vec::new()
        }
    };
    let mut plugins = Vec::new();
    for entry in &entries {
        match create_plugin(&entry.name, &config) {
            Ok(plugin) => plugins.push(plugin),
            Err(msg) => errors.push(
                Diag {
                    file: entry.file.clone(),
                    line: entry.line,
                    message: format!("plugin '{}': {msg}", entry.name),
                }
                .to_string(),
            ),
        }
    }
    match settings {
        Some(settings) if errors.is_empty() => {
            let loaded = plugins
                .into_iter()
                .map(|plugin| {
                    let timeout = config.plugin_timeout(plugin.name());
                    LoadedPlugin { plugin, timeout }
                })
                .collect();
            Ok(App {
                pipeline: Pipeline::new(loaded),
                config,
                settings,
                warnings,
            })
        }
        _ => Err(errors),
    }
}

fn create_plugin(name: &str, config: &ConfigDir) -> Result<Arc<dyn Plugin>, String> {
    let init = PluginInit { name, config };
    if let Some(factory) = registry::builtin(name) {
        return factory(&init).map_err(|e| e.to_string());
    }
    match haraka_plugin_host::resolve_library(name, config.root()) {
        Some(_) => {
            // A cdylib reads its own files through its own copy of the config
            // reader; files named after the plugin are its own, not stray files.
            let own = haraka_plugin_host::plugin_name(name);
            for file in [format!("{own}.ini"), own.clone(), format!("{own}.timeout")] {
                config.mark_read(&config.path(&file));
                // The flat layout's home for plugin ini files.
                config.mark_read(&config.root().join("plugins").join(&file));
            }
            haraka_plugin_host::load(name, config.root(), config).map_err(|e| e.to_string())
        }
        None => Err(format!(
            "unknown plugin: not a built-in (see `haraka-rs -l`) and no shared library for it in {}",
            config.root().join("plugins").display()
        )),
    }
}

fn diags(d: &[Diag]) -> Vec<String> {
    d.iter().map(ToString::to_string).collect()
}
