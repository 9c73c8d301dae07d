//! Known causes of Kyverno denials around Telepresence, each with the scenario that demonstrates
//! the fix; and naming the container a reported path points at.

use serde::Serialize;
use serde_json::Value;

use super::denial::Denial;
use crate::names::telepresence::TRAFFIC_MANAGER;
use crate::names::telepresence::{AGENT_INIT, TRAFFIC_AGENT};

/// Scenario names of the catalog that hints point to.
pub mod scenario {
    /// The fix: `(name): "!traffic-agent"` exemption, `ambassador` exclusions, named targetPort.
    pub const DOCUMENTED_RECIPE: &str = "documented-recipe";
    /// The agent denied when the rules check every container.
    pub const DOCUMENTED_RECIPE_LITERAL: &str = "documented-recipe-literal";
    /// tel-agent-init denied after a numeric targetPort.
    pub const NUMERIC_TARGET_PORT: &str = "numeric-target-port";
    /// The name bound to the agent image: a spoofed agent denied.
    pub const HARDENED_EXEMPTION: &str = "hardened-exemption";
    /// The traffic-manager denied without the `ambassador` exclusions.
    pub const PROBLEM_NO_EXCLUSIONS: &str = "problem-no-exclusions";
}

/// A known cause of a denial.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Cause {
    /// The injected `traffic-agent` failed a container rule.
    AgentBlockedByContainerRule,
    /// The injected `tel-agent-init` (NET_ADMIN) failed an init-container rule.
    AgentInitNetAdmin,
    /// The agent image failed a registry rule.
    AgentImageBlockedByRegistry,
    /// The traffic-manager (or its hook Job) was denied in its own namespace.
    TrafficManagerBlocked,
}

/// A hint for one known cause.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Hint {
    /// The cause.
    pub cause: Cause,
    /// What happened and how to fix it, in a sentence or two.
    pub text: String,
    /// The scenario that demonstrates the fix.
    pub fixed_by: &'static str,
    /// The scenario that reproduces the denial, if any.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reproduced_by: Option<&'static str>,
}

impl Cause {
    /// The hint for this cause.
    #[must_use]
    pub fn hint(self) -> Hint {
        use scenario::*;
        let (text, fixed_by, reproduced_by) = match self {
            Cause::AgentBlockedByContainerRule => (
                "The injected traffic-agent is checked by a container rule. Exempt it in that rule with the \
                 conditional anchor `(name): \"!traffic-agent\"`; the app containers stay checked.",
                DOCUMENTED_RECIPE,
                Some(DOCUMENTED_RECIPE_LITERAL),
            ),
            Cause::AgentInitNetAdmin => (
                "Telepresence injected the init container tel-agent-init (capabilities add NET_ADMIN) because a \
                 Service selecting the workload has a numeric or omitted targetPort. Use a named targetPort on every \
                 Service that selects the workload.",
                DOCUMENTED_RECIPE,
                Some(NUMERIC_TARGET_PORT),
            ),
            Cause::AgentImageBlockedByRegistry => (
                "The traffic-agent image (ghcr.io/telepresenceio/tel2) is not an allowed registry. Exempt the agent \
                 in the registry rule, and bind the name traffic-agent to that image in a separate rule (as \
                 scenarios/policies/require-security-context-hardened.yaml does): a name-only exemption lets any \
                 container named traffic-agent through.",
                HARDENED_EXEMPTION,
                Some(DOCUMENTED_RECIPE_LITERAL),
            ),
            Cause::TrafficManagerBlocked => (
                "The traffic-manager (or its Helm hook Job) is denied in the manager namespace: its default \
                 securityContext and ghcr.io image do not pass strict rules. Exclude the manager namespace \
                 (`ambassador`) from the strict rules.",
                DOCUMENTED_RECIPE,
                Some(PROBLEM_NO_EXCLUSIONS),
            ),
        };
        Hint { cause: self, text: text.to_string(), fixed_by, reproduced_by }
    }
}

/// Which container list a reported path points into.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ContainerList {
    /// `spec.containers`.
    Containers,
    /// `spec.initContainers`.
    InitContainers,
}

/// A reported path that points into a container: `/spec/containers/<i>/<rest>`, also under a
/// pod template (`/spec/template/spec/...`, `/spec/jobTemplate/spec/template/spec/...`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ContainerPath {
    /// Which list.
    pub list: ContainerList,
    /// The 0-based index in that list.
    pub index: usize,
    /// What follows the index, e.g. `securityContext/allowPrivilegeEscalation/`.
    pub rest: String,
}

const POD_SPEC_PREFIXES: [&str; 3] = ["/spec/", "/spec/template/spec/", "/spec/jobTemplate/spec/template/spec/"];

/// Reads a reported path as a container path, if it is one.
#[must_use]
pub fn container_path(path: &str) -> Option<ContainerPath> {
    POD_SPEC_PREFIXES.iter().rev().find_map(|prefix| {
        let tail = path.strip_prefix(prefix)?;
        let (list, tail) = if let Some(t) = tail.strip_prefix("containers/") {
            (ContainerList::Containers, t)
        } else {
            (ContainerList::InitContainers, tail.strip_prefix("initContainers/")?)
        };
        let (index, rest) = tail.split_once('/').unwrap_or((tail, ""));
        Some(ContainerPath { list, index: index.parse().ok()?, rest: rest.to_string() })
    })
}

/// The pod spec of a Pod, or of a workload's pod template.
#[must_use]
pub fn pod_spec(object: &Value) -> Option<&Value> {
    ["/spec", "/spec/template/spec", "/spec/jobTemplate/spec/template/spec"]
        .iter()
        .filter_map(|p| object.pointer(p))
        .find(|s| s.get("containers").is_some())
}

impl ContainerPath {
    /// The container's name in `object` (a Pod or a workload), if it has one at that index.
    #[must_use]
    pub fn name<'a>(&self, object: &'a Value) -> Option<&'a str> {
        let list = match self.list {
            ContainerList::Containers => "containers",
            ContainerList::InitContainers => "initContainers",
        };
        pod_spec(object)?.get(list)?.get(self.index)?.get("name")?.as_str()
    }

    /// `container/<name>` or `initContainer/<name>`, as verify names targets.
    #[must_use]
    pub fn target(&self, object: &Value) -> Option<String> {
        let name = self.name(object)?;
        Some(match self.list {
            ContainerList::Containers => format!("container/{name}"),
            ContainerList::InitContainers => format!("initContainer/{name}"),
        })
    }
}

/// The hints for a denial, one per cause, in the order the causes are first seen. `pod` (a Pod
/// or a workload) names the containers behind reported paths; without it, a path into
/// `initContainers` is taken for `tel-agent-init`, and a message that names `traffic-agent`
/// (other than as an exemption: "other than traffic-agent", "except traffic-agent") or the tel2
/// image points at the agent.
#[must_use]
pub fn hints(denial: &Denial, pod: Option<&Value>) -> Vec<Hint> {
    let mut causes: Vec<Cause> = Vec::new();
    let mut add = |c: Cause| {
        if !causes.contains(&c) {
            causes.push(c);
        }
    };
    let r = &denial.resource;
    if r.name == TRAFFIC_MANAGER
        || r.name.strip_prefix(TRAFFIC_MANAGER).is_some_and(|s| s.starts_with('-'))
        || r.namespace == "ambassador"
    {
        add(Cause::TrafficManagerBlocked);
    } else {
        for v in &denial.violations {
            let names_image = v.message.contains("telepresenceio/tel2") || v.message.contains("datawire/tel2");
            let names_agent = names_agent(&v.message);
            let located: Vec<ContainerPath> = v.paths.iter().filter_map(|p| container_path(p)).collect();
            for cp in &located {
                let name = pod.and_then(|p| cp.name(p));
                let is_image = cp.rest.starts_with("image");
                match (cp.list, name) {
                    (ContainerList::InitContainers, Some(AGENT_INIT) | None) => add(Cause::AgentInitNetAdmin),
                    (ContainerList::Containers, Some(TRAFFIC_AGENT)) if is_image => {
                        add(Cause::AgentImageBlockedByRegistry)
                    }
                    (ContainerList::Containers, Some(TRAFFIC_AGENT)) => add(Cause::AgentBlockedByContainerRule),
                    (ContainerList::Containers, None) if is_image && names_image => {
                        add(Cause::AgentImageBlockedByRegistry)
                    }
                    (ContainerList::Containers, None) if names_agent => add(Cause::AgentBlockedByContainerRule),
                    _ => {}
                }
            }
            if located.is_empty() && pod.is_none() {
                if names_image {
                    add(Cause::AgentImageBlockedByRegistry);
                } else if names_agent {
                    add(Cause::AgentBlockedByContainerRule);
                }
            }
        }
    }
    causes.into_iter().map(Cause::hint).collect()
}

/// Whether a message names `traffic-agent` other than as an exemption.
fn names_agent(message: &str) -> bool {
    message.match_indices(TRAFFIC_AGENT).any(|(i, _)| {
        let before = message[..i].trim_end().trim_end_matches(['`', '"', '\'']).trim_end().to_ascii_lowercase();
        !(before.ends_with("other than") || before.ends_with("except") || before.ends_with("except the injected"))
    })
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use rstest::rstest;

    use super::*;
    use crate::outcome::denial::{Parsed, parse};

    fn denial(name: &str) -> Denial {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/denials").join(name);
        match parse(&std::fs::read_to_string(path).expect("fixture exists")) {
            Ok(Parsed::Kyverno(d)) => d,
            other => panic!("expected a Kyverno denial, got {other:?}"),
        }
    }

    fn pod(name: &str) -> Value {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/pods").join(name);
        let src = crate::yaml::read(&path).expect("fixture exists");
        crate::yaml::documents(&path, &src).expect("fixture parses").remove(0).value
    }

    use Cause::*;

    #[rstest]
    #[case::agent_by_pod("kubectl-agent-blocked.txt", Some("agent-recipe-2.32.yaml"), vec![AgentBlockedByContainerRule])]
    #[case::index_alone_names_nobody("kubectl-agent-blocked.txt", None, vec![])]
    #[case::agent_and_registry("replicaset-combined-events.txt", Some("agent-recipe-2.32.yaml"),
        vec![AgentBlockedByContainerRule, AgentImageBlockedByRegistry])]
    #[case::app_container_is_not_the_agent("statefulset-traffic-manager.txt", None, vec![TrafficManagerBlocked])]
    #[case::manager_deployment("deployment-traffic-manager-autogen.txt", None, vec![TrafficManagerBlocked])]
    #[case::init_container_path("replicafailure-init-container-crlf.txt", None, vec![AgentInitNetAdmin])]
    #[case::init_container_by_pod("replicafailure-init-container-crlf.txt", Some("agent-init-net-admin.yaml"),
        vec![AgentInitNetAdmin, AgentBlockedByContainerRule])]
    #[case::index_beyond_the_pod("anypattern.txt", Some("no-agent.yaml"), vec![])]
    fn known_causes(#[case] fixture: &str, #[case] with_pod: Option<&str>, #[case] want: Vec<Cause>) {
        let p = with_pod.map(pod);
        let got: Vec<Cause> = hints(&denial(fixture), p.as_ref()).iter().map(|h| h.cause).collect();
        assert_eq!(got, want);
    }

    #[test]
    fn a_message_naming_the_agent_or_its_image_points_at_it_without_a_pod() {
        let mut d = denial("kubectl-agent-blocked.txt");
        d.violations[0].message = "Container traffic-agent must not escalate.".into();
        assert_eq!(hints(&d, None).iter().map(|h| h.cause).collect::<Vec<_>>(), vec![AgentBlockedByContainerRule]);
        d.violations[0].message = "Image ghcr.io/telepresenceio/tel2:2.32.1 is not allowed.".into();
        d.violations[0].paths = vec!["/spec/containers/1/image/".into()];
        assert_eq!(hints(&d, None).iter().map(|h| h.cause).collect::<Vec<_>>(), vec![AgentImageBlockedByRegistry]);
    }

    /// The names of the scenarios in the catalog.
    fn catalog() -> Vec<String> {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("scenarios");
        let mut names: Vec<String> = crate::scenario::catalog::files(&dir)
            .expect("scenarios/")
            .iter()
            .map(|p| crate::scenario::load(p).expect("catalog scenario loads").name().to_string())
            .collect();
        names.sort();
        assert!(!names.is_empty());
        names
    }

    #[test]
    fn every_hint_names_a_catalog_scenario() {
        let known = catalog();
        for c in [AgentBlockedByContainerRule, AgentInitNetAdmin, AgentImageBlockedByRegistry, TrafficManagerBlocked] {
            let h = c.hint();
            assert!(known.iter().any(|k| k == h.fixed_by), "{c:?}: `{}` is not in the catalog {known:?}", h.fixed_by);
            if let Some(r) = h.reproduced_by {
                assert!(known.iter().any(|k| k == r), "{c:?}: `{r}` is not in the catalog {known:?}");
            }
        }
    }

    #[test]
    fn container_paths() {
        let cp = container_path("/spec/containers/1/securityContext/allowPrivilegeEscalation/").unwrap();
        assert_eq!(
            (cp.list, cp.index, cp.rest.as_str()),
            (ContainerList::Containers, 1, "securityContext/allowPrivilegeEscalation/")
        );
        let cp = container_path("/spec/template/spec/initContainers/0/image/").unwrap();
        assert_eq!((cp.list, cp.index, cp.rest.as_str()), (ContainerList::InitContainers, 0, "image/"));
        assert_eq!(container_path("/spec/containers/").map(|c| c.index), None);
        assert_eq!(container_path("/metadata/labels/team/"), None);
        assert_eq!(container_path("/spec/securityContext/"), None);
    }

    #[test]
    fn exemption_wording_is_not_a_mention() {
        assert!(!names_agent("Every container other than traffic-agent must set it."));
        assert!(!names_agent("All containers except `traffic-agent` must drop ALL."));
        assert!(names_agent("Container traffic-agent adds NET_ADMIN."));
    }
}
