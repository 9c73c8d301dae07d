//! The run's real `ClusterApi` (`KubeApi`) against a mock API server (`tower_test::mock::pair`,
//! facts.md §6), and its lazy connection against kubeconfig files.
//!
//! Each test scripts the server's answers by method and path, and checks what was sent and what the
//! executor gets back.

use std::collections::BTreeSet;
use std::time::Duration;

use kyvtel::kube::api::ClusterApi;
use kyvtel::kube::ownership::Owner;
use kyvtel::plan::WaitFor;
use kyvtel::run::kube_api::KubeApi;
use serde_json::{Map, Value, json};

mod common;
use common::mock_api::{self, Log, Reply, Seen, status};

/// A `KubeApi` whose requests are answered by `script`, and the log of what it sent.
fn mock(script: impl Fn(&Seen) -> Reply + Send + 'static) -> (KubeApi, Log) {
    let (client, log) = mock_api::mock(move |seen, _| script(seen));
    let api = KubeApi::with_client(client, Owner::new("run-1"))
        .poll_interval(Duration::from_millis(10))
        .call_timeout(Duration::from_secs(5));
    (api, log)
}

fn list_of(kind: &str, items: Vec<Value>) -> Value {
    json!({"apiVersion": "v1", "kind": format!("{kind}List"), "metadata": {"resourceVersion": "10"}, "items": items})
}

/// Aggregated discovery: kyverno.io/v1 ClusterPolicy (cluster), apps/v1 Deployment and StatefulSet,
/// v1 Namespace (cluster), ConfigMap and Pod.
fn discovery(seen: &Seen) -> Option<Reply> {
    let (res, list) = (mock_api::discovery_resource, mock_api::discovery_list);
    if seen.method != "GET" {
        return None;
    }
    if seen.uri.ends_with("/apis") {
        return Some(Reply::Json(
            200,
            list(json!([
                {"metadata": {"name": "kyverno.io"}, "versions": [{"version": "v1", "resources": [
                    res("clusterpolicies", "kyverno.io", "v1", "ClusterPolicy", "Cluster")]}]},
                {"metadata": {"name": "apps"}, "versions": [{"version": "v1", "resources": [
                    res("deployments", "apps", "v1", "Deployment", "Namespaced"),
                    res("statefulsets", "apps", "v1", "StatefulSet", "Namespaced")]}]}
            ])),
        ));
    }
    if seen.uri.ends_with("/api") {
        return Some(Reply::Json(
            200,
            list(json!([
                {"metadata": {"name": ""}, "versions": [{"version": "v1", "resources": [
                    res("namespaces", "", "v1", "Namespace", "Cluster"),
                    res("configmaps", "", "v1", "ConfigMap", "Namespaced"),
                    res("pods", "", "v1", "Pod", "Namespaced")]}]}
            ])),
        ));
    }
    None
}

const KYVERNO_DENIAL: &str = "admission webhook \"validate.kyverno.svc-fail\" denied the request: \n\n\
    resource Deployment/app/demo was blocked due to the following policies \n\n\
    require-security-context:\n  autogen-check: 'validation error: securityContext is required. rule autogen-check \
    failed at path /spec/template/spec/containers/0/securityContext/'\n";

fn deployment_doc() -> Value {
    json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "demo"},
           "spec": {"selector": {"matchLabels": {"app": "demo"}}, "template": {"metadata": {"labels": {"app": "demo"}}}}})
}

fn selector(v: Value) -> Map<String, Value> {
    v.as_object().cloned().unwrap()
}

#[tokio::test]
async fn an_admission_refusal_comes_back_as_a_denial_with_the_status_message() {
    let message = format!("deployments.apps \"demo\" is forbidden: {KYVERNO_DENIAL}");
    let answer = message.clone();
    let (api, log) =
        mock(move |seen| discovery(seen).unwrap_or_else(|| Reply::Json(400, status(400, "BadRequest", &answer))));
    let err = api.apply(&[deployment_doc()], Some("app"), Duration::from_secs(2)).await.unwrap_err();
    assert_eq!(err.denial(), Some(message.as_str()));
    // The executor parses it as a Kyverno denial.
    assert!(matches!(kyvtel::outcome::denial::parse(&message), Ok(kyvtel::outcome::denial::Parsed::Kyverno(_))));
    let patch = log.lock().unwrap().iter().find(|s| s.method == "PATCH").cloned().unwrap();
    assert_eq!(
        patch.uri,
        "/apis/apps/v1/namespaces/app/deployments/demo?&force=true&fieldManager=kyvtel&fieldValidation=Strict"
    );
    let sent: Value = serde_json::from_str(&patch.body).unwrap();
    assert_eq!(sent["metadata"]["labels"]["kyvtel.dev/run"], "run-1");
}

#[tokio::test]
async fn a_strict_validation_error_is_a_plain_failure() {
    let (api, _log) = mock(|seen| {
        discovery(seen).unwrap_or_else(|| {
            Reply::Json(
                400,
                status(400, "BadRequest", ".spec.replicaz: field not declared in schema (strict decoding error)"),
            )
        })
    });
    let err = api.apply(&[deployment_doc()], Some("app"), Duration::from_secs(2)).await.unwrap_err();
    assert_eq!(err.denial(), None);
    assert!(err.message.contains("apply Deployment/app/demo") && err.message.contains("replicaz"), "{err}");
}

#[tokio::test]
async fn cluster_scoped_objects_apply_without_a_namespace() {
    let (api, log) = mock(|seen| {
        discovery(seen).unwrap_or_else(|| match seen.method.as_str() {
            // The namespace does not exist yet: it will be created, with kyvtel's labels.
            "GET" => Reply::Json(404, status(404, "NotFound", "namespaces \"app\" not found")),
            _ => Reply::Json(200, serde_json::from_str(&seen.body).unwrap()),
        })
    });
    let ns = json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "app"}});
    api.apply(&[ns], None, Duration::from_secs(2)).await.unwrap();
    let patch = log.lock().unwrap().iter().find(|s| s.method == "PATCH").cloned().unwrap();
    assert!(patch.uri.starts_with("/api/v1/namespaces/app?"), "{}", patch.uri);
}

#[tokio::test]
async fn a_namespace_or_policy_kyvtel_does_not_own_is_never_taken_over() {
    let (api, log) = mock(|seen| {
        discovery(seen).unwrap_or_else(|| match seen.uri.as_str() {
            u if u.starts_with("/api/v1/namespaces/app") => {
                Reply::Json(200, json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "app"}}))
            }
            u if u.contains("/clusterpolicies/strict") => Reply::Json(
                200,
                json!({"apiVersion": "kyverno.io/v1", "kind": "ClusterPolicy", "metadata": {"name": "strict", "labels": {"team": "platform"}}}),
            ),
            _ => Reply::Json(404, status(404, "NotFound", "not found")),
        })
    });
    let ns = json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "app"}});
    let err = api.apply(&[ns], None, Duration::from_secs(2)).await.unwrap_err();
    assert!(
        err.message.contains("Namespace app exists and is not labelled app.kubernetes.io/managed-by=kyvtel"),
        "{err}"
    );
    let policy =
        json!({"apiVersion": "kyverno.io/v1", "kind": "ClusterPolicy", "metadata": {"name": "strict"}, "spec": {}});
    let err = api.apply(&[policy], None, Duration::from_secs(2)).await.unwrap_err();
    assert!(err.message.contains("ClusterPolicy strict exists and is not labelled"), "{err}");
    assert!(log.lock().unwrap().iter().all(|s| s.method != "PATCH"), "nothing may be applied");
}

#[tokio::test]
async fn restart_sends_the_rollout_restart_annotation_as_a_merge_patch() {
    let (api, log) = mock(|_| Reply::Json(200, deployment_doc()));
    let before = k8s_openapi::jiff::Timestamp::now();
    api.restart("app", "demo").await.unwrap();
    let seen = log.lock().unwrap()[0].clone();
    assert_eq!(seen.method, "PATCH");
    assert_eq!(seen.uri, "/apis/apps/v1/namespaces/app/deployments/demo?&fieldManager=kyvtel");
    assert_eq!(seen.content_type, "application/merge-patch+json");
    let body: Value = serde_json::from_str(&seen.body).unwrap();
    let annotations = body.pointer("/spec/template/metadata/annotations").and_then(Value::as_object).unwrap();
    assert_eq!(annotations.len(), 1);
    let stamp = annotations["kubectl.kubernetes.io/restartedAt"].as_str().unwrap();
    let at: k8s_openapi::jiff::Timestamp = stamp.parse().expect("RFC 3339");
    assert!(stamp.ends_with('Z') && !stamp.contains('.'), "{stamp}");
    let drift = at.duration_since(before).as_secs().abs();
    assert!(drift <= 2, "restartedAt {stamp} is not now ({before})");
}

#[tokio::test]
async fn cluster_ip_reads_spec_cluster_ip_and_refuses_headless_services() {
    let (api, log) = mock(|seen| {
        let ip = if seen.uri.ends_with("/demo") { "10.96.12.34" } else { "None" };
        Reply::Json(
            200,
            json!({"apiVersion": "v1", "kind": "Service", "metadata": {"name": "x", "namespace": "app"},
                                "spec": {"clusterIP": ip, "ports": [{"port": 80}]}}),
        )
    });
    assert_eq!(api.cluster_ip("app", "demo").await.unwrap(), "10.96.12.34");
    assert_eq!(log.lock().unwrap()[0].uri, "/api/v1/namespaces/app/services/demo");
    let err = api.cluster_ip("app", "headless").await.unwrap_err();
    assert!(err.message.contains("headless"), "{err}");
}

#[tokio::test]
async fn a_missing_kubeconfig_is_a_clear_failure_and_connecting_is_retried_later() {
    let dir = std::env::temp_dir().join(format!("kyvtel-kubeapi-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let kubeconfig = dir.join("kubeconfig");
    let _ = std::fs::remove_file(&kubeconfig);
    let api = KubeApi::new(kubeconfig.clone(), None, Owner::new("run-1")).call_timeout(Duration::from_secs(5));

    let err = api.cluster_ip("app", "demo").await.unwrap_err();
    assert!(err.message.contains("does not exist") && err.message.contains(&kubeconfig.display().to_string()), "{err}");
    let evidence = api.evidence(&["app".to_string()], "ambassador").await;
    assert_eq!(evidence.len(), 1);
    assert_eq!(evidence[0].0, "kubernetes-api.error.txt");
    assert!(evidence[0].1.contains("does not exist"));

    // The cluster now "exists": the next call reads the kubeconfig (and fails only on the transport,
    // since nothing listens on port 9).
    std::fs::write(
        &kubeconfig,
        "apiVersion: v1\nkind: Config\nclusters:\n- name: c\n  cluster:\n    server: http://127.0.0.1:9\n\
         contexts:\n- name: x\n  context:\n    cluster: c\n    user: u\ncurrent-context: x\nusers:\n- name: u\n  user: {}\n",
    )
    .unwrap();
    let err = api.cluster_ip("app", "demo").await.unwrap_err();
    assert!(!err.message.contains("does not exist") && err.message.contains("read Service app/demo"), "{err}");

    // A context that is not in the file.
    let api = KubeApi::new(kubeconfig, Some("nope".into()), Owner::new("run-1"));
    let err = api.pod_uids("app", &selector(json!({"app": "demo"}))).await.unwrap_err();
    assert!(err.message.starts_with("cannot connect to the cluster: kubeconfig"), "{err}");
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test]
async fn delete_ignores_missing_objects_and_waits_until_gone() {
    let (api, log) = mock(|seen| {
        if let Some(r) = discovery(seen) {
            return r;
        }
        match seen.method.as_str() {
            "DELETE" if seen.uri.contains("configmaps") => Reply::Json(404, status(404, "NotFound", "not found")),
            "DELETE" => Reply::Json(200, status(200, "Success", "")),
            "GET" if seen.uri == "/api/v1/namespaces/app" => Reply::Json(200, owned("Namespace", "app")),
            "GET" if seen.uri == "/api/v1/namespaces/app/configmaps/demo" => {
                Reply::Json(200, owned("ConfigMap", "demo"))
            }
            _ if seen.uri.contains("watch=true") => Reply::Hang,
            _ => Reply::Json(200, list_of("Namespace", vec![])),
        }
    });
    let refs = [
        json!({"apiVersion": "v1", "kind": "Namespace", "name": "app"}),
        json!({"apiVersion": "v1", "kind": "ConfigMap", "name": "demo", "namespace": "app"}),
        json!({"apiVersion": "example.com/v1", "kind": "Gone", "name": "x"}),
    ];
    api.delete(&refs, Duration::from_secs(2)).await.unwrap();
    let deletes: Vec<String> =
        log.lock().unwrap().iter().filter(|s| s.method == "DELETE").map(|s| s.uri.clone()).collect();
    assert_eq!(deletes, ["/api/v1/namespaces/app/configmaps/demo?", "/api/v1/namespaces/app?"]);
}

/// An object labelled as kyvtel's.
fn owned(kind: &str, name: &str) -> Value {
    json!({"apiVersion": "v1", "kind": kind,
           "metadata": {"name": name, "labels": {"app.kubernetes.io/managed-by": "kyvtel"}}})
}

#[tokio::test]
async fn delete_never_touches_an_object_kyvtel_does_not_own() {
    let (api, log) = mock(|seen| {
        if let Some(r) = discovery(seen) {
            return r;
        }
        match seen.method.as_str() {
            // The user's own namespace of the same name: no kyvtel label.
            "GET" if seen.uri == "/api/v1/namespaces/app" => {
                Reply::Json(200, json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "app"}}))
            }
            _ => Reply::Json(200, status(200, "Success", "")),
        }
    });
    let refs = [json!({"apiVersion": "v1", "kind": "Namespace", "name": "app"})];
    api.delete(&refs, Duration::from_secs(2)).await.unwrap();
    assert!(log.lock().unwrap().iter().all(|s| s.method != "DELETE"), "a foreign namespace was deleted");
}

#[tokio::test]
async fn a_namespace_stuck_terminating_times_out_with_its_state() {
    let (api, _log) = mock(|seen| {
        if let Some(r) = discovery(seen) {
            return r;
        }
        match seen.method.as_str() {
            "DELETE" => Reply::Json(200, status(200, "Success", "")),
            "GET" if seen.uri == "/api/v1/namespaces/app" => Reply::Json(200, owned("Namespace", "app")),
            _ if seen.uri.contains("watch=true") => Reply::Hang,
            _ => Reply::Json(
                200,
                list_of(
                    "Namespace",
                    vec![json!({"apiVersion": "v1", "kind": "Namespace",
                    "metadata": {"name": "app", "resourceVersion": "9"},
                    "status": {"phase": "Terminating", "conditions": [{"type": "NamespaceContentRemaining",
                        "status": "True", "reason": "SomeResourcesRemain", "message": "Some resources are remaining: pods. has 1 resource instances"}]}})],
                ),
            ),
        }
    });
    let refs = [json!({"apiVersion": "v1", "kind": "Namespace", "name": "app"})];
    let err = api.delete(&refs, Duration::from_millis(300)).await.unwrap_err();
    assert!(err.message.contains("namespace app to be deleted"), "{err}");
    assert!(
        err.message.contains("phase=Terminating") && err.message.contains("pods. has 1 resource instances"),
        "{err}"
    );
}

fn statefulset(ready: i32) -> Value {
    json!({"apiVersion": "apps/v1", "kind": "StatefulSet",
           "metadata": {"name": "traffic-manager", "namespace": "ambassador", "generation": 1, "resourceVersion": "3"},
           "spec": {"replicas": 1, "selector": {"matchLabels": {"app": "traffic-manager"}}, "serviceName": "traffic-manager", "template": {}},
           "status": {"observedGeneration": 1, "replicas": 1, "readyReplicas": ready, "currentRevision": "r1", "updateRevision": "r1"}})
}

#[tokio::test]
async fn traffic_manager_from_2_32_is_awaited_as_a_statefulset() {
    let (api, log) = mock(|seen| {
        if seen.uri.contains("watch=true") {
            Reply::Hang
        } else {
            Reply::Json(200, list_of("StatefulSet", vec![statefulset(1)]))
        }
    });
    let until = WaitFor::TrafficManagerReady { namespace: "ambassador".into(), workload_kind: "StatefulSet".into() };
    api.wait(&until, Duration::from_secs(2)).await.unwrap();
    let uri = log.lock().unwrap()[0].uri.clone();
    assert!(
        uri.starts_with("/apis/apps/v1/namespaces/ambassador/statefulsets?")
            && uri.contains("metadata.name%3Dtraffic-manager"),
        "{uri}"
    );

    let (api, _log) = mock(|seen| {
        if seen.uri.contains("watch=true") {
            Reply::Hang
        } else {
            Reply::Json(200, list_of("StatefulSet", vec![statefulset(0)]))
        }
    });
    let err = api.wait(&until, Duration::from_millis(300)).await.unwrap_err();
    assert!(err.message.contains("timed out") && err.message.contains("ready=0"), "{err}");
    assert_eq!(err.kind, kyvtel::kube::api::ApiFailureKind::TimedOut, "a wait that ran out is typed so");

    let bad = WaitFor::TrafficManagerReady { namespace: "ambassador".into(), workload_kind: "DaemonSet".into() };
    assert!(api.wait(&bad, Duration::from_secs(1)).await.unwrap_err().message.contains("DaemonSet"));
}

#[tokio::test]
async fn canary_denied_returns_the_kyverno_denial_text() {
    let message = format!("pods \"kyvtel-canary\" is forbidden: {KYVERNO_DENIAL}");
    let answer = message.clone();
    let (api, log) = mock(move |_| Reply::Json(400, status(400, "BadRequest", &answer)));
    let pod = json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "kyvtel-canary", "namespace": "app"},
                     "spec": {"containers": [{"name": "c", "image": "x"}]}});
    assert_eq!(api.canary_denied(&pod, Duration::from_secs(2)).await.unwrap(), message);
    let uri = log.lock().unwrap()[0].uri.clone();
    assert!(uri.starts_with("/api/v1/namespaces/app/pods?") && uri.contains("dryRun=All"), "{uri}");

    let no_ns = json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "c"}});
    assert!(api.canary_denied(&no_ns, Duration::from_secs(1)).await.unwrap_err().message.contains("namespace"));
}

fn pod(uid: &str, agent_ready: bool) -> Value {
    json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": format!("demo-{uid}"), "namespace": "app", "uid": uid},
           "spec": {"containers": [{"name": "app", "image": "x"}, {"name": "traffic-agent", "image": "y"}]},
           "status": {"phase": "Running", "containerStatuses": [
               {"name": "app", "ready": true, "restartCount": 0, "image": "x", "imageID": ""},
               {"name": "traffic-agent", "ready": agent_ready, "restartCount": 0, "image": "y", "imageID": ""}]}})
}

#[tokio::test]
async fn pods_are_selected_by_match_labels_and_the_new_agent_pod_is_returned() {
    let (api, log) = mock(|_| Reply::Json(200, list_of("Pod", vec![pod("old", false), pod("new", true)])));
    let sel = selector(json!({"app": "demo", "tier": "web"}));
    let uids = api.pod_uids("app", &sel).await.unwrap();
    assert_eq!(uids, BTreeSet::from(["new".to_string(), "old".to_string()]));
    assert_eq!(log.lock().unwrap()[0].uri, "/api/v1/namespaces/app/pods?&labelSelector=app%3Ddemo%2Ctier%3Dweb");

    let old = BTreeSet::from(["old".to_string()]);
    let found = api.new_agent_pod("app", &sel, &old, Duration::from_secs(2)).await.unwrap();
    assert_eq!(found["metadata"]["uid"], "new");
    assert_eq!(found["spec"]["containers"][1]["name"], "traffic-agent");

    let err = api.new_agent_pod("app", &sel, &uids, Duration::from_millis(100)).await.unwrap_err();
    assert!(err.message.contains("timed out") && err.message.contains("pod demo-new uid=new"), "{err}");
}

#[tokio::test]
async fn denial_messages_come_from_the_deployments_replica_sets() {
    let (api, _log) = mock(|seen| {
        if seen.uri.contains("/events") {
            Reply::Json(200, list_of("Event", vec![]))
        } else if seen.uri.contains("/replicasets") {
            Reply::Json(
                200,
                list_of(
                    "ReplicaSet",
                    vec![json!({"apiVersion": "apps/v1", "kind": "ReplicaSet",
                "metadata": {"name": "demo-5d9c", "namespace": "app", "ownerReferences": [
                    {"apiVersion": "apps/v1", "kind": "Deployment", "name": "demo", "uid": "d-1"}]},
                "spec": {"selector": {"matchLabels": {"app": "demo"}}},
                "status": {"replicas": 0, "conditions": [{"type": "ReplicaFailure", "status": "True",
                    "reason": "FailedCreate", "message": KYVERNO_DENIAL}]}})],
                ),
            )
        } else {
            let mut d = deployment_doc();
            d["metadata"]["uid"] = json!("d-1");
            Reply::Json(200, d)
        }
    });
    assert_eq!(api.denial_messages("app", "demo").await.unwrap(), [KYVERNO_DENIAL]);
}

/// A pod of the demo workload, created at `created`, with these containers.
fn demo_pod(name: &str, created: &str, containers: &[&str]) -> Value {
    let cs: Vec<Value> = containers.iter().map(|c| json!({"name": c, "image": "x"})).collect();
    json!({"metadata": {"name": name, "namespace": "kyvtel-app", "creationTimestamp": created, "labels": {"app": "demo"}},
           "spec": {"containers": cs}})
}

fn demo_selector() -> serde_json::Map<String, Value> {
    json!({"app": "demo"}).as_object().unwrap().clone()
}

/// The local provider's silent-false-result trap: a webhook left on a Service fails open and the pod
/// is admitted without an agent. The injected-pod wait then fails with what it saw, never passes.
#[tokio::test]
async fn a_pod_admitted_without_the_agent_fails_the_injected_pod_wait() {
    let (api, _log) = mock(|seen| {
        if seen.uri.contains("/replicasets") {
            return Reply::Json(200, list_of("ReplicaSet", vec![]));
        }
        Reply::Json(200, list_of("Pod", vec![demo_pod("demo-1", "2026-12-03T08:00:00Z", &["demo"])]))
    });
    let e = api
        .injected_pod("kyvtel-app", &demo_selector(), "traffic-agent", Duration::from_millis(300))
        .await
        .unwrap_err();
    assert!(e.message.contains("newest pod demo-1 has containers [demo], no `traffic-agent`"), "{e}");
}

/// 2.20.2 first denies a pod ("agent-config is not yet generated") and restarts the workload: the
/// newest pod is the one judged, and a terminating one never is.
#[tokio::test]
async fn the_injected_pod_is_the_newest_live_one() {
    let (api, _log) = mock(|_| {
        let mut old = demo_pod("demo-old", "2026-12-03T08:00:00Z", &["demo", "traffic-agent"]);
        old["metadata"]["deletionTimestamp"] = json!("2026-12-03T08:00:05Z");
        Reply::Json(
            200,
            list_of(
                "Pod",
                vec![
                    old,
                    demo_pod("demo-new", "2026-12-03T08:00:03Z", &["demo", "traffic-agent"]),
                    demo_pod("demo-mid", "2026-12-03T08:00:01Z", &["demo"]),
                ],
            ),
        )
    });
    let pod = api.injected_pod("kyvtel-app", &demo_selector(), "traffic-agent", Duration::from_secs(2)).await.unwrap();
    assert_eq!(pod["metadata"]["name"], "demo-new");
}

fn named(items: &[(&str, &str)]) -> Vec<Value> {
    items.iter().map(|(ns, n)| json!({"metadata": {"namespace": ns, "name": n}})).collect()
}

/// A scenario on a cell's shared stack must leave it as the setup did: the check names every
/// leftover (a second scenario would otherwise see the first one's webhook, namespace or policy).
#[tokio::test]
async fn the_reset_check_names_what_a_scenario_left_on_the_shared_stack() {
    let (api, _log) = mock(|seen| {
        let u = seen.uri.as_str();
        let items = if u.contains("mutatingwebhookconfigurations") {
            named(&[("", "kyverno-resource-mutating-webhook-cfg"), ("", "agent-injector-webhook-ambassador")])
        } else if u.contains("validatingwebhookconfigurations") {
            named(&[("", "kyverno-policy-validating-webhook-cfg")])
        } else if u.contains("/namespaces") {
            named(&[("", "default"), ("", "kube-system"), ("", "kyverno"), ("", "kyvtel-app")])
        } else if u.contains("clusterpolicies") {
            named(&[("", "require-security-context")])
        } else if u.contains("policyexceptions") {
            named(&[("kyverno", "telepresence-traffic-manager")])
        } else {
            named(&[
                ("kyverno", "sh.helm.release.v1.kyverno.v1"),
                ("ambassador", "sh.helm.release.v1.traffic-manager.v1"),
            ])
        };
        Reply::Json(200, list_of("X", items))
    });
    let left = kyvtel::provider::local::op::leftovers(&api).await.unwrap();
    assert_eq!(
        left,
        [
            "MutatingWebhookConfiguration agent-injector-webhook-ambassador",
            "Namespace kyvtel-app",
            "ClusterPolicy require-security-context",
            "PolicyException kyverno/telepresence-traffic-manager",
            "Helm release secret ambassador/sh.helm.release.v1.traffic-manager.v1",
        ]
    );
}

#[tokio::test]
async fn a_stack_as_the_setup_left_it_has_no_leftovers() {
    let (api, _log) = mock(|seen| {
        let u = seen.uri.as_str();
        let items = if u.contains("webhookconfigurations") {
            named(&[("", "kyverno-policy-validating-webhook-cfg")])
        } else if u.contains("/namespaces") {
            named(&[
                ("", "default"),
                ("", "kube-system"),
                ("", "kube-public"),
                ("", "kube-node-lease"),
                ("", "kyverno"),
            ])
        } else if u.contains("clusterpolicies") || u.contains("policyexceptions") {
            vec![]
        } else {
            named(&[("kyverno", "sh.helm.release.v1.kyverno.v1")])
        };
        Reply::Json(200, list_of("X", items))
    });
    assert!(kyvtel::provider::local::op::leftovers(&api).await.unwrap().is_empty());
}

/// A list that cannot be read means a broken stack: an infrastructure error, never a leftover verdict.
#[tokio::test]
async fn the_reset_check_reports_an_unreadable_stack_as_an_error() {
    let (api, _log) = mock(|_| Reply::Json(503, status(503, "ServiceUnavailable", "etcd is down")));
    let e = kyvtel::provider::local::op::leftovers(&api).await.unwrap_err();
    assert!(e.contains("/api/v1/namespaces"), "{e}");
}

/// A member's namespaces are deleted without waiting one by one: the reset check waits while the
/// only leftovers are terminating, returns once they are gone, and does not wait for a real leftover.
#[tokio::test]
async fn the_reset_check_waits_for_terminating_namespaces_only() {
    let lists = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let seen_lists = lists.clone();
    let (api, _log) = mock(move |seen| {
        let u = seen.uri.as_str();
        let items = if u.contains("/namespaces") {
            // Terminating for the first three lists, then gone.
            let n = seen_lists.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            let mut items = named(&[("", "default"), ("", "kyverno")]);
            if n < 3 {
                items.push(json!({"metadata": {"name": "ambassador", "deletionTimestamp": "2026-12-03T08:00:00Z"}}));
            }
            items
        } else if u.contains("webhookconfigurations") {
            named(&[("", "kyverno-policy-validating-webhook-cfg")])
        } else if u.contains("clusterpolicies") || u.contains("policyexceptions") {
            vec![]
        } else {
            named(&[("kyverno", "sh.helm.release.v1.kyverno.v1")])
        };
        Reply::Json(200, list_of("X", items))
    });
    let left = kyvtel::provider::local::op::reset_leftovers(&api, Duration::from_secs(20)).await.unwrap();
    assert!(left.is_empty(), "{left:?}");
    assert_eq!(lists.load(std::sync::atomic::Ordering::SeqCst), 4, "polled until the namespace was gone");

    let (api, _log) = mock(|seen| {
        let u = seen.uri.as_str();
        let items = if u.contains("clusterpolicies") {
            named(&[("", "require-security-context")])
        } else if u.contains("/namespaces") {
            vec![json!({"metadata": {"name": "ambassador", "deletionTimestamp": "2026-12-03T08:00:00Z"}})]
        } else {
            vec![]
        };
        Reply::Json(200, list_of("X", items))
    });
    let t0 = std::time::Instant::now();
    let left = kyvtel::provider::local::op::reset_leftovers(&api, Duration::from_secs(20)).await.unwrap();
    assert!(t0.elapsed() < Duration::from_secs(5), "a real leftover is reported at once");
    assert_eq!(left, ["Namespace ambassador (terminating)", "ClusterPolicy require-security-context"]);
}

#[tokio::test]
async fn a_call_without_an_answer_is_left_to_the_probe_and_a_webhook_failure_is_unreachable() {
    // No answer within the call's bound: not yet the infrastructure's (GET /version decides).
    let (api, _log) = mock(|_| Reply::Hang);
    let api = api.call_timeout(Duration::from_millis(200));
    let err = api.restart("app", "demo").await.unwrap_err();
    assert!(err.message.contains("no answer within"), "{err}");
    assert_eq!(err.kind, kyvtel::kube::api::ApiFailureKind::Failed);
    // The API server could not call a webhook (HTTP 500): unreachable, never a denial.
    let message =
        "Internal error occurred: failed calling webhook \"validate.kyverno.svc-fail\": context deadline exceeded";
    let (api, _log) =
        mock(move |seen| discovery(seen).unwrap_or_else(|| Reply::Json(500, status(500, "InternalError", message))));
    let err = api.apply(&[deployment_doc()], Some("app"), Duration::from_secs(2)).await.unwrap_err();
    assert_eq!(err.kind, kyvtel::kube::api::ApiFailureKind::Unreachable, "{err}");
    assert_eq!(err.denial(), None);
}
