//! The snapshot policy the plan prints and `provider::local::snapshot` applies: how old a reused
//! snapshot may be, and how many the store keeps.

use std::time::Duration;

/// The oldest snapshot that is reused.
pub const MAX_AGE: Duration = Duration::from_secs(30 * 24 * 3600);
/// How many snapshots the store keeps (≈ 80 MB each), newest first.
pub const KEEP: usize = 4;
