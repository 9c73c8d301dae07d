//! The kind provider and the pure builders of every `kind` command line.
//!
//! The builders ([`create_cluster`], [`get_kubeconfig`], [`load_docker_image`], [`export_logs`],
//! [`delete_cluster`]) are what `kyvtel plan` prints and what [`KindProvider`] runs: one source of truth.
//! Forms, from facts.md §2 (kind v0.32.0 source):
//! - `kind create cluster --name N --config FILE --image IMG@sha256:... --kubeconfig RUNFILE --wait 120s`
//! - `kind get kubeconfig --name N`
//! - `kind load docker-image IMG --name N`
//! - `kind export logs DIR --name N`
//! - `kind delete cluster --name N --kubeconfig RUNFILE`
//!
//! `--kubeconfig` is passed to create **and** delete: without it kind edits `$KUBECONFIG` or
//! `~/.kube/config`. Every command also gets `KUBECONFIG=<run file>` in its environment, so nothing
//! kind runs can reach the user's kubeconfig.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use crate::tools::kind as tools_kind;
use crate::tools::{CommandLine, Output, Runner};

use super::{Cluster, ClusterProvider, Ensured, ProviderError, ProviderFuture};

/// Time allowed for `kind create cluster` beyond its own `--wait`.
pub const CREATE_SLACK: Duration = Duration::from_secs(300);
/// Time allowed for the other kind commands.
pub const COMMAND_TIMEOUT: Duration = Duration::from_secs(300);
/// kind's `--wait` for the control plane (facts.md §2: it waits only for the control plane).
pub const DEFAULT_WAIT: Duration = Duration::from_secs(120);

/// What a kind cluster is made of.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KindSpec {
    /// The cluster name (`--name`).
    pub name: String,
    /// The kind config file (`--config`), e.g. `kind-config/default.yaml`.
    pub config: PathBuf,
    /// The node image, pinned by digest: `kindest/node:vX@sha256:...`.
    pub node_image: String,
    /// The run-private kubeconfig file (`--kubeconfig` and `KUBECONFIG`).
    pub kubeconfig: PathBuf,
    /// `--wait` for the control plane.
    pub wait: Duration,
    /// Reuse an existing cluster of this name instead of failing on it (`--reuse`).
    pub reuse: bool,
}

impl KindSpec {
    /// Checks the spec: a non-empty name and a node image pinned by digest.
    ///
    /// # Errors
    /// [`ProviderError::Invalid`] naming the problem.
    pub fn validate(&self) -> Result<(), ProviderError> {
        if self.name.is_empty() {
            return Err(ProviderError::Invalid("kind cluster name is empty".into()));
        }
        if !self.node_image.contains("@sha256:") {
            return Err(ProviderError::Invalid(format!(
                "kind node image {} is not pinned by digest (expected IMAGE:TAG@sha256:...)",
                self.node_image
            )));
        }
        Ok(())
    }
}

fn path(p: &Path) -> String {
    p.display().to_string()
}

/// Whole seconds, rounded up, as kind's Go duration flag reads them: `120s`.
#[must_use]
pub fn go_seconds(d: Duration) -> String {
    let secs = d.as_secs() + u64::from(d.subsec_nanos() > 0);
    format!("{secs}s")
}

// The command lines themselves come from `crate::tools::kind`, the builders the plan prints, so
// that the provider and `kyvtel plan` can never disagree; the provider only adds `KUBECONFIG`.

/// `kind create cluster --name N --config FILE --image IMG --kubeconfig RUNFILE --wait <spec.wait>`.
pub fn create_cluster(spec: &KindSpec) -> CommandLine {
    tools_kind::create(&spec.name, &spec.config, &spec.node_image, &spec.kubeconfig, &go_seconds(spec.wait))
        .env("KUBECONFIG", path(&spec.kubeconfig))
}

/// `kind get kubeconfig --name N` (prints the kubeconfig on stdout).
pub fn get_kubeconfig(name: &str, kubeconfig: &Path) -> CommandLine {
    tools_kind::get_kubeconfig(name).env("KUBECONFIG", path(kubeconfig))
}

/// `kind load docker-image IMG --name N`.
pub fn load_docker_image(image: &str, name: &str, kubeconfig: &Path) -> CommandLine {
    tools_kind::load_image(name, image).env("KUBECONFIG", path(kubeconfig))
}

/// `kind export logs DIR --name N`.
pub fn export_logs(dir: &Path, name: &str, kubeconfig: &Path) -> CommandLine {
    tools_kind::export_logs(name, dir).env("KUBECONFIG", path(kubeconfig))
}

/// `kind delete cluster --name N --kubeconfig RUNFILE`.
pub fn delete_cluster(name: &str, kubeconfig: &Path) -> CommandLine {
    tools_kind::delete(name, kubeconfig).env("KUBECONFIG", path(kubeconfig))
}

/// The kind provider: runs the builders' commands through a [`Runner`].
pub struct KindProvider {
    spec: KindSpec,
    runner: Arc<dyn Runner>,
}

impl std::fmt::Debug for KindProvider {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KindProvider").field("spec", &self.spec).finish_non_exhaustive()
    }
}

impl KindProvider {
    /// A provider for `spec`, running kind with `runner`.
    ///
    /// # Errors
    /// [`ProviderError::Invalid`] when the spec is invalid ([`KindSpec::validate`]).
    pub fn new(spec: KindSpec, runner: Arc<dyn Runner>) -> Result<Self, ProviderError> {
        spec.validate()?;
        Ok(KindProvider { spec, runner })
    }

    /// The spec.
    #[must_use]
    pub fn spec(&self) -> &KindSpec {
        &self.spec
    }

    /// The cluster this provider yields.
    #[must_use]
    pub fn cluster(&self) -> Cluster {
        Cluster { name: self.spec.name.clone(), kubeconfig: self.spec.kubeconfig.clone(), context: None }
    }

    /// Runs a command on a blocking thread (the Runner is synchronous).
    async fn run(&self, cmd: CommandLine, timeout: Duration) -> Result<Output, ProviderError> {
        let runner = Arc::clone(&self.runner);
        tokio::task::spawn_blocking(move || runner.run(&cmd, timeout))
            .await
            .map_err(|e| ProviderError::Task(e.to_string()))?
            .map_err(ProviderError::from)
    }

    /// Runs a command and fails unless it exits 0.
    async fn run_ok(&self, cmd: CommandLine, timeout: Duration) -> Result<Output, ProviderError> {
        let shown = cmd.to_string();
        let out = self.run(cmd, timeout).await?;
        if out.success() { Ok(out) } else { Err(failed(&shown, &out)) }
    }

    /// `kind get kubeconfig`, written to the run file. `Ok(false)` when kind reports no such cluster.
    async fn write_kubeconfig(&self) -> Result<bool, ProviderError> {
        let out = self.run(get_kubeconfig(&self.spec.name, &self.spec.kubeconfig), COMMAND_TIMEOUT).await?;
        if !out.success() {
            return Ok(false);
        }
        let file = &self.spec.kubeconfig;
        if let Some(dir) = file.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(|e| ProviderError::io(dir, e))?;
        }
        std::fs::write(file, out.stdout).map_err(|e| ProviderError::io(file, e))?;
        Ok(true)
    }
}

fn failed(command: &str, out: &Output) -> ProviderError {
    let tail: Vec<&str> = out.stderr.lines().rev().take(20).collect();
    ProviderError::Failed {
        command: command.to_string(),
        status: out.status.map_or_else(|| "signal".to_string(), |s| s.to_string()),
        stderr: tail.into_iter().rev().collect::<Vec<_>>().join("\n"),
    }
}

impl ClusterProvider for KindProvider {
    fn name(&self) -> &'static str {
        "kind"
    }

    fn owns_cluster(&self) -> bool {
        true
    }

    /// With `reuse`, a cluster that `kind get kubeconfig` finds is reused; otherwise (or when none
    /// exists) `kind create cluster` runs. Either way the run's kubeconfig is then written from
    /// `kind get kubeconfig` (issue 4: "the run's kubeconfig comes from `kind get kubeconfig`").
    fn ensure(&self) -> ProviderFuture<'_, Ensured> {
        Box::pin(async move {
            if self.spec.reuse && self.write_kubeconfig().await? {
                return Ok(Ensured { cluster: self.cluster(), created: false });
            }
            self.run_ok(create_cluster(&self.spec), self.spec.wait + CREATE_SLACK).await?;
            if !self.write_kubeconfig().await? {
                let shown = get_kubeconfig(&self.spec.name, &self.spec.kubeconfig).to_string();
                return Err(ProviderError::Failed {
                    command: shown,
                    status: "non-zero".into(),
                    stderr: "kind created the cluster but cannot print its kubeconfig".into(),
                });
            }
            Ok(Ensured { cluster: self.cluster(), created: true })
        })
    }

    fn delete(&self) -> ProviderFuture<'_, ()> {
        Box::pin(async move {
            self.run_ok(delete_cluster(&self.spec.name, &self.spec.kubeconfig), COMMAND_TIMEOUT).await.map(drop)
        })
    }

    fn can_load_images(&self) -> bool {
        true
    }

    fn load_images<'a>(&'a self, images: &'a [String]) -> ProviderFuture<'a, ()> {
        Box::pin(async move {
            for image in images {
                self.run_ok(load_docker_image(image, &self.spec.name, &self.spec.kubeconfig), COMMAND_TIMEOUT).await?;
            }
            Ok(())
        })
    }

    fn export_logs<'a>(&'a self, dir: &'a Path) -> ProviderFuture<'a, ()> {
        Box::pin(async move {
            self.run_ok(export_logs(dir, &self.spec.name, &self.spec.kubeconfig), COMMAND_TIMEOUT).await.map(drop)
        })
    }
}
