//! The Kubernetes API layer against a mock API server (`tower_test::mock::pair`, facts.md §6).
//!
//! Each test scripts the server's answers by method and path, and checks what kyvtel sent.

use std::collections::BTreeSet;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::Pod;
use kyvtel::kube::apply::{ApplyOptions, ApplyReport, apply};
use kyvtel::kube::dry_run::{Admission, await_denial, dry_run_create_pod};
use kyvtel::kube::fingerprint::{self, Fingerprint};
use kyvtel::kube::ownership::{Owner, ensure_policies_replaceable};
use kyvtel::kube::{KubeError, wait};
use serde_json::{Value, json};

mod common;
use common::mock_api::{self, Reply, Seen, mock, status};

/// Aggregated discovery: /apis serves kyverno.io/v1 ClusterPolicy (cluster) and apps/v1 Deployment,
/// /api serves v1 ConfigMap and Pod (namespaced).
fn discovery(seen: &Seen) -> Option<Reply> {
    let (res, list) = (mock_api::discovery_resource, mock_api::discovery_list);
    if seen.method == "GET" && seen.uri.ends_with("/apis") {
        return Some(Reply::Json(
            200,
            list(json!([
                {"metadata": {"name": "kyverno.io"}, "versions": [{"version": "v1", "resources": [
                    res("clusterpolicies", "kyverno.io", "v1", "ClusterPolicy", "Cluster")]}]},
                {"metadata": {"name": "apps"}, "versions": [{"version": "v1", "resources": [
                    res("deployments", "apps", "v1", "Deployment", "Namespaced")]}]}
            ])),
        ));
    }
    if seen.method == "GET" && seen.uri.ends_with("/api") {
        return Some(Reply::Json(
            200,
            list(json!([
                {"metadata": {"name": ""}, "versions": [{"version": "v1", "resources": [
                    res("configmaps", "", "v1", "ConfigMap", "Namespaced"),
                    res("pods", "", "v1", "Pod", "Namespaced")]}]}
            ])),
        ));
    }
    None
}

fn policy_doc() -> Value {
    json!({"apiVersion": "kyverno.io/v1", "kind": "ClusterPolicy",
           "metadata": {"name": "require-security-context"},
           "spec": {"validationFailureAction": "Enforce", "rules": []}})
}

fn configmap_doc() -> Value {
    json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "demo", "labels": {"app": "demo"}}, "data": {"a": "b"}})
}

fn options(timeout_ms: u64) -> ApplyOptions {
    ApplyOptions {
        namespace: "kyvtel-app".into(),
        owner: Owner::new("run-1"),
        timeout: Duration::from_millis(timeout_ms),
        retry_interval: Duration::from_millis(10),
        dry_run: false,
    }
}

fn echo(seen: &Seen) -> Reply {
    Reply::Json(200, serde_json::from_str(&seen.body).unwrap_or(Value::Null))
}

#[tokio::test]
async fn apply_sends_strict_server_side_apply_with_owner_labels_and_keeps_warnings() {
    let (client, log) = mock(|seen, _| {
        discovery(seen).unwrap_or_else(|| {
            if seen.uri.contains("clusterpolicies") {
                Reply::Warn(200, serde_json::from_str(&seen.body).unwrap(), r#"299 - "ClusterPolicy is deprecated""#)
            } else {
                echo(seen)
            }
        })
    });
    let mut report = ApplyReport::default();
    apply(&client, &[policy_doc(), configmap_doc()], &options(1000), &mut report).await.unwrap();

    let patches: Vec<Seen> = log.lock().unwrap().iter().filter(|s| s.method == "PATCH").cloned().collect();
    assert_eq!(patches.len(), 2);
    assert_eq!(
        patches[0].uri,
        "/apis/kyverno.io/v1/clusterpolicies/require-security-context?&force=true&fieldManager=kyvtel&fieldValidation=Strict"
    );
    assert_eq!(
        patches[1].uri,
        "/api/v1/namespaces/kyvtel-app/configmaps/demo?&force=true&fieldManager=kyvtel&fieldValidation=Strict"
    );
    assert!(patches.iter().all(|p| p.content_type == "application/apply-patch+yaml"));

    let policy: Value = serde_json::from_str(&patches[0].body).unwrap();
    assert_eq!(
        policy["metadata"],
        json!({"name": "require-security-context",
               "labels": {"app.kubernetes.io/managed-by": "kyvtel", "kyvtel.dev/run": "run-1"}})
    );
    assert_eq!(policy["spec"], policy_doc()["spec"]);
    let cm: Value = serde_json::from_str(&patches[1].body).unwrap();
    assert_eq!(cm["metadata"]["namespace"], "kyvtel-app");
    assert_eq!(cm["metadata"]["labels"]["app"], "demo");

    let applied: Vec<String> = report.applied.iter().map(ToString::to_string).collect();
    assert_eq!(applied, ["ClusterPolicy/require-security-context", "ConfigMap/kyvtel-app/demo"]);
    assert_eq!(report.warnings, ["ClusterPolicy/require-security-context: ClusterPolicy is deprecated"]);
    assert_eq!(report.retries, 0);
}

#[tokio::test]
async fn apply_retries_while_the_policy_webhook_is_not_serving() {
    let unavailable = "Internal error occurred: failed calling webhook \"validate-policy.kyverno.svc\": failed to call webhook: \
                       Post \"https://kyverno-svc.kyverno.svc:443/policyvalidate?timeout=10s\": dial tcp 10.96.1.2:443: connect: connection refused";
    let attempts = Arc::new(Mutex::new(0));
    let counter = Arc::clone(&attempts);
    let (client, _log) = mock(move |seen, _| {
        discovery(seen).unwrap_or_else(|| {
            let mut n = counter.lock().unwrap();
            *n += 1;
            if *n <= 2 { Reply::Json(500, status(500, "InternalError", unavailable)) } else { echo(seen) }
        })
    });
    let mut report = ApplyReport::default();
    apply(&client, &[policy_doc()], &options(2000), &mut report).await.unwrap();
    assert_eq!(report.retries, 2);
    assert_eq!(report.applied.len(), 1);
    assert_eq!(*attempts.lock().unwrap(), 3);
}

#[tokio::test]
async fn apply_gives_up_on_the_webhook_after_the_timeout() {
    let (client, _log) = mock(|seen, _| {
        discovery(seen).unwrap_or_else(|| {
            Reply::Json(500, status(500, "InternalError", "Internal error occurred: failed calling webhook \"x\": no endpoints available for service \"kyverno-svc\""))
        })
    });
    let mut report = ApplyReport::default();
    let err = apply(&client, &[policy_doc()], &options(100), &mut report).await.unwrap_err();
    assert!(report.retries >= 1, "retried {} times", report.retries);
    assert!(report.applied.is_empty());
    let text = err.to_string();
    assert!(
        text.contains("apply ClusterPolicy/require-security-context") && text.contains("no endpoints available"),
        "{text}"
    );
}

#[tokio::test]
async fn a_strict_validation_error_fails_at_once_and_keeps_what_was_applied() {
    let (client, log) = mock(|seen, _| {
        discovery(seen).unwrap_or_else(|| {
            if seen.uri.contains("clusterpolicies") {
                Reply::Json(422, status(422, "Invalid", ".spec.rules[0].validate.patern: field not declared in schema"))
            } else {
                echo(seen)
            }
        })
    });
    let mut report = ApplyReport::default();
    let err = apply(&client, &[configmap_doc(), policy_doc()], &options(5000), &mut report).await.unwrap_err();
    assert_eq!(err.status().map(|s| s.code), Some(422));
    assert!(err.to_string().contains("field not declared in schema"));
    assert_eq!(report.applied.len(), 1, "the ConfigMap stays listed for teardown");
    assert_eq!(log.lock().unwrap().iter().filter(|s| s.method == "PATCH").count(), 2, "no retry");
}

#[tokio::test]
async fn apply_refuses_a_document_in_a_foreign_namespace() {
    let (client, log) = mock(|seen, _| discovery(seen).unwrap_or_else(|| echo(seen)));
    let mut doc = configmap_doc();
    doc["metadata"]["namespace"] = json!("kube-system");
    let mut report = ApplyReport::default();
    let err = apply(&client, &[doc], &options(1000), &mut report).await.unwrap_err();
    assert!(matches!(err, KubeError::Manifest { index: 0, .. }), "{err}");
    assert!(log.lock().unwrap().iter().all(|s| s.method == "GET"));
}

fn canary() -> Value {
    json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "kyvtel-canary"},
           "spec": {"containers": [{"name": "c", "image": "docker.io/library/busybox:1.36"}]}})
}

const KYVERNO_DENIAL: &str = "pods \"kyvtel-canary\" is forbidden: admission webhook \"validate.kyverno.svc-fail\" denied the request: \n\n\
    resource Pod/kyvtel-app/kyvtel-canary was blocked due to the following policies \n\n\
    require-security-context:\n  check-containers: 'validation error: x. rule check-containers failed at path /spec/containers/0/securityContext/'";

#[tokio::test]
async fn dry_run_is_strict_and_reports_denied_and_admitted() {
    let (client, log) = mock(|seen, n| {
        assert_eq!(seen.method, "POST");
        if n == 0 { Reply::Json(403, status(403, "Forbidden", KYVERNO_DENIAL)) } else { Reply::Json(201, canary()) }
    });
    let denied = dry_run_create_pod(&client, "kyvtel-app", &canary()).await.unwrap();
    let Admission::Denied(denial) = denied else { panic!("expected a denial, got {denied:?}") };
    assert_eq!(denial.code, 403);
    assert_eq!(denial.webhook(), Some("validate.kyverno.svc-fail"));
    assert!(denial.message.contains("check-containers failed at path"));

    let admitted = dry_run_create_pod(&client, "kyvtel-app", &canary()).await.unwrap();
    assert_eq!(admitted, Admission::Admitted { warnings: vec![] });

    let seen = log.lock().unwrap();
    assert_eq!(seen[0].uri, "/api/v1/namespaces/kyvtel-app/pods?&dryRun=All&fieldValidation=Strict");
    assert_eq!(serde_json::from_str::<Value>(&seen[0].body).unwrap(), canary());
}

#[tokio::test]
async fn canary_gate_retries_until_denied() {
    let (client, log) = mock(|_, n| {
        if n < 2 { Reply::Json(201, canary()) } else { Reply::Json(403, status(403, "Forbidden", KYVERNO_DENIAL)) }
    });
    let denial = await_denial(
        &client,
        "kyvtel-app",
        &canary(),
        "validate.kyverno.svc-fail",
        Duration::from_secs(5),
        Duration::from_millis(5),
    )
    .await
    .unwrap();
    assert!(denial.message.contains("require-security-context"));
    assert_eq!(log.lock().unwrap().len(), 3);
}

#[tokio::test]
async fn canary_gate_times_out_with_the_last_answer() {
    let (client, _log) = mock(|_, _| Reply::Warn(201, canary(), r#"299 - "would violate PodSecurity""#));
    let err = await_denial(
        &client,
        "app",
        &canary(),
        "validate.kyverno.svc-fail",
        Duration::from_millis(60),
        Duration::from_millis(10),
    )
    .await
    .unwrap_err();
    let KubeError::TimedOut { last_observed, .. } = &err else { panic!("expected a timeout, got {err}") };
    assert_eq!(last_observed, "admitted with warnings: would violate PodSecurity");
}

#[tokio::test]
async fn canary_refused_by_something_else_fails_at_once() {
    let (client, log) = mock(|_, _| {
        Reply::Json(422, status(422, "Invalid", "Pod \"kyvtel-canary\" is invalid: spec.containers: Required value"))
    });
    let err = await_denial(
        &client,
        "app",
        &canary(),
        "validate.kyverno.svc-fail",
        Duration::from_secs(5),
        Duration::from_millis(5),
    )
    .await
    .unwrap_err();
    assert!(
        matches!(&err, KubeError::WaitFailed { last_observed, .. } if last_observed.contains("Required value")),
        "{err}"
    );
    assert_eq!(log.lock().unwrap().len(), 1);
}

fn deployment(available: bool, conditions: Value) -> Value {
    json!({"apiVersion": "apps/v1", "kind": "Deployment",
           "metadata": {"name": "kyverno-admission-controller", "namespace": "kyverno", "generation": 1, "resourceVersion": "7"},
           "spec": {"replicas": 1, "selector": {"matchLabels": {"app": "k"}}, "template": {}},
           "status": {"observedGeneration": 1, "replicas": 1, "updatedReplicas": 1,
                      "readyReplicas": i32::from(available), "availableReplicas": i32::from(available),
                      "unavailableReplicas": i32::from(!available), "conditions": conditions}})
}

fn list_of(kind: &str, items: Vec<Value>) -> Value {
    json!({"apiVersion": "v1", "kind": format!("{kind}List"), "metadata": {"resourceVersion": "10"}, "items": items})
}

/// A watch-based wait: answer the initial list with `item`, hang on the watch.
fn list_then_hang(kind: &'static str, item: Value) -> impl Fn(&Seen, usize) -> Reply + Send + 'static {
    move |seen, _| {
        if seen.uri.contains("watch=true") { Reply::Hang } else { Reply::Json(200, list_of(kind, vec![item.clone()])) }
    }
}

#[tokio::test]
async fn wait_for_an_available_deployment_succeeds() {
    let ready =
        deployment(true, json!([{"type": "Available", "status": "True", "reason": "MinimumReplicasAvailable"}]));
    let (client, log) = mock(list_then_hang("Deployment", ready));
    let d = wait::deployment_available(&client, "kyverno", "kyverno-admission-controller", Duration::from_secs(5))
        .await
        .unwrap();
    assert_eq!(d.metadata.name.as_deref(), Some("kyverno-admission-controller"));
    let uri = &log.lock().unwrap()[0].uri;
    assert!(
        uri.starts_with("/apis/apps/v1/namespaces/kyverno/deployments?")
            && uri.contains("metadata.name%3Dkyverno-admission-controller"),
        "{uri}"
    );
}

/// Rolled out as `kubectl rollout status` decides: the latest generation observed, every desired
/// replica updated, no old replica left (`status.replicas` counts pods of every ReplicaSet, so an old
/// pod pending termination keeps it above `updatedReplicas`), every updated replica available.
// upstream: kubernetes/kubectl pkg/polymorphichelpers/rollout_status.go (DeploymentStatusViewer:
// "Waiting for deployment %q rollout to finish: %d old replicas are pending termination").
#[test]
fn a_deployment_is_rolled_out_only_without_old_replicas_and_on_its_latest_generation() {
    use kyvtel::kube::wait::Condition as _;
    let d = |generation: i64, observed: i64, replicas: i32, updated: i32, available: i32| -> Deployment {
        serde_json::from_value(json!({"metadata": {"name": "demo", "generation": generation},
            "spec": {"replicas": 1, "selector": {}, "template": {}},
            "status": {"observedGeneration": observed, "replicas": replicas, "updatedReplicas": updated,
                       "availableReplicas": available,
                       "conditions": [{"type": "Available", "status": "True"}]}}))
        .unwrap()
    };
    let rolled_out = |d: &Deployment| wait::conditions::deployment_available().matches_object(Some(d));
    assert!(rolled_out(&d(2, 2, 1, 1, 1)));
    assert!(!rolled_out(&d(2, 2, 2, 1, 1)), "an old replica pending termination");
    assert!(!rolled_out(&d(3, 2, 1, 1, 1)), "the latest generation not observed");
    assert!(!rolled_out(&d(2, 2, 1, 0, 1)), "not updated");
    assert!(!rolled_out(&d(2, 2, 1, 1, 0)), "not available");
}

fn pod_of(name: &str, uid: &str, replicaset: &str, agent_ready: Option<bool>, terminating: bool) -> Pod {
    let mut statuses = vec![json!({"name": "app", "ready": true, "restartCount": 0, "image": "i", "imageID": ""})];
    if let Some(ready) = agent_ready {
        statuses.push(agent(ready, json!({"running": {}})));
    }
    let mut p = json!({"metadata": {"name": name, "uid": uid,
            "ownerReferences": [{"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": replicaset, "uid": replicaset}]},
        "spec": {"containers": []}, "status": {"phase": "Running", "containerStatuses": statuses}});
    if terminating {
        p["metadata"]["deletionTimestamp"] = json!("2026-12-03T10:00:00Z");
    }
    serde_json::from_value(p).unwrap()
}

/// Up to Telepresence 2.21 an intercept restarts the workload (`restartedAt`, facts.md §4): a new
/// ReplicaSet's pod carries the agent while the old pod keeps serving. The pod judged is the new one.
#[test]
fn up_to_2_21_the_intercepted_pod_is_the_new_replicasets() {
    use kyvtel::kube::wait::Condition as _;
    let old = BTreeSet::from(["uid-old".to_string()]);
    let before = vec![pod_of("demo-aaa-1", "uid-old", "demo-aaa", None, false)];
    let cond = wait::conditions::new_pod_with_ready_container(old.clone(), "traffic-agent".into());
    assert!(!cond.matches_object(Some(&before)), "the old pod, still serving, is never the intercepted one");
    let mut after = before.clone();
    after.push(pod_of("demo-bbb-1", "uid-new", "demo-bbb", Some(false), false));
    assert!(!cond.matches_object(Some(&after)), "the agent is not ready yet");
    after[1] = pod_of("demo-bbb-1", "uid-new", "demo-bbb", Some(true), false);
    let found = wait::find_new_pod_with_ready_container(&after, &old, "traffic-agent").unwrap();
    assert_eq!(found.metadata.name.as_deref(), Some("demo-bbb-1"));
}

/// From 2.22 an intercept evicts the pod (facts.md §4): the replacement belongs to the same
/// ReplicaSet, and the evicted pod may still be terminating, with a ready agent from an earlier
/// intercept. The pod judged is the replacement, never a terminating one.
#[test]
fn from_2_22_the_intercepted_pod_is_the_replacement_in_the_same_replicaset() {
    let old = BTreeSet::from(["uid-old".to_string()]);
    let pods = vec![
        pod_of("demo-aaa-1", "uid-old", "demo-aaa", Some(true), true),
        pod_of("demo-aaa-2", "uid-gone", "demo-aaa", Some(true), true),
        pod_of("demo-aaa-3", "uid-new", "demo-aaa", Some(true), false),
    ];
    let found = wait::find_new_pod_with_ready_container(&pods, &old, "traffic-agent").unwrap();
    assert_eq!(found.metadata.name.as_deref(), Some("demo-aaa-3"), "new, not terminating");
    assert!(wait::find_new_pod_with_ready_container(&pods[..2], &old, "traffic-agent").is_none());
}

#[tokio::test]
async fn wait_timeout_carries_the_last_observed_state() {
    let stuck = deployment(
        false,
        json!([{"type": "Available", "status": "False", "reason": "MinimumReplicasUnavailable", "message": "Deployment does not have minimum availability."},
               {"type": "ReplicaFailure", "status": "True", "reason": "FailedCreate", "message": "admission webhook \"validate.kyverno.svc-fail\" denied the request"}]),
    );
    let (client, _log) = mock(list_then_hang("Deployment", stuck));
    let err =
        wait::deployment_available(&client, "kyverno", "kyverno-admission-controller", Duration::from_millis(300))
            .await
            .unwrap_err();
    let KubeError::TimedOut { what, last_observed, .. } = &err else { panic!("expected a timeout, got {err}") };
    assert_eq!(what, "deployment kyverno/kyverno-admission-controller to be available");
    assert_eq!(
        last_observed,
        "desired=1 replicas=1 updated=1 ready=0 available=0 unavailable=1 observedGeneration=1/1; \
         Available=False (MinimumReplicasUnavailable: Deployment does not have minimum availability.), \
         ReplicaFailure=True (FailedCreate: admission webhook \"validate.kyverno.svc-fail\" denied the request)"
    );
    assert!(err.to_string().contains("timed out after 300ms"));
}

#[tokio::test]
async fn wait_fails_on_an_api_error() {
    let (client, _log) = mock(|_, _| {
        Reply::Json(403, status(403, "Forbidden", "deployments.apps is forbidden: User \"x\" cannot list"))
    });
    let err = wait::deployment_available(&client, "kyverno", "kyverno-admission-controller", Duration::from_secs(5))
        .await
        .unwrap_err();
    let KubeError::WaitFailed { reason, last_observed, .. } = &err else { panic!("expected a failure, got {err}") };
    assert!(reason.contains("cannot list"), "{reason}");
    assert_eq!(last_observed, "nothing (no answer from the API server yet)");
}

#[tokio::test]
async fn wait_fails_early_when_the_deployment_stalls() {
    let stalled = deployment(
        false,
        json!([{"type": "Progressing", "status": "False", "reason": "ProgressDeadlineExceeded",
                                            "message": "ReplicaSet \"x\" has timed out progressing."}]),
    );
    let (client, _log) = mock(list_then_hang("Deployment", stalled));
    let err = wait::deployment_available(&client, "kyverno", "kyverno-admission-controller", Duration::from_secs(5))
        .await
        .unwrap_err();
    assert!(
        matches!(&err, KubeError::WaitFailed { reason, .. } if reason.starts_with("ProgressDeadlineExceeded")),
        "{err}"
    );
}

#[tokio::test]
async fn cluster_policies_ready_reads_the_ready_condition() {
    let policy = |ready: &str| {
        json!({"apiVersion": "kyverno.io/v1", "kind": "ClusterPolicy", "metadata": {"name": "p", "resourceVersion": "3"},
               "spec": {}, "status": {"conditions": [{"type": "Ready", "status": ready, "reason": "Succeeded", "message": "Ready"}]}})
    };
    let (client, log) = mock(list_then_hang("ClusterPolicy", policy("True")));
    wait::cluster_policies_ready(&client, &["p"], Duration::from_secs(5)).await.unwrap();
    assert!(log.lock().unwrap()[0].uri.starts_with("/apis/kyverno.io/v1/clusterpolicies?"));

    let (client, _log) = mock(list_then_hang("ClusterPolicy", policy("False")));
    let err = wait::cluster_policies_ready(&client, &["p"], Duration::from_millis(200)).await.unwrap_err();
    assert!(
        matches!(&err, KubeError::TimedOut { last_observed, .. } if last_observed == "Ready=False (Succeeded: Ready)"),
        "{err}"
    );
}

#[tokio::test]
async fn namespace_gone_when_the_list_is_empty() {
    let (client, _log) = mock(|seen, _| {
        if seen.uri.contains("watch=true") { Reply::Hang } else { Reply::Json(200, list_of("Namespace", vec![])) }
    });
    wait::namespace_gone(&client, "kyvtel-app", Duration::from_secs(5)).await.unwrap();
}

fn pod(name: &str, uid: &str, agent: Value) -> Value {
    json!({"metadata": {"name": name, "namespace": "app", "uid": uid},
           "spec": {"containers": []},
           "status": {"phase": "Running", "containerStatuses": [
               {"name": "app", "ready": true, "restartCount": 0, "image": "i", "imageID": "", "state": {"running": {}}},
               agent]}})
}

fn agent(ready: bool, state: Value) -> Value {
    json!({"name": "traffic-agent", "ready": ready, "restartCount": 0, "image": "ghcr.io/telepresenceio/tel2:2.32.1", "imageID": "", "state": state})
}

#[tokio::test]
async fn waits_for_a_new_pod_with_a_ready_traffic_agent() {
    let old = pod("demo-old", "uid-old", agent(true, json!({"running": {}})));
    let (client, log) = mock(move |_, n| {
        let mut items = vec![old.clone()];
        if n >= 1 {
            items.push(pod("demo-new", "uid-new", agent(n >= 2, json!({"running": {}}))));
        }
        Reply::Json(200, list_of("Pod", items))
    });
    let old_uids = BTreeSet::from(["uid-old".to_string()]);
    let found = wait::new_pod_with_ready_agent(
        &client,
        "app",
        "app=demo",
        &old_uids,
        Duration::from_secs(5),
        Duration::from_millis(5),
    )
    .await
    .unwrap();
    assert_eq!(found.metadata.uid.as_deref(), Some("uid-new"));
    let seen = log.lock().unwrap();
    assert_eq!(seen.len(), 3, "an old ready pod and a new unready one do not count");
    assert_eq!(seen[0].uri, "/api/v1/namespaces/app/pods?&labelSelector=app%3Ddemo");
}

#[tokio::test]
async fn new_pod_wait_times_out_with_pod_states() {
    let (client, _log) = mock(|_, _| {
        Reply::Json(
            200,
            list_of(
                "Pod",
                vec![pod("demo-new", "uid-new", agent(false, json!({"waiting": {"reason": "ContainerCreating"}})))],
            ),
        )
    });
    let err = wait::new_pod_with_ready_agent(
        &client,
        "app",
        "app=demo",
        &BTreeSet::new(),
        Duration::from_millis(100),
        Duration::from_millis(10),
    )
    .await
    .unwrap_err();
    let KubeError::TimedOut { last_observed, .. } = &err else { panic!("expected a timeout, got {err}") };
    assert_eq!(
        last_observed,
        "pod demo-new uid=uid-new phase=Running; containers: app ready=true restarts=0 running, \
         traffic-agent ready=false restarts=0 waiting ContainerCreating"
    );
}

#[tokio::test]
async fn new_pod_wait_fails_when_the_agent_cannot_start() {
    let msg = "container has runAsNonRoot and image will run as root";
    let (client, _log) = mock(move |_, _| {
        Reply::Json(
            200,
            list_of(
                "Pod",
                vec![pod(
                    "demo-new",
                    "uid-new",
                    agent(false, json!({"waiting": {"reason": "CreateContainerConfigError", "message": msg}})),
                )],
            ),
        )
    });
    let err = wait::new_pod_with_ready_agent(
        &client,
        "app",
        "app=demo",
        &BTreeSet::new(),
        Duration::from_secs(5),
        Duration::from_millis(10),
    )
    .await
    .unwrap_err();
    assert!(
        matches!(&err, KubeError::WaitFailed { reason, .. } if reason.contains("CreateContainerConfigError") && reason.contains(msg)),
        "{err}"
    );
}

fn fingerprint_cm(data: Value) -> Value {
    json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "kyvtel-fingerprint", "namespace": "kube-system"}, "data": data})
}

#[tokio::test]
async fn fingerprint_match_allows_reuse() {
    let (client, log) =
        mock(|_, _| Reply::Json(200, fingerprint_cm(json!({"kyvernoChart": "3.9.0", "nodeImage": "n@sha256:1"}))));
    let expected = Fingerprint::new([("kyvernoChart", "3.9.0"), ("nodeImage", "n@sha256:1")]);
    fingerprint::ensure_reusable(&client, &expected).await.unwrap();
    assert_eq!(log.lock().unwrap()[0].uri, "/api/v1/namespaces/kube-system/configmaps/kyvtel-fingerprint");
}

#[tokio::test]
async fn fingerprint_mismatch_refuses_and_says_why() {
    let (client, _log) =
        mock(|_, _| Reply::Json(200, fingerprint_cm(json!({"kyvernoChart": "3.8.2", "nodeImage": "n@sha256:1"}))));
    let expected = Fingerprint::new([("kyvernoChart", "3.9.0"), ("nodeImage", "n@sha256:1")]);
    let err = fingerprint::ensure_reusable(&client, &expected).await.unwrap_err();
    assert_eq!(
        err.to_string(),
        "refused: --reuse: the cluster was set up differently: kyvernoChart: run needs 3.9.0, cluster has 3.8.2 \
         (delete it or drop --reuse)"
    );
    assert_eq!(kyvtel::Error::from(err).exit(), kyvtel::Exit::Infra);
}

#[tokio::test]
async fn missing_fingerprint_refuses() {
    let (client, _log) =
        mock(|_, _| Reply::Json(404, status(404, "NotFound", "configmaps \"kyvtel-fingerprint\" not found")));
    let err = fingerprint::ensure_reusable(&client, &Fingerprint::new([("k", "v")])).await.unwrap_err();
    assert!(matches!(&err, KubeError::Refused(why) if why.contains("no fingerprint")), "{err}");
}

#[tokio::test]
async fn fingerprint_is_written_with_strict_apply_and_owner_labels() {
    let (client, log) = mock(|seen, _| echo(seen));
    fingerprint::write(&client, &Fingerprint::new([("configHash", "sha256:ab")]), &Owner::new("r9")).await.unwrap();
    let seen = log.lock().unwrap();
    assert_eq!(seen[0].method, "PATCH");
    assert!(seen[0].uri.contains("fieldValidation=Strict"));
    let body: Value = serde_json::from_str(&seen[0].body).unwrap();
    assert_eq!(body["data"], json!({"configHash": "sha256:ab"}));
    assert_eq!(body["metadata"]["labels"]["kyvtel.dev/run"], "r9");
}

#[tokio::test]
async fn a_foreign_cluster_policy_is_not_replaced() {
    let (client, _log) = mock(|seen, _| {
        if seen.uri.ends_with("/ours") {
            Reply::Json(
                200,
                json!({"apiVersion": "kyverno.io/v1", "kind": "ClusterPolicy",
                                    "metadata": {"name": "ours", "labels": {"app.kubernetes.io/managed-by": "kyvtel"}}}),
            )
        } else if seen.uri.ends_with("/theirs") {
            Reply::Json(
                200,
                json!({"apiVersion": "kyverno.io/v1", "kind": "ClusterPolicy", "metadata": {"name": "theirs"}}),
            )
        } else {
            Reply::Json(404, status(404, "NotFound", "not found"))
        }
    });
    ensure_policies_replaceable(&client, &["ours", "new"]).await.unwrap();
    let err = ensure_policies_replaceable(&client, &["ours", "theirs", "new"]).await.unwrap_err();
    let KubeError::Refused(why) = &err else { panic!("expected a refusal, got {err}") };
    assert!(
        why.starts_with("ClusterPolicy theirs exists and is not labelled app.kubernetes.io/managed-by=kyvtel"),
        "{why}"
    );
}

fn client_pod(phase: &str, waiting: Option<&str>) -> Value {
    let mut state = json!({"terminated": {"exitCode": 0}});
    if let Some(reason) = waiting {
        state =
            json!({"waiting": {"reason": reason, "message": "container has runAsNonRoot and image will run as root"}});
    }
    json!({"apiVersion": "v1", "kind": "Pod",
           "metadata": {"name": "kyvtel-traffic-client", "namespace": "app", "resourceVersion": "3",
                        "labels": {"app.kubernetes.io/managed-by": "kyvtel"}},
           "spec": {"containers": [{"name": "client", "image": "i"}]},
           "status": {"phase": phase, "containerStatuses": [
               {"name": "client", "ready": false, "restartCount": 0, "image": "i", "imageID": "", "state": state}]}})
}

/// The client pod: none left over (404), created, watched until it has run, its log read; a container
/// the kubelet refuses ends the wait at once, naming the reason.
#[tokio::test]
async fn a_client_pod_runs_to_completion_and_its_log_is_its_answer() {
    let answer = |phase: &'static str, waiting: Option<&'static str>| {
        move |seen: &Seen, _: usize| {
            if seen.method == "POST" {
                Reply::Json(201, client_pod("Pending", None))
            } else if seen.uri.ends_with("/log") || seen.uri.contains("/log?") {
                Reply::Json(200, json!("kyvtel-token=tok"))
            } else if seen.uri.contains("watch=true") {
                Reply::Hang
            } else if seen.uri.contains("fieldSelector") {
                Reply::Json(200, list_of("Pod", vec![client_pod(phase, waiting)]))
            } else {
                Reply::Json(404, status(404, "NotFound", "pods \"kyvtel-traffic-client\" not found"))
            }
        }
    };
    let pod = client_pod("Pending", None);
    let (client, log) = mock(answer("Succeeded", None));
    let out = kyvtel::kube::client_pod::run_to_completion(&client, &pod, Duration::from_secs(5)).await.unwrap();
    assert!(out.contains("kyvtel-token=tok"), "{out}");
    let methods: Vec<String> = log.lock().unwrap().iter().map(|s| s.method.clone()).collect();
    assert_eq!(methods.first().map(String::as_str), Some("GET"), "the leftover is looked for first: {methods:?}");
    assert!(methods.contains(&"POST".to_string()), "{methods:?}");

    let (client, _) = mock(answer("Pending", Some("CreateContainerConfigError")));
    let err = kyvtel::kube::client_pod::run_to_completion(&client, &pod, Duration::from_secs(5)).await.unwrap_err();
    let msg = err.to_string();
    assert!(msg.contains("CreateContainerConfigError") && msg.contains("container client"), "{msg}");
}
