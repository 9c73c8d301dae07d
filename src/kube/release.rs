//! What is left of a Helm release in a cluster: every object Helm created for it, its release
//! records, and the webhook configurations a chart registered under a name prefix.
//!
//! Helm marks every object it installs: label `app.kubernetes.io/managed-by: Helm` and annotations
//! `meta.helm.sh/release-name`, `meta.helm.sh/release-namespace` (upstream: helm/helm
//! pkg/action/install.go@v3.21.4 line 341 and validate.go `setMetadataVisitor`, lines 140-170).
//! Its release records are Secrets labelled `owner=helm,name=<release>` in the release namespace
//! (upstream: helm/helm pkg/storage/driver/secrets.go@v3.21.4 `newSecretsObject`).

use ::kube::api::{Api, DynamicObject, ListParams};
use ::kube::discovery::{Discovery, verbs};

use super::KubeError;

/// One Helm release: its name and namespace.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Release<'a> {
    /// The release name, e.g. `traffic-manager`.
    pub name: &'a str,
    /// Its namespace.
    pub namespace: &'a str,
}

impl Release<'_> {
    /// Whether `meta` (an object's metadata) marks it as this release's.
    #[must_use]
    pub fn owns(&self, meta: &serde_json::Value) -> bool {
        let a = &meta["annotations"];
        a["meta.helm.sh/release-name"].as_str() == Some(self.name)
            && a["meta.helm.sh/release-namespace"].as_str() == Some(self.namespace)
    }

    /// Whether `meta` is one of its release records.
    #[must_use]
    pub fn is_record(&self, meta: &serde_json::Value) -> bool {
        let l = &meta["labels"];
        l["owner"].as_str() == Some("helm") && l["name"].as_str() == Some(self.name)
    }
}

/// `Kind namespace/name` of every object of `release` still in the cluster (not those already
/// terminating), its release records, and every webhook configuration whose name starts with
/// `webhook_prefix`.
///
/// # Errors
/// Discovery or a list failed.
pub async fn leftovers(
    client: &::kube::Client,
    release: &Release<'_>,
    webhook_prefix: &str,
) -> Result<Vec<String>, KubeError> {
    let discovery =
        Discovery::new(client.clone()).run_aggregated().await.map_err(|e| KubeError::api("API discovery", e))?;
    let mut out = Vec::new();
    for group in discovery.groups() {
        for (ar, caps) in group.recommended_resources() {
            if !caps.supports_operation(verbs::LIST) {
                continue;
            }
            let api: Api<DynamicObject> = Api::all_with(client.clone(), &ar);
            let webhook = ar.group == "admissionregistration.k8s.io" && ar.kind.ends_with("WebhookConfiguration");
            let record = ar.group.is_empty() && ar.kind == "Secret";
            let selector = match (webhook, record) {
                (true, _) => None,
                (_, true) => Some("owner=helm"),
                _ => Some("app.kubernetes.io/managed-by=Helm"),
            };
            let lp = selector.map_or_else(ListParams::default, |s| ListParams::default().labels(s));
            let list = match api.list(&lp).await {
                Ok(l) => l,
                // A kind that went away between discovery and list (a CRD deleted meanwhile).
                Err(::kube::Error::Api(s)) if s.code == 404 || s.code == 405 => continue,
                Err(e) => return Err(KubeError::api(format!("list {}", ar.plural), e)),
            };
            for o in list.items {
                let meta = serde_json::to_value(&o.metadata).unwrap_or_default();
                if meta.get("deletionTimestamp").is_some_and(|d| !d.is_null()) {
                    continue;
                }
                let name = meta["name"].as_str().unwrap_or_default();
                let hit = (webhook && name.starts_with(webhook_prefix))
                    || release.owns(&meta)
                    || (record && release.is_record(&meta));
                if hit {
                    out.push(describe(&ar.kind, meta["namespace"].as_str(), name));
                }
            }
        }
    }
    out.sort();
    out.dedup();
    Ok(out)
}

fn describe(kind: &str, namespace: Option<&str>, name: &str) -> String {
    match namespace {
        Some(ns) => format!("{kind} {ns}/{name}"),
        None => format!("{kind} {name}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn an_object_is_the_release_s_only_with_both_annotations_of_it() {
        let r = Release { name: "traffic-manager", namespace: "ambassador" };
        let mine = json!({"annotations": {"meta.helm.sh/release-name": "traffic-manager",
            "meta.helm.sh/release-namespace": "ambassador"}});
        let other_ns = json!({"annotations": {"meta.helm.sh/release-name": "traffic-manager",
            "meta.helm.sh/release-namespace": "elsewhere"}});
        let unmarked = json!({"labels": {"app.kubernetes.io/managed-by": "Helm"}});
        assert!(r.owns(&mine));
        assert!(!r.owns(&other_ns) && !r.owns(&unmarked));
        assert!(r.is_record(&json!({"labels": {"owner": "helm", "name": "traffic-manager", "status": "failed"}})));
        assert!(!r.is_record(&json!({"labels": {"owner": "helm", "name": "kyverno"}})));
        assert_eq!(describe("Secret", Some("ambassador"), "x"), "Secret ambassador/x");
        assert_eq!(describe("MutatingWebhookConfiguration", None, "w"), "MutatingWebhookConfiguration w");
    }
}
