//! Judging one pod against a scenario's pod expectations: the engine the live run and
//! `kyvtel verify` share. Pure: no I/O, no cluster.

use serde_json::{Value, json};

use super::check::{Check, Verdict};
use super::expect::{PodExpectation, Presence};
use super::security_context;
use crate::scenario::resolve::Versions;

use crate::names::telepresence::TRAFFIC_AGENT;

/// Judges `pod` (a Pod object as `kubectl get pod -o json` prints it) against every expectation
/// group whose `when` holds for `versions`; other groups are skipped.
///
/// - `containers` is compared as a set of names.
/// - `podSecurityContext` and `securityContexts` are compared with
///   [`security_context::compare`]. A `securityContexts` key names a container, or else an init
///   container (so `tel-agent-init`'s context can be judged too).
/// - `initContainers` maps a name to present or absent.
/// - `onlyPrivileged` is the least-privilege claim: every container and init container not
///   listed must not add capabilities, must not set `allowPrivilegeEscalation: true` and must
///   not set `privileged: true`. Only explicit values count: Kubernetes leaves an unset
///   `allowPrivilegeEscalation` to the runtime, and treating "unset" as "escalates" would make the
///   claim fail for every ordinary container.
/// - If an applicable group names `traffic-agent` (in `containers` or `securityContexts`) and the
///   pod has no such container, the first check is a failed `container/traffic-agent` `present`
///   with the note "traffic-agent was not injected", and the agent's field mismatches are not
///   listed: the injector was not reached (its failurePolicy is Ignore, facts.md §4).
///
/// Malformed parts of the pod (a non-list `containers`, a container without a name) are read as
/// absent; check the input's shape first (see [`super::pods::check_shape`]).
///
/// ```
/// use kyvtel::outcome::expect::PodExpectation;
/// use kyvtel::outcome::pod::verify_pod;
/// use kyvtel::scenario::{pins::Pins, resolve::Versions};
/// use serde_json::json;
///
/// let versions = Versions::resolve(&Pins::builtin(), &Default::default()).unwrap();
/// let expectations: Vec<PodExpectation> = serde_json::from_value(json!([
///     {"containers": ["app", "traffic-agent"], "initContainers": {"tel-agent-init": "absent"}}
/// ])).unwrap();
///
/// let pod = json!({"spec": {"containers": [{"name": "app"}]}});
/// let verdict = verify_pod(&pod, &expectations, &versions);
/// assert!(!verdict.passed);
/// assert_eq!(verdict.checks[0].note.as_deref(), Some("traffic-agent was not injected"));
///
/// let pod = json!({"spec": {"containers": [{"name": "traffic-agent"}, {"name": "app"}]}});
/// assert!(verify_pod(&pod, &expectations, &versions).passed);
/// ```
#[must_use]
pub fn verify_pod(pod: &Value, expectations: &[PodExpectation], versions: &Versions) -> Verdict {
    let groups: Vec<&PodExpectation> =
        expectations.iter().filter(|g| g.when.as_ref().is_none_or(|w| versions.satisfies(w))).collect();
    let containers = named(pod, "containers");
    let inits = named(pod, "initContainers");
    let agent_missing = groups.iter().any(|g| names_agent(g)) && !containers.iter().any(|(n, _)| *n == TRAFFIC_AGENT);

    let mut checks = Vec::new();
    if agent_missing {
        checks.push(
            Check::new(format!("container/{TRAFFIC_AGENT}"), "present", true, false, false)
                .with_note("traffic-agent was not injected"),
        );
    }
    for group in groups {
        if let Some(want) = &group.containers {
            let have: Vec<&str> = containers.iter().map(|(n, _)| *n).collect();
            let ok =
                want.iter().all(|w| have.contains(&w.as_str())) && have.iter().all(|h| want.iter().any(|w| w == h));
            checks.push(Check::new("pod", "containers", json!(want), json!(have), ok));
        }
        if let Some(want) = &group.pod_security_context {
            checks.extend(security_context::compare("pod", want, pod.pointer("/spec/securityContext")));
        }
        for (name, want) in &group.security_contexts {
            if agent_missing && name == TRAFFIC_AGENT {
                continue;
            }
            let found = find(&containers, name)
                .map(|c| (format!("container/{name}"), c))
                .or_else(|| find(&inits, name).map(|c| (format!("initContainer/{name}"), c)));
            match found {
                Some((target, c)) => checks.extend(security_context::compare(&target, want, c.get("securityContext"))),
                None => checks.push(
                    Check::new(format!("container/{name}"), "present", true, false, false)
                        .with_note(format!("no container named {name}")),
                ),
            }
        }
        for (name, presence) in &group.init_containers {
            let want = *presence == Presence::Present;
            let have = find(&inits, name).is_some();
            checks.push(Check::new(format!("initContainer/{name}"), "present", want, have, want == have));
        }
        if let Some(allowed) = &group.only_privileged {
            least_privilege(&mut checks, allowed, &containers, &inits);
        }
    }
    Verdict::from_checks(checks)
}

/// Whether a group needs the injected agent to exist.
fn names_agent(g: &PodExpectation) -> bool {
    g.containers.iter().flatten().any(|n| n == TRAFFIC_AGENT) || g.security_contexts.contains_key(TRAFFIC_AGENT)
}

/// `(name, container)` for each named entry of `spec.<list>`.
fn named<'a>(pod: &'a Value, list: &str) -> Vec<(&'a str, &'a Value)> {
    pod["spec"][list]
        .as_array()
        .map(|items| items.iter().filter_map(|c| Some((c["name"].as_str()?, c))).collect())
        .unwrap_or_default()
}

fn find<'a>(list: &[(&str, &'a Value)], name: &str) -> Option<&'a Value> {
    list.iter().find(|(n, _)| *n == name).map(|(_, c)| *c)
}

/// The least-privilege claim: for every container not in `allowed`, no added capability, no
/// explicit `allowPrivilegeEscalation: true`, no `privileged: true`.
fn least_privilege(
    checks: &mut Vec<Check>,
    allowed: &[String],
    containers: &[(&str, &Value)],
    inits: &[(&str, &Value)],
) {
    let note = format!("only {} may add capabilities or allow privilege escalation", allowed.join(", "));
    let all = containers.iter().map(|(n, c)| (format!("container/{n}"), *n, *c));
    let all = all.chain(inits.iter().map(|(n, c)| (format!("initContainer/{n}"), *n, *c)));
    for (target, name, c) in all {
        if allowed.iter().any(|a| a == name) {
            continue;
        }
        let sc = &c["securityContext"];
        let add = &sc["capabilities"]["add"];
        let add_ok = add.is_null() || add.as_array().is_some_and(Vec::is_empty);
        let ape = &sc["allowPrivilegeEscalation"];
        let privileged = &sc["privileged"];
        for (field, expected, actual, ok) in [
            ("securityContext.capabilities.add", json!([]), add, add_ok),
            ("securityContext.allowPrivilegeEscalation", json!(false), ape, *ape != Value::Bool(true)),
            ("securityContext.privileged", json!(false), privileged, *privileged != Value::Bool(true)),
        ] {
            let check = Check::new(target.clone(), field, expected, actual.clone(), ok);
            checks.push(if ok { check } else { check.with_note(note.clone()) });
        }
    }
}

#[cfg(test)]
mod tests {
    use std::path::{Path, PathBuf};

    use rstest::rstest;

    use super::*;
    use crate::scenario::{Loaded, load};

    fn manifest(rel: &str) -> PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR")).join(rel)
    }

    fn recipe() -> Loaded {
        load(&manifest("scenarios/documented-recipe.yaml")).expect("the shipped scenario loads")
    }

    fn pod(name: &str) -> Value {
        let path = manifest(&format!("tests/fixtures/pods/{name}"));
        let src = crate::yaml::read(&path).expect("fixture exists");
        crate::yaml::documents(&path, &src).expect("fixture parses").remove(0).value
    }

    fn with_telepresence(v: &Versions, telepresence: &str) -> Versions {
        Versions { telepresence: telepresence.into(), ..v.clone() }
    }

    fn failures(verdict: &Verdict) -> Vec<(&str, &str)> {
        verdict.failures().map(|c| (c.target.as_str(), c.field.as_str())).collect()
    }

    const AGENT: &str = "container/traffic-agent";

    #[rstest]
    #[case::recipe_2_32("agent-recipe-2.32.yaml", "2.32.1", vec![])]
    #[case::capabilities_reordered_and_explicit_empty_drop("agent-recipe-reordered.yaml", "2.32.1", vec![])]
    #[case::recipe_before_2_29_judged_as_2_32("agent-recipe-2.28.yaml", "2.32.1", vec![(AGENT, "securityContext.runAsGroup")])]
    #[case::recipe_before_2_29("agent-recipe-2.28.yaml", "2.28.0", vec![])]
    #[case::runas_group_is_extra_before_2_29("agent-recipe-2.32.yaml", "2.28.0", vec![(AGENT, "securityContext.runAsGroup")])]
    #[case::no_agent("no-agent.yaml", "2.32.1", vec![(AGENT, "present"), ("pod", "containers")])]
    #[case::init_container_net_admin("agent-init-net-admin.yaml", "2.32.1", vec![("initContainer/tel-agent-init", "present")])]
    #[case::agent_copies_app_context("agent-copies-app.yaml", "2.32.1", vec![
        (AGENT, "securityContext.allowPrivilegeEscalation"),
        (AGENT, "securityContext.capabilities.add"),
        (AGENT, "securityContext.capabilities.drop"),
        (AGENT, "securityContext.readOnlyRootFilesystem"),
        (AGENT, "securityContext.runAsGroup"),
        (AGENT, "securityContext.runAsNonRoot"),
        (AGENT, "securityContext.runAsUser"),
        (AGENT, "securityContext.seccompProfile.type"),
    ])]
    fn documented_recipe_expectations(
        #[case] fixture: &str,
        #[case] telepresence: &str,
        #[case] want: Vec<(&str, &str)>,
    ) {
        let loaded = recipe();
        let versions = with_telepresence(&loaded.versions, telepresence);
        let verdict = verify_pod(&pod(fixture), &loaded.scenario.spec.expect.pod, &versions);
        assert_eq!(failures(&verdict), want, "{:#?}", verdict.checks);
        assert_eq!(verdict.passed, want.is_empty());
        assert!(verdict.checks.len() > 10, "every field is reported, held or not");
    }

    #[test]
    fn missing_agent_is_said_first_and_its_fields_are_not_listed() {
        let loaded = recipe();
        let verdict = verify_pod(&pod("no-agent.yaml"), &loaded.scenario.spec.expect.pod, &loaded.versions);
        let first = &verdict.checks[0];
        assert_eq!((first.target.as_str(), first.field.as_str(), first.ok), (AGENT, "present", false));
        assert_eq!(first.note.as_deref(), Some("traffic-agent was not injected"));
        assert_eq!(verdict.checks.iter().filter(|c| c.target == AGENT).count(), 1);
    }

    #[test]
    fn groups_whose_when_does_not_hold_are_skipped() {
        let loaded = recipe();
        let p = pod("agent-recipe-2.32.yaml");
        let new = verify_pod(&p, &loaded.scenario.spec.expect.pod, &loaded.versions);
        let old = verify_pod(&p, &loaded.scenario.spec.expect.pod, &with_telepresence(&loaded.versions, "2.28.0"));
        let runas_group = |v: &Verdict| {
            v.checks.iter().find(|c| c.field == "securityContext.runAsGroup" && c.target == AGENT).cloned()
        };
        assert_eq!(runas_group(&new).map(|c| (c.expected, c.ok)), Some((json!(7439), true)));
        assert_eq!(runas_group(&old).map(|c| (c.expected, c.ok)), Some((Value::Null, false)));
    }

    fn group(v: Value) -> Vec<PodExpectation> {
        vec![serde_json::from_value(v).expect("a valid PodExpectation")]
    }

    #[rstest]
    #[case::agent_allowed("agent-recipe-2.32.yaml", json!(["traffic-agent"]), vec![])]
    #[case::agent_not_allowed("agent-recipe-2.32.yaml", json!([]), vec![
        (AGENT, "securityContext.capabilities.add"), (AGENT, "securityContext.allowPrivilegeEscalation")])]
    #[case::init_container_adds_net_admin("agent-init-net-admin.yaml", json!(["traffic-agent"]), vec![
        ("initContainer/tel-agent-init", "securityContext.capabilities.add")])]
    #[case::unset_escalation_does_not_count("no-agent.yaml", json!([]), vec![])]
    fn least_privilege_claim(#[case] fixture: &str, #[case] allowed: Value, #[case] want: Vec<(&str, &str)>) {
        let versions = recipe().versions;
        let verdict = verify_pod(&pod(fixture), &group(json!({"onlyPrivileged": allowed})), &versions);
        assert_eq!(failures(&verdict), want, "{:#?}", verdict.checks);
    }

    #[test]
    fn explicit_privileged_or_escalation_breaks_least_privilege() {
        let p = json!({"spec": {"containers": [
            {"name": "a", "securityContext": {"allowPrivilegeEscalation": true}},
            {"name": "b", "securityContext": {"privileged": true}},
            {"name": "c", "securityContext": {"allowPrivilegeEscalation": false, "capabilities": {"add": []}}},
        ]}});
        let verdict = verify_pod(&p, &group(json!({"onlyPrivileged": []})), &recipe().versions);
        assert_eq!(
            failures(&verdict),
            vec![
                ("container/a", "securityContext.allowPrivilegeEscalation"),
                ("container/b", "securityContext.privileged")
            ]
        );
        assert!(verdict.failures().all(|c| c.note.is_some()));
    }

    #[test]
    fn security_context_of_an_init_container_and_of_a_missing_container() {
        let expectations = group(json!({"securityContexts": {
            "tel-agent-init": {"exact": {"capabilities": {"add": ["NET_ADMIN"]}}},
            "sidecar": {"subset": {"runAsUser": 1000}},
        }}));
        let verdict = verify_pod(&pod("agent-init-net-admin.yaml"), &expectations, &recipe().versions);
        let all: Vec<_> = verdict.checks.iter().map(|c| (c.target.as_str(), c.field.as_str(), c.ok)).collect();
        assert_eq!(
            all,
            vec![
                ("container/sidecar", "present", false),
                ("initContainer/tel-agent-init", "securityContext.capabilities.add", true)
            ]
        );
    }
}
