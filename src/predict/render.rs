//! The objects a scenario would create, rendered offline as the API server would see them:
//! the workload as written, the intercepted pod after injection, the canary pod, and a model of the
//! traffic-manager.

use serde::Serialize;
use serde_json::{Map, Value, json};

use super::inject::{self, Telepresence};
use super::serialize::api_server_form;
use crate::names::kind::{DEPLOYMENT, STATEFUL_SET};
use crate::scenario::{Loaded, policy};
use crate::{Error, Result};

/// The name of the canary pod.
pub const CANARY: &str = "kyvtel-canary";
/// The annotation that marks a rendering as a model rather than the real object.
pub const MODEL_ANNOTATION: &str = "kyvtel.dev/model";

/// What a rendered object stands for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub enum Role {
    /// The workload Deployment as written (judged by Kyverno's autogen rules).
    Workload,
    /// The workload's pod as written, without an agent.
    WorkloadPod,
    /// The workload's pod after Telepresence's injection.
    Intercepted,
    /// A known-bad pod that the policies must deny.
    Canary,
    /// A model of the traffic-manager workload (Deployment up to 2.31, StatefulSet from 2.32).
    Manager,
    /// A model of the traffic-manager pod.
    ManagerPod,
    /// An object of the `admit` step at this index of `spec.steps`, as written.
    Probe(usize),
}

impl Role {
    /// A short label for tables.
    #[must_use]
    pub fn label(self) -> &'static str {
        match self {
            Role::Workload => "workload",
            Role::WorkloadPod => "workload pod",
            Role::Intercepted => "intercepted pod",
            Role::Canary => "canary",
            Role::Manager => "traffic-manager",
            Role::ManagerPod => "traffic-manager pod",
            Role::Probe(_) => "admit probe",
        }
    }
}

/// One rendered object.
#[derive(Debug, Clone, Serialize)]
pub struct Rendered {
    /// What it stands for.
    pub role: Role,
    /// Whether it is a model built from chart defaults rather than from the scenario's files.
    pub model: bool,
    /// The object, in API-server form.
    pub object: Value,
}

/// The Telepresence installation of a scenario.
#[must_use]
pub fn telepresence(loaded: &Loaded) -> Telepresence<'_> {
    Telepresence {
        version: loaded.versions.telepresence_version(),
        values: loaded.telepresence_values.as_ref().map(|(_, v)| v),
    }
}

fn workload_template(loaded: &Loaded) -> Result<&Value> {
    let w = &loaded.scenario.spec.workload;
    loaded.workload().map(|d| &d["spec"]["template"]).ok_or_else(|| {
        Error::input(
            &loaded.path,
            loaded.index.value("/spec/workload/name"),
            format!("no Deployment named `{}`", w.name),
        )
    })
}

fn pod(name: &str, namespace: &str, template: &Value) -> Value {
    let mut metadata = Map::new();
    metadata.insert("name".into(), json!(name));
    metadata.insert("namespace".into(), json!(namespace));
    for key in ["labels", "annotations"] {
        if let Some(v) = template["metadata"].get(key) {
            metadata.insert(key.into(), v.clone());
        }
    }
    json!({"apiVersion": "v1", "kind": "Pod", "metadata": metadata, "spec": template["spec"].clone()})
}

/// The Services among the workload manifests that select the workload's pods.
#[must_use]
pub fn selecting_services<'a>(loaded: &'a Loaded, pod_labels: &Map<String, Value>) -> Vec<&'a Value> {
    loaded.manifest_values().filter(|d| inject::selects(d, pod_labels)).collect()
}

/// The workload's pod after Telepresence's injection, for the scenario's version and values, in
/// API-server form. Public so that a live run can compare it with the real pod (model drift).
pub fn injected_pod(loaded: &Loaded) -> Result<Value> {
    let template = workload_template(loaded)?;
    let w = &loaded.scenario.spec.workload;
    let as_written = pod(&format!("{}-intercepted", w.name), &w.namespace, template);
    let services: Vec<Value> = loaded.manifest_values().filter(|d| d["kind"] == "Service").cloned().collect();
    let workload = inject::Workload { kind: DEPLOYMENT, name: &w.name, namespace: &w.namespace, template };
    let cluster = inject::Cluster {
        services: &services,
        manager_namespace: &loaded.scenario.spec.telepresence.manager_namespace,
        trigger: inject::Trigger::Intercept,
        cluster_domain: Some("cluster.local"),
    };
    let tp = telepresence(loaded);
    let as_written = inject::restarted(&as_written, &tp, "<restart time>");
    let injected = inject::inject(&as_written, &tp, &workload, &cluster);
    Ok(api_server_form(&injected.admitted(&as_written).unwrap_or(as_written)))
}

/// The workload's pod as written, without an agent.
pub fn workload_pod(loaded: &Loaded) -> Result<Value> {
    let w = &loaded.scenario.spec.workload;
    Ok(api_server_form(&pod(&format!("{}-as-written", w.name), &w.namespace, workload_template(loaded)?)))
}

/// The workload Deployment as written, placed in the workload namespace.
pub fn workload(loaded: &Loaded) -> Result<Value> {
    workload_template(loaded)?;
    let mut d = loaded.workload().cloned().unwrap_or_default();
    d["metadata"]["namespace"] = json!(loaded.scenario.spec.workload.namespace);
    Ok(api_server_form(&d))
}

/// A pod that strict policies must deny: an allowed image (pinned in `pins.yaml`), but no
/// securityContext at all.
#[must_use]
pub fn canary_pod(namespace: &str) -> Value {
    json!({
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": CANARY, "namespace": namespace, "labels": {"app.kubernetes.io/name": CANARY}},
        "spec": {"containers": [{"name": "canary", "image": crate::scenario::pins::Pins::builtin().images.canary}]},
    })
}

/// The traffic-manager pod template, from the chart defaults in facts.md §4: labels
/// `app=traffic-manager,telepresence=manager`, the tel2 image and the securityContext
/// `{readOnlyRootFilesystem: true, runAsNonRoot: true, runAsUser: 1000}`. A model: the container
/// name, the pod-level context (none) and any values overriding these are not modelled.
#[must_use]
pub fn manager_template(tp: &Telepresence<'_>) -> Value {
    json!({
        "metadata": {
            "labels": {"app": "traffic-manager", "telepresence": "manager"},
            "annotations": {MODEL_ANNOTATION: "true"},
        },
        "spec": {"containers": [{
            "name": "traffic-manager",
            "image": tp.manager_image(),
            "securityContext": {"readOnlyRootFilesystem": true, "runAsNonRoot": true, "runAsUser": 1000},
        }]},
    })
}

/// A model of the traffic-manager workload: a Deployment up to 2.31, a StatefulSet from 2.32
/// (facts.md §4), named `traffic-manager`, in the manager namespace.
#[must_use]
pub fn manager(tp: &Telepresence<'_>, namespace: &str) -> Value {
    let template = manager_template(tp);
    let stateful = tp.version >= crate::scenario::version::Version::parse("2.32").unwrap_or_else(|| unreachable!());
    let mut spec = json!({
        "replicas": 1,
        "selector": {"matchLabels": {"app": "traffic-manager", "telepresence": "manager"}},
        "template": template,
    });
    if stateful {
        spec["serviceName"] = json!("traffic-manager");
    }
    api_server_form(&json!({
        "apiVersion": "apps/v1",
        "kind": if stateful { STATEFUL_SET } else { DEPLOYMENT },
        "metadata": {"name": "traffic-manager", "namespace": namespace, "annotations": {MODEL_ANNOTATION: "true"}},
        "spec": spec,
    }))
}

/// Every object `kyvtel check` judges for a scenario, in a stable order.
pub fn render(loaded: &Loaded) -> Result<Vec<Rendered>> {
    let tp = telepresence(loaded);
    let manager_ns = &loaded.scenario.spec.telepresence.manager_namespace;
    let one = |role, model, object| Rendered { role, model, object };
    let mut out = vec![
        one(Role::Workload, false, workload(loaded)?),
        one(Role::WorkloadPod, false, workload_pod(loaded)?),
        one(Role::Intercepted, true, injected_pod(loaded)?),
        one(Role::Canary, false, api_server_form(&canary_pod(&loaded.scenario.spec.workload.namespace))),
        one(Role::Manager, true, manager(&tp, manager_ns)),
        one(Role::ManagerPod, true, api_server_form(&pod("traffic-manager-model", manager_ns, &manager_template(&tp)))),
    ];
    out.extend(probes(loaded).into_iter().map(|(i, o)| one(Role::Probe(i), false, o)));
    Ok(out)
}

/// The objects of every `admit` step whose `when` holds, with the step's index, in the workload
/// namespace and in API-server form.
fn probes(loaded: &Loaded) -> Vec<(usize, Value)> {
    let ns = &loaded.scenario.spec.workload.namespace;
    let mut out = Vec::new();
    for (i, step) in loaded.scenario.spec.steps.iter().enumerate() {
        let crate::scenario::model::Step::Admit(a) = step else { continue };
        if a.when.as_ref().is_some_and(|w| !loaded.versions.satisfies(w)) {
            continue;
        }
        let docs = a.manifests.iter().filter_map(|rel| loaded.admit_manifests.get(rel)).flat_map(|f| &f.documents);
        for d in docs {
            let mut o = d.value.clone();
            if o["metadata"].is_object() {
                o["metadata"]["namespace"] = json!(ns);
            }
            out.push((i, api_server_form(&o)));
        }
    }
    out
}

/// The scenario's policies with exclusions merged, as they will be applied.
#[must_use]
pub fn policies(loaded: &Loaded) -> Vec<Value> {
    loaded.policies.iter().map(|p| p.merged.clone()).collect()
}

/// The name of a rendered object, for messages.
#[must_use]
pub fn name(object: &Value) -> &str {
    policy::name(object).unwrap_or_default()
}
