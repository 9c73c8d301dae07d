//! How each of the local provider's plan operations ([`LocalOp`]) is executed.

use std::time::Duration;

use serde_json::Value;

use super::process::{self, Table};
use super::snapshot;
use crate::kube::api::ClusterApi;
use crate::names::local::ETCD;
use crate::plan::action::Phase;
use crate::plan::providers::local::components::{self, Spawn};
use crate::plan::providers::local::op::{LocalOp, Ready, StackStart, ready_text};

/// Runs `op`. Errors are infrastructure failures, with the last observed state.
///
/// # Errors
/// What failed, with the component's log tail where one exists.
pub async fn run<A: ClusterApi>(op: &LocalOp, api: &A, table: &Table, setup: &[Phase]) -> Result<(), String> {
    match op {
        LocalOp::RestoreSnapshot { store, stack, binaries } => {
            table.set_start(StackStart::Cold);
            let key = snapshot::key(setup, stack, binaries)?;
            match snapshot::lookup(store, &key) {
                snapshot::Lookup::Hit { dir, manifest } => {
                    let (from, into, k) = (dir.clone(), stack.clone(), key.clone());
                    let restored = tokio::task::spawn_blocking(move || snapshot::restore(&from, &k, &into))
                        .await
                        .unwrap_or_else(|e| Err(e.to_string()));
                    if let Err(e) = restored {
                        // E.g. replaced by a concurrent run mid-copy: a cold start, never a broken one;
                        // a snapshot that cannot be restored goes, so the cold start saves a good one.
                        snapshot::set_aside(&dir);
                        crate::console_eprintln!(
                            "stack: cold start (snapshot {} could not be restored: {e})",
                            &key[..12]
                        );
                        return Ok(());
                    }
                    table.set_start(StackStart::Warm);
                    let saved = i64::try_from(manifest.created)
                        .ok()
                        .and_then(|s| k8s_openapi::jiff::Timestamp::from_second(s).ok())
                        .map_or_else(|| manifest.created.to_string(), crate::kube::rfc3339);
                    crate::console_eprintln!("stack: warm start from snapshot {} (saved {saved})", &key[..12]);
                }
                snapshot::Lookup::Miss(why) => crate::console_eprintln!("stack: cold start ({why})"),
            }
            Ok(())
        }
        LocalOp::SaveSnapshot { store, stack, binaries } => {
            let key = snapshot::key(setup, stack, binaries)?;
            let pid = table.pid(ETCD).ok_or("etcd is not running: nothing to snapshot")?;
            // The stack is fine either way: a snapshot that cannot be saved costs the next run a cold start.
            let (store, stack, k) = (store.clone(), stack.clone(), key.clone());
            let saved = tokio::task::spawn_blocking(move || snapshot::save(&store, &stack, &k, pid))
                .await
                .unwrap_or_else(|e| Err(e.to_string()));
            match saved {
                Ok(dir) => crate::console_eprintln!("stack: saved snapshot {} in {}", &key[..12], dir.display()),
                Err(e) => crate::console_eprintln!("warning: stack: snapshot {} not saved: {e}", &key[..12]),
            }
            Ok(())
        }
        LocalOp::RefreshHealthLease { namespace, name } => {
            // As Kyverno writes it: time.Now().Format(time.RFC3339) (kyverno/kyverno
            // pkg/controllers/webhook/controller.go@v1.19.1, createLease and watchdogCheck).
            let now = crate::kube::rfc3339(k8s_openapi::jiff::Timestamp::now());
            let path = format!("/apis/coordination.k8s.io/v1/namespaces/{namespace}/leases/{name}");
            let patch = serde_json::json!({"metadata": {"annotations": {"kyverno.io/last-request-time": now}}});
            match api.merge_patch(&path, &patch).await {
                Ok(()) => Ok(()),
                // Kyverno creates it when missing.
                Err(e) if e.to_string().contains("NotFound") || e.to_string().contains("not found") => Ok(()),
                Err(e) => Err(format!("refresh Lease {namespace}/{name}: {e}")),
            }
        }
        LocalOp::Credentials { dir, kubeconfig, server } => {
            let pki = super::pki::generate(dir)?;
            let ca = std::fs::read_to_string(pki.ca_crt()).map_err(|e| e.to_string())?;
            let token = std::fs::read_to_string(pki.admin_token()).map_err(|e| e.to_string())?;
            super::pki::write_private(kubeconfig, &components::kubeconfig(server, &ca, token.trim()))
        }
        LocalOp::Start { spawn, ready, timeout } => {
            if spawn.name == ETCD
                && let Some(d) = spawn.args.iter().find_map(|a| a.strip_prefix("--data-dir="))
            {
                super::pki::create_private_dir(std::path::Path::new(d))?;
            }
            let r = process::spawn(spawn)?;
            table.push(r);
            wait_ready(&spawn.name, &spawn.log, ready, *timeout, api).await
        }
        LocalOp::PrepareKyvernoChart { kyverno_module, api_module, chart } => {
            super::charts::prepare_kyverno(kyverno_module, api_module, chart).map(|_| ())
        }
        LocalOp::StartFromChart {
            name,
            program,
            namespace,
            deployment,
            container,
            args,
            env,
            kubeconfig,
            server,
            in_cluster_files,
            ca,
            log,
            ready,
            timeout,
        } => {
            let path = format!("/apis/apps/v1/namespaces/{namespace}/deployments/{deployment}");
            let d: Value =
                api.get_json(&path).await.map_err(|e| format!("read Deployment {namespace}/{deployment}: {e}"))?;
            let c = super::adapt::container(&d, container)?;
            let sa = d["spec"]["template"]["spec"]["serviceAccountName"].as_str().unwrap_or("default").to_string();
            let pod_name =
                pending_pod_name(api, namespace, &d).await.unwrap_or_else(|| format!("{deployment}-kyvtel-local"));
            let pod =
                super::adapt::PodIdentity { name: pod_name, namespace: namespace.clone(), service_account: sa.clone() };
            let (mut e, dropped) = super::adapt::env(c, &pod);
            if !dropped.is_empty() {
                tracing::info!("{name}: left out env {dropped:?} (cannot be resolved outside a pod)");
            }
            for (k, v) in env {
                super::adapt::set(&mut e, k, v);
            }
            let token = api
                .create_token(namespace, &sa)
                .await
                .map_err(|e| format!("TokenRequest for {namespace}/{sa}: {e}"))?;
            let ca_pem = std::fs::read_to_string(ca).map_err(|e| format!("{}: {e}", ca.display()))?;
            let mut a = super::adapt::args(c);
            if let Some(k) = kubeconfig {
                super::pki::write_private(k, &components::kubeconfig(server, &ca_pem, &token))?;
                a.push(format!("--kubeconfig={}", k.display()));
            }
            if *in_cluster_files {
                write_in_cluster_files(&ca_pem, &token, namespace)?;
            }
            a.extend(args.iter().cloned());
            let spawn = Spawn { name: name.clone(), program: program.clone(), args: a, env: e, log: log.clone() };
            let r = process::spawn(&spawn)?;
            table.push(r);
            wait_ready(name, log, ready, *timeout, api).await
        }
        LocalOp::Stop { name, grace } => {
            let Some(r) = table.take(name) else { return Ok(()) };
            let grace = *grace;
            let s = tokio::task::spawn_blocking(move || process::stop(r, grace)).await.map_err(|e| e.to_string())?;
            if s.killed {
                tracing::info!("{name} needed SIGKILL");
            }
            Ok(())
        }
    }
}

/// The in-cluster ServiceAccount directory: on the run's private tmpfs `/run` (`/var/run` points there).
pub const IN_CLUSTER_DIR: &str = "/run/secrets/kubernetes.io/serviceaccount";

fn write_in_cluster_files(ca: &str, token: &str, namespace: &str) -> Result<(), String> {
    if !super::confine::is_confined() {
        return Err(format!(
            "the traffic-manager needs {IN_CLUSTER_DIR}, which kyvtel writes only on the private /run of a confined \
             run (the host's /run is never touched)"
        ));
    }
    let dir = std::path::Path::new(IN_CLUSTER_DIR);
    std::fs::create_dir_all(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    super::pki::write_private(&dir.join("token"), token)?;
    super::pki::write_private(&dir.join("ca.crt"), ca)?;
    super::pki::write_private(&dir.join("namespace"), namespace)
}

/// The name of the Deployment's Pending pod (created by the ReplicaSet controller, never scheduled).
async fn pending_pod_name<A: ClusterApi>(api: &A, namespace: &str, d: &Value) -> Option<String> {
    let labels = d["spec"]["selector"]["matchLabels"].as_object()?;
    let sel: Vec<String> = labels.iter().map(|(k, v)| format!("{k}={}", v.as_str().unwrap_or_default())).collect();
    let list =
        api.get_json(&format!("/api/v1/namespaces/{namespace}/pods?labelSelector={}", sel.join(","))).await.ok()?;
    list["items"].as_array()?.iter().find_map(|p| p["metadata"]["name"].as_str().map(str::to_string))
}

async fn wait_ready<A: ClusterApi>(
    name: &str,
    log: &std::path::Path,
    ready: &Ready,
    timeout: Duration,
    api: &A,
) -> Result<(), String> {
    let start = tokio::time::Instant::now();
    loop {
        // A component that exits ends the wait through the executor (`component_exited`), with its log.
        let last = match check(ready, api).await {
            Ok(()) => return Ok(()),
            Err(e) => e,
        };
        if start.elapsed() >= timeout {
            return Err(format!(
                "{name} was not ready within {}: {}; last observed: {last}; its log ends: {}",
                crate::duration::format(timeout),
                ready_text(ready),
                process::log_tail(log, 5)
            ));
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

async fn check<A: ClusterApi>(ready: &Ready, api: &A) -> Result<(), String> {
    match ready {
        Ready::All { all } => {
            for r in all {
                Box::pin(check(r, api)).await?;
            }
            Ok(())
        }
        Ready::Listening { port } => tokio::net::TcpStream::connect(("127.0.0.1", *port))
            .await
            .map(|_| ())
            .map_err(|e| format!("127.0.0.1:{port}: {e}")),
        Ready::ApiServer => api.get_text("/readyz").await.map(|_| ()).map_err(|e| e.to_string()),
        Ready::ServiceAccount { namespace, name } => api
            .get_json(&format!("/api/v1/namespaces/{namespace}/serviceaccounts/{name}"))
            .await
            .map(|_| ())
            .map_err(|e| e.to_string()),
        Ready::Webhooks { kind, name } => {
            let plural = if kind.starts_with("Validating") {
                "validatingwebhookconfigurations"
            } else {
                "mutatingwebhookconfigurations"
            };
            let w = api
                .get_json(&format!("/apis/admissionregistration.k8s.io/v1/{plural}/{name}"))
                .await
                .map_err(|e| e.to_string())?;
            let hooks = w["webhooks"].as_array().cloned().unwrap_or_default();
            if hooks.is_empty() {
                return Err(format!("{kind} {name} has no webhooks yet"));
            }
            let off: Vec<String> = hooks
                .iter()
                .filter(|h| !h["clientConfig"]["url"].as_str().is_some_and(|u| u.starts_with("https://127.0.0.1:")))
                .map(|h| h["name"].as_str().unwrap_or("?").to_string())
                .collect();
            if off.is_empty() { Ok(()) } else { Err(format!("webhooks not on loopback: {}", off.join(", "))) }
        }
    }
}

const TERMINATING: &str = " (terminating)";

/// What a scenario's reset left on the shared stack ([`leftovers`]), once every object it was still
/// deleting is gone or `timeout` has passed (then the terminating ones are listed too). Deleting a
/// member's namespaces is not waited for one by one: they terminate together, and this waits once.
///
/// # Errors
/// As [`leftovers`].
pub async fn reset_leftovers<A: ClusterApi>(api: &A, timeout: Duration) -> Result<Vec<String>, String> {
    let deadline = crate::duration::tokio_deadline(timeout);
    loop {
        let left = leftovers(api).await?;
        let settling = !left.is_empty() && left.iter().all(|l| l.ends_with(TERMINATING));
        if !settling || tokio::time::Instant::now() >= deadline {
            return Ok(left);
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

/// What a scenario left on a shared stack: webhook configurations other than Kyverno's (so no
/// `agent-injector-webhook-*`), namespaces other than the system ones and Kyverno's, any ClusterPolicy
/// or PolicyException, any Helm release but Kyverno's. Empty
/// when the stack is as the cell's setup left it.
///
/// # Errors
/// A list could not be read (the stack is broken: an infrastructure failure, not a leftover).
pub async fn leftovers<A: ClusterApi>(api: &A) -> Result<Vec<String>, String> {
    const SYSTEM: [&str; 5] = ["default", "kube-system", "kube-public", "kube-node-lease", "kyverno"];
    // An object being deleted is named `(terminating)`: [`reset_leftovers`] waits for those.
    let names = |v: &Value| -> Vec<(String, String)> {
        v["items"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|o| {
                let mut name = o["metadata"]["name"].as_str().unwrap_or_default().to_string();
                if !o["metadata"]["deletionTimestamp"].is_null() {
                    name.push_str(TERMINATING);
                }
                (o["metadata"]["namespace"].as_str().unwrap_or_default().to_string(), name)
            })
            .collect()
    };
    let mut out = Vec::new();
    let mut errors = Vec::new();
    let mut list = |path: &str, what: &str, keep: &dyn Fn(&str, &str) -> bool, found: Result<Value, _>| match found {
        Ok(v) => out.extend(
            names(&v)
                .into_iter()
                .filter(|(ns, n)| !keep(ns, n))
                .map(|(ns, n)| if ns.is_empty() { format!("{what} {n}") } else { format!("{what} {ns}/{n}") }),
        ),
        Err(e) => errors.push(format!("{path}: {e}")),
    };
    for (path, what) in [
        ("/apis/admissionregistration.k8s.io/v1/mutatingwebhookconfigurations", "MutatingWebhookConfiguration"),
        ("/apis/admissionregistration.k8s.io/v1/validatingwebhookconfigurations", "ValidatingWebhookConfiguration"),
    ] {
        let found = api.get_json(path).await;
        list(path, what, &|_, n| n.starts_with("kyverno-"), found);
    }
    let path = "/api/v1/namespaces";
    let found = api.get_json(path).await;
    list(path, "Namespace", &|_, n| SYSTEM.contains(&n), found);
    let path = "/apis/kyverno.io/v1/clusterpolicies";
    let found = api.get_json(path).await;
    list(path, "ClusterPolicy", &|_, _| false, found);
    // Kyverno's CRDs are installed with the stack, so the list is served.
    let path = "/apis/kyverno.io/v2/policyexceptions";
    let found = api.get_json(path).await;
    list(path, "PolicyException", &|_, _| false, found);
    // Helm 3 stores each release revision as a Secret labelled owner=helm, named sh.helm.release.v1.<release>.v<N>.
    // upstream: helm/helm pkg/storage/driver/secrets.go@v3.21.4 (`owner=helm` label, key format).
    let path = "/api/v1/secrets?labelSelector=owner%3Dhelm";
    let found = api.get_json(path).await;
    list(path, "Helm release secret", &|ns, n| ns == "kyverno" && n.starts_with("sh.helm.release.v1.kyverno."), found);
    if errors.is_empty() { Ok(out) } else { Err(errors.join("; ")) }
}
