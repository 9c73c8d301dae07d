//! What the agent injector really did to each workload: its settled pod (or the refusal), and the
//! same pod template put through the API server's defaulting, for the model to start from.

use std::collections::BTreeMap;
use std::time::Duration;

use serde_json::{Value, json};
use tokio::time::{Instant, sleep};

use super::{Call, KubeError, send};
use crate::names::kind::{DEPLOYMENT, REPLICA_SET};

/// The namespace whose pods neither the injector nor Kyverno's webhooks see (facts.md §4: the
/// injector's namespaceSelector excludes `kube-system`; Kyverno excludes it by default).
pub const NEUTRAL_NAMESPACE: &str = "kube-system";

/// What the newest ReplicaSet of a Deployment ended with.
#[derive(Debug, Clone)]
pub enum Created {
    /// A pod was admitted.
    Pod(Value),
    /// Every create was refused; the `FailedCreate` messages.
    Refused(Vec<String>),
}

/// The settled state of one Deployment.
#[derive(Debug, Clone)]
pub struct Settled {
    /// The Deployment.
    pub deployment: String,
    /// Its newest ReplicaSet (the template the pod was made from).
    pub replica_set: Value,
    /// What its creates ended with.
    pub created: Created,
}

impl Settled {
    /// The pod the ReplicaSet controller asks the API server to create, before any admission step.
    // upstream: kubernetes pkg/controller/controller_utils.go (GetPodFromTemplate: labels, annotations
    // and spec of the template, generateName `<rs>-`, a controller ownerReference).
    #[must_use]
    pub fn requested_pod(&self) -> Value {
        let rs = &self.replica_set;
        let template = &rs["spec"]["template"];
        let mut metadata = json!({
            "generateName": format!("{}-", rs["metadata"]["name"].as_str().unwrap_or_default()),
            "ownerReferences": [{
                "apiVersion": "apps/v1", "kind": "ReplicaSet",
                "name": rs["metadata"]["name"], "uid": rs["metadata"]["uid"],
                "controller": true, "blockOwnerDeletion": true,
            }],
        });
        for key in ["labels", "annotations"] {
            if let Some(v) = template["metadata"].get(key).filter(|v| !v.is_null()) {
                metadata[key] = v.clone();
            }
        }
        json!({"apiVersion": "v1", "kind": "Pod", "metadata": metadata, "spec": template["spec"]})
    }
}

/// `pod` as the API server stores it in [`NEUTRAL_NAMESPACE`]: defaulted, with the built-in
/// admission plugins applied (service-account token volume, tolerations), no webhook.
///
/// # Errors
/// [`KubeError::Api`] when the dry-run create fails.
pub async fn defaulted(client: &::kube::Client, pod: &Value) -> Result<Value, KubeError> {
    let url = format!("/api/v1/namespaces/{NEUTRAL_NAMESPACE}/pods");
    let mut pod = pod.clone();
    pod["metadata"]["namespace"] = json!(NEUTRAL_NAMESPACE);
    let answer = send(client, &url, Call::DryRunCreate { object: &pod })
        .await
        .map_err(|e| KubeError::api("dry-run create of the model's pod in kube-system", e))?;
    serde_json::from_str(&answer.body).map_err(|e| KubeError::Refused(format!("dry-run answer is not JSON: {e}")))
}

/// `pod` after the defaulting the API server applies to a mutating webhook's patch: a changed object
/// makes it run its mutating admission chain once more (reinvocation), so the built-in plugins see the
/// injected containers too (the service-account plugin mounts its token into each container without
/// one). The same dry-run does exactly that.
// upstream: kubernetes staging/src/k8s.io/apiserver/pkg/admission/reinvocation.go@v0.35.8 and
// plugin/webhook/mutating/dispatcher.go:192-195 (a changed object sets ShouldReinvoke).
///
/// # Errors
/// As [`defaulted`].
pub async fn defaulted_after_webhook(client: &::kube::Client, pod: &Value) -> Result<Value, KubeError> {
    defaulted(client, pod).await
}

async fn list(client: &::kube::Client, path: &str) -> Result<Vec<Value>, KubeError> {
    let request = http::Request::get(path).body(Vec::new()).map_err(|e| KubeError::Refused(e.to_string()))?;
    let v: Value = client.request(request).await.map_err(|e| KubeError::api(format!("list {path}"), e))?;
    Ok(v["items"].as_array().cloned().unwrap_or_default())
}

fn owned_by<'a>(objects: &'a [Value], kind: &str, name: &str) -> impl Iterator<Item = &'a Value> {
    let (kind, name) = (kind.to_string(), name.to_string());
    objects.iter().filter(move |o| {
        o["metadata"]["ownerReferences"]
            .as_array()
            .is_some_and(|refs| refs.iter().any(|r| r["kind"] == kind.as_str() && r["name"] == name.as_str()))
    })
}

fn revision(rs: &Value) -> u64 {
    rs["metadata"]["annotations"]["deployment.kubernetes.io/revision"]
        .as_str()
        .and_then(|s| s.parse().ok())
        .unwrap_or(0)
}

/// One Deployment's state: `Ok(settled)` or `Err(what is still pending)`.
fn state_of(deployment: &str, sets: &[Value], pods: &[Value], events: &[Value]) -> Result<Settled, String> {
    let rs = owned_by(sets, DEPLOYMENT, deployment)
        .max_by_key(|r| revision(r))
        .ok_or_else(|| "no ReplicaSet yet".to_string())?;
    let rs_name = rs["metadata"]["name"].as_str().unwrap_or_default();
    let pod = owned_by(pods, REPLICA_SET, rs_name).find(|p| p["metadata"]["deletionTimestamp"].is_null());
    if let Some(pod) = pod {
        return Ok(Settled {
            deployment: deployment.into(),
            replica_set: rs.clone(),
            created: Created::Pod(pod.clone()),
        });
    }
    let refused: Vec<String> = events
        .iter()
        .filter(|e| e["reason"] == "FailedCreate" && e["involvedObject"]["name"] == rs_name)
        .filter_map(|e| e["message"].as_str().map(str::to_string))
        .collect();
    if refused.is_empty() {
        return Err(format!("ReplicaSet {rs_name} has no pod and no FailedCreate event"));
    }
    Ok(Settled { deployment: deployment.into(), replica_set: rs.clone(), created: Created::Refused(refused) })
}

fn key(s: &Settled) -> String {
    let rs = s.replica_set["metadata"]["name"].as_str().unwrap_or_default();
    match &s.created {
        Created::Pod(p) => format!("{rs}/{}", p["metadata"]["name"].as_str().unwrap_or_default()),
        Created::Refused(m) => format!("{rs}/refused:{}", m.len().min(1)),
    }
}

/// Waits until each Deployment's newest ReplicaSet has a pod, or a refusal, that stayed the same for
/// `quiet` (Telepresence 2.20.2 refuses the first pod, then restarts the workload: facts.md §7).
///
/// # Errors
/// [`KubeError::TimedOut`] naming every Deployment not settled and its last state.
pub async fn settle(
    client: &::kube::Client,
    namespace: &str,
    deployments: &[String],
    quiet: Duration,
    timeout: Duration,
) -> Result<Vec<Settled>, KubeError> {
    let deadline = Instant::now() + timeout;
    let mut since: BTreeMap<String, (String, Instant)> = BTreeMap::new();
    loop {
        let sets = list(client, &format!("/apis/apps/v1/namespaces/{namespace}/replicasets")).await?;
        let pods = list(client, &format!("/api/v1/namespaces/{namespace}/pods")).await?;
        let events = list(client, &format!("/api/v1/namespaces/{namespace}/events")).await?;
        let now = Instant::now();
        let mut done = Vec::new();
        let mut pending = Vec::new();
        for d in deployments {
            match state_of(d, &sets, &pods, &events) {
                Ok(s) => {
                    let k = key(&s);
                    let entry = since.entry(d.clone()).or_insert_with(|| (k.clone(), now));
                    if entry.0 != k {
                        *entry = (k.clone(), now);
                    }
                    if now.duration_since(entry.1) >= quiet {
                        done.push(s);
                    } else {
                        pending.push(format!("{d}: {k} (settling)"));
                    }
                }
                Err(why) => {
                    since.remove(d);
                    pending.push(format!("{d}: {why}"));
                }
            }
        }
        if pending.is_empty() {
            return Ok(done);
        }
        if now >= deadline {
            return Err(KubeError::TimedOut {
                what: format!("the injector's result for {} workload(s) in {namespace}", pending.len()),
                timeout,
                last_observed: pending.join("; "),
            });
        }
        sleep(Duration::from_millis(300)).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rs(name: &str, deployment: &str, revision: &str) -> Value {
        json!({"metadata": {"name": name, "uid": format!("u-{name}"),
            "annotations": {"deployment.kubernetes.io/revision": revision},
            "ownerReferences": [{"kind": "Deployment", "name": deployment}]},
            "spec": {"template": {"metadata": {"labels": {"app": "a"}}, "spec": {"containers": [{"name": "c"}]}}}})
    }

    #[test]
    fn the_newest_replica_set_decides_and_a_refusal_is_read_from_its_events() {
        let sets = [rs("a-1", "a", "1"), rs("a-2", "a", "2")];
        let old_pod =
            json!({"metadata": {"name": "a-1-x", "ownerReferences": [{"kind": "ReplicaSet", "name": "a-1"}]}});
        assert!(state_of("a", &sets, std::slice::from_ref(&old_pod), &[]).is_err());
        let event =
            json!({"reason": "FailedCreate", "involvedObject": {"name": "a-2"}, "message": "Error creating: denied"});
        let s = state_of("a", &sets, &[old_pod], &[event]).unwrap();
        assert!(matches!(s.created, Created::Refused(ref m) if m == &["Error creating: denied"]));
        let pod = s.requested_pod();
        assert_eq!(pod["metadata"]["generateName"], "a-2-");
        assert_eq!(pod["metadata"]["ownerReferences"][0]["uid"], "u-a-2");
        assert_eq!(pod["metadata"]["labels"], json!({"app": "a"}));
        assert!(pod["metadata"].get("annotations").is_none());
    }
}
