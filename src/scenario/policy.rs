//! ClusterPolicy documents and the merge of a scenario's namespace exclusions into their rules.

use serde_json::{Value, json};

/// The rule names of a ClusterPolicy document, in order.
pub fn rule_names(policy: &Value) -> Vec<String> {
    policy["spec"]["rules"]
        .as_array()
        .map(|rules| rules.iter().filter_map(|r| r["name"].as_str().map(str::to_string)).collect())
        .unwrap_or_default()
}

/// The `metadata.name` of a document.
pub fn name(doc: &Value) -> Option<&str> {
    doc["metadata"]["name"].as_str()
}

/// Whether a document is a `kyverno.io/*` `ClusterPolicy`.
pub fn is_cluster_policy(doc: &Value) -> bool {
    doc["kind"] == "ClusterPolicy" && doc["apiVersion"].as_str().is_some_and(|a| a.starts_with("kyverno.io/"))
}

/// Whether a document is a Kyverno `PolicyException` (`kyverno.io/v2`, or `v2beta1`).
pub fn is_policy_exception(doc: &Value) -> bool {
    doc["kind"] == "PolicyException"
        && matches!(doc["apiVersion"].as_str(), Some("kyverno.io/v2" | "kyverno.io/v2beta1"))
        && doc["metadata"]["namespace"].as_str().is_some_and(|n| !n.is_empty())
}

/// Why a document that is not a ClusterPolicy cannot be a scenario's policy: the Kyverno kinds
/// that `run` and `check` cannot apply and judge yet are named as such (never mis-judged).
#[must_use]
pub fn not_supported(doc: &Value) -> String {
    let kind = doc["kind"].as_str().unwrap_or_default();
    let api = doc["apiVersion"].as_str().unwrap_or_default();
    let kyverno = api.starts_with("kyverno.io/") || api.starts_with("policies.kyverno.io/");
    if kyverno && !kind.is_empty() {
        if kind == "PolicyException" {
            return format!(
                "a PolicyException needs apiVersion kyverno.io/v2 and a metadata.namespace (found {api}); Kyverno \
                 honours exceptions only where `features.policyExceptions` allows them"
            );
        }
        format!(
            "`{kind}` ({api}) is not supported yet: kyvtel applies and judges ClusterPolicy (kyverno.io/v1) and \
             PolicyException (kyverno.io/v2) only"
        )
    } else if kind.is_empty() {
        "expected a kyverno.io ClusterPolicy; this document has no `kind`".into()
    } else {
        format!("expected a kyverno.io ClusterPolicy, found `{kind}` ({api})")
    }
}

/// Adds `namespaces` to rule `rule`'s `exclude.any` as one more `resources.namespaces` entry.
/// Returns `false` when the policy has no such rule.
pub fn exclude_namespaces(policy: &mut Value, rule: &str, namespaces: &[String]) -> bool {
    let Some(rules) = policy["spec"]["rules"].as_array_mut() else { return false };
    let Some(r) = rules.iter_mut().find(|r| r["name"] == rule) else { return false };
    let Some(obj) = r.as_object_mut() else { return false };
    let exclude = obj.entry("exclude").or_insert_with(|| json!({}));
    if !exclude.is_object() {
        *exclude = json!({});
    }
    let any = exclude.as_object_mut().expect("made an object above").entry("any").or_insert_with(|| json!([]));
    if let Some(list) = any.as_array_mut() {
        list.push(json!({"resources": {"namespaces": namespaces}}));
    }
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn merges_into_named_rule_only() {
        let mut p = json!({"apiVersion": "kyverno.io/v1", "kind": "ClusterPolicy", "metadata": {"name": "p"},
            "spec": {"rules": [{"name": "a", "match": {}}, {"name": "b", "exclude": {"any": [{"resources": {"kinds": ["Job"]}}]}}]}});
        assert!(is_cluster_policy(&p));
        assert!(exclude_namespaces(&mut p, "b", &["ambassador".into()]));
        assert!(!exclude_namespaces(&mut p, "missing", &["x".into()]));
        assert_eq!(p["spec"]["rules"][0].get("exclude"), None);
        assert_eq!(
            p["spec"]["rules"][1]["exclude"]["any"],
            json!([{"resources": {"kinds": ["Job"]}}, {"resources": {"namespaces": ["ambassador"]}}])
        );
        assert_eq!(rule_names(&p), ["a", "b"]);
    }
}
