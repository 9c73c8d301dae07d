//! Running a chart's container as a host process: its arguments and environment are read back from
//! the Deployment the chart rendered, then adapted only where running outside a pod requires it.
//! [`ADAPTATIONS`](crate::plan::providers::local::adapt::ADAPTATIONS) lists every adaptation with its
//! reason; `kyvtel plan --provider local` prints it.

use serde_json::Value;

/// The container `name` of a Deployment's pod template.
///
/// # Errors
/// It has no such container.
pub fn container<'a>(deployment: &'a Value, name: &str) -> Result<&'a Value, String> {
    deployment["spec"]["template"]["spec"]["containers"]
        .as_array()
        .and_then(|cs| cs.iter().find(|c| c["name"] == name))
        .ok_or_else(|| {
            format!(
                "Deployment {}/{} has no container `{name}`",
                deployment["metadata"]["namespace"].as_str().unwrap_or("?"),
                deployment["metadata"]["name"].as_str().unwrap_or("?")
            )
        })
}

/// What a pod would see, for resolving `fieldRef`s.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PodIdentity {
    /// `metadata.name`.
    pub name: String,
    /// `metadata.namespace`.
    pub namespace: String,
    /// `spec.serviceAccountName`.
    pub service_account: String,
}

/// The container's environment with `fieldRef`s resolved; entries that cannot be resolved outside
/// a pod (resource limits, Secret and ConfigMap keys) are left out and named in the second list.
#[must_use]
pub fn env(container: &Value, pod: &PodIdentity) -> (Vec<(String, String)>, Vec<String>) {
    let mut out = Vec::new();
    let mut dropped = Vec::new();
    for e in container["env"].as_array().into_iter().flatten() {
        let Some(name) = e["name"].as_str() else { continue };
        if let Some(v) = e.get("value") {
            out.push((name.to_string(), v.as_str().map_or_else(|| v.to_string(), str::to_string)));
            continue;
        }
        let field = e["valueFrom"]["fieldRef"]["fieldPath"].as_str();
        let value = match field {
            Some("metadata.name") => Some(pod.name.clone()),
            Some("metadata.namespace") => Some(pod.namespace.clone()),
            Some("spec.serviceAccountName") => Some(pod.service_account.clone()),
            Some("status.podIP" | "status.hostIP" | "status.podIPs" | "status.hostIPs") => Some("127.0.0.1".into()),
            Some("spec.nodeName") => Some("kyvtel-local".into()),
            _ => None,
        };
        match value {
            Some(v) => out.push((name.to_string(), v)),
            None if e.get("valueFrom").is_none() => out.push((name.to_string(), String::new())),
            None => dropped.push(name.to_string()),
        }
    }
    (out, dropped)
}

/// The container's arguments (`args`, after `command`'s own arguments when both are given).
#[must_use]
pub fn args(container: &Value) -> Vec<String> {
    let strings = |v: &Value| {
        v.as_array().into_iter().flatten().filter_map(Value::as_str).map(str::to_string).collect::<Vec<_>>()
    };
    let command = strings(&container["command"]);
    let mut out: Vec<String> = command.into_iter().skip(1).collect();
    out.extend(strings(&container["args"]));
    out
}

/// Sets `key=value` in `env`, replacing an earlier value.
pub fn set(env: &mut Vec<(String, String)>, key: &str, value: &str) {
    env.retain(|(k, _)| k != key);
    env.push((key.to_string(), value.to_string()));
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn pod() -> PodIdentity {
        PodIdentity {
            name: "kyverno-admission-controller-x".into(),
            namespace: "kyverno".into(),
            service_account: "kyverno-admission-controller".into(),
        }
    }

    #[test]
    fn field_refs_are_resolved_and_unresolvable_refs_are_named() {
        let c = json!({"env": [
            {"name": "A", "value": "1"},
            {"name": "POD", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}},
            {"name": "NS", "valueFrom": {"fieldRef": {"fieldPath": "metadata.namespace"}}},
            {"name": "SA", "valueFrom": {"fieldRef": {"fieldPath": "spec.serviceAccountName"}}},
            {"name": "IP", "valueFrom": {"fieldRef": {"fieldPath": "status.podIP"}}},
            {"name": "MEM", "valueFrom": {"resourceFieldRef": {"resource": "limits.memory"}}},
            {"name": "EMPTY"}
        ]});
        let (env, dropped) = env(&c, &pod());
        assert_eq!(
            env,
            vec![
                ("A".to_string(), "1".to_string()),
                ("POD".into(), "kyverno-admission-controller-x".into()),
                ("NS".into(), "kyverno".into()),
                ("SA".into(), "kyverno-admission-controller".into()),
                ("IP".into(), "127.0.0.1".into()),
                ("EMPTY".into(), String::new()),
            ]
        );
        assert_eq!(dropped, ["MEM"]);
    }

    #[test]
    fn args_follow_the_command_and_overrides_replace() {
        assert_eq!(args(&json!({"command": ["/traffic", "manager"], "args": ["-v"]})), ["manager", "-v"]);
        assert_eq!(args(&json!({"args": ["--a=1"]})), ["--a=1"]);
        let mut e = vec![("X".to_string(), "1".to_string())];
        set(&mut e, "X", "2");
        assert_eq!(e, [("X".to_string(), "2".to_string())]);
    }
}
