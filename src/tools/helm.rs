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

/// `helm uninstall kyverno -n kyverno --wait --timeout 4m`: shorter than the runner's teardown limit
/// (5m), so Helm reports its own last state first.
pub fn uninstall_kyverno() -> CommandLine {
    CommandLine::new(Tool::Helm).args(["uninstall", "kyverno", "-n", "kyverno", "--wait", "--timeout", "4m"])
}

/// The local provider's Kyverno install: the chart directory prepared from the Kyverno module, no
/// `--wait` (nothing becomes ready without a kubelet; readiness is Kyverno's webhook, checked after
/// it starts on the host), the same controllers switched off (facts.md §7).
pub fn install_kyverno_local(chart_dir: &Path, values: Option<&Path>) -> CommandLine {
    let mut c = CommandLine::new(Tool::Helm)
        .args(["install", "kyverno"])
        .args([chart_dir.display().to_string()])
        .args(["-n", "kyverno", "--create-namespace"])
        .args(["--set", "backgroundController.enabled=false", "--set", "cleanupController.enabled=false"]);
    if let Some(v) = values {
        c = c.args(["--values".to_string(), v.display().to_string()]);
    }
    c
}

/// `helm package DIR --version X --app-version X -d OUT`: the Telepresence chart as its CLI packages it
/// (its `Chart.yaml` carries a placeholder version; facts.md §7).
// upstream: helm/helm cmd/helm/package.go@v3.21.4 (`--version`, `--app-version`, `--destination/-d`).
pub fn package(chart_dir: &Path, version: &str, out_dir: &Path) -> CommandLine {
    CommandLine::new(Tool::Helm).args([
        "package".to_string(),
        chart_dir.display().to_string(),
        "--version".into(),
        version.into(),
        "--app-version".into(),
        version.into(),
        "-d".into(),
        out_dir.display().to_string(),
    ])
}

/// The local provider's Telepresence install: Helm directly with what `telepresence helm install`
/// adds under a default config (registry and tag), the scenario's values, and the post-renderer that
/// points the injector webhook at loopback (facts.md §7). No `--wait`: nothing runs without a kubelet.
// upstream: helm/helm cmd/helm/flags.go@v3.21.4 (`--post-renderer`, `--post-renderer-args`, repeatable).
pub fn install_telepresence_local(
    chart: &Path,
    manager_ns: &str,
    version: &str,
    values: Option<&Path>,
    post_renderer: &Path,
    post_renderer_args: &[String],
) -> CommandLine {
    let mut c = CommandLine::new(Tool::Helm)
        .args(["install", "traffic-manager"])
        .args([chart.display().to_string()])
        .args(["-n", manager_ns, "--create-namespace"])
        .args(["--set", "image.registry=ghcr.io/telepresenceio"])
        .args(["--set".to_string(), format!("image.tag={version}")]);
    if let Some(v) = values {
        c = c.args(["--values".to_string(), v.display().to_string()]);
    }
    c = c.args(["--post-renderer".to_string(), post_renderer.display().to_string()]);
    for a in post_renderer_args {
        c = c.args(["--post-renderer-args".to_string(), a.clone()]);
    }
    c
}

/// `helm uninstall NAME -n NS --no-hooks --wait --timeout 2m`: the reset of a scenario on the local
/// provider's shared stack (uninstall hooks are Jobs, which never run without a kubelet; facts.md §7).
// upstream: helm/helm cmd/helm/uninstall.go@v3.21.4 (`--no-hooks`, `--wait`, `--timeout`).
pub fn uninstall_no_hooks(release: &str, namespace: &str) -> CommandLine {
    CommandLine::new(Tool::Helm).args([
        "uninstall",
        release,
        "-n",
        namespace,
        "--no-hooks",
        "--wait",
        "--timeout",
        "2m",
    ])
}
