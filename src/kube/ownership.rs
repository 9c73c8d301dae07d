//! Harness ownership: the labels kyvtel puts on everything it creates, and the check that refuses to
//! replace a ClusterPolicy that is not kyvtel's (the `existing` provider touches only its own objects).

use std::collections::BTreeMap;

use ::kube::api::{Api, DynamicObject};
use ::kube::core::{ApiResource, GroupVersionKind, ObjectMeta};

use super::{KubeError, is_not_found};
use crate::names::{MANAGED_BY_KEY, MANAGED_BY_VALUE};

/// Label key holding the run id that created (or last applied) an object.
pub const RUN_KEY: &str = "kyvtel.dev/run";

/// The owner stamp of one run: which labels every created object gets.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Owner {
    /// The run id, e.g. `20260101-120000-ab12`. Must be a valid label value.
    pub run_id: String,
}

impl Owner {
    /// An owner for the given run id.
    pub fn new(run_id: impl Into<String>) -> Self {
        Owner { run_id: run_id.into() }
    }

    /// The labels to set: `app.kubernetes.io/managed-by: kyvtel` and `kyvtel.dev/run: <run-id>`.
    #[must_use]
    pub fn labels(&self) -> BTreeMap<String, String> {
        BTreeMap::from([
            (MANAGED_BY_KEY.to_string(), MANAGED_BY_VALUE.to_string()),
            (RUN_KEY.to_string(), self.run_id.clone()),
        ])
    }

    /// Adds the owner labels to a JSON object's `metadata.labels`, keeping the labels it has.
    ///
    /// # Errors
    /// A message when `doc` is not an object or `metadata`/`labels` is not a map.
    pub fn stamp(&self, doc: &mut serde_json::Value) -> Result<(), String> {
        let obj = doc.as_object_mut().ok_or("document is not a mapping")?;
        let meta = obj.entry("metadata").or_insert_with(|| serde_json::json!({}));
        let meta = meta.as_object_mut().ok_or("metadata is not a mapping")?;
        let labels = meta.entry("labels").or_insert_with(|| serde_json::json!({}));
        let labels = labels.as_object_mut().ok_or("metadata.labels is not a mapping")?;
        for (k, v) in self.labels() {
            labels.insert(k, serde_json::Value::String(v));
        }
        Ok(())
    }

    /// The label selector matching everything kyvtel manages (any run).
    #[must_use]
    pub fn managed_selector() -> String {
        format!("{MANAGED_BY_KEY}={MANAGED_BY_VALUE}")
    }
}

/// Whether an object carries kyvtel's managed-by label.
#[must_use]
pub fn is_owned(meta: &ObjectMeta) -> bool {
    meta.labels.as_ref().and_then(|l| l.get(MANAGED_BY_KEY)).is_some_and(|v| v == MANAGED_BY_VALUE)
}

/// The `kyverno.io/v1` ClusterPolicy resource. The plural is that of the CRD file
/// `config/crds/kyverno/kyverno.io_clusterpolicies.yaml` (facts.md §3).
#[must_use]
pub fn cluster_policy_resource() -> ApiResource {
    ApiResource::from_gvk_with_plural(&GroupVersionKind::gvk("kyverno.io", "v1", "ClusterPolicy"), "clusterpolicies")
}

/// The names among `names` that exist (read through `api`) without kyvtel's label.
async fn foreign<K>(api: &Api<K>, kind: &str, names: &[&str]) -> Result<Vec<String>, KubeError>
where
    K: ::kube::Resource + Clone + std::fmt::Debug + serde::de::DeserializeOwned,
{
    let mut out = Vec::new();
    for name in names {
        match api.get(name).await {
            Ok(obj) if is_owned(obj.meta()) => {}
            Ok(_) => out.push((*name).to_string()),
            Err(e) if is_not_found(&e) => {}
            Err(e) => return Err(KubeError::api(format!("read {kind}/{name}"), e)),
        }
    }
    Ok(out)
}

/// `Ok` when nothing is foreign; otherwise a refusal naming every foreign object and what to do.
fn refuse_foreign(kind: &str, foreign: &[String], what_then: &str) -> Result<(), KubeError> {
    if foreign.is_empty() {
        return Ok(());
    }
    Err(KubeError::Refused(format!(
        "{kind} {} exists and is not labelled {MANAGED_BY_KEY}={MANAGED_BY_VALUE}; {what_then}",
        foreign.join(", ")
    )))
}

/// Refuses when any of the named ClusterPolicies exists and is not kyvtel's.
///
/// A policy that does not exist is fine (it will be created, with the labels). Used before applying
/// policies on an `existing` cluster.
///
/// # Errors
/// [`KubeError::Refused`] naming every foreign policy; [`KubeError::Api`] when a read fails.
pub async fn ensure_policies_replaceable(client: &::kube::Client, names: &[&str]) -> Result<(), KubeError> {
    let api: Api<DynamicObject> = Api::all_with(client.clone(), &cluster_policy_resource());
    let found = foreign(&api, "ClusterPolicy", names).await?;
    refuse_foreign(
        "ClusterPolicy",
        &found,
        "kyvtel will not replace a policy it does not own (delete or relabel it, or use another cluster)",
    )
}

/// Refuses when any of the named Namespaces exists and is not kyvtel's: on an `existing` cluster,
/// kyvtel only touches namespaces it created (and labelled).
///
/// # Errors
/// [`KubeError::Refused`] naming every foreign namespace; [`KubeError::Api`] when a read fails.
pub async fn ensure_namespaces_ownable(client: &::kube::Client, names: &[&str]) -> Result<(), KubeError> {
    let api: Api<k8s_openapi::api::core::v1::Namespace> = Api::all(client.clone());
    let found = foreign(&api, "Namespace", names).await?;
    refuse_foreign(
        "Namespace",
        &found,
        "kyvtel only uses namespaces it created (choose another spec.workload.namespace, or use another cluster)",
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stamp_keeps_existing_labels_and_adds_owner() {
        let mut doc = serde_json::json!({"metadata": {"name": "x", "labels": {"app": "demo"}}});
        Owner::new("r1").stamp(&mut doc).unwrap();
        assert_eq!(
            doc["metadata"]["labels"],
            serde_json::json!({"app": "demo", MANAGED_BY_KEY: "kyvtel", RUN_KEY: "r1"})
        );
    }

    #[test]
    fn stamp_rejects_non_map_labels() {
        let mut doc = serde_json::json!({"metadata": {"labels": ["a"]}});
        assert_eq!(Owner::new("r").stamp(&mut doc), Err("metadata.labels is not a mapping".to_string()));
    }

    #[test]
    fn owned_only_with_managed_by_kyvtel() {
        let mut meta = ObjectMeta::default();
        assert!(!is_owned(&meta));
        meta.labels = Some(BTreeMap::from([(MANAGED_BY_KEY.to_string(), "helm".to_string())]));
        assert!(!is_owned(&meta));
        meta.labels = Some(Owner::new("r").labels());
        assert!(is_owned(&meta));
    }
}
