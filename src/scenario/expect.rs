//! What a scenario expects: the typed expectation model, part of the scenario file format
//! (`spec.expect`, `steps[].*.expect`), judged by the outcome engine.

use std::collections::BTreeMap;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// Versions a condition can test. Each present field must hold (`when: {telepresence: ">=2.29"}`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct When {
    /// A requirement on the Telepresence version, e.g. `>=2.29` or `>=2.22, <2.30`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub telepresence: Option<String>,
    /// A requirement on the Kyverno app version (not the chart), e.g. `>=1.19`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kyverno: Option<String>,
    /// A requirement on the Kubernetes version of the node image, e.g. `>=1.35`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kubernetes: Option<String>,
}

/// How an expected securityContext is compared with the actual one.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub enum SecurityContextMatch {
    /// Every field, and no other field, must match.
    Exact(serde_json::Map<String, serde_json::Value>),
    /// The listed fields must match; other fields may be present.
    Subset(serde_json::Map<String, serde_json::Value>),
}

/// Whether a named init container must be present or absent.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub enum Presence {
    /// The init container must exist.
    Present,
    /// The init container must not exist.
    Absent,
}

/// One group of expectations about a pod, optionally guarded by a version condition.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct PodExpectation {
    /// The group applies only when these versions hold.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub when: Option<When>,
    /// The exact set of container names, in any order.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub containers: Option<Vec<String>>,
    /// The pod-level securityContext.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pod_security_context: Option<SecurityContextMatch>,
    /// Per container name, its securityContext.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub security_contexts: BTreeMap<String, SecurityContextMatch>,
    /// Per init-container name, present or absent.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub init_containers: BTreeMap<String, Presence>,
    /// Least privilege: no container other than these adds capabilities or allows privilege escalation.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub only_privileged: Option<Vec<String>>,
}

/// One expected violation in a Kyverno denial.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct DeniedBy {
    /// The ClusterPolicy name.
    pub policy: String,
    /// The rule name as Kyverno reports it (an autogen rule reads `autogen-<rule>`).
    pub rule: String,
    /// A prefix of the reported path, e.g. `/spec/containers/1/securityContext/`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path: Option<String>,
    /// This violation is expected only when these versions hold.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub when: Option<When>,
}

/// The expected outcome of a step.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub enum StepOutcome {
    /// The step succeeds.
    #[default]
    Ok,
    /// Kyverno denies the step's object; every listed violation must appear.
    Denied(Vec<DeniedBy>),
}

impl StepOutcome {
    /// The outcome for the run's versions: expected violations whose `when` does not hold (per
    /// `holds`) are dropped.
    #[must_use]
    pub fn for_versions(self, holds: impl Fn(&When) -> bool) -> StepOutcome {
        match self {
            StepOutcome::Ok => StepOutcome::Ok,
            StepOutcome::Denied(v) => {
                StepOutcome::Denied(v.into_iter().filter(|d| d.when.as_ref().is_none_or(&holds)).collect())
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn version_guarded_violations_apply_only_when_their_condition_holds() {
        let guarded = |v: &str| DeniedBy {
            policy: "p".into(),
            rule: v.into(),
            path: None,
            when: Some(When { telepresence: Some(v.into()), ..Default::default() }),
        };
        let outcome = StepOutcome::Denied(vec![guarded(">=2.22"), guarded("<2.22")]);
        let kept = outcome.for_versions(|w| w.telepresence.as_deref() == Some(">=2.22"));
        assert_eq!(kept, StepOutcome::Denied(vec![guarded(">=2.22")]));
        assert_eq!(StepOutcome::Ok.for_versions(|_| false), StepOutcome::Ok);
    }
}
