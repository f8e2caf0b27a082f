//! e2e checks: outbound (see the issue texts in the module docs of mod.rs).

use super::Check;

/// The outbound checks, in the order they run.
pub const CHECKS: &[Check] = &[];
