//! Why a step failed, typed. The executor tells an infrastructure failure from a policy verdict by
//! the variant ([`StepError::is_infra`]), never by the text: it sets the result's `infra` (exit 3),
//! and the report's verdict then says "infrastructure failure", which `--retries` reads.

use crate::kube::api::{ApiFailure, ApiFailureKind};
use crate::tools::RunError;

/// What broke in the infrastructure: never a verdict on the policies or on Telepresence.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum InfraCause {
    /// A component of the run exited or hangs (the process table's report).
    #[error("{0}")]
    Component(String),
    /// `GET /version` got no answer after the step failed.
    #[error("the API server does not answer ({0})")]
    ApiServerGone(String),
    /// A write failed with ENOSPC.
    #[error("the disk is full")]
    DiskFull,
    /// The API server could not call an admission webhook (refused, timed out).
    #[error("a webhook could not be called")]
    WebhookUnreachable,
    /// The local provider's own operation failed (start, snapshot, credentials).
    #[error("the local provider failed")]
    Provider,
    /// A prerequisite is missing (passwordless sudo).
    #[error("a prerequisite is missing")]
    Prerequisite,
    /// A file, port or process of the run could not be used (write, bind, spawn).
    #[error("a file, port or process of the run could not be used")]
    Io,
}

/// What kind of failure a phase had, for programs reading the reports (its reason says it for
/// people): only `infrastructure` is exit 3 and retried.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub enum FailureKind {
    /// A wait or a command ran out of time.
    TimedOut,
    /// Admission refused what was expected admitted.
    Denied,
    /// Admission let through what was expected denied.
    Admitted,
    /// A command exited non-zero.
    CommandFailed,
    /// An expectation did not hold.
    Mismatch,
    /// A cluster operation failed otherwise.
    Api,
    /// The infrastructure failed.
    Infrastructure,
    /// Ctrl-C, or the step was abandoned.
    Interrupted,
    /// The step could not run here.
    Skipped,
}

/// Why one action failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum StepError {
    /// A wait or a command ran out of time; the text carries the last observed state.
    #[error("{0}")]
    TimedOut(String),
    /// Admission refused what the scenario expects admitted.
    #[error("{subject} was denied, but the scenario expects it admitted: {denial}")]
    Denied {
        /// What was refused.
        subject: String,
        /// The API server's denial text (its last lines).
        denial: String,
    },
    /// Admission let through what the scenario expects denied.
    #[error("{subject}, but the scenario expects a denial")]
    Admitted {
        /// What happened, e.g. ``ClusterPolicy x was admitted``.
        subject: String,
    },
    /// An external command exited non-zero.
    #[error("`{command}` exited {status}: {tail}")]
    CommandFailed {
        /// The command, as displayed.
        command: String,
        /// How it ended, e.g. `1` or `signal 9`.
        status: String,
        /// The last lines it printed.
        tail: String,
    },
    /// An expectation did not hold: the verdict.
    #[error("{0}")]
    Mismatch(String),
    /// A cluster operation failed otherwise.
    #[error("{context}{sep}{failure}", sep = if context.is_empty() { "" } else { ": " })]
    Api {
        /// What kyvtel was doing, e.g. `apply Deployment demo`.
        context: String,
        /// The typed failure.
        failure: ApiFailure,
    },
    /// The infrastructure failed; `detail` is what the step saw.
    #[error("infrastructure failure: {cause}; {detail}")]
    Infra {
        /// What broke.
        cause: InfraCause,
        /// What the step saw.
        detail: String,
    },
    /// The step was abandoned: Ctrl-C, or a component of the run died under it.
    #[error("{0}")]
    Interrupted(String),
    /// The step cannot run here; the reason says why.
    #[error("skipped: {0}")]
    Skipped(String),
}

impl StepError {
    /// An API failure with what kyvtel was doing. A webhook the API server could not call is the
    /// infrastructure's; any other unanswered call is left to the executor's `GET /version` probe
    /// (a server that answers leaves the step's own failure); a timed-out wait keeps its last
    /// observed state.
    pub fn api(context: impl Into<String>, failure: ApiFailure) -> Self {
        let context = context.into();
        match failure.kind {
            ApiFailureKind::Unreachable if crate::kube::webhook_call_failed(&failure.message) => {
                let detail = if context.is_empty() { failure.message } else { format!("{context}: {failure}") };
                StepError::Infra { cause: InfraCause::WebhookUnreachable, detail }
            }
            ApiFailureKind::TimedOut if context.is_empty() => StepError::TimedOut(failure.message),
            ApiFailureKind::TimedOut => StepError::TimedOut(format!("{context}: {failure}")),
            _ => StepError::Api { context, failure },
        }
    }

    /// A command that could not run or did not finish.
    pub fn run(e: RunError) -> Self {
        match e {
            RunError::Timeout { .. } => StepError::TimedOut(e.to_string()),
            RunError::NotFound(_) => StepError::Infra { cause: InfraCause::Prerequisite, detail: e.to_string() },
            RunError::Io { .. } => Self::io(e.to_string()),
        }
    }

    /// A failed read or write of the run's files: a full disk is named as such.
    pub fn io(detail: String) -> Self {
        let cause = if is_enospc(&detail) { InfraCause::DiskFull } else { InfraCause::Io };
        StepError::Infra { cause, detail }
    }

    /// Its kind, as the reports give it.
    #[must_use]
    pub fn kind(&self) -> FailureKind {
        match self {
            StepError::TimedOut(_) => FailureKind::TimedOut,
            StepError::Denied { .. } => FailureKind::Denied,
            StepError::Admitted { .. } => FailureKind::Admitted,
            StepError::CommandFailed { .. } => FailureKind::CommandFailed,
            StepError::Mismatch(_) => FailureKind::Mismatch,
            StepError::Api { .. } => FailureKind::Api,
            StepError::Infra { .. } => FailureKind::Infrastructure,
            StepError::Interrupted(_) => FailureKind::Interrupted,
            StepError::Skipped(_) => FailureKind::Skipped,
        }
    }

    /// The failure is the infrastructure's (exit 3, retried by `--retries`), never a verdict.
    #[must_use]
    pub fn is_infra(&self) -> bool {
        matches!(self, StepError::Infra { .. })
    }

    /// This failure, as the infrastructure's `cause` (unchanged when it already is one).
    #[must_use]
    pub fn because(self, cause: InfraCause) -> Self {
        match self {
            infra @ StepError::Infra { .. } => infra,
            other => StepError::Infra { cause, detail: other.to_string() },
        }
    }
}

/// The infrastructure cause a tool's or the API server's own words name, if any: ENOSPC (a full
/// disk) or "failed calling webhook" (a webhook the API server could not call).
#[must_use]
pub fn cause_named_in(text: &str) -> Option<InfraCause> {
    if is_enospc(text) {
        Some(InfraCause::DiskFull)
    } else if crate::kube::webhook_call_failed(text) {
        Some(InfraCause::WebhookUnreachable)
    } else {
        None
    }
}

/// ENOSPC as Rust and Go print it (strerror(28)): the machine's fault, whichever process wrote.
#[must_use]
pub fn is_enospc(text: &str) -> bool {
    text.to_ascii_lowercase().contains("no space left on device")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_infrastructure_is_infra() {
        let verdicts = [
            StepError::Mismatch("runAsUser: expected 1000, actual 0".into()),
            StepError::Admitted { subject: "Pod a was admitted".into() },
            StepError::api("apply", ApiFailure::denied("admission webhook \"validate.kyverno.svc-fail\" denied")),
            StepError::api("wait", ApiFailure::timed_out("timed out; last observed: Pending")),
            StepError::CommandFailed { command: "helm install".into(), status: "1".into(), tail: "x".into() },
        ];
        for v in verdicts {
            assert!(!v.is_infra(), "{v:?}");
        }
        // A refused connection is left to the probe of the API server.
        assert!(!StepError::api("apply", ApiFailure::unreachable("connection refused")).is_infra());
        let infra = [
            StepError::api(
                "apply",
                ApiFailure::unreachable(
                    "failed calling webhook \"validate.kyverno.svc-fail\": context deadline exceeded",
                ),
            ),
            StepError::io("write x: No space left on device (os error 28)".into()),
            StepError::Mismatch("x".into()).because(InfraCause::Provider),
        ];
        for i in &infra {
            assert!(i.is_infra(), "{i:?}");
            assert!(i.to_string().starts_with("infrastructure failure: "), "{i}");
        }
        assert!(matches!(&infra[0], StepError::Infra { cause: InfraCause::WebhookUnreachable, .. }));
        assert!(matches!(&infra[1], StepError::Infra { cause: InfraCause::DiskFull, .. }));
    }

    #[test]
    fn a_timed_out_wait_keeps_its_last_observed_state() {
        let e = StepError::api("wait for demo", ApiFailure::timed_out("timed out after 5s; last observed: Pending"));
        assert_eq!(e.to_string(), "wait for demo: timed out after 5s; last observed: Pending");
        assert!(matches!(e, StepError::TimedOut(_)));
    }

    #[test]
    fn an_infra_failure_is_not_wrapped_twice() {
        let e = StepError::io("disk: no space left on device".into()).because(InfraCause::Provider);
        assert!(matches!(e, StepError::Infra { cause: InfraCause::DiskFull, .. }));
        assert_eq!(e.to_string().matches("infrastructure failure").count(), 1);
    }
}
