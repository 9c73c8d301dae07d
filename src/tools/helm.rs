//! Helm command lines for Kyverno (facts.md §3): installed from the downloaded, verified chart
//! tgz, so the pin is real.

use std::path::Path;

use super::{CommandLine, Tool};

/// `helm install kyverno <chart.tgz> -n kyverno --create-namespace --wait --timeout 10m ...`.
/// The background and cleanup controllers are switched off for a small cluster; the reports
/// controller is kept.
pub fn install_kyverno(chart: &Path, values: Option<&Path>) -> CommandLine {
    let mut c = CommandLine::new(Tool::Helm)
        .args(["install", "kyverno"])
        .args([chart.display().to_string()])
        .args(["-n", "kyverno", "--create-namespace", "--wait", "--timeout", "10m"])
        .args(["--set", "backgroundController.enabled=false", "--set", "cleanupController.enabled=false"]);
    if let Some(v) = values {
        c = c.args(["--values".to_string(), v.display().to_string()]);
    }
    c
}

/// `helm uninstall kyverno -n kyverno --wait --timeout 5m`.
pub fn uninstall_kyverno() -> CommandLine {
    CommandLine::new(Tool::Helm).args(["uninstall", "kyverno", "-n", "kyverno", "--wait", "--timeout", "5m"])
}
