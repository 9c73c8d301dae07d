//! The k3s provider: a privileged `rancher/k3s` container started with testcontainers 0.28.
//!
//! testcontainers-modules' k3s module needs testcontainers 0.27 and cannot be used next to 0.28
//! (facts.md §6), so the container is a `GenericImage`, configured as that module does:
//! privileged, host cgroup namespace, command `server --snapshotter=native`, ready when stderr
//! shows `Node controller sync successful`, API on container port 6443. The kubeconfig is read with
//! `exec` from `/etc/rancher/k3s/k3s.yaml` and its server URL rewritten to `https://127.0.0.1:<mapped port>`.
// upstream: testcontainers/testcontainers-rs-modules-community src/k3s/mod.rs (ready message on stderr,
//           cmd `server --snapshotter=native`, KUBE_SECURE_PORT 6443, server rewritten to 127.0.0.1:<port>)
// upstream: testcontainers/testcontainers-rs testcontainers-0.28.0 src/core/image/image_ext.rs
//           (with_privileged, with_cgroupns_mode, with_cmd, with_startup_timeout), src/core/containers/async_container/raw.rs
//           (exec, get_host_port_ipv4), src/images/generic.rs (GenericImage::new/with_wait_for/with_exposed_port)
//
//! The image is a **required** argument (`rancher/k3s:<tag>`): no k3s tag within Kyverno's supported
//! Kubernetes range (1.33–1.35, facts.md §1) could be sourced from upstream material here, so kyvtel
//! pins none. Nothing here can run without Docker; it is compiled, not exercised, on this machine.

use std::path::{Path, PathBuf};
use std::time::Duration;

use testcontainers::core::{CgroupnsMode, ContainerPort, ExecCommand, WaitFor};
use testcontainers::runners::AsyncRunner;
use testcontainers::{ContainerAsync, GenericImage, ImageExt};
use tokio::sync::Mutex;

use super::{Cluster, ClusterProvider, Ensured, ProviderError, ProviderFuture};

/// The k3s API server port inside the container.
pub const API_PORT: u16 = 6443;
/// The log line that marks k3s ready (on stderr).
pub const READY_MESSAGE: &str = "Node controller sync successful";
/// Where k3s writes its admin kubeconfig inside the container.
pub const KUBECONFIG_IN_CONTAINER: &str = "/etc/rancher/k3s/k3s.yaml";

/// What a k3s cluster is made of.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct K3sSpec {
    /// The image, `rancher/k3s:<tag>` (required; see the module docs).
    pub image: String,
    /// The run-private kubeconfig file to write.
    pub kubeconfig: PathBuf,
    /// How long the container may take to print [`READY_MESSAGE`].
    pub startup_timeout: Duration,
}

impl K3sSpec {
    /// The image split into repository and tag.
    ///
    /// # Errors
    /// [`ProviderError::Invalid`] when the image has no tag.
    pub fn repository_and_tag(&self) -> Result<(&str, &str), ProviderError> {
        let slash = self.image.rfind('/').map_or(0, |i| i + 1);
        match self.image[slash..].find(':') {
            Some(i) if slash + i + 1 < self.image.len() => Ok((&self.image[..slash + i], &self.image[slash + i + 1..])),
            _ => Err(ProviderError::Invalid(format!(
                "k3s image {:?} has no tag: pass rancher/k3s:<tag> (kyvtel pins no k3s version)",
                self.image
            ))),
        }
    }
}

/// Rewrites every cluster's server URL in a kubeconfig to `https://127.0.0.1:<port>` and returns the
/// file as JSON (valid YAML, read by kubectl, helm, telepresence and kube-rs).
///
/// # Errors
/// [`ProviderError::Invalid`] when the text is not a kubeconfig.
pub fn rewrite_kubeconfig(text: &str, port: u16) -> Result<String, ProviderError> {
    let mut config = ::kube::config::Kubeconfig::from_yaml(text)
        .map_err(|e| ProviderError::Invalid(format!("k3s kubeconfig: {e}")))?;
    for named in &mut config.clusters {
        if let Some(cluster) = named.cluster.as_mut() {
            cluster.server = Some(format!("https://127.0.0.1:{port}"));
        }
    }
    serde_json::to_string_pretty(&config).map_err(|e| ProviderError::Invalid(format!("k3s kubeconfig: {e}")))
}

/// The k3s provider. Holds the container; dropping the provider removes it (testcontainers).
pub struct K3sProvider {
    spec: K3sSpec,
    container: Mutex<Option<ContainerAsync<GenericImage>>>,
}

impl std::fmt::Debug for K3sProvider {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("K3sProvider").field("spec", &self.spec).finish_non_exhaustive()
    }
}

impl K3sProvider {
    /// A provider for `spec`.
    ///
    /// # Errors
    /// [`ProviderError::Invalid`] when the image has no tag.
    pub fn new(spec: K3sSpec) -> Result<Self, ProviderError> {
        spec.repository_and_tag()?;
        Ok(K3sProvider { spec, container: Mutex::new(None) })
    }

    async fn start(&self) -> Result<Ensured, ProviderError> {
        let (repository, tag) = self.spec.repository_and_tag()?;
        let container_err = |e: testcontainers::TestcontainersError| ProviderError::Container(e.to_string());
        let container = GenericImage::new(repository, tag)
            .with_exposed_port(ContainerPort::Tcp(API_PORT))
            .with_wait_for(WaitFor::message_on_stderr(READY_MESSAGE))
            .with_privileged(true)
            .with_cgroupns_mode(CgroupnsMode::Host)
            .with_cmd(["server", "--snapshotter=native"])
            .with_startup_timeout(self.spec.startup_timeout)
            .start()
            .await
            .map_err(container_err)?;
        let mut exec =
            container.exec(ExecCommand::new(["cat", KUBECONFIG_IN_CONTAINER])).await.map_err(container_err)?;
        let raw = exec.stdout_to_vec().await.map_err(container_err)?;
        let port = container.get_host_port_ipv4(ContainerPort::Tcp(API_PORT)).await.map_err(container_err)?;
        let text = rewrite_kubeconfig(&String::from_utf8_lossy(&raw), port)?;
        let file = &self.spec.kubeconfig;
        crate::tools::env::write_private(file, &text).map_err(|e| ProviderError::io(file, e))?;
        let name = container.id().to_string();
        *self.container.lock().await = Some(container);
        Ok(Ensured { cluster: Cluster { name, kubeconfig: file.clone(), context: None }, created: true })
    }
}

impl ClusterProvider for K3sProvider {
    fn name(&self) -> &'static str {
        "k3s"
    }

    fn owns_cluster(&self) -> bool {
        true
    }

    /// Starts a fresh container (k3s clusters are never reused: the container lives as long as this
    /// provider).
    fn ensure(&self) -> ProviderFuture<'_, Ensured> {
        Box::pin(self.start())
    }

    /// Removes the container (no-op when none was started).
    fn delete(&self) -> ProviderFuture<'_, ()> {
        Box::pin(async move {
            match self.container.lock().await.take() {
                Some(c) => c.rm().await.map_err(|e| ProviderError::Container(e.to_string())),
                None => Ok(()),
            }
        })
    }

    fn can_load_images(&self) -> bool {
        false
    }

    /// Not supported: the k3s node pulls images itself.
    fn load_images<'a>(&'a self, _images: &'a [String]) -> ProviderFuture<'a, ()> {
        Box::pin(async { Err(ProviderError::Unsupported { provider: "k3s", operation: "load images" }) })
    }

    fn export_logs<'a>(&'a self, _dir: &'a Path) -> ProviderFuture<'a, ()> {
        Box::pin(async { Err(ProviderError::Unsupported { provider: "k3s", operation: "export node logs" }) })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(image: &str) -> K3sSpec {
        K3sSpec { image: image.into(), kubeconfig: "k".into(), startup_timeout: Duration::from_secs(1) }
    }

    #[test]
    fn image_needs_a_tag() {
        assert_eq!(spec("rancher/k3s:v1.35.0-k3s1").repository_and_tag().unwrap(), ("rancher/k3s", "v1.35.0-k3s1"));
        assert_eq!(spec("localhost:5000/k3s:v1").repository_and_tag().unwrap(), ("localhost:5000/k3s", "v1"));
        assert!(spec("rancher/k3s").repository_and_tag().is_err());
        assert!(spec("rancher/k3s:").repository_and_tag().is_err());
    }

    #[test]
    fn kubeconfig_server_is_rewritten_to_the_mapped_port() {
        let k3s = "apiVersion: v1\nkind: Config\nclusters:\n- name: default\n  cluster:\n    server: https://127.0.0.1:6443\n    certificate-authority-data: Q0E=\ncontexts:\n- name: default\n  context: {cluster: default, user: default}\ncurrent-context: default\nusers:\n- name: default\n  user: {client-certificate-data: Q0VSVA==, client-key-data: S0VZ}\n";
        let out = rewrite_kubeconfig(k3s, 32768).unwrap();
        let back = ::kube::config::Kubeconfig::from_yaml(&out).unwrap();
        let cluster = back.clusters[0].cluster.as_ref().unwrap();
        assert_eq!(cluster.server.as_deref(), Some("https://127.0.0.1:32768"));
        assert_eq!(cluster.certificate_authority_data.as_deref(), Some("Q0E="));
        assert_eq!(back.current_context.as_deref(), Some("default"));
    }
}
