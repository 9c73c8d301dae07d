//! The real Helm charts, taken from the Go modules that are built anyway (facts.md §7).
//!
//! - Kyverno's chart (`charts/kyverno` in the Kyverno module) is not installable as shipped: Helm
//!   requires every dependency in `charts/` whatever its condition. The copy gets `kyverno-api` from
//!   the `github.com/kyverno/api` module version Kyverno requires, and drops the disabled
//!   `openreports` and `reports-server` dependencies from its `Chart.yaml`.
//! - Telepresence's chart (`charts/telepresence` up to 2.2x, `charts/telepresence-oss` in 2.31) has a
//!   placeholder version: it is packaged as the CLI does, `helm package DIR --version X --app-version X`.

use std::path::{Path, PathBuf};

use serde_json::Value;

/// The version `go.mod` requires for `module`.
#[must_use]
pub fn required_version(go_mod: &str, module: &str) -> Option<String> {
    go_mod.lines().map(str::trim).map(|l| l.trim_start_matches("require ")).find_map(|l| {
        let mut w = l.split_whitespace();
        if w.next() == Some(module) { w.next().map(str::to_string) } else { None }
    })
}

/// Copies `src` to `dst` recursively, writable (the module cache is read-only).
///
/// # Errors
/// An I/O error, naming the path.
pub fn copy_tree(src: &Path, dst: &Path) -> Result<(), String> {
    use std::os::unix::fs::PermissionsExt as _;
    let io = |p: &Path, e: std::io::Error| format!("{}: {e}", p.display());
    std::fs::create_dir_all(dst).map_err(|e| io(dst, e))?;
    std::fs::set_permissions(dst, std::fs::Permissions::from_mode(0o700)).map_err(|e| io(dst, e))?;
    for entry in std::fs::read_dir(src).map_err(|e| io(src, e))? {
        let entry = entry.map_err(|e| io(src, e))?;
        let (from, to) = (entry.path(), dst.join(entry.file_name()));
        let ty = entry.file_type().map_err(|e| io(&from, e))?;
        if ty.is_dir() {
            copy_tree(&from, &to)?;
        } else if ty.is_file() {
            std::fs::copy(&from, &to).map_err(|e| io(&from, e))?;
            std::fs::set_permissions(&to, std::fs::Permissions::from_mode(0o600)).map_err(|e| io(&to, e))?;
        }
    }
    Ok(())
}

/// The dependencies Helm cannot find in the shipped Kyverno chart; they are disabled by default.
pub const DROPPED_KYVERNO_DEPENDENCIES: [&str; 2] = ["openreports", "reports-server"];

/// `Chart.yaml` without the dropped dependencies.
///
/// # Errors
/// The file is not YAML.
pub fn without_dependencies(chart_yaml: &str, drop: &[&str]) -> Result<String, String> {
    let mut chart: Value = serde_saphyr::from_str(chart_yaml).map_err(|e| format!("Chart.yaml: {e}"))?;
    if let Some(deps) = chart.get_mut("dependencies").and_then(Value::as_array_mut) {
        deps.retain(|d| !d["name"].as_str().is_some_and(|n| drop.contains(&n)));
    }
    serde_json::to_string_pretty(&chart).map_err(|e| e.to_string())
}

/// Prepares the installable Kyverno chart under `dst` from the Kyverno and kyverno/api modules.
///
/// # Errors
/// A module directory is missing (with the `go mod download` that fetches it) or an I/O error.
pub fn prepare_kyverno(kyverno_module: &Path, api_module: &Path, dst: &Path) -> Result<PathBuf, String> {
    let src = kyverno_module.join("charts/kyverno");
    let api = api_module.join("charts/kyverno-api");
    for d in [&src, &api] {
        if !d.is_dir() {
            return Err(format!("{} is missing from Go's module cache", d.display()));
        }
    }
    if dst.exists() {
        std::fs::remove_dir_all(dst).map_err(|e| format!("{}: {e}", dst.display()))?;
    }
    copy_tree(&src, dst)?;
    copy_tree(&api, &dst.join("charts/kyverno-api"))?;
    let chart_yaml = dst.join("Chart.yaml");
    let text = std::fs::read_to_string(&chart_yaml).map_err(|e| format!("{}: {e}", chart_yaml.display()))?;
    let fixed = without_dependencies(&text, &DROPPED_KYVERNO_DEPENDENCIES)?;
    std::fs::write(&chart_yaml, fixed).map_err(|e| format!("{}: {e}", chart_yaml.display()))?;
    Ok(dst.to_path_buf())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn required_versions_are_read_from_block_and_single_lines() {
        let m = "module x\n\nrequire github.com/a/b v1.2.3\n\nrequire (\n\tgithub.com/kyverno/api v0.0.1-alpha.3 // indirect\n)\n";
        assert_eq!(required_version(m, "github.com/a/b").as_deref(), Some("v1.2.3"));
        assert_eq!(required_version(m, "github.com/kyverno/api").as_deref(), Some("v0.0.1-alpha.3"));
        assert_eq!(required_version(m, "github.com/kyverno"), None);
    }

    #[test]
    fn only_the_named_dependencies_are_dropped() {
        let y = "apiVersion: v2\nname: kyverno\ndependencies:\n  - name: crds\n    version: 1\n  - name: openreports\n    version: 0.1.0\n  - name: reports-server\n    version: 0.1.6\n";
        let out: Value =
            serde_json::from_str(&without_dependencies(y, &DROPPED_KYVERNO_DEPENDENCIES).unwrap()).unwrap();
        let names: Vec<&str> =
            out["dependencies"].as_array().unwrap().iter().map(|d| d["name"].as_str().unwrap()).collect();
        assert_eq!(names, ["crds"]);
        assert_eq!(out["name"], "kyverno");
    }
}
