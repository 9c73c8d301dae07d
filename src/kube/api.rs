//! The Kubernetes operations a run needs, behind one trait, [`ClusterApi`]: the real implementation
//! (`run::kube_api::KubeApi`) talks to the API server through this module's functions; offline tests
//! drive the executor with a double.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use serde_json::Value;

use crate::plan::WaitFor;

/// What kind of failure an [`ApiFailure`] is: the run layer tells a verdict (a denial) from the
/// infrastructure's failure (no answer) by this, never by the text.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ApiFailureKind {
    /// Admission refused the request; the message is the API status message.
    Denied,
    /// A wait did not reach its condition in time; the message carries the last observed state.
    TimedOut,
    /// The API server did not answer (no connection, no answer within the call's bound), or it
    /// could not call an admission webhook.
    Unreachable,
    /// Any other failure (a bad reference, an unexpected answer).
    Failed,
}

/// A failed cluster operation: its kind, and what went wrong (with the last observed state for a
/// wait).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct ApiFailure {
    /// What kind of failure.
    pub kind: ApiFailureKind,
    /// What went wrong, including the last observed state for a timed-out wait.
    pub message: String,
}

impl ApiFailure {
    /// A plain failure.
    pub fn new(message: impl Into<String>) -> Self {
        ApiFailure { kind: ApiFailureKind::Failed, message: message.into() }
    }

    /// A refusal by admission, carrying the API status message.
    pub fn denied(message: impl Into<String>) -> Self {
        ApiFailure { kind: ApiFailureKind::Denied, message: message.into() }
    }

    /// A wait that ran out, with the last observed state in `message`.
    pub fn timed_out(message: impl Into<String>) -> Self {
        ApiFailure { kind: ApiFailureKind::TimedOut, message: message.into() }
    }

    /// The API server (or a webhook it calls) did not answer.
    pub fn unreachable(message: impl Into<String>) -> Self {
        ApiFailure { kind: ApiFailureKind::Unreachable, message: message.into() }
    }

    /// The API server's denial text, when the request was refused by admission.
    #[must_use]
    pub fn denial(&self) -> Option<&str> {
        (self.kind == ApiFailureKind::Denied).then_some(self.message.as_str())
    }
}

/// Result of a cluster operation.
pub type ApiResult<T> = Result<T, ApiFailure>;

/// The cluster operations of a run. Every call has a time limit; waits report the last observed
/// state when it runs out.
#[allow(async_fn_in_trait)]
pub trait ClusterApi {
    /// Server-side applies `objects` (strict field validation), retrying while the policy webhook
    /// starts. A refusal by admission is `Err` with [`ApiFailure::denial`] set.
    async fn apply(&self, objects: &[Value], namespace: Option<&str>, timeout: Duration) -> ApiResult<()>;
    /// Deletes objects (refs with apiVersion, kind, name, namespace), ignoring ones already gone.
    async fn delete(&self, refs: &[Value], timeout: Duration) -> ApiResult<()>;
    /// Waits for a condition.
    async fn wait(&self, until: &WaitFor, timeout: Duration) -> ApiResult<()>;
    /// Dry-run creates `pod` until it is denied; returns the denial text.
    async fn canary_denied(&self, pod: &Value, timeout: Duration) -> ApiResult<String>;
    /// The UIDs of the pods matching `selector`.
    async fn pod_uids(&self, namespace: &str, selector: &serde_json::Map<String, Value>)
    -> ApiResult<BTreeSet<String>>;
    /// Waits for a pod not in `old` whose `traffic-agent` container is ready, and returns it.
    async fn new_agent_pod(
        &self,
        namespace: &str,
        selector: &serde_json::Map<String, Value>,
        old: &BTreeSet<String>,
        timeout: Duration,
    ) -> ApiResult<Value>;
    /// Raw denial messages of a Deployment's ReplicaSets (conditions first, then events).
    async fn denial_messages(&self, namespace: &str, deployment: &str) -> ApiResult<Vec<String>>;
    /// Restarts a Deployment (pod-template annotation, like `kubectl rollout restart`).
    async fn restart(&self, namespace: &str, deployment: &str) -> ApiResult<()>;
    /// The ClusterIP of a Service.
    async fn cluster_ip(&self, namespace: &str, service: &str) -> ApiResult<String>;
    /// The API server's version (`gitVersion`, e.g. `v1.35.8`).
    async fn server_version(&self) -> ApiResult<String>;
    /// The cluster's fingerprint (versions, digests, config hash) written by an earlier run, if any.
    async fn read_fingerprint(&self) -> ApiResult<Option<BTreeMap<String, String>>>;
    /// Records the cluster's fingerprint, for `--reuse`.
    async fn write_fingerprint(&self, entries: &BTreeMap<String, String>) -> ApiResult<()>;
    /// Evidence files (name, content) for a failure bundle: events, pods, webhooks, policies, logs.
    async fn evidence(&self, namespaces: &[String], manager_namespace: &str) -> Vec<(String, String)>;

    /// `GET` of an API path, as JSON (the local provider reads what the charts rendered).
    async fn get_json(&self, path: &str) -> ApiResult<Value> {
        Err(ApiFailure::new(format!("GET {path}: not supported by this API")))
    }
    /// The pods in `namespace` matching `selector` that are not terminating, oldest first.
    async fn pods(&self, namespace: &str, selector: &serde_json::Map<String, Value>) -> ApiResult<Vec<Value>> {
        let sel: Vec<String> =
            selector.iter().map(|(k, v)| format!("{k}={}", v.as_str().unwrap_or_default())).collect();
        let list =
            self.get_json(&format!("/api/v1/namespaces/{namespace}/pods?labelSelector={}", sel.join(","))).await?;
        let mut pods: Vec<Value> = list["items"]
            .as_array()
            .cloned()
            .unwrap_or_default()
            .into_iter()
            .filter(|p| p["metadata"]["deletionTimestamp"].is_null())
            .collect();
        pods.sort_by(|a, b| {
            a["metadata"]["creationTimestamp"].as_str().cmp(&b["metadata"]["creationTimestamp"].as_str())
        });
        Ok(pods)
    }
    /// The messages of the events about the object `name` in `namespace`.
    async fn event_messages(&self, namespace: &str, name: &str) -> ApiResult<Vec<String>> {
        let path = format!("/api/v1/namespaces/{namespace}/events?fieldSelector=involvedObject.name={name}");
        let list = self.get_json(&path).await?;
        Ok(list["items"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|e| e["message"].as_str().map(String::from))
            .collect())
    }
    /// `GET` of a non-resource path (`/readyz`), as text; a status other than 200 is an error.
    async fn get_text(&self, path: &str) -> ApiResult<String> {
        Err(ApiFailure::new(format!("GET {path}: not supported by this API")))
    }
    /// Deletes objects (only those kyvtel owns) without waiting until they are gone.
    async fn delete_started(&self, refs: &[Value]) -> ApiResult<()> {
        self.delete(refs, Duration::ZERO).await
    }
    /// A JSON merge patch of the object at an API path.
    async fn merge_patch(&self, path: &str, patch: &Value) -> ApiResult<()> {
        let _ = patch;
        Err(ApiFailure::new(format!("PATCH {path}: not supported by this API")))
    }
    /// A token for a ServiceAccount (TokenRequest).
    async fn create_token(&self, namespace: &str, service_account: &str) -> ApiResult<String> {
        Err(ApiFailure::new(format!("TokenRequest {namespace}/{service_account}: not supported by this API")))
    }
    /// Runs the client pod `pod` to completion (deleting a leftover of the same name first) and
    /// returns its log: what its request from inside the cluster got.
    async fn run_client_pod(&self, pod: &Value, timeout: Duration) -> ApiResult<String> {
        let _ = (pod, timeout);
        Err(ApiFailure::new("running a client pod: not supported by this API"))
    }
    /// Waits for the newest pod matching `selector` (not terminating) that has the container
    /// `container`, and returns it; on timeout, the pods and ReplicaSet conditions last seen.
    async fn injected_pod(
        &self,
        namespace: &str,
        selector: &serde_json::Map<String, Value>,
        container: &str,
        timeout: Duration,
    ) -> ApiResult<Value> {
        let _ = (selector, container, timeout);
        Err(ApiFailure::new(format!("pods in {namespace}: not supported by this API")))
    }
    /// Waits until each Deployment's newest ReplicaSet made a pod, or had its creates refused, and
    /// that stayed so for `quiet`; on timeout, every Deployment still pending and its state.
    async fn settled_workloads(
        &self,
        namespace: &str,
        deployments: &[String],
        quiet: Duration,
        timeout: Duration,
    ) -> ApiResult<Vec<super::injection::Settled>> {
        let _ = (deployments, quiet, timeout);
        Err(ApiFailure::new(format!("workloads in {namespace}: not supported by this API")))
    }
    /// `pod` as the API server would store it (a dry-run create in kube-system); `after_webhook`:
    /// as it defaults a webhook's patch, without the service-account plugin's mounts.
    /// What is left of Helm release `name` in `namespace` (objects, release records) and every
    /// webhook configuration named `webhook_prefix*`, as `Kind namespace/name`.
    async fn release_leftovers(&self, name: &str, namespace: &str, webhook_prefix: &str) -> ApiResult<Vec<String>> {
        let _ = (name, webhook_prefix);
        Err(ApiFailure::new(format!("listing what is left of a release in {namespace}: not supported by this API")))
    }
    /// Every PolicyException in the cluster, as `namespace/name`; none when Kyverno's CRD is not served.
    async fn policy_exceptions(&self) -> ApiResult<Vec<String>> {
        Err(ApiFailure::new("listing PolicyExceptions: not supported by this API"))
    }
    /// Strict server-side dry-run creates of `objects` in `namespace`, retried while a webhook is not
    /// serving; a refusal by a webhook is a denial.
    async fn dry_run_create(&self, objects: &[Value], namespace: &str, timeout: Duration) -> ApiResult<()> {
        let _ = (objects, timeout);
        Err(ApiFailure::new(format!("dry-run creates in {namespace}: not supported by this API")))
    }
    async fn defaulted_pod(&self, pod: &Value, after_webhook: bool) -> ApiResult<Value> {
        let _ = (pod, after_webhook);
        Err(ApiFailure::new("dry-run creates: not supported by this API"))
    }
}
