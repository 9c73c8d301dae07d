//! A model of Telepresence's agent injector: what its webhook does to a pod at CREATE, per version
//! and Helm values (facts.md §4, "Injection"; upstream `cmd/traffic/cmd/manager/mutator/agent_injector.go`).
//!
//! The input is the pod as the injector receives it (after the API server's defaulting and built-in
//! admission), the workload that owns it and the Services of its namespace. The output is the whole
//! pod after injection, or why the injector left it alone or refused it. [`coverage`](super::coverage)
//! says which versions were compared with a real injector and what is not modelled.

mod agent;
mod config;
mod patch;

use serde_json::{Map, Value, json};

pub use self::config::{AgentConfig, Failure, generate};
use crate::scenario::version::Version;

use crate::names::telepresence::{AGENT_INIT, TRAFFIC_AGENT};
/// The group the agent runs as from 2.29 unless taken or set (facts.md §4).
pub const AGENT_GROUP: u64 = 7439;
/// The annotation prefix from 2.22; the legacy one is still read (facts.md §4).
pub const PREFIX: &str = "telepresence.io/";
/// The legacy annotation prefix (the only one before 2.22).
pub const LEGACY_PREFIX: &str = "telepresence.getambassador.io/";

pub(crate) fn v(s: &str) -> Version {
    Version::parse(s).unwrap_or_else(|| unreachable!("literal version {s} parses"))
}

/// The Telepresence installation an injection is rendered for.
#[derive(Debug, Clone)]
pub struct Telepresence<'a> {
    /// The Telepresence version (client and traffic-manager).
    pub version: Version,
    /// The Helm values passed to the install, if any.
    pub values: Option<&'a Value>,
}

impl Telepresence<'_> {
    pub(crate) fn at_least(&self, version: &str) -> bool {
        self.version >= v(version)
    }

    /// The Helm value at `path` (e.g. `["agent", "securityContext"]`), if set and not null.
    pub(crate) fn value(&self, path: &[&str]) -> Option<&Value> {
        path.iter().try_fold(self.values?, |node, key| node.get(key)).filter(|v| !v.is_null())
    }

    /// The agent image: `AGENT_REGISTRY/AGENT_IMAGE_NAME:AGENT_IMAGE_TAG`, each part defaulting to the
    /// top-level `image.registry`, `tel2` and the manager binary's version (facts.md §4).
    // upstream: telepresence cmd/traffic/cmd/manager/managerutil/agentimage.go@v2.31.0:36-46.
    #[must_use]
    pub fn agent_image(&self) -> String {
        let part = |key: &str| self.value(&["agent", "image", key]).and_then(Value::as_str).map(str::to_string);
        let registry = part("registry")
            .or_else(|| self.value(&["image", "registry"]).and_then(Value::as_str).map(str::to_string))
            .unwrap_or_else(|| self.default_registry().to_string());
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

    /// `agent.securityContext` as the manager reads it: from 2.19.1, when set (`{}` included);
    /// 2.19.0 ignores it (bug #3627; facts.md §4).
    #[must_use]
    pub fn configured_agent_context(&self) -> Option<&Value> {
        self.value(&["agent", "securityContext"]).filter(|_| self.at_least("2.19.1"))
    }

    /// The init container's fixed context, replaced by `agent.initSecurityContext` from 2.22
    /// (facts.md §4).
    #[must_use]
    pub fn init_security_context(&self) -> Value {
        match self.value(&["agent", "initSecurityContext"]) {
            Some(set) if self.at_least("2.22") => set.clone(),
            _ => json!({"capabilities": {"add": ["NET_ADMIN"]}}),
        }
    }

    /// Whether the init container may be injected at all: `agent.initContainer.enabled=false`
    /// removes it from 2.23 (facts.md §4).
    #[must_use]
    pub fn init_container_enabled(&self) -> bool {
        !(self.at_least("2.23") && self.value(&["agent", "initContainer", "enabled"]) == Some(&Value::Bool(false)))
    }

    /// The annotation keys the injector reads for `name`: the current one first, then the legacy one.
    #[must_use]
    pub fn annotation_keys(&self, name: &str) -> Vec<String> {
        let legacy = if name == "inject-service-ports" { "inject-service-port" } else { name };
        if self.at_least("2.22") {
            vec![format!("{PREFIX}{name}"), format!("{LEGACY_PREFIX}{legacy}")]
        } else if legacy != name {
            // 2.20.2: the plural, then the deprecated singular (agentmap/generator.go:113-123).
            vec![format!("{LEGACY_PREFIX}{name}"), format!("{LEGACY_PREFIX}{legacy}")]
        } else {
            vec![format!("{LEGACY_PREFIX}{name}")]
        }
    }
}

/// The workload that owns the pod (the injector reads its pod template, not the pod, for its config).
#[derive(Debug, Clone, Copy)]
pub struct Workload<'a> {
    /// `Deployment`, `ReplicaSet`, `StatefulSet`, `Rollout`.
    pub kind: &'a str,
    /// Its name.
    pub name: &'a str,
    /// Its namespace.
    pub namespace: &'a str,
    /// Its pod template (`metadata` and `spec`).
    pub template: &'a Value,
}

/// What the injector sees of the cluster.
#[derive(Debug, Clone, Copy)]
pub struct Cluster<'a> {
    /// The Services of the workload's namespace, as stored (a `targetPort` is defaulted to `port`).
    pub services: &'a [Value],
    /// The traffic-manager's namespace.
    pub manager_namespace: &'a str,
    /// What made the injector act on the pod.
    pub trigger: Trigger,
    /// The cluster domain the manager finds in its own `/etc/resolv.conf` (a manager pod:
    /// `cluster.local`; the local provider's host process: none); it makes the agent config's
    /// `managerHost` `traffic-manager.<ns>.svc.<domain>` (2.31.0 `managerutil/envconfig.go:208-229`).
    pub cluster_domain: Option<&'a str>,
}

/// What makes the injector add an agent (facts.md §4, "Intercept triggers").
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub enum Trigger {
    /// The pod template's `inject-traffic-agent: enabled` annotation (the local provider).
    Annotation,
    /// An intercept (`injectPolicy: OnDemand`): the manager generated the config and restarted the
    /// workload; up to 2.21 by a `restartedAt` template annotation, from 2.22 by evicting the pod.
    Intercept,
}

/// The pod-template annotation that the manager's restart adds up to 2.21 (2.20.2
/// `mutator/watcher.go:232`, `AnnRestartedAt`); from 2.22 it evicts the pod instead (facts.md §4).
pub const RESTARTED_AT: &str = "telepresence.getambassador.io/restartedAt";

/// What the injector does with a pod.
#[derive(Debug, Clone, PartialEq)]
pub enum Injection {
    /// The pod is admitted with these changes.
    Injected(Value),
    /// The pod is admitted as it is; why.
    Untouched(String),
    /// The injector refuses the pod (its webhook denies the request); the message.
    Refused(String),
}

impl Injection {
    /// The admitted pod, `original` when untouched; `None` when refused.
    #[must_use]
    pub fn admitted(&self, original: &Value) -> Option<Value> {
        match self {
            Injection::Injected(p) => Some(p.clone()),
            Injection::Untouched(_) => Some(original.clone()),
            Injection::Refused(_) => None,
        }
    }
}

/// The annotation `name` of `meta`, read as the injector reads it (current key, then legacy).
/// An empty value counts as absent, as Go's map lookup of `""` does.
pub(crate) fn annotation<'a>(tp: &Telepresence<'_>, meta: &'a Value, name: &str) -> Option<&'a str> {
    tp.annotation_keys(name)
        .iter()
        .find_map(|k| meta["annotations"].get(k.as_str()).and_then(Value::as_str).filter(|v| !v.is_empty()))
}

/// Why the injector could not even read `pod`, if so: what the API server would have refused.
fn malformed(pod: &Value) -> Option<String> {
    let object_or_absent = |v: &Value| v.is_null() || v.is_object();
    let meta = &pod["metadata"];
    if !object_or_absent(&pod["spec"]) || !object_or_absent(meta) {
        return Some("spec and metadata must be objects".into());
    }
    for key in ["labels", "annotations"] {
        if !object_or_absent(&meta[key]) {
            return Some(format!("metadata.{key} must be a map"));
        }
    }
    for list in ["containers", "initContainers", "volumes"] {
        let v = &pod["spec"][list];
        if !(v.is_null() || v.as_array().is_some_and(|a| a.iter().all(Value::is_object))) {
            return Some(format!("spec.{list} must be a list of objects"));
        }
        for c in v.as_array().into_iter().flatten() {
            for field in ["securityContext", "readinessProbe", "livenessProbe", "startupProbe"] {
                if !object_or_absent(&c[field]) {
                    return Some(format!("spec.{list}[].{field} must be an object"));
                }
            }
            for field in ["ports", "env", "envFrom", "volumeMounts"] {
                let f = &c[field];
                if !(f.is_null() || f.as_array().is_some_and(|a| a.iter().all(Value::is_object))) {
                    return Some(format!("spec.{list}[].{field} must be a list of objects"));
                }
            }
        }
    }
    None
}

/// The pod the workload's controller creates after an intercept's restart: up to 2.21 its template
/// carries the manager's `restartedAt` annotation (any timestamp); from 2.22 it is unchanged.
#[must_use]
pub fn restarted(pod: &Value, tp: &Telepresence<'_>, at: &str) -> Value {
    let mut out = pod.clone();
    if !tp.at_least("2.22") {
        out["metadata"]["annotations"][RESTARTED_AT] = json!(at);
    }
    out
}

/// The pod after the injector's webhook (facts.md §4): see the module docs.
#[must_use]
pub fn inject(pod: &Value, tp: &Telepresence<'_>, workload: &Workload<'_>, cluster: &Cluster<'_>) -> Injection {
    if !tp.at_least("2.20") {
        return Injection::Untouched(format!("the injection of Telepresence {} is not modelled", tp.version));
    }
    if let Some(why) = malformed(pod).or_else(|| malformed(workload.template)) {
        return Injection::Untouched(format!("not a valid pod: {why}"));
    }
    let meta = &pod["metadata"];
    if pod["spec"]["containers"].as_array().is_some_and(|cs| cs.iter().any(|c| c["name"] == TRAFFIC_AGENT)) {
        return Injection::Untouched("the pod already has a traffic-agent".into());
    }
    match annotation(tp, meta, "inject-traffic-agent") {
        Some("enabled") => {}
        Some("false" | "disabled") => return Injection::Untouched("injection disabled by annotation".into()),
        // OnDemand (the default policy): only after an intercept generated the config.
        None if cluster.trigger == Trigger::Intercept => {}
        None => return Injection::Untouched("no inject-traffic-agent annotation and no intercept".into()),
        Some(other) => {
            let m = format!("invalid value {other:?} for annotation inject-traffic-agent");
            // 2.31.0: a User error, admitted without an agent, with a warning (agent_injector.go:166-170);
            // 2.20.2: every error denies (agent_injector.go:184-185, service.go:340-347).
            return if tp.at_least("2.22") { Injection::Untouched(m) } else { Injection::Refused(m) };
        }
    }
    let by_intercept = cluster.trigger == Trigger::Intercept;
    let config = match config::generate(tp, workload, cluster) {
        // An intercept of a workload without an interceptable port fails ("has no interceptable port")
        // and nothing is stored, so nothing is injected (2.31.0 agentconfig/sidecar.go FindIntercept).
        Ok(c) if by_intercept && c.containers.iter().all(|c| c.intercepts.is_empty()) => {
            return Injection::Untouched("the intercept finds no interceptable port".into());
        }
        Err(e) if by_intercept => return Injection::Untouched(format!("the intercept fails: {e:?}")),
        Ok(c) => c,
        Err(config::Failure::User(m) | config::Failure::Panic(m)) if tp.at_least("2.22") => {
            return Injection::Untouched(m);
        }
        Err(config::Failure::Refused(m)) if tp.at_least("2.22") => return Injection::Refused(m),
        // 2.20.2: the manager's watcher generates the config; a failure there crashes it
        // (mutator/watcher.go:714; facts.md §7), and its webhook then fails open.
        Err(e) => return Injection::Untouched(format!("{e:?}: the 2.20.2 manager crashes")),
    };
    Injection::Injected(patch::apply(pod, tp, &config))
}

/// Whether `service` selects pods with `labels` (a non-empty selector, every pair present).
#[must_use]
pub fn selects(service: &Value, labels: &Map<String, Value>) -> bool {
    service["kind"] == "Service"
        && service["spec"]["selector"]
            .as_object()
            .is_some_and(|sel| !sel.is_empty() && sel.iter().all(|(k, v)| labels.get(k) == Some(v)))
}

#[cfg(test)]
mod tests {
    //! Each expected value cites facts.md §4 ("Injection"); the differential tests
    //! (`tests/model_differential.rs`) compare the whole pod with the real 2.20.2 and 2.31.0 injectors.

    use rstest::rstest;
    use serde_json::{Value, json};

    use super::*;

    fn tp<'a>(version: &str, values: Option<&'a Value>) -> Telepresence<'a> {
        Telepresence { version: v(version), values }
    }

    fn prefix(version: &str) -> &'static str {
        if v(version) >= v("2.22") { PREFIX } else { LEGACY_PREFIX }
    }

    fn pod(version: &str, containers: Value, pod_sc: Option<Value>, extra: &[(&str, &str)]) -> Value {
        let mut annotations = serde_json::Map::new();
        annotations.insert(format!("{}inject-traffic-agent", prefix(version)), json!("enabled"));
        for (k, val) in extra {
            annotations.insert((*k).to_string(), json!(val));
        }
        let mut p = json!({"metadata": {"labels": {"app": "demo"}, "annotations": annotations},
            "spec": {"containers": containers}});
        if let Some(sc) = pod_sc {
            p["spec"]["securityContext"] = sc;
        }
        p
    }

    fn svc(name: &str, ports: Value) -> Value {
        json!({"kind": "Service", "metadata": {"name": name, "uid": format!("uid-{name}")},
            "spec": {"selector": {"app": "demo"}, "ports": ports}})
    }

    fn app(sc: Option<Value>) -> Value {
        let mut c =
            json!({"name": "app", "image": "x", "ports": [{"name": "http", "containerPort": 8080, "protocol": "TCP"}]});
        if let Some(sc) = sc {
            c["securityContext"] = sc;
        }
        c
    }

    fn run(tp: &Telepresence<'_>, pod: &Value, services: &[Value]) -> Injection {
        let workload = Workload { kind: "Deployment", name: "demo", namespace: "app", template: pod };
        let cluster =
            Cluster { services, manager_namespace: "ambassador", trigger: Trigger::Annotation, cluster_domain: None };
        inject(pod, tp, &workload, &cluster)
    }

    fn injected(i: Injection) -> Value {
        match i {
            Injection::Injected(p) => p,
            other => panic!("expected an injection, got {other:?}"),
        }
    }

    fn agent(p: &Value) -> &Value {
        p["spec"]["containers"].as_array().unwrap().iter().find(|c| c["name"] == TRAFFIC_AGENT).unwrap()
    }

    fn named() -> Vec<Value> {
        vec![svc("demo", json!([{"name": "http", "port": 80, "targetPort": "http"}]))]
    }

    #[rstest]
    // ≥ 2.19.1: the configured context verbatim; `{}` is an empty context that is present (facts.md §4).
    #[case("2.20.2", Some(json!({"agent": {"securityContext": {}}})), Some(json!({})))]
    #[case("2.27.4", Some(json!({"agent": {"securityContext": {}}})), Some(json!({})))]
    // Unset: a copy of the app container's context, runAsGroup kept before 2.29.
    #[case("2.22.6", None, Some(json!({"runAsUser": 1000, "runAsGroup": 3000})))]
    // From 2.29: runAsGroup always set to 7439, overwriting the copy's; `{}` gives {runAsGroup: 7439}.
    #[case("2.31.0", None, Some(json!({"runAsUser": 1000, "runAsGroup": 7439})))]
    #[case("2.32.1", Some(json!({"agent": {"securityContext": {}}})), Some(json!({"runAsGroup": 7439})))]
    // A configured runAsGroup is kept verbatim (facts.md §4: "unless agent.securityContext itself sets it").
    #[case("2.31.2", Some(json!({"agent": {"securityContext": {"runAsGroup": 3000}}})), Some(json!({"runAsGroup": 3000})))]
    fn the_agent_context_per_version(
        #[case] version: &str,
        #[case] values: Option<Value>,
        #[case] want: Option<Value>,
    ) {
        let p = pod(version, json!([app(Some(json!({"runAsUser": 1000, "runAsGroup": 3000})))]), None, &[]);
        let out = injected(run(&tp(version, values.as_ref()), &p, &named()));
        assert_eq!(agent(&out).get("securityContext").cloned(), want);
    }

    #[rstest]
    // An app without a context: none before 2.29, {runAsGroup: 7439} from 2.29 (facts.md §4).
    #[case("2.20.2", None)]
    #[case("2.31.0", Some(json!({"runAsGroup": 7439})))]
    fn an_app_without_a_context(#[case] version: &str, #[case] want: Option<Value>) {
        let p = pod(version, json!([app(None)]), None, &[]);
        assert_eq!(agent(&injected(run(&tp(version, None), &p, &named()))).get("securityContext").cloned(), want);
    }

    #[test]
    fn the_gid_skips_one_the_pod_or_another_container_uses() {
        // facts.md §4: "7439, or the next GID not used by the pod or another container".
        let p = pod("2.31.0", json!([app(Some(json!({"runAsGroup": 7440})))]), Some(json!({"runAsGroup": 7439})), &[]);
        assert_eq!(agent(&injected(run(&tp("2.31.0", None), &p, &named())))["securityContext"]["runAsGroup"], 7441);
    }

    #[test]
    fn the_copy_comes_from_the_first_config_container_with_intercepts_and_a_context() {
        // facts.md §4: Services sorted by name; not necessarily the container behind the intercepted port.
        let containers = json!([
            {"name": "a", "ports": [{"name": "pa", "containerPort": 1, "protocol": "TCP"}]},
            {"name": "b", "ports": [{"name": "pb", "containerPort": 2, "protocol": "TCP"}], "securityContext": {"runAsUser": 5}},
            {"name": "c", "ports": [{"name": "pc", "containerPort": 3, "protocol": "TCP"}], "securityContext": {"runAsUser": 6}},
        ]);
        let services = [
            svc("z", json!([{"port": 80, "targetPort": "pb"}])),
            svc("y", json!([{"port": 80, "targetPort": "pc"}, {"name": "x", "port": 81, "targetPort": "pa"}])),
        ];
        let out = injected(run(&tp("2.20.2", None), &pod("2.20.2", containers, None, &[]), &services));
        assert_eq!(agent(&out)["securityContext"], json!({"runAsUser": 6}));
    }

    #[rstest]
    // Named targetPorts: no init container; numeric or omitted ones that resolve: tel-agent-init with
    // NET_ADMIN; a numeric one no port has, when every container declares ports: nothing (facts.md §4).
    #[case(json!([{"port": 80, "targetPort": "http"}]), Some("http"), false)]
    #[case(json!([{"port": 80, "targetPort": 8080}]), Some("http"), true)]
    #[case(json!([{"port": 8080}]), Some("http"), true)]
    #[case(json!([{"port": 80, "targetPort": 9999}]), Some("http"), false)]
    // The last-resort container without ports.
    #[case(json!([{"port": 80, "targetPort": 9999}]), None, true)]
    // UDP does not match a TCP container port.
    #[case(json!([{"port": 80, "targetPort": 8080, "protocol": "UDP"}]), Some("http"), false)]
    fn when_the_init_container_is_added(#[case] ports: Value, #[case] app_port: Option<&str>, #[case] init: bool) {
        for version in ["2.20.2", "2.31.0"] {
            let mut c = app(None);
            if app_port.is_none() {
                c.as_object_mut().unwrap().remove("ports");
            }
            let services = [svc("demo", ports.clone()), svc("named", json!([{"port": 1, "targetPort": "http"}]))];
            let out = injected(run(&tp(version, None), &pod(version, json!([c]), None, &[]), &services));
            let names: Vec<&str> = out["spec"]["initContainers"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|c| c["name"].as_str())
                .collect();
            assert_eq!(names == [AGENT_INIT], init, "{version}: {ports}");
            if init {
                assert_eq!(
                    out["spec"]["initContainers"][0]["securityContext"],
                    json!({"capabilities": {"add": ["NET_ADMIN"]}})
                );
            }
        }
    }

    #[rstest]
    #[case("inject-service-name", "named", false)]
    #[case("inject-service-name", "numeric", true)]
    #[case("inject-service-ports", "http", false)]
    #[case("inject-container-ports", "http", true)]
    fn annotations_restrict_what_counts(#[case] key: &str, #[case] value: &str, #[case] init: bool) {
        // facts.md §4: inject-service-name/-ports restrict; inject-container-ports always counts as numeric.
        let services = [
            svc("named", json!([{"name": "http", "port": 80, "targetPort": "http"}])),
            svc("numeric", json!([{"name": "n", "port": 81, "targetPort": 8080}])),
        ];
        for version in ["2.20.2", "2.31.0"] {
            let k = format!("{}{key}", prefix(version));
            let p = pod(version, json!([app(None)]), None, &[(k.as_str(), value)]);
            let out = injected(run(&tp(version, None), &p, &services));
            assert_eq!(out["spec"]["initContainers"].is_array(), init, "{version} {key}={value}");
        }
    }

    #[test]
    fn the_legacy_singular_service_port_annotation_is_read() {
        let services = [svc(
            "numeric",
            json!([{"name": "n", "port": 81, "targetPort": 8080}, {"name": "http", "port": 80, "targetPort": "http"}]),
        )];
        let p =
            pod("2.31.0", json!([app(None)]), None, &[("telepresence.getambassador.io/inject-service-port", "http")]);
        assert!(injected(run(&tp("2.31.0", None), &p, &services))["spec"]["initContainers"].is_null());
    }

    #[rstest]
    #[case("2.31.0", "disabled", "untouched")]
    #[case("2.31.0", "false", "untouched")]
    // 2.31.0: a User error, admitted without an agent; 2.20.2: denied (facts.md §4).
    #[case("2.31.0", "true", "untouched")]
    #[case("2.20.2", "true", "refused")]
    fn the_inject_annotation_values(#[case] version: &str, #[case] value: &str, #[case] want: &str) {
        let k = format!("{}inject-traffic-agent", prefix(version));
        let p = pod(version, json!([app(None)]), None, &[(k.as_str(), value)]);
        let got = match run(&tp(version, None), &p, &named()) {
            Injection::Injected(_) => "injected",
            Injection::Untouched(_) => "untouched",
            Injection::Refused(_) => "refused",
        };
        assert_eq!(got, want);
    }

    #[test]
    fn an_empty_annotation_is_absent_and_an_intercept_without_a_port_injects_nothing() {
        let k = format!("{PREFIX}inject-service-ports");
        let p = pod("2.31.0", json!([app(None)]), None, &[(k.as_str(), "")]);
        assert!(matches!(run(&tp("2.31.0", None), &p, &named()), Injection::Injected(_)));
        let mut bare = pod("2.31.0", json!([app(None)]), None, &[]);
        bare["metadata"]["annotations"] = json!({});
        let workload = Workload { kind: "Deployment", name: "demo", namespace: "app", template: &bare };
        let by_intercept = Cluster {
            services: &[],
            manager_namespace: "ambassador",
            trigger: Trigger::Intercept,
            cluster_domain: None,
        };
        assert!(matches!(inject(&bare, &tp("2.31.0", None), &workload, &by_intercept), Injection::Untouched(_)));
    }

    #[test]
    fn a_malformed_pod_is_left_alone_never_a_panic() {
        for bad in [
            json!({"metadata": {"labels": "x"}}),
            json!({"spec": {"containers": [{"name": "a", "securityContext": 5}]}}),
        ] {
            assert!(matches!(run(&tp("2.31.0", None), &bad, &named()), Injection::Untouched(_)), "{bad}");
        }
        let values = json!({"agent": {"securityContext": "not an object"}});
        let p = pod("2.31.0", json!([app(None)]), None, &[]);
        let out = injected(run(&tp("2.31.0", Some(&values)), &p, &named()));
        assert_eq!(agent(&out)["securityContext"], json!({"runAsGroup": 7439}));
    }

    #[test]
    fn the_agent_image_falls_back_to_the_top_level_registry_and_the_manager_version() {
        // facts.md §4: AGENT_REGISTRY defaults to image.registry; the tag is the manager's version.
        let values = json!({"image": {"registry": "registry.example/tp", "tag": "9.9.9"}});
        assert_eq!(tp("2.31.0", Some(&values)).agent_image(), "registry.example/tp/tel2:2.31.0");
        assert_eq!(tp("2.19.1", None).agent_image(), "docker.io/datawire/tel2:2.19.1");
        assert_eq!(tp("2.32.1", None).agent_image(), "ghcr.io/telepresenceio/tel2:2.32.1");
    }

    #[rstest]
    #[case("2.20.2")]
    #[case("2.31.0")]
    fn what_policies_see_besides_contexts(#[case] version: &str) {
        // facts.md §4: the app port renamed tm-<name> (and its probe), IfNotPresent, no resources, the
        // volumes, the labels and annotations the injector adds.
        let mut c = app(None);
        c["readinessProbe"] = json!({"httpGet": {"port": "http"}});
        let out = injected(run(&tp(version, None), &pod(version, json!([c]), None, &[]), &named()));
        assert_eq!(out["spec"]["containers"][0]["ports"][0]["name"], "tm-http");
        assert_eq!(out["spec"]["containers"][0]["readinessProbe"]["httpGet"]["port"], "tm-http");
        let a = agent(&out);
        assert_eq!(a["imagePullPolicy"], "IfNotPresent");
        assert!(a.get("resources").is_none());
        assert_eq!(out["metadata"]["labels"]["telepresence.io/workloadName"], "demo");
        let volumes: Vec<&str> =
            out["spec"]["volumes"].as_array().unwrap().iter().filter_map(|v| v["name"].as_str()).collect();
        if version == "2.31.0" {
            assert_eq!(volumes, ["pod-info", "export-volume", "tel-agent-tmp", "traffic-manager-token"]);
            assert!(out["metadata"]["annotations"]["telepresence.io/agent-config"].is_string());
        } else {
            assert_eq!(volumes, ["traffic-annotations", "traffic-config", "export-volume", "tel-agent-tmp"]);
            assert!(out["metadata"]["annotations"].get("telepresence.io/agent-config").is_none());
        }
    }

    #[rstest]
    // By intercept up to 2.21 the restart leaves restartedAt on the template; from 2.22 eviction leaves
    // none (facts.md §4, "Intercept triggers").
    #[case("2.20.2", true)]
    #[case("2.22.6", false)]
    fn the_trigger_changes_the_annotations(#[case] version: &str, #[case] restarted: bool) {
        let mut p = pod(version, json!([app(None)]), None, &[]);
        p["metadata"]["annotations"] = json!({});
        let t = tp(version, None);
        let p = super::restarted(&p, &t, "2026-12-03T00:00:00Z");
        let workload = Workload { kind: "Deployment", name: "demo", namespace: "app", template: &p };
        let services = named();
        let by_intercept = Cluster {
            services: &services,
            manager_namespace: "ambassador",
            trigger: Trigger::Intercept,
            cluster_domain: None,
        };
        let out = injected(inject(&p, &t, &workload, &by_intercept));
        assert_eq!(out["metadata"]["annotations"].get(RESTARTED_AT).is_some(), restarted);
        let by_annotation = Cluster { trigger: Trigger::Annotation, ..by_intercept };
        assert!(matches!(inject(&p, &t, &workload, &by_annotation), Injection::Untouched(_)));
    }
}
