//! Well-known names that more than one layer writes or reads: the label that marks kyvtel's objects,
//! and the marker the in-cluster traffic client prints before the HTTP status.

/// Label key marking objects kyvtel manages (the recommended Kubernetes label).
pub const MANAGED_BY_KEY: &str = "app.kubernetes.io/managed-by";
/// Value of [`MANAGED_BY_KEY`] on kyvtel's objects.
pub const MANAGED_BY_VALUE: &str = "kyvtel";

/// What the in-cluster client prints after the body (curl `-w`), so the status is known.
pub const STATUS_MARKER: &str = "kyvtel-http-status=";
