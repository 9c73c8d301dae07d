//! Parsing the text of a Kyverno admission denial, in every form it reaches users.
//!
//! Kyverno writes (upstream: kyverno/kyverno pkg/webhooks/utils/block.go@v1.19.0, `GetBlockedMessages`)
//!
//! ```text
//! admission webhook "validate.kyverno.svc-fail" denied the request: ⏎
//! ⏎
//! resource Pod/<ns>/<name> was blocked due to the following policies ⏎
//! ⏎
//! <policy>:
//!   <rule>: 'validation error: <message>. rule <rule> failed at path <path>'
//! ```
//!
//! The text after the `policies` line is YAML (yaml.v3, indent 2, long scalars folded at
//! spaces), so it is decoded as YAML, never matched line by line: decoding undoes the folding
//! that can put `failed at path` and the path on different lines. The denial is found by
//! substring wherever it sits: after `Error from server: error when creating "x.yaml": ` (kubectl),
//! `Error creating: ` and `(combined from similar events): ` (ReplicaSet events),
//! `create Pod <name> in StatefulSet <set> failed error: ` (StatefulSet events), or bare (the
//! ReplicaSet `ReplicaFailure` condition, an API Status message), also inside an object printed by
//! `kubectl get -o yaml|json` ([`wrapping`]) and in a `kubectl describe` events table.
//!
//! The other sources of Kyverno 1.19 (ValidatingPolicy, ImageValidatingPolicy, the policy-validation
//! webhook, generated ValidatingAdmissionPolicies) and Pod Security Admission are read by
//! [`sources`]; [`Denial::source`] says which one denied.

pub mod prove;
pub mod sources;
pub mod wrapping;

use serde::Serialize;
use serde_json::Value;

use super::expect::{DeniedBy, Violation};
pub use sources::PodSecurityCheck;

/// The webhooks Kyverno registers for resources, with the source each one denies for. The
/// admission webhooks are these names with a `-fail` or `-ignore` suffix, and fine-grained ones add
/// `-finegrained-<key>`; nothing else is Kyverno's.
// upstream: kyverno/kyverno pkg/config/config.go@v1.19.1 (ValidatingWebhookName, MutatingWebhookName,
// ValidatingPolicyWebhookName, NamespacedValidatingPolicyWebhookName, ImageValidatingPolicy*WebhookName,
// PolicyValidatingWebhookName, PolicyMutatingWebhookName), pkg/controllers/webhook/utils.go@v1.19.1
// (`-ignore`, `-fail`, `-finegrained-<key>`), validating.go@v1.19.1 (`-fail-finegrained`).
pub const KYVERNO_WEBHOOKS: [(&str, SourceKind); 6] = [
    ("validate.kyverno.svc", SourceKind::Policy),
    ("mutate.kyverno.svc", SourceKind::Policy),
    ("vpol.validate.kyverno.svc", SourceKind::ValidatingPolicy),
    ("nvpol.validate.kyverno.svc", SourceKind::ValidatingPolicy),
    ("ivpol.validate.kyverno.svc", SourceKind::ImageValidatingPolicy),
    ("ivpol.mutate.kyverno.svc", SourceKind::ImageValidatingPolicy),
];

/// The webhooks that validate policies themselves: exact names, no suffix.
pub const POLICY_WEBHOOKS: [&str; 2] = ["validate-policy.kyverno.svc", "mutate-policy.kyverno.svc"];

/// Which kind of source a Kyverno webhook denies for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SourceKind {
    /// ClusterPolicy / Policy rules.
    Policy,
    /// ValidatingPolicy.
    ValidatingPolicy,
    /// ImageValidatingPolicy.
    ImageValidatingPolicy,
    /// The policy-validation webhook.
    PolicyValidation,
}

/// What denied the request.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "type", rename_all = "camelCase")]
pub enum Source {
    /// A ClusterPolicy or Policy rule (Kyverno's resource webhook).
    Policy,
    /// A ValidatingPolicy (`vpol.validate.kyverno.svc-*`): no rules, no resource in the text.
    ValidatingPolicy,
    /// An ImageValidatingPolicy (`ivpol.*.kyverno.svc-*`).
    ImageValidatingPolicy,
    /// Kyverno's policy-validation webhook rejecting a policy.
    PolicyValidation,
    /// A ValidatingAdmissionPolicy Kyverno generated, enforced by the API server itself.
    #[serde(rename_all = "camelCase")]
    GeneratedValidatingAdmissionPolicy {
        /// Its binding.
        binding: String,
    },
    /// Pod Security Admission, the API server's own (not Kyverno).
    #[serde(rename_all = "camelCase")]
    PodSecurity {
        /// The level, e.g. `restricted`.
        level: String,
        /// The version, e.g. `latest`.
        version: String,
        /// Each failed check.
        checks: Vec<PodSecurityCheck>,
    },
}

const WEBHOOK_START: &str = "admission webhook \"";
const WEBHOOK_END: &str = "\" denied the request";
const BLOCKED: &str = "was blocked due to the following policies";

impl Source {
    /// The source in words, e.g. `ValidatingPolicy`.
    #[must_use]
    pub fn name(&self) -> &'static str {
        match self {
            Source::Policy => "ClusterPolicy/Policy",
            Source::ValidatingPolicy => "ValidatingPolicy",
            Source::ImageValidatingPolicy => "ImageValidatingPolicy",
            Source::PolicyValidation => "policy validation",
            Source::GeneratedValidatingAdmissionPolicy { .. } => "generated ValidatingAdmissionPolicy",
            Source::PodSecurity { .. } => "Pod Security Admission",
        }
    }
}

/// The object Kyverno blocked, from `resource <Kind>/<namespace>/<name> was blocked`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Resource {
    /// The kind, e.g. `Pod` or `Deployment`.
    pub kind: String,
    /// The namespace; empty for cluster-scoped objects (`Namespace//name`).
    pub namespace: String,
    /// The name; for a pod created by a controller, the generated name; empty when the pod has only
    /// `generateName` and the mutate webhook denied it before the API server named it.
    pub name: String,
}

/// A parsed denial.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Denial {
    /// The webhook that denied, e.g. `validate.kyverno.svc-fail`; empty when the API server itself
    /// denied (a generated ValidatingAdmissionPolicy, Pod Security Admission).
    pub webhook: String,
    /// What denied.
    pub source: Source,
    /// The blocked object; empty fields when the text does not name it (ValidatingPolicy).
    pub resource: Resource,
    /// One entry per failed rule, in the order Kyverno lists them (policies and rules sorted).
    pub violations: Vec<Violation>,
}

impl Denial {
    /// The expected violations that this denial does not contain (see [`DeniedBy::matches`]).
    #[must_use]
    pub fn unmet<'a>(&self, expected: &'a [DeniedBy]) -> Vec<&'a DeniedBy> {
        expected.iter().filter(|e| !self.violations.iter().any(|v| e.matches(v))).collect()
    }
}

/// A denial by a webhook that is not Kyverno's, e.g. Telepresence's
/// `agent-injector-<ns>.getambassador.io`, which can deny pods before 2.29 (facts.md §4).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct OtherWebhook {
    /// The webhook's name.
    pub webhook: String,
    /// The text after `denied the request:`, trimmed.
    pub reason: String,
}

/// What a denial text turned out to be.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Parsed {
    /// Kyverno denied the request (any of its sources).
    Kyverno(Denial),
    /// Pod Security Admission denied the request: the API server, not Kyverno.
    PodSecurity(Denial),
    /// Another webhook (or a ValidatingAdmissionPolicy Kyverno did not generate) denied it.
    OtherWebhook(OtherWebhook),
}

/// Why a text could not be read as a Kyverno denial; [`DenialError::location`] gives the line
/// and column in the input (with `\r\n` counted as one line break) when there is one.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DenialError {
    /// No `admission webhook "<name>" denied the request` in the text.
    #[error(
        "not an admission denial: expected `admission webhook \"<name>\" denied the request:` as kubectl, a \
         FailedCreate event, a ReplicaFailure condition or an API Status message print it"
    )]
    NotADenial,
    /// Kyverno's webhook, but no policy list.
    #[error(
        "webhook `{webhook}` denied the request, but expected a line `resource <Kind>/<namespace>/<name> was \
         blocked due to the following policies` after `denied the request:`"
    )]
    NoPolicyList {
        /// The webhook's name.
        webhook: String,
    },
    /// The resource before `was blocked` is not `<Kind>/<namespace>/<name>`.
    #[error("expected `resource <Kind>/<namespace>/<name> was blocked`, found `{found}`")]
    BadResource {
        /// 1-based line.
        line: usize,
        /// What was found.
        found: String,
    },
    /// The policy list is not YAML of policy → rule → message.
    #[error("expected the policy list as YAML `<policy>: {{<rule>: <message>}}`: {message}")]
    BadPolicyList {
        /// 1-based line.
        line: usize,
        /// 1-based column.
        column: usize,
        /// What is wrong.
        message: String,
    },
}

impl DenialError {
    /// The 1-based line and column of the problem in the input, when known.
    #[must_use]
    pub fn location(&self) -> Option<(usize, usize)> {
        match self {
            DenialError::BadResource { line, .. } => Some((*line, 1)),
            DenialError::BadPolicyList { line, column, .. } => Some((*line, *column)),
            DenialError::NotADenial | DenialError::NoPolicyList { .. } => None,
        }
    }
}

/// Whether `webhook` is exactly one of Kyverno's webhook names (`validate.kyverno.svc-fail`,
/// `vpol.validate.kyverno.svc-ignore-finegrained-x`, `validate-policy.kyverno.svc`, ...). A name
/// with anything added is not.
#[must_use]
pub fn is_kyverno_webhook(webhook: &str) -> bool {
    kyverno_source(webhook).is_some()
}

/// The source a Kyverno webhook name denies for; `None` for any other name.
#[must_use]
pub fn kyverno_source(webhook: &str) -> Option<SourceKind> {
    if POLICY_WEBHOOKS.contains(&webhook) {
        return Some(SourceKind::PolicyValidation);
    }
    KYVERNO_WEBHOOKS.iter().find_map(|(base, kind)| {
        let rest = webhook.strip_prefix(base)?;
        let rest = rest.strip_prefix("-fail").or_else(|| rest.strip_prefix("-ignore"))?;
        let ok = rest.is_empty()
            || rest.strip_prefix("-finegrained-").is_some_and(|k| {
                !k.is_empty() && k.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '.')
            });
        ok.then_some(*kind)
    })
}

/// Parses the first admission denial in `text`.
///
/// ```
/// use kyvtel::outcome::denial::{parse, Parsed};
///
/// let text = "Error creating: admission webhook \"validate.kyverno.svc-fail\" denied the request: \n\n\
///     resource Pod/app/demo-5d8f-x2x9q was blocked due to the following policies \n\n\
///     require-security-context:\n  require-security-context-constraints: 'validation error: Strict.\n    \
///     rule require-security-context-constraints failed at path\n    /spec/containers/1/securityContext/'\n";
/// let Parsed::Kyverno(d) = parse(text).unwrap() else { panic!("a Kyverno denial") };
/// assert_eq!(d.resource.name, "demo-5d8f-x2x9q");
/// assert_eq!(d.violations[0].paths, ["/spec/containers/1/securityContext/"]);
/// assert_eq!(d.violations[0].message, "Strict.");
/// ```
pub fn parse(text: &str) -> Result<Parsed, DenialError> {
    let text = normalize(text);
    // A printed object is unwrapped once: kubectl never nests one in another.
    match wrapping::carried(&text) {
        Some(inner) => parse_text(&normalize(&inner)),
        None => parse_text(&text),
    }
}

/// `\r\n` read as `\n`; control characters (ANSI escapes, bells) kept but made visible, so that
/// they can neither reach a terminal raw nor break the YAML of the policy list.
fn normalize(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.replace("\r\n", "\n").chars() {
        if c.is_control() && c != '\n' && c != '\t' {
            out.extend(c.escape_unicode());
        } else {
            out.push(c);
        }
    }
    out
}

/// Parses a text that is not a printed object.
fn parse_text(text: &str) -> Result<Parsed, DenialError> {
    let Some((webhook, after)) = find_webhook(text) else { return api_server(text) };
    let rest = text[after..].strip_prefix(':').unwrap_or(&text[after..]);
    let kind = match kyverno_source(webhook) {
        Some(kind) => kind,
        None => {
            return Ok(Parsed::OtherWebhook(OtherWebhook {
                webhook: webhook.to_string(),
                reason: rest.trim().to_string(),
            }));
        }
    };
    let none = || Resource { kind: String::new(), namespace: String::new(), name: String::new() };
    let simple = |source: Source, violations: Vec<Violation>| {
        Ok(Parsed::Kyverno(Denial { webhook: webhook.to_string(), source, resource: none(), violations }))
    };
    match kind {
        SourceKind::Policy => {}
        SourceKind::PolicyValidation => return simple(Source::PolicyValidation, sources::policy_validation(rest)),
        SourceKind::ValidatingPolicy | SourceKind::ImageValidatingPolicy => {
            let source = if kind == SourceKind::ValidatingPolicy {
                Source::ValidatingPolicy
            } else {
                Source::ImageValidatingPolicy
            };
            return match sources::policy_verdicts(rest) {
                Some(v) => simple(source, v),
                None => Err(DenialError::NoPolicyList { webhook: webhook.into() }),
            };
        }
    }
    let marker =
        after + text[after..].find(BLOCKED).ok_or_else(|| DenialError::NoPolicyList { webhook: webhook.into() })?;
    let line_start = text[..marker].rfind('\n').map_or(0, |i| i + 1).max(after);
    let resource = resource(&text[line_start..marker]).ok_or_else(|| DenialError::BadResource {
        line: line_of(text, marker),
        found: text[line_start..marker].trim().to_string(),
    })?;
    let body_start = text[marker..].find('\n').map_or(text.len(), |i| marker + i + 1);
    let block = Block::after(&text[body_start..], line_of(text, body_start));
    let violations = block.violations()?;
    Ok(Parsed::Kyverno(Denial { webhook: webhook.to_string(), source: Source::Policy, resource, violations }))
}

/// A denial by the API server itself: a ValidatingAdmissionPolicy (Kyverno's if it generated it)
/// or Pod Security Admission.
fn api_server(text: &str) -> Result<Parsed, DenialError> {
    if let Some((policy, binding, violations)) = sources::generated_vap(text) {
        if !sources::is_generated_vap(&policy) {
            return Ok(Parsed::OtherWebhook(OtherWebhook {
                webhook: format!("ValidatingAdmissionPolicy '{policy}'"),
                reason: violations.first().map(|v| v.message.clone()).unwrap_or_default(),
            }));
        }
        return Ok(Parsed::Kyverno(Denial {
            webhook: String::new(),
            source: Source::GeneratedValidatingAdmissionPolicy { binding },
            resource: sources::forbidden_resource(text),
            violations,
        }));
    }
    if let Some((level, version, checks)) = sources::pod_security(text) {
        let policy = format!("PodSecurity {level}:{version}");
        let violations = checks
            .iter()
            .map(|c| Violation {
                policy: policy.clone(),
                rule: c.check.clone(),
                paths: Vec::new(),
                message: c.detail.clone(),
            })
            .collect();
        return Ok(Parsed::PodSecurity(Denial {
            webhook: String::new(),
            source: Source::PodSecurity { level, version, checks },
            resource: sources::forbidden_resource(text),
            violations,
        }));
    }
    Err(DenialError::NotADenial)
}

/// The first `admission webhook "<name>" denied the request`: the name and the byte offset just
/// after `denied the request`.
fn find_webhook(text: &str) -> Option<(&str, usize)> {
    let mut from = 0;
    while let Some(i) = text[from..].find(WEBHOOK_START) {
        let name_start = from + i + WEBHOOK_START.len();
        let name_end = name_start + text[name_start..].find('"')?;
        let name = &text[name_start..name_end];
        if text[name_end..].starts_with(WEBHOOK_END) && !name.is_empty() {
            return Some((name, name_end + WEBHOOK_END.len()));
        }
        from = name_start;
    }
    None
}

/// `Kind/namespace/name` from the text before `was blocked` (`resource Pod/ns/name `).
fn resource(head: &str) -> Option<Resource> {
    let head = head.trim();
    let spec = head.strip_prefix("resource ").or_else(|| head.rsplit_once(" resource ").map(|(_, r)| r))?.trim();
    let mut parts = spec.splitn(3, '/');
    let (kind, namespace, name) = (parts.next()?, parts.next()?, parts.next()?);
    let plain = |s: &str| !s.contains(char::is_whitespace);
    // The name is empty at mutating admission for a pod with only `generateName` (the API server
    // names it afterwards); upstream: kyverno/kyverno pkg/webhooks/utils/block.go@v1.19.1.
    (!kind.is_empty() && plain(kind) && plain(namespace) && plain(name)).then(|| Resource {
        kind: kind.into(),
        namespace: namespace.into(),
        name: name.into(),
    })
}

/// 1-based line number of byte offset `at`.
fn line_of(text: &str, at: usize) -> usize {
    text[..at].matches('\n').count() + 1
}

/// The YAML policy list, cut from the surrounding text and dedented.
struct Block {
    yaml: String,
    /// Line (1-based, in the input) of the block's first line.
    first_line: usize,
    /// Columns removed by dedenting.
    indent: usize,
}

impl Block {
    /// The block in `body` (the text after the `policies` line, which starts at line
    /// `first_line`): its first non-empty line sets the indentation of policy keys; it runs while
    /// lines are empty, indented deeper, or further policy keys (`name:`), so trailing text (more
    /// kubectl output) is left out.
    fn after(body: &str, first_line: usize) -> Block {
        let lines: Vec<&str> = body.split('\n').collect();
        let indent_of = |l: &str| l.len() - l.trim_start_matches(' ').len();
        let Some(start) = lines.iter().position(|l| !l.trim().is_empty()) else {
            return Block { yaml: String::new(), first_line, indent: 0 };
        };
        let indent = indent_of(lines[start]);
        let is_key = |l: &str| {
            let t = l.trim_end();
            t.strip_suffix(':').is_some_and(|k| !k.is_empty() && !k.contains([' ', ':', '\'', '"']))
        };
        // Rule lines sit one level deeper than policy keys and read `<rule>: ...`; a line at that
        // level that does not (the next row of a `kubectl describe` events table) ends the block.
        let rule_indent = lines[start..].iter().skip(1).find(|l| !l.trim().is_empty()).map(|l| indent_of(l));
        let is_rule = |l: &str| {
            let t = l.trim_start();
            t.split_once(':').is_some_and(|(k, v)| {
                !k.is_empty() && !k.contains([' ', '\'', '"']) && (v.is_empty() || v.starts_with(' '))
            })
        };
        let end = lines[start..]
            .iter()
            .position(|l| {
                let blank = l.trim().is_empty();
                let i = indent_of(l);
                let deeper = i > indent && (Some(i) != rule_indent || is_rule(l));
                !(blank || deeper || (i == indent && is_key(&l[indent..])))
            })
            .map_or(lines.len(), |n| start + n);
        let yaml = lines[start..end].iter().map(|l| l.get(indent..).unwrap_or("")).collect::<Vec<_>>().join("\n");
        Block { yaml, first_line: first_line + start, indent }
    }

    fn error(&self, line: usize, column: usize, message: impl Into<String>) -> DenialError {
        DenialError::BadPolicyList {
            line: self.first_line + line.saturating_sub(1),
            column: column + self.indent,
            message: message.into(),
        }
    }

    /// Decodes policy → rule → message into violations.
    fn violations(&self) -> Result<Vec<Violation>, DenialError> {
        if self.yaml.trim().is_empty() {
            return Err(self.error(1, 1, "no policy follows the `was blocked` line"));
        }
        let value: Value = serde_saphyr::from_str(&self.yaml).map_err(|e| {
            let (line, column) = e.location().map_or((1, 1), |l| (l.line() as usize, l.column() as usize));
            let mut m = e.without_snippet().to_string();
            if let Some(i) = m.find(" at line ") {
                m.truncate(i);
            }
            self.error(line, column, m.lines().next().unwrap_or_default().trim())
        })?;
        let Value::Object(policies) = value else {
            return Err(self.error(1, 1, "expected a map of policies"));
        };
        let mut out = Vec::new();
        for (policy, rules) in policies {
            let Value::Object(rules) = rules else {
                return Err(self.error(1, 1, format!("policy `{policy}`: expected a map of rule → message")));
            };
            for (rule, message) in rules {
                let message = match message {
                    Value::String(s) => s,
                    Value::Number(_) | Value::Bool(_) => message.to_string(),
                    _ => return Err(self.error(1, 1, format!("policy `{policy}`, rule `{rule}`: expected a message"))),
                };
                out.push(violation(policy.clone(), rule, &message));
            }
        }
        Ok(out)
    }
}

/// One violation from a rule's decoded message; a `podSecurity` subrule's field errors are paths.
fn violation(policy: String, rule: String, raw: &str) -> Violation {
    let mut paths = paths(raw);
    paths.extend(sources::field_errors(raw));
    Violation { paths, message: rule_message(&rule, raw), policy, rule }
}

/// Every path after `failed at path ` (once per rule, or once per anyPattern alternative).
/// Kyverno 1.6 ended anyPattern paths with a `.` (upstream: kyverno/kyverno
/// pkg/engine/validation.go@v1.6.0, `Rule %s[%d] failed at path %s.`); it is dropped.
fn paths(raw: &str) -> Vec<String> {
    raw.match_indices("failed at path ")
        .filter_map(|(i, m)| raw[i + m.len()..].split_whitespace().next())
        .map(|p| if p.len() > 1 && p.ends_with("/.") { &p[..p.len() - 1] } else { p })
        .map(str::to_string)
        .collect()
}

/// The rule's own message: the raw text without the `validation error: ` prefix and without the
/// ` rule <rule> failed at path ...` tail Kyverno appends (upstream: kyverno/kyverno
/// pkg/engine/handlers/validation/validate_resource.go@v1.19.0, `buildErrorMessage`,
/// `buildAnyPatternErrorMessage`; `Rule` was capitalised in v1.6). A message without a custom
/// part (`validation error: rule X failed at path P`) is kept whole.
fn rule_message(rule: &str, raw: &str) -> String {
    let body = raw.strip_prefix("validation error: ").unwrap_or(raw);
    let tails = [" failed", "[", " execution error"];
    let cut = ["rule ", "Rule "]
        .iter()
        .flat_map(|word| {
            let needle = format!("{word}{rule}");
            body.match_indices(&needle)
                .map(|(i, _)| i)
                .filter(|&i| {
                    let rest = &body[i + needle.len()..];
                    (i == 0 || body[..i].ends_with(' ')) && tails.iter().any(|t| rest.starts_with(t))
                })
                .collect::<Vec<_>>()
        })
        .min();
    match cut {
        Some(i) if i > 0 => body[..i].trim_end().to_string(),
        _ => body.trim().to_string(),
    }
}

#[cfg(test)]
mod tests {
    use rstest::rstest;

    use super::*;

    macro_rules! fixture {
        ($name:literal) => {
            include_str!(concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/denials/", $name))
        };
    }

    fn kyverno(text: &str) -> Denial {
        match parse(text) {
            Ok(Parsed::Kyverno(d)) => d,
            other => panic!("expected a Kyverno denial, got {other:?}"),
        }
    }

    /// (policy, rule, paths, message) of every violation.
    fn summary(d: &Denial) -> Vec<(&str, &str, Vec<&str>, &str)> {
        d.violations
            .iter()
            .map(|v| {
                (v.policy.as_str(), v.rule.as_str(), v.paths.iter().map(String::as_str).collect(), v.message.as_str())
            })
            .collect()
    }

    const CONSTRAINTS: &str = "require-security-context-constraints";
    const EVERY: &str = "Every container must set the restricted securityContext.";
    const APE1: &str = "/spec/containers/1/securityContext/allowPrivilegeEscalation/";

    #[rstest]
    #[case::kubectl_stderr(fixture!("kubectl-agent-blocked.txt"), ("Pod", "kyvtel-app", "demo"),
        vec![("require-security-context", CONSTRAINTS, vec![APE1], EVERY)])]
    #[case::replicaset_event_path_on_next_line(fixture!("replicaset-event.txt"), ("Pod", "kyvtel-app", "demo-7d9c5b6f4-x2x9q"),
        vec![("require-security-context", CONSTRAINTS, vec![APE1], EVERY)])]
    #[case::combined_events_several_policies_and_rules(fixture!("replicaset-combined-events.txt"), ("Pod", "kyvtel-app", "demo-7d9c5b6f4-x2x9q"),
        vec![
            ("require-security-context", "require-pod-security-context", vec!["/spec/securityContext/runAsUser/"],
             "The pod must set the restricted pod securityContext."),
            ("require-security-context", CONSTRAINTS, vec![APE1], EVERY),
            ("restrict-image-registries", "validate-registries", vec!["/spec/containers/1/image/"],
             "Images must come from an allowed registry (registry.k8s.io, docker.io)."),
        ])]
    #[case::statefulset_event(fixture!("statefulset-traffic-manager.txt"), ("Pod", "ambassador", "traffic-manager-0"),
        vec![
            ("require-security-context", "require-pod-security-context", vec!["/spec/securityContext/fsGroup/"],
             "The pod must set the restricted pod securityContext."),
            ("require-security-context", CONSTRAINTS, vec!["/spec/containers/0/securityContext/allowPrivilegeEscalation/"],
             "Every container other than traffic-agent must set the restricted securityContext."),
        ])]
    #[case::autogen_on_deployment(fixture!("deployment-traffic-manager-autogen.txt"), ("Deployment", "ambassador", "traffic-manager"),
        vec![("require-security-context", "autogen-require-security-context-constraints",
              vec!["/spec/template/spec/containers/0/securityContext/allowPrivilegeEscalation/"],
              "Every container other than traffic-agent must set the restricted securityContext.")])]
    #[case::replicafailure_crlf_colons_and_quotes(fixture!("replicafailure-init-container-crlf.txt"), ("Pod", "kyvtel-app", "demo-5c8d7f9b6-q8wzt"),
        vec![
            ("require-security-context", "require-init-container-security-context",
             vec!["/spec/initContainers/0/securityContext/allowPrivilegeEscalation/"],
             "Init containers: set 'allowPrivilegeEscalation: false' and drop \"ALL\"."),
            ("require-security-context", CONSTRAINTS, vec!["/spec/containers/1/securityContext/capabilities/"],
             "Containers: no \"NET_ADMIN\"\t(see docs)."),
        ])]
    #[case::any_pattern(fixture!("anypattern.txt"), ("Pod", "kyvtel-app", "demo-7d9c5b6f4-x2x9q"),
        vec![("disallow-capabilities", "adding-capabilities",
              vec!["/spec/containers/1/securityContext/capabilities/add/", "/spec/containers/1/securityContext/capabilities/"],
              "Any capabilities added beyond the allowed list are disallowed.")])]
    fn parses_every_form(
        #[case] text: &str,
        #[case] resource: (&str, &str, &str),
        #[case] want: Vec<(&str, &str, Vec<&str>, &str)>,
        #[values(false, true)] crlf: bool,
    ) {
        let text = if crlf { text.replace("\r\n", "\n").replace('\n', "\r\n") } else { text.to_string() };
        let d = kyverno(&text);
        assert_eq!(d.webhook, "validate.kyverno.svc-fail");
        assert_eq!((d.resource.kind.as_str(), d.resource.namespace.as_str(), d.resource.name.as_str()), resource);
        assert_eq!(summary(&d), want);
    }

    #[test]
    fn trailing_text_and_indentation_are_tolerated() {
        let base = fixture!("kubectl-agent-blocked.txt");
        let with_tail = format!("{base}Error from server (Forbidden): error when creating \"other.yaml\": forbidden\n");
        assert_eq!(summary(&kyverno(&with_tail)), summary(&kyverno(base)));
        let indented: String = base.lines().map(|l| format!("    {l}\n")).collect();
        assert_eq!(summary(&kyverno(&indented)), summary(&kyverno(base)));
    }

    #[test]
    fn message_without_custom_text_is_kept_whole() {
        let text = "admission webhook \"validate.kyverno.svc-ignore\" denied the request: \n\n\
                    resource Pod/app/p was blocked due to the following policies \n\n\
                    p:\n  r: 'validation error: rule r failed at path /spec/containers/0/securityContext/'\n";
        let d = kyverno(text);
        assert_eq!(d.webhook, "validate.kyverno.svc-ignore");
        assert_eq!(
            summary(&d),
            vec![(
                "p",
                "r",
                vec!["/spec/containers/0/securityContext/"],
                "rule r failed at path /spec/containers/0/securityContext/"
            )]
        );
    }

    #[test]
    fn another_webhook_is_named() {
        let Ok(Parsed::OtherWebhook(o)) = parse(fixture!("injector-denied.txt")) else { panic!("another webhook") };
        assert_eq!(o.webhook, "agent-injector-ambassador.getambassador.io");
        assert_eq!(o.reason, "agent-config for demo is not yet generated");
    }

    #[rstest]
    #[case::not_a_denial(fixture!("not-a-denial.txt"), "not an admission denial", None)]
    #[case::no_policy_list(fixture!("kyverno-without-policy-list.txt"), "expected a line `resource <Kind>", None)]
    #[case::not_rule_map(fixture!("broken-policy-list.txt"), "policy `require-security-context`: expected a map", Some((5, 1)))]
    #[case::bad_yaml(
        "admission webhook \"validate.kyverno.svc-fail\" denied the request: \n\nresource Pod/a/b was blocked due to the following policies \n\np:\n  r: 'unterminated\n",
        "expected the policy list as YAML", Some((6, 6)))]
    #[case::no_policies(
        "admission webhook \"validate.kyverno.svc-fail\" denied the request: \n\nresource Pod/a/b was blocked due to the following policies \n\n",
        "no policy follows", Some((4, 1)))]
    #[case::bad_resource(
        "admission webhook \"validate.kyverno.svc-fail\" denied the request: \n\nresource Pod was blocked due to the following policies \n\np:\n  r: m\n",
        "expected `resource <Kind>/<namespace>/<name> was blocked`, found `resource Pod`", Some((3, 1)))]
    fn errors_say_what_was_expected(#[case] text: &str, #[case] says: &str, #[case] location: Option<(usize, usize)>) {
        let e = parse(text).expect_err("not a Kyverno denial");
        assert!(e.to_string().contains(says), "{e}");
        if location.is_some() {
            assert_eq!(e.location(), location, "{e}");
        }
    }

    #[test]
    fn unmet_lists_missing_expected_violations() {
        let d = kyverno(fixture!("replicaset-combined-events.txt"));
        let want = [
            DeniedBy {
                policy: "restrict-image-registries".into(),
                rule: "validate-registries".into(),
                path: Some("/spec/containers/1/".into()),
                when: None,
            },
            DeniedBy {
                policy: "require-security-context".into(),
                rule: "require-init-container-security-context".into(),
                path: None,
                when: None,
            },
        ];
        assert_eq!(d.unmet(&want), vec![&want[1]]);
    }

    #[test]
    fn rule_message_strips_prefix_and_tail() {
        assert_eq!(rule_message("r", "validation error: Be nice. rule r failed at path /a/"), "Be nice.");
        assert_eq!(
            rule_message("r", "validation error: Be nice. rule r[0] failed at path /a/ rule r[1] failed at path /b/"),
            "Be nice."
        );
        assert_eq!(rule_message("r", "validation error: rule r failed at path /a/"), "rule r failed at path /a/");
        assert_eq!(
            rule_message("r", "validation error: a rule rx is not r. rule r failed at path /a/"),
            "a rule rx is not r."
        );
        assert_eq!(
            rule_message("r", "failed to verify image x: no signatures"),
            "failed to verify image x: no signatures"
        );
        assert_eq!(rule_message("r", "validation error: Old style. Rule r failed at path /a/"), "Old style.");
    }

    #[test]
    fn paths_are_found_and_old_trailing_dots_dropped() {
        assert_eq!(paths("rule r[0] failed at path /a/. rule r[1] failed at path /b/."), ["/a/", "/b/"]);
        assert_eq!(paths("no path here"), Vec::<String>::new());
    }

    #[test]
    fn kyverno_webhooks() {
        for w in [
            "validate.kyverno.svc-fail",
            "validate.kyverno.svc-ignore",
            "mutate.kyverno.svc-fail",
            "validate.kyverno.svc-fail-finegrained-p",
            "vpol.validate.kyverno.svc-fail",
            "nvpol.validate.kyverno.svc-ignore-finegrained-ns.p",
            "ivpol.mutate.kyverno.svc-fail",
            "validate-policy.kyverno.svc",
        ] {
            assert!(is_kyverno_webhook(w), "{w}");
        }
        for w in [
            "agent-injector-ambassador.getambassador.io",
            "validate.kyverno.svcx",
            "validate.kyverno.svc",
            "validate.kyverno.svc-fail-x",
            "validate.kyverno.svc-fail-finegrained-",
            "x.validate.kyverno.svc-fail",
            "validate-policy.kyverno.svc-fail",
            "validation.gatekeeper.sh",
        ] {
            assert!(!is_kyverno_webhook(w), "{w}");
        }
    }
}
