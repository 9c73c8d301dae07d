//! Model drift: the pod the injection model predicts from a workload's live inputs (its ReplicaSet's
//! template, the namespace's Services, the installation), compared field by field with the pod the
//! injector really made. A difference means the model is wrong somewhere: it is recorded, in the
//! JSON report and the Markdown summary, and explained only by the committed not-modelled file.

use serde::Serialize;
use serde_json::{Value, json};

use crate::kube::api::{ApiResult, ClusterApi};
use crate::kube::injection::{Created, Settled};
use crate::names::kind::REPLICA_SET;
use crate::plan::ModelInput;
use crate::predict::compare::{Difference, differences};
use crate::predict::coverage::{self, NotModelled};
use crate::predict::inject::{self, Injection, Trigger};

/// A difference the not-modelled file explains.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Explained {
    /// The difference.
    #[serde(flatten)]
    pub difference: Difference,
    /// The file's reason.
    pub reason: String,
}

/// One workload's comparison of model and cluster.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct DriftRecord {
    /// The Deployment.
    pub workload: String,
    /// The provider of the run.
    pub provider: String,
    /// The Telepresence version modelled.
    pub telepresence: String,
    /// What made the injector act.
    pub trigger: Trigger,
    /// What the model predicts: `injected`, `untouched: <why>` or `refused: <message>`.
    pub model: String,
    /// What the cluster did: `pod <name>` or `refused: <message>`.
    pub live: String,
    /// Differences nothing explains: the model is wrong here.
    pub differences: Vec<Difference>,
    /// Differences the not-modelled file explains.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub explained: Vec<Explained>,
    /// The model's pod (defaulted by the API server): always for a run's judged pod; for
    /// `compareModel`'s many workloads, when anything differs.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub predicted_pod: Option<Value>,
    /// The live pod, kept with the model's.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub live_pod: Option<Value>,
}

impl DriftRecord {
    /// Whether the model and the cluster agree (explained differences aside).
    #[must_use]
    pub fn agrees(&self) -> bool {
        self.differences.is_empty()
    }

    /// One line per unexplained difference, prefixed with the workload.
    #[must_use]
    pub fn lines(&self) -> Vec<String> {
        self.differences.iter().map(|d| format!("{}: {d}", self.workload)).collect()
    }
}

fn split(diffs: Vec<Difference>, entries: &[NotModelled]) -> (Vec<Difference>, Vec<Explained>) {
    let mut open = Vec::new();
    let mut explained = Vec::new();
    for d in diffs {
        match coverage::explanation(entries, &d) {
            Some(e) => explained.push(Explained { difference: d, reason: e.reason.clone() }),
            None => open.push(d),
        }
    }
    (open, explained)
}

fn first_line(s: &str) -> String {
    s.lines().next().unwrap_or_default().chars().take(300).collect()
}

/// The Deployment a ReplicaSet belongs to (its controller owner), else the ReplicaSet itself.
fn owner(rs: &Value) -> (String, String) {
    rs["metadata"]["ownerReferences"]
        .as_array()
        .and_then(|refs| refs.iter().find(|r| r["controller"] == true))
        .map(|r| {
            (r["kind"].as_str().unwrap_or_default().to_string(), r["name"].as_str().unwrap_or_default().to_string())
        })
        .unwrap_or_else(|| (REPLICA_SET.into(), rs["metadata"]["name"].as_str().unwrap_or_default().to_string()))
}

/// Compares one settled workload with the model's prediction from the same inputs.
///
/// # Errors
/// An API failure of a dry-run (the comparison could not be made; never a verdict).
pub async fn compare(
    api: &impl ClusterApi,
    settled: &Settled,
    services: &[Value],
    model: &ModelInput,
    keep_pods: bool,
) -> ApiResult<DriftRecord> {
    let tp = model.telepresence();
    let entries = coverage::not_modelled_for(&tp.version);
    let rs = &settled.replica_set;
    let namespace = rs["metadata"]["namespace"].as_str().unwrap_or_default().to_string();
    let (kind, name) = owner(rs);
    let mut template = rs["spec"]["template"].clone();
    if let Some(labels) = template["metadata"]["labels"].as_object_mut() {
        // The ReplicaSet controller's label; the workload's own template has none.
        labels.remove("pod-template-hash");
    }
    let workload = inject::Workload { kind: &kind, name: &name, namespace: &namespace, template: &template };
    let cluster = inject::Cluster {
        services,
        manager_namespace: &model.manager_namespace,
        trigger: model.trigger,
        cluster_domain: model.cluster_domain.as_deref(),
    };
    let requested = api.defaulted_pod(&settled.requested_pod(), false).await?;
    let injection = inject::inject(&requested, &tp, &workload, &cluster);
    let (model_text, predicted) = match &injection {
        Injection::Injected(p) => ("injected".to_string(), Some(api.defaulted_pod(p, true).await?)),
        Injection::Untouched(why) => (format!("untouched: {why}"), Some(requested.clone())),
        Injection::Refused(m) => (format!("refused: {m}"), None),
    };
    let (live_text, live_pod) = match &settled.created {
        Created::Pod(p) => (format!("pod {}", p["metadata"]["name"].as_str().unwrap_or_default()), Some(p.clone())),
        Created::Refused(m) => (format!("refused: {}", first_line(m.last().map_or("", String::as_str))), None),
    };
    let diffs = match (&predicted, &live_pod) {
        (Some(p), Some(l)) => differences(p, l),
        (None, None) => Vec::new(),
        (Some(_), None) => vec![Difference { path: String::new(), model: json!(model_text), live: json!(live_text) }],
        (None, Some(_)) => vec![Difference { path: String::new(), model: json!(model_text), live: json!(live_text) }],
    };
    let (differences, explained) = split(diffs, &entries);
    let keep = keep_pods || !differences.is_empty() || !explained.is_empty();
    Ok(DriftRecord {
        workload: name,
        provider: model.provider.clone(),
        telepresence: model.telepresence.clone(),
        trigger: model.trigger,
        model: model_text,
        live: live_text,
        differences,
        explained,
        predicted_pod: predicted.filter(|_| keep),
        live_pod: live_pod.filter(|_| keep),
    })
}

/// Compares the pod a run judged (its ReplicaSet read back from the cluster) with the model.
///
/// # Errors
/// As [`compare`], and when the pod's ReplicaSet or the Services cannot be read.
pub async fn compare_pod(api: &impl ClusterApi, pod: &Value, model: &ModelInput) -> ApiResult<DriftRecord> {
    let namespace = pod["metadata"]["namespace"].as_str().unwrap_or_default();
    let rs_name = pod["metadata"]["ownerReferences"]
        .as_array()
        .and_then(|refs| refs.iter().find(|r| r["kind"] == REPLICA_SET))
        .and_then(|r| r["name"].as_str())
        .ok_or_else(|| crate::kube::api::ApiFailure::new("the judged pod has no ReplicaSet owner"))?;
    let rs = api.get_json(&format!("/apis/apps/v1/namespaces/{namespace}/replicasets/{rs_name}")).await?;
    let services = services(api, namespace).await?;
    let settled = Settled { deployment: String::new(), replica_set: rs, created: Created::Pod(pod.clone()) };
    // A run's judged pod: both pods are always recorded, side by side.
    compare(api, &settled, &services, model, true).await
}

/// The Services of `namespace`, each with its `kind` (a list's items carry none).
///
/// # Errors
/// When they cannot be listed.
pub async fn services(api: &impl ClusterApi, namespace: &str) -> ApiResult<Vec<Value>> {
    let list = api.get_json(&format!("/api/v1/namespaces/{namespace}/services")).await?;
    Ok(list["items"]
        .as_array()
        .cloned()
        .unwrap_or_default()
        .into_iter()
        .map(|mut s| {
            s["kind"] = json!("Service");
            s
        })
        .collect())
}
