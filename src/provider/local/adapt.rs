//! Running a chart's container as a host process: its arguments and environment are read back from
//! the Deployment the chart rendered, then adapted only where running outside a pod requires it.
//! [`ADAPTATIONS`] lists every adaptation with its reason; `kyvtel plan --provider local` prints it.

use serde_json::Value;

/// Every way the local provider differs from a real cluster, with the reason. One place.
pub const ADAPTATIONS: &[(&str, &str)] = &[
    (
        "no kubelet, no scheduler",
        "pods are admitted (or denied) and stored, never run: steps that need a running pod (connect, intercept, \
         traffic, Ready 2/2) are skipped with the reason `local provider: no kubelet`",
    ),
    (
        "Kyverno and the traffic-manager run as host processes",
        "with the args and env of the Deployment their chart rendered, read back from the API server, under the \
         chart's own ServiceAccount (a TokenRequest token); fieldRefs are resolved (pod name = the Pending pod's)",
    ),
    (
        "Kyverno: --kubeconfig, --serverIP=127.0.0.1:<port>, --webhookServerHost/Port, --metricsHost, \
         --controllerRuntimeMetricsAddress, --autoMemLimitEnabled=false, TUF_ROOT",
        "outside a pod it has no in-cluster config; its webhooks must be registered with a loopback URL; every \
         listener stays on loopback",
    ),
    (
        "Kyverno chart: kyverno-api added from its module, openreports and reports-server dropped from Chart.yaml",
        "Helm requires every dependency in charts/ whatever its condition; both dropped ones are disabled",
    ),
    (
        "Telepresence is installed with Helm directly and a post-renderer",
        "`telepresence helm install` waits for the manager to be ready, which needs a kubelet; the post-renderer \
         points the injector webhook at https://127.0.0.1:<port> with the run's CA and puts the run's certificate in \
         its Secret, so that no webhook dials a Service (a webhook left on a Service fails open: pods admitted without \
         an agent)",
    ),
    (
        "traffic-manager: KUBERNETES_SERVICE_HOST/PORT, SERVER_HOST/PORT, MUTATOR_WEBHOOK_PORT, POD_IP, \
         USAGE_REPORTING_ENABLED=false, /var/run/secrets/kubernetes.io/serviceaccount on a private tmpfs",
        "it insists on in-cluster files and would report usage to an external collector",
    ),
    (
        "injection is triggered by the pod-template annotation `<prefix>/inject-traffic-agent: enabled`",
        "without a client there is no intercept to trigger it; the scenario files stay unchanged",
    ),
    (
        "every Service of the workload is created before its Deployment",
        "Telepresence 2.20.2 panics when a Deployment exists before its Service, and its webhook then fails open",
    ),
    (
        "components run in private network, mount and PID namespaces",
        "nothing leaves loopback (the injector binds all interfaces), /run is private, and no process outlives kyvtel",
    ),
];

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
