//! The Kubernetes API layer: everything kyvtel asks of a cluster's API server, through kube-rs.
//!
//! One module per concern, each with async functions that take a [`::kube::Client`]:
//! - [`apply`]: multi-document manifests with discovery and strict server-side apply, retried while
//!   the Kyverno policy webhook starts; labels what it creates ([`ownership::Owner`]).
//! - [`dry_run`]: a strict server-side dry-run Pod create (the canary gate).
//! - [`wait`]: composable predicates and waits that report the last observed state on timeout.
//! - [`denials`]: raw denial messages of a workload (ReplicaSet conditions, events).
//! - [`evidence`]: events, pod YAML, webhook configurations, policy statuses, logs for the bundle.
//! - [`fingerprint`]: the `--reuse` fingerprint ConfigMap.
//! - [`ownership`]: the harness labels and the "is this ClusterPolicy ours?" check.
//! - [`release`]: what is left of a Helm release (its objects, records, webhook configurations).
//!
//! [`api::ClusterApi`] is every cluster operation a run needs, behind one trait (the plan's waits
//! included), so that the local provider and the executor share it and tests can double it.
//!
//! Errors are [`KubeError`]; it converts into [`crate::Error`] (exit 3, or exit 3 with a
//! "refused" prerequisite message for ownership and fingerprint refusals).

pub mod api;
pub mod apply;
pub mod client_pod;
pub mod denials;
pub mod dry_run;
pub mod evidence;
pub mod fingerprint;
pub mod injection;
pub mod ownership;
pub mod release;
pub mod wait;

use std::path::Path;
use std::time::Duration;

use ::kube::config::{KubeConfigOptions, Kubeconfig};

/// The field manager kyvtel uses for server-side apply and creates.
pub const FIELD_MANAGER: &str = "kyvtel";

/// The kind of a workload whose pods kyvtel waits for or judges.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize)]
pub enum WorkloadKind {
    /// `apps/v1` Deployment (pods through ReplicaSets). The traffic-manager up to Telepresence 2.31.
    Deployment,
    /// `apps/v1` StatefulSet. The traffic-manager from Telepresence 2.32 (facts.md §4).
    StatefulSet,
}

/// A workload by kind, namespace and name.
#[derive(Debug, Clone, PartialEq, Eq, Hash, serde::Serialize)]
pub struct WorkloadRef {
    /// Deployment or StatefulSet.
    pub kind: WorkloadKind,
    /// Its namespace.
    pub namespace: String,
    /// Its name.
    pub name: String,
}

impl WorkloadRef {
    /// A Deployment reference.
    pub fn deployment(namespace: impl Into<String>, name: impl Into<String>) -> Self {
        WorkloadRef { kind: WorkloadKind::Deployment, namespace: namespace.into(), name: name.into() }
    }

    /// A StatefulSet reference.
    pub fn statefulset(namespace: impl Into<String>, name: impl Into<String>) -> Self {
        WorkloadRef { kind: WorkloadKind::StatefulSet, namespace: namespace.into(), name: name.into() }
    }
}

impl WorkloadKind {
    /// The object's `kind`, e.g. `Deployment`.
    #[must_use]
    pub const fn name(self) -> &'static str {
        match self {
            WorkloadKind::Deployment => crate::names::kind::DEPLOYMENT,
            WorkloadKind::StatefulSet => crate::names::kind::STATEFUL_SET,
        }
    }
}

impl std::fmt::Display for WorkloadRef {
    /// `deployment ns/name` or `statefulset ns/name`.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} {}/{}", self.kind.name().to_ascii_lowercase(), self.namespace, self.name)
    }
}

/// Errors of the Kubernetes API layer.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum KubeError {
    /// An API call failed; `context` says which one.
    #[error("{context}: {source}")]
    Api {
        /// What kyvtel was doing, e.g. `apply ClusterPolicy/require-security-context`.
        context: String,
        /// The kube-rs error (webhook denials arrive as `kube::Error::Api` with a `Status`).
        #[source]
        source: Box<::kube::Error>,
    },
    /// A manifest document is not a usable Kubernetes object.
    #[error("manifest document {index}: {message}")]
    Manifest {
        /// 0-based index of the document in the list given to [`apply::apply`].
        index: usize,
        /// What is wrong.
        message: String,
    },
    /// A wait did not reach its condition in time. Carries the last state seen.
    #[error("timed out after {timeout:?} waiting for {what}; last observed: {last_observed}")]
    TimedOut {
        /// What was awaited, e.g. `deployment kyverno/kyverno-admission-controller available`.
        what: String,
        /// The limit.
        timeout: Duration,
        /// A one-paragraph summary of the last object(s) observed, or `nothing observed`.
        last_observed: String,
    },
    /// A wait ended early because the awaited thing can no longer succeed.
    #[error("{what} failed: {reason}; last observed: {last_observed}")]
    WaitFailed {
        /// What was awaited.
        what: String,
        /// Why it cannot succeed (e.g. `ProgressDeadlineExceeded`, an API error).
        reason: String,
        /// A summary of the last object(s) observed.
        last_observed: String,
    },
    /// The harness refuses to touch something that is not its own, or to reuse a cluster that does not
    /// match.
    #[error("refused: {0}")]
    Refused(String),
    /// The kubeconfig could not be loaded.
    #[error("kubeconfig {path}: {message}")]
    Kubeconfig {
        /// The file.
        path: String,
        /// What went wrong.
        message: String,
    },
}

impl KubeError {
    /// Wraps a kube-rs error with what kyvtel was doing.
    pub fn api(context: impl Into<String>, source: ::kube::Error) -> Self {
        KubeError::Api { context: context.into(), source: Box::new(source) }
    }

    /// The API `Status` of a failed call, when the server answered with one.
    #[must_use]
    pub fn status(&self) -> Option<&::kube::core::Status> {
        match self {
            KubeError::Api { source, .. } => match source.as_ref() {
                ::kube::Error::Api(status) => Some(status),
                _ => None,
            },
            _ => None,
        }
    }
}

impl From<KubeError> for crate::Error {
    fn from(e: KubeError) -> Self {
        match e {
            KubeError::Refused(message) => crate::Error::Prerequisite(message),
            other => crate::Error::infra("kubernetes API", other),
        }
    }
}

/// Builds a client for a kubeconfig file and optional context (never `~/.kube/config` implicitly).
///
/// # Errors
/// [`KubeError::Kubeconfig`] when the file cannot be read or the context does not exist.
pub async fn client_for(kubeconfig: &Path, context: Option<&str>) -> Result<::kube::Client, KubeError> {
    let fail = |message: String| KubeError::Kubeconfig { path: kubeconfig.display().to_string(), message };
    let file = Kubeconfig::read_from(kubeconfig).map_err(|e| fail(e.to_string()))?;
    let options = KubeConfigOptions { context: context.map(str::to_string), ..KubeConfigOptions::default() };
    let config = ::kube::Config::from_custom_kubeconfig(file, &options).await.map_err(|e| fail(e.to_string()))?;
    ::kube::Client::try_from(config).map_err(|e| fail(e.to_string()))
}

/// `t` as Go's `time.RFC3339` formats it in UTC: `2026-12-03T12:00:00Z` (whole seconds).
#[must_use]
pub fn rfc3339(t: k8s_openapi::jiff::Timestamp) -> String {
    t.strftime("%Y-%m-%dT%H:%M:%SZ").to_string()
}

/// The `Status` inside a kube-rs error, if the API server answered with one.
#[must_use]
pub fn api_status(err: &::kube::Error) -> Option<&::kube::core::Status> {
    match err {
        ::kube::Error::Api(status) => Some(status),
        _ => None,
    }
}

/// Whether an API server message says it could not call an admission webhook (refused, or no
/// answer within the webhook's `timeoutSeconds`): an infrastructure failure, never a denial.
// upstream: kubernetes/kubernetes staging/src/k8s.io/apiserver/pkg/util/webhook/error.go
// (ErrCallingWebhook: `failed calling webhook "<name>": <cause>`)
#[must_use]
pub fn webhook_call_failed(message: &str) -> bool {
    message.contains("failed calling webhook")
}

/// Whether an error means "the admission webhook could not be called" (it is not serving yet).
///
/// The API server turns a transport failure towards a webhook whose failurePolicy is Fail into an
/// InternalError (HTTP 500) whose message contains `failed calling webhook "<name>": <cause>`, e.g.
/// `connect: connection refused` or `no endpoints available for service`.
// upstream: kubernetes/kubernetes staging/src/k8s.io/apiserver/pkg/util/webhook/error.go (ErrCallingWebhook.Error)
// upstream: kubernetes/kubernetes staging/src/k8s.io/apiserver/pkg/admission/plugin/webhook/validating/dispatcher.go
//           (ErrCallingWebhook -> apierrors.NewInternalError when failing closed)
#[must_use]
pub fn is_webhook_unavailable(err: &::kube::Error) -> bool {
    // A webhook that timed out is serving, too slowly: retrying would only hide it (an
    // infrastructure failure). Go's net/http says `context deadline exceeded` or `Client.Timeout`.
    api_status(err).is_some_and(|s| {
        s.code == 500
            && webhook_call_failed(&s.message)
            && !s.message.contains("context deadline exceeded")
            && !s.message.contains("Client.Timeout")
    })
}

impl KubeError {
    /// Whether the API server did not answer (a transport error: refused, reset, TLS, timed out)
    /// or could not call an admission webhook: the infrastructure's failure, never a verdict.
    #[must_use]
    pub fn is_unreachable(&self) -> bool {
        match self {
            KubeError::Api { source, .. } => match source.as_ref() {
                ::kube::Error::Api(s) => s.code == 500 && webhook_call_failed(&s.message),
                ::kube::Error::HyperError(_) | ::kube::Error::Service(_) | ::kube::Error::RustlsTls(_) => true,
                _ => false,
            },
            _ => false,
        }
    }
}

/// Whether an error is a 404 Not Found from the API server.
#[must_use]
pub fn is_not_found(err: &::kube::Error) -> bool {
    api_status(err).is_some_and(|s| s.code == 404)
}

/// A raw API response body and the server's `Warning` headers, from [`send`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Answer {
    /// The response body (JSON).
    pub body: String,
    /// The warning texts, unquoted (`299 - "text"` becomes `text`).
    pub warnings: Vec<String>,
}

/// One raw API call kyvtel makes through [`send`].
#[derive(Debug, Clone, Copy)]
pub enum Call<'a> {
    /// Server-side apply of `object` named `name`: `PatchParams::apply("kyvtel").force().validation_strict()`.
    Apply {
        /// The object's name.
        name: &'a str,
        /// The full object to apply.
        object: &'a serde_json::Value,
    },
    /// A strict server-side dry-run create: `POST ...?&dryRun=All&fieldValidation=Strict` (facts.md §6:
    /// `PostParams` has no field validation, so the query is appended).
    DryRunCreate {
        /// The object to create.
        object: &'a serde_json::Value,
    },
}

/// Sends `call` to the collection at `url_path` with `client.send`, keeping the `Warning` headers that
/// `Api` methods drop (facts.md §6). A 4xx/5xx answer becomes `kube::Error::Api` with the server's
/// `Status`, as kube-rs does for its own calls; a warning is never an error (facts.md §3).
///
/// # Errors
/// The kube-rs error of the call, or the API `Status` of a refused one.
pub async fn send(client: &::kube::Client, url_path: &str, call: Call<'_>) -> Result<Answer, ::kube::Error> {
    let builder = ::kube::core::Request::new(url_path);
    let request = match call {
        Call::Apply { name, object } => {
            let params = ::kube::api::PatchParams::apply(FIELD_MANAGER).force().validation_strict();
            builder.patch(name, &params, &::kube::api::Patch::Apply(object)).map_err(::kube::Error::BuildRequest)?
        }
        Call::DryRunCreate { object } => {
            let body = serde_json::to_vec(object).map_err(::kube::Error::SerdeError)?;
            let mut request =
                builder.create(&::kube::api::PostParams::default(), body).map_err(::kube::Error::BuildRequest)?;
            let uri = format!("{}&dryRun=All&fieldValidation=Strict", request.uri());
            *request.uri_mut() = uri.parse().map_err(|e| ::kube::Error::HttpError(From::from(e)))?;
            request
        }
    };
    let response = client.send(request.map(::kube::client::Body::from)).await?;
    let warnings =
        response.headers().get_all("warning").iter().filter_map(|v| v.to_str().ok()).map(warning_text).collect();
    let code = response.status().as_u16();
    let bytes = response.into_body().collect_bytes().await?;
    let body = String::from_utf8_lossy(&bytes).into_owned();
    if code >= 400 {
        let status = serde_json::from_str::<::kube::core::Status>(&body)
            .unwrap_or_else(|_| ::kube::core::Status::failure(body.trim(), "UnparsedErrorBody").with_code(code));
        return Err(::kube::Error::Api(status.boxed()));
    }
    Ok(Answer { body, warnings })
}

/// The text of one `Warning` header: `299 - "text"` → `text` (quotes unescaped). Anything else is
/// returned as is.
// upstream: kubernetes/kubernetes staging/src/k8s.io/apimachinery/pkg/util/net/http.go (ParseWarningHeader:
//           code, agent "-", quoted text)
#[must_use]
pub fn warning_text(header: &str) -> String {
    let Some(start) = header.find('"') else {
        return header.to_string();
    };
    let quoted = header[start + 1..].trim_end();
    let quoted = quoted.strip_suffix('"').unwrap_or(quoted);
    quoted.replace("\\\"", "\"").replace("\\\\", "\\")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn warning_text_unquotes() {
        assert_eq!(warning_text(r#"299 - "ClusterPolicy is deprecated""#), "ClusterPolicy is deprecated");
        assert_eq!(warning_text(r#"299 - "say \"hi\"""#), r#"say "hi""#);
        assert_eq!(warning_text("plain"), "plain");
    }

    #[test]
    fn webhook_unavailable_is_500_failed_calling_webhook_only() {
        let e = |code, msg: &str| {
            ::kube::Error::Api(::kube::core::Status::failure(msg, "InternalError").with_code(code).boxed())
        };
        assert!(is_webhook_unavailable(&e(
            500,
            "Internal error occurred: failed calling webhook \"validate-policy.kyverno.svc\": connect: connection refused"
        )));
        assert!(!is_webhook_unavailable(&e(400, "admission webhook \"x\" denied the request: no")));
        assert!(!is_webhook_unavailable(&e(500, "etcdserver: request timed out")));
        // A webhook that answers too slowly is not "not serving yet": no retry hides it.
        assert!(!is_webhook_unavailable(&e(
            500,
            "Internal error occurred: failed calling webhook \"validate.kyverno.svc-fail\": failed to call webhook: \
             Post \"https://127.0.0.1:9443/validate/fail?timeout=10s\": context deadline exceeded"
        )));
    }
}
