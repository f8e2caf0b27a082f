//! haraka-rs server: listeners, per-connection driver, hook runner, shutdown.
