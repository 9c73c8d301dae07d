//! Waits with composable conditions, a timeout on every wait, and the last observed state in every
//! failure.
//!
//! Conditions are kube-rs [`Condition`]s: any `Fn(Option<&K>) -> bool`, combined with `.and()`,
//! `.or()` and `.not()` ([`conditions`]). A named object is watched with
//! `kube::runtime::wait::await_condition`, wrapped in `tokio::time::timeout` (it has none of its own,
//! facts.md §6); every object the watch delivers is kept, so a timeout reports what was last seen
//! ([`Summary`]), never a bare "timed out". Pods of a workload are polled by label selector, with the
//! same rules. A wait can also end early with [`KubeError::WaitFailed`] when the state shows it cannot
//! succeed (e.g. `ProgressDeadlineExceeded`, a `traffic-agent` that cannot start).

use std::collections::BTreeSet;
use std::fmt::Debug;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use ::kube::api::{Api, DynamicObject, ListParams};
use ::kube::core::Resource;
pub use ::kube::runtime::wait::Condition;
use ::kube::runtime::wait::await_condition;
use k8s_openapi::api::apps::v1::{Deployment, StatefulSet};
use k8s_openapi::api::core::v1::{ContainerStatus, Namespace, Pod};
use serde::de::DeserializeOwned;
use tokio::time::{Instant, sleep};

use super::ownership::cluster_policy_resource;
use super::{KubeError, WorkloadKind, WorkloadRef};

use crate::names::telepresence::TRAFFIC_AGENT;

/// Container waiting reasons after which a wait for that container gives up: the kubelet keeps
/// retrying, but the pod spec must change first (e.g. `runAsNonRoot` without a numeric user,
/// facts.md §4) or the container keeps crashing.
pub const HOPELESS_WAITING_REASONS: &[&str] = &["CreateContainerConfigError", "CrashLoopBackOff"];

/// Predicates for the things kyvtel waits for. Each is a pure [`Condition`].
pub mod conditions {
    use super::*;

    /// A Deployment is rolled out, as `kubectl rollout status` decides: it has observed its latest
    /// generation, every desired replica (`spec.replicas`, default 1) is updated, no old replica is
    /// left (`status.replicas`, which counts every ReplicaSet's pods, equals `updatedReplicas`),
    /// every updated replica is available, and it is `Available=True`.
    // upstream: kubernetes/kubectl pkg/polymorphichelpers/rollout_status.go (DeploymentStatusViewer).
    #[must_use]
    pub fn deployment_available() -> impl Condition<Deployment> {
        |d: Option<&Deployment>| {
            let Some(d) = d else { return false };
            let Some(status) = &d.status else {
                return false;
            };
            let desired = d.spec.as_ref().and_then(|s| s.replicas).unwrap_or(1);
            let observed = status.observed_generation.unwrap_or(0) >= d.metadata.generation.unwrap_or(0);
            let available = status.conditions.iter().flatten().any(|c| c.type_ == "Available" && c.status == "True");
            let updated = status.updated_replicas.unwrap_or(0);
            observed
                && available
                && updated >= desired
                && status.replicas.unwrap_or(0) <= updated
                && status.available_replicas.unwrap_or(0) >= updated
        }
    }

    /// A StatefulSet has observed its latest generation and all desired replicas are ready and on
    /// the update revision.
    #[must_use]
    pub fn statefulset_ready() -> impl Condition<StatefulSet> {
        |s: Option<&StatefulSet>| {
            let Some(s) = s else { return false };
            let Some(status) = &s.status else {
                return false;
            };
            let desired = s.spec.as_ref().and_then(|sp| sp.replicas).unwrap_or(1);
            let observed = status.observed_generation.unwrap_or(0) >= s.metadata.generation.unwrap_or(0);
            let same_revision = match (&status.current_revision, &status.update_revision) {
                (Some(c), Some(u)) => c == u,
                _ => true,
            };
            observed && same_revision && status.ready_replicas.unwrap_or(0) >= desired
        }
    }

    /// A Kyverno policy has `status.conditions[type=Ready].status == "True"` (facts.md §3).
    #[must_use]
    pub fn policy_ready() -> impl Condition<DynamicObject> {
        |p: Option<&DynamicObject>| {
            p.and_then(|p| p.data.pointer("/status/conditions")).and_then(|c| c.as_array()).is_some_and(|cs| {
                cs.iter().any(|c| {
                    c.get("type").and_then(|t| t.as_str()) == Some("Ready")
                        && c.get("status").and_then(|s| s.as_str()) == Some("True")
                })
            })
        }
    }

    /// The object does not exist (any kind).
    #[must_use]
    pub fn gone<K>() -> impl Condition<K> {
        |o: Option<&K>| o.is_none()
    }

    /// Among the listed pods there is one whose uid is not in `old_uids` and whose `container` is
    /// ready (and not being deleted).
    #[must_use]
    pub fn new_pod_with_ready_container(old_uids: BTreeSet<String>, container: String) -> impl Condition<Vec<Pod>> {
        move |pods: Option<&Vec<Pod>>| pods.is_some_and(|pods| find_new_ready(pods, &old_uids, &container).is_some())
    }

    pub(super) fn find_new_ready<'p>(pods: &'p [Pod], old: &BTreeSet<String>, container: &str) -> Option<&'p Pod> {
        pods.iter().find(|p| {
            let new = p.metadata.uid.as_ref().is_some_and(|u| !old.contains(u));
            let live = p.metadata.deletion_timestamp.is_none();
            new && live && container_status(p, container).is_some_and(|c| c.ready)
        })
    }
}

/// The pod the intercept produced: not in `old_uids` (created after the intercept started), not
/// terminating, with `container` ready. Up to Telepresence 2.21 it is the new ReplicaSet's pod (the
/// old one keeps serving), from 2.22 the replacement in the same ReplicaSet (the evicted one
/// terminates); facts.md §4.
#[must_use]
pub fn find_new_pod_with_ready_container<'p>(
    pods: &'p [Pod],
    old_uids: &BTreeSet<String>,
    container: &str,
) -> Option<&'p Pod> {
    conditions::find_new_ready(pods, old_uids, container)
}

fn container_status<'p>(pod: &'p Pod, name: &str) -> Option<&'p ContainerStatus> {
    pod.status.as_ref()?.container_statuses.as_ref()?.iter().find(|c| c.name == name)
}

/// A one-line account of an object's state, for timeouts and failures.
pub trait Summary {
    /// What matters about the state, e.g. replica counts and conditions.
    fn summary(&self) -> String;
}

fn conditions_text<'a>(items: impl Iterator<Item = (&'a str, &'a str, Option<&'a str>, Option<&'a str>)>) -> String {
    let parts: Vec<String> = items
        .map(|(t, s, reason, message)| {
            let mut part = format!("{t}={s}");
            match (reason, message) {
                (Some(r), Some(m)) if !m.is_empty() => part.push_str(&format!(" ({r}: {m})")),
                (Some(r), _) => part.push_str(&format!(" ({r})")),
                (None, Some(m)) if !m.is_empty() => part.push_str(&format!(" ({m})")),
                _ => {}
            }
            part
        })
        .collect();
    if parts.is_empty() { "no conditions".to_string() } else { parts.join(", ") }
}

impl Summary for Deployment {
    fn summary(&self) -> String {
        let desired = self.spec.as_ref().and_then(|s| s.replicas).unwrap_or(1);
        let Some(st) = &self.status else {
            return format!("desired={desired}, no status yet");
        };
        let conds = conditions_text(
            st.conditions
                .iter()
                .flatten()
                .map(|c| (c.type_.as_str(), c.status.as_str(), c.reason.as_deref(), c.message.as_deref())),
        );
        format!(
            "desired={desired} replicas={} updated={} ready={} available={} unavailable={} observedGeneration={}/{}; {conds}",
            st.replicas.unwrap_or(0),
            st.updated_replicas.unwrap_or(0),
            st.ready_replicas.unwrap_or(0),
            st.available_replicas.unwrap_or(0),
            st.unavailable_replicas.unwrap_or(0),
            st.observed_generation.unwrap_or(0),
            self.metadata.generation.unwrap_or(0),
        )
    }
}

impl Summary for StatefulSet {
    fn summary(&self) -> String {
        let desired = self.spec.as_ref().and_then(|s| s.replicas).unwrap_or(1);
        let Some(st) = &self.status else {
            return format!("desired={desired}, no status yet");
        };
        let conds = conditions_text(
            st.conditions
                .iter()
                .flatten()
                .map(|c| (c.type_.as_str(), c.status.as_str(), c.reason.as_deref(), c.message.as_deref())),
        );
        format!(
            "desired={desired} replicas={} ready={} current={} updated={} revision={}->{}; {conds}",
            st.replicas,
            st.ready_replicas.unwrap_or(0),
            st.current_replicas.unwrap_or(0),
            st.updated_replicas.unwrap_or(0),
            st.current_revision.as_deref().unwrap_or("?"),
            st.update_revision.as_deref().unwrap_or("?"),
        )
    }
}

impl Summary for DynamicObject {
    fn summary(&self) -> String {
        let conds = self.data.pointer("/status/conditions").and_then(|c| c.as_array());
        let Some(conds) = conds else {
            return "no status.conditions yet".to_string();
        };
        let s = |c: &serde_json::Value, k: &str| c.get(k).and_then(|v| v.as_str()).map(str::to_string);
        let owned: Vec<(String, String, Option<String>, Option<String>)> = conds
            .iter()
            .map(|c| {
                (s(c, "type").unwrap_or_default(), s(c, "status").unwrap_or_default(), s(c, "reason"), s(c, "message"))
            })
            .collect();
        conditions_text(owned.iter().map(|(t, st, r, m)| (t.as_str(), st.as_str(), r.as_deref(), m.as_deref())))
    }
}

impl Summary for Namespace {
    fn summary(&self) -> String {
        let phase = self.status.as_ref().and_then(|s| s.phase.as_deref()).unwrap_or("?");
        let conds = self.status.as_ref().and_then(|s| s.conditions.as_ref());
        let conds = conditions_text(
            conds
                .into_iter()
                .flatten()
                .map(|c| (c.type_.as_str(), c.status.as_str(), c.reason.as_deref(), c.message.as_deref())),
        );
        format!("phase={phase}; {conds}")
    }
}

impl Summary for Pod {
    fn summary(&self) -> String {
        let name = self.metadata.name.as_deref().unwrap_or("?");
        let uid = self.metadata.uid.as_deref().unwrap_or("?");
        let status = self.status.as_ref();
        let phase = status.and_then(|s| s.phase.as_deref()).unwrap_or("?");
        let deleting = if self.metadata.deletion_timestamp.is_some() { " (deleting)" } else { "" };
        let describe = |c: &ContainerStatus| {
            let state = c.state.as_ref();
            let detail = if let Some(w) = state.and_then(|s| s.waiting.as_ref()) {
                format!(
                    "waiting {}{}",
                    w.reason.as_deref().unwrap_or(""),
                    w.message.as_ref().map(|m| format!(": {m}")).unwrap_or_default()
                )
            } else if let Some(t) = state.and_then(|s| s.terminated.as_ref()) {
                format!("terminated {} exit {}", t.reason.as_deref().unwrap_or(""), t.exit_code)
            } else if state.and_then(|s| s.running.as_ref()).is_some() {
                "running".to_string()
            } else {
                "unknown".to_string()
            };
            format!("{} ready={} restarts={} {detail}", c.name, c.ready, c.restart_count)
        };
        let init: Vec<String> =
            status.and_then(|s| s.init_container_statuses.as_ref()).into_iter().flatten().map(describe).collect();
        let main: Vec<String> =
            status.and_then(|s| s.container_statuses.as_ref()).into_iter().flatten().map(describe).collect();
        let mut out = format!("pod {name} uid={uid} phase={phase}{deleting}");
        if !init.is_empty() {
            out.push_str(&format!("; init: {}", init.join(", ")));
        }
        out.push_str(&format!(
            "; containers: {}",
            if main.is_empty() { "none reported".to_string() } else { main.join(", ") }
        ));
        out
    }
}

impl Summary for Vec<Pod> {
    fn summary(&self) -> String {
        if self.is_empty() {
            return "no pods".to_string();
        }
        self.iter().map(Summary::summary).collect::<Vec<_>>().join(" | ")
    }
}

/// What a watch saw last: nothing yet, an absent object, or an object.
fn describe_last<K: Summary>(last: &Option<Option<K>>) -> String {
    match last {
        None => "nothing (no answer from the API server yet)".to_string(),
        Some(None) => "the object does not exist".to_string(),
        Some(Some(k)) => k.summary(),
    }
}

/// Watches the object `name` through `api` until `cond` holds, for at most `timeout`.
///
/// `fail` is asked about every observed state; when it returns a reason the wait ends with
/// [`KubeError::WaitFailed`]. Returns the object that satisfied `cond` (`None` when `cond` accepts an
/// absent object, e.g. [`conditions::gone`]).
///
/// # Errors
/// [`KubeError::TimedOut`] / [`KubeError::WaitFailed`], both with the last observed state.
pub async fn wait_for<K, C, F>(
    api: Api<K>,
    name: &str,
    what: &str,
    timeout: Duration,
    cond: C,
    fail: F,
) -> Result<Option<K>, KubeError>
where
    K: Clone + Debug + Send + Sync + DeserializeOwned + Resource + Summary + 'static,
    C: Condition<K>,
    F: Fn(Option<&K>) -> Option<String>,
{
    let last: Arc<Mutex<Option<Option<K>>>> = Arc::new(Mutex::new(None));
    let failure: Arc<Mutex<Option<String>>> = Arc::new(Mutex::new(None));
    let recording = {
        let (last, failure) = (Arc::clone(&last), Arc::clone(&failure));
        move |obj: Option<&K>| {
            if let Ok(mut l) = last.lock() {
                *l = Some(obj.cloned());
            }
            if let Some(reason) = fail(obj) {
                if let Ok(mut f) = failure.lock() {
                    *f = Some(reason);
                }
                return true;
            }
            cond.matches_object(obj)
        }
    };
    let outcome = tokio::time::timeout(timeout, await_condition(api, name, recording)).await;
    let last_observed = last.lock().map(|l| describe_last(&l)).unwrap_or_else(|_| "unavailable".to_string());
    match outcome {
        Ok(Ok(obj)) => match failure.lock().ok().and_then(|mut f| f.take()) {
            Some(reason) => Err(KubeError::WaitFailed { what: what.to_string(), reason, last_observed }),
            None => Ok(obj),
        },
        Ok(Err(e)) => Err(KubeError::WaitFailed { what: what.to_string(), reason: e.to_string(), last_observed }),
        Err(_) => Err(KubeError::TimedOut { what: what.to_string(), timeout, last_observed }),
    }
}

/// Never gives up early.
#[must_use]
pub fn never<K>(_: Option<&K>) -> Option<String> {
    None
}

/// Gives up when the Deployment's progress deadline passed (`Progressing=False`,
/// `ProgressDeadlineExceeded`).
#[must_use]
pub fn deployment_stalled(d: Option<&Deployment>) -> Option<String> {
    let c = d?.status.as_ref()?.conditions.as_ref()?.iter().find(|c| {
        c.type_ == "Progressing" && c.status == "False" && c.reason.as_deref() == Some("ProgressDeadlineExceeded")
    })?;
    Some(format!("ProgressDeadlineExceeded: {}", c.message.as_deref().unwrap_or("")))
}

/// Waits until the Deployment `namespace/name` is available ([`conditions::deployment_available`]).
///
/// # Errors
/// As [`wait_for`]; gives up early on [`deployment_stalled`].
pub async fn deployment_available(
    client: &::kube::Client,
    namespace: &str,
    name: &str,
    timeout: Duration,
) -> Result<Deployment, KubeError> {
    let what = format!("deployment {namespace}/{name} to be available");
    let api: Api<Deployment> = Api::namespaced(client.clone(), namespace);
    let found = wait_for(api, name, &what, timeout, conditions::deployment_available(), deployment_stalled).await?;
    found.ok_or_else(|| KubeError::WaitFailed { what, reason: "deleted".into(), last_observed: "gone".into() })
}

/// Waits until the StatefulSet `namespace/name` is ready ([`conditions::statefulset_ready`]).
///
/// # Errors
/// As [`wait_for`].
pub async fn statefulset_ready(
    client: &::kube::Client,
    namespace: &str,
    name: &str,
    timeout: Duration,
) -> Result<StatefulSet, KubeError> {
    let what = format!("statefulset {namespace}/{name} to be ready");
    let api: Api<StatefulSet> = Api::namespaced(client.clone(), namespace);
    let found = wait_for(api, name, &what, timeout, conditions::statefulset_ready(), never).await?;
    found.ok_or_else(|| KubeError::WaitFailed { what, reason: "deleted".into(), last_observed: "gone".into() })
}

/// Waits until a Deployment is available or a StatefulSet is ready, by kind (the traffic-manager is
/// either, by Telepresence version: facts.md §4).
///
/// # Errors
/// As [`deployment_available`] / [`statefulset_ready`].
pub async fn workload_ready(
    client: &::kube::Client,
    workload: &WorkloadRef,
    timeout: Duration,
) -> Result<(), KubeError> {
    match workload.kind {
        WorkloadKind::Deployment => {
            deployment_available(client, &workload.namespace, &workload.name, timeout).await.map(drop)
        }
        WorkloadKind::StatefulSet => {
            statefulset_ready(client, &workload.namespace, &workload.name, timeout).await.map(drop)
        }
    }
}

/// Waits until every named ClusterPolicy is Ready, sharing one `timeout`.
///
/// # Errors
/// As [`wait_for`], for the first policy that is not Ready in time.
pub async fn cluster_policies_ready(
    client: &::kube::Client,
    names: &[&str],
    timeout: Duration,
) -> Result<(), KubeError> {
    let deadline = crate::duration::tokio_deadline(timeout);
    let api: Api<DynamicObject> = Api::all_with(client.clone(), &cluster_policy_resource());
    for name in names {
        let left = deadline.saturating_duration_since(Instant::now());
        let what = format!("ClusterPolicy {name} to be Ready");
        wait_for(api.clone(), name, &what, left, conditions::policy_ready(), never).await?;
    }
    Ok(())
}

/// Waits until the namespace `name` no longer exists.
///
/// # Errors
/// As [`wait_for`] (the last observed state shows the phase and the namespace conditions, which name
/// what blocks the deletion).
pub async fn namespace_gone(client: &::kube::Client, name: &str, timeout: Duration) -> Result<(), KubeError> {
    let api: Api<Namespace> = Api::all(client.clone());
    wait_for(api, name, &format!("namespace {name} to be deleted"), timeout, conditions::gone(), never).await.map(drop)
}

/// The label selector of a workload's pods (`spec.selector.matchLabels`, as `k=v,k=v`).
///
/// # Errors
/// [`KubeError::Api`] when the workload cannot be read; [`KubeError::WaitFailed`] when it has no
/// matchLabels (matchExpressions are not supported).
pub async fn workload_selector(client: &::kube::Client, workload: &WorkloadRef) -> Result<String, KubeError> {
    let ns = &workload.namespace;
    let labels = match workload.kind {
        WorkloadKind::Deployment => Api::<Deployment>::namespaced(client.clone(), ns)
            .get(&workload.name)
            .await
            .map(|d| d.spec.and_then(|s| s.selector.match_labels)),
        WorkloadKind::StatefulSet => Api::<StatefulSet>::namespaced(client.clone(), ns)
            .get(&workload.name)
            .await
            .map(|s| s.spec.and_then(|s| s.selector.match_labels)),
    }
    .map_err(|e| KubeError::api(format!("read {workload}"), e))?;
    match labels {
        Some(l) if !l.is_empty() => Ok(l.iter().map(|(k, v)| format!("{k}={v}")).collect::<Vec<_>>().join(",")),
        _ => Err(KubeError::WaitFailed {
            what: format!("pod selector of {workload}"),
            reason: "the workload has no spec.selector.matchLabels".into(),
            last_observed: "selector without matchLabels".into(),
        }),
    }
}

/// The uids of the pods matching `selector` now: take this before an intercept, then wait for a
/// pod not in it ([`new_pod_with_ready_agent`]).
///
/// # Errors
/// [`KubeError::Api`] when the list fails.
pub async fn pod_uids(client: &::kube::Client, namespace: &str, selector: &str) -> Result<BTreeSet<String>, KubeError> {
    let pods = list_pods(client, namespace, selector).await?;
    Ok(pods.into_iter().filter_map(|p| p.metadata.uid).collect())
}

async fn list_pods(client: &::kube::Client, namespace: &str, selector: &str) -> Result<Vec<Pod>, KubeError> {
    let api: Api<Pod> = Api::namespaced(client.clone(), namespace);
    let list = api
        .list(&ListParams::default().labels(selector))
        .await
        .map_err(|e| KubeError::api(format!("list pods {selector} in {namespace}"), e))?;
    Ok(list.items)
}

/// Polls the pods matching `selector` every `interval` until `cond` holds, for at most `timeout`.
///
/// # Errors
/// [`KubeError::TimedOut`] with the last pod list; [`KubeError::WaitFailed`] when `fail` names a reason
/// or a list call fails.
#[allow(clippy::too_many_arguments)]
pub async fn wait_for_pods<C, F>(
    client: &::kube::Client,
    namespace: &str,
    selector: &str,
    what: &str,
    timeout: Duration,
    interval: Duration,
    cond: C,
    fail: F,
) -> Result<Vec<Pod>, KubeError>
where
    C: Condition<Vec<Pod>>,
    F: Fn(&[Pod]) -> Option<String>,
{
    let deadline = crate::duration::tokio_deadline(timeout);
    let mut last: Option<Vec<Pod>> = None;
    loop {
        let pods = match tokio::time::timeout(
            deadline.saturating_duration_since(Instant::now()),
            list_pods(client, namespace, selector),
        )
        .await
        {
            Err(_) => break,
            Ok(Err(e)) => {
                return Err(KubeError::WaitFailed {
                    what: what.to_string(),
                    reason: e.to_string(),
                    last_observed: last.map_or_else(|| "nothing".to_string(), |p| p.summary()),
                });
            }
            Ok(Ok(pods)) => pods,
        };
        if let Some(reason) = fail(&pods) {
            return Err(KubeError::WaitFailed { what: what.to_string(), reason, last_observed: pods.summary() });
        }
        if cond.matches_object(Some(&pods)) {
            return Ok(pods);
        }
        last = Some(pods);
        if Instant::now().checked_add(interval).is_none_or(|t| t > deadline) {
            break;
        }
        sleep(interval).await;
    }
    Err(KubeError::TimedOut {
        what: what.to_string(),
        timeout,
        last_observed: last.map_or_else(|| "nothing (no answer from the API server yet)".to_string(), |p| p.summary()),
    })
}

/// Why a container of `pod` (only `container`, when given) can no longer start: it waits for a
/// hopeless reason ([`HOPELESS_WAITING_REASONS`]).
#[must_use]
pub fn stuck_container(pod: &Pod, container: Option<&str>) -> Option<String> {
    let statuses = pod.status.as_ref()?.container_statuses.as_ref()?;
    statuses.iter().filter(|c| container.is_none_or(|n| c.name == n)).find_map(|c| {
        let waiting = c.state.as_ref()?.waiting.as_ref()?;
        let reason = waiting.reason.as_deref()?;
        HOPELESS_WAITING_REASONS.contains(&reason).then(|| {
            format!(
                "container {} of pod {} is {reason}: {}",
                c.name,
                pod.metadata.name.as_deref().unwrap_or("?"),
                waiting.message.as_deref().unwrap_or("")
            )
        })
    })
}

/// Gives up when a pod not in `old_uids` has `container` waiting for a hopeless reason
/// ([`stuck_container`]).
pub fn new_pod_container_stuck<'a>(
    old_uids: &'a BTreeSet<String>,
    container: &'a str,
) -> impl Fn(&[Pod]) -> Option<String> + 'a {
    move |pods: &[Pod]| {
        pods.iter()
            .filter(|p| p.metadata.uid.as_ref().is_some_and(|u| !old_uids.contains(u)))
            .find_map(|p| stuck_container(p, Some(container)))
    }
}

/// Waits for a NEW pod (uid not in `old_uids`) matching `selector` whose `traffic-agent` container is
/// ready: the proof that an intercept's injection took effect (issue 4, Telepresence step 5).
///
/// # Errors
/// [`KubeError::TimedOut`] with every pod's phase and container states; [`KubeError::WaitFailed`] when
/// the new pod's agent cannot start ([`new_pod_container_stuck`]).
pub async fn new_pod_with_ready_agent(
    client: &::kube::Client,
    namespace: &str,
    selector: &str,
    old_uids: &BTreeSet<String>,
    timeout: Duration,
    interval: Duration,
) -> Result<Pod, KubeError> {
    let what = format!("a new pod ({selector}) in {namespace} with a ready {TRAFFIC_AGENT} container");
    let cond = conditions::new_pod_with_ready_container(old_uids.clone(), TRAFFIC_AGENT.to_string());
    let fail = new_pod_container_stuck(old_uids, TRAFFIC_AGENT);
    let pods = wait_for_pods(client, namespace, selector, &what, timeout, interval, cond, fail).await?;
    conditions::find_new_ready(&pods, old_uids, TRAFFIC_AGENT).cloned().ok_or_else(|| KubeError::WaitFailed {
        what,
        reason: "condition held but no pod matched".into(),
        last_observed: pods.summary(),
    })
}
