//! `tracing` inside a plugin library goes to the host's log, and so do panics.
//!
//! A cdylib has its own copy of `tracing` and of the standard library, so neither
//! the host's subscriber nor its panic hook sees the plugin; this installs both
//! for the library, once.

use std::fmt::{self, Write as _};
use std::sync::Once;

use haraka_plugin_abi::{HK_LOG_DEBUG, HK_LOG_ERROR, HK_LOG_INFO, HK_LOG_TRACE, HK_LOG_WARN};
use tracing::field::{Field, Visit};
use tracing::level_filters::LevelFilter;
use tracing::span::{Attributes, Id, Record};
use tracing::{Event, Level, Metadata, Subscriber};

use crate::host;

fn level_code(level: Level) -> u32 {
    match level {
        Level::ERROR => HK_LOG_ERROR,
        Level::WARN => HK_LOG_WARN,
        Level::INFO => HK_LOG_INFO,
        Level::DEBUG => HK_LOG_DEBUG,
        Level::TRACE => HK_LOG_TRACE,
    }
}

/// Forwards events to the host; spans are not tracked.
struct HostSubscriber {
    max: u32,
}

struct Fields<'a>(&'a mut String);

impl Fields<'_> {
    fn sep(&mut self) {
        if !self.0.is_empty() {
            self.0.push(' ');
        }
    }
}

impl Visit for Fields<'_> {
    fn record_str(&mut self, field: &Field, value: &str) {
        self.sep();
        if field.name() == "message" {
            self.0.push_str(value);
        } else {
            let _ = write!(self.0, "{}={value}", field.name());
        }
    }

    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        self.sep();
        if field.name() == "message" {
            let _ = write!(self.0, "{value:?}");
        } else {
            let _ = write!(self.0, "{}={value:?}", field.name());
        }
    }
}

impl Subscriber for HostSubscriber {
    fn enabled(&self, metadata: &Metadata<'_>) -> bool {
        level_code(*metadata.level()) <= self.max
    }

    fn max_level_hint(&self) -> Option<LevelFilter> {
        Some(match self.max {
            0 => LevelFilter::OFF,
            HK_LOG_ERROR => LevelFilter::ERROR,
            HK_LOG_WARN => LevelFilter::WARN,
            HK_LOG_INFO => LevelFilter::INFO,
            HK_LOG_DEBUG => LevelFilter::DEBUG,
            _ => LevelFilter::TRACE,
        })
    }

    fn new_span(&self, _: &Attributes<'_>) -> Id {
        Id::from_u64(1)
    }

    fn record(&self, _: &Id, _: &Record<'_>) {}

    fn record_follows_from(&self, _: &Id, _: &Id) {}

    fn event(&self, event: &Event<'_>) {
        let mut text = String::new();
        event.record(&mut Fields(&mut text));
        host::log(level_code(*event.metadata().level()), &text);
    }

    fn enter(&self, _: &Id) {}

    fn exit(&self, _: &Id) {}
}

/// Installs the subscriber and the panic hook (once per library).
pub(crate) fn install() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        let _ = tracing::subscriber::set_global_default(HostSubscriber {
            max: host::max_log_level(),
        });
        std::panic::set_hook(Box::new(|info| {
            host::log(HK_LOG_ERROR, &format!("plugin {info}"));
        }));
    });
}
