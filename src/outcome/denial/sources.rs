//! The denial shapes other than a ClusterPolicy/Policy block list, as Kyverno 1.19 and the API
//! server print them (real texts: `tests/fixtures/denials/real-1.19.1/`, provenance in its README):
//!
//! - ValidatingPolicy / ImageValidatingPolicy webhooks: `Policy <name> failed: <message>` or
//!   `Policy <name> error: <message>`, no rules, no resource;
//! - the policy-validation webhook (`validate-policy.kyverno.svc`) rejecting a policy: free text,
//!   often with a field (`spec.rules[0].validate`, `path: spec...`);
//! - a ValidatingAdmissionPolicy Kyverno generated, enforced by the API server:
//!   `pods "x" is forbidden: ValidatingAdmissionPolicy 'cpol-<policy>' with binding '<b>' denied
//!   request: <message>`;
//! - Pod Security Admission, the API server's own: `pods "x" is forbidden: violates PodSecurity
//!   "restricted:latest": <check> (<containers> must ...), ...`.
// upstream: kyverno/kyverno pkg/webhooks/resource/ivpol/handler.go@v1.19.1 (`Policy %s failed: %s`,
// `Policy %s error: %s`, several joined by multierr as `; `); kubernetes staging/src/k8s.io/apiserver/pkg/admission/plugin/policy/validating
// (`ValidatingAdmissionPolicy '%s' with binding '%s' denied request: %s`); k8s.io/pod-security-admission
// admission/admission.go (`violates PodSecurity %q: %s`). Checked against the real texts above.

use std::sync::LazyLock;

use regex::Regex;
use serde::Serialize;

use super::Resource;
use crate::outcome::expect::Violation;

/// One Pod Security Admission check that failed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PodSecurityCheck {
    /// The check as PSA names it, e.g. `allowPrivilegeEscalation != false`.
    pub check: String,
    /// The containers it names.
    pub containers: Vec<String>,
    /// The fields it asks to set, e.g. `securityContext.allowPrivilegeEscalation`.
    pub fields: Vec<String>,
    /// Whether the pod-level field would do too (`pod or containers ...`).
    pub pod: bool,
    /// The text in parentheses.
    pub detail: String,
}

static POLICY_VERDICT: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r"(?s)^Policy (\S+) (failed|error): (.*)$").expect("valid regex"));
static VAP: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"(?s)ValidatingAdmissionPolicy '([^']+)' with binding '([^']+)' denied request: (.*)$")
        .expect("valid regex")
});
static FORBIDDEN: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r#"(?:^|\s)(?:The )?([a-z][a-z0-9.]*) "([^"]+)" is (?:forbidden|invalid):"#).expect("valid regex")
});
static PSA: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r#"violates PodSecurity "([a-z]+):([a-z0-9.]+)": (.*)$"#).expect("valid regex"));
/// A field path such as `spec.rules[0].validate` (not inside `object.spec...`: preceded by a
/// start, a space or punctuation).
static FIELD: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r#"(?:^|[\s\[(,:"'])((?:spec|metadata)(?:\.[A-Za-z][A-Za-z0-9_-]*|\[\d+\])+)"#).expect("valid regex")
});
static QUOTED: LazyLock<Regex> = LazyLock::new(|| Regex::new(r#""([^"]+)""#).expect("valid regex"));
static SET_FIELD: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"must (?:set|not set|not include|use|include) ((?:[a-zA-Z]+\.)*[a-zA-Z]+)").expect("valid regex")
});

/// `Policy <name> failed: <message>` (or `error:`) of the ValidatingPolicy and
/// ImageValidatingPolicy webhooks; `None` when the text is not in that form.
pub fn policy_verdicts(rest: &str) -> Option<Vec<Violation>> {
    let mut out = Vec::new();
    for part in rest
        .trim()
        .split("; Policy ")
        .enumerate()
        .map(|(i, p)| if i == 0 { p.to_string() } else { format!("Policy {p}") })
    {
        let c = POLICY_VERDICT.captures(&part)?;
        let message = if &c[2] == "error" { format!("error: {}", c[3].trim()) } else { c[3].trim().to_string() };
        out.push(Violation { policy: c[1].to_string(), rule: String::new(), paths: Vec::new(), message });
    }
    Some(out)
}

/// The policy-validation webhook's reason, with the fields it names as JSON pointers.
pub fn policy_validation(rest: &str) -> Vec<Violation> {
    let message = rest.trim().to_string();
    let mut paths: Vec<String> = FIELD.captures_iter(&message).map(|c| pointer(&c[1])).collect();
    paths.dedup();
    vec![Violation { policy: String::new(), rule: String::new(), paths, message }]
}

/// A generated ValidatingAdmissionPolicy's denial: `(policy, binding, violation)`.
pub fn generated_vap(text: &str) -> Option<(String, String, Vec<Violation>)> {
    let c = VAP.captures(text)?;
    let violation = Violation {
        policy: c[1].to_string(),
        rule: String::new(),
        paths: Vec::new(),
        message: c[3].trim().to_string(),
    };
    Some((c[1].to_string(), c[2].to_string(), vec![violation]))
}

/// Whether a ValidatingAdmissionPolicy name is one Kyverno generates (`cpol-<name>` from a
/// ClusterPolicy, `pol-<name>` from a Policy, `vpol-<name>` from a ValidatingPolicy).
// upstream: kyverno/kyverno pkg/controllers/admissionpolicygenerator/generate-vap.go@v1.19.1 (`cpol-`,
// `vpol-`), pkg/utils/report/results.go@v1.19.1 (`pol-`).
#[must_use]
pub fn is_generated_vap(name: &str) -> bool {
    ["cpol-", "pol-", "vpol-"].iter().any(|p| name.strip_prefix(p).is_some_and(|n| !n.is_empty()))
}

/// Pod Security Admission: `(level, version, checks)`.
pub fn pod_security(text: &str) -> Option<(String, String, Vec<PodSecurityCheck>)> {
    let c = PSA.captures(text.lines().find(|l| l.contains("violates PodSecurity"))?)?;
    Some((c[1].to_string(), c[2].to_string(), psa_checks(&c[3])))
}

/// `<check> (<detail>), <check> (<detail>)`, split at top-level commas.
fn psa_checks(list: &str) -> Vec<PodSecurityCheck> {
    let mut out = Vec::new();
    let (mut depth, mut start) = (0usize, 0usize);
    let mut push = |item: &str| {
        let item = item.trim();
        if item.is_empty() {
            return;
        }
        let (check, detail) = match item.find(" (") {
            Some(i) if item.ends_with(')') => (&item[..i], &item[i + 2..item.len() - 1]),
            _ => (item, ""),
        };
        let who = detail.split(" must ").next().unwrap_or_default();
        out.push(PodSecurityCheck {
            check: check.to_string(),
            containers: QUOTED.captures_iter(who).map(|c| c[1].to_string()).collect(),
            fields: SET_FIELD.captures_iter(detail).map(|c| c[1].to_string()).collect(),
            pod: who.starts_with("pod or ") || who.starts_with("pod "),
            detail: detail.to_string(),
        });
    };
    for (i, ch) in list.char_indices() {
        match ch {
            '(' => depth += 1,
            ')' => depth = depth.saturating_sub(1),
            ',' if depth == 0 => {
                push(&list[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    push(&list[start..]);
    out
}

/// The object named by `<plural> "<name>" is forbidden:` (or `The <plural> "<name>" is invalid:`).
pub fn forbidden_resource(text: &str) -> Resource {
    match FORBIDDEN.captures(text) {
        Some(c) => Resource { kind: kind_of(&c[1]), namespace: String::new(), name: c[2].to_string() },
        None => Resource { kind: String::new(), namespace: String::new(), name: String::new() },
    }
}

/// `pods` → `Pod`, `replicasets.apps` → `ReplicaSet`; other plurals as written.
fn kind_of(plural: &str) -> String {
    let base = plural.split('.').next().unwrap_or(plural);
    let known = [
        ("pods", "Pod"),
        ("deployments", "Deployment"),
        ("replicasets", "ReplicaSet"),
        ("statefulsets", "StatefulSet"),
        ("daemonsets", "DaemonSet"),
        ("jobs", "Job"),
        ("cronjobs", "CronJob"),
        ("services", "Service"),
        ("namespaces", "Namespace"),
    ];
    known.iter().find(|(p, _)| *p == base).map_or_else(|| plural.to_string(), |(_, k)| (*k).to_string())
}

/// The fields of a `podSecurity` subrule's `field error list: [...]` as JSON pointers.
pub fn field_errors(raw: &str) -> Vec<String> {
    let mut out = Vec::new();
    for list in raw.split("field error list: [").skip(1) {
        let list = list.split("])").next().unwrap_or_default();
        // `spec.containers[0].securityContext.x: Required value` entries, comma separated.
        out.extend(FIELD.captures_iter(list).map(|c| pointer(&c[1])));
    }
    out.dedup();
    out
}

/// `spec.containers[0].securityContext.x` → `/spec/containers/0/securityContext/x`.
#[must_use]
pub fn pointer(field: &str) -> String {
    let mut out = String::new();
    for part in field.split('.').filter(|p| !p.is_empty()) {
        let (name, rest) = part.split_once('[').map_or((part, ""), |(n, r)| (n, r));
        out.push('/');
        out.push_str(name);
        for i in rest.split('[').map(|s| s.trim_end_matches(']')).filter(|s| !s.is_empty()) {
            out.push('/');
            out.push_str(i);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pointers_and_field_errors() {
        assert_eq!(pointer("spec.containers[0].securityContext.x"), "/spec/containers/0/securityContext/x");
        let raw = "(Forbidden reason: a, field error list: [spec.containers[0].securityContext.a: Required value, spec.containers[1].securityContext.a: Required value])";
        assert_eq!(field_errors(raw), ["/spec/containers/0/securityContext/a", "/spec/containers/1/securityContext/a"]);
    }

    #[test]
    fn psa_checks_split_at_top_level_commas() {
        let c = psa_checks(
            r#"a != b (containers "x", "y" must set securityContext.a=b), seccompProfile (pod or container "x" must set securityContext.seccompProfile.type to "RuntimeDefault")"#,
        );
        assert_eq!(c.len(), 2);
        assert_eq!(c[0].containers, ["x", "y"]);
        assert_eq!(c[0].fields, ["securityContext.a"]);
        assert!(!c[0].pod && c[1].pod);
        assert_eq!(c[1].containers, ["x"]);
    }

    #[test]
    fn generated_vap_names() {
        assert!(
            is_generated_vap("cpol-x")
                && is_generated_vap("vpol-x")
                && !is_generated_vap("cpol-")
                && !is_generated_vap("mine")
        );
    }
}
