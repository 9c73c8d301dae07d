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

/// The name of the injected sidecar.
pub const AGENT_CONTAINER: &str = "traffic-agent";
/// The name of the injected init container.
pub const INIT_CONTAINER: &str = "tel-agent-init";
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
pub(crate) fn annotation<'a>(tp: &Telepresence<'_>, meta: &'a Value, name: &str) -> Option<&'a str> {
    tp.annotation_keys(name).iter().find_map(|k| meta["annotations"].get(k.as_str()).and_then(Value::as_str))
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
    let meta = &pod["metadata"];
    if pod["spec"]["containers"].as_array().is_some_and(|cs| cs.iter().any(|c| c["name"] == AGENT_CONTAINER)) {
        return Injection::Untouched("the pod already has a traffic-agent".into());
    }
    match annotation(tp, meta, "inject-traffic-agent") {
        Some("enabled") => {}
        Some("false" | "disabled") => return Injection::Untouched("injection disabled by annotation".into()),
        // OnDemand (the default policy): only after an intercept generated the config.
        None if cluster.trigger == Trigger::Intercept => {}
        None => return Injection::Untouched("no inject-traffic-agent annotation and no intercept".into()),
        Some(other) => {
            // 2.31.0: a User error; the webhook admits the pod without an agent and warns.
            // upstream: mutator/agent_injector.go@v2.31.0:166-170 (facts.md §4).
            return Injection::Untouched(format!("invalid value {other:?} for annotation inject-traffic-agent"));
        }
    }
    let config = match config::generate(tp, workload, cluster) {
        Ok(c) => c,
        Err(config::Failure::User(m)) => return Injection::Untouched(m),
        Err(config::Failure::Refused(m)) => return Injection::Refused(m),
        Err(config::Failure::Panic(m)) => return Injection::Untouched(m),
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
