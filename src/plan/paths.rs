//! The run-private directory layout. Nothing a run writes lands outside it: never the user's
//! `~/.kube/config`, `~/.config/telepresence` or Helm repositories.

use std::path::{Path, PathBuf};

/// The files and directories of one run, under `target/kyvtel/<run-id>/` by default.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct RunPaths {
    /// The run directory.
    pub root: PathBuf,
}

impl RunPaths {
    /// The layout under `root`.
    pub fn new(root: impl Into<PathBuf>) -> Self {
        RunPaths { root: root.into() }
    }

    /// The run's own kubeconfig; passed as `KUBECONFIG` and to kind's `--kubeconfig`.
    pub fn kubeconfig(&self) -> PathBuf {
        self.root.join("kubeconfig")
    }

    /// Helm's cache, config and data homes.
    pub fn helm(&self) -> PathBuf {
        self.root.join("helm")
    }

    /// Telepresence's client config directory (holds `config.yml`).
    pub fn telepresence_config(&self) -> PathBuf {
        self.root.join("telepresence/config")
    }

    /// Telepresence's log directory.
    pub fn telepresence_logs(&self) -> PathBuf {
        self.root.join("telepresence/logs")
    }

    /// Where a scenario's evidence bundle is written on failure.
    pub fn evidence(&self, scenario: &str) -> PathBuf {
        self.root.join(scenario)
    }

    /// The environment every tool gets on top of the runner's allow-list.
    pub fn env(&self) -> Vec<(String, String)> {
        let s = |p: &Path| p.display().to_string();
        let helm = self.helm();
        vec![
            ("KUBECONFIG".into(), s(&self.kubeconfig())),
            ("HELM_CACHE_HOME".into(), s(&helm.join("cache"))),
            ("HELM_CONFIG_HOME".into(), s(&helm.join("config"))),
            ("HELM_DATA_HOME".into(), s(&helm.join("data"))),
            ("HELM_REPOSITORY_CONFIG".into(), s(&helm.join("config/repositories.yaml"))),
            ("HELM_REPOSITORY_CACHE".into(), s(&helm.join("cache/repository"))),
            // upstream facts.md §4: honoured by the released CLI and passed to the root daemon in argv.
            ("DEV_TELEPRESENCE_CONFIG_DIR".into(), s(&self.telepresence_config())),
            ("DEV_TELEPRESENCE_LOG_DIR".into(), s(&self.telepresence_logs())),
            // facts.md §4: telemetry off for older clients (newer ones read config.yml).
            ("SCOUT_DISABLE".into(), "1".into()),
        ]
    }
}
