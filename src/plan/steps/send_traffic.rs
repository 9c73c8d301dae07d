//! `sendTraffic`: the request that proves the intercept comes from inside the cluster (a client pod),
//! because from Telepresence 2.29 `intercept.localShortcut` answers a workstation's request to the
//! intercepted Service locally, even with a broken agent (facts.md §4, §5.7). A host-side request
//! through the connection stays as an extra check (the run's client config turns the shortcut off
//! from 2.29). Each answer must carry the per-run token, which only the local handler returns.

use serde_json::{Value, json};

use super::super::action::Action;
use super::super::build::{limits, object_ref};
use super::{Ctx, skip_without_kubelet};
use crate::names::{MANAGED_BY_KEY, MANAGED_BY_VALUE, STATUS_MARKER};
use crate::scenario::Loaded;
use crate::scenario::model::SendTraffic;

/// The client pod's name.
pub const CLIENT_POD: &str = "kyvtel-traffic-client";

pub(super) fn actions(ctx: &mut Ctx<'_>, t: &SendTraffic) -> Vec<Action> {
    if let Some(skip) = skip_without_kubelet(ctx) {
        return skip;
    }
    let s = &ctx.loaded.scenario.spec;
    let app_ns = &s.workload.namespace;
    let svc = t.service.clone().unwrap_or_else(|| s.workload.name.clone());
    // `<svc>.<namespace>`: the pod's DNS search path completes it, whatever the cluster domain.
    let url = format!("http://{svc}.{app_ns}:{}/", t.port);
    let pod = client_pod(ctx.loaded, &url);
    let del = Action::Delete {
        label: format!("the traffic client pod {app_ns}/{CLIENT_POD}"),
        objects: vec![object_ref(&pod, Some(app_ns))],
        timeout: limits::TEARDOWN,
        wait: true,
    };
    ctx.b.push_cluster_undo(ctx.phase(), "delete the traffic client pod", vec![del], vec![], false);
    vec![
        Action::ClientRequest { pod, url, timeout: ctx.timeout(limits::CLIENT_POD) },
        Action::Request {
            url: format!("http://{{clusterIP:{app_ns}/{svc}}}:{}/", t.port),
            timeout: ctx.timeout(limits::REQUEST),
        },
    ]
}

/// The client pod: the pinned client image ([`crate::scenario::pins::Images::client`]), `curl` of
/// `url` with retries (the intercept may take a moment to route), the body then the status code;
/// the pod's and the container's securityContext are the workload's own (its pod template and its
/// first container), so that the client passes whatever strict rules the app passes, and user 65534
/// when neither names a user (never root); no ServiceAccount token; never restarted.
#[must_use]
pub fn client_pod(loaded: &Loaded, url: &str) -> Value {
    let s = &loaded.scenario.spec;
    let template = loaded.workload().map(|d| d["spec"]["template"]["spec"].clone()).unwrap_or(Value::Null);
    let mut container = json!({
        "name": "client",
        "image": crate::scenario::pins::Pins::builtin().images.client,
        // upstream: curl's `--retry-all-errors` (7.71+), `-w '%{http_code}'`; agnhost's Alpine ships curl 8.
        // Bounded by curl itself (10 s a try, retries for 60 s), inside the step's own limit.
        "command": ["curl", "-sS", "--max-time", "10", "--retry", "20", "--retry-delay", "3", "--retry-max-time", "60",
                    "--retry-all-errors", "-w", format!("\n{STATUS_MARKER}%{{http_code}}\n"), url],
    });
    let mut spec = json!({"restartPolicy": "Never", "automountServiceAccountToken": false, "containers": []});
    if let Some(sc) = template.pointer("/containers/0/securityContext") {
        container["securityContext"] = sc.clone();
    }
    if let Some(sc) = template.get("securityContext") {
        spec["securityContext"] = sc.clone();
    }
    // Non-root whatever the workload says: agnhost's image has no USER, so without a numeric user it
    // would run as root (or be refused by the kubelet under `runAsNonRoot: true`; facts.md §4).
    let user = |v: &Value| v.pointer("/securityContext/runAsUser").is_some();
    if !user(&container) && !user(&spec) {
        if !container["securityContext"].is_object() {
            container["securityContext"] = json!({});
        }
        container["securityContext"]["runAsUser"] = json!(65534);
        container["securityContext"]["runAsNonRoot"] = json!(true);
    }
    spec["containers"] = json!([container]);
    json!({
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {
            "name": CLIENT_POD,
            "namespace": s.workload.namespace,
            "labels": {"app.kubernetes.io/name": CLIENT_POD, MANAGED_BY_KEY: MANAGED_BY_VALUE},
        },
        "spec": spec,
    })
}
