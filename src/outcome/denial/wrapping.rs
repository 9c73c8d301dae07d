//! Denials wrapped in a Kubernetes object as `kubectl get rs|event -o yaml|json` prints it: the
//! text sits, quoted and escaped, in a condition's or an event's `message`. Decoding the object
//! undoes the quoting; the first message that reads as a denial is the one explained.

use std::path::Path;

use serde_json::Value;

/// The denial text carried by `text` when it is a printed object (YAML or JSON), else `None`.
#[must_use]
pub fn carried(text: &str) -> Option<String> {
    let t = text.trim_start();
    let structured = t.starts_with('{')
        || text.lines().any(|l| l.starts_with("apiVersion:") || l.starts_with("kind:") || l.starts_with("items:"));
    if !structured {
        return None;
    }
    let docs = crate::yaml::documents(Path::new("<input>"), text).ok()?;
    docs.iter().find_map(|d| first_denial(&d.value))
}

/// Whether a string reads as an admission denial of any source kyvtel knows.
#[must_use]
pub fn looks_like_denial(s: &str) -> bool {
    s.contains("\" denied the request")
        || s.contains("violates PodSecurity \"")
        || s.contains("ValidatingAdmissionPolicy '")
}

fn first_denial(v: &Value) -> Option<String> {
    match v {
        Value::String(s) if looks_like_denial(s) => Some(s.clone()),
        Value::Array(items) => items.iter().find_map(first_denial),
        Value::Object(map) => {
            // A condition's or an event's own message first, then anything nested.
            map.get("message").and_then(first_denial).or_else(|| map.values().find_map(first_denial))
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_condition_message_is_found_and_unescaped() {
        let json = r#"{"kind": "ReplicaSet", "status": {"conditions": [{"message": "admission webhook \"validate.kyverno.svc-fail\" denied the request: \n\nx"}]}}"#;
        assert_eq!(carried(json).unwrap(), "admission webhook \"validate.kyverno.svc-fail\" denied the request: \n\nx");
        assert!(carried("admission webhook \"a\" denied the request: x").is_none());
    }
}
