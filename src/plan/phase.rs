//! What a phase is, typed: the provider's setup phases and one per scenario step. Plans, cells and
//! teardown entries name phases by [`PhaseKind`], never by text; the kebab-case name is only printed.

use std::fmt;

use serde::Serialize;

use crate::scenario::model::Step;

/// The kind of a plan phase.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum PhaseKind {
    /// kind: create the cluster and save its kubeconfig.
    CreateCluster,
    /// kind: pull images on the host and load them into the nodes.
    PreloadImages,
    /// local: credentials, etcd, kube-apiserver, kube-controller-manager.
    StartControlPlane,
    /// The `installKyverno` step.
    InstallKyverno,
    /// The `applyPolicies` step.
    ApplyPolicies,
    /// The `installTelepresence` step.
    InstallTelepresence,
    /// The `deployWorkload` step.
    DeployWorkload,
    /// The `connect` step.
    Connect,
    /// The `intercept` step.
    Intercept,
    /// The `sendTraffic` step.
    SendTraffic,
    /// The `leave` step.
    Leave,
    /// The `compareModel` step.
    CompareModel,
    /// The `admit` step.
    Admit,
    /// The `uninstallTelepresence` step.
    UninstallTelepresence,
    /// After the steps: the policies still enforce (a canary is denied).
    AssertStillEnforced,
}

impl PhaseKind {
    /// Every kind, in the order a plan can hold them.
    pub const ALL: [PhaseKind; 15] = [
        PhaseKind::CreateCluster,
        PhaseKind::PreloadImages,
        PhaseKind::StartControlPlane,
        PhaseKind::InstallKyverno,
        PhaseKind::ApplyPolicies,
        PhaseKind::InstallTelepresence,
        PhaseKind::DeployWorkload,
        PhaseKind::Connect,
        PhaseKind::Intercept,
        PhaseKind::SendTraffic,
        PhaseKind::Leave,
        PhaseKind::CompareModel,
        PhaseKind::Admit,
        PhaseKind::UninstallTelepresence,
        PhaseKind::AssertStillEnforced,
    ];

    /// The phase of a scenario step.
    #[must_use]
    pub fn of(step: &Step) -> PhaseKind {
        match step {
            Step::InstallKyverno(_) => PhaseKind::InstallKyverno,
            Step::ApplyPolicies(_) => PhaseKind::ApplyPolicies,
            Step::InstallTelepresence(_) => PhaseKind::InstallTelepresence,
            Step::DeployWorkload(_) => PhaseKind::DeployWorkload,
            Step::Connect(_) => PhaseKind::Connect,
            Step::Intercept(_) => PhaseKind::Intercept,
            Step::SendTraffic(_) => PhaseKind::SendTraffic,
            Step::Leave(_) => PhaseKind::Leave,
            Step::CompareModel(_) => PhaseKind::CompareModel,
            Step::Admit(_) => PhaseKind::Admit,
            Step::UninstallTelepresence(_) => PhaseKind::UninstallTelepresence,
        }
    }

    /// The kebab-case name printed in plans and reports, e.g. `install-kyverno`.
    #[must_use]
    pub const fn name(self) -> &'static str {
        match self {
            PhaseKind::CreateCluster => "create-cluster",
            PhaseKind::PreloadImages => "preload-images",
            PhaseKind::StartControlPlane => "start-control-plane",
            PhaseKind::InstallKyverno => "install-kyverno",
            PhaseKind::ApplyPolicies => "apply-policies",
            PhaseKind::InstallTelepresence => "install-telepresence",
            PhaseKind::DeployWorkload => "deploy-workload",
            PhaseKind::Connect => "connect",
            PhaseKind::Intercept => "intercept",
            PhaseKind::SendTraffic => "send-traffic",
            PhaseKind::Leave => "leave",
            PhaseKind::CompareModel => "compare-model",
            PhaseKind::Admit => "admit",
            PhaseKind::UninstallTelepresence => "uninstall-telepresence",
            PhaseKind::AssertStillEnforced => "assert-still-enforced",
        }
    }

    /// The kind printed as `name`, if any.
    #[must_use]
    pub fn parse(name: &str) -> Option<PhaseKind> {
        PhaseKind::ALL.into_iter().find(|k| k.name() == name)
    }
}

impl fmt::Display for PhaseKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_unique_and_parse_back() {
        for k in PhaseKind::ALL {
            assert_eq!(PhaseKind::parse(k.name()), Some(k));
            assert_eq!(serde_json::to_value(k).unwrap(), serde_json::json!(k.name()));
        }
        assert_eq!(PhaseKind::parse("install_kyverno"), None);
    }

    #[test]
    fn every_catalog_step_has_its_phase_named_as_the_step() {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("scenarios");
        let mut seen = std::collections::BTreeSet::new();
        for e in std::fs::read_dir(&dir).unwrap() {
            let path = e.unwrap().path();
            let Ok(loaded) = crate::scenario::load::load(&path) else { continue };
            for s in &loaded.scenario.spec.steps {
                assert_eq!(PhaseKind::of(s).name(), s.name(), "{}", path.display());
                seen.insert(PhaseKind::of(s));
            }
        }
        assert!(seen.len() >= 10, "the catalog uses {} step kinds", seen.len());
    }
}
