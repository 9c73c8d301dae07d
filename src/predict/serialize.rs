//! Rendering objects as the API server would serialise them.
//!
//! The API server decodes every object into its Go types and encodes it again, so a field tagged
//! `omitempty` disappears when it is empty. That matters for Kyverno: offline, an empty
//! `capabilities.drop: []` satisfies `drop: ["ALL"]`, while in a cluster the list is gone and the same
//! pattern fails (facts.md §3, "drop"). The offline check must judge what the live webhook sees.
//!
//! This models only what our pods use: null values and empty lists or string maps are dropped, except
//! for the few list fields Kubernetes does not mark `omitempty`. Defaulting (e.g. `imagePullPolicy`)
//! is not modelled; none of our policies looks at defaulted fields.

use serde_json::{Map, Value};

// upstream: kubernetes/api core/v1/types.go@v0.36.3: `Add []Capability json:"add,omitempty"`,
// `Drop []Capability json:"drop,omitempty"`, `Args []string json:"args,omitempty"`, while
// `Containers []Container json:"containers"` has no omitempty (and must not be empty anyway).
/// List fields that Kubernetes serialises even when empty.
const KEEP_EMPTY_LISTS: [&str; 1] = ["containers"];

// upstream: kubernetes/apimachinery pkg/apis/meta/v1/types.go@v0.36.3 (`labels`, `annotations`
// are `map[string]string` with omitempty); kubernetes/api core/v1/types.go@v0.36.3 (`nodeSelector`).
/// Map-typed (not struct-typed) fields: empty ones are omitted. An empty struct pointer such as
/// `securityContext: {}` or `capabilities: {}` is kept, as Go's encoder keeps a non-nil pointer.
const OMIT_EMPTY_MAPS: [&str; 4] = ["labels", "annotations", "nodeSelector", "matchLabels"];

/// Returns `value` as the API server would serialise it (see the module docs).
#[must_use]
pub fn api_server_form(value: &Value) -> Value {
    match value {
        Value::Object(map) => Value::Object(object(map)),
        Value::Array(items) => Value::Array(items.iter().map(api_server_form).collect()),
        other => other.clone(),
    }
}

fn object(map: &Map<String, Value>) -> Map<String, Value> {
    let mut out = Map::new();
    for (key, v) in map {
        let keep = match v {
            Value::Null => false,
            Value::Array(a) => !a.is_empty() || KEEP_EMPTY_LISTS.contains(&key.as_str()),
            Value::Object(o) => !o.is_empty() || !OMIT_EMPTY_MAPS.contains(&key.as_str()),
            _ => true,
        };
        if keep {
            out.insert(key.clone(), api_server_form(v));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn empty_drop_is_omitted_but_the_capabilities_struct_stays() {
        let sc = json!({"capabilities": {"add": ["NET_ADMIN"], "drop": []}, "runAsUser": null});
        assert_eq!(api_server_form(&sc), json!({"capabilities": {"add": ["NET_ADMIN"]}}));
        let sc = json!({"capabilities": {"drop": []}});
        assert_eq!(api_server_form(&sc), json!({"capabilities": {}}));
    }

    #[test]
    fn containers_and_empty_struct_pointers_are_kept() {
        let pod = json!({"metadata": {"labels": {}}, "spec": {"containers": [], "securityContext": {}}});
        assert_eq!(api_server_form(&pod), json!({"metadata": {}, "spec": {"containers": [], "securityContext": {}}}));
    }
}
