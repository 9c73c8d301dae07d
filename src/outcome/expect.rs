//! What a run observed, matched against what a scenario expects: the [`Violation`]s a Kyverno denial
//! reports, and [`DeniedBy::matches`]. The expectation types are the scenario's
//! ([`crate::scenario::expect`]), re-exported here for the engine that judges them.

use serde::{Deserialize, Serialize};

pub use crate::scenario::expect::{DeniedBy, PodExpectation, Presence, SecurityContextMatch, StepOutcome, When};

/// One violation reported in a Kyverno denial (parsed from the webhook text or from the Kyverno CLI).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Violation {
    /// The policy name.
    pub policy: String,
    /// The rule name (`autogen-<rule>` for controllers).
    pub rule: String,
    /// Reported paths, e.g. `/spec/containers/1/securityContext/allowPrivilegeEscalation/`.
    pub paths: Vec<String>,
    /// The rule's message.
    pub message: String,
}

impl DeniedBy {
    /// Whether `v` is this expected violation: same policy and rule, and (if given) a reported
    /// path that starts with the expected path.
    #[must_use]
    pub fn matches(&self, v: &Violation) -> bool {
        self.policy == v.policy
            && self.rule == v.rule
            && self.path.as_deref().is_none_or(|want| v.paths.iter().any(|p| p.starts_with(want)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn denied_by_matches_policy_rule_and_path_prefix() {
        let v = Violation {
            policy: "p".into(),
            rule: "r".into(),
            paths: vec!["/spec/containers/1/securityContext/allowPrivilegeEscalation/".into()],
            message: String::new(),
        };
        let mut d = DeniedBy { policy: "p".into(), rule: "r".into(), path: None, when: None };
        assert!(d.matches(&v));
        d.path = Some("/spec/containers/1/securityContext/".into());
        assert!(d.matches(&v));
        d.path = Some("/spec/containers/0/".into());
        assert!(!d.matches(&v));
        d = DeniedBy { policy: "p".into(), rule: "other".into(), path: None, when: None };
        assert!(!d.matches(&v));
    }
}
