//! Denial evidence of a workload: the raw messages where a denied pod creation shows up (facts.md §3,
//! "Where a denial of the injected pod shows up"). Parsing them is `outcome::denial`'s job.
//!
//! - Deployment: each owned ReplicaSet's `status.conditions[type=ReplicaFailure]` with reason
//!   `FailedCreate` (the raw error, the most stable source), and its `FailedCreate` events
//!   (`Error creating: ...`, or `(combined from similar events): Error creating: ...` once aggregated:
//!   matched by substring, never by prefix).
//! - StatefulSet: its `FailedCreate` events, `create Pod <name> in StatefulSet <set> failed error: <err>`.

use ::kube::api::{Api, ListParams};
use k8s_openapi::api::apps::v1::{Deployment, ReplicaSet, StatefulSet};
use k8s_openapi::api::core::v1::Event;
use serde::Serialize;

use super::{KubeError, WorkloadKind, WorkloadRef};

/// Where a denial message was found.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub enum DenialSource {
    /// A ReplicaSet's `ReplicaFailure` condition (reason `FailedCreate`).
    ReplicaFailureCondition,
    /// A `FailedCreate` event of a ReplicaSet.
    ReplicaSetEvent,
    /// A `FailedCreate` event of a StatefulSet.
    StatefulSetEvent,
}

/// One raw denial message and where it came from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DenialMessage {
    /// The source.
    pub source: DenialSource,
    /// The object that carries it, e.g. `ReplicaSet/app/demo-5d9c`.
    pub object: String,
    /// The message, verbatim.
    pub message: String,
    /// For events: how many times it occurred.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub count: Option<i32>,
}

/// The text marking a ReplicaSet's pod creation error in its event (plain or aggregated).
pub const ERROR_CREATING: &str = "Error creating:";

/// Whether a ReplicaSet event reports a failed pod creation (by reason, or by substring since the
/// aggregated form prefixes the message).
#[must_use]
pub fn is_failed_create(reason: Option<&str>, message: Option<&str>) -> bool {
    reason == Some("FailedCreate") || message.is_some_and(|m| m.contains(ERROR_CREATING))
}

/// Gathers every denial message of `workload`: ReplicaSet conditions first, then events (oldest first).
///
/// # Errors
/// [`KubeError::Api`] when a list or read fails.
pub async fn gather(client: &::kube::Client, workload: &WorkloadRef) -> Result<Vec<DenialMessage>, KubeError> {
    let ns = &workload.namespace;
    let events = list_events(client, ns).await?;
    match workload.kind {
        WorkloadKind::Deployment => {
            let deployment = Api::<Deployment>::namespaced(client.clone(), ns)
                .get(&workload.name)
                .await
                .map_err(|e| KubeError::api(format!("read {workload}"), e))?;
            let uid = deployment.metadata.uid.unwrap_or_default();
            let sets = Api::<ReplicaSet>::namespaced(client.clone(), ns)
                .list(&ListParams::default())
                .await
                .map_err(|e| KubeError::api(format!("list ReplicaSets in {ns}"), e))?;
            let owned: Vec<ReplicaSet> = sets
                .items
                .into_iter()
                .filter(|rs| rs.metadata.owner_references.iter().flatten().any(|o| o.uid == uid))
                .collect();
            Ok(from_replica_sets(ns, &owned, &events))
        }
        WorkloadKind::StatefulSet => {
            // Reading it proves it exists, so an empty result means "no denial", not "wrong name".
            Api::<StatefulSet>::namespaced(client.clone(), ns)
                .get(&workload.name)
                .await
                .map_err(|e| KubeError::api(format!("read {workload}"), e))?;
            Ok(from_statefulset_events(ns, &workload.name, &events))
        }
    }
}

async fn list_events(client: &::kube::Client, ns: &str) -> Result<Vec<Event>, KubeError> {
    let mut events = Api::<Event>::namespaced(client.clone(), ns)
        .list(&ListParams::default())
        .await
        .map_err(|e| KubeError::api(format!("list events in {ns}"), e))?
        .items;
    events.sort_by_key(|e| e.last_timestamp.clone().map(|t| t.0).or(e.event_time.clone().map(|t| t.0)));
    Ok(events)
}

/// Denial messages of the given ReplicaSets: their `ReplicaFailure/FailedCreate` conditions and their
/// `FailedCreate` events among `events`. Pure, so it is tested on fixtures.
#[must_use]
pub fn from_replica_sets(ns: &str, sets: &[ReplicaSet], events: &[Event]) -> Vec<DenialMessage> {
    let mut out = Vec::new();
    for rs in sets {
        let name = rs.metadata.name.as_deref().unwrap_or("?");
        let conditions = rs.status.as_ref().and_then(|s| s.conditions.as_ref());
        for c in conditions.into_iter().flatten() {
            if c.type_ == "ReplicaFailure"
                && c.reason.as_deref() == Some("FailedCreate")
                && let Some(message) = &c.message
            {
                out.push(DenialMessage {
                    source: DenialSource::ReplicaFailureCondition,
                    object: format!("ReplicaSet/{ns}/{name}"),
                    message: message.clone(),
                    count: None,
                });
            }
        }
    }
    for e in events {
        let target = &e.involved_object;
        if target.kind.as_deref() != Some(crate::names::kind::REPLICA_SET) {
            continue;
        }
        let Some(target_name) = target.name.as_deref() else {
            continue;
        };
        if !sets.iter().any(|rs| rs.metadata.name.as_deref() == Some(target_name)) {
            continue;
        }
        if is_failed_create(e.reason.as_deref(), e.message.as_deref()) {
            out.push(DenialMessage {
                source: DenialSource::ReplicaSetEvent,
                object: format!("ReplicaSet/{ns}/{target_name}"),
                message: e.message.clone().unwrap_or_default(),
                count: e.count,
            });
        }
    }
    out
}

/// `FailedCreate` events of the StatefulSet `name`. Pure.
#[must_use]
pub fn from_statefulset_events(ns: &str, name: &str, events: &[Event]) -> Vec<DenialMessage> {
    events
        .iter()
        .filter(|e| {
            e.involved_object.kind.as_deref() == Some(crate::names::kind::STATEFUL_SET)
                && e.involved_object.name.as_deref() == Some(name)
                && (e.reason.as_deref() == Some("FailedCreate")
                    || e.message.as_deref().is_some_and(|m| m.contains("failed error:")))
        })
        .map(|e| DenialMessage {
            source: DenialSource::StatefulSetEvent,
            object: format!("StatefulSet/{ns}/{name}"),
            message: e.message.clone().unwrap_or_default(),
            count: e.count,
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rs(name: &str, conditions: serde_json::Value) -> ReplicaSet {
        serde_json::from_value(serde_json::json!({
            "metadata": {"name": name, "namespace": "app"},
            "spec": {"selector": {}},
            "status": {"replicas": 0, "conditions": conditions}
        }))
        .unwrap()
    }

    fn event(kind: &str, name: &str, reason: &str, message: &str) -> Event {
        serde_json::from_value(serde_json::json!({
            "metadata": {"name": format!("{name}.1"), "namespace": "app"},
            "involvedObject": {"kind": kind, "name": name, "namespace": "app"},
            "reason": reason, "message": message, "count": 3
        }))
        .unwrap()
    }

    #[test]
    fn replica_failure_condition_and_events_including_aggregated() {
        let sets = [rs(
            "demo-1",
            serde_json::json!([{"type": "ReplicaFailure", "status": "True", "reason": "FailedCreate",
                                "message": "admission webhook \"validate.kyverno.svc-fail\" denied the request: x"}]),
        )];
        let events = [
            event("ReplicaSet", "demo-1", "FailedCreate", "Error creating: admission webhook ... denied"),
            event("ReplicaSet", "demo-1", "SomethingElse", "(combined from similar events): Error creating: y"),
            event("ReplicaSet", "other-9", "FailedCreate", "Error creating: not ours"),
            event("ReplicaSet", "demo-1", "SuccessfulCreate", "Created pod: demo-1-abc"),
        ];
        let got = from_replica_sets("app", &sets, &events);
        let sources: Vec<_> = got.iter().map(|d| d.source).collect();
        assert_eq!(
            sources,
            [DenialSource::ReplicaFailureCondition, DenialSource::ReplicaSetEvent, DenialSource::ReplicaSetEvent]
        );
        assert!(got[0].message.starts_with("admission webhook"));
        assert_eq!(got[2].message, "(combined from similar events): Error creating: y");
        assert_eq!(got[1].object, "ReplicaSet/app/demo-1");
    }

    #[test]
    fn statefulset_events_only_for_that_set() {
        let events = [
            event(
                "StatefulSet",
                "traffic-manager",
                "FailedCreate",
                "create Pod traffic-manager-0 in StatefulSet traffic-manager failed error: denied",
            ),
            event("StatefulSet", "other", "FailedCreate", "create Pod other-0 in StatefulSet other failed error: x"),
        ];
        let got = from_statefulset_events("ambassador", "traffic-manager", &events);
        assert_eq!(got.len(), 1);
        assert_eq!(got[0].source, DenialSource::StatefulSetEvent);
        assert!(got[0].message.contains("failed error: denied"));
    }
}
