//! Telepresence command lines, per version (facts.md §4).

use std::path::Path;

use super::{CommandLine, Tool};
use crate::scenario::version::Version;

fn v(s: &str) -> Version {
    Version::parse(s).unwrap_or_else(|| Version::parse("0").expect("0 parses"))
}

/// `telepresence helm install --manager-namespace NS [--values FILE] [--set usage.enabled=false]`;
/// the namespace is always explicit (`-n APPNS` would install the manager into the app namespace).
/// The manager's telemetry is off where the version's chart has the key (from 2.29; older charts
/// reject unknown keys under their strict schema from 2.22; facts.md §4). `--set` comes after the
/// scenario's values, so it wins.
// upstream: telepresenceio/telepresence charts/telepresence-oss/values.yaml@v2.31.0:333-344 (`usage.enabled`).
pub fn helm_install(manager_ns: &str, values: Option<&Path>, version: &Version) -> CommandLine {
    let mut c = CommandLine::new(Tool::Telepresence).args(["helm", "install", "--manager-namespace", manager_ns]);
    if let Some(f) = values {
        c = c.args(["--values".to_string(), f.display().to_string()]);
    }
    if super::env::has_usage_key(version) {
        c = c.args(["--set", "usage.enabled=false"]);
    }
    c
}

/// `telepresence helm uninstall --manager-namespace NS [--no-hooks]`. `--no-hooks` cleans up
/// after a failed atomic install whose rollback hooks were denied.
// upstream: telepresenceio/telepresence pkg/client/cli/cmd/helm.go (helmUninstall: `--no-hooks`,
// connect flags from daemon.InitRequest as for install).
pub fn helm_uninstall(manager_ns: &str, no_hooks: bool) -> CommandLine {
    let c = CommandLine::new(Tool::Telepresence).args(["helm", "uninstall", "--manager-namespace", manager_ns]);
    if no_hooks { c.args(["--no-hooks"]) } else { c }
}

/// `telepresence connect -n APPNS --manager-namespace NS`.
pub fn connect(app_ns: &str, manager_ns: &str) -> CommandLine {
    CommandLine::new(Tool::Telepresence).args(["connect", "-n", app_ns, "--manager-namespace", manager_ns])
}

/// `telepresence status` with machine-readable output: `--output json` up to 2.28, `--format json`
/// from 2.29 (the flags are mutually exclusive).
pub fn status_json(version: &Version) -> CommandLine {
    let flag = if *version >= v("2.29") { "--format" } else { "--output" };
    CommandLine::new(Tool::Telepresence).args(["status", flag, "json"])
}

/// `telepresence intercept WORKLOAD --port LOCAL[:SVCPORT] --mount=false`. The intercept is named
/// after the workload (no `--workload`), so `leave`/`detach` takes the workload name.
// upstream: telepresenceio/telepresence pkg/client/cli/intercept (flag `--workload`/`-w`: "Name of
// workload (Deployment, ReplicaSet) to intercept, if different from <name>").
pub fn intercept(workload: &str, port: u16, service_port: Option<u16>) -> CommandLine {
    let port = match service_port {
        Some(s) => format!("{port}:{s}"),
        None => port.to_string(),
    };
    CommandLine::new(Tool::Telepresence).args(["intercept", workload, "--port"]).args([port]).args(["--mount=false"])
}

/// `telepresence leave NAME` up to 2.29, `telepresence detach NAME` from 2.30 (leave is a hidden,
/// deprecated alias there).
// upstream: telepresenceio/telepresence pkg/client/cli/cmd/detach.go (`detach [flags] <attachment_name>`).
pub fn leave(version: &Version, name: &str) -> CommandLine {
    let verb = if *version >= v("2.30") { "detach" } else { "leave" };
    CommandLine::new(Tool::Telepresence).args([verb, name])
}

/// `telepresence quit -s`: stops the machine-wide daemons.
pub fn quit() -> CommandLine {
    CommandLine::new(Tool::Telepresence).args(["quit", "-s"])
}

/// `telepresence gather-logs -o FILE.zip`.
pub fn gather_logs(zip: &Path) -> CommandLine {
    CommandLine::new(Tool::Telepresence).args(["gather-logs".to_string(), "-o".into(), zip.display().to_string()])
}

/// `sudo -n true`: probes passwordless sudo for the root daemon.
pub fn sudo_probe() -> CommandLine {
    CommandLine::new(Tool::Sudo).args(["-n", "true"])
}

/// The agent/manager image for a Telepresence version: `docker.io/datawire/tel2` up to 2.19,
/// `ghcr.io/telepresenceio/tel2` from 2.20 (facts.md §4). The tag is the bare version, no `v`.
// upstream: telepresenceio/telepresence docs, `telepresence genyaml config` (`--agent-image` default
// "ghcr.io/telepresenceio/tel2:2.24.1"); cmd/traffic manager tests use "ghcr.io/telepresenceio/tel2:2.32.0".
pub fn image(version: &Version) -> String {
    let repo = if *version >= v("2.20") { "ghcr.io/telepresenceio/tel2" } else { "docker.io/datawire/tel2" };
    format!("{repo}:{version}")
}

/// The traffic-manager workload kind: `Deployment` up to 2.31, `StatefulSet` from 2.32.
pub fn manager_kind(version: &Version) -> &'static str {
    if *version >= v("2.32") { crate::names::kind::STATEFUL_SET } else { crate::names::kind::DEPLOYMENT }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn version_dependent_flags() {
        assert_eq!(status_json(&v("2.28.0")).to_string(), "telepresence status --output json");
        assert_eq!(status_json(&v("2.29.0")).to_string(), "telepresence status --format json");
        assert_eq!(leave(&v("2.29.3"), "demo").to_string(), "telepresence leave demo");
        assert_eq!(leave(&v("2.30.0"), "demo").to_string(), "telepresence detach demo");
        assert_eq!(image(&v("2.19.1")), "docker.io/datawire/tel2:2.19.1");
        assert_eq!(image(&v("2.32.1")), "ghcr.io/telepresenceio/tel2:2.32.1");
        assert_eq!(manager_kind(&v("2.31.2")), "Deployment");
        assert_eq!(manager_kind(&v("2.32.0")), "StatefulSet");
    }

    #[test]
    fn intercept_always_disables_mounts() {
        assert_eq!(
            intercept("demo", 8080, Some(80)).to_string(),
            "telepresence intercept demo --port 8080:80 --mount=false"
        );
    }
}
