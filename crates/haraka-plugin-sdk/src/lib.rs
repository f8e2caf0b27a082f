//! Write haraka-rs plugins as cdylibs: export_plugin!.
