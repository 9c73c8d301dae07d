//! Checks that a scenario means something: parts that validate against the schema but assert
//! nothing, can never pass, or ask for something absurd are refused at load time, each with why.

use std::path::Path;

use serde_json::Value;

use super::expect::PodExpectation;
use super::pins::{NodeImage, Pins};
use super::version::{Version, VersionReq};

/// The most pods a workload manifest may ask for: one is what every scenario needs, a few cover
/// rollouts; more only fills the cluster.
pub const MAX_REPLICAS: u64 = 10;

/// The kind config must be a kind `Cluster` config (`kind: Cluster`, `apiVersion:
/// kind.x-k8s.io/...`): kind reads nothing else.
pub fn kind_config(path: &Path) -> Result<(), String> {
    let src = crate::input::read(path).map_err(|e| reason(&e))?;
    let docs = crate::yaml::documents(path, &src).map_err(|e| reason(&e))?;
    let want = "not a kind Cluster config (expected `kind: Cluster` and `apiVersion: kind.x-k8s.io/v1alpha4`)";
    match docs.as_slice() {
        [doc]
            if doc.value["kind"] == "Cluster"
                && doc.value["apiVersion"].as_str().is_some_and(|a| a.starts_with("kind.x-k8s.io/")) =>
        {
            Ok(())
        }
        [] => Err("the file is empty".into()),
        _ => Err(want.into()),
    }
}

/// A workload document's `spec.replicas`, when present, is a count from 0 to [`MAX_REPLICAS`].
pub fn replicas(doc: &Value) -> Result<(), String> {
    match &doc["spec"]["replicas"] {
        Value::Null => Ok(()),
        Value::Number(n) if n.as_u64().is_some_and(|n| n <= MAX_REPLICAS) => Ok(()),
        Value::Number(n) if n.as_u64().is_some() => {
            Err(format!("spec.replicas {n} is more than the {MAX_REPLICAS} a scenario may create"))
        }
        other => Err(format!("spec.replicas must be a whole number from 0 to {MAX_REPLICAS}, not {other}")),
    }
}

/// Problems of one pod expectation group: `(JSON pointer below the group, message)`.
pub fn pod_expectation(g: &PodExpectation) -> Vec<(String, String)> {
    let mut out = Vec::new();
    if g.containers.as_ref().is_some_and(Vec::is_empty) {
        out.push((
            "/containers".into(),
            "an empty container list can never hold: a pod has at least one container".into(),
        ));
    }
    let asserts = g.containers.is_some()
        || g.pod_security_context.is_some()
        || !g.security_contexts.is_empty()
        || !g.init_containers.is_empty()
        || g.only_privileged.is_some();
    if !asserts {
        out.push((
            String::new(),
            "this expectation group asserts nothing: give containers, podSecurityContext, securityContexts, \
             initContainers or onlyPrivileged"
                .into(),
        ));
    }
    out
}

/// Whether some pinned version (for kind or the local provider) satisfies `req` on `field`
/// (`telepresence`, `kyverno` or `kubernetes`); a condition none satisfies can never hold.
pub fn satisfiable(pins: &Pins, field: &str, written: &str, req: &VersionReq) -> Result<(), String> {
    let known = pinned(pins, field);
    if known.iter().filter_map(|v| Version::parse(v)).any(|v| req.matches(&v)) {
        return Ok(());
    }
    Err(format!(
        "no pinned {field} version satisfies `{written}` (pinned: {}), so this condition can never hold",
        known.join(", ")
    ))
}

/// Every pinned version of `field`, kind's and the local provider's, sorted and unique.
fn pinned(pins: &Pins, field: &str) -> Vec<String> {
    let local_binary =
        |name: &str| pins.local.binaries.get(name).map(|b| b.version.trim_start_matches('v').to_string());
    let mut v: Vec<String> = match field {
        "telepresence" => pins.telepresence.releases.keys().chain(pins.local.telepresence.keys()).cloned().collect(),
        "kyverno" => pins
            .kyverno_chart
            .releases
            .values()
            .filter_map(|r| r.app_version.as_deref().map(|a| a.trim_start_matches('v').to_string()))
            .chain(local_binary("kyverno"))
            .collect(),
        "kubernetes" => pins
            .kind
            .releases
            .values()
            .flat_map(|r| &r.node_images)
            .filter_map(|i| NodeImage::parse(i).ok().map(|n| n.kubernetes))
            .chain(local_binary("kube-apiserver"))
            .collect(),
        _ => Vec::new(),
    };
    v.sort_by_key(|s| Version::parse(s));
    v.dedup();
    v
}

/// The message of a file error, without its file prefix (the caller names the file).
fn reason(e: &crate::Error) -> String {
    match e {
        crate::Error::Input(d) if !d.is_empty() => match d[0].location {
            Some(l) => format!("line {}, column {}: {}", l.line, l.column, d[0].message),
            None => d[0].message.clone(),
        },
        other => other.to_string(),
    }
}

/// A Kubernetes label: `[prefix/]name` (prefix a DNS subdomain of at most 253 characters, name at most
/// 63 alphanumerics, `-`, `_`, `.`, starting and ending alphanumeric), value empty or like a name.
// upstream: kubernetes/kubernetes staging/src/k8s.io/apimachinery/pkg/util/validation/validation.go
// (IsQualifiedName, IsValidLabelValue).
pub fn label(key: &str, value: &str) -> Result<(), String> {
    let name_ok = |n: &str| {
        !n.is_empty()
            && n.len() <= 63
            && n.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
            && n.starts_with(|c: char| c.is_ascii_alphanumeric())
            && n.ends_with(|c: char| c.is_ascii_alphanumeric())
    };
    let (prefix, name) = key.rsplit_once('/').map_or((None, key), |(p, n)| (Some(p), n));
    if let Some(p) = prefix {
        let label_ok = |l: &str| {
            !l.is_empty()
                && l.len() <= 63
                && l.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
                && !l.starts_with('-')
                && !l.ends_with('-')
        };
        if p.len() > 253 || !p.split('.').all(label_ok) {
            return Err(format!("the prefix `{p}` is not a lower-case DNS subdomain"));
        }
    }
    if !name_ok(name) {
        return Err("the name must be 1-63 alphanumerics, '-', '_' or '.', starting and ending alphanumeric".into());
    }
    if !value.is_empty() && !name_ok(value) {
        return Err(format!(
            "the value `{value}` must be empty or 1-63 alphanumerics, '-', '_' or '.', starting and ending alphanumeric"
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pinned_versions_cover_kind_and_the_local_provider() {
        let pins = Pins::builtin();
        let tp = pinned(&pins, "telepresence");
        assert!(tp.contains(&"2.20.2".to_string()) && tp.contains(&"2.32.1".to_string()), "{tp:?}");
        assert!(pinned(&pins, "kubernetes").contains(&"1.35.8".to_string()));
        assert!(pinned(&pins, "kyverno").contains(&"1.19.1".to_string()));
        let req = VersionReq::parse(">=2.29, <2.30").unwrap();
        assert!(satisfiable(&pins, "telepresence", ">=2.29, <2.30", &req).is_err());
        let req = VersionReq::parse("<2.21").unwrap();
        assert!(satisfiable(&pins, "telepresence", "<2.21", &req).is_ok());
    }

    #[test]
    fn replicas_are_bounded() {
        assert!(replicas(&serde_json::json!({"spec": {"replicas": 1}})).is_ok());
        assert!(replicas(&serde_json::json!({"spec": {}})).is_ok());
        assert!(replicas(&serde_json::json!({"spec": {"replicas": 11}})).is_err());
        assert!(replicas(&serde_json::json!({"spec": {"replicas": -1}})).is_err());
        assert!(replicas(&serde_json::json!({"spec": {"replicas": "1"}})).is_err());
    }

    #[test]
    fn labels_follow_the_api_server_rules() {
        assert_eq!(label("pod-security.kubernetes.io/enforce", "restricted"), Ok(()));
        assert_eq!(label("team", ""), Ok(()));
        assert!(label("Bad_Prefix/x", "v").is_err());
        assert!(label("x", "-v").is_err());
        assert!(label(&"n".repeat(64), "v").is_err());
    }
}
