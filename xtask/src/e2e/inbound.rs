//! e2e checks: inbound (see the issue texts in the module docs of mod.rs).

use super::Check;

/// The inbound checks, in the order they run.
pub const CHECKS: &[Check] = &[];
