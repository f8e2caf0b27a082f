//! e2e checks: plugins (see the issue texts in the module docs of mod.rs).

use super::Check;

/// The plugins checks, in the order they run.
pub const CHECKS: &[Check] = &[];
