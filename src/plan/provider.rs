//! The provider is an input of the plan: `kyvtel plan --provider P` prints exactly the phases,
//! commands, processes and undo entries that `kyvtel run --provider P` executes. Each provider
//! contributes its setup phases in one file under `providers/`.

use std::path::PathBuf;

use serde::Serialize;

use super::providers::local::components::Ports;
use super::providers::local::paths;

/// Where a plan runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum Provider {
    /// A kind cluster kyvtel creates and deletes (Docker).
    #[default]
    Kind,
    /// A privileged k3s container through testcontainers (started before the plan runs).
    K3s,
    /// A given kubeconfig and context; never created or deleted.
    Existing,
    /// A real control plane, Kyverno and the Telepresence injector as host processes built from Go
    /// modules, in private namespaces; no kubelet.
    Local,
}

impl Provider {
    /// The name, as on the command line.
    #[must_use]
    pub fn name(self) -> &'static str {
        match self {
            Provider::Kind => "kind",
            Provider::K3s => "k3s",
            Provider::Existing => "existing",
            Provider::Local => "local",
        }
    }

    /// Whether cluster objects die with the run (a local stack of its own: its data directory is
    /// dropped), so no teardown entry deletes them one by one. A scenario on a cell's shared stack
    /// resets what it set up.
    #[must_use]
    pub fn drops_cluster_state(self, shared_stack: bool) -> bool {
        self == Provider::Local && !shared_stack
    }

    /// Why a step that needs a running pod cannot run here, if it cannot.
    #[must_use]
    pub fn no_kubelet(self) -> Option<&'static str> {
        (self == Provider::Local).then_some("local provider: no kubelet")
    }
}

/// Where the local provider finds its binaries and charts, and how it runs (what `kyvtel plan
/// --provider local` prints).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LocalPaths {
    /// The built binaries (`.tools/local` under the repository root).
    pub bin: PathBuf,
    /// Go's module cache, holding the charts of the modules built.
    pub module_cache: PathBuf,
    /// kyvtel itself, the Helm post-renderer of the Telepresence install.
    pub kyvtel: PathBuf,
    /// The stack a scenario joins (a cell's `local/` directory); `None`: its own, `<run_dir>/local`.
    pub stack: Option<PathBuf>,
    /// The store of "stack ready" snapshots for warm starts; `None` (`--cold`, `--unconfined`): every
    /// start is cold.
    pub snapshots: Option<PathBuf>,
    /// The listeners' loopback ports: fixed inside the run's namespaces, picked free when unconfined.
    pub ports: Ports,
    /// `--unconfined`: no private namespaces (see [`UNCONFINED`]).
    pub unconfined: bool,
}

/// Why an unconfined run does not start the traffic-manager, so skips every step that needs its
/// injector. client-go's `rest.InClusterConfig` reads a fixed path
/// (upstream: kubernetes/client-go rest/config.go, `tokenFile = "/var/run/secrets/kubernetes.io/serviceaccount/token"`),
/// and the traffic-manager has no other way in (upstream: telepresenceio/telepresence
/// cmd/traffic/cmd/manager/manager.go@v2.31.0, `rest.InClusterConfig()`; facts.md §7).
pub const UNCONFINED: &str = "unconfined: the traffic-manager is not started (it reads its credentials from \
/var/run/secrets/kubernetes.io/serviceaccount, a fixed path, and kyvtel writes there only on the private /run of a \
confined run, never the host's), so nothing injects the agent";

impl Default for LocalPaths {
    /// What `kyvtel plan` prints: placeholders a reader can map.
    fn default() -> Self {
        LocalPaths {
            bin: ".tools/local".into(),
            module_cache: "$GOMODCACHE".into(),
            kyvtel: "kyvtel".into(),
            stack: None,
            snapshots: Some(".tools/local/snapshots".into()),
            ports: Ports::CONFINED,
            unconfined: false,
        }
    }
}

impl LocalPaths {
    /// The paths of this machine: `bin` under `root`, Go's module cache, this executable, and the
    /// snapshot store beside the binaries (its keys cover them), or none when every start is `cold`.
    #[must_use]
    pub fn detect(root: &std::path::Path, cold: bool) -> LocalPaths {
        let bin = root.join(paths::OUT_DIR);
        LocalPaths {
            snapshots: (!cold).then(|| bin.join("snapshots")),
            bin,
            module_cache: paths::module_cache(),
            kyvtel: std::env::current_exe().unwrap_or_else(|_| "kyvtel".into()),
            stack: None,
            ports: Ports::CONFINED,
            unconfined: false,
        }
    }

    /// Unconfined (`ports` picked free): every start cold, since a snapshot's webhooks name its ports.
    #[must_use]
    pub fn unconfined(self, ports: Ports) -> LocalPaths {
        LocalPaths { snapshots: None, ports, unconfined: true, ..self }
    }
}
