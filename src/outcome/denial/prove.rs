//! Proving an expected denial from evidence texts: parsed, from Kyverno, with every expected
//! violation (and, for `deniedOnly`, no other rule). The live run and `kyvtel verify --denial` share it.

use super::{Parsed, PodSecurityCheck, Source, parse};
use crate::outcome::expect::DeniedBy;
use crate::scenario::expect::{ExpectedDenial, PodSecurityDenial};
use crate::text::last_lines as tail;

/// `why`, then the other denials seen and the end of the last evidence text.
fn not_found(mut why: String, others: &[String], texts: &[String]) -> String {
    if !others.is_empty() {
        why.push_str(&format!(" ({})", others.join("; ")));
    }
    if let Some(t) = texts.last() {
        why.push_str(&format!("; last evidence: {}", tail(t, 3)));
    }
    why
}

/// Parses every text and checks that Kyverno denied with every expected violation (and, `only`,
/// with no violation of another policy or rule).
pub fn prove(texts: &[String], expected: &[DeniedBy], only: bool) -> Result<(), String> {
    let mut seen = Vec::new();
    let mut others = Vec::new();
    for t in texts {
        match parse(t) {
            Ok(Parsed::Kyverno(d)) => seen.push(d),
            Ok(Parsed::OtherWebhook(o)) => others.push(format!("denied by webhook `{}`: {}", o.webhook, o.reason)),
            Ok(Parsed::PodSecurity(d)) => others.push(format!(
                "denied by Pod Security Admission, not Kyverno: {}",
                d.violations.iter().map(|v| v.rule.as_str()).collect::<Vec<_>>().join(", ")
            )),
            Err(_) => {}
        }
    }
    if seen.is_empty() {
        return Err(not_found(String::from("no Kyverno denial was found in the evidence"), &others, texts));
    }
    let unmet: Vec<String> = expected
        .iter()
        .filter(|e| !seen.iter().any(|d| d.violations.iter().any(|v| e.matches(v))))
        .map(|e| {
            format!("{}/{}{}", e.policy, e.rule, e.path.as_deref().map(|p| format!(" at {p}")).unwrap_or_default())
        })
        .collect();
    let extra: Vec<String> = seen
        .iter()
        .flat_map(|d| &d.violations)
        .filter(|v| only && !expected.iter().any(|e| e.policy == v.policy && e.rule == v.rule))
        .map(|v| format!("{}/{} {:?}", v.policy, v.rule, v.paths))
        .collect();
    if unmet.is_empty() && extra.is_empty() {
        return Ok(());
    }
    if unmet.is_empty() {
        return Err(format!("Kyverno also denied by rules the scenario expects not to fire: {}", extra.join("; ")));
    }
    let got: Vec<String> = seen
        .iter()
        .flat_map(|d| d.violations.iter().map(|v| format!("{}/{} {:?}", v.policy, v.rule, v.paths)))
        .collect();
    Err(format!("expected denial by {} not found; Kyverno reported: {}", unmet.join(", "), got.join("; ")))
}

/// Proves `expected` from `texts`: Pod Security Admission's denial when it expects one, else Kyverno's.
pub fn prove_expected(texts: &[String], expected: &ExpectedDenial) -> Result<(), String> {
    match &expected.pod_security {
        Some(p) => prove_pod_security(texts, p),
        None => prove(texts, &expected.violations, expected.only),
    }
}

/// Parses every text and checks that Pod Security Admission denied at `expected.level` with every
/// expected check (by name, container and field when given).
pub fn prove_pod_security(texts: &[String], expected: &PodSecurityDenial) -> Result<(), String> {
    let level = expected.level.as_str();
    let mut seen = Vec::new();
    let mut others = Vec::new();
    for t in texts {
        match parse(t) {
            Ok(Parsed::PodSecurity(d)) => seen.push(d),
            Ok(Parsed::Kyverno(d)) => {
                others.push(format!("denied by Kyverno ({}), not Pod Security Admission", d.webhook))
            }
            Ok(Parsed::OtherWebhook(o)) => others.push(format!("denied by webhook `{}`", o.webhook)),
            Err(_) => {}
        }
    }
    let checks: Vec<&PodSecurityCheck> = seen
        .iter()
        .filter_map(|d| match &d.source {
            Source::PodSecurity { level: l, checks, .. } if l == level => Some(checks),
            _ => None,
        })
        .flatten()
        .collect();
    if checks.is_empty() {
        let mut why = format!("no Pod Security Admission denial at level `{level}` was found in the evidence");
        let levels: Vec<String> =
            seen.iter().map(|d| d.violations.first().map(|v| v.policy.clone()).unwrap_or_default()).collect();
        if !levels.is_empty() {
            why.push_str(&format!(" (denied as {})", levels.join(", ")));
        }
        return Err(not_found(why, &others, texts));
    }
    let unmet: Vec<String> = expected
        .violations
        .iter()
        .filter(|e| {
            !checks.iter().any(|c| {
                c.check == e.check
                    && e.container.as_ref().is_none_or(|n| c.containers.contains(n))
                    && e.field.as_ref().is_none_or(|f| c.fields.contains(f))
            })
        })
        .map(|e| {
            let who = e.container.as_deref().map(|c| format!(" for {c}")).unwrap_or_default();
            format!("`{}`{who}", e.check)
        })
        .collect();
    if unmet.is_empty() {
        return Ok(());
    }
    let got: Vec<String> = checks.iter().map(|c| format!("`{}` {:?} {:?}", c.check, c.containers, c.fields)).collect();
    Err(format!(
        "expected failed check(s) {} not found; Pod Security Admission reported: {}",
        unmet.join(", "),
        got.join("; ")
    ))
}

#[cfg(test)]
mod tests {
    use super::prove;
    use crate::outcome::expect::DeniedBy;

    // The shape of a Kyverno denial of a Deployment by two autogen rules (facts.md §7).
    const TEXT: &str = "admission webhook \"validate.kyverno.svc-fail\" denied the request: \n\nresource \
        Deployment/ambassador/traffic-manager was blocked due to the following policies \n\n\
        require-security-context:\n  autogen-require-pod-security-context: 'validation error: bad pod. rule \
        autogen-require-pod-security-context failed at path /spec/template/spec/securityContext/'\n  \
        autogen-require-security-context-constraints: 'validation error: bad container. rule \
        autogen-require-security-context-constraints failed at path /spec/template/spec/containers/0/securityContext/'\n";

    fn by(rule: &str) -> DeniedBy {
        DeniedBy { policy: "require-security-context".into(), rule: rule.into(), path: None, when: None }
    }

    #[test]
    fn denied_only_fails_on_a_rule_the_scenario_does_not_list() {
        let texts = vec![TEXT.to_string()];
        let one = [by("autogen-require-pod-security-context")];
        let both = [by("autogen-require-pod-security-context"), by("autogen-require-security-context-constraints")];
        assert_eq!(prove(&texts, &one, false), Ok(()));
        let err = prove(&texts, &one, true).expect_err("an unlisted rule fired");
        assert!(err.contains("autogen-require-security-context-constraints"), "{err}");
        assert_eq!(prove(&texts, &both, true), Ok(()));
    }

    #[test]
    fn pod_security_denials_are_matched_by_level_check_container_and_field() {
        use crate::scenario::expect::{PodSecurityDenial, PodSecurityLevel, PodSecurityViolation};
        let text =
            include_str!("../../../tests/fixtures/denials/real-1.19.1/kubectl-create-pod-psa-restricted.stderr.txt");
        let texts = vec![text.to_string()];
        let want = |check: &str, container: Option<&str>, field: Option<&str>| PodSecurityViolation {
            check: check.into(),
            container: container.map(Into::into),
            field: field.map(Into::into),
            when: None,
        };
        let mut expected = PodSecurityDenial {
            level: PodSecurityLevel::Restricted,
            violations: vec![want(
                "allowPrivilegeEscalation != false",
                None,
                Some("securityContext.allowPrivilegeEscalation"),
            )],
        };
        assert_eq!(super::prove_pod_security(&texts, &expected), Ok(()));
        expected.violations = vec![want("allowPrivilegeEscalation != false", Some("no-such-container"), None)];
        assert!(super::prove_pod_security(&texts, &expected).is_err());
        expected.level = PodSecurityLevel::Baseline;
        expected.violations.clear();
        let err = super::prove_pod_security(&texts, &expected).expect_err("another level");
        assert!(err.contains("level `baseline`"), "{err}");
        // A Kyverno expectation is never met by a PSA denial.
        assert!(super::prove(&texts, &[], false).is_err());
    }
}
