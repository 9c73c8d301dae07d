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

impl std::fmt::Display for When {
    /// `telepresence >=2.29, kubernetes >=1.35`.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let parts: Vec<String> =
            [("telepresence", &self.telepresence), ("kyverno", &self.kyverno), ("kubernetes", &self.kubernetes)]
                .into_iter()
                .filter_map(|(k, v)| v.as_ref().map(|v| format!("{k} {v}")))
                .collect();
        f.write_str(&parts.join(", "))
    }
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
    /// Kyverno denies the step's object with the listed violations and no other (policy and rule):
    /// "exactly this rule is what breaks it".
    DeniedOnly(Vec<DeniedBy>),
    /// Pod Security Admission (built into the API server) denies the step's object.
    PodSecurityDenied(PodSecurityDenial),
    /// The pod is admitted, then a container fails: the kubelet refuses it or it exits with an error
    /// (proven from pod status; needs a kubelet, so skipped with the reason on the local provider).
    FailsAfterAdmission(AfterAdmission),
    /// The outcome depends on the versions: the first case whose `when` holds applies. The last case
    /// has no `when` (it applies otherwise).
    Cases(Vec<OutcomeCase>),
}

/// A container failure after admission.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct AfterAdmission {
    /// The container or init container that fails, e.g. `tel-agent-init`.
    pub container: String,
    /// Its waiting or terminated reason, e.g. `CreateContainerConfigError`, `CrashLoopBackOff`, `Error`.
    pub reason: String,
    /// A substring of its status message or of its pod's events, e.g. `image will run as root`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
}

/// An expected Pod Security Admission denial: the level enforced and the failed checks.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct PodSecurityDenial {
    /// The enforced level, `baseline` or `restricted`.
    pub level: PodSecurityLevel,
    /// Checks that must appear among the failed ones.
    #[serde(default)]
    pub violations: Vec<PodSecurityViolation>,
}

/// A Pod Security Standards level that can deny.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub enum PodSecurityLevel {
    /// `baseline`.
    Baseline,
    /// `restricted`.
    #[default]
    Restricted,
}

impl PodSecurityLevel {
    /// The level as PSA writes it.
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            PodSecurityLevel::Baseline => "baseline",
            PodSecurityLevel::Restricted => "restricted",
        }
    }
}

/// One failed Pod Security Admission check.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct PodSecurityViolation {
    /// The check as PSA names it, e.g. `allowPrivilegeEscalation != false`, `unrestricted capabilities`.
    pub check: String,
    /// A container the check names, e.g. `traffic-agent`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub container: Option<String>,
    /// A field it asks to set, e.g. `securityContext.allowPrivilegeEscalation`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub field: Option<String>,
    /// Expected only when these versions hold.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub when: Option<When>,
}

/// One version-dependent outcome of a step: exactly one of `ok`, `denied`, `deniedOnly`,
/// `podSecurityDenied`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct OutcomeCase {
    /// The case applies when these versions hold; none: always (the last case).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub when: Option<When>,
    /// The step succeeds (`ok: {}`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ok: Option<Empty>,
    /// As [`StepOutcome::Denied`].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub denied: Option<Vec<DeniedBy>>,
    /// As [`StepOutcome::DeniedOnly`].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub denied_only: Option<Vec<DeniedBy>>,
    /// As [`StepOutcome::PodSecurityDenied`].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pod_security_denied: Option<PodSecurityDenial>,
    /// As [`StepOutcome::FailsAfterAdmission`].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fails_after_admission: Option<AfterAdmission>,
}

/// An empty map, `{}`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Empty {}

impl OutcomeCase {
    /// The outcome this case stands for; `None` unless exactly one outcome is set.
    #[must_use]
    pub fn outcome(&self) -> Option<StepOutcome> {
        let set = [
            self.ok.as_ref().map(|_| StepOutcome::Ok),
            self.denied.clone().map(StepOutcome::Denied),
            self.denied_only.clone().map(StepOutcome::DeniedOnly),
            self.pod_security_denied.clone().map(StepOutcome::PodSecurityDenied),
            self.fails_after_admission.clone().map(StepOutcome::FailsAfterAdmission),
        ];
        let mut set = set.into_iter().flatten();
        match (set.next(), set.next()) {
            (Some(one), None) => Some(one),
            _ => None,
        }
    }
}

/// A denial a step expects, for the run's versions.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ExpectedDenial {
    /// The violations that must appear.
    pub violations: Vec<DeniedBy>,
    /// No violation of another policy or rule may appear.
    pub only: bool,
    /// The denial is Pod Security Admission's, not Kyverno's (then `violations` is empty).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pod_security: Option<PodSecurityDenial>,
}

impl StepOutcome {
    /// The outcome for the run's versions (per `holds`): the first case whose `when` holds, and
    /// expected violations whose `when` does not hold dropped. Never [`StepOutcome::Cases`]; no case
    /// holding is [`StepOutcome::Ok`] (validation requires a last case without `when`).
    #[must_use]
    pub fn for_versions(self, holds: impl Fn(&When) -> bool) -> StepOutcome {
        let keep = |v: Vec<DeniedBy>| v.into_iter().filter(|d| d.when.as_ref().is_none_or(&holds)).collect();
        match self {
            StepOutcome::Ok => StepOutcome::Ok,
            StepOutcome::Denied(v) => StepOutcome::Denied(keep(v)),
            StepOutcome::DeniedOnly(v) => StepOutcome::DeniedOnly(keep(v)),
            StepOutcome::FailsAfterAdmission(a) => StepOutcome::FailsAfterAdmission(a),
            StepOutcome::PodSecurityDenied(mut p) => {
                p.violations.retain(|v| v.when.as_ref().is_none_or(&holds));
                StepOutcome::PodSecurityDenied(p)
            }
            StepOutcome::Cases(cases) => cases
                .iter()
                .find(|c| c.when.as_ref().is_none_or(&holds))
                .and_then(OutcomeCase::outcome)
                .map_or(StepOutcome::Ok, |o| o.for_versions(holds)),
        }
    }

    /// The denial this (version-resolved) outcome expects, if any.
    #[must_use]
    pub fn denial(self) -> Option<ExpectedDenial> {
        match self {
            StepOutcome::Ok | StepOutcome::Cases(_) | StepOutcome::FailsAfterAdmission(_) => None,
            StepOutcome::Denied(violations) => Some(ExpectedDenial { violations, only: false, pod_security: None }),
            StepOutcome::DeniedOnly(violations) => Some(ExpectedDenial { violations, only: true, pod_security: None }),
            StepOutcome::PodSecurityDenied(p) => {
                Some(ExpectedDenial { violations: Vec::new(), only: false, pod_security: Some(p) })
            }
        }
    }

    /// Every expected violation with its YAML path below `expect` (for validation).
    #[must_use]
    pub fn violations(&self) -> Vec<(String, &DeniedBy)> {
        let mut out = Vec::new();
        match self {
            StepOutcome::Ok | StepOutcome::PodSecurityDenied(_) | StepOutcome::FailsAfterAdmission(_) => {}
            StepOutcome::Denied(v) => out.extend(v.iter().enumerate().map(|(j, d)| (format!("denied/{j}"), d))),
            StepOutcome::DeniedOnly(v) => {
                out.extend(v.iter().enumerate().map(|(j, d)| (format!("deniedOnly/{j}"), d)));
            }
            StepOutcome::Cases(cases) => {
                for (i, c) in cases.iter().enumerate() {
                    let d = c.denied.iter().flatten().enumerate().map(|(j, d)| (format!("cases/{i}/denied/{j}"), d));
                    out.extend(d);
                    let o = c.denied_only.iter().flatten().enumerate();
                    out.extend(o.map(|(j, d)| (format!("cases/{i}/deniedOnly/{j}"), d)));
                }
            }
        }
        out
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

    #[test]
    fn cases_pick_the_first_that_holds_and_the_last_otherwise() {
        let tp = |r: &str| Some(When { telepresence: Some(r.into()), ..Default::default() });
        let denied = vec![DeniedBy { policy: "p".into(), rule: "r".into(), path: None, when: None }];
        let outcome = StepOutcome::Cases(vec![
            OutcomeCase { when: tp("<2.25.1"), denied: Some(denied.clone()), ..Default::default() },
            OutcomeCase { ok: Some(Empty {}), ..Default::default() },
        ]);
        let old = outcome.clone().for_versions(|w| w.telepresence.as_deref() == Some("<2.25.1"));
        assert_eq!(old, StepOutcome::Denied(denied));
        assert_eq!(outcome.for_versions(|_| false), StepOutcome::Ok);
        let two = OutcomeCase { ok: Some(Empty {}), denied: Some(vec![]), ..Default::default() };
        assert_eq!(two.outcome(), None, "a case states exactly one outcome");
    }
}
