//! `--reuse`: keep a kind cluster (with its Kyverno install) between runs, and reuse it only when
//! its fingerprint matches what the run needs: kind and node image (by digest), the Kyverno chart,
//! and a hash of the kind config. The fingerprint lives in ConfigMap `kube-system/kyvtel-fingerprint`
//! ([`crate::kube::fingerprint`]); otherwise the run refuses and lists every difference.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use crate::kube::api::ClusterApi;
use crate::kube::fingerprint::{Comparison, Fingerprint, compare};
use crate::plan::{PhaseKind, Plan};
use crate::tools::{Runner, kind};

/// The phases a reused cluster already has behind it.
pub const SETUP_PHASES: [PhaseKind; 2] = [PhaseKind::CreateCluster, PhaseKind::InstallKyverno];

/// What `--reuse` decided.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    /// No such cluster yet: create it, keep it, and record its fingerprint.
    Create,
    /// The cluster exists and matches: skip its setup.
    Reuse,
    /// The cluster exists but does not match (or has no fingerprint): refuse, saying why.
    Refuse(String),
}

/// The fingerprint a plan needs.
#[must_use]
pub fn expected(plan: &Plan, kind_config: &str) -> BTreeMap<String, String> {
    let digest = ring::digest::digest(&ring::digest::SHA256, kind_config.as_bytes());
    let hex: String = digest.as_ref().iter().map(|b| format!("{b:02x}")).collect();
    let v = &plan.versions;
    BTreeMap::from([
        ("kind".to_string(), v.kind.clone()),
        ("nodeImage".to_string(), v.node_image.reference.clone()),
        ("kyvernoChart".to_string(), v.kyverno_chart.clone()),
        ("configHash".to_string(), format!("sha256:{hex}")),
    ])
}

/// Decides whether `plan`'s cluster can be reused. When the cluster exists, its kubeconfig is
/// written to `kubeconfig` (from `kind get kubeconfig`) so that `api` can read its fingerprint.
///
/// # Errors
/// The text of a failure to write the kubeconfig or to read the fingerprint.
pub async fn decide<A: ClusterApi>(
    plan: &Plan,
    api: &A,
    runner: Arc<dyn Runner>,
    expected: &BTreeMap<String, String>,
    kubeconfig: &Path,
) -> Result<Decision, String> {
    let cmd = kind::get_kubeconfig(&plan.cluster);
    let out = tokio::task::spawn_blocking(move || runner.run(&cmd, Duration::from_secs(60)))
        .await
        .map_err(|e| e.to_string())?;
    let out = match out {
        Ok(o) if o.success() && !o.stdout.trim().is_empty() => o,
        _ => return Ok(Decision::Create),
    };
    crate::tools::env::write_private(kubeconfig, &out.stdout)
        .map_err(|e| format!("write {}: {e}", kubeconfig.display()))?;
    let found = api.read_fingerprint().await.map_err(|e| format!("read the cluster's fingerprint: {e}"))?;
    let want = Fingerprint { entries: expected.clone() };
    let found = found.map(|entries| Fingerprint { entries });
    Ok(match compare(&want, found.as_ref()) {
        Comparison::Match => Decision::Reuse,
        other => Decision::Refuse(format!(
            "cluster {} cannot be reused: {}",
            plan.cluster,
            other.refusal().unwrap_or_else(|| "its fingerprint differs".into())
        )),
    })
}

/// The plan for a reused cluster: no cluster creation and no Kyverno install (nor their teardown).
#[must_use]
pub fn reused(plan: Plan) -> Plan {
    plan.without_phases(&SETUP_PHASES)
}
