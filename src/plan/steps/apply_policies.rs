//! `applyPolicies`: the app namespace, then the ClusterPolicies with the exclusions merged; wait until
//! they are Ready and the canary is denied (a real `denied the request:`, never just the webhook's name).

use serde_json::Value;

use super::super::action::{Action, WaitFor};
use super::super::build::{canary_pod, limits, object_ref};
use super::Ctx;
use crate::scenario::policy;

pub(super) fn actions(ctx: &mut Ctx<'_>) -> Vec<Action> {
    let app_ns = ctx.loaded.scenario.spec.workload.namespace.clone();
    let name = ctx.phase();
    let mut actions = Vec::new();
    let wait = !ctx.opts.resets_shared_stack();
    actions.push(super::own_namespace(ctx, &app_ns, wait));
    let objects: Vec<Value> = ctx.loaded.policies.iter().map(|p| p.merged.clone()).collect();
    let names: Vec<String> = objects.iter().filter_map(|o| policy::name(o).map(str::to_string)).collect();
    let refs = objects.iter().map(|o| object_ref(o, None)).collect();
    let del = Action::Delete {
        label: format!("ClusterPolicies {}", names.join(", ")),
        objects: refs,
        timeout: limits::TEARDOWN,
        wait: true,
    };
    ctx.b.push_cluster_undo(name, "remove the policies", vec![del], vec![], false);
    actions.push(Action::Apply {
        label: format!("ClusterPolicies {} (exclusions merged)", names.join(", ")),
        namespace: None,
        objects,
        timeout: ctx.timeout(limits::APPLY),
        expect_failure: ctx.denial.is_some(),
    });
    actions
        .push(Action::Wait { until: WaitFor::PoliciesReady { names }, timeout: ctx.timeout(limits::POLICIES_READY) });
    // PolicyExceptions after the policies they name (Kyverno validates them against those), each in
    // the namespace it declares. They have no Ready condition: the canary and the steps prove them.
    if !ctx.loaded.exceptions.is_empty() {
        let objects: Vec<Value> = ctx.loaded.exceptions.iter().map(|p| p.merged.clone()).collect();
        let names: Vec<String> = objects
            .iter()
            .map(|o| format!("{}/{}", o["metadata"]["namespace"].as_str().unwrap_or(""), policy::name(o).unwrap_or("")))
            .collect();
        let refs = objects.iter().map(|o| object_ref(o, o["metadata"]["namespace"].as_str())).collect();
        let del = Action::Delete {
            label: format!("PolicyExceptions {}", names.join(", ")),
            objects: refs,
            timeout: limits::TEARDOWN,
            wait: true,
        };
        ctx.b.push_cluster_undo(name, "remove the policy exceptions", vec![del], vec![], false);
        actions.push(Action::Apply {
            label: format!("PolicyExceptions {}", names.join(", ")),
            namespace: None,
            objects,
            timeout: ctx.timeout(limits::APPLY),
            expect_failure: false,
        });
    }
    actions.push(Action::CanaryDenied { pod: canary_pod(ctx.loaded), timeout: ctx.timeout(limits::CANARY) });
    actions
}
