//! `deployWorkload`: the workload's manifests. kind: applied as written, then the rollout. local:
//! every Service first (Telepresence 2.20.2 panics on a Deployment without its Service, and its webhook
//! then fails open), and the Deployment's pod template carries the injection annotation (there is no
//! client to trigger injection); no rollout, there is no kubelet.

use serde_json::{Value, json};

use super::super::action::{Action, WaitFor};
use super::super::build::{limits, object_ref};
use super::super::provider::Provider;
use super::Ctx;
use crate::scenario::version::Version;

/// The pod-template annotation that injects the agent without an intercept: prefix `telepresence.io/`
/// from 2.22, `telepresence.getambassador.io/` before (facts.md §4, §7).
#[must_use]
pub fn inject_annotation(version: &Version) -> &'static str {
    if *version >= Version::parse("2.22").expect("literal") {
        "telepresence.io/inject-traffic-agent"
    } else {
        "telepresence.getambassador.io/inject-traffic-agent"
    }
}

pub(super) fn actions(ctx: &mut Ctx<'_>) -> Vec<Action> {
    if let Some(skip) = super::skip_without_injector(ctx) {
        return skip;
    }
    let s = &ctx.loaded.scenario.spec;
    let app_ns = s.workload.namespace.clone();
    let mut objects: Vec<Value> = ctx.loaded.manifest_values().cloned().collect();
    if ctx.b.provider == Provider::Local {
        // A stable sort: Namespaces, then Services, the rest in file order.
        objects.sort_by_key(|o| match o["kind"].as_str() {
            Some("Namespace") => 0,
            Some("Service") => 1,
            _ => 2,
        });
        let key = inject_annotation(&ctx.loaded.versions.telepresence_version());
        for o in objects.iter_mut().filter(|o| crate::scenario::load::is_workload(o, &s.workload.name)) {
            let meta = &mut o["spec"]["template"]["metadata"];
            if meta.is_null() {
                *meta = json!({});
            }
            meta["annotations"][key] = json!("enabled");
        }
    }
    let refs = objects.iter().map(|o| object_ref(o, Some(&app_ns))).collect();
    let del = Action::Delete {
        label: format!("workload {}", s.workload.name),
        objects: refs,
        timeout: limits::TEARDOWN,
        wait: true,
    };
    ctx.b.push_cluster_undo(ctx.phase(), &format!("delete workload {}", s.workload.name), vec![del], vec![], false);
    let mut actions = vec![Action::Apply {
        label: format!("workload {}", s.workload.name),
        namespace: Some(app_ns.clone()),
        objects,
        timeout: ctx.timeout(limits::APPLY),
        expect_failure: ctx.denial.is_some(),
    }];
    if ctx.denial.is_none() && ctx.b.provider != Provider::Local {
        actions.push(Action::Wait {
            until: WaitFor::DeploymentAvailable { namespace: app_ns, name: s.workload.name.clone() },
            timeout: ctx.timeout(limits::ROLLOUT),
        });
    }
    actions
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_annotation_prefix_follows_the_version() {
        assert_eq!(
            inject_annotation(&Version::parse("2.20.2").unwrap()),
            "telepresence.getambassador.io/inject-traffic-agent"
        );
        assert_eq!(inject_annotation(&Version::parse("2.22.0").unwrap()), "telepresence.io/inject-traffic-agent");
        assert_eq!(inject_annotation(&Version::parse("2.31.0").unwrap()), "telepresence.io/inject-traffic-agent");
    }
}
