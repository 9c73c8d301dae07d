//! The existing-cluster provider: a given kubeconfig and context. It never creates or deletes the
//! cluster; the run touches only namespaces and cluster-scoped objects labelled as kyvtel's
//! (`kube::ownership`), and refuses to replace a ClusterPolicy that is not (issue 4).

use std::path::{Path, PathBuf};

use super::{Cluster, ClusterProvider, Ensured, ProviderError, ProviderFuture};

/// A cluster kyvtel did not create.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExistingProvider {
    kubeconfig: PathBuf,
    context: Option<String>,
}

impl ExistingProvider {
    /// A provider for `kubeconfig` (`--kubeconfig`) and `context` (`--context`; `None` = current).
    pub fn new(kubeconfig: impl Into<PathBuf>, context: Option<String>) -> Self {
        ExistingProvider { kubeconfig: kubeconfig.into(), context }
    }
}

impl ClusterProvider for ExistingProvider {
    fn name(&self) -> &'static str {
        "existing"
    }

    fn owns_cluster(&self) -> bool {
        false
    }

    /// Checks that the kubeconfig file exists; never creates anything. `created` is always false.
    fn ensure(&self) -> ProviderFuture<'_, Ensured> {
        Box::pin(async move {
            if !self.kubeconfig.is_file() {
                return Err(ProviderError::Invalid(format!(
                    "--kubeconfig {} does not exist or is not a file",
                    self.kubeconfig.display()
                )));
            }
            let name = self.context.clone().unwrap_or_else(|| "existing".to_string());
            let cluster = Cluster { name, kubeconfig: self.kubeconfig.clone(), context: self.context.clone() };
            Ok(Ensured { cluster, created: false })
        })
    }

    /// Does nothing: kyvtel never deletes a cluster it does not own.
    fn delete(&self) -> ProviderFuture<'_, ()> {
        Box::pin(async { Ok(()) })
    }

    fn can_load_images(&self) -> bool {
        false
    }

    fn load_images<'a>(&'a self, _images: &'a [String]) -> ProviderFuture<'a, ()> {
        Box::pin(async { Err(ProviderError::Unsupported { provider: "existing", operation: "load images" }) })
    }

    fn export_logs<'a>(&'a self, _dir: &'a Path) -> ProviderFuture<'a, ()> {
        Box::pin(async { Err(ProviderError::Unsupported { provider: "existing", operation: "export node logs" }) })
    }
}
