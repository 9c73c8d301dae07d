//! The cluster fingerprint for `--reuse`: versions, digests and the config hash a cluster was set up
//! with, stored in a ConfigMap. A cluster is reused only when the stored fingerprint equals the one the
//! run expects; otherwise kyvtel refuses and lists every difference.
//!
//! Where: ConfigMap `kyvtel-fingerprint` in `kube-system`. That namespace exists in every cluster, lives
//! exactly as long as the cluster (harness namespaces are deleted between scenarios, the fingerprint must
//! not be), and Kyverno skips it by default (facts.md §3), so no strict policy under test can block
//! writing or reading it.

use std::collections::BTreeMap;
use std::fmt;

use ::kube::api::{Api, Patch, PatchParams};
use k8s_openapi::api::core::v1::ConfigMap;

use super::ownership::Owner;
use super::{FIELD_MANAGER, KubeError, is_not_found};

/// The ConfigMap's namespace.
pub const NAMESPACE: &str = "kube-system";
/// The ConfigMap's name.
pub const NAME: &str = "kyvtel-fingerprint";

/// What a cluster was set up with: key → value, e.g. `nodeImage` → `kindest/node:v1.35.8@sha256:...`,
/// `kyvernoChart` → `3.9.0`, `kyvernoChartSha256` → `9663...`, `configHash` → `sha256:...`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Fingerprint {
    /// The entries; keys must be valid ConfigMap keys (`[-._a-zA-Z0-9]+`).
    pub entries: BTreeMap<String, String>,
}

impl Fingerprint {
    /// A fingerprint from key/value pairs.
    pub fn new<K: Into<String>, V: Into<String>>(entries: impl IntoIterator<Item = (K, V)>) -> Self {
        Fingerprint { entries: entries.into_iter().map(|(k, v)| (k.into(), v.into())).collect() }
    }
}

/// One difference between the expected and the stored fingerprint.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Difference {
    /// The key.
    pub key: String,
    /// What this run needs (`None`: the run does not set it).
    pub expected: Option<String>,
    /// What the cluster has (`None`: not recorded).
    pub found: Option<String>,
}

impl fmt::Display for Difference {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let show = |v: &Option<String>| v.clone().unwrap_or_else(|| "(absent)".to_string());
        write!(f, "{}: run needs {}, cluster has {}", self.key, show(&self.expected), show(&self.found))
    }
}

/// The result of comparing fingerprints.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Comparison {
    /// Identical: the cluster may be reused.
    Match,
    /// The cluster has no fingerprint (not set up by kyvtel, or set up before it was written).
    Missing,
    /// The fingerprints differ.
    Mismatch(Vec<Difference>),
}

impl Comparison {
    /// Why the cluster cannot be reused, or `None` when it can.
    #[must_use]
    pub fn refusal(&self) -> Option<String> {
        match self {
            Comparison::Match => None,
            Comparison::Missing => Some(format!(
                "--reuse: the cluster has no fingerprint (ConfigMap {NAMESPACE}/{NAME}); \
                 it was not set up by kyvtel, so it cannot be reused safely (delete it or drop --reuse)"
            )),
            Comparison::Mismatch(diffs) => Some(format!(
                "--reuse: the cluster was set up differently: {} (delete it or drop --reuse)",
                diffs.iter().map(ToString::to_string).collect::<Vec<_>>().join("; ")
            )),
        }
    }
}

/// Compares what the run expects with what the cluster has. Pure.
#[must_use]
pub fn compare(expected: &Fingerprint, found: Option<&Fingerprint>) -> Comparison {
    let Some(found) = found else {
        return Comparison::Missing;
    };
    let keys: std::collections::BTreeSet<&String> = expected.entries.keys().chain(found.entries.keys()).collect();
    let diffs: Vec<Difference> = keys
        .into_iter()
        .filter_map(|k| {
            let (e, f) = (expected.entries.get(k), found.entries.get(k));
            (e != f).then(|| Difference { key: k.clone(), expected: e.cloned(), found: f.cloned() })
        })
        .collect();
    if diffs.is_empty() { Comparison::Match } else { Comparison::Mismatch(diffs) }
}

/// Reads the stored fingerprint; `None` when the ConfigMap does not exist.
///
/// # Errors
/// [`KubeError::Api`] when the read fails otherwise.
pub async fn read(client: &::kube::Client) -> Result<Option<Fingerprint>, KubeError> {
    let api: Api<ConfigMap> = Api::namespaced(client.clone(), NAMESPACE);
    match api.get(NAME).await {
        Ok(cm) => Ok(Some(Fingerprint { entries: cm.data.unwrap_or_default() })),
        Err(e) if is_not_found(&e) => Ok(None),
        Err(e) => Err(KubeError::api(format!("read ConfigMap {NAMESPACE}/{NAME}"), e)),
    }
}

/// Writes (server-side applies) the fingerprint, labelled with `owner`. Written after a successful
/// setup, so a half-built cluster never looks reusable.
///
/// # Errors
/// [`KubeError::Manifest`] for an invalid key; [`KubeError::Api`] when the apply fails.
pub async fn write(client: &::kube::Client, fingerprint: &Fingerprint, owner: &Owner) -> Result<(), KubeError> {
    if let Some(bad) = fingerprint.entries.keys().find(|k| !valid_key(k)) {
        return Err(KubeError::Manifest {
            index: 0,
            message: format!("fingerprint key {bad:?} is not a valid ConfigMap key"),
        });
    }
    let object = serde_json::json!({
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": NAME, "namespace": NAMESPACE, "labels": owner.labels()},
        "data": fingerprint.entries,
    });
    let api: Api<ConfigMap> = Api::namespaced(client.clone(), NAMESPACE);
    api.patch(NAME, &PatchParams::apply(FIELD_MANAGER).force().validation_strict(), &Patch::Apply(&object))
        .await
        .map(drop)
        .map_err(|e| KubeError::api(format!("write ConfigMap {NAMESPACE}/{NAME}"), e))
}

/// Refuses unless the stored fingerprint equals `expected`.
///
/// # Errors
/// [`KubeError::Refused`] explaining the mismatch; [`KubeError::Api`] when the read fails.
pub async fn ensure_reusable(client: &::kube::Client, expected: &Fingerprint) -> Result<(), KubeError> {
    let found = read(client).await?;
    match compare(expected, found.as_ref()).refusal() {
        None => Ok(()),
        Some(why) => Err(KubeError::Refused(why)),
    }
}

fn valid_key(key: &str) -> bool {
    !key.is_empty() && key.len() <= 253 && key.chars().all(|c| c.is_ascii_alphanumeric() || "-._".contains(c))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn compare_lists_changed_added_and_missing_keys() {
        let expected = Fingerprint::new([("kyvernoChart", "3.9.0"), ("nodeImage", "a"), ("configHash", "h1")]);
        let found = Fingerprint::new([("kyvernoChart", "3.8.2"), ("nodeImage", "a"), ("old", "x")]);
        let Comparison::Mismatch(diffs) = compare(&expected, Some(&found)) else { panic!("expected a mismatch") };
        let text: Vec<String> = diffs.iter().map(ToString::to_string).collect();
        assert_eq!(
            text,
            [
                "configHash: run needs h1, cluster has (absent)",
                "kyvernoChart: run needs 3.9.0, cluster has 3.8.2",
                "old: run needs (absent), cluster has x",
            ]
        );
    }

    #[test]
    fn equal_fingerprints_match_and_missing_is_refused() {
        let fp = Fingerprint::new([("k", "v")]);
        assert_eq!(compare(&fp, Some(&fp.clone())), Comparison::Match);
        assert!(compare(&fp, None).refusal().is_some_and(|r| r.contains("no fingerprint")));
    }

    #[test]
    fn keys_are_validated() {
        assert!(valid_key("kyvernoChart.sha256"));
        assert!(!valid_key("a/b"));
        assert!(!valid_key(""));
    }
}
