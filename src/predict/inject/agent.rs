//! The injected containers: `traffic-agent` and `tel-agent-init` (facts.md §4; upstream
//! `pkg/agentconfig/container.go`, `initcontainer.go`, `volumes.go`).

use serde_json::{Map, Value, json};

use super::config::{AgentConfig, Container};
use super::{AGENT_GROUP, AGENT_INIT, PREFIX, TRAFFIC_AGENT, Telepresence};

/// The agent's env and mount prefix for an app container's names (`_TEL_APP_` + `A_`, ...).
const APP_PREFIX: &str = "_TEL_APP_";

fn app<'a>(pod: &'a Value, name: &str) -> Option<&'a Value> {
    pod["spec"]["containers"].as_array()?.iter().find(|c| c["name"] == name)
}

/// The traffic-agent's securityContext (facts.md §4):
/// - up to 2.15.0: none; 2.15.1 to 2.28: `agent.securityContext` when set (from 2.19.1; `{}` is an
///   empty context, present), else a copy of the first config container with intercepts and a context;
/// - from 2.29: the same, and `runAsGroup` is then set to 7439 or the next GID no other container and
///   not the pod uses, unless the configured context sets `runAsGroup` itself (then used verbatim).
// upstream: pkg/agentconfig/container.go@v2.31.0:215-270,319-345; @v2.20.2 container.go:157-167.
#[must_use]
pub fn security_context(tp: &Telepresence<'_>, config: &AgentConfig, pod: &Value) -> Option<Value> {
    if !tp.at_least("2.15.1") {
        return None;
    }
    let copy =
        || {
            config.containers.iter().filter(|cc| !cc.intercepts.is_empty()).find_map(|cc| {
                app(pod, &cc.name).and_then(|c| c.get("securityContext")).filter(|s| !s.is_null()).cloned()
            })
        };
    let configured = tp.configured_agent_context();
    if !tp.at_least("2.29") {
        return configured.cloned().or_else(copy);
    }
    if let Some(c) = configured
        && c.get("runAsGroup").is_some_and(|g| !g.is_null())
    {
        return Some(c.clone());
    }
    let mut sc = configured.cloned().or_else(copy).filter(Value::is_object).unwrap_or_else(|| json!({}));
    if let Some(m) = sc.as_object_mut() {
        m.insert("runAsGroup".into(), json!(distinct_gid(pod)));
    }
    Some(sc)
}

/// 7439, or the next GID that neither the pod nor a container other than the agent's own declares as
/// its `runAsGroup`.
// upstream: pkg/agentconfig/container.go@v2.31.0 (distinctAgentGID).
fn distinct_gid(pod: &Value) -> u64 {
    let spec = &pod["spec"];
    let mut used: Vec<u64> = spec["securityContext"]["runAsGroup"].as_u64().into_iter().collect();
    for list in ["containers", "initContainers"] {
        for c in spec[list].as_array().into_iter().flatten() {
            if c["name"] != TRAFFIC_AGENT && c["name"] != AGENT_INIT {
                used.extend(c["securityContext"]["runAsGroup"].as_u64());
            }
        }
    }
    (AGENT_GROUP..).find(|g| !used.contains(g)).unwrap_or(AGENT_GROUP)
}

fn prefixed_env(cc: &Container, c: &Value) -> Vec<Value> {
    let pfx = format!("{APP_PREFIX}{}", cc.env_prefix);
    c["env"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|e| {
            let mut e = e.clone();
            if let Some(n) = e["name"].as_str() {
                e["name"] = json!(format!("{pfx}{n}"));
            }
            if let Some(v) = e["value"].as_str() {
                e["value"] = json!(prefix_references(v, &pfx));
            }
            e
        })
        .collect()
}

/// `$(NAME)` → `$(<pfx>NAME)` (upstream `envRxReplace`).
fn prefix_references(v: &str, pfx: &str) -> String {
    let mut out = String::new();
    let mut rest = v;
    while let Some(i) = rest.find("$(") {
        out.push_str(&rest[..i]);
        let after = &rest[i + 2..];
        match after.find(')') {
            Some(j) if j > 0 => {
                out.push_str(&format!("$({pfx}{})", &after[..j]));
                rest = &after[j + 1..];
            }
            _ => {
                out.push_str("$(");
                rest = after;
            }
        }
    }
    out.push_str(rest);
    out
}

/// The `traffic-agent` container (upstream `ContainerBuilder.AgentContainer`, 2.31.0).
#[must_use]
pub fn container(tp: &Telepresence<'_>, config: &AgentConfig, pod: &Value) -> Value {
    let mut ports = Vec::new();
    let mut names: Vec<(String, usize)> = Vec::new();
    for cc in config.containers.iter().filter(|cc| app(pod, &cc.name).is_some()) {
        for ic in AgentConfig::port_unique(cc) {
            let mut name = ic.container_port_name.clone();
            // 2.20.2 does not de-duplicate names (agentconfig/container.go@v2.20.2:18-35).
            if !name.is_empty() && tp.at_least("2.22") {
                match names.iter_mut().find(|(n, _)| *n == name) {
                    Some((_, count)) => {
                        *count += 1;
                        let suffix = format!("-{count}");
                        if name.chars().count() + suffix.len() > 15 {
                            name = name.chars().take(15 - suffix.len()).collect();
                        }
                        name.push_str(&suffix);
                    }
                    None => names.push((name.clone(), 1)),
                }
            }
            let mut p = Map::new();
            if !name.is_empty() {
                p.insert("name".into(), json!(name));
            }
            p.insert("containerPort".into(), json!(ic.agent_port));
            p.insert("protocol".into(), json!(ic.protocol));
            ports.push(Value::Object(p));
        }
    }
    let mut env = Vec::new();
    let mut env_from = Vec::new();
    let mut mounts = Vec::new();
    for cc in &config.containers {
        let Some(c) = app(pod, &cc.name) else { continue };
        env.extend(prefixed_env(cc, c));
        for e in c["envFrom"].as_array().into_iter().flatten() {
            let mut e = e.clone();
            let own = e["prefix"].as_str().unwrap_or_default().to_string();
            e["prefix"] = json!(format!("{APP_PREFIX}{}{own}", cc.env_prefix));
            env_from.push(e);
        }
    }
    let fields: &[&str] = if tp.at_least("2.22") { &["POD_IP", "POD_UID", "NAME"] } else { &["POD_IP", "NAME"] };
    for name in fields.iter().copied() {
        let path = match name {
            "POD_IP" => "status.podIP",
            "POD_UID" => "metadata.uid",
            _ => "metadata.name",
        };
        env.push(json!({"name": format!("_TEL_AGENT_{name}"), "valueFrom": {"fieldRef": {"apiVersion": "v1", "fieldPath": path}}}));
    }
    let legacy = !tp.at_least("2.22");
    if legacy {
        // 2.20.2: each container's mount paths, for the client (agentconfig/container.go@v2.20.2:77-86).
        for cc in &config.containers {
            let Some(c) = app(pod, &cc.name) else { continue };
            let paths: Vec<&str> =
                c["volumeMounts"].as_array().into_iter().flatten().filter_map(|m| m["mountPath"].as_str()).collect();
            if !paths.is_empty() {
                env.push(json!({"name": format!("{}TELEPRESENCE_MOUNTS", cc.env_prefix), "value": paths.join(":")}));
            }
        }
    }
    for cc in &config.containers {
        let Some(c) = app(pod, &cc.name) else { continue };
        for m in c["volumeMounts"].as_array().into_iter().flatten() {
            let path = m["mountPath"].as_str().unwrap_or_default();
            if !legacy && cc.mounts.iter().any(|(p, policy)| p == path && (policy == "Local" || policy == "Ignore")) {
                continue;
            }
            let mut m = m.clone();
            m["mountPath"] = json!(format!("{}/{}", cc.mount_point, path.trim_start_matches('/')));
            mounts.push(m);
        }
    }
    if legacy {
        mounts.push(json!({"name": "traffic-annotations", "mountPath": "/tel_pod_info"}));
        mounts.push(json!({"name": "traffic-config", "mountPath": "/etc/traffic-agent"}));
    } else {
        mounts.push(json!({"name": "pod-info", "mountPath": "/etc/podinfo"}));
    }
    mounts.push(json!({"name": "export-volume", "mountPath": "/tel_app_exports"}));
    mounts.push(json!({"name": "tel-agent-tmp", "mountPath": "/tmp"}));
    if !legacy {
        mounts
            .push(json!({"name": "traffic-manager-token", "readOnly": true, "mountPath": "/var/run/telepresence.io"}));
    }
    let mut c = json!({"name": TRAFFIC_AGENT, "image": config.agent_image, "args": ["agent"]});
    if !ports.is_empty() {
        c["ports"] = Value::Array(ports);
    }
    c["env"] = Value::Array(env);
    if !env_from.is_empty() {
        c["envFrom"] = Value::Array(env_from);
    }
    c["volumeMounts"] = Value::Array(mounts);
    c["readinessProbe"] = if legacy {
        json!({"exec": {"command": ["/bin/stat", "/tmp/agent/ready"]}})
    } else {
        json!({"exec": {"command": ["/usr/local/bin/traffic", "agent-ready"]}, "timeoutSeconds": 6})
    };
    c["imagePullPolicy"] = json!("IfNotPresent");
    if let Some(r) = tp.value(&["agent", "resources"]) {
        c["resources"] = r.clone();
    }
    if let Some(sc) = security_context(tp, config, pod) {
        c["securityContext"] = sc;
    }
    c
}

/// The `tel-agent-init` container (upstream `agentconfig.InitContainer`, 2.31.0; 2.20.2:
/// `agentconfig/container.go:202-236`, its config from the mounted ConfigMap and no AGENT_UID/GID).
#[must_use]
pub fn init_container(tp: &Telepresence<'_>, agent_context: Option<&Value>) -> Value {
    if !tp.at_least("2.22") {
        return json!({
            "name": AGENT_INIT,
            "image": tp.agent_image(),
            "args": ["agent-init"],
            "env": [
                {"name": "LOG_LEVEL", "value": "info"},
                {"name": "POD_IP", "valueFrom": {"fieldRef": {"apiVersion": "v1", "fieldPath": "status.podIP"}}},
            ],
            "volumeMounts": [{"name": "traffic-config", "mountPath": "/etc/traffic-agent"}],
            "securityContext": tp.init_security_context(),
        });
    }
    let mut env = vec![
        json!({"name": "LOG_LEVEL", "value": "INFO"}),
        json!({"name": "AGENT_CONFIG", "valueFrom": {"fieldRef": {"apiVersion": "v1",
            "fieldPath": format!("metadata.annotations['{PREFIX}agent-config']")}}}),
        json!({"name": "POD_IP", "valueFrom": {"fieldRef": {"apiVersion": "v1", "fieldPath": "status.podIP"}}}),
    ];
    // upstream: pkg/agentconfig/initcontainer.go@v2.31.0 (AGENT_UID/AGENT_GID; facts.md §4, from 2.29).
    if let Some(sc) = agent_context.filter(|_| tp.at_least("2.29")) {
        if let Some(uid) = sc["runAsUser"].as_i64() {
            env.push(json!({"name": "AGENT_UID", "value": uid.to_string()}));
        }
        if let Some(gid) = sc["runAsGroup"].as_i64() {
            env.push(json!({"name": "AGENT_GID", "value": gid.to_string()}));
        }
    }
    let mut c = json!({
        "name": AGENT_INIT,
        "image": tp.agent_image(),
        "args": ["agent-init"],
        "env": env,
        "securityContext": tp.init_security_context(),
    });
    if let Some(r) = tp.value(&["agent", "initResources"]) {
        c["resources"] = r.clone();
    }
    c
}

/// The pod volumes the agent needs (upstream `agentconfig.AgentVolumes`, 2.31.0; 2.20.2:
/// `agentconfig/container.go:238-303`, with the ConfigMap that holds the config).
#[must_use]
pub fn volumes(tp: &Telepresence<'_>, agent_name: &str) -> Vec<Value> {
    if !tp.at_least("2.22") {
        return vec![
            json!({"name": "traffic-annotations", "downwardAPI": {"items": [{"path": "annotations", "fieldRef": {"apiVersion": "v1", "fieldPath": "metadata.annotations"}}]}}),
            json!({"name": "traffic-config", "configMap": {"name": "telepresence-agents", "items": [{"key": agent_name, "path": "config.yaml"}]}}),
            json!({"name": "export-volume", "emptyDir": {}}),
            json!({"name": "tel-agent-tmp", "emptyDir": {}}),
        ];
    }
    vec![
        json!({"name": "pod-info", "downwardAPI": {"items": [{"path": "annotations", "fieldRef": {"fieldPath": "metadata.annotations"}}]}}),
        json!({"name": "export-volume", "emptyDir": {}}),
        json!({"name": "tel-agent-tmp", "emptyDir": {}}),
        json!({"name": "traffic-manager-token", "projected": {"sources": [{"serviceAccountToken": {"audience": "traffic-manager", "path": "manager-token"}}]}}),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn env_references_are_prefixed() {
        assert_eq!(prefix_references("a $(X) b $(Y)", "P_"), "a $(P_X) b $(P_Y)");
        assert_eq!(prefix_references("$(", "P_"), "$(");
    }

    #[test]
    fn the_gid_skips_what_the_pod_and_its_containers_use() {
        let pod = json!({"spec": {"securityContext": {"runAsGroup": 7439},
            "containers": [{"name": "a", "securityContext": {"runAsGroup": 7440}}, {"name": "traffic-agent", "securityContext": {"runAsGroup": 7441}}]}});
        assert_eq!(distinct_gid(&pod), 7441);
    }
}
