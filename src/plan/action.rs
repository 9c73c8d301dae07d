//! The typed contents of a plan: one [`Action`] per operation, grouped into [`Phase`]s.

use std::path::PathBuf;
use std::time::Duration;

use serde::Serialize;
use serde_json::Value;

use super::PhaseKind;
use crate::scenario::expect::{DeniedBy, PodExpectation};
use crate::scenario::resolve::Versions;
use crate::tools::CommandLine;

#[allow(clippy::trivially_copy_pass_by_ref)] // serde's `skip_serializing_if` passes a reference
fn is_yes(b: &bool) -> bool {
    *b
}

/// Something to wait for; every wait has a timeout and reports the last observed state.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase", rename_all_fields = "camelCase", tag = "kind")]
pub enum WaitFor {
    /// A Deployment has condition Available=True.
    DeploymentAvailable {
        /// Namespace.
        namespace: String,
        /// Name.
        name: String,
    },
    /// The traffic-manager workload is ready: a Deployment up to 2.31, a StatefulSet from 2.32.
    TrafficManagerReady {
        /// The manager namespace.
        namespace: String,
        /// `Deployment` or `StatefulSet`.
        workload_kind: String,
    },
    /// Every named ClusterPolicy has `status.conditions[type=Ready].status == "True"`.
    PoliciesReady {
        /// Policy names.
        names: Vec<String>,
    },
    /// The workload's newest pod (not terminating) that has the container `container` (the local
    /// provider: injected at admission, never run).
    InjectedPod {
        /// Namespace.
        namespace: String,
        /// The workload's pod selector.
        selector: serde_json::Map<String, Value>,
        /// The injected container.
        container: String,
    },
    /// A pod of the workload whose container fails after admission as expected (kubelet refusal or
    /// error exit), proven from pod status and events.
    ContainerFailure {
        /// Namespace.
        namespace: String,
        /// The workload's pod selector.
        selector: serde_json::Map<String, Value>,
        /// The expected failure.
        failure: crate::scenario::expect::AfterAdmission,
    },
    /// A pod of the workload that did not exist before the intercept, with a ready `traffic-agent`.
    NewAgentPod {
        /// Namespace.
        namespace: String,
        /// The workload's pod selector.
        selector: serde_json::Map<String, Value>,
    },
}

/// Where the evidence for an expected denial is read from. Never a timeout alone.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase", rename_all_fields = "camelCase", tag = "kind")]
pub enum DenialSource {
    /// The stderr of the phase's failed command (e.g. `telepresence helm install`).
    CommandOutput,
    /// The API error returned by the phase's apply.
    ApplyError,
    /// The workload's ReplicaSets: `ReplicaFailure` conditions and `FailedCreate` events.
    Workload {
        /// Namespace.
        namespace: String,
        /// Deployment name.
        name: String,
    },
}

/// One operation. Each variant is executed by one function of the runner.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase", rename_all_fields = "camelCase", tag = "op")]
pub enum Action {
    /// Run an external command.
    Run {
        /// The command.
        command: CommandLine,
        /// Its time limit.
        #[serde(serialize_with = "crate::duration::serialize")]
        timeout: Duration,
        /// The step expects this command to fail (an expected denial); its output is evidence.
        expect_failure: bool,
        /// A failure is recorded but does not fail the phase (e.g. stopping daemons that may not run).
        #[serde(default, skip_serializing_if = "std::ops::Not::not")]
        best_effort: bool,
    },
    /// Run an external command and write its stdout to a run-private file, replacing it
    /// (`kind get kubeconfig` into the run's kubeconfig).
    SaveOutput {
        /// The command.
        command: CommandLine,
        /// Where its stdout goes.
        path: PathBuf,
        /// Its time limit.
        #[serde(serialize_with = "crate::duration::serialize")]
        timeout: Duration,
    },
    /// Write a run-private file.
    WriteFile {
        /// Where.
        path: PathBuf,
        /// What.
        contents: String,
    },
    /// Server-side apply with strict field validation, retried while the policy webhook starts.
    Apply {
        /// What is applied, for people.
        label: String,
        /// The namespace for namespaced objects.
        namespace: Option<String>,
        /// The manifests, exactly as applied.
        objects: Vec<Value>,
        /// Time limit, including retries.
        #[serde(serialize_with = "crate::duration::serialize")]
        timeout: Duration,
        /// The step expects the apply to be denied.
        expect_failure: bool,
    },
    /// Wait for a condition.
    Wait {
        /// The condition.
        until: WaitFor,
        /// Its time limit.
        #[serde(serialize_with = "crate::duration::serialize")]
        timeout: Duration,
    },
    /// Strict server-side dry-run creates of the objects: admission is asked, nothing is stored.
    DryRunCreate {
        /// What the objects are, for messages.
        label: String,
        /// The namespace for namespaced objects.
        namespace: String,
        /// The manifests, exactly as sent.
        objects: Vec<Value>,
        /// Time limit, including retries while a webhook is not serving.
        #[serde(serialize_with = "crate::duration::serialize")]
        timeout: Duration,
        /// The step expects a denial.
        expect_failure: bool,
    },
    /// A strict server-side dry-run create of the canary Pod, retried until Kyverno denies it.
    CanaryDenied {
        /// The canary Pod.
        pod: Value,
        /// Time limit.
        #[serde(serialize_with = "crate::duration::serialize")]
        timeout: Duration,
    },
    /// The cluster's PolicyExceptions are exactly `expected` (`namespace/name`, any order).
    PolicyExceptions {
        /// The exceptions that must exist, and no other.
        expected: Vec<String>,
    },
    /// Nothing of Helm release `release` in `namespace` is left (no object carrying its Helm
    /// annotations, no release record) and no webhook configuration named `webhook_prefix*`;
    /// waits for deletions in flight, and names what is left on timeout.
    ReleaseGone {
        /// The release.
        release: String,
        /// Its namespace.
        namespace: String,
        /// The webhook configurations' name prefix, e.g. `agent-injector-webhook-`.
        webhook_prefix: String,
        /// Time limit.
        #[serde(serialize_with = "crate::duration::serialize")]
        timeout: Duration,
    },
    /// Prove an expected denial from evidence, and match it against the expectation.
    ProveDenial {
        /// Where the denial text is read.
        source: DenialSource,
        /// The violations that must appear.
        expected: Vec<DeniedBy>,
        /// No violation of another policy or rule may appear.
        only: bool,
        /// The denial must be Pod Security Admission's, with these checks (then `expected` is empty).
        #[serde(skip_serializing_if = "Option::is_none")]
        pod_security: Option<crate::scenario::expect::PodSecurityDenial>,
        /// Time limit for the evidence to appear.
        #[serde(serialize_with = "crate::duration::serialize")]
        timeout: Duration,
    },
    /// Remember the workload's current pods, so that a later wait can tell new ones.
    RecordPods {
        /// Namespace.
        namespace: String,
        /// The pod selector.
        selector: serde_json::Map<String, Value>,
    },
    /// Serve HTTP on `127.0.0.1:<port>`, answering every request with the per-run token.
    Serve {
        /// The intercept's local port.
        port: u16,
    },
    /// Request `url` through the Telepresence connection; the answer must carry the per-run token.
    Request {
        /// The URL; `{clusterIP:<namespace>/<service>}` is resolved from the Service at run time.
        url: String,
        /// Time limit, including retries.
        #[serde(serialize_with = "crate::duration::serialize")]
        timeout: Duration,
    },
    /// Run `pod` (a short-lived client that requests `url` from inside the cluster and prints the
    /// answer, then `kyvtel-http-status=<code>`); the answer must carry the per-run token. The pod is
    /// deleted first if a previous run left it, and by the teardown.
    ClientRequest {
        /// The client pod's manifest.
        pod: Value,
        /// The URL it requests (cluster DNS).
        url: String,
        /// Time limit: the pod created, run and its log read.
        #[serde(serialize_with = "crate::duration::serialize")]
        timeout: Duration,
    },
    /// Judge the intercepted pod with the outcome engine.
    VerifyPod {
        /// Namespace.
        namespace: String,
        /// The pod selector.
        selector: serde_json::Map<String, Value>,
        /// The expectation groups whose `when` holds for the plan's versions.
        expectations: Vec<PodExpectation>,
        /// The injection model to compare the pod with (from the same live inputs); a difference
        /// is model drift.
        #[serde(skip_serializing_if = "Option::is_none")]
        model: Option<ModelInput>,
    },
    /// Compare each Deployment's pod, as the injector made it (or refused it), with the injection
    /// model's prediction from the same inputs: its ReplicaSet's template and the namespace's Services.
    CompareModel {
        /// Namespace.
        namespace: String,
        /// The Deployments.
        workloads: Vec<String>,
        /// The model's other inputs.
        model: ModelInput,
        /// Time limit for every Deployment's pod (or refusal) to settle.
        #[serde(serialize_with = "crate::duration::serialize")]
        timeout: Duration,
    },
    /// Restart the workload (`kubectl rollout restart` equivalent: a pod-template annotation).
    RestartWorkload {
        /// Namespace.
        namespace: String,
        /// Deployment name.
        name: String,
    },
    /// Delete objects (ignoring ones already gone) and wait until they are gone.
    Delete {
        /// What is deleted, for people.
        label: String,
        /// `apiVersion`, `kind`, `namespace`, `name` of each object.
        objects: Vec<Value>,
        /// Time limit.
        #[serde(serialize_with = "crate::duration::serialize")]
        timeout: Duration,
        /// Wait until they are gone. `false` only where a later check waits (a local member's
        /// namespaces: the cell's reset check waits for all of them at once).
        #[serde(skip_serializing_if = "is_yes")]
        wait: bool,
    },
    /// Wait until none of these files exists (a daemon's socket after it was stopped).
    PathsGone {
        /// The files.
        paths: Vec<PathBuf>,
        /// Time limit.
        #[serde(serialize_with = "crate::duration::serialize")]
        timeout: Duration,
    },
    /// Stop the local HTTP server.
    StopServer {
        /// Its port.
        port: u16,
    },
    /// Perform the teardown entry `index` now (e.g. `leave`), so that teardown skips it later.
    Undo {
        /// Index into [`Plan::teardown`] registration order.
        index: usize,
    },
    /// An operation of the local provider (its components, charts and processes).
    Local(super::providers::local::LocalOp),
    /// The step cannot run on this provider: the phase is reported skipped with the reason, never passed.
    Skip {
        /// Why, e.g. `local provider: no kubelet`.
        reason: String,
    },
    /// `action` runs only when the cell's stack started this way (the local provider's warm start
    /// restores what the cold start's installs created).
    Only {
        /// Cold or warm.
        start: super::providers::local::StackStart,
        /// The action.
        action: Box<Action>,
    },
}

/// A command that gathers evidence when a phase fails or the run is cancelled. Gathering runs
/// before the teardown, while the cluster and the Telepresence daemons still exist; best effort.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Gather {
    /// The name its files get in the evidence bundle (`<name>__<path>`).
    pub name: String,
    /// The command.
    pub command: CommandLine,
    /// Its time limit.
    #[serde(serialize_with = "crate::duration::serialize")]
    pub timeout: Duration,
    /// The run-private file or directory the command writes; the bundle adds it redacted (a zip
    /// member by member), then it is removed.
    pub output: PathBuf,
}

/// One entry of the teardown stack, registered by the phase that set something up.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Teardown {
    /// What is undone, for people.
    pub label: String,
    /// The phase that registered it; it runs only if that phase started.
    pub registered_by: PhaseKind,
    /// The actions that undo it, in order.
    pub actions: Vec<Action>,
    /// Actions used instead when the registering phase failed (e.g. `--no-hooks`).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub on_failure: Vec<Action>,
    /// Skipped when the cluster is kept (`--keep`, `--reuse`).
    pub skip_if_kept: bool,
    /// Undoes a Helm install. When that install did not succeed, it runs (as `on_failure`, if
    /// given) only on a cluster kyvtel owns: on an existing cluster the release may be someone
    /// else's, and is left alone.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub undoes_install: bool,
    /// Undoes only objects inside the cluster: skipped when an entry of the same plan that
    /// [`Teardown::deletes_cluster`] will run (emptying a cluster that is deleted anyway only costs
    /// time and failures), run otherwise (`existing`, `--keep`/`--reuse`, a cell member's reset).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub cluster_only: bool,
    /// Deletes the whole cluster (kind).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub deletes_cluster: bool,
}

/// One phase: a scenario step (or an implicit setup/assert phase) and its actions.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Phase {
    /// What the phase is; printed as its kebab-case name, e.g. `install-kyverno`.
    #[serde(rename = "name")]
    pub kind: PhaseKind,
    /// Whether the scenario expects a denial in this phase.
    pub expects_denial: bool,
    /// The actions, in order.
    pub actions: Vec<Action>,
}

/// A resolved, ordered plan for one scenario.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Plan {
    /// The scenario name.
    pub scenario: String,
    /// The scenario file.
    pub source: PathBuf,
    /// The versions, resolved against the pins.
    pub versions: Versions,
    /// Where the plan runs.
    pub provider: super::provider::Provider,
    /// The kind cluster name.
    pub cluster: String,
    /// The workload's namespace.
    pub app_namespace: String,
    /// The workload (Deployment) name.
    pub workload: String,
    /// The traffic-manager's namespace.
    pub manager_namespace: String,
    /// The run directory.
    pub run_dir: PathBuf,
    /// The Telepresence binary every `telepresence` command runs, when the scenario needs a version
    /// other than the pinned default (`<tools>/telepresence-<version>/telepresence`); `None` runs the
    /// default (tools directory, then PATH).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub telepresence_binary: Option<PathBuf>,
    /// The run-private environment (the union over tools; each command carries its own part).
    pub env: Vec<(String, String)>,
    /// Warnings that do not stop the run (e.g. an unsupported Kubernetes version).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub warnings: Vec<String>,
    /// The phases, in order.
    pub phases: Vec<Phase>,
    /// Evidence gathered on failure or cancellation, before the teardown.
    pub evidence: Vec<Gather>,
    /// The teardown stack in registration order; it runs in reverse (LIFO).
    pub teardown: Vec<Teardown>,
}

impl Plan {
    /// The teardown entries in the order they run (LIFO).
    pub fn teardown_order(&self) -> impl Iterator<Item = (usize, &Teardown)> {
        self.teardown.iter().enumerate().rev()
    }
}

/// What the injection model needs besides the live pod template and Services.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ModelInput {
    /// The Telepresence version.
    pub telepresence: String,
    /// The Helm values of the install.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub values: Option<Value>,
    /// The traffic-manager's namespace.
    pub manager_namespace: String,
    /// What makes the injector act.
    pub trigger: crate::predict::inject::Trigger,
    /// The provider the run uses (`kind`, `local`, ...), recorded with the drift.
    pub provider: String,
    /// The cluster domain the manager sees (none for the local provider's host process).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cluster_domain: Option<String>,
}

impl ModelInput {
    /// The model's view of the installation.
    #[must_use]
    pub fn telepresence(&self) -> crate::predict::inject::Telepresence<'_> {
        crate::predict::inject::Telepresence {
            version: crate::scenario::version::Version::parse(&self.telepresence)
                .unwrap_or_else(|| crate::scenario::version::Version::parse("0").unwrap_or_else(|| unreachable!())),
            values: self.values.as_ref(),
        }
    }
}
