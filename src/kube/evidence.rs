//! Evidence for the failure bundle, read from the API as text: events, pod YAML (with managedFields),
//! webhook configurations, ClusterPolicy statuses and container logs.
//!
//! Each collector returns [`EvidenceItem`]s (a suggested file name and its content); the report layer
//! writes them and the `index.json`. Collectors never fail the run: an API error becomes an item whose
//! content is the error, so the bundle says what could not be read. Webhook `caBundle`s are replaced by
//! `<redacted>` here; the report layer redacts tokens and certificates in everything else.

use ::kube::api::{Api, DynamicObject, ListParams, LogParams};
use k8s_openapi::api::admissionregistration::v1::{MutatingWebhookConfiguration, ValidatingWebhookConfiguration};
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{Event, Pod};
use serde::Serialize;

use super::ownership::cluster_policy_resource;

/// The Kyverno namespace and admission controller Deployment (facts.md §3).
pub const KYVERNO_NAMESPACE: &str = "kyverno";
/// The Kyverno admission controller Deployment.
pub const KYVERNO_ADMISSION_CONTROLLER: &str = "kyverno-admission-controller";
/// The traffic-manager pod labels (facts.md §4).
pub const TRAFFIC_MANAGER_SELECTOR: &str = "app=traffic-manager";
/// How many log lines per container are kept.
pub const LOG_TAIL_LINES: i64 = 2000;

/// The format of an item's content.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Format {
    /// JSON.
    Json,
    /// YAML.
    Yaml,
    /// Plain text (logs, errors).
    Text,
}

/// One evidence file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct EvidenceItem {
    /// Suggested relative file name, e.g. `events/app.json` or `logs/kyverno/<pod>/<container>.log`.
    pub name: String,
    /// What it holds, one line (for `index.json`).
    pub description: String,
    /// The content format.
    pub format: Format,
    /// The content.
    pub content: String,
}

impl EvidenceItem {
    fn error(name: String, description: String, err: impl std::fmt::Display) -> Self {
        EvidenceItem {
            name: format!("{name}.error.txt"),
            description,
            format: Format::Text,
            content: format!("could not collect: {err}\n"),
        }
    }
}

fn json<T: Serialize>(name: String, description: String, value: &T) -> EvidenceItem {
    match serde_json::to_string_pretty(value) {
        Ok(content) => EvidenceItem { name: format!("{name}.json"), description, format: Format::Json, content },
        Err(e) => EvidenceItem::error(name, description, e),
    }
}

/// Events of each namespace (the harness namespaces, `ambassador`, `kyverno`, `default`: issue 4).
pub async fn events(client: &::kube::Client, namespaces: &[&str]) -> Vec<EvidenceItem> {
    let mut out = Vec::new();
    for ns in namespaces {
        let name = format!("events/{ns}");
        let description = format!("events in namespace {ns}");
        match Api::<Event>::namespaced(client.clone(), ns).list(&ListParams::default()).await {
            Ok(list) => out.push(json(name, description, &list.items)),
            Err(e) => out.push(EvidenceItem::error(name, description, e)),
        }
    }
    out
}

/// Every pod of `namespace` as YAML, managedFields included (they show who set each field, e.g. the
/// injector's securityContext).
pub async fn pods_yaml(client: &::kube::Client, namespace: &str) -> Vec<EvidenceItem> {
    let api: Api<Pod> = Api::namespaced(client.clone(), namespace);
    match api.list(&ListParams::default()).await {
        Ok(list) => list
            .items
            .iter()
            .map(|pod| {
                let pod_name = pod.metadata.name.as_deref().unwrap_or("unnamed");
                let name = format!("pods/{namespace}/{pod_name}");
                let description = format!("pod {namespace}/{pod_name} with managedFields");
                match serde_saphyr::to_string(pod) {
                    Ok(content) => {
                        EvidenceItem { name: format!("{name}.yaml"), description, format: Format::Yaml, content }
                    }
                    Err(e) => EvidenceItem::error(name, description, e),
                }
            })
            .collect(),
        Err(e) => vec![EvidenceItem::error(format!("pods/{namespace}"), format!("pods in {namespace}"), e)],
    }
}

/// Replaces every `caBundle` string in a JSON tree with `<redacted>`.
pub fn redact_ca_bundles(value: &mut serde_json::Value) {
    match value {
        serde_json::Value::Object(map) => {
            for (k, v) in map.iter_mut() {
                if k == "caBundle" && v.is_string() {
                    *v = serde_json::Value::String("<redacted>".into());
                } else {
                    redact_ca_bundles(v);
                }
            }
        }
        serde_json::Value::Array(items) => items.iter_mut().for_each(redact_ca_bundles),
        _ => {}
    }
}

/// All validating and mutating webhook configurations, `caBundle`s redacted.
pub async fn webhook_configurations(client: &::kube::Client) -> Vec<EvidenceItem> {
    let mut out = Vec::new();
    let validating = Api::<ValidatingWebhookConfiguration>::all(client.clone()).list(&ListParams::default()).await;
    out.push(redacted("webhooks/validating", "validating webhook configurations", validating.map(|l| l.items)));
    let mutating = Api::<MutatingWebhookConfiguration>::all(client.clone()).list(&ListParams::default()).await;
    out.push(redacted("webhooks/mutating", "mutating webhook configurations", mutating.map(|l| l.items)));
    out
}

fn redacted<T: Serialize>(name: &str, description: &str, items: Result<Vec<T>, ::kube::Error>) -> EvidenceItem {
    let (name, description) = (name.to_string(), description.to_string());
    match items.map(|i| serde_json::to_value(&i)) {
        Ok(Ok(mut value)) => {
            redact_ca_bundles(&mut value);
            json(name, description, &value)
        }
        Ok(Err(e)) => EvidenceItem::error(name, description, e),
        Err(e) => EvidenceItem::error(name, description, e),
    }
}

/// Name and `status` of every ClusterPolicy.
pub async fn cluster_policy_statuses(client: &::kube::Client) -> EvidenceItem {
    let api: Api<DynamicObject> = Api::all_with(client.clone(), &cluster_policy_resource());
    let (name, description) = ("policies/clusterpolicy-status".to_string(), "ClusterPolicy statuses".to_string());
    match api.list(&ListParams::default()).await {
        Ok(list) => {
            let statuses: serde_json::Map<String, serde_json::Value> = list
                .items
                .iter()
                .map(|p| {
                    let status = p.data.get("status").cloned().unwrap_or(serde_json::Value::Null);
                    (p.metadata.name.clone().unwrap_or_default(), status)
                })
                .collect();
            json(name, description, &statuses)
        }
        Err(e) => EvidenceItem::error(name, description, e),
    }
}

/// Logs (last [`LOG_TAIL_LINES`] lines) of every container of every pod matching `selector` in
/// `namespace`, plus the previous instance's logs of restarted containers.
pub async fn logs(client: &::kube::Client, namespace: &str, selector: &str) -> Vec<EvidenceItem> {
    let api: Api<Pod> = Api::namespaced(client.clone(), namespace);
    let pods = match api.list(&ListParams::default().labels(selector)).await {
        Ok(list) => list.items,
        Err(e) => {
            return vec![EvidenceItem::error(
                format!("logs/{namespace}"),
                format!("pods {selector} in {namespace}"),
                e,
            )];
        }
    };
    let mut out = Vec::new();
    for pod in &pods {
        let pod_name = pod.metadata.name.clone().unwrap_or_default();
        let statuses = pod.status.as_ref().and_then(|s| s.container_statuses.clone()).unwrap_or_default();
        for c in statuses {
            let mut runs = vec![false];
            if c.restart_count > 0 {
                runs.push(true);
            }
            for previous in runs {
                let suffix = if previous { ".previous" } else { "" };
                let name = format!("logs/{namespace}/{pod_name}/{}{suffix}", c.name);
                let description = format!("log of {namespace}/{pod_name} container {}{suffix}", c.name);
                let params = LogParams {
                    container: Some(c.name.clone()),
                    tail_lines: Some(LOG_TAIL_LINES),
                    previous,
                    ..LogParams::default()
                };
                match api.logs(&pod_name, &params).await {
                    Ok(content) => out.push(EvidenceItem {
                        name: format!("{name}.log"),
                        description,
                        format: Format::Text,
                        content,
                    }),
                    Err(e) => out.push(EvidenceItem::error(name, description, e)),
                }
            }
        }
    }
    out
}

/// Logs of the Kyverno admission controller (its pods found through the Deployment's selector).
pub async fn kyverno_logs(client: &::kube::Client) -> Vec<EvidenceItem> {
    let deployment =
        Api::<Deployment>::namespaced(client.clone(), KYVERNO_NAMESPACE).get(KYVERNO_ADMISSION_CONTROLLER).await;
    let selector = deployment.map(|d| {
        d.spec
            .and_then(|s| s.selector.match_labels)
            .unwrap_or_default()
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect::<Vec<_>>()
            .join(",")
    });
    match selector {
        Ok(selector) if !selector.is_empty() => logs(client, KYVERNO_NAMESPACE, &selector).await,
        Ok(_) => vec![EvidenceItem::error(
            "logs/kyverno".into(),
            "Kyverno admission controller logs".into(),
            "the admission controller Deployment has no matchLabels",
        )],
        Err(e) => vec![EvidenceItem::error("logs/kyverno".into(), "Kyverno admission controller logs".into(), e)],
    }
}

/// Logs of the traffic-manager in `manager_namespace` (pods labelled `app=traffic-manager`).
pub async fn traffic_manager_logs(client: &::kube::Client, manager_namespace: &str) -> Vec<EvidenceItem> {
    logs(client, manager_namespace, TRAFFIC_MANAGER_SELECTOR).await
}

/// Everything above, for a failure bundle: events of `namespaces`, pods of `pod_namespaces`,
/// webhooks, policy statuses, Kyverno and traffic-manager logs.
pub async fn collect_all(
    client: &::kube::Client,
    namespaces: &[&str],
    pod_namespaces: &[&str],
    manager_namespace: &str,
) -> Vec<EvidenceItem> {
    let mut out = events(client, namespaces).await;
    for ns in pod_namespaces {
        out.extend(pods_yaml(client, ns).await);
    }
    out.extend(webhook_configurations(client).await);
    out.push(cluster_policy_statuses(client).await);
    out.extend(kyverno_logs(client).await);
    out.extend(traffic_manager_logs(client, manager_namespace).await);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ca_bundles_are_redacted_everywhere() {
        let mut v = serde_json::json!([{"webhooks": [{"clientConfig": {"caBundle": "LS0tLS1CRUdJTi", "service": {"name": "x"}}}]}]);
        redact_ca_bundles(&mut v);
        assert_eq!(v[0]["webhooks"][0]["clientConfig"]["caBundle"], "<redacted>");
        assert_eq!(v[0]["webhooks"][0]["clientConfig"]["service"]["name"], "x");
    }
}
