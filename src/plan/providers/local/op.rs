//! The local provider's typed plan operations ([`LocalOp`]): what `kyvtel plan --provider local`
//! prints and the executor runs (`provider::local::op::run`).

use std::path::PathBuf;
use std::time::Duration;

use serde::Serialize;

use super::components::Spawn;

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
        #[serde(serialize_with = "crate::duration::serialize")]
        timeout: Duration,
    },
    /// Copy Kyverno's chart out of its module and make it installable (see `provider::local::charts`).
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
        #[serde(serialize_with = "crate::duration::serialize")]
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
        #[serde(serialize_with = "crate::duration::serialize")]
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

/// What `r` waits for, in words.
#[must_use]
pub fn ready_text(r: &Ready) -> String {
    match r {
        Ready::Listening { port } => format!("127.0.0.1:{port} accepts connections"),
        Ready::ApiServer => "GET /readyz answers 200".into(),
        Ready::ServiceAccount { namespace, name } => format!("ServiceAccount {namespace}/{name} exists"),
        Ready::Webhooks { kind, name } => format!("{kind} {name} exists with loopback URLs"),
        Ready::All { all } => all.iter().map(ready_text).collect::<Vec<_>>().join(", and "),
    }
}
