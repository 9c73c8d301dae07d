//! Cluster providers that run outside the plan. What each provider contributes to a plan (kind's
//! cluster, the local stack's components) lives in [`crate::plan::providers`], so that `kyvtel plan`
//! prints it and the executor runs it; here are only what a plan cannot hold:
//! - [`k3s::K3sProvider`]: a privileged `rancher/k3s` container through testcontainers, started before
//!   the plan runs (the [`ClusterProvider`] trait);
//! - [`local`]: the local provider's builds, confinement and component processes.
//!
//! Every provider yields a [`Cluster`]: a run-private kubeconfig file (never `~/.kube/config`) and an
//! optional context, from which [`Cluster::client`] builds the kube client.

pub mod k3s;
pub mod local;

use std::future::Future;
use std::path::{Path, PathBuf};
use std::pin::Pin;

use crate::kube::KubeError;
use crate::tools::RunError;

/// A cluster a run can talk to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cluster {
    /// The cluster name (kind cluster name, k3s container label, or the context for `existing`).
    pub name: String,
    /// The kubeconfig file every tool gets as `KUBECONFIG` (run-private for kind and k3s).
    pub kubeconfig: PathBuf,
    /// The context to use; `None` means the file's current context.
    pub context: Option<String>,
}

impl Cluster {
    /// A kube client for this cluster.
    ///
    /// # Errors
    /// [`KubeError::Kubeconfig`] when the file or context cannot be used.
    pub async fn client(&self) -> Result<::kube::Client, KubeError> {
        crate::kube::client_for(&self.kubeconfig, self.context.as_deref()).await
    }
}

/// What [`ClusterProvider::ensure`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ensured {
    /// The cluster.
    pub cluster: Cluster,
    /// `true` when this call created it; `false` when it existed (reuse, or an existing cluster). A
    /// reused cluster must pass the fingerprint check (`kube::fingerprint::ensure_reusable`).
    pub created: bool,
}

/// Errors of the providers.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ProviderError {
    /// A tool could not be run (not found, timed out, I/O).
    #[error(transparent)]
    Run(#[from] RunError),
    /// A tool ran and failed.
    #[error("`{command}` exited with {status}: {stderr}")]
    Failed {
        /// The command as displayed.
        command: String,
        /// Its exit status (`signal` when killed).
        status: String,
        /// The tail of its standard error.
        stderr: String,
    },
    /// A file could not be read or written.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// The provider was configured wrongly (e.g. a node image without a digest).
    #[error("{0}")]
    Invalid(String),
    /// The operation does not exist for this provider.
    #[error("the {provider} provider cannot {operation}")]
    Unsupported {
        /// The provider.
        provider: &'static str,
        /// What was asked.
        operation: &'static str,
    },
    /// The container runtime (testcontainers) failed.
    #[error("container: {0}")]
    Container(String),
    /// The blocking task running a tool panicked or was cancelled.
    #[error("tool task: {0}")]
    Task(String),
}

impl ProviderError {
    pub(crate) fn io(path: &Path, source: std::io::Error) -> Self {
        ProviderError::Io { path: path.to_path_buf(), source }
    }
}

impl From<ProviderError> for crate::Error {
    fn from(e: ProviderError) -> Self {
        match e {
            ProviderError::Invalid(m) => crate::Error::Usage(m),
            ProviderError::Run(RunError::NotFound(tool)) => {
                crate::Error::Prerequisite(format!("{tool} not found (run `kyvtel tools install`)"))
            }
            ProviderError::Failed { command, status, stderr } => crate::Error::Tool {
                tool: command.split_whitespace().next().unwrap_or("tool").to_string(),
                phase: "cluster".to_string(),
                message: format!("`{command}` exited with {status}: {stderr}"),
            },
            other => crate::Error::infra("cluster provider", other),
        }
    }
}

/// A boxed future returned by [`ClusterProvider`] methods.
pub type ProviderFuture<'a, T> = Pin<Box<dyn Future<Output = Result<T, ProviderError>> + Send + 'a>>;

/// Where a run's cluster comes from. Object safe: use `Box<dyn ClusterProvider>`.
pub trait ClusterProvider: Send + Sync {
    /// `kind`, `k3s` or `existing`.
    fn name(&self) -> &'static str;

    /// Whether kyvtel created (or may create) this cluster and therefore may delete it.
    fn owns_cluster(&self) -> bool;

    /// Creates the cluster, or finds it when it already exists and reuse is allowed.
    fn ensure(&self) -> ProviderFuture<'_, Ensured>;

    /// Deletes the cluster. A provider that does not own its cluster does nothing.
    fn delete(&self) -> ProviderFuture<'_, ()>;

    /// Whether [`ClusterProvider::load_images`] is supported; otherwise the nodes pull images themselves.
    fn can_load_images(&self) -> bool;

    /// Preloads images that are already on the host into the cluster's nodes.
    fn load_images<'a>(&'a self, images: &'a [String]) -> ProviderFuture<'a, ()>;

    /// Writes the provider's own diagnostics (e.g. `kind export logs`) under `dir`.
    fn export_logs<'a>(&'a self, dir: &'a Path) -> ProviderFuture<'a, ()>;
}
