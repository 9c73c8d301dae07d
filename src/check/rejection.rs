//! What the Kyverno CLI says about a policy it will not evaluate, or a rule that errored: bad input
//! about one policy (exit 2 at that policy), never a verdict that silently ignores it and never a
//! tool failure.
// upstream: kyverno/kyverno cmd/cli/kubectl-kyverno/commands/apply/command.go@v1.19.1 (a policy file
// that does not load is skipped with a log line, `skipping invalid YAML file`, at -v 3;
// `Policies Skipped:` / `Invalid Policies:` blocks list `N. <policy>: <reason>` between dashed
// lines, before the report). Observed with the CLI built from that module (tests/check.rs).

use std::sync::LazyLock;

use regex::Regex;

/// One policy problem: which policy, where in it (a JSON pointer, when the engine names a field),
/// and the engine's words.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PolicyProblem {
    /// The policy's `metadata.name`.
    pub policy: String,
    /// Where in the policy, e.g. `/spec/rules/1/name`.
    pub pointer: Option<String>,
    /// What is wrong, in one line.
    pub message: String,
}

/// The longest engine message quoted (its `Invalid value:` dumps whole rules as JSON).
const QUOTE_LIMIT: usize = 300;

static ANSI: LazyLock<Regex> = LazyLock::new(|| Regex::new(r"\x1b\[[0-9;]*[A-Za-z]").expect("valid regex"));
static FIELD: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r"^((?:spec|metadata)(?:\.[A-Za-z0-9_-]+|\[\d+\])*)").expect("valid regex"));
static LOG_ERROR: LazyLock<Regex> = LazyLock::new(|| Regex::new(r#"error="((?:[^"\\]|\\.)*)""#).expect("valid regex"));

/// The policies listed under `Policies Skipped:` or `Invalid Policies:` in the CLI's stdout.
#[must_use]
pub fn skipped(stdout: &str) -> Vec<PolicyProblem> {
    let mut out = Vec::new();
    let mut inside = false;
    for line in stdout.lines() {
        let t = line.trim();
        if t == "Policies Skipped:" || t == "Invalid Policies:" {
            inside = true;
            continue;
        }
        if !inside {
            continue;
        }
        if t.starts_with("---") || t.starts_with('{') {
            inside = false;
            continue;
        }
        let Some((_, item)) = t.split_once(". ").filter(|(n, _)| n.chars().all(|c| c.is_ascii_digit())) else {
            continue;
        };
        let (policy, reason) = item.split_once(": ").unwrap_or((item, ""));
        out.push(PolicyProblem {
            policy: policy.trim().to_string(),
            pointer: field_pointer(reason),
            message: quote(reason),
        });
    }
    out
}

/// Policy files the CLI skipped as unloadable (its `skipping invalid YAML file` log lines in
/// stderr), as `(file name, reason)`.
#[must_use]
pub fn unloadable(stderr: &str) -> Vec<(String, String)> {
    ANSI.replace_all(stderr, "")
        .lines()
        .filter(|l| l.contains("skipping invalid YAML file"))
        .map(|l| {
            let reason = LOG_ERROR.captures(l).map(|c| c[1].replace("\\\"", "\"")).unwrap_or_default();
            let file = l.split_whitespace().find_map(|w| w.strip_prefix("path=")).unwrap_or_default().to_string();
            (file, quote(&reason))
        })
        .collect()
}

/// `spec.rules[1].name: ...` → `/spec/rules/1/name`; `path: spec.rules[0].validate.pattern.//spec/...`
/// (a pattern problem) → `/spec/rules/0/validate/pattern`.
fn field_pointer(reason: &str) -> Option<String> {
    let reason = reason.strip_prefix("path: ").unwrap_or(reason);
    let field = FIELD.captures(reason)?.get(1)?.as_str();
    Some(crate::outcome::denial::sources::pointer(field))
}

fn quote(s: &str) -> String {
    let s = s.trim();
    if s.chars().count() <= QUOTE_LIMIT {
        return s.to_string();
    }
    let cut: String = s.chars().take(QUOTE_LIMIT).collect();
    format!("{cut}…")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_skipped_policy_is_named_with_its_field() {
        let stdout = "Warning: x\n------\nPolicies Skipped:\n1. dup: spec.rules[1].name: Invalid value: {\"name\":\"r\"}: Duplicate rule name: 'r'\n------\n";
        let p = skipped(stdout);
        assert_eq!(p.len(), 1);
        assert_eq!(p[0].policy, "dup");
        assert_eq!(p[0].pointer.as_deref(), Some("/spec/rules/1/name"));
        assert!(p[0].message.starts_with("spec.rules[1].name: Invalid value"), "{}", p[0].message);
        assert!(skipped("{\"results\": []}").is_empty());
        // A bad anchor in a pattern, as the CLI v1.19.1 words it.
        let stdout = "Policies Skipped:\n1. bad: path: spec.rules[0].validate.pattern.//spec/^(containers).: existence anchor should have value of type list\n---";
        let p = skipped(stdout);
        assert_eq!(p[0].pointer.as_deref(), Some("/spec/rules/0/validate/pattern"));
        assert!(p[0].message.ends_with("existence anchor should have value of type list"), "{}", p[0].message);
    }

    #[test]
    fn an_unloadable_file_is_named_with_the_reason() {
        let line = "\x1b[90mT\x1b[0m -2 \x1b[1mcommand.go:1188\x1b[0m > skipping invalid YAML file \x1b[36merror=\x1b[0m\x1b[31m\"failed to load file p.yaml: failed to parse document (spec.x: Invalid value: value provided for unknown field)\"\x1b[0m logger=kubectl-kyverno path=policy-0.yaml v=3";
        let u = unloadable(line);
        assert_eq!(u, [("policy-0.yaml".to_string(), "failed to load file p.yaml: failed to parse document (spec.x: Invalid value: value provided for unknown field)".to_string())]);
    }

    #[test]
    fn long_reasons_are_cut() {
        assert_eq!(quote(&"x".repeat(400)).chars().count(), QUOTE_LIMIT + 1);
    }
}
