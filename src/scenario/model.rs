//! The scenario file format, `kyvtel.dev/v1alpha1` `Scenario`. Unknown fields are rejected.
//!
//! Paths inside a scenario are relative to the scenario file's directory.

use std::path::PathBuf;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::expect::{PodExpectation, StepOutcome, When};

/// The only accepted `apiVersion`.
pub const API_VERSION: &str = "kyvtel.dev/v1alpha1";

/// `apiVersion: kyvtel.dev/v1alpha1`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub enum ApiVersion {
    /// The first version of the format.
    #[serde(rename = "kyvtel.dev/v1alpha1")]
    V1Alpha1,
}

/// `kind: Scenario`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub enum ScenarioKind {
    /// A scenario file.
    Scenario,
}

/// One scenario: a recipe variant, how to run it, and what must hold.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[schemars(title = "kyvtel Scenario")]
pub struct Scenario {
    /// Always `kyvtel.dev/v1alpha1`.
    pub api_version: ApiVersion,
    /// Always `Scenario`.
    pub kind: ScenarioKind,
    /// Name and description.
    pub metadata: Metadata,
    /// What to set up, what to do, and what to expect.
    pub spec: Spec,
}

/// Name and description of a scenario.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Metadata {
    /// A DNS-label name, unique in the catalog; also names the kind cluster (`kyvtel-<name>`).
    pub name: String,
    /// What the scenario proves, in a sentence or two.
    pub description: String,
}

/// The body of a scenario.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Spec {
    /// Overrides of the pinned default versions.
    #[serde(default)]
    pub versions: VersionOverrides,
    /// The cluster to create.
    pub cluster: Cluster,
    /// Kyverno: chart values, policies, and exclusions.
    pub kyverno: Kyverno,
    /// Telepresence: manager namespace and Helm values.
    #[serde(default)]
    pub telepresence: Telepresence,
    /// The workload that is intercepted.
    pub workload: Workload,
    /// Labels of the scenario's namespaces (the workload's and the manager's), set where kyvtel
    /// creates them, e.g. Pod Security Admission's `pod-security.kubernetes.io/enforce: restricted`.
    #[serde(default, skip_serializing_if = "std::collections::BTreeMap::is_empty")]
    pub namespaces: std::collections::BTreeMap<String, NamespaceSettings>,
    /// The ordered steps, each one typed.
    pub steps: Vec<Step>,
    /// What must hold once the steps have run.
    #[serde(default)]
    pub expect: Expectations,
}

/// Version overrides; each must be a version known to the pins.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct VersionOverrides {
    /// kind release, e.g. `v0.33.0`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kind: Option<String>,
    /// Node image by digest, e.g. `kindest/node:v1.35.8@sha256:...`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub node_image: Option<String>,
    /// Kyverno Helm chart version, e.g. `3.9.0`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kyverno_chart: Option<String>,
    /// Telepresence version, e.g. `2.32.1`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub telepresence: Option<String>,
}

/// The cluster.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Cluster {
    /// The kind config file, e.g. `../kind-config/default.yaml`.
    pub kind_config: PathBuf,
}

/// Kyverno setup.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Kyverno {
    /// Extra chart values, passed to `helm install` as a values file.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub values: Option<serde_json::Map<String, serde_json::Value>>,
    /// ClusterPolicy files to apply.
    pub policies: Vec<PathBuf>,
    /// Namespaces excluded from named rules, merged into each rule's `exclude.any[].resources.namespaces`.
    #[serde(default)]
    pub exclusions: Vec<Exclusion>,
}

/// Namespaces to exclude from some rules of one ClusterPolicy.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Exclusion {
    /// The ClusterPolicy name.
    pub policy: String,
    /// Rules of that policy to exclude the namespaces from.
    pub rules: Vec<String>,
    /// The namespaces to exclude.
    pub namespaces: Vec<String>,
}

/// Telepresence setup.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Telepresence {
    /// Namespace of the traffic-manager; always passed as `--manager-namespace`.
    #[serde(default = "default_manager_namespace")]
    pub manager_namespace: String,
    /// Helm values file for `telepresence helm install --values`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub values: Option<PathBuf>,
}

fn default_manager_namespace() -> String {
    "ambassador".to_string()
}

impl Default for Telepresence {
    fn default() -> Self {
        Telepresence { manager_namespace: default_manager_namespace(), values: None }
    }
}

/// Settings of one of the scenario's namespaces.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct NamespaceSettings {
    /// Labels added to the Namespace object.
    #[serde(default)]
    pub labels: std::collections::BTreeMap<String, String>,
}

/// The workload under test.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Workload {
    /// The app namespace (created by the harness; never a Kyverno-skipped namespace).
    pub namespace: String,
    /// The Deployment that is intercepted; it must be defined in `manifests`.
    pub name: String,
    /// Manifest files (Deployment, Service, ...), applied into `namespace`.
    pub manifests: Vec<PathBuf>,
}

/// Expectations judged after the steps.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Expectations {
    /// Where the traffic-manager must run (default: the manager namespace).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub traffic_manager_namespace: Option<String>,
    /// The PolicyExceptions (`namespace/name`) that exist in the cluster once set up, and no other:
    /// `[]` proves the policies are not bypassed by an exception (the documented recipe needs none).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub policy_exceptions: Option<Vec<String>>,
    /// Expectations about the intercepted pod, each group optionally version-guarded.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub pod: Vec<PodExpectation>,
}

/// Settings every step accepts.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct StepOptions {
    /// The expected outcome (default `ok`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expect: Option<StepOutcome>,
    /// Overrides the step's default timeout, e.g. `90s`, `5m`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout: Option<String>,
    /// Run the step only when these versions hold; otherwise it is skipped, with the reason.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub when: Option<When>,
}

/// Intercept a workload.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Intercept {
    /// The workload to intercept (a Deployment name).
    pub workload: String,
    /// Local port that receives the intercepted traffic (`--port LOCAL`).
    #[serde(deserialize_with = "port::one")]
    pub port: u16,
    /// The service port to intercept, when the Service has several (`--port LOCAL:SVCPORT`).
    #[serde(default, skip_serializing_if = "Option::is_none", deserialize_with = "port::optional")]
    pub service_port: Option<u16>,
    /// The expected outcome (default `ok`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expect: Option<StepOutcome>,
    /// Overrides the default timeout.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout: Option<String>,
    /// Run the step only when these versions hold; otherwise it is skipped, with the reason.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub when: Option<When>,
}

/// Send HTTP requests to the intercepted Service and expect the local process to answer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct SendTraffic {
    /// The Service to call (defaults to the workload's name).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub service: Option<String>,
    /// The Service port to call.
    #[serde(deserialize_with = "port::one")]
    pub port: u16,
    /// The expected outcome (default `ok`: the per-run token comes back).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expect: Option<StepOutcome>,
    /// Overrides the default timeout.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout: Option<String>,
    /// Run the step only when these versions hold; otherwise it is skipped, with the reason.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub when: Option<When>,
}

/// Ask the API server to admit objects without creating them (a strict server-side dry-run create):
/// a probe of what the policies allow, e.g. a spoofed agent or a bad app container.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Admit {
    /// Manifest files; namespaced objects go into the workload namespace.
    pub manifests: Vec<PathBuf>,
    /// The expected outcome (default `ok`: every object is admitted).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expect: Option<StepOutcome>,
    /// Overrides the default timeout.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout: Option<String>,
    /// Run the step only when these versions hold; otherwise it is skipped, with the reason.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub when: Option<When>,
}

/// One typed step. Written as a one-key map, e.g. `- intercept: {workload: demo, port: 8080}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub enum Step {
    /// `helm install kyverno` from the verified chart, then wait for the admission controller.
    InstallKyverno(StepOptions),
    /// Apply the ClusterPolicies (exclusions merged), wait until Ready and the canary is denied.
    ApplyPolicies(StepOptions),
    /// `telepresence helm install --manager-namespace NS --values FILE`, then wait for the manager.
    InstallTelepresence(StepOptions),
    /// Apply the workload manifests and wait for the Deployment.
    DeployWorkload(StepOptions),
    /// `telepresence connect`.
    Connect(StepOptions),
    /// `telepresence intercept WORKLOAD --port P --mount=false`.
    Intercept(Intercept),
    /// Send real traffic through the intercept.
    SendTraffic(SendTraffic),
    /// Leave the intercept.
    Leave(StepOptions),
    /// Compare every workload's pod, as the agent injector made it, with the injection model's
    /// prediction from the same inputs (a differential check of the model).
    CompareModel(StepOptions),
    /// Dry-run create objects and expect them admitted or denied, e.g. a probe of an exemption.
    Admit(Admit),
    /// Remove the traffic-manager release now, as teardown would (without hooks on a cluster kyvtel
    /// owns), and assert that nothing of it is left: no `agent-injector-webhook-*` configuration, no
    /// object of the release, no release record.
    UninstallTelepresence(StepOptions),
}

impl Step {
    /// The step's kebab-case operation name, as printed in plans and reports.
    pub fn name(&self) -> &'static str {
        match self {
            Step::InstallKyverno(_) => "install-kyverno",
            Step::ApplyPolicies(_) => "apply-policies",
            Step::InstallTelepresence(_) => "install-telepresence",
            Step::DeployWorkload(_) => "deploy-workload",
            Step::Connect(_) => "connect",
            Step::Intercept(_) => "intercept",
            Step::SendTraffic(_) => "send-traffic",
            Step::Leave(_) => "leave",
            Step::CompareModel(_) => "compare-model",
            Step::Admit(_) => "admit",
            Step::UninstallTelepresence(_) => "uninstall-telepresence",
        }
    }

    /// The expected outcome (`ok` when unset).
    pub fn expect(&self) -> StepOutcome {
        let e = match self {
            Step::Intercept(i) => &i.expect,
            Step::SendTraffic(s) => &s.expect,
            Step::Admit(a) => &a.expect,
            Step::InstallKyverno(o)
            | Step::ApplyPolicies(o)
            | Step::InstallTelepresence(o)
            | Step::DeployWorkload(o)
            | Step::Connect(o)
            | Step::Leave(o)
            | Step::CompareModel(o)
            | Step::UninstallTelepresence(o) => &o.expect,
        };
        e.clone().unwrap_or_default()
    }

    /// The timeout override, as written.
    pub fn timeout(&self) -> Option<&str> {
        match self {
            Step::Intercept(i) => i.timeout.as_deref(),
            Step::SendTraffic(s) => s.timeout.as_deref(),
            Step::Admit(a) => a.timeout.as_deref(),
            Step::InstallKyverno(o)
            | Step::ApplyPolicies(o)
            | Step::InstallTelepresence(o)
            | Step::DeployWorkload(o)
            | Step::Connect(o)
            | Step::Leave(o)
            | Step::CompareModel(o)
            | Step::UninstallTelepresence(o) => o.timeout.as_deref(),
        }
    }

    /// The outcome this step expects for versions `v`, or `None` when its `when:` does not hold
    /// there (the step is skipped).
    #[must_use]
    pub fn outcome_for(&self, v: &super::resolve::Versions) -> Option<StepOutcome> {
        if self.when().is_some_and(|w| !v.satisfies(w)) {
            return None;
        }
        Some(self.expect().for_versions(|w| v.satisfies(w)))
    }

    /// The step's version condition, if any.
    pub fn when(&self) -> Option<&When> {
        match self {
            Step::Intercept(i) => i.when.as_ref(),
            Step::SendTraffic(s) => s.when.as_ref(),
            Step::Admit(a) => a.when.as_ref(),
            Step::InstallKyverno(o)
            | Step::ApplyPolicies(o)
            | Step::InstallTelepresence(o)
            | Step::DeployWorkload(o)
            | Step::Connect(o)
            | Step::Leave(o)
            | Step::CompareModel(o)
            | Step::UninstallTelepresence(o) => o.when.as_ref(),
        }
    }
}

/// Ports as scenarios write them: a number from 1 to 65535, never a quoted string.
mod port {
    use std::fmt;

    use serde::Deserializer;
    use serde::de::{Error, Visitor};

    const RANGE: &str = "port must be between 1 and 65535";

    struct Port;

    impl Visitor<'_> for Port {
        type Value = u16;

        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("a port number from 1 to 65535")
        }

        fn visit_u64<E: Error>(self, v: u64) -> Result<u16, E> {
            u16::try_from(v).ok().filter(|p| *p > 0).ok_or_else(|| E::custom(RANGE))
        }

        fn visit_i64<E: Error>(self, v: i64) -> Result<u16, E> {
            u64::try_from(v).map_err(|_| E::custom(RANGE)).and_then(|v| self.visit_u64(v))
        }

        fn visit_u128<E: Error>(self, _: u128) -> Result<u16, E> {
            Err(E::custom(RANGE))
        }

        fn visit_i128<E: Error>(self, _: i128) -> Result<u16, E> {
            Err(E::custom(RANGE))
        }

        fn visit_f64<E: Error>(self, _: f64) -> Result<u16, E> {
            Err(E::custom("a port is a whole number from 1 to 65535"))
        }

        fn visit_str<E: Error>(self, v: &str) -> Result<u16, E> {
            Err(E::custom(format!("a port is a number, not a string: write {}, without quotes", v.trim())))
        }

        fn visit_bool<E: Error>(self, _: bool) -> Result<u16, E> {
            Err(E::custom("a port is a number from 1 to 65535, not a boolean"))
        }
    }

    pub fn one<'de, D: Deserializer<'de>>(d: D) -> Result<u16, D::Error> {
        d.deserialize_any(Port)
    }

    pub fn optional<'de, D: Deserializer<'de>>(d: D) -> Result<Option<u16>, D::Error> {
        d.deserialize_any(Port).map(Some)
    }
}
