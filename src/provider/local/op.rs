//! The local provider's typed plan operations ([`LocalOp`]) and how each is executed.

use std::path::PathBuf;
use std::time::Duration;

use serde::Serialize;
use serde_json::Value;

use super::process::{self, Spawn, Table};
use super::snapshot;
use crate::kube::api::ClusterApi;
use crate::plan::action::Phase;

/// Serializes a duration as `90s` / `5m`.
fn dur<S: serde::Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(&crate::duration::format(*d))
}

/// When a started component counts as ready. Every check also watches the process: if it exits,
/// the wait ends at once with its log's tail (an infrastructure failure, never a verdict).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase", rename_all_fields = "camelCase", tag = "check")]
pub enum Ready {
    /// Something accepts TCP connections on `127.0.0.1:<port>`.
    Listening {
        /// The port.
        port: u16,
    },
    /// The API server answers `GET /readyz` with 200.
    ApiServer,
    /// The ServiceAccount exists (the controller manager created it).
    ServiceAccount {
        /// Namespace.
        namespace: String,
        /// Name.
        name: String,
    },
    /// A webhook configuration exists and points at loopback (Kyverno registered its webhooks).
    Webhooks {
        /// `ValidatingWebhookConfiguration` or `MutatingWebhookConfiguration`.
        kind: String,
        /// Its name.
        name: String,
    },
    /// Every one of these, in order.
    All {
        /// The checks.
        all: Vec<Ready>,
    },
}

/// How a cell's stack started: from an empty etcd, or from a matching snapshot ([`super::snapshot`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum StackStart {
    /// From an empty etcd: credentials generated, charts installed.
    #[default]
    Cold,
    /// From a snapshot of the clean "stack ready" state.
    Warm,
}

impl std::fmt::Display for StackStart {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            StackStart::Cold => "cold",
            StackStart::Warm => "warm",
        })
    }
}

/// One operation of the local provider. `kyvtel plan --provider local` prints it; the executor
/// runs exactly it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase", rename_all_fields = "camelCase", tag = "local")]
pub enum LocalOp {
    /// Generate the run's PKI, static token and admin kubeconfig (0600 files in a 0700 directory).
    Credentials {
        /// The PKI directory.
        dir: PathBuf,
        /// The admin kubeconfig written.
        kubeconfig: PathBuf,
        /// The API server's URL, for the kubeconfig.
        server: String,
    },
    /// Start a component and wait until it is ready.
    Start {
        /// What is started.
        spawn: Spawn,
        /// When it is ready.
        ready: Ready,
        /// Time limit for readiness.
        #[serde(serialize_with = "dur")]
        timeout: Duration,
    },
    /// Copy Kyverno's chart out of its module and make it installable (see [`super::charts`]).
    PrepareKyvernoChart {
        /// The Kyverno module in Go's module cache.
        kyverno_module: PathBuf,
        /// The kyverno/api module (its `charts/kyverno-api`).
        api_module: PathBuf,
        /// The writable copy.
        chart: PathBuf,
    },
    /// Run a chart's container as a host process: the Deployment's args and env as rendered (read back
    /// from the API server), fieldRefs resolved, then the listed overrides (see [`super::adapt`]).
    StartFromChart {
        /// The component's name.
        name: String,
        /// The binary.
        program: PathBuf,
        /// The Deployment's namespace.
        namespace: String,
        /// The Deployment.
        deployment: String,
        /// Its container.
        container: String,
        /// Arguments appended after the rendered ones (last flag wins).
        args: Vec<String>,
        /// Environment set over the rendered one.
        env: Vec<(String, String)>,
        /// Where the component's ServiceAccount kubeconfig goes (`--kubeconfig`), if it takes one.
        #[serde(skip_serializing_if = "Option::is_none")]
        kubeconfig: Option<PathBuf>,
        /// The API server's URL, for that kubeconfig.
        server: String,
        /// Write the in-cluster ServiceAccount files under `/run/secrets/kubernetes.io/serviceaccount`
        /// (the run's private tmpfs) for components that insist on them.
        in_cluster_files: bool,
        /// The run's CA, for the kubeconfig and in-cluster files.
        ca: PathBuf,
        /// Its log.
        log: PathBuf,
        /// When it is ready.
        ready: Ready,
        /// Time limit for readiness.
        #[serde(serialize_with = "dur")]
        timeout: Duration,
    },
    /// Restore the snapshot whose key matches this setup (then the start is warm), else start cold.
    RestoreSnapshot {
        /// The snapshot store.
        store: PathBuf,
        /// The stack directory it is restored into.
        stack: PathBuf,
        /// The binaries whose build stamp, size and modification time are part of the key.
        binaries: Vec<PathBuf>,
    },
    /// Save the clean "stack ready" state as a snapshot (cold starts only).
    SaveSnapshot {
        /// The snapshot store.
        store: PathBuf,
        /// The stack directory.
        stack: PathBuf,
        /// As in [`LocalOp::RestoreSnapshot`].
        binaries: Vec<PathBuf>,
    },
    /// Refresh the health lease Kyverno's webhook controller watches (warm starts only): with an
    /// annotation older than its idle deadline, Kyverno does not update its webhooks for a new policy.
    RefreshHealthLease {
        /// The lease's namespace.
        namespace: String,
        /// The lease.
        name: String,
    },
    /// Stop a component: SIGTERM, SIGCONT, SIGKILL after the grace period.
    Stop {
        /// The component.
        name: String,
        /// The grace period.
        #[serde(serialize_with = "dur")]
        grace: Duration,
    },
}

impl std::fmt::Display for LocalOp {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            LocalOp::Credentials { dir, kubeconfig, .. } => {
                write!(
                    f,
                    "generate the run's CA, serving certs, SA key pair and admin token in {} (kubeconfig {})",
                    dir.display(),
                    kubeconfig.display()
                )
            }
            LocalOp::Start { spawn, ready, .. } => {
                write!(f, "start {}", spawn.program.display())?;
                for a in &spawn.args {
                    write!(f, " {}", crate::tools::quote(a))?;
                }
                write!(f, "   (ready: {})", ready_text(ready))
            }
            LocalOp::PrepareKyvernoChart { kyverno_module, api_module, chart } => write!(
                f,
                "copy {}/charts/kyverno to {}, add {}/charts/kyverno-api, drop openreports and reports-server from Chart.yaml",
                kyverno_module.display(),
                chart.display(),
                api_module.display()
            ),
            LocalOp::StartFromChart {
                program,
                namespace,
                deployment,
                container,
                args,
                env,
                ready,
                in_cluster_files,
                ..
            } => {
                write!(
                    f,
                    "start {} with the args and env of Deployment {namespace}/{deployment} container {container}",
                    program.display()
                )?;
                if !args.is_empty() {
                    write!(f, ", then {}", args.join(" "))?;
                }
                if !env.is_empty() {
                    let e: Vec<String> = env.iter().map(|(k, v)| format!("{k}={v}")).collect();
                    write!(f, ", env {}", e.join(" "))?;
                }
                if *in_cluster_files {
                    f.write_str(", in-cluster ServiceAccount files on the private /run")?;
                }
                write!(f, "   (ready: {})", ready_text(ready))
            }
            LocalOp::RestoreSnapshot { store, stack, binaries } => write!(
                f,
                "restore into {} the snapshot in {} keyed by this setup's actions and the build stamp, size and \
                 mtime of {} (0700, credentials 0600, at most {} days old); without one, start cold",
                stack.display(),
                store.display(),
                names(binaries),
                super::snapshot::MAX_AGE.as_secs() / 86400
            ),
            LocalOp::SaveSnapshot { store, stack, .. } => write!(
                f,
                "save {} (etcd data copied while etcd is stopped with SIGSTOP, PKI, admin kubeconfig) as a snapshot in \
                 {}, keeping the newest {}",
                stack.display(),
                store.display(),
                super::snapshot::KEEP
            ),
            LocalOp::RefreshHealthLease { namespace, name } => {
                write!(f, "set kyverno.io/last-request-time of Lease {namespace}/{name} to now")
            }
            LocalOp::Stop { name, grace } => {
                write!(f, "stop {name} (SIGTERM, SIGCONT, SIGKILL after {})", crate::duration::format(*grace))
            }
        }
    }
}

fn names(paths: &[PathBuf]) -> String {
    paths.iter().filter_map(|p| p.file_name()).map(|n| n.to_string_lossy()).collect::<Vec<_>>().join(", ")
}

fn ready_text(r: &Ready) -> String {
    match r {
        Ready::Listening { port } => format!("127.0.0.1:{port} accepts connections"),
        Ready::ApiServer => "GET /readyz answers 200".into(),
        Ready::ServiceAccount { namespace, name } => format!("ServiceAccount {namespace}/{name} exists"),
        Ready::Webhooks { kind, name } => format!("{kind} {name} exists with loopback URLs"),
        Ready::All { all } => all.iter().map(ready_text).collect::<Vec<_>>().join(", and "),
    }
}

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
            let pid = table.pid("etcd").ok_or("etcd is not running: nothing to snapshot")?;
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
            let pki = super::pki::Pki::generate(dir)?;
            let ca = std::fs::read_to_string(pki.ca_crt()).map_err(|e| e.to_string())?;
            let token = std::fs::read_to_string(pki.admin_token()).map_err(|e| e.to_string())?;
            super::pki::write_private(kubeconfig, &super::components::kubeconfig(server, &ca, token.trim()))
        }
        LocalOp::Start { spawn, ready, timeout } => {
            if spawn.name == "etcd"
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
                super::pki::write_private(k, &super::components::kubeconfig(server, &ca_pem, &token))?;
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

/// What a scenario left on a shared stack: webhook configurations other than Kyverno's, namespaces
/// other than the system ones and Kyverno's, any ClusterPolicy, any Helm release but Kyverno's. Empty
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
    // Helm 3 stores each release revision as a Secret labelled owner=helm, named sh.helm.release.v1.<release>.v<N>.
    // upstream: helm/helm pkg/storage/driver/secrets.go@v3.21.4 (`owner=helm` label, key format).
    let path = "/api/v1/secrets?labelSelector=owner%3Dhelm";
    let found = api.get_json(path).await;
    list(path, "Helm release secret", &|ns, n| ns == "kyverno" && n.starts_with("sh.helm.release.v1.kyverno."), found);
    if errors.is_empty() { Ok(out) } else { Err(errors.join("; ")) }
}
