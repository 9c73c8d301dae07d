//! A model of Telepresence's agent injection: what the `agent-injector` webhook adds to a pod, per
//! Telepresence version and Helm values (facts.md §4, "Injection").
//!
//! The model covers what admission policies judge: container names, images, securityContexts and the
//! init container. It leaves out env, ports, probes and volumes, which none of our policies reads.
//! A live run compares it with the real pod and reports any difference as model drift.

use serde_json::{Map, Value, json};

use crate::scenario::version::Version;

/// The name of the injected sidecar.
pub const AGENT_CONTAINER: &str = "traffic-agent";
/// The name of the injected init container.
pub const INIT_CONTAINER: &str = "tel-agent-init";
/// The group the agent runs as from 2.29 unless `runAsGroup` is set (facts.md §4).
pub const AGENT_GROUP: u64 = 7439;

/// The Telepresence installation an injection is rendered for.
#[derive(Debug, Clone)]
pub struct Telepresence<'a> {
    /// The Telepresence version (client and traffic-manager).
    pub version: Version,
    /// The Helm values passed to `telepresence helm install`, if any.
    pub values: Option<&'a Value>,
}

fn v(s: &str) -> Version {
    Version::parse(s).unwrap_or_else(|| unreachable!("literal version {s} parses"))
}

impl Telepresence<'_> {
    fn at_least(&self, version: &str) -> bool {
        self.version >= v(version)
    }

    /// The Helm value at `path` (e.g. `["agent", "securityContext"]`), if set.
    fn value(&self, path: &[&str]) -> Option<&Value> {
        path.iter().try_fold(self.values?, |node, key| node.get(key))
    }

    /// The image of the traffic-manager, the agent and its init container: one image serves all three.
    ///
    /// `docker.io/datawire/tel2:<v>` up to 2.19, `ghcr.io/telepresenceio/tel2:<v>` from 2.20
    /// (facts.md §4). `agent.image.registry`, `.name` and `.tag` override the agent's parts.
    // upstream: telepresenceio/telepresence docs/reference/cluster-config.md (agent.image.registry,
    // agent.image.name, agent.image.tag).
    #[must_use]
    pub fn agent_image(&self) -> String {
        let part = |key: &str| self.value(&["agent", "image", key]).and_then(Value::as_str).map(str::to_string);
        let registry = part("registry").unwrap_or_else(|| self.default_registry().to_string());
        let name = part("name").unwrap_or_else(|| "tel2".to_string());
        let tag = part("tag").unwrap_or_else(|| self.version.to_string());
        format!("{registry}/{name}:{tag}")
    }

    /// The traffic-manager image (the chart default; values are not modelled).
    #[must_use]
    pub fn manager_image(&self) -> String {
        format!("{}/tel2:{}", self.default_registry(), self.version)
    }

    fn default_registry(&self) -> &'static str {
        if self.at_least("2.20") { "ghcr.io/telepresenceio" } else { "docker.io/datawire" }
    }

    /// The traffic-agent's securityContext, given the intercepted app container (facts.md §4):
    /// - up to 2.15.0: none;
    /// - 2.15.1 up to 2.19.0: a copy of the app container's (2.19.0 ignores `agent.securityContext`, bug #3627);
    /// - from 2.19.1: `agent.securityContext` wholesale when set (`{}` means none), else the copy;
    /// - from 2.29: `runAsGroup: 7439` is added unless `runAsGroup` is set. Whether an agent with no
    ///   securityContext at all gets one for this is not known (facts.md: unverified); the model adds
    ///   it only to an existing context.
    #[must_use]
    pub fn agent_security_context(&self, app: Option<&Value>) -> Option<Value> {
        if !self.at_least("2.15.1") {
            return None;
        }
        let copy = || app.and_then(|c| c.get("securityContext")).filter(|s| !s.is_null()).cloned();
        let mut sc =
            match self.value(&["agent", "securityContext"]) {
                Some(set) if self.at_least("2.19.1") && !set.is_null() => {
                    if set.as_object().is_some_and(Map::is_empty) { None } else { Some(set.clone()) }
                }
                _ => copy(),
            };
        if self.at_least("2.29")
            && let Some(Value::Object(m)) = sc.as_mut()
        {
            m.entry("runAsGroup").or_insert_with(|| json!(AGENT_GROUP));
        }
        sc
    }

    /// The init container's securityContext: fixed `{capabilities: {add: [NET_ADMIN]}}`, replaced by
    /// `agent.initSecurityContext` from 2.22 (facts.md §4).
    // upstream: telepresenceio/telepresence pkg/agentconfig/initcontainer.go (InitContainer: the fixed
    // NET_ADMIN context, replaced when InitSecurityContext is set).
    #[must_use]
    pub fn init_security_context(&self) -> Value {
        match self.value(&["agent", "initSecurityContext"]) {
            Some(set) if self.at_least("2.22") && !set.is_null() => set.clone(),
            _ => json!({"capabilities": {"add": ["NET_ADMIN"]}}),
        }
    }

    /// Whether the init container may be injected at all: `agent.initContainer.enabled=false`
    /// removes it from 2.23 (facts.md §4).
    #[must_use]
    pub fn init_container_enabled(&self) -> bool {
        !(self.at_least("2.23") && self.value(&["agent", "initContainer", "enabled"]) == Some(&Value::Bool(false)))
    }

    /// The injected `traffic-agent` container.
    #[must_use]
    pub fn agent_container(&self, app: Option<&Value>) -> Value {
        let mut c = json!({"name": AGENT_CONTAINER, "image": self.agent_image(), "args": ["agent"]});
        if let Some(sc) = self.agent_security_context(app) {
            c["securityContext"] = sc;
        }
        c
    }

    /// The injected `tel-agent-init` container.
    #[must_use]
    pub fn init_container(&self) -> Value {
        json!({
            "name": INIT_CONTAINER,
            "image": self.agent_image(),
            "args": ["agent-init"],
            "securityContext": self.init_security_context(),
        })
    }
}

/// Whether `service` selects pods with `labels` (a non-empty selector, every pair present).
#[must_use]
pub fn selects(service: &Value, labels: &Map<String, Value>) -> bool {
    service["kind"] == "Service"
        && service["spec"]["selector"]
            .as_object()
            .is_some_and(|sel| !sel.is_empty() && sel.iter().all(|(k, v)| labels.get(k) == Some(v)))
}

/// Whether a Service port has a numeric or omitted `targetPort` (a named one is a string).
#[must_use]
pub fn numeric_target_port(port: &Value) -> bool {
    !port.get("targetPort").is_some_and(Value::is_string)
}

/// Whether Telepresence injects `tel-agent-init`: when **any** port of **any** Service selecting the
/// pod has a numeric or omitted `targetPort`, not only the intercepted one (facts.md §4).
#[must_use]
pub fn needs_init_container(services: &[&Value]) -> bool {
    services.iter().any(|s| s["spec"]["ports"].as_array().is_some_and(|ports| ports.iter().any(numeric_target_port)))
}

/// The app container the intercept targets: the one whose port the intercepted Service port
/// (`service_port`, or the Service's first port) points at; else the first container.
#[must_use]
pub fn intercepted_container<'a>(
    containers: &'a [Value],
    services: &[&Value],
    service_port: Option<u16>,
) -> Option<&'a Value> {
    let target = services.iter().find_map(|s| {
        let ports = s["spec"]["ports"].as_array()?;
        let port = match service_port {
            Some(p) => ports.iter().find(|x| x["port"].as_u64() == Some(u64::from(p)))?,
            None => ports.first()?,
        };
        Some(port.get("targetPort").or_else(|| port.get("port")).cloned().unwrap_or(Value::Null))
    });
    let exposes = |c: &&Value| {
        c["ports"].as_array().is_some_and(|ps| {
            ps.iter().any(|p| match &target {
                Some(Value::String(name)) => p["name"].as_str() == Some(name),
                Some(Value::Number(n)) => p["containerPort"].as_u64() == n.as_u64(),
                _ => false,
            })
        })
    };
    containers.iter().find(exposes).or_else(|| containers.first())
}

/// The pod after injection: `traffic-agent` appended to `spec.containers`, and `tel-agent-init`
/// appended to `spec.initContainers` when needed and enabled. The pod-level securityContext is
/// never touched (facts.md §4).
// upstream: telepresenceio/telepresence cmd/traffic/cmd/manager/mutator/agent_injector.go
// (addAgentContainer adds at /spec/containers/-, addInitContainer at /spec/initContainers/-).
#[must_use]
pub fn inject(pod: &Value, tp: &Telepresence<'_>, services: &[&Value], service_port: Option<u16>) -> Value {
    let mut out = pod.clone();
    let containers: Vec<Value> = pod["spec"]["containers"].as_array().cloned().unwrap_or_default();
    let agent = tp.agent_container(intercepted_container(&containers, services, service_port));
    if let Some(list) = out["spec"]["containers"].as_array_mut() {
        list.push(agent);
    } else {
        out["spec"]["containers"] = json!([agent]);
    }
    if needs_init_container(services) && tp.init_container_enabled() {
        let init = tp.init_container();
        match out["spec"]["initContainers"].as_array_mut() {
            Some(list) => list.push(init),
            None => out["spec"]["initContainers"] = json!([init]),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use rstest::rstest;

    use super::*;

    fn tp<'a>(version: &str, values: Option<&'a Value>) -> Telepresence<'a> {
        Telepresence { version: v(version), values }
    }

    fn app() -> Value {
        json!({"name": "app", "image": "registry.k8s.io/x:1", "ports": [{"name": "http", "containerPort": 8080}],
               "securityContext": {"runAsUser": 1000, "runAsGroup": 3000}})
    }

    fn recipe() -> Value {
        json!({"agent": {"securityContext": {"allowPrivilegeEscalation": true, "capabilities": {"add": ["NET_ADMIN"], "drop": []}}}})
    }

    #[rstest]
    #[case("2.19.1", "docker.io/datawire/tel2:2.19.1")]
    #[case("2.20.0", "ghcr.io/telepresenceio/tel2:2.20.0")]
    #[case("2.32.1", "ghcr.io/telepresenceio/tel2:2.32.1")]
    fn agent_image_per_version(#[case] version: &str, #[case] image: &str) {
        assert_eq!(tp(version, None).agent_image(), image);
        assert_eq!(tp(version, None).manager_image(), image);
    }

    #[test]
    fn agent_image_values_override_parts() {
        let values = json!({"agent": {"image": {"registry": "registry.example/tp", "tag": "9.9.9"}}});
        assert_eq!(tp("2.32.1", Some(&values)).agent_image(), "registry.example/tp/tel2:9.9.9");
    }

    #[rstest]
    // Up to 2.15.0 the agent has no securityContext at all.
    #[case("2.15.0", true, None)]
    // 2.15.1 – 2.19.0: the copy, even when agent.securityContext is set (2.19.0: bug #3627).
    #[case("2.15.1", true, Some(json!({"runAsUser": 1000, "runAsGroup": 3000})))]
    #[case("2.19.0", true, Some(json!({"runAsUser": 1000, "runAsGroup": 3000})))]
    // From 2.19.1 the value replaces it wholesale: no runAsUser from the app.
    #[case("2.19.1", true, Some(json!({"allowPrivilegeEscalation": true, "capabilities": {"add": ["NET_ADMIN"], "drop": []}})))]
    // ... and unset still means the copy.
    #[case("2.19.1", false, Some(json!({"runAsUser": 1000, "runAsGroup": 3000})))]
    #[case("2.28.9", false, Some(json!({"runAsUser": 1000, "runAsGroup": 3000})))]
    // From 2.29 runAsGroup 7439 is added unless set.
    #[case("2.29.0", true, Some(json!({"allowPrivilegeEscalation": true, "capabilities": {"add": ["NET_ADMIN"], "drop": []}, "runAsGroup": 7439})))]
    #[case("2.29.0", false, Some(json!({"runAsUser": 1000, "runAsGroup": 3000})))]
    fn agent_security_context_per_version(
        #[case] version: &str,
        #[case] with_values: bool,
        #[case] want: Option<Value>,
    ) {
        let values = recipe();
        let t = tp(version, with_values.then_some(&values));
        assert_eq!(t.agent_security_context(Some(&app())), want);
    }

    #[test]
    fn empty_agent_security_context_means_none_not_the_copy() {
        let values = json!({"agent": {"securityContext": {}}});
        assert_eq!(tp("2.22.6", Some(&values)).agent_security_context(Some(&app())), None);
        assert_eq!(
            tp("2.19.0", Some(&values)).agent_security_context(Some(&app())),
            app().get("securityContext").cloned()
        );
    }

    #[test]
    fn app_without_security_context_gives_an_agent_without_one() {
        let bare = json!({"name": "app"});
        assert_eq!(tp("2.27.4", None).agent_security_context(Some(&bare)), None);
    }

    #[rstest]
    #[case(json!([{"port": 80, "targetPort": "http"}]), false)]
    #[case(json!([{"port": 80, "targetPort": 8080}]), true)]
    #[case(json!([{"port": 80}]), true)]
    // Any port, not only the intercepted one.
    #[case(json!([{"port": 80, "targetPort": "http"}, {"port": 9090, "targetPort": 9090}]), true)]
    fn init_container_when_any_target_port_is_numeric_or_omitted(#[case] ports: Value, #[case] want: bool) {
        let svc = json!({"kind": "Service", "spec": {"selector": {"app": "demo"}, "ports": ports}});
        assert_eq!(needs_init_container(&[&svc]), want);
    }

    #[test]
    fn any_selecting_service_counts() {
        let named = json!({"kind": "Service", "spec": {"selector": {"app": "demo"}, "ports": [{"port": 80, "targetPort": "http"}]}});
        let numeric = json!({"kind": "Service", "spec": {"selector": {"app": "demo"}, "ports": [{"port": 81, "targetPort": 8080}]}});
        assert!(needs_init_container(&[&named, &numeric]));
        let labels = json!({"app": "demo", "tier": "web"});
        let labels = labels.as_object().expect("object");
        assert!(selects(&named, labels));
        let other = json!({"kind": "Service", "spec": {"selector": {"app": "other"}}});
        assert!(!selects(&other, labels));
        let no_selector = json!({"kind": "Service", "spec": {}});
        assert!(!selects(&no_selector, labels));
    }

    #[rstest]
    #[case("2.21.0", json!({"agent": {"initSecurityContext": {"privileged": false}}}), json!({"capabilities": {"add": ["NET_ADMIN"]}}))]
    #[case("2.22.0", json!({"agent": {"initSecurityContext": {"privileged": false}}}), json!({"privileged": false}))]
    #[case("2.32.1", json!({}), json!({"capabilities": {"add": ["NET_ADMIN"]}}))]
    fn init_security_context_per_version(#[case] version: &str, #[case] values: Value, #[case] want: Value) {
        assert_eq!(tp(version, Some(&values)).init_security_context(), want);
    }

    #[rstest]
    #[case("2.22.6", false)]
    #[case("2.23.0", true)]
    fn init_container_can_be_disabled_from_2_23(#[case] version: &str, #[case] disabled: bool) {
        let values = json!({"agent": {"initContainer": {"enabled": false}}});
        assert_eq!(!tp(version, Some(&values)).init_container_enabled(), disabled);
    }

    #[test]
    fn inject_appends_agent_and_init_and_leaves_the_pod_context_alone() {
        let pod = json!({"kind": "Pod", "spec": {"securityContext": {"runAsNonRoot": true}, "containers": [app()]}});
        let svc = json!({"kind": "Service", "spec": {"selector": {"app": "demo"}, "ports": [{"port": 80, "targetPort": 8080}]}});
        let values = recipe();
        let out = inject(&pod, &tp("2.32.1", Some(&values)), &[&svc], Some(80));
        assert_eq!(out["spec"]["securityContext"], pod["spec"]["securityContext"]);
        let names: Vec<&str> =
            out["spec"]["containers"].as_array().expect("list").iter().filter_map(|c| c["name"].as_str()).collect();
        assert_eq!(names, ["app", AGENT_CONTAINER]);
        assert_eq!(out["spec"]["containers"][1]["image"], "ghcr.io/telepresenceio/tel2:2.32.1");
        assert_eq!(out["spec"]["initContainers"][0]["name"], INIT_CONTAINER);
        assert_eq!(
            out["spec"]["initContainers"][0]["securityContext"],
            json!({"capabilities": {"add": ["NET_ADMIN"]}})
        );
    }

    #[test]
    fn the_copy_comes_from_the_intercepted_container() {
        let sidecar = json!({"name": "log", "securityContext": {"runAsUser": 5}});
        let containers = [sidecar, app()];
        let svc = json!({"kind": "Service", "spec": {"selector": {"app": "demo"}, "ports": [{"port": 80, "targetPort": "http"}]}});
        assert_eq!(intercepted_container(&containers, &[&svc], Some(80)).and_then(|c| c["name"].as_str()), Some("app"));
        assert_eq!(intercepted_container(&containers, &[], None).and_then(|c| c["name"].as_str()), Some("log"));
    }
}
