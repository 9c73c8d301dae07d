//! Strict server-side dry-run creates, and the canary gate built on them.
//!
//! Step 4 of the Kyverno readiness gate (facts.md §3): a known-bad Pod is dry-run created in a test
//! namespace until Kyverno's webhook denies it. Webhook dispatch is asynchronous, so the first attempts
//! may be admitted; the gate retries until it sees the denial or times out. The same check, run after
//! setup in the app namespace, proves the policies are still enforced.

use std::time::Duration;

use ::kube::core::Resource;
use k8s_openapi::api::core::v1::Pod;
use tokio::time::{Instant, sleep};

use super::{Call, KubeError, api_status, is_webhook_unavailable, send};

/// How the API server answered a dry-run create.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Admission {
    /// Admitted (nothing persisted). Carries the server's warnings.
    Admitted {
        /// Warning headers of the answer.
        warnings: Vec<String>,
    },
    /// Refused with an API `Status`: a webhook denial, a validation error, a quota, ...
    Denied(Denial),
}

/// A refused request: the API status, verbatim.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Denial {
    /// HTTP code (a webhook denial defaults to 403).
    pub code: u16,
    /// The status reason, e.g. `Forbidden`, `Invalid`.
    pub reason: String,
    /// The status message, e.g. `pods "x" is forbidden: admission webhook "validate.kyverno.svc-fail"
    /// denied the request: ...`. The outcome parser (`outcome::denial`) reads this.
    pub message: String,
}

impl Denial {
    /// The webhook named in `admission webhook "<name>" denied the request`, if any (matched as a
    /// substring: the API server prefixes it with `<resource> "<name>" is forbidden: `).
    // upstream: kubernetes/kubernetes staging/src/k8s.io/apiserver/pkg/admission/plugin/webhook/errors/statuserror.go
    //           (ToStatusErr: `admission webhook %q denied the request`, default code 403)
    #[must_use]
    pub fn webhook(&self) -> Option<&str> {
        let start = self.message.find("admission webhook \"")? + "admission webhook \"".len();
        let rest = &self.message[start..];
        let end = rest.find('"')?;
        rest[end..].starts_with("\" denied the request").then(|| &rest[..end])
    }
}

/// Dry-run creates `pod` in `namespace` with `dryRun=All&fieldValidation=Strict`.
///
/// # Errors
/// [`KubeError::Api`] when the call fails without an API status (transport), or with a 5xx status: those
/// are not admission decisions. A 4xx answer is [`Admission::Denied`].
pub async fn dry_run_create_pod(
    client: &::kube::Client,
    namespace: &str,
    pod: &serde_json::Value,
) -> Result<Admission, KubeError> {
    let url = Pod::url_path(&(), Some(namespace));
    match send(client, &url, Call::DryRunCreate { object: pod }).await {
        Ok(answer) => Ok(Admission::Admitted { warnings: answer.warnings }),
        Err(e) => match api_status(&e) {
            Some(status) if (400..500).contains(&status.code) => Ok(Admission::Denied(Denial {
                code: status.code,
                reason: status.reason.clone(),
                message: status.message.clone(),
            })),
            _ => Err(KubeError::api(format!("dry-run create of a Pod in {namespace}"), e)),
        },
    }
}

/// The canary gate: dry-run creates `pod` until `webhook` denies it, for at most `timeout`.
///
/// Retries while the pod is admitted (dispatch to a new policy is asynchronous) or the webhook cannot
/// be called yet. Returns the denial, whose message the caller matches against the expected policy.
///
/// # Errors
/// - [`KubeError::WaitFailed`] when another party refuses the pod (e.g. strict validation, another
///   webhook): waiting longer cannot change that;
/// - [`KubeError::TimedOut`] with the last answer when the pod is still admitted at the deadline;
/// - [`KubeError::Api`] for other API failures.
pub async fn await_denial(
    client: &::kube::Client,
    namespace: &str,
    pod: &serde_json::Value,
    webhook: &str,
    timeout: Duration,
    interval: Duration,
) -> Result<Denial, KubeError> {
    let what = format!("canary Pod in {namespace} to be denied by webhook {webhook}");
    let deadline = crate::duration::tokio_deadline(timeout);
    loop {
        let last = match dry_run_create_pod(client, namespace, pod).await {
            Ok(Admission::Denied(denial)) if denial.webhook() == Some(webhook) => {
                return Ok(denial);
            }
            Ok(Admission::Denied(denial)) => {
                return Err(KubeError::WaitFailed {
                    what,
                    reason: "the canary Pod was refused by something else".to_string(),
                    last_observed: format!("{} {}: {}", denial.code, denial.reason, denial.message),
                });
            }
            Ok(Admission::Admitted { warnings }) if warnings.is_empty() => "admitted".to_string(),
            Ok(Admission::Admitted { warnings }) => {
                format!("admitted with warnings: {}", warnings.join("; "))
            }
            Err(KubeError::Api { source, .. }) if is_webhook_unavailable(&source) => {
                format!("webhook not serving: {source}")
            }
            Err(e) => return Err(e),
        };
        if Instant::now() >= deadline {
            return Err(KubeError::TimedOut { what, timeout, last_observed: last });
        }
        sleep(interval).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn denial(message: &str) -> Denial {
        Denial { code: 400, reason: "BadRequest".into(), message: message.into() }
    }

    #[test]
    fn webhook_is_found_after_the_forbidden_prefix() {
        let d = denial(
            "pods \"c\" is forbidden: admission webhook \"validate.kyverno.svc-fail\" denied the request: \n\nresource",
        );
        assert_eq!(d.webhook(), Some("validate.kyverno.svc-fail"));
    }

    #[test]
    fn no_webhook_in_a_validation_error() {
        assert_eq!(
            denial("Pod in version \"v1\" cannot be handled: strict decoding error: unknown field").webhook(),
            None
        );
        assert_eq!(denial("admission webhook \"x\" does not support dry run").webhook(), None);
    }
}
