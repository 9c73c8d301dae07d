//! The canary: a Pod that every strict policy set must deny. A server-side dry-run create of it
//! proves that the API server really dispatches to Kyverno (facts.md §3, readiness step 4).

use serde_json::{Value, json};

/// The canary's name.
pub const NAME: &str = "kyvtel-canary";

/// A non-compliant Pod in `namespace`: no securityContext at all, so every rule that requires one
/// denies it.
pub fn pod(namespace: &str, image: &str) -> Value {
    json!({
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": NAME, "namespace": namespace, "labels": {"app.kubernetes.io/managed-by": "kyvtel"}},
        "spec": {"containers": [{"name": "canary", "image": image}]}
    })
}
